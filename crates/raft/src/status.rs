//! [`Status`]: a read-only snapshot of a node's state for monitoring and tests.

use std::collections::BTreeMap;

use etcd_proto::raftpb::{ConfState, HardState};

use crate::progress::ProgressState;
use crate::raft::{Raft, SoftState};
use crate::storage::Storage;

/// The leader's view of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    /// Highest index known to be replicated on the peer.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    /// Flow-control state.
    pub state: ProgressState,
    /// Whether the peer is a learner.
    pub is_learner: bool,
    /// Whether the peer was heard from during the current CheckQuorum period.
    pub recent_active: bool,
    /// Appends in flight.
    pub inflight_msgs: usize,
    /// Index of the snapshot being sent, in Snapshot state.
    pub pending_snapshot: u64,
}

/// The state of a node at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This node's id.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Leader and role.
    pub soft_state: SoftState,
    /// Index of the last entry the application acknowledged as applied.
    pub applied: u64,
    /// Index of the last log entry.
    pub last_index: u64,
    /// The membership configuration.
    pub conf_state: ConfState,
    /// Progress of every member (leader only; empty otherwise).
    pub progress: BTreeMap<u64, PeerProgress>,
    /// The peer leadership is being transferred to, or 0.
    pub lead_transferee: u64,
}

impl Status {
    pub(crate) fn new<S: Storage>(r: &Raft<S>) -> Self {
        let progress = if r.is_leader() {
            r.trk
                .progress
                .iter()
                .map(|(id, p)| {
                    let pp = PeerProgress {
                        matched: p.matched,
                        next: p.next,
                        state: p.state,
                        is_learner: p.is_learner,
                        recent_active: p.recent_active,
                        inflight_msgs: p.inflights.count(),
                        pending_snapshot: p.pending_snapshot,
                    };
                    (*id, pp)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.raft_log.applied,
            last_index: r.raft_log.last_index(),
            conf_state: r.trk.conf_state(),
            progress,
            lead_transferee: r.lead_transferee,
        }
    }
}
