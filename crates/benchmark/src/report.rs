//! Latency recording and the end-of-run report.
//!
//! A [`Recorder`] keeps, for the successful requests of a run, an HDR histogram of
//! latencies in nanoseconds (3 significant digits: percentiles are within 0.1%), plus the
//! exact count, fastest, slowest, mean and variance (Welford's running moments, merged
//! with Chan's formula); and, for failed requests, a bounded error distribution. A
//! [`Summary`] is computed from it and prints as etcd's `pkg/report` does (Summary,
//! response time histogram, latency distribution, error distribution) or as one JSON
//! object for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::Error;
use crate::sample::{Samples, SecondPoint};

/// The percentiles etcd's report prints, in percent.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// At most this many distinct error messages are kept; the rest are counted together.
pub const MAX_DISTINCT_ERRORS: usize = 16;

/// Highest latency the histogram keeps apart: one hour, in nanoseconds. Slower requests
/// are recorded as one hour in the histogram (their exact value still counts for the
/// slowest, mean and stddev).
const HIGHEST_TRACKABLE_NS: u64 = 3_600 * 1_000_000_000;

/// Bars in etcd's response time histogram (plus one for the slowest).
const HISTOGRAM_BUCKETS: usize = 10;

/// Width of the longest bar of the response time histogram.
const BAR_WIDTH: u64 = 40;

/// Latencies and errors of one run, or of part of one before a [`Recorder::merge`].
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
    count: u64,
    mean_ns: f64,
    m2_ns: f64,
    fastest_ns: u64,
    slowest_ns: u64,
    errors: BTreeMap<String, u64>,
    other_errors: u64,
    samples: Option<Samples>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Result<Self, Error> {
        let histogram = Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_NS, 3)
            .map_err(|e| Error::Histogram(e.to_string()))?;
        Ok(Recorder {
            histogram,
            count: 0,
            mean_ns: 0.0,
            m2_ns: 0.0,
            fastest_ns: u64::MAX,
            slowest_ns: 0,
            errors: BTreeMap::new(),
            other_errors: 0,
            samples: None,
        })
    }

    /// An empty recorder that also keeps per-second samples (`--sample`).
    pub fn with_samples() -> Result<Self, Error> {
        let mut recorder = Recorder::new()?;
        recorder.samples = Some(Samples::default());
        Ok(recorder)
    }

    /// Records the latency of one successful request.
    pub fn record(&mut self, latency: Duration) {
        self.record_at(latency, None);
    }

    /// Records the latency of one successful request that started in `unix_second`
    /// (counted in the samples if this recorder keeps them).
    pub fn record_at(&mut self, latency: Duration, unix_second: Option<i64>) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        if let (Some(samples), Some(second)) = (&mut self.samples, unix_second) {
            samples.add(second, ns);
        }
        self.histogram.saturating_record(ns);
        self.count += 1;
        let x = ns as f64;
        let delta = x - self.mean_ns;
        self.mean_ns += delta / self.count as f64;
        self.m2_ns += delta * (x - self.mean_ns);
        self.fastest_ns = self.fastest_ns.min(ns);
        self.slowest_ns = self.slowest_ns.max(ns);
    }

    /// Counts one failed request with its message. The first [`MAX_DISTINCT_ERRORS`]
    /// distinct messages are kept with their counts; later new ones count as "other".
    pub fn record_error(&mut self, message: &str) {
        if let Some(n) = self.errors.get_mut(message) {
            *n += 1;
        } else if self.errors.len() < MAX_DISTINCT_ERRORS {
            self.errors.insert(message.to_string(), 1);
        } else {
            self.other_errors += 1;
        }
    }

    /// Adds everything `other` recorded to this recorder.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), Error> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| Error::Histogram(format!("{e:?}")))?;
        if other.count > 0 {
            let n_a = self.count as f64;
            let n_b = other.count as f64;
            let n = n_a + n_b;
            let delta = other.mean_ns - self.mean_ns;
            self.mean_ns += delta * n_b / n;
            self.m2_ns += other.m2_ns + delta * delta * n_a * n_b / n;
            self.count += other.count;
            self.fastest_ns = self.fastest_ns.min(other.fastest_ns);
            self.slowest_ns = self.slowest_ns.max(other.slowest_ns);
        }
        for (message, n) in &other.errors {
            if let Some(mine) = self.errors.get_mut(message) {
                *mine += n;
            } else if self.errors.len() < MAX_DISTINCT_ERRORS {
                self.errors.insert(message.clone(), *n);
            } else {
                self.other_errors += n;
            }
        }
        self.other_errors += other.other_errors;
        if let (Some(mine), Some(theirs)) = (&mut self.samples, &other.samples) {
            mine.merge(theirs);
        }
        Ok(())
    }

    /// Successful requests recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Failed requests recorded.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.other_errors
    }

    /// The summary of a run that took `total` from its first request to its last answer.
    pub fn summary(&self, total: Duration) -> Summary {
        let total_secs = total.as_secs_f64();
        let rps = if total_secs > 0.0 {
            self.count as f64 / total_secs
        } else {
            0.0
        };
        let mut errors: Vec<(String, u64)> =
            self.errors.iter().map(|(m, n)| (m.clone(), *n)).collect();
        if self.other_errors > 0 {
            errors.push(("(other errors)".to_string(), self.other_errors));
        }
        let latency = (self.count > 0).then(|| self.latency());
        Summary {
            total_secs,
            requests: self.count,
            errors: self.error_count(),
            rps,
            latency,
            error_distribution: errors,
            samples: self.samples.as_ref().map(Samples::series),
        }
    }

    fn latency(&self) -> Latency {
        let secs = |ns: f64| ns / 1e9;
        let fastest = self.fastest_ns as f64;
        let slowest = self.slowest_ns as f64;
        let percentiles = PERCENTILES.map(|p| {
            let ns = self.histogram.value_at_quantile(p / 100.0) as f64;
            (p, secs(ns.clamp(fastest, slowest)))
        });

        // etcd's histogram: 10 equal steps from the fastest, then the slowest; each
        // latency counts in the first bucket whose mark is >= it.
        let step = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
        let mut marks = [0.0; HISTOGRAM_BUCKETS + 1];
        for (i, mark) in marks.iter_mut().enumerate() {
            *mark = fastest + step * i as f64;
        }
        marks[HISTOGRAM_BUCKETS] = slowest;
        let mut counts = [0u64; HISTOGRAM_BUCKETS + 1];
        for value in self.histogram.iter_recorded() {
            // The histogram's value for a bucket may lie a little outside the exact
            // range; the exact fastest and slowest bound it.
            let ns = (self.histogram.lowest_equivalent(value.value_iterated_to()) as f64)
                .clamp(fastest, slowest);
            let bucket = marks
                .iter()
                .position(|mark| ns <= *mark)
                .unwrap_or(HISTOGRAM_BUCKETS);
            counts[bucket] += value.count_at_value();
        }
        let histogram = marks
            .iter()
            .zip(counts)
            .map(|(mark, count)| (secs(*mark), count))
            .collect();

        let variance = if self.count > 0 {
            self.m2_ns / self.count as f64
        } else {
            0.0
        };
        Latency {
            fastest_secs: secs(fastest),
            slowest_secs: secs(slowest),
            average_secs: secs(self.mean_ns),
            stddev_secs: secs(variance.max(0.0).sqrt()),
            percentiles,
            histogram,
        }
    }
}

/// Latency statistics of the successful requests of a run, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// The fastest request.
    pub fastest_secs: f64,
    /// The slowest request.
    pub slowest_secs: f64,
    /// The mean.
    pub average_secs: f64,
    /// The population standard deviation, as etcd computes it.
    pub stddev_secs: f64,
    /// `(percent, latency)` for each of [`PERCENTILES`].
    pub percentiles: [(f64, f64); 8],
    /// etcd's response time histogram: `(bucket mark, requests)`, 11 rows.
    pub histogram: Vec<(f64, u64)>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Wall time of the run.
    pub total_secs: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Successful requests per second of wall time (as etcd computes Requests/sec).
    pub rps: f64,
    /// Latencies; `None` when no request succeeded.
    pub latency: Option<Latency>,
    /// `(message, count)` of failed requests, at most [`MAX_DISTINCT_ERRORS`] + 1 rows.
    pub error_distribution: Vec<(String, u64)>,
    /// `(unix second, point)` rows when `--sample` was given.
    pub samples: Option<Vec<(i64, SecondPoint)>>,
}

impl Summary {
    /// The report as etcd's benchmark prints it. `precise` is etcd's `--precise`: full
    /// precision (Go's `%g`) instead of four decimals.
    pub fn to_text(&self, precise: bool) -> String {
        let num = |x: f64| {
            if precise {
                go_format_g(x)
            } else {
                format!("{x:.4}")
            }
        };
        let secs = |x: f64| format!("{} secs", num(x));
        let mut s = String::new();
        if let Some(lat) = &self.latency {
            s.push_str("\nSummary:\n");
            let _ = writeln!(s, "  Total:\t{}.", secs(self.total_secs));
            let _ = writeln!(s, "  Slowest:\t{}.", secs(lat.slowest_secs));
            let _ = writeln!(s, "  Fastest:\t{}.", secs(lat.fastest_secs));
            let _ = writeln!(s, "  Average:\t{}.", secs(lat.average_secs));
            let _ = writeln!(s, "  Stddev:\t{}.", secs(lat.stddev_secs));
            let _ = writeln!(s, "  Requests/sec:\t{}", num(self.rps));

            s.push_str("\nResponse time histogram:\n");
            let most = lat.histogram.iter().map(|(_, n)| *n).max().unwrap_or(0);
            for (mark, count) in &lat.histogram {
                let bar = count
                    .saturating_mul(BAR_WIDTH)
                    .checked_div(most)
                    .unwrap_or(0);
                let bar = "∎".repeat(usize::try_from(bar).unwrap_or(0));
                let _ = writeln!(s, "  {} [{count}]\t|{bar}", num(*mark));
            }

            s.push_str("\nLatency distribution:\n");
            for (percent, value) in &lat.percentiles {
                if *value > 0.0 {
                    let _ = writeln!(s, "  {}% in {}.", go_format_g(*percent), secs(*value));
                }
            }
            if let Some(series) = &self.samples {
                s.push_str(&crate::sample::to_text(series));
                s.push('\n');
            }
        }
        if !self.error_distribution.is_empty() {
            s.push_str("\nError distribution:\n");
            for (message, count) in &self.error_distribution {
                let _ = writeln!(s, "  [{count}]\t{message}");
            }
        }
        s
    }

    /// The report as one JSON object (see the crate docs for its fields).
    pub fn to_json(&self, command: &str) -> serde_json::Value {
        let ms = |secs: f64| secs * 1000.0;
        let lat = self.latency.as_ref();
        let mut object = serde_json::Map::new();
        object.insert("command".into(), command.into());
        object.insert("total_secs".into(), self.total_secs.into());
        object.insert("requests".into(), self.requests.into());
        object.insert("errors".into(), self.errors.into());
        object.insert("rps".into(), self.rps.into());
        let stat = |f: fn(&Latency) -> f64| lat.map(|l| ms(f(l))).into();
        object.insert("fastest_ms".into(), stat(|l| l.fastest_secs));
        object.insert("slowest_ms".into(), stat(|l| l.slowest_secs));
        object.insert("average_ms".into(), stat(|l| l.average_secs));
        object.insert("stddev_ms".into(), stat(|l| l.stddev_secs));
        for (i, percent) in PERCENTILES.iter().enumerate() {
            let name = format!("p{}_ms", go_format_g(*percent).replace('.', ""));
            let value = lat.map(|l| ms(l.percentiles[i].1));
            object.insert(name, value.into());
        }
        let errors: Vec<serde_json::Value> = self
            .error_distribution
            .iter()
            .map(|(message, count)| serde_json::json!({"message": message, "count": count}))
            .collect();
        object.insert("error_messages".into(), errors.into());
        if let Some(series) = &self.samples {
            let rows: Vec<serde_json::Value> = series
                .iter()
                .map(|(second, point)| {
                    serde_json::json!({
                        "unix_second": second,
                        "min_ms": point.min_ns as f64 / 1e6,
                        "avg_ms": point.avg_ns() as f64 / 1e6,
                        "max_ms": point.max_ns as f64 / 1e6,
                        "requests": point.count,
                    })
                })
                .collect();
            object.insert("samples".into(), rows.into());
        }
        serde_json::Value::Object(object)
    }
}

/// Formats `x` as Go's `fmt.Sprintf("%g", x)`: the shortest decimal that reads back as
/// `x`, in exponent form (`1.5e-05`, `1e+06`) when the exponent is < -4 or >= 6.
pub fn go_format_g(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_g_matches_go_fmt() {
        assert_eq!(go_format_g(0.0), "0");
        assert_eq!(go_format_g(10.0), "10");
        assert_eq!(go_format_g(99.9), "99.9");
        assert_eq!(go_format_g(0.0001234), "0.0001234");
        assert_eq!(go_format_g(0.00001234), "1.234e-05");
        assert_eq!(go_format_g(123456.0), "123456");
        assert_eq!(go_format_g(1234567.0), "1.234567e+06");
        assert_eq!(go_format_g(1e21), "1e+21");
        assert_eq!(go_format_g(-0.5), "-0.5");
        assert_eq!(go_format_g(f64::NAN), "NaN");
    }

    #[test]
    fn mean_stddev_min_max_are_exact() {
        let mut r = Recorder::new().unwrap();
        for n in [2, 4, 4, 4, 5, 5, 7, 9] {
            r.record(ms(n));
        }
        let lat = r.summary(Duration::from_secs(2)).latency.unwrap();
        assert!((lat.average_secs - 0.005).abs() < 1e-12);
        assert!((lat.stddev_secs - 0.002).abs() < 1e-12);
        assert_eq!(lat.fastest_secs, 0.002);
        assert_eq!(lat.slowest_secs, 0.009);
    }

    #[test]
    fn merged_recorders_equal_one_recorder() {
        let values: Vec<u64> = (1..=200).map(|n| n * n % 97 + 1).collect();
        let mut whole = Recorder::new().unwrap();
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        for (i, v) in values.iter().enumerate() {
            whole.record(Duration::from_micros(*v));
            if i % 3 == 0 { &mut a } else { &mut b }.record(Duration::from_micros(*v));
        }
        let mut merged = Recorder::new().unwrap();
        merged.merge(&a).unwrap();
        merged.merge(&b).unwrap();
        let (w, m) = (whole.summary(ms(1)), merged.summary(ms(1)));
        let (wl, ml) = (w.latency.unwrap(), m.latency.unwrap());
        assert_eq!(w.requests, m.requests);
        assert!((wl.average_secs - ml.average_secs).abs() < 1e-15);
        assert!((wl.stddev_secs - ml.stddev_secs).abs() < 1e-12);
        assert_eq!(wl.percentiles, ml.percentiles);
        assert_eq!(wl.histogram, ml.histogram);
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let mut r = Recorder::new().unwrap();
        for n in 1..=1000 {
            r.record(Duration::from_micros(n));
        }
        let lat = r.summary(Duration::from_secs(1)).latency.unwrap();
        for (percent, value) in lat.percentiles {
            let expected = percent / 100.0 * 1000.0 / 1e6;
            assert!(
                (value - expected).abs() <= expected * 0.002 + 1e-6,
                "p{percent}: {value} vs {expected}"
            );
        }
    }

    #[test]
    fn histogram_has_eleven_rows_that_count_every_request() {
        let mut r = Recorder::new().unwrap();
        for n in 1..=100 {
            r.record(ms(n));
        }
        let lat = r.summary(Duration::from_secs(1)).latency.unwrap();
        assert_eq!(lat.histogram.len(), 11);
        assert_eq!(lat.histogram.iter().map(|(_, n)| n).sum::<u64>(), 100);
        assert_eq!(lat.histogram[0], (0.001, 1));
        assert_eq!(lat.histogram[10].0, 0.1);
        // Marks step evenly from fastest to slowest.
        let step = (0.1 - 0.001) / 10.0;
        for (i, (mark, _)) in lat.histogram.iter().enumerate() {
            assert!((mark - (0.001 + step * i as f64)).abs() < 1e-12);
        }
    }

    #[test]
    fn one_latency_fills_the_first_bucket() {
        let mut r = Recorder::new().unwrap();
        for _ in 0..3 {
            r.record(ms(5));
        }
        let lat = r.summary(ms(15)).latency.unwrap();
        assert_eq!(lat.histogram[0].1, 3);
        assert_eq!(lat.stddev_secs, 0.0);
    }

    #[test]
    fn zero_latencies_are_recorded_and_not_printed() {
        let mut r = Recorder::new().unwrap();
        for _ in 0..9 {
            r.record(Duration::ZERO);
        }
        r.record(ms(1));
        let summary = r.summary(ms(10));
        let lat = summary.latency.clone().unwrap();
        assert_eq!(lat.fastest_secs, 0.0);
        assert_eq!(lat.percentiles[2], (50.0, 0.0));
        let text = summary.to_text(false);
        // etcd prints only the percentiles above zero.
        assert!(!text.contains("  50% in"), "{text}");
        assert!(text.contains("  99% in 0.0010 secs."), "{text}");
    }

    #[test]
    fn rps_counts_successes_over_wall_time() {
        let mut r = Recorder::new().unwrap();
        for _ in 0..50 {
            r.record(ms(1));
        }
        r.record_error("boom");
        let s = r.summary(Duration::from_millis(500));
        assert_eq!(s.requests, 50);
        assert_eq!(s.errors, 1);
        assert!((s.rps - 100.0).abs() < 1e-9);
        assert_eq!(Recorder::new().unwrap().summary(Duration::ZERO).rps, 0.0);
    }

    #[test]
    fn error_distribution_is_bounded() {
        let mut r = Recorder::new().unwrap();
        for i in 0..100 {
            r.record_error(&format!("error {}", i % 40));
        }
        let s = r.summary(ms(1));
        assert_eq!(s.errors, 100);
        assert_eq!(s.error_distribution.len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(s.error_distribution.last().unwrap().0, "(other errors)");
        assert_eq!(
            s.error_distribution.iter().map(|(_, n)| n).sum::<u64>(),
            100
        );
        assert!(s.latency.is_none());
    }

    #[test]
    fn text_report_has_etcds_sections() {
        let mut r = Recorder::new().unwrap();
        for n in 1..=10 {
            r.record(ms(n));
        }
        r.record_error("etcdserver: request timed out");
        let text = r.summary(Duration::from_secs(1)).to_text(false);
        assert!(text.starts_with("\nSummary:\n  Total:\t1.0000 secs.\n"));
        assert!(text.contains("  Slowest:\t0.0100 secs.\n"));
        assert!(text.contains("  Fastest:\t0.0010 secs.\n"));
        assert!(text.contains("  Average:\t0.0055 secs.\n"));
        assert!(text.contains("  Requests/sec:\t10.0000\n"));
        assert!(text.contains("\nResponse time histogram:\n  0.0010 [1]\t|"));
        assert!(text.contains("\nLatency distribution:\n  10% in 0.0010 secs.\n"));
        assert!(text.contains("  99.9% in 0.0100 secs.\n"));
        assert!(text.ends_with("\nError distribution:\n  [1]\tetcdserver: request timed out\n"));
        let precise = r.summary(Duration::from_secs(1)).to_text(true);
        assert!(precise.contains("  Average:\t0.0055 secs.\n"));
        assert!(precise.contains("  Requests/sec:\t10\n"));
    }

    #[test]
    fn text_report_without_successes_shows_only_errors() {
        let mut r = Recorder::new().unwrap();
        r.record_error("connection refused");
        let text = r.summary(ms(1)).to_text(false);
        assert_eq!(text, "\nError distribution:\n  [1]\tconnection refused\n");
    }

    #[test]
    fn samples_follow_the_distribution_when_asked_for() {
        let mut r = Recorder::with_samples().unwrap();
        r.record_at(ms(2), Some(10));
        r.record_at(ms(4), Some(11));
        let mut other = Recorder::with_samples().unwrap();
        other.record_at(ms(6), Some(11));
        r.merge(&other).unwrap();
        let summary = r.summary(Duration::from_secs(2));
        let text = summary.to_text(false);
        assert!(
            text.ends_with("\n10,2ms,2ms,2ms,1\n11,4ms,5ms,6ms,2\n\n"),
            "{text}"
        );
        let json = summary.to_json("put");
        assert_eq!(json["samples"][1]["requests"], 2);
        assert_eq!(json["samples"][1]["avg_ms"], 5.0);
        assert!(Recorder::new()
            .unwrap()
            .summary(ms(1))
            .to_json("put")
            .get("samples")
            .is_none());
    }

    #[test]
    fn json_report_has_ms_percentiles() {
        let mut r = Recorder::new().unwrap();
        for n in 1..=100 {
            r.record(ms(n));
        }
        r.record_error("x");
        let json = r.summary(Duration::from_secs(2)).to_json("put");
        assert_eq!(json["command"], "put");
        assert_eq!(json["requests"], 100);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["total_secs"], 2.0);
        assert_eq!(json["rps"], 50.0);
        let p50 = json["p50_ms"].as_f64().unwrap();
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        let p999 = json["p999_ms"].as_f64().unwrap();
        assert!((p999 - 100.0).abs() < 0.1, "{p999}");
        assert!(json["p90_ms"].is_f64() && json["p99_ms"].is_f64());
        assert_eq!(json["error_messages"][0]["message"], "x");
        let empty = Recorder::new().unwrap().summary(ms(1)).to_json("range");
        assert!(empty["p50_ms"].is_null());
    }
}
