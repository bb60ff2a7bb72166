//! `Link` header parsing: never panics, and a found target is the text
//! between `<` and `>` in the input.
#![no_main]

use kiln_registry_client::parse_link_next;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = parse_link_next(s) {
        assert!(s.contains(&format!("<{t}>")));
        assert!(!t.contains('>'));
    }
});
