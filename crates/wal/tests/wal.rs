//! The WAL's promises: round trip, overwrite, segments, CRC hand-over, locking,
//! release, metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use etcd_proto::raftpb::{ConfState, HardState};
use etcd_proto::walpb;
use etcd_wal::{must_sync, verify, Error, Wal};

fn marker(index: u64, term: u64) -> walpb::Snapshot {
    walpb::Snapshot {
        index,
        term,
        conf_state: Some(ConfState {
            voters: vec![1],
            ..Default::default()
        }),
    }
}

#[test]
fn saved_entries_and_state_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"meta").unwrap();
    let ents: Vec<_> = (1..=10).map(|i| entry(i, 1, 100)).collect();
    w.save(&state(1, 5), &ents[..5]).unwrap();
    w.save(&state(1, 10), &ents[5..]).unwrap();
    w.close().unwrap();
    let mut w = Wal::open(&dir, walpb::Snapshot::default()).unwrap();
    let c = w.read_all().unwrap();
    assert_eq!(c.metadata, b"meta");
    assert_eq!(c.hard_state, state(1, 10));
    assert_eq!(c.entries, ents);
    assert!(matches!(w.read_all(), Err(Error::AlreadyRead)));
    // Appending continues after the replayed tail.
    w.save(&state(1, 11), &[entry(11, 1, 10)]).unwrap();
    drop(w);
    let mut w = Wal::open(&dir, walpb::Snapshot::default()).unwrap();
    assert_eq!(w.read_all().unwrap().entries.len(), 11);
}

#[test]
fn later_entries_at_an_index_replace_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"").unwrap();
    w.save(
        &state(1, 2),
        &(1..=5).map(|i| entry(i, 1, 8)).collect::<Vec<_>>(),
    )
    .unwrap();
    // A new leader overwrites from index 3.
    let new = [entry(3, 2, 9), entry(4, 2, 9)];
    w.save(&state(2, 2), &new).unwrap();
    drop(w);
    let mut w = Wal::open(&dir, walpb::Snapshot::default()).unwrap();
    let c = w.read_all().unwrap();
    assert_eq!(
        c.entries,
        vec![
            entry(1, 1, 8),
            entry(2, 1, 8),
            entry(3, 2, 9),
            entry(4, 2, 9)
        ]
    );
    assert_eq!(w.last_index(), 4);
}

#[test]
fn a_gap_in_a_batch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Wal::create(tmp.path().join("wal"), b"").unwrap();
    assert!(matches!(
        w.save(&state(1, 0), &[entry(2, 1, 1)]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        w.save(&state(1, 0), &[entry(1, 1, 1), entry(3, 1, 1)]),
        Err(Error::InvalidArgument(_))
    ));
    w.save(&state(1, 0), &[entry(1, 1, 1)]).unwrap();
}

#[test]
fn open_at_a_snapshot_marker_returns_entries_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"m").unwrap();
    w.save(
        &state(1, 10),
        &(1..=10).map(|i| entry(i, 1, 20)).collect::<Vec<_>>(),
    )
    .unwrap();
    w.save_snapshot(&marker(6, 1)).unwrap();
    drop(w);
    let mut w = Wal::open(&dir, marker(6, 1)).unwrap();
    let c = w.read_all().unwrap();
    assert_eq!(
        c.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    drop(w);
    // A marker that was never saved, or has another term, is an error.
    assert!(matches!(
        Wal::open(&dir, marker(5, 1)),
        Err(Error::SnapshotNotFound { index: 5, term: 1 })
    ));
    assert!(matches!(
        Wal::open(&dir, marker(6, 2)),
        Err(Error::SnapshotMismatch { .. })
    ));
}

#[test]
fn segments_are_cut_at_the_size_limit_and_replay_across_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create_with(&dir, b"meta", small(4096)).unwrap();
    let ents: Vec<_> = (1..=200).map(|i| entry(i, 1, 100)).collect();
    for chunk in ents.chunks(3) {
        w.save(&state(1, chunk[0].index), chunk).unwrap();
    }
    let segs = w.segments().to_vec();
    assert!(segs.len() > 4, "{segs:?}");
    for pair in segs.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert!(pair[1].first_index > pair[0].first_index);
    }
    drop(w);
    let files = segment_files(&dir);
    assert_eq!(files.len(), segs.len());
    // Finished segments carry no preallocated tail; no temporary file is left behind.
    for f in &files[..files.len() - 1] {
        assert!(std::fs::metadata(f).unwrap().len() < 4096 + 400);
    }
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    let mut w = Wal::open_with(&dir, walpb::Snapshot::default(), small(4096)).unwrap();
    assert_eq!(w.read_all().unwrap().entries, ents);
}

#[test]
fn crc_is_handed_over_between_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create_with(&dir, b"meta", small(1 << 20)).unwrap();
    w.save(&state(1, 1), &[entry(1, 1, 50)]).unwrap();
    w.cut().unwrap();
    w.save(&state(1, 2), &[entry(2, 1, 50)]).unwrap();
    drop(w);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 2);
    let first = std::fs::read(&files[0]).unwrap();
    let second = std::fs::read(&files[1]).unwrap();
    let (recs0, _) = etcd_wal::decoder::decode_all(&first);
    let (recs1, _) = etcd_wal::decoder::decode_all(&second);
    // The second segment opens with a CRC record holding the first segment's final CRC.
    assert_eq!(recs1[0].kind, etcd_wal::RecordType::Crc);
    assert_eq!(recs1[0].crc, recs0.last().unwrap().crc);
    assert_eq!(recs1[1].kind, etcd_wal::RecordType::Metadata);
    // Changing the hand-over value breaks the chain and is reported with file and offset.
    let mut bad = second.clone();
    let (_, last) = etcd_wal::decoder::decode_all(&bad[..0]);
    assert!(matches!(last, etcd_wal::decoder::Step::End { offset: 0 }));
    bad[11] ^= 0x01; // inside the CRC record's crc varint (header 8 bytes, 08 04 10 ..)
    std::fs::write(&files[1], &bad).unwrap();
    match Wal::open(&dir, walpb::Snapshot::default()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, files[1]);
            assert_eq!(offset, 0);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(verify(&dir, &walpb::Snapshot::default()).is_err());
}

#[test]
fn release_removes_old_segments_but_keeps_the_one_holding_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create_with(&dir, b"meta", small(1 << 20)).unwrap();
    for i in 1..=10 {
        w.save(&state(1, i), &[entry(i, 1, 10)]).unwrap();
        w.cut().unwrap();
    }
    // Segments now start at 0, 2, 3, ..., 11.
    let before = segment_files(&dir).len();
    assert_eq!(before, 11);
    w.save_snapshot(&marker(7, 1)).unwrap();
    let removed = w.release_to(7).unwrap();
    // Kept: the segment named 7 (holds entry 7) and the one before it, and all later.
    assert_eq!(w.segments().first().unwrap().first_index, 6);
    assert_eq!(removed, before - segment_files(&dir).len());
    drop(w);
    let mut w = Wal::open_with(&dir, marker(7, 1), small(1 << 20)).unwrap();
    let c = w.read_all().unwrap();
    assert_eq!(
        c.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    // Releasing past the end keeps the tail.
    assert!(w.release_to(1000).unwrap() > 0);
    assert_eq!(segment_files(&dir).len(), 1);
    w.save(&state(1, 11), &[entry(11, 1, 10)]).unwrap();
}

#[test]
fn a_second_open_of_a_locked_wal_fails_instead_of_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let w = Wal::create(&dir, b"").unwrap();
    assert!(matches!(
        Wal::open(&dir, walpb::Snapshot::default()),
        Err(Error::Locked(_))
    ));
    // Read-only access needs no lock.
    assert!(Wal::open_for_read(&dir, walpb::Snapshot::default())
        .unwrap()
        .read_all()
        .is_ok());
    drop(w);
    let w = Wal::open(&dir, walpb::Snapshot::default()).unwrap();
    assert!(matches!(
        Wal::open(&dir, walpb::Snapshot::default()),
        Err(Error::Locked(_))
    ));
    drop(w);
}

#[test]
fn create_is_atomic_and_refuses_an_existing_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    // A leftover half-built directory from a crash is discarded.
    std::fs::create_dir_all(tmp.path().join("wal.tmp")).unwrap();
    std::fs::write(tmp.path().join("wal.tmp/junk"), b"x").unwrap();
    let w = Wal::create(&dir, b"m").unwrap();
    assert!(!tmp.path().join("wal.tmp").exists());
    assert_eq!(segment_files(&dir).len(), 1);
    drop(w);
    assert!(matches!(
        Wal::create(&dir, b"m"),
        Err(Error::AlreadyExists(_))
    ));
}

#[test]
fn one_entry_per_save_costs_one_fdatasync() {
    let tmp = tempfile::tempdir().unwrap();
    let (opts, c) = counting(64 << 20);
    let mut w = Wal::create_with(tmp.path().join("wal"), b"", opts).unwrap();
    let base = c.fsyncs.load(Ordering::Relaxed);
    for i in 1..=50 {
        w.save(&state(1, i - 1), &[entry(i, 1, 256)]).unwrap();
    }
    assert_eq!(c.fsyncs.load(Ordering::Relaxed) - base, 50);
    // A batch of 256 entries is one write and one fdatasync as well.
    let batch: Vec<_> = (51..=306).map(|i| entry(i, 1, 256)).collect();
    w.save(&state(1, 50), &batch).unwrap();
    assert_eq!(c.fsyncs.load(Ordering::Relaxed) - base, 51);
    // A commit-only change needs no sync (raft's rule); neither does an empty save.
    w.save(&state(1, 300), &[]).unwrap();
    w.save(&HardState::default(), &[]).unwrap();
    assert_eq!(c.fsyncs.load(Ordering::Relaxed) - base, 51);
    assert!(c.bytes.load(Ordering::Relaxed) > 306 * 256);
}

#[test]
fn must_sync_follows_raft() {
    let a = HardState {
        term: 1,
        vote: 1,
        commit: 1,
    };
    assert!(!must_sync(&a, &HardState { commit: 5, ..a }, 0));
    assert!(must_sync(&a, &HardState { term: 2, ..a }, 0));
    assert!(must_sync(&a, &HardState { vote: 2, ..a }, 0));
    assert!(must_sync(&a, &a, 1));
}

#[test]
fn preallocated_zero_tail_is_not_an_error_and_verify_reports_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create_with(&dir, b"m", small(1 << 16)).unwrap();
    w.save(&state(3, 2), &[entry(1, 3, 5), entry(2, 3, 5)])
        .unwrap();
    drop(w);
    assert_eq!(
        std::fs::metadata(&segment_files(&dir)[0]).unwrap().len(),
        1 << 16
    );
    let v = verify(&dir, &walpb::Snapshot::default()).unwrap();
    assert_eq!(v.hard_state, state(3, 2));
    assert_eq!(v.last_index, 2);
    assert!(v.torn_tail.is_none());
}

#[test]
fn valid_snapshot_entries_lists_committed_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"m").unwrap();
    w.save(
        &state(1, 3),
        &(1..=5).map(|i| entry(i, 1, 5)).collect::<Vec<_>>(),
    )
    .unwrap();
    w.save_snapshot(&marker(3, 1)).unwrap();
    w.save_snapshot(&marker(5, 1)).unwrap(); // not committed yet
    drop(w);
    let snaps = etcd_wal::valid_snapshot_entries(&dir).unwrap();
    assert_eq!(
        snaps.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 3]
    );
}

#[test]
fn a_log_that_jumps_to_a_received_snapshot_reads_from_it() {
    // A follower logs entries 1..=3, then installs the leader's snapshot at 10 and logs
    // on from 11: the markers are found, and reading from the snapshot sees 11 and 12.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"m").unwrap();
    w.save(
        &state(1, 3),
        &(1..=3).map(|i| entry(i, 1, 5)).collect::<Vec<_>>(),
    )
    .unwrap();
    w.save_snapshot(&marker(10, 2)).unwrap();
    w.save(
        &state(2, 12),
        &(11..=12).map(|i| entry(i, 2, 5)).collect::<Vec<_>>(),
    )
    .unwrap();
    drop(w);
    let snaps = etcd_wal::valid_snapshot_entries(&dir).unwrap();
    assert_eq!(
        snaps.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 10]
    );
    let mut w = Wal::open(&dir, marker(10, 2)).unwrap();
    let contents = w.read_all().unwrap();
    assert_eq!(
        contents.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![11, 12]
    );
}

#[test]
fn wal_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<Wal>();
    is_send::<etcd_wal::Snapshotter>();
}
