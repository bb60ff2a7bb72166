//! Interop with skopeo: what kiln pushes, skopeo reads; what skopeo pushes,
//! kiln pulls byte-identical.

use bytes::Bytes;
use kiln_registry_client::{OciLayoutBlobs, Platform, PushOptions, media_types, no_progress};
use kiln_testutil::registry::{Registry, RegistryConfig, build_busybox_layout};

use crate::{client_for, layout_blob, reference, skopeo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_push_is_read_by_skopeo() {
    for config in [RegistryConfig::https(), RegistryConfig::token_auth()] {
        let reg = Registry::start(config).unwrap();
        let src = tempfile::tempdir().unwrap();
        let img = build_busybox_layout(src.path()).unwrap();
        let c = client_for(&reg);
        let r = reference(&reg, "interop/kiln:v1");
        let manifest = layout_blob(src.path(), &img.manifest_digest);
        c.push_image(
            &r,
            Bytes::from(manifest.clone()),
            media_types::OCI_MANIFEST,
            &OciLayoutBlobs::new(src.path()),
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
        let mut args = vec!["inspect".to_owned(), "--raw".to_owned()];
        args.extend(
            reg.skopeo_args("src")
                .into_iter()
                .map(|a| a.replace("--src-", "--")),
        );
        args.push(format!("docker://{}/interop/kiln:v1", reg.addr()));
        assert_eq!(skopeo(&args).trim().as_bytes(), &manifest[..]);
        let dst = tempfile::tempdir().unwrap();
        let mut args = vec!["copy".to_owned(), "--quiet".to_owned()];
        args.extend(reg.skopeo_args("src"));
        args.push(format!("docker://{}/interop/kiln:v1", reg.addr()));
        args.push(format!("oci:{}:copied", dst.path().display()));
        skopeo(&args);
        assert_eq!(
            layout_blob(dst.path(), &img.layer_digest),
            layout_blob(src.path(), &img.layer_digest)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_push_is_pulled_byte_identical() {
    for config in [RegistryConfig::http(), RegistryConfig::basic_auth()] {
        let reg = Registry::start(config).unwrap();
        let src = tempfile::tempdir().unwrap();
        let img = build_busybox_layout(src.path()).unwrap();
        let mut args = vec!["copy".to_owned(), "--quiet".to_owned()];
        args.extend(reg.skopeo_args("dest"));
        args.push(format!("oci:{}:latest", src.path().display()));
        args.push(format!("docker://{}/interop/skopeo:v2", reg.addr()));
        skopeo(&args);
        let c = client_for(&reg);
        let r = reference(&reg, "interop/skopeo:v2");
        let out = tempfile::tempdir().unwrap();
        let pulled = c
            .pull_image_to_layout(&r, &Platform::host(), out.path(), "v2", &no_progress())
            .await
            .unwrap();
        assert_eq!(
            pulled.manifest.bytes.as_ref(),
            &layout_blob(src.path(), &img.manifest_digest)[..]
        );
        for d in [&img.layer_digest, &img.config_digest] {
            assert_eq!(
                layout_blob(out.path(), d),
                layout_blob(src.path(), d),
                "{d}"
            );
        }
    }
}

/// skopeo converts to Docker schema 2 on push; kiln pulls it with the right
/// media type, the exact bytes skopeo reports, and verified blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_from_skopeo() {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let src = tempfile::tempdir().unwrap();
    build_busybox_layout(src.path()).unwrap();
    let mut args = vec![
        "copy".to_owned(),
        "--quiet".to_owned(),
        "--format=v2s2".to_owned(),
    ];
    args.extend(reg.skopeo_args("dest"));
    args.push(format!("oci:{}:latest", src.path().display()));
    args.push(format!("docker://{}/interop/docker:v2s2", reg.addr()));
    skopeo(&args);
    let raw = skopeo(&[
        "inspect".into(),
        "--raw".into(),
        "--tls-verify=false".into(),
        format!("docker://{}/interop/docker:v2s2", reg.addr()),
    ]);
    let c = client_for(&reg);
    let r = reference(&reg, "interop/docker:v2s2");
    let img = c.pull_image(&r, &Platform::host()).await.unwrap();
    assert_eq!(img.manifest.media_type, media_types::DOCKER_MANIFEST);
    assert_eq!(img.manifest.bytes.as_ref(), raw.trim().as_bytes());
    assert_eq!(
        img.image.config().media_type().to_string(),
        media_types::DOCKER_CONFIG
    );
    let l = &img.image.layers()[0];
    let mut buf = Vec::new();
    c.pull_blob(&r, l.digest(), Some(l.size()), &mut buf, &no_progress())
        .await
        .unwrap();
    assert_eq!(buf.len() as u64, l.size());
}
