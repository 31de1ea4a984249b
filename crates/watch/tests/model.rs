//! Property test from the issue: random writes, deletes, transactions (several per
//! batch) and compactions, with random watchers (random ranges, filters, `prev_kv` and
//! start revisions: now, in the past, in the future) on two streams with tiny channels and
//! random slow consumers, while the background thread runs for real. At the end each
//! watcher's events must equal the model history filtered by its range and filters from
//! its start revision; a watcher canceled (by the test or by compaction) must have
//! received a prefix of it that ends at a revision boundary. Every response must be in
//! revision order, never split a revision, and carry a revision at least its last event's.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_mvcc::{Event, EventType, Store};
use etcd_watch::{WatchOptions, WatchRequest, WatchResponse, WatchStream, WatchableStore};
use proptest::prelude::*;

const KEYS: u8 = 10;

#[derive(Debug, Clone)]
enum Span {
    Single(u8),
    Range(u8, u8),
    FromKey(u8),
    All,
}

#[derive(Debug, Clone)]
enum Start {
    Now,
    Past(u8),
    Future(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    Delete(u8, u8),
    Txn(BTreeSet<u8>),
    PutAndDelete(u8, u8),
    Batch(Vec<u8>),
    Compact(u8),
    Watch {
        stream: usize,
        span: Span,
        start: Start,
        no_put: bool,
        no_delete: bool,
        prev_kv: bool,
    },
    Drain(usize),
    Cancel(usize, usize),
    Sync,
}

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        (0..KEYS).prop_map(Span::Single),
        (0..KEYS, 1..5u8).prop_map(|(k, l)| Span::Range(k, l)),
        (0..KEYS).prop_map(Span::FromKey),
        Just(Span::All),
    ]
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        Just(Start::Now),
        any::<u8>().prop_map(Start::Past),
        (1..3u8).prop_map(Start::Future),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS).prop_map(Op::Put),
        2 => (0..KEYS, 0..3u8).prop_map(|(k, l)| Op::Delete(k, l)),
        2 => prop::collection::btree_set(0..KEYS, 1..4).prop_map(Op::Txn),
        1 => (0..KEYS, 0..KEYS).prop_map(|(p, d)| Op::PutAndDelete(p, d)),
        2 => prop::collection::vec(0..KEYS, 1..5).prop_map(Op::Batch),
        1 => any::<u8>().prop_map(Op::Compact),
        4 => (0..2usize, span(), start(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(stream, span, start, np, nd, pk)| Op::Watch {
                stream,
                span,
                start,
                no_put: np && !nd,
                no_delete: nd && !np,
                prev_kv: pk,
            }
        ),
        3 => (0..2usize).prop_map(Op::Drain),
        1 => (0..2usize, any::<usize>()).prop_map(|(s, w)| Op::Cancel(s, w)),
        1 => Just(Op::Sync),
    ]
}

fn k(i: u8) -> Vec<u8> {
    vec![b'a' + i]
}

struct Watcher {
    stream: usize,
    id: i64,
    req: WatchRequest,
    /// The first revision it must see.
    from: i64,
    canceled_by_test: bool,
    responses: Vec<WatchResponse>,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let key = &ev.kv.as_ref().unwrap().key;
        let r = &self.req;
        let in_span = match r.range_end.as_slice() {
            [] => key == &r.key,
            [0] => key >= &r.key,
            end => key >= &r.key && key.as_slice() < end,
        };
        let deleted = ev.r#type == EventType::Delete as i32;
        in_span
            && ev.kv.as_ref().unwrap().mod_revision >= self.from
            && if deleted { !r.no_delete } else { !r.no_put }
    }

    fn expected(&self, history: &[Event]) -> Vec<Event> {
        history
            .iter()
            .filter(|e| self.wants(e))
            .map(|e| Event {
                prev_kv: if self.req.prev_kv {
                    e.prev_kv.clone()
                } else {
                    None
                },
                ..e.clone()
            })
            .collect()
    }
}

fn rev(e: &Event) -> i64 {
    e.kv.as_ref().unwrap().mod_revision
}

fn drain(s: &mut WatchStream, si: usize, watchers: &mut [Watcher]) {
    while let Some(r) = s.try_recv() {
        let w = watchers
            .iter_mut()
            .find(|w| w.stream == si && w.id == r.watch_id)
            .expect("a response for a known watcher");
        w.responses.push(r);
    }
}

fn run(cap: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ws = WatchableStore::new(
        store.clone(),
        WatchOptions {
            chan_capacity: cap,
            sync_interval: Duration::from_millis(1),
            sync_batch_events: 5,
            progress_interval: Duration::from_secs(3600),
            victim_retry: Duration::from_millis(1),
        },
    );
    let mut streams = [ws.watch_stream(), ws.watch_stream()];
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut history: Vec<Event> = Vec::new();

    for op in ops {
        match op {
            Op::Put(key) => {
                let r = store.put(&k(key), &[key, history.len() as u8], 0).unwrap();
                history.extend(r.events);
            }
            Op::Delete(key, len) => {
                let end = if len == 0 { vec![] } else { k(key + len) };
                let r = store.delete_range(&k(key), &end).unwrap();
                history.extend(r.events);
            }
            Op::Txn(keys) => {
                let mut b = store.batch().unwrap();
                let mut t = b.txn();
                for key in keys {
                    t.put(&k(key), b"t", 0).unwrap();
                }
                history.extend(t.end().events);
                b.commit().unwrap();
            }
            Op::PutAndDelete(p, d) => {
                if p == d {
                    continue; // etcd refuses overlapping put and delete in one txn
                }
                let mut b = store.batch().unwrap();
                let mut t = b.txn();
                t.put(&k(p), b"pd", 0).unwrap();
                t.delete_range(&k(d), b"").unwrap();
                history.extend(t.end().events);
                b.commit().unwrap();
            }
            Op::Batch(keys) => {
                let mut b = store.batch().unwrap();
                for key in keys {
                    history.extend(b.put(&k(key), b"b", 0).unwrap().events);
                }
                b.commit().unwrap();
            }
            Op::Compact(frac) => {
                let (cur, comp) = (store.current_revision(), store.compact_revision().max(0));
                if cur > comp {
                    let at = comp + 1 + (cur - comp - 1) * i64::from(frac) / 255;
                    store.compact(at).unwrap();
                }
            }
            Op::Watch {
                stream,
                span,
                start,
                no_put,
                no_delete,
                prev_kv,
            } => {
                let (key, range_end) = match span {
                    Span::Single(a) => (k(a), vec![]),
                    Span::Range(a, l) => (k(a), k(a + l)),
                    Span::FromKey(a) => (k(a), vec![0]),
                    Span::All => (vec![0], vec![0]),
                };
                let cur = store.current_revision();
                let start_rev = match start {
                    Start::Now => 0,
                    Start::Past(f) => 1 + (cur - 1) * i64::from(f) / 255,
                    Start::Future(d) => cur + i64::from(d),
                };
                let req = WatchRequest {
                    key,
                    range_end,
                    start_rev,
                    no_put,
                    no_delete,
                    prev_kv,
                    ..Default::default()
                };
                let id = streams[stream].watch(req.clone()).unwrap();
                watchers.push(Watcher {
                    stream,
                    id,
                    req,
                    from: if start_rev == 0 { cur + 1 } else { start_rev },
                    canceled_by_test: false,
                    responses: Vec::new(),
                });
            }
            Op::Drain(s) => drain(&mut streams[s], s, &mut watchers),
            Op::Cancel(s, which) => {
                let mine: Vec<usize> = (0..watchers.len())
                    .filter(|&i| watchers[i].stream == s && !watchers[i].canceled_by_test)
                    .collect();
                if !mine.is_empty() {
                    let i = mine[which % mine.len()];
                    streams[s].cancel(watchers[i].id);
                    watchers[i].canceled_by_test = true;
                }
            }
            Op::Sync => {
                ws.sync_now();
            }
        }
    }

    // Quiesce: read everything until no watcher is behind and nothing is queued.
    let mut rounds = 0;
    loop {
        for (si, s) in streams.iter_mut().enumerate() {
            drain(s, si, &mut watchers);
        }
        if ws.sync_now().pending() == 0 {
            for (si, s) in streams.iter_mut().enumerate() {
                drain(s, si, &mut watchers);
            }
            break;
        }
        rounds += 1;
        prop_assert!(
            rounds < 100_000,
            "watchers never caught up: {:?}",
            ws.stats()
        );
    }

    for w in &watchers {
        let expected = w.expected(&history);
        let mut got: Vec<Event> = Vec::new();
        let mut compacted = None;
        let mut last_rev = 0;
        for r in &w.responses {
            prop_assert!(compacted.is_none(), "a response after the compacted one");
            if r.canceled {
                prop_assert!(r.events.is_empty());
                compacted = Some(r.compact_revision);
                continue;
            }
            prop_assert!(!r.events.is_empty(), "no progress responses were asked for");
            for e in &r.events {
                prop_assert!(rev(e) >= last_rev, "out of order");
                last_rev = rev(e);
            }
            prop_assert!(r.revision >= last_rev);
            if let Some(prev) = got.last() {
                prop_assert!(
                    rev(prev) < rev(&r.events[0]),
                    "a revision split across responses"
                );
            }
            got.extend(r.events.iter().cloned());
        }
        if compacted.is_some() || w.canceled_by_test {
            prop_assert!(got.len() <= expected.len());
            prop_assert_eq!(
                &got[..],
                &expected[..got.len()],
                "not a prefix; watcher {:?}",
                w.req
            );
            if let (Some(last), Some(next)) = (got.last(), expected.get(got.len())) {
                prop_assert!(rev(last) < rev(next), "ends inside a revision");
            }
            if let Some(c) = compacted {
                prop_assert!(
                    got.iter().all(|e| rev(e) <= c),
                    "events past the compaction"
                );
            }
        } else {
            prop_assert_eq!(&got, &expected, "watcher {:?} from {}", w.req, w.from);
        }
    }
    // Every watcher not canceled is synced now.
    let live = watchers
        .iter()
        .filter(|w| !w.canceled_by_test && !w.responses.iter().any(|r| r.canceled))
        .count();
    prop_assert_eq!(ws.stats().synced, live);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_watcher_sees_exactly_its_history(
        cap in 1..4usize,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(cap, ops)?;
    }
}
