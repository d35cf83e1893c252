//! Enhanced `depends` expressions of DAG tasks: parser and evaluator.
//!
//! Owns the language Argo documents in "Enhanced Depends Logic": operands `task` or
//! `task.Result` (`Succeeded`, `Failed`, `Errored`, `Skipped`, `Omitted`, `Daemoned`, and for loop
//! tasks `AnySucceeded`, `AllFailed`), the operators `&&`, `||`, `!` and parentheses, with `!`
//! binding tighter than `&&`, and `&&` tighter than `||`.
//!
//! Invariants:
//! - Task names follow Argo's field-name format `[a-zA-Z0-9][-a-zA-Z0-9]*` (dashes allowed, no
//!   dots, no spaces); a result is written right after the dot, without spaces.
//! - A bare `task` is kept as [`Expr::Bare`] and means
//!   `(task.Succeeded || task.Skipped || task.Daemoned)`, plus `|| task.Errored` when that task has
//!   `continueOn.error` and `|| task.Failed` when it has `continueOn.failed` (Argo's
//!   `expandDependency`). The expansion needs the dependency's `continueOn`, so it happens at
//!   evaluation time, from the [`Outcome`] the caller gives.
//! - `dependencies: [A, B]` is [`from_dependencies`]: the same as `depends: "A && B"`.
//! - Evaluation is three-valued (Kleene): an operand whose task has not finished is unknown
//!   (`None`), `false && unknown` is `false`, `true || unknown` is `true`. The DAG scheduler only
//!   acts on a definite answer, and uses unknowns to see early that a task can no longer run.
//! - Errors name the task and the 1-based column in the expression; nothing here panics on input.

use std::fmt;

use serde::Serialize;

/// A task result that can follow `task.` in an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TaskResult {
    /// Finished without error.
    Succeeded,
    /// Exited with a non-zero code.
    Failed,
    /// Ended in an error other than a non-zero exit code (node phase `Error`).
    Errored,
    /// Its `when` was false.
    Skipped,
    /// Its `depends` was false.
    Omitted,
    /// A daemon that is up (not Pending).
    Daemoned,
    /// A loop task with at least one child that succeeded.
    AnySucceeded,
    /// A loop task with children, all of which failed.
    AllFailed,
}

impl TaskResult {
    /// The result named `s`, as written after the dot (case-sensitive, like Argo).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "Errored" => Self::Errored,
            "Skipped" => Self::Skipped,
            "Omitted" => Self::Omitted,
            "Daemoned" => Self::Daemoned,
            "AnySucceeded" => Self::AnySucceeded,
            "AllFailed" => Self::AllFailed,
            _ => return None,
        })
    }

    /// The spelling in expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Errored => "Errored",
            Self::Skipped => "Skipped",
            Self::Omitted => "Omitted",
            Self::Daemoned => "Daemoned",
            Self::AnySucceeded => "AnySucceeded",
            Self::AllFailed => "AllFailed",
        }
    }
}

/// A parsed `depends` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A bare task name (see the module docs for its meaning).
    Bare(String),
    /// `task.Result`.
    Result {
        /// The task.
        task: String,
        /// The result tested.
        result: TaskResult,
    },
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
}

/// What a finished dependency is, as the evaluator needs it. Every flag is false for a task that
/// is not in that state; the `continue_on_*` flags are the dependency's own `continueOn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Phase `Succeeded`.
    pub succeeded: bool,
    /// Phase `Failed`.
    pub failed: bool,
    /// Phase `Error`.
    pub errored: bool,
    /// Phase `Skipped`.
    pub skipped: bool,
    /// Phase `Omitted`.
    pub omitted: bool,
    /// A daemon that is up.
    pub daemoned: bool,
    /// A loop task with a succeeded child.
    pub any_succeeded: bool,
    /// A loop task with children, all failed.
    pub all_failed: bool,
    /// The dependency has `continueOn.failed`.
    pub continue_on_failed: bool,
    /// The dependency has `continueOn.error`.
    pub continue_on_error: bool,
}

impl Outcome {
    fn result(&self, result: TaskResult) -> bool {
        match result {
            TaskResult::Succeeded => self.succeeded,
            TaskResult::Failed => self.failed,
            TaskResult::Errored => self.errored,
            TaskResult::Skipped => self.skipped,
            TaskResult::Omitted => self.omitted,
            TaskResult::Daemoned => self.daemoned,
            TaskResult::AnySucceeded => self.any_succeeded,
            TaskResult::AllFailed => self.all_failed,
        }
    }

    /// The meaning of a bare task name.
    fn bare(&self) -> bool {
        self.succeeded
            || self.skipped
            || self.daemoned
            || (self.continue_on_error && self.errored)
            || (self.continue_on_failed && self.failed)
    }
}

impl Expr {
    /// Evaluates the expression. `outcome(task)` is `None` while that task has not finished,
    /// which makes its operands unknown; the result is `None` when the known operands do not
    /// decide it.
    pub fn eval(&self, outcome: &dyn Fn(&str) -> Option<Outcome>) -> Option<bool> {
        match self {
            Expr::Bare(task) => outcome(task).map(|o| o.bare()),
            Expr::Result { task, result } => outcome(task).map(|o| o.result(*result)),
            Expr::Not(e) => e.eval(outcome).map(|v| !v),
            Expr::And(a, b) => match (a.eval(outcome), b.eval(outcome)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(outcome), b.eval(outcome)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
        }
    }

    /// The tasks the expression names, each once, in order of first appearance.
    pub fn tasks(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Bare(task) | Expr::Result { task, .. } => {
                if !out.contains(&task.as_str()) {
                    out.push(task);
                }
            }
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// `a && b`, or `b` alone when there is no `a` yet (used to join `dependencies`).
    fn and(a: Option<Expr>, b: Expr) -> Expr {
        match a {
            Some(a) => Expr::And(Box::new(a), Box::new(b)),
            None => b,
        }
    }
}

impl fmt::Display for Expr {
    /// Writes the expression with the parentheses its structure needs, so the text parses back
    /// to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn prec(e: &Expr) -> u8 {
            match e {
                Expr::Or(..) => 1,
                Expr::And(..) => 2,
                _ => 3,
            }
        }
        fn side(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
            if prec(e) < min {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        }
        match self {
            Expr::Bare(task) => f.write_str(task),
            Expr::Result { task, result } => write!(f, "{task}.{}", result.as_str()),
            Expr::Not(e) => {
                f.write_str("!")?;
                side(f, e, 3)
            }
            Expr::And(a, b) => {
                side(f, a, 2)?;
                f.write_str(" && ")?;
                // `&&` is left-associative: a right operand of the same precedence needs parens.
                side(f, b, 3)
            }
            Expr::Or(a, b) => {
                side(f, a, 1)?;
                f.write_str(" || ")?;
                side(f, b, 2)
            }
        }
    }
}

/// Errors of a `depends` expression or a `dependencies` list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DependsError {
    /// The expression does not follow the grammar.
    #[error(
        "task '{task}': depends \"{depends}\": column {column}: expected {expected}, found {found}"
    )]
    Syntax {
        /// The task whose `depends` this is.
        task: String,
        /// The expression as written.
        depends: String,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// What the parser expected there.
        expected: &'static str,
        /// What it found (quoted token, or "end of input").
        found: String,
    },
    /// `dep.Result` with a result Argo does not define.
    #[error(
        "task '{task}': depends \"{depends}\": column {column}: task result '{result}' for task '{dependency}' is invalid (expected one of Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded, AllFailed)"
    )]
    UnknownResult {
        /// The task whose `depends` this is.
        task: String,
        /// The expression as written.
        depends: String,
        /// 1-based column of the operand.
        column: usize,
        /// The task named before the dot.
        dependency: String,
        /// The result as written.
        result: String,
    },
    /// A `dependencies` entry that is not a task name.
    #[error(
        "task '{task}': dependencies[{index}] '{entry}' is not a task name (expected [a-zA-Z0-9][-a-zA-Z0-9]*)"
    )]
    InvalidDependency {
        /// The task whose `dependencies` this is.
        task: String,
        /// Index in the list.
        index: usize,
        /// The entry as written.
        entry: String,
    },
}

impl DependsError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DependsError::Syntax { .. } => "depends_syntax",
            DependsError::UnknownResult { .. } => "depends_result",
            DependsError::InvalidDependency { .. } => "dependencies_entry",
        }
    }
}

/// True for a name in Argo's field-name format `[a-zA-Z0-9][-a-zA-Z0-9]*`.
pub fn is_task_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parses the `depends` expression of `task`. An empty string is no expression (`Ok(None)`), as
/// Argo treats an empty `depends` as absent.
pub fn parse(task: &str, depends: &str) -> Result<Option<Expr>, DependsError> {
    if depends.is_empty() {
        return Ok(None);
    }
    let tokens = lex(task, depends)?;
    let mut p = Parser {
        task,
        depends,
        tokens,
        pos: 0,
    };
    let expr = p.or()?;
    match p.peek() {
        (Tok::End, _) => Ok(Some(expr)),
        (tok, column) => Err(p.syntax(column, "'&&', '||' or end of input", tok)),
    }
}

/// The expression equivalent to `dependencies: [A, B, ...]`: `A && B && ...`; `None` for an
/// empty list.
pub fn from_dependencies(task: &str, deps: &[String]) -> Result<Option<Expr>, DependsError> {
    let mut expr = None;
    for (index, entry) in deps.iter().enumerate() {
        if !is_task_name(entry) {
            return Err(DependsError::InvalidDependency {
                task: task.to_owned(),
                index,
                entry: entry.clone(),
            });
        }
        expr = Some(Expr::and(expr, Expr::Bare(entry.clone())));
    }
    Ok(expr)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Operand(String),
    And,
    Or,
    Not,
    LParen,
    RParen,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Operand(s) => write!(f, "'{s}'"),
            Tok::And => f.write_str("'&&'"),
            Tok::Or => f.write_str("'||'"),
            Tok::Not => f.write_str("'!'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::End => f.write_str("end of input"),
        }
    }
}

/// Splits the expression into tokens with their 1-based columns.
fn lex(task: &str, depends: &str) -> Result<Vec<(Tok, usize)>, DependsError> {
    let chars: Vec<char> = depends.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, column));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, column));
                i += 1;
            }
            '!' => {
                out.push((Tok::Not, column));
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(DependsError::Syntax {
                        task: task.to_owned(),
                        depends: depends.to_owned(),
                        column,
                        expected: if c == '&' { "'&&'" } else { "'||'" },
                        found: format!("'{c}'"),
                    });
                }
                out.push((if c == '&' { Tok::And } else { Tok::Or }, column));
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | '.' | '_'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push((Tok::Operand(word), column));
            }
            other => {
                return Err(DependsError::Syntax {
                    task: task.to_owned(),
                    depends: depends.to_owned(),
                    column,
                    expected: "a task name, '!', '(', '&&' or '||'",
                    found: format!("'{other}'"),
                });
            }
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

struct Parser<'a> {
    task: &'a str,
    depends: &'a str,
    tokens: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> (Tok, usize) {
        // The lexer always ends the list with End, and the parser never moves past it.
        self.tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, self.depends.chars().count() + 1))
    }

    fn bump(&mut self) {
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn syntax(&self, column: usize, expected: &'static str, found: Tok) -> DependsError {
        DependsError::Syntax {
            task: self.task.to_owned(),
            depends: self.depends.to_owned(),
            column,
            expected,
            found: found.to_string(),
        }
    }

    fn or(&mut self) -> Result<Expr, DependsError> {
        let mut left = self.and()?;
        while self.peek().0 == Tok::Or {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, DependsError> {
        let mut left = self.unary()?;
        while self.peek().0 == Tok::And {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, DependsError> {
        let (tok, column) = self.peek();
        match tok {
            Tok::Not => {
                self.bump();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.bump();
                let inner = self.or()?;
                match self.peek() {
                    (Tok::RParen, _) => {
                        self.bump();
                        Ok(inner)
                    }
                    (tok, column) => Err(self.syntax(column, "')'", tok)),
                }
            }
            Tok::Operand(word) => {
                self.bump();
                self.operand(&word, column)
            }
            tok => Err(self.syntax(column, "a task name, '!' or '('", tok)),
        }
    }

    fn operand(&self, word: &str, column: usize) -> Result<Expr, DependsError> {
        let (name, result) = match word.split_once('.') {
            Some((name, result)) => (name, Some(result)),
            None => (word, None),
        };
        if !is_task_name(name) || result.is_some_and(|r| r.contains('.')) {
            return Err(self.syntax(
                column,
                "a task name ([a-zA-Z0-9][-a-zA-Z0-9]*)",
                Tok::Operand(word.to_owned()),
            ));
        }
        let Some(result) = result else {
            return Ok(Expr::Bare(name.to_owned()));
        };
        match TaskResult::parse(result) {
            Some(result) => Ok(Expr::Result {
                task: name.to_owned(),
                result,
            }),
            None => Err(DependsError::UnknownResult {
                task: self.task.to_owned(),
                depends: self.depends.to_owned(),
                column,
                dependency: name.to_owned(),
                result: result.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse("t", s).expect("parses").expect("non-empty")
    }

    fn phase(succeeded: bool, failed: bool, errored: bool) -> Outcome {
        Outcome {
            succeeded,
            failed,
            errored,
            ..Default::default()
        }
    }

    #[test]
    fn parses_and_prints_back() {
        let cases = [
            ("A", "A"),
            ("A.Succeeded", "A.Succeeded"),
            ("A && B", "A && B"),
            ("A || B && C", "A || B && C"),
            ("(A || B) && C", "(A || B) && C"),
            ("!A.Failed", "!A.Failed"),
            ("!(A && B)", "!(A && B)"),
            (
                "A && (C.Succeeded || C.Failed)",
                "A && (C.Succeeded || C.Failed)",
            ),
            (
                "should-execute-2.Succeeded || should-not-execute",
                "should-execute-2.Succeeded || should-not-execute",
            ),
            ("  A&&B  ", "A && B"),
            ("((A))", "A"),
            ("A && (B && C)", "A && (B && C)"),
            (
                "a-1.AnySucceeded || b-2.AllFailed",
                "a-1.AnySucceeded || b-2.AllFailed",
            ),
            ("!!A", "!!A"),
            ("0task", "0task"),
        ];
        for (input, printed) in cases {
            let e = p(input);
            assert_eq!(e.to_string(), printed, "{input}");
            assert_eq!(p(&e.to_string()), e, "round trip of {input}");
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(
            p("A || B && !C"),
            Expr::Or(
                Box::new(Expr::Bare("A".into())),
                Box::new(Expr::And(
                    Box::new(Expr::Bare("B".into())),
                    Box::new(Expr::Not(Box::new(Expr::Bare("C".into()))))
                ))
            )
        );
    }

    #[test]
    fn empty_depends_is_no_expression() {
        assert_eq!(parse("t", ""), Ok(None));
    }

    #[test]
    fn syntax_errors_name_task_and_column() {
        let cases = [
            ("A &&", 5, "a task name, '!' or '('", "end of input"),
            ("A & B", 3, "'&&'", "'&'"),
            ("A | B", 3, "'||'", "'|'"),
            ("(A || B", 8, "')'", "end of input"),
            ("A B", 3, "'&&', '||' or end of input", "'B'"),
            ("A)", 2, "'&&', '||' or end of input", "')'"),
            ("&& A", 1, "a task name, '!' or '('", "'&&'"),
            ("A && $B", 6, "a task name, '!', '(', '&&' or '||'", "'$'"),
            ("-A", 1, "a task name ([a-zA-Z0-9][-a-zA-Z0-9]*)", "'-A'"),
            (
                "A.B.Succeeded",
                1,
                "a task name ([a-zA-Z0-9][-a-zA-Z0-9]*)",
                "'A.B.Succeeded'",
            ),
            ("a_b", 1, "a task name ([a-zA-Z0-9][-a-zA-Z0-9]*)", "'a_b'"),
            ("   ", 4, "a task name, '!' or '('", "end of input"),
            ("A and B", 3, "'&&', '||' or end of input", "'and'"),
        ];
        for (input, column, expected, found) in cases {
            let err = parse("my-task", input).expect_err(input);
            assert_eq!(
                err,
                DependsError::Syntax {
                    task: "my-task".into(),
                    depends: input.into(),
                    column,
                    expected,
                    found: found.into(),
                },
                "{input}"
            );
            assert!(err.to_string().contains("task 'my-task'"), "{err}");
            assert!(
                err.to_string().contains(&format!("column {column}")),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_result_is_named() {
        let err = parse("D", "A && B.Succeded").expect_err("typo");
        assert_eq!(
            err,
            DependsError::UnknownResult {
                task: "D".into(),
                depends: "A && B.Succeded".into(),
                column: 6,
                dependency: "B".into(),
                result: "Succeded".into(),
            }
        );
        assert_eq!(err.metric_label(), "depends_result");
        // Results are case-sensitive, as in Argo.
        assert!(parse("D", "A.succeeded").is_err());
        assert!(parse("D", "A.").is_err());
    }

    #[test]
    fn tasks_are_listed_once_in_order() {
        assert_eq!(
            p("B.Failed || (A && B.Succeeded) || !C").tasks(),
            vec!["B", "A", "C"]
        );
    }

    #[test]
    fn dependencies_list_is_a_conjunction() {
        let e = from_dependencies("D", &["A".into(), "B".into(), "C".into()])
            .expect("valid")
            .expect("non-empty");
        assert_eq!(e, p("A && B && C"));
        assert_eq!(from_dependencies("D", &[]), Ok(None));
        let err = from_dependencies("D", &["A".into(), "B.Failed".into()]).expect_err("dot");
        assert_eq!(err.metric_label(), "dependencies_entry");
        assert!(
            err.to_string().contains("dependencies[1] 'B.Failed'"),
            "{err}"
        );
    }

    #[test]
    fn bare_name_follows_continue_on() {
        let failed = phase(false, true, false);
        let errored = phase(false, false, true);
        let cases = [
            (
                Outcome {
                    succeeded: true,
                    ..Default::default()
                },
                true,
            ),
            (
                Outcome {
                    skipped: true,
                    ..Default::default()
                },
                true,
            ),
            (
                Outcome {
                    daemoned: true,
                    ..Default::default()
                },
                true,
            ),
            (
                Outcome {
                    omitted: true,
                    ..Default::default()
                },
                false,
            ),
            (failed, false),
            (errored, false),
            (
                Outcome {
                    continue_on_failed: true,
                    ..failed
                },
                true,
            ),
            (
                Outcome {
                    continue_on_error: true,
                    ..failed
                },
                false,
            ),
            (
                Outcome {
                    continue_on_error: true,
                    ..errored
                },
                true,
            ),
            (
                Outcome {
                    continue_on_failed: true,
                    ..errored
                },
                false,
            ),
        ];
        for (outcome, want) in cases {
            let got = p("A").eval(&|_| Some(outcome));
            assert_eq!(got, Some(want), "{outcome:?}");
        }
    }

    #[test]
    fn explicit_results_read_their_flag() {
        let o = Outcome {
            failed: true,
            any_succeeded: true,
            ..Default::default()
        };
        let cases = [
            ("A.Succeeded", false),
            ("A.Failed", true),
            ("A.Errored", false),
            ("A.Skipped", false),
            ("A.Omitted", false),
            ("A.Daemoned", false),
            ("A.AnySucceeded", true),
            ("A.AllFailed", false),
            ("!A.Failed", false),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).eval(&|_| Some(o)), Some(want), "{input}");
        }
    }

    #[test]
    fn evaluation_is_three_valued() {
        let ok = Outcome {
            succeeded: true,
            ..Default::default()
        };
        let bad = phase(false, true, false);
        // A succeeded, B failed, C unknown.
        let lookup = |t: &str| match t {
            "A" => Some(ok),
            "B" => Some(bad),
            _ => None,
        };
        let cases = [
            ("C", None),
            ("A && C", None),
            ("B && C", Some(false)),
            ("C && B", Some(false)),
            ("A || C", Some(true)),
            ("C || A", Some(true)),
            ("B || C", None),
            ("!C", None),
            ("!(B && C)", Some(true)),
            ("A && B.Failed", Some(true)),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).eval(&lookup), want, "{input}");
        }
    }

    #[test]
    fn task_names_follow_argo_format() {
        for ok in ["A", "a-b", "0", "task-1-x"] {
            assert!(is_task_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a.b", "a b", "a_b", "é"] {
            assert!(!is_task_name(bad), "{bad}");
        }
    }
}
