use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;

use super::{Store, StoreError, StoredEntry};
use crate::key::{CacheKey, KeyHashing};
use crate::tally::KeyTally;

/// The default store: in memory, on [`moka::sync::Cache`], bounded in bytes.
///
/// Entries are weighed by what they cost in memory: [`StoredEntry::weight`], the key and
/// moka's own bookkeeping, so the configured capacity bounds the memory the store holds;
/// moka's TinyLFU admission and LRU eviction decide what stays when it is full. Each entry
/// also expires once the `ttl` the cache gave it has passed, which only reclaims memory early:
/// whether an entry may be served is decided on every read by [`policy`](crate::policy).
///
/// It answers at once ([`Store::get_now`], [`Store::put_now`]): a hit creates no future.
/// Cloning a `MemoryStore` gives another handle to the same cache.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    cache: moka::sync::Cache<CacheKey, Held, KeyHashing>,
    writes: Arc<Writes>,
    /// The weight from which the store counts as full ([`Store::is_full`]).
    full_at: u64,
}

/// Counts of the writes (puts, removals) per bucket of keys, and of clears: a copy filled in
/// from a slower store is kept only if no write concerned its key meanwhile ([`Tiered`]).
///
/// [`Tiered`]: super::Tiered
#[derive(Debug, Default)]
struct Writes {
    keys: KeyTally,
    cleared: AtomicU64,
}

/// The writes that concerned a key, as of some moment ([`MemoryStore::writes_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteMark(u64, u64);

impl Writes {
    fn mark(&self, key: &CacheKey) -> WriteMark {
        WriteMark(self.keys.read(key), self.cleared.load(Ordering::SeqCst))
    }

    /// Counted before the write is made: a fill that checks after its own put sees it, or
    /// is overwritten by it.
    fn count(&self, key: &CacheKey) {
        self.keys.count(key);
    }
}

/// An entry with the time it stays of use.
#[derive(Clone, Debug)]
struct Held {
    entry: Arc<StoredEntry>,
    ttl: Option<Duration>,
}

/// What moka keeps for every entry besides the key and value themselves: its entry and its
/// bookkeeping (`Arc`s, the access-order and timer nodes, the hash table's bucket and slot),
/// as counted by `tests/entry_weight.rs` (about 540 bytes), with room for what varies between
/// builds and allocators: over-weighing costs a little capacity, under-weighing breaks the bound.
const MOKA_ENTRY: usize = 576;

/// What an entry costs the store: the key, the entry and its responses, moka's own
/// bookkeeping, each allocation as the allocator rounds it.
fn entry_weight(key: &CacheKey, entry: &StoredEntry) -> usize {
    use super::response::{ARC_COUNTS, allocation};
    let variants = entry.variants();
    allocation(key.as_str().len() + ARC_COUNTS)
        + allocation(std::mem::size_of::<StoredEntry>() + ARC_COUNTS)
        // One variant is held in the entry itself; several in a list.
        + match variants.len() {
            0 | 1 => 0,
            n => allocation(n * std::mem::size_of::<usize>()),
        }
        + entry.weight()
        + MOKA_ENTRY
}

/// The entries moka's hash table is first made for: one per 2 KiB of capacity, at most 2^18.
///
/// moka's table (open addressing, linear probing) grows only once it is 70% full, and every
/// probe reads the entry it points at: at that load a lookup of an absent key (every miss)
/// reads about six entries, each a cache miss in a large store, and each doubling copies and
/// rehashes a whole segment of the table. moka makes twice as many slots as entries asked for,
/// rounded up to a power of two per segment: 524,288 slots (4 MiB) for the default 256 MiB, at
/// most 8 MiB from 512 MiB up. A store of 1 KiB responses (about 3 KiB each as weighed)
/// then stays under a quarter full and never grows its table; and the fewer live entries per
/// slot, the less moka's table pays to clear out the slots of removed entries, which it does
/// by copying a segment each time a tenth of its slots are such leftovers.
fn table_size(max_capacity: u64) -> usize {
    usize::try_from(max_capacity / 2048).map_or(1 << 18, |entries| entries.min(1 << 18))
}

/// Default capacity: 256 MiB.
pub(crate) const DEFAULT_CAPACITY: u64 = 256 * 1024 * 1024;

impl MemoryStore {
    /// A store holding at most `max_capacity` bytes of responses.
    pub fn new(max_capacity: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_capacity)
            .initial_capacity(table_size(max_capacity))
            .weigher(|key: &CacheKey, held: &Held| {
                u32::try_from(entry_weight(key, &held.entry)).unwrap_or(u32::MAX)
            })
            .expire_after(GivenTtl)
            .build_with_hasher(KeyHashing);
        Self {
            cache,
            writes: Arc::new(Writes::default()),
            full_at: max_capacity - max_capacity / 32,
        }
    }

    /// The writes to `key` so far, for [`fill`](Self::fill).
    pub(crate) fn writes_to(&self, key: &CacheKey) -> WriteMark {
        self.writes.mark(key)
    }

    /// Keeps a copy of `entry`, read from another store, unless `key` was written (put,
    /// removed, cleared) since `mark` was taken: an invalidation that arrived while the copy
    /// was being read must not be undone by it.
    pub(crate) fn fill(&self, key: &CacheKey, entry: &Arc<StoredEntry>, mark: WriteMark) {
        if self.writes.mark(key) != mark {
            return;
        }
        let held = Held {
            entry: Arc::clone(entry),
            ttl: None,
        };
        self.cache.insert(key.clone(), held);
        // A write counted after the check above and before this insert was made before it
        // too, or is made after it: in the first case the copy is dropped here.
        if self.writes.mark(key) != mark {
            self.cache.remove(key);
        }
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
        self.cache.run_pending_tasks();
    }

    /// The keys of the entries any of whose variants carries `tag` (see
    /// [`Store::keys_tagged`]), found by scanning every entry.
    fn tagged(&self, tag: &str) -> Vec<CacheKey> {
        if !crate::policy::tags::is_valid_tag(tag) {
            return Vec::new();
        }
        self.cache
            .iter()
            .filter(|(_, held)| {
                held.entry
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
    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<StoredEntry>>, StoreError>> {
        Some(Ok(self.cache.get(key).map(|held| held.entry)))
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        Ok(self.cache.get(key).map(|held| held.entry))
    }

    fn put_now(
        &self,
        key: &CacheKey,
        value: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        let held = Held {
            entry: Arc::clone(value),
            ttl,
        };
        self.writes.count(key);
        self.cache.insert(key.clone(), held);
        Some(Ok(()))
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.writes.count(&key);
        self.cache.insert(key, Held { entry: value, ttl });
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        self.writes.count(key);
        Ok(self.cache.remove(key).is_some())
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        self.writes.cleared.fetch_add(1, Ordering::SeqCst);
        self.cache.run_pending_tasks();
        let count = self.cache.entry_count();
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        Ok(count)
    }

    /// From 31/32 of the capacity, as weighed when moka last did its upkeep (on reads and
    /// writes, often under load): where inserts start to evict, give or take the weight of
    /// the last few.
    fn is_full(&self) -> bool {
        self.cache.weighted_size() >= self.full_at
    }

    /// Scans every entry (moka's `iter`): the time it takes grows with the number of entries.
    /// Runs moka's pending maintenance first, so that the counts include recent writes.
    fn size(&self) -> Option<(u64, u64)> {
        self.cache.run_pending_tasks();
        Some((self.cache.entry_count(), self.cache.weighted_size()))
    }

    async fn keys_tagged(&self, tag: &str) -> Result<Vec<CacheKey>, StoreError> {
        Ok(self.tagged(tag))
    }
}

/// Expires each entry after the `ttl` it was put with.
struct GivenTtl;

impl Expiry<CacheKey, Held> for GivenTtl {
    fn expire_after_create(&self, _key: &CacheKey, held: &Held, _now: Instant) -> Option<Duration> {
        held.ttl
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        held: &Held,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        // A replaced entry lives as long as its new value says, not its old one.
        held.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_made_for_one_entry_per_2_kib_up_to_2_to_the_18() {
        assert_eq!(table_size(0), 0);
        assert_eq!(table_size(DEFAULT_CAPACITY), 131_072);
        assert_eq!(table_size(64 * 1024 * 1024), 32_768);
        assert_eq!(table_size(512 * 1024 * 1024), 1 << 18);
        assert_eq!(table_size(u64::MAX), 1 << 18);
    }
}
