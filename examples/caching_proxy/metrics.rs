//! The proxy's metrics: a Prometheus recorder for the cache's metrics (the library's `metrics`
//! feature, see `tower_cache_layer::metrics`), rendered by the admin listener's `GET /metrics`,
//! and a log line every minute with the hit ratio of that minute.

mod prometheus;

use std::time::Duration;

use tower_cache_layer::store::BoxStore;
use tower_cache_layer::{CacheHandle, CacheStats};

pub(crate) use self::prometheus::Prometheus;

/// The period of the hit-ratio log line.
const RATIO_INTERVAL: Duration = Duration::from_secs(60);

/// Bucket bounds of `cache_origin_duration_seconds`, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder as the process's (the admin listener renders it); `None`,
/// logged, when another recorder was installed first.
pub(crate) fn install() -> Option<Prometheus> {
    let recorder = Prometheus::new(&LATENCY_BUCKETS);
    match metrics::set_global_recorder(recorder.clone()) {
        Ok(()) => Some(recorder),
        Err(error) => {
            tracing::warn!(%error, "cannot install the metrics recorder; /metrics is off");
            None
        }
    }
}

/// Logs, every minute, the requests of that minute and their hit ratio; nothing for a minute
/// without requests.
pub(crate) fn spawn_hit_ratio_log(cache: CacheHandle<BoxStore>) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + RATIO_INTERVAL;
        let mut interval = tokio::time::interval_at(start, RATIO_INTERVAL);
        let mut before = Counts::of(&cache.stats());
        loop {
            interval.tick().await;
            let now = Counts::of(&cache.stats());
            if let Some(minute) = Interval::between(before, now) {
                tracing::info!(
                    requests = minute.requests,
                    hits = minute.hits,
                    misses = minute.misses,
                    ratio = format_args!("{:.3}", minute.ratio()),
                    "hit ratio over the last minute"
                );
            }
            before = now;
        }
    });
}

/// Requests counted over some time: since the cache was built, or over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Every request: hits, misses and requests the cache does not handle.
    requests: u64,
    hits: u64,
    misses: u64,
}

impl Counts {
    /// The counts of `stats`.
    fn of(stats: &CacheStats) -> Self {
        Self {
            requests: stats.requests(),
            hits: stats.hits(),
            misses: stats.misses(),
        }
    }
}

/// The requests between two readings of the counters.
type Interval = Counts;

impl Interval {
    /// What happened from `before` to `now`; `None` when there were no requests.
    fn between(before: Counts, now: Counts) -> Option<Self> {
        let requests = now.requests.saturating_sub(before.requests);
        (requests > 0).then(|| Self {
            requests,
            hits: now.hits.saturating_sub(before.hits),
            misses: now.misses.saturating_sub(before.misses),
        })
    }

    /// Hits over the requests the cache handles (hits and misses); 0 when it handled none.
    fn ratio(&self) -> f64 {
        let handled = self.hits + self.misses;
        if handled == 0 {
            0.0
        } else {
            self.hits as f64 / handled as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, hits: u64, misses: u64) -> Counts {
        Counts {
            requests,
            hits,
            misses,
        }
    }

    #[test]
    fn no_requests_no_line() {
        let stats = Counts::of(&CacheStats::default());
        assert_eq!(Interval::between(stats, stats), None);
        let same = counts(7, 3, 2);
        assert_eq!(Interval::between(same, same), None);
    }

    #[test]
    fn ratio_of_the_interval_only() {
        let minute = Interval::between(counts(10, 5, 5), counts(16, 8, 6)).unwrap();
        assert_eq!(minute, counts(6, 3, 1));
        assert!((minute.ratio() - 0.75).abs() < 1e-9);
        // Only requests the cache does not handle (a POST): no ratio to speak of.
        let passes = Interval::between(counts(0, 0, 0), counts(2, 0, 0)).unwrap();
        assert_eq!(passes.ratio(), 0.0);
    }
}
