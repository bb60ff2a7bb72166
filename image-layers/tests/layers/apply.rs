//! The applier: ordinary layers, overlay-lower mode, and hostile archives.
//!
//! Every hostile case applies into `<tmp>/root` next to a sentinel
//! directory `<tmp>/outside`, and then checks that nothing outside the
//! root changed, whatever the result of the apply.

use std::fs;

use kiln_image_layers::{ApplyOptions, DevicePolicy, Error, OverlayXattr, Whiteouts, apply_layer};
use kiln_testutil::tar::{RawEntry, TarBuilder};

use crate::common::*;

struct Jail {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn jail() -> Jail {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
    write(&outside.join("secret"), b"untouched", 0o644);
    Jail {
        _tmp: tmp,
        root,
        outside,
    }
}

impl Jail {
    fn outside_unchanged(&self) {
        let snap = snapshot(&self.outside);
        assert_eq!(
            snap.len(),
            1,
            "something was created outside the root: {:?}",
            snap.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            fs::read(self.outside.join("secret")).ok().as_deref(),
            Some(&b"untouched"[..])
        );
        // Nothing next to the root either.
        let siblings: Vec<_> = fs::read_dir(self.root.parent().unwrap_or(&self.root))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(siblings.len(), 2, "{siblings:?}");
    }

    fn apply(&self, tar: &[u8]) -> Result<kiln_image_layers::ApplyReport, Error> {
        let r = apply_layer(tar, &self.root, &ApplyOptions::default());
        self.outside_unchanged();
        r
    }
}

fn rel_outside(j: &Jail) -> String {
    // The path of `outside/secret` as seen from the root, absolute on the host.
    j.outside.join("secret").to_string_lossy().into_owned()
}

#[test]
fn dot_dot_paths_are_refused() {
    let j = jail();
    for p in [
        "../outside/secret",
        "a/../../outside/secret",
        "./../outside/x",
        "..",
    ] {
        let tar = TarBuilder::new().file(p, b"pwned", 0o644).build();
        let err = j.apply(&tar).err();
        assert!(
            matches!(err, Some(Error::UnsafeEntry { .. })),
            "{p}: {err:?}"
        );
    }
}

#[test]
fn absolute_paths_land_inside_the_root() -> TestResult {
    let j = jail();
    let abs = rel_outside(&j);
    let tar = TarBuilder::new().file(&abs, b"inside", 0o644).build();
    j.apply(&tar)?;
    assert_eq!(
        fs::read(j.root.join(abs.trim_start_matches('/')))?,
        b"inside"
    );
    Ok(())
}

#[test]
fn symlink_escape_then_write_through_stays_inside() -> TestResult {
    let j = jail();
    let outside = j.outside.to_string_lossy().into_owned();
    // Absolute and relative escapes, then writes, dirs, links through them.
    let tar = TarBuilder::new()
        .symlink("abs", &outside)
        .symlink("rel", "../../../../../../../../outside")
        .symlink("root", "/")
        .file("abs/secret", b"pwned", 0o644)
        .file("rel/secret", b"pwned", 0o644)
        .dir("abs/newdir", 0o755)
        .file(&format!("root{outside}/secret"), b"pwned", 0o644)
        .symlink("abs/planted", "/etc")
        .build();
    j.apply(&tar)?;
    // The writes landed inside the root, at the symlink's target
    // re-interpreted with the root as "/".
    assert_eq!(
        fs::read(j.root.join(outside.trim_start_matches('/')).join("secret"))?,
        b"pwned"
    );
    assert!(
        j.root
            .join(outside.trim_start_matches('/'))
            .join("newdir")
            .is_dir()
    );
    Ok(())
}

#[test]
fn a_symlink_replacing_a_directory_mid_layer_does_not_redirect_writes() -> TestResult {
    let j = jail();
    let outside = j.outside.to_string_lossy().into_owned();
    let tar = TarBuilder::new()
        .dir("d", 0o755)
        .file("d/a", b"1", 0o644)
        .symlink("d", &outside)
        .file("d/secret", b"pwned", 0o644)
        .build();
    j.apply(&tar)?;
    assert!(
        fs::symlink_metadata(j.root.join("d"))?
            .file_type()
            .is_symlink()
    );
    Ok(())
}

#[test]
fn hardlinks_to_outside_are_refused_or_stay_inside() -> TestResult {
    let j = jail();
    let tar = TarBuilder::new().hardlink("h", "../outside/secret").build();
    assert!(matches!(j.apply(&tar), Err(Error::UnsafeEntry { .. })));
    // An absolute target is inside the root, where it does not exist.
    let tar = TarBuilder::new().hardlink("h", &rel_outside(&j)).build();
    assert!(matches!(j.apply(&tar), Err(Error::Apply { .. })));
    // Through a symlink pointing out: resolved inside the root.
    let outside = j.outside.to_string_lossy().into_owned();
    let tar = TarBuilder::new()
        .symlink("s", &outside)
        .hardlink("h2", "s/secret")
        .build();
    assert!(j.apply(&tar).is_err());
    assert!(!j.root.join("h2").exists());
    // A hardlink to a symlink that points out links the symlink itself.
    let tar = TarBuilder::new()
        .symlink("s2", &format!("{outside}/secret"))
        .hardlink("h3", "s2")
        .file("h3", b"x", 0o644)
        .build();
    j.apply(&tar)?;
    Ok(())
}

#[test]
fn device_nodes_follow_the_policy() -> TestResult {
    let j = jail();
    let tar = TarBuilder::new()
        .char_device("dev/mem", 1, 1)
        .block_device("dev/sda", 8, 0)
        .build();
    let mut o = ApplyOptions::default();
    o.devices = DevicePolicy::Reject;
    assert!(matches!(
        apply_layer(&tar[..], &j.root, &o),
        Err(Error::UnsafeEntry { .. })
    ));
    o.devices = DevicePolicy::Skip;
    let r = apply_layer(&tar[..], &j.root, &o)?;
    assert_eq!(r.skipped.len(), 2);
    assert!(!j.root.join("dev/mem").exists());
    o.devices = DevicePolicy::Create;
    apply_layer(&tar[..], &j.root, &o)?;
    let m = fs::symlink_metadata(j.root.join("dev/sda"))?;
    assert_eq!(
        std::os::unix::fs::MetadataExt::rdev(&m),
        rustix::fs::makedev(8, 0)
    );
    j.outside_unchanged();
    Ok(())
}

#[test]
fn absurd_and_lying_sizes_are_refused() {
    let j = jail();
    let tar = TarBuilder::new()
        .lying_size("big", 1 << 62, b"tiny")
        .build_unterminated();
    assert!(
        matches!(j.apply(&tar), Err(Error::UnsafeEntry { .. })),
        "size over the limit"
    );
    let tar = TarBuilder::new()
        .lying_size("short", 10_000, b"tiny")
        .build_unterminated();
    assert!(
        matches!(j.apply(&tar), Err(Error::LayerRead { .. })),
        "truncated data"
    );
    let tar =
        kiln_testutil::tar::gzip(&TarBuilder::new().file("f", &[1u8; 5000], 0o644).build()[..3000]);
    assert!(j.apply(&tar).is_err(), "truncated compressed stream");
}

#[test]
fn overlay_and_trusted_xattrs_from_a_layer_are_not_applied() -> TestResult {
    let j = jail();
    let tar = TarBuilder::new()
        .file_owned(
            "f",
            b"x",
            0o644,
            0,
            0,
            &[("trusted.overlay.redirect", b"/etc"), ("user.ok", b"1")],
        )
        .build();
    let r = j.apply(&tar)?;
    let x = xattrs(&j.root.join("f"));
    assert!(!x.contains_key("trusted.overlay.redirect"));
    assert_eq!(x.get("user.ok").map(Vec::as_slice), Some(&b"1"[..]));
    assert_eq!(r.skipped.len(), 1);
    Ok(())
}

#[test]
fn whiteouts_and_opaque_dirs_delete_in_flatten_mode() -> TestResult {
    let j = jail();
    let base = TarBuilder::new()
        .dir("a", 0o755)
        .file("a/old1", b"1", 0o644)
        .dir("a/sub", 0o755)
        .file("a/sub/old2", b"2", 0o644)
        .file("gone", b"g", 0o644)
        .dir("gonedir", 0o755)
        .file("gonedir/x", b"x", 0o644)
        .build();
    j.apply(&base)?;
    let upper = TarBuilder::new()
        .dir("a", 0o755)
        .file("a/new", b"n", 0o644)
        .opaque("a")
        .whiteout("gone")
        .whiteout("gonedir")
        .build();
    j.apply(&upper)?;
    let snap = snapshot(&j.root);
    let names: Vec<_> = snap.keys().cloned().collect();
    assert_eq!(names, ["a", "a/new"]);
    Ok(())
}

#[test]
fn overlay_mode_writes_overlay_markers_that_the_kernel_honours() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (l0, l1) = (tmp.path().join("l0"), tmp.path().join("l1"));
    fs::create_dir(&l0)?;
    fs::create_dir(&l1)?;
    let base = TarBuilder::new()
        .dir("a", 0o755)
        .file("a/old", b"1", 0o644)
        .file("gone", b"g", 0o644)
        .file("keep", b"k", 0o644)
        .build();
    let mut o = ApplyOptions::default();
    o.whiteouts = Whiteouts::Overlay(OverlayXattr::Trusted);
    apply_layer(&base[..], &l0, &o)?;
    let upper = TarBuilder::new()
        .dir("a", 0o755)
        .opaque("a")
        .file("a/new", b"n", 0o644)
        .whiteout("gone")
        .build();
    apply_layer(&upper[..], &l1, &o)?;
    assert_eq!(
        xattrs(&l1.join("a"))
            .get("trusted.overlay.opaque")
            .map(Vec::as_slice),
        Some(&b"y"[..])
    );
    // Mount l1 over l0 read-only and look at the merged view.
    let merged = tmp.path().join("m");
    fs::create_dir(&merged)?;
    let opts = format!("lowerdir={}:{}", l1.display(), l0.display());
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status()?;
    assert!(st.success(), "mount -t overlay (needs root)");
    let snap = snapshot(&merged);
    std::process::Command::new("umount").arg(&merged).status()?;
    let names: Vec<_> = snap.keys().cloned().collect();
    assert_eq!(names, ["a", "a/new", "keep"]);
    Ok(())
}

#[test]
fn ownership_and_times_are_restored() -> TestResult {
    let j = jail();
    let tar = TarBuilder::new()
        .file_owned("f", b"x", 0o4750, 1000, 50, &[])
        .build();
    j.apply(&tar)?;
    let m = fs::metadata(j.root.join("f"))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
        (1000, 50, 0o4750, 1_700_000_000)
    );
    let mut o = ApplyOptions::default();
    o.ownership = kiln_image_layers::Ownership::Ignore;
    let tar = TarBuilder::new()
        .file_owned("g", b"x", 0o644, 1000, 50, &[])
        .build();
    apply_layer(&tar[..], &j.root, &o)?;
    let m = fs::metadata(j.root.join("g"))?;
    assert_eq!((m.uid(), m.gid()), (0, 0));
    Ok(())
}

#[test]
fn raw_hostile_entries_cannot_touch_outside() {
    // A grab-bag of raw headers no honest tool writes.
    let j = jail();
    let outside = j.outside.to_string_lossy().into_owned();
    let secret = format!("{outside}/secret");
    let cases: Vec<Vec<u8>> = vec![
        TarBuilder::new()
            .raw(RawEntry {
                path: b"x",
                kind: b'1',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 0,
                link: b"../../outside/secret",
                dev: (0, 0),
                mtime: 0,
                data: b"",
            })
            .build(),
        TarBuilder::new()
            .raw(RawEntry {
                path: b"",
                kind: b'0',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 1,
                link: b"",
                dev: (0, 0),
                mtime: 0,
                data: b"x",
            })
            .build(),
        TarBuilder::new()
            .symlink("l", &secret)
            .file("l", b"replaced-not-followed", 0o644)
            .build(),
        TarBuilder::new()
            .symlink("p", &outside)
            .whiteout("p/secret")
            .build(),
        TarBuilder::new().symlink("q", &outside).opaque("q").build(),
        TarBuilder::new().whiteout("..").build(),
    ];
    for tar in cases {
        let _ = j.apply(&tar);
    }
    assert_eq!(
        fs::read(j.root.join("l")).ok().as_deref(),
        Some(&b"replaced-not-followed"[..])
    );
}

#[test]
fn store_apply_refuses_a_corrupted_blob() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = kiln_image_layers::Store::open(tmp.path().join("s"))?;
    let blob = TarBuilder::new().file("f", b"data", 0o644).build();
    let desc = store.put_blob(
        &blob[..],
        kiln_image_layers::oci_spec::image::MediaType::ImageLayer,
    )?;
    let d = kiln_image_layers::Digest::from_oci(desc.digest())?;
    // One byte flipped after the end-of-archive marker: still a perfectly
    // readable tar, so only the digest check can catch it.
    let mut bad = blob.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    fs::write(store.blob_path(&d), &bad)?;
    let root = tmp.path().join("root");
    fs::create_dir(&root)?;
    let err = store
        .apply_layer(&desc, &root, &ApplyOptions::default())
        .err();
    assert!(matches!(err, Some(Error::DigestMismatch { .. })), "{err:?}");
    Ok(())
}

#[test]
fn pax_paths_and_link_targets_get_the_same_checks() {
    let j = jail();
    let e = RawEntry {
        path: b"innocent",
        kind: b'0',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 1,
        link: b"",
        dev: (0, 0),
        mtime: 0,
        data: b"x",
    };
    let tar = TarBuilder::new()
        .raw_with_pax(e.clone(), &[(b"path", b"../outside/pax")])
        .build();
    assert!(matches!(j.apply(&tar), Err(Error::UnsafeEntry { .. })));
    let link = RawEntry {
        kind: b'1',
        size: 0,
        data: b"",
        link: b"innocent",
        ..e
    };
    let tar = TarBuilder::new()
        .raw_with_pax(link, &[(b"linkpath", b"../../outside/secret")])
        .build();
    assert!(matches!(j.apply(&tar), Err(Error::UnsafeEntry { .. })));
}

#[test]
fn ownership_can_be_shifted_into_a_user_namespace_range() -> TestResult {
    let j = jail();
    let mut o = ApplyOptions::default();
    o.ownership = kiln_image_layers::Ownership::Shift {
        uid: 100_000,
        gid: 200_000,
    };
    let tar = TarBuilder::new()
        .file_owned("f", b"x", 0o644, 5, 6, &[])
        .symlink("l", "f")
        .build();
    apply_layer(&tar[..], &j.root, &o)?;
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(j.root.join("f"))?;
    assert_eq!((m.uid(), m.gid()), (100_005, 200_006));
    let l = fs::symlink_metadata(j.root.join("l"))?;
    assert_eq!(
        (l.uid(), l.gid()),
        (100_000, 200_000),
        "symlinks are chowned, not their targets"
    );
    Ok(())
}
