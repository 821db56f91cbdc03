//! Single-flight bookkeeping: one request per key goes to the origin, the others wait for it
//! (collapsed forwarding), streaming its response as it arrives when it shares it
//! (read-while-write), and learn what became of it; the keys whose responses could not be
//! stored (hit-for-miss); and (in `budget`) a budget for the bytes being captured by misses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use crate::budget::{CaptureBudget, Reservation};
use crate::key::{CacheKey, KeyHashing};
use crate::recent::RecentKeys;
use crate::store::{FillGuard, StoredResponse};

/// How long a key whose response could not be stored is not waited on.
const UNCACHEABLE_TTL: Duration = Duration::from_secs(30);

/// The requests under way to the origin, one per key, and the keys recently found not
/// storable.
#[derive(Debug)]
pub(crate) struct Flights {
    map: Mutex<HashMap<CacheKey, Flight, KeyHashing>>,
    next_id: AtomicU64,
    /// Keys whose last response could not be stored: requests for them do not wait for one
    /// another (Varnish's hit-for-miss).
    uncacheable: RecentKeys,
}

#[derive(Debug)]
struct Flight {
    id: u64,
    /// Where followers watch the flight's state: made when the first one follows, so that a
    /// flight nobody follows (most misses) makes no channel and wakes nobody.
    watchers: Option<watch::Sender<State>>,
    /// The state while nobody follows; in `watchers` from then on.
    state: State,
    /// The leader's body task while it waits for the origin with its body not shared yet:
    /// woken when a request follows, so that it shares what arrived so far at once
    /// ([`FlightGuard::is_followed`]).
    leader: Option<Waker>,
}

/// Where a flight is, as its followers see it.
#[derive(Debug)]
enum State {
    /// The leader waits for the origin's response, or its body is not shared (not at all,
    /// or no more: it is complete and being stored).
    Fetching,
    /// The leader's response is being received: its body grows as it arrives
    /// ([`growing`](crate::growing)), and followers may answer from it at once.
    Streaming(Arc<StoredResponse>),
    /// The leader is done.
    Done(Outcome),
}

/// What became of the request a key's followers waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its response was handed to the store and written: followers look it up.
    Stored,
    /// Its response cannot be stored, for reasons that hold for the next request too; the key
    /// is remembered as such for a while ([`Flights::is_uncacheable`]).
    NotStorable,
    /// Anything else: an error, a response not stored for reasons of that request alone, the
    /// request cancelled, a store that failed. Followers may try to lead in turn.
    Failed,
}

/// The outcome of [`Flights::join`].
pub(crate) enum Join {
    /// Nobody was fetching this key: the caller does, and releases the key with
    /// [`FlightGuard::release`] or by dropping the guard.
    Lead(FlightGuard),
    /// Another request is fetching it; this resolves when that one is done.
    Follow(Follower),
}

impl Default for Flights {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            next_id: AtomicU64::new(0),
            uncacheable: RecentKeys::new(UNCACHEABLE_TTL),
        }
    }
}

impl Flights {
    /// The flights under way. Every change under the lock is one call that leaves the map
    /// consistent, so a panic while it was held poisons nothing that matters.
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Flight, KeyHashing>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads the fetch of `key`, or follows the request that already does.
    pub(crate) fn join(self: &Arc<Self>, key: &CacheKey) -> Join {
        let mut map = self.lock();
        if let Some(flight) = map.get_mut(key) {
            let follower = Follower {
                done: flight.watch(),
            };
            let leader = flight.leader.take();
            drop(map);
            if let Some(leader) = leader {
                leader.wake();
            }
            return Join::Follow(follower);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(
            key.clone(),
            Flight {
                id,
                watchers: None,
                state: State::Fetching,
                leader: None,
            },
        );
        Join::Lead(FlightGuard {
            flights: Arc::clone(self),
            key: key.clone(),
            id,
            outcome: Outcome::Failed,
            fill: None,
        })
    }

    /// Leads the fetch of `key` if nobody does; `None` when a request already does.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &CacheKey) -> Option<FlightGuard> {
        match self.join(key) {
            Join::Lead(guard) => Some(guard),
            Join::Follow(_) => None,
        }
    }

    /// Was a response for `key` recently found not storable?
    pub(crate) fn is_uncacheable(&self, key: &CacheKey) -> bool {
        self.uncacheable.contains(key)
    }

    /// A response for `key` cannot be stored, for reasons that hold for the next request too:
    /// releases `flight` (if this request led) with [`Outcome::NotStorable`], and remembers
    /// the key either way.
    pub(crate) fn not_storable(&self, key: &CacheKey, flight: Option<FlightGuard>) {
        match flight {
            Some(flight) => flight.release(Outcome::NotStorable),
            None => self.remember_uncacheable(key),
        }
    }

    fn remember_uncacheable(&self, key: &CacheKey) {
        self.uncacheable.mark(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Held by the request fetching a key. Released with its [`Outcome`], or dropped (an error,
/// the request cancelled: [`Outcome::Failed`]); either way the key is freed and every
/// follower woken with the outcome.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    id: u64,
    outcome: Outcome,
    /// The store's lock across processes on filling the key, released with the flight.
    fill: Option<FillGuard>,
}

impl FlightGuard {
    /// Holds the store's lock across processes (`Store::fill_lock`) until the flight is
    /// released: after the response is stored, or when it is given up.
    pub(crate) fn hold(&mut self, fill: FillGuard) {
        self.fill = Some(fill);
    }

    /// This guard's flight in `map` (a flight of the same key made after this one was released
    /// is another's).
    fn own<'a>(
        &self,
        map: &'a mut HashMap<CacheKey, Flight, KeyHashing>,
    ) -> Option<&'a mut Flight> {
        map.get_mut(&self.key).filter(|flight| flight.id == self.id)
    }

    /// Does a request follow this one (wait for its response)? If none does yet, `waker`
    /// (when given) is woken when one does. Both under the flights' lock, under which
    /// followers join: a follower is counted here, or finds the waker.
    pub(crate) fn is_followed(&self, waker: Option<&Waker>) -> bool {
        let mut map = self.flights.lock();
        let Some(flight) = self.own(&mut map) else {
            return false;
        };
        if flight.is_followed() {
            return true;
        }
        match (&mut flight.leader, waker) {
            (Some(leader), Some(waker)) if leader.will_wake(waker) => {}
            (leader, Some(waker)) => *leader = Some(waker.clone()),
            (_, None) => {}
        }
        false
    }

    /// Shares the response being received with the followers, who may answer from it before
    /// it is stored (read-while-write); its body is a growing one ([`crate::growing`]).
    pub(crate) fn publish(&self, response: Arc<StoredResponse>) {
        self.set(State::Streaming(response));
    }

    /// Sets the state followers see, waking those that follow already; one that follows
    /// later starts from it. Under the flights' lock, under which followers join.
    fn set(&self, state: State) {
        let mut map = self.flights.lock();
        if let Some(flight) = self.own(&mut map) {
            match &flight.watchers {
                Some(watchers) => {
                    watchers.send_replace(state);
                }
                None => flight.state = state,
            }
        }
    }

    /// The shared response is complete and handed to the store: requests that follow from now
    /// on wait for it to be stored and are answered from the store, as without
    /// read-while-write (the growing body is then held only by the requests reading it).
    pub(crate) fn unpublish(&self) {
        self.set(State::Fetching);
    }

    /// Releases the key, telling the followers `outcome`.
    pub(crate) fn release(mut self, outcome: Outcome) {
        self.outcome = outcome;
        // Dropped here: the drop frees the key and sends the outcome.
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        // Remembered before the followers wake, so that they see it when they look.
        if self.outcome == Outcome::NotStorable {
            self.flights.remember_uncacheable(&self.key);
        }
        let flight = {
            let mut map = self.flights.lock();
            match self.own(&mut map) {
                Some(_) => map.remove(&self.key),
                None => None,
            }
        };
        // After the map entry is removed: a woken follower that joins again leads or follows
        // a new flight, never this finished one. Nobody can follow any more: with no follower
        // left there is no one to tell.
        if let Some(watchers) = flight.and_then(|flight| flight.watchers) {
            if watchers.receiver_count() > 0 {
                watchers.send_replace(State::Done(self.outcome));
            }
        }
    }
}

impl Flight {
    /// A new follower's view of the flight: the channel is made with the first.
    fn watch(&mut self) -> watch::Receiver<State> {
        match &self.watchers {
            Some(watchers) => watchers.subscribe(),
            None => {
                let state = std::mem::replace(&mut self.state, State::Fetching);
                let (watchers, receiver) = watch::channel(state);
                self.watchers = Some(watchers);
                receiver
            }
        }
    }

    /// Does a request wait for this flight?
    fn is_followed(&self) -> bool {
        self.watchers
            .as_ref()
            .is_some_and(|watchers| watchers.receiver_count() > 0)
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
    done: watch::Receiver<State>,
}

impl Follower {
    /// The leader's response as soon as it is being received and shared
    /// ([`FlightGuard::publish`]); `None` when the leader finished without sharing one, or
    /// `deadline` passed first.
    pub(crate) async fn streaming(&mut self, deadline: Instant) -> Option<Arc<StoredResponse>> {
        let past_fetching = self
            .done
            .wait_for(|state| !matches!(state, State::Fetching));
        match tokio::time::timeout_at(deadline, past_fetching).await {
            Ok(Ok(state)) => match &*state {
                State::Streaming(response) => Some(Arc::clone(response)),
                State::Fetching | State::Done(_) => None,
            },
            // The deadline passed, or the leader is gone (it sent `Done` before going).
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// The leader's outcome once it is done; `None` when `deadline` passed first.
    pub(crate) async fn wait(mut self, deadline: Instant) -> Option<Outcome> {
        let done = self.done.wait_for(|state| matches!(state, State::Done(_)));
        match tokio::time::timeout_at(deadline, done).await {
            Ok(Ok(state)) => match &*state {
                State::Done(outcome) => Some(*outcome),
                State::Fetching | State::Streaming(_) => Some(Outcome::Failed),
            },
            // The channel closed: the leader is gone.
            Ok(Err(_)) => Some(Outcome::Failed),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> CacheKey {
        CacheKey::from_uri(&s.parse().unwrap()).unwrap()
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    /// A waker that counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_leader_waiting_to_share_is_woken_by_the_first_follower() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join(&key("http://h/a")) else {
            panic!("first request leads");
        };
        let wakes = Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        assert!(!guard.is_followed(None));
        assert!(!guard.is_followed(Some(&waker)));
        // Another key's follower is not this flight's.
        let _other = flights.join(&key("http://h/b"));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

        let Join::Follow(_follower) = flights.join(&key("http://h/a")) else {
            panic!("second request follows");
        };
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(guard.is_followed(None));
        assert!(guard.is_followed(Some(&waker)));
        // The waker was taken: a second follower wakes nobody.
        let _second = flights.join(&key("http://h/a"));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
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
        let waiting = tokio::spawn(follower.wait(in_secs(10)));
        drop(guard);
        assert_eq!(waiting.await.unwrap(), Some(Outcome::Failed));
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
        assert_eq!(follower.wait(in_secs(1)).await, None);
    }

    #[tokio::test]
    async fn followers_read_the_outcome_the_leader_released() {
        let flights = Arc::new(Flights::default());
        let a = key("http://h/a");
        let guard = flights.try_lead(&a).unwrap();
        let Join::Follow(follower) = flights.join(&a) else {
            panic!("follows");
        };
        let waiting = tokio::spawn(follower.wait(in_secs(10)));
        guard.release(Outcome::Stored);
        assert_eq!(waiting.await.unwrap(), Some(Outcome::Stored));
        assert!(!flights.is_uncacheable(&a));
    }

    #[tokio::test]
    async fn followers_get_the_published_response_then_the_outcome() {
        use crate::policy::{ResponsePolicy, VaryKey};
        let flights = Arc::new(Flights::default());
        let a = key("http://h/a");
        let guard = flights.try_lead(&a).unwrap();
        let Join::Follow(mut early) = flights.join(&a) else {
            panic!("follows");
        };
        let (streamed, streaming) = tokio::sync::oneshot::channel();
        let waiting = tokio::spawn(async move {
            let _ = streamed.send(early.streaming(in_secs(10)).await);
            early.wait(in_secs(10)).await
        });
        let policy = ResponsePolicy::from_parts(
            Duration::from_secs(60),
            Duration::ZERO,
            std::time::SystemTime::now(),
        );
        let response = StoredResponse::new(
            http::StatusCode::OK,
            http::HeaderMap::new(),
            bytes::Bytes::from_static(b"hello"),
            policy,
            VaryKey::default(),
        );
        guard.publish(Arc::new(response));
        // A follower joining after the publication gets it at once.
        let Join::Follow(mut late) = flights.join(&a) else {
            panic!("follows");
        };
        assert!(late.streaming(in_secs(10)).await.is_some());
        let response = streaming.await.unwrap();
        assert_eq!(response.unwrap().status(), http::StatusCode::OK);
        guard.release(Outcome::Stored);
        assert_eq!(waiting.await.unwrap(), Some(Outcome::Stored));
        assert_eq!(late.wait(in_secs(10)).await, Some(Outcome::Stored));
        // A flight that ends without publishing tells its followers nothing to stream.
        let guard = flights.try_lead(&a).unwrap();
        let Join::Follow(mut follower) = flights.join(&a) else {
            panic!("follows");
        };
        drop(guard);
        assert!(follower.streaming(in_secs(10)).await.is_none());
        assert_eq!(follower.wait(in_secs(10)).await, Some(Outcome::Failed));
    }

    #[tokio::test]
    async fn not_storable_is_remembered_before_followers_wake() {
        let flights = Arc::new(Flights::default());
        let (a, b) = (key("http://h/a"), key("http://h/b"));
        let guard = flights.try_lead(&a).unwrap();
        let Join::Follow(follower) = flights.join(&a) else {
            panic!("follows");
        };
        let waiting = tokio::spawn(follower.wait(in_secs(10)));
        flights.not_storable(&a, Some(guard));
        assert_eq!(waiting.await.unwrap(), Some(Outcome::NotStorable));
        assert!(flights.is_uncacheable(&a));
        assert_eq!(flights.len(), 0);
        // Without a flight, the key is remembered all the same.
        flights.not_storable(&b, None);
        assert!(flights.is_uncacheable(&b));
    }
}
