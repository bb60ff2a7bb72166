//! `kiln run`: ENTRYPOINT/CMD rules, flags, exit status.

use crate::support::*;

fn image() -> &'static str {
    static IMG: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let df = "FROM busybox\nENV FOO=image\nWORKDIR /work\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo default $FOO\"]\n";
        let ctx = context(df, &[]);
        build("e2e-run:1", ctx.path(), &[]);
    });
    "e2e-run:1"
}

#[test]
fn entrypoint_and_cmd_combine_as_docker_does() {
    let img = image();
    assert_eq!(stdout(&kiln(&["run", "--rm", img])), "default image\n");
    assert_eq!(
        stdout(&kiln(&["run", "--rm", img, "echo override $FOO"])),
        "override image\n"
    );
    assert_eq!(
        stdout(&kiln(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            img,
            "plain",
            "args"
        ])),
        "plain args\n"
    );
}

#[test]
fn exit_status_becomes_kilns() {
    let out = kiln(&["run", "--rm", image(), "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = kiln(&["run", "--rm", "no-such-image:here"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn env_user_workdir_volume_and_limits() {
    let img = image();
    let out = kiln(&[
        "run",
        "--rm",
        "-e",
        "FOO=flag",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        img,
        "echo $FOO $(id -u) $(pwd)",
    ]);
    assert_eq!(stdout(&out), "flag 65534 /tmp\n", "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from host").unwrap();
    let vol = format!("{}:/host:ro", dir.path().display());
    let out = kiln(&[
        "run",
        "--rm",
        "-v",
        &vol,
        img,
        "cat /host/in.txt; touch /host/x 2>/dev/null || echo ' read-only'",
    ]);
    assert_eq!(stdout(&out), "from host read-only\n", "{}", text(&out));
    let out = kiln(&[
        "run",
        "--rm",
        "--read-only",
        img,
        "touch /x 2>/dev/null || echo ro",
    ]);
    assert_eq!(stdout(&out), "ro\n", "{}", text(&out));
    let out = kiln(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        img,
        "echo limited",
    ]);
    assert_eq!(stdout(&out), "limited\n", "{}", text(&out));
    let out = kiln(&["run", "--rm", "-i", img, "cat"]);
    assert!(out.status.success(), "{}", text(&out));
}
