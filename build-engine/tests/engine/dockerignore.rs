use kiln_build_engine::DockerIgnore;

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "*.a\n").unwrap();
    std::fs::write(dir.path().join("Dockerfile.dockerignore"), "*.b\n").unwrap();
    let df = dir.path().join("Dockerfile");
    let ign = DockerIgnore::for_context(dir.path(), Some(&df)).unwrap();
    assert!(ign.is_excluded("x.b"));
    assert!(!ign.is_excluded("x.a"));
    let ign = DockerIgnore::for_context(dir.path(), None).unwrap();
    assert!(ign.is_excluded("x.a"));
}

#[test]
fn double_star_and_exceptions() {
    let ign = DockerIgnore::parse("**/target\n!keep/target\n**/*.tmp\n");
    assert!(ign.is_excluded("target/debug/x"));
    assert!(ign.is_excluded("a/b/target"));
    assert!(!ign.is_excluded("keep/target"));
    assert!(ign.is_excluded("deep/er/f.tmp"));
    assert!(!ign.is_excluded("src/main.rs"));
}
