//! Crash tests: cut the last segment at every byte offset, and separately flip every
//! byte of it, then reopen.
//!
//! The rule under test (see `etcd_wal::decoder` for the reasoning): a crash can only
//! leave the last segment with a short or partly-unwritten final batch, and whatever
//! survives such a crash must reopen as a *prefix* of what was written (the torn part
//! is cut off and appending resumes). A changed byte is corruption, reported with the
//! file and the offset of the damaged frame, whenever the damage cannot be produced by
//! a torn write:
//!
//! - a changed byte in a record's payload (type, CRC, data) is always an error: the
//!   payload then fails to decode or fails its CRC, and (with these test records,
//!   which hold no zero bytes, and a flip that never produces a zero byte) it does not
//!   look unwritten;
//! - a changed byte in a frame header is either an error at that frame, or, if the new
//!   length makes the frame reach into the zero tail, indistinguishable from a torn
//!   write: the log is then cut before that frame (a prefix);
//! - a changed padding byte is not covered by anything and harmless: all is read;
//! - a changed byte in the zero tail either is ignored or, if it forms an impossible
//!   frame header right after the last record, is an error there.
//!
//! Offsets in segments other than the last never count as torn: every non-padding
//! flip there is an error.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use etcd_proto::prost::Message;
use etcd_proto::raftpb::{Entry, HardState};
use etcd_proto::walpb;
use etcd_wal::decoder::{decode_all, DecodedRecord};
use etcd_wal::{Error, RecordType, Wal};

const SEGMENT: u64 = 2048;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    files: Vec<PathBuf>,
    originals: Vec<Vec<u8>>,
    /// Records of every segment, decoded from the intact files.
    records: Vec<Vec<DecodedRecord>>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create_with(&dir, b"metadata!", small(SEGMENT)).unwrap();
    let mut i = 1;
    // Fill two segments, then half of a third.
    while w.segments().len() < 3 || i % 20 != 0 {
        w.save(&state(1, i - 1), &[entry(i, 1, 30 + (i as usize % 13))])
            .unwrap();
        i += 1;
    }
    drop(w);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 3);
    let originals: Vec<_> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let records = originals.iter().map(|b| decode_all(b).0).collect();
    Fixture {
        _tmp: tmp,
        dir,
        files,
        originals,
        records,
    }
}

/// What a replay of the records of all segments, with the last one limited to frames
/// that end at or before `end`, yields.
fn expected(fx: &Fixture, end: u64) -> (HardState, Vec<Entry>) {
    let mut hs = HardState::default();
    let mut ents = Vec::new();
    let last = fx.records.len() - 1;
    for (s, recs) in fx.records.iter().enumerate() {
        for r in recs {
            if s == last && frame_end(fx, s, r) > end {
                continue;
            }
            match r.kind {
                RecordType::Entry => ents.push(Entry::decode(r.data.clone()).unwrap()),
                RecordType::State => hs = HardState::decode(r.data.clone()).unwrap(),
                _ => {}
            }
        }
    }
    (hs, ents)
}

fn frame_end(fx: &Fixture, seg: usize, r: &DecodedRecord) -> u64 {
    let h = u64::from_le_bytes(
        fx.originals[seg][r.offset as usize..r.offset as usize + 8]
            .try_into()
            .unwrap(),
    );
    let (len, pad) = etcd_wal::record::decode_header(h).unwrap();
    r.offset + 8 + len + pad
}

/// Where offset `o` of segment `seg` falls.
enum Place {
    Header { frame: u64 },
    Payload { frame: u64 },
    Padding,
    Tail,
}

fn place(fx: &Fixture, seg: usize, o: u64) -> Place {
    for r in &fx.records[seg] {
        let h = u64::from_le_bytes(
            fx.originals[seg][r.offset as usize..r.offset as usize + 8]
                .try_into()
                .unwrap(),
        );
        let (len, pad) = etcd_wal::record::decode_header(h).unwrap();
        if o < r.offset || o >= r.offset + 8 + len + pad {
            continue;
        }
        return if o < r.offset + 8 {
            Place::Header { frame: r.offset }
        } else if o < r.offset + 8 + len {
            Place::Payload { frame: r.offset }
        } else {
            Place::Padding
        };
    }
    Place::Tail
}

/// Flips the top bit of byte `o` of `file` in place.
fn flip(file: &Path, original: &[u8], o: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(&[original[o] ^ 0x80], o as u64).unwrap();
}

fn reopen(dir: &Path) -> Result<etcd_wal::WalContents, Error> {
    let mut w = Wal::open_with(dir, walpb::Snapshot::default(), small(SEGMENT))?;
    w.read_all()
}

#[test]
fn truncation_at_every_offset_of_the_last_segment_reads_a_prefix_and_resumes() {
    let fx = fixture();
    let last = fx.files.len() - 1;
    let (_, all) = expected(&fx, u64::MAX);
    let len = fx.originals[last].len();
    assert_eq!(len as u64, SEGMENT, "the tail segment is preallocated");
    for cut in 0..=len {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fx.files[last])
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let (hs, ents) = expected(&fx, cut as u64);
        let c = reopen(&fx.dir).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(c.entries, ents, "cut at {cut}");
        assert_eq!(c.hard_state, hs, "cut at {cut}");
        assert_eq!(c.metadata, b"metadata!");
        assert_eq!(&all[..ents.len()], &ents[..]);
        // The log accepts appends after the repaired tail, and they survive a reopen
        // (checked at every 8th cut point: each costs an fdatasync).
        if cut % 8 != 3 {
            restore(&fx);
            continue;
        }
        let next = ents.last().map_or(1, |e| e.index + 1);
        let mut w = Wal::open_with(&fx.dir, walpb::Snapshot::default(), small(SEGMENT)).unwrap();
        w.read_all().unwrap();
        w.save(&state(2, next - 1), &[entry(next, 2, 17)]).unwrap();
        drop(w);
        let c = reopen(&fx.dir).unwrap();
        assert_eq!(c.entries.len(), ents.len() + 1, "cut at {cut}");
        assert_eq!(c.entries.last().unwrap(), &entry(next, 2, 17));
        assert_eq!(c.hard_state, state(2, next - 1));
        restore(&fx);
    }
}

/// Puts the original bytes back, rewriting in place only what differs (cheap: no
/// truncate-and-rewrite, which some file systems flush on close).
fn restore(fx: &Fixture) {
    use std::os::unix::fs::FileExt;
    for (f, b) in fx.files.iter().zip(&fx.originals) {
        let cur = std::fs::read(f).unwrap();
        if cur == *b {
            continue;
        }
        let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        let from = cur
            .iter()
            .zip(b.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(cur.len().min(b.len()));
        file.write_all_at(&b[from..], from as u64).unwrap();
        file.set_len(b.len() as u64).unwrap();
    }
    // A cut may have started a new segment; remove anything that was not there.
    for f in segment_files(&fx.dir) {
        if !fx.files.contains(&f) {
            std::fs::remove_file(f).unwrap();
        }
    }
}

#[test]
fn a_flipped_byte_in_the_last_segment_is_an_error_or_a_prefix_by_the_rule() {
    let fx = fixture();
    let last = fx.files.len() - 1;
    let (_, all) = expected(&fx, u64::MAX);
    let valid_end = fx.records[last]
        .last()
        .map_or(0, |r| frame_end(&fx, last, r));
    let (mut errors, mut prefixes) = (0, 0);
    for o in 0..fx.originals[last].len() {
        flip(&fx.files[last], &fx.originals[last], o); // never turns a byte into zero
        let got = reopen(&fx.dir);
        let o = o as u64;
        match (place(&fx, last, o), got) {
            (Place::Payload { frame }, Err(Error::Corrupt { path, offset, .. })) => {
                assert_eq!(path, fx.files[last], "offset {o}");
                assert_eq!(offset, frame, "offset {o}");
                errors += 1;
            }
            (Place::Payload { .. }, other) => {
                panic!("flip at {o} in a payload must be corruption, got {other:?}")
            }
            (Place::Header { frame }, Err(Error::Corrupt { path, offset, .. })) => {
                assert_eq!(
                    (path, offset),
                    (fx.files[last].clone(), frame),
                    "offset {o}"
                );
                errors += 1;
            }
            (Place::Header { frame }, Ok(c)) => {
                let (_, ents) = expected(&fx, frame);
                assert_eq!(
                    c.entries, ents,
                    "header flip at {o} must cut the log before frame {frame}"
                );
                prefixes += 1;
            }
            (Place::Header { .. }, Err(e)) => panic!("flip at {o}: unexpected error {e}"),
            (Place::Padding, got) => assert_eq!(got.unwrap().entries, all, "padding flip at {o}"),
            (Place::Tail, Ok(c)) => assert_eq!(c.entries, all, "tail flip at {o}"),
            (Place::Tail, Err(Error::Corrupt { offset, .. })) => {
                assert_eq!(offset, valid_end, "tail flip at {o}");
                assert!(o < valid_end + 8);
            }
            (Place::Tail, Err(e)) => panic!("tail flip at {o}: unexpected error {e}"),
        }
        restore(&fx);
    }
    assert!(errors > 500, "{errors} errors");
    assert!(prefixes > 0);
}

#[test]
fn a_flipped_byte_in_an_earlier_segment_is_always_an_error_except_in_padding() {
    let fx = fixture();
    let (_, all) = expected(&fx, u64::MAX);
    for seg in 0..fx.files.len() - 1 {
        for o in 0..fx.originals[seg].len() {
            flip(&fx.files[seg], &fx.originals[seg], o);
            let got = etcd_wal::verify(&fx.dir, &walpb::Snapshot::default());
            match place(&fx, seg, o as u64) {
                Place::Padding => assert_eq!(got.unwrap().last_index, all.last().unwrap().index),
                Place::Header { frame } | Place::Payload { frame } => match got {
                    Err(Error::Corrupt { path, offset, .. }) => {
                        assert_eq!(
                            (path, offset),
                            (fx.files[seg].clone(), frame),
                            "segment {seg} offset {o}"
                        );
                    }
                    other => panic!("segment {seg} offset {o}: expected corruption, got {other:?}"),
                },
                Place::Tail => unreachable!("finished segments have no zero tail"),
            }
            restore(&fx);
        }
    }
}

#[test]
fn a_torn_final_batch_with_unwritten_sectors_is_cut_off() {
    let fx = fixture();
    let last = fx.files.len() - 1;
    let recs = &fx.records[last];
    // Zero out the last 512-byte sector touched by the last few records: as if the
    // final write reached the disk only partly.
    let end = frame_end(&fx, last, recs.last().unwrap());
    let sector = (end - 1) / 512 * 512;
    let mut bad = fx.originals[last].clone();
    bad[sector as usize..end as usize].fill(0);
    std::fs::write(&fx.files[last], &bad).unwrap();
    let mut r = Wal::open_for_read(&fx.dir, walpb::Snapshot::default()).unwrap();
    let c = r.read_all().unwrap();
    let torn = r.torn_tail().unwrap().offset;
    assert!(torn <= sector);
    let (_, ents) = expected(&fx, torn);
    assert_eq!(c.entries, ents);
    // Opening for write repairs it.
    assert_eq!(reopen(&fx.dir).unwrap().entries, ents);
    assert!(etcd_wal::verify(&fx.dir, &walpb::Snapshot::default())
        .unwrap()
        .torn_tail
        .is_none());
}
