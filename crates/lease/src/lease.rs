//! What a lease is, what the lessor reports about it, and how it is configured.
//!
//! Owns the in-memory lease record (`Lease`) and the public views of it ([`LeaseInfo`],
//! [`TimeToLive`]), the configuration ([`LessorConfig`]) and the etcd constants.
//! Invariant kept: a lease's `deadline` is `Some` only while this lessor is primary
//! (followers never expire leases), and `ttl >= min_ttl` for every lease.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The largest TTL a lease may be granted with, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The lease id that means "no lease" (a key not attached to any lease).
pub const NO_LEASE: i64 = 0;

/// Configuration of the [`crate::Lessor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessorConfig {
    /// The smallest TTL granted, in seconds: shorter requests are raised to it. etcd
    /// derives it from the election timeout ([`LessorConfig::min_ttl_for`]) so a lease
    /// survives a leader election; the default (2) is what etcd's default timing gives.
    pub min_ttl: i64,
    /// How often the primary checkpoints the remaining TTL of a long lease (etcd: 5 min).
    pub checkpoint_interval: Duration,
    /// Most expired leases handed out per [`crate::Lessor::expired`] call (etcd revokes
    /// at most 500 per 500 ms round).
    pub expired_batch: usize,
    /// Most checkpoints handed out per [`crate::Lessor::due_checkpoints`] call (etcd puts
    /// at most 1000 in one raft entry).
    pub checkpoint_batch: usize,
    /// An expired lease handed out for revocation is handed out again after this long if
    /// it still exists (its revoke failed or was lost). etcd: 3 s.
    pub revoke_retry: Duration,
}

impl LessorConfig {
    /// etcd's minimum lease TTL for an election timeout of `election_ticks` heartbeats of
    /// `heartbeat` each: 1.5 election timeouts, rounded up to whole seconds.
    pub fn min_ttl_for(election_ticks: u64, heartbeat: Duration) -> i64 {
        let ticks = u32::try_from(election_ticks.saturating_mul(3) / 2).unwrap_or(u32::MAX);
        let min = heartbeat.saturating_mul(ticks);
        let secs = min.as_secs() + u64::from(min.subsec_nanos() > 0);
        i64::try_from(secs).unwrap_or(MAX_LEASE_TTL)
    }
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            min_ttl: Self::min_ttl_for(10, Duration::from_millis(100)),
            checkpoint_interval: Duration::from_secs(5 * 60),
            expired_batch: 500,
            checkpoint_batch: 1000,
            revoke_retry: Duration::from_secs(3),
        }
    }
}

/// A lease as the lessor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// The granted TTL in seconds (after raising to the minimum TTL).
    pub ttl: i64,
    /// Seconds left, computed as [`TimeToLive::ttl`] is.
    pub remaining_ttl: i64,
}

/// The answer to a `LeaseTimeToLive` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// The lease id.
    pub id: i64,
    /// Seconds left. On the primary: the time to the lease's expiry, truncated toward
    /// zero as etcd computes it (`int64(Remaining().Seconds())`), so it is 0 or negative
    /// for an expired lease whose revoke is pending. Elsewhere (etcd forwards this request
    /// to the leader): the last checkpointed remaining TTL, or the granted TTL.
    pub ttl: i64,
    /// The granted TTL in seconds.
    pub granted_ttl: i64,
    /// The attached keys in key order (empty unless asked for).
    pub keys: Vec<Vec<u8>>,
}

/// One lease in the lessor.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) id: i64,
    /// Granted TTL in seconds.
    pub(crate) ttl: i64,
    /// The last checkpointed remaining TTL in seconds; 0 = never checkpointed (replicated).
    pub(crate) remaining_ttl: i64,
    /// When the lease expires; `None` while not primary, or beyond `Instant`'s range.
    pub(crate) deadline: Option<Instant>,
    /// Attached keys, in key order (the order a revoke deletes them in, on every member).
    pub(crate) keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    pub(crate) fn new(id: i64, ttl: i64, remaining_ttl: i64) -> Self {
        Lease {
            id,
            ttl,
            remaining_ttl,
            deadline: None,
            keys: BTreeSet::new(),
        }
    }

    /// The TTL a new primary gives the lease: the checkpointed remaining TTL if any.
    pub(crate) fn effective_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }

    /// Seconds left at `now` (see [`TimeToLive::ttl`]).
    pub(crate) fn remaining_secs(&self, now: Instant) -> i64 {
        match self.deadline {
            None => self.effective_ttl(),
            Some(d) if d >= now => secs_i64(d - now),
            Some(d) => -secs_i64(now - d),
        }
    }

    pub(crate) fn info(&self, now: Instant) -> LeaseInfo {
        LeaseInfo {
            id: self.id,
            ttl: self.ttl,
            remaining_ttl: self.remaining_secs(now),
        }
    }
}

/// Whole seconds of `d`, truncated.
fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `now + secs seconds + extend`, or `None` beyond the range of `Instant`.
pub(crate) fn deadline_after(now: Instant, secs: i64, extend: Duration) -> Option<Instant> {
    let secs = u64::try_from(secs.max(0)).unwrap_or(0);
    now.checked_add(Duration::from_secs(secs))?
        .checked_add(extend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        // etcd's defaults: 10 ticks of 100 ms -> 1.5 s -> 2 s.
        assert_eq!(LessorConfig::min_ttl_for(10, Duration::from_millis(100)), 2);
        assert_eq!(LessorConfig::min_ttl_for(10, Duration::from_millis(200)), 3);
        assert_eq!(LessorConfig::min_ttl_for(0, Duration::from_millis(100)), 0);
        assert_eq!(LessorConfig::default().min_ttl, 2);
    }

    #[test]
    fn remaining_seconds_truncate_toward_zero() {
        let now = Instant::now();
        let mut l = Lease::new(1, 10, 0);
        assert_eq!(l.remaining_secs(now), 10, "not primary: the granted ttl");
        l.remaining_ttl = 4;
        assert_eq!(l.remaining_secs(now), 4, "not primary: the checkpoint");
        l.deadline = Some(now + Duration::from_millis(2500));
        assert_eq!(l.remaining_secs(now), 2);
        assert_eq!(l.remaining_secs(now + Duration::from_millis(3000)), 0);
        assert_eq!(l.remaining_secs(now + Duration::from_millis(4600)), -2);
    }
}
