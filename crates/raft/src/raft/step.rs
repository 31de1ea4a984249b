//! Message dispatch: term checks common to every role, votes, and the follower and
//! candidate handlers (appends, heartbeats, snapshots from the leader).
//!
//! Invariant: a message from an older term never changes state (it may only be
//! answered so that a stale leader or candidate learns the newer term).

use etcd_proto::raftpb::{Entry, Message, MessageType};

use super::{CampaignType, Raft, StateRole, CAMPAIGN_TRANSFER, INVALID_ID};
use crate::errors::{Error, Result};
use crate::quorum::VoteResult;
use crate::read_only::ReadState;
use crate::storage::Storage;

fn msg(to: u64, t: MessageType) -> Message {
    let mut m = Message {
        to,
        ..Default::default()
    };
    m.set_type(t);
    m
}

fn vote_resp_type(t: MessageType) -> MessageType {
    match t {
        MessageType::MsgVote => MessageType::MsgVoteResp,
        MessageType::MsgPreVote => MessageType::MsgPreVoteResp,
        _ => panic!("not a vote message: {t:?}"),
    }
}

impl<S: Storage> Raft<S> {
    /// The entry point of every message, local or remote.
    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        let t = m.r#type();
        if m.term == 0 {
            // Local message.
        } else if m.term > self.term {
            if matches!(t, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.lead != INVALID_ID
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // We heard from a leader within the minimum election timeout:
                    // ignore the vote (protects against disruptive rejoining nodes).
                    tracing::debug!(
                        id = self.id,
                        from = m.from,
                        term = m.term,
                        "ignored vote request within lease"
                    );
                    return Ok(());
                }
            }
            match t {
                MessageType::MsgPreVote => {}
                MessageType::MsgPreVoteResp if !m.reject => {
                    // We bump our term only when the pre-vote wins.
                }
                MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap => {
                    self.become_follower(m.term, m.from);
                }
                _ => self.become_follower(m.term, INVALID_ID),
            }
        } else if m.term < self.term {
            // A stale leader (e.g. after a partition) learns the new term from this
            // response and steps down. Without CheckQuorum and PreVote our own vote
            // requests would carry the term instead, but a node that cannot campaign
            // (a learner that once voted) sends none: without the response it would
            // ignore the stale leader, and the leader it, forever.
            if (self.check_quorum || self.pre_vote || !self.promotable())
                && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp)
            {
                self.send(msg(m.from, MessageType::MsgAppResp));
            } else if t == MessageType::MsgPreVote {
                let mut r = msg(m.from, MessageType::MsgPreVoteResp);
                r.term = self.term;
                r.reject = true;
                self.send(r);
            }
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                self.hup(if self.pre_vote {
                    CampaignType::PreElection
                } else {
                    CampaignType::Election
                });
                Ok(())
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Follower => self.step_follower(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Leader => self.step_leader(m),
            },
        }
    }

    fn handle_vote_request(&mut self, m: Message) {
        let t = m.r#type();
        let can_vote = self.vote == m.from
            || (self.vote == INVALID_ID && self.lead == INVALID_ID)
            || (t == MessageType::MsgPreVote && m.term > self.term);
        let mut r = msg(m.from, vote_resp_type(t));
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
            // For a pre-vote we answer in the candidate's future term so that it
            // does not ignore the response.
            r.term = m.term;
            self.send(r);
            if t == MessageType::MsgVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            r.term = self.term;
            r.reject = true;
            self.send(r);
        }
    }

    fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.r#type() {
            MessageType::MsgProp => {
                if self.lead == INVALID_ID || self.disable_proposal_forwarding {
                    return Err(Error::ProposalDropped);
                }
                self.forward_to_leader(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader | MessageType::MsgReadIndex
                if self.lead != INVALID_ID =>
            {
                self.forward_to_leader(m);
            }
            MessageType::MsgTimeoutNow => {
                tracing::info!(
                    id = self.id,
                    term = self.term,
                    from = m.from,
                    "received MsgTimeoutNow, campaigning"
                );
                // Leader transfer never uses pre-vote: the leader asked for it.
                self.hup(CampaignType::Transfer);
            }
            MessageType::MsgReadIndexResp if m.entries.len() == 1 => {
                let request_ctx = m.entries.swap_remove(0).data;
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends a proposal, read or transfer request on to the leader. The term is
    /// cleared so that `send` stamps it as for any message of ours (a request a peer
    /// forwarded to us may carry its own term).
    fn forward_to_leader(&mut self, mut m: Message) {
        if self.lead == self.id || m.from == self.lead {
            // Would loop back to where it came from (or to us).
            tracing::debug!(id = self.id, from = m.from, lead = self.lead, msg = ?m.r#type(), "dropped a request that cannot be forwarded");
            return;
        }
        m.to = self.lead;
        m.term = 0;
        self.send(m);
    }

    fn step_candidate(&mut self, m: Message) -> Result<()> {
        let my_resp = if self.state == StateRole::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        let t = m.r#type();
        match t {
            MessageType::MsgProp => return Err(Error::ProposalDropped),
            // A leader of our term exists (higher terms were handled in `step`).
            MessageType::MsgApp => {
                self.become_follower(self.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(self.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(self.term, m.from);
                self.handle_snapshot(m);
            }
            _ if t == my_resp => match self.poll(m.from, t, !m.reject) {
                VoteResult::Won => {
                    if self.state == StateRole::PreCandidate {
                        self.campaign(CampaignType::Election);
                    } else {
                        self.become_leader();
                        self.bcast_append();
                    }
                }
                VoteResult::Lost => {
                    // A rejection carries the voter's term (which may be ours).
                    self.become_follower(self.term, INVALID_ID);
                }
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn handle_append_entries(&mut self, mut m: Message) {
        let committed = self.raft_log.committed;
        if m.index < committed {
            let mut r = msg(m.from, MessageType::MsgAppResp);
            r.index = committed;
            self.send(r);
            return;
        }
        let ents = std::mem::take(&mut m.entries);
        let mut r = msg(m.from, MessageType::MsgAppResp);
        if let Some(last) = self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, ents)
        {
            r.index = last;
        } else {
            // Fast backtracking: tell the leader the largest index whose term is at
            // most the term it probed with, so it can skip a whole term at once.
            let hint_index = m.index.min(self.raft_log.last_index());
            let (hint_index, hint_term) =
                self.raft_log.find_conflict_by_term(hint_index, m.log_term);
            tracing::debug!(
                id = self.id,
                index = m.index,
                log_term = m.log_term,
                hint_index,
                hint_term,
                "rejected MsgApp"
            );
            r.index = m.index;
            r.reject = true;
            r.reject_hint = hint_index;
            r.log_term = hint_term;
        }
        self.send(r);
    }

    pub(crate) fn handle_heartbeat(&mut self, m: Message) {
        let last = self.raft_log.last_index();
        if m.commit > last {
            // A leader never tells us to commit beyond what we acknowledged, so
            // either the message is bogus or our storage lost acknowledged entries.
            // Entries past our log are not the leader's to commit here: keep ours.
            tracing::warn!(
                id = self.id,
                from = m.from,
                commit = m.commit,
                last_index = last,
                "heartbeat commit is beyond our last index; ignoring the commit \
                 (if this repeats, check this member's storage for lost entries)"
            );
        } else {
            self.raft_log.commit_to(m.commit);
        }
        let mut r = msg(m.from, MessageType::MsgHeartbeatResp);
        r.context = m.context;
        self.send(r);
    }

    pub(crate) fn handle_snapshot(&mut self, mut m: Message) {
        let snap = m.snapshot.take().unwrap_or_default();
        let (sindex, sterm) = snap
            .metadata
            .as_ref()
            .map_or((0, 0), |md| (md.index, md.term));
        let mut r = msg(m.from, MessageType::MsgAppResp);
        if self.restore(snap) {
            tracing::info!(id = self.id, sindex, sterm, "restored snapshot");
            r.index = self.raft_log.last_index();
        } else {
            tracing::info!(id = self.id, sindex, sterm, "ignored snapshot");
            r.index = self.raft_log.committed;
        }
        self.send(r);
    }
}

/// An entry carrying a read request's context (how `read_index` encodes it).
pub(crate) fn read_ctx_entry(ctx: bytes::Bytes) -> Entry {
    Entry {
        data: ctx,
        ..Default::default()
    }
}
