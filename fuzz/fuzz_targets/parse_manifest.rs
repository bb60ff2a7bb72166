//! Manifest parsing: never panics; a parsed manifest serialises back to JSON
//! that parses to the same manifest.
#![no_main]

use kiln_registry_client::{Manifest, media_types};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let content_type = match data.first() {
        Some(b) if b % 3 == 0 => Some(media_types::OCI_MANIFEST),
        Some(b) if b % 3 == 1 => Some(media_types::DOCKER_LIST),
        _ => None,
    };
    let Ok((m, media_type)) = Manifest::parse(data, content_type, "fuzz") else {
        return;
    };
    assert!(!media_type.is_empty());
    let json = match &m {
        Manifest::Image(i) => serde_json::to_vec(i),
        Manifest::Index(i) => serde_json::to_vec(i),
    }
    .expect("serialises");
    let (again, _) = Manifest::parse(&json, Some(&media_type), "fuzz").expect("re-parses");
    assert_eq!(again, m);
});
