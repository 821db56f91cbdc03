//! [`BoxStore`]: a store chosen at run time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{BodySink, FillLock, Store, StoreError, StoredEntry};
use crate::key::CacheKey;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any [`Store`], chosen at run time: a program that picks its store from its configuration
/// (memory, disk, Redis) builds one layer type for all of them.
///
/// Each `async` call allocates its future; [`get_now`](Store::get_now) and
/// [`put_now`](Store::put_now) pass straight through, so a hit from a store that answers at
/// once allocates nothing more than it would unboxed. Cloning is a reference-count increment.
///
/// ```
/// use tower_cache_layer::CacheLayer;
/// use tower_cache_layer::store::{BoxStore, MemoryStore};
///
/// let store = BoxStore::new(MemoryStore::new(64 * 1024 * 1024));
/// let layer = CacheLayer::builder().store(store).build();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct BoxStore {
    inner: Arc<dyn ErasedStore>,
}

impl BoxStore {
    /// Boxes `store`.
    pub fn new(store: impl Store) -> Self {
        Self {
            inner: Arc::new(store),
        }
    }
}

impl fmt::Debug for BoxStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxStore").finish_non_exhaustive()
    }
}

/// [`Store`] with its futures boxed: object safe.
trait ErasedStore: Send + Sync + 'static {
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>>;
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<Arc<StoredEntry>>, StoreError>>;
    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>>;
    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn clear(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn keys_tagged<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<Vec<CacheKey>, StoreError>>;
    fn body_sink(&self, key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>>;
    fn size(&self) -> Option<(u64, u64)>;
    fn is_full(&self) -> bool;
    fn failures(&self) -> u64;
    fn fill_lock<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, FillLock>;
}

impl<S: Store> ErasedStore for S {
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        Store::get_now(self, key)
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<Arc<StoredEntry>>, StoreError>> {
        Box::pin(Store::get(self, key))
    }

    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        Store::put_now(self, key, value, ttl)
    }

    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::put(self, key, value, ttl))
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(Store::remove(self, key))
    }

    fn clear(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::clear(self))
    }

    fn keys_tagged<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<Vec<CacheKey>, StoreError>> {
        Box::pin(Store::keys_tagged(self, tag))
    }

    fn body_sink(&self, key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>> {
        Store::body_sink(self, key, length)
    }

    fn size(&self) -> Option<(u64, u64)> {
        Store::size(self)
    }

    fn is_full(&self) -> bool {
        Store::is_full(self)
    }

    fn failures(&self) -> u64 {
        Store::failures(self)
    }

    fn fill_lock<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, FillLock> {
        Box::pin(Store::fill_lock(self, key))
    }
}

impl Store for BoxStore {
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        self.inner.get_now(key)
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        self.inner.get(key).await
    }

    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        self.inner.put_now(key, value, ttl)
    }

    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.put(key, value, ttl)
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        self.inner.remove(key).await
    }

    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.clear()
    }

    async fn keys_tagged(&self, tag: &str) -> Result<Vec<CacheKey>, StoreError> {
        self.inner.keys_tagged(tag).await
    }

    fn body_sink(&self, key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>> {
        self.inner.body_sink(key, length)
    }

    fn size(&self) -> Option<(u64, u64)> {
        self.inner.size()
    }

    fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    fn failures(&self) -> u64 {
        self.inner.failures()
    }

    async fn fill_lock(&self, key: &CacheKey) -> FillLock {
        self.inner.fill_lock(key).await
    }
}
