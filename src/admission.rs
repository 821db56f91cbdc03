//! Admission after a number of uses (`CacheLayerBuilder::min_uses`, as nginx's
//! `proxy_cache_min_uses`): a key's response is stored only once the key was requested that
//! many times within a window. The uses are counted in a fixed table ([`RecentKeys`]): no lock,
//! no allocation per key, and a flood of one-off URLs takes the places of other one-off URLs,
//! not those of URLs requested again. Configuration, not RFC 9111: a cache may always decline to
//! store (RFC 9111 §3 says when it *may* store, never that it must).

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
