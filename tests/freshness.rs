//! Freshness over TCP: MISS then HIT, expiry, s-maxage, Expires, heuristics, Age, HEAD.

mod support;

use std::time::{Duration, SystemTime};

use http::Request;
use http_body_util::Full;
use support::{get, http_date_ago, response, send, serve};
use tower_cache_layer::CacheLayer;
use tower_cache_layer::clock::ManualClock;

fn clocked() -> (CacheLayer, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let layer = CacheLayer::builder().clock(clock.clone()).build();
    (layer, clock)
}

#[tokio::test]
async fn miss_then_hit_reaches_origin_once() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "hello")
    })
    .await;

    let first = get(&server.url("/a"), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(
        first.cache_status(),
        "tower-cache-layer; fwd=uri-miss; fwd-status=200"
    );
    assert_eq!(first.body, "hello");

    let second = get(&server.url("/a"), &[]).await;
    assert_eq!(second.x_cache(), "HIT");
    assert!(
        second
            .cache_status()
            .starts_with("tower-cache-layer; hit; ttl=")
    );
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(second.body, "hello");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn distinct_queries_are_distinct_entries() {
    let server = serve(CacheLayer::new(), |req| {
        let body: &'static str = if req.uri().query() == Some("v=1") {
            "one"
        } else {
            "two"
        };
        response(&[("cache-control", "max-age=60")], body)
    })
    .await;
    assert_eq!(get(&server.url("/q?v=1"), &[]).await.body, "one");
    assert_eq!(get(&server.url("/q?v=2"), &[]).await.body, "two");
    let again = get(&server.url("/q?v=1"), &[]).await;
    assert_eq!((again.x_cache(), &again.body[..]), ("HIT", &b"one"[..]));
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2: a response older than its max-age is stale and fetched again.
#[tokio::test]
async fn max_age_expiry_fetches_again() {
    let (layer, clock) = clocked();
    let server = serve(layer, |_| response(&[("cache-control", "max-age=60")], "x")).await;

    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(30));
    let hit = get(&server.url("/"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    // RFC 9111 §4.2.3: Age grows with the time the response spent in the cache.
    assert_eq!(hit.header("age"), Some("30"));
    assert!(
        hit.cache_status().ends_with("ttl=30"),
        "{}",
        hit.cache_status()
    );

    clock.advance(Duration::from_secs(31));
    let stale = get(&server.url("/"), &[]).await;
    assert_eq!(stale.x_cache(), "MISS");
    assert!(
        stale.cache_status().contains("fwd=stale"),
        "{}",
        stale.cache_status()
    );
    assert_eq!(server.calls(), 2);
    // The refetched response replaced the stale one.
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "HIT");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2.1: a shared cache uses s-maxage over max-age.
#[tokio::test]
async fn s_maxage_overrides_max_age() {
    let (layer, clock) = clocked();
    let server = serve(layer, |_| {
        response(&[("cache-control", "max-age=0, s-maxage=100")], "s")
    })
    .await;
    get(&server.url("/"), &[]).await;
    clock.advance(Duration::from_secs(50));
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "HIT");
    clock.advance(Duration::from_secs(51));
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2.1: without max-age, Expires minus Date.
#[tokio::test]
async fn expires_minus_date() {
    let (layer, clock) = clocked();
    let server = serve(layer, |_| {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let mut r = response(&[], "e");
        r.headers_mut().insert("date", date.parse().unwrap());
        r.headers_mut().insert("expires", expires.parse().unwrap());
        r
    })
    .await;
    get(&server.url("/"), &[]).await;
    clock.advance(Duration::from_secs(100));
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "HIT");
    clock.advance(Duration::from_secs(30));
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2: dates match case-insensitively, and a wrong day name does not invalidate
// them: Expires in upper case, in lower case and in asctime format with the wrong weekday.
#[tokio::test]
async fn expires_in_any_case_or_with_a_wrong_weekday() {
    let server = serve(CacheLayer::new(), |req| {
        let expires = match req.uri().path() {
            "/upper" => "THU, 18 AUG 2050 02:01:18 GMT",
            "/lower" => "thu, 18 aug 2050 02:01:18 gmt",
            _ => "Thu Aug  8 02:01:18 2050",
        };
        let mut r = response(&[], "e");
        r.headers_mut().insert("expires", expires.parse().unwrap());
        r
    })
    .await;
    for path in ["/upper", "/lower", "/asctime"] {
        get(&server.url(path), &[]).await;
        assert_eq!(get(&server.url(path), &[]).await.x_cache(), "HIT", "{path}");
    }
    assert_eq!(server.calls(), 3);
}

// RFC 9111 §5.3: an invalid Expires means already expired.
#[tokio::test]
async fn invalid_expires_is_stale() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("expires", "0"), ("etag", "\"v\"")], "e")
    })
    .await;
    get(&server.url("/"), &[]).await;
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2.2: 10% of the time since Last-Modified, only without explicit freshness.
#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let (layer, clock) = clocked();
    let server = serve(layer, |_| {
        let lm = http_date_ago(24 * 60 * 60);
        let mut r = response(&[], "index");
        r.headers_mut().insert("last-modified", lm.parse().unwrap());
        r
    })
    .await;
    assert_eq!(get(&server.url("/index.html"), &[]).await.x_cache(), "MISS");
    assert_eq!(get(&server.url("/index.html"), &[]).await.x_cache(), "HIT");
    // A day since Last-Modified gives 2.4 hours.
    clock.advance(Duration::from_secs(2 * 60 * 60));
    assert_eq!(get(&server.url("/index.html"), &[]).await.x_cache(), "HIT");
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(get(&server.url("/index.html"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2.2: explicit freshness wins over the heuristic.
#[tokio::test]
async fn explicit_max_age_zero_beats_heuristic() {
    let server = serve(CacheLayer::new(), |_| {
        let lm = http_date_ago(24 * 60 * 60);
        let mut r = response(&[("cache-control", "max-age=0")], "x");
        r.headers_mut().insert("last-modified", lm.parse().unwrap());
        r
    })
    .await;
    get(&server.url("/"), &[]).await;
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn default_ttl_applies_only_without_explicit_freshness() {
    let (layer, clock) = {
        let clock = ManualClock::new(SystemTime::now());
        let layer = CacheLayer::builder()
            .clock(clock.clone())
            .default_ttl(Duration::from_secs(10))
            .build();
        (layer, clock)
    };
    let server = serve(layer, |req| match req.uri().path() {
        "/plain" => response(&[], "plain"),
        "/nostore" => response(&[("cache-control", "no-store")], "n"),
        _ => response(&[("cache-control", "max-age=100")], "explicit"),
    })
    .await;
    for path in ["/plain", "/nostore", "/explicit"] {
        get(&server.url(path), &[]).await;
    }
    assert_eq!(get(&server.url("/plain"), &[]).await.x_cache(), "HIT");
    assert_eq!(get(&server.url("/nostore"), &[]).await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(11));
    assert_eq!(get(&server.url("/plain"), &[]).await.x_cache(), "MISS");
    assert_eq!(get(&server.url("/explicit"), &[]).await.x_cache(), "HIT");
}

// RFC 9111 §4.2.3: the Age the origin sent counts towards the stored response's age.
#[tokio::test]
async fn upstream_age_is_added() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=100"), ("age", "40")], "x")
    })
    .await;
    get(&server.url("/"), &[]).await;
    let hit = get(&server.url("/"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("age"), Some("40"));
}

// A stored GET answers HEAD; the HEAD response has the GET's headers and no body.
#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "0123456789")
    })
    .await;
    get(&server.url("/h"), &[]).await;
    let head = send(
        Request::head(server.url("/h"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.x_cache(), "HIT");
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    assert_eq!(server.calls(), 1);
}

// A HEAD miss is forwarded and not stored: it cannot answer a later GET.
#[tokio::test]
async fn head_miss_is_not_stored() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "body")
    })
    .await;
    let head = send(
        Request::head(server.url("/h"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.x_cache(), "MISS");
    let get1 = get(&server.url("/h"), &[]).await;
    assert_eq!((get1.x_cache(), &get1.body[..]), ("MISS", &b"body"[..]));
    assert_eq!(server.calls(), 2);
}

// A response with an empty body (here a 204) is stored even though nobody reads its body.
#[tokio::test]
async fn empty_204_is_stored() {
    let server = serve(CacheLayer::new(), |_| {
        let mut r = response(&[("cache-control", "max-age=60")], "");
        *r.status_mut() = http::StatusCode::NO_CONTENT;
        *r.body_mut() = support::TestBody::empty();
        r
    })
    .await;
    assert_eq!(get(&server.url("/204"), &[]).await.x_cache(), "MISS");
    let hit = get(&server.url("/204"), &[]).await;
    assert_eq!((hit.status.as_u16(), hit.x_cache()), (204, "HIT"));
    assert_eq!(hit.header("content-length"), None);
    assert_eq!(server.calls(), 1);
}
