//! `kiln search` against a registry's catalog, and the message where a
//! registry offers no catalog.

use crate::support::*;

#[test]
fn search_filters_the_catalog() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    for r in ["library/busybox:latest", "team/busyapp:1", "other/thing:1"] {
        reg.push_busybox(r).expect("push");
    }
    let env = Env::new();
    let out = env.ok(&["search", "busy", reg.addr()]);
    let lines: Vec<&str> = out.lines().collect();
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(cols, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], "{out}");
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{}/library/busybox", reg.addr()),
            format!("{}/team/busyapp", reg.addr())
        ],
        "{out}"
    );
    // Column positions line up with the header.
    let stars_at = lines[0].find("STARS").unwrap();
    assert_eq!(&lines[1][stars_at..stars_at + 1], "0", "{out}");

    // REGISTRY/TERM, --limit and --format.
    let out = env.ok(&[
        "search",
        "--limit",
        "1",
        "--format",
        "{{.Name}}|{{.StarCount}}",
        &format!("{}/busy", reg.addr()),
    ]);
    assert_eq!(out, format!("{}/library/busybox|0\n", reg.addr()));
    let none = env.ok(&["search", "--format", "{{.Name}}", "zzz", reg.addr()]);
    assert_eq!(none, "");
    // Filters: a catalog has no official images and no stars.
    let official = env.ok(&[
        "search",
        "-f",
        "is-official=true",
        "--format",
        "{{.Name}}",
        "busy",
        reg.addr(),
    ]);
    assert_eq!(official, "");
    let any = env.ok(&[
        "search",
        "-f",
        "stars=0",
        "-f",
        "is-official=false",
        "--format",
        "{{.Name}}",
        "busy",
        reg.addr(),
    ]);
    assert_eq!(any.lines().count(), 2, "{any}");
    let bad = env.kiln(&["search", "-f", "nope=1", "busy", reg.addr()]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
}

#[test]
fn search_says_when_the_catalog_is_refused() {
    let reg = Registry::start(RegistryConfig::token_auth()).expect("start registry");
    let env = Env::new();
    let out = env.kiln(&["search", "busy", reg.addr()]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offers no search"), "{err}");
    assert!(err.contains("_catalog"), "{err}");
}
