//! The leader: proposals, replication to every follower (probe/replicate/snapshot
//! flow control), commit by quorum, heartbeats, CheckQuorum, ReadIndex and
//! leadership transfer.
//!
//! Invariants: the leader commits only entries of its own term by counting replicas;
//! at most one conf change is pending (unapplied) at a time; no proposal is accepted
//! while a leadership transfer is in progress.

use bytes::Bytes;
use etcd_proto::raftpb::{Entry, Message, MessageType};

use super::{Raft, StateRole, INVALID_ID};
use crate::confchange;
use crate::errors::{Error, Result, StorageError};
use crate::progress::ProgressState;
use crate::read_only::{ReadOnlyOption, ReadState};
use crate::storage::Storage;
use crate::util::payload_size;

/// At most this many read index requests wait at the leader.
const MAX_PENDING_READS: usize = 16 * 1024;

/// The largest entry vector kept for reuse by the next proposal.
const MAX_SPARE_ENTRIES: usize = 1024;

fn msg(to: u64, t: MessageType) -> Message {
    let mut m = Message {
        to,
        ..Default::default()
    };
    m.set_type(t);
    m
}

impl<S: Storage> Raft<S> {
    /// Appends entries proposed at this leader. Returns false if the uncommitted
    /// limit refuses them.
    pub(crate) fn append_entry(&mut self, mut es: Vec<Entry>) -> bool {
        self.append_entries_from(&mut es)
    }

    /// Like [`Raft::append_entry`], moving the entries out of `es` (left empty).
    fn append_entries_from(&mut self, es: &mut Vec<Entry>) -> bool {
        let mut li = self.raft_log.last_index();
        for e in es.iter_mut() {
            li += 1;
            e.term = self.term;
            e.index = li;
        }
        if !self.increase_uncommitted_size(es) {
            tracing::warn!(id = self.id, "appending new entries would exceed the uncommitted entry size limit; dropping proposal");
            return false;
        }
        let li = self.raft_log.append_from(es);
        // The leader counts itself: its append is in the same Ready that sends the
        // entries, and nothing it commits is sent out before that Ready is persisted.
        if let Some(pr) = self.trk.progress.get_mut(&self.id) {
            pr.maybe_update(li);
        }
        self.maybe_commit();
        true
    }

    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mci = self.trk.committed();
        if mci == u64::MAX {
            return false;
        }
        self.raft_log.maybe_commit(mci, self.term)
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log
            .term(self.raft_log.committed)
            .is_ok_and(|t| t == self.term)
    }

    pub(crate) fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends new entries (or a snapshot) to `to` if flow control allows. With
    /// `send_if_empty` false, nothing is sent when there are no new entries.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.trk.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        let prev_index = next - 1;
        let prev_term = self.raft_log.term(prev_index);
        let throttled = pr.state == ProgressState::Replicate && pr.inflights.full();
        let ents = if throttled {
            Ok(Vec::new())
        } else {
            self.raft_log.entries(next, self.max_msg_size)
        };
        let (prev_term, ents) = match (prev_term, ents) {
            (Ok(t), Ok(e)) => (t, e),
            _ => return self.maybe_send_snapshot(to),
        };
        if ents.is_empty() && !send_if_empty {
            return false;
        }
        let n = ents.len();
        let bytes = payload_size(&ents);
        let mut m = msg(to, MessageType::MsgApp);
        m.index = prev_index;
        m.log_term = prev_term;
        m.entries = ents;
        m.commit = self.raft_log.committed;
        self.send(m);
        self.trk
            .progress
            .get_mut(&to)
            .expect("progress checked above")
            .sent_entries(n, bytes);
        true
    }

    fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.trk.progress.get(&to) else {
            return false;
        };
        if !pr.recent_active {
            tracing::debug!(
                id = self.id,
                to,
                "ignore sending snapshot since the peer is not recently active"
            );
            return false;
        }
        let snap = match self.raft_log.snapshot() {
            Ok(s) => s,
            Err(Error::Storage(StorageError::SnapshotTemporarilyUnavailable)) => {
                tracing::debug!(
                    id = self.id,
                    to,
                    "snapshot temporarily unavailable, will retry"
                );
                return false;
            }
            Err(e) => panic!("cannot read snapshot from storage: {e}"),
        };
        let (sindex, sterm) = snap.metadata.as_ref().map_or((0, 0), |m| (m.index, m.term));
        assert!(sindex != 0, "need non-empty snapshot");
        tracing::debug!(
            id = self.id,
            to,
            sindex,
            sterm,
            "sending snapshot: follower is behind the first index"
        );
        self.trk
            .progress
            .get_mut(&to)
            .expect("progress checked above")
            .become_snapshot(sindex);
        let mut m = msg(to, MessageType::MsgSnap);
        m.snapshot = Some(snap);
        self.send(m);
        true
    }

    fn take_peer_ids(&mut self) -> Vec<u64> {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        self.trk.member_ids_into(&mut ids);
        ids
    }

    pub(crate) fn bcast_append(&mut self) {
        let ids = self.take_peer_ids();
        for &id in &ids {
            if id != self.id {
                self.send_append(id);
            }
        }
        self.scratch_ids = ids;
    }

    pub(crate) fn bcast_heartbeat(&mut self) {
        let ctx = self.read_only.last_pending_request_ctx();
        self.bcast_heartbeat_with_ctx(ctx);
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: Bytes) {
        let ids = self.take_peer_ids();
        for &id in &ids {
            if id == self.id {
                continue;
            }
            let matched = self.trk.progress.get(&id).map_or(0, |p| p.matched);
            // Never tell a follower to commit beyond what it is known to have.
            let mut m = msg(id, MessageType::MsgHeartbeat);
            m.commit = matched.min(self.raft_log.committed);
            m.context = ctx.clone();
            self.send(m);
        }
        self.scratch_ids = ids;
    }

    pub(crate) fn check_quorum_active(&mut self) {
        if !self.trk.quorum_active(self.id) {
            tracing::warn!(
                id = self.id,
                term = self.term,
                "stepped down to follower since quorum is not active"
            );
            self.become_follower(self.term, INVALID_ID);
        }
        let id = self.id;
        for (pid, pr) in self.trk.progress.iter_mut() {
            if *pid != id {
                pr.recent_active = false;
            }
        }
    }

    pub(crate) fn step_leader(&mut self, mut m: Message) -> Result<()> {
        match m.r#type() {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::MsgProp => return self.handle_proposal(m),
            MessageType::MsgReadIndex => {
                self.handle_read_index(m);
                return Ok(());
            }
            _ => {}
        }
        let from = m.from;
        let last_index = self.raft_log.last_index();
        let Some(pr) = self.trk.progress.get_mut(&from) else {
            tracing::debug!(id = self.id, from, "no progress available for peer");
            return Ok(());
        };
        match m.r#type() {
            MessageType::MsgAppResp if !m.reject && m.index > last_index => {
                // We never sent that far: counting it could move `next` past our log
                // and stall replication to this peer.
                tracing::warn!(
                    id = self.id,
                    from,
                    index = m.index,
                    last_index,
                    "ignored an append acknowledgement beyond our last index"
                );
            }
            MessageType::MsgAppResp => {
                pr.recent_active = true;
                if m.reject {
                    let mut next_probe = m.reject_hint;
                    if m.log_term > 0 {
                        // Skip every entry of ours whose term is above the follower's.
                        next_probe = self
                            .raft_log
                            .find_conflict_by_term(m.reject_hint, m.log_term)
                            .0;
                    }
                    let pr = self.trk.progress.get_mut(&from).expect("present");
                    if pr.maybe_decr_to(m.index, next_probe) {
                        if pr.state == ProgressState::Replicate {
                            pr.become_probe();
                        }
                        self.send_append(from);
                    }
                } else {
                    let old_paused = pr.is_paused();
                    if pr.maybe_update(m.index)
                        || (pr.matched == m.index && pr.state == ProgressState::Probe)
                    {
                        match pr.state {
                            ProgressState::Probe => pr.become_replicate(),
                            ProgressState::Snapshot => {
                                if pr.matched + 1 >= self.raft_log.first_index() {
                                    pr.become_probe();
                                    pr.become_replicate();
                                }
                            }
                            ProgressState::Replicate => pr.inflights.free_le(m.index),
                        }
                        if self.maybe_commit() {
                            self.release_pending_read_index_messages();
                            self.bcast_append();
                        } else if old_paused {
                            self.send_append(from);
                        }
                        // Send as many appends as flow control allows.
                        let mut budget = self.trk.max_inflight + 1;
                        while budget > 0 && self.maybe_send_append(from, false) {
                            budget -= 1;
                        }
                        let matched = self.trk.progress.get(&from).map_or(0, |p| p.matched);
                        if from == self.lead_transferee && matched == self.raft_log.last_index() {
                            tracing::info!(
                                id = self.id,
                                to = from,
                                "sent MsgTimeoutNow after catching up the transferee"
                            );
                            self.send(msg(from, MessageType::MsgTimeoutNow));
                        }
                    }
                }
            }
            MessageType::MsgHeartbeatResp => {
                pr.recent_active = true;
                pr.msg_app_flow_paused = false;
                if pr.state == ProgressState::Replicate && pr.inflights.full() {
                    // All inflight appends may have been dropped: let one more through.
                    pr.inflights.free_first_one();
                }
                if pr.matched < self.raft_log.last_index() || pr.state == ProgressState::Probe {
                    self.send_append(from);
                }
                if self.read_only.option != ReadOnlyOption::Safe || m.context.is_empty() {
                    return Ok(());
                }
                let Some(acks) = self.read_only.recv_ack(from, &m.context) else {
                    return Ok(());
                };
                let acks = acks.clone();
                let res = self
                    .trk
                    .config
                    .voters
                    .vote_result(|id| acks.contains(&id).then_some(true));
                if res != crate::quorum::VoteResult::Won {
                    return Ok(());
                }
                for rs in self.read_only.advance(&m.context) {
                    self.respond_to_read_index(rs.req, rs.index);
                }
            }
            MessageType::MsgSnapStatus => {
                if pr.state != ProgressState::Snapshot {
                    return Ok(());
                }
                if m.reject {
                    pr.pending_snapshot = 0;
                }
                pr.become_probe();
                // Wait for a heartbeat response before probing again.
                pr.msg_app_flow_paused = true;
                tracing::debug!(
                    id = self.id,
                    from,
                    failed = m.reject,
                    "snapshot status reported"
                );
            }
            MessageType::MsgUnreachable => {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
            }
            MessageType::MsgTransferLeader => {
                if pr.is_learner {
                    tracing::debug!(
                        id = self.id,
                        from,
                        "ignored transferring leadership to a learner"
                    );
                    return Ok(());
                }
                let transferee = from;
                if self.lead_transferee != INVALID_ID {
                    if self.lead_transferee == transferee {
                        return Ok(());
                    }
                    self.abort_leader_transfer();
                }
                if transferee == self.id {
                    return Ok(());
                }
                tracing::info!(
                    id = self.id,
                    term = self.term,
                    transferee,
                    "starting leadership transfer"
                );
                // Transfer must finish within one election timeout.
                self.election_elapsed = 0;
                self.lead_transferee = transferee;
                let matched = self.trk.progress.get(&transferee).map_or(0, |p| p.matched);
                if matched == last_index {
                    self.send(msg(transferee, MessageType::MsgTimeoutNow));
                } else {
                    self.send_append(transferee);
                }
            }
            _ => {
                m.entries.clear();
            }
        }
        Ok(())
    }

    fn handle_proposal(&mut self, mut m: Message) -> Result<()> {
        if m.entries.is_empty() {
            return Err(Error::ProposalDropped);
        }
        if !self.trk.progress.contains_key(&self.id) {
            // We were removed from the configuration while leader.
            return Err(Error::ProposalDropped);
        }
        if self.lead_transferee != INVALID_ID {
            tracing::debug!(
                id = self.id,
                transferee = self.lead_transferee,
                "proposal dropped during leader transfer"
            );
            return Err(Error::ProposalDropped);
        }
        let last = self.raft_log.last_index();
        for (i, e) in m.entries.iter_mut().enumerate() {
            if e.r#type == 0 {
                continue;
            }
            let cc = match confchange::decode_conf_change(e) {
                Ok(Some(cc)) => cc,
                Ok(None) => continue,
                Err(err) => {
                    // Nobody could apply it: keep the slot, drop the change.
                    tracing::warn!(id = self.id, from = m.from, %err, "replaced an undecodable conf change proposal with an empty entry");
                    *e = Entry::default();
                    continue;
                }
            };
            let already_pending = self.pending_conf_index > self.raft_log.applied;
            let already_joint = self.trk.config.voters.is_joint();
            let wants_leave = cc.changes.is_empty();
            let refused = if already_pending {
                Some("possible unapplied conf change")
            } else if already_joint && !wants_leave {
                Some("must transition out of joint config first")
            } else if !already_joint && wants_leave {
                Some("not in joint state; refusing empty conf change")
            } else {
                None
            };
            if let Some(reason) = refused {
                tracing::info!(id = self.id, reason, "ignoring conf change proposal");
                *e = Entry::default();
            } else {
                self.pending_conf_index = last + i as u64 + 1;
            }
        }
        let appended = self.append_entries_from(&mut m.entries);
        // Keep the emptied vector for the next local proposal (no allocation per
        // proposal), unless a large batch made it big.
        if m.entries.capacity() <= MAX_SPARE_ENTRIES && m.entries.is_empty() {
            self.spare_entries = std::mem::take(&mut m.entries);
        }
        if !appended {
            return Err(Error::ProposalDropped);
        }
        self.bcast_append();
        Ok(())
    }

    fn handle_read_index(&mut self, m: Message) {
        if m.entries.len() != 1 {
            tracing::warn!(
                id = self.id,
                "dropped a read index request without exactly one context entry"
            );
            return;
        }
        if self.read_only.pending_count() + self.pending_read_index_messages.len()
            >= MAX_PENDING_READS
        {
            // Bounded: the client times out and retries.
            tracing::warn!(
                id = self.id,
                limit = MAX_PENDING_READS,
                "too many pending read index requests; dropping one"
            );
            return;
        }
        if self.trk.is_singleton() {
            let idx = self.raft_log.committed;
            self.respond_to_read_index(m, idx);
            return;
        }
        if !self.committed_entry_in_current_term() {
            // Our commit index may be stale until an entry of our term commits.
            self.pending_read_index_messages.push(m);
            return;
        }
        self.send_read_index_response(m);
    }

    fn send_read_index_response(&mut self, m: Message) {
        match self.read_only.option {
            ReadOnlyOption::Safe => {
                let ctx = m.entries[0].data.clone();
                self.read_only.add_request(self.raft_log.committed, m);
                self.read_only.recv_ack(self.id, &ctx);
                self.bcast_heartbeat_with_ctx(ctx);
            }
            ReadOnlyOption::LeaseBased => {
                let idx = self.raft_log.committed;
                self.respond_to_read_index(m, idx);
            }
        }
    }

    fn release_pending_read_index_messages(&mut self) {
        if self.pending_read_index_messages.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index_messages) {
            self.send_read_index_response(m);
        }
    }

    fn respond_to_read_index(&mut self, mut req: Message, index: u64) {
        if req.from == INVALID_ID || req.from == self.id {
            let request_ctx = req
                .entries
                .first()
                .map(|e| e.data.clone())
                .unwrap_or_default();
            self.read_states.push(ReadState { index, request_ctx });
            return;
        }
        let mut r = msg(req.from, MessageType::MsgReadIndexResp);
        r.index = index;
        r.entries = std::mem::take(&mut req.entries);
        self.send(r);
    }

    /// Whether this node leads (for callers that hold only the raft).
    pub(crate) fn is_leader(&self) -> bool {
        self.state == StateRole::Leader
    }
}
