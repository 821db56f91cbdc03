//! What is not stored (RFC 9111 §3) and request directives (§5.2.1), over TCP; header sections
//! past the cache's name limit through the layer in process (hyper reads 100 fields at most).

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderName, Request};
use http_body_util::{BodyExt, Full};
use support::{get, response, send, serve};
use tower::{ServiceExt, service_fn};
use tower_cache_layer::CacheLayer;
use tower_cache_layer::policy::CacheOptions;
use tower_cache_layer::store::MemoryStore;

async fn twice(
    headers: &'static [(&'static str, &'static str)],
    req: &[(&str, &str)],
) -> (String, String, usize) {
    let server = serve(CacheLayer::new(), move |_| response(headers, "body")).await;
    let a = get(&server.url("/"), req).await;
    let b = get(&server.url("/"), req).await;
    assert_eq!(a.body, "body");
    assert_eq!(b.body, "body");
    (
        a.cache_status().to_owned(),
        b.x_cache().to_owned(),
        server.calls(),
    )
}

// RFC 9111 §5.2.2.5
#[tokio::test]
async fn no_store_is_not_stored() {
    let (status, second, calls) = twice(&[("cache-control", "no-store, max-age=60")], &[]).await;
    assert_eq!(
        status,
        "tower-cache-layer; fwd=uri-miss; fwd-status=200; detail=no-store"
    );
    assert_eq!((second.as_str(), calls), ("MISS", 2));
}

// RFC 9111 §5.2.2.7: a shared cache does not store private responses.
#[tokio::test]
async fn private_is_not_stored() {
    let (_, second, calls) = twice(&[("cache-control", "private, max-age=60")], &[]).await;
    assert_eq!((second.as_str(), calls), ("MISS", 2));
}

// RFC 9111 §3.5: a request with Authorization is only stored when the response allows it.
#[tokio::test]
async fn authorization_needs_explicit_permission() {
    let auth = [("authorization", "Bearer alice")];
    let (_, second, calls) = twice(&[("cache-control", "max-age=60")], &auth).await;
    assert_eq!((second.as_str(), calls), ("MISS", 2));
    for allowed in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        let server = serve(CacheLayer::new(), move |_| {
            response(&[("cache-control", allowed)], "shared")
        })
        .await;
        get(&server.url("/"), &auth).await;
        assert_eq!(
            get(&server.url("/"), &auth).await.x_cache(),
            "HIT",
            "{allowed}"
        );
        assert_eq!(server.calls(), 1);
    }
}

// One user's cookie must never reach another user.
#[tokio::test]
async fn set_cookie_is_not_stored() {
    let (_, second, calls) = twice(
        &[
            ("cache-control", "max-age=60"),
            ("set-cookie", "session=alice"),
        ],
        &[],
    )
    .await;
    assert_eq!((second.as_str(), calls), ("MISS", 2));
}

// RFC 9111 §3: no freshness information and no validator: nothing to reuse, not stored.
#[tokio::test]
async fn no_freshness_no_validator_is_not_stored() {
    let (status, second, calls) = twice(&[], &[]).await;
    assert!(status.contains("detail=no-freshness"), "{status}");
    assert_eq!((second.as_str(), calls), ("MISS", 2));
}

// RFC 9111 §5.2.1.5: request no-store: this exchange is not stored.
#[tokio::test]
async fn request_no_store_is_not_stored() {
    let (_, second, calls) = twice(
        &[("cache-control", "max-age=60")],
        &[("cache-control", "no-store")],
    )
    .await;
    assert_eq!((second.as_str(), calls), ("MISS", 2));
}

// RFC 9111 §5.2.1.4 and §5.4: request no-cache (or Pragma) goes to the origin.
#[tokio::test]
async fn request_no_cache_goes_to_origin() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "x")
    })
    .await;
    get(&server.url("/"), &[]).await;
    let forced = get(&server.url("/"), &[("cache-control", "no-cache")]).await;
    assert_eq!(forced.x_cache(), "MISS");
    assert!(
        forced.cache_status().contains("fwd=request"),
        "{}",
        forced.cache_status()
    );
    assert_eq!(
        get(&server.url("/"), &[("pragma", "no-cache")])
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(get(&server.url("/"), &[]).await.x_cache(), "HIT");
    assert_eq!(server.calls(), 3);
}

// RFC 9111 §5.2.1.7: only-if-cached with nothing stored gets a 504 without contacting the origin.
#[tokio::test]
async fn only_if_cached_miss_is_504() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "x")
    })
    .await;
    let r = get(&server.url("/"), &[("cache-control", "only-if-cached")]).await;
    assert_eq!(r.status, 504);
    assert_eq!(server.calls(), 0);
    get(&server.url("/"), &[]).await;
    let r = get(&server.url("/"), &[("cache-control", "only-if-cached")]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "HIT"));
}

// RFC 9211 §2.2: the only-if-cached 504 was made by the cache, not forwarded: no `fwd`.
#[tokio::test]
async fn only_if_cached_504_is_not_marked_forwarded() {
    let server = serve(CacheLayer::new(), |_| response(&[], "x")).await;
    let r = get(&server.url("/"), &[("cache-control", "only-if-cached")]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(r.cache_status(), "tower-cache-layer; detail=only-if-cached");
    assert_eq!(server.calls(), 0);
}

// RFC 9111 §3: only GET responses are stored; POST is forwarded with its body.
#[tokio::test]
async fn post_is_forwarded_not_stored() {
    let server = serve(CacheLayer::new(), |_| {
        response(&[("cache-control", "max-age=60")], "posted")
    })
    .await;
    for _ in 0..2 {
        let r = send(
            Request::post(server.url("/p"))
                .body(Full::from("data"))
                .unwrap(),
        )
        .await;
        assert_eq!(r.x_cache(), "MISS");
        assert_eq!(
            r.cache_status(),
            "tower-cache-layer; fwd=method; fwd-status=200"
        );
    }
    assert_eq!(get(&server.url("/p"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 3);
}

// RFC 9110 §9.3.3: a POST response with explicit freshness and a Content-Location equal to
// the target URI answers later GETs of it (method-POST); it still invalidates first.
#[tokio::test]
async fn post_response_with_own_content_location_answers_get() {
    let server = serve(CacheLayer::new(), |req| {
        if req.method() == http::Method::POST {
            let location = if req.uri().path() == "/p" {
                "/p"
            } else {
                "/elsewhere"
            };
            response(
                &[
                    ("cache-control", "max-age=60"),
                    ("content-location", location),
                ],
                "posted",
            )
        } else {
            response(&[("cache-control", "max-age=60")], "got")
        }
    })
    .await;
    let post = |path: &str| {
        send(
            Request::post(server.url(path))
                .body(Full::from("data"))
                .unwrap(),
        )
    };
    assert_eq!(get(&server.url("/p"), &[]).await.body, "got");
    let r = post("/p").await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(r.body, "posted");
    let hit = get(&server.url("/p"), &[]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"posted"[..]));
    // Content-Location naming another URI: not stored for the target.
    post("/q").await;
    assert_eq!(get(&server.url("/q"), &[]).await.x_cache(), "MISS");
    assert_eq!(server.calls(), 4);
}

// Status codes that are not heuristically cacheable need explicit freshness.
#[tokio::test]
async fn non_heuristic_status_needs_explicit_freshness() {
    let server = serve(CacheLayer::new(), |req| {
        let mut r = match req.uri().path() {
            "/explicit" => response(&[("cache-control", "max-age=60")], "gone"),
            _ => response(
                &[
                    ("etag", "\"e\""),
                    ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ],
                "gone",
            ),
        };
        *r.status_mut() = http::StatusCode::FORBIDDEN;
        r
    })
    .await;
    get(&server.url("/heuristic"), &[]).await;
    assert_eq!(get(&server.url("/heuristic"), &[]).await.x_cache(), "MISS");
    get(&server.url("/explicit"), &[]).await;
    let hit = get(&server.url("/explicit"), &[]).await;
    assert_eq!((hit.status.as_u16(), hit.x_cache()), (403, "HIT"));
}

// RFC 9111 §4.1: a stored response is only reused for matching Vary fields.
#[tokio::test]
async fn vary_selects_the_variant() {
    let server = serve(CacheLayer::new(), |req| {
        let gz = req
            .headers()
            .get("accept-encoding")
            .is_some_and(|v| v == "gzip");
        response(
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            if gz { "gzip-bytes" } else { "plain" },
        )
    })
    .await;
    assert_eq!(
        get(&server.url("/v"), &[("accept-encoding", "gzip")])
            .await
            .body,
        "gzip-bytes"
    );
    let other = get(&server.url("/v"), &[]).await;
    assert_eq!((other.x_cache(), &other.body[..]), ("MISS", &b"plain"[..]));
    assert!(
        other.cache_status().contains("fwd=vary-miss"),
        "{}",
        other.cache_status()
    );
    let same = get(&server.url("/v"), &[]).await;
    assert_eq!((same.x_cache(), &same.body[..]), ("HIT", &b"plain"[..]));
    // Both variants are kept: the gzip one was not replaced by the plain one.
    let gz = get(&server.url("/v"), &[("accept-encoding", "gzip")]).await;
    assert_eq!((gz.x_cache(), &gz.body[..]), ("HIT", &b"gzip-bytes"[..]));
    assert_eq!(server.calls(), 2);
}

/// A cache whose inner service sets `X-Forwarded-For` on the way to the origin (as a reverse
/// proxy does), over `store`.
fn unseen_forwarded_for(store: MemoryStore) -> CacheLayer {
    let mut options = CacheOptions::default();
    options.unseen_fields = vec![HeaderName::from_static("x-forwarded-for")];
    CacheLayer::builder().store(store).options(options).build()
}

/// An origin that answers with its caller's `X-Forwarded-For`, varying on it.
fn echo_forwarded_for(req: &Request<hyper::body::Incoming>) -> http::Response<support::TestBody> {
    let body = match req.headers().get("x-forwarded-for") {
        Some(client) if client == "192.0.2.1" => "for 192.0.2.1",
        Some(_) => "for another",
        None => "for nobody",
    };
    response(
        &[
            ("cache-control", "max-age=60"),
            ("vary", "X-Forwarded-For, Accept"),
        ],
        body,
    )
}

// RFC 9111 §4.1: a response is selected by the values of its Vary fields that the origin saw;
// for a field the inner service sets, the cache never sees them, so it does not store it.
#[tokio::test]
async fn vary_on_a_field_the_cache_does_not_see_is_not_stored() {
    let server = serve(
        unseen_forwarded_for(MemoryStore::default()),
        echo_forwarded_for,
    )
    .await;
    let first = get(&server.url("/x"), &[("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(first.body, "for 192.0.2.1");
    assert!(
        first.cache_status().ends_with("detail=vary-unseen"),
        "{}",
        first.cache_status()
    );
    let second = get(&server.url("/x"), &[("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(
        (second.x_cache(), &second.body[..]),
        ("MISS", &b"for 192.0.2.1"[..])
    );
    assert_eq!(server.calls(), 2);
    // Varying on fields the cache sees is stored as before.
    let accept = serve(unseen_forwarded_for(MemoryStore::default()), |_| {
        response(&[("cache-control", "max-age=60"), ("vary", "Accept")], "a")
    })
    .await;
    get(&accept.url("/a"), &[]).await;
    assert_eq!(get(&accept.url("/a"), &[]).await.x_cache(), "HIT");
    assert_eq!(accept.calls(), 1);
}

// A store may hold a response stored before its Vary field was declared unseen: it is not
// selected, since the value it was stored under may be anybody's.
#[tokio::test]
async fn a_stored_response_varying_on_an_unseen_field_is_not_selected() {
    let store = MemoryStore::default();
    // Both caches see the same key: the same Host, the same path.
    let host = ("host", "shared.test");
    let before = serve(
        CacheLayer::builder().store(store.clone()).build(),
        echo_forwarded_for,
    )
    .await;
    get(&before.url("/x"), &[host, ("x-forwarded-for", "192.0.2.1")]).await;
    let hit = get(&before.url("/x"), &[host, ("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(hit.x_cache(), "HIT");
    let after = serve(unseen_forwarded_for(store), echo_forwarded_for).await;
    let again = get(&after.url("/x"), &[host, ("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(
        (again.x_cache(), &again.body[..]),
        ("MISS", &b"for 192.0.2.1"[..])
    );
    assert_eq!((before.calls(), after.calls()), (1, 1));
}

// RFC 9111 §4.1: Accept-Language is compared without regard to case
// (vary-normalise-lang-case).
#[tokio::test]
async fn vary_accept_language_ignores_case() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
            "en-de",
        )
    })
    .await;
    get(&server.url("/l"), &[("accept-language", "en, de")]).await;
    let hit = get(&server.url("/l"), &[("accept-language", "eN, De")]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"en-de"[..]));
    let other = get(&server.url("/l"), &[("accept-language", "fr")]).await;
    assert_eq!(other.x_cache(), "MISS");
    assert_eq!(server.calls(), 2);
}

// RFC 9111 §3.1: hop-by-hop fields are not stored.
#[tokio::test]
async fn hop_by_hop_fields_are_not_stored() {
    let server = serve(CacheLayer::new(), |_| {
        response(
            &[
                ("cache-control", "max-age=60"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("x-end", "2"),
            ],
            "x",
        )
    })
    .await;
    get(&server.url("/"), &[]).await;
    let hit = get(&server.url("/"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("x-hop"), None);
    assert_eq!(hit.header("keep-alive"), None);
    assert_eq!(hit.header("x-end"), Some("2"));
}

/// A response fresh for a minute, of `names` distinct header names in all.
fn of_names(names: usize) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::from("body"));
    let headers = response.headers_mut();
    headers.insert("cache-control", "max-age=60".parse().unwrap());
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    headers.insert("date", date.parse().unwrap());
    for n in 2..names {
        let name = HeaderName::try_from(format!("x-{n}")).unwrap();
        headers.insert(name, http::HeaderValue::from_static("1"));
    }
    response
}

/// Two GETs of `/` with `request_names` header names through the layer around a service
/// answering `of_names(names)`: the second's status, `X-Cache`, and the inner service's calls.
/// (Not over TCP: hyper reads 100 fields at most.)
async fn twice_of_names(names: usize, request_names: usize) -> (u16, Option<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let inner = service_fn(move |_: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(of_names(names)) }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(CacheLayer::new())
        .service(inner);
    let mut last = None;
    for _ in 0..2 {
        let mut req = Request::get("http://example.test/")
            .body(Full::default())
            .unwrap();
        for n in 0..request_names {
            let name = HeaderName::try_from(format!("x-{n}")).unwrap();
            req.headers_mut()
                .insert(name, http::HeaderValue::from_static("1"));
        }
        let response = svc.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let x_cache = response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "body");
        last = Some((status, x_cache));
    }
    let (status, x_cache) = last.unwrap();
    (status, x_cache, calls.load(Ordering::SeqCst))
}

// `http`'s maps hold 24,576 names and panic past that; a hit adds the cache's fields to a copy
// of the stored map. Responses of up to 16,384 names are stored and hit; larger ones are
// forwarded unstored, and one at `http`'s limit goes out without the cache's fields (there is
// no room for them) rather than panicking.
#[tokio::test]
async fn responses_of_too_many_names_are_forwarded_unstored() {
    let most = 16_384;
    assert_eq!(twice_of_names(most, 0).await, (200, Some("HIT".into()), 1));
    assert_eq!(
        twice_of_names(most + 1, 0).await,
        (200, Some("MISS".into()), 2)
    );
    assert_eq!(twice_of_names(24_576, 0).await, (200, None, 2));
}

// A request of more names than the cache handles goes forward as it is (the cache would add
// validators or `Range` to it), and is not answered from the store.
#[tokio::test]
async fn requests_of_too_many_names_go_forward() {
    assert_eq!(
        twice_of_names(3, 16_384).await,
        (200, Some("HIT".into()), 1)
    );
    assert_eq!(
        twice_of_names(3, 16_385).await,
        (200, Some("MISS".into()), 2)
    );
    assert_eq!(
        twice_of_names(3, 24_576).await,
        (200, Some("MISS".into()), 2)
    );
}
