//! A fault-injecting proxy between the client and the real registry: drops
//! connections mid-body, answers 500/429/503, truncates bodies, serves wrong
//! or extra bytes. The client must complete correctly (retry, resume) or
//! fail with a clear error, and never hand on unverified data as final.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use kiln_registry_client::{
    BlobPush, ClientConfig, Error, MemoryBlobs, PushOptions, Reference, no_progress,
};
use kiln_testutil::registry::{Registry, RegistryConfig};

use crate::{client_with, random_bytes};

#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status, not forwarding.
    Status(u16),
    /// Send the headers (full Content-Length) and `n` body bytes, then
    /// reset the connection.
    DropAfter(usize),
    /// A clean response with only the first `n` bytes.
    Truncate(usize),
    /// Same length, different bytes.
    WrongBytes,
    /// The right bytes followed by `n` more.
    Append(usize),
    /// Forward the request (the registry acts on it), then reset the
    /// connection instead of answering.
    ResetAfterForward,
}

struct Rule {
    method: &'static str,
    path_contains: &'static str,
    fault: Fault,
}

#[derive(Default)]
struct State {
    rules: Mutex<VecDeque<Rule>>,
    sticky: Mutex<Option<Rule>>,
    range_requests: AtomicU64,
    requests: AtomicU64,
}

struct Proxy {
    addr: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (up, me, st) = (upstream.to_owned(), addr.clone(), state.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (up, me, st, http) = (up.clone(), me.clone(), st.clone(), http.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, up.clone(), me.clone(), st.clone(), http.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Proxy { addr, state, task }
    }

    fn push(&self, method: &'static str, path_contains: &'static str, fault: Fault) {
        self.state.rules.lock().unwrap().push_back(Rule {
            method,
            path_contains,
            fault,
        });
    }

    fn always(&self, method: &'static str, path_contains: &'static str, fault: Fault) {
        *self.state.sticky.lock().unwrap() = Some(Rule {
            method,
            path_contains,
            fault,
        });
    }

    fn reference(&self, path: &str) -> Reference {
        Reference::parse(&format!("{}/{path}", self.addr)).unwrap()
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: Bytes) -> Body {
    Full::new(b)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    upstream: String,
    me: String,
    st: Arc<State>,
    http: reqwest::Client,
) -> Result<hyper::Response<Body>, std::io::Error> {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if req.headers().contains_key("range") {
        st.range_requests.fetch_add(1, Ordering::SeqCst);
    }
    let matches = |r: &Rule| r.method == method.as_str() && path.contains(r.path_contains);
    let fault = {
        let mut rules = st.rules.lock().unwrap();
        match rules.iter().position(&matches) {
            Some(i) => rules.remove(i).map(|r| r.fault),
            None => st
                .sticky
                .lock()
                .unwrap()
                .as_ref()
                .filter(|r| matches(r))
                .map(|r| r.fault.clone()),
        }
    };
    if let Some(Fault::Status(s)) = fault {
        let mut resp = hyper::Response::new(full(Bytes::from_static(
            b"{\"errors\":[{\"code\":\"INJECTED\"}]}",
        )));
        *resp.status_mut() = hyper::StatusCode::from_u16(s).unwrap();
        if s == 429 {
            resp.headers_mut()
                .insert("retry-after", "0".parse().unwrap());
        }
        return Ok(resp);
    }
    let mut fwd = http.request(method.clone(), format!("http://{upstream}{path}"));
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let up = fwd.body(body).send().await.unwrap();
    if let Some(Fault::ResetAfterForward) = fault {
        return Err(std::io::Error::other("injected reset after forwarding"));
    }
    let status = up.status();
    let mut headers = up.headers().clone();
    let data = up.bytes().await.unwrap_or_default();
    if let Some(loc) = headers.get("location").and_then(|v| v.to_str().ok()) {
        let rewritten = loc.replace(&upstream, &me);
        headers.insert("location", rewritten.parse().unwrap());
    }
    headers.remove("transfer-encoding");
    let upstream_length = headers.remove("content-length");
    let (body, len): (Body, usize) = match fault {
        Some(Fault::DropAfter(n)) => {
            let head = data.slice(..n.min(data.len()));
            let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(head)),
                Err(std::io::Error::other("injected connection drop")),
            ];
            (
                StreamBody::new(futures_util::stream::iter(chunks)).boxed(),
                data.len(),
            )
        }
        Some(Fault::Truncate(n)) => {
            let head = data.slice(..n.min(data.len()));
            let l = head.len();
            (full(head), l)
        }
        Some(Fault::WrongBytes) => {
            let l = data.len();
            let mut v = data.to_vec();
            for b in v.iter_mut().step_by(97) {
                *b ^= 0x5a;
            }
            (full(Bytes::from(v)), l)
        }
        Some(Fault::Append(n)) => {
            let mut v = data.to_vec();
            v.extend(std::iter::repeat_n(b'x', n));
            let l = v.len();
            (full(Bytes::from(v)), l)
        }
        _ => {
            let l = data.len();
            (full(data), l)
        }
    };
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    match (method == hyper::Method::HEAD, upstream_length) {
        (false, _) => {
            resp.headers_mut().insert("content-length", len.into());
        }
        (true, Some(l)) => {
            resp.headers_mut().insert("content-length", l);
        }
        (true, None) => {}
    }
    Ok(resp)
}

struct Setup {
    _reg: Registry,
    proxy: Proxy,
    client: kiln_registry_client::Client,
    data: Vec<u8>,
    digest: kiln_registry_client::oci_spec::image::Digest,
    blobs: MemoryBlobs,
}

async fn setup(config: ClientConfig) -> Setup {
    let reg = Registry::start(RegistryConfig::http()).unwrap();
    let proxy = Proxy::start(reg.addr()).await;
    let client = client_with(&reg, config);
    let data = random_bytes(2_000_000, 11);
    let mut blobs = MemoryBlobs::new();
    let digest = blobs.insert(Bytes::from(data.clone()));
    Setup {
        _reg: reg,
        proxy,
        client,
        data,
        digest,
        blobs,
    }
}

async fn seed(s: &Setup) {
    let r = s.proxy.reference("f/blob");
    s.client
        .push_blob(
            &r,
            &s.digest,
            s.data.len() as u64,
            &s.blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_truncated_downloads_resume_with_range() {
    let s = setup(ClientConfig::default()).await;
    seed(&s).await;
    let r = s.proxy.reference("f/blob");
    s.proxy
        .push("GET", "/blobs/sha256", Fault::DropAfter(700_000));
    s.proxy
        .push("GET", "/blobs/sha256", Fault::DropAfter(100_000));
    s.proxy
        .push("GET", "/blobs/sha256", Fault::Truncate(300_000));
    let mut out = Vec::new();
    let n = s
        .client
        .pull_blob(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &mut out,
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(n as usize, s.data.len());
    assert!(out == s.data, "resumed content differs");
    assert!(
        s.proxy.state.range_requests.load(Ordering::SeqCst) >= 3,
        "did not resume with Range"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_statuses_are_retried() {
    let s = setup(ClientConfig::default()).await;
    seed(&s).await;
    let r = s.proxy.reference("f/blob");
    s.proxy.push("GET", "/blobs/sha256", Fault::Status(500));
    s.proxy.push("GET", "/blobs/sha256", Fault::Status(429));
    s.proxy.push("GET", "/blobs/sha256", Fault::Status(503));
    let mut out = Vec::new();
    s.client
        .pull_blob(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &mut out,
            &no_progress(),
        )
        .await
        .unwrap();
    assert!(out == s.data);
    // Persistent failure: a clear error naming the status, after retries.
    s.proxy.always("GET", "/blobs/sha256", Fault::Status(503));
    let before = s.proxy.state.requests.load(Ordering::SeqCst);
    let e = s
        .client
        .pull_blob(&r, &s.digest, None, &mut Vec::new(), &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Status { status: 503, .. }), "{e}");
    assert_eq!(
        s.proxy.state.requests.load(Ordering::SeqCst) - before,
        5,
        "1 try + 4 retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_are_never_kept() {
    let s = setup(ClientConfig::default()).await;
    seed(&s).await;
    let r = s.proxy.reference("f/blob");
    s.proxy.always("GET", "/blobs/sha256", Fault::WrongBytes);
    let e = s
        .client
        .pull_blob(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &mut Vec::new(),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let e = s
        .client
        .pull_blob_to_file(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &path,
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a file was left behind"
    );
    // Extra bytes beyond the descriptor's size are refused as they arrive.
    s.proxy.always("GET", "/blobs/sha256", Fault::Append(10));
    let e = s
        .client
        .pull_blob(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &mut Vec::new(),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    // A manifest whose bytes do not match the digest asked for.
    s.proxy.always("GET", "/manifests/", Fault::WrongBytes);
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let md = s
        .client
        .push_manifest(
            &s.proxy.reference("f/blob:m"),
            Bytes::from_static(m),
            "application/vnd.oci.image.index.v1+json",
        )
        .await
        .unwrap();
    let e = s
        .client
        .pull_manifest(&s.proxy.reference("f/blob").with_digest(md))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DigestMismatch {
                what: "manifest",
                ..
            } | Error::InvalidManifest { .. }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_recover_from_faults() {
    // Chunked: a failed PATCH is resumed from the offset the registry has.
    let mut cfg = ClientConfig::default();
    cfg.chunk_size = 500_000;
    let s = setup(cfg).await;
    let r = s.proxy.reference("f/up");
    s.proxy.push("PATCH", "/blobs/uploads/", Fault::Status(500));
    s.proxy.push("PATCH", "/blobs/uploads/", Fault::Status(502));
    // The registry stored this chunk but the answer was lost: the client
    // must learn the new offset from the registry, not resend from 0.
    s.proxy
        .push("PATCH", "/blobs/uploads/", Fault::ResetAfterForward);
    let how = s
        .client
        .push_blob(
            &r,
            &s.digest,
            s.data.len() as u64,
            &s.blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Uploaded);
    let mut back = Vec::new();
    s.client
        .pull_blob(
            &r,
            &s.digest,
            Some(s.data.len() as u64),
            &mut back,
            &no_progress(),
        )
        .await
        .unwrap();
    assert!(back == s.data);
    // Monolithic: a failed PUT restarts the upload.
    let s = setup(ClientConfig::default()).await;
    let r = s.proxy.reference("f/mono");
    s.proxy.push("PUT", "/blobs/uploads/", Fault::Status(500));
    s.proxy.push("POST", "/blobs/uploads/", Fault::Status(503));
    let how = s
        .client
        .push_blob(
            &r,
            &s.digest,
            s.data.len() as u64,
            &s.blobs,
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(how, BlobPush::Uploaded);
    assert_eq!(
        s.client.blob_exists(&r, &s.digest).await.unwrap(),
        Some(s.data.len() as u64)
    );
}
