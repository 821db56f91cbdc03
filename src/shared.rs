//! The state one cache shares: the layer, every service it made and every handle hold it
//! behind one `Arc`. Below them all: it imports none of the layer, the service, the handle or
//! the body, and the body reaches it only through [`Commit`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::clock::Clock;
use crate::flight::{CaptureBudget, FlightGuard, Flights, Outcome};
use crate::key::CacheKey;
use crate::policy::CacheOptions;
use crate::policy::range::{ContentRange, combine_parts, content_range};
use crate::status::StatusHeaders;
use crate::store::{Store, StoredEntry, StoredResponse};

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
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stores: AtomicU64,
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
        let shared = Arc::clone(&self);
        let mut put = Box::pin(async move {
            // Released once stored, when waiting requests can be answered from the store;
            // dropped (`Outcome::Failed`) when nothing was written.
            // Read, add the variant, write: concurrent stores of two variants of one URL may
            // keep only one of them, which costs a later miss, never a wrong answer.
            let entry = match shared.store.get(&key).await {
                Ok(Some(entry)) => match shared.with_new(&entry, response, &req_headers) {
                    Some(entry) => entry,
                    None => return,
                },
                _ => StoredEntry::new(Arc::new(response)),
            };
            match shared.store.put(key, Arc::new(entry)).await {
                Ok(()) => {
                    shared.stats.stores.fetch_add(1, Ordering::Relaxed);
                    if let Some(flight) = flight {
                        flight.release(Outcome::Stored);
                    }
                }
                Err(error) => tracing::warn!(%error, "cache store failed"),
            }
        });
        // The in-memory store completes without waiting; trying once here makes the entry
        // visible before the client has read the last byte. Stores that must wait continue in
        // a task, without holding up the body.
        let mut cx = Context::from_waker(Waker::noop());
        if put.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(put);
            }
            Err(_) => tracing::warn!("no tokio runtime to finish storing a response; dropped"),
        }
    }
}

impl<St> Shared<St> {
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
            if let Some(stored) = entry.select(req_headers) {
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
    let old_part = ContentRange::from_headers(&stored.headers)?;
    let new_part = ContentRange::from_headers(&new.headers)?;
    let mut body = bytes::BytesMut::with_capacity(usize::try_from(merged.len()).ok()?);
    // The stored bytes before the new part, the new part, the stored bytes after it.
    if old_part.first < new_part.first {
        let before = usize::try_from(new_part.first - old_part.first).ok()?;
        body.extend_from_slice(stored.body.get(..before)?);
    }
    body.extend_from_slice(&new.body);
    if old_part.last > new_part.last {
        let after = usize::try_from(new_part.last + 1 - old_part.first).ok()?;
        body.extend_from_slice(stored.body.get(after..)?);
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
        headers.insert(CONTENT_RANGE, HeaderValue::try_from(range).ok()?);
        StatusCode::PARTIAL_CONTENT
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Some(StoredResponse {
        status,
        headers,
        body: body.freeze(),
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
