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
//! changes are applied to raft right here, and then the node is advanced.
//!
//! Invariants: a WAL or snapshot write failure stops the member (nothing is
//! acknowledged that is not durable); the loop never blocks on the network (the
//! transport's `send` is non-blocking and snapshots are sent from another thread); the
//! apply queue is bounded, so a slow applier slows the loop down instead of growing
//! memory.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use etcd_proto::raftpb::{ConfChangeType, ConfState, Entry, Message, MessageType, Snapshot};
use etcd_proto::walpb;
use etcd_raft::{decode_conf_change, MemStorage, RawNode, SnapshotStatus, StateRole};
use etcd_transport::{SnapshotSource, Transport};
use etcd_wal::{Snapshotter, Wal};

use crate::membership::Member;
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
    /// Propose a membership change.
    ProposeConfChange(etcd_proto::raftpb::ConfChange),
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
    },
    /// A snapshot from the leader: install its backend.
    Snapshot {
        /// The raft snapshot.
        snapshot: Snapshot,
        /// Its backend, received with it.
        backend: Option<PathBuf>,
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
            NodeInput::ProposeConfChange(cc) => {
                if let Err(err) = self.node.propose_conf_change(&cc) {
                    tracing::warn!(%err, "conf change proposal dropped");
                }
            }
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
            let conf_state = self.apply_conf_changes(&committed)?;
            self.apply_tx
                .send(ApplyMsg::Entries {
                    entries: committed,
                    conf_state,
                })
                .map_err(|_| "the applier stopped".to_string())?;
        }
        self.node.advance();
        Ok(())
    }

    /// Applies committed conf changes to raft and the transport; returns the new
    /// configuration if there were any.
    fn apply_conf_changes(&mut self, committed: &[Entry]) -> Result<Option<ConfState>, String> {
        let mut cs = None;
        for e in committed {
            let cc = match decode_conf_change(e) {
                Ok(Some(cc)) => cc,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(index = e.index, %err, "a committed conf change does not decode; skipped");
                    continue;
                }
            };
            match self.node.apply_conf_change(&cc) {
                Ok(new) => cs = Some(new),
                Err(err) => {
                    tracing::warn!(index = e.index, %err, "conf change refused by raft");
                    continue;
                }
            }
            for change in &cc.changes {
                let id = change.node_id;
                if id == self.shared.member_id {
                    continue;
                }
                match ConfChangeType::try_from(change.r#type) {
                    Ok(ConfChangeType::ConfChangeRemoveNode) => self.transport.remove_peer(id),
                    Ok(_) => {
                        let urls = crate::apply::member_from_context(&cc.context, id)
                            .or_else(|| self.initial_members.iter().find(|m| m.id == id).cloned())
                            .map(|m| m.peer_urls)
                            .unwrap_or_default();
                        if urls.is_empty() {
                            continue;
                        }
                        let known = self.transport.peer_ids().contains(&id);
                        let res = if known {
                            self.transport.update_peer(id, &urls)
                        } else {
                            self.transport.add_peer(id, &urls)
                        };
                        if let Err(err) = res {
                            tracing::warn!(peer = %format!("{id:x}"), %err, "cannot reach new member");
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(cs)
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

    /// Sends a snapshot with a checkpoint of the backend, from another thread.
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
        let store = self.shared.store();
        let transport = self.transport.clone();
        let node_tx = self.shared.node_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot-send".into())
            .spawn(move || {
                let _ = std::fs::remove_dir_all(&dir);
                match store.backend().checkpoint(&dir) {
                    Ok(()) => transport.send_snapshot(m, SnapshotSource::Dir(dir)),
                    Err(err) => {
                        tracing::warn!(%err, "cannot checkpoint the backend for a snapshot");
                        let _ = node_tx.try_send(NodeInput::SnapshotReport(to, false));
                    }
                }
            });
        if spawned.is_err() {
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
        // Peers of the snapshot's configuration we do not know yet are learned from the
        // backend's members once the applier has installed it.
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
