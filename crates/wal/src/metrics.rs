//! Metrics hooks.
//!
//! Owns: the [`WalMetrics`] trait through which the server observes the log.
//! Invariant: every fdatasync of a segment file, and every byte written to one, is
//! reported exactly once, so the server's `etcd_disk_wal_fsync_duration_seconds` and
//! `etcd_disk_wal_write_bytes_total` are exact.

use std::time::Duration;

/// Receives measurements from the WAL. Implement it to export
/// `etcd_disk_wal_fsync_duration_seconds` and `etcd_disk_wal_write_bytes_total`.
/// Both methods default to doing nothing; they are called on the writer's thread and
/// must be quick.
pub trait WalMetrics: Send + Sync + std::fmt::Debug {
    /// One fdatasync of a segment file took `d`.
    fn observe_fsync(&self, d: Duration) {
        let _ = d;
    }
    /// `n` bytes were written to segment files.
    fn add_bytes_written(&self, n: u64) {
        let _ = n;
    }
}

/// Metrics that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl WalMetrics for NoMetrics {}

/// An fdatasync slower than this is logged as a warning (etcd's threshold).
pub const SLOW_FSYNC: Duration = Duration::from_secs(1);
