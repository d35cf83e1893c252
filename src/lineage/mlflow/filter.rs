//! MLflow's search grammar, the subset cairn serves: `filter_string` clauses joined by `AND`,
//! `order_by` keys and opaque page tokens. Pure: parsing and matching only, no I/O.
//!
//! A clause is `<entity> <op> <value>`. Entities: `attributes.<name>` (or a bare `<name>`;
//! `attribute.`/`attr.`/`run.` are synonyms), `params.<key>`, `tags.<key>`, `metrics.<key>`
//! (singular prefixes too); a key with dots or spaces is quoted with backticks or double quotes
//! (``tags.`mlflow.runName` ``). Operators: `=`, `!=` (`<>`), `>`, `>=`, `<`, `<=` for numbers;
//! `=`, `!=`, `LIKE`, `ILIKE` for strings (`%` any run, `_` one character). Values: single- or
//! double-quoted strings, or numbers. `OR` and parentheses are refused with a message saying so.
//!
//! Invariants: an entity absent from a record never matches (as in MLflow: a run without metric
//! `score` is not returned by `metrics.score > 0`); a page token is base64 of `{"offset": N}` and
//! a token that does not decode is a user error, never a panic.

use std::cmp::Ordering;

use base64::Engine as _;

/// Longest filter or order-by expression accepted.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// Errors of the search grammar.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// The filter string could not be parsed.
    #[error("filter {filter:?}: {why}")]
    Syntax {
        /// The filter as given.
        filter: String,
        /// What was expected.
        why: String,
    },
    /// An `order_by` entry could not be parsed.
    #[error("order_by {entry:?}: {why}")]
    OrderBy {
        /// The entry as given.
        entry: String,
        /// What was expected.
        why: String,
    },
    /// The page token is not one this server issued.
    #[error("page_token {token:?} is invalid: expected the next_page_token of a previous search")]
    PageToken {
        /// The token as given.
        token: String,
    },
}

impl FilterError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Syntax { .. } => "filter_syntax",
            Self::OrderBy { .. } => "order_by",
            Self::PageToken { .. } => "page_token",
        }
    }
}

/// A run or experiment attribute a filter or an ordering may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// Run status (`RUNNING`, `FINISHED`, ...).
    Status,
    /// Run name.
    RunName,
    /// Run id.
    RunId,
    /// The user who created the run.
    UserId,
    /// Run start, Unix ms.
    StartTime,
    /// Run end, Unix ms.
    EndTime,
    /// Experiment name.
    Name,
    /// Experiment creation, Unix ms.
    CreationTime,
    /// Experiment last update, Unix ms.
    LastUpdateTime,
}

impl Attr {
    fn parse(name: &str) -> Option<Attr> {
        Some(match name {
            "status" => Attr::Status,
            "run_name" | "runName" => Attr::RunName,
            "run_id" | "run_uuid" => Attr::RunId,
            "user_id" => Attr::UserId,
            "start_time" => Attr::StartTime,
            "end_time" => Attr::EndTime,
            "name" => Attr::Name,
            "creation_time" => Attr::CreationTime,
            "last_update_time" => Attr::LastUpdateTime,
            _ => return None,
        })
    }
}

/// What a clause or an ordering looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// An attribute.
    Attribute(Attr),
    /// A parameter by key.
    Param(String),
    /// A tag by key.
    Tag(String),
    /// A metric's latest value by key.
    Metric(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `LIKE` (case-sensitive pattern)
    Like,
    /// `ILIKE` (case-insensitive pattern)
    ILike,
}

/// A literal in a clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string.
    Str(String),
    /// A number.
    Num(f64),
}

/// One `<entity> <op> <value>` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// What is compared.
    pub entity: Entity,
    /// How.
    pub op: Op,
    /// With what.
    pub value: Literal,
}

/// A value a record holds for an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    /// Text (params, tags, string attributes).
    Str(&'a str),
    /// A number (metrics, times).
    Num(f64),
}

/// A record the grammar can match: a run or an experiment.
pub trait Searchable {
    /// The value of an entity, or `None` when the record has none.
    fn field(&self, entity: &Entity) -> Option<Field<'_>>;
}

/// One `order_by` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    /// What is ordered on.
    pub entity: Entity,
    /// Ascending (the default) or descending.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    And,
}

fn syntax(filter: &str, why: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        filter: filter.to_string(),
        why: why.into(),
    }
}

/// Reads a quoted run starting at `chars[i]` (the quote); returns the text and the index after
/// the closing quote.
fn quoted(chars: &[char], i: usize, filter: &str) -> Result<(String, usize), FilterError> {
    let quote = chars[i];
    let mut j = i + 1;
    let mut out = String::new();
    while j < chars.len() {
        if chars[j] == quote {
            return Ok((out, j + 1));
        }
        out.push(chars[j]);
        j += 1;
    }
    Err(syntax(filter, format!("unterminated {quote} quote")))
}

fn tokenize(filter: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = filter.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || (c == '"' && !matches!(tokens.last(), None | Some(Token::And))) {
            // A string value (a double quote at the start of a clause starts a quoted key).
            let (text, next) = quoted(&chars, i, filter)?;
            tokens.push(Token::Str(text));
            i = next;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text
                .parse()
                .map_err(|_| syntax(filter, format!("{text:?} is not a number")))?;
            tokens.push(Token::Num(n));
        } else if c.is_alphabetic() || c == '_' || c == '`' || c == '"' {
            let mut ident = String::new();
            loop {
                match chars.get(i) {
                    Some(&q @ ('`' | '"')) if ident.is_empty() || ident.ends_with('.') => {
                        let (text, next) = quoted(&chars, i, filter)?;
                        ident.push_str(&text);
                        i = next;
                        let _ = q;
                    }
                    Some(&ch) if ch.is_alphanumeric() || matches!(ch, '_' | '.' | '-') => {
                        ident.push(ch);
                        i += 1;
                    }
                    _ => break,
                }
            }
            match ident.to_ascii_uppercase().as_str() {
                "AND" => tokens.push(Token::And),
                "LIKE" => tokens.push(Token::Op(Op::Like)),
                "ILIKE" => tokens.push(Token::Op(Op::ILike)),
                "OR" => {
                    return Err(syntax(
                        filter,
                        "OR is not supported: clauses are joined by AND only",
                    ));
                }
                "IN" | "NOT" | "IS" => {
                    return Err(syntax(
                        filter,
                        format!("{ident} is not supported: use =, !=, <, <=, >, >=, LIKE or ILIKE"),
                    ));
                }
                _ => tokens.push(Token::Ident(ident)),
            }
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let (op, len) = match two.as_str() {
                "!=" | "<>" => (Op::Ne, 2),
                ">=" => (Op::Ge, 2),
                "<=" => (Op::Le, 2),
                "==" => (Op::Eq, 2),
                _ => match c {
                    '=' => (Op::Eq, 1),
                    '>' => (Op::Gt, 1),
                    '<' => (Op::Lt, 1),
                    '(' | ')' => {
                        return Err(syntax(filter, "parentheses are not supported"));
                    }
                    other => {
                        return Err(syntax(filter, format!("unexpected character {other:?}")));
                    }
                },
            };
            tokens.push(Token::Op(op));
            i += len;
        }
    }
    Ok(tokens)
}

/// Parses `prefix.key` (or a bare attribute name) into an entity.
fn entity(ident: &str) -> Result<Entity, String> {
    let (prefix, key) = match ident.split_once('.') {
        Some((p, k)) => (p, k),
        None => ("attributes", ident),
    };
    if key.is_empty() {
        return Err(format!("{ident:?} names no key after {prefix:?}"));
    }
    match prefix {
        "attributes" | "attribute" | "attr" | "run" => {
            Attr::parse(key).map(Entity::Attribute).ok_or_else(|| {
                format!(
                    "unknown attribute {key:?}: expected status, run_name, run_id, user_id, \
                     start_time, end_time, name, creation_time or last_update_time"
                )
            })
        }
        "params" | "param" | "parameter" | "parameters" => Ok(Entity::Param(key.to_string())),
        "tags" | "tag" => Ok(Entity::Tag(key.to_string())),
        "metrics" | "metric" => Ok(Entity::Metric(key.to_string())),
        other => Err(format!(
            "unknown entity type {other:?}: expected attributes, params, tags or metrics"
        )),
    }
}

fn numeric(entity: &Entity) -> bool {
    matches!(
        entity,
        Entity::Metric(_)
            | Entity::Attribute(
                Attr::StartTime | Attr::EndTime | Attr::CreationTime | Attr::LastUpdateTime
            )
    )
}

/// Parses a `filter_string`. An empty or blank filter is no clause (everything matches).
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, FilterError> {
    if filter.len() > MAX_EXPRESSION_BYTES {
        return Err(syntax(
            &filter.chars().take(64).collect::<String>(),
            format!("longer than {MAX_EXPRESSION_BYTES} bytes"),
        ));
    }
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut rest = tokens.as_slice();
    while !rest.is_empty() {
        let [Token::Ident(ident), Token::Op(op), value, tail @ ..] = rest else {
            return Err(syntax(
                filter,
                "expected clauses like metrics.score > 0.4 joined by AND",
            ));
        };
        let entity = entity(ident).map_err(|why| syntax(filter, why))?;
        let value = match value {
            Token::Str(s) => Literal::Str(s.clone()),
            Token::Num(n) => Literal::Num(*n),
            _ => {
                return Err(syntax(
                    filter,
                    format!("{ident} {op:?} needs a quoted string or a number"),
                ));
            }
        };
        let is_numeric = numeric(&entity);
        match (&value, is_numeric, op) {
            (_, true, Op::Like | Op::ILike) => {
                return Err(syntax(
                    filter,
                    format!("{ident} is a number: use =, !=, <, <=, > or >="),
                ));
            }
            (Literal::Str(_), true, _) if !matches!(entity, Entity::Metric(_)) => {
                // Times compare as numbers; a quoted number is accepted below.
            }
            (Literal::Num(_), false, _) => {
                return Err(syntax(
                    filter,
                    format!("{ident} is text: compare it with a quoted string"),
                ));
            }
            (_, false, Op::Gt | Op::Ge | Op::Lt | Op::Le) => {
                return Err(syntax(
                    filter,
                    format!("{ident} is text: use =, !=, LIKE or ILIKE"),
                ));
            }
            (Literal::Str(s), true, _) => {
                return Err(syntax(
                    filter,
                    format!("{ident} is a number: compare it with a number, not {s:?}"),
                ));
            }
            _ => {}
        }
        let value = match value {
            Literal::Str(s) if is_numeric => Literal::Num(
                s.parse()
                    .map_err(|_| syntax(filter, format!("{ident} needs a number, not {s:?}")))?,
            ),
            other => other,
        };
        clauses.push(Clause {
            entity,
            op: *op,
            value,
        });
        rest = match tail {
            [] => &[],
            [Token::And, more @ ..] if !more.is_empty() => more,
            _ => return Err(syntax(filter, "clauses must be joined by AND")),
        };
    }
    Ok(clauses)
}

/// SQL `LIKE`: `%` matches any run of characters, `_` exactly one.
pub fn like(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if case_insensitive {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (fold(pattern), fold(text));
    // Iterative wildcard matching with backtracking to the last `%` (linear-ish, no recursion).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// Whether a record satisfies one clause.
pub fn matches_clause(record: &impl Searchable, clause: &Clause) -> bool {
    let Some(field) = record.field(&clause.entity) else {
        return false;
    };
    match (field, &clause.value) {
        (Field::Num(a), Literal::Num(b)) => match clause.op {
            Op::Eq => a == *b,
            Op::Ne => a != *b,
            Op::Gt => a > *b,
            Op::Ge => a >= *b,
            Op::Lt => a < *b,
            Op::Le => a <= *b,
            Op::Like | Op::ILike => false,
        },
        (Field::Str(a), Literal::Str(b)) => match clause.op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Like => like(b, a, false),
            Op::ILike => like(b, a, true),
            Op::Gt | Op::Ge | Op::Lt | Op::Le => false,
        },
        _ => false,
    }
}

/// Whether a record satisfies every clause.
pub fn matches(record: &impl Searchable, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| matches_clause(record, c))
}

/// Whether a registered model or model version satisfies every clause. As in MLflow's model
/// registry, `tags.<k> != 'v'` also matches a record without tag `k` (the client adds
/// ``tags.`mlflow.prompt.is_prompt` != 'true'`` to every model search to leave prompts out).
pub fn matches_registry(record: &impl Searchable, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| {
        let absent_tag_ne = matches!(c.entity, Entity::Tag(_))
            && c.op == Op::Ne
            && record.field(&c.entity).is_none();
        absent_tag_ne || matches_clause(record, c)
    })
}

/// Parses one `order_by` entry: `<entity> [ASC|DESC]`.
pub fn parse_order_by(entry: &str) -> Result<OrderKey, FilterError> {
    let bad = |why: String| FilterError::OrderBy {
        entry: entry.to_string(),
        why,
    };
    if entry.len() > MAX_EXPRESSION_BYTES {
        return Err(bad(format!("longer than {MAX_EXPRESSION_BYTES} bytes")));
    }
    let tokens = tokenize(entry).map_err(|e| match e {
        FilterError::Syntax { why, .. } => bad(why),
        other => other,
    })?;
    let (ident, ascending) = match tokens.as_slice() {
        [Token::Ident(ident)] => (ident, true),
        [Token::Ident(ident), Token::Ident(dir)] => match dir.to_ascii_uppercase().as_str() {
            "ASC" => (ident, true),
            "DESC" => (ident, false),
            _ => return Err(bad(format!("direction {dir:?}: expected ASC or DESC"))),
        },
        _ => {
            return Err(bad(
                "expected <entity> [ASC|DESC], e.g. metrics.score DESC".into()
            ));
        }
    };
    Ok(OrderKey {
        entity: entity(ident).map_err(bad)?,
        ascending,
    })
}

/// Compares two records by one key. Records without the entity sort last whatever the
/// direction (as MLflow does for missing metrics).
pub fn compare(a: &impl Searchable, b: &impl Searchable, key: &OrderKey) -> Ordering {
    let (fa, fb) = (a.field(&key.entity), b.field(&key.entity));
    let ord = match (&fa, &fb) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(Field::Num(x)), Some(Field::Num(y))) => x.total_cmp(y),
        (Some(Field::Str(x)), Some(Field::Str(y))) => x.cmp(y),
        (Some(Field::Num(_)), Some(Field::Str(_))) => Ordering::Less,
        (Some(Field::Str(_)), Some(Field::Num(_))) => Ordering::Greater,
    };
    if key.ascending { ord } else { ord.reverse() }
}

/// Encodes a page token for the next page starting at `offset`.
pub fn page_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// Decodes a page token; an empty token is offset 0.
pub fn parse_page_token(token: &str) -> Result<usize, FilterError> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || FilterError::PageToken {
        token: token.chars().take(64).collect(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value["offset"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)
}

/// One page of `items` (already filtered and ordered) from a page token, with the token of the
/// next page when more remain.
pub fn paginate<T>(
    items: Vec<T>,
    token: &str,
    max_results: usize,
) -> Result<(Vec<T>, Option<String>), FilterError> {
    let offset = parse_page_token(token)?;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(max_results).collect();
    let end = offset.saturating_add(page.len());
    let next = (end < total && !page.is_empty()).then(|| page_token(end));
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Rec {
        status: &'static str,
        start: f64,
        params: BTreeMap<&'static str, &'static str>,
        tags: BTreeMap<&'static str, &'static str>,
        metrics: BTreeMap<&'static str, f64>,
    }

    impl Searchable for Rec {
        fn field(&self, entity: &Entity) -> Option<Field<'_>> {
            match entity {
                Entity::Attribute(Attr::Status) => Some(Field::Str(self.status)),
                Entity::Attribute(Attr::StartTime) => Some(Field::Num(self.start)),
                Entity::Attribute(_) => None,
                Entity::Param(k) => self.params.get(k.as_str()).map(|v| Field::Str(v)),
                Entity::Tag(k) => self.tags.get(k.as_str()).map(|v| Field::Str(v)),
                Entity::Metric(k) => self.metrics.get(k.as_str()).map(|v| Field::Num(*v)),
            }
        }
    }

    fn rec(status: &'static str, start: f64, x: &'static str, score: Option<f64>) -> Rec {
        let mut r = Rec {
            status,
            start,
            ..Rec::default()
        };
        r.params.insert("x", x);
        r.tags.insert("mlflow.runName", "clever-cat");
        if let Some(s) = score {
            r.metrics.insert("score", s);
        }
        r
    }

    #[test]
    fn parses_the_documented_clauses() {
        let clauses = parse_filter(
            "attributes.status = 'FINISHED' and params.x = '1' AND metrics.score > 0.4 \
             AND tags.`mlflow.runName` LIKE 'clever%' AND tags.\"k v\" != \"w\"",
        )
        .expect("parses");
        assert_eq!(clauses.len(), 5);
        assert_eq!(
            clauses[0],
            Clause {
                entity: Entity::Attribute(Attr::Status),
                op: Op::Eq,
                value: Literal::Str("FINISHED".into()),
            }
        );
        assert_eq!(clauses[2].entity, Entity::Metric("score".into()));
        assert_eq!(clauses[2].op, Op::Gt);
        assert_eq!(clauses[2].value, Literal::Num(0.4));
        assert_eq!(clauses[3].entity, Entity::Tag("mlflow.runName".into()));
        assert_eq!(clauses[3].op, Op::Like);
        assert_eq!(clauses[4].entity, Entity::Tag("k v".into()));
        assert_eq!(clauses[4].value, Literal::Str("w".into()));
        assert_eq!(parse_filter("  ").expect("blank"), vec![]);
        // A bare attribute name, and a time compared with a number.
        let c = parse_filter("start_time >= 1700000000000").expect("parses");
        assert_eq!(c[0].entity, Entity::Attribute(Attr::StartTime));
        assert_eq!(c[0].value, Literal::Num(1.7e12));
    }

    #[test]
    fn refuses_what_it_does_not_serve_with_a_reason() {
        for (filter, needle) in [
            ("metrics.a > 1 OR metrics.b > 1", "OR is not supported"),
            ("(metrics.a > 1)", "parentheses"),
            ("params.x > '1'", "is text"),
            ("params.x = 1", "quoted string"),
            ("metrics.score LIKE '1%'", "is a number"),
            ("metrics.score = 'high'", "is a number"),
            ("bogus.x = '1'", "unknown entity type"),
            ("attributes.colour = 'red'", "unknown attribute"),
            ("metrics.a > 1 metrics.b > 2", "joined by AND"),
            ("metrics.a > 1 AND", "joined by AND"),
            ("params.x = 'open", "unterminated"),
            ("params.x IN ('1')", "IN is not supported"),
            ("metrics. > 1", "no key"),
        ] {
            let err = parse_filter(filter).expect_err(filter);
            assert!(err.to_string().contains(needle), "{filter}: {err}");
            assert_eq!(err.metric_label(), "filter_syntax");
        }
    }

    #[test]
    fn matching_follows_mlflow() {
        let a = rec("FINISHED", 10.0, "1", Some(0.5));
        let b = rec("RUNNING", 20.0, "2", Some(0.3));
        let c = rec("FINISHED", 30.0, "1", None);
        let pick = |f: &str| -> Vec<f64> {
            let clauses = parse_filter(f).expect(f);
            [&a, &b, &c]
                .into_iter()
                .filter(|r| matches(*r, &clauses))
                .map(|r| r.start)
                .collect()
        };
        assert_eq!(pick("attributes.status = 'FINISHED'"), [10.0, 30.0]);
        assert_eq!(pick("params.x = '1' AND metrics.score > 0.4"), [10.0]);
        // A run without the metric never matches a metric clause, even `!=`.
        assert_eq!(pick("metrics.score != 0.5"), [20.0]);
        assert_eq!(pick("metrics.score <= 0.5"), [10.0, 20.0]);
        assert_eq!(
            pick("tags.mlflow.runName ILIKE 'CLEVER-%'"),
            [10.0, 20.0, 30.0]
        );
        assert_eq!(pick("status != 'FINISHED'"), [20.0]);
        assert_eq!(pick("params.missing = '1'"), Vec::<f64>::new());
        // The registry's rule: an absent tag is "not equal".
        let prompt = parse_filter("tags.`mlflow.prompt.is_prompt` != 'true'").expect("parses");
        assert!(!matches(&a, &prompt));
        assert!(matches_registry(&a, &prompt));
        let mut tagged = rec("FINISHED", 40.0, "1", None);
        tagged.tags.insert("mlflow.prompt.is_prompt", "true");
        assert!(!matches_registry(&tagged, &prompt));
    }

    #[test]
    fn like_patterns() {
        assert!(like("a%c", "abbbc", false));
        assert!(like("a_c", "abc", false));
        assert!(!like("a_c", "abbc", false));
        assert!(like("%", "", false));
        assert!(!like("A%", "abc", false));
        assert!(like("A%", "abc", true));
        assert!(like("%b%b%", "abab", false));
        assert!(!like("%x%", "abab", false));
    }

    #[test]
    fn order_by_and_missing_values_last() {
        let key = parse_order_by("metrics.score DESC").expect("parses");
        assert_eq!(
            key,
            OrderKey {
                entity: Entity::Metric("score".into()),
                ascending: false
            }
        );
        assert!(
            parse_order_by("attributes.start_time")
                .expect("asc")
                .ascending
        );
        assert!(
            parse_order_by("metrics.score sideways")
                .expect_err("bad dir")
                .to_string()
                .contains("ASC or DESC")
        );
        assert_eq!(
            parse_order_by("a b c").expect_err("junk").metric_label(),
            "order_by"
        );
        let a = rec("FINISHED", 1.0, "1", Some(0.5));
        let b = rec("FINISHED", 2.0, "1", Some(0.9));
        let c = rec("FINISHED", 3.0, "1", None);
        let mut runs = [&c, &a, &b];
        runs.sort_by(|x, y| compare(*x, *y, &key));
        assert_eq!(runs.map(|r| r.start), [2.0, 1.0, 3.0]);
        let asc = OrderKey {
            ascending: true,
            ..key
        };
        runs.sort_by(|x, y| compare(*x, *y, &asc));
        assert_eq!(runs.map(|r| r.start), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn pages_walk_the_whole_list_once() {
        let items: Vec<u32> = (0..7).collect();
        let (first, next) = paginate(items.clone(), "", 3).expect("page 1");
        assert_eq!(first, [0, 1, 2]);
        let next = next.expect("more");
        let (second, next) = paginate(items.clone(), &next, 3).expect("page 2");
        assert_eq!(second, [3, 4, 5]);
        let (third, next) = paginate(items.clone(), &next.expect("more"), 3).expect("page 3");
        assert_eq!((third, next), (vec![6], None));
        let (exact, next) = paginate(vec![1, 2, 3], "", 3).expect("exact");
        assert_eq!((exact.len(), next), (3, None));
        for bad in ["%%%", "bm90IGpzb24=", "eyJvZmZzZXQiOiAtMX0="] {
            assert_eq!(
                paginate(items.clone(), bad, 3)
                    .expect_err(bad)
                    .metric_label(),
                "page_token"
            );
        }
    }
}
