//! `kiln pull`: Docker's output, the image ready to run (snapshots in
//! place), digests verified, layers already present reused.

use crate::support::*;

#[test]
fn pull_by_tag_lands_ready_to_run_and_is_then_up_to_date() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    let img = reg
        .push_busybox("library/busybox:latest")
        .expect("push busybox");
    let env = Env::new();
    let name = format!("{}/library/busybox", reg.addr());
    let out = env.ok(&["pull", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "Using default tag: latest".to_string(),
            format!("latest: Pulling from {name}"),
            format!("{}: Pull complete", short(&img.layer_digest)),
            format!("Digest: {}", img.manifest_digest),
            format!("Status: Downloaded newer image for {name}:latest"),
            format!("{name}:latest"),
        ],
        "{out}"
    );
    // Store: manifest tagged, layer blob present and verified, config there.
    assert_eq!(
        env.tagged(&format!("{name}:latest")),
        Some(img.manifest_digest.clone())
    );
    let blob = std::fs::read(env.blob_path(&img.layer_digest)).expect("layer blob");
    assert_eq!(blob.len() as u64, img.layer_size);
    assert!(env.blob_path(&img.config_digest).is_file());
    // Ready to run: the layer is unpacked as the snapshot of its chain id
    // (= its diffID for the bottom layer), with busybox inside.
    let diff = diff_ids(&env, &format!("{name}:latest"));
    let snap = format!("sha256-{}", diff[0].trim_start_matches("sha256:"));
    assert_eq!(env.snapshots(), vec![snap.clone()]);
    assert!(
        env.root()
            .join("snapshots")
            .join(&snap)
            .join("bin/busybox")
            .is_file()
    );
    // No unpacking leftovers.
    let stray: Vec<_> = std::fs::read_dir(env.root().join("snapshots"))
        .expect("snapshots")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "staging dirs left: {stray:?}");

    let run = env.kiln(&["run", "--rm", &name, "/bin/sh", "-c", "echo ran-$((6*7))"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(stdout(&run).contains("ran-42"), "{}", text(&run));

    let again = env.ok(&["pull", &format!("{name}:latest")]);
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        vec![
            format!("Digest: {}", img.manifest_digest),
            format!("Status: Image is up to date for {name}:latest"),
            format!("{name}:latest"),
        ],
        "{again}"
    );

    let quiet = env.ok(&["pull", "-q", &name]);
    assert_eq!(quiet, format!("{name}:latest\n"));
}

#[test]
fn pull_by_digest_verifies_and_rejects_wrong_or_corrupt_content() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    let img = reg.push_busybox("app/base:1").expect("push busybox");
    let env = Env::new();
    let name = format!("{}/app/base", reg.addr());
    let by_digest = format!("{name}@{}", img.manifest_digest);
    let out = env.ok(&["pull", &by_digest]);
    assert!(
        out.contains(&format!("{}: Pull complete", short(&img.layer_digest))),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {by_digest}")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some(by_digest.as_str()), "{out}");
    assert_eq!(env.tagged(&by_digest), Some(img.manifest_digest.clone()));

    // A digest the registry does not have: refused, nothing tagged.
    let wrong = format!("{name}@sha256:{}", "0".repeat(64));
    let out = env.kiln(&["pull", &wrong]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(env.tagged(&wrong).is_none());

    // Corrupt the layer in the registry's storage: the bytes no longer hash
    // to the digest, so a fresh pull fails and leaves neither blob nor
    // snapshot behind.
    let (_, hex) = img.layer_digest.split_once(':').unwrap();
    let data = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).expect("registry blob");
    let n = bytes.len();
    bytes[n - 20] ^= 0xff;
    std::fs::write(&data, &bytes).expect("corrupt blob");
    let fresh = Env::new();
    let out = fresh.kiln(&["pull", &by_digest]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // Whichever notices first: the digest check at the end of the stream,
    // or the unpacker meeting corrupt deflate data on the way.
    assert!(
        err.contains("digest mismatch") || err.contains("unpack layer"),
        "{err}"
    );
    assert!(!fresh.blob_path(&img.layer_digest).exists());
    assert!(fresh.snapshots().is_empty(), "{:?}", fresh.snapshots());
    assert!(fresh.tagged(&by_digest).is_none());

    // A registry that serves other bytes for the manifest digest (here: a
    // manifest with a trailing newline added in its storage) is caught
    // too, by digest and by tag.
    let (_, mhex) = img.manifest_digest.split_once(':').unwrap();
    let mdata = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&mhex[..2])
        .join(mhex)
        .join("data");
    let mut m = std::fs::read(&mdata).expect("registry manifest");
    m.push(b'\n');
    std::fs::write(&mdata, &m).expect("alter manifest");
    for r in [by_digest.clone(), format!("{name}:1")] {
        let out = fresh.kiln(&["pull", &r]);
        assert_eq!(out.status.code(), Some(125), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(fresh.tagged(&r).is_none());
    }
}

#[test]
fn layers_already_present_are_not_downloaded_again() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    // Build and push a two-layer image on that base from another store.
    let builder = Env::new();
    let (img, base, app) = app_on_pushed_busybox(&reg, &builder, ("hello.txt", "hi\n"), "1");
    builder.ok(&["push", &app]);
    let app_layers = diff_ids(&builder, &app);
    assert_eq!(app_layers.len(), 2);

    let env = Env::new();
    env.ok(&["pull", "-q", &base]);
    let out = env.ok(&["pull", &app]);
    let m = builder.blob_json(&builder.tagged(&app).unwrap());
    let top = m["layers"][1]["digest"].as_str().unwrap();
    assert!(
        out.contains(&format!("{}: Already exists", short(&img.layer_digest))),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: Pull complete", short(top))),
        "{out}"
    );
    assert_eq!(env.snapshots().len(), 2, "{:?}", env.snapshots());
    let run = env.kiln(&["run", "--rm", &app, "/bin/cat", "/hello.txt"]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(stdout(&run), "hi\n");
}

/// sha256 of `data` with coreutils (the test crate has no hasher).
fn sha256(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("sha256:{}", &String::from_utf8_lossy(&out.stdout)[..64])
}

#[test]
fn platform_selects_from_a_multi_platform_index() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    // An index of two images sharing the busybox layer: the host's
    // architecture and riscv64 (configs differ only in architecture).
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let img = kiln_testutil::registry::build_busybox_layout(&layout).expect("busybox layout");
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let put = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blob(&d), data).unwrap();
        d
    };
    let host_cfg = std::fs::read(blob(&img.config_digest)).unwrap();
    let host_arch = serde_json::from_slice::<serde_json::Value>(&host_cfg).unwrap()["architecture"]
        .as_str()
        .unwrap()
        .to_string();
    let other_cfg = String::from_utf8(host_cfg.clone()).unwrap().replace(
        &format!("\"architecture\":\"{host_arch}\""),
        "\"architecture\":\"riscv64\"",
    );
    let other_cfg_digest = put(other_cfg.as_bytes());
    let host_manifest = std::fs::read(blob(&img.manifest_digest)).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&host_manifest).unwrap();
    m["config"]["digest"] = other_cfg_digest.clone().into();
    m["config"]["size"] = other_cfg.len().into();
    let other_manifest = serde_json::to_string(&m).unwrap();
    let other_manifest_digest = put(other_manifest.as_bytes());
    let entry = |d: &str, size: usize, arch: &str| {
        serde_json::json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":d,"size":size,
            "platform":{"os":"linux","architecture":arch}})
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&other_manifest_digest, other_manifest.len(), "riscv64"),
            entry(&img.manifest_digest, host_manifest.len(), &host_arch),
        ]
    }))
    .unwrap();
    let index_digest = put(&index);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.index.v1+json","digest":index_digest,"size":index.len(),
             "annotations":{"org.opencontainers.image.ref.name":"latest"}}]}))
        .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/multi/img:1", reg.addr()))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", text(&out));

    let name = format!("{}/multi/img:1", reg.addr());
    let env = Env::new();
    let out = env.ok(&["pull", &name]);
    // Docker's Digest line names what the tag points at: the index.
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    assert_eq!(env.tagged(&name), Some(img.manifest_digest.clone()));

    let riscv = Env::new();
    let out = riscv.ok(&["pull", "--platform", "linux/riscv64", &name]);
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    assert_eq!(riscv.tagged(&name), Some(other_manifest_digest.clone()));
    let m = riscv.blob_json(&other_manifest_digest);
    assert_eq!(m["config"]["digest"], other_cfg_digest.as_str());
    assert_eq!(
        riscv.blob_json(&other_cfg_digest)["architecture"],
        "riscv64"
    );

    let none = riscv.kiln(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(none.status.code(), Some(125), "{}", text(&none));
    let bad = riscv.kiln(&["pull", "--platform", "s390x", &name]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
}
