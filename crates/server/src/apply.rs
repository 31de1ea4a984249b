//! The applier: committed entries applied in raft order to the multi-version store, on
//! its own thread.
//!
//! A run of committed entries is applied in bounded chunks; each chunk is one backend
//! batch that also records the consistent index (the last entry's index and term), so
//! the backend never holds a change without the index that covers it, and a restart
//! replays exactly the entries after it (entries at or below it are skipped here). Only
//! after the batch commits are the waiting clients woken with their results and the
//! applied index published (linearizable reads wait on it). Every `--snapshot-count`
//! applied entries the applier syncs the backend and asks the node loop for a raft
//! snapshot. Conf changes arrive decided by the node loop ([`ConfOutcome`]): the
//! applier makes the change to the members and answers the proposer with the member
//! list. When this member is removed, it answers, then stops the member a second later
//! (as etcd). A follower's snapshot is made here, between batches, so the backend
//! checkpoint, the applied index and term, the configuration and the members agree.
//!
//! Invariants: the same entries produce the same state on every member (the applier
//! reads no clock and no local state besides the store and the lessor); an entry that
//! does not decode is skipped with an error log, never a panic; a backend failure
//! stops the member.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Receiver;
use etcd_mvcc::{Batch, CompactionHandle, ConsistentIndex};
use etcd_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, InternalRaftRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, TxnResponse,
};
use etcd_proto::prost::Message as _;
use etcd_proto::raftpb::{ConfState, Entry, EntryType, Message, Snapshot, SnapshotMetadata};

use crate::errors::ServerError;
use crate::kv;
use crate::membership::Member;
use crate::node::{ApplyMsg, NodeInput};
use crate::reconfig::{snapshot_data, ConfOutcome, MemberChange};
use crate::server::Shared;
use crate::storage::snapshot_index;

/// Most entries applied in one backend batch (values are held in memory until commit).
const MAX_ENTRIES_PER_BATCH: usize = 2048;
/// An apply batch slower than this is worth a warning.
const SLOW_APPLY: Duration = Duration::from_millis(100);
/// How long a removed member keeps running after applying its removal (to answer the
/// client that removed it), as etcd.
const REMOVED_STOP_DELAY: Duration = Duration::from_secs(1);

/// The result of applying one request, handed to its waiter.
#[derive(Debug)]
pub enum ApplyResponse {
    /// A Put.
    Put(PutResponse),
    /// A DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// A Txn.
    Txn(TxnResponse),
    /// A Compact, with the physical compaction's handle.
    Compaction(CompactionResponse, Option<CompactionHandle>),
    /// A LeaseGrant.
    LeaseGrant(LeaseGrantResponse),
    /// A LeaseRevoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// A membership change: the members after it.
    Members(Vec<Member>),
    /// An Alarm request: the alarms it concerns.
    Alarm(Vec<etcd_proto::etcdserverpb::AlarmMember>),
    /// Anything without a response body.
    Empty,
}

/// What a waiter receives.
pub type ApplyResult = Result<ApplyResponse, ServerError>;

/// A member carried in a conf change's context (etcd's JSON), if it is `id`'s.
pub fn member_from_context(context: &[u8], id: u64) -> Option<Member> {
    if context.is_empty() {
        return None;
    }
    serde_json::from_slice::<Member>(context)
        .ok()
        .filter(|m| m.id == id)
}

/// The applier's state.
pub struct Applier {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: Receiver<ApplyMsg>,
    pub(crate) applied_index: u64,
    /// The term of the entry at `applied_index`.
    pub(crate) applied_term: u64,
    pub(crate) snapshot_index: u64,
    pub(crate) conf_state: ConfState,
    /// Set once this member's own removal is applied.
    pub(crate) removed: bool,
}

impl Applier {
    /// Applies until the node loop hangs up; returns a fatal error.
    pub fn run(mut self) -> Result<(), String> {
        while let Ok(msg) = self.rx.recv() {
            match msg {
                ApplyMsg::Entries {
                    entries,
                    conf_state,
                    conf_outcomes,
                } => {
                    self.apply_entries(&entries, &conf_outcomes)?;
                    if let Some(cs) = conf_state {
                        self.conf_state = cs;
                    }
                    self.maybe_snapshot()?;
                }
                ApplyMsg::Snapshot { snapshot, backend } => self.install(snapshot, backend)?,
                ApplyMsg::MakeSnapshot { message, dir } => self.make_snapshot(message, dir),
            }
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: &[Entry], outcomes: &[ConfOutcome]) -> Result<(), String> {
        let fresh: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.index > self.applied_index)
            .collect();
        for chunk in fresh.chunks(MAX_ENTRIES_PER_BATCH) {
            let started = Instant::now();
            let store = self.shared.store();
            let mut batch = store.batch().map_err(|e| format!("backend: {e}"))?;
            let mut results: Vec<(u64, ApplyResult)> = Vec::new();
            let was_removed = self.removed;
            for e in chunk {
                self.apply_entry(&mut batch, e, outcomes, &mut results)?;
            }
            let Some(last) = chunk.last() else {
                continue;
            };
            batch.set_consistent_index(ConsistentIndex {
                index: last.index,
                term: last.term,
            });
            let commit_started = Instant::now();
            batch
                .commit()
                .map_err(|e| format!("failed to commit an apply batch: {e}"))?;
            crate::metrics::METRICS
                .backend_commit
                .observe(commit_started.elapsed());
            self.applied_index = last.index;
            self.applied_term = last.term;
            self.shared.set_applied(last.index);
            for (id, result) in results {
                self.shared.wait.trigger(id, result);
            }
            if self.removed && !was_removed {
                self.stop_removed_member();
            }
            let took = started.elapsed();
            if took > SLOW_APPLY {
                tracing::warn!(took = ?took, expected = ?SLOW_APPLY, entries = chunk.len(),
                    "apply request took too long");
            }
        }
        Ok(())
    }

    fn apply_entry(
        &mut self,
        batch: &mut Batch<'_>,
        e: &Entry,
        outcomes: &[ConfOutcome],
        results: &mut Vec<(u64, ApplyResult)>,
    ) -> Result<(), String> {
        match EntryType::try_from(e.r#type) {
            Ok(EntryType::EntryNormal) => {
                if e.data.is_empty() {
                    // A new leader's empty entry.
                    return Ok(());
                }
                let req = match InternalRaftRequest::decode(e.data.clone()) {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::error!(index = e.index, %err, "a committed entry does not decode; skipped");
                        return Ok(());
                    }
                };
                let id = req.header.as_ref().map_or(req.id, |h| h.id);
                let result = self.apply_request(batch, req)?;
                if id != 0 {
                    results.push((id, result));
                }
            }
            Ok(EntryType::EntryConfChange) | Ok(EntryType::EntryConfChangeV2) => {
                match outcomes.iter().find(|o| o.index == e.index) {
                    Some(o) => self.apply_conf_change(batch, o, results)?,
                    None => {
                        tracing::warn!(
                            index = e.index,
                            "a conf change the node loop did not decide; skipped"
                        )
                    }
                }
            }
            Err(_) => {
                tracing::error!(
                    index = e.index,
                    r#type = e.r#type,
                    "unknown entry type; skipped"
                );
            }
        }
        Ok(())
    }

    /// Applies one request. `Err` is fatal (backend failure); a request that fails is an
    /// `Ok(Err(..))` for its client.
    fn apply_request(
        &mut self,
        batch: &mut Batch<'_>,
        req: InternalRaftRequest,
    ) -> Result<ApplyResult, String> {
        let lease_exists = |id: i64| self.shared.lease_exists(id);
        // With a NOSPACE alarm raised, requests that grow the backend fail on every
        // member alike until the alarm is disarmed.
        if crate::server::grows_backend(&req)
            && self
                .shared
                .alarms
                .is_active(etcd_proto::etcdserverpb::AlarmType::Nospace)
        {
            return Ok(Err(crate::errors::EtcdError::NoSpace.into()));
        }
        let result = if let Some(a) = req.alarm {
            self.shared
                .alarms
                .apply(batch, &a)
                .map(ApplyResponse::Alarm)
                .map_err(|e| format!("backend: {e}"))
                .map_err(ServerError::Internal)
        } else if let Some(put) = req.put {
            let mut txn = batch.txn();
            let r = kv::apply_put(&mut txn, &put, &lease_exists);
            let done = txn.end();
            self.shared.on_events(&done.events);
            r.map(|mut resp| {
                resp.header = Some(kv::header(done.revision));
                ApplyResponse::Put(resp)
            })
        } else if let Some(del) = req.delete_range {
            let mut txn = batch.txn();
            let r = kv::apply_delete(&mut txn, &del);
            let done = txn.end();
            self.shared.on_events(&done.events);
            r.map(|mut resp| {
                resp.header = Some(kv::header(done.revision));
                ApplyResponse::DeleteRange(resp)
            })
        } else if let Some(t) = req.txn {
            let mut txn = batch.txn();
            let r = kv::apply_txn(&mut txn, &t, &lease_exists);
            let done = txn.end();
            self.shared.on_events(&done.events);
            r.map(|mut resp| {
                resp.header = Some(kv::header(done.revision));
                ApplyResponse::Txn(resp)
            })
        } else if let Some(c) = req.compaction {
            match batch.compact(c.revision) {
                Ok(handle) => Ok(ApplyResponse::Compaction(
                    CompactionResponse {
                        header: Some(kv::header(batch.revision())),
                    },
                    c.physical.then_some(handle),
                )),
                Err(err) => Err(ServerError::from(err)),
            }
        } else if let Some(g) = req.lease_grant {
            self.shared
                .lease_grant(batch, g.id, g.ttl)
                .map(ApplyResponse::LeaseGrant)
        } else if let Some(r) = req.lease_revoke {
            let res = self.shared.lease_revoke(batch, r.id);
            res.map(|rev| {
                ApplyResponse::LeaseRevoke(LeaseRevokeResponse {
                    header: Some(kv::header(rev)),
                })
            })
        } else if let Some(cp) = req.lease_checkpoint {
            for c in cp.checkpoints {
                self.shared.lease_checkpoint(batch, c.id, c.remaining_ttl);
            }
            Ok(ApplyResponse::Empty)
        } else if let Some(attr) = req.cluster_member_attr_set {
            let (name, urls) = attr
                .member_attributes
                .map(|a| (a.name, a.client_urls))
                .unwrap_or_default();
            self.shared
                .cluster
                .set_attributes(batch, attr.member_id, name, urls)
                .map_err(|e| format!("backend: {e}"))?;
            Ok(ApplyResponse::Empty)
        } else {
            Ok(ApplyResponse::Empty)
        };
        // A backend failure inside a request is fatal for the member, not the client's.
        match result {
            Err(ServerError::Internal(text)) => Err(format!("apply failed: {text}")),
            other => Ok(other),
        }
    }

    /// Makes a decided conf change to the members and queues its proposer's answer.
    fn apply_conf_change(
        &mut self,
        batch: &mut Batch<'_>,
        o: &ConfOutcome,
        results: &mut Vec<(u64, ApplyResult)>,
    ) -> Result<(), String> {
        let cluster = &self.shared.cluster;
        let res = match &o.result {
            Ok(Some(MemberChange::Add(m))) => {
                let mut m = m.clone();
                if let Some(known) = cluster.member(m.id) {
                    // Keep published attributes.
                    if m.name.is_empty() {
                        m.name = known.name;
                    }
                    if m.client_urls.is_empty() {
                        m.client_urls = known.client_urls;
                    }
                }
                tracing::info!(member = %format!("{:x}", m.id), peer_urls = ?m.peer_urls, learner = m.is_learner,
                    "added member");
                cluster.add(batch, m)
            }
            Ok(Some(MemberChange::Promote(id))) => {
                tracing::info!(member = %format!("{id:x}"), "promoted learner to voter");
                cluster.promote(batch, *id)
            }
            Ok(Some(MemberChange::Remove(id))) => {
                tracing::info!(member = %format!("{id:x}"), "removed member");
                if *id == self.shared.member_id {
                    self.removed = true;
                }
                cluster.remove(batch, *id)
            }
            Ok(Some(MemberChange::Update { id, peer_urls })) => {
                tracing::info!(member = %format!("{id:x}"), ?peer_urls, "updated member peer URLs");
                cluster.update_peer_urls(batch, *id, peer_urls.clone())
            }
            Ok(None) | Err(_) => Ok(()),
        };
        res.map_err(|e| format!("backend: {e}"))?;
        if o.request_id != 0 {
            let answer = match &o.result {
                Ok(_) => Ok(ApplyResponse::Members(cluster.members())),
                Err(err) => Err(err.clone()),
            };
            results.push((o.request_id, answer));
        }
        Ok(())
    }

    /// This member's removal is applied: it stops shortly, as etcd's does.
    fn stop_removed_member(&self) {
        tracing::warn!(
            "this member has been permanently removed from the cluster; it stops now. \
             The data-dir used by this member must be removed before it can join again"
        );
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("etcd-removed".into())
            .spawn(move || {
                std::thread::sleep(REMOVED_STOP_DELAY);
                shared.fail("the member has been permanently removed from the cluster".into());
            });
        if spawned.is_err() {
            self.shared
                .fail("the member has been permanently removed from the cluster".into());
        }
    }

    /// The members and removed ids as a snapshot carries them.
    fn membership_data(&self) -> Bytes {
        Bytes::from(snapshot_data(
            &self.shared.cluster.members(),
            &self.shared.cluster.removed_ids(),
        ))
    }

    /// Makes a snapshot message for a follower: a backend checkpoint at the applied
    /// index, stamped with that index, its term, the configuration and the members there
    /// (etcd's merged snapshot), handed back to the node loop to send.
    fn make_snapshot(&mut self, mut m: Message, dir: std::path::PathBuf) {
        let to = m.to;
        let _ = std::fs::remove_dir_all(&dir);
        let store = self.shared.store();
        let input = match store.backend().checkpoint(&dir) {
            Ok(()) => {
                m.snapshot = Some(Snapshot {
                    data: self.membership_data(),
                    metadata: Some(SnapshotMetadata {
                        conf_state: Some(self.conf_state.clone()),
                        index: self.applied_index,
                        term: self.applied_term,
                    }),
                });
                tracing::info!(to = %format!("{to:x}"), index = self.applied_index, term = self.applied_term,
                    "sending a snapshot of the backend");
                NodeInput::SendSnapshot(m, dir)
            }
            Err(err) => {
                tracing::warn!(%err, "cannot checkpoint the backend for a snapshot");
                let _ = std::fs::remove_dir_all(&dir);
                NodeInput::SnapshotReport(to, false)
            }
        };
        let _ = self.shared.node_tx.send(input);
    }

    fn maybe_snapshot(&mut self) -> Result<(), String> {
        let count = self.shared.cfg.snapshot_count.max(1);
        if self.applied_index < self.snapshot_index + count {
            return Ok(());
        }
        // The raft WAL may drop entries up to the snapshot only once the backend that
        // holds them is durable.
        self.shared
            .store()
            .sync()
            .map_err(|e| format!("backend sync: {e}"))?;
        let _ = self.shared.node_tx.send(NodeInput::Snapshot {
            index: self.applied_index,
            conf_state: self.conf_state.clone(),
            data: self.membership_data(),
        });
        self.snapshot_index = self.applied_index;
        Ok(())
    }

    /// Installs the backend that came with a snapshot from the leader.
    fn install(
        &mut self,
        snap: Snapshot,
        backend: Option<std::path::PathBuf>,
    ) -> Result<(), String> {
        let index = snapshot_index(&snap);
        if index <= self.applied_index {
            if let Some(dir) = backend {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Ok(());
        }
        let Some(dir) = backend else {
            return Err(format!(
                "snapshot {index} arrived without its backend; cannot catch up"
            ));
        };
        let store = self.shared.store();
        {
            // Client reads wait while the content is replaced, so none sees a mix of
            // the old and the new backend.
            let _gate = self.shared.read_gate.write();
            store
                .restore_from(&dir)
                .map_err(|e| format!("cannot install the backend of snapshot {index}: {e}"))?;
            self.shared
                .cluster
                .recover(&store)
                .map_err(|e| format!("backend: {e}"))?;
            self.shared.after_restore(&store);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let ci = store.consistent_index();
        let meta = snap.metadata.clone().unwrap_or_default();
        (self.applied_index, self.applied_term) = if ci.index >= index {
            (ci.index, ci.term)
        } else {
            (index, meta.term)
        };
        let ci = ci.index;
        self.snapshot_index = index;
        if let Some(cs) = snap.metadata.and_then(|m| m.conf_state) {
            self.conf_state = cs;
        }
        self.shared.set_applied(self.applied_index);
        self.shared.on_members_changed();
        tracing::info!(
            index,
            consistent_index = ci,
            "installed the backend of a snapshot"
        );
        Ok(())
    }
}
