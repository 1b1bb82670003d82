//! `.dockerignore` pattern matching with `github.com/moby/patternmatcher`
//! semantics: `*` and `?` stop at `/`, `**` spans directories, `[...]`
//! classes, `\` escapes, `!` exceptions where the last matching pattern
//! wins, and a pattern that matches a directory also matches everything
//! below it.
//!
//! Paths and patterns are `/`-separated and relative to the synced root.

use crate::error::{Error, Result};

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No wildcards: the path equals the pattern.
    Exact,
    /// `prefix/**` (or `prefix**`): the path starts with the prefix.
    Prefix(String),
    /// `**/suffix`: the path ends with the suffix (or is it, without the
    /// leading `/`).
    Suffix(String),
    /// Anything else, matched token by token.
    Glob(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    AnyOne,
    /// `[...]`.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    /// `**/` inside a pattern: nothing, or anything ending with `/`.
    AnyDirs,
    /// `**` at the end of a pattern: anything.
    AnyTail,
}

impl Pattern {
    /// The pattern after cleaning, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The pattern without a trailing `/**` or `/*` (fsutil's
    /// `patternWithoutTrailingGlob`), used to decide whether a directory
    /// can be skipped.
    pub fn without_trailing_glob(&self) -> &str {
        let p = self.cleaned.strip_suffix("/**").unwrap_or(&self.cleaned);
        p.strip_suffix("/*").unwrap_or(p)
    }

    /// Whether `path` matches this pattern itself (no parent matching).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Glob(tokens) => {
                let chars: Vec<char> = path.chars().collect();
                glob_match(tokens, &chars)
            }
        }
    }

    fn parse(raw: &str) -> Result<Option<Self>> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut p = clean_path(trimmed);
        let mut exclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            if rest.is_empty() {
                return Err(Error::Pattern {
                    pattern: raw.to_owned(),
                    reason: "illegal exclusion pattern \"!\"",
                });
            }
            exclusion = true;
            p = rest.to_owned();
        }
        let kind = compile(&p).map_err(|reason| Error::Pattern {
            pattern: raw.to_owned(),
            reason,
        })?;
        Ok(Some(Self {
            cleaned: p,
            exclusion,
            kind,
        }))
    }
}

/// Per-pattern results for a directory, handed to its children
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles `patterns` (blank ones are skipped).
    ///
    /// # Errors
    /// [`Error::Pattern`] for a lone `!`, an unterminated `[` class or a
    /// trailing `\`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        let mut pm = Self::default();
        for raw in patterns {
            if let Some(p) = Pattern::parse(raw.as_ref())? {
                pm.exclusions |= p.exclusion;
                pm.patterns.push(p);
            }
        }
        Ok(pm)
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether the matcher has no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (or one of its parent directories) matches, checking
    /// every parent itself (patternmatcher's `MatchesOrParentMatches`).
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        self.matches_using_parent_results(path, &MatchInfo::default())
            .0
    }

    /// Whether `path` matches, reusing its parent directory's results
    /// (patternmatcher's `MatchesUsingParentResults`). With an empty
    /// `parent` the parents are checked one by one.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let have_parent = parent.parent_matched.len() == self.patterns.len();
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = have_parent && parent.parent_matched[i];
            if !m {
                // An include can't change a match, an exclusion can't undo a
                // non-match: skip the work.
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(path);
                if !m && !have_parent {
                    m = parent_dirs(path).any(|dir| pattern.matches(dir));
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }
}

/// `a`, `a/b` for `a/b/c`.
fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Turns a cleaned pattern into a matcher, classifying it like
/// patternmatcher's `compile` (exact, prefix, suffix or general).
fn compile(pattern: &str) -> std::result::Result<Kind, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = Detected::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == Detected::Exact {
                        kind = Detected::Prefix;
                    } else {
                        kind = Detected::Glob;
                    }
                    tokens.push(Token::AnyTail);
                } else {
                    kind = Detected::Glob;
                    tokens.push(Token::AnyDirs);
                }
                if first {
                    kind = Detected::Suffix;
                }
            }
            '*' => {
                kind = Detected::Glob;
                tokens.push(Token::Star);
            }
            '?' => {
                kind = Detected::Glob;
                tokens.push(Token::AnyOne);
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    kind = Detected::Glob;
                    tokens.push(Token::Char(next));
                }
                None => return Err("trailing backslash"),
            },
            '[' => {
                kind = Detected::Glob;
                let (token, next) = parse_class(&chars, i)?;
                tokens.push(token);
                i = next;
            }
            other => tokens.push(Token::Char(other)),
        }
        first = false;
    }
    Ok(match kind {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_owned()),
        Detected::Glob => Kind::Glob(tokens),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Glob,
}

/// Parses a `[...]` class starting after the `[`; returns the token and the
/// index after the closing `]`.
fn parse_class(chars: &[char], mut i: usize) -> std::result::Result<(Token, usize), &'static str> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated character class");
        };
        if c == ']' && !first {
            return Ok((Token::Class { negated, items }, i + 1));
        }
        first = false;
        let lo = read_class_char(chars, &mut i)?;
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            read_class_char(chars, &mut i)?
        } else {
            lo
        };
        if hi < lo {
            return Err("invalid character class range");
        }
        items.push((lo, hi));
    }
}

fn read_class_char(chars: &[char], i: &mut usize) -> std::result::Result<char, &'static str> {
    let c = chars
        .get(*i)
        .copied()
        .ok_or("unterminated character class")?;
    *i += 1;
    if c == '\\' {
        let escaped = chars.get(*i).copied().ok_or("trailing backslash")?;
        *i += 1;
        return Ok(escaped);
    }
    Ok(c)
}

fn class_matches(negated: bool, items: &[(char, char)], c: char) -> bool {
    items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != negated
}

/// Whether `tokens` match the whole of `text`. The pattern is run as an
/// automaton: after each character, the set of token positions the text
/// can have reached. Time is at most tokens × characters whatever the
/// pattern (patternmatcher uses Go's regexp, which is linear too); a
/// backtracking match took exponential time on `*a*a*a…` or `**/**/…`, so
/// a hostile `.dockerignore` could hang the file sync.
fn glob_match(tokens: &[Token], text: &[char]) -> bool {
    let mut states = States::new(tokens.len());
    let mut next = States::new(tokens.len());
    if states.enter(tokens, 0) {
        return true;
    }
    for &c in text {
        next.clear();
        for j in 0..tokens.len() {
            let reached = if states.at[j] {
                match &tokens[j] {
                    Token::Char(x) => (*x == c).then_some(j + 1),
                    Token::AnyOne => (c != '/').then_some(j + 1),
                    Token::Class { negated, items } => {
                        class_matches(*negated, items, c).then_some(j + 1)
                    }
                    // Stays on the star; entering it again also enters
                    // what follows (zero more characters).
                    Token::Star => (c != '/').then_some(j),
                    // Back at a directory boundary after a `/`; inside a
                    // name otherwise (what follows cannot start there).
                    Token::AnyDirs if c == '/' => Some(j),
                    Token::AnyDirs => {
                        next.inside[j] = true;
                        None
                    }
                    // enter() returns true on reaching it.
                    Token::AnyTail => None,
                }
            } else {
                None
            };
            if reached.is_some_and(|k| next.enter(tokens, k)) {
                return true;
            }
            if states.inside[j] {
                if c == '/' {
                    if next.enter(tokens, j) {
                        return true;
                    }
                } else {
                    next.inside[j] = true;
                }
            }
        }
        std::mem::swap(&mut states, &mut next);
    }
    states.at[tokens.len()]
}

/// Where a glob match can be: `at[j]` before token `j` (`at[len]`: at the
/// end of the pattern); `inside[j]` within the directories `**/` token `j`
/// skips, in the middle of a name.
struct States {
    at: Vec<bool>,
    inside: Vec<bool>,
}

impl States {
    fn new(len: usize) -> States {
        States {
            at: vec![false; len + 1],
            inside: vec![false; len],
        }
    }

    fn clear(&mut self) {
        self.at.fill(false);
        self.inside.fill(false);
    }

    /// Adds position `j` and the positions reachable from it without a
    /// character (past `*` and `**/`, which may match nothing). True when
    /// that reaches a trailing `**`, which matches whatever follows.
    fn enter(&mut self, tokens: &[Token], mut j: usize) -> bool {
        loop {
            if self.at[j] {
                return false;
            }
            self.at[j] = true;
            match tokens.get(j) {
                Some(Token::Star | Token::AnyDirs) => j += 1,
                Some(Token::AnyTail) => return true,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], path: &str) -> bool {
        PatternMatcher::new(patterns)
            .expect("valid patterns")
            .matches_or_parent_matches(path)
    }

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean_path("a//b/./c/"), "a/b/c");
        assert_eq!(clean_path("./a"), "a");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("a/.."), ".");
    }

    #[test]
    fn literal_and_parent_matching() {
        assert!(m(&["foo"], "foo"));
        assert!(m(&["foo"], "foo/bar/baz"));
        assert!(!m(&["foo"], "foobar"));
        assert!(!m(&["foo"], "x/foo"));
        assert!(m(&["a/b"], "a/b/c"));
    }

    #[test]
    fn single_star_stops_at_slash() {
        assert!(m(&["*.go"], "main.go"));
        assert!(!m(&["*.go"], "cmd/main.go"));
        assert!(m(&["*/*.go"], "cmd/main.go"));
        assert!(m(&["*"], "anything/below"));
        assert!(m(&["a?c"], "abc"));
        assert!(!m(&["a?c"], "a/c"));
    }

    #[test]
    fn double_star() {
        assert!(m(&["**/*.go"], "main.go"));
        assert!(m(&["**/*.go"], "a/b/main.go"));
        assert!(m(&["**/foo"], "foo"));
        assert!(m(&["**/foo"], "a/b/foo"));
        assert!(!m(&["**/foo"], "a/bfoo"));
        assert!(m(&["a/**/b"], "a/b"));
        assert!(m(&["a/**/b"], "a/x/y/b"));
        assert!(m(&["a/**"], "a/x"));
        assert!(m(&["a/**/*.txt"], "a/x/y.txt"));
        assert!(!m(&["a/**/*.txt"], "b/x/y.txt"));
        assert!(m(&["**"], "x/y"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        assert!(!m(&["*.md", "!README.md"], "README.md"));
        assert!(m(&["*.md", "!README.md"], "CHANGES.md"));
        assert!(m(&["*.md", "!README.md", "README*"], "README.md"));
        assert!(!m(&["docs", "!docs/keep"], "docs/keep"));
        assert!(!m(&["docs", "!docs/keep"], "docs/keep/inner.txt"));
        assert!(m(&["docs", "!docs/keep"], "docs/other"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m(&["[abc].txt"], "b.txt"));
        assert!(!m(&["[abc].txt"], "d.txt"));
        assert!(m(&["[a-c]x"], "bx"));
        assert!(m(&["[^a-c]x"], "dx"));
        assert!(!m(&["[^a-c]x"], "ax"));
        assert!(m(&["\\*"], "*"));
        assert!(!m(&["\\*"], "a"));
        assert!(m(&["file.(1)"], "file.(1)"));
        assert!(m(&["ünïcode*"], "ünïcode-ä"));
    }

    #[test]
    fn invalid_patterns() {
        assert!(PatternMatcher::new(&["!"]).is_err());
        assert!(PatternMatcher::new(&["[abc"]).is_err());
        assert!(PatternMatcher::new(&["abc\\"]).is_err());
        assert!(PatternMatcher::new(&["  ", ""])
            .expect("blank ok")
            .is_empty());
    }

    #[test]
    fn parent_results_agree_with_full_check() {
        let pm = PatternMatcher::new(&["a/*", "!a/keep", "**/*.log"]).expect("valid");
        let (ma, ia) = pm.matches_using_parent_results("a", &MatchInfo::default());
        let (mk, ik) = pm.matches_using_parent_results("a/keep", &ia);
        let (mx, _) = pm.matches_using_parent_results("a/keep/x.txt", &ik);
        let (ml, _) = pm.matches_using_parent_results("a/keep/x.log", &ik);
        assert!(!ma);
        assert!(!mk);
        assert_eq!(mx, pm.matches_or_parent_matches("a/keep/x.txt"));
        assert!(!mx);
        assert!(ml);
    }

    /// The backtracking matcher glob_match replaced, as the reference the
    /// automaton must agree with.
    fn backtracking(tokens: &[Token], text: &[char]) -> bool {
        let Some((token, rest)) = tokens.split_first() else {
            return text.is_empty();
        };
        match token {
            Token::Char(c) => text.first() == Some(c) && backtracking(rest, &text[1..]),
            Token::AnyOne => {
                text.first().is_some_and(|c| *c != '/') && backtracking(rest, &text[1..])
            }
            Token::Class { negated, items } => {
                text.first()
                    .is_some_and(|c| class_matches(*negated, items, *c))
                    && backtracking(rest, &text[1..])
            }
            Token::Star => {
                for n in 0..=text.len() {
                    if backtracking(rest, &text[n..]) {
                        return true;
                    }
                    if text.get(n) == Some(&'/') {
                        break;
                    }
                }
                false
            }
            Token::AnyDirs => {
                backtracking(rest, text)
                    || text
                        .iter()
                        .enumerate()
                        .any(|(n, c)| *c == '/' && backtracking(rest, &text[n + 1..]))
            }
            Token::AnyTail => true,
        }
    }

    /// Every string of `len` characters from `alphabet`.
    fn strings(alphabet: &[&str], len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        for _ in 0..len {
            out = out
                .iter()
                .flat_map(|s| alphabet.iter().map(move |a| format!("{s}{a}")))
                .collect();
        }
        out
    }

    #[test]
    fn automaton_agrees_with_backtracking() {
        let pieces = ["a", "b", "/", "*", "?", "**/", "**", "[a/]"];
        let texts: Vec<Vec<char>> = (0..=5)
            .flat_map(|n| strings(&["a", "b", "/"], n))
            .map(|t| t.chars().collect())
            .collect();
        for n in 1..=4 {
            for p in strings(&pieces, n) {
                let Ok(Kind::Glob(tokens)) = compile(&p) else {
                    continue;
                };
                for t in &texts {
                    assert_eq!(
                        glob_match(&tokens, t),
                        backtracking(&tokens, t),
                        "{p:?} on {:?}",
                        t.iter().collect::<String>()
                    );
                }
            }
        }
    }

    /// Found by the `dockerignore` fuzz target: the backtracking matcher
    /// took exponential time (hours) on such a pattern, so a hostile
    /// `.dockerignore` hung the file sync.
    #[test]
    fn hostile_patterns_match_in_bounded_time() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pm = PatternMatcher::new(&[
                "*a*a*a*a*a*a*a*a*a*a*a*a*c",
                "**/**/**/**/**/**/**/**/**/**/**/**/c",
                "a*/**/*a*/**/*a*/**/*a*/**/*a*/**/c",
            ])
            .expect("valid patterns");
            let long = format!("{}b", "a".repeat(80));
            let deep = format!("{}b", "a/".repeat(40));
            tx.send((
                pm.matches_or_parent_matches(&long),
                pm.matches_or_parent_matches(&deep),
            ))
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("matching took over 10 s");
        assert_eq!(got, (false, false));
    }

    #[test]
    fn trailing_glob_stripping() {
        let pm = PatternMatcher::new(&["a/b/**", "c/*", "d"]).expect("valid");
        let stripped: Vec<_> = pm
            .patterns()
            .iter()
            .map(Pattern::without_trailing_glob)
            .collect();
        assert_eq!(stripped, ["a/b", "c", "d"]);
    }
}
