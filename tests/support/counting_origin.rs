//! What the tests that drive the example proxy over TCP share: a counting hyper origin on
//! `127.0.0.1:0` built from a route table, a private temporary directory, an HTTP/1.1 client
//! that reads whole answers, the admin file's values and runs of the binary to completion.
//!
//! Include it next to `support/proxy.rs` as `proxy_process`:
//! `#[path = "support/counting_origin.rs"] mod counting_origin;`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::response::Builder;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::proxy_process::proxy_binary;

/// The body of an origin's response.
pub type OriginBody = BoxBody<Bytes, Infallible>;

/// A route handler's answer, as a future.
type Answering = Pin<Box<dyn Future<Output = Response<OriginBody>> + Send>>;

/// A route handler.
type Handler = Arc<dyn Fn(Exchange) -> Answering + Send + Sync>;

/// A request as the origin received it, its body read in full.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request method.
    pub method: Method,
    /// The request target as received (`/path?query`, or `*`).
    pub uri: String,
    /// The request's header fields.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
}

/// What a route handler answers: the request (its body read in full), the origin's own
/// address and its gate (see [`CountingOrigin::open_gate`]).
pub struct Exchange {
    /// The request, with its body read in full.
    pub req: Request<Bytes>,
    /// The origin's own address.
    pub addr: SocketAddr,
    /// Permits added by [`CountingOrigin::open_gate`].
    pub gate: Arc<Semaphore>,
}

impl Exchange {
    /// The request's path.
    pub fn path(&self) -> &str {
        self.req.uri().path()
    }
}

/// `builder` with `body`: a valid response.
pub fn reply(builder: Builder, body: impl Into<Bytes>) -> Response<OriginBody> {
    builder
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

/// `builder` with a `Content-Length` of the whole body, sending `head` at once and then
/// `rest` bytes `x` once `gate` has a permit (which it takes).
pub fn gated(
    builder: Builder,
    head: &'static [u8],
    rest: usize,
    gate: Arc<Semaphore>,
) -> Response<OriginBody> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(head)).await;
        if let Ok(permit) = gate.acquire().await {
            permit.forget();
        }
        let _ = tx.send(Bytes::from(vec![b'x'; rest])).await;
    });
    builder
        .header("content-length", head.len() + rest)
        .body(ChannelBody(rx).boxed())
        .expect("valid response")
}

/// A response body fed through a channel, one data frame per message.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|data| Ok(Frame::data(data))))
    }
}

/// The route table of a [`CountingOrigin`] to start: exact paths, and a fallback for every
/// other request (a 404 unless set).
pub struct OriginBuilder {
    routes: Vec<(&'static str, Handler)>,
    fallback: Handler,
}

/// `handler` as an asynchronous one.
fn sync_handler(
    handler: impl Fn(&Exchange) -> Response<OriginBody> + Send + Sync + 'static,
) -> Handler {
    Arc::new(move |exchange| {
        let response = handler(&exchange);
        Box::pin(async move { response })
    })
}

impl OriginBuilder {
    /// Answers the path `path` with `handler`.
    pub fn route(
        mut self,
        path: &'static str,
        handler: impl Fn(&Exchange) -> Response<OriginBody> + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((path, sync_handler(handler)));
        self
    }

    /// Answers the path `path` with the future `handler` returns (to answer late).
    pub fn route_async<F, Fut>(mut self, path: &'static str, handler: F) -> Self
    where
        F: Fn(Exchange) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<OriginBody>> + Send + 'static,
    {
        self.routes
            .push((path, Arc::new(move |exchange| Box::pin(handler(exchange)))));
        self
    }

    /// Answers every path without a route with `handler`.
    pub fn fallback(
        mut self,
        handler: impl Fn(&Exchange) -> Response<OriginBody> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = sync_handler(handler);
        self
    }

    /// Starts the origin on `127.0.0.1:0`.
    pub async fn start(self) -> CountingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(State {
            addr,
            routes: self.routes,
            fallback: self.fallback,
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            gate: Arc::new(Semaphore::new(0)),
            failing: AtomicBool::new(false),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        CountingOrigin { addr, state }
    }
}

/// What the origin's connections share.
struct State {
    addr: SocketAddr,
    routes: Vec<(&'static str, Handler)>,
    fallback: Handler,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    gate: Arc<Semaphore>,
    failing: AtomicBool,
}

impl State {
    /// Reads the body of `req`, records it and answers it: a 503 `down` while failing, else
    /// by the route table.
    async fn answer(&self, req: Request<Incoming>) -> Response<OriginBody> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes());
        let req = Request::from_parts(parts, body.unwrap_or_default());
        self.record(&req);
        if self.failing.load(Ordering::SeqCst) {
            let builder = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
            return reply(builder, "down");
        }
        let handler = self.handler_for(req.uri().path());
        let gate = Arc::clone(&self.gate);
        handler(Exchange {
            req,
            addr: self.addr,
            gate,
        })
        .await
    }

    /// Adds `req` to what the origin saw.
    fn record(&self, req: &Request<Bytes>) {
        self.seen.lock().expect("origin log lock").push(Seen {
            method: req.method().clone(),
            uri: req.uri().to_string(),
            headers: req.headers().clone(),
            body: req.body().clone(),
        });
    }

    /// The route for `path`, or the fallback.
    fn handler_for(&self, path: &str) -> Handler {
        let route = self.routes.iter().find(|(route, _)| *route == path);
        Arc::clone(route.map_or(&self.fallback, |(_, handler)| handler))
    }
}

/// Serves every connection `listener` accepts, counting requests as they arrive.
async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = Arc::clone(&state);
        let service = service_fn(move |req: Request<Incoming>| {
            state.hits.fetch_add(1, Ordering::SeqCst);
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(state.answer(req).await) }
        });
        tokio::spawn(async move {
            // Errors here are the proxy hanging up, e.g. after a 504.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A running counting origin: its address, how many requests it received and what it saw.
pub struct CountingOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl CountingOrigin {
    /// An origin with no routes yet.
    pub fn builder() -> OriginBuilder {
        let not_found = |_: &Exchange| reply(Response::builder().status(404), "");
        OriginBuilder {
            routes: Vec::new(),
            fallback: sync_handler(not_found),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests the origin has received so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The last request the origin received.
    pub fn last_seen(&self) -> Seen {
        let seen = self.state.seen.lock().expect("origin log lock");
        seen.last().cloned().expect("the origin received a request")
    }

    /// Lets one [`gated`] response send the rest of its body.
    pub fn open_gate(&self) {
        self.state.gate.add_permits(1);
    }

    /// While `failing`, every request is answered `503 down` (and still counted).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }
}

/// A temporary directory (mode 0700), removed when dropped.
pub struct TempDir(
    /// Its path.
    pub PathBuf,
);

impl TempDir {
    /// A new empty directory `tower-cache-layer-test-<name>-<pid>-<n>` in the system's.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tower-cache-layer-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).expect("create a temporary directory");
        Self(path)
    }

    /// The admin file a proxy on `port` writes when `XDG_RUNTIME_DIR` is this directory.
    pub fn admin_file(&self, port: u16) -> PathBuf {
        admin_file_in(&self.0, port)
    }

    /// The path of `name` in this directory, as a command-line argument.
    pub fn arg(&self, name: &str) -> String {
        let path = self.0.join(name);
        path.to_str().expect("a UTF-8 temp dir").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The admin file a proxy on `port` writes when `XDG_RUNTIME_DIR` is `runtime_dir`.
pub fn admin_file_in(runtime_dir: &Path, port: u16) -> PathBuf {
    runtime_dir
        .join("tower-cache-layer")
        .join(format!("proxy-{port}.admin"))
}

/// The value of the `key=value` line for `key` in the admin file at `path`.
pub fn admin_file_value(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).expect("read the admin file");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in {text:?}"))
        .to_owned()
}

/// The admin listener's address and token, from the admin file of the proxy on `port` with
/// `XDG_RUNTIME_DIR=runtime_dir`.
pub fn admin_of(runtime_dir: &Path, port: u16) -> (SocketAddr, String) {
    let file = admin_file_in(runtime_dir, port);
    let admin = admin_file_value(&file, "admin");
    let admin = admin.parse().expect("admin= is an address");
    (admin, admin_file_value(&file, "token"))
}

/// Runs the proxy binary with `args` to completion, with `XDG_RUNTIME_DIR=runtime_dir` if
/// given: (exit code, stdout, stderr).
pub async fn run_binary(
    args: &[&str],
    runtime_dir: Option<&Path>,
) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(proxy_binary());
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = runtime_dir {
        command.env("XDG_RUNTIME_DIR", dir);
    }
    let output = command
        .output()
        .await
        .expect("run the caching_proxy example");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A response with its body read in full.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The value of `name` as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of `name` as text; panics if it is absent.
    pub fn field(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
    }

    /// `X-Cache`, which the cache layer adds to every response; panics if it is absent.
    pub fn x_cache(&self) -> &str {
        self.field("x-cache")
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` to `addr` (with `Host: addr`) over a fresh HTTP/1.1 connection and reads the
/// whole answer.
pub async fn send_request(addr: SocketAddr, mut req: Request<Full<Bytes>>) -> Answer {
    let host = addr
        .to_string()
        .parse()
        .expect("an address is a valid host");
    req.headers_mut().insert(http::header::HOST, host);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let response = sender.send_request(req).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read the body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Sends `method target` (with extra header fields and no body) to `addr` over a fresh
/// HTTP/1.1 connection; the answer must come within 10 s.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder.body(Full::default()).expect("valid request");
    tokio::time::timeout(Duration::from_secs(10), send_request(addr, req))
        .await
        .expect("an answer within 10s")
}

/// Sends `GET path` to `addr` over a fresh HTTP/1.1 connection and waits up to 5 s for the
/// response headers: the sender (keep it to keep the connection) and the response, its body
/// unread.
pub async fn get_streaming(
    addr: SocketAddr,
    path: &str,
) -> (SendRequest<Full<Bytes>>, Response<Incoming>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::default())
        .expect("valid request");
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response headers within 5s")
        .expect("response headers");
    (sender, response)
}

/// Reads frames of `body`, each within 5 s, until at least `len` bytes arrived: those bytes.
pub async fn read_at_least(body: &mut Incoming, len: usize) -> Vec<u8> {
    let mut received = Vec::new();
    while received.len() < len {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first part within 5s")
            .expect("the first part")
            .expect("no body error");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    received
}

/// Opens the gate of `origin` (see [`gated`]) and reads the rest of `body` within 5 s.
pub async fn open_gate_and_read(origin: &CountingOrigin, body: Incoming) -> Bytes {
    origin.open_gate();
    tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the rest of the body within 5s")
        .expect("the rest of the body, complete")
        .to_bytes()
}
