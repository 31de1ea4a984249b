//! Property test: random interleavings of save / save_snapshot / cut / release /
//! close / reopen against a simple in-memory model of the log.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use etcd_proto::raftpb::{ConfState, Entry, HardState};
use etcd_proto::walpb;
use etcd_wal::Wal;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` entries, first going `back` entries into the uncommitted tail
    /// (overwrite), possibly in a new term, and advance commit by a fraction.
    Save {
        n: usize,
        back: u64,
        new_term: bool,
        commit_pct: u8,
        len: usize,
    },
    /// Record a snapshot marker at the commit index.
    Snapshot,
    Cut,
    /// Release segments up to the last snapshot marker.
    Release,
    /// Close (or just drop) and reopen at the last snapshot marker.
    Reopen {
        close: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..6, 0u64..4, prop::bool::weighted(0.2), 0u8..=100, 1usize..200)
            .prop_map(|(n, back, new_term, commit_pct, len)| Op::Save { n, back, new_term, commit_pct, len }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Cut),
        1 => Just(Op::Release),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

struct Model {
    log: Vec<Entry>, // index i at position i - 1
    hs: HardState,
    marker: walpb::Snapshot,
}

fn check(w: &mut Wal, m: &Model) {
    let c = w.read_all().unwrap();
    assert_eq!(c.metadata, b"model");
    assert_eq!(c.hard_state, m.hs);
    assert_eq!(c.entries, m.log[m.marker.index as usize..].to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let opts = || small(1024);
        let mut w = Wal::create_with(&dir, b"model", opts()).unwrap();
        let mut m = Model { log: Vec::new(), hs: HardState::default(), marker: walpb::Snapshot::default() };
        for op in ops {
            match op {
                Op::Save { n, back, new_term, commit_pct, len } => {
                    let last = m.log.len() as u64;
                    let floor = m.hs.commit.max(m.marker.index);
                    let first = (last + 1).saturating_sub(back).max(floor + 1);
                    let term = m.hs.term.max(1) + u64::from(new_term);
                    let ents: Vec<_> = (first..first + n as u64).map(|i| entry(i, term, len)).collect();
                    if !ents.is_empty() {
                        m.log.truncate(first as usize - 1);
                        m.log.extend(ents.iter().cloned());
                    }
                    let new_last = m.log.len() as u64;
                    let commit = m.hs.commit + (new_last.saturating_sub(m.hs.commit)) * u64::from(commit_pct) / 100;
                    let hs = HardState { term, vote: 1, commit };
                    w.save(&hs, &ents).unwrap();
                    m.hs = hs;
                }
                Op::Snapshot => {
                    let index = m.hs.commit;
                    if index > m.marker.index {
                        let term = m.log[index as usize - 1].term;
                        let s = walpb::Snapshot { index, term, conf_state: Some(ConfState { voters: vec![1], ..Default::default() }) };
                        w.save_snapshot(&s).unwrap();
                        m.marker = s;
                    }
                }
                Op::Cut => w.cut().unwrap(),
                Op::Release => {
                    w.release_to(m.marker.index).unwrap();
                }
                Op::Reopen { close } => {
                    if close { w.close().unwrap() } else { drop(w) }
                    w = Wal::open_with(&dir, m.marker.clone(), opts()).unwrap();
                    check(&mut w, &m);
                }
            }
        }
        drop(w);
        let mut w = Wal::open_with(&dir, m.marker.clone(), opts()).unwrap();
        check(&mut w, &m);
        let v = etcd_wal::verify(&dir, &m.marker).unwrap();
        prop_assert_eq!(v.hard_state, m.hs);
    }
}
