//! Purging through [`CacheHandle`]: by URL (every `Vary` variant, `http` and `https`), by tag
//! (`Surrogate-Key`, `Cache-Tag`), and soft (marked stale: the next request revalidates, and
//! the stale copy still covers an origin failure where `stale-if-error` allows it).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cache_layer::store::{Store, StoreError, StoredEntry};
use tower_cache_layer::{CacheHandle, CacheKey, CacheLayer};

/// An origin as a tower service: counts calls, records each request's `If-None-Match`, and
/// answers 503 to everything while `failing`.
#[derive(Clone, Default)]
struct Origin {
    calls: Arc<AtomicUsize>,
    if_none_match: Arc<Mutex<Vec<Option<String>>>>,
    failing: Arc<AtomicBool>,
}

impl Origin {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last_if_none_match(&self) -> Option<String> {
        self.if_none_match.lock().unwrap().last().cloned().flatten()
    }

    /// `/vary`: varies on `Accept-Language`; `/tag/a`: `Surrogate-Key: red all`; `/tag/b`:
    /// `Cache-Tag: blue, all`; `/etag`: an `ETag` and `stale-if-error`, 304 to a matching
    /// `If-None-Match`; `/strict`: the same with `must-revalidate`; anything else: untagged.
    /// All fresh for a minute.
    fn answer(&self, req: &Request<Full<Bytes>>) -> Response<Full<Bytes>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let inm = req
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.if_none_match.lock().unwrap().push(inm.clone());
        if self.failing.load(Ordering::SeqCst) {
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(Full::from("down"))
                .unwrap();
        }
        let path = req.uri().path();
        let builder = Response::builder().header("cache-control", "max-age=60");
        let builder = match path {
            "/vary" => builder.header("vary", "accept-language"),
            "/tag/a" => builder.header("surrogate-key", "red all"),
            "/tag/b" => builder.header("cache-tag", "blue, all"),
            "/etag" => builder
                .header("cache-control", "stale-if-error=600")
                .header("etag", "\"v1\""),
            "/strict" => builder
                .header("cache-control", "must-revalidate, stale-if-error=600")
                .header("etag", "\"v1\""),
            _ => builder,
        };
        if inm.as_deref() == Some("\"v1\"") {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Full::default())
                .unwrap();
        }
        let lang = req
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        builder.body(Full::from(format!("{path} {lang}"))).unwrap()
    }
}

type Cached = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_cache_layer::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

fn cached(origin: &Origin) -> (Cached, CacheHandle) {
    let layer = CacheLayer::new();
    let handle = layer.handle();
    let origin = origin.clone();
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req: Request<Full<Bytes>>| {
                let response = origin.answer(&req);
                async move { Ok::<_, Infallible>(response) }
            });
    (tower::util::BoxCloneService::new(service), handle)
}

/// A response's status, `X-Cache`, `Cache-Status` and body.
struct Seen {
    status: StatusCode,
    x_cache: String,
    cache_status: String,
    body: String,
}

/// `GET http://example.com{path}` with extra header fields; reads the whole body (which is
/// what stores a miss).
async fn get(service: &mut Cached, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut request = Request::get(format!("http://example.com{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::default()).unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let text = |headers: &HeaderMap, name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (parts, body) = response.into_parts();
    Seen {
        status: parts.status,
        x_cache: text(&parts.headers, "x-cache"),
        cache_status: text(&parts.headers, "cache-status"),
        body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    }
}

fn uri(text: &str) -> http::Uri {
    text.parse().unwrap()
}

/// Purging a URL removes its entry with every variant; the key made without a scheme
/// (`http`) is found from an `https` URL too.
#[tokio::test]
async fn purge_removes_every_variant_under_either_scheme() {
    let origin = Origin::default();
    let (mut service, handle) = cached(&origin);
    for lang in ["en", "fr", "en", "fr"] {
        get(&mut service, "/vary", &[("accept-language", lang)]).await;
    }
    get(&mut service, "/other", &[]).await;
    assert_eq!(origin.calls(), 3);
    assert_eq!(
        get(&mut service, "/vary", &[("accept-language", "fr")])
            .await
            .x_cache,
        "HIT"
    );

    assert_eq!(
        handle
            .purge(&uri("https://EXAMPLE.com/vary"))
            .await
            .unwrap(),
        1
    );
    for lang in ["en", "fr"] {
        let seen = get(&mut service, "/vary", &[("accept-language", lang)]).await;
        assert_eq!(seen.x_cache, "MISS", "{lang}");
        assert_eq!(seen.body, format!("/vary {lang}"));
    }
    assert_eq!(origin.calls(), 5);
    assert_eq!(get(&mut service, "/other", &[]).await.x_cache, "HIT");

    assert_eq!(
        handle
            .purge(&uri("http://example.com/nothing"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(handle.purge(&uri("/other")).await.unwrap(), 0, "relative");
    assert_eq!(get(&mut service, "/other", &[]).await.x_cache, "HIT");
}

/// Purging a tag removes the entries that carry it in `Surrogate-Key` or `Cache-Tag`, and
/// only those; tags match exactly.
#[tokio::test]
async fn purge_tagged_removes_only_the_tagged_entries() {
    let origin = Origin::default();
    let (mut service, handle) = cached(&origin);
    for path in ["/tag/a", "/tag/b", "/plain"] {
        get(&mut service, path, &[]).await;
    }
    assert_eq!(
        handle.purge_tagged("Red").await.unwrap(),
        0,
        "case-sensitive"
    );
    assert_eq!(handle.purge_tagged("re").await.unwrap(), 0, "exact");
    assert_eq!(handle.purge_tagged("red all").await.unwrap(), 0);
    assert_eq!(handle.purge_tagged("").await.unwrap(), 0);

    assert_eq!(handle.purge_tagged("red").await.unwrap(), 1);
    assert_eq!(get(&mut service, "/tag/a", &[]).await.x_cache, "MISS");
    assert_eq!(get(&mut service, "/tag/b", &[]).await.x_cache, "HIT");
    assert_eq!(get(&mut service, "/plain", &[]).await.x_cache, "HIT");

    assert_eq!(handle.purge_tagged("blue").await.unwrap(), 1);
    assert_eq!(get(&mut service, "/tag/b", &[]).await.x_cache, "MISS");
    assert_eq!(handle.purge_tagged("all").await.unwrap(), 2);
    assert_eq!(get(&mut service, "/tag/a", &[]).await.x_cache, "MISS");
    assert_eq!(get(&mut service, "/tag/b", &[]).await.x_cache, "MISS");
    assert_eq!(get(&mut service, "/plain", &[]).await.x_cache, "HIT");
    assert_eq!(origin.calls(), 7);
}

/// A soft purge keeps the entry but makes the next request revalidate it: a conditional
/// request, and the 304 makes it fresh again.
#[tokio::test]
async fn soft_purge_makes_the_next_request_revalidate() {
    let origin = Origin::default();
    let (mut service, handle) = cached(&origin);
    get(&mut service, "/etag", &[]).await;
    assert_eq!(get(&mut service, "/etag", &[]).await.x_cache, "HIT");
    assert_eq!(origin.calls(), 1);

    assert_eq!(
        handle
            .soft_purge(&uri("https://example.com/etag"))
            .await
            .unwrap(),
        1
    );
    let seen = get(&mut service, "/etag", &[]).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last_if_none_match().as_deref(), Some("\"v1\""));
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.x_cache, "HIT");
    assert!(
        seen.cache_status.contains("fwd-status=304"),
        "{}",
        seen.cache_status
    );
    assert_eq!(seen.body, "/etag ");
    // Fresh again.
    assert_eq!(get(&mut service, "/etag", &[]).await.x_cache, "HIT");
    assert_eq!(origin.calls(), 2);
    assert_eq!(
        handle
            .soft_purge(&uri("http://example.com/none"))
            .await
            .unwrap(),
        0
    );
}

/// After a soft purge, an origin failure is covered by the stale copy within its
/// `stale-if-error` window (RFC 5861 §4), but never for a `must-revalidate` response.
#[tokio::test]
async fn soft_purge_keeps_the_copy_for_stale_if_error_but_not_past_must_revalidate() {
    let origin = Origin::default();
    let (mut service, handle) = cached(&origin);
    get(&mut service, "/etag", &[]).await;
    get(&mut service, "/strict", &[]).await;
    assert_eq!(
        handle
            .soft_purge(&uri("http://example.com/etag"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        handle
            .soft_purge(&uri("http://example.com/strict"))
            .await
            .unwrap(),
        1
    );
    origin.failing.store(true, Ordering::SeqCst);

    let seen = get(&mut service, "/etag", &[]).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body, "/etag ");
    assert!(
        seen.cache_status.contains("stale-if-error"),
        "{}",
        seen.cache_status
    );
    assert_eq!(origin.last_if_none_match().as_deref(), Some("\"v1\""));

    let seen = get(&mut service, "/strict", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.body, "down");
    assert_eq!(origin.calls(), 4);
}

/// A soft purge by tag marks every tagged entry stale, and no other.
#[tokio::test]
async fn soft_purge_tagged_marks_only_the_tagged_entries() {
    let origin = Origin::default();
    let (mut service, handle) = cached(&origin);
    for path in ["/tag/a", "/tag/b", "/plain"] {
        get(&mut service, path, &[]).await;
    }
    assert_eq!(handle.soft_purge_tagged("red").await.unwrap(), 1);
    assert_eq!(handle.soft_purge_tagged("nothing").await.unwrap(), 0);
    // No validators: the revalidation is a full request.
    let seen = get(&mut service, "/tag/a", &[]).await;
    assert_eq!(seen.x_cache, "MISS");
    assert_eq!(origin.last_if_none_match(), None);
    assert_eq!(get(&mut service, "/tag/b", &[]).await.x_cache, "HIT");
    assert_eq!(get(&mut service, "/plain", &[]).await.x_cache, "HIT");
    assert_eq!(origin.calls(), 4);
    // The soft purge kept the entry: a request with max-stale may still have it.
    assert_eq!(handle.soft_purge_tagged("all").await.unwrap(), 2);
    let seen = get(&mut service, "/tag/b", &[("cache-control", "max-stale")]).await;
    assert_eq!(seen.x_cache, "HIT");
    assert_eq!(origin.calls(), 4);
}

/// A store that does not implement `keys_tagged` reports that it cannot purge by tag.
#[tokio::test]
async fn a_store_without_tags_cannot_purge_by_tag() {
    type Slot = Option<(CacheKey, Arc<StoredEntry>)>;
    /// A store of one entry, without `keys_tagged`.
    #[derive(Clone, Default)]
    struct Single(Arc<Mutex<Slot>>);
    impl Store for Single {
        async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
            let slot = self.0.lock().unwrap();
            Ok(slot
                .as_ref()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| Arc::clone(v)))
        }
        async fn put(
            &self,
            key: CacheKey,
            value: Arc<StoredEntry>,
            _ttl: Option<std::time::Duration>,
        ) -> Result<(), StoreError> {
            *self.0.lock().unwrap() = Some((key, value));
            Ok(())
        }
        async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
            let mut slot = self.0.lock().unwrap();
            let found = slot.as_ref().is_some_and(|(k, _)| k == key);
            if found {
                *slot = None;
            }
            Ok(found)
        }
        async fn clear(&self) -> Result<u64, StoreError> {
            Ok(u64::from(self.0.lock().unwrap().take().is_some()))
        }
    }
    let layer = CacheLayer::builder().store(Single::default()).build();
    let handle = layer.handle();
    let error = handle.purge_tagged("red").await.unwrap_err();
    assert!(error.to_string().contains("cannot purge by tag"), "{error}");
    // Purging by URL and soft purging need only get, put and remove.
    assert_eq!(handle.purge(&uri("http://example.com/")).await.unwrap(), 0);
    assert_eq!(
        handle
            .soft_purge(&uri("http://example.com/"))
            .await
            .unwrap(),
        0
    );
}
