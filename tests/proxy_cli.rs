//! End-to-end tests of `examples/caching_proxy/`: the built example binary runs as a child
//! process in front of a real hyper origin on `127.0.0.1:0`, and the tests talk to it over TCP.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test proxy_cli` build it first: `cargo build --example caching_proxy`.

use std::io;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, free_port, proxy_binary, start_proxy};
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{
    Answer, CountingOrigin, Exchange, OriginBody, gated, get_streaming, open_gate_and_read,
    read_at_least, reply, run_binary, send_request as send,
};

/// What `/gated` sends at once, after its headers.
const GATED_HEAD: &[u8] = b"first part, sent at once;";

/// How many bytes `/gated` sends after the gate opens.
const GATED_REST: usize = 64 * 1024;

/// Starts a counting origin on `127.0.0.1:0` with these routes:
/// - `/max-age`: `Cache-Control: max-age=60`
/// - `/last-modified`: `Last-Modified` a day ago, no `Cache-Control` (the seed scenario)
/// - `/plain`: no caching headers at all
/// - `/slow`: headers after 5 s
/// - `/gated`: headers (`Content-Length` of the whole body) and [`GATED_HEAD`] at once, then
///   [`GATED_REST`] bytes `x` once the test opens the gate
/// - anything else: echoes the request body, with hop-by-hop headers of its own
async fn start_origin() -> CountingOrigin {
    CountingOrigin::builder()
        .route("/max-age", |_| {
            let builder = Response::builder().header("cache-control", "max-age=60");
            reply(builder, "fresh for a minute")
        })
        .route("/last-modified", |_| last_modified())
        .route("/plain", |_| {
            reply(Response::builder(), "no caching headers")
        })
        .route_async("/slow", |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(Response::builder(), "too late")
        })
        .route("/gated", |exchange| {
            let gate = exchange.gate.clone();
            gated(Response::builder(), GATED_HEAD, GATED_REST, gate)
        })
        .fallback(echo)
        .start()
        .await
}

/// `Last-Modified` a day ago, no `Cache-Control`.
fn last_modified() -> Response<OriginBody> {
    let yesterday = SystemTime::now() - Duration::from_secs(24 * 60 * 60);
    let builder = Response::builder()
        .header("last-modified", httpdate::fmt_http_date(yesterday))
        .header("content-type", "text/html");
    reply(builder, "<h1>index</h1>")
}

/// Echoes the request body, with hop-by-hop headers of its own.
fn echo(exchange: &Exchange) -> Response<OriginBody> {
    let builder = Response::builder()
        .header("x-echo-method", exchange.req.method().as_str())
        .header("connection", "x-origin-hop")
        .header("x-origin-hop", "must not reach the client");
    reply(builder, exchange.req.body().clone())
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
    run_binary(args, None).await
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
    // The client's own X-Forwarded-For is not believed (issue 7): only the peer address.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!seen.headers.contains_key("x-forwarded-host"));
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
    // One line, and no OS, DNS or TLS error text: that goes to the log only.
    assert_eq!(body, "bad gateway: the origin is unreachable\n");
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

// The admin interface (`--clear-cache`, the admin listener and its file) is tested in
// `tests/admin.rs`; idle connections at `--max-connections` in `tests/connections.rs`.

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
    // Without --origin the proxy is a forward proxy; its own flags are checked as strictly.
    for args in [
        ["--allow", "not-a-network"],
        ["--allow", "10.0.0.0/33"],
        ["--connect-ports", "0"],
        ["--trusted-proxy", "example.com"],
        ["--origin-ca", "/nonexistent/ca.pem"],
        ["--origin-ca", "Cargo.toml"],
    ] {
        let (code, stdout, stderr) = run(&[args[0], args[1], "--port", "1"]).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

/// Without the cargo feature `https` (the default build) an https origin is refused at start,
/// in one line that says how to build with TLS.
#[cfg(not(feature = "https"))]
#[tokio::test]
async fn an_https_origin_without_the_https_feature_exits_2_saying_how_to_build_it() {
    let (code, stdout, stderr) = run(&["--origin", "https://example.com", "--port", "1"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--features https"), "{stderr}");
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

/// Sends SIGTERM to the proxy process.
#[cfg(unix)]
fn sigterm(proxy: &Proxy) {
    let status = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed: {status}");
}

/// Waits up to 5 s for the proxy process to exit.
async fn wait_for_exit(proxy: &mut Proxy) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(exit) = proxy.child.try_wait().expect("poll the proxy process") {
            return exit;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit within 5s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How the peer ended a raw connection.
#[derive(Debug, PartialEq)]
enum Closed {
    /// An orderly close (FIN).
    Eof,
    /// A reset (RST), seen as a read error.
    Reset,
}

/// Reads from `stream` until the peer closes it: the bytes received and how it closed.
/// Panics if the connection is still open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (Vec<u8>, Closed) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = [0; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Closed::Eof,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(_) => return Closed::Reset,
            }
        }
    })
    .await;
    match read {
        Ok(closed) => (received, closed),
        Err(_) => panic!(
            "the connection is still open after {bound:?}; received {:?}",
            String::from_utf8_lossy(&received)
        ),
    }
}

/// Reads one whole `Connection: close` response from a raw connection; panics if it does not
/// end within 5 s.
async fn read_response(stream: &mut TcpStream) -> String {
    let (received, closed) = read_until_closed(stream, Duration::from_secs(5)).await;
    assert_eq!(closed, Closed::Eof, "the response ended with a reset");
    String::from_utf8(received).expect("a text response")
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let origin = start_origin().await;
    let mut proxy = start_proxy(&["--origin", &origin.url()]).await;

    sigterm(&proxy);
    let exit = wait_for_exit(&mut proxy).await;
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
}

/// A response whose body is still streaming when SIGTERM arrives is finished; meanwhile the
/// listener is closed, and the process exits 0 once the response is done.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_finishes_the_response_in_flight_and_refuses_new_connections() {
    let origin = start_origin().await;
    let mut proxy = start_proxy(&["--origin", &origin.url()]).await;

    let (_sender, response) = get_streaming(proxy.addr, "/gated").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let received = read_at_least(&mut body, GATED_HEAD.len()).await;
    assert_eq!(received, GATED_HEAD);

    // The response is in flight (the origin waits at its gate) when the signal arrives.
    sigterm(&proxy);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(proxy.addr).await {
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the proxy still accepts connections 5s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        proxy.child.try_wait().expect("poll the proxy").is_none(),
        "the proxy exited with a response in flight"
    );

    let rest = open_gate_and_read(&origin, body).await;
    assert_eq!(rest.len(), GATED_REST);
    assert!(rest.iter().all(|&b| b == b'x'));

    let exit = wait_for_exit(&mut proxy).await;
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn bad_limit_flags_exit_2_with_one_line() {
    for (flag, value) in [
        ("--max-header-bytes", "4K"),
        ("--max-header-bytes", "lots"),
        ("--header-read-timeout", "0"),
        ("--max-connections", "0"),
        ("--max-connections", "many"),
        ("--threads", "0"),
        ("--threads", "70000"),
    ] {
        let (code, stdout, stderr) = run(&["--origin", "http://127.0.0.1:1", flag, value]).await;
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// A request head over `--max-header-bytes` gets a 431 (or, if the client is still sending
/// when hyper gives up, a closed connection) and never reaches the origin; one under the limit
/// is forwarded.
#[tokio::test]
async fn request_head_over_max_header_bytes_is_rejected_and_not_forwarded() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--max-header-bytes", "16K"]).await;

    let small = "s".repeat(8 * 1024);
    let req = Request::get("/echo")
        .header("x-padding", small.as_str())
        .body(Full::default())
        .expect("valid request");
    let answer = send(proxy.addr, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(origin.last_seen().headers["x-padding"], small.as_str());
    assert_eq!(origin.hits(), 1);

    let mut stream = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    let big = "b".repeat(32 * 1024);
    let head = format!("GET /echo HTTP/1.1\r\nhost: proxy\r\nx-padding: {big}\r\n\r\n");
    // The proxy may close while we are still writing.
    let _ = stream.write_all(head.as_bytes()).await;
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 431 ") || (received.is_empty() && closed == Closed::Reset),
        "expected a 431 or a reset, got {closed:?} after {text:?}"
    );
    assert_eq!(origin.hits(), 1, "the oversized request reached the origin");
}

/// Slowloris: connections that stall before their request head is complete are closed after
/// `--header-read-timeout`, whatever they sent; a client that completes its head in time is
/// served.
#[tokio::test]
async fn client_stalling_before_a_complete_request_head_is_disconnected() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--header-read-timeout", "1"]).await;

    let stalls: [&[u8]; 4] = [
        b"GET /max-age HTT",                     // half a request line
        b"GET /max-age HTTP/1.1\r\nhost: x\r\n", // headers without the empty line
        b"",                                     // nothing at all
        b"PRI * HTTP/2.0\r\n",                   // part of the HTTP/2 preface
    ];
    let mut stalled = Vec::new();
    for partial in stalls {
        let addr = proxy.addr;
        stalled.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr)
                .await
                .expect("connect to the proxy");
            stream
                .write_all(partial)
                .await
                .expect("send the partial head");
            let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            let text = String::from_utf8_lossy(&received).into_owned();
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 408 "),
                "after {:?}: {text:?}",
                String::from_utf8_lossy(partial)
            );
        }));
    }
    // The same request line, completed at once, is answered.
    let mut stream = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    stream
        .write_all(b"GET /max-age HTT")
        .await
        .expect("send half a request line");
    stream
        .write_all(b"P/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send the rest");
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    assert!(response.ends_with("fresh for a minute"), "{response:?}");

    for task in stalled {
        task.await.expect("stalled client task");
    }
    assert_eq!(origin.hits(), 1, "only the complete request was forwarded");
}

/// Reads from a keep-alive connection until what arrived ends with `end`; panics if the
/// connection closes first or nothing ends so within 5 s.
async fn read_until_ends_with(stream: &mut TcpStream, end: &[u8]) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0; 8192];
        while !received.ends_with(end) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => panic!("closed after {:?}", String::from_utf8_lossy(&received)),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no end in 5 s: {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// After a response, a keep-alive connection that sends nothing, or only part of its next
/// request head, is closed once `--header-read-timeout` has passed; one that sends a request
/// more often than that stays open.
#[tokio::test]
async fn idle_or_stalling_keep_alive_connections_are_closed_after_the_header_read_timeout() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--header-read-timeout", "1"]).await;
    let request = b"GET /max-age HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = b"fresh for a minute";
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        stream.write_all(request).await.expect("send a request");
        read_until_ends_with(&mut stream, end).await;
        streams.push(stream);
    }
    let [mut busy, mut idle, mut stalling] = <[TcpStream; 3]>::try_from(streams).expect("three");
    stalling
        .write_all(b"GET /max-age HTT")
        .await
        .expect("send half a request line");

    // 2.1 s of a request every 300 ms: never idle for the timeout.
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.write_all(request).await.expect("send a request");
        read_until_ends_with(&mut busy, end).await;
    }
    for stream in [&mut idle, &mut stalling] {
        let (received, _) = read_until_closed(stream, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408 "),
            "{text:?}"
        );
    }
    assert_eq!(origin.hits(), 1, "the rest were hits");
}

/// With `--max-connections 1`, a second connection is not served while the first has a
/// response in flight, and is served as soon as that response is complete (the first
/// connection, now idle, is closed to make room).
#[tokio::test]
async fn connections_beyond_max_connections_wait_while_every_connection_is_busy() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--max-connections", "1"]).await;

    // The first connection is busy: its response body is still streaming.
    let (_sender, response) = get_streaming(proxy.addr, "/gated").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    read_at_least(&mut body, GATED_HEAD.len()).await;

    // The second connection completes the TCP handshake (listen backlog) but is not served.
    let mut second = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    second
        .write_all(b"GET /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send the second request");
    let mut buf = [0; 4096];
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the second connection was answered while the first was busy: {early:?}"
    );
    assert_eq!(origin.hits(), 1);

    // The busy response is finished in full, then the second connection is served.
    let rest = open_gate_and_read(&origin, body).await;
    assert_eq!(rest.len(), GATED_REST);
    let response = read_response(&mut second).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    assert!(response.ends_with("no caching headers"), "{response:?}");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn the_log_has_a_line_per_request_and_499_for_a_client_that_left() {
    let origin = start_origin().await;
    let port = free_port();
    let mut child = tokio::process::Command::new(proxy_binary())
        .args(["--port", &port.to_string(), "--origin", &origin.url()])
        .env("RUST_LOG", "info")
        .env("XDG_RUNTIME_DIR", proxy_process::test_runtime_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the proxy");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One answered request, and one whose client hangs up while the origin is slow.
    let answered = send(
        addr,
        Request::get("/max-age").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(answered.status, StatusCode::OK);
    // The same again, a hit: answered at once, logged with one clock read.
    let hit = send(
        addr,
        Request::get("/max-age").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(hit.status, StatusCode::OK);
    // A HEAD hit, and a method the line spells out from the request (not a fixed prefix).
    let head = send(
        addr,
        Request::head("/max-age").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    let posted = send(
        addr,
        Request::post("/posted").body(Full::from("x")).unwrap(),
    )
    .await;
    assert!(posted.status.is_success(), "{}", posted.status);
    let mut leaver = TcpStream::connect(addr).await.expect("connect");
    leaver
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(leaver);

    let mut log = String::new();
    let read = async {
        use tokio::io::AsyncBufReadExt;
        while !log.contains("status=499") {
            if lines.read_line(&mut log).await.expect("read the log") == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    let line = |path: &str| {
        log.lines()
            .find(|l| l.contains(&format!("path={path} ")))
            .map(str::to_owned)
    };
    let answered = line("/max-age").expect("a log line for /max-age");
    assert!(
        answered.contains("method=GET") && answered.contains("status=200"),
        "{answered}"
    );
    assert!(answered.contains("cache=MISS"), "{answered}");
    let hit = log
        .lines()
        .find(|l| l.contains("path=/max-age ") && l.contains("cache=HIT"))
        .expect("a log line for the hit");
    assert!(
        hit.contains("status=200 cache=HIT elapsed_ms=0 peer=127.0.0.1:"),
        "{hit}"
    );
    let head = log
        .lines()
        .find(|l| l.contains("method=HEAD path=/max-age "))
        .expect("a log line for the HEAD request");
    assert!(head.contains("status=200 cache=HIT elapsed_ms=0"), "{head}");
    let posted = line("/posted").expect("a log line for the POST");
    assert!(
        posted.contains("  INFO caching_proxy::log: method=POST path=/posted status=")
            && posted.contains(" cache=MISS elapsed_ms="),
        "{posted}"
    );
    let abandoned = line("/slow").expect("a log line for the abandoned request");
    assert!(abandoned.contains("status=499"), "{abandoned}");
}
