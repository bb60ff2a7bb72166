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
    assert!(
        err.contains("digest") || err.contains("unpack") || err.contains("crc"),
        "{err}"
    );
    assert!(!fresh.blob_path(&img.layer_digest).exists());
    assert!(fresh.snapshots().is_empty(), "{:?}", fresh.snapshots());
    assert!(fresh.tagged(&by_digest).is_none());
}

#[test]
fn layers_already_present_are_not_downloaded_again() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    let img = reg
        .push_busybox("library/busybox:latest")
        .expect("push busybox");
    let base = format!("{}/library/busybox:latest", reg.addr());
    // Build and push a two-layer image on that base from another store.
    let builder = Env::new();
    builder.ok(&["pull", "-q", &base]);
    let ctx = context(
        &format!("FROM {base}\nCOPY hello.txt /hello.txt\n"),
        &[("hello.txt", "hi\n")],
    );
    let app = format!("{}/team/app:1", reg.addr());
    builder.ok(&[
        "build",
        "--progress=plain",
        "-q",
        "-t",
        &app,
        path_str(ctx.path()),
    ]);
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
