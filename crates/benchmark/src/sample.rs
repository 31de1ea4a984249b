//! `--sample`: latency and throughput per second of the run, as etcd's report prints
//! them (a CSV table of unix second, min/avg/max latency and requests in that second).
//!
//! One row per second in which a request started, so the table grows with the length of
//! the run, not with the number of requests; seconds without requests between the first
//! and the last are filled with zero rows, as etcd does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The successful requests that started in one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecondPoint {
    /// The fastest, in nanoseconds.
    pub min_ns: u64,
    /// The slowest, in nanoseconds.
    pub max_ns: u64,
    /// Their sum, in nanoseconds.
    pub total_ns: u128,
    /// How many.
    pub count: u64,
}

/// Per-second points, keyed by unix second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples {
    points: BTreeMap<i64, SecondPoint>,
}

impl Samples {
    /// Adds a request that started in `unix_second` and took `latency_ns`.
    pub fn add(&mut self, unix_second: i64, latency_ns: u64) {
        let point = self.points.entry(unix_second).or_insert(SecondPoint {
            min_ns: latency_ns,
            ..SecondPoint::default()
        });
        point.min_ns = point.min_ns.min(latency_ns);
        point.max_ns = point.max_ns.max(latency_ns);
        point.total_ns += u128::from(latency_ns);
        point.count += 1;
    }

    /// Adds everything in `other`.
    pub fn merge(&mut self, other: &Samples) {
        for (second, theirs) in &other.points {
            let point = self.points.entry(*second).or_insert(SecondPoint {
                min_ns: theirs.min_ns,
                ..SecondPoint::default()
            });
            point.min_ns = point.min_ns.min(theirs.min_ns);
            point.max_ns = point.max_ns.max(theirs.max_ns);
            point.total_ns += theirs.total_ns;
            point.count += theirs.count;
        }
    }

    /// `(unix second, point)` for every second from the first to the last, gaps as zeros.
    pub fn series(&self) -> Vec<(i64, SecondPoint)> {
        let (Some((first, _)), Some((last, _))) =
            (self.points.first_key_value(), self.points.last_key_value())
        else {
            return Vec::new();
        };
        (*first..=*last)
            .map(|second| {
                (
                    second,
                    self.points.get(&second).copied().unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl SecondPoint {
    /// The mean latency, in nanoseconds (0 without requests).
    pub fn avg_ns(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            u64::try_from(self.total_ns / u128::from(self.count)).unwrap_or(u64::MAX)
        }
    }
}

/// The table as etcd prints it after the latency distribution.
pub fn to_text(series: &[(i64, SecondPoint)]) -> String {
    let mut s = String::from("\nSample in one second (unix latency throughput):\n");
    s.push_str("UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n");
    for (second, point) in series {
        let _ = writeln!(
            s,
            "{second},{},{},{},{}",
            go_duration(point.min_ns),
            go_duration(point.avg_ns()),
            go_duration(point.max_ns),
            point.count
        );
    }
    s
}

/// Formats nanoseconds as Go's `time.Duration.String()`: `0s`, `850ns`, `1.5µs`,
/// `2.25ms`, `1.5s`, `1m2.5s`, `1h0m1s`.
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let fraction = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let text = format!("{whole}.{rest:0digits$}");
        text.trim_end_matches('0').to_string()
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fraction(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fraction(ns, 1_000_000));
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = ns / 60_000_000_000 % 60;
    let seconds = fraction(ns % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(850), "850ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(2_250_000), "2.25ms");
        assert_eq!(go_duration(1_000_000), "1ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(62_500_000_000), "1m2.5s");
        assert_eq!(go_duration(3_601_000_000_000), "1h0m1s");
        assert_eq!(go_duration(1_000_000_001), "1.000000001s");
    }

    #[test]
    fn series_fills_gaps_and_merges() {
        let mut a = Samples::default();
        a.add(100, 2_000_000);
        a.add(100, 4_000_000);
        let mut b = Samples::default();
        b.add(102, 1_000_000);
        b.add(100, 1_000_000);
        a.merge(&b);
        let series = a.series();
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].0, 100);
        assert_eq!(
            (series[0].1.min_ns, series[0].1.max_ns, series[0].1.count),
            (1_000_000, 4_000_000, 3)
        );
        assert_eq!(series[0].1.avg_ns(), 7_000_000 / 3);
        assert_eq!(series[1], (101, SecondPoint::default()));
        let text = to_text(&series);
        assert!(text.starts_with(
            "\nSample in one second (unix latency throughput):\n\
             UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n\
             100,1ms,2.333333ms,4ms,3\n101,0s,0s,0s,0\n102,1ms,1ms,1ms,1\n"
        ));
        assert!(Samples::default().series().is_empty());
    }
}
