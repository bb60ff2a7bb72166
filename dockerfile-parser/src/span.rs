//! Byte spans and their translation to line and column.

use serde::Serialize;

/// A half-open byte range `start..end` into the source text of a Dockerfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// Creates a span; `end` is clamped so that `start <= end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The text this span covers in `source`, or `""` when it is out of range
    /// or does not fall on character boundaries.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

/// A 1-based line and column. Columns count Unicode scalar values, so a
/// tab or a multi-byte character is one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: u32,
    /// Column number, starting at 1.
    pub column: u32,
}

/// Maps byte offsets to [`Position`]s for one source text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `source` (lines end at `\n`, as in BuildKit's scanner).
    pub fn new(source: &str) -> LineIndex {
        let mut starts = Vec::with_capacity(source.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', source.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    /// An index from the start offsets of the lines (the first must be 0).
    pub(crate) fn from_starts(mut starts: Vec<usize>) -> LineIndex {
        if starts.first() != Some(&0) {
            starts.insert(0, 0);
        }
        LineIndex { starts }
    }

    /// The position of byte `offset` in `source` (clamped to the text).
    pub fn position(&self, source: &str, offset: usize) -> Position {
        let offset = offset.min(source.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = source
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or_else(|| offset - start);
        Position {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    /// The 1-based line of byte `offset`.
    pub fn line(&self, offset: usize) -> u32 {
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        u32::try_from(line + 1).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_chars() {
        let src = "FROM a\nRUN é x\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.position(src, 0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(src, 7), Position { line: 2, column: 1 });
        // 'x' is after a two-byte character: byte 14, column 7.
        assert_eq!(idx.position(src, 14), Position { line: 2, column: 7 });
        assert_eq!(idx.line(src.len()), 3);
    }

    #[test]
    fn span_text_is_safe() {
        let s = Span::new(5, 2);
        assert!(s.is_empty());
        assert_eq!(Span::new(0, 100).text("abc"), "");
        assert_eq!(Span::new(1, 2).text("abc"), "b");
    }
}
