//! `kiln tag`, `kiln rmi` / `kiln image rm`, `kiln image prune`.

use crate::common::Fresh;
use crate::support::text;

#[test]
fn tag_accepts_id_prefixes_and_digests() {
    let f = Fresh::new();
    let id = f.image_id("docker.io/library/busybox:latest");
    let digest = f.manifest_digest("docker.io/library/busybox:latest");
    f.ok(&["tag", &id[7..13], "a:1"]);
    f.ok(&["tag", &id, "b"]);
    f.ok(&["tag", &digest, "c:2"]);
    f.ok(&["image", "tag", "a:1", "localhost:5000/d:3"]);
    for t in [
        "docker.io/library/a:1",
        "docker.io/library/b:latest",
        "docker.io/library/c:2",
        "localhost:5000/d:3",
    ] {
        assert_eq!(f.manifest_digest(t), digest, "{t}");
    }
    let out = f.kiln(&["tag", "nosuch", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch\n"
    );
    let bad = f.kiln(&["tag", "busybox", "Upper:1"]);
    assert!(!bad.status.success());
    // `kiln run` takes an ID prefix too.
    let run = f.kiln(&["run", "--rm", &id[7..17], "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn rmi_untags_first_and_deletes_unshared_blobs_with_the_last_tag() {
    let f = Fresh::new();
    let digest = f.manifest_digest("docker.io/library/busybox:latest");
    let id = f.image_id("docker.io/library/busybox:latest");
    let manifest = f.manifest("docker.io/library/busybox:latest");
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    f.ok(&["tag", "busybox", "keep:1"]);

    // Two tags: rmi only untags.
    let out = f.ok(&["rmi", "busybox"]);
    assert_eq!(out, "Untagged: busybox:latest\n");
    assert_eq!(f.tags(), ["docker.io/library/keep:1"]);
    assert!(f.has_blob(&digest) && f.has_blob(&id));

    // By ID with two tags: Docker's conflict unless -f.
    f.ok(&["tag", "keep:1", "keep:2"]);
    let out = f.kiln(&["rmi", &id[7..19]]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories\n",
            &id[7..19]
        )
    );
    assert_eq!(f.tags().len(), 2);

    // The last tag: untag, then delete the image and its blobs.
    f.ok(&["rmi", "keep:2"]);
    let out = f.ok(&["image", "rm", "keep:1"]);
    let mut want = format!("Untagged: keep:1\nDeleted: {id}\n");
    for l in &layers {
        want.push_str(&format!("Deleted: {l}\n"));
    }
    assert_eq!(out, want);
    assert!(f.index().is_empty());
    for d in layers.iter().chain([&id, &digest]) {
        assert!(!f.has_blob(d), "{d} still in the store");
    }
    assert_eq!(f.ok(&["images", "-q"]), "");
}

#[test]
fn rmi_keeps_blobs_other_images_share_and_reports_missing_images() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    let b = f.kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "child",
        ctx.to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    let base_layers: Vec<String> = f.manifest("docker.io/library/busybox:latest")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    let child_top = f.manifest("docker.io/library/child:latest")["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // -f by ID with a single tag; two arguments, one missing: the other is
    // still removed and the status is 1.
    let child_id = f.image_id("docker.io/library/child:latest");
    let out = f.kiln(&["rmi", "-f", "nosuch:1", &child_id[7..19]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch:1\n"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("Untagged: child:latest\nDeleted: {child_id}\nDeleted: {child_top}\n")
    );
    for l in &base_layers {
        assert!(f.has_blob(l), "shared layer {l} was deleted");
    }
    assert!(!f.has_blob(&child_top));
    let run = f.kiln(&["run", "--rm", "busybox", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn image_prune_removes_dangling_or_all_and_reports_space() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let tarball = crate::common::rootfs_tarball(dir.path());
    let t = tarball.to_str().unwrap();
    let first = f.ok(&["import", "-m", "one", t, "imp:1"]);
    let second = f.ok(&["import", "-m", "two", t, "imp:1"]);
    let (first, second) = (first.trim(), second.trim());
    assert!(f.has_blob(first));

    // Answering "n" (or nothing) changes nothing.
    let out = f.kiln_stdin(&["image", "prune"], b"n\n");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    assert!(f.has_blob(first));

    let out = f.kiln_stdin(&["image", "prune"], b"y\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "Deleted Images:\ndeleted: {first}\n\nTotal reclaimed space: "
        )),
        "{stdout}"
    );
    // The dangling import shared its layer with imp:1: config and manifest went.
    assert!(!f.has_blob(first));
    assert!(f.has_blob(second));
    let layer = f.manifest("docker.io/library/imp:1")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(f.has_blob(&layer));
    assert_eq!(f.ok(&["images", "-q", "-f", "dangling=true"]), "");

    // Nothing dangling left.
    assert_eq!(
        f.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );

    // Filters narrow -a: nothing is older than an hour or labelled so.
    for filter in ["until=1h", "label=nosuch"] {
        assert_eq!(
            f.ok(&["image", "prune", "-a", "-f", "--filter", filter]),
            "Total reclaimed space: 0B\n",
            "{filter}"
        );
    }
    assert_eq!(f.index().len(), 2);

    // -a: every image (no container uses any).
    let out = f.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains("untagged: imp:1\n") && out.contains("untagged: busybox:latest\n"));
    assert!(out.contains(&format!("deleted: {second}\n")));
    assert!(out.contains(&format!("deleted: {layer}\n")));
    let total = out.lines().last().unwrap();
    assert!(
        total.starts_with("Total reclaimed space: ") && total.ends_with("MB"),
        "{total}"
    );
    assert!(f.index().is_empty());
    let blobs = std::fs::read_dir(f.root.join("store/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn rmi_refuses_images_containers_use_until_they_are_removed() {
    let f = Fresh::new();
    let id = f.image_id("docker.io/library/busybox:latest");
    let run = f.kiln(&["run", "--name", "user1", "busybox", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
    let ps = f.ok(&["ps", "-a", "-q", "--no-trunc"]);
    let container = ps.trim().to_owned();
    assert_eq!(container.len(), 64, "{ps}");

    let out = f.kiln(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}\n",
            &container[..12],
            &id[7..19]
        )
    );
    let out = f.kiln(&["rmi", &id[7..19]]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: conflict: unable to delete {} (must be forced) - image is being used by stopped container {}\n",
            &id[7..19],
            &container[..12]
        )
    );
    // prune -a leaves it alone.
    assert_eq!(
        f.ok(&["image", "prune", "-a", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    // -f untags but keeps the image the container needs.
    assert_eq!(
        f.ok(&["rmi", "-f", "busybox"]),
        "Untagged: busybox:latest\n"
    );
    assert!(f.has_blob(&id));
    let start = f.kiln(&["start", "-a", "user1"]);
    assert!(start.status.success(), "{}", text(&start));
    // Once the container is gone, the dangling image is pruned.
    f.ok(&["rm", "user1"]);
    let out = f.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {id}\n")),
        "{out}"
    );
    assert!(!f.has_blob(&id));
}

#[test]
fn concurrent_tags_and_removals_keep_the_index_consistent() {
    let f = Fresh::new();
    // Sixteen processes tag at once, then eight remove half of the tags
    // while eight others add more: every update of index.json happens under
    // the store lock, so none is lost.
    let spawn = |args: Vec<String>| {
        std::process::Command::new(crate::support::KILN)
            .args(&args)
            .env("KILN_ROOT", &f.root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_all = |children: Vec<std::process::Child>| {
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    };
    wait_all(
        (0..16)
            .map(|i| spawn(vec!["tag".into(), "busybox".into(), format!("t:{i}")]))
            .collect(),
    );
    let mut children: Vec<_> = (0..8)
        .map(|i| spawn(vec!["rmi".into(), format!("t:{i}")]))
        .collect();
    children
        .extend((16..24).map(|i| spawn(vec!["tag".into(), "busybox".into(), format!("t:{i}")])));
    wait_all(children);
    let mut tags = f.tags();
    tags.sort();
    let mut want: Vec<String> = (8..24)
        .map(|i| format!("docker.io/library/t:{i}"))
        .collect();
    want.push("docker.io/library/busybox:latest".into());
    want.sort();
    assert_eq!(tags, want);
    let digest = f.manifest_digest("docker.io/library/busybox:latest");
    assert!(f.index().iter().all(|m| m["digest"] == digest.as_str()));
    let run = f.kiln(&["run", "--rm", "t:23", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
}
