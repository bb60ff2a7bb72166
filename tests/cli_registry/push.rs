//! `kiln push` and `kiln build --push`: per-layer lines, layers the
//! registry has skipped, cross-repository mounts, and images skopeo reads.

use crate::support::*;

#[test]
fn push_uploads_mounts_and_skips_and_skopeo_reads_the_result() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    let env = Env::new();
    let (img, _, app) = app_on_pushed_busybox(&reg, &env, ("data.txt", "payload\n"), "v1");
    let local = env.tagged(&app).expect("built image tagged");
    let manifest = env.blob_json(&local);
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = std::fs::metadata(env.blob_path(&local)).unwrap().len();

    let out = env.ok(&["push", &app]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("The push refers to repository [{}/team/app]", reg.addr()),
            // The base layer came from library/busybox of this registry:
            // mounted, not uploaded. Docker lists the top layer first, but
            // the order of the two lines depends on which finishes first.
            lines[1].to_string(),
            lines[2].to_string(),
            format!("v1: digest: {local} size: {size}"),
        ],
        "{out}"
    );
    assert!(
        lines.contains(&format!("{}: Pushed", short(&top)).as_str()),
        "{out}"
    );
    assert!(
        lines.contains(
            &format!("{}: Mounted from library/busybox", short(&img.layer_digest)).as_str()
        ),
        "{out}"
    );

    // skopeo sees the same manifest digest and both layers.
    let inspect = skopeo_inspect(&reg, &app);
    assert_eq!(inspect["Digest"], local.as_str(), "{inspect}");
    assert_eq!(
        inspect["Layers"],
        serde_json::json!([img.layer_digest, top]),
        "{inspect}"
    );

    // Pushing again: every layer is already there.
    let again = env.ok(&["push", &app]);
    assert!(
        again.contains(&format!("{}: Layer already exists", short(&top))),
        "{again}"
    );
    assert!(
        again.contains(&format!(
            "{}: Layer already exists",
            short(&img.layer_digest)
        )),
        "{again}"
    );
    assert!(
        again.ends_with(&format!("v1: digest: {local} size: {size}\n")),
        "{again}"
    );

    // --all-tags pushes every tag of the repository in the store.
    let v2 = format!("{}/team/app:v2", reg.addr());
    env.ok(&["tag", &app, &v2]);
    let all = env.ok(&["push", "--all-tags", &format!("{}/team/app", reg.addr())]);
    assert!(
        all.contains(&format!("v1: digest: {local} size: {size}")),
        "{all}"
    );
    assert!(
        all.contains(&format!("v2: digest: {local} size: {size}")),
        "{all}"
    );
    assert_eq!(skopeo_inspect(&reg, &v2)["Digest"], local.as_str());
    let bad = env.kiln(&["push", "-a", &app]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));

    // A name the store does not have.
    let missing = env.kiln(&["push", &format!("{}/team/nope:1", reg.addr())]);
    assert_eq!(missing.status.code(), Some(125), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such image"));
}

#[test]
fn build_push_pushes_every_tag() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    reg.push_busybox("library/busybox:latest")
        .expect("push busybox");
    let base = format!("{}/library/busybox:latest", reg.addr());
    let env = Env::new();
    let ctx = context(&format!("FROM {base}\nRUN echo built > /built.txt\n"), &[]);
    let t1 = format!("{}/pushed/one:1", reg.addr());
    let t2 = format!("{}/pushed/two:2", reg.addr());
    let out = env.kiln(&[
        "build",
        "--progress=plain",
        "--push",
        "-t",
        &t1,
        "-t",
        &t2,
        path_str(ctx.path()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let local = env.tagged(&t1).expect("tagged");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("1: digest: {local}")), "{err}");
    assert!(err.contains(&format!("2: digest: {local}")), "{err}");
    for t in [&t1, &t2] {
        assert_eq!(skopeo_inspect(&reg, t)["Digest"], local.as_str());
    }

    // -o type=registry does the same.
    let t3 = format!("{}/pushed/three:3", reg.addr());
    let out = env.kiln(&[
        "build",
        "--progress=plain",
        "-o",
        "type=registry",
        "-t",
        &t3,
        path_str(ctx.path()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(skopeo_inspect(&reg, &t3)["Digest"], local.as_str());

    // Pulled back into a fresh store, the image runs.
    let fresh = Env::new();
    fresh.ok(&["pull", "-q", &t2]);
    let run = fresh.kiln(&["run", "--rm", &t2, "/bin/cat", "/built.txt"]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(stdout(&run), "built\n");
}
