//! Model-based test: random histories of puts, deletes, transactions, reads at revisions,
//! compactions, crashes of uncommitted batches and reopens, checked against a plain
//! in-memory model that keeps every version. Every read must match the model.

// Test helpers outside #[test] fns unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use etcd_mvcc::{Error, KeyValue, RangeOptions, Store, StoreOptions};
use proptest::prelude::*;

const KEYS: &[&[u8]] = &[b"a", b"b", b"ba", b"c", b"d"];

#[derive(Debug, Clone)]
enum TxnOp {
    Put(usize, u8),
    Delete(usize, usize),
    Range(usize, usize),
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8),
    Delete(usize, usize),
    Txn(Vec<TxnOp>),
    /// Several writes in one backend batch.
    Batch(Vec<(usize, u8)>),
    /// Range at `current + 1 - back` (so 0 reads the future, large values the past).
    Range {
        key: usize,
        end: usize,
        back: i64,
        limit: usize,
    },
    /// Compact at `current + 1 - back`.
    Compact {
        back: i64,
        wait: bool,
    },
    /// Write into a batch and drop it uncommitted, then reopen.
    Crash(Vec<(usize, u8)>),
    Reopen,
}

/// `end` index: 0 = single key, 1 = "\0" (from key), else KEYS[end - 2] as range end.
fn range_end(end: usize) -> &'static [u8] {
    match end {
        0 => b"",
        1 => b"\0",
        n => KEYS[(n - 2) % KEYS.len()],
    }
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        e => k >= key && k < e,
    }
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (0..KEYS.len(), any::<u8>()).prop_map(|(k, v)| TxnOp::Put(k, v)),
        (0..KEYS.len(), 0..KEYS.len() + 2).prop_map(|(k, e)| TxnOp::Delete(k, e)),
        (0..KEYS.len(), 0..KEYS.len() + 2).prop_map(|(k, e)| TxnOp::Range(k, e)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS.len(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0..KEYS.len(), 0..KEYS.len() + 2).prop_map(|(k, e)| Op::Delete(k, e)),
        2 => proptest::collection::vec(txn_op(), 0..5).prop_map(Op::Txn),
        1 => proptest::collection::vec((0..KEYS.len(), any::<u8>()), 1..5).prop_map(Op::Batch),
        5 => (0..KEYS.len(), 0..KEYS.len() + 2, 0i64..12, 0usize..3)
            .prop_map(|(key, end, back, limit)| Op::Range { key, end, back, limit }),
        1 => (0i64..10, any::<bool>()).prop_map(|(back, wait)| Op::Compact { back, wait }),
        1 => proptest::collection::vec((0..KEYS.len(), any::<u8>()), 1..3).prop_map(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// Every state of the store, by revision: `states[rev - 1]`.
struct Model {
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compact: i64,
}

impl Model {
    fn current(&self) -> i64 {
        self.states.len() as i64
    }

    fn put(state: &mut BTreeMap<Vec<u8>, KeyValue>, rev: i64, key: &[u8], value: u8) {
        let (create, version) = match state.get(key) {
            Some(kv) => (kv.create_revision, kv.version + 1),
            None => (rev, 1),
        };
        state.insert(
            key.to_vec(),
            KeyValue {
                key: key.to_vec(),
                create_revision: create,
                mod_revision: rev,
                version,
                value: vec![value],
                lease: 0,
            },
        );
    }

    fn delete(state: &mut BTreeMap<Vec<u8>, KeyValue>, key: &[u8], end: &[u8]) -> usize {
        let doomed: Vec<Vec<u8>> = state
            .keys()
            .filter(|k| in_range(k, key, end))
            .cloned()
            .collect();
        for k in &doomed {
            state.remove(k);
        }
        doomed.len()
    }

    fn range(state: &BTreeMap<Vec<u8>, KeyValue>, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
        state
            .values()
            .filter(|kv| in_range(&kv.key, key, end))
            .cloned()
            .collect()
    }

    /// Applies a transaction; returns whether it changed anything.
    fn apply(&mut self, state: BTreeMap<Vec<u8>, KeyValue>, changed: bool) {
        if changed {
            self.states.push(state);
        }
    }
}

fn opts() -> StoreOptions {
    StoreOptions {
        compaction_batch_limit: 3,
        compaction_batch_interval: std::time::Duration::ZERO,
        // Closing is a crash: nothing is flushed, RocksDB replays its WAL on open.
        flush_on_close: false,
        ..Default::default()
    }
}

fn check_range(
    store_result: Result<etcd_mvcc::RangeResult, Error>,
    model: &Model,
    key: &[u8],
    end: &[u8],
    rev: i64,
    limit: usize,
) {
    let current = model.current();
    if rev > current {
        assert!(
            matches!(store_result, Err(Error::FutureRev)),
            "rev {rev} > {current}: {store_result:?}"
        );
        return;
    }
    let read_at = if rev <= 0 { current } else { rev };
    if read_at < model.compact {
        assert!(
            matches!(store_result, Err(Error::Compacted)),
            "rev {rev} < {}: {store_result:?}",
            model.compact
        );
        return;
    }
    let r = store_result.unwrap_or_else(|e| panic!("range {key:?}..{end:?} at {rev}: {e}"));
    let want = Model::range(&model.states[(read_at - 1) as usize], key, end);
    assert_eq!(r.rev, read_at);
    assert_eq!(
        r.count,
        want.len(),
        "count of {key:?}..{end:?} at {read_at}"
    );
    let take = if limit == 0 {
        want.len()
    } else {
        limit.min(want.len())
    };
    assert_eq!(
        r.kvs,
        want[..take].to_vec(),
        "kvs of {key:?}..{end:?} at {read_at}"
    );
}

/// Reads everything at every readable revision.
fn check_all(store: &Store, model: &Model) {
    assert_eq!(store.current_revision(), model.current());
    let first = model.compact.max(1);
    for rev in first..=model.current() {
        let r = store.range(
            b"\0",
            b"\0",
            RangeOptions {
                rev,
                ..Default::default()
            },
        );
        check_range(r, model, b"\0", b"\0", rev, 0);
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Some(Store::open_with(dir.path(), opts()).unwrap());
    let mut model = Model {
        states: vec![BTreeMap::new()],
        compact: -1,
    };
    for op in ops {
        let s = store.as_ref().unwrap();
        match op {
            Op::Put(k, v) => {
                let r = s.put(KEYS[k], &[v], 0).unwrap();
                let mut st = model.states.last().unwrap().clone();
                Model::put(&mut st, model.current() + 1, KEYS[k], v);
                model.apply(st, true);
                assert_eq!(r.revision, model.current());
            }
            Op::Delete(k, e) => {
                let r = s.delete_range(KEYS[k], range_end(e)).unwrap();
                let mut st = model.states.last().unwrap().clone();
                let n = Model::delete(&mut st, KEYS[k], range_end(e));
                assert_eq!(r.events.len(), n);
                model.apply(st, n > 0);
                assert_eq!(r.revision, model.current());
            }
            Op::Txn(tops) => {
                let mut b = s.batch().unwrap();
                let mut t = b.txn();
                let rev = model.current() + 1;
                let mut st = model.states.last().unwrap().clone();
                let mut changed = false;
                for top in tops {
                    match top {
                        TxnOp::Put(k, v) => {
                            t.put(KEYS[k], &[v], 0).unwrap();
                            Model::put(&mut st, rev, KEYS[k], v);
                            changed = true;
                        }
                        TxnOp::Delete(k, e) => {
                            let n = t.delete_range(KEYS[k], range_end(e)).unwrap().len();
                            assert_eq!(n, Model::delete(&mut st, KEYS[k], range_end(e)));
                            changed |= n > 0;
                        }
                        TxnOp::Range(k, e) => {
                            let r = t
                                .range(KEYS[k], range_end(e), RangeOptions::default())
                                .unwrap();
                            assert_eq!(
                                r.kvs,
                                Model::range(&st, KEYS[k], range_end(e)),
                                "read own writes"
                            );
                        }
                    }
                }
                let res = t.end();
                b.commit().unwrap();
                model.apply(st, changed);
                assert_eq!(res.revision, model.current());
            }
            Op::Batch(puts) => {
                let mut b = s.batch().unwrap();
                for (k, v) in puts {
                    b.put(KEYS[k], &[v], 0).unwrap();
                    let mut st = model.states.last().unwrap().clone();
                    Model::put(&mut st, model.current() + 1, KEYS[k], v);
                    model.apply(st, true);
                }
                assert_eq!(b.commit().unwrap(), model.current());
            }
            Op::Range {
                key,
                end,
                back,
                limit,
            } => {
                let rev = model.current() + 1 - back;
                let r = s.range(
                    KEYS[key],
                    range_end(end),
                    RangeOptions {
                        rev,
                        limit,
                        ..Default::default()
                    },
                );
                check_range(r, &model, KEYS[key], range_end(end), rev, limit);
            }
            Op::Compact { back, wait } => {
                let rev = model.current() + 1 - back;
                match s.compact(rev) {
                    Ok(h) => {
                        assert!(
                            rev > model.compact && rev <= model.current(),
                            "compact at {rev} accepted"
                        );
                        model.compact = rev;
                        if wait {
                            h.wait().unwrap();
                        }
                    }
                    Err(Error::Compacted) => assert!(rev <= model.compact),
                    Err(Error::FutureRev) => assert!(rev > model.current()),
                    Err(e) => panic!("compact: {e}"),
                }
            }
            Op::Crash(puts) => {
                let mut b = s.batch().unwrap();
                for (k, v) in puts {
                    b.put(KEYS[k], &[v], 0).unwrap();
                }
                drop(b);
                assert!(matches!(s.batch(), Err(Error::Poisoned)));
                drop(store.take());
                store = Some(Store::open_with(dir.path(), opts()).unwrap());
                check_all(store.as_ref().unwrap(), &model);
            }
            Op::Reopen => {
                let before = s.hash_kv(0).unwrap();
                drop(store.take());
                let s = Store::open_with(dir.path(), opts()).unwrap();
                assert_eq!(s.compact_revision(), model.compact);
                let after = s.hash_kv(0).unwrap();
                assert_eq!(before.hash, after.hash, "hash_kv across reopen");
                check_all(&s, &model);
                store = Some(s);
            }
        }
    }
    check_all(store.as_ref().unwrap(), &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_a_model_that_keeps_every_version(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
