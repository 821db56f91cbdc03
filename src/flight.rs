//! Single-flight bookkeeping: one request per key goes to the origin, the others wait for it
//! (collapsed forwarding), and a budget for the bytes being captured by misses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::key::CacheKey;

/// The requests under way to the origin, one per key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<CacheKey, Flight>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Flight {
    id: u64,
    done: watch::Receiver<()>,
}

/// The outcome of [`Flights::join`].
pub(crate) enum Join {
    /// Nobody was fetching this key: the caller does, and releases the key by dropping the
    /// guard.
    Lead(FlightGuard),
    /// Another request is fetching it; this resolves when that one is done.
    Follow(Follower),
}

impl Flights {
    /// Leads the fetch of `key`, or follows the request that already does.
    pub(crate) fn join(self: &Arc<Self>, key: &CacheKey) -> Join {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = map.get(key) {
            return Join::Follow(Follower {
                done: flight.done.clone(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, done) = watch::channel(());
        map.insert(key.clone(), Flight { id, done });
        Join::Lead(FlightGuard {
            flights: Arc::clone(self),
            key: key.clone(),
            id,
            _sender: sender,
        })
    }

    /// Leads the fetch of `key` if nobody does; `None` when a request already does.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &CacheKey) -> Option<FlightGuard> {
        match self.join(key) {
            Join::Lead(guard) => Some(guard),
            Join::Follow(_) => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Held by the request fetching a key; dropping it (response stored, not storable, failed, or
/// the request cancelled) releases the key and wakes every follower.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    id: u64,
    // Dropped after the map entry is removed: receivers then see the channel closed.
    _sender: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|flight| flight.id == self.id)
        {
            map.remove(&self.key);
        }
    }
}

impl std::fmt::Debug for FlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightGuard")
            .field("key", &self.key)
            .finish()
    }
}

/// Waits for the leading request of a key.
pub(crate) struct Follower {
    done: watch::Receiver<()>,
}

impl Follower {
    /// `true` once the leader is done, `false` when `timeout` passed first.
    pub(crate) async fn wait(mut self, timeout: Duration) -> bool {
        // The leader never sends: the channel closes when its guard is dropped.
        tokio::time::timeout(timeout, self.done.changed())
            .await
            .is_ok()
    }
}

/// Bounds the bytes held by misses being captured for the store, all keys together.
#[derive(Debug)]
pub(crate) struct CaptureBudget {
    used: AtomicUsize,
    limit: usize,
}

impl CaptureBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Reserves `bytes` more; `false` (and nothing reserved) when that would pass the limit.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes reserved in a [`CaptureBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<CaptureBudget>,
    bytes: usize,
}

impl Reservation {
    pub(crate) fn new(budget: Arc<CaptureBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Reserves `bytes` more; `false` when the budget is exhausted.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        if self.budget.try_reserve(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> CacheKey {
        CacheKey::from_uri(&s.parse().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn followers_wake_when_the_leader_is_done() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join(&key("http://h/a")) else {
            panic!("first request leads");
        };
        let Join::Follow(follower) = flights.join(&key("http://h/a")) else {
            panic!("second request follows");
        };
        assert!(matches!(flights.join(&key("http://h/b")), Join::Lead(_)));
        let waiting = tokio::spawn(follower.wait(Duration::from_secs(10)));
        drop(guard);
        assert!(waiting.await.unwrap());
        assert_eq!(flights.len(), 0);
        assert!(flights.try_lead(&key("http://h/a")).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn followers_give_up_after_the_timeout() {
        let flights = Arc::new(Flights::default());
        let _guard = flights.try_lead(&key("http://h/a")).unwrap();
        let Join::Follow(follower) = flights.join(&key("http://h/a")) else {
            panic!("follows");
        };
        assert!(!follower.wait(Duration::from_secs(1)).await);
    }

    #[test]
    fn budget_bounds_reservations_and_releases_on_drop() {
        let budget = Arc::new(CaptureBudget::new(100));
        let mut a = Reservation::new(Arc::clone(&budget));
        let mut b = Reservation::new(Arc::clone(&budget));
        assert!(a.grow(60));
        assert!(!b.grow(41));
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
