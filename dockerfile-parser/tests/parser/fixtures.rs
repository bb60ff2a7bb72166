//! The Dockerfile corpus: `tests/fixtures/ok/<case>/Dockerfile` must parse,
//! print back byte for byte, and match `parsed.snap` (the typed
//! instructions) and `lints.snap`; `tests/fixtures/err/<case>/Dockerfile`
//! must fail with the diagnostic in `error.snap`.
//!
//! Set `KILN_BLESS=1` to write missing or changed snapshots (then review
//! the diff before committing).

use std::fmt::Write as _;
use std::path::Path;

use kiln_dockerfile_parser::{Dockerfile, LintOptions, lint_source};

fn cases(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = crate::fixtures_dir().join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    v.sort();
    v
}

fn check_snapshot(path: &Path, got: &str) {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    match std::fs::read_to_string(path) {
        Ok(want) if want == got => {}
        _ if bless => {
            std::fs::write(path, got).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        Ok(want) => panic!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ),
        Err(e) => panic!(
            "{}: {e} (run with KILN_BLESS=1 to create it)",
            path.display()
        ),
    }
}

/// The typed instructions, one JSON object per line.
fn render(df: &Dockerfile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "escape {:?}", df.escape());
    for i in &df.instructions {
        let kind = serde_json::to_string(&i.kind).unwrap_or_default();
        let _ = writeln!(out, "{}-{} {kind}", i.start_line, i.end_line);
        for f in &i.flags {
            let _ = writeln!(out, "    flag {} = {:?}", f.name, f.value);
        }
        for h in &i.heredocs {
            let _ = writeln!(
                out,
                "    heredoc {} expand={} chomp={} {:?}",
                h.name, h.expand, h.chomp, h.content
            );
        }
    }
    out
}

#[test]
fn ok_corpus() {
    let cases = cases("ok");
    for case in &cases {
        let src =
            std::fs::read_to_string(case.join("Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
        let df = Dockerfile::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        assert_eq!(df.print(), src, "{}", case.display());
        assert!(!df.instructions.is_empty(), "{}", case.display());
        check_snapshot(&case.join("parsed.snap"), &render(&df));
        let (_, lints) = lint_source(&src, &LintOptions::default());
        let text: String = lints
            .iter()
            .map(|l| {
                format!(
                    "{}:{}: {} ({}): {}\n",
                    l.start.line, l.start.column, l.rule, l.severity, l.message
                )
            })
            .collect();
        check_snapshot(&case.join("lints.snap"), &text);
    }
    assert!(cases.len() >= 50, "only {} ok cases", cases.len());
}

#[test]
fn err_corpus() {
    let cases = cases("err");
    for case in &cases {
        let src =
            std::fs::read_to_string(case.join("Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
        let (df, _) = Dockerfile::parse_partial(&src);
        assert_eq!(df.print(), src, "{}", case.display());
        let err = Dockerfile::parse(&src)
            .err()
            .unwrap_or_else(|| panic!("{} should fail", case.display()));
        let d = err
            .diagnostic()
            .unwrap_or_else(|| panic!("{}: no diagnostic", case.display()));
        let text = format!(
            "{}:{}: {}\ntext: {:?}\nhint: {:?}\n",
            d.start.line, d.start.column, d.message, d.text, d.hint
        );
        check_snapshot(&case.join("error.snap"), &text);
    }
    assert!(cases.len() >= 15, "only {} err cases", cases.len());
}
