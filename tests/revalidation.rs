//! Validation (RFC 9111 §4.3) and conditional requests (RFC 9110 §13), over TCP.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use support::{TestBody, get, response, send, serve, serve_dated};
use tower_cache_layer::CacheLayer;
use tower_cache_layer::clock::ManualClock;

fn clocked() -> (CacheLayer, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let layer = CacheLayer::builder().clock(clock.clone()).build();
    (layer, clock)
}

/// Remembers the request headers the origin saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

impl Seen {
    fn push(&self, headers: &HeaderMap) {
        self.0.lock().unwrap().push(headers.clone());
    }
    fn last(&self) -> HeaderMap {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
}

fn not_modified(headers: &[(&str, &str)]) -> Response<TestBody> {
    let mut r = response(headers, "");
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    *r.body_mut() = TestBody::empty();
    r
}

// RFC 9111 §4.3.1, §4.3.4: a stale response with an ETag is validated with If-None-Match; a
// 304 freshens it and the client gets the stored body.
#[tokio::test]
async fn stale_etag_is_revalidated_with_if_none_match() {
    let (layer, clock) = clocked();
    let seen = Seen::default();
    let log = seen.clone();
    let server = serve_dated(layer, clock.clone(), move |req| {
        log.push(req.headers());
        if req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            not_modified(&[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("x-version", "2"),
            ])
        } else {
            response(
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=60"),
                    ("x-version", "1"),
                ],
                "body-v1",
            )
        }
    })
    .await;

    assert_eq!(get(&server.url("/r"), &[]).await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(61));
    let revalidated = get(&server.url("/r"), &[]).await;
    assert_eq!(seen.last()["if-none-match"], "\"v1\"");
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.x_cache(), "HIT");
    assert_eq!(revalidated.body, "body-v1");
    assert!(
        revalidated
            .cache_status()
            .contains("fwd=stale; fwd-status=304"),
        "{}",
        revalidated.cache_status()
    );
    // RFC 9111 §3.2: the 304's fields replace the stored ones.
    assert_eq!(revalidated.header("x-version"), Some("2"));
    assert_eq!(revalidated.header("content-length"), Some("7"));
    assert_eq!(server.calls(), 2);

    // Freshened: served without the origin.
    let fresh = get(&server.url("/r"), &[]).await;
    assert_eq!(
        (fresh.x_cache(), fresh.header("x-version")),
        ("HIT", Some("2"))
    );
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.3.1: with only Last-Modified, the validator is If-Modified-Since.
#[tokio::test]
async fn stale_last_modified_is_revalidated_with_if_modified_since() {
    let (layer, clock) = clocked();
    let seen = Seen::default();
    let log = seen.clone();
    let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
    let server = serve_dated(layer, clock.clone(), move |req| {
        log.push(req.headers());
        if req
            .headers()
            .get("if-modified-since")
            .is_some_and(|v| v == lm)
        {
            not_modified(&[("cache-control", "max-age=60")])
        } else {
            response(
                &[("last-modified", lm), ("cache-control", "max-age=60")],
                "dated",
            )
        }
    })
    .await;
    get(&server.url("/d"), &[]).await;
    clock.advance(Duration::from_secs(61));
    let r = get(&server.url("/d"), &[]).await;
    assert_eq!(seen.last()["if-modified-since"], lm);
    assert_eq!((r.x_cache(), &r.body[..]), ("HIT", &b"dated"[..]));
}

// RFC 9111 §4.3.3: a full response to the validation replaces the stored one.
#[tokio::test]
async fn full_response_replaces_the_entry() {
    let (layer, clock) = clocked();
    let version = Arc::new(Mutex::new("one"));
    let v = version.clone();
    let server = serve_dated(layer, clock.clone(), move |_| {
        let body = *v.lock().unwrap();
        let etag = if body == "one" { "\"1\"" } else { "\"2\"" };
        response(&[("etag", etag), ("cache-control", "max-age=60")], body)
    })
    .await;
    get(&server.url("/f"), &[]).await;
    *version.lock().unwrap() = "two";
    clock.advance(Duration::from_secs(61));
    let changed = get(&server.url("/f"), &[]).await;
    assert_eq!(
        (changed.x_cache(), &changed.body[..]),
        ("MISS", &b"two"[..])
    );
    let hit = get(&server.url("/f"), &[]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"two"[..]));
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.3.2, RFC 9110 §13.1.2: a conditional request matching a fresh stored response
// gets a 304 from the cache (weak comparison), without the origin.
#[tokio::test]
async fn client_if_none_match_is_answered_by_the_cache() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[("etag", "W/\"abc\""), ("cache-control", "max-age=60")],
            "payload",
        )
    })
    .await;
    get(&server.url("/c"), &[]).await;
    let nm = get(&server.url("/c"), &[("if-none-match", "\"abc\"")]).await;
    assert_eq!(nm.status, 304);
    assert_eq!(nm.x_cache(), "HIT");
    assert_eq!(nm.header("etag"), Some("W/\"abc\""));
    assert!(nm.body.is_empty());
    let other = get(&server.url("/c"), &[("if-none-match", "\"zzz\"")]).await;
    assert_eq!(
        (other.status.as_u16(), &other.body[..]),
        (200, &b"payload"[..])
    );
    assert_eq!(server.calls(), 1);
}

// RFC 9110 §13.1.3: If-Modified-Since against the stored Last-Modified.
#[tokio::test]
async fn client_if_modified_since_is_answered_by_the_cache() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("cache-control", "max-age=60"),
            ],
            "x",
        )
    })
    .await;
    get(&server.url("/m"), &[]).await;
    let later = get(
        &server.url("/m"),
        &[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")],
    )
    .await;
    assert_eq!(later.status, 304);
    let earlier = get(
        &server.url("/m"),
        &[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")],
    )
    .await;
    assert_eq!(earlier.status, 200);
    assert_eq!(server.calls(), 1);
}

// RFC 9111 §4.2: If-Modified-Since and Last-Modified in any case, weekday not checked.
#[tokio::test]
async fn if_modified_since_in_any_case() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("last-modified", "MON, 01 JAN 2024 00:00:00 GMT"),
                ("cache-control", "max-age=60"),
            ],
            "x",
        )
    })
    .await;
    get(&server.url("/m"), &[]).await;
    let later = get(
        &server.url("/m"),
        &[("if-modified-since", "fri, 02 jan 2024 00:00:00 gmt")],
    )
    .await;
    assert_eq!(later.status, 304);
    assert_eq!(server.calls(), 1);
}

// RFC 9111 §5.2.2.4: no-cache responses are stored but validated before every reuse.
#[tokio::test]
async fn no_cache_response_is_validated_every_time() {
    let server = serve(CacheLayer::new(), |req| {
        if req.headers().contains_key("if-none-match") {
            not_modified(&[("etag", "\"n\""), ("cache-control", "no-cache")])
        } else {
            response(&[("etag", "\"n\""), ("cache-control", "no-cache")], "nc")
        }
    })
    .await;
    get(&server.url("/n"), &[]).await;
    for _ in 0..2 {
        let r = get(&server.url("/n"), &[]).await;
        assert_eq!((r.x_cache(), &r.body[..]), ("HIT", &b"nc"[..]));
        assert!(
            r.cache_status().contains("fwd-status=304"),
            "{}",
            r.cache_status()
        );
    }
    assert_eq!(server.calls(), 3);
}

// RFC 9211 §2.2: a validation forced by the stored response's own no-cache is `fwd=stale`,
// not `fwd=request` (the request asked for nothing).
#[tokio::test]
async fn no_cache_response_validation_is_fwd_stale() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60, no-cache")], "nc")
    })
    .await;
    get(&server.url("/n"), &[]).await;
    let r = get(&server.url("/n"), &[]).await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(
        r.cache_status(),
        "tower-cache-layer; fwd=stale; fwd-status=200"
    );
    // A request no-cache on a fresh response is still the request's doing.
    let server2 = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "f")
    })
    .await;
    get(&server2.url("/f"), &[]).await;
    let r = get(&server2.url("/f"), &[("cache-control", "no-cache")]).await;
    assert_eq!(
        r.cache_status(),
        "tower-cache-layer; fwd=request; fwd-status=200"
    );
}

// RFC 9111 §4.2.4, §5.2.2.2: must-revalidate forbids serving stale even when the client
// accepts it.
#[tokio::test]
async fn must_revalidate_ignores_max_stale() {
    let (layer, clock) = clocked();
    let server = serve_dated(layer, clock.clone(), |_| {
        response(&[("cache-control", "max-age=1, must-revalidate")], "m")
    })
    .await;
    get(&server.url("/mr"), &[]).await;
    clock.advance(Duration::from_secs(5));
    let r = get(&server.url("/mr"), &[("cache-control", "max-stale=100")]).await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.2.4: without must-revalidate, max-stale lets the client take a stale response.
#[tokio::test]
async fn max_stale_serves_stale() {
    let (layer, clock) = clocked();
    let server = serve_dated(layer, clock.clone(), |_| {
        response(&[("cache-control", "max-age=1")], "s")
    })
    .await;
    get(&server.url("/ms"), &[]).await;
    clock.advance(Duration::from_secs(5));
    let r = get(&server.url("/ms"), &[("cache-control", "max-stale=10")]).await;
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(r.header("age"), Some("5"));
    assert_eq!(server.calls(), 1);
}

// RFC 9111 §4.3.5: a HEAD response with the same validators freshens the stored GET.
#[tokio::test]
async fn head_freshens_a_stored_get() {
    let (layer, clock) = clocked();
    let server = serve_dated(layer, clock.clone(), |req| {
        let mut r = response(
            &[
                ("etag", "\"h\""),
                ("cache-control", "max-age=60"),
                ("x-seen", req.method().as_str()),
            ],
            "0123456789",
        );
        if req.method() == http::Method::HEAD {
            *r.body_mut() = TestBody::empty();
            r.headers_mut()
                .insert("content-length", "10".parse().unwrap());
        }
        r
    })
    .await;
    get(&server.url("/h"), &[]).await;
    clock.advance(Duration::from_secs(61));
    let head = send(
        Request::head(server.url("/h"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    let after = get(&server.url("/h"), &[]).await;
    assert_eq!(
        (after.x_cache(), &after.body[..]),
        ("HIT", &b"0123456789"[..])
    );
    assert_eq!(after.header("x-seen"), Some("HEAD"));
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §4.3.1, §4.3.4: validation carries the entity tags of every stored variant, and a
// 304 naming one of them selects it, even for a request no stored variant matched.
#[tokio::test]
async fn validation_offers_every_variants_tag() {
    let (layer, clock) = clocked();
    let seen = Seen::default();
    let log = seen.clone();
    let server = serve_dated(layer, clock.clone(), move |req| {
        log.push(req.headers());
        // The origin picks gzip for any Accept-Encoding that lists it.
        let gz = req
            .headers()
            .get("accept-encoding")
            .is_some_and(|v| v.to_str().unwrap().contains("gzip"));
        let (etag, body) = if gz {
            ("\"gz\"", "gzip-bytes")
        } else {
            ("\"id\"", "plain")
        };
        let offered = req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v.to_str().unwrap().contains(etag));
        let fields = [
            ("etag", etag),
            ("cache-control", "max-age=60"),
            ("vary", "accept-encoding"),
        ];
        if offered {
            not_modified(&fields)
        } else {
            response(&fields, body)
        }
    })
    .await;
    get(&server.url("/v"), &[("accept-encoding", "gzip")]).await;
    let plain = get(&server.url("/v"), &[]).await;
    assert_eq!((plain.x_cache(), &plain.body[..]), ("MISS", &b"plain"[..]));
    clock.advance(Duration::from_secs(61));
    let other = get(&server.url("/v"), &[("accept-encoding", "gzip, br")]).await;
    let sent = seen.last();
    let tags = sent["if-none-match"].to_str().unwrap();
    assert!(tags.contains("\"gz\"") && tags.contains("\"id\""), "{tags}");
    assert_eq!(
        (other.x_cache(), &other.body[..]),
        ("HIT", &b"gzip-bytes"[..])
    );
    assert!(
        other.cache_status().contains("fwd-status=304"),
        "{}",
        other.cache_status()
    );
    assert_eq!(server.calls(), 3);
}

// RFC 9111 §5.2.2.4: qualified no-cache: the named field is not stored; the rest is reused
// without validation.
#[tokio::test]
async fn qualified_no_cache_strips_the_field_and_reuses_the_rest() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("cache-control", "no-cache=\"x-secret\", max-age=60"),
                ("x-secret", "s3"),
                ("x-public", "p"),
            ],
            "q",
        )
    })
    .await;
    assert_eq!(
        get(&server.url("/q"), &[]).await.header("x-secret"),
        Some("s3")
    );
    let hit = get(&server.url("/q"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(
        (hit.header("x-secret"), hit.header("x-public")),
        (None, Some("p"))
    );
    assert_eq!(server.calls(), 1);
}
