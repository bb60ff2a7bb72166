//! Integration tests of kiln-registry-client against the real reference
//! registry (Debian's `docker-registry`, started by `kiln_testutil`), skopeo,
//! and a fault-injecting proxy. Modules mirror `src/`.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod client;
mod faults;
mod interop;
mod pull;
mod push;

use std::path::Path;

use kiln_registry_client::{Client, ClientConfig, Credentials, Reference};
use kiln_testutil::registry::Registry;

/// A client configured for `reg`: its CA trusted, its credentials set,
/// Docker's config file ignored.
pub fn client_for(reg: &Registry) -> Client {
    client_with(reg, ClientConfig::default())
}

/// Like [`client_for`], starting from `config`.
pub fn client_with(reg: &Registry, mut config: ClientConfig) -> Client {
    config.use_docker_config = false;
    config.retry_base_delay = std::time::Duration::from_millis(20);
    if let Some(ca) = reg.ca_pem() {
        config.ca_certificates_pem.push(ca.as_bytes().to_vec());
    }
    let c = Client::new(config).expect("client");
    if let Some((u, p)) = reg.credentials() {
        c.set_credentials(reg.addr(), Credentials::basic(u, p));
    }
    c
}

/// `reg.addr()/path`, parsed.
pub fn reference(reg: &Registry, path: &str) -> Reference {
    Reference::parse(&format!("{}/{path}", reg.addr())).expect("reference")
}

/// Runs skopeo with `args`, failing the test with its stderr.
pub fn skopeo(args: &[String]) -> String {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is missing (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads `dir`'s blob `digest` (an OCI layout).
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest");
    std::fs::read(dir.join("blobs").join(alg).join(hex)).expect("blob in layout")
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
