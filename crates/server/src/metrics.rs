//! Prometheus metrics with etcd's names, served as text on `/metrics`.
//!
//! Counters and histograms live in one process-wide [`METRICS`] (as etcd's are global);
//! gauges (leader, indexes, sizes, keys) are read from the member's state when scraped.
//! Histogram buckets are etcd's: exponential from 1 ms by a factor of 2, 14 buckets.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::server::Shared;

/// Upper bounds of the duration histograms, in seconds (etcd's).
const BOUNDS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// A duration histogram with etcd's buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 14],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The process-wide counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    /// WAL fdatasync latency.
    pub wal_fsync: Histogram,
    /// Backend batch commit latency.
    pub backend_commit: Histogram,
    /// Leader changes seen.
    pub leader_changes: AtomicU64,
    /// Proposals that failed (timed out, refused, dropped).
    pub proposals_failed: AtomicU64,
}

/// The metrics of this process.
pub static METRICS: Metrics = Metrics {
    wal_fsync: Histogram::new(),
    backend_commit: Histogram::new(),
    leader_changes: AtomicU64::new(0),
    proposals_failed: AtomicU64::new(0),
};

/// Feeds the WAL's fsync timings into [`METRICS`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WalMetrics;

impl etcd_wal::WalMetrics for WalMetrics {
    fn observe_fsync(&self, d: Duration) {
        METRICS.wal_fsync.observe(d);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The text exposition of every metric.
pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let m = &METRICS;
    let store = shared.store();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge(
        &mut out,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "gauge",
        flag(shared.leader() != 0),
    );
    gauge(
        &mut out,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "gauge",
        flag(shared.is_leader()),
    );
    gauge(
        &mut out,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        "counter",
        m.leader_changes.load(Ordering::Relaxed) as f64,
    );
    gauge(
        &mut out,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        "gauge",
        shared.commit_index() as f64,
    );
    gauge(
        &mut out,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        "gauge",
        shared.applied_index() as f64,
    );
    gauge(
        &mut out,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        "gauge",
        shared.wait.len() as f64,
    );
    gauge(
        &mut out,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        "counter",
        m.proposals_failed.load(Ordering::Relaxed) as f64,
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        "gauge",
        store.backend().size_bytes().unwrap_or(0) as f64,
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        "gauge",
        store.backend().size_in_use_bytes().unwrap_or(0) as f64,
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        "gauge",
        store.index_len() as f64,
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        "gauge",
        store.current_revision() as f64,
    );
    m.wal_fsync.render(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
    );
    m.backend_commit.render(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.004\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"8.192\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert!(out.contains("# TYPE x histogram\n"));
    }
}
