//! Change sets: diff → write → apply reproduces the `after` tree exactly.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use kiln_image_layers::{
    ApplyOptions, ChangeKind, ChangeSet, Compression, Error, WriteOptions, apply_layer, write_layer,
};

use crate::common::*;

fn round_trip(
    changes: &ChangeSet,
    base: &Path,
    compression: Compression,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut blob = Vec::new();
    let opts = WriteOptions::with_compression(compression);
    let info = write_layer(changes, &mut blob, &opts)?;
    assert_eq!(info.size, blob.len() as u64);
    let report = apply_layer(&blob[..], base, &ApplyOptions::default())?;
    assert_eq!(
        report.diff_id, info.diff_id,
        "applier's diffID equals writer's"
    );
    assert_eq!(report.compression, compression);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    Ok(())
}

#[test]
fn added_tree_round_trips_every_file_type_with_each_compression() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    rich_tree(&src);
    let cs = ChangeSet::added_tree(&src)?;
    assert!(cs.changes().iter().all(|c| c.kind == ChangeKind::Added));
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dst = tmp.path().join(format!("dst-{c:?}"));
        fs::create_dir(&dst)?;
        round_trip(&cs, &dst, c)?;
        assert_same(&snapshot(&src), &snapshot(&dst));
    }
    // The sparse file stays sparse after apply.
    let m = fs::metadata(tmp.path().join("dst-Zstd/var/sparse"))?;
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&m) * 512 < 1 << 20,
        "sparse file was filled"
    );
    Ok(())
}

fn mutate(after: &Path) {
    // content change, same size
    write(
        &after.join("etc/passwd"),
        b"ROOT:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    // delete a file and a whole directory
    fs::remove_file(after.join("etc/shadow")).ok();
    fs::remove_dir_all(after.join("var/empty")).ok();
    // type changes: file -> dir, dir -> symlink
    fs::remove_file(after.join("etc/fifo")).ok();
    write(&after.join("etc/fifo/inside"), b"now a dir", 0o600);
    fs::remove_dir_all(after.join("usr/bin")).ok();
    symlink("/opt/bin", after.join("usr/bin")).ok();
    // mode, owner, xattr and mtime-only changes
    fs::set_permissions(
        after.join("etc/dangling").parent().unwrap_or(after),
        fs::Permissions::from_mode(0o700),
    )
    .ok();
    std::os::unix::fs::lchown(after.join("etc/long-target"), Some(7), Some(8)).ok();
    set_xattr(&after.join("var/sparse"), "user.new", b"x");
    // a directory replaced wholesale
    fs::create_dir_all(after.join("opt/app")).ok();
    for i in 0..3 {
        write(&after.join(format!("opt/app/old{i}")), b"old", 0o644);
    }
    // new hardlinks
    write(&after.join("opt/a"), b"linked", 0o644);
    fs::hard_link(after.join("opt/a"), after.join("opt/b")).ok();
}

#[test]
fn diff_trees_round_trips_modifications_deletions_and_type_changes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let before = tmp.path().join("before");
    rich_tree(&before);
    fs::create_dir_all(before.join("opt/app"))?;
    for i in 0..3 {
        write(&before.join(format!("opt/app/old{i}")), b"old", 0o644);
    }
    let after = tmp.path().join("after");
    fs::create_dir(&after)?;
    copy_tree(&before, &after);
    mutate(&after);
    // Replace opt/app wholesale.
    fs::remove_dir_all(after.join("opt/app"))?;
    write(&after.join("opt/app/new"), b"new", 0o644);

    let cs = ChangeSet::diff_trees(&before, &after)?;
    let kind = |p: &str| {
        cs.changes()
            .iter()
            .find(|c| c.path == Path::new(p))
            .map(|c| c.kind)
    };
    assert_eq!(kind("etc/shadow"), Some(ChangeKind::Deleted));
    assert_eq!(kind("var/empty"), Some(ChangeKind::Deleted));
    assert_eq!(kind("opt/app"), Some(ChangeKind::Opaque));
    assert_eq!(kind("etc/passwd"), Some(ChangeKind::Modified));
    assert_eq!(kind("usr/bin"), Some(ChangeKind::Modified));
    assert_eq!(
        kind("etc/null"),
        None,
        "unchanged entries are not in the set"
    );
    assert_eq!(
        kind("usr/bin/tool"),
        Some(ChangeKind::Deleted).filter(|_| false),
        "children of a replaced dir are not listed"
    );

    let base = tmp.path().join("base");
    fs::create_dir(&base)?;
    copy_tree(&before, &base);
    round_trip(&cs, &base, Compression::Zstd)?;
    assert_same(&snapshot(&after), &snapshot(&base));
    Ok(())
}

#[test]
fn content_is_compared_when_metadata_cannot_decide() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (before, after) = (tmp.path().join("b"), tmp.path().join("a"));
    write(&before.join("f"), b"aaaa", 0o644);
    write(&after.join("f"), b"bbbb", 0o644);
    write(&before.join("same"), b"cccc", 0o644);
    write(&after.join("same"), b"cccc", 0o644);
    for p in [
        before.join("f"),
        after.join("f"),
        before.join("same"),
        after.join("same"),
    ] {
        set_mtime(&p, 1_000, 0); // whole seconds: a coarse-timestamp file system
    }
    let cs = ChangeSet::diff_trees(&before, &after)?;
    let paths: Vec<_> = cs
        .changes()
        .iter()
        .map(|c| c.path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(paths, ["f"]);
    Ok(())
}

#[test]
fn overlay_upper_from_a_real_overlay_mount_round_trips() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let lower = tmp.path().join("lower");
    rich_tree(&lower);
    fs::create_dir_all(lower.join("opt/app"))?;
    write(&lower.join("opt/app/old"), b"old", 0o644);
    let (upper, work, merged) = (
        tmp.path().join("upper"),
        tmp.path().join("work"),
        tmp.path().join("merged"),
    );
    for d in [&upper, &work, &merged] {
        fs::create_dir(d)?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status()?;
    assert!(
        st.success(),
        "mount -t overlay failed (needs root and the overlay module)"
    );
    let result = (|| -> TestResult {
        mutate(&merged);
        fs::remove_dir_all(merged.join("opt/app"))?;
        write(&merged.join("opt/app/new"), b"new", 0o644);
        Ok(())
    })();
    let expected = snapshot(&merged);
    let st = std::process::Command::new("umount").arg(&merged).status()?;
    assert!(st.success());
    result?;

    let cs = ChangeSet::from_overlay_upper(&upper)?;
    let kind = |p: &str| {
        cs.changes()
            .iter()
            .find(|c| c.path == Path::new(p))
            .map(|c| c.kind)
    };
    assert_eq!(kind("etc/shadow"), Some(ChangeKind::Deleted));
    assert_eq!(kind("opt/app"), Some(ChangeKind::Opaque));
    assert_eq!(kind("etc/null"), None, "the upper dir holds only changes");

    let base = tmp.path().join("base");
    fs::create_dir(&base)?;
    copy_tree(&lower, &base);
    round_trip(&cs, &base, Compression::Gzip)?;
    assert_same(&expected, &snapshot(&base));
    Ok(())
}

#[test]
fn overlay_redirect_and_metacopy_are_refused_clearly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("renamed"))?;
    set_xattr(&upper.join("renamed"), "trusted.overlay.redirect", b"/old");
    let err = ChangeSet::from_overlay_upper(&upper).err();
    assert!(
        matches!(
            err,
            Some(Error::UnsupportedOverlay {
                feature: "redirect_dir",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("redirect_dir=off")
    );

    let upper2 = tmp.path().join("upper2");
    write(&upper2.join("f"), b"", 0o644);
    set_xattr(&upper2.join("f"), "trusted.overlay.metacopy", b"");
    let err = ChangeSet::from_overlay_upper(&upper2).err();
    assert!(
        matches!(
            err,
            Some(Error::UnsupportedOverlay {
                feature: "metacopy",
                ..
            })
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn overlay_whiteouts_and_opaque_dirs_are_translated() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("d"))?;
    mknod(
        &upper.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        0,
    );
    set_xattr(&upper.join("d"), "trusted.overlay.opaque", b"y");
    write(&upper.join("d/kept"), b"k", 0o644);
    let cs = ChangeSet::from_overlay_upper(&upper)?;
    let mut blob = Vec::new();
    write_layer(
        &cs,
        &mut blob,
        &WriteOptions::with_compression(Compression::None),
    )?;
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&blob[..]);
    for e in ar.entries()? {
        let mut e = e?;
        names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
        if let Some(exts) = e.pax_extensions()? {
            for r in exts.flatten() {
                assert!(
                    !r.key().unwrap_or("").contains("overlay"),
                    "overlay xattr leaked into the layer"
                );
            }
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, [".wh.gone", "d/", "d/.wh..wh..opq", "d/kept"]);
    let d = names.iter().position(|n| n == "d/");
    let opq = names.iter().position(|n| n == "d/.wh..wh..opq");
    assert!(d < opq, "parent before its opaque marker: {names:?}");
    Ok(())
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        File(u8, Vec<u8>),
        Dir(u8),
        Link(u8, u8),
        Remove(u8),
        Chmod(u8, u32),
    }

    fn name(n: u8) -> String {
        // A few nesting levels so directories and their children interact.
        match n % 4 {
            0 => format!("f{}", n % 5),
            1 => format!("d{}/f{}", n % 3, n % 5),
            2 => format!("d{}", n % 3),
            _ => format!("d{}/e{}/g{}", n % 3, n % 2, n % 5),
        }
    }

    fn apply_ops(root: &Path, ops: &[Op]) {
        for op in ops {
            match op {
                Op::File(n, data) => {
                    let p = root.join(name(*n));
                    if let Some(parent) = p.parent()
                        && fs::create_dir_all(parent).is_err()
                    {
                        continue;
                    }
                    if p.is_dir() {
                        fs::remove_dir_all(&p).ok();
                    }
                    fs::write(&p, data).ok();
                }
                Op::Dir(n) => {
                    let p = root.join(name(*n));
                    if p.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                        fs::remove_file(&p).ok();
                    }
                    fs::create_dir_all(&p).ok();
                }
                Op::Link(n, t) => {
                    let p = root.join(name(*n));
                    if p.symlink_metadata().is_err() && p.parent().is_some_and(Path::is_dir) {
                        symlink(name(*t), &p).ok();
                    }
                }
                Op::Remove(n) => {
                    let p = root.join(name(*n));
                    if p.is_dir() && !p.is_symlink() {
                        fs::remove_dir_all(&p).ok();
                    } else {
                        fs::remove_file(&p).ok();
                    }
                }
                Op::Chmod(n, m) => {
                    let p = root.join(name(*n));
                    if p.is_file() && !p.is_symlink() {
                        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 | (m & 0o177)))
                            .ok();
                    }
                }
            }
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(n, d)| Op::File(n, d)),
            any::<u8>().prop_map(Op::Dir),
            (any::<u8>(), any::<u8>()).prop_map(|(n, t)| Op::Link(n, t)),
            any::<u8>().prop_map(Op::Remove),
            (any::<u8>(), any::<u32>()).prop_map(|(n, m)| Op::Chmod(n, m)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn apply_of_diff_reproduces_after(a in proptest::collection::vec(op(), 1..20), b in proptest::collection::vec(op(), 1..20)) {
            let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (before, after, base) = (tmp.path().join("b"), tmp.path().join("a"), tmp.path().join("base"));
            for d in [&before, &after, &base] { fs::create_dir(d).map_err(|e| TestCaseError::fail(e.to_string()))?; }
            apply_ops(&before, &a);
            copy_tree(&before, &after);
            apply_ops(&after, &b);
            copy_tree(&before, &base);
            let cs = ChangeSet::diff_trees(&before, &after).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut blob = Vec::new();
            write_layer(&cs, &mut blob, &WriteOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            apply_layer(&blob[..], &base, &ApplyOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(snapshot(&after), snapshot(&base));
        }
    }
}
