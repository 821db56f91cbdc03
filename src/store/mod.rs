//! Where responses are kept: the [`Store`] trait and its implementations.
//!
//! The [`Cache`](crate::Cache) service only talks to a store through [`Store`], so that the
//! in-memory [`MemoryStore`] (the default) can be swapped for another backend without touching
//! the service, and [`BoxStore`] lets a program choose one at run time. A store persists
//! entries; it never decides whether an entry may be served — that is
//! [`policy`](crate::policy)'s job, done on every read — nor how long to keep one: the cache
//! says so with every [`put`](Store::put).

mod body;
mod boxed;
#[cfg(feature = "serde")]
pub mod codec;
#[cfg(feature = "disk")]
mod disk;
mod fill;
mod memory;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod response;
mod tiered;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::BoxError;
use crate::key::CacheKey;

pub(crate) use self::body::Opened;
#[doc(inline)]
pub use self::body::{BodySink, BodySource, SourceBody, StoredBody};
#[doc(inline)]
pub use self::boxed::BoxStore;
#[cfg(feature = "disk")]
#[doc(inline)]
pub use self::disk::DiskStore;
#[doc(inline)]
pub use self::fill::{FillGuard, FillLock};
pub(crate) use self::memory::DEFAULT_CAPACITY;
#[doc(inline)]
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
#[doc(inline)]
pub use self::redis::{RedisStore, RedisStoreBuilder};
#[doc(inline)]
pub use self::response::{StoredEntry, StoredResponse};
#[doc(inline)]
pub use self::tiered::Tiered;

/// A backend that keeps [`StoredEntry`]s under [`CacheKey`]s.
///
/// Futures returned by a store must be `Send`. Errors are reported as [`StoreError`]; the
/// service logs them and carries on as if the entry were absent, so a failing store degrades
/// to a pass-through proxy, never to failed requests.
///
/// A store only keeps entries: whether one may be served is decided by the cache on every
/// read, so a store may keep entries longer than they are usable (and may drop any entry at
/// any time). Each [`put`](Self::put) says how long the entry stays of use (`ttl`, computed by
/// the cache's policy); a store that expires entries drops it after that. A store that bounds
/// its size can weigh entries with [`StoredEntry::weight`].
///
/// There are two ways to answer. [`get`](Self::get) and [`put`](Self::put) are `async`, for
/// stores that wait on a disk or a network. A store that can answer at once (in memory)
/// implements [`get_now`](Self::get_now) and [`put_now`](Self::put_now) too: the cache calls
/// them first, and serves a hit without creating a future. A store that persists entries
/// outside the process saves them through the accessors of [`StoredEntry`],
/// [`StoredResponse`], [`ResponsePolicy`](crate::policy::ResponsePolicy) and
/// [`VaryKey`](crate::policy::VaryKey) and rebuilds them with their constructors (or, with the
/// `serde` feature, through the `codec` module); one that keeps bodies outside memory takes them in
/// through [`body_sink`](Self::body_sink) and serves them from a [`BodySource`].
///
/// # Example
///
/// A store on a `HashMap`, unbounded:
///
/// ```
/// use std::collections::HashMap;
/// use std::convert::Infallible;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
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
///     async fn put(
///         &self,
///         key: CacheKey,
///         value: Arc<StoredEntry>,
///         _ttl: Option<Duration>,
///     ) -> Result<(), StoreError> {
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
/// assert_eq!(stored.body().as_bytes().unwrap().as_ref(), b"hello");
/// assert_eq!(stored.policy().freshness_lifetime().as_secs(), 60);
/// # Ok(())
/// # }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Looks an entry up without waiting: `None` when the store cannot answer at once, and
    /// the cache calls [`get`](Self::get) instead. The default always says `None`.
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        let _ = key;
        None
    }

    /// Looks an entry up.
    fn get(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Arc<StoredEntry>>, StoreError>> + Send;

    /// Inserts or replaces an entry without waiting: `None` when the store cannot, and the
    /// cache calls [`put`](Self::put) instead. The default always says `None`.
    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        let _ = (key, value, ttl);
        None
    }

    /// Inserts or replaces an entry, of use for `ttl` from now: after that no request can be
    /// answered from it and the store may drop it. `None`: of use until the store evicts it
    /// (it can still be revalidated, RFC 9111 §4.3).
    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes an entry; returns whether one was there.
    fn remove(&self, key: &CacheKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes every entry; returns how many were removed.
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many entries and bytes the store holds, when it can tell without waiting (as
    /// eventually consistent counts); `None` (the default) when it cannot. Reported as the
    /// `cache_entries` and `cache_size_bytes` gauges (feature `metrics`).
    fn size(&self) -> Option<(u64, u64)> {
        None
    }

    /// Whether the store is full: a new entry would now displace others (or be turned away).
    /// While it is, the cache's doorkeeper ([`CacheLayerBuilder::doorkeeper`]) stores a new
    /// key's response only from the key's second use. The default, `false`, suits a store
    /// that does not know, or that makes room by other means (a disk store's own eviction).
    /// [`MemoryStore`] says `true` from 31/32 of its capacity.
    ///
    /// Asked on every miss of a key with nothing stored: it must answer at once, cheaply.
    ///
    /// [`CacheLayerBuilder::doorkeeper`]: crate::CacheLayerBuilder::doorkeeper
    fn is_full(&self) -> bool {
        false
    }

    /// How many failures the store has absorbed since it was made: operations it answered
    /// as a miss or skipped (a store that cannot be reached, a disk that fails) rather than
    /// returning an error. The default, 0, suits a store that returns its errors. Added to the
    /// `cache_store_errors_total` counter (feature `metrics`) when
    /// [`CacheHandle::stats`](crate::CacheHandle::stats) is read.
    fn failures(&self) -> u64 {
        0
    }

    /// Where the body of a miss for `key` (of `length` bytes, when known) is written as it
    /// streams, for a store that keeps bodies outside memory; `None` (the default) when the
    /// cache should collect it in memory and store it as [`Bytes`](bytes::Bytes).
    fn body_sink(&self, key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>> {
        let _ = (key, length);
        None
    }

    /// The keys of the entries any of whose variants carries the tag `tag`, for
    /// [`CacheHandle::purge_tagged`](crate::CacheHandle::purge_tagged) and
    /// [`soft_purge_tagged`](crate::CacheHandle::soft_purge_tagged).
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
    fn keys_tagged(
        &self,
        tag: &str,
    ) -> impl Future<Output = Result<Vec<CacheKey>, StoreError>> + Send {
        let _ = tag;
        std::future::ready(Err(StoreError::new("this store cannot purge by tag")))
    }

    /// Collapsed forwarding across processes: called when this process is about to fetch
    /// `key` from the origin for a request others may wait for (it leads the key's flight
    /// here), for a store shared by several processes to let one of them go forward
    /// ([`FillLock`]).
    ///
    /// The provided implementation says [`FillLock::Unlocked`] at once: no lock across
    /// processes. The Redis store (`RedisStore`, feature `redis`) takes a short lock in
    /// Redis, or waits for the process that holds it.
    ///
    /// After [`FillLock::Released`] the cache looks the key up again before going forward.
    /// After [`FillLock::Unlocked`] it does so only if it wrote to the key itself since the
    /// request's look-up (another request of this process led the key's flight to its end
    /// meanwhile): a store shared without a lock may see a key fetched once per process.
    fn fill_lock(&self, key: &CacheKey) -> impl Future<Output = FillLock> + Send {
        let _ = key;
        std::future::ready(FillLock::Unlocked)
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
