//! Crash recovery: the store is "killed" between batch commits (an applied but uncommitted
//! batch is dropped with the store), reopened, and the raft log is replayed from the
//! consistent index. The result must equal a run without a crash, revision by revision.

// Test helpers outside #[test] fns unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use etcd_mvcc::{ConsistentIndex, RangeOptions, RangeResult, Store, StoreOptions};

/// One raft entry's worth of writes.
#[derive(Debug, Clone)]
enum Entry {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
    Txn(Vec<(Vec<u8>, Vec<u8>)>),
    Compact(i64),
}

/// A small deterministic generator (xorshift), so every run replays the same log.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("key{}", rng.below(12)).into_bytes()
}

fn raft_log(seed: u64, len: usize) -> Vec<Entry> {
    let mut rng = Rng(seed);
    let mut log = Vec::with_capacity(len);
    for i in 0..len {
        let e = match rng.below(10) {
            0..=5 => Entry::Put(key(&mut rng), format!("v{i}").into_bytes()),
            6 => {
                let k = key(&mut rng);
                let end = if rng.below(2) == 0 {
                    Vec::new()
                } else {
                    key(&mut rng)
                };
                Entry::Delete(k, end)
            }
            7 | 8 => Entry::Txn(
                (0..rng.below(4))
                    .map(|j| (key(&mut rng), format!("t{i}.{j}").into_bytes()))
                    .collect(),
            ),
            // Compact a few revisions back from the entry index: applied only if valid.
            _ => Entry::Compact(i as i64 / 2),
        };
        log.push(e);
    }
    log
}

/// Applies entries `from..to` (0-based positions; raft index = position + 1) in one batch.
fn apply(store: &Store, log: &[Entry], from: usize, to: usize, commit: bool) {
    let mut b = store.batch().unwrap();
    for e in &log[from..to] {
        match e {
            Entry::Put(k, v) => {
                b.put(k, v, 0).unwrap();
            }
            Entry::Delete(k, end) => {
                b.delete_range(k, end).unwrap();
            }
            Entry::Txn(puts) => {
                let mut t = b.txn();
                for (k, v) in puts {
                    t.put(k, v, 0).unwrap();
                }
                t.end();
            }
            Entry::Compact(rev) => {
                // Invalid compactions fail with the same error on every member; like the
                // server, the applier records the failure and moves on.
                if *rev > store.compact_revision() && *rev <= b.revision() {
                    drop(b.compact(*rev).unwrap());
                }
            }
        }
    }
    b.set_consistent_index(ConsistentIndex {
        index: to as u64,
        term: 1,
    });
    if commit {
        b.commit().unwrap();
    }
    // Without commit the batch is dropped: the "crash".
}

/// Everything observable: each readable revision's full state and the hash.
fn observe(store: &Store) -> (i64, i64, Vec<RangeResult>, u32) {
    let first = store.compact_revision().max(1);
    let history = (first..=store.current_revision())
        .map(|rev| {
            store
                .range(
                    b"\0",
                    b"\0",
                    RangeOptions {
                        rev,
                        ..Default::default()
                    },
                )
                .unwrap()
        })
        .collect();
    let h = store.hash_kv(0).unwrap();
    (
        store.current_revision(),
        store.compact_revision(),
        history,
        h.hash,
    )
}

fn opts() -> StoreOptions {
    StoreOptions {
        compaction_batch_interval: std::time::Duration::ZERO,
        // Closing is a crash: nothing is flushed, RocksDB replays its WAL on open.
        flush_on_close: false,
        ..Default::default()
    }
}

fn run_to_end(store: &Store, log: &[Entry], batch: usize) {
    let mut pos = store.consistent_index().index as usize;
    while pos < log.len() {
        let to = (pos + batch).min(log.len());
        apply(store, log, pos, to, true);
        pos = to;
    }
}

#[test]
fn reopen_and_replay_from_the_consistent_index_equals_no_crash() {
    const LOG_LEN: usize = 120;
    for seed in [1u64, 7, 12345] {
        let log = raft_log(seed, LOG_LEN);
        let dir = tempfile::tempdir().unwrap();
        let reference = {
            let store = Store::open_with(dir.path().join("ref"), opts()).unwrap();
            run_to_end(&store, &log, 10);
            observe(&store)
        };
        // Crash after every few batches, with different batch sizes before and after.
        for (crash_at, batch_before, batch_after) in
            [(0, 7, 13), (3, 10, 1), (9, 4, 32), (11, 10, 10)]
        {
            let path = dir.path().join(format!("crash-{crash_at}-{batch_before}"));
            {
                let store = Store::open_with(&path, opts()).unwrap();
                let mut pos = 0;
                for _ in 0..crash_at {
                    let to = (pos + batch_before).min(LOG_LEN);
                    apply(&store, &log, pos, to, true);
                    pos = to;
                }
                // Applied but not committed when the process dies.
                let to = (pos + batch_before).min(LOG_LEN);
                apply(&store, &log, pos, to, false);
                assert_eq!(store.consistent_index().index as usize, pos);
            }
            let store = Store::open_with(&path, opts()).unwrap();
            let ci = store.consistent_index().index as usize;
            assert!(ci <= LOG_LEN);
            run_to_end(&store, &log, batch_after);
            assert_eq!(
                observe(&store),
                reference,
                "seed {seed}, crash after {crash_at} batches (consistent index {ci})"
            );
        }
    }
}

#[test]
fn a_crash_before_the_first_commit_leaves_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let log = raft_log(3, 5);
    {
        let store = Store::open(dir.path()).unwrap();
        apply(&store, &log, 0, 5, false);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.consistent_index(), ConsistentIndex::default());
}
