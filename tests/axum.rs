//! The layer inside axum, and the handle: one cache across routes, clear, remove, stats.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod support;

use axum::Router;
use axum::routing::{get as route_get, post};
use support::get;
use tower_cache_layer::CacheLayer;

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn axum_router_layer_caches_every_route_in_one_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b, c) = (calls.clone(), calls.clone(), calls.clone());
    let cache = CacheLayer::new();
    let handle = cache.handle();
    let app = Router::new()
        .route(
            "/a",
            route_get(move || async move {
                a.fetch_add(1, Ordering::SeqCst);
                ([("cache-control", "max-age=60")], "route a")
            }),
        )
        .route(
            "/b",
            route_get(move || async move {
                b.fetch_add(1, Ordering::SeqCst);
                ([("cache-control", "max-age=60")], "route b")
            }),
        )
        .route(
            "/echo",
            post(move |body: String| async move {
                c.fetch_add(1, Ordering::SeqCst);
                body
            }),
        )
        .layer(cache);
    let addr = serve(app).await;
    let url = |p: &str| format!("http://{addr}{p}");

    for path in ["/a", "/b"] {
        assert_eq!(get(&url(path), &[]).await.x_cache(), "MISS");
    }
    let hit = get(&url("/a"), &[]).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"route a"[..]));
    assert_eq!(get(&url("/b"), &[]).await.body, "route b");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let stats = handle.stats();
    assert_eq!((stats.hits(), stats.misses(), stats.stores()), (2, 2, 2));
    handle.store().run_pending_tasks().await;
    assert_eq!(handle.store().entry_count(), 2);

    // remove one URL
    let removed = handle.remove(&url("/a").parse().unwrap()).await.unwrap();
    assert!(removed);
    assert_eq!(get(&url("/a"), &[]).await.x_cache(), "MISS");
    assert_eq!(get(&url("/b"), &[]).await.x_cache(), "HIT");

    // clear everything
    assert_eq!(handle.clear().await.unwrap(), 2);
    assert_eq!(get(&url("/a"), &[]).await.x_cache(), "MISS");
    assert_eq!(get(&url("/b"), &[]).await.x_cache(), "MISS");
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    let echoed = support::send(
        http::Request::post(url("/echo"))
            .body(http_body_util::Full::from("ping"))
            .unwrap(),
    )
    .await;
    assert_eq!((echoed.x_cache(), &echoed.body[..]), ("MISS", &b"ping"[..]));
    // The POST is a pass, not a miss: the cache does not handle it.
    let stats = handle.stats();
    assert_eq!((stats.misses(), stats.passes()), (5, 1));
    assert_eq!(stats.requests(), stats.hits() + 5 + 1);
}
