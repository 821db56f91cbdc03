use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use super::{Store, StoreError, StoredEntry, StoredResponse};
use crate::key::CacheKey;

/// The default store: in memory, on [`moka::future::Cache`], bounded in bytes.
///
/// Entries are weighed by [`StoredEntry::weight`] plus the key, so the configured capacity
/// bounds the memory held by headers and bodies; moka's TinyLFU admission and LRU eviction
/// decide what stays when it is full. Entries also expire once they can no longer be served
/// (fresh lifetime plus any stale window, plus an hour in which a request with `max-stale` or
/// an unreachable origin may still use it), which only reclaims memory early: whether an entry
/// may be served is decided on every read by [`policy`](crate::policy).
///
/// Cloning a `MemoryStore` gives another handle to the same cache.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    cache: moka::future::Cache<CacheKey, Arc<StoredEntry>>,
}

/// Default capacity: 256 MiB.
pub(crate) const DEFAULT_CAPACITY: u64 = 256 * 1024 * 1024;

impl MemoryStore {
    /// A store holding at most `max_capacity` bytes of responses.
    pub fn new(max_capacity: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_capacity)
            .weigher(|key: &CacheKey, value: &Arc<StoredEntry>| {
                u32::try_from(key.as_str().len() + value.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(UsableLifetime)
            .build();
        Self { cache }
    }

    /// Number of entries (approximate until pending maintenance has run).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes currently held, as weighed (approximate until pending maintenance has run).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, counts); useful before reading counts.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// The keys of the entries any of whose variants carries `tag` (see
    /// [`Store::remove_tagged`]), found by scanning every entry.
    pub(crate) fn keys_tagged(&self, tag: &str) -> Vec<CacheKey> {
        if !crate::policy::tags::is_valid_tag(tag) {
            return Vec::new();
        }
        self.cache
            .iter()
            .filter(|(_, entry)| {
                entry
                    .variants()
                    .iter()
                    .any(|response| crate::policy::tags::has_tag(&response.headers, tag))
            })
            .map(|(key, _)| CacheKey::clone(&key))
            .collect()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        Ok(self.cache.get(key).await)
    }

    async fn put(&self, key: CacheKey, value: Arc<StoredEntry>) -> Result<(), StoreError> {
        self.cache.insert(key, value).await;
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        Ok(self.cache.remove(key).await.is_some())
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        self.cache.run_pending_tasks().await;
        let count = self.cache.entry_count();
        self.cache.invalidate_all();
        self.cache.run_pending_tasks().await;
        Ok(count)
    }

    /// Scans every entry (moka's `iter`): the time it takes grows with the number of entries.
    async fn remove_tagged(&self, tag: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        for key in self.keys_tagged(tag) {
            if self.cache.remove(&key).await.is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// How long a response without validators is kept past its last fresh or stale window.
const STALE_GRACE: Duration = crate::policy::DEFAULT_MAX_STALE_IF_UNREACHABLE;

/// Reclaims an entry once no request could use it any more.
struct UsableLifetime;

impl Expiry<CacheKey, Arc<StoredEntry>> for UsableLifetime {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<StoredEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        // The entry lives as long as its longest-lived variant.
        value
            .variants()
            .iter()
            .map(|response| usable_for(response))
            .try_fold(Duration::ZERO, |longest, d| d.map(|d| longest.max(d)))
    }
}

/// How long a response may still be of use; `None` while it can be revalidated.
fn usable_for(response: &StoredResponse) -> Option<Duration> {
    // A response with a validator stays useful after it goes stale: it can be revalidated
    // (RFC 9111 §4.3), so only capacity eviction removes it.
    if response.headers.contains_key(http::header::ETAG)
        || response.headers.contains_key(http::header::LAST_MODIFIED)
    {
        return None;
    }
    let policy = &response.policy;
    let remaining = policy.freshness_lifetime.saturating_sub(policy.initial_age);
    let stale = policy
        .stale_while_revalidate
        .unwrap_or_default()
        .max(policy.stale_if_error.unwrap_or_default());
    // A request may still accept a stale response with `max-stale` (RFC 9111 §5.2.1.2), and
    // a cache whose origin cannot be reached may serve it (RFC 9111 §4.2.4, up to
    // `CacheOptions::max_stale_if_unreachable`, one hour by default): keep it that long.
    Some(remaining + stale + STALE_GRACE)
}
