//! Test support shared by the kiln crates' test suites. Not published.
//!
//! Everything here sets up the *real* thing (a registry process, a busybox
//! root filesystem from Debian's `busybox-static`) and fails with a message
//! naming the package to install when a part is missing; nothing skips.
