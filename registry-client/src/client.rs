//! The [`Client`]: configuration, endpoint selection (mirrors, http for
//! insecure and loopback registries), authentication, retries, and the
//! request primitive every operation goes through.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};

use crate::challenge::parse_www_authenticate;
use crate::credentials::{Credentials, DockerConfig};
use crate::error::Error;
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};

/// Client configuration. Start from [`ClientConfig::default`] and set what
/// differs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `User-Agent` header.
    pub user_agent: String,
    /// Pull mirrors per registry (as named in references, e.g. `docker.io`):
    /// base URLs such as `http://127.0.0.1:5000` or `https://mirror.example`,
    /// tried in order before the registry itself. Push never uses mirrors.
    pub mirrors: HashMap<String, Vec<String>>,
    /// Registries (`host[:port]`) that may be reached over plain http. Like
    /// Docker, https is tried first and http used if it fails. Loopback
    /// registries (`localhost`, `127.0.0.0/8`, `::1`) are always treated so.
    pub insecure_registries: HashSet<String>,
    /// Extra PEM CA certificates trusted besides the system roots.
    pub ca_certificates_pem: Vec<Vec<u8>>,
    /// Retries after 429, 5xx and connection faults (each operation).
    pub max_retries: u32,
    /// First retry delay; doubles each time (capped at 10 s), or the
    /// server's `Retry-After`.
    pub retry_base_delay: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any read (headers or the next body bytes).
    pub read_timeout: Duration,
    /// Blobs transferred at once by image pull/push (Docker's default: 3).
    pub max_concurrent_transfers: usize,
    /// Blobs larger than this are uploaded in PATCH chunks of this size,
    /// each resumable; smaller blobs in one PUT.
    pub chunk_size: u64,
    /// Read credentials from Docker's `config.json` when none were given
    /// with [`Client::set_credentials`].
    pub use_docker_config: bool,
    /// The Docker config file to read (default: `$DOCKER_CONFIG` or
    /// `~/.docker/config.json`).
    pub docker_config_path: Option<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            user_agent: concat!("kiln-registry-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            mirrors: HashMap::new(),
            insecure_registries: HashSet::new(),
            ca_certificates_pem: Vec::new(),
            max_retries: 4,
            retry_base_delay: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_concurrent_transfers: 3,
            chunk_size: 64 << 20,
            use_docker_config: true,
            docker_config_path: None,
        }
    }
}

/// A place a registry API is reached at: a base URL and the key used for
/// auth state (host:port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://host:port` (no trailing slash).
    pub(crate) base: String,
    /// `host:port` as credentials are looked up.
    pub(crate) host: String,
    /// The registry name as in references (for credentials).
    pub(crate) registry: String,
}

#[derive(Clone, Debug)]
enum AuthScheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Clone)]
struct Token {
    value: crate::credentials::Secret,
    expires: Instant,
}

#[derive(Default)]
struct State {
    schemes: HashMap<String, AuthScheme>,
    tokens: HashMap<(String, String), Token>,
    bases: HashMap<String, String>,
    creds: HashMap<String, Credentials>,
}

/// An OCI distribution client. Cheap to clone (shared connection pool, token
/// cache and configuration).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    state: Mutex<State>,
    docker_config: Mutex<Option<DockerConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A body for [`Client::request`] that can be made again for each attempt.
pub(crate) enum ReqBody<'a> {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a blob from `offset`.
    Stream {
        provider: &'a dyn crate::blob::BlobProvider,
        digest: &'a oci_spec::image::Digest,
        offset: u64,
        len: u64,
        progress: &'a crate::blob::ProgressSink,
        total: Option<u64>,
    },
}

impl Client {
    /// A client with `config`. Fails on an unparsable CA certificate.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(10));
        for pem in &config.ca_certificates_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Config {
                what: format!("CA certificate bundle: {e}"),
            })?;
            if certs.is_empty() {
                return Err(Error::Config {
                    what: "CA certificate bundle holds no certificate".to_owned(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| Error::Config {
            what: format!("building HTTP client: {e}"),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                state: Mutex::new(State::default()),
                docker_config: Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Uses `creds` for `registry` (as named in references), overriding
    /// Docker's config file.
    pub fn set_credentials(&self, registry: &str, creds: Credentials) {
        let mut st = self.lock();
        st.creds.insert(registry.to_owned(), creds);
        // Tokens obtained with other credentials must not be reused.
        st.tokens.retain(|(h, _), _| h != registry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only caches behind: keep going.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn credentials(&self, registry: &str) -> Result<Credentials, Error> {
        if let Some(c) = self.lock().creds.get(registry) {
            return Ok(c.clone());
        }
        if !self.inner.config.use_docker_config {
            return Ok(Credentials::Anonymous);
        }
        let mut dc = self
            .inner
            .docker_config
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if dc.is_none() {
            *dc = Some(match &self.inner.config.docker_config_path {
                Some(p) => DockerConfig::load(p)?,
                None => match DockerConfig::default_path() {
                    Some(p) => DockerConfig::load(&p)?,
                    None => return Ok(Credentials::Anonymous),
                },
            });
        }
        let found = match dc.as_ref() {
            Some(c) => c.credentials_for(registry)?,
            None => None,
        };
        Ok(found.unwrap_or(Credentials::Anonymous))
    }

    /// The endpoints to try for pulling from `registry`: mirrors first.
    pub(crate) async fn pull_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, Error> {
        let mut v = Vec::new();
        for m in self
            .inner
            .config
            .mirrors
            .get(registry)
            .into_iter()
            .flatten()
        {
            let url = reqwest::Url::parse(m).map_err(|e| Error::Config {
                what: format!("mirror URL {m:?}: {e}"),
            })?;
            let host = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => {
                    return Err(Error::Config {
                        what: format!("mirror URL {m:?} has no host"),
                    });
                }
            };
            v.push(Endpoint {
                base: m.trim_end_matches('/').to_owned(),
                registry: host.clone(),
                host,
            });
        }
        v.push(self.endpoint(registry).await?);
        Ok(v)
    }

    /// The endpoint of `registry` itself, choosing https or http.
    pub(crate) async fn endpoint(&self, registry: &str) -> Result<Endpoint, Error> {
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST.to_owned()
        } else {
            registry.to_owned()
        };
        if let Some(b) = self.lock().bases.get(&host) {
            return Ok(Endpoint {
                base: b.clone(),
                host,
                registry: registry.to_owned(),
            });
        }
        let base = if self.inner.config.insecure_registries.contains(registry) || is_loopback(&host)
        {
            // Docker's rule for insecure registries: https if it answers,
            // else plain http.
            let https = format!("https://{host}");
            match self
                .inner
                .http
                .get(format!("{https}/v2/"))
                .header(USER_AGENT, &self.inner.config.user_agent)
                .send()
                .await
            {
                Ok(_) => https,
                Err(tls_err) => {
                    let http = format!("http://{host}");
                    // A TLS server answers plain http with 400 ("Client sent
                    // an HTTP request to an HTTPS server"): then the https
                    // failure (say, an unknown CA) is the real problem.
                    let plain = self
                        .inner
                        .http
                        .get(format!("{http}/v2/"))
                        .header(USER_AGENT, &self.inner.config.user_agent)
                        .send()
                        .await;
                    if let Ok(r) = plain
                        && r.status() == StatusCode::BAD_REQUEST
                    {
                        return Err(Error::Http {
                            method: "GET".to_owned(),
                            url: format!("{https}/v2/"),
                            what: format!(
                                "https failed and the registry does not speak plain http: {}",
                                describe(&tls_err)
                            ),
                            source: Some(tls_err),
                        });
                    }
                    http
                }
            }
        } else {
            format!("https://{host}")
        };
        self.lock().bases.insert(host.clone(), base.clone());
        Ok(Endpoint {
            base,
            host,
            registry: registry.to_owned(),
        })
    }

    /// Sends one API request with auth, retries and backoff. `scopes` are the
    /// token scopes (`repository:name:pull`) the request needs. Returns the
    /// response whatever its status, except 401 after authenticating (an
    /// [`Error::Auth`]) and retryable statuses once retries are exhausted
    /// (returned as they are).
    #[allow(clippy::too_many_arguments)] // internal; each is a distinct part of the request
    pub(crate) async fn request(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: ReqBody<'_>,
        retry: bool,
    ) -> Result<Response, Error> {
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}{url}", ep.base)
        };
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            let mut req = self
                .inner
                .http
                .request(method.clone(), &url)
                .header(USER_AGENT, &self.inner.config.user_agent)
                .headers(headers.clone());
            if let Some(v) = self.auth_header(ep, scopes).await? {
                req = req.header(AUTHORIZATION, v);
            }
            req =
                match &body {
                    ReqBody::Empty => req,
                    ReqBody::Bytes(b) => req.body(b.clone()),
                    ReqBody::Stream {
                        provider,
                        digest,
                        offset,
                        len,
                        progress,
                        total,
                    } => {
                        let r = provider.open(digest, *offset).await.map_err(|source| {
                            Error::Stream {
                                step: "opening blob to upload",
                                digest: digest.to_string(),
                                source,
                            }
                        })?;
                        use tokio::io::AsyncReadExt;
                        let r = crate::blob::ProgressReader {
                            inner: Box::pin(r.take(*len)),
                            progress: Arc::clone(progress),
                            digest: (*digest).clone(),
                            done: *offset,
                            total: *total,
                            counter: None,
                        };
                        let stream = tokio_util_reader_stream(r);
                        req.header(reqwest::header::CONTENT_LENGTH, *len)
                            .body(reqwest::Body::wrap_stream(stream))
                    }
                };
            let sent = req.send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if retry && attempt < self.inner.config.max_retries && is_transient(&e) {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Http {
                        method: method.to_string(),
                        url: redact_url(&url),
                        what: describe(&e),
                        source: Some(e),
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match challenge {
                    Some(c) => {
                        self.authenticate(ep, &c, scopes).await?;
                        authenticated = true;
                        continue;
                    }
                    None => {
                        return Err(Error::Auth {
                            registry: ep.host.clone(),
                            what: format!(
                                "{method} {} answered 401 without a challenge",
                                redact_url(&url)
                            ),
                        });
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED {
                let body = error_body(resp).await;
                return Err(Error::Auth {
                    registry: ep.host.clone(),
                    what: format!("credentials rejected for {} ({body})", scopes.join(" ")),
                });
            }
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || matches!(status.as_u16(), 500 | 502 | 503 | 504);
            if transient && retry && attempt < self.inner.config.max_retries {
                let after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.trim().parse::<u64>().ok());
                tokio::time::sleep(self.backoff(attempt, after)).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        if let Some(s) = retry_after {
            return Duration::from_secs(s.min(30));
        }
        let base = self
            .inner
            .config
            .retry_base_delay
            .saturating_mul(1 << attempt.min(6));
        base.min(Duration::from_secs(10))
    }

    async fn auth_header(
        &self,
        ep: &Endpoint,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>, Error> {
        let scheme = self.lock().schemes.get(&ep.host).cloned();
        match scheme {
            None => Ok(None),
            Some(AuthScheme::Basic) => match self.credentials(&ep.registry)? {
                Credentials::Basic { username, password } => {
                    use base64::Engine;
                    let v = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()));
                    Ok(Some(sensitive(&format!("Basic {v}"))?))
                }
                _ => Ok(None),
            },
            Some(AuthScheme::Bearer { realm, service }) => {
                let key = (ep.host.clone(), scopes.join(" "));
                let cached = self.lock().tokens.get(&key).cloned();
                let token = match cached {
                    Some(t) if t.expires > Instant::now() => t,
                    // Expired or never fetched for this scope: renew now
                    // rather than take a 401 round trip.
                    _ => {
                        self.fetch_token(ep, &realm, service.as_deref(), scopes)
                            .await?
                    }
                };
                Ok(Some(sensitive(&format!(
                    "Bearer {}",
                    token.value.expose()
                ))?))
            }
        }
    }

    async fn authenticate(
        &self,
        ep: &Endpoint,
        header: &str,
        scopes: &[String],
    ) -> Result<(), Error> {
        let challenges = parse_www_authenticate(header);
        if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = b
                .param("realm")
                .ok_or_else(|| Error::Auth {
                    registry: ep.host.clone(),
                    what: "Bearer challenge without realm".to_owned(),
                })?
                .to_owned();
            let service = b.param("service").map(str::to_owned);
            let mut all: Vec<String> = scopes.to_vec();
            if let Some(s) = b.param("scope") {
                for s in s.split(' ') {
                    if !s.is_empty() && !all.iter().any(|x| x == s) {
                        all.push(s.to_owned());
                    }
                }
            }
            self.lock().schemes.insert(
                ep.host.clone(),
                AuthScheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let t = self
                .fetch_token(ep, &realm, service.as_deref(), &all)
                .await?;
            // Also cache under the scopes the caller will ask with.
            self.lock()
                .tokens
                .insert((ep.host.clone(), scopes.join(" ")), t);
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            match self.credentials(&ep.registry)? {
                Credentials::Basic { .. } => {
                    self.lock()
                        .schemes
                        .insert(ep.host.clone(), AuthScheme::Basic);
                    return Ok(());
                }
                _ => {
                    return Err(Error::Auth {
                        registry: ep.host.clone(),
                        what: "registry requires a user name and password (log in first)"
                            .to_owned(),
                    });
                }
            }
        }
        Err(Error::Auth {
            registry: ep.host.clone(),
            what: format!("no supported challenge in {header:?}"),
        })
    }

    async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token, Error> {
        let creds = self.credentials(&ep.registry)?;
        let mut url = reqwest::Url::parse(realm).map_err(|e| Error::Auth {
            registry: ep.host.clone(),
            what: format!("bad token realm {realm:?}: {e}"),
        })?;
        let started = Instant::now();
        let resp = match &creds {
            Credentials::IdentityToken(t) => {
                // OAuth2 refresh_token grant (the distribution token spec's
                // "token authentication with refresh tokens").
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", t.expose().to_owned()),
                    ("client_id", "kiln".to_owned()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_owned()));
                }
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.inner
                    .http
                    .post(url.clone())
                    .header(USER_AGENT, &self.inner.config.user_agent)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
                    .send()
                    .await
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let mut req = self
                    .inner
                    .http
                    .get(url.clone())
                    .header(USER_AGENT, &self.inner.config.user_agent);
                if let Credentials::Basic { username, password } = other {
                    req = req.basic_auth(username, Some(password.expose()));
                }
                req.send().await
            }
        };
        url.set_query(None);
        let resp = resp.map_err(|e| Error::Http {
            method: "GET".to_owned(),
            url: url.to_string(),
            what: format!("fetching token: {}", describe(&e)),
            source: Some(e),
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = error_body(resp).await;
            return Err(Error::Auth {
                registry: ep.host.clone(),
                what: format!("token service {url} answered {status}: {body}"),
            });
        }
        let bytes = resp.bytes().await.map_err(|e| Error::Http {
            method: "GET".to_owned(),
            url: url.to_string(),
            what: describe(&e),
            source: Some(e),
        })?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            url: url.to_string(),
            source,
        })?;
        let value = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Auth {
                registry: ep.host.clone(),
                what: format!("token service {url} returned no token"),
            })?;
        // The spec's default lifetime is 60 s; renew a little early.
        let life = Duration::from_secs(t.expires_in.unwrap_or(60).max(1));
        let expires = started + life.saturating_sub(Duration::from_secs(5).min(life / 4));
        let token = Token {
            value: crate::credentials::Secret::new(value),
            expires,
        };
        self.lock()
            .tokens
            .insert((ep.host.clone(), scopes.join(" ")), token.clone());
        Ok(token)
    }

    /// Checks that `creds` are accepted by `registry` (a `GET /v2/`, with a
    /// token exchange when the registry uses Bearer auth). On success they
    /// are used by this client and, if `store` is set, saved to Docker's
    /// config file like `docker login`.
    pub async fn login(
        &self,
        registry: &str,
        creds: Credentials,
        store: bool,
    ) -> Result<(), Error> {
        self.set_credentials(registry, creds.clone());
        let ep = self.endpoint(registry).await?;
        self.lock().schemes.remove(&ep.host);
        let resp = self
            .request(
                &ep,
                &[],
                Method::GET,
                "/v2/",
                HeaderMap::new(),
                ReqBody::Empty,
                true,
            )
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(Error::Auth {
                registry: registry.to_owned(),
                what: format!("GET /v2/ answered {status} after login"),
            });
        }
        // An anonymous-token registry answers 200 whoever asks: demand that
        // the credentials were actually presented and accepted.
        if matches!(creds, Credentials::Anonymous) {
            return Ok(());
        }
        if store {
            let path = match &self.inner.config.docker_config_path {
                Some(p) => p.clone(),
                None => DockerConfig::default_path().ok_or_else(|| Error::Config {
                    what: "no home directory for docker config".to_owned(),
                })?,
            };
            let mut dc = DockerConfig::load(&path)?;
            dc.store(registry, &creds)?;
        }
        Ok(())
    }
}

fn tokio_util_reader_stream<R: tokio::io::AsyncRead + Send + Unpin>(
    r: R,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold((r, vec![0u8; 256 << 10]), |(mut r, mut buf)| async move {
        use tokio::io::AsyncReadExt;
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                Some((Ok(chunk), (r, buf)))
            }
            Err(e) => Some((Err(e), (r, buf))),
        }
    })
}

fn sensitive(v: &str) -> Result<HeaderValue, Error> {
    let mut h = HeaderValue::from_str(v).map_err(|_| Error::Config {
        what: "credentials contain characters not allowed in HTTP headers".to_owned(),
    })?;
    h.set_sensitive(true);
    Ok(h)
}

/// Percent-encodes a form value.
fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `localhost`, 127.0.0.0/8 and ::1, with or without port.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else if e.is_body() || e.is_decode() {
        "reading the response body failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Drops query strings (upload `_state`, signed redirect parameters).
pub(crate) fn redact_url(u: &str) -> String {
    u.split('?').next().unwrap_or(u).to_owned()
}

/// The start of an error response's body, for messages.
pub(crate) async fn error_body(resp: Response) -> String {
    let b = resp.bytes().await.unwrap_or_default();
    let s = String::from_utf8_lossy(&b[..b.len().min(512)]);
    s.trim().to_owned()
}

/// The error for a non-success response.
pub(crate) async fn status_error(method: &Method, url: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let body = error_body(resp).await;
    Error::Status {
        method: method.to_string(),
        url: redact_url(url),
        status,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "[fe80::1]:1", "docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let c = Client::new(ClientConfig::default()).unwrap();
        assert_eq!(c.backoff(0, None), Duration::from_millis(200));
        assert_eq!(c.backoff(2, None), Duration::from_millis(800));
        assert_eq!(c.backoff(20, None), Duration::from_secs(10));
        assert_eq!(c.backoff(0, Some(3)), Duration::from_secs(3));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("http://h/v2/x/blobs/uploads/u?_state=secret"),
            "http://h/v2/x/blobs/uploads/u"
        );
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn bad_ca_is_a_config_error() {
        let cfg = ClientConfig {
            ca_certificates_pem: vec![b"not pem".to_vec()],
            ..ClientConfig::default()
        };
        assert!(matches!(Client::new(cfg), Err(Error::Config { .. })));
    }
}
