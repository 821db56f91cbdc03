//! The connection to Redis: every command bounded in time, and Redis's health logged when it
//! changes, not per request.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{Client, Cmd, FromRedisValue, Pipeline, RedisResult, ScriptInvocation};

use crate::store::StoreError;

/// Commands with a shorter time limit are the request path's: while Redis is down, one of
/// them is sent every [`PROBE_INTERVAL`] and the others fail at once, so that a request does
/// not wait for a Redis that is known not to answer.
const GATED_BELOW: Duration = Duration::from_secs(1);

/// While Redis is down, how often a request-path command is sent to find out whether it is
/// back.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// A [`ConnectionManager`] (one multiplexed connection, re-established after an I/O error)
/// with a time limit on each command and the health of Redis.
#[derive(Clone)]
pub(super) struct Conn {
    manager: ConnectionManager,
    health: Arc<Health>,
}

impl Conn {
    /// A connection to `client`'s server, made on first use (so a proxy starts while Redis
    /// is down) and again after every I/O error.
    pub(super) fn new(client: Client, health: Arc<Health>) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(StoreError::new)?;
        Ok(Self { manager, health })
    }

    /// Runs `cmd`, for at most `limit`.
    pub(super) async fn cmd<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let mut manager = self.manager.clone();
        self.bounded(cmd.query_async(&mut manager), limit).await
    }

    /// Runs `pipe`, for at most `limit`.
    pub(super) async fn pipe<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let mut manager = self.manager.clone();
        self.bounded(pipe.query_async(&mut manager), limit).await
    }

    /// Runs a script, for at most `limit`.
    pub(super) async fn script<T: FromRedisValue>(
        &self,
        script: ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let mut manager = self.manager.clone();
        self.bounded(script.invoke_async(&mut manager), limit).await
    }

    async fn bounded<T>(
        &self,
        query: impl Future<Output = RedisResult<T>>,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let seen = self.health.seen();
        if limit < GATED_BELOW && !self.health.may_ask(seen) {
            return Err(StoreError::new(
                "Redis unreachable (not asked until the next probe)",
            ));
        }
        match tokio::time::timeout(limit, query).await {
            Ok(Ok(value)) => {
                self.health.answered(seen);
                Ok(value)
            }
            Ok(Err(error)) => {
                self.health.failed(seen, &error);
                Err(StoreError::new(error))
            }
            Err(_) => {
                let error = format!("no answer within {} ms", limit.as_millis());
                self.health.failed(seen, &error);
                Err(StoreError::new(error))
            }
        }
    }
}

/// Whether Redis answers: logged once when it stops answering and once when it is back.
///
/// The state is a count of changes, times two, plus one while Redis is down. A command
/// changes it only if it did not change while the command ran: a reply that was on its way
/// when Redis went down does not say it is back, nor does a command stuck behind the
/// reconnection say it is down again.
#[derive(Debug)]
pub(super) struct Health {
    state: AtomicU64,
    /// While down: when the next probe may be sent, in milliseconds since `started`.
    next_probe: AtomicU64,
    started: Instant,
    /// Redis's address, without credentials, for the log.
    target: String,
}

impl Health {
    pub(super) fn new(url: &str) -> Self {
        // `redis://user:password@host:port/db`: never log the credentials.
        let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        Self {
            state: AtomicU64::new(0),
            next_probe: AtomicU64::new(0),
            started: Instant::now(),
            target: format!("{scheme}://{rest}"),
        }
    }

    /// Whether a request-path command may be sent in state `seen`: always while Redis is up;
    /// while it is down, once per [`PROBE_INTERVAL`].
    fn may_ask(&self, seen: u64) -> bool {
        if seen & 1 == 0 {
            return true;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_probe.load(Ordering::Acquire);
        let next = now.saturating_add(PROBE_INTERVAL.as_millis() as u64);
        now >= due
            && self
                .next_probe
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The state before a command.
    fn seen(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    /// Moves from `seen` to the other state, if nothing else did meanwhile; whether it did.
    fn flip(&self, seen: u64, down: bool) -> bool {
        let is_down = seen & 1 == 1;
        if is_down == down {
            return false;
        }
        let next = ((seen >> 1) + 1) << 1 | u64::from(down);
        self.state
            .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A command that started in state `seen` failed or timed out.
    fn failed(&self, seen: u64, error: &dyn Display) {
        if self.flip(seen, true) {
            tracing::warn!(
                redis = %self.target,
                %error,
                "Redis unreachable: requests are forwarded and answered as misses (from the memory tier when it has them) until it is back"
            );
        }
    }

    /// A command that started in state `seen` succeeded.
    fn answered(&self, seen: u64) {
        if self.flip(seen, false) {
            tracing::info!(redis = %self.target, "Redis reachable again");
        }
    }

    /// Redis is unreachable (the invalidation subscription failed).
    pub(super) fn unreachable(&self, error: &dyn Display) {
        self.failed(self.seen(), error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_target_has_no_credentials() {
        let health = Health::new("redis://user:secret@cache.internal:6380/2");
        assert_eq!(health.target, "redis://cache.internal:6380/2");
        assert_eq!(Health::new("rediss://h:1/0").target, "rediss://h:1/0");
    }

    #[test]
    fn only_a_command_that_started_after_the_last_change_changes_the_state() {
        let health = Health::new("redis://h:1/0");
        let before = health.seen();
        health.unreachable(&"down");
        let down = health.seen();
        assert_eq!(down & 1, 1);
        health.answered(before); // on its way before Redis went down
        assert_eq!(health.seen(), down);
        health.answered(down);
        let up = health.seen();
        assert_eq!(up & 1, 0);
        health.failed(down, &"stuck behind the reconnection");
        assert_eq!(health.seen(), up);
    }

    #[test]
    fn while_down_one_command_per_interval_is_sent() {
        let health = Health::new("redis://h:1/0");
        assert!(health.may_ask(health.seen()));
        health.unreachable(&"down");
        let down = health.seen();
        assert!(health.may_ask(down), "the first probe");
        assert!(!health.may_ask(down), "the others wait for the next one");
        health.answered(down);
        assert!(health.may_ask(health.seen()));
    }
}
