//! Physical compaction: deleting compacted revisions from the backend.
//!
//! Owns the compactor thread. A compaction at revision `C` starts in the applier's batch:
//! the compact revision is raised (reads below `C` fail from then on) and
//! `scheduledCompactRev = C` is written with the batch. After the commit, the job comes
//! here: first the index drops the revisions older than what is visible at `C` (in
//! chunks under the index lock, concurrently with the applier, like etcd's scheduled index
//! compaction: nothing read at or above `C` changes), then the physical half walks the
//! `key` bucket from the oldest revision up to `C`, deleting every revision the index no
//! longer keeps, in
//! batches of at most `compaction_batch_limit` revisions, each its own small RocksDB
//! write, with a pause between batches. The applier never waits for it (the two write
//! disjoint keys). The last batch records `finishedCompactRev = C`.
//!
//! Invariants kept: a revision the index keeps is never deleted; jobs run in submission
//! order, so `finishedCompactRev` only grows; a job interrupted by closing the store is
//! resumed on reopen (scheduled > finished). The job queue is bounded
//! ([`JOB_QUEUE_CAPACITY`]); a full queue makes the applier wait.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::{Bucket, META_FINISHED_COMPACT};
use crate::error::{Error, Result};
use crate::revision::{decode_bucket_key, Revision};
use crate::store::Shared;

/// Compactions that may wait for the compactor thread.
pub const JOB_QUEUE_CAPACITY: usize = 64;

/// The physical half of one compaction.
pub(crate) struct CompactionJob {
    rev: i64,
    done: SyncSender<Result<()>>,
}

impl CompactionJob {
    /// A job and the handle that reports its end.
    pub(crate) fn new(rev: i64) -> (Self, CompactionHandle) {
        let (done, rx) = sync_channel(1);
        (CompactionJob { rev, done }, CompactionHandle { rev, rx })
    }
}

/// Reports the end of a compaction's physical half.
#[derive(Debug)]
pub struct CompactionHandle {
    rev: i64,
    rx: Receiver<Result<()>>,
}

impl CompactionHandle {
    /// The compaction's revision.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// Blocks until the old revisions are deleted from the backend.
    /// [`Error::CompactionInterrupted`] if the store was closed first.
    pub fn wait(self) -> Result<()> {
        self.rx.recv().unwrap_or(Err(Error::CompactionInterrupted))
    }

    /// Like [`wait`](Self::wait) with a bound; `None` when it is still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<()>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(Error::CompactionInterrupted)),
        }
    }
}

/// The compactor thread and its job queue.
pub(crate) struct Compactor {
    tx: Option<SyncSender<CompactionJob>>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    pub(crate) fn start(shared: Arc<Shared>) -> Self {
        let (tx, rx) = sync_channel::<CompactionJob>(JOB_QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let r = run(&shared, &job);
                    match &r {
                        Ok(()) => tracing::info!(compact_rev = job.rev, "finished compaction"),
                        Err(Error::CompactionInterrupted) => {
                            tracing::info!(compact_rev = job.rev, "compaction interrupted by close; resumes on reopen")
                        }
                        Err(e) => tracing::error!(compact_rev = job.rev, error = %e, "compaction failed; it is retried on reopen"),
                    }
                    // The waiter may be gone; that is fine.
                    let _ = job.done.send(r);
                }
            });
        match thread {
            Ok(t) => Compactor {
                tx: Some(tx),
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the compactor thread; compactions resume on reopen");
                Compactor {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    /// Queues a job (blocks while the queue is full). A job that cannot be queued is
    /// dropped: its handle reports it interrupted, and reopening resumes it.
    pub(crate) fn submit(&self, job: CompactionJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    pub(crate) fn stop_and_join(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the compactor thread panicked");
            }
        }
    }
}

/// Compacts the index, then deletes from the backend what it no longer keeps; runs to
/// the end, or until the store is closing.
fn run(shared: &Shared, job: &CompactionJob) -> Result<()> {
    let keep = shared.index.compact(job.rev);
    physical(shared, job, &keep)
}

/// The physical half: deletes every revision up to the job's that is not in `keep`.
fn physical(shared: &Shared, job: &CompactionJob, keep: &HashSet<Revision>) -> Result<()> {
    let end = Revision::new(job.rev + 1, 0).to_bytes(false);
    let limit = shared.opts.compaction_batch_limit.max(1);
    let mut start: Vec<u8> = Vec::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Err(Error::CompactionInterrupted);
        }
        let rx = shared.backend.read();
        let mut it = rx.scan(Bucket::Key);
        it.seek(&start);
        let mut wtx = shared.backend.write();
        let mut seen = 0;
        let mut last: Option<Vec<u8>> = None;
        while seen < limit && it.valid() {
            let Some(k) = it.key() else { break };
            if k >= end.as_ref() {
                break;
            }
            let bk = decode_bucket_key(k)?;
            if !keep.contains(&bk.rev) {
                wtx.delete(Bucket::Key, k);
            }
            seen += 1;
            last = Some(k.to_vec());
            it.next();
        }
        it.status()?;
        let finished = seen < limit;
        if finished {
            wtx.put(
                Bucket::Meta,
                META_FINISHED_COMPACT,
                Revision::new(job.rev, 0).to_bytes(false).as_ref(),
            );
        }
        wtx.commit()?;
        if finished {
            return Ok(());
        }
        if let Some(mut k) = last {
            // The smallest key after `k`.
            k.push(0);
            start = k;
        }
        std::thread::sleep(shared.opts.compaction_batch_interval);
    }
}
