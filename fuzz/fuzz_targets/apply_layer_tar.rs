//! Apply an arbitrary (possibly compressed) byte string as a layer into a
//! fresh root next to a sentinel directory. Property: whatever the input,
//! the apply returns (Ok or Err, never a panic) and nothing outside the
//! root is created or changed.
#![no_main]

use std::fs;

use kiln_image_layers::{ApplyOptions, apply_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    if fs::create_dir(&root).is_err()
        || fs::create_dir(&outside).is_err()
        || fs::write(outside.join("secret"), b"s").is_err()
    {
        return;
    }
    let mut options = ApplyOptions::default();
    // Keep runs cheap: a claimed size beyond this is refused up front.
    options.max_entry_size = 1 << 20;
    let _ = apply_layer(data, &root, &options);
    let siblings: Vec<_> = fs::read_dir(tmp.path())
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(siblings.len(), 2, "created next to the root: {siblings:?}");
    let outside_entries: Vec<_> = fs::read_dir(&outside)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        outside_entries.len(),
        1,
        "created outside the root: {outside_entries:?}"
    );
    assert_eq!(
        fs::read(outside.join("secret")).ok().as_deref(),
        Some(&b"s"[..])
    );
});
