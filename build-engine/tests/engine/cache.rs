use kiln_build_engine::{CacheIndex, CacheInputs, CacheRecord};

#[test]
fn concurrent_writers_never_tear_records() {
    let dir = tempfile::tempdir().unwrap();
    let idx = CacheIndex::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let idx = idx.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let rec = CacheRecord {
                        layer: None,
                        created: format!("{t}-{i}"),
                    };
                    idx.put("sha256:00", &rec).unwrap();
                    assert!(idx.get("sha256:00").is_some(), "a reader saw a torn record");
                }
            });
        }
    });
}

#[test]
fn explanations_name_the_changed_input() {
    let mut a = CacheInputs::new("parent-1");
    a.push("instruction", "RUN make");
    a.push("arg:V", "1");
    let mut b = CacheInputs::new("parent-2");
    b.push("instruction", "RUN make");
    b.push("arg:V", "2");
    let why = b.explain_against(&a);
    assert_eq!(why[0], "the previous step changed");
    assert!(why[1].contains("build arg V changed"), "{why:?}");
    assert_ne!(a.key(), b.key());
}
