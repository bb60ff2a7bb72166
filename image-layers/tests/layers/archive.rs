//! docker save / docker load archives and rootfs import, checked with skopeo.

use std::fs;

use kiln_image_layers::archive::{ImportOptions, docker_load, docker_save, import_rootfs_tar};
use kiln_image_layers::{ApplyOptions, Digest, Store};

use crate::common::*;
use crate::interop::tool;
use crate::store::small_image;

#[test]
fn docker_save_is_readable_by_skopeo_and_loads_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path().join("s"))?;
    let m = small_image(&store, "saved")?;
    store.tag("app:1", &m)?;
    let archive = tmp.path().join("save.tar");
    docker_save(&store, &["app:1"], fs::File::create(&archive)?)?;

    // skopeo reads the classic manifest.json view of it.
    let out = tmp.path().join("viaskopeo");
    tool(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:x", out.display()),
        ],
    );
    // The OCI-layout view inside the same archive is valid too.
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir(&unpacked)?;
    tool(
        "tar",
        "tar",
        &[
            "-xf",
            &archive.to_string_lossy(),
            "-C",
            &unpacked.to_string_lossy(),
        ],
    );
    let ls = tool(
        "umoci",
        "umoci",
        &["ls", "--layout", &unpacked.to_string_lossy()],
    );
    assert_eq!(ls.trim(), "1");

    // And it loads back into a fresh store under the same tag.
    let other = Store::open(tmp.path().join("other"))?;
    let loaded = docker_load(&other, fs::File::open(&archive)?)?;
    assert_eq!(loaded.len(), 1);
    assert!(other.resolve("app:1").is_ok());
    assert!(other.verify()?.is_ok());
    Ok(())
}

#[test]
fn docker_load_reads_classic_archives_written_by_skopeo() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path().join("s"))?;
    let m = small_image(&store, "classic")?;
    store.tag("t", &m)?;
    let archive = tmp.path().join("classic.tar");
    tool(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:t", store.root().display()),
            &format!("docker-archive:{}:example.com/app:v2", archive.display()),
        ],
    );
    let other = Store::open(tmp.path().join("other"))?;
    docker_load(&other, fs::File::open(&archive)?)?;
    let desc = other.resolve("example.com/app:v2")?;
    let (manifest, _) = other.manifest(&Digest::from_oci(desc.digest())?)?;
    let root = tmp.path().join("root");
    fs::create_dir(&root)?;
    for l in manifest.layers() {
        other.apply_layer(l, &root, &ApplyOptions::default())?;
    }
    assert_eq!(fs::read_to_string(root.join("hello.txt"))?, "classic");
    // The OCI-archive form (index.json only) loads too.
    let oci_archive = tmp.path().join("oci.tar");
    tool(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:t", store.root().display()),
            &format!("oci-archive:{}:ociname", oci_archive.display()),
        ],
    );
    let third = Store::open(tmp.path().join("third"))?;
    docker_load(&third, fs::File::open(&oci_archive)?)?;
    assert!(third.resolve("ociname").is_ok());
    Ok(())
}

#[test]
fn busybox_rootfs_tarball_imports_as_a_single_layer_image() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rootfs = tmp.path().join("rootfs");
    kiln_testutil::rootfs::busybox_rootfs(&rootfs)?;
    let tarball = tmp.path().join("rootfs.tar.gz");
    tool(
        "tar",
        "tar",
        &[
            "-czf",
            &tarball.to_string_lossy(),
            "-C",
            &rootfs.to_string_lossy(),
            ".",
        ],
    );
    let store = Store::open(tmp.path().join("s"))?;
    let mut o = ImportOptions::default();
    o.tag = Some("busybox".into());
    let m = import_rootfs_tar(&store, fs::File::open(&tarball)?, &o)?;
    assert_eq!(store.resolve("busybox")?.digest(), m.digest());
    let inspect: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:busybox", store.root().display()),
        ],
    ))?;
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(inspect["Os"], "linux");
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:busybox", store.root().display()),
            &bundle.to_string_lossy(),
        ],
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(
        fs::symlink_metadata(bundle.join("rootfs/bin/sh"))?
            .file_type()
            .is_symlink()
    );
    Ok(())
}
