//! Client configuration and auth against the real registry: https with a
//! test CA, htpasswd Basic, Bearer tokens (anonymous, credentials, identity
//! token, cache, renewal), login, Docker config files.

use std::time::Duration;

use bytes::Bytes;
use kiln_registry_client::{
    Client, ClientConfig, Credentials, Error, MemoryBlobs, Platform, PushOptions, Secret,
    no_progress,
};
use kiln_testutil::registry::{
    Registry, RegistryConfig, TEST_IDENTITY_TOKEN, TEST_PASSWORD, TEST_USER,
};

use crate::{client_for, reference};

fn anonymous(reg: &Registry) -> Client {
    let mut cfg = ClientConfig::default();
    cfg.use_docker_config = false;
    if let Some(ca) = reg.ca_pem() {
        cfg.ca_certificates_pem.push(ca.as_bytes().to_vec());
    }
    Client::new(cfg).unwrap()
}

async fn push_small(c: &Client, r: &kiln_registry_client::Reference) -> Result<(), Error> {
    let mut blobs = MemoryBlobs::new();
    let d = blobs.insert(Bytes::from_static(b"small blob"));
    c.push_blob(r, &d, 10, &blobs, &PushOptions::default(), &no_progress())
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_the_ca() {
    let reg = Registry::start(RegistryConfig::https()).unwrap();
    reg.push_busybox("tls/bb:1").unwrap();
    let r = reference(&reg, "tls/bb:1");
    client_for(&reg)
        .pull_image(&r, &Platform::host())
        .await
        .unwrap();
    // Without the CA, https fails verification; plain http (the loopback
    // fallback) reaches a TLS port, so the error is the certificate one,
    // never silently unverified TLS.
    let mut cfg = ClientConfig::default();
    cfg.use_docker_config = false;
    cfg.max_retries = 0;
    let c = Client::new(cfg).unwrap();
    let e = c.pull_manifest(&r).await.unwrap_err();
    let msg = format!("{e} {:?}", std::error::Error::source(&e));
    assert!(
        matches!(e, Error::Http { .. }) && msg.contains("certificate"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let reg = Registry::start(RegistryConfig::basic_auth()).unwrap();
    reg.push_busybox("auth/bb:1").unwrap();
    let r = reference(&reg, "auth/bb:1");
    client_for(&reg)
        .pull_image(&r, &Platform::host())
        .await
        .unwrap();
    push_small(&client_for(&reg), &reference(&reg, "auth/other"))
        .await
        .unwrap();
    let e = anonymous(&reg).pull_manifest(&r).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    let bad = anonymous(&reg);
    bad.set_credentials(reg.addr(), Credentials::basic(TEST_USER, "wrong-password"));
    let e = bad.pull_manifest(&r).await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, Error::Auth { .. }), "{msg}");
    assert!(!msg.contains("wrong-password"), "secret leaked: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_anonymous_and_with_credentials() {
    let reg = Registry::start(RegistryConfig::token_auth()).unwrap();
    reg.push_busybox("tok/bb:1").unwrap();
    let r = reference(&reg, "tok/bb:1");
    // Anonymous tokens can pull but not push.
    let anon = anonymous(&reg);
    anon.pull_image(&r, &Platform::host()).await.unwrap();
    let e = push_small(&anon, &reference(&reg, "tok/anon"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    // With credentials: push works, and tokens are reused per scope.
    let c = client_for(&reg);
    let before = reg.tokens_issued();
    for _ in 0..5 {
        c.pull_manifest(&r).await.unwrap();
    }
    let pulls = reg.tokens_issued() - before;
    assert!(pulls <= 2, "{pulls} tokens for 5 pulls of one repository");
    push_small(&c, &reference(&reg, "tok/pushed"))
        .await
        .unwrap();
    // An identity token is exchanged with the refresh_token grant.
    let idt = anonymous(&reg);
    idt.set_credentials(
        reg.addr(),
        Credentials::IdentityToken(Secret::new(TEST_IDENTITY_TOKEN)),
    );
    push_small(&idt, &reference(&reg, "tok/identity"))
        .await
        .unwrap();
    let badt = anonymous(&reg);
    badt.set_credentials(
        reg.addr(),
        Credentials::IdentityToken(Secret::new("not-the-token")),
    );
    let e = push_small(&badt, &reference(&reg, "tok/identity"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Auth { .. }) && !format!("{e:?}").contains("not-the-token"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed() {
    let reg = Registry::start(RegistryConfig::token_auth().token_lifetime(Duration::from_secs(2)))
        .unwrap();
    reg.push_busybox("tok/bb:1").unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "tok/bb:1");
    c.pull_manifest(&r).await.unwrap();
    let first = reg.tokens_issued();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.pull_manifest(&r).await.unwrap();
    assert!(reg.tokens_issued() > first, "no new token after expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_and_stores_credentials() {
    for config in [
        RegistryConfig::basic_auth(),
        RegistryConfig::token_auth().anonymous_pull(false),
    ] {
        let reg = Registry::start(config).unwrap();
        reg.push_busybox("login/bb:1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut cfg = ClientConfig::default();
        cfg.docker_config_path = Some(path.clone());
        if let Some(ca) = reg.ca_pem() {
            cfg.ca_certificates_pem.push(ca.as_bytes().to_vec());
        }
        let c = Client::new(cfg.clone()).unwrap();
        let e = c
            .login(reg.addr(), Credentials::basic(TEST_USER, "nope"), true)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
        assert!(!path.exists(), "failed login wrote the config");
        c.login(
            reg.addr(),
            Credentials::basic(TEST_USER, TEST_PASSWORD),
            true,
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(reg.addr()), "{text}");
        // A fresh client finds the stored credentials in the config file.
        let fresh = Client::new(cfg).unwrap();
        fresh
            .pull_image(&reference(&reg, "login/bb:1"), &Platform::host())
            .await
            .unwrap();
    }
}
