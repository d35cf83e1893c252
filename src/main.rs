//! The `cairn` command line: the server and the client commands.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (clap's own convention for bad arguments).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use cairn::cli::app::AppCommand;
use cairn::cli::{self, OutputFormat};
use cairn::telemetry::LogFormat;

#[derive(Parser)]
#[command(name = "cairn", version = cairn::VERSION, about = "GitOps, workflows, events, lineage and a UI for Argo manifests, in one process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, UI and controllers.
    Server(ServerArgs),
    /// Print version, git commit and build date.
    Version {
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Print the argoproj.io CustomResourceDefinitions cairn installs.
    Crds,
    /// Log in to a cairn server and remember it as the current server.
    Login(LoginArgs),
    /// Forget the credentials of the current (or given) server.
    Logout {
        /// Server URL (default: the current one).
        #[arg(long, env = "CAIRN_SERVER")]
        server: Option<String>,
    },
    /// Local accounts and API tokens.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Administration on the server's own machine.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Argo CD Applications.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Argo CD AppProjects: role tokens.
    Proj {
        #[command(subcommand)]
        command: cli::proj::ProjCommand,
    },
    /// Argo Workflows.
    Wf {
        #[command(subcommand)]
        command: cli::wf::WfCommand,
    },
    /// Argo CronWorkflows.
    Cron {
        #[command(subcommand)]
        command: cli::wf::CronCommand,
    },
    /// Argo Events EventSources.
    #[command(name = "eventsource")]
    EventSource {
        #[command(subcommand)]
        command: cli::events::EventSourceCommand,
    },
    /// Argo Events Sensors and their trigger history.
    Sensor {
        #[command(subcommand)]
        command: cli::events::SensorCommand,
    },
    /// Events on the bus; send a test event.
    Events {
        #[command(subcommand)]
        command: cli::events::EventsCommand,
    },
    /// The model registry: models, versions, aliases.
    Model {
        #[command(subcommand)]
        command: cli::model::ModelCommand,
    },
    /// Lineage: where a model version came from, what serves now, the graph, export.
    Lineage {
        #[command(subcommand)]
        command: cli::lineage::LineageCommand,
    },
    /// Executor (inside a step pod): run COMMAND, then report its outputs to the controller.
    #[command(hide = true)]
    Exec {
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Executor init (inside a step pod): copy this binary to DEST.
    #[command(hide = true)]
    ExecInit {
        /// Where to install the binary.
        dest: PathBuf,
    },
}

#[derive(Args)]
struct ServerArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Directory holding the database and other state.
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "CAIRN_LOG_FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Args)]
#[group(skip)]
struct Credential {
    /// User name; the password is read from standard input.
    #[arg(
        long,
        env = "CAIRN_USERNAME",
        requires = "password_stdin",
        required_unless_present_any = ["token", "sso"]
    )]
    username: Option<String>,
    /// Read the password from standard input (use with --username).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// An API token (from `cairn account generate-token`).
    #[arg(long, env = "CAIRN_TOKEN", conflicts_with = "username")]
    token: Option<String>,
    /// Log in through the server's identity provider (SSO) in a browser.
    #[arg(long, conflicts_with_all = ["username", "token"])]
    sso: bool,
    /// Loopback port the browser comes back to after an SSO login.
    #[arg(long, default_value_t = cli::sso::DEFAULT_PORT, requires = "sso")]
    sso_port: u16,
}

#[derive(Args)]
struct LoginArgs {
    /// Server URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "CAIRN_SERVER")]
    server: String,
    #[command(flatten)]
    credential: Credential,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an API token; its secret is printed once.
    GenerateToken {
        /// A name to recognise the token by.
        #[arg(long, env = "CAIRN_TOKEN_NAME")]
        name: String,
        /// Lifetime, e.g. 30d, 12h (default: no expiry).
        #[arg(long, env = "CAIRN_TOKEN_EXPIRES_IN")]
        expires_in: Option<String>,
        /// Account (default: the logged-in one).
        #[arg(long, env = "CAIRN_ACCOUNT")]
        account: Option<String>,
    },
    /// List an account's API tokens.
    ListTokens {
        /// Account (default: the logged-in one).
        #[arg(long, env = "CAIRN_ACCOUNT")]
        account: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Revoke an API token.
    RevokeToken {
        /// Token id.
        #[arg(long, env = "CAIRN_TOKEN_ID")]
        id: String,
        /// Account (default: the logged-in one).
        #[arg(long, env = "CAIRN_ACCOUNT")]
        account: Option<String>,
    },
    /// List local accounts.
    List {
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show who the current credentials belong to.
    GetUserInfo {
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Change a password (prompts are read from standard input: current, then new).
    UpdatePassword {
        /// Account (default: the logged-in one).
        #[arg(long, env = "CAIRN_ACCOUNT")]
        account: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print the generated initial admin password (until it is changed).
    InitialPassword {
        /// The server's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file, to find the data directory.
        #[arg(long, env = "CAIRN_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (kube, reqwest), installed before any client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are not errors; everything else is a usage error (exit 2).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The executor subcommands own their exit code (the wrapped command's).
    let cli = match cli.command {
        Command::Exec { command } => return exec(command),
        Command::ExecInit { dest } => {
            let code = cairn::workflow::executor::command::exec_init_main(&dest);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        command => Cli { command },
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// `cairn exec`: a small current-thread runtime (the wrapper waits on one child), exit code
/// clamped to what a process can return.
fn exec(command: Vec<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cairn exec: cannot start the runtime: {err}");
            return ExitCode::from(64);
        }
    };
    let code = runtime.block_on(cairn::workflow::executor::command::exec_main(command));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
        Command::Version { output } => cli::print_version(output.unwrap_or_default()),
        Command::Crds => {
            print!("{}", cairn::k8s::crds::yaml());
            Ok(())
        }
        Command::Login(args) => runtime.block_on(login(args)),
        Command::Logout { server } => cli::logout(server.as_deref()),
        Command::Account { command } => runtime.block_on(account(command)),
        Command::Admin {
            command: AdminCommand::InitialPassword { data_dir, config },
        } => {
            let config = cairn::config::Config::load(
                config.as_deref(),
                std::env::vars(),
                &cairn::config::Overrides {
                    data_dir,
                    ..Default::default()
                },
            )?;
            match cairn::auth::read_initial_password(&config.server.data_dir)? {
                Some(password) => {
                    println!("{}", password.expose());
                    Ok(())
                }
                None => anyhow::bail!(
                    "no initial admin password in {}: it was changed, or the server has not started there yet",
                    config.server.data_dir.display()
                ),
            }
        }
        Command::App { command } => runtime.block_on(cli::app::run(command)),
        Command::Proj { command } => runtime.block_on(cli::proj::run(command)),
        Command::Wf { command } => runtime.block_on(cli::wf::run(command)),
        Command::Cron { command } => runtime.block_on(cli::wf::run_cron(command)),
        Command::EventSource { command } => runtime.block_on(cli::events::run_eventsource(command)),
        Command::Sensor { command } => runtime.block_on(cli::events::run_sensor(command)),
        Command::Events { command } => runtime.block_on(cli::events::run_events(command)),
        Command::Model { command } => runtime.block_on(cli::model::run(command)),
        Command::Lineage { command } => runtime.block_on(cli::lineage::run(command)),
        // Dispatched by `main` before `run`, which cannot return their exit code.
        Command::Exec { .. } | Command::ExecInit { .. } => {
            anyhow::bail!("executor subcommands are dispatched by main")
        }
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let config = cairn::config::Config::load(
        args.config.as_deref(),
        std::env::vars(),
        &cairn::config::Overrides {
            listen: args.listen,
            data_dir: args.data_dir,
            log_format: args.log_format,
        },
    )?;
    cairn::telemetry::init(config.log.format, &config.log.level)?;
    cairn::server::run(config, cairn::server::shutdown_signal()).await?;
    Ok(())
}

async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let Credential {
        username,
        password_stdin: _,
        token,
        sso,
        sso_port,
    } = args.credential;
    if sso {
        let login = cli::sso::login_sso(&args.server, sso_port, |url| {
            eprintln!("Log in through the identity provider in a browser:\n\n  {url}\n");
        })
        .await?;
        println!("logged in to {} as {} (SSO)", args.server, login.username);
        return Ok(());
    }
    let user = match (username, token) {
        (Some(username), None) => {
            let password = cli::read_secret_line()?;
            cli::login_password(&args.server, &username, &password).await?
        }
        (None, Some(token)) => cli::login_token(&args.server, &token).await?,
        _ => anyhow::bail!("give either --username with --password-stdin, or --token"),
    };
    println!("logged in to {} as {user}", args.server);
    Ok(())
}

async fn account(command: AccountCommand) -> anyhow::Result<()> {
    let client = cli::Client::current()?;
    match command {
        AccountCommand::GenerateToken {
            name,
            expires_in,
            account,
        } => {
            client
                .generate_token(account.as_deref(), &name, expires_in.as_deref())
                .await
        }
        AccountCommand::ListTokens { account, output } => {
            client
                .list_tokens(account.as_deref(), output.unwrap_or_default())
                .await
        }
        AccountCommand::RevokeToken { id, account } => {
            client.revoke_token(account.as_deref(), &id).await
        }
        AccountCommand::List { output } => client.account_list(output.unwrap_or_default()).await,
        AccountCommand::GetUserInfo { output } => client.userinfo(output.unwrap_or_default()).await,
        AccountCommand::UpdatePassword { account } => {
            let current = cli::read_secret_line()?;
            let new = cli::read_secret_line()?;
            client
                .update_password(account.as_deref(), &current, &new)
                .await
        }
    }
}
