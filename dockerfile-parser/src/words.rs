//! Word-level scanners used by the instruction parser, each a port of the
//! BuildKit function named in its doc comment. Offsets are byte offsets
//! into the logical line, so spans can be mapped back to the source.

/// A word with its byte range in the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// BuildKit's `extractBuilderFlags`: the leading `--flag[=value]` words
/// (quotes and `\` processed in the value) and the offset where the rest
/// of the line starts. A bare `--` ends the flags.
pub(crate) fn extract_flags(line: &str, base: usize) -> (Vec<Word>, usize) {
    let mut words = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        // Skip spaces.
        while let Some((_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(pos, _)) = chars.peek() else {
            return (words, base + line.len());
        };
        if !line[pos..].starts_with("--") {
            return (words, base + pos);
        }
        // Fast path: a flag without quotes or escapes is a plain slice.
        let plain_end = line[pos..]
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '\\')
            .map_or(line.len(), |i| pos + i);
        if plain_end == line.len() || line[plain_end..].starts_with(char::is_whitespace) {
            let word = &line[pos..plain_end];
            while chars.peek().is_some_and(|(i, _)| *i < plain_end) {
                chars.next();
            }
            if word == "--" {
                return (words, base + plain_end);
            }
            words.push(Word {
                text: word.to_owned(),
                start: base + pos,
                end: base + plain_end,
            });
            continue;
        }
        let mut word = String::with_capacity(plain_end - pos + 16);
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        let mut end = line.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None => {
                    if c.is_whitespace() {
                        end = i;
                        break;
                    }
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                        blank_ok = true;
                        continue;
                    }
                    if c == '\\' {
                        match chars.next() {
                            Some((_, n)) => word.push(n),
                            None => continue,
                        }
                        continue;
                    }
                    word.push(c);
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                        continue;
                    }
                    if c == '\\' {
                        match chars.next() {
                            Some((_, n)) => word.push(n),
                            None => {
                                quote = None;
                                continue;
                            }
                        }
                        continue;
                    }
                    word.push(c);
                }
            }
        }
        if word == "--" {
            // `--` ends the flags; the rest starts after it.
            return (words, base + end);
        }
        if blank_ok || !word.is_empty() {
            words.push(Word {
                text: word,
                start: base + pos,
                end: base + end,
            });
        }
    }
}

/// The text after the leading flags (for quick checks before parsing).
pub(crate) fn skip_flags(line: &str) -> &str {
    let (_, rest) = extract_flags(line, 0);
    line.get(rest..).unwrap_or("")
}

/// Why a JSON form was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotStringArray;

/// BuildKit's `parseJSON`: `Ok(Some(v))` for a JSON array of strings,
/// `Ok(None)` when the text is not a JSON array (so it is shell form), and
/// `Err` for a JSON array with a non-string element.
pub(crate) fn parse_json_array(text: &str) -> Result<Option<Vec<String>>, NotStringArray> {
    let t = text.trim_start_matches(char::is_whitespace);
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// BuildKit's `reWhitespace` (`[\t\v\f\r ]+`) split, with offsets.
pub(crate) fn split_whitespace(text: &str, base: usize) -> Vec<Word> {
    let is_ws = |c: char| matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ');
    let mut out = Vec::with_capacity(4);
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_ws(c) {
            if let Some(s) = start.take() {
                out.push(Word {
                    text: text[s..i].to_owned(),
                    start: base + s,
                    end: base + i,
                });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Word {
            text: text[s..].to_owned(),
            start: base + s,
            end: base + text.len(),
        });
    }
    out
}

/// BuildKit's `parseWords`: splits on unquoted whitespace, keeping quotes
/// and escapes in the words (they are removed later by expansion).
pub(crate) fn parse_words(text: &str, escape: char, base: usize) -> Vec<Word> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut wstart: Option<usize> = None;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match (wstart, quote) {
            (None, _) => {
                if c.is_whitespace() {
                    continue;
                }
                wstart = Some(i);
                // Fall through to the in-word handling below.
                handle_in_word(c, escape, &mut word, &mut quote, &mut blank_ok, &mut it);
            }
            (Some(s), None) => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        out.push(Word {
                            text: std::mem::take(&mut word),
                            start: base + s,
                            end: base + i,
                        });
                    }
                    word.clear();
                    wstart = None;
                    blank_ok = false;
                    continue;
                }
                handle_in_word(c, escape, &mut word, &mut quote, &mut blank_ok, &mut it);
            }
            (Some(_), Some(q)) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    match it.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some((_, n)) => {
                            word.push(c);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if let Some(s) = wstart
        && (blank_ok || !word.is_empty())
    {
        out.push(Word {
            text: word,
            start: base + s,
            end: base + text.len(),
        });
    }
    out
}

fn handle_in_word(
    c: char,
    escape: char,
    word: &mut String,
    quote: &mut Option<char>,
    blank_ok: &mut bool,
    it: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) {
    if c == '\'' || c == '"' {
        *quote = Some(c);
        *blank_ok = true;
    }
    if c == escape {
        match it.next() {
            // An escape at the end of the line is skipped.
            None => return,
            Some((_, n)) => {
                // Unquoted: keep the escape and the character, even a quote.
                word.push(c);
                word.push(n);
                return;
            }
        }
    }
    word.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(w: Vec<Word>) -> Vec<String> {
        w.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn flags() {
        let line = "--mount=type=cache,target=/x --network=\"none\"  echo --x";
        let (f, rest) = extract_flags(line, 0);
        assert_eq!(texts(f), ["--mount=type=cache,target=/x", "--network=none"]);
        assert_eq!(&line[rest..], "echo --x");
        let (f, rest) = extract_flags("--a -- --b", 0);
        assert_eq!(texts(f), ["--a"]);
        assert_eq!(rest, 6);
    }

    #[test]
    fn json() {
        assert_eq!(
            parse_json_array(r#" ["a", "b c"]"#),
            Ok(Some(vec!["a".into(), "b c".into()]))
        );
        assert_eq!(parse_json_array("[a]"), Ok(None));
        assert_eq!(parse_json_array("echo"), Ok(None));
        assert_eq!(parse_json_array("[1]"), Err(NotStringArray));
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            texts(parse_words(r#"a="b c" d=e\ f 'g h'"#, '\\', 0)),
            [r#"a="b c""#, r"d=e\ f", "'g h'"]
        );
        let w = parse_words("  x  y", '\\', 10);
        assert_eq!((w[0].start, w[0].end, w[1].start), (12, 13, 15));
        assert_eq!(texts(split_whitespace("a \t b", 0)), ["a", "b"]);
    }
}
