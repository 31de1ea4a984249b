//! An in-memory cluster of [`RawNode`]s in one thread: each node has a
//! [`MemStorage`] that survives crashes (only what was persisted), a tiny state
//! machine (a running hash of the applied entries), and a shared network queue with
//! cuttable links. Used by the simulation, the transcript tests and the benches.
//!
//! Invariant: a node persists a `Ready`'s snapshot, entries and hard state before it
//! applies the committed entries or advances; its messages go to the network queue in
//! the same step (the network, not the node, decides when they arrive).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};

use crate::confchange::decode_conf_change;
use crate::{Config, MemStorage, RawNode, ReadState, SnapshotStatus, SoftState, Storage};

/// Folds an applied entry into a state machine hash (FNV-1a over index, term, data).
pub fn fold_hash(mut h: u64, e: &Entry) -> u64 {
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    feed(&e.index.to_le_bytes());
    feed(&e.term.to_le_bytes());
    feed(&e.data);
    h
}

/// The hash of an empty state machine.
pub const EMPTY_HASH: u64 = 0xcbf2_9ce4_8422_2325;

/// The state machine image stored in snapshots: applied index and hash.
fn encode_image(index: u64, hash: u64) -> Bytes {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(&hash.to_le_bytes());
    Bytes::from(v)
}

fn decode_image(data: &[u8]) -> (u64, u64) {
    if data.len() != 16 {
        return (0, EMPTY_HASH);
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&data[..8]);
    b.copy_from_slice(&data[8..]);
    (u64::from_le_bytes(a), u64::from_le_bytes(b))
}

/// One member of the cluster.
pub struct SimNode {
    /// The raft node; `None` while crashed.
    pub node: Option<RawNode<MemStorage>>,
    /// Persistent storage (survives crashes).
    pub storage: MemStorage,
    /// The configuration used at (re)start.
    pub config: Config,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Hash of the applied sequence.
    pub applied_hash: u64,
    /// Configuration as of `applied_index`.
    pub conf_state: ConfState,
    /// Applied normal entries with data, for display (index, data), bounded.
    pub applied_data: Vec<(u64, Bytes)>,
}

/// What one call of [`Cluster::process_ready`] did, for traces.
#[derive(Debug, Default)]
pub struct ReadyTrace {
    /// Soft state, if changed.
    pub soft_state: Option<SoftState>,
    /// Hard state, if changed.
    pub hard_state: Option<HardState>,
    /// Entries persisted.
    pub entries: Vec<Entry>,
    /// Snapshot persisted and applied.
    pub snapshot: Option<Snapshot>,
    /// Entries applied.
    pub committed: Vec<Entry>,
    /// Conf states produced by applied conf changes.
    pub conf_states: Vec<ConfState>,
    /// Messages sent.
    pub messages: Vec<Message>,
    /// Read states returned.
    pub read_states: Vec<ReadState>,
}

/// What happened to a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stepped into the recipient.
    Delivered,
    /// Dropped: the link is cut or the recipient is down or unknown.
    Dropped,
}

/// A cluster of simulated nodes and the network between them.
#[derive(Default)]
pub struct Cluster {
    /// Members by id.
    pub nodes: BTreeMap<u64, SimNode>,
    /// Messages sent but not yet delivered, in send order.
    pub network: Vec<Message>,
    /// Directed links that drop messages.
    pub cut: BTreeSet<(u64, u64)>,
    /// Largest applied index -> hash seen by any node (state machine safety check).
    pub applied_hashes: BTreeMap<u64, u64>,
    /// The first state machine divergence seen, if any.
    pub divergence: Option<String>,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds node `id` with `config` (its id is overwritten) and initial configuration `cs`.
    pub fn add_node(&mut self, id: u64, mut config: Config, cs: ConfState) {
        config.id = id;
        // Founding members start from a snapshot at index 1 (term 1) holding the
        // initial configuration, so that a member added later can catch up from a
        // snapshot; a joining member (empty `cs`) starts empty.
        let storage = MemStorage::new();
        let bootstrapped = !cs.voters.is_empty();
        if bootstrapped {
            let snap = Snapshot {
                data: encode_image(1, EMPTY_HASH),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(cs.clone()),
                    index: 1,
                    term: 1,
                }),
            };
            storage
                .wl()
                .apply_snapshot(snap)
                .expect("bootstrap snapshot");
        }
        let node =
            RawNode::new(&config, storage.clone()).expect("a valid config for a simulated node");
        let sn = SimNode {
            node: Some(node),
            storage,
            config,
            applied_index: u64::from(bootstrapped),
            applied_hash: EMPTY_HASH,
            conf_state: cs,
            applied_data: Vec::new(),
        };
        self.nodes.insert(id, sn);
    }

    /// Adds a founding member bootstrapped through the log ([`RawNode::bootstrap`]):
    /// the initial voters are the first entries of its log instead of a snapshot.
    pub fn add_node_bootstrapped_by_log(&mut self, id: u64, mut config: Config, voters: &[u64]) {
        config.id = id;
        let storage = MemStorage::new();
        let mut node =
            RawNode::new(&config, storage.clone()).expect("a valid config for a simulated node");
        node.bootstrap(voters).expect("bootstrap an empty storage");
        let sn = SimNode {
            node: Some(node),
            storage,
            config,
            applied_index: 0,
            applied_hash: EMPTY_HASH,
            conf_state: ConfState::default(),
            applied_data: Vec::new(),
        };
        self.nodes.insert(id, sn);
    }

    /// The node `id` (panics if unknown or crashed: a test bug).
    pub fn raw(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.node.as_mut())
            .expect("node exists and is up")
    }

    /// Whether node `id` is up.
    pub fn is_up(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.node.is_some())
    }

    /// Crashes node `id`: everything not persisted is lost; undelivered messages to
    /// it are dropped.
    pub fn crash(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.node = None;
        }
        let (lost, kept) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|m| m.to == id);
        self.network = kept;
        for m in lost {
            self.lose(&m);
        }
    }

    /// Accounts for a message the network lost. The transport's contract: every
    /// snapshot sent is reported, so a lost `MsgSnap` is reported as failed to its
    /// sender (else the sender's progress for the peer waits in Snapshot state
    /// forever, as etcd's would).
    pub fn lose(&mut self, m: &Message) {
        if m.r#type() == MessageType::MsgSnap && self.is_up(m.from) {
            self.raw(m.from)
                .report_snapshot(m.to, SnapshotStatus::Failure);
        }
    }

    /// Restarts node `id` from its storage.
    pub fn restart(&mut self, id: u64) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if n.node.is_some() {
            return;
        }
        let snap = n.storage.snapshot().expect("mem storage snapshot");
        let (index, hash) = decode_image(&snap.data);
        let meta = snap.metadata.unwrap_or_default();
        n.applied_index = index.max(meta.index);
        n.applied_hash = hash;
        n.conf_state = meta.conf_state.unwrap_or_default();
        let applied = n.applied_index;
        n.applied_data.retain(|(i, _)| *i <= applied);
        n.node =
            Some(RawNode::new(&n.config, n.storage.clone()).expect("restart from own storage"));
    }

    /// Takes a snapshot of node `id` at its applied index and compacts its log
    /// there. Returns the snapshot index, or None if nothing to compact.
    pub fn compact(&mut self, id: u64) -> Option<u64> {
        let n = self.nodes.get_mut(&id)?;
        let idx = n.applied_index;
        let data = encode_image(n.applied_index, n.applied_hash);
        let mut core = n.storage.wl();
        core.create_snapshot(idx, Some(n.conf_state.clone()), data)
            .ok()?;
        core.compact(idx).ok()?;
        Some(idx)
    }

    /// Whether node `id` has a `Ready`.
    pub fn has_ready(&self, id: u64) -> bool {
        self.nodes
            .get(&id)
            .and_then(|n| n.node.as_ref())
            .is_some_and(|r| r.has_ready())
    }

    /// Handles one `Ready` of node `id` completely (persist, send, apply, advance).
    pub fn process_ready(&mut self, id: u64) -> Option<ReadyTrace> {
        let n = self.nodes.get_mut(&id)?;
        let raw = n.node.as_mut()?;
        if !raw.has_ready() {
            return None;
        }
        let mut rd = raw.ready();
        let mut tr = ReadyTrace {
            soft_state: rd.soft_state().copied(),
            ..Default::default()
        };
        if let Some(snap) = rd.take_snapshot() {
            n.storage
                .wl()
                .apply_snapshot(snap.clone())
                .expect("apply snapshot to mem storage");
            let (index, hash) = decode_image(&snap.data);
            let meta = snap.metadata.clone().unwrap_or_default();
            n.applied_index = index.max(meta.index);
            n.applied_hash = hash;
            n.conf_state = meta.conf_state.unwrap_or_default();
            tr.snapshot = Some(snap);
        }
        let entries = rd.take_entries();
        if !entries.is_empty() {
            n.storage
                .wl()
                .append(&entries)
                .expect("append to mem storage");
        }
        if let Some(hs) = rd.take_hard_state() {
            n.storage.wl().set_hard_state(hs);
            tr.hard_state = Some(hs);
        }
        tr.entries = entries;
        tr.messages = rd.take_messages();
        self.network.extend(tr.messages.iter().cloned());
        tr.read_states = rd.take_read_states();
        let committed = rd.take_committed_entries();
        for e in &committed {
            if e.index <= n.applied_index {
                continue; // Replayed after a restart below the snapshot.
            }
            assert_eq!(
                e.index,
                n.applied_index + 1,
                "node {id} applies entries in order"
            );
            n.applied_index = e.index;
            n.applied_hash = fold_hash(n.applied_hash, e);
            match self.applied_hashes.get(&e.index) {
                Some(&h) if h != n.applied_hash && self.divergence.is_none() => {
                    self.divergence =
                        Some(format!("node {id} diverged at applied index {}", e.index));
                }
                Some(_) => {}
                None => {
                    self.applied_hashes.insert(e.index, n.applied_hash);
                }
            }
            if e.r#type == EntryType::EntryNormal as i32 {
                if !e.data.is_empty() && n.applied_data.len() < 10_000 {
                    n.applied_data.push((e.index, e.data.clone()));
                }
                continue;
            }
            if let Ok(Some(cc)) = decode_conf_change(e) {
                let raw = n.node.as_mut().expect("node is up");
                match raw.apply_conf_change(&cc) {
                    Ok(cs) => {
                        n.conf_state = cs.clone();
                        tr.conf_states.push(cs);
                    }
                    Err(err) => panic!("node {id}: committed conf change cannot be applied: {err}"),
                }
            }
        }
        if !tr.conf_states.is_empty() {
            // Keep the storage's snapshot current with the membership, so a member
            // added since the last snapshot can be caught up with one.
            let image = encode_image(n.applied_index, n.applied_hash);
            let _ =
                n.storage
                    .wl()
                    .create_snapshot(n.applied_index, Some(n.conf_state.clone()), image);
        }
        tr.committed = committed;
        n.node.as_mut().expect("node is up").advance();
        Some(tr)
    }

    /// A leader's fault: it hands out a `Ready`, sends its messages (which a leader
    /// may do before persisting), and crashes before persisting anything. Does
    /// nothing unless `id` leads and has a `Ready`. Returns whether it crashed.
    pub fn crash_leader_after_send(&mut self, id: u64) -> bool {
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
            return false;
        };
        if !raw.is_leader() || !raw.has_ready() {
            return false;
        }
        let mut rd = raw.ready();
        self.network.extend(rd.take_messages());
        self.crash(id);
        true
    }

    /// Delivers one message (reporting snapshot status to the sender for MsgSnap).
    pub fn deliver(&mut self, m: Message) -> Delivery {
        let (from, to, t) = (m.from, m.to, m.r#type());
        let ok = !self.cut.contains(&(from, to)) && self.is_up(to);
        if !ok {
            if t == MessageType::MsgSnap && self.is_up(from) {
                self.raw(from).report_snapshot(to, SnapshotStatus::Failure);
            }
            return Delivery::Dropped;
        }
        if let Err(crate::Error::MalformedMessage(why)) = self.raw(to).step(m.clone()) {
            // Our own nodes only send well-formed messages.
            panic!("node {to} refused a message from node {from} as malformed ({why}): {m:?}");
        }
        if t == MessageType::MsgSnap && self.is_up(from) {
            self.raw(from).report_snapshot(to, SnapshotStatus::Finish);
        }
        Delivery::Delivered
    }

    /// Cuts every link between the groups (messages between them are dropped).
    pub fn partition(&mut self, groups: &[Vec<u64>]) {
        self.cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a {
                        for &y in b {
                            self.cut.insert((x, y));
                        }
                    }
                }
            }
        }
        // Nodes not named in any group are cut from everyone named.
        let named: BTreeSet<u64> = groups.iter().flatten().copied().collect();
        let all: Vec<u64> = self.nodes.keys().copied().collect();
        for &x in &all {
            if !named.contains(&x) {
                for &y in &all {
                    if x != y {
                        self.cut.insert((x, y));
                        self.cut.insert((y, x));
                    }
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Processes readies and delivers messages until nothing is left, at most
    /// `max_rounds` rounds. Returns whether the cluster went quiet.
    pub fn stabilize(&mut self, max_rounds: usize) -> bool {
        for _ in 0..max_rounds {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                for _ in 0..8 {
                    if self.process_ready(id).is_none() {
                        break;
                    }
                    busy = true;
                }
            }
            let msgs = std::mem::take(&mut self.network);
            busy |= !msgs.is_empty();
            for m in msgs {
                self.deliver(m);
            }
            if !busy {
                return true;
            }
        }
        false
    }

    /// One line per node: role, term, leader, indexes and configuration (for
    /// failure reports).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            let Some(r) = n.node.as_ref() else {
                out.push_str(&format!("\n  node {id}: down"));
                continue;
            };
            let st = r.status();
            out.push_str(&format!(
                "\n  node {id}: {:?} term {} lead {} commit {} applied {} (sim {}) last {} conf {:?} progress {:?}",
                st.soft_state.role,
                st.hard_state.term,
                st.soft_state.leader_id,
                st.hard_state.commit,
                st.applied,
                n.applied_index,
                st.last_index,
                n.conf_state,
                st.progress,
            ));
        }
        out
    }

    /// The current leader with the highest term among live nodes, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| {
                n.node
                    .as_ref()
                    .filter(|r| r.is_leader())
                    .map(|r| (r.raft().term, *id))
            })
            .max()
            .map(|(_, id)| id)
    }
}
