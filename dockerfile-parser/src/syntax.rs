//! The lossless syntax tree: every byte of the input belongs to exactly one
//! [`Piece`] of one [`Node`], so printing the pieces in order gives back the
//! input byte for byte (see [`SyntaxTree::print`]).
//!
//! The scanning rules follow BuildKit's `frontend/dockerfile/parser`
//! (`parser.go`): lines end at `\n` with trailing `\r` ignored; a UTF-8 BOM
//! on the first line is skipped; parser directives are read from the
//! leading comment lines until the first line that is not one; an
//! instruction continues while a line ends with the escape character
//! followed only by spaces and tabs; comment lines and empty lines inside a
//! continuation are dropped from the logical line; heredoc bodies follow
//! the whole logical line of `RUN`, `COPY` and `ADD` (also under `ONBUILD`).

use serde::Serialize;

use crate::error::Diagnostic;
use crate::shell::{Expander, NoEnv};
use crate::span::{LineIndex, Span};

/// What a top-level node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeKind {
    /// A parser directive line such as `# escape=``.
    Directive,
    /// A comment line.
    Comment,
    /// A line with only whitespace.
    Blank,
    /// An instruction: its lines, continuations and heredoc bodies.
    Instruction,
}

/// What a piece of a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PieceKind {
    /// The UTF-8 byte-order mark at the start of the file.
    Bom,
    /// Spaces and tabs that only separate.
    Whitespace,
    /// The instruction keyword (`RUN`, `from`).
    Keyword,
    /// Instruction text (flags and arguments).
    Text,
    /// The escape character ending a line, with the spaces after it.
    Continuation,
    /// A comment: a comment line, or one inside a continuation.
    Comment,
    /// An empty line inside a continuation (BuildKit warns about these).
    EmptyLine,
    /// A line ending: `\n`, `\r\n`, or nothing at end of file.
    Newline,
    /// The body of a heredoc, every line up to the terminator.
    HeredocBody,
    /// The heredoc terminator line.
    HeredocEnd,
}

/// A contiguous run of source bytes with one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Piece {
    /// Its role.
    pub kind: PieceKind,
    /// Its bytes.
    pub span: Span,
}

/// A top-level node: a directive, comment, blank line or whole instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// All its bytes (the union of its pieces).
    pub span: Span,
    /// Its pieces, in order, covering `span` exactly: a range of
    /// [`SyntaxTree::pieces`] (see [`SyntaxTree::node_pieces`]).
    pub pieces: std::ops::Range<usize>,
    /// For instructions: the logical line and heredocs.
    pub logical: Option<LogicalLine>,
}

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The name, lower-cased.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The directive's line (without the line ending).
    pub span: Span,
}

/// The parser directives of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=` (the frontend image; kiln parses the file itself).
    pub syntax: Option<Directive>,
    /// `# escape=`.
    pub escape: Option<Directive>,
    /// `# check=` (lint configuration, see [`crate::CheckConfig`]).
    pub check: Option<Directive>,
    /// The escape character in effect: `\` unless `# escape=``.
    pub escape_char: char,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: None,
            check: None,
            escape_char: '\\',
        }
    }
}

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<-EOT /f`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body exactly as in the file, with its line endings; without
    /// the terminator line. Use [`Heredoc::body`] for `<<-` tab stripping.
    pub content: String,
    /// False when the terminator was quoted: the body is not expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are removed from body lines and terminator.
    pub chomp: bool,
    /// The file descriptor number written before `<<` (`3<<EOF`), 0 if none.
    pub fd: u32,
    /// The body's bytes in the source.
    pub span: Span,
}

impl Heredoc {
    /// The body with `<<-` semantics applied (leading tabs removed from
    /// every line), as BuildKit hands it to the command or file.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// The text of an instruction after joining its continuation lines, with a
/// map back to source offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalLine {
    /// The joined text (escape-newline sequences, comment and empty lines
    /// removed; leading whitespace of the first line removed).
    pub text: String,
    /// Source offset of the first byte of `text`.
    pub start: usize,
    /// `(offset in text, offset in source)` at the start of each
    /// continuation segment after the first (empty for one-line instructions).
    pub map: Vec<(usize, usize)>,
    /// Heredocs, in order.
    pub heredocs: Vec<Heredoc>,
    /// Empty lines found inside the continuation.
    pub empty_continuation_lines: Vec<Span>,
    /// Comment lines right before the instruction (text after `#`, trimmed).
    pub comments: Vec<String>,
}

impl LogicalLine {
    /// Maps an offset in [`LogicalLine::text`] to an offset in the source.
    pub fn source_offset(&self, logical: usize) -> usize {
        match self.map.binary_search_by_key(&logical, |(l, _)| *l) {
            Ok(i) => self.map[i].1,
            Err(0) => self.start + logical,
            Err(i) => {
                let (l, s) = self.map[i - 1];
                s + (logical - l)
            }
        }
    }

    /// Maps a range of [`LogicalLine::text`] to a source span. A range that
    /// crosses a continuation maps to the source bytes between its ends.
    pub fn source_span(&self, start: usize, end: usize) -> Span {
        let s = self.source_offset(start);
        let e = if end > start {
            self.source_offset(end - 1) + 1
        } else {
            s
        };
        Span::new(s, e)
    }
}

/// The lossless tree of one Dockerfile, with its directives and any
/// syntax-level problems (which never stop the tree from being built).
#[derive(Debug, Clone)]
pub struct SyntaxTree {
    source: String,
    /// Top-level nodes in source order, covering the source exactly.
    pub nodes: Vec<Node>,
    /// All pieces of all nodes, in source order.
    pub pieces: Vec<Piece>,
    /// The parser directives.
    pub directives: Directives,
    /// Syntax errors: invalid or repeated directives, unterminated heredocs.
    pub errors: Vec<Diagnostic>,
    index: LineIndex,
}

struct Line {
    start: usize,
    /// End of the content: before `\n` and any `\r`s before it.
    content_end: usize,
    /// After the `\n` (or end of file).
    end: usize,
}

fn split_lines(src: &str) -> Vec<Line> {
    let bytes = src.as_bytes();
    let mut lines = Vec::with_capacity(bytes.len() / 32 + 1);
    let mut start = 0;
    while start < bytes.len() {
        let nl = memchr::memchr(b'\n', &bytes[start..]);
        let (content_end, end) = match nl {
            Some(i) => (start + i, start + i + 1),
            None => (bytes.len(), bytes.len()),
        };
        let mut ce = content_end;
        while ce > start && (bytes[ce - 1] == b'\r' || bytes[ce - 1] == b'\n') {
            ce -= 1;
        }
        lines.push(Line {
            start,
            content_end: ce,
            end,
        });
        start = end;
    }
    lines
}

/// Length of leading whitespace (Go's `unicode.IsSpace`).
fn leading_ws(s: &str) -> usize {
    s.len() - s.trim_start_matches(char::is_whitespace).len()
}

fn is_comment(content: &str) -> bool {
    content
        .trim_start_matches(char::is_whitespace)
        .starts_with('#')
}

/// Go's `\s` in regexps: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// BuildKit's directive regexp `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.trim_start_matches(is_re_space);
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let rest = rest[name_len..].trim_start_matches(is_re_space);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Splits `len` bytes of whitespace at `at` off into a piece, if any.
fn push(pieces: &mut Vec<Piece>, kind: PieceKind, start: usize, end: usize) {
    if end > start {
        pieces.push(Piece {
            kind,
            span: Span::new(start, end),
        });
    }
}

/// The instructions whose line may introduce heredocs.
fn heredoc_keyword(kw: &str) -> bool {
    kw.eq_ignore_ascii_case("run")
        || kw.eq_ignore_ascii_case("copy")
        || kw.eq_ignore_ascii_case("add")
}

/// BuildKit's `canContainHeredoc`: RUN, COPY, ADD (also as an ONBUILD
/// trigger), not in JSON form.
fn can_contain_heredoc(line: &str) -> bool {
    let t = line.trim_start_matches(char::is_whitespace);
    let (kw, rest) = split_word(t);
    let (kw, rest) = if kw.eq_ignore_ascii_case("onbuild") {
        split_word(rest.trim_start_matches(char::is_whitespace))
    } else {
        (kw, rest)
    };
    if !heredoc_keyword(kw) {
        return false;
    }
    // JSON (exec) form cannot hold heredocs.
    let after_flags = crate::words::skip_flags(rest);
    !crate::words::parse_json_array(after_flags).is_ok_and(|v| v.is_some())
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// BuildKit's `heredocsFromLine`: the words of the line (lexed with `\`,
/// raw quotes and escapes) that look like `[n]<<[-]WORD`.
pub(crate) fn heredocs_from_line(line: &str) -> Vec<(String, bool, bool, u32)> {
    let lex = Expander {
        raw_quotes: true,
        raw_escapes: true,
        ..Expander::new('\\')
    };
    let words = match lex.process(line, &NoEnv) {
        Ok(e) => e.words,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for w in words {
        let digits = w.bytes().take_while(u8::is_ascii_digit).count();
        let Some(rest) = w[digits..].strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let fd = w[..digits].parse::<u32>().unwrap_or(0);
        let plain = Expander {
            skip_unset_env: true,
            ..Expander::new('\\')
        };
        let Ok(words) = plain.process(rest, &NoEnv).map(|e| e.words) else {
            continue;
        };
        if words.len() != 1 {
            continue;
        }
        let raw = Expander {
            raw_quotes: true,
            ..plain
        };
        let Ok(raw_words) = raw.process(rest, &NoEnv).map(|e| e.words) else {
            continue;
        };
        let count = |s: &str| s.matches(['\'', '"']).count();
        let expand = raw_words
            .first()
            .is_some_and(|r| count(r) == count(&words[0]));
        let name = words.into_iter().next().unwrap_or_default();
        out.push((name, expand, chomp, fd));
    }
    out
}

impl SyntaxTree {
    /// Scans `source` into a tree. Never fails: problems go to
    /// [`SyntaxTree::errors`], and the tree still prints back the input.
    pub fn parse(source: &str) -> SyntaxTree {
        SyntaxTree::parse_with(source, None)
    }

    /// Like [`SyntaxTree::parse`]; with `Some(escape)`, directives are not
    /// read and `escape` is the escape character (for a single instruction
    /// taken out of its file, such as an ONBUILD trigger).
    pub(crate) fn parse_with(source: &str, escape: Option<char>) -> SyntaxTree {
        let lines = split_lines(source);
        let index = LineIndex::from_starts(
            lines
                .iter()
                .map(|l| l.start)
                .chain(source.ends_with('\n').then_some(source.len()))
                .collect(),
        );
        let mut nodes = Vec::with_capacity(lines.len());
        let mut pieces: Vec<Piece> = Vec::with_capacity(lines.len() * 3 + 1);
        let mut directives = Directives::default();
        let mut errors = Vec::new();
        let mut directives_done = escape.is_some();
        if let Some(e) = escape {
            directives.escape_char = e;
        }
        let mut comments: Vec<String> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = &lines[i];
            let mut start = line.start;
            let piece_start = pieces.len();
            if i == 0 && source[start..line.content_end].starts_with('\u{feff}') {
                push(&mut pieces, PieceKind::Bom, start, start + 3);
                start += 3;
            }
            let content = &source[start..line.content_end];
            let ws = leading_ws(content);
            let trimmed = &content[ws..];

            // Directives: only in the leading comment lines.
            let mut is_directive = false;
            if !directives_done {
                match match_directive(trimmed) {
                    Some((name, value)) => {
                        let lname = name.to_ascii_lowercase();
                        let d = Directive {
                            name: lname.clone(),
                            value: value.to_owned(),
                            span: Span::new(start + ws, line.content_end),
                        };
                        let slot = match lname.as_str() {
                            "syntax" => Some(&mut directives.syntax),
                            "escape" => Some(&mut directives.escape),
                            "check" => Some(&mut directives.check),
                            _ => None,
                        };
                        match slot {
                            None => directives_done = true,
                            Some(slot) => {
                                is_directive = true;
                                if slot.is_some() {
                                    errors.push(Diagnostic::new(
                                        source,
                                        &index,
                                        d.span,
                                        format!("only one {lname} parser directive can be used"),
                                    ));
                                } else {
                                    if lname == "escape" {
                                        match value {
                                            "`" => directives.escape_char = '`',
                                            "\\" => directives.escape_char = '\\',
                                            _ => errors.push(Diagnostic::new(
                                                source,
                                                &index,
                                                d.span,
                                                format!("invalid escape token '{value}' does not match ` or \\"),
                                            )),
                                        }
                                    }
                                    *slot = Some(d);
                                }
                            }
                        }
                    }
                    None => directives_done = true,
                }
            }

            if is_comment(content) {
                let text = trimmed[1..].trim();
                if is_directive || text.is_empty() {
                    comments.clear();
                } else {
                    comments.push(text.to_owned());
                }
                push(&mut pieces, PieceKind::Whitespace, start, start + ws);
                push(
                    &mut pieces,
                    PieceKind::Comment,
                    start + ws,
                    line.content_end,
                );
                push(&mut pieces, PieceKind::Newline, line.content_end, line.end);
                nodes.push(Node {
                    kind: if is_directive {
                        NodeKind::Directive
                    } else {
                        NodeKind::Comment
                    },
                    span: Span::new(line.start, line.end),
                    pieces: piece_start..pieces.len(),
                    logical: None,
                });
                i += 1;
                continue;
            }
            if trimmed.is_empty() {
                push(&mut pieces, PieceKind::Whitespace, start, line.content_end);
                push(&mut pieces, PieceKind::Newline, line.content_end, line.end);
                comments.clear();
                nodes.push(Node {
                    kind: NodeKind::Blank,
                    span: Span::new(line.start, line.end),
                    pieces: piece_start..pieces.len(),
                    logical: None,
                });
                i += 1;
                continue;
            }

            // An instruction.
            let esc = directives.escape_char;
            let node_start = line.start;
            let mut text = String::with_capacity(trimmed.len() + 64);
            let mut map = Vec::new();
            let mut empty_lines = Vec::new();
            push(&mut pieces, PieceKind::Whitespace, start, start + ws);
            let first = start + ws;
            let (body, cont) = trim_continuation(trimmed, esc);
            let kw_len = body.find(char::is_whitespace).unwrap_or(body.len());
            push(&mut pieces, PieceKind::Keyword, first, first + kw_len);
            push(
                &mut pieces,
                PieceKind::Text,
                first + kw_len,
                first + body.len(),
            );
            push(
                &mut pieces,
                PieceKind::Continuation,
                first + body.len(),
                line.content_end,
            );
            push(&mut pieces, PieceKind::Newline, line.content_end, line.end);
            text.push_str(body);
            let mut continued = cont;
            i += 1;
            while continued && i < lines.len() {
                let l = &lines[i];
                let c = &source[l.start..l.content_end];
                i += 1;
                if is_comment(c) {
                    let w = leading_ws(c);
                    push(&mut pieces, PieceKind::Whitespace, l.start, l.start + w);
                    push(&mut pieces, PieceKind::Comment, l.start + w, l.content_end);
                    push(&mut pieces, PieceKind::Newline, l.content_end, l.end);
                    continue;
                }
                if c.trim_start_matches(char::is_whitespace).is_empty() {
                    push(&mut pieces, PieceKind::EmptyLine, l.start, l.content_end);
                    push(&mut pieces, PieceKind::Newline, l.content_end, l.end);
                    empty_lines.push(Span::new(l.start, l.end));
                    continue;
                }
                let (body, cont) = trim_continuation(c, esc);
                push(&mut pieces, PieceKind::Text, l.start, l.start + body.len());
                push(
                    &mut pieces,
                    PieceKind::Continuation,
                    l.start + body.len(),
                    l.content_end,
                );
                push(&mut pieces, PieceKind::Newline, l.content_end, l.end);
                map.push((text.len(), l.start));
                text.push_str(body);
                continued = cont;
            }

            let mut heredocs = Vec::new();
            if text.contains("<<") && can_contain_heredoc(&text) {
                for (name, expand, chomp, fd) in heredocs_from_line(&text) {
                    let body_start = lines.get(i).map(|l| l.start).unwrap_or(source.len());
                    let mut terminated = false;
                    let mut body_end = body_start;
                    while i < lines.len() {
                        let l = &lines[i];
                        i += 1;
                        let c = &source[l.start..l.content_end];
                        let c = if chomp { c.trim_start_matches('\t') } else { c };
                        if c == name {
                            push(&mut pieces, PieceKind::HeredocBody, body_start, body_end);
                            push(&mut pieces, PieceKind::HeredocEnd, l.start, l.end);
                            terminated = true;
                            break;
                        }
                        body_end = l.end;
                    }
                    if !terminated {
                        push(&mut pieces, PieceKind::HeredocBody, body_start, body_end);
                        errors.push(
                            Diagnostic::new(
                                source,
                                &index,
                                Span::new(first, first + body.len().min(trimmed.len())),
                                "unterminated heredoc",
                            )
                            .with_hint(Some(format!("expected a line \"{name}\""))),
                        );
                    }
                    heredocs.push(Heredoc {
                        name,
                        content: source[body_start..body_end].to_owned(),
                        expand,
                        chomp,
                        fd,
                        span: Span::new(body_start, body_end),
                    });
                    if !terminated {
                        break;
                    }
                }
            }
            let node_end = pieces[piece_start..]
                .last()
                .map(|p| p.span.end)
                .unwrap_or(node_start);
            nodes.push(Node {
                kind: NodeKind::Instruction,
                span: Span::new(node_start, node_end),
                pieces: piece_start..pieces.len(),
                logical: Some(LogicalLine {
                    text,
                    start: first,
                    map,
                    heredocs,
                    empty_continuation_lines: empty_lines,
                    comments: std::mem::take(&mut comments),
                }),
            });
        }
        SyntaxTree {
            source: source.to_owned(),
            nodes,
            pieces,
            directives,
            errors,
            index,
        }
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The line index of the source.
    pub fn line_index(&self) -> &LineIndex {
        &self.index
    }

    /// Prints the tree: concatenates every piece of every node. Always
    /// equal to the parsed input.
    pub fn print(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        for p in &self.pieces {
            out.push_str(p.span.text(&self.source));
        }
        out
    }

    /// The pieces of `node`.
    pub fn node_pieces(&self, node: &Node) -> &[Piece] {
        self.pieces.get(node.pieces.clone()).unwrap_or(&[])
    }

    /// The instruction nodes, in order.
    pub fn instructions(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Instruction)
    }
}

/// BuildKit's `trimContinuationCharacter`: strips `escape[ \t]*$`.
/// Returns the text before it and whether the line continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(body) => (body, true),
        None => (line, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_with_comments_and_blank_lines() {
        let src = "FROM a\nRUN echo \\\n# note\n\n   hi \\  \n  there\n";
        let t = SyntaxTree::parse(src);
        assert_eq!(t.print(), src);
        let run = t.instructions().nth(1).and_then(|n| n.logical.as_ref());
        let run = run.map(|l| l.text.as_str());
        assert_eq!(run, Some("RUN echo    hi   there"));
        let l = t.instructions().nth(1).and_then(|n| n.logical.clone());
        assert_eq!(l.map(|l| l.empty_continuation_lines.len()), Some(1));
    }

    #[test]
    fn directives_and_escape() {
        let src =
            "\u{feff}# Escape=`\n# syntax=docker/dockerfile:1\nFROM a\nRUN a `\n  b\n# escape=\\\n";
        let t = SyntaxTree::parse(src);
        assert_eq!(t.print(), src);
        assert_eq!(t.directives.escape_char, '`');
        assert!(t.directives.syntax.is_some());
        assert_eq!(t.node_pieces(&t.nodes[0])[0].kind, PieceKind::Bom);
        let texts: Vec<_> = t
            .instructions()
            .filter_map(|n| n.logical.as_ref())
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(texts, ["FROM a", "RUN a   b"]);
        assert_eq!(t.nodes.last().map(|n| n.kind), Some(NodeKind::Comment));
    }

    #[test]
    fn heredocs_are_read_after_the_line() {
        let src = "RUN <<EOF cat <<-'END'\r\necho hi\r\nEOF\r\n\tx $y\n\tEND\nFROM a";
        let t = SyntaxTree::parse(src);
        assert_eq!(t.print(), src);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        let l = t.nodes[0]
            .logical
            .clone()
            .unwrap_or_else(|| panic!("no logical line"));
        assert_eq!(l.heredocs.len(), 2);
        assert_eq!(l.heredocs[0].content, "echo hi\r\n");
        assert!(l.heredocs[0].expand);
        assert_eq!(l.heredocs[1].name, "END");
        assert!(!l.heredocs[1].expand && l.heredocs[1].chomp);
        assert_eq!(l.heredocs[1].body(), "x $y\n");
        assert_eq!(t.instructions().count(), 2);
    }

    #[test]
    fn unterminated_heredoc_is_reported_and_lossless() {
        let src = "RUN <<EOF\nabc\n";
        let t = SyntaxTree::parse(src);
        assert_eq!(t.print(), src);
        assert_eq!(t.errors.len(), 1);
        assert_eq!(t.errors[0].message, "unterminated heredoc");
    }

    #[test]
    fn repeated_and_invalid_directives() {
        let t = SyntaxTree::parse("# escape=x\n# escape=`\nFROM a");
        assert_eq!(t.errors.len(), 2);
        // A directive after a non-directive line is a comment.
        let t = SyntaxTree::parse("# hello\n# escape=`\nFROM a");
        assert_eq!(t.directives.escape_char, '\\');
        // An unknown directive ends the directive block.
        let t = SyntaxTree::parse("# foo=bar\n# escape=`\nFROM a");
        assert_eq!(t.directives.escape_char, '\\');
    }
}
