//! Metric primitives (lock-free counters, gauges, histograms) and the Prometheus text
//! exposition format (version 0.0.4) they are written in.
//!
//! Families are fixed at compile time by the components that own them (the node's and the
//! sidecar's metrics structs): label values come from closed sets (a verdict, a gRPC code,
//! a job state), never from a client, so the number of series is bounded by construction.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open connections, jobs in flight).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds one now and subtracts it when the guard drops, whatever path ends the work.
    pub fn track(&self) -> GaugeGuard<'_> {
        self.add(1);
        GaugeGuard(self)
    }
}

/// Holds one unit of a [`Gauge`] until dropped.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// Bucket upper bounds, in seconds, for the durations of a job's phases: from a millisecond
/// (a small check) to about twenty minutes (a large job's proving on a CPU).
pub const DURATION_BUCKETS_SECONDS: &[f64] =
    &[0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1200.0];

/// A histogram of durations over fixed buckets; the sum is kept in nanoseconds so that it
/// stays exact under concurrent updates.
#[derive(Debug)]
pub struct Histogram {
    bounds_seconds: &'static [f64],
    /// Non-cumulative counts: `buckets[i]` counts observations in `(bounds[i-1], bounds[i]]`;
    /// the last one counts those above every bound.
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(DURATION_BUCKETS_SECONDS)
    }
}

impl Histogram {
    /// A histogram over `bounds_seconds` (increasing).
    pub fn new(bounds_seconds: &'static [f64]) -> Self {
        debug_assert!(bounds_seconds.windows(2).all(|w| w[0] < w[1]), "bucket bounds must increase");
        let buckets = (0..=bounds_seconds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram { bounds_seconds, buckets, sum_nanos: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let index = self.bounds_seconds.iter().position(|&bound| seconds <= bound).unwrap_or(self.bounds_seconds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// One sample's labels: `(name, value)` pairs; values are escaped when written.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes metric families in the Prometheus text format: `# HELP`, `# TYPE`, then samples.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
}

impl TextEncoder {
    /// An empty exposition.
    pub fn new() -> Self {
        TextEncoder::default()
    }

    /// The text so far (content type [`TEXT_CONTENT_TYPE`]).
    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        debug_assert!(valid_name(name), "metric name {name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label), "label name {label}");
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family: `name` should end in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, value) in samples {
            self.sample(name, labels, value);
        }
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, i64)]) {
        self.header(name, help, "gauge");
        for (labels, value) in samples {
            self.sample(name, labels, value);
        }
    }

    /// A histogram family of one series, in seconds: `name` should end in `_seconds`.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.histograms(name, help, &[(&[], histogram)]);
    }

    /// A histogram family of one series per label set, in seconds.
    pub fn histograms(&mut self, name: &str, help: &str, series: &[(Labels<'_>, &Histogram)]) {
        self.header(name, help, "histogram");
        let (bucket, sum, count) = (format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count"));
        for (labels, histogram) in series {
            let mut cumulative = 0u64;
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            let bounds: Vec<String> = histogram.bounds_seconds.iter().map(f64::to_string).collect();
            for (le, count) in bounds.iter().zip(&histogram.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                with_le.push(("le", le));
                self.sample(&bucket, &with_le, cumulative);
                with_le.pop();
            }
            cumulative += histogram.buckets[histogram.bounds_seconds.len()].load(Ordering::Relaxed);
            with_le.push(("le", "+Inf"));
            self.sample(&bucket, &with_le, cumulative);
            let sum_seconds = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            self.sample(&sum, labels, sum_seconds);
            // The count is the +Inf bucket, read once, so the two never disagree in one scrape.
            self.sample(&count, labels, cumulative);
        }
    }
}

/// The content type of the text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The gRPC status codes by number (0 `OK` to 16 `UNAUTHENTICATED`), as label values.
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Refusals (non-`OK` answers) by gRPC status code and method.
#[derive(Debug)]
pub struct Refusals {
    methods: &'static [&'static str],
    /// `counts[method][code]`.
    counts: Vec<[Counter; 17]>,
}

impl Refusals {
    /// Counters for each of `methods` (the RPC names a service serves).
    pub fn new(methods: &'static [&'static str]) -> Self {
        Refusals { methods, counts: methods.iter().map(|_| Default::default()).collect() }
    }

    /// Counts `result`'s status if it is an error, and logs it in `span` (the call's); passes
    /// it through.
    pub fn count<T>(
        &self,
        method: &str,
        span: &tracing::Span,
        result: Result<T, tonic::Status>,
    ) -> Result<T, tonic::Status> {
        if let Err(status) = &result {
            span.in_scope(|| tracing::info!(code = ?status.code(), message = status.message(), "refused"));
            self.refused(method, status.code());
        }
        result
    }

    /// Counts one refusal of `method` with `code`.
    pub fn refused(&self, method: &str, code: tonic::Code) {
        let code = (code as usize).min(16);
        match self.methods.iter().position(|m| *m == method) {
            Some(index) => self.counts[index][code].inc(),
            None => debug_assert!(false, "unknown method {method}"),
        }
    }

    /// Writes the family `name` (only the series that moved: at most methods × 16).
    pub fn encode(&self, encoder: &mut TextEncoder, name: &str, help: &str) {
        let mut samples = Vec::new();
        for (method, counts) in self.methods.iter().zip(&self.counts) {
            for (code, counter) in GRPC_CODE_NAMES.iter().zip(counts) {
                let value = counter.get();
                if value > 0 {
                    samples.push((*method, *code, value));
                }
            }
        }
        let labelled: Vec<([(&str, &str); 2], u64)> =
            samples.iter().map(|(method, code, value)| ([("method", *method), ("code", *code)], *value)).collect();
        let series: Vec<(Labels<'_>, u64)> = labelled.iter().map(|(labels, value)| (&labels[..], *value)).collect();
        encoder.counter(name, help, &series);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_parses_and_keeps_every_value() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(700));
        histogram.observe(Duration::from_secs(5000));
        let refusals = Refusals::new(&["OpenJob", "Commit"]);
        refusals.refused("Commit", tonic::Code::FailedPrecondition);
        refusals.refused("Commit", tonic::Code::FailedPrecondition);
        let mut encoder = TextEncoder::new();
        encoder.counter("demo_jobs_total", "Jobs.\nTwo lines \\ escaped.", &[(&[("verdict", "a\"b\\c\nd")], 7)]);
        encoder.gauge("demo_connections", "Open connections.", &[(&[], -1)]);
        encoder.histogram("demo_check_seconds", "Checks.", &histogram);
        refusals.encode(&mut encoder, "demo_refusals_total", "Refusals.");
        let text = encoder.finish();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
        let value = |name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| s.value.clone())
                .unwrap_or_else(|| panic!("no sample {name} {label:?} in\n{text}"))
        };
        // The escapes of the text format, byte for byte (prometheus-parse 0.2 parses the line
        // but does not undo the escapes, so the label is checked here, the value below).
        assert!(text.contains("demo_jobs_total{verdict=\"a\\\"b\\\\c\\nd\"} 7\n"), "{text}");
        assert!(text.contains("# HELP demo_jobs_total Jobs.\\nTwo lines \\\\ escaped.\n"), "{text}");
        let jobs = scrape.samples.iter().find(|s| s.metric == "demo_jobs_total").expect("the escaped sample parses");
        assert!(matches!(jobs.value, prometheus_parse::Value::Counter(v) if v == 7.0), "{text}");
        assert!(matches!(value("demo_connections", None), prometheus_parse::Value::Gauge(v) if v == -1.0));
        assert!(
            matches!(value("demo_refusals_total", Some(("code", "FAILED_PRECONDITION"))), prometheus_parse::Value::Counter(v) if v == 2.0)
        );
        let prometheus_parse::Value::Histogram(buckets) = value("demo_check_seconds", None) else {
            panic!("not a histogram:\n{text}");
        };
        let at = |le: f64| buckets.iter().find(|b| b.less_than == le).map(|b| b.count).unwrap();
        assert_eq!((at(0.001), at(0.005), at(1.0), at(1200.0), at(f64::INFINITY)), (0.0, 1.0, 2.0, 2.0, 3.0));
        assert!(text.contains("demo_check_seconds_count 3\n"), "{text}");
        assert!(text.contains("demo_check_seconds_sum 5000.703\n"), "{text}");
    }

    #[test]
    fn a_gauge_guard_gives_back_what_it_took_on_every_path() {
        let gauge = Gauge::default();
        {
            let _a = gauge.track();
            let _b = gauge.track();
            assert_eq!(gauge.get(), 2);
        }
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("matproof_node_jobs_total"));
        assert!(!valid_name("9lives"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
