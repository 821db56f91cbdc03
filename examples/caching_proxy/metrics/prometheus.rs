//! A recorder for the `metrics` facade that renders the Prometheus text format (version
//! 0.0.4): counters, gauges, and histograms with fixed buckets.
//!
//! The cache registers its handles once, when its layer is built, and updates them with
//! atomic operations; this recorder only keeps them to render them. It replaces
//! metrics-exporter-prometheus, whose summaries, idle-series expiry and clock (quanta) the
//! proxy does not use and whose dependencies were a tenth of the proxy's first build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The recorder, and the handle that renders what it recorded (clones share one registry).
#[derive(Clone, Debug)]
pub(crate) struct Prometheus {
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    /// Upper bounds of every histogram's buckets, ascending (`+Inf` is implied).
    bounds: Arc<[f64]>,
    /// Metric families by name: sorted, so the text is stable.
    families: Mutex<BTreeMap<String, Family>>,
}

/// The series of one metric name, and its description.
#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    series: Vec<(Labels, Series)>,
}

/// A series' labels, rendered: `{a="x",b="y"}`, or empty.
type Labels = String;

#[derive(Debug)]
enum Series {
    Counter(Arc<AtomicU64>),
    /// The value's `f64` bits (as `metrics` stores gauges in an `AtomicU64`).
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Buckets>),
}

impl Series {
    fn kind(&self) -> &'static str {
        match self {
            Self::Counter(_) => "counter",
            Self::Gauge(_) => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// A histogram: a count per bucket (not cumulative; the last one is `+Inf`), the sum and
/// the count of the observations.
#[derive(Debug)]
struct Buckets {
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    /// The `f64` bits of the sum.
    sum: AtomicU64,
    count: AtomicU64,
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        // Prometheus buckets are inclusive: `le="0.1"` counts observations <= 0.1.
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Prometheus {
    /// A recorder whose histograms have buckets with the upper bounds `bounds` (ascending).
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            registry: Arc::new(Registry {
                bounds: bounds.into(),
                families: Mutex::default(),
            }),
        }
    }

    /// Every series, in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let families = self.families();
        let mut text = String::new();
        for (name, family) in families.iter() {
            let Some((_, first)) = family.series.first() else {
                continue;
            };
            if let Some(help) = &family.help {
                let _ = writeln!(text, "# HELP {name} {}", escape_help(help));
            }
            let _ = writeln!(text, "# TYPE {name} {}", first.kind());
            for (labels, series) in &family.series {
                render_series(&mut text, name, labels, series);
            }
        }
        text
    }

    fn families(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Family>> {
        // The map is never left half-changed: a panic elsewhere does not spoil it.
        self.registry
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The series `key` of the family `key.name()`: the one registered before, or `make()`'s.
    fn series(&self, key: &Key, make: impl FnOnce() -> Series) -> Series {
        let labels = render_labels(key);
        let mut families = self.families();
        let family = families.entry(key.name().to_owned()).or_default();
        if let Some((_, series)) = family.series.iter().find(|(l, _)| *l == labels) {
            return series.share();
        }
        let series = make();
        let shared = series.share();
        family.series.push((labels, series));
        shared
    }

    fn describe(&self, key: &KeyName, description: &SharedString) {
        let mut families = self.families();
        families.entry(key.as_str().to_owned()).or_default().help = Some(description.to_string());
    }
}

impl Series {
    /// Another reference to the same values.
    fn share(&self) -> Self {
        match self {
            Self::Counter(value) => Self::Counter(Arc::clone(value)),
            Self::Gauge(value) => Self::Gauge(Arc::clone(value)),
            Self::Histogram(buckets) => Self::Histogram(Arc::clone(buckets)),
        }
    }
}

impl Recorder for Prometheus {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(&key, &description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(&key, &description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(&key, &description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.series(key, || Series::Counter(Arc::default())) {
            Series::Counter(value) => Counter::from_arc(value),
            // The name is already a gauge or a histogram: this counter goes nowhere.
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.series(key, || Series::Gauge(Arc::default())) {
            Series::Gauge(value) => Gauge::from_arc(value),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        let bounds = Arc::clone(&self.registry.bounds);
        let make = || {
            Series::Histogram(Arc::new(Buckets {
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                bounds,
                sum: AtomicU64::new(0.0f64.to_bits()),
                count: AtomicU64::new(0),
            }))
        };
        match self.series(key, make) {
            Series::Histogram(buckets) => Histogram::from_arc(buckets),
            _ => Histogram::noop(),
        }
    }
}

/// The sample lines of one series.
fn render_series(text: &mut String, name: &str, labels: &str, series: &Series) {
    match series {
        Series::Counter(value) => {
            let _ = writeln!(text, "{name}{labels} {}", value.load(Ordering::Relaxed));
        }
        Series::Gauge(value) => {
            let value = f64::from_bits(value.load(Ordering::Relaxed));
            let _ = writeln!(text, "{name}{labels} {}", number(value));
        }
        Series::Histogram(buckets) => {
            let mut cumulative = 0;
            let bounds = buckets.bounds.iter().map(|&b| number(b));
            for (count, bound) in buckets.counts.iter().zip(bounds.chain(["+Inf".into()])) {
                cumulative += count.load(Ordering::Relaxed);
                let labels = with_label(labels, "le", &bound);
                let _ = writeln!(text, "{name}_bucket{labels} {cumulative}");
            }
            let sum = f64::from_bits(buckets.sum.load(Ordering::Relaxed));
            let _ = writeln!(text, "{name}_sum{labels} {}", number(sum));
            let count = buckets.count.load(Ordering::Relaxed);
            let _ = writeln!(text, "{name}_count{labels} {count}");
        }
    }
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN` for the special values).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// The labels of `key`, rendered: `{a="x",b="y"}`, or empty when it has none.
fn render_labels(key: &Key) -> Labels {
    key.labels().fold(String::new(), |labels, label| {
        with_label(&labels, label.key(), label.value())
    })
}

/// `labels` (rendered) with `name="value"` added at the end.
fn with_label(labels: &str, name: &str, value: &str) -> Labels {
    let mut out = match labels.strip_suffix('}') {
        Some(open) => format!("{open},"),
        None => String::from("{"),
    };
    let _ = write!(out, "{name}=\"{}\"}}", escape_value(value));
    out
}

/// A label value escaped as the text format requires: `\`, `"` and line feeds.
fn escape_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A `# HELP` text escaped as the text format requires: `\` and line feeds.
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Prometheus {
        Prometheus::new(&[0.1, 1.0])
    }

    #[test]
    fn counters_and_gauges_render_with_their_labels() {
        let prometheus = recorder();
        metrics::with_local_recorder(&prometheus, || {
            metrics::describe_counter!("requests_total", "Requests, by outcome.");
            metrics::counter!("requests_total", "outcome" => "hit").increment(2);
            metrics::counter!("requests_total", "outcome" => "miss").increment(1);
            // The same series registered again is the same counter.
            metrics::counter!("requests_total", "outcome" => "hit").increment(1);
            metrics::gauge!("entries").set(2.5);
        });
        assert_eq!(
            prometheus.render(),
            "# TYPE entries gauge\n\
             entries 2.5\n\
             # HELP requests_total Requests, by outcome.\n\
             # TYPE requests_total counter\n\
             requests_total{outcome=\"hit\"} 3\n\
             requests_total{outcome=\"miss\"} 1\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let prometheus = recorder();
        metrics::with_local_recorder(&prometheus, || {
            let latency = metrics::histogram!("latency_seconds", "origin" => "a");
            for value in [0.05, 0.1, 0.5, 3.0] {
                latency.record(value);
            }
        });
        assert_eq!(
            prometheus.render(),
            "# TYPE latency_seconds histogram\n\
             latency_seconds_bucket{origin=\"a\",le=\"0.1\"} 2\n\
             latency_seconds_bucket{origin=\"a\",le=\"1\"} 3\n\
             latency_seconds_bucket{origin=\"a\",le=\"+Inf\"} 4\n\
             latency_seconds_sum{origin=\"a\"} 3.65\n\
             latency_seconds_count{origin=\"a\"} 4\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let prometheus = recorder();
        metrics::with_local_recorder(&prometheus, || {
            metrics::describe_gauge!("g", "a\\b\nc");
            metrics::gauge!("g", "path" => "a\"b\\c\nd").set(f64::INFINITY);
        });
        assert_eq!(
            prometheus.render(),
            "# HELP g a\\\\b\\nc\n# TYPE g gauge\ng{path=\"a\\\"b\\\\c\\nd\"} +Inf\n"
        );
    }

    #[test]
    fn a_name_registered_as_another_kind_is_dropped() {
        let prometheus = recorder();
        metrics::with_local_recorder(&prometheus, || {
            metrics::counter!("x").increment(1);
            metrics::gauge!("x").set(9.0);
        });
        assert_eq!(prometheus.render(), "# TYPE x counter\nx 1\n");
    }
}
