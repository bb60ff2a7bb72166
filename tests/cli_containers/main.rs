#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! End-to-end tests of the container commands (`run` keeping containers,
//! `ps`, `rm`, `start`, `stop`, `wait`, `logs`, `commit`, `exec`, `run -d`)
//! against real containers: the kiln binary, namespaces and overlayfs (run
//! as root), and the busybox base image `tests/cli_build` builds.

#[path = "../cli_build/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{config, kiln, layer_files, manifest, root, stdout, text};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `kiln ps -a` as rows of columns, split at the header's column starts
/// (Docker's tabwriter output).
fn ps_rows(args: &[&str]) -> (String, Vec<Vec<String>>) {
    let out = kiln(args);
    assert!(out.status.success(), "{}", text(&out));
    let body = stdout(&out);
    let mut lines = body.lines();
    let header = lines.next().expect("header").to_string();
    let names = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    let starts: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .find(n)
                .unwrap_or_else(|| panic!("{n} in {header:?}"))
        })
        .collect();
    let rows = lines
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            (0..starts.len())
                .map(|i| {
                    let end = starts.get(i + 1).copied().unwrap_or(chars.len());
                    chars[starts[i].min(chars.len())..end.min(chars.len())]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string()
                })
                .collect()
        })
        .collect();
    (header, rows)
}

fn row_of(name: &str, all: bool) -> Option<Vec<String>> {
    let args: &[&str] = if all { &["ps", "-a"] } else { &["ps"] };
    ps_rows(args).1.into_iter().find(|r| r[6] == name)
}

fn base_layer_count() -> usize {
    manifest("docker.io/library/busybox:latest")["layers"]
        .as_array()
        .unwrap()
        .len()
}

fn container_dirs() -> Vec<PathBuf> {
    std::fs::read_dir(root().join("containers"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn commit_workflow_keeps_added_and_deleted_files() {
    let out = kiln(&[
        "run",
        "--name",
        "cw",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f; rm /bin/vi; mkdir -p /d && echo x > /d/x",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // `diff` lists the changes the commit will contain, Docker's way.
    let out = kiln(&["diff", "cw"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    for expected in ["C /bin", "D /bin/vi", "A /d", "A /d/x", "A /f"] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} in {lines:?}"
        );
    }
    // Nothing the runtime left (mount points of /dev, /proc, /sys; /etc's
    // mount-point files).
    for absent in ["/dev", "/proc", "/sys", "/etc"] {
        assert!(
            !lines.iter().any(|l| &l[2..] == absent),
            "{absent} in {lines:?}"
        );
    }
    let mut sorted = lines.clone();
    sorted.sort_by(|a, b| a[2..].cmp(&b[2..]));
    assert_eq!(lines, sorted, "sorted by path");
    let out = kiln(&[
        "commit",
        "-m",
        "my change",
        "-a",
        "Ann <ann@example.com>",
        "-c",
        "ENV GREETING=hello",
        "-c",
        "CMD [\"cat\", \"/f\"]",
        "-c",
        "LABEL stage=committed",
        "-c",
        "WORKDIR /d",
        "cw",
        "img-cw:v1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the image id: {id:?}"
    );
    // The id is the config digest of the tagged image.
    let m = manifest("docker.io/library/img-cw:v1");
    assert_eq!(m["config"]["digest"], id.as_str());

    // The new image: the file is there, the deleted one is gone, the
    // base's files are still there.
    let out = kiln(&["run", "--rm", "img-cw:v1", "cat", "/f"]);
    assert_eq!(stdout(&out), "hi\n", "{}", text(&out));
    let out = kiln(&["run", "--rm", "img-cw:v1", "ls", "/bin/vi"]);
    assert_eq!(code(&out), 1, "deleted file must vanish: {}", text(&out));
    let out = kiln(&["run", "--rm", "img-cw:v1", "ls", "/bin/ls"]);
    assert!(out.status.success(), "{}", text(&out));
    // -c changes: CMD, ENV, WORKDIR apply to the next run.
    let out = kiln(&["run", "--rm", "img-cw:v1"]);
    assert_eq!(stdout(&out), "hi\n", "{}", text(&out));
    let out = kiln(&[
        "run",
        "--rm",
        "img-cw:v1",
        "sh",
        "-c",
        "echo $GREETING; pwd",
    ]);
    assert_eq!(stdout(&out), "hello\n/d\n", "{}", text(&out));

    // The store: one more layer than busybox, holding exactly the changes
    // as OCI whiteouts; the config's history and metadata.
    let base_layers = manifest("docker.io/library/busybox:latest")["layers"]
        .as_array()
        .unwrap()
        .len();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers + 1);
    let files = layer_files("docker.io/library/img-cw:v1", base_layers);
    let paths: Vec<&str> = files.iter().map(|f| f.0.trim_end_matches('/')).collect();
    assert!(paths.contains(&"f"), "{paths:?}");
    assert!(paths.contains(&"bin/.wh.vi"), "{paths:?}");
    assert!(paths.contains(&"d/x"), "{paths:?}");
    let f = files.iter().find(|f| f.0 == "f").unwrap();
    assert_eq!(f.3, b"hi\n");
    let cfg = config("docker.io/library/img-cw:v1");
    let history = cfg["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["comment"], "my change");
    assert!(
        last["created_by"]
            .as_str()
            .unwrap()
            .starts_with("sh -c echo hi > /f"),
        "{last}"
    );
    assert_eq!(cfg["author"], "Ann <ann@example.com>");
    assert_eq!(cfg["config"]["Labels"]["stage"], "committed");
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
        base_layers + 1
    );

    // An instruction commit does not accept is refused, naming it.
    let out = kiln(&["commit", "-c", "RUN true", "cw", "img-cw:bad"]);
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(stderr(&out).contains("RUN"), "{}", text(&out));
    assert!(kiln(&["rm", "cw"]).status.success());
}

#[test]
fn ps_shows_docker_columns_before_and_after_exit() {
    let out = kiln(&["run", "-d", "--name", "ps-run", "busybox", "sleep", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let (header, _) = ps_rows(&["ps"]);
    assert!(
        header.starts_with("CONTAINER ID   IMAGE"),
        "Docker's spacing: {header:?}"
    );
    let row = row_of("ps-run", false).expect("running container listed by ps");
    assert_eq!(row[0], &id[..12]);
    assert_eq!(row[1], "busybox");
    assert_eq!(row[2], "\"sleep 60\"");
    assert!(row[3].ends_with(" ago"), "{row:?}");
    assert!(row[4].starts_with("Up "), "{row:?}");
    assert_eq!(row[5], "");
    // --no-trunc and -q.
    let out = kiln(&["ps", "-q", "--no-trunc", "--filter", "name=ps-run"]);
    assert_eq!(stdout(&out).trim(), id);
    let out = kiln(&["ps", "-q", "--filter", "name=ps-run"]);
    assert_eq!(stdout(&out).trim(), &id[..12]);

    // --format json: Docker's fields, one object per line.
    let out = kiln(&["ps", "--format", "json", "--filter", "name=ps-run"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ID"], &id[..12]);
    assert_eq!(v["Names"], "ps-run");
    assert_eq!(v["State"], "running");
    assert_eq!(v["Command"], "\"sleep 60\"");
    assert!(v["Status"].as_str().unwrap().starts_with("Up "));
    assert!(v["CreatedAt"].as_str().unwrap().ends_with(" +0000 UTC"));
    // Go templates, plain and as a table.
    let out = kiln(&[
        "ps",
        "--format",
        "{{.Names}} {{.State}}",
        "--filter",
        "name=ps-run",
    ]);
    assert_eq!(stdout(&out), "ps-run running\n", "{}", text(&out));
    let out = kiln(&[
        "ps",
        "--format",
        "table {{.Names}}\t{{.Status}}",
        "--filter",
        "name=ps-run",
    ]);
    let body = stdout(&out);
    assert!(body.starts_with("NAMES     STATUS\n"), "{body:?}");
    assert!(
        body.lines().nth(1).unwrap().starts_with("ps-run    Up "),
        "{body:?}"
    );

    let out = kiln(&["kill", "ps-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["wait", "ps-run"]);
    assert_eq!(stdout(&out).trim(), "137", "{}", text(&out));
    assert!(
        row_of("ps-run", false).is_none(),
        "ps without -a hides exited"
    );
    let row = row_of("ps-run", true).expect("ps -a lists it");
    assert!(
        row[4].starts_with("Exited (137) ") && row[4].ends_with(" ago"),
        "{row:?}"
    );
    let out = kiln(&[
        "ps",
        "-aq",
        "--filter",
        "status=exited",
        "--filter",
        "name=ps-run",
    ]);
    assert_eq!(stdout(&out).trim(), &id[..12]);
    let out = kiln(&[
        "ps",
        "-aq",
        "--filter",
        "status=running",
        "--filter",
        "name=ps-run",
    ]);
    assert_eq!(stdout(&out).trim(), "");
    assert!(kiln(&["rm", "ps-run"]).status.success());
}

#[test]
fn rm_refuses_a_running_container_unless_forced() {
    let out = kiln(&["run", "-d", "--name", "rm-me", "busybox", "sleep", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    let dir = root().join("containers").join(&id);
    assert!(dir.join("container.json").exists());
    assert!(dir.join("upper").is_dir());

    let out = kiln(&["rm", "rm-me"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("running"), "{}", text(&out));
    assert!(row_of("rm-me", false).is_some());

    let out = kiln(&["rm", "-f", "rm-me"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "rm-me");
    assert!(!dir.exists(), "the container's directory is gone");
    assert!(row_of("rm-me", true).is_none());
    assert!(!container_dirs().iter().any(|d| d.ends_with(&id)));
    // The name is free again.
    let out = kiln(&["run", "--name", "rm-me", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kiln(&["rm", "rm-me"]).status.success());
    // Unknown container: an error naming it.
    let out = kiln(&["rm", "no-such-container"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no such container: no-such-container"));
}

#[test]
fn start_attach_reruns_on_the_kept_layer_and_returns_the_exit_code() {
    let script = "echo run$(cat /count 2>/dev/null); echo x >> /count; exit 4";
    let out = kiln(&["run", "--name", "st", "busybox", "sh", "-c", script]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert_eq!(stdout(&out), "run\n");
    let out = kiln(&["start", "-a", "st"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    // The second run sees the first run's file: same upper layer.
    assert_eq!(stdout(&out), "runx\n");
    let row = row_of("st", true).unwrap();
    assert!(row[4].starts_with("Exited (4)"), "{row:?}");
    // Detached start: prints the name, the container runs in the background
    // and its exit is recorded.
    let out = kiln(&["start", "st"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "st");
    let out = kiln(&["wait", "st"]);
    assert_eq!(stdout(&out).trim(), "4");
    let out = kiln(&["logs", "st"]);
    assert_eq!(stdout(&out), "run\nrunx\nrunx x\n", "{}", text(&out));
    assert!(kiln(&["rm", "st"]).status.success());
}

#[test]
fn create_then_start_attached() {
    let out = kiln(&[
        "create",
        "--name",
        "cr",
        "-e",
        "X=1",
        "busybox",
        "sh",
        "-c",
        "echo x=$X; exit 3",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim().len(), 64);
    let row = row_of("cr", true).unwrap();
    assert_eq!(row[4], "Created", "{row:?}");
    assert!(row_of("cr", false).is_none());
    let out = kiln(&["start", "-a", "cr"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert_eq!(stdout(&out), "x=1\n");
    assert!(kiln(&["container", "rm", "cr"]).status.success());
}

#[test]
fn logs_keep_both_streams_with_timestamps_and_tail() {
    let out = kiln(&[
        "run",
        "--name",
        "logs-both",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; echo three",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["logs", "logs-both"]);
    assert_eq!(stdout(&out), "one\nthree\n");
    assert_eq!(stderr(&out), "two\n");
    // --tail counts entries of both streams; their relative order in the
    // log is the order kiln read them, so use one stream here.
    let out = kiln(&["run", "--name", "tail5", "busybox", "sh", "-c", "seq 1 5"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["logs", "--tail", "2", "tail5"]);
    assert_eq!(stdout(&out), "4\n5\n");
    let out = kiln(&["logs", "-t", "logs-both"]);
    for line in stdout(&out).lines() {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert!(
            ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "RFC 3339 with nanoseconds: {ts:?}"
        );
        assert!(rest == "one" || rest == "three");
    }
    // --since/--until select by time.
    let out = kiln(&["logs", "--since", "10m", "logs-both"]);
    assert_eq!(stdout(&out), "one\nthree\n", "{}", text(&out));
    let out = kiln(&["logs", "--until", "10m", "logs-both"]);
    assert_eq!(stdout(&out), "", "{}", text(&out));
    let out = kiln(&[
        "logs",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2999-01-01T00:00:00Z",
        "logs-both",
    ]);
    assert_eq!(stdout(&out), "one\nthree\n", "{}", text(&out));
    let out = kiln(&["logs", "--since", "yesterday-ish", "logs-both"]);
    assert_eq!(code(&out), 125);
    // Docker's json-file format on disk.
    let id = kiln(&["ps", "-aq", "--no-trunc", "--filter", "name=logs-both"]);
    let id = stdout(&id).trim().to_string();
    let log =
        std::fs::read_to_string(root().join("containers").join(&id).join("container.log")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{log}");
    for (text, stream) in [
        ("one\n", "stdout"),
        ("two\n", "stderr"),
        ("three\n", "stdout"),
    ] {
        let e = entries.iter().find(|e| e["log"] == text).unwrap();
        assert_eq!(e["stream"], stream);
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }

    // -f follows a running container until it ends.
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "follow1",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["logs", "-f", "follow1"]);
    assert_eq!(stdout(&out), "a\nb\n", "{}", text(&out));
    assert!(
        kiln(&["rm", "logs-both", "tail5", "follow1"])
            .status
            .success()
    );
}

#[test]
fn detached_container_exec_commit_and_force_remove() {
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROM_RUN=yes",
        "busybox",
        "sh",
        "-c",
        "echo ready > /tmp/r; sleep 60; echo done",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    // The container outlives the `kiln run -d` process.
    let out = kiln(&[
        "exec",
        "ex",
        "sh",
        "-c",
        "while [ ! -f /tmp/r ]; do sleep 0.1; done; cat /tmp/r; echo $FROM_RUN; hostname",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), format!("ready\nyes\n{}\n", &id[..12]));
    // Same pid namespace: pid 1 is the container's shell.
    let out = kiln(&["exec", "ex", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        stdout(&out).replace('\0', " ").trim(),
        "sh -c echo ready > /tmp/r; sleep 60; echo done"
    );
    let out = kiln(&["exec", "ex", "sh", "-c", "exit 9"]);
    assert_eq!(code(&out), 9, "{}", text(&out));
    let out = kiln(&["exec", "ex", "no-such-command"]);
    assert_eq!(code(&out), 127, "{}", text(&out));
    let out = kiln(&["exec", "ex", "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}", text(&out));
    let out = kiln(&[
        "exec",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "ex",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u)",
    ]);
    assert_eq!(stdout(&out), "1 /tmp 65534\n", "{}", text(&out));
    // stdin with -i.
    let mut child = std::process::Command::new(support::KILN)
        .args(["exec", "-i", "ex", "sh", "-c", "cat > /tmp/in; cat /tmp/in"])
        .env("KILN_ROOT", root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped\n");

    // Commit a running container (paused meanwhile): the exec'd write is in.
    let out = kiln(&["exec", "ex", "sh", "-c", "echo live > /live"]);
    assert!(out.status.success());
    let out = kiln(&["commit", "ex", "img-live"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["run", "--rm", "img-live", "cat", "/live", "/tmp/in"]);
    assert_eq!(stdout(&out), "live\npiped\n", "{}", text(&out));
    // The runtime's /etc mount points are not part of the commit.
    let committed = layer_files("docker.io/library/img-live:latest", base_layer_count());
    assert!(
        !committed
            .iter()
            .any(|f| f.0 == "etc/hostname" || f.0 == "etc/resolv.conf"),
        "{:?}",
        committed.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // Still running after the commit (continued after the pause).
    let out = kiln(&["exec", "ex", "true"]);
    assert!(out.status.success(), "{}", text(&out));

    let out = kiln(&["rm", "-f", "ex"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["exec", "ex", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("no such container"), "{}", text(&out));
}

#[test]
fn exit_codes_are_dockers() {
    let out = kiln(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]);
    assert_eq!(code(&out), 42);
    let out = kiln(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127, "{}", text(&out));
    assert!(stderr(&out).contains("no-such-command"));
    let out = kiln(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}", text(&out));
    // (--pull never: a missing image must not send anyone to Docker Hub.)
    let out = kiln(&["run", "--rm", "--pull", "never", "no-such-image-here"]);
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(
        stderr(&out).contains("no-such-image-here"),
        "{}",
        text(&out)
    );
    // A command that cannot run still leaves a container (as Docker's
    // `Exited (127)`), unless --rm.
    let out = kiln(&["run", "--name", "ec-missing", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127);
    let row = row_of("ec-missing", true).unwrap();
    assert!(row[4].starts_with("Exited (127)"), "{row:?}");
    assert!(kiln(&["rm", "ec-missing"]).status.success());
    // --rm leaves nothing behind.
    let out = kiln(&["run", "--rm", "--name", "ec-gone", "busybox", "true"]);
    assert!(out.status.success());
    assert!(row_of("ec-gone", true).is_none());
    assert!(!root().join("containers/names/ec-gone").exists());
    // --rm with -d: the monitor removes it when it ends.
    let out = kiln(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "ec-gone-d",
        "busybox",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    wait_until("the --rm container to be removed", || {
        !root().join("containers").join(&id).exists()
    });
    assert!(row_of("ec-gone-d", true).is_none());
}

#[test]
fn names_are_unique_and_generated_like_dockers() {
    let out = kiln(&["run", "--name", "dup", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("already in use"), "{}", text(&out));
    assert!(kiln(&["rm", "dup"]).status.success());

    let out = kiln(&["run", "-d", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    let out = kiln(&["ps", "-a", "--no-trunc", "--filter", &format!("id={id}")]);
    let body = stdout(&out);
    let name = body
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap();
    let (adj, surname) = name.split_once('_').expect("adjective_surname");
    assert!(!adj.is_empty() && !surname.is_empty());
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
    );
    wait_until("the container to exit", || {
        stdout(&kiln(&[
            "ps",
            "-aq",
            "--filter",
            "status=exited",
            "--filter",
            &format!("id={id}"),
        ]))
        .trim()
        .len()
            == 12
    });
    assert!(kiln(&["rm", &id[..8]]).status.success(), "rm by id prefix");

    // rename, also while it runs (the run's final record keeps the name).
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "ren-a",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["rename", "ren-a", "ren-b"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["wait", "ren-b"]);
    assert_eq!(stdout(&out).trim(), "2", "{}", text(&out));
    assert!(row_of("ren-b", true).is_some());
    assert!(row_of("ren-a", true).is_none());
    // The old name is free, the new one taken.
    let out = kiln(&["run", "--name", "ren-b", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    let out = kiln(&["run", "--name", "ren-a", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kiln(&["rm", "ren-a", "ren-b"]).status.success());
}

#[test]
fn stop_sends_sigterm_then_kills_after_the_timeout() {
    let out = kiln(&["run", "-d", "--name", "stp", "busybox", "sleep", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = Instant::now();
    let out = kiln(&["stop", "-t", "1", "stp"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "stp");
    // sleep as pid 1 has no SIGTERM handler, so the kernel drops SIGTERM:
    // only the SIGKILL after the timeout ends it.
    assert!(t.elapsed() >= Duration::from_secs(1));
    let row = row_of("stp", true).unwrap();
    assert!(row[4].starts_with("Exited (137)"), "{row:?}");
    // A trapping shell ends on SIGTERM.
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "stp2",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; touch /tmp/trapped; while true; do sleep 0.1; done",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // SIGTERM before the trap is set would be dropped (pid 1).
    wait_until("the trap", || {
        kiln(&["exec", "stp2", "test", "-f", "/tmp/trapped"])
            .status
            .success()
    });
    let out = kiln(&["stop", "-t", "20", "stp2"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["wait", "stp2"]);
    assert_eq!(stdout(&out).trim(), "3");
    assert!(kiln(&["rm", "stp", "stp2"]).status.success());
}

#[test]
fn a_record_left_running_by_a_killed_kiln_reads_as_exited() {
    let out = kiln(&["run", "--name", "crash", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&kiln(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        "name=crash",
    ]))
    .trim()
    .to_string();
    let path = root().join("containers").join(&id).join("container.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // As if kiln was killed while the container ran: state running, a pid
    // that no longer exists.
    rec["state"] = "running".into();
    rec["pid"] = (i32::MAX - 7).into();
    rec["pid_start_time"] = 1.into();
    rec["exit_code"] = serde_json::Value::Null;
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    let row = row_of("crash", true).unwrap();
    assert!(row[4].starts_with("Exited (137)"), "{row:?}");
    assert!(row_of("crash", false).is_none());
    // And it can be removed without -f.
    assert!(kiln(&["rm", "crash"]).status.success());
}

#[test]
fn container_inspect_is_dockers_shape() {
    let out = kiln(&[
        "run", "--name", "insp", "-e", "K=V", "-w", "/tmp", "busybox", "sh", "-c", "exit 5",
    ]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    let out = kiln(&["container", "inspect", "insp"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v[0];
    assert_eq!(c["Id"].as_str().unwrap().len(), 64);
    assert_eq!(c["Name"], "/insp");
    assert_eq!(c["Path"], "sh");
    assert_eq!(c["Args"], serde_json::json!(["-c", "exit 5"]));
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["Running"], false);
    assert_eq!(c["State"]["ExitCode"], 5);
    assert_eq!(c["Config"]["Image"], "busybox");
    assert_eq!(c["Config"]["WorkingDir"], "/tmp");
    assert_eq!(
        c["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "exit 5"])
    );
    assert!(
        c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "K=V")
    );
    // Image is the image id (config digest), as Docker.
    let busybox_config = manifest("docker.io/library/busybox:latest")["config"]["digest"].clone();
    assert_eq!(c["Image"], busybox_config);
    // Keys in Docker's order.
    let body = stdout(&out);
    let pos = |k: &str| body.find(&format!("\"{k}\"")).unwrap();
    assert!(
        pos("Id") < pos("Created") && pos("Created") < pos("Path") && pos("State") < pos("Image")
    );
    // `container ls` is `ps`.
    let out = kiln(&[
        "container",
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "insp",
    ]);
    assert_eq!(stdout(&out), "exited 5\n", "{}", text(&out));
    let out = kiln(&["container", "ls", "-aq", "--filter", "name=insp"]);
    assert_eq!(stdout(&out).trim(), &c["Id"].as_str().unwrap()[..12]);
    let out = kiln(&["container", "inspect", "no-such-one"]);
    assert_eq!(code(&out), 1);
    assert!(kiln(&["container", "rm", "insp"]).status.success());
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    // Its own state directory (prune is global), with the busybox image
    // copied from the shared one.
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(root().join("store"))
        .arg(dir.path().join("store"))
        .status()
        .unwrap();
    assert!(status.success());
    let k = |args: &[&str]| support::kiln_in(dir.path(), args);
    assert!(
        k(&["run", "--name", "p1", "busybox", "true"])
            .status
            .success()
    );
    assert!(
        k(&[
            "run",
            "--name",
            "p2",
            "busybox",
            "sh",
            "-c",
            "head -c 5000 /dev/zero > /z"
        ])
        .status
        .success()
    );
    let out = k(&["run", "-d", "--name", "p3", "busybox", "sleep", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = k(&["container", "prune", "-f"]);
    assert!(out.status.success(), "{}", text(&out));
    let body = stdout(&out);
    assert!(body.starts_with("Deleted Containers:\n"), "{body}");
    assert_eq!(body.lines().filter(|l| l.len() == 64).count(), 2, "{body}");
    let last = body.lines().last().unwrap();
    assert!(last.starts_with("Total reclaimed space: "), "{body}");
    assert!(last.ends_with("kB"), "at least /z: {body}");
    let out = k(&["ps", "-aq"]);
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "only the running one is left"
    );
    assert!(k(&["rm", "-f", "p3"]).status.success());
}

#[test]
fn signals_to_a_foreground_run_go_to_the_container() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(support::KILN)
        .args([
            "run",
            "--name",
            "sigp",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .env("KILN_ROOT", root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(
        status.code(),
        Some(7),
        "kiln exits with the container's code"
    );
    let row = row_of("sigp", true).unwrap();
    assert!(row[4].starts_with("Exited (7)"), "{row:?}");
    assert!(kiln(&["rm", "sigp"]).status.success());
}

#[test]
fn cp_copies_out_of_and_into_containers() {
    let host = tempfile::tempdir().unwrap();
    // Out of a stopped container: a file, a directory, a directory's contents.
    let out = kiln(&[
        "run",
        "--name",
        "cpo",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && ln -s /data /link && rm /etc/group",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let h = |p: &str| host.path().join(p);
    let hs = |p: &str| h(p).to_str().unwrap().to_string();
    assert!(kiln(&["cp", "cpo:/data/a", &hs("a.txt")]).status.success());
    assert_eq!(std::fs::read_to_string(h("a.txt")).unwrap(), "one\n");
    assert!(kiln(&["cp", "cpo:/data", &hs("")]).status.success());
    assert_eq!(std::fs::read_to_string(h("data/sub/b")).unwrap(), "two\n");
    std::fs::create_dir(h("contents")).unwrap();
    assert!(
        kiln(&["cp", "cpo:/data/.", &hs("contents")])
            .status
            .success()
    );
    assert!(h("contents/a").exists() && h("contents/sub/b").exists());
    // A symlinked directory in the path is followed inside the container.
    assert!(
        kiln(&["cp", "cpo:/link/sub/b", &hs("via-link")])
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(h("via-link")).unwrap(), "two\n");
    // A file the container deleted is gone; one from the image is there.
    let out = kiln(&["cp", "cpo:/etc/group", &hs("group")]);
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(
        kiln(&["cp", "cpo:/etc/passwd", &hs("passwd")])
            .status
            .success()
    );
    assert!(
        std::fs::read_to_string(h("passwd"))
            .unwrap()
            .starts_with("root:")
    );

    // A directory the container deleted comes back with only the copied
    // contents (an opaque directory in the upper layer).
    let out = kiln(&[
        "run",
        "--name",
        "cpw",
        "busybox",
        "sh",
        "-c",
        "rm -rf /usr/sbin",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::create_dir(h("sbin-new")).unwrap();
    std::fs::write(h("sbin-new/only"), "x").unwrap();
    let out = kiln(&["cp", &hs("sbin-new"), "cpw:/usr/sbin"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kiln(&["commit", "cpw", "img-cpw"]).status.success());
    let out = kiln(&["run", "--rm", "img-cpw", "ls", "/usr/sbin"]);
    assert_eq!(stdout(&out), "only\n", "{}", text(&out));

    // Into a created container: the process sees the files.
    std::fs::write(h("in.txt"), "copied in\n").unwrap();
    std::fs::create_dir(h("etc-new")).unwrap();
    std::fs::write(h("etc-new/only"), "x").unwrap();
    let out = kiln(&[
        "create",
        "--name",
        "cpi",
        "busybox",
        "sh",
        "-c",
        "cat /tmp/in.txt /in2.txt; ls /etc/new",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kiln(&["cp", &hs("in.txt"), "cpi:/tmp/"]).status.success());
    assert!(
        kiln(&["cp", &hs("in.txt"), "cpi:/in2.txt"])
            .status
            .success()
    );
    assert!(
        kiln(&["cp", &hs("etc-new"), "cpi:/etc/new"])
            .status
            .success()
    );
    let out = kiln(&["start", "-a", "cpi"]);
    assert_eq!(
        stdout(&out),
        "copied in\ncopied in\nonly\n",
        "{}",
        text(&out)
    );
    // A running container: copying out works, copying in is refused.
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "cpr",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; sleep 60",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the file", || {
        kiln(&["cp", "cpr:/live", &hs("live")]).status.success()
    });
    assert_eq!(std::fs::read_to_string(h("live")).unwrap(), "live\n");
    let out = kiln(&["cp", &hs("in.txt"), "cpr:/tmp/"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("running"), "{}", text(&out));
    assert!(
        kiln(&["rm", "-f", "cpo", "cpi", "cpr", "cpw"])
            .status
            .success()
    );
}

#[test]
fn export_and_restart() {
    let out = kiln(&[
        "run",
        "--name",
        "exp",
        "busybox",
        "sh",
        "-c",
        "echo exported > /f; rm /bin/vi",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("fs.tar");
    let out = kiln(&["export", "-o", tar_path.to_str().unwrap(), "exp"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut names = Vec::new();
    let mut f_content = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        if p == "f" {
            std::io::Read::read_to_string(&mut e, &mut f_content).unwrap();
        }
        names.push(p);
    }
    assert_eq!(f_content, "exported\n");
    assert!(
        names.iter().any(|n| n == "bin/busybox"),
        "the image's files"
    );
    assert!(
        !names.iter().any(|n| n == "bin/vi"),
        "deleted files are not exported"
    );
    assert!(
        !names.iter().any(|n| n.contains(".wh.")),
        "a flat tree, no whiteouts"
    );

    // restart: a running container is stopped and started again (its
    // kept layer sees the first run's file).
    let out = kiln(&[
        "run",
        "-d",
        "--name",
        "rst",
        "busybox",
        "sh",
        "-c",
        "echo run >> /runs; trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kiln(&["restart", "-t", "5", "rst"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "rst");
    let row = row_of("rst", false).expect("running again");
    assert!(row[4].starts_with("Up "), "{row:?}");
    wait_until("the second run", || {
        stdout(&kiln(&["exec", "rst", "cat", "/runs"])) == "run\nrun\n"
    });
    assert!(kiln(&["rm", "-f", "exp", "rst"]).status.success());
}

#[test]
fn attach_feeds_stdin_and_returns_the_exit_code() {
    let out = kiln(&[
        "run",
        "-d",
        "-i",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "echo ready; read line; echo got $line; exit 6",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the first line in the log", || {
        stdout(&kiln(&["logs", "att"])) == "ready\n"
    });
    let mut child = std::process::Command::new(support::KILN)
        .args(["attach", "att"])
        .env("KILN_ROOT", root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    // Output from the moment of attaching (the earlier "ready" is in the
    // log, not repeated).
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got hello\n");
    assert_eq!(o.status.code(), Some(6));
    let out = kiln(&["logs", "att"]);
    assert_eq!(stdout(&out), "ready\ngot hello\n");
    let out = kiln(&["attach", "att"]);
    assert_eq!(code(&out), 125, "a stopped container: {}", text(&out));
    assert!(kiln(&["rm", "att"]).status.success());
}

#[test]
fn run_and_exec_with_a_terminal_get_the_callers_window_size() {
    assert!(
        std::path::Path::new("/usr/bin/script").exists(),
        "`script` is missing: apt-get install bsdutils"
    );
    let in_pty = |cmd: &str| {
        let out = std::process::Command::new("script")
            .args(["-qc", cmd, "/dev/null"])
            .env("KILN_ROOT", root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).replace(['\r', '\0'], "")
    };
    let k = support::KILN;
    let out = in_pty(&format!(
        "stty rows 30 cols 90; {k} run --rm -it busybox stty size"
    ));
    assert!(out.lines().any(|l| l.trim().ends_with("30 90")), "{out:?}");
    let out = kiln(&["run", "-dit", "--name", "winsz", "busybox", "sh"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = in_pty(&format!(
        "stty rows 31 cols 91; {k} exec -it winsz stty size"
    ));
    assert!(out.lines().any(|l| l.trim().ends_with("31 91")), "{out:?}");
    assert!(kiln(&["rm", "-f", "winsz"]).status.success());
}

#[test]
fn run_and_create_pull_a_missing_image_as_docker_does() {
    use kiln_testutil::registry::{Registry, RegistryConfig};
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    reg.push_busybox("pulled/box:1").expect("push busybox");
    let image = format!("{}/pulled/box:1", reg.addr());
    // A fresh state directory: the image is not in its store.
    let dir = tempfile::tempdir().unwrap();
    let k = |args: &[&str]| support::kiln_in(dir.path(), args);
    let out = k(&["run", "--rm", &image, "echo", "pulled"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "pulled\n");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("Unable to find image '{image}' locally\n")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("1: Pulling from ") && l.ends_with("pulled/box")),
        "{err}"
    );
    assert!(err.contains("Digest: sha256:"), "{err}");
    // Now it is in the store: no pull.
    let out = k(&["run", "--rm", &image, "true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stderr(&out).contains("Unable to find"), "{}", text(&out));
    // --pull always pulls again; create pulls too.
    let out = k(&["create", "--pull", "always", "--name", "pc", &image, "true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("Digest: sha256:"), "{}", text(&out));
    // Nothing listening: kiln's own error, 125, naming the registry.
    let out = k(&["run", "--rm", "127.0.0.1:1/none:1"]);
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", text(&out));
    let out = k(&["run", "--rm", "--pull", "never", "127.0.0.1:1/none:1"]);
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(stderr(&out).contains("--pull never"), "{}", text(&out));
}
