//! Write batches and write transactions.
//!
//! Owns the write side of the store. A [`Batch`] is what the applier holds while it
//! applies a run of committed raft entries: every write of every entry goes into one
//! RocksDB `WriteBatch`, together with the consistent index, and [`Batch::commit`] makes
//! them durable-in-order and visible at once. Inside a batch, each entry is a
//! [`TxnWrite`]: one main revision, with sub revisions 0, 1, 2, ... for its changes.
//!
//! Invariants kept:
//! - one batch at a time (the batch holds the writer lock);
//! - a transaction consumes a main revision only if it changed something (a delete of
//!   nothing or a read-only transaction does not bump the revision);
//! - reads inside a batch see the batch's own earlier writes (values not yet in RocksDB
//!   are served from the batch's pending map), reads outside see only committed batches;
//! - a batch that changed the index and is dropped without commit, or whose commit fails,
//!   poisons the store: the index is then ahead of the backend, so writes are refused
//!   until the store is reopened (and the server replays raft entries after the
//!   consistent index).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use etcd_proto::mvccpb::{event::EventType, Event, KeyValue};
use parking_lot::MutexGuard;

use crate::backend::{Bucket, ConsistentIndex, WriteTx, META_SCHEDULED_COMPACT};
use crate::codec::encode_kv;
use crate::compaction::{CompactionHandle, CompactionJob};
use crate::error::{Error, Result};
use crate::index::KeyRange;
use crate::revision::Revision;
use crate::store::{range_at, RangeOptions, RangeResult, Store, WriterState};

/// What a write transaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxnResult {
    /// The store's revision after the transaction (unchanged if it changed nothing).
    pub revision: i64,
    /// One event per change, in order: puts carry the new kv, deletes a kv with only
    /// `key` and `mod_revision`; both carry `prev_kv` (the key's previous state, if any).
    pub events: Vec<Event>,
}

/// The applier's unit of commit: many write transactions, one RocksDB write.
pub struct Batch<'s> {
    store: &'s Store,
    guard: MutexGuard<'s, WriterState>,
    tx: WriteTx<'s>,
    /// The batch's current revision (committed revision + transactions applied).
    rev: i64,
    pending: HashMap<Revision, KeyValue>,
    compactions: Vec<CompactionJob>,
    events: Vec<Event>,
    ci: Option<ConsistentIndex>,
    dirty: bool,
    done: bool,
}

impl<'s> Batch<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Self> {
        let guard = store.shared.writer.lock();
        if guard.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(Batch {
            store,
            guard,
            tx: store.shared.backend.write(),
            rev: store.current_revision(),
            pending: HashMap::new(),
            compactions: Vec::new(),
            events: Vec::new(),
            ci: None,
            dirty: false,
            done: false,
        })
    }

    /// The batch's current revision, including its uncommitted transactions.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// Starts a write transaction at the next main revision.
    pub fn txn(&mut self) -> TxnWrite<'_, 's> {
        let begin_rev = self.rev;
        TxnWrite {
            batch: self,
            begin_rev,
            changes: Vec::new(),
            ended: false,
        }
    }

    /// A transaction with one put (see [`TxnWrite::put`]).
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<TxnResult> {
        let mut t = self.txn();
        t.put(key, value, lease)?;
        Ok(t.end())
    }

    /// A transaction with one delete range (see [`TxnWrite::delete_range`]).
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Result<TxnResult> {
        let mut t = self.txn();
        t.delete_range(key, range_end)?;
        Ok(t.end())
    }

    /// Reads at the batch's current state (including its uncommitted writes).
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        self.range_at(self.rev, key, range_end, opts)
    }

    fn range_at(
        &self,
        current: i64,
        key: &[u8],
        range_end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult> {
        let shared = &self.store.shared;
        range_at(
            &shared.index,
            &shared.compact_rev,
            current,
            key,
            range_end,
            opts,
            |revs| revs.iter().map(|r| self.value_at(*r)).collect(),
        )
    }

    fn value_at(&self, rev: Revision) -> Result<Option<Vec<u8>>> {
        if let Some(kv) = self.pending.get(&rev) {
            return Ok(Some(encode_kv(kv)));
        }
        self.store
            .shared
            .backend
            .get(Bucket::Key, rev.to_bytes(false).as_ref())
    }

    fn kv_at(&self, rev: Revision) -> Result<KeyValue> {
        if let Some(kv) = self.pending.get(&rev) {
            return Ok(kv.clone());
        }
        match self.value_at(rev)? {
            Some(b) => crate::codec::decode_kv(&b),
            None => Err(Error::corrupt(
                "key bucket",
                format!("revision {rev:?} is in the index but not in the backend"),
            )),
        }
    }

    /// Compacts the store at `rev`: reads below `rev` fail from now on; after commit the
    /// compactor thread compacts the index (in bounded chunks, concurrently with the
    /// applier: compaction never changes reads at or above `rev`) and then the backend
    /// (in bounded batches). The
    /// scheduled compaction is recorded in this batch, so a crash before it finishes
    /// resumes it on reopen. Errors: `rev <= compact revision` is [`Error::Compacted`],
    /// `rev >` current revision is [`Error::FutureRev`].
    pub fn compact(&mut self, rev: i64) -> Result<CompactionHandle> {
        if rev <= self.store.compact_revision() {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRev);
        }
        self.dirty = true;
        self.tx.put(
            Bucket::Meta,
            META_SCHEDULED_COMPACT,
            Revision::new(rev, 0).to_bytes(false).as_ref(),
        );
        let (job, handle) = self.store.schedule_compact(rev);
        self.compactions.push(job);
        Ok(handle)
    }

    /// Records the last raft entry this batch covers; written in the same RocksDB batch.
    pub fn set_consistent_index(&mut self, ci: ConsistentIndex) {
        self.tx.set_consistent_index(ci);
        self.ci = Some(ci);
    }

    /// Writes `key = value` in another bucket (lease, auth, members, ...) in this batch.
    /// The `key` bucket is written only through transactions: [`Error::ReservedBucket`].
    pub fn put_raw(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) -> Result<()> {
        if bucket == Bucket::Key {
            return Err(Error::ReservedBucket);
        }
        self.tx.put(bucket, key, value);
        Ok(())
    }

    /// Deletes `key` from another bucket in this batch (see [`Batch::put_raw`]).
    pub fn delete_raw(&mut self, bucket: Bucket, key: &[u8]) -> Result<()> {
        if bucket == Bucket::Key {
            return Err(Error::ReservedBucket);
        }
        self.tx.delete(bucket, key);
        Ok(())
    }

    /// Commits everything in one RocksDB write, then publishes the new revision and
    /// consistent index, hands compactions to the compactor and events to the observer.
    /// Wake client waiters only after this returns. Returns the store's revision.
    pub fn commit(mut self) -> Result<i64> {
        self.done = true;
        let tx = std::mem::replace(&mut self.tx, self.store.shared.backend.write());
        if let Err(e) = tx.commit() {
            if self.dirty {
                self.guard.poisoned = true;
            }
            tracing::error!(error = %e, "mvcc batch commit failed; store poisoned, reopen it");
            return Err(e);
        }
        let shared = &self.store.shared;
        shared.current_rev.store(self.rev, Ordering::Release);
        if let Some(ci) = self.ci {
            shared.ci_index.store(ci.index, Ordering::Release);
            shared.ci_term.store(ci.term, Ordering::Release);
        }
        for job in self.compactions.drain(..) {
            self.store.compactor.submit(job);
        }
        if let Some(obs) = &self.guard.observer {
            if !self.events.is_empty() {
                obs.on_commit(self.rev, &self.events);
            }
        }
        Ok(self.rev)
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.done && self.dirty {
            tracing::error!(
                revision = self.rev,
                "mvcc batch dropped without commit; store poisoned, reopen it"
            );
            self.guard.poisoned = true;
        }
    }
}

/// One write transaction: one main revision for all its changes. End it with
/// [`TxnWrite::end`] to get its events (dropping it ends it too, discarding them).
pub struct TxnWrite<'b, 's> {
    batch: &'b mut Batch<'s>,
    begin_rev: i64,
    changes: Vec<Event>,
    ended: bool,
}

impl TxnWrite<'_, '_> {
    /// The revision before this transaction; its changes get `rev() + 1`.
    pub fn rev(&self) -> i64 {
        self.begin_rev
    }

    /// The revision reads see: including this transaction's own changes so far (the
    /// revision etcd reports in the header of a write inside a txn).
    pub fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    /// Reads inside the transaction; sees its own earlier writes.
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        self.batch.range_at(self.read_rev(), key, range_end, opts)
    }

    /// Puts `key = value` attached to `lease` (0 = none); returns the previous kv.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<Option<KeyValue>> {
        let rev = self.begin_rev + 1;
        let index = &self.batch.store.shared.index;
        let (create_revision, version, prev) = match index.get(key, rev) {
            Ok((modified, created, ver)) => {
                (created.main, ver + 1, Some(self.batch.kv_at(modified)?))
            }
            Err(_) => (rev, 1, None),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        };
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        self.batch.dirty = true;
        self.batch.tx.put(
            Bucket::Key,
            idx_rev.to_bytes(false).as_ref(),
            &encode_kv(&kv),
        );
        index.put(key, idx_rev);
        self.batch.pending.insert(idx_rev, kv.clone());
        self.changes.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    /// Deletes every key in the range (etcd's `range_end` rules); returns the deleted
    /// kvs (their last state). Deleting nothing changes nothing.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Result<Vec<KeyValue>> {
        let index = &self.batch.store.shared.index;
        let alive = index.keys_alive(KeyRange::new(key, range_end), self.read_rev());
        let mut prevs = Vec::with_capacity(alive.len());
        for (_, modified) in &alive {
            prevs.push(self.batch.kv_at(*modified)?);
        }
        let rev = self.begin_rev + 1;
        for ((k, _), prev) in alive.into_iter().zip(&prevs) {
            let idx_rev = Revision::new(rev, self.changes.len() as i64);
            let tomb = KeyValue {
                key: k.clone(),
                ..Default::default()
            };
            self.batch.dirty = true;
            self.batch.tx.put(
                Bucket::Key,
                idx_rev.to_bytes(true).as_ref(),
                &encode_kv(&tomb),
            );
            index.tombstone(&k, idx_rev)?;
            self.changes.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: k,
                    mod_revision: rev,
                    ..Default::default()
                }),
                prev_kv: Some(prev.clone()),
            });
        }
        Ok(prevs)
    }

    fn finish(&mut self) -> i64 {
        if !self.ended {
            self.ended = true;
            if !self.changes.is_empty() {
                self.batch.rev = self.begin_rev + 1;
                if self.batch.guard.observer.is_some() {
                    self.batch.events.extend(self.changes.iter().cloned());
                }
            }
        }
        self.batch.rev
    }

    /// Ends the transaction: bumps the revision if it changed anything.
    pub fn end(mut self) -> TxnResult {
        let revision = self.finish();
        TxnResult {
            revision,
            events: std::mem::take(&mut self.changes),
        }
    }
}

impl Drop for TxnWrite<'_, '_> {
    fn drop(&mut self) {
        self.finish();
    }
}
