//! The library's metrics (the `metrics` feature), read through a Prometheus recorder that is
//! local to the test's thread while the layer is built: every outcome, the reasons for not
//! storing, the bytes served, and the failures a store absorbs.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cache_layer::store::{Store, StoreError, StoredEntry};
use tower_cache_layer::{CacheKey, CacheLayer};

/// The value of the sample `series` (name and labels, as rendered) in a Prometheus text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn every_outcome_is_counted_once() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let cache = metrics::with_local_recorder(&recorder, || {
        CacheLayer::builder()
            .bypass(|head: &http::request::Parts| head.uri.path() == "/skip")
            .build()
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = tower::service_fn(move |req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let builder = Response::builder();
        let response = match req.uri().path() {
            "/etag" if req.headers().contains_key("if-none-match") => builder
                .status(StatusCode::NOT_MODIFIED)
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=0")
                .body(Full::default()),
            "/etag" => builder
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=0")
                .body(Full::from("tagged")),
            "/private" => builder
                .header("cache-control", "no-store")
                .body(Full::from("mine")),
            _ => builder
                .header("cache-control", "max-age=60")
                .body(Full::from("hello")),
        };
        async move { Ok::<_, Infallible>(response.unwrap()) }
    });
    let mut service = ServiceBuilder::new().layer(cache).service(origin);
    let mut send = async |method: Method, path: &str| {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://example.com{path}"))
            .body(Full::default())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    };

    send(Method::GET, "/a").await; // miss, stored
    send(Method::GET, "/a").await; // hit
    send(Method::GET, "/private").await; // miss, not stored: no-store
    send(Method::GET, "/skip").await; // bypass
    send(Method::POST, "/form").await; // method
    send(Method::GET, "/etag").await; // miss, stored (stale at once)
    send(Method::GET, "/etag").await; // revalidated with a 304
    assert_eq!(calls.load(Ordering::SeqCst), 6);

    let text = metrics.render();
    let count = |series: &str| sample(&text, series);
    assert_eq!(count(r#"cache_requests_total{outcome="miss"}"#), 3.0);
    assert_eq!(count(r#"cache_requests_total{outcome="hit"}"#), 1.0);
    assert_eq!(count(r#"cache_requests_total{outcome="revalidated"}"#), 1.0);
    assert_eq!(count(r#"cache_requests_total{outcome="bypass"}"#), 1.0);
    assert_eq!(count(r#"cache_requests_total{outcome="method"}"#), 1.0);
    assert_eq!(count(r#"cache_not_stored_total{reason="no-store"}"#), 1.0);
    // `hello` (the hit) and `tagged` (revalidated) from the store.
    assert_eq!(count(r#"cache_served_bytes_total{source="cache"}"#), 11.0);
    // `hello`, `mine`, `hello` (bypass), `hello` (POST), `tagged`.
    assert_eq!(count(r#"cache_served_bytes_total{source="origin"}"#), 25.0);
    assert_eq!(count("cache_store_errors_total"), 0.0);
    // Five went forward through the cache (`/a`, `/private`, the POST, `/etag` twice); the
    // bypassed request is passed on untimed.
    assert_eq!(count("cache_origin_duration_seconds_count"), 5.0);
}

/// A store whose backend is down: every lookup is a miss and every write is skipped, each
/// counted as a failure it absorbed (as the disk and Redis stores do).
#[derive(Clone, Default)]
struct DownStore {
    failures: Arc<AtomicU64>,
}

impl Store for DownStore {
    async fn get(&self, _key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        self.failures.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    }

    async fn put(
        &self,
        _key: CacheKey,
        _value: Arc<StoredEntry>,
        _ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.failures.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn remove(&self, _key: &CacheKey) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn failures_a_store_absorbs_are_store_errors_once_each() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let store = DownStore::default();
    let cache = metrics::with_local_recorder(&recorder, || {
        CacheLayer::builder().store(store.clone()).build()
    });
    let handle = cache.handle();
    let origin = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("cache-control", "max-age=60")
                .body(Full::from("hello"))
                .unwrap(),
        )
    });
    let mut service = ServiceBuilder::new().layer(cache).service(origin);
    for _ in 0..2 {
        let request = Request::get("http://example.com/a")
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.headers()["x-cache"], "MISS");
        response.into_body().collect().await.unwrap();
    }
    // The writes happen in a task of their own.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let absorbed = store.failures() as f64;
    assert!(
        absorbed >= 4.0,
        "two lookups and two writes at least: {absorbed}"
    );
    assert_eq!(sample(&metrics.render(), "cache_store_errors_total"), 0.0);
    // Reading the stats adds what the store absorbed, once.
    handle.stats();
    assert_eq!(
        sample(&metrics.render(), "cache_store_errors_total"),
        absorbed
    );
    handle.stats();
    assert_eq!(
        sample(&metrics.render(), "cache_store_errors_total"),
        absorbed
    );
}
