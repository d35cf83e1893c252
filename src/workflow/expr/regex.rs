//! A small RE2-syntax regular expression engine (Pike VM): linear time in the input, no
//! backtracking, so a user's pattern cannot hang the controller.
//!
//! Supported: literals and escapes (`\d \D \w \W \s \S \b \B \A \z \. \xHH \n \t`), `.`, classes
//! (`[a-z]`, `[^...]`, `[[:alpha:]]`), `^ $`, groups (`(...)`, `(?:...)`, `(?P<n>...)`), flags
//! `(?i) (?s) (?m)` and `(?i:...)`, alternation, `* + ? {n} {n,} {n,m}` and their lazy forms.
//! Not supported (an error, never a wrong answer): Unicode classes (`\pL`), `\Q...\E`.
//! Matching follows Go's `regexp`: unanchored search, leftmost-first.

/// Caps the compiled program, so `(a{100}){100}` cannot allocate without bound.
const MAX_INSTS: usize = 20_000;
/// Caps nesting while parsing, so deep parentheses cannot overflow the stack.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Look {
    TextStart,
    TextEnd,
    LineStart,
    LineEnd,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Look(Look),
    Group(Box<Node>, Option<usize>),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

#[derive(Debug, Clone)]
enum Inst {
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Split(usize, usize),
    Jmp(usize),
    Save(usize),
    Assert(Look),
    Match,
}

/// A compiled regular expression.
#[derive(Debug, Clone)]
pub(crate) struct Regex {
    prog: Vec<Inst>,
    groups: usize,
}

#[derive(Clone, Copy)]
struct Flags {
    icase: bool,
    dotnl: bool,
    multiline: bool,
    ungreedy: bool,
}

/// An escape is a character or a (ranges, negated) class.
type Escape = Result<char, (Vec<(char, char)>, bool)>;

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    groups: usize,
    depth: usize,
}

fn perl_class(c: char) -> Option<(Vec<(char, char)>, bool)> {
    let digit = vec![('0', '9')];
    let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
    let space = vec![('\t', '\n'), ('\u{c}', '\r'), (' ', ' ')];
    match c {
        'd' => Some((digit, false)),
        'D' => Some((digit, true)),
        'w' => Some((word, false)),
        'W' => Some((word, true)),
        's' => Some((space, false)),
        'S' => Some((space, true)),
        _ => None,
    }
}

fn posix_class(name: &str) -> Option<Vec<(char, char)>> {
    Some(match name {
        "alpha" => vec![('A', 'Z'), ('a', 'z')],
        "digit" => vec![('0', '9')],
        "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
        "space" => vec![('\t', '\r'), (' ', ' ')],
        "upper" => vec![('A', 'Z')],
        "lower" => vec![('a', 'z')],
        "word" => vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
        "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "blank" => vec![('\t', '\t'), (' ', ' ')],
        "cntrl" => vec![('\0', '\u{1f}'), ('\u{7f}', '\u{7f}')],
        "print" => vec![(' ', '~')],
        "graph" => vec![('!', '~')],
        "ascii" => vec![('\0', '\u{7f}')],
        _ => return None,
    })
}

fn fold_case(ranges: &mut Vec<(char, char)>) {
    let mut extra = Vec::new();
    for &(lo, hi) in ranges.iter() {
        // Case folding is applied to ASCII letters and, for single characters, to any letter.
        if lo == hi {
            for c in lo.to_lowercase().chain(lo.to_uppercase()) {
                extra.push((c, c));
            }
            continue;
        }
        let (a, b) = (lo.max('A'), hi.min('Z'));
        if a <= b {
            extra.push((a.to_ascii_lowercase(), b.to_ascii_lowercase()));
        }
        let (a, b) = (lo.max('a'), hi.min('z'));
        if a <= b {
            extra.push((a.to_ascii_uppercase(), b.to_ascii_uppercase()));
        }
    }
    ranges.extend(extra);
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn err<T>(&self, msg: &str) -> Result<T, String> {
        Err(format!("{msg} at position {}", self.pos))
    }

    fn parse_alt(&mut self, flags: &mut Flags) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("regex nested too deeply");
        }
        let mut alts = vec![self.parse_concat(flags)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.parse_concat(flags)?);
        }
        self.depth -= 1;
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    fn parse_concat(&mut self, flags: &mut Flags) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.parse_atom(flags)?;
            let atom = self.parse_quant(atom, flags)?;
            items.push(atom);
        }
        Ok(Node::Concat(items))
    }

    fn parse_number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return None;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    fn parse_quant(&mut self, atom: Node, flags: &Flags) -> Result<Node, String> {
        let mut atom = atom;
        loop {
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    (0, None)
                }
                Some('+') => {
                    self.pos += 1;
                    (1, None)
                }
                Some('?') => {
                    self.pos += 1;
                    (0, Some(1))
                }
                Some('{') => {
                    let save = self.pos;
                    self.pos += 1;
                    let Some(min) = self.parse_number() else {
                        // Not a repetition: RE2 treats the brace as a literal.
                        self.pos = save;
                        return Ok(atom);
                    };
                    let max = if self.peek() == Some(',') {
                        self.pos += 1;
                        if self.peek() == Some('}') {
                            None
                        } else {
                            match self.parse_number() {
                                Some(m) => Some(m),
                                None => {
                                    self.pos = save;
                                    return Ok(atom);
                                }
                            }
                        }
                    } else {
                        Some(min)
                    };
                    if self.peek() != Some('}') {
                        self.pos = save;
                        return Ok(atom);
                    }
                    self.pos += 1;
                    if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
                        return self.err("invalid repeat count");
                    }
                    (min, max)
                }
                _ => return Ok(atom),
            };
            if matches!(atom, Node::Look(_) | Node::Empty) {
                return self.err("missing argument to repetition operator");
            }
            let mut greedy = !flags.ungreedy;
            if self.peek() == Some('?') {
                self.pos += 1;
                greedy = !greedy;
            }
            atom = Node::Repeat {
                node: Box::new(atom),
                min,
                max,
                greedy,
            };
            if matches!(self.peek(), Some('*' | '+' | '?')) {
                return self.err("invalid nested repetition operator");
            }
        }
    }

    fn escape(&mut self, in_class: bool) -> Result<Escape, String> {
        let Some(c) = self.peek() else {
            return self.err("trailing backslash");
        };
        self.pos += 1;
        if let Some(class) = perl_class(c) {
            return Ok(Err(class));
        }
        Ok(Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'a' => '\u{7}',
            '0' => '\0',
            'x' => {
                let hex: String = if self.peek() == Some('{') {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c != '}') {
                        self.pos += 1;
                    }
                    let h = self.chars[start..self.pos].iter().collect();
                    self.pos += 1;
                    h
                } else {
                    let end = (self.pos + 2).min(self.chars.len());
                    let h = self.chars[self.pos..end].iter().collect();
                    self.pos = end;
                    h
                };
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => c,
                    None => return self.err("invalid escape \\x"),
                }
            }
            c if !c.is_alphanumeric() => c,
            'b' if in_class => return self.err("invalid escape \\b in class"),
            _ => return self.err(&format!("unsupported escape \\{c}")),
        }))
    }

    fn parse_class(&mut self, flags: &Flags) -> Result<Node, String> {
        // The opening '[' is consumed.
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return self.err("missing closing ]");
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' && self.chars.get(self.pos + 1) == Some(&':') {
                let rest: String = self.chars[self.pos + 2..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    let (neg, name) = match name.strip_prefix('^') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    let Some(class) = posix_class(name) else {
                        return self.err("invalid character class range");
                    };
                    if neg {
                        ranges.extend(negate(&class));
                    } else {
                        ranges.extend(class);
                    }
                    self.pos += 2 + name.chars().count() + usize::from(neg) + 2;
                    continue;
                }
            }
            self.pos += 1;
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Ok(ch) => ch,
                    Err((class, neg)) => {
                        if neg {
                            ranges.extend(negate(&class));
                        } else {
                            ranges.extend(class);
                        }
                        continue;
                    }
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(h) = self.peek() else {
                    return self.err("missing closing ]");
                };
                self.pos += 1;
                let hi = if h == '\\' {
                    match self.escape(true)? {
                        Ok(ch) => ch,
                        Err(_) => return self.err("invalid character class range"),
                    }
                } else {
                    h
                };
                if hi < lo {
                    return self.err("invalid character class range");
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        if flags.icase {
            fold_case(&mut ranges);
        }
        Ok(Node::Class { ranges, negated })
    }

    fn parse_atom(&mut self, flags: &mut Flags) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Ok(Node::Empty);
        };
        self.pos += 1;
        let lit = |c: char, flags: &Flags| {
            let mut ranges = vec![(c, c)];
            if flags.icase {
                fold_case(&mut ranges);
            }
            Node::Class {
                ranges,
                negated: false,
            }
        };
        Ok(match c {
            '.' => {
                if flags.dotnl {
                    Node::Class {
                        ranges: vec![],
                        negated: true,
                    }
                } else {
                    Node::Class {
                        ranges: vec![('\n', '\n')],
                        negated: true,
                    }
                }
            }
            '^' => Node::Look(if flags.multiline {
                Look::LineStart
            } else {
                Look::TextStart
            }),
            '$' => Node::Look(if flags.multiline {
                Look::LineEnd
            } else {
                Look::TextEnd
            }),
            '[' => self.parse_class(flags)?,
            '(' => {
                let mut inner_flags = *flags;
                let mut capture = true;
                if self.peek() == Some('?') {
                    self.pos += 1;
                    capture = false;
                    match self.peek() {
                        Some('P') | Some('<') => {
                            if self.peek() == Some('P') {
                                self.pos += 1;
                            }
                            if self.peek() != Some('<') {
                                return self.err("invalid named capture");
                            }
                            while self.peek().is_some_and(|c| c != '>') {
                                self.pos += 1;
                            }
                            if self.peek() != Some('>') {
                                return self.err("invalid named capture");
                            }
                            self.pos += 1;
                            capture = true;
                        }
                        _ => {
                            // Flags: (?flags) applies to the rest of the group, (?flags:re) to re.
                            let mut on = true;
                            let mut target = *flags;
                            loop {
                                match self.peek() {
                                    Some('i') => target.icase = on,
                                    Some('s') => target.dotnl = on,
                                    Some('m') => target.multiline = on,
                                    Some('U') => target.ungreedy = on,
                                    Some('-') => on = false,
                                    Some(':') => {
                                        self.pos += 1;
                                        inner_flags = target;
                                        break;
                                    }
                                    Some(')') => {
                                        self.pos += 1;
                                        *flags = target;
                                        return Ok(Node::Empty);
                                    }
                                    _ => return self.err("invalid or unsupported Perl syntax"),
                                }
                                self.pos += 1;
                            }
                        }
                    }
                }
                let index = if capture {
                    self.groups += 1;
                    Some(self.groups)
                } else {
                    None
                };
                let inner = self.parse_alt(&mut inner_flags)?;
                if self.peek() != Some(')') {
                    return self.err("missing closing )");
                }
                self.pos += 1;
                Node::Group(Box::new(inner), index)
            }
            ')' => return self.err("unexpected )"),
            '*' | '+' | '?' => return self.err("missing argument to repetition operator"),
            '\\' => match self.peek() {
                Some('b') => {
                    self.pos += 1;
                    Node::Look(Look::WordBoundary)
                }
                Some('B') => {
                    self.pos += 1;
                    Node::Look(Look::NotWordBoundary)
                }
                Some('A') => {
                    self.pos += 1;
                    Node::Look(Look::TextStart)
                }
                Some('z') => {
                    self.pos += 1;
                    Node::Look(Look::TextEnd)
                }
                _ => match self.escape(false)? {
                    Ok(ch) => lit(ch, flags),
                    Err((ranges, negated)) => Node::Class { ranges, negated },
                },
            },
            c => lit(c, flags),
        })
    }
}

fn char_after(c: char) -> Option<char> {
    match c as u32 {
        0xD7FF => char::from_u32(0xE000),
        n => char::from_u32(n + 1),
    }
}

fn char_before(c: char) -> Option<char> {
    match c as u32 {
        0 => None,
        0xE000 => char::from_u32(0xD7FF),
        n => char::from_u32(n - 1),
    }
}

fn negate(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut sorted = ranges.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    let mut next = Some('\0');
    for (lo, hi) in sorted {
        let Some(n) = next else {
            break;
        };
        if lo > n
            && let Some(before) = char_before(lo)
        {
            out.push((n, before));
        }
        if hi >= n {
            next = char_after(hi);
        }
    }
    if let Some(n) = next {
        out.push((n, char::MAX));
    }
    out
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, i: Inst) -> Result<usize, String> {
        if self.prog.len() >= MAX_INSTS {
            return Err("regex too large".into());
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }

    fn compile(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Empty => {}
            Node::Class { ranges, negated } => {
                self.push(Inst::Class {
                    ranges: ranges.clone(),
                    negated: *negated,
                })?;
            }
            Node::Look(l) => {
                self.push(Inst::Assert(*l))?;
            }
            Node::Group(inner, idx) => {
                if let Some(i) = idx {
                    self.push(Inst::Save(2 * i))?;
                }
                self.compile(inner)?;
                if let Some(i) = idx {
                    self.push(Inst::Save(2 * i + 1))?;
                }
            }
            Node::Concat(items) => {
                for i in items {
                    self.compile(i)?;
                }
            }
            Node::Alt(alts) => {
                let mut jumps = Vec::new();
                for (k, a) in alts.iter().enumerate() {
                    if k + 1 < alts.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.compile(a)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.compile(a)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat {
                node,
                min,
                max,
                greedy,
            } => {
                for _ in 0..*min {
                    self.compile(node)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.compile(node)?;
                        self.push(Inst::Jmp(split))?;
                        let end = self.prog.len();
                        self.prog[split] = if *greedy {
                            Inst::Split(split + 1, end)
                        } else {
                            Inst::Split(end, split + 1)
                        };
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.compile(node)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.prog[s] = if *greedy {
                                Inst::Split(s + 1, end)
                            } else {
                                Inst::Split(end, s + 1)
                            };
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Regex {
    /// Compiles `pattern`; the error says what is wrong and where.
    pub(crate) fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser {
            chars: &chars,
            pos: 0,
            groups: 0,
            depth: 0,
        };
        let mut flags = Flags {
            icase: false,
            dotnl: false,
            multiline: false,
            ungreedy: false,
        };
        let node = p.parse_alt(&mut flags)?;
        if p.pos < chars.len() {
            return p.err("unexpected )");
        }
        let mut c = Compiler { prog: Vec::new() };
        c.push(Inst::Save(0))?;
        c.compile(&node)?;
        c.push(Inst::Save(1))?;
        c.push(Inst::Match)?;
        Ok(Regex {
            prog: c.prog,
            groups: p.groups,
        })
    }

    /// Whether the pattern matches anywhere in `s` (Go's `MatchString`).
    pub(crate) fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        self.find_at(&chars, 0).is_some()
    }

    fn look(l: Look, chars: &[char], i: usize) -> bool {
        let prev = if i == 0 {
            None
        } else {
            chars.get(i - 1).copied()
        };
        let next = chars.get(i).copied();
        match l {
            Look::TextStart => i == 0,
            Look::TextEnd => i == chars.len(),
            Look::LineStart => i == 0 || prev == Some('\n'),
            Look::LineEnd => i == chars.len() || next == Some('\n'),
            Look::WordBoundary => is_word(prev) != is_word(next),
            Look::NotWordBoundary => is_word(prev) == is_word(next),
        }
    }

    fn add_thread(
        &self,
        list: &mut Vec<(usize, Vec<Option<usize>>)>,
        seen: &mut [bool],
        pc: usize,
        caps: Vec<Option<usize>>,
        chars: &[char],
        i: usize,
    ) {
        // An explicit stack keeps deep programs off the call stack.
        let mut stack = vec![(pc, caps)];
        while let Some((pc, mut caps)) = stack.pop() {
            if pc >= self.prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match &self.prog[pc] {
                Inst::Jmp(t) => stack.push((*t, caps)),
                Inst::Split(a, b) => {
                    // Push the lower-priority branch first so the preferred one runs first.
                    stack.push((*b, caps.clone()));
                    stack.push((*a, caps));
                }
                Inst::Save(slot) => {
                    if let Some(s) = caps.get_mut(*slot) {
                        *s = Some(i);
                    }
                    stack.push((pc + 1, caps));
                }
                Inst::Assert(l) => {
                    if Self::look(*l, chars, i) {
                        stack.push((pc + 1, caps));
                    }
                }
                Inst::Class { .. } | Inst::Match => list.push((pc, caps)),
            }
        }
    }

    /// Leftmost-first match starting the search at `start`: capture slots (char indices).
    pub(crate) fn find_at(&self, chars: &[char], start: usize) -> Option<Vec<Option<usize>>> {
        let slots = 2 * (self.groups + 1);
        let mut clist: Vec<(usize, Vec<Option<usize>>)> = Vec::new();
        let mut matched: Option<Vec<Option<usize>>> = None;
        let mut i = start;
        loop {
            if matched.is_none() {
                let mut seen = vec![false; self.prog.len()];
                for (pc, _) in &clist {
                    if let Some(s) = seen.get_mut(*pc) {
                        *s = true;
                    }
                }
                let mut extra = Vec::new();
                self.add_thread(&mut extra, &mut seen, 0, vec![None; slots], chars, i);
                clist.extend(extra);
            }
            if clist.is_empty() {
                // No live thread: a later start can still match, unless one already did.
                if matched.is_some() || i >= chars.len() {
                    break;
                }
                i += 1;
                continue;
            }
            let mut nlist = Vec::new();
            let mut seen = vec![false; self.prog.len()];
            let c = chars.get(i).copied();
            for (pc, caps) in clist {
                match &self.prog[pc] {
                    Inst::Match => {
                        matched = Some(caps);
                        // Lower-priority threads cannot win over this match.
                        break;
                    }
                    Inst::Class { ranges, negated } => {
                        if let Some(c) = c {
                            let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                            if inside != *negated {
                                self.add_thread(&mut nlist, &mut seen, pc + 1, caps, chars, i + 1);
                            }
                        }
                    }
                    _ => {}
                }
            }
            clist = nlist;
            if i >= chars.len() {
                break;
            }
            i += 1;
        }
        matched
    }

    /// Every non-overlapping match, as capture slots.
    pub(crate) fn find_all(&self, chars: &[char], limit: usize) -> Vec<Vec<Option<usize>>> {
        let mut out = Vec::new();
        let mut at = 0;
        let mut prev_end: Option<usize> = None;
        while at <= chars.len() && out.len() < limit {
            let Some(caps) = self.find_at(chars, at) else {
                break;
            };
            let (Some(s), Some(e)) = (caps[0], caps[1]) else {
                break;
            };
            if e == s && prev_end == Some(e) {
                // An empty match right after the previous match is skipped, as Go does.
                at = e + 1;
                continue;
            }
            prev_end = Some(e);
            at = if e == s { e + 1 } else { e };
            out.push(caps);
        }
        out
    }

    /// Go's `ReplaceAllString`: `$1`, `${1}` and `$0` expand to groups.
    pub(crate) fn replace_all(&self, s: &str, repl: &str, literal: bool) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::new();
        let mut last = 0;
        for caps in self.find_all(&chars, usize::MAX) {
            let (Some(st), Some(en)) = (caps[0], caps[1]) else {
                continue;
            };
            out.extend(&chars[last..st]);
            if literal {
                out.push_str(repl);
            } else {
                expand(&mut out, repl, &caps, &chars);
            }
            last = en;
        }
        out.extend(&chars[last..]);
        out
    }
}

fn expand(out: &mut String, repl: &str, caps: &[Option<usize>], chars: &[char]) {
    let r: Vec<char> = repl.chars().collect();
    let mut i = 0;
    while i < r.len() {
        if r[i] != '$' || i + 1 >= r.len() {
            out.push(r[i]);
            i += 1;
            continue;
        }
        if r[i + 1] == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        let (name, next) = if r[i + 1] == '{' {
            match r[i + 2..].iter().position(|&c| c == '}') {
                Some(p) => (r[i + 2..i + 2 + p].iter().collect::<String>(), i + 3 + p),
                None => {
                    out.push('$');
                    i += 1;
                    continue;
                }
            }
        } else {
            let mut j = i + 1;
            while j < r.len() && (r[j].is_alphanumeric() || r[j] == '_') {
                j += 1;
            }
            (r[i + 1..j].iter().collect::<String>(), j)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        // Named groups are not tracked; a number selects a group, anything else is empty.
        if let Ok(n) = name.parse::<usize>()
            && let (Some(Some(s)), Some(Some(e))) = (caps.get(2 * n), caps.get(2 * n + 1))
        {
            out.extend(&chars[*s..*e]);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "xabcx", true),
            ("^abc$", "abc", true),
            ("^abc$", "abcd", false),
            ("a.c", "a\nc", false),
            ("(?s)a.c", "a\nc", true),
            ("[0-9]+", "abc123", true),
            ("^[0-9]+$", "12a", false),
            (r"^\d{3}-\d{2}$", "123-45", true),
            (r"^\d{3}-\d{2}$", "12-345", false),
            ("(?i)hello", "HeLLo world", true),
            ("^(foo|bar)+$", "foobarfoo", true),
            ("^(foo|bar)+$", "foobaz", false),
            (r"\bword\b", "a word here", true),
            (r"\bword\b", "swordfish", false),
            ("^[^a-z]*$", "ABC123", true),
            ("^[[:alpha:]]+$", "abcXYZ", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{2,}$", "aaaa", true),
            ("colou?r", "color", true),
            ("^$", "", true),
            (r"^v\d+\.\d+", "v1.20.3", true),
            ("(?m)^b$", "a\nb\nc", true),
            ("^b$", "a\nb\nc", false),
            ("a|", "zzz", true),
            (r"^\w+@\w+\.com$", "me@example.com", true),
            ("x*", "", true),
            (
                "^(a*)*$",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
                false,
            ),
        ];
        for (pat, s, want) in cases {
            let re = Regex::new(pat).unwrap_or_else(|e| panic!("{pat}: {e}"));
            assert_eq!(re.is_match(s), *want, "{pat} on {s:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for pat in [
            "(", ")", "[a-", "*a", "a**", r"\p{L}", "a{2,1}", "(?x)", r"\", "[z-a]",
        ] {
            assert!(Regex::new(pat).is_err(), "{pat}");
        }
    }

    #[test]
    fn leftmost_first_and_replace() {
        let re = Regex::new("a+?").unwrap();
        let chars: Vec<char> = "baaa".chars().collect();
        assert_eq!(re.find_at(&chars, 0).unwrap()[..2], [Some(1), Some(2)]);
        let re = Regex::new("(a|ab)(c|bcd)").unwrap();
        let chars: Vec<char> = "abcd".chars().collect();
        assert_eq!(re.find_at(&chars, 0).unwrap()[..2], [Some(0), Some(4)]);
        let re = Regex::new(r"(\w+)@(\w+)").unwrap();
        assert_eq!(
            re.replace_all("a@b c@d", "$2 at ${1}", false),
            "b at a d at c"
        );
        let re = Regex::new("x*").unwrap();
        assert_eq!(re.replace_all("abc", "-", false), "-a-b-c-");
    }
}
