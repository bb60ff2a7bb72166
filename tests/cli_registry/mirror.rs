//! Docker Hub names through a configured mirror: `FROM busybox` and
//! `kiln pull busybox` work with no Docker Hub, from the mirror the
//! settings name (environment or configuration file). The mirror answers
//! every request, so nothing falls through to Docker Hub.

use crate::support::*;

#[test]
fn docker_hub_names_come_from_the_configured_mirror() {
    let reg = Registry::start(RegistryConfig::http()).expect("start registry");
    let img = reg
        .push_busybox("library/busybox:latest")
        .expect("push busybox");
    let env = Env::new();
    let mirror = format!("docker.io={}", reg.base_url());

    // A build whose base is a Docker Hub short name, mirror from the
    // environment.
    let ctx = context("FROM busybox\nRUN echo from-mirror > /m\n", &[]);
    let out = env.kiln_with(
        &[
            "build",
            "--progress=plain",
            "-t",
            "mirrored:1",
            path_str(ctx.path()),
        ],
        &[("KILN_REGISTRY_MIRRORS", &mirror)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        env.tagged("docker.io/library/busybox:latest"),
        Some(img.manifest_digest.clone()),
        "the base is stored under its Docker Hub name"
    );
    let run = env.kiln(&["run", "--rm", "mirrored:1", "cat", "/m"]);
    assert_eq!(stdout(&run), "from-mirror\n", "{}", text(&run));

    // `kiln pull` of a Docker Hub name, mirror from the configuration file,
    // into a fresh state directory.
    let fresh = Env::new();
    let config = fresh.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.mirrors]\n\"docker.io\" = [\"{}\"]\n",
            reg.base_url()
        ),
    )
    .expect("write config");
    let out = fresh.kiln_with(&["pull", "busybox"], &[("KILN_CONFIG", path_str(&config))]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("Digest: {}", img.manifest_digest)),
        "{printed}"
    );
    assert!(
        printed.ends_with("docker.io/library/busybox:latest\n"),
        "{printed}"
    );
    let run = fresh.kiln(&["run", "--rm", "busybox", "true"]);
    assert!(run.status.success(), "{}", text(&run));
}
