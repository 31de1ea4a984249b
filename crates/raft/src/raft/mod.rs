//! The raft state machine of one node: term, vote, role, log and (when leader) the
//! progress of every peer. It is driven by `step` (messages) and `tick` (time) and
//! produces messages in `msgs`; it never does I/O.
//!
//! Invariants (asserted): at most one vote per term (`vote` only changes when the
//! term does, or from none); `term` never decreases; a leader never truncates its own
//! log; the commit index never decreases (see [`RaftLog`]).
//!
//! The code is split by role: this file holds state, role transitions, ticks,
//! elections and membership; `step.rs` the message dispatch and follower handling;
//! `leader.rs` replication, commit, reads and leader transfer.

mod leader;
#[cfg(test)]
mod peer_input_tests;
pub(crate) mod step;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfChangeV2, ConfState, Entry, HardState, Message, MessageType, Snapshot,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::confchange::{self, Changer};
use crate::config::Config;
use crate::errors::Result;
use crate::quorum::VoteResult;
use crate::raft_log::RaftLog;
use crate::read_only::{ReadOnly, ReadState};
use crate::storage::Storage;
use crate::tracker::{ProgressMap, ProgressTracker, TrackerConfig};
use crate::util::payload_size;

/// The id meaning "no node".
pub const INVALID_ID: u64 = 0;

/// Context of a vote request that comes from a leader transfer (bypasses leases).
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// The role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Runs an election.
    Candidate,
    /// Leads the cluster.
    Leader,
    /// Runs a pre-election (PreVote): asks whether it could win before bumping its term.
    PreCandidate,
}

/// Volatile state worth reporting to the application: who leads, and our role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    /// The known leader, or [`INVALID_ID`].
    pub leader_id: u64,
    /// This node's role.
    pub role: StateRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignType {
    PreElection,
    Election,
    Transfer,
}

pub(crate) struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) max_msg_size: u64,
    pub(crate) max_uncommitted_size: u64,
    pub(crate) trk: ProgressTracker,
    pub(crate) state: StateRole,
    pub(crate) msgs: Vec<Message>,
    pub(crate) lead: u64,
    pub(crate) lead_transferee: u64,
    /// Index of the last conf change proposed; a new one waits until it is applied.
    pub(crate) pending_conf_index: u64,
    pub(crate) uncommitted_size: u64,
    pub(crate) read_only: ReadOnly,
    pub(crate) election_elapsed: usize,
    pub(crate) heartbeat_elapsed: usize,
    pub(crate) check_quorum: bool,
    pub(crate) pre_vote: bool,
    pub(crate) heartbeat_timeout: usize,
    pub(crate) election_timeout: usize,
    pub(crate) randomized_election_timeout: usize,
    pub(crate) disable_proposal_forwarding: bool,
    pub(crate) pending_read_index_messages: Vec<Message>,
    rng: StdRng,
    /// Reused buffer of peer ids for broadcasts (no allocation per broadcast).
    scratch_ids: Vec<u64>,
    /// An emptied entry vector of an earlier proposal, for the next local one.
    pub(crate) spare_entries: Vec<Entry>,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn new(c: &Config, store: S) -> Result<Self> {
        c.validate()?;
        let (hs, cs) = store.initial_state()?;
        let raft_log = RaftLog::new(store, c.max_committed_size_per_ready_bytes)?;
        let seed = c.seed ^ c.id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut r = Raft {
            id: c.id,
            term: 0,
            vote: INVALID_ID,
            read_states: Vec::new(),
            raft_log,
            max_msg_size: c.max_size_per_msg_bytes,
            max_uncommitted_size: c.max_uncommitted_entries_bytes,
            trk: ProgressTracker::new(c.max_inflight_msgs, c.max_inflight_bytes),
            state: StateRole::Follower,
            msgs: Vec::new(),
            lead: INVALID_ID,
            lead_transferee: INVALID_ID,
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: ReadOnly::new(c.read_only_option),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            check_quorum: c.check_quorum,
            pre_vote: c.pre_vote,
            heartbeat_timeout: c.heartbeat_tick,
            election_timeout: c.election_tick,
            randomized_election_timeout: c.election_tick,
            disable_proposal_forwarding: c.disable_proposal_forwarding,
            pending_read_index_messages: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            scratch_ids: Vec::new(),
            spare_entries: Vec::new(),
        };
        let last = r.raft_log.last_index();
        let (cfg, prs) = confchange::restore(&r.trk, &cs, last)?;
        r.switch_to_config(cfg, prs);
        if hs != HardState::default() {
            r.load_state(&hs);
        }
        if c.applied > 0 {
            r.raft_log.applied_to(c.applied.min(r.raft_log.committed));
        }
        r.become_follower(r.term, INVALID_ID);
        tracing::debug!(
            id = r.id,
            term = r.term,
            commit = r.raft_log.committed,
            applied = r.raft_log.applied,
            last_index = last,
            "raft node started"
        );
        Ok(r)
    }

    fn load_state(&mut self, hs: &HardState) {
        let last = self.raft_log.last_index();
        assert!(
            hs.commit >= self.raft_log.committed && hs.commit <= last,
            "hard state commit {} out of range [{}, {}]",
            hs.commit,
            self.raft_log.committed,
            last
        );
        self.raft_log.committed = hs.commit;
        self.term = hs.term;
        self.vote = hs.vote;
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            role: self.state,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    /// Queues a message, filling in our id and term.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == INVALID_ID {
            m.from = self.id;
        }
        let t = m.r#type();
        if matches!(
            t,
            MessageType::MsgVote
                | MessageType::MsgVoteResp
                | MessageType::MsgPreVote
                | MessageType::MsgPreVoteResp
        ) {
            assert!(m.term != 0, "term should be set when sending {t:?}");
        } else {
            assert!(
                m.term == 0,
                "term should not be set when sending {t:?} (was {})",
                m.term
            );
            // Proposals and read requests are forwarded as local messages.
            if t != MessageType::MsgProp && t != MessageType::MsgReadIndex {
                m.term = self.term;
            }
        }
        self.msgs.push(m);
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout;
        self.randomized_election_timeout = self.rng.random_range(et..2 * et);
    }

    pub(crate) fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_timeout
    }

    fn reset(&mut self, term: u64) {
        if self.term != term {
            assert!(
                term > self.term,
                "term must not go backwards ({} -> {term})",
                self.term
            );
            self.term = term;
            self.vote = INVALID_ID;
        }
        self.lead = INVALID_ID;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        let last = self.raft_log.last_index();
        let id = self.id;
        for (pid, pr) in self.trk.progress.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = crate::progress::Progress::new(
                last + 1,
                self.trk.max_inflight,
                self.trk.max_inflight_bytes,
            );
            pr.is_learner = is_learner;
            if *pid == id {
                pr.matched = last;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only = ReadOnly::new(self.read_only.option);
        // Reads waiting for a first commit in our term are dropped; clients retry.
        self.pending_read_index_messages.clear();
    }

    pub(crate) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
        tracing::debug!(id = self.id, term, lead, "became follower");
    }

    pub(crate) fn become_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "invalid transition [leader -> candidate]"
        );
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
        tracing::debug!(id = self.id, term, "became candidate");
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "invalid transition [leader -> pre-candidate]"
        );
        // A pre-candidate keeps its term and vote.
        self.trk.reset_votes();
        self.lead = INVALID_ID;
        self.state = StateRole::PreCandidate;
        tracing::debug!(id = self.id, term = self.term, "became pre-candidate");
    }

    pub(crate) fn become_leader(&mut self) {
        assert!(
            self.state != StateRole::Follower,
            "invalid transition [follower -> leader]"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        let last = self.raft_log.last_index();
        if let Some(pr) = self.trk.progress.get_mut(&self.id) {
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conf changes in the uncommitted tail may be pending: be conservative.
        self.pending_conf_index = last;
        let appended = self.append_entry(vec![Entry::default()]);
        assert!(appended, "the empty entry of a new leader is never refused");
        // The empty entry does not count towards the uncommitted limit.
        self.uncommitted_size = 0;
        tracing::info!(id = self.id, term, "became leader");
    }

    pub(crate) fn tick(&mut self) {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.past_election_timeout() {
            self.election_elapsed = 0;
            self.hup(if self.pre_vote {
                CampaignType::PreElection
            } else {
                CampaignType::Election
            });
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                self.check_quorum_active();
            }
            if self.state == StateRole::Leader && self.lead_transferee != INVALID_ID {
                tracing::info!(
                    id = self.id,
                    transferee = self.lead_transferee,
                    "leader transfer timed out, aborting"
                );
                self.abort_leader_transfer();
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Whether this node may become leader: it is a voter and has no pending snapshot.
    pub(crate) fn promotable(&self) -> bool {
        self.trk
            .progress
            .get(&self.id)
            .is_some_and(|p| !p.is_learner)
            && self.raft_log.unstable.snapshot.is_none()
    }

    /// Starts an election unless we lead, cannot lead, or have unapplied conf changes.
    pub(crate) fn hup(&mut self, t: CampaignType) {
        if self.state == StateRole::Leader {
            return;
        }
        if !self.promotable() {
            tracing::warn!(id = self.id, "is unpromotable and can not campaign");
            return;
        }
        if self.has_unapplied_conf_change() {
            tracing::warn!(
                id = self.id,
                term = self.term,
                "cannot campaign: pending conf changes to apply"
            );
            return;
        }
        self.campaign(t);
    }

    fn has_unapplied_conf_change(&self) -> bool {
        let log = &self.raft_log;
        if log.applied >= log.committed {
            return false;
        }
        let lo = (log.applied + 1).max(log.first_index());
        match log.slice(lo, log.committed + 1, u64::MAX) {
            Ok(ents) => ents.iter().any(|e| e.r#type != 0),
            Err(_) => false,
        }
    }

    pub(crate) fn campaign(&mut self, t: CampaignType) {
        if self.term == u64::MAX {
            // Only a peer's absurd term gets us here; there is no next term to run in.
            tracing::error!(id = self.id, "cannot campaign: the term is at its maximum");
            return;
        }
        let (vote_msg, term) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            (MessageType::MsgPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgVote, self.term)
        };
        let resp = if vote_msg == MessageType::MsgPreVote {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        if self.poll(self.id, resp, true) == VoteResult::Won {
            // Single-voter cluster.
            if t == CampaignType::PreElection {
                self.campaign(CampaignType::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let ids = self.trk.config.voters.ids();
        let (index, log_term) = (self.raft_log.last_index(), self.raft_log.last_term());
        for id in ids {
            if id == self.id {
                continue;
            }
            let context = if t == CampaignType::Transfer {
                Bytes::from_static(CAMPAIGN_TRANSFER)
            } else {
                Bytes::new()
            };
            let mut m = Message {
                to: id,
                term,
                index,
                log_term,
                context,
                ..Default::default()
            };
            m.set_type(vote_msg);
            self.send(m);
        }
    }

    pub(crate) fn poll(&mut self, id: u64, t: MessageType, granted: bool) -> VoteResult {
        tracing::debug!(id = self.id, from = id, granted, msg = ?t, term = self.term, "received vote");
        self.trk.record_vote(id, granted);
        self.trk.tally_votes().2
    }

    /// Applies a conf change (already committed and handed to the application).
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        let changer = Changer {
            tracker: &self.trk,
            last_index: self.raft_log.last_index(),
        };
        let (cfg, prs) = if confchange::leaves_joint(cc) {
            changer.leave_joint()?
        } else if let Some(auto_leave) = confchange::enters_joint(cc) {
            changer.enter_joint(auto_leave, &cc.changes)?
        } else {
            changer.simple(&cc.changes)?
        };
        Ok(self.switch_to_config(cfg, prs))
    }

    fn switch_to_config(&mut self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState {
        self.trk.config = cfg;
        self.trk.progress = prs;
        let cs = self.trk.conf_state();
        let demoted = self.trk.progress.get(&self.id).is_none_or(|p| p.is_learner);
        if self.state != StateRole::Leader {
            return cs;
        }
        if demoted {
            tracing::info!(
                id = self.id,
                term = self.term,
                "removed or demoted from the configuration, stepping down"
            );
            self.become_follower(self.term, INVALID_ID);
            return cs;
        }
        if self.lead_transferee != INVALID_ID
            && !self.trk.config.voters.contains(self.lead_transferee)
        {
            self.abort_leader_transfer();
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else {
            self.trk.member_ids_into(&mut self.scratch_ids);
            let ids = std::mem::take(&mut self.scratch_ids);
            for &id in &ids {
                if id != self.id {
                    self.maybe_send_append(id, false);
                }
            }
            self.scratch_ids = ids;
        }
        cs
    }

    /// Restores from a snapshot received from the leader. Returns false if it was
    /// ignored (old, not for us, an invalid configuration, or we already have its
    /// last entry).
    pub(crate) fn restore(&mut self, snap: Snapshot) -> bool {
        let meta = snap.metadata.clone().unwrap_or_default();
        if meta.index <= self.raft_log.committed {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only followers receive snapshots (`step` makes a candidate one first).
            tracing::warn!(id = self.id, role = ?self.state, "ignored a snapshot while not a follower");
            return false;
        }
        let cs = meta.conf_state.clone().unwrap_or_default();
        let found = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .any(|&id| id == self.id);
        if !found {
            tracing::warn!(
                id = self.id,
                index = meta.index,
                "attempted to restore snapshot but it is not in the ConfState"
            );
            return false;
        }
        if self.raft_log.match_term(meta.index, meta.term) {
            // We have the snapshot's last entry: fast-forward the commit index only.
            self.raft_log.commit_to(meta.index);
            return false;
        }
        // Build the configuration before touching the log, so that a snapshot with
        // an impossible one (no voters, a voter that is also a learner, ...) is
        // refused whole.
        let restored = if cs.voters.is_empty() {
            Err(crate::errors::Error::ConfChangeInvalid(
                "no voters".to_string(),
            ))
        } else {
            confchange::restore(&self.trk, &cs, meta.index)
        };
        let (cfg, prs) = match restored {
            Ok(x) => x,
            Err(err) => {
                tracing::warn!(
                    id = self.id,
                    index = meta.index,
                    %err,
                    "ignored a snapshot with an invalid configuration"
                );
                return false;
            }
        };
        self.raft_log.restore(snap);
        let restored = self.switch_to_config(cfg, prs);
        assert_eq!(
            restored,
            confchange::normalized(&cs),
            "restored conf state differs from the snapshot's"
        );
        if let Some(pr) = self.trk.progress.get_mut(&self.id) {
            pr.maybe_update(pr.next - 1);
        }
        tracing::info!(
            id = self.id,
            index = meta.index,
            term = meta.term,
            "restored snapshot"
        );
        true
    }

    /// The application applied entries up to `index`.
    pub(crate) fn applied_to(&mut self, index: u64, applied_bytes: u64) {
        self.raft_log.applied_to(index);
        self.reduce_uncommitted_size(applied_bytes);
        if self.trk.config.auto_leave
            && index >= self.pending_conf_index
            && self.state == StateRole::Leader
        {
            // Leave the joint configuration with an empty v2 conf change.
            let e = confchange::ConfChangeI::to_entry(&ConfChangeV2::default());
            let mut m = Message {
                entries: vec![e],
                ..Default::default()
            };
            m.set_type(MessageType::MsgProp);
            if let Err(err) = self.step(m) {
                tracing::debug!(id = self.id, %err, "not initiating automatic transition out of joint configuration");
            } else {
                tracing::info!(
                    id = self.id,
                    "initiating automatic transition out of joint configuration"
                );
            }
        }
    }

    pub(crate) fn increase_uncommitted_size(&mut self, ents: &[Entry]) -> bool {
        let s = payload_size(ents);
        if self.uncommitted_size > 0
            && s > 0
            && self.uncommitted_size.saturating_add(s) > self.max_uncommitted_size
        {
            return false;
        }
        self.uncommitted_size += s;
        true
    }

    fn reduce_uncommitted_size(&mut self, s: u64) {
        self.uncommitted_size = self.uncommitted_size.saturating_sub(s);
    }

    pub(crate) fn abort_leader_transfer(&mut self) {
        self.lead_transferee = INVALID_ID;
    }
}
