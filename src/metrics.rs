//! Metrics, through the [`metrics`](https://docs.rs/metrics/0.24) facade, with the crate's
//! `metrics` feature (off by default: without it nothing is recorded and the crate does not
//! depend on `metrics`).
//!
//! The cache registers its metrics once, when [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build) runs, with the
//! recorder installed at that moment (so install the recorder first, e.g.
//! `metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()`); a request
//! then costs one atomic increment per metric it touches, with no label formatting and no
//! registry lookup. Every cache built in a process reports into the same series.
//!
//! | Name | Kind | Labels | Meaning |
//! |---|---|---|---|
//! | `cache_requests_total` | counter | `outcome` | Requests by how they were answered: `hit` (a fresh stored response), `stale` (a stale one: `stale-while-revalidate`, `stale-if-error`, an unreachable origin), `revalidated` (a stored response the origin confirmed with a 304), `collapsed` (answered from what the request it waited for stored), `miss` (a cacheable `GET`/`HEAD` answered by the origin), `bypass` (not handled: the [`bypass`](crate::CacheLayerBuilder::bypass) predicate, or no key), `method` (not handled: a method other than `GET`/`HEAD`) |
//! | `cache_not_stored_total` | counter | `reason` | Origin responses to cacheable requests passed on without being stored: a rule of RFC 9111 §3 (`method`, `status`, `no-store`, `private`, `authorization`, `no-freshness`, `vary-star`, `set-cookie`, `must-understand`, `vary-unseen`), `too-large` ([`max_entry_size`](crate::CacheLayerBuilder::max_entry_size)), `min-uses` ([`min_uses`](crate::CacheLayerBuilder::min_uses)) or `store-full` ([`doorkeeper`](crate::CacheLayerBuilder::doorkeeper)) |
//! | `cache_served_bytes_total` | counter | `source` | Body bytes sent to clients, `source="cache"` from the store or `source="origin"` from the inner service |
//! | `cache_store_errors_total` | counter | | Failed store operations (lookups, writes, removals by the cache itself), and the failures a store absorbed itself ([`Store::failures`](crate::store::Store::failures): the disk and Redis stores answer them as misses), added when [`CacheHandle::stats`](crate::CacheHandle::stats) is read |
//! | `cache_entries` | gauge | | Entries held, for a store that can say ([`Store::size`](crate::store::Store::size): [`MemoryStore`](crate::store::MemoryStore) can); updated when [`CacheHandle::stats`](crate::CacheHandle::stats) is read (so on every scrape of the proxy's `/metrics`) |
//! | `cache_size_bytes` | gauge | | Bytes held (headers included), as `cache_entries` |
//! | `cache_origin_duration_seconds` | histogram | | Time from forwarding a request through the cache until the inner service's response headers (requests passed on untouched, `bypass` and `method`, are not timed) |
//!
//! The hit ratio over an interval is the increase of `cache_requests_total{outcome="hit"}`
//! over that of all of `cache_requests_total`'s outcomes.

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::policy::decide::Unstored;

/// `cache_requests_total`, by `outcome`.
pub const REQUESTS: &str = "cache_requests_total";
/// `cache_not_stored_total`, by `reason`.
pub const NOT_STORED: &str = "cache_not_stored_total";
/// `cache_served_bytes_total`, by `source` (`cache` or `origin`).
pub const SERVED_BYTES: &str = "cache_served_bytes_total";
/// `cache_store_errors_total`.
pub const STORE_ERRORS: &str = "cache_store_errors_total";
/// `cache_entries` (a gauge).
pub const ENTRIES: &str = "cache_entries";
/// `cache_size_bytes` (a gauge).
pub const SIZE_BYTES: &str = "cache_size_bytes";
/// `cache_origin_duration_seconds` (a histogram).
pub const ORIGIN_DURATION: &str = "cache_origin_duration_seconds";

/// How a request was answered: the `outcome` of `cache_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestOutcome {
    Hit,
    Stale,
    Revalidated,
    Collapsed,
    Miss,
    Bypass,
    Method,
}

impl RequestOutcome {
    /// Every outcome, in declaration order (the index of the counter's handle).
    #[cfg(feature = "metrics")]
    const ALL: [RequestOutcome; 7] = [
        RequestOutcome::Hit,
        RequestOutcome::Stale,
        RequestOutcome::Revalidated,
        RequestOutcome::Collapsed,
        RequestOutcome::Miss,
        RequestOutcome::Bypass,
        RequestOutcome::Method,
    ];

    /// The label value.
    #[cfg(feature = "metrics")]
    fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Hit => "hit",
            RequestOutcome::Stale => "stale",
            RequestOutcome::Revalidated => "revalidated",
            RequestOutcome::Collapsed => "collapsed",
            RequestOutcome::Miss => "miss",
            RequestOutcome::Bypass => "bypass",
            RequestOutcome::Method => "method",
        }
    }
}

/// The handles of one cache's metrics, registered once when it is built.
#[derive(Debug)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    handles: Handles,
    /// The store's absorbed failures ([`Store::failures`](crate::store::Store::failures))
    /// already added to `cache_store_errors_total`.
    #[cfg(feature = "metrics")]
    absorbed: std::sync::atomic::AtomicU64,
}

/// The registered handles (only with the `metrics` feature).
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    requests: Vec<Counter>,
    not_stored: Vec<Counter>,
    from_cache: Counter,
    from_origin: Counter,
    store_errors: Counter,
    entries: Gauge,
    size: Gauge,
    origin: Histogram,
}

impl Metrics {
    /// Registers the handles with the recorder installed now.
    pub(crate) fn register() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            handles: Handles {
                requests: RequestOutcome::ALL
                    .iter()
                    .map(|outcome| counter!(REQUESTS, "outcome" => outcome.as_str()))
                    .collect(),
                not_stored: Unstored::ALL
                    .iter()
                    .map(|reason| counter!(NOT_STORED, "reason" => reason.as_str()))
                    .collect(),
                from_cache: counter!(SERVED_BYTES, "source" => "cache"),
                from_origin: counter!(SERVED_BYTES, "source" => "origin"),
                store_errors: counter!(STORE_ERRORS),
                entries: gauge!(ENTRIES),
                size: gauge!(SIZE_BYTES),
                origin: histogram!(ORIGIN_DURATION),
            },
            #[cfg(feature = "metrics")]
            absorbed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a request answered with `outcome`.
    #[inline]
    pub(crate) fn request(&self, outcome: RequestOutcome) {
        #[cfg(feature = "metrics")]
        self.handles.requests[outcome as usize].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
    }

    /// Counts an origin response not stored, for `reason`.
    #[inline]
    pub(crate) fn not_stored(&self, reason: Unstored) {
        #[cfg(feature = "metrics")]
        self.handles.not_stored[reason.index()].increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }

    /// Counts `bytes` of a body served from the store.
    #[inline]
    pub(crate) fn served_from_cache(&self, bytes: u64) {
        #[cfg(feature = "metrics")]
        self.handles.from_cache.increment(bytes);
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// What counts the bytes of a body from the inner service as they stream.
    #[inline]
    pub(crate) fn origin_bytes(&self) -> ByteCount {
        ByteCount {
            #[cfg(feature = "metrics")]
            counter: Some(self.handles.from_origin.clone()),
        }
    }

    /// Counts a failed store operation.
    #[inline]
    pub(crate) fn store_error(&self) {
        #[cfg(feature = "metrics")]
        self.handles.store_errors.increment(1);
    }

    /// Adds to `cache_store_errors_total` the failures the store absorbed since the last
    /// reading (`total` is its count since it was made).
    #[cfg(feature = "metrics")]
    pub(crate) fn absorbed_store_errors(&self, total: u64) {
        let before = self
            .absorbed
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
        if total > before {
            self.handles.store_errors.increment(total - before);
        }
    }

    /// Sets the gauges of what the store holds.
    #[cfg(feature = "metrics")]
    pub(crate) fn held(&self, entries: u64, bytes: u64) {
        self.handles.entries.set(entries as f64);
        self.handles.size.set(bytes as f64);
    }

    /// Records how long the inner service took to answer with its response headers.
    #[inline]
    pub(crate) fn origin_latency(&self, elapsed: std::time::Duration) {
        #[cfg(feature = "metrics")]
        self.handles.origin.record(elapsed.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = elapsed;
    }
}

/// Counts body bytes from the inner service as they pass (a no-op without the `metrics`
/// feature, or when made by [`Default`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct ByteCount {
    #[cfg(feature = "metrics")]
    counter: Option<Counter>,
}

impl ByteCount {
    /// Counts `bytes`.
    #[inline]
    pub(crate) fn add(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        if let Some(counter) = &self.counter {
            counter.increment(bytes as u64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }
}
