//! A peer's health: active while the last attempt to reach it succeeded, inactive after
//! a failure.
//!
//! Invariant: each transition is logged exactly once (compare-and-swap on the flag), so
//! a dead peer produces one warning, not one per dropped message.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::stats::PeerCounters;

/// Health of one remote member as seen from this one.
#[derive(Debug, Clone)]
pub(crate) struct PeerStatus {
    local_id: u64,
    peer_id: u64,
    counters: Arc<PeerCounters>,
}

impl PeerStatus {
    pub(crate) fn new(local_id: u64, peer_id: u64, counters: Arc<PeerCounters>) -> Self {
        PeerStatus {
            local_id,
            peer_id,
            counters,
        }
    }

    /// Marks the peer reachable; logs if it was not.
    pub(crate) fn activate(&self) {
        if self
            .counters
            .active
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(local_member_id = %format!("{:x}", self.local_id),
                remote_peer_id = %format!("{:x}", self.peer_id), "peer became active");
        }
    }

    /// Marks the peer unreachable; logs `reason` if it was reachable.
    pub(crate) fn deactivate(&self, reason: &str) {
        if self
            .counters
            .active
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(local_member_id = %format!("{:x}", self.local_id),
                remote_peer_id = %format!("{:x}", self.peer_id), reason,
                "peer became inactive (message send to peer failed); check the peer's process and the network between the members");
        }
    }
}
