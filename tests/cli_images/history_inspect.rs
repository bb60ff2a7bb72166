//! `kiln history` and `kiln inspect` / `kiln image inspect`.

use serde_json::Value;

use crate::common::{Fresh, table};
use crate::support::text;

#[test]
fn history_lists_config_history_newest_first_with_layer_sizes() {
    let f = Fresh::new();
    let id = f.image_id("docker.io/library/busybox:latest");
    let config = f.config("docker.io/library/busybox:latest");
    let hist = config["history"].as_array().unwrap();
    let out = f.ok(&["history", "busybox"]);
    let (header, rows) = table(&out);
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    assert_eq!(rows.len(), hist.len());
    assert_eq!(rows[0][0], id[7..19]);
    for r in &rows[1..] {
        assert_eq!(r[0], "<missing>");
    }
    // Newest first: the Dockerfile's CMD, an empty layer of 0B.
    assert_eq!(rows[0][2], "CMD [\"sh\"]");
    assert_eq!(rows[0][3], "0B");
    let last = rows.last().unwrap();
    assert!(last[2].starts_with("COPY busybox /bin/busybox"), "{last:?}");
    assert!(last[3].ends_with("MB"), "{last:?}");
    // CREATED BY is cut at 45 characters unless --no-trunc.
    let long = rows
        .iter()
        .find(|r| r[2].ends_with('…'))
        .expect("a truncated entry");
    assert_eq!(long[2].chars().count(), 45);
    let full = f.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "busybox",
    ]);
    assert!(
        full.lines().any(|l| l.len() > 45 && l.starts_with("RUN ")),
        "{full}"
    );
    let q = f.ok(&["history", "-q", "busybox"]);
    let q: Vec<&str> = q.lines().collect();
    assert_eq!(q[0], &id[7..19]);
    assert!(q[1..].iter().all(|l| *l == "<missing>"));
    let raw = f.ok(&[
        "history",
        "--human=false",
        "--format",
        "{{.Size}} {{.CreatedSince}}",
        "busybox",
    ]);
    let first = raw.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "0 {}",
            config["history"].as_array().unwrap().last().unwrap()["created"]
                .as_str()
                .unwrap()
        )
    );
    let alias = f.ok(&["image", "history", "--format", "{{.ID}}", &id[7..19]]);
    assert_eq!(alias.lines().next(), Some(&id[7..19]));
    let missing = f.kiln(&["history", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "Error: No such image: nosuch\n"
    );
}

#[test]
fn inspect_prints_dockers_shape() {
    let f = Fresh::new();
    f.ok(&["tag", "busybox", "someone/bb:2"]);
    let id = f.image_id("docker.io/library/busybox:latest");
    let digest = f.manifest_digest("docker.io/library/busybox:latest");
    let config = f.config("docker.io/library/busybox:latest");
    let out = f.ok(&["inspect", "busybox"]);
    assert!(
        out.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let img = &v[0];
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(
        img["RepoTags"],
        serde_json::json!(["busybox:latest", "someone/bb:2"])
    );
    assert_eq!(
        img["RepoDigests"],
        serde_json::json!([format!("busybox@{digest}"), format!("someone/bb@{digest}")])
    );
    assert_eq!(img["Parent"], "");
    assert_eq!(img["Created"], config["created"]);
    assert_eq!(img["Architecture"], config["architecture"]);
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Config"]["Env"], config["config"]["Env"]);
    for k in [
        "Hostname",
        "User",
        "AttachStdin",
        "Tty",
        "Image",
        "WorkingDir",
        "Entrypoint",
        "Labels",
        "OnBuild",
        "Volumes",
    ] {
        assert!(img["Config"].get(k).is_some(), "Config.{k} missing");
    }
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["RootFS"]["Layers"], config["rootfs"]["diff_ids"]);
    let manifest = f.manifest("docker.io/library/busybox:latest");
    let size: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum::<u64>()
        + manifest["config"]["size"].as_u64().unwrap();
    assert_eq!(img["Size"], size);
    assert!(img["Metadata"]["LastTagTime"].is_string());

    // --format, several images by tag, ID prefix and digest; `image inspect`.
    let out = f.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}} {{json .Config.Cmd}} {{.Os}}",
        "busybox",
        &id[7..12],
        &digest,
    ]);
    let want = format!("{id} [\"sh\"] linux\n");
    assert_eq!(out, want.repeat(3));

    // A missing image: the others are printed, the error is Docker's, status 1.
    let out = f.kiln(&["inspect", "busybox", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such object: nosuch\n"
    );
    let out = f.kiln(&["image", "inspect", "nosuch"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: nosuch\n"
    );
}

#[test]
fn inspect_takes_containers_first_then_images() {
    let f = Fresh::new();
    let run = f.kiln(&["run", "--name", "probe", "busybox", "/bin/true"]);
    assert!(run.status.success(), "{}", text(&run));
    let id = f.image_id("docker.io/library/busybox:latest");
    let out = f.ok(&["inspect", "probe", "busybox"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Name"], "/probe");
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[1]["Id"], id.as_str());
    let out = f.ok(&["inspect", "-f", "{{.State.Status}}", "probe"]);
    assert_eq!(out, "exited\n");
    // `image inspect` never looks at containers.
    let out = f.kiln(&["image", "inspect", "probe"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such image: probe\n"
    );
}
