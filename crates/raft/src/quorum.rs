//! Quorum arithmetic: simple majorities and joint (two-majority) configurations,
//! for commit indexes and election outcomes.
//!
//! Invariant: a joint configuration agrees only when both of its majorities agree; an
//! empty majority agrees with everything (so a joint config with an empty outgoing
//! half behaves like its incoming half).

use std::collections::BTreeSet;

/// The outcome of an election so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Neither won nor lost yet.
    Pending,
    /// A quorum rejected.
    Lost,
    /// A quorum granted.
    Won,
}

/// A set of voters deciding by simple majority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    voters: BTreeSet<u64>,
}

impl MajorityConfig {
    /// A configuration of the given voters.
    pub fn new(voters: BTreeSet<u64>) -> Self {
        MajorityConfig { voters }
    }

    /// The voters.
    pub fn ids(&self) -> &BTreeSet<u64> {
        &self.voters
    }

    pub(crate) fn ids_mut(&mut self) -> &mut BTreeSet<u64> {
        &mut self.voters
    }

    /// Whether `id` is a voter.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// The largest index acknowledged by a majority (`acked` gives each voter's
    /// acknowledged index; unknown voters count as 0). `u64::MAX` when empty.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        // No allocation for the usual cluster sizes.
        let mut stack = [0u64; 7];
        let mut heap = Vec::new();
        let srt: &mut [u64] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap
        };
        for (slot, id) in srt.iter_mut().zip(self.voters.iter()) {
            *slot = acked(*id).unwrap_or(0);
        }
        srt.sort_unstable();
        srt[n - (n / 2 + 1)]
    }

    /// The election outcome given each voter's vote (`None`: not yet voted).
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for id in &self.voters {
            match votes(*id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.voters.len() / 2 + 1;
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// Two majority configurations (incoming, outgoing) that must both agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JointConfig {
    pub(crate) incoming: MajorityConfig,
    pub(crate) outgoing: MajorityConfig,
}

impl JointConfig {
    /// A non-joint configuration of the given voters.
    pub fn new(voters: BTreeSet<u64>) -> Self {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// The incoming (current) majority.
    pub fn incoming(&self) -> &MajorityConfig {
        &self.incoming
    }

    /// The outgoing majority (empty unless joint).
    pub fn outgoing(&self) -> &MajorityConfig {
        &self.outgoing
    }

    /// Whether this is a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every voter of either half, sorted.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.incoming
            .voters
            .union(&self.outgoing.voters)
            .copied()
            .collect()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The index committed by both halves.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64> + Copy) -> u64 {
        self.incoming
            .committed_index(acked)
            .min(self.outgoing.committed_index(acked))
    }

    /// The election outcome in both halves.
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool> + Copy) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        let b = self.outgoing.vote_result(votes);
        if a == b {
            a
        } else if a == VoteResult::Lost || b == VoteResult::Lost {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_commit_is_the_median_acknowledged_index() {
        let c = MajorityConfig::new(set(&[1, 2, 3]));
        let acked: HashMap<u64, u64> = [(1, 10), (2, 5), (3, 7)].into();
        assert_eq!(c.committed_index(|id| acked.get(&id).copied()), 7);
        let c5 = MajorityConfig::new(set(&[1, 2, 3, 4, 5]));
        assert_eq!(c5.committed_index(|id| acked.get(&id).copied()), 5);
        assert_eq!(
            MajorityConfig::default().committed_index(|_| None),
            u64::MAX
        );
    }

    #[test]
    fn joint_commit_is_the_minimum_of_both_halves() {
        let j = JointConfig {
            incoming: MajorityConfig::new(set(&[1, 2, 3])),
            outgoing: MajorityConfig::new(set(&[3, 4, 5])),
        };
        let acked: HashMap<u64, u64> = [(1, 10), (2, 10), (3, 4), (4, 8), (5, 2)].into();
        assert_eq!(j.committed_index(|id| acked.get(&id).copied()), 4);
    }

    #[test]
    fn vote_result_is_pending_until_a_quorum_decides() {
        let c = MajorityConfig::new(set(&[1, 2, 3]));
        assert_eq!(
            c.vote_result(|id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(
            c.vote_result(|id| (id != 3).then_some(true)),
            VoteResult::Won
        );
        assert_eq!(
            c.vote_result(|id| (id != 3).then_some(id == 1)),
            VoteResult::Pending
        );
        assert_eq!(c.vote_result(|id| Some(id == 1)), VoteResult::Lost);
    }

    #[test]
    fn joint_vote_needs_both_halves() {
        let j = JointConfig {
            incoming: MajorityConfig::new(set(&[1, 2, 3])),
            outgoing: MajorityConfig::new(set(&[1, 4, 5])),
        };
        let won_incoming_only = |id: u64| Some(id <= 3);
        assert_eq!(j.vote_result(won_incoming_only), VoteResult::Lost);
        assert_eq!(
            j.vote_result(|id| Some(id == 1 || id == 2 || id == 4)),
            VoteResult::Won
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The committed index is the largest index that a majority has acknowledged.
        #[test]
        fn committed_index_is_acknowledged_by_a_majority(acked in proptest::collection::vec(0u64..50, 1..9)) {
            let voters: BTreeSet<u64> = (1..=acked.len() as u64).collect();
            let c = MajorityConfig::new(voters);
            let ci = c.committed_index(|id| acked.get(id as usize - 1).copied());
            let at_least = |i: u64| acked.iter().filter(|a| **a >= i).count();
            let q = acked.len() / 2 + 1;
            prop_assert!(at_least(ci) >= q);
            prop_assert!(at_least(ci + 1) < q);
        }
    }
}
