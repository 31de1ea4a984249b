//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), run by
//! the leader only and proposed through raft like a client's Compact, as etcd does.
//!
//! - `revision`: every 5 minutes, compact at `current revision - retention` if that moved.
//! - `periodic`: sample the current revision every tenth of the compaction period (the
//!   retention, capped at one hour), and every period compact at the newest sample that is
//!   at least `retention` old, so about `retention` of history stays readable.
//!
//! The policies are pure ([`RevisionPolicy`], [`PeriodicPolicy`]) and tested in virtual
//! time; [`run`] drives them with the wall clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_proto::etcdserverpb::{CompactionRequest, InternalRaftRequest};

use crate::config::AutoCompaction;
use crate::errors::{EtcdError, ServerError};
use crate::server::Shared;

/// How often revision mode checks, as etcd.
const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest period between two periodic compactions, as etcd.
const MAX_PERIOD: Duration = Duration::from_secs(60 * 60);

/// Revision mode: keep the last `retention` revisions.
#[derive(Debug, Clone)]
pub struct RevisionPolicy {
    retention: i64,
    last: i64,
}

impl RevisionPolicy {
    /// A policy keeping `retention` revisions.
    pub fn new(retention: u64) -> RevisionPolicy {
        RevisionPolicy {
            retention: i64::try_from(retention).unwrap_or(i64::MAX),
            last: 0,
        }
    }

    /// The revision to compact at now, if any.
    pub fn next(&mut self, current_rev: i64) -> Option<i64> {
        let rev = current_rev.saturating_sub(self.retention);
        if rev <= 0 || rev <= self.last {
            return None;
        }
        self.last = rev;
        Some(rev)
    }
}

/// Periodic mode: keep `retention` of history.
#[derive(Debug, Clone)]
pub struct PeriodicPolicy {
    retention: Duration,
    period: Duration,
    samples: VecDeque<(Instant, i64)>,
    next_compact: Instant,
    last: i64,
}

impl PeriodicPolicy {
    /// A policy keeping `retention` of history, started at `now`.
    pub fn new(retention: Duration, now: Instant) -> PeriodicPolicy {
        let period = retention.min(MAX_PERIOD).max(Duration::from_millis(10));
        PeriodicPolicy {
            retention,
            period,
            samples: VecDeque::new(),
            next_compact: now + period,
            last: 0,
        }
    }

    /// How often to call [`PeriodicPolicy::tick`].
    pub fn sample_interval(&self) -> Duration {
        self.period / 10
    }

    /// Records the current revision at `now`; returns the revision to compact at, if a
    /// compaction is due.
    pub fn tick(&mut self, now: Instant, current_rev: i64) -> Option<i64> {
        self.samples.push_back((now, current_rev));
        // Keep the samples that may still be needed: the newest one older than the
        // retention, and everything after it.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.retention)
        {
            self.samples.pop_front();
        }
        if now < self.next_compact {
            return None;
        }
        self.next_compact = now + self.period;
        let (t, rev) = *self.samples.front()?;
        if now.saturating_duration_since(t) < self.retention || rev <= self.last {
            return None;
        }
        self.last = rev;
        Some(rev)
    }
}

/// Runs the configured policy until the member stops.
pub async fn run(shared: Arc<Shared>) {
    let mode = shared.cfg.auto_compaction;
    match mode {
        AutoCompaction::Off => {}
        AutoCompaction::Revision(retention) => {
            let mut policy = RevisionPolicy::new(retention);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(REVISION_CHECK_INTERVAL) => {}
                    () = shared.stopped() => return,
                }
                if !shared.is_leader() {
                    continue;
                }
                if let Some(rev) = policy.next(shared.store().current_revision()) {
                    compact(&shared, rev).await;
                }
            }
        }
        AutoCompaction::Periodic(retention) => {
            let mut policy = PeriodicPolicy::new(retention, Instant::now());
            loop {
                tokio::select! {
                    () = tokio::time::sleep(policy.sample_interval()) => {}
                    () = shared.stopped() => return,
                }
                let due = policy.tick(Instant::now(), shared.store().current_revision());
                if let (Some(rev), true) = (due, shared.is_leader()) {
                    compact(&shared, rev).await;
                }
            }
        }
    }
}

async fn compact(shared: &Shared, rev: i64) {
    let req = InternalRaftRequest {
        compaction: Some(CompactionRequest {
            revision: rev,
            physical: false,
        }),
        ..Default::default()
    };
    match shared.propose(req).await {
        Ok(_) => tracing::info!(revision = rev, "auto compaction done"),
        Err(ServerError::Etcd(EtcdError::Compacted)) => {}
        Err(err) => tracing::warn!(revision = rev, %err, "auto compaction failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_keeps_the_last_n_revisions_and_never_repeats() {
        let mut p = RevisionPolicy::new(10);
        assert_eq!(p.next(5), None);
        assert_eq!(p.next(25), Some(15));
        assert_eq!(p.next(25), None);
        assert_eq!(p.next(40), Some(30));
    }

    #[test]
    fn periodic_mode_compacts_at_the_revision_seen_one_retention_ago() {
        let start = Instant::now();
        let retention = Duration::from_secs(60);
        let mut p = PeriodicPolicy::new(retention, start);
        let step = p.sample_interval();
        assert_eq!(step, Duration::from_secs(6));
        let mut compactions = Vec::new();
        // One revision per second for five minutes.
        for i in 0..=50u32 {
            let now = start + step * i;
            let rev = i64::from(i) * 6 + 1;
            if let Some(r) = p.tick(now, rev) {
                compactions.push((i, r));
            }
        }
        // Every period (10 samples), compact at the sample taken 60 s earlier.
        assert_eq!(
            compactions,
            vec![(10, 1), (20, 61), (30, 121), (40, 181), (50, 241)]
        );
    }

    #[test]
    fn periodic_mode_caps_the_period_at_one_hour() {
        let p = PeriodicPolicy::new(Duration::from_secs(5 * 3600), Instant::now());
        assert_eq!(p.sample_interval(), Duration::from_secs(360));
    }
}
