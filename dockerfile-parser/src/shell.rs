//! Shell-word expansion, matching BuildKit's `frontend/dockerfile/shell`
//! package (`lex.go`) rule for rule: `$V`, `${V}`, `${V:-w}`, `${V-w}`,
//! `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`,
//! `${V%%p}`, `${V/p/r}`, `${V//p/r}`, single and double quotes, the escape
//! character, and word splitting after substitution.
//!
//! Quirks kept on purpose because BuildKit has them: a `$` not followed by a
//! name is literal; `$1` and the special parameters (`$@ $* $# $? $- $$ $!
//! $0`) are looked up like any other name; an escape at the very end of a
//! word is dropped; wildcards in patterns do not match a newline (they are
//! Go regular expressions' `.`); a byte-order mark at the start of the word
//! is skipped (Go's `text/scanner` does that).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use crate::error::{Error, ExpandErrorKind};

/// A source of variables for expansion (the build args and `ENV` of a stage).
pub trait Variables {
    /// The value of `name`, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl<S: BuildHasher> Variables for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        HashMap::get(self, name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        BTreeMap::get(self, name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// Later pairs win, like later `ENV` instructions.
impl Variables for [(String, String)] {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

/// Later pairs win, like later `ENV` instructions.
impl Variables for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        Variables::get(self.as_slice(), name)
    }
}

/// Later pairs win, like later `ENV` instructions.
impl Variables for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Cow::Borrowed(*v))
    }
}

/// Any `Fn(&str) -> Option<String>` is an environment.
impl<F: Fn(&str) -> Option<String>> Variables for F {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self(name).map(Cow::Owned)
    }
}

/// The empty environment: every variable is unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Variables for NoEnv {
    fn get(&self, _name: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// Expands `word` as Docker does for instructions that take one word
/// (`WORKDIR $HOME/app`, `ENV A=${B:-x}`): variables substituted, quotes
/// and escapes removed, spaces kept.
///
/// `escape` is the Dockerfile's escape character (`\` or `` ` ``).
///
/// ```
/// use kiln_dockerfile_parser::expand_word;
/// let env = [("HOME", "/root")];
/// assert_eq!(expand_word("${HOME:-/}/'a b'", &env[..], '\\')?, "/root/a b");
/// # Ok::<(), kiln_dockerfile_parser::Error>(())
/// ```
pub fn expand_word<E: Variables + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<String, Error> {
    Expander::new(escape).process(word, env).map(|e| e.value)
}

/// Expands `word` and splits the result into words as Docker does for
/// `EXPOSE`: unquoted whitespace (including whitespace that came from a
/// variable) separates words; quoted whitespace does not.
///
/// ```
/// use kiln_dockerfile_parser::expand_words;
/// let env = [("PORTS", "80 443")];
/// assert_eq!(expand_words("$PORTS '8080 x'", &env[..], '\\')?, ["80", "443", "8080 x"]);
/// # Ok::<(), kiln_dockerfile_parser::Error>(())
/// ```
pub fn expand_words<E: Variables + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<Vec<String>, Error> {
    Expander::new(escape).process(word, env).map(|e| e.words)
}

/// Expansion with BuildKit's `Lex` options, for callers that need more than
/// [`expand_word`]: the words and the variables that were (not) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expander {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`SkipUnsetEnv`).
    pub skip_unset_env: bool,
}

/// The result of [`Expander::process`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// The expanded word split into words.
    pub words: Vec<String>,
    /// Names that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Names that were looked up and not found (for the `UndefinedVar` lint).
    pub unmatched: BTreeSet<String>,
}

impl Expander {
    /// Default options with the given escape character.
    pub fn new(escape: char) -> Expander {
        Expander {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` against `env`.
    pub fn process<E: Variables + ?Sized>(&self, word: &str, env: &E) -> Result<Expansion, Error> {
        let mut chars: Vec<char> = word.chars().collect();
        // Go's text/scanner skips a byte-order mark at the very start.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut sw = ShellWord {
            chars,
            pos: 0,
            opts: *self,
            raw_escapes: self.raw_escapes,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((value, words)) => Ok(Expansion {
                value,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(kind) => Err(Error::Expand {
                word: word.to_owned(),
                kind,
            }),
        }
    }
}

/// BuildKit's `wordsStruct`: accumulates words while characters arrive.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct ShellWord<'e, E: ?Sized> {
    chars: Vec<char>,
    pos: usize,
    opts: Expander,
    raw_escapes: bool,
    env: &'e E,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// What Go's scanner returns as a rune at end of input, printed by `%s`.
const EOF_CHAR: char = '\u{fffd}';

type Step<T> = Result<T, ExpandErrorKind>;

impl<E: Variables + ?Sized> ShellWord<'_, E> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                let v = v.into_owned();
                self.matched.insert(name.to_owned());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let special =
                ch == '$' || (!self.opts.skip_process_quotes && (ch == '\'' || ch == '"'));
            if special {
                let tmp = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.pos += 1;
            let mut ch = ch;
            if ch == self.opts.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(ExpandErrorKind::Unterminated(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ExpandErrorKind::Unterminated(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    ));
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ExpandErrorKind::Unterminated(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.opts.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape at the end of the word is dropped.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.opts.escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Step<String> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.opts.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        match self.peek() {
            None => {
                return Err(ExpandErrorKind::Unterminated(
                    "syntax error: missing '}'".into(),
                ));
            }
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let mut ch = self.next().unwrap_or(EOF_CHAR);
        let mut chs = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.opts.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    ch = self.next().unwrap_or(EOF_CHAR);
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                let mut word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ExpandErrorKind::Unterminated(
                                "syntax error: missing '}'".into(),
                            ));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.opts.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let null = !set || (null_is_unset && value.is_empty());
                match ch {
                    '-' => Ok(if null { word } else { value }),
                    '+' => Ok(if null { String::new() } else { word }),
                    '?' => {
                        if !set {
                            let message = if word.is_empty() {
                                "is not allowed to be unset".to_owned()
                            } else {
                                word
                            };
                            return Err(ExpandErrorKind::Required { name, message });
                        }
                        if null_is_unset && value.is_empty() {
                            let message = if word.is_empty() {
                                "is not allowed to be empty".to_owned()
                            } else {
                                word
                            };
                            return Err(ExpandErrorKind::Required { name, message });
                        }
                        Ok(value)
                    }
                    '%' | '#' => {
                        let mut greedy = false;
                        if word.starts_with(ch) {
                            greedy = true;
                            word.remove(0);
                        }
                        if ch == '%' {
                            trim_suffix(&word, &value, greedy)
                        } else {
                            trim_prefix(&word, &value, greedy)
                        }
                    }
                    _ => Err(ExpandErrorKind::UnsupportedModifier(chs)),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.pos += 1;
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ExpandErrorKind::Unterminated(
                                "syntax error: missing '/' in ${}".into(),
                            ));
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(ExpandErrorKind::Unterminated(
                                "syntax error: missing '}'".into(),
                            ));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.opts.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value: Vec<char> = value.unwrap_or_default().chars().collect();
                let pat = Pattern::compile(&pattern, true)?;
                Ok(pat.replace(&value, &replacement, replace_all))
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(chs)),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek() {
                    if !is_go_digit(c) {
                        break;
                    }
                    self.pos += 1;
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }
}

/// Go's `unicode.IsDigit` for the characters that matter in names.
fn is_go_digit(c: char) -> bool {
    // Rust has no test for category Nd alone; `is_numeric` (Nd, Nl, No) is
    // the closest, and only differs on characters such as Roman numerals.
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

/// A shell pattern (`*`, `?`, `\` escapes) compiled as BuildKit compiles it
/// to a Go regular expression, matched with the same leftmost-first
/// priorities (greedy or lazy stars).
struct Pattern {
    toks: Vec<Tok>,
    greedy: bool,
}

impl Pattern {
    fn compile(pattern: &str, greedy: bool) -> Step<Pattern> {
        let mut chars: Vec<char> = pattern.chars().collect();
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    // Consecutive stars match what one star matches, with
                    // the same first match under either priority.
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' => toks.push(Tok::Any),
                '\\' => {
                    // `}` and `/` are escaped inside `${}`, but the escape
                    // is not part of the pattern.
                    if matches!(chars.get(i), Some('}' | '/')) {
                        continue;
                    }
                    let next = chars.get(i).copied();
                    i += 1;
                    match next {
                        Some(n @ ('*' | '?' | '\\')) => toks.push(Tok::Lit(n)),
                        other => {
                            return Err(ExpandErrorKind::InvalidPattern {
                                pattern: pattern.to_owned(),
                                reason: format!("invalid escape '\\{}'", other.unwrap_or(EOF_CHAR)),
                            });
                        }
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern { toks, greedy })
    }

    /// End of the first match starting exactly at `start`, by the regex
    /// engine's priority order.
    fn match_at(
        &self,
        s: &[char],
        start: usize,
        memo: &mut HashMap<(usize, usize), Option<usize>>,
    ) -> Option<usize> {
        self.m(s, 0, start, memo)
    }

    fn m(
        &self,
        s: &[char],
        pi: usize,
        si: usize,
        memo: &mut HashMap<(usize, usize), Option<usize>>,
    ) -> Option<usize> {
        let Some(tok) = self.toks.get(pi) else {
            return Some(si);
        };
        match *tok {
            Tok::Lit(c) => {
                if s.get(si) == Some(&c) {
                    self.m(s, pi + 1, si + 1, memo)
                } else {
                    None
                }
            }
            Tok::Any => match s.get(si) {
                Some(&c) if c != '\n' => self.m(s, pi + 1, si + 1, memo),
                _ => None,
            },
            Tok::Star => {
                if let Some(r) = memo.get(&(pi, si)) {
                    return *r;
                }
                let mut max = 0;
                while s.get(si + max).is_some_and(|c| *c != '\n') {
                    max += 1;
                }
                let mut found = None;
                if self.greedy {
                    for k in (0..=max).rev() {
                        if let Some(e) = self.m(s, pi + 1, si + k, memo) {
                            found = Some(e);
                            break;
                        }
                    }
                } else {
                    for k in 0..=max {
                        if let Some(e) = self.m(s, pi + 1, si + k, memo) {
                            found = Some(e);
                            break;
                        }
                    }
                }
                memo.insert((pi, si), found);
                found
            }
        }
    }

    /// Leftmost match at or after `from`: `(start, end)`.
    fn find(
        &self,
        s: &[char],
        from: usize,
        memo: &mut HashMap<(usize, usize), Option<usize>>,
    ) -> Option<(usize, usize)> {
        (from..=s.len()).find_map(|st| self.match_at(s, st, memo).map(|e| (st, e)))
    }

    /// `${V/p/r}` and `${V//p/r}`: Go's `FindStringIndex` for one
    /// replacement, `ReplaceAllString` (with its `$` template expansion and
    /// empty-match rules) for all.
    fn replace(&self, value: &[char], replacement: &str, all: bool) -> String {
        let mut memo = HashMap::new();
        if !all {
            return match self.find(value, 0, &mut memo) {
                Some((a, b)) => {
                    let mut out: String = value[..a].iter().collect();
                    out.push_str(replacement);
                    out.extend(&value[b..]);
                    out
                }
                None => value.iter().collect(),
            };
        }
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= value.len() {
            let Some((a, b)) = self.find(value, search, &mut memo) else {
                break;
            };
            out.extend(&value[last_end..a]);
            if b > last_end || a == 0 {
                out.push_str(&go_expand_template(replacement, &value[a..b]));
            }
            last_end = b;
            if search + 1 > b {
                search += 1;
            } else {
                search = b;
            }
        }
        if last_end <= value.len() {
            out.extend(&value[last_end..]);
        }
        out
    }
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`,
/// `$0`/`${0}` is the match, any other `$name` is empty, a `$` that starts
/// no valid reference is kept.
fn go_expand_template(template: &str, matched: &[char]) -> String {
    let t: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] != '$' {
            out.push(t[i]);
            i += 1;
            continue;
        }
        if t.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        let is_name = |c: &char| c.is_alphanumeric() || *c == '_';
        let (name, next): (String, usize) = if t.get(i + 1) == Some(&'{') {
            let mut j = i + 2;
            while t.get(j).is_some_and(is_name) {
                j += 1;
            }
            if j > i + 2 && t.get(j) == Some(&'}') {
                (t[i + 2..j].iter().collect(), j + 1)
            } else {
                (String::new(), i)
            }
        } else {
            let mut j = i + 1;
            while t.get(j).is_some_and(is_name) {
                j += 1;
            }
            (t[i + 1..j].iter().collect(), j)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        if name.parse::<u64>() == Ok(0) {
            out.extend(matched);
        }
        i = next;
    }
    out
}

/// `${V#p}` / `${V##p}`: remove the shortest / longest prefix matching `p`.
fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    let pat = Pattern::compile(pattern, greedy)?;
    let v: Vec<char> = value.chars().collect();
    let mut memo = HashMap::new();
    Ok(match pat.match_at(&v, 0, &mut memo) {
        Some(end) => v[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// `${V%p}` / `${V%%p}`: BuildKit reverses the pattern (keeping escapes in
/// front of what they escape) and the value, and trims a prefix.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let o = last - i;
        if p[i] == '\\' && i != last {
            out[o - 1] = '\\';
            out[o] = p[i + 1];
            i += 2;
        } else {
            out[o] = p[i];
            i += 1;
        }
    }
    let rp: String = out.into_iter().collect();
    let rv: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&rp, &rv, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("PWD".into(), "/home".into()),
            ("EMPTY".into(), String::new()),
            ("X".into(), "a b".into()),
        ]
    }

    #[test]
    fn basic_forms() {
        let e = env();
        let ok = |w: &str| expand_word(w, &e, '\\').unwrap_or_else(|err| panic!("{w}: {err}"));
        assert_eq!(ok("$PWD"), "/home");
        assert_eq!(ok("${PWD}x"), "/homex");
        assert_eq!(ok("${NOPE:-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${PWD:+y}"), "y");
        assert_eq!(ok("${PWD#/}"), "home");
        assert_eq!(ok("${PWD%me}"), "/ho");
        assert_eq!(ok("${PWD/o/0}"), "/h0me");
        assert_eq!(ok("'$PWD'"), "$PWD");
        assert_eq!(ok("\"$PWD\""), "/home");
        assert_eq!(ok("\\$PWD"), "$PWD");
        assert_eq!(ok("$"), "$");
    }

    #[test]
    fn errors_are_typed() {
        let e = env();
        let err = expand_word("${NOPE:?need it}", &e, '\\');
        assert!(matches!(
            err,
            Err(Error::Expand { kind: ExpandErrorKind::Required { ref name, ref message }, .. })
                if name == "NOPE" && message == "need it"
        ));
        assert!(matches!(
            expand_word("${}", &e, '\\'),
            Err(Error::Expand {
                kind: ExpandErrorKind::BadSubstitution,
                ..
            })
        ));
        assert!(expand_word("'abc", &e, '\\').is_err());
    }

    #[test]
    fn words_split_after_substitution() {
        let e = env();
        assert_eq!(
            expand_words("$X \"$X\"", &e, '\\').ok(),
            Some(vec!["a".into(), "b".into(), "a b".into()])
        );
    }

    #[test]
    fn glob_priorities() {
        let e = vec![("V".to_owned(), "abcabc".to_owned())];
        let ok = |w: &str| expand_word(w, &e, '\\').unwrap_or_else(|err| panic!("{w}: {err}"));
        assert_eq!(ok("${V#*b}"), "cabc");
        assert_eq!(ok("${V##*b}"), "c");
        assert_eq!(ok("${V%b*}"), "abca");
        assert_eq!(ok("${V%%b*}"), "a");
        assert_eq!(ok("${V//b/-}"), "a-ca-c");
        assert_eq!(ok("${V//x*/-}"), "abcabc");
    }
}
