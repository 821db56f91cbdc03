//! Read-while-write: the body of a miss being captured, shared as it grows with the requests
//! that collapsed onto it, so that they stream it as it arrives from the origin instead of
//! waiting for it to be stored (as Varnish does; nginx makes them wait).
//!
//! The leader's [`Tee`](crate::body::Tee) appends each data frame through a [`Writer`] as the
//! frame passes to the leader's client: the same [`Bytes`], a reference-count clone (what
//! arrived before the body was shared, one copy). Followers read it through a [`BodySource`]
//! of the body's announced length, so a follower's answer is built exactly as one from a
//! stored response (ranges included).
//!
//! Only a body whose exact length is known in advance is shared, only when it is held in
//! memory whole, and only once a request follows the leader: the buffer then starts with the
//! bytes captured so far (a follower that joins while the origin holds back the rest wakes the
//! leader's body task, which shares at once), and a miss nobody waits for makes none. Its
//! bytes are reserved in the capture budget up front, and kept until the last reader is done,
//! so a follower never lacks a chunk. A body that fails, or a leader whose client goes away
//! before the end (the capture stops with it), marks the buffer failed: the followers' bodies
//! end early, and their `Content-Length` tells their clients so (the connection is cut). A
//! truncated body is never served as complete.
//!
//! The leader's connection paces the capture: followers get the bytes as fast as the leader's
//! client takes them (as they got the stored body only once the leader's client had taken it
//! all). A follower never waits without bound: when no byte arrives for the collapse timeout
//! ([`CacheLayerBuilder::collapse_requests`](crate::CacheLayerBuilder::collapse_requests)),
//! its body is cut.

use std::fmt;
use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::flight::Reservation;
use crate::store::{BodySource, SourceBody, StoreError};

/// A body being received, readable while it grows; all of it is kept until dropped.
struct Shared {
    /// The body's announced length.
    len: u64,
    /// How long a reader waits for the next bytes before its body is cut.
    stall: Duration,
    state: Mutex<State>,
    /// The whole body's bytes, counted against the capture budget until the last reader is
    /// done.
    _reservation: Reservation,
}

struct State {
    /// Each chunk with its offset in the body.
    chunks: Vec<(u64, Bytes)>,
    received: u64,
    end: End,
    /// Readers waiting for more; all woken by the next change.
    waiting: Vec<Waker>,
    /// Counts the changes, so that a reader registers its waker once per change.
    epoch: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Complete,
    Failed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is one call: a panic while the lock was held left the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` and wakes every waiting reader.
    fn change(&self, change: impl FnOnce(&mut State)) {
        let waiting = {
            let mut state = self.lock();
            change(&mut state);
            state.epoch += 1;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

impl State {
    /// The stored bytes from `next` on, up to `last` (inclusive), from one chunk.
    fn read(&self, next: u64, last: u64) -> Option<Bytes> {
        if next >= self.received {
            return None;
        }
        let index = self.chunks.partition_point(|(start, _)| *start <= next) - 1;
        let (start, chunk) = &self.chunks[index];
        let from = usize::try_from(next - start).ok()?;
        let to = usize::try_from((last - start + 1).min(chunk.len() as u64)).ok()?;
        Some(chunk.slice(from..to))
    }
}

/// A new growing body of `len` bytes, whose bytes `reservation` holds: the writer that fills
/// it, and the source followers read it from. A reader waiting `stall` for the next bytes is
/// cut.
pub(crate) fn growing(
    len: u64,
    reservation: Reservation,
    stall: Duration,
) -> (Writer, Arc<dyn BodySource>) {
    let shared = Arc::new(Shared {
        len,
        stall,
        state: Mutex::new(State {
            chunks: Vec::new(),
            received: 0,
            end: End::Open,
            waiting: Vec::new(),
            epoch: 0,
        }),
        _reservation: reservation,
    });
    let writer = Writer {
        shared: Arc::clone(&shared),
        finished: false,
    };
    (writer, Arc::new(Source(shared)))
}

/// Appends the body as it arrives. Dropped before [`finish`](Self::finish), it marks the
/// body failed: its readers end with an error.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    finished: bool,
}

impl Writer {
    /// Appends `data` (a reference-count clone). Bytes past the announced length fail the
    /// body.
    pub(crate) fn push(&self, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        let len = self.shared.len;
        self.shared.change(|state| {
            let received = state.received + data.len() as u64;
            if state.end != End::Open || received > len {
                state.end = End::Failed;
                return;
            }
            state.chunks.push((state.received, data.clone()));
            state.received = received;
        });
    }

    /// The body ended: complete when it holds the announced length, else failed.
    pub(crate) fn finish(mut self) {
        self.finished = true;
        let len = self.shared.len;
        self.shared.change(|state| {
            if state.end == End::Open {
                state.end = if state.received == len {
                    End::Complete
                } else {
                    End::Failed
                };
            }
        });
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.change(|state| state.end = End::Failed);
        }
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("len", &self.shared.len)
            .finish_non_exhaustive()
    }
}

/// The growing body as a [`BodySource`]: streams any range of it, waiting for the bytes not
/// yet received.
struct Source(Arc<Shared>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrowingBody")
            .field("len", &self.0.len)
            .finish_non_exhaustive()
    }
}

impl BodySource for Source {
    fn len(&self) -> u64 {
        self.0.len
    }

    fn open(&self, range: RangeInclusive<u64>) -> SourceBody {
        let (next, last) = range.into_inner();
        Box::pin(Reader {
            shared: Arc::clone(&self.0),
            next,
            last,
            registered: None,
            stalled: None,
            armed: false,
        })
    }
}

/// Reads bytes `next..=last` of a growing body, as they arrive.
struct Reader {
    shared: Arc<Shared>,
    next: u64,
    last: u64,
    /// The change this reader's waker was registered for, and the waker.
    registered: Option<(u64, Waker)>,
    /// Cuts the body when no byte arrived for the stall bound (armed when the reader waits;
    /// the timer is kept and reset, not allocated again, across waits).
    stalled: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Reader {
    /// Has it waited for the stall bound since the last bytes? Arms the bound when it was not.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.shared.stall;
        let sleep = match (&mut self.stalled, self.armed) {
            (Some(sleep), true) => sleep,
            (Some(sleep), false) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            (None, _) => self
                .stalled
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        sleep.as_mut().poll(cx).is_ready()
    }

    /// The body is cut: the error its readers end with.
    fn cut(&mut self) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        self.next = self.last + 1;
        self.stalled = None;
        self.armed = false;
        Poll::Ready(Some(Err(StoreError::new(Cut))))
    }
}

impl Body for Reader {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = self.get_mut();
        if this.next > this.last {
            return Poll::Ready(None);
        }
        let shared = Arc::clone(&this.shared);
        let mut state = shared.lock();
        if let Some(data) = state.read(this.next, this.last) {
            this.next += data.len() as u64;
            this.armed = false;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match state.end {
            End::Open => {
                let epoch = state.epoch;
                let known = this
                    .registered
                    .as_ref()
                    .is_some_and(|(at, waker)| *at == epoch && waker.will_wake(cx.waker()));
                if !known {
                    state.waiting.push(cx.waker().clone());
                    this.registered = Some((epoch, cx.waker().clone()));
                }
                drop(state);
                if this.stalled(cx) {
                    tracing::debug!(
                        "no bytes of the response being received for the collapse timeout"
                    );
                    return this.cut();
                }
                Poll::Pending
            }
            // A complete body holds every byte of its length: only a failed one ends early.
            End::Complete | End::Failed => this.cut(),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next > self.last
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.last + 1).saturating_sub(self.next))
    }
}

/// The error a reader of a growing body ends with when the body failed before its end: the
/// leader's fetch or capture broke, which is logged where it happened, not by each reader.
#[derive(Debug)]
pub(crate) struct Cut;

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response being received failed before its end")
    }
}

impl std::error::Error for Cut {}

/// Is `error` a growing body's [`Cut`]?
pub(crate) fn is_cut(error: &StoreError) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<Cut>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flight::CaptureBudget;

    const STALL: Duration = Duration::from_secs(5);

    fn poll(body: &mut SourceBody) -> Poll<Option<Result<Bytes, StoreError>>> {
        let mut cx = Context::from_waker(Waker::noop());
        body.as_mut()
            .poll_frame(&mut cx)
            .map(|frame| frame.map(|frame| frame.map(|frame| frame.into_data().unwrap())))
    }

    fn reservation(budget: &Arc<CaptureBudget>, bytes: usize) -> Reservation {
        let mut reservation = Reservation::new(Arc::clone(budget));
        assert!(reservation.grow(bytes));
        reservation
    }

    #[tokio::test]
    async fn readers_get_the_bytes_as_they_arrive_then_the_end() {
        let budget = Arc::new(CaptureBudget::new(100));
        let (writer, source) = growing(10, reservation(&budget, 10), STALL);
        let mut whole = source.open(0..=9);
        let mut part = source.open(3..=6);
        assert!(poll(&mut whole).is_pending());
        writer.push(&Bytes::from_static(b"01234"));
        assert!(matches!(poll(&mut whole), Poll::Ready(Some(Ok(b))) if b == "01234"));
        assert!(matches!(poll(&mut part), Poll::Ready(Some(Ok(b))) if b == "34"));
        assert!(poll(&mut whole).is_pending());
        writer.push(&Bytes::from_static(b"56789"));
        writer.finish();
        assert!(matches!(poll(&mut part), Poll::Ready(Some(Ok(b))) if b == "56"));
        assert!(matches!(poll(&mut part), Poll::Ready(None)));
        assert!(matches!(poll(&mut whole), Poll::Ready(Some(Ok(b))) if b == "56789"));
        assert!(matches!(poll(&mut whole), Poll::Ready(None)));
        // The bytes stay reserved until the last reader is gone.
        drop((whole, part));
        assert_eq!(budget.used(), 10);
        drop(source);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_writer_dropped_before_the_end_fails_its_readers() {
        let budget = Arc::new(CaptureBudget::new(100));
        let (writer, source) = growing(10, reservation(&budget, 10), STALL);
        let mut reader = source.open(0..=9);
        writer.push(&Bytes::from_static(b"012"));
        drop(writer);
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Ok(b))) if b == "012"));
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Err(e))) if is_cut(&e)));
        assert!(matches!(poll(&mut reader), Poll::Ready(None)));
    }

    #[tokio::test]
    async fn a_body_shorter_or_longer_than_announced_fails() {
        let budget = Arc::new(CaptureBudget::new(100));
        let (writer, source) = growing(4, reservation(&budget, 4), STALL);
        writer.push(&Bytes::from_static(b"012"));
        writer.finish();
        let mut reader = source.open(0..=3);
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Err(_)))));

        let (writer, source) = growing(2, reservation(&budget, 2), STALL);
        writer.push(&Bytes::from_static(b"012"));
        let mut reader = source.open(0..=1);
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Err(_)))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_waiting_past_the_stall_bound_is_cut() {
        let budget = Arc::new(CaptureBudget::new(100));
        let (writer, source) = growing(10, reservation(&budget, 10), STALL);
        let mut reader = source.open(0..=9);
        writer.push(&Bytes::from_static(b"012"));
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Ok(_)))));
        tokio::time::advance(STALL - Duration::from_millis(1)).await;
        assert!(poll(&mut reader).is_pending());
        // Bytes arriving in time re-arm the bound.
        writer.push(&Bytes::from_static(b"345"));
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Ok(_)))));
        assert!(poll(&mut reader).is_pending());
        tokio::time::advance(STALL - Duration::from_millis(1)).await;
        assert!(poll(&mut reader).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(matches!(poll(&mut reader), Poll::Ready(Some(Err(e))) if is_cut(&e)));
        assert!(matches!(poll(&mut reader), Poll::Ready(None)));
        drop(writer);
    }
}
