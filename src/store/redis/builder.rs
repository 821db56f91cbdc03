//! [`RedisStoreBuilder`]: the options of a [`RedisStore`], and connecting it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::conn::{Conn, Health};
use super::invalidate::{self, Invalidations};
use super::{Inner, Keys, RedisStore};
use crate::store::{MemoryStore, StoreError};

/// Default key prefix.
const DEFAULT_PREFIX: &str = "tcl:";
/// Default time limit of one command on the request path.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default lifetime of a fill lock.
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);
/// Default interval between two looks at another process's fill lock.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(15);
/// Default bound of one encoded entry (all its `Vary` variants).
const DEFAULT_MAX_VALUE_SIZE: usize = 32 * 1024 * 1024;

/// Builds a [`RedisStore`]; from [`RedisStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    lock_ttl: Duration,
    poll_interval: Duration,
    max_value_size: usize,
    front: Option<MemoryStore>,
}

impl RedisStoreBuilder {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            lock_ttl: DEFAULT_LOCK_TTL,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            front: None,
        }
    }

    /// The prefix of every key this store writes (default `tcl:`): processes share entries
    /// when they share Redis and the prefix. A clear deletes every key that starts with it,
    /// so caches with their own prefixes in one Redis database must not have one prefix start
    /// another (`a:` and `a:b:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Time limit of each command on the request path (default 50 ms): past it, a lookup is
    /// a miss and a write is skipped.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a fill lock lives at most (default 5 s): other processes wait this long at
    /// most for the one fetching a key.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How often a process waiting for another's fill lock looks at it (default 15 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The largest encoded entry (all its variants) written to Redis (default 32 MiB); a
    /// larger one is not stored there (any older one is removed).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The memory tier in front of this store (the `front` of a [`Tiered`](crate::store::Tiered),
    /// a clone of it): what other processes change is dropped from it.
    pub fn front(mut self, front: MemoryStore) -> Self {
        self.front = Some(front);
        self
    }

    /// The store. The connection is made on first use and made again after every failure, so
    /// a store whose Redis is down can be built (its lookups miss until Redis is back); this
    /// waits up to a second for a first answer, to log whether Redis is there. With a
    /// [`front`](Self::front), starts the task that subscribes to invalidations (on the
    /// current tokio runtime).
    ///
    /// # Errors
    ///
    /// When `url` is not a Redis URL.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str()).map_err(StoreError::new)?;
        let health = Arc::new(Health::new(&self.url));
        let conn = Conn::new(client.clone(), Arc::clone(&health))?;
        let keys = Keys {
            prefix: self.prefix,
        };
        let ping: Result<String, _> = conn.cmd(&redis::cmd("PING"), Duration::from_secs(1)).await;
        if ping.is_ok() {
            tracing::debug!(prefix = %keys.prefix, "Redis store connected");
        }
        let invalidations = Arc::new(Invalidations::new(self.front));
        let inner = Arc::new_cyclic(|store: &Weak<Inner>| {
            let subscriber = invalidations.has_front().then(|| {
                invalidate::subscribe(
                    client,
                    keys.channel(),
                    Arc::clone(&invalidations),
                    Arc::clone(&health),
                    store.clone(),
                )
            });
            Inner {
                conn,
                keys,
                timeout: self.timeout,
                lock_ttl: self.lock_ttl,
                poll_interval: self.poll_interval,
                max_value_size: self.max_value_size,
                invalidations,
                subscriber,
                absorbed: std::sync::atomic::AtomicU64::new(0),
            }
        });
        Ok(RedisStore { inner })
    }
}
