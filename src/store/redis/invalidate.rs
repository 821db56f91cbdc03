//! Keeping every process's memory tier coherent: removals, replacements and clears are
//! published on `<prefix>invalidate`, and each process drops what another one changed.
//!
//! A message is `<instance> k <key>` (drop one key) or `<instance> c` (drop everything), where
//! `<instance>` is the sender's random id in hex: a process ignores its own messages (it has
//! already changed its memory tier).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Client;

use super::conn::Health;
use super::{Inner, RedisStore};
use crate::key::CacheKey;
use crate::store::{MemoryStore, Store};

/// Buckets of per-key invalidation counters (a key's bucket is its hash modulo this).
const BUCKETS: usize = 256;

/// Removals that could not reach Redis kept to be tried again, at most.
const MAX_PENDING: usize = 10_000;

/// Wait before subscribing again after the subscription failed or ended.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(250);

/// This process's end of the invalidation channel.
pub(super) struct Invalidations {
    /// Random id of this process (of this store, rather), in every message it sends.
    instance: u64,
    /// The memory tier to keep coherent, if any.
    front: Option<MemoryStore>,
    /// Invalidations received, per bucket of keys, and clears (with resubscriptions).
    buckets: Box<[AtomicU64]>,
    cleared: AtomicU64,
    hasher: RandomState,
    tokens: AtomicU64,
    /// Removals that failed, to be tried again once Redis answers.
    pending: Mutex<Vec<CacheKey>>,
    has_pending: AtomicBool,
}

/// What was invalidated while a lookup was under way changes this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epoch(u64, u64);

impl Invalidations {
    pub(super) fn new(front: Option<MemoryStore>) -> Self {
        let hasher = RandomState::new();
        Self {
            instance: hasher.hash_one(std::process::id()),
            front,
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            cleared: AtomicU64::new(0),
            hasher,
            tokens: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
        }
    }

    /// Keeps `keys`, whose removal did not reach Redis, to remove them again later.
    pub(super) fn defer(&self, keys: impl IntoIterator<Item = CacheKey>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if pending.len() >= MAX_PENDING {
                tracing::warn!(%key, "too many removals waiting for Redis; this one is dropped");
                continue;
            }
            if !pending.contains(&key) {
                pending.push(key);
            }
        }
        self.has_pending
            .store(!pending.is_empty(), Ordering::Release);
    }

    /// Whether removals wait to be tried again.
    pub(super) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// The removals to try again, taken.
    pub(super) fn take_pending(&self) -> Vec<CacheKey> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.has_pending.store(false, Ordering::Release);
        std::mem::take(&mut *pending)
    }

    /// Whether there is a memory tier to keep coherent.
    pub(super) fn has_front(&self) -> bool {
        self.front.is_some()
    }

    /// A token unique to this process and call, for locks.
    pub(super) fn token(&self) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n}", self.instance)
    }

    fn bucket(&self, key: &str) -> &AtomicU64 {
        let index = usize::try_from(self.hasher.hash_one(key) % BUCKETS as u64).unwrap_or(0);
        &self.buckets[index]
    }

    /// The invalidations seen so far that concern `key`.
    pub(super) fn epoch(&self, key: &CacheKey) -> Epoch {
        Epoch(
            self.bucket(key.as_str()).load(Ordering::Acquire),
            self.cleared.load(Ordering::Acquire),
        )
    }

    /// The message that drops `key` elsewhere.
    pub(super) fn drop_key(&self, key: &CacheKey) -> String {
        format!("{:016x} k {}", self.instance, key.as_str())
    }

    /// The message that drops everything elsewhere.
    pub(super) fn drop_all(&self) -> String {
        format!("{:016x} c", self.instance)
    }

    /// Acts on a message from the channel.
    async fn apply(&self, payload: &[u8]) {
        let Some((sender, rest)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.split_once(' '))
        else {
            return;
        };
        if u64::from_str_radix(sender, 16).is_ok_and(|sender| sender == self.instance) {
            return;
        }
        match rest.split_once(' ') {
            Some(("k", key)) => {
                self.bucket(key).fetch_add(1, Ordering::AcqRel);
                if let Some(front) = &self.front {
                    // A lookup that read the old entry from Redis just before this does not
                    // put it in front after it (`Tiered` fills only keys not written since
                    // it asked).
                    let _ = front.remove(&CacheKey::from_stored(key)).await;
                }
            }
            None if rest == "c" => self.reset().await,
            _ => {}
        }
    }

    /// Drops everything in front: on a clear, and whenever messages may have been missed.
    async fn reset(&self) {
        self.cleared.fetch_add(1, Ordering::AcqRel);
        if let Some(front) = &self.front {
            let _ = front.clear().await;
        }
    }
}

/// Subscribes to `channel` and applies its messages, resubscribing whenever the
/// subscription fails or ends; the memory tier is emptied each time, since messages may have
/// been missed meanwhile, and removals that failed meanwhile are tried again.
pub(super) fn subscribe(
    client: Client,
    channel: String,
    invalidations: Arc<Invalidations>,
    health: Arc<Health>,
    store: Weak<Inner>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let connected =
                tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub()).await;
            match connected {
                Ok(Ok(mut pubsub)) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        // Not `health.reachable()`: the commands say when Redis is back.
                        invalidations.reset().await;
                        if let Some(inner) = store.upgrade() {
                            RedisStore { inner }.retry_removals().await;
                        }
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            invalidations.apply(message.get_payload_bytes()).await;
                        }
                        health.unreachable(&"the invalidation subscription ended");
                        invalidations.reset().await;
                    }
                    Err(error) => health.unreachable(&error),
                },
                Ok(Err(error)) => health.unreachable(&error),
                Err(_) => health.unreachable(&"no connection for invalidations within 1 s"),
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredEntry;

    fn key(s: &str) -> CacheKey {
        CacheKey::from_uri(&s.parse().unwrap()).unwrap()
    }

    #[test]
    fn failed_removals_are_kept_once_each_until_taken() {
        let invalidations = Invalidations::new(None);
        assert!(!invalidations.has_pending());
        invalidations.defer([key("http://h/a"), key("http://h/b")]);
        invalidations.defer([key("http://h/a")]);
        assert!(invalidations.has_pending());
        assert_eq!(invalidations.take_pending().len(), 2);
        assert!(!invalidations.has_pending());
        assert!(invalidations.take_pending().is_empty());
    }

    #[tokio::test]
    async fn messages_from_others_drop_keys_and_own_are_ignored() {
        let front = MemoryStore::new(1 << 20);
        let (a, b) = (key("http://h/a"), key("http://h/b"));
        for k in [&a, &b] {
            front.put_now(k, &Arc::new(StoredEntry::default()), None);
        }
        let ours = Invalidations::new(Some(front.clone()));
        let theirs = Invalidations::new(None);
        let before = ours.epoch(&a);
        ours.apply(ours.drop_key(&a).as_bytes()).await;
        assert!(front.get_now(&a).unwrap().unwrap().is_some(), "own message");
        ours.apply(theirs.drop_key(&a).as_bytes()).await;
        assert!(front.get_now(&a).unwrap().unwrap().is_none());
        assert_ne!(ours.epoch(&a), before);
        assert!(front.get_now(&b).unwrap().unwrap().is_some());
        ours.apply(b"garbage").await;
        ours.apply(theirs.drop_all().as_bytes()).await;
        assert!(front.get_now(&b).unwrap().unwrap().is_none());
    }
}
