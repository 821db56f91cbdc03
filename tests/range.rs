//! Range requests answered from stored responses (RFC 9110 §14), and targeted Cache-Control
//! (RFC 9213), over TCP.

mod support;

use http::{HeaderName, Response};
use support::{TestBody, get, response, serve};
use tower_cache_layer::CacheLayer;

async fn stored_digits() -> support::Server {
    let server = serve(CacheLayer::new(), |req| {
        let mut r = response(
            &[("cache-control", "max-age=60"), ("etag", "\"d\"")],
            "0123456789",
        );
        if req.headers().contains_key("range") {
            // The origin ignores ranges; the test counts what reaches it.
            r.headers_mut()
                .insert("x-origin-saw-range", "1".parse().unwrap());
        }
        r
    })
    .await;
    get(&server.url("/digits"), &[]).await;
    server
}

#[tokio::test]
async fn single_range_is_served_from_the_cache() {
    let server = stored_digits().await;
    let r = get(&server.url("/digits"), &[("range", "bytes=2-5")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    assert_eq!(r.body, "2345");
    let suffix = get(&server.url("/digits"), &[("range", "bytes=-3")]).await;
    assert_eq!(
        (suffix.status.as_u16(), &suffix.body[..]),
        (206, &b"789"[..])
    );
    let open = get(&server.url("/digits"), &[("range", "bytes=8-")]).await;
    assert_eq!(
        (open.header("content-range"), &open.body[..]),
        (Some("bytes 8-9/10"), &b"89"[..])
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn unsatisfiable_range_is_416() {
    let server = stored_digits().await;
    let r = get(&server.url("/digits"), &[("range", "bytes=20-30")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    assert_eq!(server.calls(), 1);
}

// RFC 9110 §13.1.5: If-Range with a validator that does not match gets the whole response.
#[tokio::test]
async fn if_range_is_honoured() {
    let server = stored_digits().await;
    let matching = get(
        &server.url("/digits"),
        &[("range", "bytes=0-1"), ("if-range", "\"d\"")],
    )
    .await;
    assert_eq!(
        (matching.status.as_u16(), &matching.body[..]),
        (206, &b"01"[..])
    );
    let changed = get(
        &server.url("/digits"),
        &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(
        (changed.status.as_u16(), &changed.body[..]),
        (200, &b"0123456789"[..])
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn multiple_ranges_go_to_the_origin() {
    let server = stored_digits().await;
    let r = get(&server.url("/digits"), &[("range", "bytes=0-1, 4-5")]).await;
    assert_eq!(r.header("x-origin-saw-range"), Some("1"));
    assert_eq!(server.calls(), 2);
}

// RFC 9213: a valid targeted field takes precedence over Cache-Control and is passed on.
#[tokio::test]
async fn targeted_cache_control_takes_precedence() {
    let layer = CacheLayer::builder()
        .targeted_cache_control(HeaderName::from_static("cdn-cache-control"))
        .build();
    let server = serve(layer, |req| match req.uri().path() {
        "/cdn" => response(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
            "cdn",
        ),
        "/invalid" => response(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60, =bad"),
            ],
            "x",
        ),
        _ => response(
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
            "y",
        ),
    })
    .await;
    get(&server.url("/cdn"), &[]).await;
    let hit = get(&server.url("/cdn"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("cdn-cache-control"), Some("max-age=60"));
    get(&server.url("/invalid"), &[]).await;
    assert_eq!(get(&server.url("/invalid"), &[]).await.x_cache(), "MISS");
    get(&server.url("/targeted-no-store"), &[]).await;
    assert_eq!(
        get(&server.url("/targeted-no-store"), &[]).await.x_cache(),
        "MISS"
    );
}

// RFC 9213 §2.1: a known directive with a value of the wrong type (a String, a Token, a
// Decimal for max-age) invalidates the targeted field; Cache-Control (no-store) applies.
#[tokio::test]
async fn targeted_field_with_wrong_value_type_falls_back() {
    let layer = CacheLayer::builder()
        .targeted_cache_control(HeaderName::from_static("cdn-cache-control"))
        .build();
    let server = serve(layer, |req| {
        let cdn = match req.uri().path() {
            "/string" => "max-age=\"10000\"",
            "/token" => "max-age=abc",
            _ => "max-age=1.5",
        };
        let mut response = response(&[("cache-control", "no-store")], "x");
        response
            .headers_mut()
            .insert("cdn-cache-control", cdn.parse().unwrap());
        response
    })
    .await;
    for path in ["/string", "/token", "/decimal"] {
        let first = get(&server.url(path), &[]).await;
        assert!(first.cache_status().contains("detail=no-store"), "{path}");
        assert_eq!(
            get(&server.url(path), &[]).await.x_cache(),
            "MISS",
            "{path}"
        );
    }
    assert_eq!(server.calls(), 6);
}

// RFC 9111 §5.2.2.3: must-understand with an understood status overrides no-store.
#[tokio::test]
async fn must_understand_overrides_no_store_for_understood_status() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[("cache-control", "must-understand, no-store, max-age=60")],
            "mu",
        )
    })
    .await;
    get(&server.url("/mu"), &[]).await;
    assert_eq!(get(&server.url("/mu"), &[]).await.x_cache(), "HIT");
}

// RFC 9111 §5.2.2.7: qualified private: stored, without the named fields.
#[tokio::test]
async fn qualified_private_strips_the_named_fields() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("cache-control", "private=\"x-user\", max-age=60"),
                ("x-user", "alice"),
                ("x-shared", "yes"),
            ],
            "p",
        )
    })
    .await;
    let first = get(&server.url("/p"), &[]).await;
    assert_eq!(first.header("x-user"), Some("alice"));
    let hit = get(&server.url("/p"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("x-user"), None);
    assert_eq!(hit.header("x-shared"), Some("yes"));
}

// RFC 9111 §5.2.2.7: `private="set-cookie"`: the response is shared, the cookie never is.
#[tokio::test]
async fn private_set_cookie_is_stored_without_the_cookie() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("cache-control", "private=\"set-cookie\", max-age=60"),
                ("set-cookie", "session=alice"),
            ],
            "page",
        )
    })
    .await;
    let first = get(&server.url("/page"), &[]).await;
    assert_eq!(first.header("set-cookie"), Some("session=alice"));
    let hit = get(&server.url("/page"), &[]).await;
    assert_eq!((hit.x_cache(), hit.header("set-cookie")), ("HIT", None));
}

/// An origin that answers a single `bytes=a-b` range of `0123456789` with a `206`.
async fn ranged_origin(etag: &'static str) -> support::Server {
    serve(CacheLayer::new(), move |req| {
        let digits = b"0123456789";
        let range = req.headers().get("range").and_then(|v| v.to_str().ok());
        let (first, last) = range
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .expect("the test asks for bytes=a-b");
        Response::builder()
            .status(206)
            .header("cache-control", "max-age=60")
            .header("etag", etag)
            .header("content-range", format!("bytes {first}-{last}/10"))
            .body(TestBody::full(&digits[first..=last]))
            .unwrap()
    })
    .await
}

// RFC 9111 §3.3: a 206 is stored and answers later ranges it covers; others go forward.
#[tokio::test]
async fn partial_response_is_stored_and_answers_covered_ranges() {
    let server = ranged_origin("\"d\"").await;
    let first = get(&server.url("/p"), &[("range", "bytes=5-9")]).await;
    assert_eq!(
        (first.status.as_u16(), &first.body[..]),
        (206, &b"56789"[..])
    );
    let hit = get(&server.url("/p"), &[("range", "bytes=6-8")]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!((hit.status.as_u16(), &hit.body[..]), (206, &b"678"[..]));
    assert_eq!(hit.header("content-range"), Some("bytes 6-8/10"));
    let suffix = get(&server.url("/p"), &[("range", "bytes=-2")]).await;
    assert_eq!((suffix.x_cache(), &suffix.body[..]), ("HIT", &b"89"[..]));
    // Not covered: forwarded.
    let miss = get(&server.url("/p"), &[("range", "bytes=3-4")]).await;
    assert_eq!((miss.x_cache(), &miss.body[..]), ("MISS", &b"34"[..]));
    // RFC 9211 §2.2: the stored part was not sufficient.
    assert_eq!(
        miss.cache_status(),
        "tower-cache-layer; fwd=partial; fwd-status=206"
    );
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §3.4: parts with the same strong validator are combined; once every byte is
// there, the stored response is complete and answers a plain GET.
#[tokio::test]
async fn partial_responses_are_combined_into_a_complete_one() {
    let server = ranged_origin("\"d\"").await;
    get(&server.url("/c"), &[("range", "bytes=5-9")]).await;
    get(&server.url("/c"), &[("range", "bytes=0-5")]).await;
    let whole = get(&server.url("/c"), &[]).await;
    assert_eq!(whole.x_cache(), "HIT");
    assert_eq!(
        (whole.status.as_u16(), &whole.body[..]),
        (200, &b"0123456789"[..])
    );
    assert_eq!(whole.header("content-range"), None);
    assert_eq!(whole.header("content-length"), Some("10"));
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §3.4: without a strong validator parts are not combined; the newer one is kept.
#[tokio::test]
async fn weakly_tagged_parts_are_not_combined() {
    let server = ranged_origin("W/\"d\"").await;
    get(&server.url("/w"), &[("range", "bytes=5-9")]).await;
    get(&server.url("/w"), &[("range", "bytes=0-4")]).await;
    let hit = get(&server.url("/w"), &[("range", "bytes=1-2")]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"12"[..]));
    let whole = get(&server.url("/w"), &[("range", "bytes=0-9")]).await;
    assert_eq!(whole.x_cache(), "MISS");
    assert_eq!(server.calls(), 3);
}

// RFC 9111 §3.4: a request without Range for a stored prefix asks the origin for the rest
// only (`Range` with `If-Range`), answers 200 with all of it, and stores it complete.
#[tokio::test]
async fn stored_prefix_is_completed_with_the_rest() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = serve(CacheLayer::new(), move |req| {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        log.lock()
            .unwrap()
            .push((header("range"), header("if-range")));
        let digits = b"0123456789";
        let (first, last) = match header("range").as_deref() {
            Some("bytes=0-4") => (0, 4),
            Some("bytes=5-") => (5, 9),
            other => panic!("unexpected range {other:?}"),
        };
        Response::builder()
            .status(206)
            .header("cache-control", "max-age=60")
            .header("etag", "\"d\"")
            .header("content-range", format!("bytes {first}-{last}/10"))
            .body(TestBody::full(&digits[first..=last]))
            .unwrap()
    })
    .await;
    get(&server.url("/r"), &[("range", "bytes=0-4")]).await;
    let whole = get(&server.url("/r"), &[]).await;
    assert_eq!(
        (whole.status.as_u16(), &whole.body[..]),
        (200, &b"0123456789"[..])
    );
    assert_eq!(whole.header("content-length"), Some("10"));
    assert_eq!(whole.header("content-range"), None);
    assert_eq!(
        seen.lock().unwrap()[1],
        (Some("bytes=5-".to_owned()), Some("\"d\"".to_owned()))
    );
    let hit = get(&server.url("/r"), &[]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"0123456789"[..]));
    assert_eq!(server.calls(), 2);
}
