//! `kiln images` / `kiln image ls`: columns, names, IDs, flags, filters,
//! templates.

use serde_json::Value;

use crate::common::{Fresh, table};

fn is_short_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn images_shows_docker_columns_short_names_and_config_digest_ids() {
    let f = Fresh::new();
    f.ok(&["tag", "busybox", "docker.io/someone/app:1"]);
    f.ok(&["tag", "busybox", "localhost:5000/tools/bb:2"]);
    let out = f.ok(&["images"]);
    let first = out.lines().next().unwrap();
    // Docker's tabwriter: at least ten columns per cell, three spaces of padding.
    // "localhost:5000/tools/bb" is 23 wide: its column is 26.
    let want = format!(
        "REPOSITORY{}TAG       IMAGE ID       CREATED",
        " ".repeat(16)
    );
    assert!(first.starts_with(&want), "{out}");
    let (header, rows) = table(&out);
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let id = f.image_id("docker.io/library/busybox:latest");
    let mut names: Vec<(String, String)> = Vec::new();
    for r in &rows {
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[2], id[7..19]);
        assert!(is_short_id(&r[2]));
        assert!(r[3].ends_with(" ago"), "{r:?}");
        assert!(r[4].ends_with("MB") || r[4].ends_with("kB"), "{r:?}");
        names.push((r[0].clone(), r[1].clone()));
    }
    names.sort();
    assert_eq!(
        names,
        [
            ("busybox".to_string(), "latest".to_string()),
            ("localhost:5000/tools/bb".into(), "2".into()),
            ("someone/app".into(), "1".into()),
        ]
    );
    // The store holds the normalised names.
    let mut tags = f.tags();
    tags.sort();
    assert_eq!(
        tags,
        [
            "docker.io/library/busybox:latest",
            "docker.io/someone/app:1",
            "localhost:5000/tools/bb:2"
        ]
    );
    // The alias and -a give the same listing.
    let ls = f.ok(&["image", "ls", "-a"]);
    assert_eq!(table(&ls).1.len(), 3);
}

#[test]
fn quiet_no_trunc_digests_and_repository_argument() {
    let f = Fresh::new();
    f.ok(&["tag", "busybox", "other:x"]);
    let id = f.image_id("docker.io/library/busybox:latest");
    let q = f.ok(&["images", "-q"]);
    assert_eq!(q.lines().collect::<Vec<_>>(), [&id[7..19], &id[7..19]]);
    let q = f.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(q.lines().next(), Some(id.as_str()));
    let d = f.ok(&["images", "--digests", "busybox"]);
    let (header, rows) = table(&d);
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    );
    assert_eq!(rows.len(), 1, "{d}");
    assert_eq!(rows[0][0], "busybox");
    assert_eq!(
        rows[0][2],
        f.manifest_digest("docker.io/library/busybox:latest")
    );
    let one = f.ok(&["images", "other:x"]);
    let (_, rows) = table(&one);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0][0].as_str(), rows[0][1].as_str()), ("other", "x"));
    // An unknown repository lists nothing but the header.
    assert_eq!(f.ok(&["images", "nothing"]).lines().count(), 1);
}

#[test]
fn filters_dangling_reference_label_before_since() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let tarball = crate::common::rootfs_tarball(dir.path());
    let t = tarball.to_str().unwrap();
    // Importing twice under one tag leaves the first import dangling.
    let first = f.ok(&["import", "-c", "LABEL tier=base", t, "imp:1"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = f.ok(&["import", "-c", "LABEL tier=app", t, "imp:1"]);
    let (first, second) = (first.trim(), second.trim());
    assert_ne!(first, second);

    let dangling = f.ok(&["images", "--filter", "dangling=true"]);
    let (_, rows) = table(&dangling);
    assert_eq!(rows.len(), 1, "{dangling}");
    assert_eq!(rows[0][..3], ["<none>", "<none>", &first[7..19]]);
    let q = f.ok(&["images", "-q", "-f", "dangling=false"]);
    assert_eq!(q.lines().count(), 2, "{q}");
    assert!(!q.contains(&first[7..19]));

    let r = f.ok(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "reference=bus*",
    ]);
    assert_eq!(r, "busybox:latest\n");
    let r = f.ok(&[
        "images",
        "--format",
        "{{.Repository}}",
        "--filter",
        "reference=imp:1",
    ]);
    assert_eq!(r, "imp\n");
    let l = f.ok(&["images", "-q", "--no-trunc", "--filter", "label=tier=app"]);
    assert_eq!(l.trim(), second);
    let l = f.ok(&["images", "-q", "--no-trunc", "--filter", "label=tier"]);
    assert_eq!(l.lines().count(), 2);
    let b = f.ok(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("before={second}"),
    ]);
    assert!(b.contains(first) && !b.contains(second), "{b}");
    let s = f.ok(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("since={}", &first[7..15]),
    ]);
    assert_eq!(s.trim(), second);
    let bad = f.kiln(&["images", "--filter", "colour=blue"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid filter 'colour'"));
}

#[test]
fn format_templates_json_and_table() {
    let f = Fresh::new();
    let id = f.image_id("docker.io/library/busybox:latest");
    let out = f.ok(&["images", "--format", "{{.Repository}}\\t{{.Tag}}\\t{{.ID}}"]);
    assert_eq!(out, format!("busybox\tlatest\t{}\n", &id[7..19]));
    let out = f.ok(&["images", "--format", "json"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for k in [
        "Containers",
        "CreatedAt",
        "CreatedSince",
        "Digest",
        "ID",
        "Repository",
        "SharedSize",
        "Size",
        "Tag",
        "UniqueSize",
        "VirtualSize",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    assert_eq!(v["Repository"], "busybox");
    assert!(v["CreatedAt"].as_str().unwrap().ends_with("+0000 UTC"));
    // `{{json .}}` is the same object (CreatedSince may tick between the
    // two runs, so it is left out of the comparison).
    let json2 = f.ok(&["images", "--format", "{{json .}}"]);
    let mut v2: Value = serde_json::from_str(json2.trim()).unwrap();
    let mut v1 = v.clone();
    v1.as_object_mut().unwrap().remove("CreatedSince");
    v2.as_object_mut().unwrap().remove("CreatedSince");
    assert_eq!(v1, v2);
    let t = f.ok(&[
        "images",
        "--format",
        "table {{.ID}}\\t{{.Size}}\\t{{.CreatedAt}}",
    ]);
    let mut lines = t.lines();
    assert_eq!(lines.next().unwrap(), "IMAGE ID       SIZE      CREATED AT");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{}   ", &id[7..19]))
    );
    // A bare `table` is the default table.
    let bare = f.ok(&["images", "--format", "table"]);
    let (header, rows) = table(&bare);
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(rows[0][..3], ["busybox", "latest", &id[7..19]]);
    let bad = f.kiln(&["images", "--format", "{{.Nope}}"]);
    assert!(!bad.status.success());
}
