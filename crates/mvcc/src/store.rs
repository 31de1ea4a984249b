//! The KV store: opening and restoring, reads at a revision, and the shared state.
//!
//! Owns the store's shared state: the backend, the tree index, the committed current
//! revision, the compact revision and the consistent index. Writes go through
//! [`Batch`] (module `txn`), compaction (index and backend) through the compactor
//! thread (module `compaction`).
//!
//! Invariants kept:
//! - `current_rev` is published only after the batch that wrote it is committed to
//!   RocksDB; a reader loads it *before* taking its RocksDB snapshot, so the snapshot
//!   holds every revision up to the revision it reads at.
//! - `compact_rev` is raised *before* the index is compacted; a reader checks it before
//!   and again after reading, so a read that raced with a compaction returns
//!   [`Error::Compacted`] instead of a partial answer.
//! - revisions only grow; the store starts at revision 1 and the first write gets 2.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::mvccpb::{Event, KeyValue};
use parking_lot::Mutex;

use crate::backend::{
    Backend, BackendOptions, Bucket, ConsistentIndex, ReadTx, META_FINISHED_COMPACT,
    META_SCHEDULED_COMPACT,
};
use crate::codec::{decode_index_fields, decode_kv};
use crate::compaction::{CompactionHandle, Compactor};
use crate::error::{Error, Result};
use crate::index::{KeyRange, TreeIndex};
use crate::revision::{decode_bucket_key, Revision};
use crate::txn::Batch;

/// How often a read at the current revision is retried when compactions overtake it.
const CURRENT_READ_ATTEMPTS: usize = 16;

/// Options of a range read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Revision to read at; `<= 0` means the current revision.
    pub rev: i64,
    /// At most this many key-values are returned; 0 means no limit. `count` is always the
    /// total number of matching keys, so `count > kvs.len()` means "more".
    pub limit: usize,
    /// Return only the count, no key-values.
    pub count_only: bool,
    /// Return key-values without their values.
    pub keys_only: bool,
}

/// The answer of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The matching key-values in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// Total number of matching keys (ignores `limit`).
    pub count: usize,
    /// The revision the range was read at (the current revision when `rev <= 0`).
    pub rev: i64,
}

/// Options of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// RocksDB tuning.
    pub backend: BackendOptions,
    /// Revisions examined per physical compaction batch (each batch is one RocksDB write).
    pub compaction_batch_limit: usize,
    /// Pause between physical compaction batches, to leave the disk to the applier.
    pub compaction_batch_interval: Duration,
    /// Flush memtables when the store is dropped, so the next open replays no RocksDB
    /// WAL. Turn off to test (or to get) crash-like closes.
    pub flush_on_close: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            backend: BackendOptions::default(),
            compaction_batch_limit: 1000,
            compaction_batch_interval: Duration::from_millis(1),
            flush_on_close: true,
        }
    }
}

/// Receives the events of every committed batch, in revision order. Called on the
/// applier's thread while it holds the write lock, right after the batch is visible to
/// readers: keep it short (hand the events to a channel).
pub trait Observer: Send + Sync {
    /// `revision` is the store's revision after the batch; `events` are the batch's events
    /// in order (empty batches are not reported).
    fn on_commit(&self, revision: i64, events: &[Event]);
}

pub(crate) struct WriterState {
    pub(crate) poisoned: bool,
    pub(crate) observer: Option<Arc<dyn Observer>>,
}

pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) index: TreeIndex,
    pub(crate) current_rev: AtomicI64,
    pub(crate) compact_rev: AtomicI64,
    pub(crate) ci_index: AtomicU64,
    pub(crate) ci_term: AtomicU64,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) stop: AtomicBool,
    pub(crate) opts: StoreOptions,
}

/// etcd's multi-version key-value store over RocksDB. Share it with `Arc`: reads take
/// `&self` and run concurrently; writes go through one [`Batch`] at a time.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    pub(crate) compactor: Compactor,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.backend.path())
            .field("current_rev", &self.current_revision())
            .field("compact_rev", &self.compact_revision())
            .finish()
    }
}

fn read_rev(backend: &Backend, key: &[u8]) -> Result<Option<i64>> {
    match backend.get(Bucket::Meta, key)? {
        None => Ok(None),
        Some(b) => Ok(Some(decode_bucket_key(&b)?.rev.main)),
    }
}

/// Fills `index` from the `key` bucket; returns the highest main revision found (1 if
/// none).
fn rebuild_index(backend: &Backend, index: &TreeIndex) -> Result<i64> {
    let mut current = 1;
    let rx = backend.read();
    let mut it = rx.scan(Bucket::Key);
    it.seek_to_first();
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let bk = decode_bucket_key(k)?;
        let f = decode_index_fields(v)?;
        index.restore(
            f.key,
            bk.rev,
            bk.tombstone,
            Revision::new(f.create_revision, 0),
            f.version,
        );
        current = current.max(bk.rev.main);
        it.next();
    }
    it.status()?;
    Ok(current)
}

/// Keys deleted or copied per RocksDB write while a store is restored.
const RESTORE_CHUNK: usize = 10_000;

impl Store {
    /// Opens the store in directory `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `path`: rebuilds the key index, the current
    /// revision and the compact revision from the backend, and resumes an interrupted
    /// compaction.
    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let backend = Backend::open(path, &opts.backend)?;
        let ci = backend.consistent_index()?;
        let finished = read_rev(&backend, META_FINISHED_COMPACT)?;
        let scheduled = read_rev(&backend, META_SCHEDULED_COMPACT)?;
        let index = TreeIndex::new();
        let mut current = rebuild_index(&backend, &index)?;
        let compact = finished.unwrap_or(-1);
        // Revisions just below the compact revision may all be gone (e.g. compacted
        // tombstones): the current revision is at least the compact revision.
        current = current.max(compact);
        let shared = Arc::new(Shared {
            backend,
            index,
            current_rev: AtomicI64::new(current),
            compact_rev: AtomicI64::new(compact),
            ci_index: AtomicU64::new(ci.index),
            ci_term: AtomicU64::new(ci.term),
            writer: Mutex::new(WriterState {
                poisoned: false,
                observer: None,
            }),
            stop: AtomicBool::new(false),
            opts,
        });
        let compactor = Compactor::start(Arc::clone(&shared));
        let store = Store { shared, compactor };
        if let Some(s) = scheduled.filter(|&s| s > compact) {
            tracing::info!(
                scheduled_compact_rev = s,
                finished_compact_rev = compact,
                "resuming interrupted compaction"
            );
            let rev = s.max(store.current_revision());
            store.shared.current_rev.store(rev, Ordering::Release);
            // The handle is dropped: nobody waits for a resumed compaction.
            let (job, _handle) = store.schedule_compact(s);
            store.compactor.submit(job);
        }
        tracing::debug!(
            current_rev = store.current_revision(),
            compact_rev = store.compact_revision(),
            keys = store.shared.index.len(),
            consistent_index = ci.index,
            "mvcc store opened"
        );
        Ok(store)
    }

    /// Starts a compaction at `rev` (already validated): from now on reads below `rev`
    /// fail; the index and the backend are compacted by the compactor thread.
    pub(crate) fn schedule_compact(
        &self,
        rev: i64,
    ) -> (crate::compaction::CompactionJob, CompactionHandle) {
        self.shared.compact_rev.store(rev, Ordering::SeqCst);
        crate::compaction::CompactionJob::new(rev)
    }

    /// The backend, for the other buckets (lease, auth, members, ...): read them with
    /// [`Backend::read`], write them in the applier's batch with [`Batch::put_raw`].
    pub fn backend(&self) -> &Backend {
        &self.shared.backend
    }

    /// Replaces the whole content of the store (every bucket) with that of the store in
    /// `src`, for example a checkpoint received with a raft snapshot, then rebuilds the
    /// index, the revisions and the consistent index from it. Holds the writer lock for
    /// the whole time; readers see either the old content or, chunk by chunk, the
    /// replacement (the server only restores a member that is not serving reads from
    /// that state). Copies in bounded RocksDB writes; `src` is left as it was.
    pub fn restore_from(&self, src: impl AsRef<Path>) -> Result<()> {
        let mut writer = self.shared.writer.lock();
        let other = Backend::open(src.as_ref(), &self.shared.opts.backend)?;
        let backend = &self.shared.backend;
        for bucket in Bucket::ALL {
            loop {
                let keys: Vec<Vec<u8>> = {
                    let rx = backend.read();
                    let mut it = rx.scan(bucket);
                    it.seek_to_first();
                    let mut keys = Vec::new();
                    while it.valid() && keys.len() < RESTORE_CHUNK {
                        if let Some(k) = it.key() {
                            keys.push(k.to_vec());
                        }
                        it.next();
                    }
                    it.status()?;
                    keys
                };
                if keys.is_empty() {
                    break;
                }
                let mut w = backend.write();
                for k in &keys {
                    w.delete(bucket, k);
                }
                w.commit()?;
            }
            let rx = other.read();
            let mut it = rx.scan(bucket);
            it.seek_to_first();
            let mut w = backend.write();
            while it.valid() {
                if let (Some(k), Some(v)) = (it.key(), it.value()) {
                    w.put(bucket, k, v);
                }
                if w.len() >= RESTORE_CHUNK {
                    w.commit()?;
                    w = backend.write();
                }
                it.next();
            }
            it.status()?;
            w.commit()?;
        }
        drop(other);
        backend.sync()?;
        self.shared.index.clear();
        let mut current = rebuild_index(backend, &self.shared.index)?;
        let compact = read_rev(backend, META_FINISHED_COMPACT)?.unwrap_or(-1);
        current = current.max(compact);
        let ci = backend.consistent_index()?;
        self.shared.current_rev.store(current, Ordering::Release);
        self.shared.compact_rev.store(compact, Ordering::SeqCst);
        self.shared.ci_index.store(ci.index, Ordering::Release);
        self.shared.ci_term.store(ci.term, Ordering::Release);
        writer.poisoned = false;
        tracing::info!(
            current_rev = current,
            compact_rev = compact,
            consistent_index = ci.index,
            "store restored from {}",
            src.as_ref().display()
        );
        Ok(())
    }

    /// The revision of the last committed write (1 for an empty store).
    pub fn current_revision(&self) -> i64 {
        self.shared.current_rev.load(Ordering::Acquire)
    }

    /// The revision of the last compaction (-1 if never compacted): reads below it fail.
    pub fn compact_revision(&self) -> i64 {
        self.shared.compact_rev.load(Ordering::SeqCst)
    }

    /// The consistent index of the last committed batch: raft entries after it must be
    /// replayed after a restart.
    pub fn consistent_index(&self) -> ConsistentIndex {
        ConsistentIndex {
            index: self.shared.ci_index.load(Ordering::Acquire),
            term: self.shared.ci_term.load(Ordering::Acquire),
        }
    }

    /// Starts the (single) write batch; blocks while another batch is open.
    /// Fails with [`Error::Poisoned`] after an uncommitted or failed batch.
    pub fn batch(&self) -> Result<Batch<'_>> {
        Batch::new(self)
    }

    /// Sets the observer that receives every committed batch's events.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        self.shared.writer.lock().observer = Some(observer);
    }

    /// A read transaction: several ranges at one revision and one point in time.
    pub fn read(&self) -> ReadTxn<'_> {
        let current = self.current_revision();
        ReadTxn {
            store: self,
            tx: self.shared.backend.read(),
            current,
        }
    }

    /// Reads the keys in `[key, range_end)` (etcd's `range_end` rules) at `opts.rev`.
    /// A read at the current revision (`opts.rev <= 0`) never fails with
    /// [`Error::Compacted`]: if a compaction overtakes it, it is retried at the new current
    /// revision (a bounded number of times).
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        let mut attempts = 0;
        loop {
            match self.read().range(key, range_end, opts) {
                Err(Error::Compacted) if opts.rev <= 0 && attempts < CURRENT_READ_ATTEMPTS => {
                    attempts += 1;
                }
                r => return r,
            }
        }
    }

    /// Puts one key in its own batch (convenience; the applier batches many writes).
    pub fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<crate::TxnResult> {
        let mut b = self.batch()?;
        let r = b.put(key, value, lease)?;
        b.commit()?;
        Ok(r)
    }

    /// Deletes a range in its own batch (convenience).
    pub fn delete_range(&self, key: &[u8], range_end: &[u8]) -> Result<crate::TxnResult> {
        let mut b = self.batch()?;
        let r = b.delete_range(key, range_end)?;
        b.commit()?;
        Ok(r)
    }

    /// Compacts at `rev` in its own batch (convenience); wait on the handle for the
    /// physical part.
    pub fn compact(&self, rev: i64) -> Result<CompactionHandle> {
        let mut b = self.batch()?;
        let h = b.compact(rev)?;
        b.commit()?;
        Ok(h)
    }

    /// The `(key, lease)` of every live key attached to a lease, for the lessor to
    /// rebuild its key sets after a restart.
    pub fn leased_keys(&self) -> Result<Vec<(Vec<u8>, i64)>> {
        let r = self.range(b"\0", b"\0", RangeOptions::default())?;
        Ok(r.kvs
            .into_iter()
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.key, kv.lease))
            .collect())
    }

    /// Forces committed batches to stable storage (see [`Backend::sync`]).
    pub fn sync(&self) -> Result<()> {
        self.shared.backend.sync()
    }

    /// Number of keys in the index (live or deleted-but-not-compacted).
    pub fn index_len(&self) -> usize {
        self.shared.index.len()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.compactor.stop_and_join();
        // A clean close flushes memtables so the next open is fast. Nothing depends on it:
        // RocksDB's WAL holds every committed batch anyway.
        if self.shared.opts.flush_on_close {
            if let Err(e) = self.shared.backend.flush() {
                tracing::warn!(error = %e, "flush on close failed; RocksDB replays its WAL on open");
            }
        }
    }
}

/// A read transaction: a RocksDB snapshot and the revision that was current when it
/// started. Every range reads at or below that revision.
pub struct ReadTxn<'s> {
    store: &'s Store,
    tx: ReadTx<'s>,
    current: i64,
}

impl ReadTxn<'_> {
    /// The current revision of this read transaction.
    pub fn rev(&self) -> i64 {
        self.current
    }

    /// Reads the keys in the range at `opts.rev` (0 = this transaction's revision).
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        let shared = &self.store.shared;
        range_at(
            &shared.index,
            &shared.compact_rev,
            self.current,
            key,
            range_end,
            opts,
            |revs| {
                let keys: Vec<_> = revs.iter().map(|r| r.to_bytes(false)).collect();
                self.tx.multi_get(Bucket::Key, &keys)
            },
        )
    }
}

/// The read path shared by read transactions and write transactions: validates the
/// revision, walks the index, fetches values with `fetch` (one `Option` per revision, in
/// order) and re-checks the compact revision.
pub(crate) fn range_at(
    index: &TreeIndex,
    compact_rev: &AtomicI64,
    current: i64,
    key: &[u8],
    range_end: &[u8],
    opts: RangeOptions,
    fetch: impl FnOnce(&[Revision]) -> Result<Vec<Option<Vec<u8>>>>,
) -> Result<RangeResult> {
    if opts.rev > current {
        return Err(Error::FutureRev);
    }
    let rev = if opts.rev <= 0 { current } else { opts.rev };
    if rev < compact_rev.load(Ordering::SeqCst) {
        return Err(Error::Compacted);
    }
    let still_valid = || {
        if rev < compact_rev.load(Ordering::SeqCst) {
            Err(Error::Compacted)
        } else {
            Ok(())
        }
    };
    let range = KeyRange::new(key, range_end);
    let limit = if opts.count_only { 1 } else { opts.limit };
    let (revs, count) = index.revisions(range, rev, limit);
    if opts.count_only {
        still_valid()?;
        return Ok(RangeResult {
            kvs: Vec::new(),
            count,
            rev,
        });
    }
    let values = fetch(&revs)?;
    let mut kvs = Vec::with_capacity(values.len());
    for (r, v) in revs.iter().zip(values) {
        let Some(bytes) = v else {
            still_valid()?;
            return Err(Error::corrupt(
                "key bucket",
                format!("revision {r:?} is in the index but not in the backend"),
            ));
        };
        let mut kv = decode_kv(&bytes)?;
        if opts.keys_only {
            kv.value = Vec::new();
        }
        kvs.push(kv);
    }
    still_valid()?;
    Ok(RangeResult { kvs, count, rev })
}
