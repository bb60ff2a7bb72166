//! End-to-end tests of `kiln dockerfile parse|lint`: the real binary on
//! real files and on standard input, checking output and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kiln(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning kiln: {e}"));
    if let Some(input) = stdin
        && let Some(mut s) = child.stdin.take()
    {
        s.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for kiln: {e}"))
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str = "ARG V=1\nFROM alpine:3.20 AS build\nRUN --mount=type=cache,target=/c \\\n    make\nFROM scratch\nCOPY --from=build /out /out\n";

#[test]
fn parse_text_shows_stages_and_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(&dir, GOOD);
    let o = kiln(&["dockerfile", "parse", &file], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("# stage 0 (build)"), "{out}");
    assert!(out.contains("# stage 1\n"), "{out}");
    assert!(
        out.contains("3-4: RUN --mount=type=cache,target=/c make"),
        "{out}"
    );
    assert!(out.starts_with("1: ARG V=1\n"), "{out}");
}

#[test]
fn parse_json_has_one_object_per_instruction() {
    let o = kiln(&["dockerfile", "parse", "--json", "-"], Some(GOOD));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    let insts = v["instructions"]
        .as_array()
        .unwrap_or_else(|| panic!("no instructions: {v}"));
    assert_eq!(insts.len(), 5);
    assert_eq!(insts[0]["keyword"], "ARG");
    assert_eq!(insts[0]["stage"], serde_json::Value::Null);
    assert_eq!(insts[1]["keyword"], "FROM");
    assert_eq!(insts[1]["arguments"]["stage_name"], "build");
    assert_eq!(insts[2]["lines"]["start"], 3);
    assert_eq!(insts[2]["lines"]["end"], 4);
    assert_eq!(insts[2]["flags"][0]["name"], "mount");
    assert_eq!(insts[2]["arguments"]["mounts"][0]["kind"], "cache");
    assert_eq!(insts[4]["stage"], 1);
    assert_eq!(insts[4]["arguments"]["from"], "build");
}

#[test]
fn parse_error_is_file_line_col_and_nonzero() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(&dir, "FROM alpine:3.20\n  RUNN make\n");
    let o = kiln(&["dockerfile", "parse", &file], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("{file}:2:3: unknown instruction: RUNN (did you mean RUN?)")
    );
    let o = kiln(
        &["dockerfile", "parse", "-"],
        Some("FROM a\nCOPY --form=x a b\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "<stdin>:2:6: unknown flag: form (did you mean from?)"
    );
}

#[test]
fn missing_file_is_a_tool_error() {
    let o = kiln(&["dockerfile", "parse", "/nonexistent/Dockerfile"], None);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("reading /nonexistent/Dockerfile"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lint_text_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(&dir, "FROM alpine:3.20 as Build\nUSER app\nCMD run\n");
    let o = kiln(&["dockerfile", "lint", &file], None);
    assert_eq!(o.status.code(), Some(0), "warnings only: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{file}:1:18: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"),
            format!("{file}:1:21: StageNameCasing: Stage name 'Build' should be lowercase"),
            format!(
                "{file}:3:1: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
            ),
        ]
    );
    // error=true makes the same findings fail the run.
    let o = kiln(
        &["dockerfile", "lint", "-"],
        Some("# check=error=true\nFROM alpine:3.20\nUSER app\nCMD run\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("<stdin>:4:1: JSONArgsRecommended:"),
        "{}",
        stdout(&o)
    );
    // A clean file prints nothing and succeeds.
    let o = kiln(
        &["dockerfile", "lint", "-"],
        Some("FROM alpine:3.20\nUSER app\nCMD [\"run\"]\n"),
    );
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
}

#[test]
fn lint_json_and_parse_errors() {
    let o = kiln(
        &["dockerfile", "lint", "--format", "json", "-"],
        Some("FROM alpine:3.20\nMAINTAINER me\nUSER app\n"),
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v[0]["rule"], "MaintainerDeprecated");
    assert_eq!(v[0]["line"], 2);
    assert_eq!(v[0]["column"], 1);
    assert_eq!(v[0]["severity"], "warning");
    let o = kiln(
        &["dockerfile", "lint", "-"],
        Some("FROM a:1\nBOGUS x\nUSER app\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("<stdin>:2:1: unknown instruction: BOGUS"),
        "{}",
        stderr(&o)
    );
}
