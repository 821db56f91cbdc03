//! Admission after a number of uses (`CacheLayerBuilder::min_uses`, as nginx's
//! `proxy_cache_min_uses`): a key's response is stored only once the key was requested that
//! many times within a window. The uses are counted in a fixed table ([`RecentKeys`]): no lock,
//! no allocation per key, and a flood of one-off URLs takes the places of other one-off URLs,
//! not those of URLs requested again. Configuration, not RFC 9111: a cache may always decline to
//! store (RFC 9111 §3 says when it *may* store, never that it must).
//!
//! [`Doorkeeper`] asks for a second use only while the store is full
//! (`CacheLayerBuilder::doorkeeper`, on by default).

use std::sync::OnceLock;
use std::time::Duration;

use crate::key::CacheKey;
use crate::recent::{MAX_MARKS, RecentKeys};

/// Slots of the table that counts uses: 16 bytes each, 2 MiB in all, made only when a
/// number of uses is configured.
const COUNTED_SLOTS: usize = 128 * 1024;

/// Counts the uses of keys not yet stored.
pub(crate) struct Admission {
    /// Uses needed before a response is stored.
    uses: u32,
    /// Uses of each key counted so far, for the window from its first use; `None` when one
    /// use admits.
    counts: Option<RecentKeys>,
}

impl Admission {
    /// Admission after `uses` requests within `window`.
    pub(crate) fn new(uses: u32, window: Duration) -> Self {
        Self {
            uses,
            counts: (uses > 1).then(|| RecentKeys::counting(COUNTED_SLOTS, window)),
        }
    }

    /// Counts one use of `key`; whether its response may now be stored. Uses are counted up
    /// to 65,535: a configured number above that admits at 65,535.
    pub(crate) fn admit(&self, key: &CacheKey) -> bool {
        let Some(counts) = &self.counts else {
            return true;
        };
        counts.mark(key) >= u64::from(self.uses).min(MAX_MARKS)
    }
}

/// Admission while the store is full (`CacheLayerBuilder::doorkeeper`), the doorkeeper of
/// TinyLFU: a key's response is stored only from its second use within [`DOORKEEPER_WINDOW`].
///
/// A full moka store weighs each new entry against those it would evict, by how often each
/// key was asked for, and turns away a key asked for once (TinyLFU): it has no more uses than
/// the entries it would replace. It decides after the entry was made and inserted, so a flood
/// of one-off URLs into a full store costs a copy of every response, an insert, and the
/// removal of the entry turned away (about a third of a miss's CPU). Deciding before the
/// response is captured saves that work for what would not have stayed anyway.
///
/// The uses are counted only while the store is full, by an [`Admission`] after 2 uses made the
/// first time it is (2 MiB, no lock, no allocation per key).
pub(crate) struct Doorkeeper {
    counts: OnceLock<Admission>,
}

/// How long the doorkeeper remembers a key's first use while the store is full: 10 minutes.
const DOORKEEPER_WINDOW: Duration = Duration::from_secs(600);

impl Doorkeeper {
    pub(crate) fn new() -> Self {
        Self {
            counts: OnceLock::new(),
        }
    }

    /// Whether the response for `key` may be stored, given whether the store is `full`: any
    /// response while it is not; while it is, only a key's from its second use on (the use
    /// is counted).
    pub(crate) fn admit(&self, key: &CacheKey, full: bool) -> bool {
        !full
            || self
                .counts
                .get_or_init(|| Admission::new(2, DOORKEEPER_WINDOW))
                .admit(key)
    }
}

impl std::fmt::Debug for Doorkeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorkeeper")
            .field("counting", &self.counts.get().is_some())
            .finish()
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::key::example_key as key;

    #[test]
    fn the_doorkeeper_admits_every_key_while_the_store_has_room() {
        let doorkeeper = Doorkeeper::new();
        for _ in 0..3 {
            assert!(doorkeeper.admit(&key("/a"), false));
        }
        // Nothing was counted, and no table made.
        assert!(doorkeeper.counts.get().is_none());
        assert!(!doorkeeper.admit(&key("/a"), true));
    }

    #[test]
    fn the_doorkeeper_admits_a_key_from_its_second_use_while_the_store_is_full() {
        let doorkeeper = Doorkeeper::new();
        let a = key("/a");
        assert!(!doorkeeper.admit(&a, true));
        assert!(doorkeeper.admit(&a, true));
        assert!(doorkeeper.admit(&a, true));
        assert!(!doorkeeper.admit(&key("/b"), true));
        // A flood of one-off URLs, twice as many as the table has places, does not make the
        // doorkeeper forget a key used again.
        let c = key("/c");
        assert!(!doorkeeper.admit(&c, true));
        assert!(doorkeeper.admit(&c, true));
        for n in 0..2 * COUNTED_SLOTS {
            assert!(!doorkeeper.admit(&key(&format!("/one-off/{n}")), true));
        }
        assert!(doorkeeper.admit(&c, true));
    }

    #[test]
    fn admits_from_the_nth_use() {
        let admission = Admission::new(3, Duration::from_secs(60));
        let a = key("/a");
        assert!(!admission.admit(&a));
        assert!(!admission.admit(&a));
        assert!(admission.admit(&a));
        assert!(admission.admit(&a));
        // Each key counts on its own.
        assert!(!admission.admit(&key("/b")));
    }

    #[test]
    fn a_flood_of_one_off_keys_leaves_the_count_of_a_key_used_again() {
        let admission = Admission::new(3, Duration::from_secs(60));
        let a = key("/a");
        assert!(!admission.admit(&a));
        assert!(!admission.admit(&a));
        // Twice as many one-off URLs as the table has places.
        for n in 0..2 * COUNTED_SLOTS {
            assert!(!admission.admit(&key(&format!("/one-off/{n}"))));
        }
        assert!(admission.admit(&a));
    }

    #[test]
    fn one_use_admits_at_once() {
        let admission = Admission::new(1, Duration::from_secs(60));
        assert!(admission.admit(&key("/a")));
    }
}
