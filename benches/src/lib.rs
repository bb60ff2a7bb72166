//! Shared helpers for the kiln benchmarks (corpus loading, byte counting).
