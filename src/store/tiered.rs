//! [`Tiered`]: a bounded memory tier in front of a store that must wait (disk, Redis).

use std::sync::Arc;
use std::time::Duration;

use super::{BodySink, FillLock, MemoryStore, Store, StoreError, StoredEntry};
use crate::key::CacheKey;

/// A [`MemoryStore`] in front of another store: hot entries are answered from memory at once
/// ([`Store::get_now`]), the rest from the back store, and an entry read from the back is kept
/// in front for the next request.
///
/// Writes and removals go to both tiers. What the back store holds is what counts: the front
/// is only a copy, bounded by its own capacity. A back store shared by several processes
/// (Redis) must tell each of them to drop their copy when an entry changes elsewhere, with
/// [`front`](Self::front)`.`[`Store::remove`] or `clear`.
///
/// An entry filled in front from the back store has no `ttl` of its own; it is dropped when
/// the front is full, and whether it may be served is decided on every read, as always. It is
/// not filled in when the key was written or removed in front while the back store was being
/// read: an invalidation that arrives meanwhile is never undone by the read it overtook.
///
/// Only entries whose bodies are all in memory ([`StoredBody::as_bytes`]) are kept in front:
/// one with a body the back store streams (a [`BodySource`], which may hold an open file) is
/// always read from the back, so that the front neither holds files open nor weighs an
/// entry by less than it costs. Putting such an entry drops any older copy from the front.
///
/// [`StoredBody::as_bytes`]: super::StoredBody::as_bytes
/// [`BodySource`]: super::BodySource
///
/// ```
/// use tower_cache_layer::CacheLayer;
/// use tower_cache_layer::store::{MemoryStore, Tiered};
///
/// // Two memory stores stand in for a memory tier and, say, a disk store.
/// let store = Tiered::new(MemoryStore::new(16 << 20), MemoryStore::new(1 << 30));
/// let layer = CacheLayer::builder().store(store).build();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct Tiered<B> {
    front: MemoryStore,
    back: B,
}

impl<B: Store> Tiered<B> {
    /// `front` in front of `back`.
    pub fn new(front: MemoryStore, back: B) -> Self {
        Self { front, back }
    }

    /// The memory tier.
    pub fn front(&self) -> &MemoryStore {
        &self.front
    }

    /// The store behind it.
    pub fn back(&self) -> &B {
        &self.back
    }
}

impl<B: Store> Store for Tiered<B> {
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        // Only a hit in front answers at once; a miss there must ask the back store.
        match self.front.get_now(key)? {
            Ok(Some(entry)) => Some(Ok(Some(entry))),
            Ok(None) | Err(_) => None,
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        if let Some(Ok(Some(entry))) = self.front.get_now(key) {
            return Ok(Some(entry));
        }
        // Taken before the back store is asked: a removal that reaches the front while the
        // back store answers (another process's invalidation, say) keeps the answer out of it.
        let mark = self.front.writes_to(key);
        let found = self.back.get(key).await?;
        if let Some(entry) = found.as_ref().filter(|entry| in_memory(entry)) {
            self.front.fill(key, entry, mark);
        }
        Ok(found)
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        // In front at once, so that the next request is a hit while the back store writes.
        if in_memory(&value) {
            self.front.put_now(&key, &value, ttl);
        } else {
            self.front.remove(&key).await?;
        }
        self.back.put(key, value, ttl).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let in_front = self.front.remove(key).await?;
        Ok(self.back.remove(key).await? || in_front)
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        let in_front = self.front.clear().await?;
        Ok(self.back.clear().await?.max(in_front))
    }

    async fn keys_tagged(&self, tag: &str) -> Result<Vec<CacheKey>, StoreError> {
        self.back.keys_tagged(tag).await
    }

    fn body_sink(&self, key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>> {
        self.back.body_sink(key, length)
    }

    /// What the back store holds, when it can say; else the memory tier.
    fn size(&self) -> Option<(u64, u64)> {
        self.back.size().or_else(|| self.front.size())
    }

    /// The failures both tiers absorbed.
    fn failures(&self) -> u64 {
        self.front.failures() + self.back.failures()
    }

    async fn fill_lock(&self, key: &CacheKey) -> FillLock {
        self.back.fill_lock(key).await
    }
}

/// Whether every body of `entry` is held in memory, so that it may be kept in front.
fn in_memory(entry: &StoredEntry) -> bool {
    entry
        .variants()
        .iter()
        .all(|variant| variant.body().as_bytes().is_some())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use tokio::sync::{Notify, Semaphore};

    use super::*;
    use crate::policy::{ResponsePolicy, VaryKey};
    use crate::store::StoredResponse;

    /// A store whose reads say they were asked, then wait for a permit, so that a test can
    /// act while one is under way.
    #[derive(Clone)]
    struct Gated {
        store: MemoryStore,
        asked: Arc<Notify>,
        gate: Arc<Semaphore>,
    }

    impl Store for Gated {
        async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
            let found = self.store.get(key).await;
            self.asked.notify_one();
            let _permit = self.gate.acquire().await.expect("gate open");
            found
        }

        async fn put(
            &self,
            key: CacheKey,
            value: Arc<StoredEntry>,
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.store.put(key, value, ttl).await
        }

        async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
            self.store.remove(key).await
        }

        async fn clear(&self) -> Result<u64, StoreError> {
            self.store.clear().await
        }
    }

    fn entry() -> Arc<StoredEntry> {
        let policy =
            ResponsePolicy::from_parts(Duration::from_secs(60), Duration::ZERO, SystemTime::now());
        let response = StoredResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"old"),
            policy,
            VaryKey::default(),
        );
        Arc::new(StoredEntry::new(Arc::new(response)))
    }

    fn key() -> CacheKey {
        CacheKey::from_uri(&"http://h/a".parse().unwrap()).unwrap()
    }

    /// Reads `key` through `tiered` while `meanwhile` runs on the front, then says whether
    /// the front holds the key.
    async fn in_front_after(meanwhile: impl AsyncFnOnce(&MemoryStore)) -> bool {
        let back = Gated {
            store: MemoryStore::new(1 << 20),
            asked: Arc::new(Notify::new()),
            gate: Arc::new(Semaphore::new(0)),
        };
        back.store.put(key(), entry(), None).await.unwrap();
        let tiered = Tiered::new(MemoryStore::new(1 << 20), back.clone());
        let reading = tokio::spawn({
            let tiered = tiered.clone();
            async move { tiered.get(&key()).await }
        });
        // The read has asked the back store and waits for its answer.
        back.asked.notified().await;
        meanwhile(tiered.front()).await;
        back.gate.add_permits(1);
        let found = reading.await.unwrap().unwrap();
        assert!(found.is_some(), "the back store answers");
        tiered.front().get_now(&key()).unwrap().unwrap().is_some()
    }

    #[tokio::test]
    async fn an_entry_read_from_the_back_is_kept_in_front() {
        assert!(in_front_after(async |_| {}).await);
    }

    #[tokio::test]
    async fn a_removal_while_the_back_answers_keeps_the_answer_out_of_front() {
        assert!(
            !in_front_after(async |front| {
                front.remove(&key()).await.unwrap();
            })
            .await
        );
    }

    #[tokio::test]
    async fn a_clear_while_the_back_answers_keeps_the_answer_out_of_front() {
        assert!(
            !in_front_after(async |front| {
                front.clear().await.unwrap();
            })
            .await
        );
    }
}
