//! `Store::restore_from`: a store replaced by a checkpoint of another reads exactly like it.

use etcd_mvcc::{Bucket, ConsistentIndex, RangeOptions, Store};

#[test]
fn restore_replaces_every_bucket_the_index_and_the_revisions() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let cp = src_dir.path().join("checkpoint");
    {
        let src = Store::open(src_dir.path().join("db")).unwrap();
        let mut b = src.batch().unwrap();
        b.put(b"a", b"1", 0).unwrap();
        b.put(b"b", b"2", 0).unwrap();
        b.put(b"a", b"3", 0).unwrap();
        b.delete_range(b"b", b"").unwrap();
        b.put_raw(Bucket::Members, b"m1", b"member").unwrap();
        b.set_consistent_index(ConsistentIndex { index: 42, term: 3 });
        b.commit().unwrap();
        src.backend().checkpoint(&cp).unwrap();
    }
    let dst = Store::open(dst_dir.path()).unwrap();
    let mut b = dst.batch().unwrap();
    for i in 0..100 {
        b.put(format!("old{i}").as_bytes(), b"x", 0).unwrap();
    }
    b.put_raw(Bucket::Members, b"stale", b"member").unwrap();
    b.set_consistent_index(ConsistentIndex { index: 7, term: 1 });
    b.commit().unwrap();

    dst.restore_from(&cp).unwrap();

    assert_eq!(dst.current_revision(), 5);
    assert_eq!(
        dst.consistent_index(),
        ConsistentIndex { index: 42, term: 3 }
    );
    let all = dst.range(b"\0", b"\0", RangeOptions::default()).unwrap();
    assert_eq!(all.kvs.len(), 1);
    assert_eq!(
        (all.kvs[0].key.as_slice(), all.kvs[0].value.as_slice()),
        (&b"a"[..], &b"3"[..])
    );
    let old = dst
        .range(
            b"b",
            b"",
            RangeOptions {
                rev: 3,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(old.kvs[0].value, b"2");
    assert_eq!(dst.backend().get(Bucket::Members, b"stale").unwrap(), None);
    assert_eq!(
        dst.backend()
            .get(Bucket::Members, b"m1")
            .unwrap()
            .as_deref(),
        Some(&b"member"[..])
    );
    // Writes continue from the restored revision.
    let r = dst.put(b"c", b"4", 0).unwrap();
    assert_eq!(r.revision, 6);
    drop(dst);
    let reopened = Store::open(dst_dir.path()).unwrap();
    assert_eq!(reopened.current_revision(), 6);
    assert_eq!(reopened.consistent_index().index, 42);
}
