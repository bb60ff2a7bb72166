//! Builders for ordinary and hostile layer tar archives.
