use kiln_build_engine::{BuildContext, DigestCache, DockerIgnore};

#[test]
fn digest_cache_never_hides_a_same_size_edit() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache_file = state.path().join("digests.json");
    std::fs::write(dir.path().join("f"), "AAAA").unwrap();
    let ctx = BuildContext::open(
        dir.path(),
        &DockerIgnore::default(),
        Some(DigestCache::load(&cache_file)),
    )
    .unwrap();
    let d1 = ctx.digest("f").unwrap();
    ctx.save_digest_cache().unwrap();
    // Same size, same second (mtime may not even change).
    std::fs::write(dir.path().join("f"), "BBBB").unwrap();
    let ctx = BuildContext::open(
        dir.path(),
        &DockerIgnore::default(),
        Some(DigestCache::load(&cache_file)),
    )
    .unwrap();
    assert_ne!(ctx.digest("f").unwrap(), d1);
}

#[test]
fn mode_is_part_of_the_fingerprint_and_mtime_is_not() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let open = || BuildContext::open(dir.path(), &DockerIgnore::default(), None).unwrap();
    let d1 = open().digest("f").unwrap();
    filetime::set_file_mtime(&f, filetime::FileTime::from_unix_time(1_000_000, 0)).unwrap();
    assert_eq!(open().digest("f").unwrap(), d1);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_ne!(open().digest("f").unwrap(), d1);
}
