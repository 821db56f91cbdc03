//! The proxy in front of an `https://` origin whose certificate a private certificate
//! authority signed (issue 11: `--origin-ca`), end to end over TCP and TLS.

use std::io::Write as _;

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::start_proxy;
#[path = "support/raw.rs"]
mod raw_http;
use raw_http::raw;
#[path = "support/origin.rs"]
mod named_origin;
use named_origin::start_origin;
use named_origin::tls::private_ca_pair;

/// Writes `pem` to a new file in the temp dir; its path.
fn ca_file(pem: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tower-cache-layer-ca-{}-{:?}.pem",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = std::fs::File::create(&path).expect("create the CA file");
    file.write_all(pem.as_bytes()).expect("write the CA file");
    path
}

const GET: &str = "GET /page HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn an_origin_signed_by_a_trusted_private_ca_is_proxied_and_cached() {
    let (ca_pem, acceptor) = private_ca_pair();
    let origin = start_origin("over tls", Some(acceptor)).await;
    let ca = ca_file(&ca_pem);
    let url = format!("https://127.0.0.1:{}", origin.addr.port());
    let proxy = start_proxy(&["--origin", &url, "--origin-ca", ca.to_str().unwrap()]).await;

    let first = raw(&proxy, GET).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, "over tls");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = raw(&proxy, GET).await;
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(origin.hits(), 1);
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn without_origin_ca_the_private_certificate_is_refused() {
    let (_, acceptor) = private_ca_pair();
    let origin = start_origin("over tls", Some(acceptor)).await;
    let url = format!("https://127.0.0.1:{}", origin.addr.port());
    let proxy = start_proxy(&["--origin", &url]).await;

    let answer = raw(&proxy, GET).await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.body, "bad gateway: the origin is unreachable\n");
    assert_eq!(origin.hits(), 0);
}
