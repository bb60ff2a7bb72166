//! Reference parsing: never panics, and what parses round-trips through its
//! full form and (except where Docker's own familiar form is ambiguous) its
//! familiar form, within Docker's length limit.
#![no_main]

use kiln_registry_client::{NAME_TOTAL_LENGTH_MAX, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse(s) else { return };
    assert!(r.name().len() <= NAME_TOTAL_LENGTH_MAX);
    assert!(r.tag().is_some() || r.digest().is_some());
    assert!(!r.repository().bytes().any(|b| b.is_ascii_uppercase()));
    let again = Reference::parse(&r.to_string()).expect("full form re-parses");
    assert_eq!(again, r);
    // Docker's FamiliarString drops `docker.io/` even when the first path
    // component then reads as a registry (`docker.io/a.b/c` -> `a.b/c`);
    // this crate matches Docker, so only unambiguous names round-trip.
    let first = r.repository().split('/').next().unwrap_or("");
    let ambiguous = r.registry() == "docker.io" && (first.contains('.') || first == "localhost");
    if !ambiguous {
        let familiar = Reference::parse(&r.familiar()).expect("familiar form re-parses");
        assert_eq!(familiar, r);
    }
});
