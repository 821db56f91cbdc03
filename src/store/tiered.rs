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
/// the front is full, and whether it may be served is decided on every read, as always.
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
        let found = self.back.get(key).await?;
        if let Some(entry) = found.as_ref().filter(|entry| in_memory(entry)) {
            self.front.put_now(key, entry, None);
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
