//! Collapsed forwarding across processes: `SET <prefix>lock:<key> <token> NX PX <ttl>` taken
//! by the process that goes to the origin; the others poll the lock until it is released
//! (once the response is stored) or expires.

use std::sync::LazyLock;
use std::time::Instant;

use redis::Script;

use super::RedisStore;
use super::conn::Conn;
use crate::key::CacheKey;
use crate::store::{FillGuard, FillLock};

/// Deletes the lock only if it still holds this process's token: an expired lock taken since
/// by another process is not released by this one.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) \
         else return 0 end",
    )
});

impl RedisStore {
    /// Takes the fill lock on `key`, or waits until the process that holds it releases it.
    pub(super) async fn take_fill_lock(&self, key: &CacheKey) -> FillLock {
        let inner = &self.inner;
        let lock = inner.keys.lock(key);
        let token = inner.invalidations.token();
        let ttl = u64::try_from(inner.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut set = redis::cmd("SET");
        set.arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.max(1));
        match inner.conn.cmd::<Option<String>>(&set, inner.timeout).await {
            Ok(Some(_)) => FillLock::Held(FillGuard::new(Release {
                conn: inner.conn.clone(),
                lock,
                token,
                limit: inner.timeout,
            })),
            Ok(None) => self.wait_for_release(&lock).await,
            Err(_) => FillLock::Unlocked,
        }
    }

    /// Polls `lock` until it is gone (released or expired); unlocked if Redis fails.
    async fn wait_for_release(&self, lock: &str) -> FillLock {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.lock_ttl + inner.poll_interval;
        let mut exists = redis::cmd("EXISTS");
        exists.arg(lock);
        loop {
            tokio::time::sleep(inner.poll_interval).await;
            match inner.conn.cmd::<bool>(&exists, inner.timeout).await {
                Ok(false) => return FillLock::Released,
                Ok(true) if Instant::now() >= deadline => return FillLock::Released,
                Ok(true) => {}
                Err(_) => return FillLock::Unlocked,
            }
        }
    }
}

/// Releases a fill lock when dropped (in a task: a drop cannot wait).
struct Release {
    conn: Conn,
    lock: String,
    token: String,
    limit: std::time::Duration,
}

impl Drop for Release {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // it expires by itself
        };
        let (conn, lock, token, limit) = (
            self.conn.clone(),
            std::mem::take(&mut self.lock),
            std::mem::take(&mut self.token),
            self.limit,
        );
        runtime.spawn(async move {
            let mut invocation = RELEASE.key(lock);
            invocation.arg(token);
            let _ = conn.script::<i64>(invocation, limit).await;
        });
    }
}
