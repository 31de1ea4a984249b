//! The three delivery guarantees of the issue, one test each, over one scenario that
//! mixes every path: history pages smaller than a transaction, live commits of several
//! transactions, and a consumer slow enough to make its watcher a victim again and again.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use etcd_mvcc::Store;
use etcd_watch::{WatchOptions, WatchRequest, WatchResponse, WatchableStore};

/// Events per transaction: more than a history page (`sync_batch_events`).
const TXN: u32 = 7;

/// Runs the scenario and returns every response of the one watcher, plus the store's
/// final revision. History: revisions 2..=31 (30 transactions of 7 puts); then 60 more
/// transactions committed 3 per batch while the consumer reads one response every few
/// commits from a channel of capacity 1.
fn scenario() -> (Vec<WatchResponse>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let txn = |b: &mut etcd_mvcc::Batch<'_>, n: u32| {
        let mut t = b.txn();
        for j in 0..TXN {
            t.put(format!("k/{n:03}/{j}").as_bytes(), b"v", 0).unwrap();
        }
        t.end();
    };
    for n in 0..30 {
        let mut b = store.batch().unwrap();
        txn(&mut b, n);
        b.commit().unwrap();
    }
    let ws = WatchableStore::new(
        store.clone(),
        WatchOptions {
            chan_capacity: 1,
            sync_batch_events: 5,
            victim_retry: Duration::from_millis(1),
            sync_interval: Duration::from_millis(1),
            ..WatchOptions::default()
        },
    );
    let mut s = ws.watch_stream();
    s.watch(WatchRequest {
        key: b"k/".to_vec(),
        range_end: b"k0".to_vec(),
        start_rev: 2,
        ..Default::default()
    })
    .unwrap();
    let mut out = Vec::new();
    for n in 30..90 {
        if n % 3 == 0 {
            let mut b = store.batch().unwrap();
            for m in n..n + 3 {
                txn(&mut b, m);
            }
            b.commit().unwrap();
        }
        if n % 4 == 0 {
            if let Some(r) = s.try_recv() {
                out.push(r);
            }
        }
    }
    let want = 90 * TXN as usize;
    let mut got: usize = out.iter().map(|r| r.events.len()).sum();
    while got < want {
        let r = s
            .recv_timeout(Duration::from_secs(20))
            .expect("every event arrives");
        got += r.events.len();
        out.push(r);
    }
    assert_eq!(got, want);
    (out, store.current_revision())
}

fn revs(r: &WatchResponse) -> Vec<i64> {
    r.events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect()
}

#[test]
fn events_arrive_in_revision_order() {
    let (resps, _) = scenario();
    let all: Vec<i64> = resps.iter().flat_map(revs).collect();
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    for r in &resps {
        assert!(r.revision >= *revs(r).last().unwrap());
    }
}

#[test]
fn no_revision_is_skipped() {
    let (resps, current) = scenario();
    let mut all: Vec<i64> = resps.iter().flat_map(revs).collect();
    all.dedup();
    assert_eq!(all, (2..=current).collect::<Vec<_>>());
}

#[test]
fn a_revision_is_never_split_across_responses() {
    let (resps, _) = scenario();
    for pair in resps.windows(2) {
        let (a, b) = (revs(&pair[0]), revs(&pair[1]));
        assert!(a.last() < b.first(), "revision split: {a:?} then {b:?}");
    }
    for r in &resps {
        for rev in revs(r) {
            let n = revs(r).iter().filter(|x| **x == rev).count();
            assert_eq!(n, TXN as usize, "revision {rev} is whole");
        }
    }
}
