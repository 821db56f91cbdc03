//! [`CacheHandle`]: manage a running cache.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::Uri;

use crate::key::CacheKey;
use crate::shared::Shared;
use crate::store::{MemoryStore, Store, StoreError, StoredEntry, StoredResponse};

/// A handle to a cache, from [`CacheLayer::handle`](crate::CacheLayer::handle).
///
/// Cheap to clone; every clone manages the same cache as the layer and its services.
///
/// # Purging
///
/// Entries can be removed by URL ([`purge`](Self::purge), every `Vary` variant at once) or
/// by tag ([`purge_tagged`](Self::purge_tagged), from the `Surrogate-Key` and `Cache-Tag`
/// response fields), or *soft-purged* ([`soft_purge`](Self::soft_purge),
/// [`soft_purge_tagged`](CacheHandle::soft_purge_tagged)): kept, but marked stale, so that
/// the next request revalidates them with the origin (RFC 9111 §4.3, a conditional request
/// when the response has validators) while the stale copy can still answer if the origin
/// fails (`stale-if-error`, RFC 5861 §4).
///
/// ```
/// use std::convert::Infallible;
///
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cache_layer::CacheLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let cache = CacheLayer::new();
/// let handle = cache.handle();
/// let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
///     Ok::<_, Infallible>(
///         Response::builder()
///             .header("cache-control", "max-age=60")
///             .header("etag", "\"v1\"")
///             .header("surrogate-key", "greetings all")
///             .body(Full::from("hello"))
///             .unwrap(),
///     )
/// });
/// let mut service = ServiceBuilder::new().layer(cache).service(origin);
/// let mut get = async |url: &str| -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
///     let request = Request::get(url).body(Full::default())?;
///     let response = service.ready().await?.call(request).await?;
///     let x_cache = response.headers()["x-cache"].to_str()?.to_owned();
///     response.into_body().collect().await?; // stored once the body is read
///     Ok(x_cache)
/// };
///
/// get("http://example.com/a").await?;
/// get("http://example.com/b").await?;
/// assert_eq!(get("http://example.com/a").await?, "HIT");
///
/// // By URL: the server-side request had no scheme, so both `http` and `https` are purged.
/// assert_eq!(handle.purge(&"https://example.com/a".parse()?).await?, 1);
/// assert_eq!(get("http://example.com/a").await?, "MISS");
///
/// // Soft: the next request revalidates (here the origin answers 200 again).
/// assert_eq!(handle.soft_purge(&"http://example.com/a".parse()?).await?, 1);
/// assert_eq!(get("http://example.com/a").await?, "MISS");
///
/// // By tag: every entry with `greetings` in `Surrogate-Key` or `Cache-Tag`.
/// assert_eq!(handle.purge_tagged("greetings").await?, 2);
/// assert_eq!(get("http://example.com/b").await?, "MISS");
/// # Ok(())
/// # }
/// ```
pub struct CacheHandle<St = MemoryStore> {
    shared: Arc<Shared<St>>,
}

impl<St: Store> CacheHandle<St> {
    pub(crate) fn new(shared: Arc<Shared<St>>) -> Self {
        Self { shared }
    }

    /// Removes every entry; returns how many were removed.
    ///
    /// # Errors
    ///
    /// When the store fails (the in-memory store never does).
    pub async fn clear(&self) -> Result<u64, StoreError> {
        self.shared.store.clear().await
    }

    /// Removes the entry for the absolute URI `uri` (e.g. `http://example.com/a?b`), keyed as
    /// the cache keys requests; returns whether there was one. A relative URI removes nothing.
    ///
    /// # Errors
    ///
    /// When the store fails (the in-memory store never does).
    pub async fn remove(&self, uri: &Uri) -> Result<bool, StoreError> {
        match CacheKey::from_uri(uri) {
            Some(key) => self.shared.store.remove(&key).await,
            None => Ok(false),
        }
    }

    /// Removes the entry for the absolute URI `uri`, with every `Vary` variant it holds
    /// (RFC 9111 §4.1); returns how many entries were removed. A relative URI removes nothing.
    ///
    /// A request a server receives carries no scheme (`GET /a` with `Host`), so the cache
    /// keys it as `http` (see [`CacheKey`]) whatever the client used; an operator may name the
    /// same resource `https://…`. The entry is therefore removed under both the `http` and
    /// the `https` scheme (and `uri`'s own, if another), so up to two (three) entries:
    /// removing more than was asked is harmless for a cache, the next request goes to the
    /// origin.
    ///
    /// # Errors
    ///
    /// When the store fails (the in-memory store never does).
    pub async fn purge(&self, uri: &Uri) -> Result<u64, StoreError> {
        let mut removed = 0;
        for key in purge_keys(uri) {
            if self.shared.store.remove(&key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every entry any of whose variants carries the tag `tag` in its `Surrogate-Key`
    /// (space-separated) or `Cache-Tag` (comma-separated) response field; returns how many
    /// were removed. Tags match exactly and case-sensitively, as Fastly's surrogate keys; an
    /// empty tag, or one with a space or a comma, matches nothing.
    ///
    /// # Errors
    ///
    /// When the store fails, or cannot find entries by tag ([`Store::keys_tagged`]; the
    /// in-memory store can).
    pub async fn purge_tagged(&self, tag: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        for key in self.shared.store.keys_tagged(tag).await? {
            if self.shared.store.remove(&key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Soft-purges the entry for the absolute URI `uri`: every variant stays stored but is
    /// marked stale, so that the next request for it revalidates it with the origin
    /// (RFC 9111 §4.3: a conditional request when it has `ETag` or `Last-Modified`) instead
    /// of being served from the store. Returns how many entries were marked.
    ///
    /// Staleness counts from the purge: a `stale-if-error` window (RFC 5861 §4), or the
    /// allowance for an unreachable origin
    /// ([`max_stale_if_unreachable`](crate::CacheLayerBuilder::max_stale_if_unreachable),
    /// RFC 9111 §4.2.4), still lets the stale copy answer when the origin fails.
    /// `stale-while-revalidate` no longer applies (the next request waits for the origin), and
    /// `must-revalidate` and `no-cache` keep their meaning: such a response is never served
    /// stale. Keys are found as [`purge`](Self::purge) finds them (`http` and `https`).
    ///
    /// The entry is read, rewritten and written back: a response stored for the same URL in
    /// between may be replaced by the marked copy (the next request then revalidates it).
    ///
    /// # Errors
    ///
    /// When the store fails (the in-memory store never does).
    pub async fn soft_purge(&self, uri: &Uri) -> Result<u64, StoreError> {
        let now = self.shared.clock.now();
        let mut marked = 0;
        for key in purge_keys(uri) {
            if self.mark_stale(key, now).await? {
                marked += 1;
            }
        }
        Ok(marked)
    }

    /// Marks every variant of the entry under `key` stale at `now`; whether there was one.
    async fn mark_stale(&self, key: CacheKey, now: SystemTime) -> Result<bool, StoreError> {
        let Some(entry) = self.shared.store.get(&key).await? else {
            return Ok(false);
        };
        let marked = StoredEntry::from_variants(entry.variants().iter().map(|response| {
            Arc::new(StoredResponse {
                policy: response.policy.marked_stale(now),
                ..StoredResponse::clone(response)
            })
        }));
        self.shared.put(key, Arc::new(marked)).await?;
        Ok(true)
    }

    /// The cache's counters since it was built. (With the `metrics` feature, this also
    /// updates the gauges of what the store holds.)
    pub fn stats(&self) -> CacheStats {
        self.shared.update_gauges();
        let stats = &self.shared.stats;
        CacheStats {
            hits: stats.hits.load(Ordering::Relaxed),
            misses: stats.misses.load(Ordering::Relaxed),
            passes: stats.passes.load(Ordering::Relaxed),
            stores: stats.stores.load(Ordering::Relaxed),
        }
    }

    /// The store itself, e.g. to read [`MemoryStore::entry_count`].
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<St: Store> CacheHandle<St> {
    /// Soft-purges every entry any of whose variants carries the tag `tag` (as
    /// [`purge_tagged`](Self::purge_tagged) finds them): its variants stay stored but are
    /// marked stale, as [`soft_purge`](Self::soft_purge) marks them. Returns how many entries
    /// were marked.
    ///
    /// # Errors
    ///
    /// When the store fails, or cannot find entries by tag ([`Store::keys_tagged`]).
    pub async fn soft_purge_tagged(&self, tag: &str) -> Result<u64, StoreError> {
        let now = self.shared.clock.now();
        let mut marked = 0;
        for key in self.shared.store.keys_tagged(tag).await? {
            if self.mark_stale(key, now).await? {
                marked += 1;
            }
        }
        Ok(marked)
    }
}

/// The keys [`CacheHandle::purge`] removes for `uri`: under its own scheme (`http` when it has
/// none), `http` and `https`; none for a URI without an authority.
fn purge_keys(uri: &Uri) -> Vec<CacheKey> {
    let mut keys: Vec<CacheKey> = Vec::with_capacity(3);
    let own = uri.scheme_str().unwrap_or("http");
    for scheme in [own, "http", "https"] {
        if let Some(key) = CacheKey::from_uri_with_scheme(uri, scheme) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

impl<St> Clone for CacheHandle<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St> fmt::Debug for CacheHandle<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle").finish_non_exhaustive()
    }
}

/// Counters of a cache, from [`CacheHandle::stats`].
///
/// Every request counts once: as a hit, a miss or a pass. The hit ratio of the requests the
/// cache handles is `hits / (hits + misses)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    hits: u64,
    misses: u64,
    passes: u64,
    stores: u64,
}

impl CacheStats {
    /// Requests answered from the cache: fresh, stale where allowed, revalidated with the
    /// origin (a 304), or stored by a request they waited for.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Cacheable requests (`GET`, `HEAD`) answered by the inner service's response, stored or
    /// not (including the 504 of an `only-if-cached` request with nothing stored).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Requests the cache does not handle, passed to the inner service: other methods, those
    /// picked by the [`bypass`](crate::CacheLayerBuilder::bypass) predicate, and those it
    /// cannot key (no authority).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// All requests counted: hits, misses and passes.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses + self.passes
    }

    /// Responses written to the store.
    pub fn stores(&self) -> u64 {
        self.stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(uri: &str) -> Vec<String> {
        purge_keys(&uri.parse().unwrap())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn purge_keys_cover_http_and_https() {
        assert_eq!(
            keys("https://Example.com/a?b"),
            ["https://example.com/a?b", "http://example.com/a?b"]
        );
        assert_eq!(
            keys("http://example.com:80"),
            ["http://example.com/", "https://example.com:80/"]
        );
        assert_eq!(
            keys("ftp://example.com/x"),
            [
                "ftp://example.com/x",
                "http://example.com/x",
                "https://example.com/x"
            ]
        );
        assert!(keys("/a").is_empty());
    }
}
