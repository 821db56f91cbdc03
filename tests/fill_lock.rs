//! `Store::fill_lock`: collapsed forwarding across caches that share one store, as processes
//! sharing Redis do. Here two caches in one process share a `MemoryStore` and a lock flag.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{TestBody, get, serve};
use tokio::sync::oneshot;
use tower_cache_layer::store::{FillGuard, FillLock, MemoryStore, Store, StoreError, StoredEntry};
use tower_cache_layer::{CacheKey, CacheLayer};

/// A `MemoryStore` shared by several caches, with one fill lock for all keys.
#[derive(Clone)]
struct SharedStore {
    memory: MemoryStore,
    locked: Arc<AtomicBool>,
    /// How many times a cache waited for another one's lock.
    waited: Arc<AtomicUsize>,
}

/// Releases the lock when dropped.
struct Unlock(Arc<AtomicBool>);

impl Drop for Unlock {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Store for SharedStore {
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        self.memory.get_now(key)
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        self.memory.get(key).await
    }

    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        self.memory.put_now(key, value, ttl)
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.memory.put(key, value, ttl).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        self.memory.remove(key).await
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        self.memory.clear().await
    }

    async fn fill_lock(&self, _key: &CacheKey) -> FillLock {
        if !self.locked.swap(true, Ordering::AcqRel) {
            return FillLock::Held(FillGuard::new(Unlock(Arc::clone(&self.locked))));
        }
        self.waited.fetch_add(1, Ordering::Relaxed);
        while self.locked.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        FillLock::Released
    }
}

/// An origin whose body takes 100 ms, fresh for a minute.
fn slow(_req: &http::Request<hyper::body::Incoming>) -> http::Response<TestBody> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(());
    });
    http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(TestBody::full("shared").gated(0, rx))
        .expect("a response")
}

#[tokio::test]
async fn caches_sharing_a_store_and_its_lock_fetch_a_cold_url_once() {
    let store = SharedStore {
        memory: MemoryStore::new(1 << 20),
        locked: Arc::default(),
        waited: Arc::default(),
    };
    let a = serve(CacheLayer::builder().store(store.clone()).build(), slow).await;
    let b = serve(CacheLayer::builder().store(store.clone()).build(), slow).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 { a.url("/x") } else { b.url("/x") };
        // One `Host` for both: one cache key.
        tasks.push(tokio::spawn(async move {
            get(&url, &[("host", "shared.test")]).await
        }));
    }
    for task in tasks {
        let seen = task.await.expect("task");
        assert_eq!(seen.body, "shared");
    }
    assert_eq!(
        a.calls() + b.calls(),
        1,
        "one origin request for both caches"
    );
    assert_eq!(
        store.waited.load(Ordering::Relaxed),
        1,
        "the other cache's leader waited"
    );
}

#[tokio::test]
async fn a_store_without_a_lock_leaves_each_cache_to_itself() {
    // The provided `fill_lock` says `Unlocked`: each cache collapses its own requests only.
    let memory = MemoryStore::new(1 << 20);
    let a = serve(CacheLayer::builder().store(memory.clone()).build(), slow).await;
    let b = serve(CacheLayer::builder().store(memory.clone()).build(), slow).await;
    let (url_a, url_b) = (a.url("/y"), b.url("/y"));
    let host = [("host", "shared.test")];
    let (x, y) = tokio::join!(get(&url_a, &host), get(&url_b, &host));
    assert_eq!((x.body, y.body), ("shared".into(), "shared".into()));
    assert_eq!((a.calls(), b.calls()), (1, 1));
}
