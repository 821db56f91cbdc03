//! Connection tracking: a registry of the live client connections, with a close signal for
//! each, so that the server can
//!
//! - admit at most `--max-connections` connections at once, closing the least recently active
//!   *idle* keep-alive connection to make room for a new one (as nginx reuses idle connections
//!   when it runs out), and making the new one wait only while every connection is busy;
//! - shut down gracefully: ask every connection to close after its responses in flight, and
//!   wait for them to be gone;
//! - close keep-alive connections idle for longer than the header read timeout
//!   ([`Registry::close_idle`], run periodically by [`spawn_idle_sweeper`]): a client that
//!   stalls on the head of a later request is idle too, since its request is not in flight
//!   until the head has been read. One sweep per connection set, rather than a timer armed
//!   for every request.
//!
//! A connection is idle when it has served at least one request and has no request in
//! flight. A request is in flight from the moment its head has been read until its response
//! body has been written in full or dropped ([`TrackedBody`] holds an [`InFlight`] guard).
//! A connection that has not finished its first request is never closed to make room: the
//! header read timeout bounds it.
//!
//! The registry is one `std::sync::Mutex` around a map, taken when a connection comes or goes
//! and never held across `.await`; a request's start and end touch only its connection's
//! counters (atomics).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{Notify, oneshot};

/// The live connections of one listener, shared by the accept loop and the connection tasks.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken when a connection goes away or becomes idle.
    changed: Notify,
    /// At most this many connections are admitted at once.
    max: usize,
    /// What [`Activity::last_active`] counts from.
    epoch: Instant,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    /// Set by [`Registry::shutdown`]: nothing more is admitted.
    shutting_down: bool,
}

/// What the registry knows about one connection.
#[derive(Debug)]
struct Conn {
    activity: Arc<Activity>,
    /// Taken when the connection is asked to close.
    close: Option<oneshot::Sender<()>>,
}

/// A connection's requests, counted by the connection itself without the registry's lock.
#[derive(Debug)]
struct Activity {
    /// Requests whose response body has not been written in full or dropped yet.
    in_flight: AtomicUsize,
    /// Whether the connection has received at least one request.
    served: AtomicBool,
    /// When the connection was admitted or last finished a response, in microseconds since
    /// the registry was made.
    last_active: AtomicU64,
}

impl Conn {
    /// Idle: a keep-alive connection between requests, which may be closed to make room.
    fn is_idle(&self) -> bool {
        self.activity.served.load(Ordering::Acquire)
            && self.activity.in_flight.load(Ordering::Acquire) == 0
    }

    /// Asks the connection to close gracefully (at most once).
    fn ask_to_close(&mut self) {
        if let Some(close) = self.close.take() {
            // The connection task may be finishing already; then there is nothing to close.
            let _ = close.send(());
        }
    }
}

impl State {
    fn ask_all_to_close(&mut self) {
        for conn in self.conns.values_mut() {
            conn.ask_to_close();
        }
    }
}

/// An admitted connection: its registry entry (removed when this is dropped) and the signal
/// asking it to close gracefully.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The connection's entry; dropping it frees the slot.
    pub(crate) slot: Slot,
    /// Completes when the connection should close after its responses in flight (to make room
    /// for a new connection, or on shutdown).
    pub(crate) close: oneshot::Receiver<()>,
}

/// A connection's place in the registry; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    activity: Arc<Activity>,
    registry: Registry,
}

impl Registry {
    /// A registry admitting at most `max` connections at once.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                max: max.max(1),
                epoch: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters: keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connections currently admitted.
    pub(crate) fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Waits for a free slot and takes it; `None` once [`shutdown`](Self::shutdown) was called.
    ///
    /// At the limit, the least recently active idle connection is asked to close; if every
    /// connection is busy, this waits until one finishes a response or goes away.
    pub(crate) async fn admit(&self) -> Option<Admitted> {
        let mut warned = false;
        loop {
            // Registered before looking, so that no wake-up between the look and the wait
            // is lost (`notify_one` also keeps a permit for a waiter that is not there yet).
            let changed = self.shared.changed.notified();
            {
                let mut state = self.lock();
                if state.shutting_down {
                    return None;
                }
                if state.conns.len() < self.shared.max {
                    let id = state.next_id;
                    state.next_id += 1;
                    let (close_tx, close_rx) = oneshot::channel();
                    let activity = Arc::new(Activity {
                        in_flight: AtomicUsize::new(0),
                        served: AtomicBool::new(false),
                        last_active: AtomicU64::new(self.now()),
                    });
                    state.conns.insert(
                        id,
                        Conn {
                            activity: Arc::clone(&activity),
                            close: Some(close_tx),
                        },
                    );
                    return Some(Admitted {
                        slot: Slot {
                            id,
                            activity,
                            registry: self.clone(),
                        },
                        close: close_rx,
                    });
                }
                // An idle connection already asked to close goes away at once: wait for it.
                // Otherwise ask the least recently active idle one.
                let closing_idle = state
                    .conns
                    .values()
                    .any(|conn| conn.close.is_none() && conn.is_idle());
                if !closing_idle {
                    let oldest_idle = state
                        .conns
                        .values_mut()
                        .filter(|conn| conn.close.is_some() && conn.is_idle())
                        .min_by_key(|conn| conn.activity.last_active.load(Ordering::Acquire));
                    match oldest_idle {
                        Some(conn) => {
                            tracing::debug!("connection limit reached; closing an idle connection");
                            conn.ask_to_close();
                        }
                        None if !warned => {
                            warned = true;
                            tracing::warn!(
                                max_connections = self.shared.max,
                                "connection limit reached and every connection is busy; \
                                 new connections wait"
                            );
                        }
                        None => {}
                    }
                }
            }
            changed.await;
        }
    }

    /// Refuses further admissions and asks every connection to close once its responses in
    /// flight are done.
    pub(crate) fn shutdown(&self) {
        let mut state = self.lock();
        state.shutting_down = true;
        state.ask_all_to_close();
        drop(state);
        self.shared.changed.notify_one();
    }

    /// Completes when no connection is left.
    pub(crate) async fn closed(&self) {
        loop {
            let changed = self.shared.changed.notified();
            if self.len() == 0 {
                return;
            }
            changed.await;
        }
    }

    fn changed(&self) {
        self.shared.changed.notify_one();
    }

    /// Asks every connection that has served a request and has had none in flight for
    /// `timeout` to close. Connections still waiting for their first request head are left to
    /// their own deadline (the connection task's).
    pub(crate) fn close_idle(&self, timeout: Duration) {
        let now = self.now();
        let timeout = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        let mut state = self.lock();
        for conn in state.conns.values_mut() {
            let since = conn.activity.last_active.load(Ordering::Acquire);
            if conn.is_idle() && now.saturating_sub(since) >= timeout {
                conn.ask_to_close();
            }
        }
    }

    /// Microseconds since the registry was made.
    fn now(&self) -> u64 {
        u64::try_from(self.shared.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Slot {
    /// Marks the start of a request on this connection; the request is in flight until the
    /// returned guard is dropped.
    pub(crate) fn request(&self) -> InFlight {
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.served.store(true, Ordering::Release);
        InFlight {
            activity: Arc::clone(&self.activity),
            registry: self.registry.clone(),
        }
    }
}

impl Slot {
    /// Whether the connection has received a request head yet.
    pub(crate) fn has_served(&self) -> bool {
        self.activity.served.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let removed = self.registry.lock().conns.remove(&self.id);
        if removed.is_some() {
            self.registry.changed();
        }
    }
}

/// Runs [`Registry::close_idle`] every quarter of `timeout` (at least once a second), so that
/// an idle connection is closed at most a quarter of the timeout (or a second) late. It stops
/// when the registry shuts down.
pub(crate) fn spawn_idle_sweeper(registry: Registry, timeout: Duration) {
    let period = (timeout / 4).min(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if registry.lock().shutting_down {
                return;
            }
            registry.close_idle(timeout);
        }
    });
}

/// A request in flight on a connection: from its head being read until its response body is
/// written in full or dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    activity: Arc<Activity>,
    registry: Registry,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Set before the count goes down: an admission that finds the connection idle sees
        // when it became so.
        self.activity
            .last_active
            .store(self.registry.now(), Ordering::Release);
        if self.activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.registry.changed();
        }
    }
}

pin_project! {
    /// A response body that keeps its request [`InFlight`] until the body has ended or is
    /// dropped.
    #[derive(Debug)]
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> TrackedBody<B> {
    /// Wraps `inner`; `in_flight` is released when it ends.
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        // hyper stops polling once a body reports its end after a frame; the guard goes then,
        // or when the body is dropped.
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.in_flight.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
