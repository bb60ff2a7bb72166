//! Helpers for end-to-end tests of a command-line program: readable
//! renderings of a finished process, and build contexts in temporary
//! directories.

use std::process::Output;

/// Status, stdout and stderr of `o`, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard output of `o` as text (lossy UTF-8).
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A build context in a temporary directory: `dockerfile` as `Dockerfile`
/// and `files` as (relative path, content), parents created.
///
/// # Panics
/// When the temporary directory or a file cannot be written (a test
/// fixture failing is a test failure).
#[allow(clippy::expect_used)]
pub fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a context directory");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    for (p, c) in files {
        let path = dir.path().join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the file's directory");
        }
        std::fs::write(path, c).expect("write a context file");
    }
    dir
}
