//! Counts of writes per bucket of keys: whether a key may have been written since a moment,
//! told without a lock, an allocation or an entry per key.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::CacheKey;

/// Buckets of a [`KeyTally`] (a key's bucket is its hash modulo this).
const BUCKETS: usize = 256;

/// One count per bucket of keys, raised before each write to a key of the bucket.
///
/// Two readings of a key's count that are equal mean no write to it was counted between
/// them; different ones, that some key of its bucket was written (a false alarm costs a
/// look, never a wrong answer).
#[derive(Debug)]
pub(crate) struct KeyTally {
    buckets: Box<[AtomicU64]>,
}

impl Default for KeyTally {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl KeyTally {
    fn bucket(&self, key: &CacheKey) -> &AtomicU64 {
        let bucket = key.hash_value() % BUCKETS as u64;
        &self.buckets[usize::try_from(bucket).unwrap_or(0)]
    }

    /// The count of `key`'s bucket now. Sequentially consistent with [`count`](Self::count):
    /// a reading taken before a look-up that missed a write sees that write's count.
    pub(crate) fn read(&self, key: &CacheKey) -> u64 {
        self.bucket(key).load(Ordering::SeqCst)
    }

    /// Counts a write to `key`, made after this call.
    pub(crate) fn count(&self, key: &CacheKey) {
        self.bucket(key).fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::example_key;

    #[test]
    fn a_count_changes_the_reading_of_its_key_only_in_its_bucket() {
        let tally = KeyTally::default();
        let (a, b) = (example_key("/a"), example_key("/b"));
        let (before_a, before_b) = (tally.read(&a), tally.read(&b));
        tally.count(&a);
        assert_ne!(tally.read(&a), before_a);
        // Another key is disturbed only when it shares the bucket.
        let same_bucket = a.hash_value() % BUCKETS as u64 == b.hash_value() % BUCKETS as u64;
        assert_eq!(tally.read(&b) != before_b, same_bucket);
    }
}
