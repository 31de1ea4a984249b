//! [`RawNode`], the application's handle on a raft node, and [`Ready`], the batch of
//! work it hands out.
//!
//! Protocol (the invariant this module keeps): the application calls [`RawNode::ready`]
//! only when [`RawNode::has_ready`] is true, handles the `Ready` — persist the snapshot,
//! entries and hard state (a leader may send its messages first; everyone else sends
//! after persisting), send messages, apply committed entries — and then calls
//! [`RawNode::advance`] before asking for the next `Ready`. Between `ready` and
//! `advance` the node may still be stepped and ticked.

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, HardState, Message, MessageType, Snapshot,
};

use crate::confchange::ConfChangeI;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::raft::step::read_ctx_entry;
use crate::raft::{CampaignType, Raft, SoftState, StateRole};
use crate::read_only::ReadState;
use crate::status::Status;
use crate::storage::Storage;
use crate::util::payload_size;

/// Whether a snapshot sent to a peer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The peer received and applied the snapshot.
    Finish,
    /// Sending failed; the leader will retry later.
    Failure,
}

/// Work handed to the application: state to persist, messages to send, entries to
/// apply. Parts are taken by value.
#[derive(Debug, Default)]
pub struct Ready {
    soft_state: Option<SoftState>,
    hard_state: Option<HardState>,
    read_states: Vec<ReadState>,
    entries: Vec<Entry>,
    snapshot: Option<Snapshot>,
    committed_entries: Vec<Entry>,
    messages: Vec<Message>,
    must_sync: bool,
}

impl Ready {
    /// The leader and role, if they changed since the last `Ready`.
    pub fn soft_state(&self) -> Option<&SoftState> {
        self.soft_state.as_ref()
    }

    /// The hard state to persist, if it changed.
    pub fn hard_state(&self) -> Option<&HardState> {
        self.hard_state.as_ref()
    }

    /// Takes the hard state to persist.
    pub fn take_hard_state(&mut self) -> Option<HardState> {
        self.hard_state.take()
    }

    /// Reads whose index is now known; serve each once applied >= its index.
    pub fn read_states(&self) -> &[ReadState] {
        &self.read_states
    }

    /// Takes the read states.
    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.read_states)
    }

    /// Entries to append to stable storage (after the snapshot, if any).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the entries to persist.
    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// A snapshot to persist and apply, if the leader sent one.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Takes the snapshot.
    pub fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.snapshot.take()
    }

    /// Entries to apply to the state machine, in order (persist first).
    pub fn committed_entries(&self) -> &[Entry] {
        &self.committed_entries
    }

    /// Takes the committed entries.
    pub fn take_committed_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.committed_entries)
    }

    /// Messages to send to peers.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Takes the messages.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    /// Whether the persisted writes of this `Ready` must be synced to disk (the
    /// term, the vote, or the log changed).
    pub fn must_sync(&self) -> bool {
        self.must_sync
    }
}

/// What `advance` must acknowledge for the outstanding `Ready`.
#[derive(Debug, Clone, Copy)]
struct InProgress {
    last_entry: Option<(u64, u64)>,
    snapshot_index: Option<u64>,
    applied_index: Option<u64>,
    applied_bytes: u64,
}

/// The application's handle on a raft node (sans I/O; see the module docs).
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    in_progress: Option<InProgress>,
}

fn local(t: MessageType) -> Message {
    let mut m = Message::default();
    m.set_type(t);
    m
}

impl<S: Storage> RawNode<S> {
    /// Creates a node from its configuration and storage (a new node or a restart:
    /// the state is whatever the storage holds).
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let raft = Raft::new(config, store)?;
        let prev_hard_state = raft.hard_state();
        let prev_soft_state = raft.soft_state();
        Ok(RawNode {
            raft,
            prev_soft_state,
            prev_hard_state,
            in_progress: None,
        })
    }

    /// Bootstraps a brand-new member of a brand-new cluster the way etcd does: the
    /// initial membership becomes the first log entries (one `ConfChangeAddNode` per
    /// peer at indexes `1..=peers.len()`, term 1), committed and applied to the
    /// configuration. The first `Ready` hands them out to persist and to apply (applying
    /// them again is harmless). Because the membership is in the log, a member added
    /// later can learn it by replaying the log from index 1. The storage must be empty.
    pub fn bootstrap(&mut self, peers: &[u64]) -> Result<()> {
        if peers.is_empty() {
            return Err(Error::ConfigInvalid(
                "must provide at least one peer to bootstrap".into(),
            ));
        }
        if self.raft.raft_log.last_index() != 0 {
            return Err(Error::ConfigInvalid(
                "can't bootstrap a non-empty storage".into(),
            ));
        }
        self.prev_hard_state = HardState::default();
        self.raft.become_follower(1, crate::raft::INVALID_ID);
        let ents: Vec<Entry> = peers
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let cc = ConfChange {
                    r#type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: id,
                    ..Default::default()
                };
                Entry {
                    term: 1,
                    index: i as u64 + 1,
                    ..cc.to_entry()
                }
            })
            .collect();
        let n = ents.len() as u64;
        self.raft.raft_log.append(ents);
        self.raft.raft_log.commit_to(n);
        for &id in peers {
            let cc = ConfChange {
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: id,
                ..Default::default()
            };
            self.raft.apply_conf_change(&cc.as_v2())?;
        }
        Ok(())
    }

    /// Advances logical time by one tick (election and heartbeat timers).
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (with a pre-vote if enabled).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(local(MessageType::MsgHup))
    }

    /// Proposes `data` to be appended to the log.
    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let mut m = local(MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = std::mem::take(&mut self.raft.spare_entries);
        m.entries.push(Entry {
            data: data.into(),
            ..Default::default()
        });
        self.raft.step(m)
    }

    /// Proposes several entries in one message (cheaper than one `propose` each).
    pub fn propose_batch(&mut self, data: impl IntoIterator<Item = Bytes>) -> Result<()> {
        let mut m = local(MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = std::mem::take(&mut self.raft.spare_entries);
        m.entries.extend(data.into_iter().map(|d| Entry {
            data: d,
            ..Default::default()
        }));
        if m.entries.is_empty() {
            self.raft.spare_entries = m.entries;
            return Ok(());
        }
        self.raft.step(m)
    }

    /// Proposes a membership change (a `ConfChange` or a `ConfChangeV2`). Only one
    /// may be pending at a time; a second one is replaced by an empty entry.
    pub fn propose_conf_change(&mut self, cc: &impl ConfChangeI) -> Result<()> {
        let mut m = local(MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = vec![cc.to_entry()];
        self.raft.step(m)
    }

    /// Applies a committed conf change to the configuration; the application calls
    /// it when it applies the conf change entry. Returns the new configuration.
    pub fn apply_conf_change(&mut self, cc: &impl ConfChangeI) -> Result<ConfState> {
        self.raft.apply_conf_change(&cc.as_v2())
    }

    /// Steps a message received from a peer. A message no correct peer sends is
    /// refused with an error and changes nothing: a local message type
    /// ([`Error::StepLocalMsg`]), a response from a member not in the configuration
    /// ([`Error::StepPeerNotFound`]), or a malformed one ([`Error::MalformedMessage`]).
    /// No message, however odd, makes the node panic.
    pub fn step(&mut self, m: Message) -> Result<()> {
        crate::msg_check::check_peer_message(&m, self.raft.id)?;
        let is_response = matches!(
            m.r#type(),
            MessageType::MsgAppResp
                | MessageType::MsgVoteResp
                | MessageType::MsgHeartbeatResp
                | MessageType::MsgPreVoteResp
        );
        if is_response && !self.raft.trk.progress.contains_key(&m.from) {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    /// Asks for a linearizable read; the answer comes as a [`ReadState`] with the
    /// same context in a later `Ready`.
    pub fn read_index(&mut self, ctx: impl Into<Bytes>) {
        let mut m = local(MessageType::MsgReadIndex);
        m.entries = vec![read_ctx_entry(ctx.into())];
        if let Err(e) = self.raft.step(m) {
            tracing::debug!(id = self.raft.id, %e, "read index dropped");
        }
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) {
        let mut m = local(MessageType::MsgTransferLeader);
        m.from = transferee;
        // Only errors for proposals; a transfer request is best effort.
        let _ = self.raft.step(m);
    }

    /// Reports that the last message to `id` could not be delivered.
    pub fn report_unreachable(&mut self, id: u64) {
        let mut m = local(MessageType::MsgUnreachable);
        m.from = id;
        let _ = self.raft.step(m);
    }

    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let mut m = local(MessageType::MsgSnapStatus);
        m.from = id;
        m.reject = status == SnapshotStatus::Failure;
        let _ = self.raft.step(m);
    }

    /// Campaigns immediately as the target of a leader transfer would (no pre-vote,
    /// ignores leases). For tests and forced recovery.
    pub fn force_campaign(&mut self) {
        self.raft.hup(CampaignType::Transfer);
    }

    /// Whether there is work for the application (and no `Ready` awaits `advance`).
    pub fn has_ready(&self) -> bool {
        if self.in_progress.is_some() {
            return false;
        }
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || r.hard_state() != self.prev_hard_state
            || r.raft_log.unstable.snapshot.is_some()
            || !r.raft_log.unstable_entries().is_empty()
            || r.raft_log.has_next_committed_entries()
            || !r.msgs.is_empty()
            || !r.read_states.is_empty()
    }

    /// Collects the pending work. Panics if the previous `Ready` was not advanced.
    pub fn ready(&mut self) -> Ready {
        assert!(
            self.in_progress.is_none(),
            "ready() called before advance() of the previous Ready"
        );
        let r = &mut self.raft;
        let ss = r.soft_state();
        let hs = r.hard_state();
        let entries = r.raft_log.unstable_entries().to_vec();
        let snapshot = r.raft_log.unstable.snapshot.clone();
        let committed_entries = r.raft_log.next_committed_entries();
        let rd = Ready {
            soft_state: (ss != self.prev_soft_state).then_some(ss),
            hard_state: (hs != self.prev_hard_state).then_some(hs),
            read_states: std::mem::take(&mut r.read_states),
            must_sync: hs.term != self.prev_hard_state.term
                || hs.vote != self.prev_hard_state.vote
                || !entries.is_empty()
                || snapshot.is_some(),
            entries,
            snapshot,
            committed_entries,
            messages: std::mem::take(&mut r.msgs),
        };
        let applied_index = rd.committed_entries.last().map(|e| e.index);
        if let Some(i) = applied_index {
            r.raft_log.applying_to(i);
        }
        self.in_progress = Some(InProgress {
            last_entry: rd.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: rd
                .snapshot
                .as_ref()
                .map(|s| s.metadata.as_ref().map_or(0, |m| m.index)),
            applied_index,
            applied_bytes: payload_size(&rd.committed_entries),
        });
        self.prev_soft_state = ss;
        if rd.hard_state.is_some() {
            self.prev_hard_state = hs;
        }
        rd
    }

    /// Acknowledges the last `Ready`: its entries and snapshot are persisted and its
    /// committed entries applied.
    pub fn advance(&mut self) {
        let Some(p) = self.in_progress.take() else {
            return;
        };
        if let Some(si) = p.snapshot_index {
            self.raft.raft_log.stable_snap_to(si);
            if si > self.raft.raft_log.applied {
                self.raft.raft_log.applied_to(si);
            }
        }
        if let Some((i, t)) = p.last_entry {
            self.raft.raft_log.stable_to(i, t);
        }
        if let Some(i) = p.applied_index {
            self.raft.applied_to(i, p.applied_bytes);
        }
    }

    /// The node's current state.
    pub fn status(&self) -> Status {
        Status::new(&self.raft)
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// The role and leader now.
    pub fn soft_state(&self) -> SoftState {
        self.raft.soft_state()
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.state == StateRole::Leader
    }

    /// The storage (read-only; the application keeps its own handle to write).
    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    /// Every entry of the log, stable and unstable (for tests and debugging).
    pub fn log_entries(&self) -> Vec<Entry> {
        self.raft.raft_log.all_entries()
    }

    /// The state machine, for the simulation's checker and the crate's tests.
    pub(crate) fn raft(&self) -> &Raft<S> {
        &self.raft
    }

    /// The state machine, mutably (see [`RawNode::raft`]).
    pub(crate) fn raft_mut(&mut self) -> &mut Raft<S> {
        &mut self.raft
    }

    /// The pending (unanswered) Safe read requests at the leader.
    pub fn pending_read_count(&self) -> usize {
        self.raft.read_only.pending_count() + self.raft.pending_read_index_messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use etcd_proto::raftpb::ConfState;

    fn single_node() -> (RawNode<MemStorage>, MemStorage) {
        let s = MemStorage::new_with_conf_state(ConfState {
            voters: vec![1],
            ..Default::default()
        });
        (RawNode::new(&Config::new(1), s.clone()).unwrap(), s)
    }

    fn handle(n: &mut RawNode<MemStorage>, s: &MemStorage) -> Ready {
        let rd = n.ready();
        s.wl().append(rd.entries()).unwrap();
        if let Some(hs) = rd.hard_state() {
            s.wl().set_hard_state(*hs);
        }
        n.advance();
        rd
    }

    #[test]
    fn no_ready_until_the_previous_one_is_advanced() {
        let (mut n, _s) = single_node();
        n.campaign().unwrap();
        assert!(n.has_ready());
        let _rd = n.ready();
        n.propose(&b"x"[..]).unwrap();
        assert!(!n.has_ready(), "a Ready is outstanding");
        n.advance();
        assert!(n.has_ready());
    }

    #[test]
    #[should_panic(expected = "before advance")]
    fn ready_twice_without_advance_panics() {
        let (mut n, _s) = single_node();
        n.campaign().unwrap();
        let _a = n.ready();
        let _b = n.ready();
    }

    #[test]
    fn must_sync_only_when_term_vote_or_log_change() {
        let (mut n, s) = single_node();
        n.campaign().unwrap();
        let rd = handle(&mut n, &s);
        assert!(rd.must_sync());
        n.propose(&b"x"[..]).unwrap();
        let rd = handle(&mut n, &s);
        assert!(rd.must_sync(), "new entries");
        while n.has_ready() {
            handle(&mut n, &s);
        }
        // A Ready with only a read state changes nothing durable.
        n.read_index(&b"ctx"[..]);
        let rd = handle(&mut n, &s);
        assert_eq!(rd.read_states().len(), 1);
        assert!(!rd.must_sync());
    }

    #[test]
    fn committed_entries_are_delivered_once_and_in_order() {
        let (mut n, s) = single_node();
        n.campaign().unwrap();
        let mut seen = Vec::new();
        for i in 0..5u8 {
            n.propose(vec![i]).unwrap();
            while n.has_ready() {
                let mut rd = n.ready();
                s.wl().append(rd.entries()).unwrap();
                seen.extend(rd.take_committed_entries().into_iter().map(|e| e.index));
                n.advance();
            }
        }
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(seen, sorted);
        assert_eq!(
            seen.len(),
            6,
            "the leader's empty entry plus five proposals"
        );
        assert_eq!(n.status().applied, *seen.last().unwrap());
    }

    #[test]
    fn restart_with_applied_index_does_not_redeliver_applied_entries() {
        let (mut n, s) = single_node();
        n.campaign().unwrap();
        n.propose(&b"a"[..]).unwrap();
        while n.has_ready() {
            handle(&mut n, &s);
        }
        let applied = n.status().applied;
        drop(n);
        let cfg = Config {
            applied,
            ..Config::new(1)
        };
        let mut n = RawNode::new(&cfg, s.clone()).unwrap();
        assert_eq!(n.status().applied, applied);
        if n.has_ready() {
            let rd = n.ready();
            assert!(rd.committed_entries().is_empty());
        }
    }

    #[test]
    fn local_proposals_reuse_one_entry_vector() {
        let (mut n, s) = single_node();
        n.campaign().unwrap();
        handle(&mut n, &s);
        n.propose(&b"a"[..]).unwrap();
        let ptr = n.raft.spare_entries.as_ptr();
        assert!(n.raft.spare_entries.capacity() > 0, "kept after appending");
        handle(&mut n, &s);
        n.propose(&b"b"[..]).unwrap();
        assert_eq!(n.raft.spare_entries.as_ptr(), ptr, "the same vector again");
        n.propose_batch((0..4096).map(|_| Bytes::from_static(b"c")))
            .unwrap();
        assert_eq!(
            n.raft.spare_entries.capacity(),
            0,
            "a large one is not kept"
        );
    }

    #[test]
    fn status_reports_progress_only_at_the_leader() {
        let (mut n, s) = single_node();
        assert!(n.status().progress.is_empty());
        n.campaign().unwrap();
        handle(&mut n, &s);
        let st = n.status();
        assert_eq!(st.soft_state.role, StateRole::Leader);
        assert_eq!(st.progress.len(), 1);
    }
}
