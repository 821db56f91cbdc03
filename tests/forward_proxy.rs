//! The proxy without `--origin`, as a forward proxy (issue 11), end to end over TCP: plain
//! http requests in absolute form for any host, each cached under its own authority, and
//! `CONNECT` tunnels (here to a local TLS server) that relay bytes and cache nothing.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, start_proxy};
#[path = "support/raw.rs"]
mod raw_http;
use raw_http::raw;
#[path = "support/origin.rs"]
mod named_origin;
use named_origin::start_origin;

/// `GET url` in absolute form through the proxy.
async fn get_via(proxy: &Proxy, url: &str, host: &str) -> raw_http::Raw {
    raw(
        proxy,
        &format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn two_origins_are_cached_each_under_its_own_authority() {
    let (a, b) = (
        start_origin("origin a", None).await,
        start_origin("origin b", None).await,
    );
    let proxy = start_proxy(&[]).await;

    for origin in [&a, &b] {
        let url = format!("http://{}/page", origin.addr);
        let host = origin.addr.to_string();
        let first = get_via(&proxy, &url, &host).await;
        let second = get_via(&proxy, &url, &host).await;
        assert_eq!((first.status, second.status), (200, 200));
        assert_eq!(first.header("x-cache"), Some("MISS"));
        assert_eq!(second.header("x-cache"), Some("HIT"));
    }
    assert_eq!(
        get_via(&proxy, &format!("http://{}/page", a.addr), "x")
            .await
            .body,
        "origin a"
    );
    assert_eq!(
        get_via(&proxy, &format!("http://{}/page", b.addr), "x")
            .await
            .body,
        "origin b"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    // Each origin was addressed by its own authority (RFC 9112 §3.2.2).
    assert_eq!(a.hosts.lock().unwrap()[0], a.addr.to_string());
    assert_eq!(b.hosts.lock().unwrap()[0], b.addr.to_string());
}

/// Opens a `CONNECT` tunnel to `target` through `proxy`: the proxy's status line, and the
/// stream (after the proxy's response head) when it is 200.
async fn connect(proxy: &Proxy, target: SocketAddr) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to proxy");
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send CONNECT");
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read the answer");
        assert_eq!(n, 1, "the proxy closed before answering: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status_line = head.lines().next().unwrap_or("").to_owned();
    (status_line, stream)
}

#[cfg(feature = "https")]
#[tokio::test]
async fn connect_tunnels_to_a_tls_server_and_caches_nothing() {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use named_origin::tls::tls_pair;
    use rustls::pki_types::ServerName;

    let (cert, acceptor) = tls_pair();
    let origin = start_origin("secret", Some(acceptor)).await;
    let port = origin.addr.port().to_string();
    let proxy = start_proxy(&["--connect-ports", &format!("443,{port}")]).await;

    for round in 1..=2 {
        let (status, stream) = connect(&proxy, origin.addr).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("trust the certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").expect("name"), stream)
            .await
            .expect("TLS handshake through the tunnel");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP over the tunnel");
        tokio::spawn(conn);
        let request = Request::get("/page")
            .header("host", origin.addr.to_string())
            .body(Full::<Bytes>::default())
            .expect("valid request");
        let response = sender.send_request(request).await.expect("a response");
        // The proxy never saw this exchange: nothing of the cache's is in it.
        assert!(!response.headers().contains_key("x-cache"));
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "secret");
        assert_eq!(origin.hits(), round);
    }
}

#[tokio::test]
async fn connect_to_a_port_outside_connect_ports_is_refused() {
    let origin = start_origin("plain", None).await;
    let proxy = start_proxy(&[]).await;

    let (status, _) = connect(&proxy, origin.addr).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn a_client_outside_allow_is_refused() {
    let origin = start_origin("plain", None).await;
    let port = origin.addr.port().to_string();
    let proxy = start_proxy(&["--allow", "192.0.2.0/24", "--connect-ports", &port]).await;

    let answer = get_via(&proxy, &format!("http://{}/", origin.addr), "x").await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        "forbidden: this proxy does not serve your address (see --allow)\n"
    );
    let (status, _) = connect(&proxy, origin.addr).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn an_origin_form_request_or_a_request_for_the_proxy_itself_is_refused() {
    let proxy = start_proxy(&[]).await;

    let origin_form = raw(
        &proxy,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(origin_form.status, 400);
    assert!(
        origin_form.body.contains("absolute"),
        "{}",
        origin_form.body
    );

    // The proxy forwards to itself once, and sees its own Via.
    let looped = get_via(&proxy, &format!("http://{}/", proxy.addr), "x").await;
    assert_eq!(looped.status, 508, "{looped:?}");
}

/// Without the cargo feature `https` the proxy has no TLS: an `https://` target in absolute
/// form is answered 502 with the reason, and nothing goes out in clear text.
#[cfg(not(feature = "https"))]
#[tokio::test]
async fn an_https_target_without_the_https_feature_is_a_502_that_says_why() {
    let origin = start_origin("plain", None).await;
    let proxy = start_proxy(&[]).await;
    let url = format!("https://{}/page", origin.addr);
    let response = get_via(&proxy, &url, &origin.addr.to_string()).await;
    assert_eq!(response.status, 502, "{}", response.head);
    assert!(
        response.body.contains("--features https"),
        "{}",
        response.body
    );
    assert_eq!(origin.hits(), 0);
}
