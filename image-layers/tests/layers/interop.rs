//! Interop with the real tools from Debian: skopeo and umoci read what the
//! store writes; the store reads what skopeo writes.

use std::path::Path;
use std::process::Command;

use kiln_image_layers::{ApplyOptions, Digest, Store};

use crate::common::*;
use crate::store::small_image;

pub fn tool(name: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} not runnable ({e}); install the Debian package {package}")
    });
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn skopeo_and_umoci_read_the_store() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path().join("layout"))?;
    let m = small_image(&store, "hello from kiln")?;
    store.tag("latest", &m)?;
    let dir = s(store.root());

    let inspect: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        "skopeo",
        &["inspect", &format!("oci:{dir}:latest")],
    ))?;
    assert_eq!(inspect["Digest"], m.digest().to_string());
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));

    let ls = tool("umoci", "umoci", &["ls", "--layout", &dir]);
    assert_eq!(ls.trim(), "latest");
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        "umoci",
        &["unpack", "--image", &format!("{dir}:latest"), &s(&bundle)],
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt"))?,
        "hello from kiln"
    );
    Ok(())
}

#[test]
fn the_store_reads_what_skopeo_copies() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let a = Store::open(tmp.path().join("a"))?;
    let m = small_image(&a, "copied")?;
    a.tag("t", &m)?;
    let b = tmp.path().join("b");
    tool(
        "skopeo",
        "skopeo",
        &[
            "copy",
            "--dest-compress-format",
            "zstd",
            &format!("oci:{}:t", s(a.root())),
            &format!("oci:{}:copied", s(&b)),
        ],
    );
    let store = Store::open(&b)?;
    let desc = store.resolve("copied")?;
    let (manifest, _) = store.manifest(&Digest::from_oci(desc.digest())?)?;
    assert!(store.verify()?.is_ok());
    let root = tmp.path().join("root");
    std::fs::create_dir(&root)?;
    for l in manifest.layers() {
        store.apply_layer(l, &root, &ApplyOptions::default())?;
    }
    assert_eq!(std::fs::read_to_string(root.join("hello.txt"))?, "copied");
    Ok(())
}
