//! Pull against the real registry: manifests, platforms, blobs, layouts.

use bytes::Bytes;
use kiln_registry_client::{
    Error, Manifest, MemoryBlobs, Platform, PushOptions, media_types, no_progress,
};
use kiln_testutil::registry::{Registry, RegistryConfig};

use crate::{client_for, reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_manifest_config_and_layer_verified() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let img = reg.push_busybox("library/busybox:latest").unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "library/busybox");
    let pulled = c.pull_image(&r, &Platform::host()).await.unwrap();
    assert!(pulled.index.is_none());
    assert_eq!(pulled.manifest.digest.to_string(), img.manifest_digest);
    assert_eq!(pulled.manifest.media_type, media_types::OCI_MANIFEST);
    assert_eq!(
        kiln_registry_client::sha256_digest(&pulled.config).to_string(),
        img.config_digest
    );
    let layer = &pulled.image.layers()[0];
    let mut buf = Vec::new();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen2 = seen.clone();
    let progress: kiln_registry_client::ProgressSink = std::sync::Arc::new(
        move |_: &kiln_registry_client::oci_spec::image::Digest, done: u64, _: Option<u64>| {
            seen2.store(done, std::sync::atomic::Ordering::SeqCst);
        },
    );
    let n = c
        .pull_blob(&r, layer.digest(), Some(layer.size()), &mut buf, &progress)
        .await
        .unwrap();
    assert_eq!(n, img.layer_size);
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        img.layer_size
    );
    assert_eq!(
        kiln_registry_client::sha256_digest(&buf).to_string(),
        img.layer_digest
    );
    // Resolve by tag gives the same digest; pulling by digest verifies it.
    let d = c.resolve(&r).await.unwrap();
    assert_eq!(d.to_string(), img.manifest_digest);
    let by_digest = c.pull_manifest(&r.with_digest(d)).await.unwrap();
    assert_eq!(by_digest.bytes, pulled.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_are_not_found() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let c = client_for(&reg);
    let e = c
        .pull_manifest(&reference(&reg, "nope/nothing:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let d = kiln_registry_client::sha256_digest(b"absent");
    let mut buf = Vec::new();
    let e = c
        .pull_blob(
            &reference(&reg, "nope/nothing"),
            &d,
            None,
            &mut buf,
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(buf.is_empty());
}

/// Pushes an index of two single-layer images (amd64, arm64/v8) and checks
/// that each platform resolves to its own manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_selection_from_an_index() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "multi/arch:v1");
    let mut blobs = MemoryBlobs::new();
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let layer = blobs.insert(Bytes::from(format!("layer for {arch}")));
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let cd = blobs.insert(Bytes::from(config.clone()));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            config.len(),
            format!("layer for {arch}").len()
        );
        let md = blobs.insert(Bytes::from(m.clone()));
        let v = variant
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        entries.push(format!(
            r#"{{"mediaType":"{}","digest":"{md}","size":{},"platform":{{"os":"linux","architecture":"{arch}"{v}}}}}"#,
            media_types::OCI_MANIFEST,
            m.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media_types::OCI_INDEX,
        entries.join(",")
    );
    let digest = c
        .push_image(
            &r,
            Bytes::from(index),
            media_types::OCI_INDEX,
            &blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    for arch in ["amd64", "arm64"] {
        let img = c
            .pull_image(&r, &Platform::new("linux", arch, None))
            .await
            .unwrap();
        assert_eq!(img.index.as_ref().unwrap().digest, digest);
        assert!(String::from_utf8_lossy(&img.config).contains(arch));
    }
    let e = c
        .pull_image(&r, &Platform::new("linux", "s390x", None))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::NoMatchingPlatform { .. })
            && msg.contains("linux/amd64")
            && msg.contains("linux/arm64/v8"),
        "{msg}"
    );
    let top = c.pull_manifest(&r).await.unwrap();
    assert!(matches!(top.manifest, Manifest::Index(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_into_layout_and_to_file() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let img = reg.push_busybox("bb:1").unwrap();
    let c = client_for(&reg);
    let r = reference(&reg, "bb:1");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let pulled = c
        .pull_image_to_layout(&r, &Platform::host(), &layout, "mytag", &no_progress())
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest.to_string(), img.manifest_digest);
    // skopeo reads what we wrote.
    let out = crate::skopeo(&[
        "inspect".into(),
        "--raw".into(),
        format!("oci:{}:mytag", layout.display()),
    ]);
    assert_eq!(out.trim().as_bytes(), pulled.manifest.bytes.as_ref());
    // No partial files are left behind.
    let leftovers: Vec<_> = walk(&layout)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("kiln-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let file = dir.path().join("layer");
    let d = pulled.image.layers()[0].digest().clone();
    c.pull_blob_to_file(&r, &d, Some(img.layer_size), &file, &no_progress())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        crate::layout_blob(&layout, &img.layer_digest)
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(walk(&p));
            } else {
                v.push(p);
            }
        }
    }
    v
}

/// A mirror serves a registry's images: the registry name in the reference
/// (`mirrored.invalid`, which never resolves) is never contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_pulls() {
    let mirror = Registry::start(RegistryConfig::http()).unwrap();
    let img = mirror.push_busybox("library/busybox:latest").unwrap();
    let mut cfg = kiln_registry_client::ClientConfig::default();
    cfg.mirrors
        .insert("mirrored.invalid".to_owned(), vec![mirror.base_url()]);
    let c = crate::client_with(&mirror, cfg);
    let r = kiln_registry_client::Reference::parse("mirrored.invalid/library/busybox").unwrap();
    let pulled = c.pull_image(&r, &Platform::host()).await.unwrap();
    assert_eq!(pulled.manifest.digest.to_string(), img.manifest_digest);
    let l = &pulled.image.layers()[0];
    let mut buf = Vec::new();
    c.pull_blob(&r, l.digest(), Some(l.size()), &mut buf, &no_progress())
        .await
        .unwrap();
    assert_eq!(buf.len() as u64, img.layer_size);
}
