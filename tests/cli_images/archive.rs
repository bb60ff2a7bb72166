//! `kiln save`, `kiln load`, `kiln import`, and interop with skopeo's
//! docker-archive and oci transports.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::Fresh;
use crate::support::text;

fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        text(&out)
    );
    out
}

/// The files of a tar archive: name -> content.
fn tar_files(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

#[test]
fn save_writes_docker_archives_that_skopeo_reads_and_load_reads_back() {
    let f = Fresh::new();
    f.ok(&["tag", "busybox", "someone/bb:2"]);
    let id = f.image_id("docker.io/library/busybox:latest");
    let diff_ids = f.config("docker.io/library/busybox:latest")["rootfs"]["diff_ids"].clone();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bb.tar");
    assert_eq!(
        f.ok(&[
            "save",
            "-o",
            archive.to_str().unwrap(),
            "busybox",
            "someone/bb:2"
        ]),
        ""
    );

    // Docker's layout: manifest.json with short names, repositories, and
    // the OCI layout beside them.
    let files = tar_files(&archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 1);
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "someone/bb:2"])
    );
    assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{}", &id[7..]));
    let repos: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert!(repos["busybox"]["latest"].is_string());
    assert!(files.contains_key("oci-layout") && files.contains_key("index.json"));

    // skopeo reads it as a docker archive and copies it to an OCI layout.
    let src = format!("docker-archive:{}", archive.display());
    let insp: Value = serde_json::from_slice(&skopeo(&["inspect", &src]).stdout).unwrap();
    assert_eq!(insp["Os"], "linux");
    assert_eq!(
        insp["Layers"].as_array().unwrap().len(),
        diff_ids.as_array().unwrap().len()
    );
    let oci = dir.path().join("oci");
    skopeo(&["copy", &src, &format!("oci:{}:bb", oci.display())]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let m: Value =
        serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(&m[7..])).unwrap())
            .unwrap();
    let c = m["config"]["digest"].as_str().unwrap();
    let c: Value =
        serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(&c[7..])).unwrap())
            .unwrap();
    assert_eq!(c["rootfs"]["diff_ids"], diff_ids);

    // Loaded into an empty store: same image ID, both names, runnable.
    let other = tempfile::tempdir().unwrap();
    let out = crate::support::kiln_in(other.path(), &["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:latest\nLoaded image: someone/bb:2\n"
    );
    let q = crate::support::kiln_in(other.path(), &["images", "-q", "--no-trunc"]);
    assert_eq!(String::from_utf8_lossy(&q.stdout), format!("{id}\n{id}\n"));
    let run = crate::support::kiln_in(other.path(), &["run", "--rm", "someone/bb:2", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn save_streams_to_a_pipe_and_by_id_writes_no_name() {
    let f = Fresh::new();
    let id = f.image_id("docker.io/library/busybox:latest");
    let out = f.kiln(&["image", "save", &id[7..19]]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("byid.tar");
    std::fs::write(&archive, &out.stdout).unwrap();
    let manifest: Value = serde_json::from_slice(&tar_files(&archive)["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));
    // Loading it from standard input gives an untagged image with that ID.
    let g = Fresh::new();
    g.ok(&["rmi", "busybox"]);
    let out = g.kiln_stdin(&["load"], &out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Loaded image ID: {id}\n")
    );
    let listed = g.ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    assert_eq!(listed, format!("<none> <none> {}\n", &id[7..19]));
    // A repository without a tag: all its tags, as `docker save fedora`.
    let h = Fresh::new();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nLABEL v=2\n").unwrap();
    let b = h.kiln(&[
        "build",
        "--progress=plain",
        "-t",
        "busybox:two",
        ctx.to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    h.ok(&["tag", "busybox", "elsewhere:1"]);
    let all = dir.path().join("all.tar");
    h.ok(&["save", "-o", all.to_str().unwrap(), "busybox"]);
    let manifest: Value = serde_json::from_slice(&tar_files(&all)["manifest.json"]).unwrap();
    let mut tags: Vec<String> = manifest
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["RepoTags"].as_array().unwrap().clone())
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    assert_eq!(tags, ["busybox:latest", "busybox:two"]);

    let missing = f.kiln(&["save", "-o", archive.to_str().unwrap(), "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "Error: No such image: nosuch\n"
    );
}

#[test]
fn skopeo_docker_archives_load_and_run() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    // An OCI layout made by kiln's store, converted by skopeo into a classic
    // docker archive (uncompressed layers, skopeo's manifest.json).
    let layout = format!(
        "oci:{}:docker.io/library/busybox:latest",
        f.root.join("store").display()
    );
    let archive = dir.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        &layout,
        &format!("docker-archive:{}:tools/bb:sk", archive.display()),
    ]);
    let g = tempfile::tempdir().unwrap();
    let out = crate::support::kiln_in(g.path(), &["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: tools/bb:sk\n"
    );
    let run = crate::support::kiln_in(g.path(), &["run", "tools/bb:sk", "/bin/true"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // The same archive gzip-compressed, from standard input.
    let gz = kiln_testutil::tar::gzip(&std::fs::read(&archive).unwrap());
    let h = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::support::KILN)
        .args(["load"])
        .env("KILN_ROOT", h.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: tools/bb:sk\n"
    );
}

#[test]
fn import_makes_a_one_layer_image_with_changes() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let tarball = crate::common::rootfs_tarball(dir.path());
    let out = f.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\", \"-c\", \"echo $GREETING from $(pwd)\"]",
        "-c",
        "ENV GREETING=hello",
        "-c",
        "WORKDIR /srv",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL org.example=yes",
        "-m",
        "my rootfs",
        tarball.to_str().unwrap(),
        "rootfs:1",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    assert_eq!(f.image_id("docker.io/library/rootfs:1"), id);
    let m = f.manifest("docker.io/library/rootfs:1");
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    let c = f.config("docker.io/library/rootfs:1");
    assert_eq!(c["comment"], "my rootfs");
    assert_eq!(c["history"][0]["comment"], "my rootfs");
    assert_eq!(c["config"]["Env"], serde_json::json!(["GREETING=hello"]));
    assert_eq!(c["config"]["WorkingDir"], "/srv");
    assert_eq!(
        c["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(c["config"]["Labels"]["org.example"], "yes");
    let run = f.kiln(&["run", "--rm", "rootfs:1"]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from /srv\n");
    let insp = f.ok(&["inspect", "-f", "{{.Comment}}", "rootfs:1"]);
    assert_eq!(insp, "my rootfs\n");

    // From standard input (zstd), untagged, with Docker's default message
    // and a platform.
    let plain = {
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&tarball).unwrap());
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        v
    };
    let out = f.kiln_stdin(
        &["image", "import", "--platform", "linux/arm64/v8", "-"],
        &kiln_testutil::tar::zstd(&plain),
    );
    assert!(out.status.success(), "{}", text(&out));
    let id2 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let c2: Value = f.json_blob(&id2);
    assert_eq!(c2["comment"], "Imported from -");
    assert_eq!(
        (c2["architecture"].as_str(), c2["variant"].as_str()),
        (Some("arm64"), Some("v8"))
    );
    assert_eq!(c2["rootfs"]["diff_ids"], c["rootfs"]["diff_ids"]);
    let rows = f.ok(&["images", "--filter", "dangling=true", "--format", "{{.ID}}"]);
    assert_eq!(rows.trim(), &id2[7..19]);

    // A disallowed change is refused before anything is stored.
    let bad = f.kiln(&[
        "import",
        "-c",
        "RUN true",
        tarball.to_str().unwrap(),
        "bad:1",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RUN cannot be used as a change"));
    assert!(!f.tags().iter().any(|t| t.contains("bad")));
}

#[test]
fn import_from_a_loopback_url() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let tarball = std::fs::read(crate::common::rootfs_tarball(dir.path())).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = [0u8; 4096];
        let n = conn.read(&mut req).unwrap();
        let head = String::from_utf8_lossy(&req[..n]).into_owned();
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            tarball.len()
        )
        .unwrap();
        conn.write_all(&tarball).unwrap();
        head
    });
    let url = format!("http://127.0.0.1:{port}/rootfs.tar.gz");
    let out = f.ok(&["import", &url, "fromurl"]);
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /rootfs.tar.gz "), "{head}");
    let id = out.trim();
    assert_eq!(f.image_id("docker.io/library/fromurl:latest"), id);
    assert_eq!(f.json_blob(id)["comment"], format!("Imported from {url}"));
    let run = f.kiln(&["run", "--rm", "fromurl", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn oci_archives_from_skopeo_load_too() {
    let f = Fresh::new();
    let dir = tempfile::tempdir().unwrap();
    let layout = format!(
        "oci:{}:docker.io/library/busybox:latest",
        f.root.join("store").display()
    );
    let archive = dir.path().join("oci.tar");
    // An OCI archive: index.json and blobs only, no manifest.json (what
    // `docker load` also accepts since Docker 25).
    skopeo(&[
        "copy",
        &layout,
        &format!("oci-archive:{}:example.com/team/bb:oci", archive.display()),
    ]);
    assert!(!tar_files(&archive).contains_key("manifest.json"));
    let g = tempfile::tempdir().unwrap();
    let out = crate::support::kiln_in(g.path(), &["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed = crate::support::kiln_in(
        g.path(),
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    let id = f.image_id("docker.io/library/busybox:latest");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!("example.com/team/bb:oci {}\n", &id[7..19]),
        "load printed: {stdout}"
    );
    assert_eq!(stdout, "Loaded image: example.com/team/bb:oci\n");
    let run = crate::support::kiln_in(
        g.path(),
        &["run", "--rm", "example.com/team/bb:oci", "/bin/true"],
    );
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn save_refuses_a_terminal_and_load_an_interactive_stdin() {
    let f = Fresh::new();
    // `script` gives kiln a pseudo-terminal as stdin and stdout.
    let on_tty = |cmd: &str| {
        let out = Command::new("script")
            .args([
                "-qec",
                &format!("{} {cmd}", crate::support::KILN),
                "/dev/null",
            ])
            .env("KILN_ROOT", &f.root)
            .output()
            .expect("run script (apt-get install bsdutils)");
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    assert_eq!(
        on_tty("save busybox"),
        "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    );
    assert_eq!(
        on_tty("load"),
        "Error: requested load from stdin, but stdin is empty\n"
    );
}
