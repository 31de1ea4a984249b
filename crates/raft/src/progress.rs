//! The leader's view of one follower: how much of the log it has (`matched`), what to
//! send next (`next`), and the flow-control state (Probe, Replicate, Snapshot).
//!
//! Invariant: `matched < next`; `matched` never decreases while the leader leads.

use crate::inflights::Inflights;

/// The replication state of a follower, as seen by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log ends: one append at a time.
    Probe,
    /// The follower accepts appends: stream them, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot; appends wait until it is reported.
    Snapshot,
}

/// Replication progress of one peer.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub(crate) matched: u64,
    pub(crate) next: u64,
    pub(crate) state: ProgressState,
    pub(crate) pending_snapshot: u64,
    pub(crate) recent_active: bool,
    pub(crate) msg_app_flow_paused: bool,
    pub(crate) inflights: Inflights,
    pub(crate) is_learner: bool,
}

impl Progress {
    pub(crate) fn new(next: u64, max_inflight: usize, max_inflight_bytes: u64) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            msg_app_flow_paused: false,
            inflights: Inflights::new(max_inflight, max_inflight_bytes),
            is_learner: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Records that a MsgApp with `entries` entries (`bytes` of payload) was sent.
    pub(crate) fn sent_entries(&mut self, entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    self.next += entries as u64;
                    self.inflights.add(self.next - 1, bytes);
                }
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                if entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => {
                panic!("sending append in unhandled state {:?}", self.state)
            }
        }
    }

    /// The follower acknowledged up to `n`; returns whether `matched` moved.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        let updated = self.matched < n;
        if updated {
            self.matched = n;
            self.msg_app_flow_paused = false;
        }
        self.next = self.next.max(n.saturating_add(1));
        updated
    }

    /// The follower rejected an append at `rejected`; its log may match up to
    /// `match_hint`. Returns false if the rejection is stale.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        if self.next - 1 != rejected {
            return false;
        }
        self.next = rejected
            .min(match_hint.saturating_add(1))
            .max(self.matched + 1);
        self.msg_app_flow_paused = false;
        true
    }

    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_pauses_after_one_append_until_a_response() {
        let mut p = Progress::new(5, 10, 0);
        assert!(!p.is_paused());
        p.sent_entries(2, 0);
        assert!(p.is_paused());
        assert!(p.maybe_update(5));
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_advances_next_optimistically_and_pauses_when_window_full() {
        let mut p = Progress::new(5, 2, 0);
        p.matched = 4;
        p.become_replicate();
        p.sent_entries(3, 0);
        assert_eq!(p.next, 8);
        p.sent_entries(1, 0);
        assert!(p.is_paused());
        p.maybe_update(7);
        p.inflights.free_le(7);
        assert!(!p.is_paused());
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10, 10, 0);
        p.matched = 5;
        p.become_replicate();
        assert!(!p.maybe_decr_to(4, 4));
        assert!(p.maybe_decr_to(8, 8));
        assert_eq!(p.next, 6);
        let mut p = Progress::new(10, 10, 0);
        assert!(
            !p.maybe_decr_to(5, 5),
            "probe only accepts a rejection of next-1"
        );
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next, 4, "the hint jumps back over the conflicting terms");
    }

    #[test]
    fn snapshot_state_is_paused_and_probe_resumes_after_pending_index() {
        let mut p = Progress::new(3, 10, 0);
        p.become_snapshot(20);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next, 21);
    }

    #[test]
    fn matched_never_decreases() {
        let mut p = Progress::new(3, 10, 0);
        p.maybe_update(9);
        assert!(!p.maybe_update(4));
        assert_eq!(p.matched, 9);
    }
}
