//! The shipped configuration file (`packaging/etc/cairn.toml`, `etc/cairn.toml` in the release
//! tarball) against `src/config.rs`, so the two cannot drift apart:
//! - with every setting line uncommented it parses strictly (no stale or misspelt key, every
//!   value of the right type) and validates;
//! - the values shown as defaults are the built-in defaults (lines marked `# example` are the
//!   settings that have none; `# alternative` marks an example that excludes another, e.g. a
//!   second source of one secret, and is only checked as a key);
//! - every key the configuration accepts is in the file, section by section (the accepted names
//!   come from the parser itself: an unknown key is refused with the list of expected ones).
//!
//! File conventions: prose comments start with `# `, settings with `#` directly followed by the
//! key or a `[table]` header; `@VERSION@` stands for the crate version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use cairn::config::{Config, Host, Overrides};

const FILE: &str = include_str!("../packaging/etc/cairn.toml");
const EXAMPLE_MARK: &str = "# example";
const ALTERNATIVE_MARK: &str = "# alternative";

/// Which setting lines [`uncommented`] uncomments.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lines {
    /// Settings shown with their default value.
    Defaults,
    /// Those and the examples.
    Examples,
    /// Everything, alternatives included (a key listing; may not validate).
    All,
}

/// A setting line (`#key = value` or `#[table]`): its text without the leading `#`.
fn setting(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let first = rest.chars().next()?;
    (first.is_ascii_lowercase() || first == '[').then_some(rest)
}

/// The file with the setting lines of `which` uncommented.
fn uncommented(which: Lines) -> String {
    FILE.replace("@VERSION@", cairn::VERSION)
        .lines()
        .map(|line| match setting(line) {
            Some(s) if s.contains(ALTERNATIVE_MARK) && which < Lines::All => line,
            Some(s) if s.contains(EXAMPLE_MARK) && which < Lines::Examples => line,
            Some(s) => s,
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn resolve(text: &str) -> Result<Config, cairn::config::ConfigError> {
    Config::resolve(
        Some((Path::new("etc/cairn.toml"), text)),
        &HashMap::new(),
        &Overrides::default(),
        Host { is_root: true },
    )
}

fn defaults() -> Config {
    Config::resolve(
        None,
        &HashMap::new(),
        &Overrides::default(),
        Host { is_root: true },
    )
    .unwrap_or_else(|e| panic!("the built-in defaults do not resolve: {e}"))
}

#[test]
fn the_file_as_shipped_is_the_defaults() {
    let config = resolve(&FILE.replace("@VERSION@", cairn::VERSION))
        .unwrap_or_else(|e| panic!("the shipped file does not load: {e}"));
    assert_eq!(config, defaults());
}

#[test]
fn the_defaults_shown_are_the_built_in_ones() {
    let config = resolve(&uncommented(Lines::Defaults))
        .unwrap_or_else(|e| panic!("the file with its defaults uncommented does not load: {e}"));
    assert_eq!(
        config,
        defaults(),
        "a value shown in packaging/etc/cairn.toml differs from src/config.rs's default"
    );
}

#[test]
fn every_example_is_a_valid_setting() {
    let config = resolve(&uncommented(Lines::Examples))
        .unwrap_or_else(|e| panic!("the file with every line uncommented does not load: {e}"));
    // The examples change something: a file whose examples were silently ignored would not.
    assert_ne!(config, defaults());
    assert!(config.accounts.users.contains_key("ci"));
    assert!(config.oidc.is_some());
}

/// The keys written in the file (everything uncommented), per dotted table name; the names of
/// the `[accounts.users.<name>]` tables are replaced by `<user>`, those of
/// `[workflow.images."<image>"]` by `<image>`.
fn keys_in_file() -> BTreeMap<String, BTreeSet<String>> {
    let value: toml::Table = uncommented(Lines::All)
        .parse()
        .unwrap_or_else(|e| panic!("the uncommented file is not TOML: {e}"));
    let mut out = BTreeMap::new();
    collect(&value, "", &mut out);
    out
}

fn collect(table: &toml::Table, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let entry = out.entry(path.to_owned()).or_default();
    for key in table.keys() {
        entry.insert(key.clone());
    }
    for (key, value) in table {
        // Maps keyed by names the user chooses: `accounts.users.<name>` is a struct per user
        // (checked as `<user>`); the claims of `requestedIDTokenClaims` are Argo's free form.
        if path == "oidc" && key == "requestedIDTokenClaims" {
            continue;
        }
        let child = match (path, key.as_str()) {
            ("accounts.users", _) => format!("{path}.<user>"),
            ("workflow.images", _) => format!("{path}.<image>"),
            ("", _) => key.clone(),
            _ => format!("{path}.{key}"),
        };
        match value {
            toml::Value::Table(inner) => collect(inner, &child, out),
            // Arrays of tables (`[[promotion]]`): every entry's keys count for the array's path.
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        collect(inner, &child, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The keys the parser accepts in the table at `path`: a probe key is refused with the list of
/// expected field names.
fn accepted_keys(path: &str) -> BTreeSet<String> {
    let header = match path {
        "" => String::new(),
        // An array of tables is probed through one entry.
        "promotion" => "[[promotion]]\n".to_owned(),
        _ => format!(
            "[{}]\n",
            path.replace("<user>", "probe").replace("<image>", "probe")
        ),
    };
    let text = format!("{header}zz_probe = 0\n");
    let err = match resolve(&text) {
        Ok(_) => panic!("the probe key in [{path}] was accepted"),
        Err(e) => e.to_string(),
    };
    let (_, expected) = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("no list of expected keys in: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_key_is_in_the_file() {
    let in_file = keys_in_file();
    // `accounts.users` and `workflow.images` hold tables named by the user, not keys of their own.
    for (path, keys) in in_file
        .iter()
        .filter(|(p, _)| !matches!(p.as_str(), "accounts.users" | "workflow.images"))
    {
        let accepted = accepted_keys(path);
        let missing: Vec<_> = accepted.difference(keys).collect();
        assert!(
            missing.is_empty(),
            "packaging/etc/cairn.toml [{path}] lacks {missing:?} (accepted: {accepted:?})"
        );
    }
    // Every table the parser accepts at the top level is in the file.
    let top = accepted_keys("");
    let sections: BTreeSet<String> = in_file
        .keys()
        .filter(|p| !p.is_empty() && !p.contains('.'))
        .cloned()
        .collect();
    assert_eq!(
        top, sections,
        "the file's [sections] differ from the configuration's"
    );
}
