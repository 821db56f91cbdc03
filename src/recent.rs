//! Keys remembered for a while in a fixed table: the keys whose responses were recently found
//! not storable (Varnish's hit-for-miss), whose requests go forward at once rather than wait
//! for one another ([`Flights`](crate::flight::Flights)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::key::CacheKey;

/// Slots of a [`RecentKeys`] table: 16 bytes each, 256 KiB in all.
const SLOTS: usize = 16 * 1024;

/// Keys marked for `ttl`, in a table of [`SLOTS`] slots indexed by each key's hash (keyed with
/// this process's random keys, so a client cannot aim URLs at one slot): marking or looking
/// up a key takes no lock, allocates nothing, and costs a few instructions (a look-up reads
/// the clock only when the slot holds the key).
///
/// A key marked into a slot another key holds takes it over, so a mark may be forgotten early:
/// requests for that key then wait for one another again, as they do for any key, until its
/// next response is found not storable. A mark is never taken for another key's: the whole
/// 64-bit hash is compared. Two marks written into one slot at once may leave one key's hash
/// with the other's end: either key was marked just then, so either way a key stays marked
/// for at most `ttl` from its last mark, which is all a mark promises.
pub(crate) struct RecentKeys {
    slots: Box<[Slot]>,
    ttl: Duration,
    epoch: Instant,
}

#[derive(Default)]
struct Slot {
    hash: AtomicU64,
    /// When the mark ends, in milliseconds since the table's epoch; 0 in a slot never marked.
    until: AtomicU64,
}

impl RecentKeys {
    /// An empty table whose marks last `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            ttl,
            epoch: Instant::now(),
        }
    }

    /// Marks `key` until `ttl` from now.
    pub(crate) fn mark(&self, key: &CacheKey) {
        self.mark_at(key, self.now_ms());
    }

    /// Whether `key` was marked less than `ttl` ago (and its mark not taken over since).
    pub(crate) fn contains(&self, key: &CacheKey) -> bool {
        self.contains_when(key, || self.now_ms())
    }

    /// [`mark`](Self::mark) at `now` (milliseconds since the epoch).
    fn mark_at(&self, key: &CacheKey, now: u64) {
        let slot = self.slot(key);
        // Relaxed: whoever must see the mark at once (a flight's followers) is told after it
        // through a channel, which orders these writes before their reads.
        slot.hash.store(key.hash_value(), Ordering::Relaxed);
        slot.until
            .store(now.saturating_add(millis(self.ttl)), Ordering::Relaxed);
    }

    /// [`contains`](Self::contains) at the time `now` gives, read only when the slot holds
    /// the key.
    fn contains_when(&self, key: &CacheKey, now: impl FnOnce() -> u64) -> bool {
        let slot = self.slot(key);
        slot.hash.load(Ordering::Relaxed) == key.hash_value()
            && now() < slot.until.load(Ordering::Relaxed)
    }

    fn slot(&self, key: &CacheKey) -> &Slot {
        // `SLOTS` is a power of two: the low bits of the hash pick the slot.
        let index = key.hash_value() as usize & (SLOTS - 1);
        &self.slots[index]
    }

    /// Milliseconds since the table was made, from 1 (so that no mark ends at 0).
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed()).saturating_add(1)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for RecentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentKeys")
            .field("slots", &self.slots.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> CacheKey {
        CacheKey::from_uri(&format!("http://example.com{path}").parse().unwrap()).unwrap()
    }

    #[test]
    fn a_marked_key_is_contained_and_no_other() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let (a, b) = (key("/a"), key("/b"));
        assert!(!recent.contains(&a));
        recent.mark(&a);
        assert!(recent.contains(&a));
        assert!(!recent.contains(&b));
    }

    #[test]
    fn a_mark_ends_after_its_ttl() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let a = key("/a");
        recent.mark_at(&a, 1_000);
        assert!(recent.contains_when(&a, || 1_000));
        assert!(recent.contains_when(&a, || 30_999));
        assert!(!recent.contains_when(&a, || 31_000));
        // Marked again, it is contained again, for a whole `ttl`.
        recent.mark_at(&a, 40_000);
        assert!(recent.contains_when(&a, || 69_999));
    }

    #[test]
    fn a_key_that_takes_a_slot_over_is_not_taken_for_the_one_before() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let a = key("/a");
        // Another key with the same slot: the same low bits of the hash.
        let same_slot = (0..)
            .map(|n| key(&format!("/{n}")))
            .find(|other| {
                other != &a
                    && (other.hash_value() as usize & (SLOTS - 1))
                        == (a.hash_value() as usize & (SLOTS - 1))
            })
            .unwrap();
        recent.mark(&a);
        recent.mark(&same_slot);
        assert!(recent.contains(&same_slot));
        // Forgotten early, never confused.
        assert!(!recent.contains(&a));
    }
}
