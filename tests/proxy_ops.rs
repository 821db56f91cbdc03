//! Operating the caching proxy, end to end over TCP: `--min-uses` admission and the admin
//! listener's `GET /metrics`.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test proxy_ops` build it first: `cargo build --example caching_proxy`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{start_proxy_in, test_runtime_dir};

/// A counting origin: a `GET` is answered `hello` and cacheable for a minute, anything else
/// `posted`, not cacheable.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Origin {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn start_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            let service = service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = if req.method() == http::Method::GET {
                    Response::builder()
                        .header("cache-control", "max-age=60")
                        .body(Full::<Bytes>::from("hello"))
                } else {
                    Response::builder()
                        .header("cache-control", "no-store")
                        .body(Full::<Bytes>::from("posted"))
                };
                async move { Ok::<_, Infallible>(response.expect("valid response")) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin { addr, hits }
}

/// A response with its body read in full.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` (with extra header fields) to `addr` over a fresh HTTP/1.1 connection.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder.body(Full::<Bytes>::default()).expect("request");
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("an answer within 5s")
        .expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read the body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The admin listener's address and token, from the admin file of the proxy on `port`.
fn admin_of(port: u16) -> (SocketAddr, String) {
    let file = test_runtime_dir()
        .join("tower-cache-layer")
        .join(format!("proxy-{port}.admin"));
    let text = std::fs::read_to_string(&file).expect("read the admin file");
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in {text:?}"))
            .to_owned()
    };
    (
        value("admin").parse().expect("admin address"),
        value("token"),
    )
}

/// The value of the sample `series` (name and labels, as rendered) in a Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// `--min-uses 3`: MISS, MISS, MISS (stored), HIT; the origin saw three requests.
#[tokio::test]
async fn min_uses_stores_the_third_response() {
    let origin = start_origin().await;
    let dir = test_runtime_dir();
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url(), "--min-uses", "3"]).await;

    let mut seen = Vec::new();
    for _ in 0..4 {
        let answer = send(proxy.addr, "GET", "/popular", &[]).await;
        assert_eq!(
            (answer.status, answer.text()),
            (StatusCode::OK, "hello".into())
        );
        seen.push((
            answer.header("x-cache").to_owned(),
            answer.header("cache-status").to_owned(),
        ));
    }
    let x_cache: Vec<&str> = seen.iter().map(|(x, _)| x.as_str()).collect();
    assert_eq!(x_cache, ["MISS", "MISS", "MISS", "HIT"], "{seen:?}");
    assert!(seen[0].1.contains("fwd=miss") && seen[0].1.contains("detail=min-uses"));
    assert!(seen[2].1.contains("fwd=uri-miss"), "{seen:?}");
    assert_eq!(origin.hits(), 3);
}

/// `--min-uses-window` takes seconds and must be positive.
#[tokio::test]
async fn min_uses_window_is_a_positive_number_of_seconds() {
    let origin = start_origin().await;
    let dir = test_runtime_dir();
    let args = [
        "--origin",
        &origin.url(),
        "--min-uses",
        "2",
        "--min-uses-window",
        "5",
    ];
    let proxy = start_proxy_in(&dir, &args).await;
    assert_eq!(
        send(proxy.addr, "GET", "/a", &[]).await.header("x-cache"),
        "MISS"
    );
    assert_eq!(
        send(proxy.addr, "GET", "/a", &[]).await.header("x-cache"),
        "MISS"
    );
    assert_eq!(
        send(proxy.addr, "GET", "/a", &[]).await.header("x-cache"),
        "HIT"
    );

    let output = tokio::process::Command::new(proxy_process::proxy_binary())
        .args(["--origin", &origin.url(), "--min-uses-window", "0"])
        .output()
        .await
        .expect("run the proxy");
    assert_eq!(output.status.code(), Some(2));
}

/// After one miss, two hits and a POST, `GET /metrics` on the admin listener (with the
/// token) shows them; without the token it is refused.
#[tokio::test]
async fn metrics_on_the_admin_listener_count_what_happened() {
    let origin = start_origin().await;
    let dir = test_runtime_dir();
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url()]).await;

    for expected in ["MISS", "HIT", "HIT"] {
        let answer = send(proxy.addr, "GET", "/page", &[]).await;
        assert_eq!(answer.header("x-cache"), expected);
    }
    let posted = send(proxy.addr, "POST", "/form", &[]).await;
    assert_eq!(posted.text(), "posted");
    assert_eq!(origin.hits(), 2);

    let (admin, token) = admin_of(proxy.addr.port());
    let refused = send(admin, "GET", "/metrics", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!refused.text().contains("cache_requests_total"));

    let bearer = format!("Bearer {token}");
    let metrics = send(admin, "GET", "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let text = metrics.text();
    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}: {text}"));
    assert_eq!(count(r#"cache_requests_total{outcome="miss"}"#), 1.0);
    assert_eq!(count(r#"cache_requests_total{outcome="hit"}"#), 2.0);
    assert_eq!(count(r#"cache_requests_total{outcome="method"}"#), 1.0);
    // Two hits of `hello` from the store; `hello` and `posted` from the origin.
    assert_eq!(count(r#"cache_served_bytes_total{source="cache"}"#), 10.0);
    assert_eq!(count(r#"cache_served_bytes_total{source="origin"}"#), 11.0);
    assert_eq!(count("cache_entries"), 1.0);
    assert!(count("cache_size_bytes") > 0.0);
    assert!(
        text.contains("cache_origin_duration_seconds_bucket"),
        "{text}"
    );
}
