//! `WWW-Authenticate` parsing: never panics, always terminates, and yields
//! lower-case schemes and parameter names that occur in the input.
#![no_main]

use kiln_registry_client::parse_www_authenticate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let lower = s.to_ascii_lowercase();
    for c in parse_www_authenticate(s) {
        assert!(!c.scheme.is_empty());
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        assert!(lower.contains(&c.scheme));
        for k in c.params.keys() {
            assert!(!k.is_empty() && lower.contains(k.as_str()));
        }
    }
});
