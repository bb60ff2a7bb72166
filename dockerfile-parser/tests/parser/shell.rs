//! Data-driven expansion tables (`tests/fixtures/expand/*.table`).

use kiln_dockerfile_parser::{Error, ExpandErrorKind, Expander, expand_word, expand_words};

fn env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
        ("SPACED", "a b"),
        ("DOTTED", "a.b.c.d"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Rows of a table: (line number, input, expected).
fn rows(name: &str) -> Vec<(usize, String, String)> {
    let path = crate::fixtures_dir().join("expand").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            let (input, expected) = l
                .rsplit_once(" | ")
                .unwrap_or_else(|| panic!("{name}:{}: no ' | '", n + 1));
            (
                n + 1,
                input.trim_end().to_owned(),
                expected.trim().to_owned(),
            )
        })
        .collect()
}

fn run_table(name: &str, escape: char) -> usize {
    let env = env();
    let rows = rows(name);
    for (line, input, expected) in &rows {
        let got = expand_word(input, &env, escape);
        match expected.as_str() {
            "error" => assert!(
                got.is_err(),
                "{name}:{line}: {input:?} should fail, got {got:?}"
            ),
            "<empty>" => assert_eq!(got.as_deref().ok(), Some(""), "{name}:{line}: {input:?}"),
            exp => assert_eq!(
                got.as_deref().ok(),
                Some(exp),
                "{name}:{line}: {input:?} -> {got:?}"
            ),
        }
    }
    rows.len()
}

#[test]
fn envvar_table() {
    assert!(run_table("envvar.table", '\\') > 100);
}

#[test]
fn envvar_table_backtick_escape() {
    assert!(run_table("envvar_backtick.table", '`') >= 8);
}

#[test]
fn words_table() {
    let env = env();
    let rows = rows("words.table");
    assert!(rows.len() >= 14);
    for (line, input, expected) in rows {
        let want: Vec<String> =
            serde_json::from_str(&expected).unwrap_or_else(|e| panic!("words.table:{line}: {e}"));
        let got =
            expand_words(&input, &env, '\\').unwrap_or_else(|e| panic!("words.table:{line}: {e}"));
        assert_eq!(got, want, "words.table:{line}: {input:?}");
    }
}

#[test]
fn error_messages_match_buildkit() {
    let env = env();
    let msg = |w: &str| {
        expand_word(w, &env, '\\')
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        msg("${XXX:?}"),
        "failed to process \"${XXX:?}\": XXX: is not allowed to be unset"
    );
    assert_eq!(
        msg("${NULL:?}"),
        "failed to process \"${NULL:?}\": NULL: is not allowed to be empty"
    );
    assert_eq!(
        msg("${XXX?set it}"),
        "failed to process \"${XXX?set it}\": XXX: set it"
    );
    assert_eq!(
        msg("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        msg("${PWD"),
        "failed to process \"${PWD\": unsupported modifier (\u{fffd}) in substitution"
    );
    assert_eq!(
        msg("${PWD:-x"),
        "failed to process \"${PWD:-x\": syntax error: missing '}'"
    );
    assert_eq!(
        msg("${PWD:=x}"),
        "failed to process \"${PWD:=x}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        msg("'abc"),
        "failed to process \"'abc\": unexpected end of statement while looking for matching single-quote"
    );
    assert!(matches!(
        expand_word("${PWD#\\q}", &env, '\\'),
        Err(Error::Expand {
            kind: ExpandErrorKind::InvalidPattern { .. },
            ..
        })
    ));
}

#[test]
fn expander_reports_matched_and_unmatched() {
    let env = env();
    let e = Expander::new('\\')
        .process("$PWD ${NOPE:-x} $SHELL", &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.value, "/home x bash");
    assert_eq!(
        e.matched.iter().map(String::as_str).collect::<Vec<_>>(),
        ["PWD", "SHELL"]
    );
    assert_eq!(
        e.unmatched.iter().map(String::as_str).collect::<Vec<_>>(),
        ["NOPE"]
    );
    let skip = Expander {
        skip_unset_env: true,
        ..Expander::new('\\')
    };
    let e = skip
        .process("$NOPE ${NOPE:-x} $PWD", &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.value, "$NOPE ${NOPE:-x} /home");
}

#[test]
fn closures_and_maps_are_environments() {
    let lookup = |n: &str| (n == "A").then(|| "1".to_owned());
    assert_eq!(
        expand_word("$A$B", &lookup, '\\').ok().as_deref(),
        Some("1")
    );
    let map: std::collections::HashMap<String, String> =
        [("A".to_owned(), "x".to_owned())].into_iter().collect();
    assert_eq!(expand_word("${A}y", &map, '\\').ok().as_deref(), Some("xy"));
}
