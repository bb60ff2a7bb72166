//! Tags with pagination, catalog, delete, referrers (tag-schema fallback on
//! distribution 2.8), and arbitrary artifacts.

use std::collections::HashMap;

use bytes::Bytes;
use kiln_registry_client::{Artifact, Error, no_progress};
use kiln_testutil::registry::{Registry, RegistryConfig};

use crate::{client_for, reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_catalog_and_delete() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let img = reg.push_busybox("t/bb:v0").unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "t/bb:v0");
    let m = c.pull_manifest(&r).await.unwrap();
    for i in 1..=6 {
        c.push_manifest(
            &r.with_tag(&format!("v{i}")).unwrap(),
            m.bytes.clone(),
            &m.media_type,
        )
        .await
        .unwrap();
    }
    let mut tags = c.list_tags(&r, Some(2)).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);
    reg.push_busybox("u/other:1").unwrap();
    let cat = c.catalog(reg.addr(), Some(1)).await.unwrap();
    assert_eq!(cat, ["t/bb", "u/other"]);
    c.delete_manifest(&r.with_tag("v3").unwrap()).await.unwrap();
    let e = c
        .pull_manifest(&r.with_digest(m.digest.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(m.digest.to_string(), img.manifest_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_and_referrers() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    reg.push_busybox("art/app:1").unwrap();
    let c = client_for(&reg);
    let app = reference(&reg, "art/app:1");
    let subject = c.pull_manifest(&app).await.unwrap();
    assert!(
        c.referrers(&app, &subject.digest, None)
            .await
            .unwrap()
            .is_empty()
    );
    let mut sbom = Artifact::new("application/vnd.example.sbom+json");
    sbom.layers.push((
        "application/json".to_owned(),
        Bytes::from_static(br#"{"packages":[]}"#),
    ));
    sbom.subject = Some(subject.descriptor());
    sbom.annotations = HashMap::from([("org.example.kind".to_owned(), "sbom".to_owned())]);
    let mut sig = Artifact::new("application/vnd.example.signature");
    sig.layers.push((
        "application/octet-stream".to_owned(),
        Bytes::from_static(b"signature-bytes"),
    ));
    sig.subject = Some(subject.descriptor());
    let by_digest = app.with_repository("art/app").unwrap();
    let d1 = c
        .push_artifact(&by_digest, &sbom, &no_progress())
        .await
        .unwrap();
    let d2 = c
        .push_artifact(&by_digest, &sig, &no_progress())
        .await
        .unwrap();
    let all = c.referrers(&app, &subject.digest, None).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let sigs = c
        .referrers(
            &app,
            &subject.digest,
            Some("application/vnd.example.signature"),
        )
        .await
        .unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].digest(), d2.digest());
    let (m, blobs) = c
        .pull_artifact(&by_digest.with_digest(d1.digest().clone()))
        .await
        .unwrap();
    assert_eq!(
        m.artifact_type().as_ref().map(|a| a.to_string()).as_deref(),
        Some("application/vnd.example.sbom+json")
    );
    assert_eq!(blobs[0].1.as_ref(), br#"{"packages":[]}"#);
}
