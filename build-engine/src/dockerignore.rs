//! `.dockerignore` with Docker's exact semantics.
//!
//! This is a port of `github.com/moby/patternmatcher` (the matcher both the
//! classic builder and BuildKit use): lines are trimmed, `#` starts a
//! comment, a leading `!` makes an exception, patterns are cleaned like Go's
//! `filepath.Clean` and a leading `/` is dropped. A path is excluded when the
//! last pattern that matches it (or one of its parent directories) is not an
//! exception. `*` and `?` never cross `/`, `**` matches any number of
//! directories (including none), `[...]` is a character class and `\`
//! escapes the next character.

use std::path::{Path, PathBuf};

/// One compiled pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The cleaned pattern text (without the `!`).
    cleaned: String,
    /// Whether the line started with `!`.
    exclusion: bool,
    kind: MatchKind,
    tokens: Vec<Token>,
}

/// patternmatcher's optimisation classes; kept because `suffixMatch` and
/// `prefixMatch` have subtly different semantics from the regexp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `[^/]*`
    StarNoSlash,
    /// `[^/]`
    AnyNoSlash,
    /// `(.*/)?`
    AnyDirs,
    /// `.*`
    AnyAll,
    /// `[...]`: ranges, negated.
    Class(Vec<(char, char)>, bool),
}

/// A parsed `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Self {
        let mut patterns = Vec::new();
        for line in text.lines() {
            // patternmatcher.ReadAll: comment check happens before trimming.
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim().to_string();
            if pattern.is_empty() {
                continue;
            }
            let mut exclusion = false;
            if let Some(rest) = pattern.strip_prefix('!') {
                exclusion = true;
                pattern = rest.trim().to_string();
            }
            if !pattern.is_empty() {
                pattern = clean(&pattern);
                if pattern.len() > 1
                    && let Some(rest) = pattern.strip_prefix('/')
                {
                    pattern = rest.to_string();
                }
            }
            patterns.push(compile(pattern, exclusion));
        }
        DockerIgnore { patterns }
    }

    /// Reads the ignore file that applies to `dockerfile` in `context`:
    /// `<dockerfile>.dockerignore` next to the Dockerfile first (BuildKit),
    /// else `<context>/.dockerignore`; no file means nothing is ignored.
    pub fn for_context(context: &Path, dockerfile: Option<&Path>) -> std::io::Result<Self> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(df) = dockerfile
            && let Some(name) = df.file_name()
        {
            let mut specific = name.to_os_string();
            specific.push(".dockerignore");
            candidates.push(df.with_file_name(specific));
        }
        candidates.push(context.join(".dockerignore"));
        for candidate in candidates {
            match std::fs::read_to_string(&candidate) {
                Ok(text) => return Ok(Self::parse(&text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Self::default())
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!`), in which case an excluded
    /// directory must still be walked to find re-included children.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded:
    /// patternmatcher's `MatchesOrParentMatches`.
    pub fn is_excluded(&self, path: &str) -> bool {
        let mut matched = false;
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        for pattern in &self.patterns {
            // Skip an inclusion once matched, an exception while unmatched.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                for i in 0..parent_dirs.len() {
                    if pattern.matches(&parent_dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix => {
                let prefix = &self.cleaned[..self.cleaned.len().saturating_sub(2)];
                path.starts_with(prefix)
            }
            MatchKind::Suffix => {
                let suffix = &self.cleaned[2.min(self.cleaned.len())..];
                if path.ends_with(suffix) {
                    return true;
                }
                suffix.starts_with('/') && path == &suffix[1..]
            }
            MatchKind::Regexp => {
                let chars: Vec<char> = path.chars().collect();
                match_tokens(&self.tokens, &chars)
            }
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated relative or absolute paths.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// patternmatcher's `compile`, producing tokens instead of a Go regexp.
fn compile(cleaned: String, exclusion: bool) -> Pattern {
    let chars: Vec<char> = cleaned.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = MatchKind::Exact;
    let mut i = 0;
    let mut index = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == MatchKind::Exact {
                        kind = MatchKind::Prefix;
                    } else {
                        tokens.push(Token::AnyAll);
                        kind = MatchKind::Regexp;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    kind = MatchKind::Regexp;
                }
                if index == 0 {
                    kind = MatchKind::Suffix;
                }
            } else {
                tokens.push(Token::StarNoSlash);
                kind = MatchKind::Regexp;
            }
        } else if ch == '?' {
            tokens.push(Token::AnyNoSlash);
            kind = MatchKind::Regexp;
        } else if ch == '\\' {
            if i < chars.len() {
                tokens.push(Token::Lit(chars[i]));
                i += 1;
                kind = MatchKind::Regexp;
            } else {
                tokens.push(Token::Lit('\\'));
            }
        } else if ch == '[' {
            // A character class up to the next unescaped `]`.
            let mut j = i;
            let mut negated = false;
            if matches!(chars.get(j), Some('^') | Some('!')) {
                negated = true;
                j += 1;
            }
            let mut ranges = Vec::new();
            let mut closed = false;
            while j < chars.len() {
                let mut c = chars[j];
                if c == ']' && !ranges.is_empty() {
                    closed = true;
                    j += 1;
                    break;
                }
                if c == '\\' && j + 1 < chars.len() {
                    j += 1;
                    c = chars[j];
                }
                if chars.get(j + 1) == Some(&'-') && j + 2 < chars.len() && chars[j + 2] != ']' {
                    ranges.push((c, chars[j + 2]));
                    j += 3;
                } else {
                    ranges.push((c, c));
                    j += 1;
                }
            }
            if closed {
                tokens.push(Token::Class(ranges, negated));
                i = j;
            } else {
                tokens.push(Token::Lit('['));
            }
            kind = MatchKind::Regexp;
        } else {
            tokens.push(Token::Lit(ch));
        }
        index += 1;
    }
    Pattern {
        cleaned,
        exclusion,
        kind,
        tokens,
    }
}

/// Backtracking match of the whole of `s` against `tokens` (anchored both
/// ends, as patternmatcher's `^...$` regexp).
fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Lit(c) => s.first() == Some(c) && match_tokens(rest, &s[1..]),
        Token::AnyNoSlash => s.first().is_some_and(|c| *c != '/') && match_tokens(rest, &s[1..]),
        Token::Class(ranges, negated) => {
            s.first().is_some_and(|c| {
                let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                inside != *negated
            }) && match_tokens(rest, &s[1..])
        }
        Token::StarNoSlash => {
            for n in 0..=s.len() {
                if match_tokens(rest, &s[n..]) {
                    return true;
                }
                if n < s.len() && s[n] == '/' {
                    break;
                }
            }
            false
        }
        Token::AnyAll => (0..=s.len()).any(|n| match_tokens(rest, &s[n..])),
        Token::AnyDirs => {
            // Either nothing, or anything ending in '/'.
            if match_tokens(rest, s) {
                return true;
            }
            (0..s.len()).any(|n| s[n] == '/' && match_tokens(rest, &s[n + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        DockerIgnore::parse(patterns).is_excluded(path)
    }

    // Cases from moby/patternmatcher's TestMatches / TestMatchesOrParentMatches.
    #[test]
    fn patternmatcher_table() {
        let table: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/file", "file", true),
            ("**/file", "dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        for (pattern, path, want) in table {
            assert_eq!(
                excluded(pattern, path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn parent_directory_match_excludes_children() {
        assert!(excluded("node_modules", "node_modules/x/y.js"));
        assert!(excluded("/build", "build/out.o"));
        assert!(!excluded("build", "src/build"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let ign = DockerIgnore::parse("*.md\n!README.md\n# comment\n\n");
        assert!(ign.is_excluded("CHANGES.md"));
        assert!(!ign.is_excluded("README.md"));
        assert!(ign.has_exceptions());
        let ign = DockerIgnore::parse("docs\n!docs/keep.txt\n");
        assert!(ign.is_excluded("docs/other.txt"));
        assert!(!ign.is_excluded("docs/keep.txt"));
        let ign = DockerIgnore::parse("!a\na\n");
        assert!(ign.is_excluded("a"));
    }

    #[test]
    fn lines_are_cleaned() {
        let ign = DockerIgnore::parse("  ./foo/../bar/  \n ! bar/keep\n");
        assert!(ign.is_excluded("bar/x"));
        assert!(!ign.is_excluded("bar/keep"));
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
    }
}
