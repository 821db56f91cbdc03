//! Where responses are kept: the [`Store`] trait and its implementations.
//!
//! The [`Cache`](crate::Cache) service only talks to a store through [`Store`], so that the
//! in-memory [`MemoryStore`] (the default) can be swapped for another backend without touching
//! the service. A store persists entries; it never decides whether an entry may be served —
//! that is [`policy`](crate::policy)'s job, done on every read.

mod memory;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Extensions, HeaderMap, StatusCode};

use crate::BoxError;
use crate::key::CacheKey;
use crate::policy::{ResponsePolicy, VaryKey};

#[doc(inline)]
pub use self::memory::MemoryStore;

/// A complete response as the cache keeps it.
///
/// Hop-by-hop fields are already removed and `Date` and `Content-Length` are set. The body is a
/// [`Bytes`], so serving a hit clones a reference count, never the bytes.
///
/// The cache builds these; a [`Store`] keeps them. A store that persists entries outside the
/// process saves what the accessors return and rebuilds the response with
/// [`StoredResponse::new`] (and [`with_extensions`](Self::with_extensions), if it keeps
/// extensions at all). The type is `#[non_exhaustive]`: a later version may add metadata,
/// with a setter whose default keeps the behaviour of a response rebuilt without it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredResponse {
    /// The response status.
    pub(crate) status: StatusCode,
    /// The stored header fields.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) body: Bytes,
    /// Freshness and reuse metadata computed when the response was stored.
    pub(crate) policy: ResponsePolicy,
    /// The request field values this response was selected by (RFC 9111 §4.1).
    pub(crate) vary: VaryKey,
    /// The response's extensions, put back on every answer built from it with its status.
    pub(crate) extensions: Extensions,
}

impl StoredResponse {
    /// A stored response from its parts, without extensions.
    ///
    /// `headers` are served as they are: they should be those of a response the cache stored
    /// (read back with [`headers`](Self::headers)), with hop-by-hop fields removed and
    /// `Content-Length` matching `body`.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            policy,
            vary,
            extensions: Extensions::new(),
        }
    }

    /// This response with `extensions`, put back on every answer built from it.
    #[must_use]
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Freshness and reuse metadata computed when the response was stored; see
    /// [`policy::reuse`](crate::policy::reuse()).
    pub fn policy(&self) -> &ResponsePolicy {
        &self.policy
    }

    /// The request field values this response was selected by (RFC 9111 §4.1).
    pub fn vary(&self) -> &VaryKey {
        &self.vary
    }

    /// The response's extensions, put back on every answer built from it with its status:
    /// among them hyper's `ReasonPhrase`, so that a `599 Whatever` is not served as
    /// `599 <none>`. Stores that persist entries elsewhere may drop them.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Approximate memory the entry occupies: body plus header names and values.
    ///
    /// Stores that are bounded in bytes weigh entries with this.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        self.body.len() + headers + std::mem::size_of::<Self>()
    }
}

/// Every stored response for one primary key: one per `Vary` variant (RFC 9111 §4.1), the
/// most recent first.
///
/// Keeping the variants of a URL together means that invalidating the URL (RFC 9111 §4.4)
/// removes all of them at once.
///
/// A store that persists entries saves each of [`variants`](Self::variants) and rebuilds the
/// entry with [`StoredEntry::from_variants`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StoredEntry {
    variants: Vec<Arc<StoredResponse>>,
}

impl StoredEntry {
    /// Most variants kept for one URL; older ones are dropped beyond it.
    pub(crate) const MAX_VARIANTS: usize = 32;

    /// An entry holding one response.
    pub fn new(response: Arc<StoredResponse>) -> Self {
        Self {
            variants: vec![response],
        }
    }

    /// An entry holding `variants`, most recent first, as [`variants`](Self::variants) returned
    /// them. Variants beyond the most the cache keeps for one URL (32) are dropped.
    pub fn from_variants(variants: impl IntoIterator<Item = Arc<StoredResponse>>) -> Self {
        Self {
            variants: variants.into_iter().take(Self::MAX_VARIANTS).collect(),
        }
    }

    /// The stored variants, most recent first.
    pub fn variants(&self) -> &[Arc<StoredResponse>] {
        &self.variants
    }

    /// The most recent variant selected by the request's header fields (RFC 9111 §4.1: "the
    /// most recent one" when several match).
    pub fn select(&self, req_headers: &HeaderMap) -> Option<&Arc<StoredResponse>> {
        self.variants.iter().find(|v| v.vary.matches(req_headers))
    }

    /// This entry with `response`, newly received for a request with `req_headers`, in front:
    /// it replaces the variants that request selected, and only those.
    pub(crate) fn with_response(
        &self,
        response: Arc<StoredResponse>,
        req_headers: &HeaderMap,
    ) -> Self {
        let mut variants = Vec::with_capacity(self.variants.len() + 1);
        variants.push(response);
        variants.extend(
            self.variants
                .iter()
                .filter(|v| !v.vary.matches(req_headers))
                .take(Self::MAX_VARIANTS - 1)
                .cloned(),
        );
        Self { variants }
    }

    /// This entry with `old` replaced by `new` (e.g. after a 304 freshened it); unchanged when
    /// `old` is no longer stored.
    pub(crate) fn with_replaced(
        &self,
        old: &Arc<StoredResponse>,
        new: Arc<StoredResponse>,
    ) -> Self {
        let variants = self
            .variants
            .iter()
            .map(|v| {
                if Arc::ptr_eq(v, old) {
                    Arc::clone(&new)
                } else {
                    Arc::clone(v)
                }
            })
            .collect();
        Self { variants }
    }

    /// Sum of the variants' [`StoredResponse::weight`].
    pub fn weight(&self) -> usize {
        self.variants.iter().map(|v| v.weight()).sum()
    }
}

/// A backend that keeps [`StoredEntry`]s under [`CacheKey`]s.
///
/// Futures returned by a store must be `Send`. Errors are reported as [`StoreError`]; the
/// service logs them and carries on as if the entry were absent, so a failing store degrades
/// to a pass-through proxy, never to failed requests.
///
/// A store only keeps entries: whether one may be served is decided by the cache on every
/// read, so a store may keep entries longer than they are usable (and may drop any entry at
/// any time). A store that bounds its size can weigh entries with [`StoredEntry::weight`];
/// one that expires them can use [`ResponsePolicy::ttl`] of each variant's
/// [`policy`](StoredResponse::policy). A store that persists entries outside the process
/// saves them through the accessors of [`StoredEntry`], [`StoredResponse`], [`ResponsePolicy`]
/// and [`VaryKey`], and rebuilds them with their constructors.
///
/// # Example
///
/// A store on a `HashMap`, unbounded:
///
/// ```
/// use std::collections::HashMap;
/// use std::convert::Infallible;
/// use std::sync::{Arc, Mutex};
///
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_cache_layer::store::{Store, StoreError, StoredEntry};
/// use tower_cache_layer::{CacheKey, CacheLayer};
///
/// #[derive(Clone, Debug, Default)]
/// struct HashMapStore {
///     entries: Arc<Mutex<HashMap<CacheKey, Arc<StoredEntry>>>>,
/// }
///
/// impl HashMapStore {
///     fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<StoredEntry>>> {
///         // A panic while the lock was held left the map consistent: every update is one call.
///         self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
///     }
/// }
///
/// impl Store for HashMapStore {
///     async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
///         Ok(self.lock().get(key).cloned())
///     }
///
///     async fn put(&self, key: CacheKey, value: Arc<StoredEntry>) -> Result<(), StoreError> {
///         self.lock().insert(key, value);
///         Ok(())
///     }
///
///     async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
///         Ok(self.lock().remove(key).is_some())
///     }
///
///     async fn clear(&self) -> Result<u64, StoreError> {
///         let mut entries = self.lock();
///         let removed = entries.len() as u64;
///         entries.clear();
///         Ok(removed)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = HashMapStore::default();
/// let cache = CacheLayer::builder().store(store.clone()).build();
/// let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
///     Ok::<_, Infallible>(
///         Response::builder()
///             .header("cache-control", "max-age=60")
///             .body(Full::<bytes::Bytes>::from("hello"))
///             .unwrap(),
///     )
/// });
/// let mut service = ServiceBuilder::new().layer(cache).service(origin);
///
/// for expected in ["MISS", "HIT"] {
///     let request = Request::get("http://example.com/greeting").body(Full::default())?;
///     let response = service.ready().await?.call(request).await?;
///     assert_eq!(response.headers()["x-cache"], expected);
///     assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
/// }
///
/// let key = CacheKey::from_uri(&"http://example.com/greeting".parse()?).unwrap();
/// let entry = store.get(&key).await?.expect("the response was stored");
/// let stored = &entry.variants()[0];
/// assert_eq!(stored.body().as_ref(), b"hello");
/// assert_eq!(stored.policy().freshness_lifetime().as_secs(), 60);
/// # Ok(())
/// # }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Looks an entry up.
    fn get(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Arc<StoredEntry>>, StoreError>> + Send;

    /// Inserts or replaces an entry.
    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes an entry; returns whether one was there.
    fn remove(&self, key: &CacheKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes every entry; returns how many were removed.
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Removes every entry any of whose variants carries the tag `tag`; returns how many were
    /// removed. Used by [`CacheHandle::purge_tagged`](crate::CacheHandle::purge_tagged).
    ///
    /// A response's tags are the space-separated values of its `Surrogate-Key` fields (Fastly,
    /// Varnish xkey) and the comma-separated values of its `Cache-Tag` fields (Cloudflare),
    /// as stored in [`StoredResponse::headers`]; a tag matches exactly, case-sensitively, as
    /// Fastly matches surrogate keys. No RFC defines these fields.
    ///
    /// # Errors
    ///
    /// The provided implementation always fails: a store must be able to find entries by
    /// their tags to purge by tag, and a plain key-value store cannot. [`MemoryStore`]
    /// implements it.
    fn remove_tagged(&self, tag: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = tag;
        std::future::ready(Err(StoreError::new("this store cannot purge by tag")))
    }
}

/// An error from a [`Store`] backend.
pub struct StoreError {
    inner: BoxError,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            inner: error.into(),
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreError").field(&self.inner).finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache store error: {}", self.inner)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT_ENCODING, CONTENT_TYPE};
    use std::time::{Duration, SystemTime};

    fn response(body: &'static str, encoding: &str) -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, encoding.parse().unwrap());
        let policy = ResponsePolicy::from_parts(
            Duration::from_secs(60),
            Duration::from_secs(3),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        )
        .with_must_revalidate(true)
        .with_stale_if_error(Some(Duration::from_secs(30)));
        StoredResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from_static(body.as_bytes()),
            policy,
            VaryKey::capture(&[ACCEPT_ENCODING], &request),
        )
    }

    /// What a persisting store saves through the accessors rebuilds the same response.
    #[test]
    fn stored_response_round_trips_through_its_accessors() {
        let original = response("hello", "gzip");
        let vary = VaryKey::from_values(original.vary().fields().map(|name| {
            let value = original.vary().value(name).flatten().map(<[u8]>::to_vec);
            (name.clone(), value)
        }));
        let policy = original.policy();
        let policy = ResponsePolicy::from_parts(
            policy.freshness_lifetime(),
            policy.initial_age(),
            policy.response_time(),
        )
        .with_no_cache(policy.no_cache())
        .with_must_revalidate(policy.must_revalidate())
        .with_stale_while_revalidate(policy.stale_while_revalidate())
        .with_stale_if_error(policy.stale_if_error());
        let rebuilt = StoredResponse::new(
            original.status(),
            original.headers().clone(),
            original.body().clone(),
            policy,
            vary,
        );
        assert_eq!(rebuilt.status(), original.status());
        assert_eq!(rebuilt.headers(), original.headers());
        assert_eq!(rebuilt.body(), original.body());
        assert_eq!(rebuilt.policy(), original.policy());
        assert_eq!(rebuilt.vary(), original.vary());
        assert_eq!(rebuilt.weight(), original.weight());
    }

    #[test]
    fn with_extensions_replaces_the_extensions() {
        let mut extensions = Extensions::new();
        extensions.insert(7_u8);
        let stored = response("hello", "gzip").with_extensions(extensions);
        assert_eq!(stored.extensions().get::<u8>(), Some(&7));
        assert!(response("hello", "gzip").extensions().is_empty());
    }

    /// RFC 9111 §4.1: the rebuilt entry selects the same variant, most recent first.
    #[test]
    fn from_variants_keeps_the_order_and_the_bound() {
        let gzip = Arc::new(response("gzip", "gzip"));
        let br = Arc::new(response("br", "br"));
        let entry = StoredEntry::from_variants([Arc::clone(&gzip), Arc::clone(&br)]);
        assert!(Arc::ptr_eq(&entry.variants()[0], &gzip));
        assert!(Arc::ptr_eq(&entry.variants()[1], &br));
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, "br".parse().unwrap());
        assert!(Arc::ptr_eq(entry.select(&request).unwrap(), &br));

        let many = StoredEntry::from_variants((0..40).map(|_| Arc::clone(&gzip)));
        assert_eq!(many.variants().len(), StoredEntry::MAX_VARIANTS);
    }
}
