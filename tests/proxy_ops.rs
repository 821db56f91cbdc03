//! Operating the caching proxy, end to end over TCP: `--min-uses` admission, the doorkeeper of
//! a full store (`--no-doorkeeper`), the admin listener's `GET /metrics`, and `--threads 1`.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test proxy_ops` build it first: `cargo build --example caching_proxy`.

use http::{Method, Response, StatusCode};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{start_proxy_in, test_runtime_dir};
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{CountingOrigin, admin_of, gated, reply, run_binary, send};

/// A counting origin: a `GET` is answered `hello` and cacheable for a minute, anything else
/// `posted`, not cacheable.
async fn start_origin() -> CountingOrigin {
    CountingOrigin::builder()
        .fallback(|exchange| {
            if exchange.req.method() == Method::GET {
                reply(
                    Response::builder().header("cache-control", "max-age=60"),
                    "hello",
                )
            } else {
                reply(
                    Response::builder().header("cache-control", "no-store"),
                    "posted",
                )
            }
        })
        .start()
        .await
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
            answer.field("x-cache").to_owned(),
            answer.field("cache-status").to_owned(),
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
        send(proxy.addr, "GET", "/a", &[]).await.field("x-cache"),
        "MISS"
    );
    assert_eq!(
        send(proxy.addr, "GET", "/a", &[]).await.field("x-cache"),
        "MISS"
    );
    assert_eq!(
        send(proxy.addr, "GET", "/a", &[]).await.field("x-cache"),
        "HIT"
    );

    let args = ["--origin", &origin.url(), "--min-uses-window", "0"];
    let (code, _, _) = run_binary(&args, None).await;
    assert_eq!(code, Some(2));
}

/// A proxy with a 64 KiB store, filled with 160 URLs (about twice what it holds); `GET /metrics`
/// on the admin listener makes the store's weighed size current (moka's pending upkeep).
async fn full_proxy(extra: &[&str]) -> (CountingOrigin, proxy_process::Proxy) {
    let origin = start_origin().await;
    let dir = test_runtime_dir();
    let url = origin.url();
    let mut args = vec!["--origin", &url, "--max-capacity", "64K"];
    args.extend_from_slice(extra);
    let proxy = start_proxy_in(&dir, &args).await;
    for n in 0..160 {
        let answer = send(proxy.addr, "GET", &format!("/fill/{n}"), &[]).await;
        assert_eq!(answer.text(), "hello");
    }
    let (admin, token) = admin_of(&dir, proxy.addr.port());
    let bearer = format!("Bearer {token}");
    let metrics = send(admin, "GET", "/metrics", &[("authorization", &bearer)]).await;
    let size = sample(&metrics.text(), "cache_size_bytes").expect("cache_size_bytes");
    assert!(size > 62.0 * 1024.0, "{size}");
    (origin, proxy)
}

/// Once the store is full, a new URL's first response is passed on unstored
/// (`detail=store-full`), its second stored, its third a hit; with `--no-doorkeeper`, the
/// first is stored.
#[tokio::test]
async fn a_full_store_stores_a_new_url_from_its_second_request_unless_no_doorkeeper() {
    let (origin, proxy) = full_proxy(&[]).await;
    let before = origin.hits();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let answer = send(proxy.addr, "GET", "/new", &[]).await;
        assert_eq!(answer.text(), "hello");
        seen.push((
            answer.field("x-cache").to_owned(),
            answer.field("cache-status").to_owned(),
        ));
    }
    let x_cache: Vec<&str> = seen.iter().map(|(x, _)| x.as_str()).collect();
    assert_eq!(x_cache, ["MISS", "MISS", "HIT"], "{seen:?}");
    assert!(
        seen[0]
            .1
            .ends_with("fwd=miss; fwd-status=200; detail=store-full"),
        "{seen:?}"
    );
    assert!(
        seen[1].1.ends_with("fwd=uri-miss; fwd-status=200"),
        "{seen:?}"
    );
    assert_eq!(origin.hits() - before, 2);

    let (origin, proxy) = full_proxy(&["--no-doorkeeper"]).await;
    let before = origin.hits();
    let first = send(proxy.addr, "GET", "/new", &[]).await;
    assert!(
        first
            .field("cache-status")
            .ends_with("fwd=uri-miss; fwd-status=200")
    );
    assert_eq!(
        send(proxy.addr, "GET", "/new", &[]).await.field("x-cache"),
        "HIT"
    );
    assert_eq!(origin.hits() - before, 1);
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
        assert_eq!(answer.field("x-cache"), expected);
    }
    let posted = send(proxy.addr, "POST", "/form", &[]).await;
    assert_eq!(posted.text(), "posted");
    assert_eq!(origin.hits(), 2);

    let (admin, token) = admin_of(&test_runtime_dir(), proxy.addr.port());
    let refused = send(admin, "GET", "/metrics", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!refused.text().contains("cache_requests_total"));

    let bearer = format!("Bearer {token}");
    let metrics = send(admin, "GET", "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.field("content-type").starts_with("text/plain"));
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

/// `--threads 1` runs the proxy on a single-threaded runtime: a miss then a hit; 20 requests
/// at once for a URL whose response is held back collapse onto one origin request and all get
/// its whole body, streamed to them as it arrives; the admin listener answers meanwhile.
#[tokio::test]
async fn one_thread_serves_hits_misses_and_collapsed_requests() {
    let origin = CountingOrigin::builder()
        .route("/slow", |exchange| {
            let builder = Response::builder().header("cache-control", "max-age=60");
            gated(builder, b"head ", 1000, exchange.gate.clone())
        })
        .fallback(|_| {
            reply(
                Response::builder().header("cache-control", "max-age=60"),
                "hello",
            )
        })
        .start()
        .await;
    let dir = test_runtime_dir();
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url(), "--threads", "1"]).await;

    let first = send(proxy.addr, "GET", "/a", &[]).await;
    let second = send(proxy.addr, "GET", "/a", &[]).await;
    assert_eq!((first.x_cache(), first.text()), ("MISS", "hello".into()));
    assert_eq!((second.x_cache(), second.text()), ("HIT", "hello".into()));
    assert_eq!(origin.hits(), 1);

    let addr = proxy.addr;
    let waiting: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { send(addr, "GET", "/slow", &[]).await }))
        .collect();
    // The origin has the one request while the others wait on it; the admin listener answers.
    let leader = async {
        while origin.hits() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), leader)
        .await
        .expect("the request for /slow reached the origin within 10 s");
    let (admin, token) = admin_of(&dir, proxy.addr.port());
    let auth = format!("Bearer {token}");
    let metrics = send(admin, "GET", "/metrics", &[("authorization", &auth)]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    origin.open_gate();
    let expected = format!("head {}", "x".repeat(1000));
    for answer in waiting {
        let answer = answer.await.unwrap();
        assert_eq!(
            (answer.status, answer.text()),
            (StatusCode::OK, expected.clone())
        );
    }
    assert_eq!(
        origin.hits(),
        2,
        "the 20 requests for /slow reached the origin once"
    );
}
