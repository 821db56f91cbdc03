//! Admission after a number of uses (`CacheLayerBuilder::min_uses`, as nginx's
//! `proxy_cache_min_uses`): a key's response is stored only once the key was requested that
//! many times within a window. Configuration, not RFC 9111: a cache may always decline to
//! store (RFC 9111 §3 says when it *may* store, never that it must).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::key::{CacheKey, KeyHashing};

/// The most keys whose uses are counted at once; beyond it the least used counters are
/// dropped (moka's TinyLFU), which only delays those keys' admission.
pub(crate) const MAX_COUNTED_KEYS: u64 = 100_000;

/// Counts the uses of keys not yet stored.
pub(crate) struct Admission {
    /// Uses needed before a response is stored.
    uses: u32,
    /// Uses of each key counted so far; a counter lives for the window from the first use.
    counts: moka::sync::Cache<CacheKey, Arc<AtomicU32>, KeyHashing>,
}

impl Admission {
    /// Admission after `uses` requests within `window`.
    pub(crate) fn new(uses: u32, window: Duration) -> Self {
        Self {
            uses,
            counts: moka::sync::Cache::builder()
                .max_capacity(MAX_COUNTED_KEYS)
                .time_to_live(window)
                .build_with_hasher(KeyHashing),
        }
    }

    /// Counts one use of `key`; whether its response may now be stored.
    pub(crate) fn admit(&self, key: &CacheKey) -> bool {
        if self.uses <= 1 {
            return true;
        }
        let count = self
            .counts
            .get_with_by_ref(key, || Arc::new(AtomicU32::new(0)));
        count.fetch_add(1, Ordering::Relaxed).saturating_add(1) >= self.uses
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

    fn key(path: &str) -> CacheKey {
        CacheKey::from_uri(&format!("http://example.com{path}").parse().unwrap()).unwrap()
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
    fn one_use_admits_at_once() {
        let admission = Admission::new(1, Duration::from_secs(60));
        assert!(admission.admit(&key("/a")));
    }
}
