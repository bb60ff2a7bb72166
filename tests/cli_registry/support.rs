//! Shared set-up: a state directory per test, kiln runs with a private
//! `DOCKER_CONFIG` and `HOME`, and readers for the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub use kiln_testutil::registry::{Registry, RegistryConfig};

pub const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// One test's world: a state dir and a home with its own docker config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub certs: Option<PathBuf>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("kiln-reg-e2e-")
            .tempdir()
            .expect("tempdir");
        for d in ["root", "home", "docker"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Env { dir, certs: None }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker/config.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KILN);
        c.args(args)
            .env("KILN_ROOT", self.root())
            .env("HOME", self.dir.path().join("home"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("SOURCE_DATE_EPOCH");
        match &self.certs {
            Some(d) => c.env("KILN_CERTS_D", d),
            // An empty directory: no system-wide certs.d leaks in.
            None => c.env("KILN_CERTS_D", self.dir.path().join("home")),
        };
        c
    }

    pub fn kiln(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kiln")
    }

    /// Runs kiln with extra environment variables.
    pub fn kiln_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run kiln")
    }

    pub fn kiln_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kiln");
        // kiln may exit (refusing its arguments) before reading: a broken
        // pipe here is not the test's failure.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
        child.wait_with_output().expect("wait kiln")
    }

    /// Runs kiln and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}",
            text(&out)
        );
        stdout(&out)
    }

    pub fn index(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.root().join("store/index.json")).expect("index"))
            .expect("json")
    }

    pub fn tagged(&self, name: &str) -> Option<String> {
        self.index()["manifests"]
            .as_array()?
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .map(|m| m["digest"].as_str().expect("digest").to_string())
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("digest");
        self.root().join("store/blobs").join(alg).join(hex)
    }

    pub fn blob_json(&self, digest: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.blob_path(digest)).expect("read blob"))
            .expect("blob json")
    }

    /// The snapshot directories (`sha256-<chain id>`) in the state dir.
    pub fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root().join("snapshots"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("sha256-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

pub use kiln_testutil::cli::{context, stdout, text};

/// `skopeo inspect` of `image` (docker://) as JSON.
pub fn skopeo_inspect(reg: &Registry, image: &str) -> Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(
            reg.skopeo_args("src")
                .iter()
                .map(|a| a.replace("--src-", "--")),
        )
        .arg(format!("docker://{image}"))
        .output()
        .expect("skopeo is missing: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image}:\n{}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo json")
}

/// The diffIDs in the config of the image tagged `name`.
pub fn diff_ids(env: &Env, name: &str) -> Vec<String> {
    let m = env.blob_json(&env.tagged(name).expect("tagged"));
    let c = env.blob_json(m["config"]["digest"].as_str().expect("config"));
    c["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("str").to_string())
        .collect()
}

pub fn short(digest: &str) -> String {
    digest.split_once(':').expect("digest").1[..12].to_string()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// The set-up of the push and layer-reuse tests: busybox pushed to `reg`
/// as `library/busybox:latest`, pulled into `env`, and an image
/// `FROM` it plus `COPY file` built there as `REG/team/app:TAG`. Returns the
/// pushed busybox, the base's name and the app's name.
pub fn app_on_pushed_busybox(
    reg: &Registry,
    env: &Env,
    file: (&str, &str),
    tag: &str,
) -> (kiln_testutil::registry::BusyboxImage, String, String) {
    let img = reg
        .push_busybox("library/busybox:latest")
        .expect("push busybox");
    let base = format!("{}/library/busybox:latest", reg.addr());
    env.ok(&["pull", "-q", &base]);
    let ctx = context(&format!("FROM {base}\nCOPY {0} /{0}\n", file.0), &[file]);
    let app = format!("{}/team/app:{tag}", reg.addr());
    env.ok(&[
        "build",
        "--progress=plain",
        "-q",
        "-t",
        &app,
        path_str(ctx.path()),
    ]);
    (img, base, app)
}
