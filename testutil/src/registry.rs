//! A real local registry for tests: Debian's `docker-registry` (the
//! reference distribution server, 2.8) started on a free `127.0.0.1` port
//! with a temporary storage directory, killed and removed on drop.
//!
//! Four configurations ([`RegistryConfig`]):
//! - [`RegistryConfig::http`]: plain http, anonymous.
//! - [`RegistryConfig::https`]: TLS with a certificate signed by a CA made
//!   for the test ([`Registry::ca_pem`], [`Registry::ca_cert_dir`] for skopeo).
//! - [`RegistryConfig::basic_auth`]: htpasswd Basic auth (bcrypt file made
//!   with `htpasswd -Bbn` from `apache2-utils`) over TLS, as distribution
//!   only serves Basic auth over TLS.
//! - [`RegistryConfig::token_auth`]: Bearer tokens. A token service written
//!   here (a small std::net HTTP server) issues ES256-signed JWTs that the
//!   registry verifies against the service's certificate (`auth.token`
//!   with `rootcertbundle`). It grants pull to anonymous clients and
//!   everything to [`TEST_USER`]/[`TEST_PASSWORD`] or the identity token
//!   [`TEST_IDENTITY_TOKEN`], and counts the tokens it issues.
//!
//! ```no_run
//! use kiln_testutil::registry::{Registry, RegistryConfig};
//! let reg = Registry::start(RegistryConfig::http())?;
//! let image = reg.push_busybox("library/busybox:latest")?;
//! println!("{} holds {}", reg.addr(), image.manifest_digest);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The registry binary (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "docker-registry";
/// User name accepted by the auth configurations.
pub const TEST_USER: &str = "kiln";
/// Password of [`TEST_USER`].
pub const TEST_PASSWORD: &str = "kiln-secret-pw";
/// Identity (refresh) token the token service accepts for [`TEST_USER`].
pub const TEST_IDENTITY_TOKEN: &str = "kiln-identity-token";
/// The `service` name of the token service.
pub const TOKEN_SERVICE: &str = "kiln-test-registry";
/// The `iss` of the tokens.
pub const TOKEN_ISSUER: &str = "kiln-test-token-issuer";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Http,
    Https,
    Basic,
    Token,
}

/// How to start the registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    mode: Mode,
    token_lifetime: Duration,
    anonymous_pull: bool,
}

impl RegistryConfig {
    /// Plain http, no auth.
    pub fn http() -> RegistryConfig {
        RegistryConfig {
            mode: Mode::Http,
            token_lifetime: Duration::from_secs(300),
            anonymous_pull: true,
        }
    }
    /// https with a CA made for this registry, no auth.
    pub fn https() -> RegistryConfig {
        RegistryConfig {
            mode: Mode::Https,
            ..RegistryConfig::http()
        }
    }
    /// htpasswd Basic auth over https.
    pub fn basic_auth() -> RegistryConfig {
        RegistryConfig {
            mode: Mode::Basic,
            ..RegistryConfig::http()
        }
    }
    /// Bearer tokens from the test token service, registry over plain http.
    pub fn token_auth() -> RegistryConfig {
        RegistryConfig {
            mode: Mode::Token,
            ..RegistryConfig::http()
        }
    }
    /// Lifetime of issued tokens (`expires_in`), to test renewal.
    pub fn token_lifetime(mut self, d: Duration) -> RegistryConfig {
        self.token_lifetime = d;
        self
    }
    /// Whether anonymous clients get pull tokens (default true).
    pub fn anonymous_pull(mut self, allow: bool) -> RegistryConfig {
        self.anonymous_pull = allow;
        self
    }
}

/// A running registry; killed and its storage removed on drop.
pub struct Registry {
    child: Child,
    addr: String,
    https: bool,
    dir: tempfile::TempDir,
    ca_pem: Option<String>,
    token: Option<TokenServer>,
    needs_auth: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr)
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

fn missing(what: &str, package: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} (apt-get install {package})"),
    )
}

/// A free 127.0.0.1 port (bound then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Registry {
    /// Starts `docker-registry serve` with `config`; waits until it accepts
    /// connections. Fails naming the Debian package when a tool is missing.
    pub fn start(config: RegistryConfig) -> io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: kiln-test-secret\n",
            storage.display()
        );
        let mut ca_pem = None;
        let https = matches!(config.mode, Mode::Https | Mode::Basic);
        if https {
            let (ca, cert, key) = make_tls(dir.path())?;
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_pem = Some(ca);
        }
        let mut token = None;
        match config.mode {
            Mode::Basic => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", TEST_USER, TEST_PASSWORD])
                    .output()
                    .map_err(|e| missing(&format!("running htpasswd: {e}"), "apache2-utils"))?;
                if !out.status.success() {
                    return Err(io::Error::other(format!(
                        "htpasswd -Bbn failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                let path = dir.path().join("htpasswd");
                fs::write(&path, &out.stdout)?;
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    path.display()
                ));
            }
            Mode::Token => {
                let t =
                    TokenServer::start(dir.path(), config.token_lifetime, config.anonymous_pull)?;
                yaml.push_str(&format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    t.addr,
                    t.cert_path.display()
                ));
                token = Some(t);
            }
            Mode::Http | Mode::Https => {}
        }
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, yaml)?;
        let log_path = dir.path().join("registry.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                missing(
                    &format!("cannot run {REGISTRY_BIN}: {e}"),
                    "docker-registry",
                )
            })?;
        let mut reg = Registry {
            child,
            addr,
            https,
            dir,
            ca_pem,
            token,
            needs_auth: matches!(config.mode, Mode::Basic | Mode::Token),
        };
        reg.wait_ready(&log_path)?;
        Ok(reg)
    }

    fn wait_ready(&mut self, log: &Path) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let text = fs::read_to_string(log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "{REGISTRY_BIN} exited with {status} at start-up:\n{text}"
                )));
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{REGISTRY_BIN} did not listen on {} within 30 s", self.addr),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.addr
        )
    }

    /// Whether the registry serves TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The PEM of the CA that signed the registry's certificate (https and
    /// Basic-auth configurations).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A directory holding `ca.crt`, for skopeo's `--src-cert-dir` /
    /// `--dest-cert-dir` (https configurations).
    pub fn ca_cert_dir(&self) -> Option<PathBuf> {
        self.ca_pem
            .as_ref()
            .map(|_| self.dir.path().join("certs.d"))
    }

    /// `(user, password)` when the registry requires auth.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        self.needs_auth.then_some((TEST_USER, TEST_PASSWORD))
    }

    /// Tokens the token service has issued (0 without token auth).
    pub fn tokens_issued(&self) -> u64 {
        self.token
            .as_ref()
            .map_or(0, |t| t.issued.load(Ordering::SeqCst))
    }

    /// The storage directory (for tests that corrupt content on purpose).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// skopeo options for using this registry as `prefix` (`src` or
    /// `dest`): TLS trust and credentials.
    pub fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        let mut v = Vec::new();
        match self.ca_cert_dir() {
            Some(d) => v.push(format!("--{prefix}-cert-dir={}", d.display())),
            None => v.push(format!("--{prefix}-tls-verify=false")),
        }
        if let Some((u, p)) = self.credentials() {
            v.push(format!("--{prefix}-creds={u}:{p}"));
        } else {
            v.push(format!("--{prefix}-no-creds"));
        }
        v
    }

    /// Builds a busybox image (one gzip layer made from Debian's
    /// `busybox-static`, see [`crate::rootfs`]) as an OCI layout and pushes
    /// it to `repo_tag` (e.g. `library/busybox:latest`) with skopeo.
    pub fn push_busybox(&self, repo_tag: &str) -> io::Result<BusyboxImage> {
        let work = tempfile::tempdir()?;
        let layout = work.path().join("layout");
        let img = build_busybox_layout(&layout)?;
        let out = Command::new("skopeo")
            .arg("copy")
            .arg("--quiet")
            .args(self.skopeo_args("dest"))
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .map_err(|e| missing(&format!("running skopeo: {e}"), "skopeo"))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "skopeo copy to {}/{repo_tag} failed: {}",
                self.addr,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(img)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`Registry::push_busybox`] / [`build_busybox_layout`] made.
#[derive(Clone, Debug)]
pub struct BusyboxImage {
    /// `sha256:...` of the image manifest.
    pub manifest_digest: String,
    /// `sha256:...` of the gzip layer blob.
    pub layer_digest: String,
    /// Size of the layer blob.
    pub layer_size: u64,
    /// `sha256:...` of the config blob.
    pub config_digest: String,
}

fn sha256_hex(b: &[u8]) -> String {
    hex_lower(&Sha256::digest(b))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes a one-layer busybox image as an OCI layout at `dir` with tag
/// `latest`, for the host architecture.
pub fn build_busybox_layout(dir: &Path) -> io::Result<BusyboxImage> {
    let work = tempfile::tempdir()?;
    let rootfs = work.path().join("rootfs");
    crate::rootfs::busybox_rootfs(&rootfs)?;
    let out = Command::new("tar")
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--mtime=@0",
            "-C",
        ])
        .arg(&rootfs)
        .args(["-cf", "-", "."])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "tar of busybox rootfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let tar = out.stdout;
    let diff_id = sha256_hex(&tar);
    let layer = crate::tar::gzip(&tar);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}},"history":[{{"created_by":"kiln-testutil busybox"}}]}}"#
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{}","size":{}}}]}}"#,
        sha256_hex(config.as_bytes()),
        config.len(),
        sha256_hex(&layer),
        layer.len()
    );
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    for b in [config.as_bytes(), manifest.as_bytes(), &layer[..]] {
        fs::write(blobs.join(sha256_hex(b)), b)?;
    }
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#,
        sha256_hex(manifest.as_bytes()),
        manifest.len()
    );
    fs::write(dir.join("index.json"), index)?;
    Ok(BusyboxImage {
        manifest_digest: format!("sha256:{}", sha256_hex(manifest.as_bytes())),
        layer_digest: format!("sha256:{}", sha256_hex(&layer)),
        layer_size: layer.len() as u64,
        config_digest: format!("sha256:{}", sha256_hex(config.as_bytes())),
    })
}

/// Makes a CA and a server certificate for 127.0.0.1/localhost in `dir`.
/// Returns (CA PEM, server cert path, server key path); also writes
/// `certs.d/ca.crt` for skopeo.
fn make_tls(dir: &Path) -> io::Result<(String, PathBuf, PathBuf)> {
    let e = |e: rcgen::Error| io::Error::other(format!("rcgen: {e}"));
    let ca_key = rcgen::KeyPair::generate().map_err(e)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kiln test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let key = rcgen::KeyPair::generate().map_err(e)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(e)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(e)?;
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    fs::write(&cert_path, cert.pem())?;
    fs::write(&key_path, key.serialize_pem())?;
    let certs_d = dir.join("certs.d");
    fs::create_dir_all(&certs_d)?;
    fs::write(certs_d.join("ca.crt"), ca.pem())?;
    Ok((ca.pem(), cert_path, key_path))
}

/// The token service: issues ES256 JWTs per the distribution token spec.
struct TokenServer {
    addr: String,
    cert_path: PathBuf,
    issued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    kid: String,
    lifetime: Duration,
    anonymous_pull: bool,
}

impl TokenServer {
    fn start(dir: &Path, lifetime: Duration, anonymous_pull: bool) -> io::Result<TokenServer> {
        let e = |e: rcgen::Error| io::Error::other(format!("rcgen: {e}"));
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(e)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, TOKEN_ISSUER);
        let cert = params.self_signed(&key).map_err(e)?;
        let cert_path = dir.join("token-signer.crt");
        fs::write(&cert_path, cert.pem())?;
        let rng = ring::rand::SystemRandom::new();
        let signing = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .map_err(|e| io::Error::other(format!("ring: {e}")))?;
        let signer = Arc::new(Signer {
            key: signing,
            rng,
            kid: libtrust_key_id(&key.public_key_der()),
            lifetime,
            anonymous_pull,
        });
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let issued = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (issued2, stop2) = (Arc::clone(&issued), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (signer, issued) = (Arc::clone(&signer), Arc::clone(&issued2));
                thread::spawn(move || {
                    let _ = serve_token(conn, &signer, &issued);
                });
            }
        });
        Ok(TokenServer {
            addr,
            cert_path,
            issued,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// libtrust's key ID, which distribution 2.x matches against the JWT `kid`:
/// base32 of the first 240 bits of SHA-256(DER SubjectPublicKeyInfo),
/// in groups of four joined by `:`.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = Sha256::digest(spki_der);
    let bytes = &hash[..30];
    let mut out = String::new();
    let mut buf: u64 = 0;
    let mut bits = 0;
    for &b in bytes {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    let chunks: Vec<String> = out
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    chunks.join(":")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn serve_token(conn: TcpStream, signer: &Signer, issued: &AtomicU64) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut auth = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "authorization" {
                    auth = Some(v);
                } else if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        let query = target
            .split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default();
        let mut params = form_pairs(&query);
        if method == "POST" {
            params.extend(form_pairs(&String::from_utf8_lossy(&body)));
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // Who is asking: Basic credentials, a refresh token, or nobody.
        let who = match (&auth, get("grant_type").as_deref()) {
            (_, Some("refresh_token")) => match get("refresh_token") {
                Some(t) if t == TEST_IDENTITY_TOKEN => Ok(Some(TEST_USER)),
                _ => Err(()),
            },
            (_, Some("password")) => match (get("username"), get("password")) {
                (Some(u), Some(p)) if u == TEST_USER && p == TEST_PASSWORD => Ok(Some(TEST_USER)),
                _ => Err(()),
            },
            (Some(a), _) => {
                let ok = a
                    .strip_prefix("Basic ")
                    .and_then(|b| STANDARD.decode(b.trim()).ok())
                    .is_some_and(|d| d == format!("{TEST_USER}:{TEST_PASSWORD}").as_bytes());
                if ok { Ok(Some(TEST_USER)) } else { Err(()) }
            }
            (None, _) => Ok(None),
        };
        let resp = match who {
            Err(()) => http_response(
                401,
                "application/json",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            ),
            Ok(None) if !signer.anonymous_pull => http_response(
                401,
                "application/json",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"anonymous access denied"}]}"#,
            ),
            Ok(user) => {
                let scopes: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| k == "scope")
                    .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                let mut access = Vec::new();
                for s in scopes.iter().filter(|s| !s.is_empty()) {
                    // type:name:actions, where name may contain ':' (port).
                    let Some((rest, actions)) = s.rsplit_once(':') else {
                        continue;
                    };
                    let Some((typ, name)) = rest.split_once(':') else {
                        continue;
                    };
                    let granted: Vec<String> = actions
                        .split(',')
                        .filter(|a| user.is_some() || *a == "pull")
                        .map(|a| format!("\"{a}\""))
                        .collect();
                    access.push(format!(
                        r#"{{"type":"{typ}","name":"{name}","actions":[{}]}}"#,
                        granted.join(",")
                    ));
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let header = format!(r#"{{"typ":"JWT","alg":"ES256","kid":"{}"}}"#, signer.kid);
                let claims = format!(
                    r#"{{"iss":"{TOKEN_ISSUER}","sub":"{}","aud":"{}","exp":{},"nbf":{},"iat":{},"jti":"kiln-{n}-{now}","access":[{}]}}"#,
                    user.unwrap_or(""),
                    get("service").unwrap_or_default(),
                    now + signer.lifetime.as_secs().max(1),
                    now.saturating_sub(60),
                    now,
                    access.join(",")
                );
                let signing_input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header),
                    URL_SAFE_NO_PAD.encode(claims)
                );
                match signer.key.sign(&signer.rng, signing_input.as_bytes()) {
                    Ok(sig) => {
                        let jwt =
                            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
                        let body = format!(
                            r#"{{"token":"{jwt}","access_token":"{jwt}","expires_in":{}}}"#,
                            signer.lifetime.as_secs().max(1)
                        );
                        http_response(200, "application/json", &body)
                    }
                    Err(_) => http_response(500, "text/plain", "signing failed"),
                }
            }
        };
        conn.write_all(resp.as_bytes())?;
    }
}

fn http_response(status: u16, content_type: &str, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_id_shape() {
        let id = libtrust_key_id(b"anything");
        assert_eq!(id.len(), 48 + 11);
        assert_eq!(id.split(':').count(), 12);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull"),
            "repository:a/b:pull"
        );
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
