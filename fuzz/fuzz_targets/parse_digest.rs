//! Parse arbitrary text as a digest. Properties: no panic; whatever parses
//! prints back to exactly the input, converts to oci-spec's digest and
//! back unchanged, and has the algorithm's hex length.
#![no_main]

use kiln_image_layers::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert_eq!(Digest::from_oci(&d.to_oci()).ok(), Some(d));
    }
});
