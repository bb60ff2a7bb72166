//! `kiln build`: image config, history, layers, cache, stages, errors.

use crate::support::*;

#[test]
fn example_hello_builds_with_docker_config_semantics() {
    let ctx = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello");
    build("e2e-hello:1", std::path::Path::new(ctx), &[]);
    let c = config("docker.io/library/e2e-hello:1");
    let cfg = &c["config"];
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/bin/sh", "/app/hello.sh"])
    );
    // CMD set after ENTRYPOINT in the same stage is kept.
    assert_eq!(cfg["Cmd"], serde_json::json!(["from a container"]));
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(cfg["WorkingDir"], "/app");
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING_FILE=/app/greeting.txt"), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "PATH inherited from the base: {env:?}"
    );
    // History: base (COPY, RUN, ENV, CMD) + WORKDIR, COPY, COPY, ENV, USER, ENTRYPOINT, CMD.
    let hist = c["history"].as_array().unwrap();
    let non_empty = hist.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(non_empty, c["rootfs"]["diff_ids"].as_array().unwrap().len());
    assert_eq!(
        non_empty,
        manifest("docker.io/library/e2e-hello:1")["layers"]
            .as_array()
            .unwrap()
            .len()
    );
    let by: Vec<&str> = hist
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert!(by.contains(&"WORKDIR /app"), "{by:?}");
    assert!(
        by.iter().any(|b| b.starts_with("COPY hello.sh ./")),
        "{by:?}"
    );
    assert!(by.contains(&"USER nobody"), "{by:?}");
    // The layer of `COPY hello.sh ./` holds exactly the file, owned by root.
    let layers = c["rootfs"]["diff_ids"].as_array().unwrap().len();
    let files = layer_files("docker.io/library/e2e-hello:1", layers - 2);
    let f = files
        .iter()
        .find(|(p, ..)| p.trim_end_matches('/') == "app/hello.sh")
        .expect("hello.sh in layer");
    assert_eq!(f.2, 0, "COPY from the context is owned by root");
    assert!(String::from_utf8_lossy(&f.3).contains("GREETING_FILE"));
    // The last layer is the file copied from the other stage.
    let files = layer_files("docker.io/library/e2e-hello:1", layers - 1);
    let g = files
        .iter()
        .find(|(p, ..)| p == "app/greeting.txt")
        .expect("greeting.txt");
    assert_eq!(
        String::from_utf8_lossy(&g.3),
        "Hello, world! Built by kiln.\n"
    );

    let out = kiln(&["run", "--rm", "e2e-hello:1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        "Hello, world! Built by kiln.\nRunning as nobody in /app, from a container.\n"
    );
}

#[test]
fn rebuild_is_fully_cached_and_one_changed_file_reruns_only_what_reads_it() {
    let df = "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n";
    let ctx = context(df, &[("a.txt", "A1"), ("b.txt", "B")]);
    let first = build("e2e-cache:1", ctx.path(), &[]);
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("(0 of 4 steps cached)"),
        "{}",
        text(&first)
    );
    let again = build("e2e-cache:1", ctx.path(), &[]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("(4 of 4 steps cached)"),
        "{}",
        text(&again)
    );
    std::fs::write(ctx.path().join("a.txt"), "A2").unwrap();
    let changed = build("e2e-cache:1", ctx.path(), &["--explain-cache"]);
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(err.contains("(1 of 4 steps cached)"), "{}", text(&changed));
    assert!(err.contains("file a.txt changed content or mode"), "{err}");
    // Same size, same second: content is fingerprinted, not mtime/size.
    std::fs::write(ctx.path().join("a.txt"), "A3").unwrap();
    build("e2e-cache:1", ctx.path(), &[]);
    let out = kiln(&["run", "--rm", "e2e-cache:1", "cat", "/copy"]);
    assert_eq!(stdout(&out), "A3");
    // --no-cache runs everything.
    let nc = build("e2e-cache:1", ctx.path(), &["--no-cache"]);
    assert!(
        String::from_utf8_lossy(&nc.stderr).contains("(0 of 4 steps cached)"),
        "{}",
        text(&nc)
    );
}

#[test]
fn dockerignore_and_copy_rules() {
    let df = "FROM busybox\nCOPY . /ctx/\nCOPY dir /flat\nCOPY --chown=nobody --chmod=600 a.txt /owned.txt\nCOPY *.md /docs/\nCOPY a.txt /tmp\n";
    let ctx = context(
        df,
        &[
            ("a.txt", "a"),
            ("secret.key", "no"),
            ("dir/x/y.txt", "y"),
            ("dir/keep.log", "keep"),
            ("dir/drop.log", "drop"),
            ("one.md", "1"),
            ("two.md", "2"),
            (".dockerignore", "*.key\n**/*.log\n!dir/keep.log\n"),
        ],
    );
    build("e2e-copy:1", ctx.path(), &[]);
    let run = |cmd: &str| stdout(&kiln(&["run", "--rm", "e2e-copy:1", "sh", "-c", cmd]));
    assert_eq!(
        run("ls /ctx | sort | tr '\\n' ' '"),
        ". .. ".replace(". .. ", "") + "Dockerfile a.txt dir one.md two.md "
    );
    assert_eq!(
        run("test -e /ctx/secret.key && echo present || echo absent"),
        "absent\n"
    );
    assert_eq!(run("ls /flat | sort | tr '\\n' ' '"), "keep.log x ");
    assert_eq!(run("cat /flat/x/y.txt"), "y");
    assert_eq!(run("stat -c '%U %a' /owned.txt"), "nobody 600\n");
    assert_eq!(run("cat /docs/one.md /docs/two.md"), "12");
    // An existing directory is a directory destination without a slash.
    assert_eq!(run("cat /tmp/a.txt"), "a");
}

#[test]
fn multi_stage_target_prunes_unneeded_stages() {
    // `broken` would fail if it ran; the target does not need it.
    let df = "FROM busybox AS broken\nRUN exit 1\n\nFROM busybox AS base\nRUN echo base > /base\n\nFROM base AS final\nRUN echo final >> /base\n";
    let ctx = context(df, &[]);
    build("e2e-stages:base", ctx.path(), &["--target", "base"]);
    assert_eq!(
        stdout(&kiln(&["run", "--rm", "e2e-stages:base", "cat", "/base"])),
        "base\n"
    );
    let out = kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "e2e-stages:final",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&kiln(&["run", "--rm", "e2e-stages:final", "cat", "/base"])),
        "base\nfinal\n"
    );
    let out = kiln(&["build", "--target", "nope", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" not found"));
}

#[test]
fn args_env_and_unused_build_arg_warning() {
    let df = "ARG BASE=busybox\nFROM $BASE\nARG GREETING=hi\nARG UNSET\nENV WHO=${GREETING}-env\nRUN echo \"$GREETING $WHO ${UNSET:-none}\" > /out\nLABEL from.arg=$GREETING\n";
    let ctx = context(df, &[]);
    let out = build(
        "e2e-args:1",
        ctx.path(),
        &["--build-arg", "GREETING=hello", "--build-arg", "NOBODY=x"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("build argument \"NOBODY\" was not consumed"),
        "{err}"
    );
    assert!(!err.contains("\"GREETING\" was not consumed"), "{err}");
    assert_eq!(
        stdout(&kiln(&["run", "--rm", "e2e-args:1", "cat", "/out"])),
        "hello hello-env none\n"
    );
    let c = config("docker.io/library/e2e-args:1");
    assert_eq!(c["config"]["Labels"]["from.arg"], "hello");
    let hist = c["history"].as_array().unwrap();
    assert!(
        hist.iter().any(|h| h["created_by"]
            .as_str()
            .unwrap()
            .starts_with("RUN |1 GREETING=hello ")),
        "{hist:?}"
    );
}

#[test]
fn entrypoint_resets_inherited_cmd_and_metadata_instructions() {
    let df = "FROM busybox\nENTRYPOINT [\"echo\"]\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo triggered > /onbuild\nSHELL [\"/bin/sh\", \"-ec\"]\n";
    let ctx = context(df, &[]);
    build("e2e-meta:1", ctx.path(), &[]);
    let c = config("docker.io/library/e2e-meta:1");
    let cfg = &c["config"];
    assert!(
        cfg.get("Cmd").is_none() || cfg["Cmd"].is_null(),
        "inherited CMD reset: {cfg}"
    );
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(
        cfg["OnBuild"],
        serde_json::json!(["RUN echo triggered > /onbuild"])
    );
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    // The ONBUILD trigger runs in an image built FROM this one, and is not inherited.
    let ctx2 = context("FROM e2e-meta:1\n", &[]);
    build("e2e-meta:child", ctx2.path(), &[]);
    let out = kiln(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "e2e-meta:child",
        "/onbuild",
    ]);
    assert_eq!(stdout(&out), "triggered\n");
    assert!(
        config("docker.io/library/e2e-meta:child")["config"]
            .get("OnBuild")
            .is_none()
    );
}

#[test]
fn failing_step_reports_line_exit_code_and_output_and_tags_nothing() {
    let df = "FROM busybox\nRUN echo fine\nRUN echo about to fail; echo oops >&2; exit 3\n";
    let ctx = context(df, &[]);
    let out = kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "e2e-fail:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(line 3) failed: exit code 3"), "{err}");
    assert!(err.contains("oops"), "{err}");
    assert!(!has_tag("docker.io/library/e2e-fail:1"));
}

#[test]
fn unsupported_features_are_errors_naming_them() {
    for (df, feature) in [
        (
            "FROM busybox\nRUN --security=insecure true\n",
            "RUN --security",
        ),
        (
            "FROM busybox\nADD git@example.invalid:x/y.git /x\n",
            "ADD from git",
        ),
        (
            "FROM busybox\nRUN --mount=type=ssh true\n",
            "RUN --mount=type=ssh",
        ),
    ] {
        let ctx = context(df, &[]);
        let out = kiln(&["build", ctx.path().to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(feature) && err.contains("not supported"),
            "{df}: {err}"
        );
    }
    let ctx = context("FROM busybox\n", &[]);
    let out = kiln(&[
        "build",
        "-o",
        "type=tar,dest=x",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("output type \"tar\" is not supported"));
    let out = kiln(&[
        "build",
        "--cache-to",
        "type=local,dest=x",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only type=registry"));
}

#[test]
fn source_date_epoch_builds_are_reproducible() {
    let df = "FROM busybox\nCOPY f /f\nRUN echo built > /built\nENV A=1\n";
    let ctx = context(df, &[("f", "content")]);
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let p = ctx.path().to_str().unwrap();
    let a = kiln_env(&["build", "--no-cache", "-q", "-t", "e2e-repro:a", p], &env);
    assert!(a.status.success(), "{}", text(&a));
    let b = kiln_env(&["build", "--no-cache", "-q", "-t", "e2e-repro:b", p], &env);
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(
        manifest_digest("docker.io/library/e2e-repro:a"),
        manifest_digest("docker.io/library/e2e-repro:b")
    );
    let c = config("docker.io/library/e2e-repro:a");
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn run_mounts_cache_secret_bind_and_heredocs() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cr3t").unwrap();
    let df = "FROM busybox\n\
RUN --mount=type=cache,target=/cache echo x >> /cache/count && wc -l < /cache/count > /seen\n\
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /leak-check-len && wc -c < /run/secrets/tok > /secret-len && rm /leak-check-len\n\
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/d.txt > /from-bind\n\
RUN --mount=type=tmpfs,target=/scratch touch /scratch/t && ls /scratch > /tmpfs-list\n\
RUN <<EOF\n\
echo heredoc line 1 > /heredoc\n\
echo heredoc line 2 >> /heredoc\n\
EOF\n\
COPY <<EOT /copied-heredoc\n\
hello from heredoc\n\
EOT\n";
    let ctx = context(df, &[("data/d.txt", "bound")]);
    let src = format!("id=tok,src={}", secret.path().display());
    build("e2e-mounts:1", ctx.path(), &["--secret", &src]);
    let run = |cmd: &str| stdout(&kiln(&["run", "--rm", "e2e-mounts:1", "sh", "-c", cmd]));
    assert_eq!(run("cat /secret-len"), "6\n");
    assert_eq!(
        run("test -e /run/secrets/tok && echo leaked || echo clean"),
        "clean\n"
    );
    assert_eq!(run("cat /from-bind"), "bound");
    assert_eq!(
        run("cat /tmpfs-list; test -e /scratch/t && echo leaked || echo clean"),
        "t\nclean\n"
    );
    assert_eq!(run("cat /heredoc"), "heredoc line 1\nheredoc line 2\n");
    assert_eq!(run("cat /copied-heredoc"), "hello from heredoc\n");
    let first = run("cat /seen");
    // The cache mount persists across builds: a forced re-run sees more lines.
    build(
        "e2e-mounts:1",
        ctx.path(),
        &["--secret", &src, "--no-cache"],
    );
    let second = stdout(&kiln(&["run", "--rm", "e2e-mounts:1", "cat", "/seen"]));
    let (a, b): (u32, u32) = (
        first.trim().parse().unwrap(),
        second.trim().parse().unwrap(),
    );
    assert!(b > a, "cache mount did not persist: {a} then {b}");
    // The secret is in no layer.
    let m = manifest("docker.io/library/e2e-mounts:1");
    for i in 0..m["layers"].as_array().unwrap().len() {
        for (path, _, _, content) in layer_files("docker.io/library/e2e-mounts:1", i) {
            assert!(
                !String::from_utf8_lossy(&content).contains("s3cr3t"),
                "secret leaked into {path}"
            );
        }
    }
}

#[test]
fn base_image_missing_from_the_store_is_pulled_from_a_registry() {
    use kiln_testutil::registry::{Registry, RegistryConfig};
    let reg = Registry::start(RegistryConfig::http())
        .expect("start docker-registry (apt-get install docker-registry)");
    reg.push_busybox("library/busybox:latest")
        .expect("push busybox with skopeo");
    // A fresh state dir: nothing local, so FROM must pull.
    let fresh = tempfile::tempdir().unwrap();
    let df = format!(
        "FROM {}/library/busybox:latest\nRUN echo pulled > /p\n",
        reg.addr()
    );
    let ctx = context(&df, &[]);
    let out = kiln_in(
        fresh.path(),
        &[
            "build",
            "--progress=plain",
            "-t",
            "pulled",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln_in(fresh.path(), &["run", "--rm", "pulled", "cat", "/p"]);
    assert_eq!(stdout(&out), "pulled\n", "{}", text(&out));
    // The cache goes to the registry and a fresh machine builds from it.
    let cache_ref = format!("{}/kiln/cache:e2e", reg.addr());
    let out = kiln_in(
        fresh.path(),
        &[
            "build",
            "--cache-to",
            &cache_ref,
            "-t",
            "pulled",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let other = tempfile::tempdir().unwrap();
    let out = kiln_in(
        other.path(),
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &cache_ref,
            "-t",
            "pulled",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(1 of 1 steps cached)"), "{err}");
    assert!(err.contains("imported 1 cache records"), "{err}");
    let out = kiln_in(other.path(), &["run", "--rm", "pulled", "cat", "/p"]);
    assert_eq!(stdout(&out), "pulled\n", "{}", text(&out));
    // --pull with the image present fetches the manifest again and works.
    let out = kiln_in(
        fresh.path(),
        &[
            "build",
            "--pull",
            "-q",
            "-t",
            "pulled",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn outputs_local_dir_oci_archive_and_docker_archive_readable_by_skopeo() {
    let ctx = context(
        "FROM busybox\nCOPY f /f\nRUN rm /bin/vi\n",
        &[("f", "exported")],
    );
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("rootfs");
    let oci = out_dir.path().join("image-oci.tar");
    let docker = out_dir.path().join("image-docker.tar");
    let p = ctx.path().to_str().unwrap();
    build(
        "e2e-out:1",
        ctx.path(),
        &[
            "-o",
            local.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!("type=docker,dest={}", docker.display()),
        ],
    );
    let _ = p;
    assert_eq!(
        std::fs::read_to_string(local.join("f")).unwrap(),
        "exported"
    );
    assert!(local.join("bin/sh").exists());
    assert!(
        !local.join("bin/vi").exists(),
        "the RUN's whiteout was applied"
    );
    let want_layers = manifest("docker.io/library/e2e-out:1")["layers"]
        .as_array()
        .unwrap()
        .len();
    for src in [
        format!("oci-archive:{}", oci.display()),
        format!("docker-archive:{}", docker.display()),
    ] {
        let o = std::process::Command::new("skopeo")
            .args(["inspect", &src])
            .output()
            .expect("run skopeo (apt-get install skopeo)");
        assert!(
            o.status.success(),
            "skopeo inspect {src}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["Layers"].as_array().unwrap().len(),
            want_layers,
            "{src}: {v}"
        );
    }
}

#[test]
fn add_downloads_urls_with_checksum_and_extracts_local_tars() {
    // A loopback HTTP server (python3's http.server) serving one file.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("payload.txt"), "downloaded\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(www.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start python3 -m http.server (apt-get install python3)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}/payload.txt");
    let good = "sha256:".to_string() + &sha256_hex(b"downloaded\n");
    // A local tar, gzip-compressed: ADD extracts it.
    let tarball = {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "inner/file.txt", &b"inner"[..])
            .unwrap();
        b.into_inner().unwrap().finish().unwrap()
    };
    let df = format!(
        "FROM busybox\nADD --checksum={good} {url} /dl/\nADD archive.tgz /unpacked/\nADD notatar.gz /raw/\n"
    );
    let ctx = context(&df, &[]);
    std::fs::write(ctx.path().join("archive.tgz"), tarball).unwrap();
    // gzip, but not of a tar: copied as it is, as Docker does.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"just text").unwrap();
    std::fs::write(ctx.path().join("notatar.gz"), gz.finish().unwrap()).unwrap();
    let out = kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "e2e-add:1",
        ctx.path().to_str().unwrap(),
    ]);
    let df_bad = format!(
        "FROM busybox\nADD --checksum=sha256:{} {url} /dl/\n",
        "0".repeat(64)
    );
    let ctx_bad = context(&df_bad, &[]);
    let bad = kiln(&["build", ctx_bad.path().to_str().unwrap()]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("checksum mismatch"),
        "{}",
        text(&bad)
    );
    let run = |cmd: &str| stdout(&kiln(&["run", "--rm", "e2e-add:1", "sh", "-c", cmd]));
    assert_eq!(
        run("cat /dl/payload.txt; stat -c %a /dl/payload.txt"),
        "downloaded\n600\n"
    );
    assert_eq!(run("cat /unpacked/inner/file.txt"), "inner");
    assert_eq!(run("zcat /raw/notatar.gz"), "just text");
}

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_failing_stage_cancels_a_running_parallel_stage() {
    let df = "FROM busybox AS slow\nRUN sleep 60\n\nFROM busybox AS broken\nRUN sleep 1; exit 5\n\nFROM busybox\nCOPY --from=slow /etc/passwd /a\nCOPY --from=broken /etc/passwd /b\n";
    let ctx = context(df, &[]);
    let out = kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "e2e-cancel:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exit code 5"),
        "the real failure is reported: {err}"
    );
    assert!(!has_tag("docker.io/library/e2e-cancel:1"));
}

fn kiln_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(KILN)
        .args(args)
        .env("KILN_ROOT", root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn stdin_context_and_dockerfile_no_cache_filter_copy_flags_and_shell() {
    let ctx = context(
        "",
        &[
            ("src/a/x.txt", "x"),
            ("src/b/y.txt", "y"),
            ("src/b/skip.log", "no"),
        ],
    );
    std::fs::remove_file(ctx.path().join("Dockerfile")).unwrap();
    let df = r#"FROM busybox AS first
RUN echo 1 > /one

FROM first
SHELL ["/bin/sh", "-c", "echo shell-used > /shell; eval \"$0\""]
RUN true
COPY --parents src/*/x.txt /p/
COPY --exclude=*.log src/b /e/
"#;
    let p = ctx.path().to_str().unwrap();
    // Dockerfile from stdin (-f -).
    let out = kiln_stdin(
        &[
            "build",
            "--progress=plain",
            "-f",
            "-",
            "-t",
            "e2e-stdin:1",
            p,
        ],
        df.as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let run = |cmd: &str| stdout(&kiln(&["run", "--rm", "e2e-stdin:1", "sh", "-c", cmd]));
    assert_eq!(run("cat /p/src/a/x.txt; ls /e | tr '\\n' ' '"), "xy.txt ");
    assert_eq!(run("cat /shell"), "shell-used\n");
    // --no-cache-filter re-runs only the named stage (and what follows it).
    let out = kiln_stdin(
        &[
            "build",
            "--progress=plain",
            "-f",
            "-",
            "--no-cache-filter",
            "first",
            "-t",
            "e2e-stdin:1",
            p,
        ],
        df.as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(0 of 4 steps cached)"),
        "{}",
        text(&out)
    );
    // A context tar on stdin (CONTEXT = -).
    let mut tarball = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("Dockerfile", "FROM busybox\nCOPY hi.txt /hi.txt\n"),
        ("hi.txt", "from a tar"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tarball.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    let out = kiln_stdin(
        &["build", "-q", "-t", "e2e-stdin:tar", "-"],
        &tarball.into_inner().unwrap(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&kiln(&["run", "--rm", "e2e-stdin:tar", "cat", "/hi.txt"])),
        "from a tar"
    );
}

#[test]
fn platform_and_proxy_args_labels_iidfile_and_json_progress() {
    let df = "FROM busybox\nARG TARGETPLATFORM\nARG TARGETARCH\nRUN echo \"$TARGETPLATFORM $TARGETARCH $HTTP_PROXY\" > /plat\n";
    let ctx = context(df, &[]);
    let iid = ctx.path().join("iid");
    let out = kiln(&[
        "build",
        "--progress=json",
        "--build-arg",
        "HTTP_PROXY=http://proxy.invalid:3128",
        "--label",
        "org.example.built-by=kiln",
        "--iidfile",
        iid.to_str().unwrap(),
        "-t",
        "e2e-plat:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // JSON progress: one object per line.
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["event"] == "started"), "{err}");
    assert!(events.iter().any(|e| e["event"] == "finished"), "{err}");
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let run = stdout(&kiln(&["run", "--rm", "e2e-plat:1", "cat", "/plat"]));
    assert_eq!(
        run,
        format!("linux/{arch} {arch} http://proxy.invalid:3128\n")
    );
    let c = config("docker.io/library/e2e-plat:1");
    assert_eq!(c["config"]["Labels"]["org.example.built-by"], "kiln");
    let hist = serde_json::to_string(&c["history"]).unwrap();
    assert!(
        !hist.contains("proxy.invalid"),
        "proxy args stay out of the history: {hist}"
    );
    assert!(hist.contains("TARGETPLATFORM=linux/"), "{hist}");
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        manifest_digest("docker.io/library/e2e-plat:1")
    );
}

#[test]
fn quickstart_script_builds_and_runs_the_example() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.sh"
    ))
    .env("KILN", KILN)
    .env("KILN_ROOT", state.path())
    .output()
    .expect("run examples/quickstart.sh");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        "Hello, world! Built by kiln.\nRunning as nobody in /app, from a container.\n"
    );
}

#[test]
fn concurrent_builds_share_one_store() {
    let df = "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n";
    let ctxs: Vec<_> = (0..3)
        .map(|i| context(df, &[("f", &format!("build {i}"))]))
        .collect();
    let children: Vec<_> = ctxs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            std::process::Command::new(KILN)
                .args([
                    "build",
                    "-q",
                    "-t",
                    &format!("e2e-conc:{i}"),
                    c.path().to_str().unwrap(),
                ])
                .env("KILN_ROOT", root())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    for i in 0..3 {
        let out = kiln(&["run", "--rm", &format!("e2e-conc:{i}"), "cat", "/g"]);
        assert_eq!(stdout(&out), format!("build {i}"));
    }
}

/// `--secret id=..,env=VAR` on the command line, and
/// `RUN --mount=type=secret,env=VAR` in the Dockerfile: the value reaches
/// the step's process and nothing of it reaches the image.
#[test]
fn secrets_from_the_environment_and_as_environment_variables() {
    let df = "FROM busybox\n\
RUN --mount=type=secret,id=tok,env=TOKEN test \"$TOKEN\" = \"$(printf 'env-%s' s3cr3t)\" && test ! -e /run/secrets/tok && echo ${#TOKEN} > /env-len\n\
RUN --mount=type=secret,id=tok,env=ALSO,target=/run/secrets/t2 test \"$ALSO\" = \"$(cat /run/secrets/t2)\" && echo ok > /both\n\
RUN --mount=type=secret,id=GH_TOKEN wc -c < /run/secrets/GH_TOKEN > /gh-len\n";
    let ctx = context(df, &[]);
    let out = kiln_env(
        &[
            "build",
            "--progress=plain",
            "-t",
            "e2e-secret-env:1",
            "--secret",
            "id=tok,env=KILN_TEST_SECRET",
            "--secret",
            "id=GH_TOKEN",
            ctx.path().to_str().unwrap(),
        ],
        &[
            ("KILN_TEST_SECRET", "env-s3cr3t"),
            ("GH_TOKEN", "ghp_12345"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run = |cmd: &str| stdout(&kiln(&["run", "--rm", "e2e-secret-env:1", "sh", "-c", cmd]));
    assert_eq!(run("cat /env-len /both /gh-len"), "10\nok\n9\n");
    let c = config("docker.io/library/e2e-secret-env:1");
    let text_config = c.to_string();
    assert!(!text_config.contains("env-s3cr3t") && !text_config.contains("ghp_12345"));
    let m = manifest("docker.io/library/e2e-secret-env:1");
    for i in 0..m["layers"].as_array().unwrap().len() {
        for (path, _, _, content) in layer_files("docker.io/library/e2e-secret-env:1", i) {
            let body = String::from_utf8_lossy(&content);
            assert!(
                !body.contains("env-s3cr3t") && !body.contains("ghp_12345"),
                "secret in layer {i} at {path}"
            );
        }
    }
    // A missing variable is a clear error.
    let out = kiln(&[
        "build",
        "-t",
        "e2e-secret-env:2",
        "--secret",
        "id=tok,env=KILN_TEST_NOT_SET_ANYWHERE",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KILN_TEST_NOT_SET_ANYWHERE is not set"),
        "{}",
        text(&out)
    );
}
