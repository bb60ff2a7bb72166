//! The writer: determinism, SOURCE_DATE_EPOCH, GNU tar compatibility.

use std::fs;

use kiln_image_layers::{ChangeSet, Compression, Digest, WriteOptions, write_layer};

use crate::common::*;

#[test]
fn same_input_same_bytes_and_epoch_clamping() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    rich_tree(&src);
    let cs = ChangeSet::added_tree(&src)?;
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut o = WriteOptions::with_compression(c);
        o.threads = 2;
        o.source_date_epoch = Some(1_000_000_000);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ia = write_layer(&cs, &mut a, &o)?;
        let ib = write_layer(&cs, &mut b, &o)?;
        assert_eq!(a, b, "{c:?} output is deterministic");
        assert_eq!(ia, ib);
        assert_eq!(ia.digest, Digest::sha256(&a));
    }
    let mut o = WriteOptions::with_compression(Compression::None);
    o.source_date_epoch = Some(1_000_000_000);
    let mut plain = Vec::new();
    write_layer(&cs, &mut plain, &o)?;
    let mut ar = tar::Archive::new(&plain[..]);
    for e in ar.entries()? {
        let e = e?;
        assert!(e.header().mtime()? <= 1_000_000_000);
    }
    Ok(())
}

#[test]
fn gnu_tar_extracts_what_we_write() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    rich_tree(&src);
    let mut blob = Vec::new();
    write_layer(
        &ChangeSet::added_tree(&src)?,
        &mut blob,
        &WriteOptions::with_compression(Compression::None),
    )?;
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst)?;
    fs::write(tmp.path().join("l.tar"), &blob)?;
    let out = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(tmp.path().join("l.tar"))
        .arg("-C")
        .arg(&dst)
        .output()?;
    assert!(
        out.status.success(),
        "GNU tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (snapshot(&src), snapshot(&dst));
    // GNU tar does not restore directory sub-second times for every entry
    // order; compare everything else.
    for (k, v) in &a {
        let w = b
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing after GNU tar"));
        assert_eq!(
            (
                v.kind,
                v.mode,
                v.uid,
                v.content.clone(),
                &v.link,
                v.rdev,
                &v.peers
            ),
            (
                w.kind,
                w.mode,
                w.uid,
                w.content.clone(),
                &w.link,
                w.rdev,
                &w.peers
            ),
            "{k}"
        );
    }
    Ok(())
}

#[test]
fn store_layer_digests_match_sha256sum_of_blob_and_of_decompressed_tar() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    rich_tree(&src);
    let store = kiln_image_layers::Store::open(tmp.path().join("s"))?;
    let cs = ChangeSet::added_tree(&src)?;
    for (c, tool) in [(Compression::Gzip, "gzip"), (Compression::Zstd, "zstd")] {
        for threads in [1, 2] {
            let mut o = WriteOptions::with_compression(c);
            o.threads = threads;
            let layer = store.put_layer(&cs, &o)?;
            let blob = store.blob_path(&layer.digest()?);
            let sum = |cmd: &str| -> Result<String, Box<dyn std::error::Error>> {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .output()?;
                assert!(
                    out.status.success(),
                    "{cmd}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Ok(String::from_utf8(out.stdout)?
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned())
            };
            assert_eq!(
                format!("sha256:{}", sum(&format!("sha256sum {}", blob.display()))?),
                layer.digest()?.to_string()
            );
            assert_eq!(
                format!(
                    "sha256:{}",
                    sum(&format!("{tool} -dc {} | sha256sum", blob.display()))?
                ),
                layer.diff_id.to_string(),
                "{tool} x{threads}"
            );
            assert_eq!(layer.descriptor.size(), fs::metadata(&blob)?.len());
        }
    }
    Ok(())
}

#[test]
fn progress_is_reported_and_cancellation_stores_nothing() -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    rich_tree(&src);
    let store = kiln_image_layers::Store::open(tmp.path().join("s"))?;
    let cs = ChangeSet::added_tree(&src)?;

    let seen = Arc::new(AtomicU64::new(0));
    let mut o = WriteOptions::default();
    let s2 = Arc::clone(&seen);
    o.control = kiln_image_layers::Control::default()
        .with_progress(move |p| s2.store(p.entries, Ordering::SeqCst));
    store.put_layer(&cs, &o)?;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        cs.changes().len() as u64,
        "one report per entry"
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = Arc::clone(&cancel);
    let mut o = WriteOptions::default();
    o.control = kiln_image_layers::Control::default()
        .with_cancel(Arc::clone(&cancel))
        .with_progress(move |p| c2.store(p.entries >= 3, Ordering::SeqCst));
    let blobs_before = store.blobs()?.len();
    let err = store.put_layer(&cs, &o).err();
    assert!(
        matches!(err, Some(kiln_image_layers::Error::Cancelled { .. })),
        "{err:?}"
    );
    assert_eq!(store.blobs()?.len(), blobs_before);
    assert_eq!(
        fs::read_dir(store.root().join(".kiln-tmp"))?.count(),
        0,
        "temp blob removed"
    );

    // Apply honours the same hooks.
    let mut blob = Vec::new();
    write_layer(&cs, &mut blob, &WriteOptions::default())?;
    let mut ao = kiln_image_layers::ApplyOptions::default();
    cancel.store(true, Ordering::SeqCst);
    ao.control = kiln_image_layers::Control::default().with_cancel(cancel);
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst)?;
    let err = kiln_image_layers::apply_layer(&blob[..], &dst, &ao).err();
    assert!(
        matches!(err, Some(kiln_image_layers::Error::Cancelled { .. })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn explicit_entries_get_the_metadata_given_and_missing_parents() -> TestResult {
    use kiln_image_layers::{SourceEntry, SourceKind, write_entries};
    let tmp = tempfile::tempdir()?;
    let a = tmp.path().join("a.txt");
    fs::write(&a, "content a")?;
    let b = tmp.path().join("b.txt");
    fs::write(&b, "old")?;
    let entries = vec![
        // Unsorted on purpose; the second entry for app/b wins.
        SourceEntry::new(
            "app/x/b",
            SourceKind::File(b.clone()),
            0o600,
            (7, 8),
            (5, 0),
        ),
        SourceEntry::new("app", SourceKind::Dir, 0o750, (1, 2), (100, 5)),
        SourceEntry::new(
            "app/x/a",
            SourceKind::File(a.clone()),
            0o644,
            (0, 0),
            (3, 0),
        ),
        SourceEntry::new(
            "app/l",
            SourceKind::Symlink("x/a".into()),
            0o777,
            (0, 0),
            (4, 0),
        ),
        SourceEntry::new(
            "app/x/b",
            SourceKind::File(a.clone()),
            0o640,
            (9, 9),
            (6, 0),
        ),
    ];
    let mut o = WriteOptions::with_compression(Compression::Zstd);
    o.threads = 2;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let info = write_entries(&entries, &mut first, &o)?;
    write_entries(&entries, &mut second, &o)?;
    assert_eq!(first, second, "deterministic");
    assert_eq!(info.digest, Digest::sha256(&first));
    let tar_bytes = zstd::decode_all(&first[..])?;
    assert_eq!(info.diff_id, Digest::sha256(&tar_bytes));
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let h = e.header().clone();
        let path = e.path()?.to_string_lossy().into_owned();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut e, &mut body)?;
        seen.push((path, h.mode()?, h.uid()?, h.gid()?, h.mtime()?, body));
    }
    let want: Vec<(String, u32, u64, u64, u64, String)> = vec![
        ("app/".into(), 0o750, 1, 2, 100, String::new()),
        ("app/l".into(), 0o777, 0, 0, 4, String::new()),
        ("app/x/".into(), 0o755, 0, 0, 0, String::new()),
        ("app/x/a".into(), 0o644, 0, 0, 3, "content a".into()),
        ("app/x/b".into(), 0o640, 9, 9, 6, "content a".into()),
    ];
    assert_eq!(seen, want);
    Ok(())
}
