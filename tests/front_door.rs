//! The proxy's front door, end to end over TCP (issue 7): what a client can and cannot make
//! the origin see or the cache store. The built `caching_proxy` example runs in front of a
//! real hyper origin on `127.0.0.1:0` that, like Django or Rails behind a proxy, builds
//! absolute links and redirects from `X-Forwarded-Host` or `Host`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, start_proxy};
#[path = "support/raw.rs"]
mod raw_http;
use raw_http::{Raw, raw};
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{CountingOrigin, reply};

/// The host an origin behind a proxy believes it is reached at.
fn believed_host(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-host")
        .or_else(|| headers.get("host"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Starts the origin on `127.0.0.1:0`. Its answers:
/// - `/`: a page linking a script at the host it believes it is at, public for an hour
/// - `/login`: a redirect to that host, cacheable for an hour
/// - `/moved`: a redirect to the origin's own address (`{self}` is its authority)
/// - `/cached`: cacheable for a minute
/// - `/by-client`: the `X-Forwarded-For` it received, cacheable for a minute, varying on it
/// - anything else (its body read, so that a client's broken body shows up): `ok`, not stored
async fn start_origin() -> CountingOrigin {
    CountingOrigin::builder()
        .route("/", |exchange| {
            let host = believed_host(exchange.req.headers());
            let builder = Response::builder().header("cache-control", "public, max-age=3600");
            reply(
                builder,
                format!("<script src=\"http://{host}/static/app.js\"></script>"),
            )
        })
        .route("/login", |exchange| {
            let host = believed_host(exchange.req.headers());
            let builder = Response::builder()
                .status(StatusCode::FOUND)
                .header("location", format!("http://{host}/login-form"))
                .header("cache-control", "max-age=3600");
            reply(builder, "")
        })
        .route("/moved", |exchange| {
            let me = exchange.addr;
            let builder = Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header("location", format!("http://{me}/products?page=2"))
                .header("content-location", format!("http://{me}/moved"))
                .header("cache-control", "no-store");
            reply(builder, "")
        })
        .route("/by-client", |exchange| {
            let client = exchange.req.headers()["x-forwarded-for"].clone();
            let builder = Response::builder()
                .header("cache-control", "max-age=60")
                .header("vary", "X-Forwarded-For");
            reply(builder, format!("for {}", client.to_str().unwrap_or("?")))
        })
        .route("/cached", |_| {
            reply(
                Response::builder().header("cache-control", "max-age=60"),
                "cached",
            )
        })
        .fallback(|_| {
            reply(
                Response::builder().header("cache-control", "no-store"),
                "ok",
            )
        })
        .start()
        .await
}

/// `GET path` with `Host: host`, on a new connection.
async fn get_as(proxy: &Proxy, host: &str, path: &str) -> Raw {
    raw(
        proxy,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn an_absolute_form_target_with_another_host_cannot_poison_the_cache() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let attack = raw(
        &proxy,
        &format!(
            "GET http://{}/ HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
            proxy.addr
        ),
    )
    .await;
    assert_eq!(attack.status, 200);
    assert_eq!(attack.header("x-cache"), Some("MISS"));
    // The origin saw its own authority, and no host of the client's choosing.
    let seen = origin.last_seen();
    assert_eq!(seen.headers["host"], origin.addr.to_string().as_str());
    assert!(!seen.headers.contains_key("x-forwarded-host"));

    let victim = get_as(&proxy, &proxy.addr.to_string(), "/").await;
    assert_eq!(victim.header("x-cache"), Some("HIT"));
    assert!(!victim.body.contains("attacker"), "body: {}", victim.body);
    assert_eq!(
        victim.body,
        format!(
            "<script src=\"http://{}/static/app.js\"></script>",
            origin.addr
        )
    );
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn a_host_header_of_the_clients_choosing_does_not_reach_the_origin_or_split_the_key() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let attack = get_as(&proxy, "attacker.example", "/").await;
    assert_eq!(attack.header("x-cache"), Some("MISS"));
    assert_eq!(
        origin.last_seen().headers["host"],
        origin.addr.to_string().as_str()
    );
    // localhost and 127.0.0.1 (and anything else) are one origin, so one key.
    let port = proxy.addr.port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let answer = get_as(&proxy, &host, "/").await;
        assert_eq!(answer.header("x-cache"), Some("HIT"), "Host: {host}");
        assert!(!answer.body.contains("attacker"));
    }
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn with_preserve_host_the_key_holds_what_the_origin_sees() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--preserve-host"]).await;

    let attack = get_as(&proxy, "attacker.example", "/").await;
    assert_eq!(attack.header("x-cache"), Some("MISS"));
    let seen = origin.last_seen();
    assert_eq!(seen.headers["host"], "attacker.example");
    assert_eq!(seen.headers["x-forwarded-host"], "attacker.example");

    // The victim's host is another key: the attacker's answer is not theirs.
    let host = format!("localhost:{}", proxy.addr.port());
    let victim = get_as(&proxy, &host, "/").await;
    assert_eq!(victim.header("x-cache"), Some("MISS"));
    assert_eq!(
        victim.body,
        format!("<script src=\"http://{host}/static/app.js\"></script>")
    );
    assert_eq!(
        get_as(&proxy, &host, "/").await.header("x-cache"),
        Some("HIT")
    );
    assert_eq!(origin.hits(), 2);
}

/// Sends `GET /` over HTTP/2 with prior knowledge (h2c), with `:authority` `authority` and
/// the given `host` field.
async fn h2_get(proxy: &Proxy, authority: &str, host: &str) -> (StatusCode, HeaderMap, Bytes) {
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let request = Request::get(format!("http://{authority}/"))
        .version(Version::HTTP_2)
        .header("host", host)
        .body(Full::<Bytes>::default())
        .expect("valid request");
    let response = sender.send_request(request).await.expect("an h2 response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read the body").to_bytes();
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn an_h2_host_that_differs_from_authority_is_refused() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    let authority = proxy.addr.to_string();

    let (status, _, body) = h2_get(&proxy, &authority, "evil.example").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "bad request: the Host header field differs from :authority\n"
    );
    assert_eq!(origin.hits(), 0);

    let (status, headers, body) = h2_get(&proxy, &authority, &authority).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-cache"], "MISS");
    assert!(!String::from_utf8_lossy(&body).contains("evil"));
    // HTTP/1.1 and HTTP/2 clients share the entry.
    assert_eq!(
        get_as(&proxy, &authority, "/").await.header("x-cache"),
        Some("HIT")
    );
}

#[tokio::test]
async fn a_cached_redirect_holds_no_attacker_chosen_host() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let attack = raw(
        &proxy,
        &format!(
            "GET http://{}/login HTTP/1.1\r\nHost: attacker.example\r\n\
             X-Forwarded-Host: attacker.example\r\nConnection: close\r\n\r\n",
            proxy.addr
        ),
    )
    .await;
    assert_eq!(attack.status, 302);

    let victim = get_as(&proxy, &proxy.addr.to_string(), "/login").await;
    assert_eq!(victim.status, 302);
    assert_eq!(victim.header("x-cache"), Some("HIT"));
    let expected = format!("http://{}/login-form", proxy.addr);
    assert_eq!(victim.header("location"), Some(expected.as_str()));
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn redirects_to_the_origin_are_pointed_back_at_the_proxy() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let host = format!("localhost:{}", proxy.addr.port());
    let answer = get_as(&proxy, &host, "/moved").await;
    assert_eq!(answer.status, 301);
    let location = format!("http://{host}/products?page=2");
    assert_eq!(answer.header("location"), Some(location.as_str()));
    let content_location = format!("http://{host}/moved");
    assert_eq!(
        answer.header("content-location"),
        Some(content_location.as_str())
    );
}

#[tokio::test]
async fn client_forwarding_fields_do_not_reach_the_origin() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let answer = raw(
        &proxy,
        "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
         Forwarded: for=203.0.113.9;host=evil.example;proto=https\r\n\
         X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Real-IP: 203.0.113.9\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200);
    let seen = origin.last_seen().headers;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["forwarded"], "for=127.0.0.1;proto=http");
    for name in ["x-forwarded-host", "x-forwarded-port", "x-real-ip"] {
        assert!(!seen.contains_key(name), "{name} reached the origin");
    }
    assert_eq!(seen.get_all("forwarded").iter().count(), 1);
    assert_eq!(seen.get_all("x-forwarded-for").iter().count(), 1);
}

// RFC 9111 §4.1: a stored response is selected by the values its Vary fields had at the
// origin. The proxy sets `X-Forwarded-For` after the cache, so the cache cannot know which
// client's it was: such a response is not stored, and a client naming someone else's
// address is not given that client's answer.
#[tokio::test]
async fn a_response_varying_on_a_forwarding_field_is_not_stored() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    let request = "GET /by-client HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
                   X-Forwarded-For: 203.0.113.9\r\n\r\n";
    let first = raw(&proxy, request).await;
    assert_eq!((first.status, first.body.as_str()), (200, "for 127.0.0.1"));
    let status = first.header("cache-status").unwrap_or("");
    assert!(status.ends_with("detail=vary-unseen"), "{status}");
    let second = raw(&proxy, request).await;
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, Some("MISS"))
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_trusted_proxy_in_front_extends_the_forwarded_for_chain() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--trusted-proxy", "127.0.0.0/8"]).await;

    raw(
        &proxy,
        "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    )
    .await;
    assert_eq!(
        origin.last_seen().headers["x-forwarded-for"],
        "203.0.113.9, 127.0.0.1"
    );
}

#[tokio::test]
async fn a_missing_repeated_or_invalid_host_is_a_400_with_a_reason() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let cases = [
        (
            "GET / HTTP/1.1\r\n\r\n",
            "bad request: missing Host header field\n",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "bad request: more than one Host header field\n",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "bad request: more than one Host header field\n",
        ),
        (
            "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
            "bad request: invalid Host header field\n",
        ),
    ];
    for (request, reason) in cases {
        let answer = raw(&proxy, request).await;
        assert_eq!(answer.status, 400, "{request:?}");
        assert_eq!(answer.body, reason, "{request:?}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    assert_eq!(origin.hits(), 0);

    // HTTP/1.0 needs no Host: the request is for the origin.
    let answer = raw(&proxy, "GET /cached HTTP/1.0\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "cached");
}

#[tokio::test]
async fn a_malformed_request_body_is_a_400_not_a_502() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let answer = raw(
        &proxy,
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\nzz-not-a-size\r\n",
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.body,
        "bad request: the request body is malformed or was cut short\n"
    );
}

#[tokio::test]
async fn hypers_own_answers_to_broken_heads_carry_a_reason() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--max-header-bytes", "8K"]).await;

    let broken = raw(&proxy, "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n").await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.body, "bad request: the request head is malformed\n");
    assert_eq!(
        broken.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let too_large = raw(&proxy, &huge).await;
    assert_eq!(too_large.status, 431);
    assert!(
        too_large
            .body
            .starts_with("request header fields too large"),
        "{too_large:?}"
    );
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn options_asterisk_reaches_the_origin_in_asterisk_form() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &format!("{}/base", origin.url())]).await;

    let answer = raw(
        &proxy,
        "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(origin.last_seen().uri, "*");
}

#[tokio::test]
async fn connect_is_refused_with_a_reason() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let answer = raw(
        &proxy,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 501);
    assert!(answer.body.starts_with("not implemented: "), "{answer:?}");
    assert_eq!(origin.hits(), 0);
}

/// A raw origin: answers each request on a connection with `200 ok` (`no-store`) and then
/// either closes the connection 50 ms later whatever arrives meanwhile (`idle` is `None`),
/// or after `idle` without a request. It never says `Connection: close`. Returns its
/// address and request count.
async fn closing_origin(idle: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin address");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                loop {
                    let read = match idle {
                        Some(idle) => tokio::time::timeout(idle, read_head(&mut stream)).await,
                        None => Ok(read_head(&mut stream).await),
                    };
                    if read != Ok(true) {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\
                                    cache-control: no-store\r\n\r\nok";
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    if idle.is_none() {
                        // Long enough for the proxy to send its next request on this
                        // connection, which is then closed unanswered.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

/// Reads one request head; `false` if the connection ended first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => head.push(byte[0]),
        }
    }
    true
}

/// `count` GETs through one keep-alive client connection, `pause` apart; their statuses.
async fn statuses(proxy: &Proxy, count: usize, pause: Duration) -> Vec<StatusCode> {
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut out = Vec::new();
    for i in 0..count {
        tokio::time::sleep(pause).await;
        let request = Request::get(format!("/n/{i}"))
            .header("host", "a")
            .body(Full::<Bytes>::default())
            .expect("valid request");
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        let _ = response.into_body().collect().await;
        out.push(status);
    }
    out
}

#[tokio::test]
async fn an_origin_closing_after_each_response_causes_no_502() {
    let (addr, count) = closing_origin(None).await;
    let proxy = start_proxy(&["--origin", &format!("http://{addr}")]).await;

    let statuses = statuses(&proxy, 20, Duration::ZERO).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn an_origin_with_a_short_keep_alive_timeout_causes_no_502() {
    let idle = Duration::from_millis(300);
    let (addr, _count) = closing_origin(Some(idle)).await;
    let proxy = start_proxy(&["--origin", &format!("http://{addr}")]).await;

    let statuses = statuses(&proxy, 10, idle).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_post_is_not_retried_after_it_was_sent() {
    let (addr, count) = closing_origin(None).await;
    let proxy = start_proxy(&["--origin", &format!("http://{addr}")]).await;

    // Whatever the POSTs get, none is sent twice.
    for i in 0..6 {
        let answer = raw(
            &proxy,
            &format!(
                "POST /p/{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
            ),
        )
        .await;
        assert!(matches!(answer.status, 200 | 502), "{answer:?}");
    }
    assert!(count.load(Ordering::SeqCst) <= 6);
}
