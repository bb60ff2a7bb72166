//! Several kiln processes on one state directory at the same time: none
//! fails because of the others and the store stays consistent (every
//! reachable blob present and matching its digest, every tag resolvable).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../cli_build/support.rs"]
mod support;

use std::process::{Child, Command, Stdio};

use support::{KILN, context, root, text};

fn spawn(args: &[&str]) -> Child {
    Command::new(KILN)
        .args(args)
        .env("KILN_ROOT", root())
        // Reproducible, so the two racing builds must agree byte for byte.
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln")
}

fn assert_store_consistent() {
    let r = kiln_build_engine::Root::open(root()).expect("open root");
    let report = r.store().verify().expect("verify the store");
    assert!(report.is_ok(), "store damaged: {report:?}");
    for entry in r.store().list().expect("list") {
        if let Some(name) = entry.name {
            r.store().resolve(&name).expect("every tag resolves");
        }
    }
}

#[test]
fn four_builds_at_once_share_one_store() {
    // Two identical builds race on the same cache keys; two others share the
    // base and write different layers.
    let same = "FROM busybox\nRUN echo same > /same && sleep 0.2\nCOPY a /a\n";
    let ctx_a = context(same, &[("a", "A")]);
    let ctx_b = context(same, &[("a", "A")]);
    let ctx_c = context(
        "FROM busybox\nRUN seq 1 500 > /c\nCOPY . /ctx/\n",
        &[("x/1", "1"), ("x/2", "2")],
    );
    let ctx_d = context(
        "FROM busybox AS one\nRUN echo d1 > /d1\nFROM busybox\nCOPY --from=one /d1 /d1\nRUN cat /d1\n",
        &[],
    );
    let jobs: Vec<(&str, Child)> = [
        ("race:a", &ctx_a),
        ("race:b", &ctx_b),
        ("other:c", &ctx_c),
        ("other:d", &ctx_d),
    ]
    .into_iter()
    .map(|(tag, ctx)| {
        (
            tag,
            spawn(&[
                "build",
                "--progress=plain",
                "-t",
                tag,
                ctx.path().to_str().unwrap(),
            ]),
        )
    })
    .collect();
    for (tag, child) in jobs {
        let out = child.wait_with_output().expect("wait for kiln");
        assert!(
            out.status.success(),
            "build of {tag} failed:\n{}",
            text(&out)
        );
    }
    // The racing builds produced the same image (SOURCE_DATE_EPOCH is set).
    assert_eq!(
        support::manifest_digest("docker.io/library/race:a"),
        support::manifest_digest("docker.io/library/race:b")
    );
    assert_store_consistent();
    // The images run and hold what they should.
    let out = support::kiln(&["run", "--rm", "other:d", "cat", "/d1"]);
    assert_eq!(support::stdout(&out), "d1\n", "{}", text(&out));
    // Nothing the racing builds wrote confuses the cache: a rebuild is
    // entirely cached.
    let out = spawn(&[
        "build",
        "--progress=plain",
        "-t",
        "race:a",
        ctx_a.path().to_str().unwrap(),
    ])
    .wait_with_output()
    .expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        log.matches("CACHED").count(),
        2,
        "RUN and COPY come from the cache:\n{log}"
    );
}

#[test]
fn builds_while_tags_move_and_images_are_imported() {
    // One process keeps retagging and building a small image over and over
    // while another builds: tag updates from both land, none is lost.
    let ctx = context("FROM busybox\nARG N\nRUN echo $N > /n\n", &[]);
    let path = ctx.path().to_str().unwrap().to_string();
    let mut children = Vec::new();
    for i in 0..3 {
        let arg = format!("N={i}");
        let tag = format!("churn:{i}");
        children.push((
            tag.clone(),
            spawn(&[
                "build",
                "--progress=plain",
                "--build-arg",
                &arg,
                "-t",
                &tag,
                &path,
            ]),
        ));
    }
    for (tag, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "build of {tag} failed:\n{}",
            text(&out)
        );
    }
    for i in 0..3 {
        let out = support::kiln(&["run", "--rm", &format!("churn:{i}"), "cat", "/n"]);
        assert_eq!(support::stdout(&out), format!("{i}\n"), "{}", text(&out));
    }
    assert_store_consistent();
}
