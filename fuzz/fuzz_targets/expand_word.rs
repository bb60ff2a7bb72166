//! Expand arbitrary words. The first byte picks the escape character and
//! the lexer options. Properties: never panics; `expand_word` and
//! `expand_words` agree with `Expander::process`; a word with no `$`,
//! quote or escape character expands to itself; with `skip_unset_env` and
//! an empty environment, a word without quotes or escapes expands to
//! itself (unset references are kept as written; `${V//p/r}` excepted,
//! which BuildKit rebuilds with one slash).
#![no_main]

use kiln_dockerfile_parser::{Expander, NoEnv, expand_word, expand_words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(word) = std::str::from_utf8(rest) else {
        return;
    };
    let escape = if flags & 1 == 0 { '\\' } else { '`' };
    let env: Vec<(String, String)> = vec![
        ("A".into(), "a b".into()),
        ("EMPTY".into(), String::new()),
        ("P".into(), "/x/y.z".into()),
    ];

    let plain = Expander::new(escape).process(word, &env);
    assert_eq!(
        expand_word(word, &env, escape).ok(),
        plain.as_ref().ok().map(|e| e.value.clone())
    );
    assert_eq!(
        expand_words(word, &env, escape).ok(),
        plain.as_ref().ok().map(|e| e.words.clone())
    );

    let special = |c: char| c == '$' || c == '\'' || c == '"' || c == escape;
    if !word.contains(special) && !word.starts_with('\u{feff}') {
        assert_eq!(plain.as_ref().map(|e| e.value.as_str()).ok(), Some(word));
    }

    let opts = Expander {
        raw_quotes: flags & 2 != 0,
        raw_escapes: flags & 4 != 0,
        skip_process_quotes: flags & 8 != 0,
        skip_unset_env: flags & 16 != 0,
        ..Expander::new(escape)
    };
    let _ = opts.process(word, &env);

    let keep = Expander {
        skip_unset_env: true,
        ..Expander::new(escape)
    };
    let quoted = |c: char| c == '\'' || c == '"' || c == escape;
    // BuildKit rebuilds `${V//p/r}` as `${V/p/r}` (one slash), so the
    // replace-all form is not kept byte for byte; that quirk is kept too.
    if !word.contains(quoted)
        && !word.contains("//")
        && !word.starts_with('\u{feff}')
        && let Ok(e) = keep.process(word, &NoEnv)
    {
        assert_eq!(e.value, word, "unset references must be kept as written");
    }
});
