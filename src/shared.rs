//! The state one cache shares: the layer, every service it made and every handle hold it
//! behind one `Arc`. Below them all: it imports none of the layer, the service, the handle or
//! the body, and the body reaches it only through [`Commit`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderMap, HeaderName, StatusCode};

use crate::admission::{Admission, Doorkeeper};
use crate::clock::Clock;
use crate::flight::{CaptureBudget, FlightGuard, Flights, Outcome};
use crate::key::CacheKey;
use crate::metrics::{Metrics, RequestOutcome};
use crate::policy::decide::Unstored;
use crate::policy::headers::{compacted, decimal_value, exact_value};
use crate::policy::range::{ContentRange, combine_parts, content_range};
use crate::policy::{CacheOptions, lifetime};
use crate::status::StatusHeaders;
use crate::store::{Store, StoreError, StoredEntry, StoredResponse};
use crate::tally::KeyTally;

/// A predicate that sends a request past the cache (`CacheLayerBuilder::bypass`).
pub(crate) type Bypass = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

/// State shared by the layer, every service it made and every handle: one cache.
pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) options: CacheOptions,
    pub(crate) max_entry_size: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) status: Arc<StatusHeaders>,
    pub(crate) stats: Stats,
    /// A targeted `Cache-Control` field that takes precedence (RFC 9213).
    pub(crate) targeted: Option<HeaderName>,
    /// Requests under way to the origin, one per key: misses that others wait for, and
    /// background revalidations (RFC 5861 §3); and the keys whose responses were recently not
    /// storable (hit-for-miss).
    pub(crate) flights: Arc<Flights>,
    /// Bytes of misses being captured, all keys together.
    pub(crate) capture: Arc<CaptureBudget>,
    /// Collapsed forwarding on, and how long a request waits for the one it follows.
    pub(crate) collapse: Option<Duration>,
    /// Store a key's response only after it was requested this often (`min_uses`).
    pub(crate) admission: Option<Admission>,
    /// While the store is full, store a key's response only from its second use
    /// (`doorkeeper`); unused when `admission` asks for more uses anyway.
    pub(crate) doorkeeper: Option<Doorkeeper>,
    /// Request fields that select a stored response besides its `Vary` (`key_headers`).
    pub(crate) key_headers: Vec<HeaderName>,
    /// Requests this predicate picks go past the cache (`bypass`).
    pub(crate) bypass: Option<Bypass>,
    /// The metrics' handles (no-ops without the `metrics` feature).
    pub(crate) metrics: Arc<Metrics>,
    /// This cache's writes, counted before each is made: a request that leads its key's
    /// flight looks the key up again only if one was counted since it looked
    /// (`Shared::written_since`).
    pub(crate) writes: KeyTally,
}

/// The counters behind [`CacheStats`](crate::CacheStats).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Answered from the store.
    pub(crate) hits: AtomicU64,
    /// Cacheable requests answered by the inner service.
    pub(crate) misses: AtomicU64,
    /// Requests the cache does not handle.
    pub(crate) passes: AtomicU64,
    /// Responses written to the store.
    pub(crate) stores: AtomicU64,
}

impl<St> Shared<St> {
    /// Counts a request answered with `outcome`, in the stats and the metrics.
    #[inline]
    pub(crate) fn count(&self, outcome: RequestOutcome) {
        let counter = match outcome {
            RequestOutcome::Hit
            | RequestOutcome::Stale
            | RequestOutcome::Revalidated
            | RequestOutcome::Collapsed => &self.stats.hits,
            RequestOutcome::Miss => &self.stats.misses,
            RequestOutcome::Bypass | RequestOutcome::Method => &self.stats.passes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.request(outcome);
    }

    /// The stored response `entry` selects for a request with `req_headers` (RFC 9111 §4.1),
    /// unless it varies on a field the cache does not see as the origin does
    /// ([`CacheOptions::unseen_fields`]): one a store kept from before the field was declared.
    pub(crate) fn select<'a>(
        &self,
        entry: &'a StoredEntry,
        req_headers: &HeaderMap,
    ) -> Option<&'a Arc<StoredResponse>> {
        let stored = entry.select(req_headers)?;
        (!self.options.names_unseen(stored.vary.fields())).then_some(stored)
    }
}

impl<St: Store> Shared<St> {
    /// Sets the gauges of what the store holds, when it can say ([`Store::size`]); done when
    /// the stats are read (a metrics scrape reads them), not on every write.
    pub(crate) fn update_gauges(&self) {
        #[cfg(feature = "metrics")]
        {
            if let Some((entries, bytes)) = self.store.size() {
                self.metrics.held(entries, bytes);
            }
            self.metrics.absorbed_store_errors(self.store.failures());
        }
    }
}

/// Receives complete responses captured from misses. Implemented by [`Shared`], which hands
/// them to the store without blocking the body.
pub(crate) trait Commit: Send + Sync {
    /// Stores `response`, received for a request with `req_headers`; `flight` is released
    /// once it is stored.
    fn commit(
        self: Arc<Self>,
        key: CacheKey,
        response: StoredResponse,
        req_headers: HeaderMap,
        flight: Option<FlightGuard>,
    );
}

impl<St: Store> Commit for Shared<St> {
    fn commit(
        self: Arc<Self>,
        key: CacheKey,
        response: StoredResponse,
        req_headers: HeaderMap,
        flight: Option<FlightGuard>,
    ) {
        // Read, add the variant, write: concurrent stores of two variants of one URL may keep
        // only one of them, which costs a later miss, never a wrong answer. A response that
        // replaces every variant is written without reading what it replaces.
        // A store that answers at once (in memory) stores the entry here, before the client
        // has read the last byte; one that must wait continues in a task, without holding up
        // the body.
        let stored = if response.replaces_every_variant() {
            None
        } else {
            match self.store.get_now(&key) {
                Some(Ok(stored)) => stored,
                Some(Err(_)) | None => {
                    self.commit_later(key, response, req_headers, flight);
                    return;
                }
            }
        };
        // Released once stored, when waiting requests can be answered from the store;
        // dropped (`Outcome::Failed`) when nothing was written.
        let Some(entry) = self.entry_with(stored, response, &req_headers) else {
            return;
        };
        let ttl = self.ttl(&entry);
        if let Some(result) = self.put_now(&key, &entry, ttl) {
            self.stored(result, flight);
            return;
        }
        spawn(async move {
            let result = self.store.put(key, entry, ttl).await;
            self.stored(result, flight);
        });
    }
}

/// Runs `task` on the current tokio runtime; without one, the response is not stored.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
        }
        Err(_) => tracing::warn!("no tokio runtime to finish storing a response; dropped"),
    }
}

impl<St: Store> Shared<St> {
    /// [`Commit::commit`] in a task, for a store that must wait to read what `key` holds.
    fn commit_later(
        self: Arc<Self>,
        key: CacheKey,
        response: StoredResponse,
        req_headers: HeaderMap,
        flight: Option<FlightGuard>,
    ) {
        spawn(async move {
            let stored = self.get(&key).await;
            if let Some(entry) = self.entry_with(stored, response, &req_headers) {
                let result = self.put(key, entry).await;
                self.stored(result, flight);
            }
        });
    }

    /// The entry stored under `key`: at once when the store can answer so, else waiting. A
    /// store that fails is logged and counts as having nothing.
    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Arc<StoredEntry>> {
        let result = match self.store.get_now(key) {
            Some(result) => result,
            None => self.store.get(key).await,
        };
        result.unwrap_or_else(|error| {
            self.store_failed("cache lookup failed; forwarding", Some(key), &error);
            None
        })
    }

    /// Writes `entry` under `key`, with how long it stays of use: at once when the store can,
    /// else waiting.
    pub(crate) async fn put(
        &self,
        key: CacheKey,
        entry: Arc<StoredEntry>,
    ) -> Result<(), StoreError> {
        let ttl = self.ttl(&entry);
        match self.put_now(&key, &entry, ttl) {
            Some(result) => result,
            None => self.store.put(key, entry, ttl).await,
        }
    }

    /// Writes `entry` under `key` at once when the store can; `None` when it must wait (the
    /// caller awaits [`Store::put`] then). The write is counted first, either way.
    fn put_now(
        &self,
        key: &CacheKey,
        entry: &Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Option<Result<(), StoreError>> {
        self.writes.count(key);
        self.store.put_now(key, entry, ttl)
    }

    /// Has this cache written to `key` since `looked`, a reading of [`Shared::writes`] taken
    /// before a look-up? Only then can the key hold what that look-up did not find.
    pub(crate) fn written_since(&self, key: &CacheKey, looked: u64) -> bool {
        self.writes.read(key) != looked
    }

    /// Whether a response for `key`, with nothing stored under it, may be stored: the request
    /// is a use of the key, counted by `min_uses` ([`Unstored::NotAdmitted`] until there were
    /// enough), else by the doorkeeper while the store is full ([`Unstored::StoreFull`] for
    /// a key's first use).
    pub(crate) fn admit(&self, key: &CacheKey) -> Result<(), Unstored> {
        if let Some(admission) = &self.admission {
            return if admission.admit(key) {
                Ok(())
            } else {
                Err(Unstored::NotAdmitted)
            };
        }
        match &self.doorkeeper {
            Some(doorkeeper) if !doorkeeper.admit(key, self.store.is_full()) => {
                Err(Unstored::StoreFull)
            }
            _ => Ok(()),
        }
    }

    /// How long from now `entry` stays of use (policy's answer, given to the store).
    fn ttl(&self, entry: &StoredEntry) -> Option<Duration> {
        let variants = entry.variants().iter().map(|v| (&v.headers, &v.policy));
        lifetime::entry_useful_for(variants, &self.options, self.clock.now())
    }

    /// The entry to write: `stored` (if any) with `response` added; `None` when what is
    /// stored is better kept as it is.
    fn entry_with(
        &self,
        stored: Option<Arc<StoredEntry>>,
        response: StoredResponse,
        req_headers: &HeaderMap,
    ) -> Option<Arc<StoredEntry>> {
        let entry = match stored {
            Some(entry) => self.with_new(&entry, response, req_headers)?,
            None => StoredEntry::new(Arc::new(response)),
        };
        Some(Arc::new(entry))
    }

    /// Counts and logs a write of a captured response, and releases its flight once stored.
    fn stored(&self, result: Result<(), StoreError>, flight: Option<FlightGuard>) {
        match result {
            Ok(()) => {
                self.stats.stores.fetch_add(1, Ordering::Relaxed);
                if let Some(flight) = flight {
                    flight.release(Outcome::Stored);
                }
            }
            Err(error) => self.store_failed("cache store failed", None, &error),
        }
    }
}

impl<St> Shared<St> {
    /// A store's failure: counted, and logged with `what` failed (for `key`, when known). The
    /// request goes on without the store: a lookup that failed found nothing.
    pub(crate) fn store_failed(&self, what: &str, key: Option<&CacheKey>, error: &StoreError) {
        self.metrics.store_error();
        match key {
            Some(key) => tracing::warn!(%key, %error, "{what}"),
            None => tracing::warn!(%error, "{what}"),
        }
    }

    /// `entry` with `response` (received for a request with `req_headers`) in front; `None`
    /// when the entry is better kept as it is.
    ///
    /// A partial response never replaces the complete response the request selected
    /// (RFC 9111 §3.3: it is kept for the ranges it holds), and is combined with the partial
    /// response the request selected when they share a strong validator (RFC 9111 §3.4),
    /// into a complete `200` once every byte is there.
    fn with_new(
        &self,
        entry: &StoredEntry,
        response: StoredResponse,
        req_headers: &HeaderMap,
    ) -> Option<StoredEntry> {
        if response.status == StatusCode::PARTIAL_CONTENT {
            if let Some(stored) = self.select(entry, req_headers) {
                if stored.status != StatusCode::PARTIAL_CONTENT {
                    return None;
                }
                let merged = combine_parts(&stored.headers, &response.headers)
                    .filter(|merged| merged.len() <= self.max_entry_size as u64);
                if let Some(merged) = merged {
                    if let Some(combined) = combined(stored, &response, merged) {
                        return Some(entry.with_response(Arc::new(combined), req_headers));
                    }
                }
            }
        }
        Some(entry.with_response(Arc::new(response), req_headers))
    }
}

/// The stored part and the new one as one response covering `merged` (RFC 9111 §3.4), with
/// the new response's header fields: a `200` without `Content-Range` when it is complete.
fn combined(
    stored: &StoredResponse,
    new: &StoredResponse,
    merged: ContentRange,
) -> Option<StoredResponse> {
    // Parts streamed from a store's own medium are replaced, not combined.
    let (stored_body, new_body) = (stored.body.as_bytes()?, new.body.as_bytes()?);
    let old_part = ContentRange::from_headers(&stored.headers)?;
    let new_part = ContentRange::from_headers(&new.headers)?;
    let mut body = bytes::BytesMut::with_capacity(usize::try_from(merged.len()).ok()?);
    // The stored bytes before the new part, the new part, the stored bytes after it.
    if old_part.first < new_part.first {
        let before = usize::try_from(new_part.first - old_part.first).ok()?;
        body.extend_from_slice(stored_body.get(..before)?);
    }
    body.extend_from_slice(new_body);
    if old_part.last > new_part.last {
        let after = usize::try_from(new_part.last + 1 - old_part.first).ok()?;
        body.extend_from_slice(stored_body.get(after..)?);
    }
    if body.len() as u64 != merged.len() {
        return None;
    }
    let mut headers = new.headers.clone();
    let complete = merged.first == 0 && merged.last + 1 == merged.complete;
    let status = if complete {
        headers.remove(CONTENT_RANGE);
        StatusCode::OK
    } else {
        let range = content_range(merged.first, merged.last, merged.complete);
        headers.insert(CONTENT_RANGE, exact_value(range)?);
        StatusCode::PARTIAL_CONTENT
    };
    headers.insert(CONTENT_LENGTH, decimal_value(body.len() as u64));
    Some(StoredResponse {
        status,
        // Fields added to a stored map: made again as the store weighs it.
        headers: compacted(&headers),
        body: body.freeze().into(),
        policy: new.policy,
        vary: new.vary.clone(),
        // A reason phrase belongs to the new part's status, not to the combined one.
        extensions: if complete {
            http::Extensions::new()
        } else {
            new.extensions.clone()
        },
    })
}
