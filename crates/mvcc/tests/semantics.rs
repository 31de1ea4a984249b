//! The store's promises, pinned to etcd's numbers: revisions, versions, range rules,
//! compaction, events, the consistent index, persistence.

// Test helpers outside #[test] fns unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_mvcc::{
    Bucket, ConsistentIndex, Error, Event, EventType, Observer, RangeOptions, Store, StoreOptions,
};

fn at(rev: i64) -> RangeOptions {
    RangeOptions {
        rev,
        ..Default::default()
    }
}

fn values(store: &Store, key: &[u8], end: &[u8], rev: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .range(key, end, at(rev))
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

#[test]
fn empty_store_is_at_revision_one_and_first_write_gets_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.compact_revision(), -1);
    let r = store.range(b"a", b"", RangeOptions::default()).unwrap();
    assert_eq!((r.count, r.rev), (0, 1));
    assert_eq!(store.put(b"a", b"1", 0).unwrap().revision, 2);
    assert_eq!(store.put(b"b", b"1", 0).unwrap().revision, 3);
}

#[test]
fn version_counts_puts_and_restarts_after_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(b"k", b"1", 0).unwrap(); // 2
    store.put(b"k", b"2", 0).unwrap(); // 3
    let kv = &store.range(b"k", b"", at(0)).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let d = store.delete_range(b"k", b"").unwrap(); // 4
    assert_eq!(d.revision, 4);
    assert_eq!(store.range(b"k", b"", at(0)).unwrap().count, 0);
    store.put(b"k", b"3", 0).unwrap(); // 5
    let kv = &store.range(b"k", b"", at(0)).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    // History stays readable.
    let old = &store.range(b"k", b"", at(3)).unwrap().kvs[0];
    assert_eq!((old.value.as_slice(), old.version), (&b"2"[..], 2));
    assert_eq!(store.range(b"k", b"", at(4)).unwrap().count, 0);
}

#[test]
fn delete_of_nothing_and_read_only_txn_do_not_bump_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(b"a", b"1", 0).unwrap();
    let r = store.delete_range(b"zzz", b"").unwrap();
    assert_eq!((r.revision, r.events.len()), (2, 0));
    let mut b = store.batch().unwrap();
    let t = b.txn();
    assert_eq!(
        t.range(b"a", b"", RangeOptions::default()).unwrap().count,
        1
    );
    assert_eq!(t.end().revision, 2);
    assert_eq!(b.commit().unwrap(), 2);
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn range_end_rules_limit_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for k in [&b"a"[..], b"b", b"c", b"d"] {
        store.put(k, k, 0).unwrap();
    }
    assert_eq!(values(&store, b"b", b"", 0).len(), 1);
    assert_eq!(values(&store, b"b", b"\0", 0).len(), 3);
    assert_eq!(values(&store, b"\0", b"\0", 0).len(), 4);
    assert_eq!(values(&store, b"a", b"c", 0).len(), 2);
    assert!(values(&store, b"c", b"a", 0).is_empty());
    let r = store
        .range(
            b"a",
            b"\0",
            RangeOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (r.kvs.len(), r.count),
        (2, 4),
        "count is the total: more = count > len"
    );
    let r = store
        .range(
            b"a",
            b"\0",
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 4));
    let r = store
        .range(
            b"a",
            b"",
            RangeOptions {
                keys_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (r.kvs[0].key.as_slice(), r.kvs[0].value.len()),
        (&b"a"[..], 0)
    );
    assert_eq!(r.kvs[0].mod_revision, 2);
}

#[test]
fn reads_at_compacted_and_future_revisions_fail_with_etcd_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..5 {
        store.put(b"k", format!("{i}").as_bytes(), 0).unwrap(); // revs 2..=6
    }
    let e = store.range(b"k", b"", at(7)).unwrap_err();
    assert!(matches!(e, Error::FutureRev));
    assert_eq!(
        e.to_string(),
        "mvcc: required revision is a future revision"
    );
    store.compact(4).unwrap().wait().unwrap();
    let e = store.range(b"k", b"", at(3)).unwrap_err();
    assert!(matches!(e, Error::Compacted));
    assert_eq!(e.to_string(), "mvcc: required revision has been compacted");
    // Compacting at N keeps N readable.
    assert_eq!(
        values(&store, b"k", b"", 4),
        vec![(b"k".to_vec(), b"2".to_vec())]
    );
    assert!(matches!(store.compact(4), Err(Error::Compacted)));
    assert!(matches!(store.compact(3), Err(Error::Compacted)));
    assert!(matches!(store.compact(7), Err(Error::FutureRev)));
    store.compact(6).unwrap().wait().unwrap();
    assert_eq!(store.compact_revision(), 6);
    assert_eq!(
        values(&store, b"k", b"", 6),
        vec![(b"k".to_vec(), b"4".to_vec())]
    );
}

#[test]
fn txn_holds_one_revision_and_reads_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(b"a", b"0", 0).unwrap(); // 2
    let mut b = store.batch().unwrap();
    let mut t = b.txn();
    assert_eq!(t.rev(), 2);
    let prev = t.put(b"a", b"1", 0).unwrap().unwrap();
    assert_eq!(prev.value, b"0");
    t.put(b"b", b"1", 0).unwrap();
    let r = t.range(b"a", b"c", RangeOptions::default()).unwrap();
    assert_eq!(r.rev, 3);
    assert_eq!(r.count, 2);
    let deleted = t.delete_range(b"b", b"").unwrap();
    assert_eq!(deleted.len(), 1, "a txn deletes its own earlier put");
    t.put(b"a", b"2", 0).unwrap();
    let res = t.end();
    assert_eq!(res.revision, 3);
    let kinds: Vec<i32> = res.events.iter().map(|e| e.r#type).collect();
    let (put, del) = (EventType::Put as i32, EventType::Delete as i32);
    assert_eq!(kinds, vec![put, put, del, put]);
    // Not visible outside the batch before commit.
    assert_eq!(
        values(&store, b"a", b"", 0),
        vec![(b"a".to_vec(), b"0".to_vec())]
    );
    b.commit().unwrap();
    let kv = &store.range(b"a", b"", at(0)).unwrap().kvs[0];
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.version),
        (&b"2"[..], 3, 3)
    );
    assert_eq!(store.range(b"b", b"", at(0)).unwrap().count, 0);
}

#[test]
fn events_carry_prev_kv_and_reach_the_observer_in_order() {
    struct Collect(Mutex<Vec<(i64, Vec<Event>)>>);
    impl Observer for Collect {
        fn on_commit(&self, revision: i64, events: &[Event]) {
            self.0.lock().unwrap().push((revision, events.to_vec()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let obs = Arc::new(Collect(Mutex::new(Vec::new())));
    store.set_observer(obs.clone());
    let r = store.put(b"k", b"1", 7).unwrap();
    assert!(r.events[0].prev_kv.is_none());
    let r = store.put(b"k", b"2", 0).unwrap();
    let prev = r.events[0].prev_kv.as_ref().unwrap();
    assert_eq!((prev.value.as_slice(), prev.lease), (&b"1"[..], 7));
    let r = store.delete_range(b"k", b"").unwrap();
    let e = &r.events[0];
    assert_eq!(e.r#type, EventType::Delete as i32);
    let kv = e.kv.as_ref().unwrap();
    assert_eq!((kv.key.as_slice(), kv.mod_revision), (&b"k"[..], 4));
    assert_eq!(e.prev_kv.as_ref().unwrap().value, b"2");
    store.delete_range(b"nothing", b"").unwrap();
    let seen = obs.0.lock().unwrap();
    let revs: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, vec![2, 3, 4], "empty batches are not reported");
}

#[test]
fn committed_data_and_consistent_index_survive_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut b = store.batch().unwrap();
        for i in 0..100u32 {
            b.put(&i.to_be_bytes(), b"v", 0).unwrap();
        }
        b.delete_range(&5u32.to_be_bytes(), b"").unwrap();
        b.put_raw(Bucket::Lease, b"lease1", b"x").unwrap();
        b.set_consistent_index(ConsistentIndex { index: 42, term: 3 });
        b.commit().unwrap();
        store.compact(50).unwrap().wait().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_revision(), 102);
    assert_eq!(store.compact_revision(), 50);
    assert_eq!(
        store.consistent_index(),
        ConsistentIndex { index: 42, term: 3 }
    );
    assert_eq!(store.range(b"\0", b"\0", at(0)).unwrap().count, 99);
    assert_eq!(
        store.backend().get(Bucket::Lease, b"lease1").unwrap(),
        Some(b"x".to_vec())
    );
    assert!(matches!(
        store.range(b"\0", b"\0", at(49)),
        Err(Error::Compacted)
    ));
    assert_eq!(store.range(b"\0", b"\0", at(50)).unwrap().count, 49);
    assert_eq!(store.put(b"new", b"v", 0).unwrap().revision, 103);
}

#[test]
fn compaction_of_trailing_tombstones_keeps_the_current_revision_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put(b"a", b"1", 0).unwrap(); // 2
        store.delete_range(b"a", b"").unwrap(); // 3
        store.compact(3).unwrap().wait().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_revision(), 3);
    assert_eq!(store.index_len(), 0);
    assert_eq!(store.put(b"a", b"2", 0).unwrap().revision, 4);
}

#[test]
fn physical_compaction_deletes_old_revisions_and_keeps_hash_kv_stable() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        compaction_batch_limit: 7,
        compaction_batch_interval: Duration::ZERO,
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), opts).unwrap();
    for i in 0..50 {
        store
            .put(format!("k{}", i % 5).as_bytes(), b"v", 0)
            .unwrap(); // revs 2..=51
    }
    store.delete_range(b"k0", b"").unwrap(); // 52
    let before = store.hash_kv(0).unwrap();
    let at40 = store.hash_kv(40).unwrap();
    let h = store.compact(40).unwrap();
    h.wait().unwrap();
    let after = store.hash_kv(0).unwrap();
    assert_eq!(after.revision, 52);
    assert_ne!(before.hash, after.hash, "compaction removed history");
    // hash_kv at a revision is the same whether or not the physical compaction ran.
    assert_eq!(store.hash_kv(52).unwrap().hash, after.hash);
    assert_eq!(at40.revision, 40);
    // Revisions left on disk: 5 kept at <= 40 and the 11 after 40 (+ the tombstone).
    let tx = store.backend().read();
    let mut it = tx.iter(Bucket::Key);
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        n += 1;
        it.next();
    }
    assert_eq!(n, 5 + 11 + 1);
    drop(it);
    drop(tx);
    // Reopen computes the same hash.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.hash_kv(0).unwrap().hash, after.hash);
    assert!(matches!(store.hash_kv(39), Err(Error::Compacted)));
    assert!(matches!(store.hash_kv(53), Err(Error::FutureRev)));
}

#[test]
fn interrupted_compaction_resumes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let slow = StoreOptions {
        compaction_batch_limit: 10,
        compaction_batch_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let expected;
    {
        let store = Store::open_with(dir.path(), slow.clone()).unwrap();
        for i in 0..200 {
            store
                .put(
                    format!("k{}", i % 3).as_bytes(),
                    format!("{i}").as_bytes(),
                    0,
                )
                .unwrap();
        }
        let h = store.compact(190).unwrap();
        expected = store.range(b"\0", b"\0", at(190)).unwrap();
        drop(store); // stops the compactor between two batches
        assert!(matches!(h.wait(), Err(Error::CompactionInterrupted)));
    }
    {
        let backend = etcd_mvcc::Backend::open(dir.path(), &Default::default()).unwrap();
        let scheduled = backend.get(Bucket::Meta, b"scheduledCompactRev").unwrap();
        let finished = backend.get(Bucket::Meta, b"finishedCompactRev").unwrap();
        assert!(scheduled.is_some());
        assert!(finished.is_none(), "the compaction was interrupted");
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.compact_revision(), 190);
    assert_eq!(store.range(b"\0", b"\0", at(190)).unwrap(), expected);
    assert!(matches!(
        store.range(b"\0", b"\0", at(189)),
        Err(Error::Compacted)
    ));
    // The resumed compaction finishes in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let finished = store
            .backend()
            .get(Bucket::Meta, b"finishedCompactRev")
            .unwrap();
        if finished.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "resumed compaction never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dropping_an_uncommitted_batch_poisons_writes_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put(b"a", b"1", 0).unwrap();
        // An empty batch may be dropped freely.
        drop(store.batch().unwrap());
        let mut b = store.batch().unwrap();
        b.put(b"b", b"1", 0).unwrap();
        drop(b);
        assert!(matches!(store.batch(), Err(Error::Poisoned)));
        // Reads still see the committed state only.
        assert_eq!(store.range(b"\0", b"\0", at(0)).unwrap().count, 1);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.put(b"b", b"2", 0).unwrap().revision, 3);
}

#[test]
fn the_key_bucket_is_written_only_through_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut b = store.batch().unwrap();
    assert!(matches!(
        b.put_raw(Bucket::Key, b"x", b"y"),
        Err(Error::ReservedBucket)
    ));
    assert!(matches!(
        b.delete_raw(Bucket::Key, b"x"),
        Err(Error::ReservedBucket)
    ));
    b.commit().unwrap();
}

#[test]
fn leased_keys_lists_live_keys_with_leases() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(b"a", b"1", 10).unwrap();
    store.put(b"b", b"1", 0).unwrap();
    store.put(b"c", b"1", 11).unwrap();
    store.delete_range(b"c", b"").unwrap();
    assert_eq!(store.leased_keys().unwrap(), vec![(b"a".to_vec(), 10)]);
}

#[test]
fn checkpoint_opens_as_a_store_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    for i in 0..20 {
        store.put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
    }
    store.backend().checkpoint(dir.path().join("cp")).unwrap();
    store.put(b"after", b"v", 0).unwrap();
    let cp = Store::open(dir.path().join("cp")).unwrap();
    assert_eq!(cp.current_revision(), 21);
    assert_eq!(
        cp.hash_kv(21).unwrap(),
        store
            .hash_kv(21)
            .map(|mut h| {
                h.current_revision = 21;
                h
            })
            .unwrap()
    );
}

#[test]
fn readers_run_concurrently_with_the_writer_and_see_committed_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0..300u32 {
                let mut b = store.batch().unwrap();
                // Each batch writes two keys with the same value: readers must never see
                // one without the other.
                b.put(b"x", &i.to_be_bytes(), 0).unwrap();
                b.put(b"y", &i.to_be_bytes(), 0).unwrap();
                b.commit().unwrap();
                if i % 50 == 0 {
                    let rev = store.current_revision() - 10;
                    if rev > store.compact_revision() {
                        store.compact(rev).unwrap();
                    }
                }
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() && reads < 100_000 {
        match store.range(b"x", b"z", RangeOptions::default()) {
            Ok(r) if r.count == 2 => assert_eq!(r.kvs[0].value, r.kvs[1].value),
            Ok(r) => assert_eq!(r.count, 0),
            Err(e) => panic!("{e}"),
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(store.current_revision(), 601);
}
