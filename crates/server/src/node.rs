//! The raft node loop: the one owner of the `RawNode`, on its own thread.
//!
//! It takes inputs (client proposals, peer messages, read-index requests, snapshot
//! requests from the applier, transport reports) from one bounded channel, ticks the
//! node every `--heartbeat-interval`, and handles each `Ready` in DESIGN.md's order: the
//! leader hands its messages to the transport before it writes to disk; entries and the
//! hard state go to the WAL with one fdatasync for the whole batch (group commit: every
//! proposal that arrived while the previous batch was syncing rides in the next one);
//! then to the in-memory raft log; followers send only after that (they acknowledge
//! only what is on disk); committed entries go to the applier's bounded queue, conf
//! changes are decided ([`crate::reconfig::ConfView`]) and applied to raft and the
//! transport right here, and then the node is advanced. A snapshot a follower needs is
//! made by the applier (a backend checkpoint at its applied index, with the
//! configuration and members there, as etcd merges them) and sent from here.
//!
//! Invariants: a WAL or snapshot write failure stops the member (nothing is
//! acknowledged that is not durable); the loop never blocks on the network (the
//! transport's `send` and `send_snapshot` are non-blocking; the checkpoint is the
//! applier's); the
//! apply queue is bounded, so a slow applier slows the loop down instead of growing
//! memory.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use etcd_proto::prost::Message as _;
use etcd_proto::raftpb::{ConfChange, ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use etcd_proto::walpb;
use etcd_raft::{MemStorage, RawNode, SnapshotStatus, StateRole};
use etcd_transport::{SnapshotSource, Transport};
use etcd_wal::{Snapshotter, Wal};

use crate::errors::ServerError;
use crate::membership::Member;
use crate::reconfig::{ConfOutcome, ConfView, MemberChange};
use crate::server::Shared;
use crate::storage::{snapshot_index, DataDir};

/// Most inputs handled between two `Ready`s (bounds the latency of a batch).
const MAX_INPUTS_PER_ROUND: usize = 4096;
/// Most proposals kept while there is no leader; older ones are dropped (their clients
/// time out, as with etcd).
const MAX_PENDING_PROPOSALS: usize = 16_384;
/// A WAL write slower than this is worth a warning.
const SLOW_FSYNC: Duration = Duration::from_secs(1);

/// What the node loop is asked to do.
#[derive(Debug)]
pub enum NodeInput {
    /// Propose an encoded `InternalRaftRequest`.
    Propose(Bytes),
    /// Propose a membership change; its `id` is the request id its proposer waits on
    /// (answered with an error at once if raft refuses it here).
    ProposeConfChange(ConfChange),
    /// A message from a peer.
    Step(Message),
    /// Ask raft for a read index; the answer goes to `Shared::read_states` under `ctx`.
    ReadIndex(u64),
    /// A peer could not be reached.
    Unreachable(u64),
    /// A snapshot to a peer finished.
    SnapshotReport(u64, bool),
    /// A snapshot message with its backend, staged at the path.
    ReceivedSnapshot(Message, PathBuf),
    /// The applier has applied (and synced) up to `index`: snapshot there.
    Snapshot {
        /// The applied index.
        index: u64,
        /// The configuration at that index.
        conf_state: ConfState,
        /// The snapshot's data.
        data: Bytes,
    },
    /// A snapshot message the applier made for a follower, with its backend checkpoint.
    SendSnapshot(Message, PathBuf),
    /// Answer raft's status (the leader's view of its followers' progress).
    RaftStatus(tokio::sync::oneshot::Sender<etcd_raft::Status>),
    /// Hand leadership to another member.
    TransferLeader(u64),
    /// Stop the loop.
    Stop,
}

/// What the applier is handed.
#[derive(Debug)]
pub enum ApplyMsg {
    /// Committed entries, in order; `conf_state` is the configuration after them if they
    /// changed it.
    Entries {
        /// The entries.
        entries: Vec<Entry>,
        /// The configuration after them, if they held conf changes.
        conf_state: Option<ConfState>,
        /// How the node loop decided each conf change among them, in order.
        conf_outcomes: Vec<ConfOutcome>,
    },
    /// A snapshot from the leader: install its backend.
    Snapshot {
        /// The raft snapshot.
        snapshot: Snapshot,
        /// Its backend, received with it.
        backend: Option<PathBuf>,
    },
    /// A follower needs a snapshot: checkpoint the backend into `dir` and hand the
    /// message back (`NodeInput::SendSnapshot`) stamped with the applied index, its
    /// term, the configuration and the members there.
    MakeSnapshot {
        /// Raft's snapshot message to the follower.
        message: Message,
        /// Where the checkpoint goes.
        dir: PathBuf,
    },
}

/// The loop's state.
pub struct NodeLoop {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node: RawNode<MemStorage>,
    pub(crate) storage: MemStorage,
    pub(crate) wal: Wal,
    pub(crate) snapshotter: Snapshotter,
    pub(crate) transport: Arc<Transport>,
    pub(crate) rx: Receiver<NodeInput>,
    pub(crate) apply_tx: Sender<ApplyMsg>,
    pub(crate) dirs: DataDir,
    pub(crate) tick: Duration,
    pub(crate) initial_members: Vec<Member>,
    /// The membership as the committed conf changes so far decided it.
    pub(crate) conf_view: ConfView,
    /// Conf changes proposed while leading, not yet seen in a `Ready`'s entries.
    pub(crate) proposed_conf_changes: Vec<u64>,
    pub(crate) pending: VecDeque<Bytes>,
    pub(crate) proposals: Vec<Bytes>,
    pub(crate) received_backends: HashMap<u64, PathBuf>,
    pub(crate) outgoing: HashMap<u64, PathBuf>,
    pub(crate) outgoing_seq: u64,
    /// The runtime the transport runs on (adding a peer starts its tasks there).
    pub(crate) runtime: tokio::runtime::Handle,
}

impl NodeLoop {
    /// Runs until `Stop` or a fatal error (returned).
    pub fn run(mut self) -> Result<(), String> {
        let runtime = self.runtime.clone();
        let _entered = runtime.enter();
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(NodeInput::Stop) => break,
                Ok(input) => {
                    self.handle(input)?;
                    for _ in 0..MAX_INPUTS_PER_ROUND {
                        match self.rx.try_recv() {
                            Ok(NodeInput::Stop) => return self.finish(),
                            Ok(input) => self.handle(input)?,
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                next_tick += self.tick;
                if next_tick < now {
                    next_tick = now + self.tick;
                }
            }
            self.flush_proposals();
            // One Ready at a time; a bounded number of rounds before looking at inputs.
            for _ in 0..64 {
                if !self.node.has_ready() {
                    break;
                }
                self.on_ready()?;
            }
        }
        self.finish()
    }

    fn finish(self) -> Result<(), String> {
        self.wal
            .close()
            .map_err(|e| format!("closing the WAL: {e}"))
    }

    fn handle(&mut self, input: NodeInput) -> Result<(), String> {
        match input {
            NodeInput::Propose(data) => self.proposals.push(data),
            NodeInput::ProposeConfChange(cc) => match self.node.propose_conf_change(&cc) {
                Ok(()) if self.node.is_leader() => self.proposed_conf_changes.push(cc.id),
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(%err, "conf change proposal dropped");
                    self.shared
                        .wait
                        .trigger(cc.id, Err(ServerError::Internal(err.to_string())));
                }
            },
            NodeInput::Step(m) => {
                if let Err(err) = self.node.step(m) {
                    tracing::debug!(%err, "raft refused a peer message");
                }
            }
            NodeInput::ReadIndex(ctx) => self
                .node
                .read_index(Bytes::copy_from_slice(&ctx.to_be_bytes())),
            NodeInput::Unreachable(id) => self.node.report_unreachable(id),
            NodeInput::SnapshotReport(id, ok) => {
                if let Some(dir) = self.outgoing.remove(&id) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(id, status);
            }
            NodeInput::ReceivedSnapshot(m, staged) => self.on_received_snapshot(m, staged)?,
            NodeInput::Snapshot {
                index,
                conf_state,
                data,
            } => self.snapshot(index, conf_state, data)?,
            NodeInput::SendSnapshot(m, dir) => {
                self.transport.send_snapshot(m, SnapshotSource::Dir(dir));
            }
            NodeInput::RaftStatus(tx) => {
                let _ = tx.send(self.node.status());
            }
            NodeInput::TransferLeader(to) => self.node.transfer_leader(to),
            NodeInput::Stop => {}
        }
        Ok(())
    }

    fn flush_proposals(&mut self) {
        if self.proposals.is_empty() && self.pending.is_empty() {
            return;
        }
        let has_leader = self.node.soft_state().leader_id != 0;
        let mut batch: Vec<Bytes> = self.pending.drain(..).collect();
        batch.append(&mut self.proposals);
        if has_leader {
            match self.node.propose_batch(batch.iter().cloned()) {
                Ok(()) => return,
                Err(err) => {
                    tracing::debug!(%err, "proposals not taken now; kept until there is a leader")
                }
            }
        }
        self.pending.extend(batch);
        while self.pending.len() > MAX_PENDING_PROPOSALS {
            self.pending.pop_front();
        }
    }

    fn on_ready(&mut self) -> Result<(), String> {
        let mut rd = self.node.ready();
        if let Some(ss) = rd.soft_state() {
            self.shared
                .set_leader(ss.leader_id, ss.role == StateRole::Leader);
        }
        let is_leader = self.node.is_leader();
        let mut msgs = rd.take_messages();
        if is_leader {
            self.send(std::mem::take(&mut msgs));
        }
        if let Some(snap) = rd.take_snapshot() {
            self.install_snapshot(snap)?;
        }
        let entries = rd.take_entries();
        if !self.proposed_conf_changes.is_empty() {
            self.answer_refused_conf_changes(&entries);
        }
        let hs = rd.take_hard_state();
        if !entries.is_empty() || hs.is_some() {
            let started = Instant::now();
            self.wal
                .save(&hs.unwrap_or_default(), &entries)
                .map_err(|e| format!("failed to save raft hard state and entries: {e}"))?;
            let took = started.elapsed();
            if took > SLOW_FSYNC {
                tracing::warn!(took = ?took, expected = ?SLOW_FSYNC, "slow fdatasync");
            }
        }
        if let Some(hs) = hs {
            self.shared.set_hard_state(hs.term, hs.commit);
            self.storage.wl().set_hard_state(hs);
        }
        if !entries.is_empty() {
            if let Some(last) = entries.last() {
                self.shared.set_last_index(last.index);
            }
            self.storage
                .wl()
                .append(&entries)
                .map_err(|e| format!("failed to append to the raft log: {e}"))?;
        }
        if !is_leader {
            self.send(msgs);
        }
        for rs in rd.take_read_states() {
            let mut ctx = [0u8; 8];
            if rs.request_ctx.len() == 8 {
                ctx.copy_from_slice(&rs.request_ctx);
                self.shared.read_state(u64::from_be_bytes(ctx), rs.index);
            }
        }
        let committed = rd.take_committed_entries();
        if !committed.is_empty() {
            let (conf_state, conf_outcomes) = self.apply_conf_changes(&committed);
            self.apply_tx
                .send(ApplyMsg::Entries {
                    entries: committed,
                    conf_state,
                    conf_outcomes,
                })
                .map_err(|_| "the applier stopped".to_string())?;
        }
        self.node.advance();
        Ok(())
    }

    /// Conf changes this member proposed as leader that raft replaced with an empty
    /// entry (another change is not applied yet) are answered now instead of timing out.
    fn answer_refused_conf_changes(&mut self, entries: &[Entry]) {
        let appended: Vec<u64> = entries
            .iter()
            .filter(|e| e.r#type == EntryType::EntryConfChange as i32)
            .filter_map(|e| ConfChange::decode(e.data.clone()).ok())
            .map(|cc| cc.id)
            .collect();
        for id in std::mem::take(&mut self.proposed_conf_changes) {
            if !appended.contains(&id) {
                tracing::warn!(
                    request_id = id,
                    "raft refused a conf change proposal; a previous one is not applied yet"
                );
                self.shared.wait.trigger(
                    id,
                    Err(ServerError::Internal(
                        "raft proposal dropped: a previous membership change is not applied yet"
                            .into(),
                    )),
                );
            }
        }
    }

    /// Decides committed conf changes, applies the valid ones to raft and the transport;
    /// returns the new configuration if there were any, and the decisions.
    fn apply_conf_changes(&mut self, committed: &[Entry]) -> (Option<ConfState>, Vec<ConfOutcome>) {
        let mut cs = None;
        let mut outcomes = Vec::new();
        for e in committed {
            let Some(decided) = self.conf_view.decide(e, &self.initial_members) else {
                continue;
            };
            if let Some(cc) = &decided.raft_change {
                match self.node.apply_conf_change(cc) {
                    Ok(new) => cs = Some(new),
                    Err(err) => {
                        tracing::warn!(index = e.index, %err, "conf change refused by raft");
                    }
                }
            }
            if let Ok(Some(change)) = &decided.outcome.result {
                self.change_peer(change);
            }
            outcomes.push(decided.outcome);
        }
        (cs, outcomes)
    }

    /// Tells the transport about a membership change.
    fn change_peer(&mut self, change: &MemberChange) {
        let (id, urls) = match change {
            MemberChange::Remove(id) => {
                if *id != self.shared.member_id {
                    self.transport.remove_peer(*id);
                }
                return;
            }
            MemberChange::Promote(_) => return,
            MemberChange::Add(m) => (m.id, &m.peer_urls),
            MemberChange::Update { id, peer_urls } => (*id, peer_urls),
        };
        if id == self.shared.member_id || urls.is_empty() {
            return;
        }
        let res = if self.transport.peer_ids().contains(&id) {
            self.transport.update_peer(id, urls)
        } else {
            self.transport.add_peer(id, urls)
        };
        if let Err(err) = res {
            tracing::warn!(peer = %format!("{id:x}"), %err, "cannot reach new member");
        }
    }

    /// After installing a snapshot: the transport knows exactly the view's members.
    fn reconcile_peers(&mut self) {
        let members: Vec<Member> = self.conf_view.members().cloned().collect();
        let known = self.transport.peer_ids();
        for id in known {
            if !members.iter().any(|m| m.id == id) {
                self.transport.remove_peer(id);
            }
        }
        for m in members {
            self.change_peer(&MemberChange::Add(m));
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let mut plain = Vec::with_capacity(msgs.len());
        for m in msgs {
            if m.r#type == MessageType::MsgSnap as i32 {
                self.send_snapshot(m);
            } else {
                plain.push(m);
            }
        }
        self.transport.send(plain);
    }

    /// Has the applier make a snapshot for a follower (sent when it comes back as
    /// `NodeInput::SendSnapshot`).
    fn send_snapshot(&mut self, m: Message) {
        let to = m.to;
        if self.outgoing.contains_key(&to) {
            self.node.report_snapshot(to, SnapshotStatus::Failure);
            return;
        }
        self.outgoing_seq += 1;
        let dir = self
            .dirs
            .snap
            .join(format!("outgoing-{to:016x}-{}", self.outgoing_seq));
        self.outgoing.insert(to, dir.clone());
        if self
            .apply_tx
            .try_send(ApplyMsg::MakeSnapshot { message: m, dir })
            .is_err()
        {
            // The applier is busy; raft asks again later.
            self.outgoing.remove(&to);
            self.node.report_snapshot(to, SnapshotStatus::Failure);
        }
    }

    fn on_received_snapshot(&mut self, m: Message, staged: PathBuf) -> Result<(), String> {
        let index = m.snapshot.as_ref().map_or(0, snapshot_index);
        let target = self.dirs.received_backend(index);
        if target.exists() {
            let _ = std::fs::remove_dir_all(&target);
        }
        if let Err(err) = std::fs::rename(&staged, &target) {
            tracing::warn!(%err, "cannot keep a received snapshot; dropped");
            let _ = std::fs::remove_dir_all(&staged);
            return Ok(());
        }
        self.received_backends.insert(index, target);
        if let Err(err) = self.node.step(m) {
            tracing::debug!(%err, "raft refused a snapshot message");
        }
        Ok(())
    }

    /// Persists a snapshot from the leader and hands its backend to the applier.
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), String> {
        let Some(meta) = snap.metadata.clone() else {
            return Ok(());
        };
        let index = meta.index;
        self.snapshotter
            .save(&snap)
            .map_err(|e| format!("failed to save a snapshot: {e}"))?;
        self.wal
            .save_snapshot(&walpb::Snapshot {
                index,
                term: meta.term,
                conf_state: meta.conf_state.clone(),
            })
            .map_err(|e| format!("failed to record a snapshot in the WAL: {e}"))?;
        self.storage
            .wl()
            .apply_snapshot(snap.clone())
            .map_err(|e| format!("failed to apply a snapshot to the raft log: {e}"))?;
        // The membership at the snapshot decides the conf changes after it; the transport
        // follows it.
        match ConfView::from_snapshot_data(&snap.data) {
            Some(view) => {
                self.conf_view = view;
                self.reconcile_peers();
            }
            None => tracing::warn!(
                index,
                "a snapshot without a member list; keeping the current one"
            ),
        }
        let backend = self.received_backends.remove(&index);
        self.apply_tx
            .send(ApplyMsg::Snapshot {
                snapshot: snap,
                backend,
            })
            .map_err(|_| "the applier stopped".to_string())?;
        Ok(())
    }

    /// Takes a snapshot at `index`, compacts the in-memory log and releases WAL
    /// segments. The applier has synced the backend up to `index` already.
    fn snapshot(&mut self, index: u64, cs: ConfState, data: Bytes) -> Result<(), String> {
        let (current, _) = self.storage.rl().snapshot_index_term();
        if index <= current {
            return Ok(());
        }
        let snap = match self.storage.wl().create_snapshot(index, Some(cs), data) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(index, %err, "cannot create a snapshot");
                return Ok(());
            }
        };
        self.snapshotter
            .save(&snap)
            .map_err(|e| format!("failed to save a snapshot: {e}"))?;
        let meta = snap.metadata.clone().unwrap_or_default();
        self.wal
            .save_snapshot(&walpb::Snapshot {
                index,
                term: meta.term,
                conf_state: meta.conf_state,
            })
            .map_err(|e| format!("failed to record a snapshot in the WAL: {e}"))?;
        let catchup = self.shared.cfg.snapshot_catchup_entries;
        let compact_to = index.saturating_sub(catchup);
        if compact_to > current {
            if let Err(err) = self.storage.wl().compact(compact_to) {
                tracing::debug!(%err, "raft log not compacted");
            }
        }
        if let Err(err) = self.wal.release_to(index) {
            tracing::warn!(%err, "cannot release WAL segments");
        }
        let keep = self.shared.cfg.max_snapshots as usize;
        if keep > 0 {
            if let Err(err) = self.snapshotter.purge(keep) {
                tracing::warn!(%err, "cannot purge old snapshot files");
            }
        }
        tracing::info!(
            index,
            term = meta.term,
            compacted_to = compact_to,
            "saved snapshot"
        );
        Ok(())
    }
}

/// Encodes a membership change entry's context: the member, as etcd's JSON.
pub fn member_context(m: &Member) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}
