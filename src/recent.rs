//! Keys remembered for a while in a fixed table, with how often they were marked: the keys
//! whose responses were recently found not storable (Varnish's hit-for-miss), whose requests
//! go forward at once rather than wait for one another ([`Flights`](crate::flight::Flights)),
//! and the uses of keys not yet admitted to the store ([`Admission`](crate::admission)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::key::CacheKey;

/// Slots of a [`RecentKeys::new`] table: 16 bytes each, 256 KiB in all, in sets of [`WAYS`].
const SLOTS: usize = 16 * 1024;

/// Slots a key may take: the set its hash picks.
const WAYS: usize = 2;

/// Bits of a slot's `state` that count the key's marks; the rest hold the mark's end.
const COUNT_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The most marks of a key a table counts ([`RecentKeys::mark`] answers no more).
pub(crate) const MAX_MARKS: u64 = COUNT_MASK;

/// Keys marked for `ttl`, in a table of [`SLOTS`] slots in sets of [`WAYS`], the set picked by
/// each key's hash (keyed with this process's random keys, so a client cannot aim URLs at one
/// set). Marking or looking up a key takes no lock, allocates nothing and costs a few
/// instructions; a look-up reads the clock only when the set holds the key.
///
/// A key is marked into a free or expired slot of its set if there is one, else over the key
/// marked fewer times. So a flood of one-off keys (a client asking for many uncacheable URLs)
/// takes over the slots of other one-off keys, not those of keys marked again and again, as
/// moka's TinyLFU did for the cache this table replaces. A mark forgotten early costs only
/// waiting: requests for that key wait for one another again, as they do for any key, until
/// its next response is found not storable. A mark is never taken for another key's: the
/// whole 64-bit hash is compared. Two marks written into one slot at once may leave one key's
/// hash with the other's end and count: either key was marked just then, so either way a key
/// stays marked for at most `ttl` from its last mark, which is all a mark promises.
pub(crate) struct RecentKeys {
    slots: Box<[Slot]>,
    /// Sets in the table, less one (their number is a power of two).
    set_mask: usize,
    ttl: Duration,
    /// Whether each mark lasts `ttl` from itself ([`new`](Self::new)), or every mark of a key
    /// ends `ttl` after its first ([`counting`](Self::counting)).
    renew: bool,
    epoch: Instant,
}

#[derive(Default)]
struct Slot {
    hash: AtomicU64,
    /// When the mark ends, in milliseconds since the table's epoch (0 in a slot never
    /// marked), shifted past [`COUNT_BITS`] that count the key's marks.
    state: AtomicU64,
}

impl Slot {
    fn until(state: u64) -> u64 {
        state >> COUNT_BITS
    }

    fn count(state: u64) -> u64 {
        state & COUNT_MASK
    }

    /// Whether a mark of this state has ended at `now` (or the slot was never marked).
    fn ended(state: u64, now: u64) -> bool {
        Slot::until(state) <= now
    }

    fn packed(until: u64, count: u64) -> u64 {
        until << COUNT_BITS | count
    }
}

impl RecentKeys {
    /// An empty table of 16,384 slots whose marks last `ttl` from the last one.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self::with_slots(SLOTS, ttl, true)
    }

    /// An empty table of at least `slots` slots (a power of two), which counts a key's marks
    /// for `window` from its first: [`mark`](Self::mark) answers how many there were.
    pub(crate) fn counting(slots: usize, window: Duration) -> Self {
        Self::with_slots(slots, window, false)
    }

    fn with_slots(slots: usize, ttl: Duration, renew: bool) -> Self {
        let sets = (slots / WAYS).max(1).next_power_of_two();
        Self {
            slots: (0..sets * WAYS).map(|_| Slot::default()).collect(),
            set_mask: sets - 1,
            ttl,
            renew,
            epoch: Instant::now(),
        }
    }

    /// Marks `key`, until `ttl` from now (from its first mark, in a
    /// [`counting`](Self::counting) table); how many times it is marked now, at most
    /// [`MAX_MARKS`] (65,535).
    pub(crate) fn mark(&self, key: &CacheKey) -> u64 {
        self.mark_at(key, self.now_ms())
    }

    /// Whether `key` was marked less than `ttl` ago (and its mark not taken over since).
    pub(crate) fn contains(&self, key: &CacheKey) -> bool {
        self.contains_when(key, || self.now_ms())
    }

    /// [`mark`](Self::mark) at `now` (milliseconds since the epoch).
    fn mark_at(&self, key: &CacheKey, now: u64) -> u64 {
        let set = self.set(key);
        let until = now
            .saturating_add(millis(self.ttl))
            .min(u64::MAX >> COUNT_BITS);
        // Relaxed: whoever must see the mark at once (a flight's followers) is told after it
        // through a channel, which orders these writes before their reads.
        let state = |slot: &Slot| slot.state.load(Ordering::Relaxed);
        if let Some(slot) = holding(set, key) {
            let state = state(slot);
            // Marks are counted while they last: a key whose mark ended starts again at one.
            let (until, count) = if Slot::ended(state, now) {
                (until, 1)
            } else {
                let until = if self.renew {
                    until
                } else {
                    Slot::until(state)
                };
                (until, (Slot::count(state) + 1).min(COUNT_MASK))
            };
            slot.state
                .store(Slot::packed(until, count), Ordering::Relaxed);
            return count;
        }
        // A free or expired slot, else the one whose key was marked fewer times.
        let victim = set
            .iter()
            .min_by_key(|slot| {
                let state = state(slot);
                if Slot::ended(state, now) {
                    0
                } else {
                    Slot::count(state)
                }
            })
            .unwrap_or(&set[0]);
        victim.hash.store(key.hash_value(), Ordering::Relaxed);
        victim
            .state
            .store(Slot::packed(until, 1), Ordering::Relaxed);
        1
    }

    /// [`contains`](Self::contains) at the time `now` gives, read only when the set holds
    /// the key.
    fn contains_when(&self, key: &CacheKey, now: impl FnOnce() -> u64) -> bool {
        holding(self.set(key), key)
            .is_some_and(|slot| !Slot::ended(slot.state.load(Ordering::Relaxed), now()))
    }

    /// The set of slots `key` may take.
    fn set(&self, key: &CacheKey) -> &[Slot] {
        let index = self.set_index(key);
        &self.slots[index * WAYS..(index + 1) * WAYS]
    }

    fn set_index(&self, key: &CacheKey) -> usize {
        // The number of sets is a power of two: the low bits of the hash pick the set.
        key.hash_value() as usize & self.set_mask
    }

    /// Milliseconds since the table was made, from 1 (so that no mark ends at 0).
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed()).saturating_add(1)
    }
}

/// The slot of `set` that holds `key`, if one does.
fn holding<'a>(set: &'a [Slot], key: &CacheKey) -> Option<&'a Slot> {
    let hash = key.hash_value();
    set.iter()
        .find(|slot| slot.hash.load(Ordering::Relaxed) == hash)
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

    use crate::key::example_key as key;

    /// Keys other than `of` whose hash picks its set in `table`.
    fn same_set<'a>(
        table: &'a RecentKeys,
        of: &'a CacheKey,
    ) -> impl Iterator<Item = CacheKey> + 'a {
        (0..)
            .map(|n| key(&format!("/other/{n}")))
            .filter(move |other| other != of && table.set_index(other) == table.set_index(of))
    }

    /// Two keys other than `of` in its set.
    fn two_in_set(table: &RecentKeys, of: &CacheKey) -> (CacheKey, CacheKey) {
        let mut others = same_set(table, of);
        (others.next().unwrap(), others.next().unwrap())
    }

    #[test]
    fn a_counting_table_counts_marks_within_the_window_from_the_first() {
        let counts = RecentKeys::counting(1024, Duration::from_secs(600));
        let (a, b) = (key("/a"), key("/b"));
        assert_eq!(counts.mark_at(&a, 1_000), 1);
        assert_eq!(counts.mark_at(&a, 300_000), 2);
        assert_eq!(counts.mark_at(&b, 300_000), 1);
        // The window runs from the first mark, not the last: at 601 s it has ended.
        assert_eq!(counts.mark_at(&a, 600_999), 3);
        assert_eq!(counts.mark_at(&a, 601_000), 1);
        assert_eq!(counts.slots.len(), 1024);
    }

    #[test]
    fn marks_in_a_renewing_table_last_from_the_last_one() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let a = key("/a");
        assert_eq!(recent.mark_at(&a, 1_000), 1);
        assert_eq!(recent.mark_at(&a, 20_000), 2);
        assert!(recent.contains_when(&a, || 49_999));
        assert!(!recent.contains_when(&a, || 50_000));
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
    fn a_full_set_gives_up_its_least_marked_key_never_confusing_them() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let hot = key("/hot");
        let (one_off, newcomer) = two_in_set(&recent, &hot);
        recent.mark_at(&hot, 1_000);
        recent.mark_at(&hot, 1_001);
        recent.mark_at(&one_off, 1_002);
        // The set is full: the newcomer takes the slot of the key marked once.
        recent.mark_at(&newcomer, 1_003);
        assert!(recent.contains_when(&hot, || 1_004));
        assert!(recent.contains_when(&newcomer, || 1_004));
        assert!(!recent.contains_when(&one_off, || 1_004));
    }

    #[test]
    fn a_flood_of_one_off_keys_leaves_a_key_marked_again_and_again() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let hot = key("/hot");
        recent.mark_at(&hot, 1_000);
        recent.mark_at(&hot, 1_000);
        // Far more one-off keys than the table has slots, some in the hot key's set.
        for n in 0..4 * SLOTS {
            recent.mark_at(&key(&format!("/flood/{n}")), 1_000);
        }
        for other in same_set(&recent, &hot).take(8) {
            recent.mark_at(&other, 1_000);
        }
        assert!(recent.contains_when(&hot, || 1_001));
    }

    #[test]
    fn marks_are_counted_while_they_last() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let was_hot = key("/was-hot");
        let (other, newcomer) = two_in_set(&recent, &was_hot);
        for _ in 0..5 {
            recent.mark_at(&was_hot, 1_000);
        }
        // Marked again after its mark ended: it counts one, not six.
        recent.mark_at(&was_hot, 40_000);
        recent.mark_at(&other, 40_000);
        recent.mark_at(&other, 40_000);
        recent.mark_at(&newcomer, 40_001);
        assert!(!recent.contains_when(&was_hot, || 40_002));
        assert!(recent.contains_when(&other, || 40_002));
        assert!(recent.contains_when(&newcomer, || 40_002));
    }

    #[test]
    fn an_expired_mark_is_taken_over_before_a_live_one_however_often_marked() {
        let recent = RecentKeys::new(Duration::from_secs(30));
        let hot = key("/hot");
        let (later, newcomer) = two_in_set(&recent, &hot);
        for _ in 0..5 {
            recent.mark_at(&hot, 1_000);
        }
        recent.mark_at(&later, 20_000);
        // At 40 s the hot key's mark (to 31 s) has ended; the later one's (to 50 s) has not.
        recent.mark_at(&newcomer, 40_000);
        assert!(recent.contains_when(&newcomer, || 40_001));
        assert!(recent.contains_when(&later, || 40_001));
        assert!(!recent.contains_when(&hot, || 40_001));
    }
}
