//! Push against the real registry: blobs (existence, mount, monolithic,
//! chunked), manifests by tag and digest, whole images from a layout.

use bytes::Bytes;
use kiln_registry_client::{
    BlobPush, ClientConfig, MemoryBlobs, OciLayoutBlobs, Platform, PushOptions, media_types,
    no_progress, sha256_digest,
};
use kiln_testutil::registry::{Registry, RegistryConfig, build_busybox_layout};

use crate::{client_for, client_with, random_bytes, reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_existence_mount_and_upload() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let c = client_for(&reg);
    let a = reference(&reg, "team/a");
    let b = reference(&reg, "team/b");
    let mut blobs = MemoryBlobs::new();
    let data = random_bytes(300_000, 7);
    let d = blobs.insert(Bytes::from(data.clone()));
    assert_eq!(c.blob_exists(&a, &d).await.unwrap(), None);
    let how = c
        .push_blob(
            &a,
            &d,
            data.len() as u64,
            &blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Uploaded);
    assert_eq!(
        c.blob_exists(&a, &d).await.unwrap(),
        Some(data.len() as u64)
    );
    let how = c
        .push_blob(
            &a,
            &d,
            data.len() as u64,
            &blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Existed);
    let how = c
        .push_blob(
            &b,
            &d,
            data.len() as u64,
            &blobs,
            &PushOptions::mount_from("team/a"),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Mounted);
    let mut back = Vec::new();
    c.pull_blob(&b, &d, Some(data.len() as u64), &mut back, &no_progress())
        .await
        .unwrap();
    assert_eq!(back, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_round_trips() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let mut cfg = ClientConfig::default();
    cfg.chunk_size = 100_000;
    let c = client_with(&reg, cfg);
    let r = reference(&reg, "chunked/blob");
    let data = random_bytes(1_050_000, 3);
    let mut blobs = MemoryBlobs::new();
    let d = blobs.insert(Bytes::from(data.clone()));
    let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l2 = last.clone();
    let progress: kiln_registry_client::ProgressSink = std::sync::Arc::new(
        move |_: &kiln_registry_client::oci_spec::image::Digest, done: u64, _: Option<u64>| {
            l2.fetch_max(done, std::sync::atomic::Ordering::SeqCst);
        },
    );
    let how = c
        .push_blob(
            &r,
            &d,
            data.len() as u64,
            &blobs,
            &PushOptions::default(),
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Uploaded);
    assert_eq!(
        last.load(std::sync::atomic::Ordering::SeqCst),
        data.len() as u64
    );
    let mut back = Vec::new();
    c.pull_blob(&r, &d, Some(data.len() as u64), &mut back, &no_progress())
        .await
        .unwrap();
    assert_eq!(back, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_by_tag_and_by_digest() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let c = client_for(&reg);
    let mut blobs = MemoryBlobs::new();
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = blobs.insert(Bytes::from_static(cfg));
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cd}","size":{}}},"layers":[]}}"#,
        media_types::DOCKER_MANIFEST,
        media_types::DOCKER_CONFIG,
        cfg.len()
    );
    let md = sha256_digest(m.as_bytes());
    // By digest only: reachable by digest, no tag created.
    let by_digest =
        kiln_registry_client::Reference::parse(&format!("{}/m/x@{md}", reg.addr())).unwrap();
    assert_eq!(by_digest.tag(), None);
    let pushed = c
        .push_image(
            &by_digest,
            Bytes::from(m.clone()),
            media_types::DOCKER_MANIFEST,
            &blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(pushed, md);
    // distribution answers 404 for a repository without tags.
    match c.list_tags(&reference(&reg, "m/x"), None).await {
        Ok(tags) => assert!(tags.is_empty(), "{tags:?}"),
        Err(e) => assert!(
            matches!(e, kiln_registry_client::Error::NotFound { .. }),
            "{e}"
        ),
    }
    let got = c.pull_manifest(&by_digest).await.unwrap();
    assert_eq!(got.bytes.as_ref(), m.as_bytes());
    assert_eq!(got.media_type, media_types::DOCKER_MANIFEST);
    // By tag.
    let tagged = reference(&reg, "m/x:t1");
    c.push_manifest(
        &tagged,
        Bytes::from(m.clone()),
        media_types::DOCKER_MANIFEST,
    )
    .await
    .unwrap();
    assert_eq!(c.resolve(&tagged).await.unwrap(), md);
    // A digest that does not match the bytes is refused before sending.
    let wrong = reference(&reg, "m/x").with_digest(sha256_digest(b"other"));
    let e = c
        .push_manifest(&wrong, Bytes::from(m), media_types::DOCKER_MANIFEST)
        .await
        .unwrap_err();
    assert!(
        matches!(e, kiln_registry_client::Error::DigestMismatch { .. }),
        "{e}"
    );
}

/// A whole image from an OCI layout, pushed twice (second time: nothing to
/// upload), then pulled back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_image_from_layout() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = build_busybox_layout(dir.path()).unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "pushed/busybox:1.0");
    let desc = kiln_registry_client::find_in_index(dir.path(), Some("latest")).unwrap();
    let manifest = crate::layout_blob(dir.path(), desc.digest().as_ref());
    let provider = OciLayoutBlobs::new(dir.path());
    let d = c
        .push_image(
            &r,
            Bytes::from(manifest.clone()),
            media_types::OCI_MANIFEST,
            &provider,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(d.to_string(), img.manifest_digest);
    let d2 = c
        .push_image(
            &r,
            Bytes::from(manifest.clone()),
            media_types::OCI_MANIFEST,
            &provider,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(d, d2);
    let pulled = c.pull_image(&r, &Platform::host()).await.unwrap();
    assert_eq!(pulled.manifest.bytes.as_ref(), &manifest[..]);
}
