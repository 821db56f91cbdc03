//! [`RedisStore`]: entries in Redis, shared by several processes (feature `redis`).

mod builder;
mod conn;
mod invalidate;
mod lock;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use self::builder::RedisStoreBuilder;
use self::conn::Conn;
use self::invalidate::Invalidations;
use super::{FillLock, Store, StoreError, StoredEntry, codec};
use crate::key::CacheKey;
use crate::policy::tags;

/// Time limit of each command of a clear or a purge by tag.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys deleted by one `UNLINK` of a clear.
const CLEAR_BATCH: usize = 1000;

/// A store in Redis, shared by every process that uses the same Redis database and key
/// prefix: a response stored through one of them is a hit in all of them.
///
/// Under the prefix (default `tcl:`): an entry (every `Vary` variant of a URL) is the string
/// `<prefix>e:<key>`, encoded by [`codec`], written with `SET … PX <ttl>` from the `ttl` the
/// cache gives each put (without one, no expiry: Redis's `maxmemory` policy evicts it, so set
/// one such as `allkeys-lru` on a Redis that holds a cache); each tag (`Surrogate-Key`,
/// `Cache-Tag`) is a set `<prefix>tag:<tag>` of keys, for [`Store::keys_tagged`] without
/// `SCAN` (pruned of dead keys at each purge by tag); a fill lock is `<prefix>lock:<key>`
/// ([`Store::fill_lock`]: one process at a time fetches a key from the origin, the others
/// wait for what it stores).
///
/// Put a [`MemoryStore`](super::MemoryStore) in front with [`Tiered`](super::Tiered), and
/// give this store the same memory tier ([`RedisStoreBuilder::front`]): every put, remove and
/// clear is published with the write on `<prefix>invalidate`, and each process drops what
/// another one changed from its memory tier (everything, when its subscription was lost for
/// a while).
///
/// Redis trouble is never an error for a client: each command on the request path is bounded
/// ([`RedisStoreBuilder::timeout`], 50 ms by default), a lookup that fails is a miss and a
/// write that fails is skipped; while Redis is known to be down, one such command every
/// 250 ms asks it whether it is back and the others fail at once. The connection is made
/// again by itself, and the log says once when Redis stops answering and once when it is
/// back. Removals and clears report their errors: an invalidation that did not reach Redis is
/// worth knowing about; a failed removal is also sent again once Redis answers (on the next
/// lookup, or when the invalidation subscription is made again), so that the entry does not
/// outlive its invalidation.
///
/// ```no_run
/// use tower_cache_layer::CacheLayer;
/// use tower_cache_layer::store::{MemoryStore, RedisStore, Tiered};
///
/// # async fn run() -> Result<(), tower_cache_layer::store::StoreError> {
/// let memory = MemoryStore::new(64 << 20);
/// let redis = RedisStore::builder("redis://127.0.0.1:6379/0")
///     .prefix("shop:")
///     .front(memory.clone())
///     .connect()
///     .await?;
/// let layer = CacheLayer::builder().store(Tiered::new(memory, redis)).build();
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    keys: Keys,
    timeout: Duration,
    lock_ttl: Duration,
    poll_interval: Duration,
    max_value_size: usize,
    invalidations: Arc<Invalidations>,
    subscriber: Option<tokio::task::JoinHandle<()>>,
    /// Lookups and writes that failed and were answered as a miss or skipped
    /// ([`Store::failures`]).
    absorbed: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(subscriber) = &self.subscriber {
            subscriber.abort();
        }
    }
}

/// The names of this store's Redis keys.
struct Keys {
    prefix: String,
}

impl Keys {
    fn entry(&self, key: &CacheKey) -> String {
        format!("{}e:{}", self.prefix, key.as_str())
    }

    fn tag(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }

    fn lock(&self, key: &CacheKey) -> String {
        format!("{}lock:{}", self.prefix, key.as_str())
    }

    fn channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }

    /// A `SCAN MATCH` pattern for every key under the prefix.
    fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

impl RedisStore {
    /// A builder for a store at `url`: `redis://[user:password@]host:port/db`, or `rediss://`
    /// for TLS (with rustls: the process must have installed a rustls `CryptoProvider`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.keys.prefix
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix)
            .finish_non_exhaustive()
    }
}

/// The distinct tags of `entry`'s variants.
fn entry_tags(entry: &StoredEntry) -> Vec<&str> {
    let mut found: Vec<&str> = Vec::new();
    for response in entry.variants() {
        for tag in tags::tags(response.headers()) {
            if tags::is_valid_tag(tag) && !found.contains(&tag) {
                found.push(tag);
            }
        }
    }
    found
}

impl RedisStore {
    /// Writes `encoded` under `key` (or removes it when `None`), with its tags, and publishes
    /// the change, in one transaction.
    async fn write(
        &self,
        key: &CacheKey,
        encoded: Option<(Vec<u8>, &[&str])>,
        ttl_ms: Option<u64>,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let entry = inner.keys.entry(key);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match encoded {
            Some((bytes, tags)) => {
                let set = pipe.cmd("SET").arg(&entry).arg(bytes);
                if let Some(ms) = ttl_ms {
                    set.arg("PX").arg(ms);
                }
                set.ignore();
                for tag in tags {
                    pipe.cmd("SADD")
                        .arg(inner.keys.tag(tag))
                        .arg(key.as_str())
                        .ignore();
                }
            }
            None => {
                pipe.cmd("DEL").arg(&entry).ignore();
            }
        }
        pipe.cmd("PUBLISH")
            .arg(inner.keys.channel())
            .arg(inner.invalidations.drop_key(key))
            .ignore();
        inner.conn.pipe::<()>(&pipe, inner.timeout).await
    }
}

impl RedisStore {
    /// Removes again what could not be removed while Redis failed (each removal publishes its
    /// invalidation, so every process's memory tier drops the key too).
    async fn retry_removals(&self) {
        let keys = self.inner.invalidations.take_pending();
        for (i, key) in keys.iter().enumerate() {
            // A failure defers the key again; the rest wait for the next try with it.
            if self.remove(key).await.is_err() {
                self.inner
                    .invalidations
                    .defer(keys[i + 1..].iter().cloned());
                break;
            }
        }
    }
}

impl Store for RedisStore {
    /// A miss when Redis fails, or when `key` was invalidated by another process while the
    /// lookup was under way.
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        let inner = &self.inner;
        let epoch = inner.invalidations.epoch(key);
        let mut get = redis::cmd("GET");
        get.arg(inner.keys.entry(key));
        let Ok(bytes) = inner.conn.cmd::<Option<Vec<u8>>>(&get, inner.timeout).await else {
            inner.absorbed.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        if inner.invalidations.has_pending() {
            // Redis answers again: the removals that failed are tried again, in a task.
            let store = self.clone();
            tokio::spawn(async move { store.retry_removals().await });
        }
        if inner.invalidations.epoch(key) != epoch {
            return Ok(None);
        }
        Ok(bytes.and_then(|bytes| codec::decode(&bytes)).map(Arc::new))
    }

    /// Skipped (not an error) when Redis fails; an entry too large, or already expired, is
    /// removed instead.
    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let tags = entry_tags(&value);
        let encoded = match codec::encode(&value) {
            Ok(bytes) if bytes.len() <= self.inner.max_value_size && ttl_ms != Some(0) => {
                Some((bytes, tags.as_slice()))
            }
            _ => None,
        };
        if self.write(&key, encoded, ttl_ms).await.is_err() {
            self.inner.absorbed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(inner.keys.entry(key))
            .cmd("PUBLISH")
            .arg(inner.keys.channel())
            .arg(inner.invalidations.drop_key(key))
            .ignore();
        match inner.conn.pipe::<(u64,)>(&pipe, inner.timeout).await {
            Ok((removed,)) => Ok(removed > 0),
            Err(error) => {
                // Tried again once Redis answers: the entry must not outlive its invalidation.
                inner.invalidations.defer([key.clone()]);
                Err(error)
            }
        }
    }

    /// Lookups and writes that failed and were answered as a miss or skipped (each is logged
    /// when the connection's health changes).
    fn failures(&self) -> u64 {
        self.inner.absorbed.load(Ordering::Relaxed)
    }

    /// Deletes every key under the prefix (`SCAN` and `UNLINK`), and tells every process to
    /// drop its memory tier, before and after.
    async fn clear(&self) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(inner.keys.channel())
            .arg(inner.invalidations.drop_all());
        inner.conn.cmd::<i64>(&publish, ADMIN_TIMEOUT).await?;
        let (pattern, entries) = (inner.keys.pattern(), format!("{}e:", inner.keys.prefix));
        let (mut cursor, mut removed) = (0_u64, 0_u64);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH);
            let (next, keys): (u64, Vec<String>) = inner.conn.cmd(&scan, ADMIN_TIMEOUT).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                inner.conn.cmd::<i64>(&unlink, ADMIN_TIMEOUT).await?;
                removed += keys.iter().filter(|k| k.starts_with(&entries)).count() as u64;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        inner.conn.cmd::<i64>(&publish, ADMIN_TIMEOUT).await?;
        Ok(removed)
    }

    /// The members of `<prefix>tag:<tag>` whose entries still exist; the others are removed
    /// from the set.
    async fn keys_tagged(&self, tag: &str) -> Result<Vec<CacheKey>, StoreError> {
        if !tags::is_valid_tag(tag) {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let set = inner.keys.tag(tag);
        let mut members = redis::cmd("SMEMBERS");
        members.arg(&set);
        let members: Vec<String> = inner.conn.cmd(&members, ADMIN_TIMEOUT).await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<CacheKey> = members.iter().map(|m| CacheKey::from_stored(m)).collect();
        let mut exists = redis::pipe();
        for key in &keys {
            exists.cmd("EXISTS").arg(inner.keys.entry(key));
        }
        let alive: Vec<bool> = inner.conn.pipe(&exists, ADMIN_TIMEOUT).await?;
        let dead: Vec<&String> = members
            .iter()
            .zip(&alive)
            .filter_map(|(member, alive)| (!alive).then_some(member))
            .collect();
        if !dead.is_empty() {
            let mut srem = redis::cmd("SREM");
            srem.arg(&set).arg(dead);
            inner.conn.cmd::<i64>(&srem, ADMIN_TIMEOUT).await?;
        }
        Ok(keys
            .into_iter()
            .zip(alive)
            .filter_map(|(key, alive)| alive.then_some(key))
            .collect())
    }

    async fn fill_lock(&self, key: &CacheKey) -> FillLock {
        self.take_fill_lock(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_and_the_scan_pattern() {
        let keys = Keys {
            prefix: "a*b:".to_owned(),
        };
        let key = CacheKey::from_uri(&"http://h/x?y".parse().unwrap()).unwrap();
        assert_eq!(keys.entry(&key), "a*b:e:http://h/x?y");
        assert_eq!(keys.tag("red"), "a*b:tag:red");
        assert_eq!(keys.lock(&key), "a*b:lock:http://h/x?y");
        assert_eq!(keys.channel(), "a*b:invalidate");
        assert_eq!(keys.pattern(), "a\\*b:*");
    }
}
