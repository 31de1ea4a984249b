//! The leader's bookkeeping of the cluster: the active configuration (voters, joint
//! state, learners), the [`Progress`] of every member, and the votes of an election.
//!
//! Invariant: every id of the configuration (voters of both halves, learners,
//! learners_next) has exactly one `Progress`, and no other id has one; voters and
//! learners are disjoint.

use std::collections::{BTreeMap, BTreeSet};

use etcd_proto::raftpb::ConfState;

use crate::progress::Progress;
use crate::quorum::{JointConfig, VoteResult};

/// The membership configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Voters (joint when the outgoing half is non-empty).
    pub voters: JointConfig,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
    /// Non-voting members.
    pub learners: BTreeSet<u64>,
    /// Outgoing voters that become learners when the joint configuration is left.
    pub learners_next: BTreeSet<u64>,
}

impl TrackerConfig {
    /// The configuration as the protobuf record.
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.ids().iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.ids().iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }
}

pub(crate) type ProgressMap = BTreeMap<u64, Progress>;

/// Configuration, progress and votes.
#[derive(Debug, Clone)]
pub(crate) struct ProgressTracker {
    pub(crate) config: TrackerConfig,
    pub(crate) progress: ProgressMap,
    pub(crate) votes: BTreeMap<u64, bool>,
    pub(crate) max_inflight: usize,
    pub(crate) max_inflight_bytes: u64,
}

impl ProgressTracker {
    pub(crate) fn new(max_inflight: usize, max_inflight_bytes: u64) -> Self {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
            max_inflight_bytes,
        }
    }

    pub(crate) fn conf_state(&self) -> ConfState {
        self.config.to_conf_state()
    }

    /// Whether the only voter is a single node.
    pub(crate) fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && self.config.voters.outgoing.is_empty()
    }

    /// The largest index replicated on a quorum.
    pub(crate) fn committed(&self) -> u64 {
        let prs = &self.progress;
        self.config
            .voters
            .committed_index(|id| prs.get(&id).map(|p| p.matched))
    }

    /// Whether a quorum was recently active (for CheckQuorum). `self_id` counts as active.
    pub(crate) fn quorum_active(&self, self_id: u64) -> bool {
        let prs = &self.progress;
        let res = self.config.voters.vote_result(|id| {
            let pr = prs.get(&id)?;
            if pr.is_learner {
                return None;
            }
            Some(id == self_id || pr.recent_active)
        });
        res == VoteResult::Won
    }

    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
    }

    pub(crate) fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// (granted, rejected, result) of the current election.
    pub(crate) fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for (id, pr) in &self.progress {
            if pr.is_learner {
                continue;
            }
            match self.votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        let votes = &self.votes;
        let res = self.config.voters.vote_result(|id| votes.get(&id).copied());
        (granted, rejected, res)
    }

    /// Ids of every member with a progress (voters and learners), sorted.
    pub(crate) fn member_ids_into(&self, out: &mut Vec<u64>) {
        out.clear();
        out.extend(self.progress.keys().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MajorityConfig;

    fn tracker(voters: &[u64], learners: &[u64]) -> ProgressTracker {
        let mut t = ProgressTracker::new(10, 0);
        t.config.voters.incoming = MajorityConfig::new(voters.iter().copied().collect());
        for &id in voters {
            t.progress.insert(id, Progress::new(1, 10, 0));
        }
        for &id in learners {
            t.config.learners.insert(id);
            let mut p = Progress::new(1, 10, 0);
            p.is_learner = true;
            t.progress.insert(id, p);
        }
        t
    }

    #[test]
    fn learners_do_not_count_towards_commit() {
        let mut t = tracker(&[1, 2, 3], &[4, 5]);
        for id in [1, 4, 5] {
            t.progress.get_mut(&id).unwrap().matched = 9;
        }
        assert_eq!(t.committed(), 0);
        t.progress.get_mut(&2).unwrap().matched = 3;
        assert_eq!(t.committed(), 3);
    }

    #[test]
    fn quorum_active_needs_a_majority_of_recently_active_voters() {
        let mut t = tracker(&[1, 2, 3], &[4]);
        t.progress.get_mut(&4).unwrap().recent_active = true;
        assert!(!t.quorum_active(1));
        t.progress.get_mut(&2).unwrap().recent_active = true;
        assert!(t.quorum_active(1));
    }

    #[test]
    fn first_vote_of_a_peer_is_the_one_counted() {
        let mut t = tracker(&[1, 2, 3], &[]);
        t.record_vote(1, true);
        t.record_vote(2, false);
        t.record_vote(2, true);
        assert_eq!(t.tally_votes(), (1, 1, VoteResult::Pending));
        t.record_vote(3, true);
        assert_eq!(t.tally_votes().2, VoteResult::Won);
    }
}
