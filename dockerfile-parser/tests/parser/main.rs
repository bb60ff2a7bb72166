//! Integration tests of kiln-dockerfile-parser. Submodules mirror `src/`;
//! `fixtures` runs the corpus under `tests/fixtures/{ok,err}`.

mod fixtures;
mod instruction;
mod lint;
mod shell;
mod syntax;

use std::path::PathBuf;

/// The crate's `tests/fixtures` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}
