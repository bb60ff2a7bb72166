//! Pure parsers for the two HTTP headers the distribution protocol relies
//! on: `WWW-Authenticate` (RFC 7235 challenges) and `Link` (RFC 8288, used
//! for tag and catalog pagination).

use std::collections::BTreeMap;

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Auth parameters with lower-cased names (`realm`, `service`, `scope`,
    /// `error`), values unquoted.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` header value into its challenges.
///
/// Accepts several challenges in one header (`Basic realm="a", Bearer
/// realm="b",service="c"`), quoted strings with `\` escapes, token68
/// credentials, and stray whitespace and commas. Never panics; malformed
/// parts are skipped.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let read_token = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        // Byte offsets may fall inside a multi-byte character after a skip,
        // so never slice the str itself.
        String::from_utf8_lossy(&b[s..*i]).into_owned()
    };
    while i < b.len() {
        skip_ws(&mut i);
        if i < b.len() && b[i] == b',' {
            i += 1;
            continue;
        }
        let scheme = read_token(&mut i);
        if scheme.is_empty() {
            // Not a token start: skip one byte so we always make progress.
            i += 1;
            continue;
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // Parameters until a token that is followed by whitespace and another
        // token (the next challenge's scheme).
        loop {
            skip_ws(&mut i);
            while i < b.len() && (b[i] == b',' || b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let save = i;
            let name = read_token(&mut i);
            if name.is_empty() {
                i += 1;
                continue;
            }
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'=' {
                i += 1;
                // token68 ends with '=' padding: "abc==" — treat as no value.
                skip_ws(&mut i);
                let value = if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut v = Vec::new();
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        v.push(b[i]);
                        i += 1;
                    }
                    i += 1; // closing quote (or end)
                    String::from_utf8_lossy(&v).into_owned()
                } else {
                    let s = i;
                    while i < b.len() && b[i] != b',' && b[i] != b' ' && b[i] != b'\t' {
                        i += 1;
                    }
                    String::from_utf8_lossy(&b[s..i]).into_owned()
                };
                ch.params.insert(name.to_ascii_lowercase(), value);
            } else {
                // A bare token: either token68 of this challenge or the next
                // scheme. If parameters were already read, it is a new scheme.
                if ch.params.is_empty() && (i >= b.len() || b[i] == b',') {
                    continue; // token68, ignored
                }
                i = save;
                break;
            }
        }
        out.push(ch);
    }
    out
}

/// Extracts the `rel="next"` target from a `Link` header
/// (`</v2/x/tags/list?last=b&n=2>; rel="next"`), as the distribution spec's
/// pagination uses. Several links may be comma-separated.
pub fn parse_link_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            match p.split_once('=') {
                Some((k, v)) => {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                }
                None => false,
            }
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn several_challenges_and_escapes() {
        let c = parse_www_authenticate(
            r#"Basic realm="Registry Realm", Bearer realm="a\"b", error="insufficient_scope",  Negotiate"#,
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("a\"b"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(c[2].scheme, "negotiate");
    }

    #[test]
    fn unquoted_and_odd_input() {
        let c = parse_www_authenticate("BASIC Realm=x");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("x"));
        assert!(parse_www_authenticate("").is_empty());
        assert!(parse_www_authenticate(",,, ").is_empty());
        let c = parse_www_authenticate("Bearer realm=\"unterminated");
        assert_eq!(c[0].param("realm"), Some("unterminated"));
        let c = parse_www_authenticate("Foo abc==, Bearer realm=r");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].param("realm"), Some("r"));
    }

    /// Found by fuzzing: a skipped byte inside a multi-byte character must
    /// not make the parser slice the string off a character boundary.
    #[test]
    fn non_ascii_does_not_panic() {
        let c = parse_www_authenticate("Basic r\u{e9}alm=\"x\", \u{1f600}\u{e9} Bearer realm=y");
        assert_eq!(c[0].scheme, "basic");
        assert!(
            c.iter()
                .any(|c| c.scheme == "bearer" && c.param("realm") == Some("y")),
            "{c:?}"
        );
        for len in 0..12 {
            let s: String = "\u{e9}=\u{1f600},a b".chars().cycle().take(len).collect();
            let _ = parse_www_authenticate(&s);
        }
    }

    #[test]
    fn link_next() {
        assert_eq!(
            parse_link_next(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(
            parse_link_next(r#"<https://a/p1>; rel="prev", <https://a/p3>; rel=next"#).as_deref(),
            Some("https://a/p3")
        );
        assert_eq!(parse_link_next(r#"<a>; rel="prev""#), None);
        assert_eq!(parse_link_next(""), None);
        assert_eq!(parse_link_next("<unterminated; rel=next"), None);
    }
}
