//! [`CacheHandle`]: manage a running cache.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::Uri;

use crate::key::CacheKey;
use crate::shared::Shared;
use crate::store::{MemoryStore, Store, StoreError};

/// A handle to a cache, from [`CacheLayer::handle`](crate::CacheLayer::handle).
///
/// Cheap to clone; every clone manages the same cache as the layer and its services.
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

    /// The cache's counters since it was built.
    pub fn stats(&self) -> CacheStats {
        let stats = &self.shared.stats;
        CacheStats {
            hits: stats.hits.load(Ordering::Relaxed),
            misses: stats.misses.load(Ordering::Relaxed),
            stores: stats.stores.load(Ordering::Relaxed),
        }
    }

    /// The store itself, e.g. to read [`MemoryStore::entry_count`].
    pub fn store(&self) -> &St {
        &self.shared.store
    }
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    hits: u64,
    misses: u64,
    stores: u64,
}

impl CacheStats {
    /// Responses served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Requests forwarded to the inner service (every request that was not a hit).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Responses written to the store.
    pub fn stores(&self) -> u64 {
        self.stores
    }
}
