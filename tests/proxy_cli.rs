//! End-to-end tests of `examples/caching_proxy.rs`: the built example binary runs as a child
//! process in front of a real hyper origin on `127.0.0.1:0`, and the tests talk to it over TCP.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test proxy_cli` build it first: `cargo build --example caching_proxy`.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A request as the origin received it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A running test origin: its address, how many requests it answered and what it saw.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    /// Requests the origin has answered so far.
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The last request the origin received.
    fn last_seen(&self) -> Seen {
        let seen = self.seen.lock().expect("origin log lock poisoned");
        seen.last().cloned().expect("the origin received a request")
    }

    /// `http://127.0.0.1:<port>`.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The origin's routes:
/// - `/max-age`: `Cache-Control: max-age=60`
/// - `/last-modified`: `Last-Modified` a day ago, no `Cache-Control` (the seed scenario)
/// - `/plain`: no caching headers at all
/// - `/slow`: headers after 5 s
/// - anything else: echoes the request body, with hop-by-hop headers of its own
async fn origin_response(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.lock().expect("origin log lock poisoned").push(Seen {
        method: parts.method.clone(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let builder = Response::builder();
    let response = match parts.uri.path() {
        "/max-age" => builder
            .header("cache-control", "max-age=60")
            .body(Full::from("fresh for a minute")),
        "/last-modified" => {
            let yesterday = SystemTime::now() - Duration::from_secs(24 * 60 * 60);
            builder
                .header("last-modified", httpdate::fmt_http_date(yesterday))
                .header("content-type", "text/html")
                .body(Full::from("<h1>index</h1>"))
        }
        "/plain" => builder.body(Full::from("no caching headers")),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            builder.body(Full::from("too late"))
        }
        _ => builder
            .header("x-echo-method", parts.method.as_str())
            .header("connection", "x-origin-hop")
            .header("x-origin-hop", "must not reach the client")
            .body(Full::new(body)),
    };
    response.expect("static response parts are valid")
}

/// Starts a counting hyper origin on `127.0.0.1:0`.
async fn start_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (task_hits, task_seen) = (Arc::clone(&hits), Arc::clone(&seen));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (hits, seen) = (Arc::clone(&task_hits), Arc::clone(&task_seen));
            let service = service_fn(move |req| {
                hits.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&seen);
                async move { Ok::<_, Infallible>(origin_response(req, seen).await) }
            });
            tokio::spawn(async move {
                // Errors here are the proxy hanging up, e.g. after a 504.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin { addr, hits, seen }
}

/// `target/<profile>/examples/caching_proxy`, next to this test's `target/<profile>/deps/`.
fn proxy_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/");
    let binary = profile_dir
        .join("examples")
        .join(format!("caching_proxy{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --example caching_proxy` \
         (a plain `cargo test` builds it)",
        binary.display()
    );
    binary
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("ephemeral address").port()
}

/// A running proxy process, killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the proxy with `args` on a free port and waits until it accepts TCP connections.
async fn start_proxy(args: &[&str]) -> Proxy {
    // Another test may grab the free port before the proxy binds it: try a few ports.
    for _ in 0..3 {
        let port = free_port();
        let child = Command::new(proxy_binary())
            .args(["--port", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the caching_proxy example");
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = proxy.child.try_wait().expect("poll the proxy process") {
                let mut stderr = String::new();
                if let Some(mut pipe) = proxy.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                if stderr.contains("cannot listen") {
                    break; // port taken meanwhile: next port
                }
                panic!("caching_proxy {args:?} exited with {status} before listening: {stderr}");
            }
            if TcpStream::connect(proxy.addr).await.is_ok() {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "caching_proxy {args:?} did not accept connections on {} within 10s",
                proxy.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("could not find a free port for caching_proxy");
}

/// A response with its body read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// The value of `name` as text, if present.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `X-Cache`, which the cache layer adds to every response.
    fn x_cache(&self) -> &str {
        self.header("x-cache")
            .expect("the response carries x-cache")
    }
}

/// Sends `req` to `addr` over a fresh HTTP/1.1 connection and reads the whole response.
async fn send(addr: SocketAddr, mut req: Request<Full<Bytes>>) -> Answer {
    req.headers_mut().insert(
        http::header::HOST,
        addr.to_string()
            .parse()
            .expect("an address is a valid host"),
    );
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let response = sender
        .send_request(req)
        .await
        .expect("a response from the proxy");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("read the response body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET path` through the proxy.
async fn get(proxy: &Proxy, path: &str) -> Answer {
    let req = Request::get(path)
        .body(Full::default())
        .expect("valid request");
    send(proxy.addr, req).await
}

/// Runs the binary with `args` to completion: (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(proxy_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the caching_proxy example");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn max_age_response_is_a_miss_then_a_hit() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let first = get(&proxy, "/max-age").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.x_cache(), "MISS");
    assert!(
        first.header("cache-status").is_some(),
        "Cache-Status on a miss"
    );
    assert_eq!(first.body, "fresh for a minute");

    let second = get(&proxy, "/max-age").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.x_cache(), "HIT");
    assert!(
        second.header("cache-status").is_some(),
        "Cache-Status on a hit"
    );
    assert!(second.header("age").is_some(), "Age on a hit");
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_eq!(second.body, "fresh for a minute");
    assert_eq!(origin.hits(), 1);
}

/// The seed scenario: `python3 -m http.server` sends `Last-Modified` and no `Cache-Control`;
/// the heuristic freshness (RFC 9111 §4.2.2) makes the second request a hit.
#[tokio::test]
async fn last_modified_without_cache_control_is_cached_heuristically() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let first = get(&proxy, "/last-modified").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.body, "<h1>index</h1>");

    let second = get(&proxy, "/last-modified").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.header("content-type"), Some("text/html"));
    assert_eq!(second.body, "<h1>index</h1>");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn default_ttl_caches_a_response_without_freshness_information() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--default-ttl", "60"]).await;

    assert_eq!(get(&proxy, "/plain").await.x_cache(), "MISS");
    let second = get(&proxy, "/plain").await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, "no caching headers");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn without_default_ttl_a_response_without_freshness_information_is_not_reused() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    for _ in 0..2 {
        let answer = get(&proxy, "/plain").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_ne!(answer.x_cache(), "HIT");
        assert_eq!(answer.body, "no caching headers");
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn post_is_forwarded_with_its_body_and_not_cached() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--default-ttl", "60"]).await;

    for n in 1..=2 {
        let req = Request::post("/echo")
            .header("content-type", "text/plain")
            .body(Full::from("hello origin"))
            .expect("valid request");
        let answer = send(proxy.addr, req).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_ne!(answer.x_cache(), "HIT");
        assert_eq!(answer.header("x-echo-method"), Some("POST"));
        assert_eq!(answer.body, "hello origin");
        assert_eq!(origin.hits(), n);
    }
    let seen = origin.last_seen();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.body, "hello origin");
    assert_eq!(seen.headers["content-type"], "text/plain");
}

#[tokio::test]
async fn path_query_and_headers_are_forwarded_and_hop_by_hop_headers_are_not() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let req = Request::get("/echo/a/b?x=1&y=two")
        .header("x-custom", "kept")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "dropped")
        .header("proxy-authorization", "Basic dropped")
        .header("x-forwarded-for", "192.0.2.7")
        .body(Full::default())
        .expect("valid request");
    let answer = send(proxy.addr, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-echo-method"), Some("GET"));
    assert_eq!(
        answer.header("x-origin-hop"),
        None,
        "hop-by-hop to the client"
    );

    let seen = origin.last_seen();
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.uri, "/echo/a/b?x=1&y=two");
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["host"], origin.addr.to_string().as_str());
    assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.7, 127.0.0.1");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        proxy.addr.to_string().as_str()
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    for hop in ["x-client-hop", "proxy-authorization", "connection"] {
        assert!(!seen.headers.contains_key(hop), "{hop} reached the origin");
    }
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn origin_base_path_is_joined_with_the_request_path() {
    let origin = start_origin().await;
    let base = format!("{}/base/", origin.url());
    let proxy = start_proxy(&["--origin", &base]).await;

    let answer = get(&proxy, "/a/b?q=1").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(origin.last_seen().uri, "/base/a/b?q=1");
}

#[tokio::test]
async fn unreachable_origin_is_a_502_with_a_text_reason() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let proxy = start_proxy(&["--origin", &closed]).await;

    let answer = get(&proxy, "/anything").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let body = String::from_utf8_lossy(&answer.body);
    assert!(
        body.starts_with("bad gateway: origin unreachable ("),
        "body: {body:?}"
    );
}

#[tokio::test]
async fn origin_without_headers_within_the_timeout_is_a_504() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--origin-timeout", "1"]).await;

    let started = Instant::now();
    let answer = get(&proxy, "/slow").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&answer.body).starts_with("gateway timeout"),
        "body: {:?}",
        answer.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the timeout"
    );
}

#[tokio::test]
async fn clear_cache_prints_the_count_and_the_next_request_misses() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    assert_eq!(get(&proxy, "/max-age").await.x_cache(), "MISS");
    assert_eq!(get(&proxy, "/max-age").await.x_cache(), "HIT");

    let port = proxy.addr.port().to_string();
    let (code, stdout, stderr) = run(&["--clear-cache", "--port", &port]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!("cleared 1 entry from the cache at {}\n", proxy.addr)
    );

    assert_eq!(get(&proxy, "/max-age").await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn admin_endpoint_only_accepts_post() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let answer = get(&proxy, "/.well-known/tower-cache-layer/clear").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("allow"), Some("POST"));
    assert_eq!(origin.hits(), 0, "the admin path is never forwarded");
}

#[tokio::test]
async fn clear_cache_with_no_proxy_listening_exits_1() {
    let port = free_port().to_string();
    let (code, stdout, stderr) = run(&["--clear-cache", "--port", &port]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn bad_origin_exits_2_with_one_line() {
    for origin in [
        "ftp://example.com",
        "example.com",
        "/relative",
        "http://",
        "not a url",
    ] {
        let (code, stdout, stderr) = run(&["--origin", origin, "--port", "1"]).await;
        assert_eq!(code, Some(2), "--origin {origin:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "--origin {origin:?}: {stderr}");
        assert!(stderr.contains("--origin"), "--origin {origin:?}: {stderr}");
    }
    let (code, _, stderr) = run(&["--port", "3000"]).await;
    assert_eq!(code, Some(2), "missing --origin: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "missing --origin: {stderr}");
}

#[tokio::test]
async fn bad_port_exits_2_with_one_line() {
    for port in ["70000", "0", "http", "3000x"] {
        let (code, stdout, stderr) = run(&["--port", port, "--origin", "http://127.0.0.1:1"]).await;
        assert_eq!(code, Some(2), "--port {port:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "--port {port:?}: {stderr}");
        assert!(stderr.contains("--port"), "--port {port:?}: {stderr}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let origin = start_origin().await;
    let mut proxy = start_proxy(&["--origin", &origin.url()]).await;

    let status = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = proxy.child.try_wait().expect("poll the proxy process") {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 5s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
}
