//! The layer's operating hooks over TCP: key header fields (a tenant header selects its own
//! stored response), the bypass predicate, admission after a number of uses, the doorkeeper
//! of a full store, and the counters that separate misses from requests the cache does not
//! handle.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request};
use http_body_util::Full;
use support::{TestBody, get, response, send, serve};
use tower_cache_layer::CacheLayer;

/// An origin answering, cacheable for a minute, which tenant asked.
fn tenant_origin(req: &http::Request<hyper::body::Incoming>) -> http::Response<TestBody> {
    let tenant = req
        .headers()
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody");
    let mut answer = response(&[("cache-control", "max-age=60")], "");
    *answer.body_mut() = TestBody::full(format!("for {tenant}"));
    answer
}

/// Two tenants ask for one URL: each gets the origin's answer for it, then a hit of its own;
/// a request without the field is a third variant; purging the URL removes them all.
#[tokio::test]
async fn tenants_get_their_own_answers_and_each_hits() {
    let cache = CacheLayer::builder()
        .key_headers([HeaderName::from_static("x-tenant")])
        .build();
    let handle = cache.handle();
    let server = serve(cache, tenant_origin).await;
    let url = server.url("/dashboard");

    for round in ["MISS", "HIT"] {
        for tenant in ["acme", "globex"] {
            let seen = get(&url, &[("x-tenant", tenant)]).await;
            assert_eq!(seen.x_cache(), round, "{tenant}: {}", seen.cache_status());
            assert_eq!(seen.body, format!("for {tenant}"));
        }
    }
    assert_eq!(server.calls(), 2);
    // The second tenant's first request found the URL stored for another one.
    let third = get(&url, &[("x-tenant", "initech")]).await;
    assert!(
        third.cache_status().contains("fwd=vary-miss"),
        "{}",
        third.cache_status()
    );
    let anonymous = get(&url, &[]).await;
    assert_eq!(
        (anonymous.x_cache(), &anonymous.body[..]),
        ("MISS", &b"for nobody"[..])
    );
    assert_eq!(server.calls(), 4);

    // All of a URL's tenants live under its one key.
    assert_eq!(handle.purge(&url.parse().unwrap()).await.unwrap(), 1);
    let after = get(&url, &[("x-tenant", "acme")]).await;
    assert_eq!(
        (after.x_cache(), &after.body[..]),
        ("MISS", &b"for acme"[..])
    );
}

/// The response's own `Vary` still applies alongside the key fields.
#[tokio::test]
async fn key_fields_add_to_the_responses_vary() {
    let cache = CacheLayer::builder()
        .key_headers([HeaderName::from_static("x-tenant")])
        .build();
    let server = serve(cache, |req| {
        let mut answer = tenant_origin(req);
        answer
            .headers_mut()
            .insert("vary", "accept-language".parse().unwrap());
        answer
    })
    .await;
    let url = server.url("/page");
    let (en, fr) = (("accept-language", "en"), ("accept-language", "fr"));
    assert_eq!(get(&url, &[("x-tenant", "a"), en]).await.x_cache(), "MISS");
    assert_eq!(get(&url, &[("x-tenant", "a"), fr]).await.x_cache(), "MISS");
    assert_eq!(get(&url, &[("x-tenant", "b"), en]).await.x_cache(), "MISS");
    assert_eq!(get(&url, &[("x-tenant", "a"), en]).await.x_cache(), "HIT");
    assert_eq!(get(&url, &[("x-tenant", "b"), en]).await.x_cache(), "HIT");
    assert_eq!(server.calls(), 3);
}

/// Requests the predicate picks reach the origin every time, marked `fwd=bypass`, and are
/// not stored; the others are cached as usual.
#[tokio::test]
async fn bypassed_requests_reach_the_origin_every_time() {
    let cache = CacheLayer::builder()
        .bypass(|head: &http::request::Parts| {
            head.uri.path().starts_with("/live/") || head.headers.contains_key("x-debug")
        })
        .build();
    let handle = cache.handle();
    let server = serve(cache, |_req| {
        response(&[("cache-control", "max-age=60")], "cacheable")
    })
    .await;

    for _ in 0..3 {
        let seen = get(&server.url("/live/scores"), &[]).await;
        assert_eq!(seen.x_cache(), "MISS");
        assert_eq!(
            seen.cache_status(),
            "tower-cache-layer; fwd=bypass; fwd-status=200"
        );
    }
    assert_eq!(server.calls(), 3);

    assert_eq!(get(&server.url("/news"), &[]).await.x_cache(), "MISS");
    assert_eq!(get(&server.url("/news"), &[]).await.x_cache(), "HIT");
    // A stored URL is bypassed too when the predicate says so.
    let debug = get(&server.url("/news"), &[("x-debug", "1")]).await;
    assert!(
        debug.cache_status().contains("; fwd=bypass;"),
        "{}",
        debug.cache_status()
    );
    assert_eq!(server.calls(), 5);

    let stats = handle.stats();
    assert_eq!(
        (stats.hits(), stats.misses(), stats.passes(), stats.stores()),
        (1, 1, 4, 1)
    );
}

/// `min_uses(3, …)`: the first two requests are forwarded and not stored (`fwd=miss;
/// detail=min-uses`), the third is stored, the fourth is a hit.
#[tokio::test]
async fn min_uses_stores_on_the_third_request() {
    let cache = CacheLayer::builder()
        .min_uses(3, Duration::from_secs(600))
        .build();
    let handle = cache.handle();
    let server = serve(cache, |_req| {
        response(&[("cache-control", "max-age=60")], "popular")
    })
    .await;
    let url = server.url("/popular");

    let mut statuses = Vec::new();
    for expected in ["MISS", "MISS", "MISS", "HIT"] {
        let seen = get(&url, &[]).await;
        assert_eq!(seen.x_cache(), expected, "{}", seen.cache_status());
        assert_eq!(seen.body, "popular");
        statuses.push(seen.cache_status().to_owned());
    }
    assert_eq!(
        statuses[..3],
        [
            "tower-cache-layer; fwd=miss; fwd-status=200; detail=min-uses",
            "tower-cache-layer; fwd=miss; fwd-status=200; detail=min-uses",
            "tower-cache-layer; fwd=uri-miss; fwd-status=200",
        ]
    );
    assert_eq!(server.calls(), 3);
    // Another URL counts on its own.
    let other = get(&server.url("/other"), &[]).await;
    assert!(other.cache_status().ends_with("detail=min-uses"));
    let stats = handle.stats();
    assert_eq!((stats.hits(), stats.misses(), stats.stores()), (1, 4, 1));
}

/// Requests not yet admitted do not wait for one another: while the first one's body is
/// still coming, a second request for the key goes to the origin at once (collapsed
/// forwarding would hold it until the first one ended).
#[tokio::test]
async fn requests_not_admitted_are_not_collapsed() {
    let cache = CacheLayer::builder()
        .min_uses(10, Duration::from_secs(600))
        .build();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let server = serve(cache, move |_req| {
        let body = TestBody::chunks(vec![Bytes::from("slow")]);
        let body = match gate.lock().unwrap().take() {
            Some(gate) => body.gated(0, gate),
            None => body,
        };
        let mut answer = http::Response::new(body);
        answer
            .headers_mut()
            .insert("cache-control", "max-age=60".parse().unwrap());
        answer
    })
    .await;
    let url = server.url("/slow");
    let first = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[]).await }
    });
    while server.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::time::timeout(Duration::from_secs(3), get(&url, &[]))
        .await
        .expect("the second request is not held behind the first");
    assert!(
        second.cache_status().contains("fwd=miss"),
        "{}",
        second.cache_status()
    );
    assert_eq!(server.calls(), 2);
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().body, "slow");
}

/// A 512-byte response, cacheable for a minute: about 1.5 KiB as the memory store weighs it,
/// less than a 32nd of a 64 KiB store.
fn half_kib(_req: &http::Request<hyper::body::Incoming>) -> http::Response<TestBody> {
    let mut answer = http::Response::new(TestBody::full(vec![b'x'; 512]));
    answer
        .headers_mut()
        .insert("cache-control", "max-age=60".parse().unwrap());
    answer
}

/// A 64 KiB store, filled with twice what it holds; its weighed size made current (moka's
/// pending upkeep run).
async fn full_store(doorkeeper: bool) -> (support::Server, tower_cache_layer::CacheHandle) {
    let cache = CacheLayer::builder()
        .max_capacity(64 * 1024)
        .doorkeeper(doorkeeper)
        .build();
    let handle = cache.handle();
    let server = serve(cache, half_kib).await;
    for n in 0..90 {
        assert_eq!(
            get(&server.url(&format!("/fill/{n}")), &[])
                .await
                .body
                .len(),
            512
        );
    }
    let store = handle.store();
    store.run_pending_tasks().await;
    assert!(
        store.weighted_size() > 62 * 1024,
        "{}",
        store.weighted_size()
    );
    (server, handle)
}

/// The doorkeeper: once the store is full, a new URL's first response is passed on unstored
/// (`detail=store-full`), its second is stored, and the third request is a hit.
#[tokio::test]
async fn a_full_store_keeps_a_new_url_from_its_second_request() {
    let (server, _handle) = full_store(true).await;
    let calls = server.calls();
    let url = server.url("/new");
    let mut statuses = Vec::new();
    for expected in ["MISS", "MISS", "HIT"] {
        let seen = get(&url, &[]).await;
        assert_eq!(seen.x_cache(), expected, "{}", seen.cache_status());
        assert_eq!(seen.body.len(), 512);
        statuses.push(seen.cache_status().to_owned());
    }
    assert_eq!(
        statuses[..2],
        [
            "tower-cache-layer; fwd=miss; fwd-status=200; detail=store-full",
            "tower-cache-layer; fwd=uri-miss; fwd-status=200",
        ]
    );
    assert_eq!(server.calls() - calls, 2);
}

/// `doorkeeper(false)`: a full store is handed every storable response, the first included.
#[tokio::test]
async fn without_the_doorkeeper_a_full_store_is_handed_a_new_url_at_once() {
    let (server, _handle) = full_store(false).await;
    let seen = get(&server.url("/new"), &[]).await;
    assert_eq!(
        seen.cache_status(),
        "tower-cache-layer; fwd=uri-miss; fwd-status=200"
    );
    assert_eq!(get(&server.url("/new"), &[]).await.x_cache(), "HIT");
}

/// A POST is a pass, not a miss.
#[tokio::test]
async fn other_methods_count_as_passes() {
    let cache = CacheLayer::new();
    let handle = cache.handle();
    let server = serve(cache, |_req| {
        response(&[("cache-control", "max-age=60")], "x")
    })
    .await;
    get(&server.url("/a"), &[]).await;
    get(&server.url("/a"), &[]).await;
    let post = Request::post(server.url("/a"))
        .body(Full::<Bytes>::from("data"))
        .unwrap();
    assert_eq!(send(post).await.x_cache(), "MISS");
    let stats = handle.stats();
    assert_eq!(
        (
            stats.hits(),
            stats.misses(),
            stats.passes(),
            stats.requests()
        ),
        (1, 1, 1, 3)
    );
}
