//! The watchable store's promises, one test each: what a watcher receives, in which
//! shape and order, from history and live; compaction; slow consumers; progress; ids.
//! Waits are bounded (`recv_timeout`), never timing thresholds.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use etcd_mvcc::{EventType, KeyValue, Store};
use etcd_watch::{
    WatchError, WatchOptions, WatchRequest, WatchResponse, WatchStream, WatchableStore,
    STREAM_PROGRESS_WATCH_ID,
};

const WAIT: Duration = Duration::from_secs(20);

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    ws: Arc<WatchableStore>,
}

fn env(opts: WatchOptions) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ws = WatchableStore::new(store.clone(), opts);
    Env {
        _dir: dir,
        store,
        ws,
    }
}

fn key(k: &str) -> WatchRequest {
    WatchRequest {
        key: k.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn prefix(p: &str) -> WatchRequest {
    let mut end = p.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    WatchRequest {
        key: p.as_bytes().to_vec(),
        range_end: end,
        ..Default::default()
    }
}

fn next(s: &mut WatchStream) -> WatchResponse {
    s.recv_timeout(WAIT)
        .expect("a response within the bounded wait")
}

/// Reads responses until `n` events have arrived; returns the responses.
fn read_events(s: &mut WatchStream, n: usize) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    let mut got = 0;
    while got < n {
        let r = next(s);
        got += r.events.len();
        out.push(r);
    }
    assert_eq!(got, n, "more events than expected");
    out
}

fn summary(resps: &[WatchResponse]) -> Vec<(String, i64, bool)> {
    resps
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                kv.mod_revision,
                e.r#type == EventType::Delete as i32,
            )
        })
        .collect()
}

fn assert_quiet(s: &mut WatchStream) {
    assert_eq!(s.recv_timeout(Duration::from_millis(50)), None);
}

#[test]
fn a_synced_watcher_gets_each_commit_in_one_response_with_its_revision() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    let id = s.watch(prefix("a")).unwrap();
    e.store.put(b"a1", b"x", 0).unwrap(); // 2
    e.store.put(b"b1", b"x", 0).unwrap(); // 3: not watched
    let mut b = e.store.batch().unwrap();
    b.put(b"a2", b"x", 0).unwrap(); // 4
    let mut t = b.txn();
    t.put(b"a3", b"x", 0).unwrap(); // 5
    t.put(b"a4", b"x", 0).unwrap(); // 5
    t.end();
    b.commit().unwrap();
    let r = next(&mut s);
    assert_eq!((r.watch_id, r.revision), (id, 2));
    assert_eq!(summary(&[r]), vec![("a1".into(), 2, false)]);
    let r = next(&mut s);
    assert_eq!(r.revision, 5, "the batch's revision");
    assert_eq!(
        summary(&[r]),
        vec![
            ("a2".into(), 4, false),
            ("a3".into(), 5, false),
            ("a4".into(), 5, false)
        ]
    );
    assert_quiet(&mut s);
}

#[test]
fn keys_prefixes_and_open_ranges_see_exactly_their_keys() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    let k = s.watch(key("foo")).unwrap();
    let p = s.watch(prefix("foo")).unwrap();
    let from = s
        .watch(WatchRequest {
            key: b"m".to_vec(),
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    let all = s
        .watch(WatchRequest {
            key: vec![],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    for k in ["foo", "foo/x", "fop", "a", "zz"] {
        e.store.put(k.as_bytes(), b"v", 0).unwrap();
    }
    let mut seen: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for r in read_events(&mut s, 1 + 2 + 1 + 5) {
        for ev in &r.events {
            let kv = ev.kv.as_ref().unwrap();
            seen.entry(r.watch_id)
                .or_default()
                .push(String::from_utf8(kv.key.clone()).unwrap());
        }
    }
    assert_eq!(seen[&k], vec!["foo"]);
    assert_eq!(seen[&p], vec!["foo", "foo/x"]);
    assert_eq!(seen[&from], vec!["zz"]);
    assert_eq!(seen[&all].len(), 5);
}

#[test]
fn filters_drop_puts_or_deletes() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    let no_put = s
        .watch(WatchRequest {
            no_put: true,
            ..prefix("k")
        })
        .unwrap();
    let no_del = s
        .watch(WatchRequest {
            no_delete: true,
            ..prefix("k")
        })
        .unwrap();
    e.store.put(b"k1", b"v", 0).unwrap();
    e.store.delete_range(b"k1", b"").unwrap();
    let resps = read_events(&mut s, 2);
    for r in &resps {
        assert_eq!(r.events.len(), 1);
        let deleted = r.events[0].r#type == EventType::Delete as i32;
        if r.watch_id == no_put {
            assert!(deleted);
        } else {
            assert_eq!(r.watch_id, no_del);
            assert!(!deleted);
        }
    }
    assert_quiet(&mut s);
}

#[test]
fn prev_kv_is_delivered_only_when_asked_live_and_from_history() {
    let e = env(WatchOptions {
        sync_batch_events: 3,
        ..WatchOptions::default()
    });
    e.store.put(b"k", b"v1", 0).unwrap(); // 2
    e.store.put(b"k", b"v2", 0).unwrap(); // 3
    e.store.delete_range(b"k", b"").unwrap(); // 4
    let mut s = e.ws.watch_stream();
    let with = s
        .watch(WatchRequest {
            prev_kv: true,
            start_rev: 2,
            ..key("k")
        })
        .unwrap();
    let without = s
        .watch(WatchRequest {
            start_rev: 2,
            ..key("k")
        })
        .unwrap();
    let mut by_id: std::collections::HashMap<i64, Vec<etcd_mvcc::Event>> = Default::default();
    for r in read_events(&mut s, 6) {
        by_id.entry(r.watch_id).or_default().extend(r.events);
    }
    // Live now: another update.
    e.store.put(b"k", b"v3", 0).unwrap(); // 5
    e.store.put(b"k", b"v4", 0).unwrap(); // 6
    for r in read_events(&mut s, 4) {
        by_id.entry(r.watch_id).or_default().extend(r.events);
    }
    let prev_vals = |evs: &[etcd_mvcc::Event]| -> Vec<Option<Vec<u8>>> {
        evs.iter()
            .map(|e| e.prev_kv.as_ref().map(|p| p.value.clone()))
            .collect()
    };
    assert_eq!(
        prev_vals(&by_id[&with]),
        vec![
            None,
            Some(b"v1".to_vec()),
            Some(b"v2".to_vec()),
            None,
            Some(b"v3".to_vec())
        ]
    );
    assert!(prev_vals(&by_id[&without]).iter().all(Option::is_none));
    let deleted = &by_id[&with][2];
    assert_eq!(
        deleted.prev_kv.as_ref().unwrap(),
        &KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"v2".to_vec(),
            lease: 0
        }
    );
}

#[test]
fn a_watcher_from_the_past_catches_up_in_pages_then_goes_live() {
    let e = env(WatchOptions {
        sync_batch_events: 100,
        ..WatchOptions::default()
    });
    let mut b = e.store.batch().unwrap();
    for i in 0..2500u32 {
        b.put(format!("k{:05}", i % 700).as_bytes(), b"v", 0)
            .unwrap();
    }
    b.commit().unwrap(); // revisions 2..=2501
    let mut s = e.ws.watch_stream();
    s.watch(WatchRequest {
        start_rev: 2,
        ..prefix("k")
    })
    .unwrap();
    let resps = read_events(&mut s, 2500);
    assert!(resps.len() >= 25, "history comes in bounded pages");
    let revs: Vec<i64> = summary(&resps).iter().map(|x| x.1).collect();
    assert_eq!(revs, (2..=2501).collect::<Vec<_>>());
    for r in &resps {
        let last = r.events.last().unwrap().kv.as_ref().unwrap().mod_revision;
        assert!(r.revision >= last);
    }
    // Synced now: a live write arrives with its own revision.
    for _ in 0..1000 {
        if e.ws.stats().synced == 1 {
            break;
        }
        e.ws.sync_now();
    }
    assert_eq!(e.ws.stats().synced, 1);
    e.store.put(b"k-live", b"v", 0).unwrap();
    let r = next(&mut s);
    assert_eq!((r.revision, r.events.len()), (2502, 1));
}

#[test]
fn a_start_revision_at_or_below_the_compaction_is_answered_with_compact_revision() {
    let e = env(WatchOptions::default());
    for i in 0..6 {
        e.store.put(format!("k{i}").as_bytes(), b"v", 0).unwrap(); // 2..=7
    }
    e.store.compact(5).unwrap().wait().unwrap();
    let mut s = e.ws.watch_stream();
    for start in [1, 3, 5] {
        let id = s
            .watch(WatchRequest {
                start_rev: start,
                ..prefix("k")
            })
            .unwrap();
        let r = next(&mut s);
        assert_eq!(r.watch_id, id);
        assert!(r.canceled);
        assert_eq!(r.compact_revision, 5);
        assert!(r.events.is_empty() && r.cancel_reason.is_empty());
        assert!(!s.watch_ids().contains(&id), "the watcher is gone");
    }
    s.watch(WatchRequest {
        start_rev: 6,
        ..prefix("k")
    })
    .unwrap();
    let revs: Vec<i64> = summary(&read_events(&mut s, 2))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(revs, vec![6, 7]);
}

#[test]
fn a_victim_that_falls_behind_a_compaction_gets_its_pending_events_then_compacted() {
    let e = env(WatchOptions {
        chan_capacity: 1,
        sync_batch_events: 100,
        ..WatchOptions::default()
    });
    let mut b = e.store.batch().unwrap();
    for i in 0..3000u32 {
        b.put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
    }
    b.commit().unwrap(); // 2..=3001
    let mut s = e.ws.watch_stream();
    let id = s
        .watch(WatchRequest {
            start_rev: 2,
            ..prefix("k")
        })
        .unwrap();
    // Nobody reads: the watcher fills its channel and becomes a victim.
    for _ in 0..1000 {
        if e.ws.stats().victims == 1 {
            break;
        }
        e.ws.sync_now();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.ws.stats().victims, 1);
    e.store.compact(2500).unwrap().wait().unwrap();
    let mut revs = Vec::new();
    let last = loop {
        let r = next(&mut s);
        assert_eq!(r.watch_id, id);
        if r.canceled {
            break r;
        }
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    };
    assert_eq!(last.compact_revision, 2500);
    assert!(!revs.is_empty());
    assert_eq!(
        revs,
        (2..2 + revs.len() as i64).collect::<Vec<_>>(),
        "a prefix without gaps"
    );
    assert!(*revs.last().unwrap() < 2500);
    assert!(s.watch_ids().is_empty());
}

#[test]
fn a_slow_watcher_never_blocks_writes_and_loses_nothing() {
    let e = env(WatchOptions {
        chan_capacity: 2,
        victim_retry: Duration::from_millis(1),
        ..WatchOptions::default()
    });
    let mut slow = e.ws.watch_stream();
    slow.watch(prefix("k")).unwrap();
    // 1,000 commits nobody reads: each put returns (the observer never waits).
    for i in 0..1000u32 {
        e.store
            .put(format!("k{:04}", i).as_bytes(), b"v", 0)
            .unwrap();
    }
    assert!(e.ws.stats().victims + e.ws.stats().unsynced <= 1);
    let revs: Vec<i64> = summary(&read_events(&mut slow, 1000))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(revs, (2..=1001).collect::<Vec<_>>());
    assert_quiet(&mut slow);
}

#[test]
fn watch_ids_are_auto_assigned_like_etcd_and_duplicates_are_refused() {
    let e = env(WatchOptions::default());
    let s = e.ws.watch_stream();
    assert_eq!(s.watch(key("a")).unwrap(), 0);
    assert_eq!(s.watch(key("a")).unwrap(), 1);
    assert_eq!(s.watch(WatchRequest { id: 3, ..key("a") }).unwrap(), 3);
    let dup = s.watch(WatchRequest { id: 3, ..key("a") }).unwrap_err();
    assert_eq!(dup, WatchError::DuplicateId);
    assert_eq!(
        dup.to_string(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    assert_eq!(s.watch(key("a")).unwrap(), 2);
    assert_eq!(s.watch(key("a")).unwrap(), 4, "3 is taken");
    assert_eq!(s.watch_ids(), vec![0, 1, 2, 3, 4]);
    // Another stream has its own ids.
    assert_eq!(e.ws.watch_stream().watch(key("a")).unwrap(), 0);
}

#[test]
fn bad_requests_are_refused_with_etcds_texts() {
    let e = env(WatchOptions::default());
    let s = e.ws.watch_stream();
    let empty = WatchRequest {
        key: b"b".to_vec(),
        range_end: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        s.watch(empty).unwrap_err().to_string(),
        "mvcc: watcher range is empty"
    );
    let neg = WatchRequest {
        start_rev: -1,
        ..key("a")
    };
    assert_eq!(s.watch(neg).unwrap_err(), WatchError::NegativeStartRevision);
    assert!(s.watch_ids().is_empty());
}

#[test]
fn cancel_and_dropping_a_stream_stop_delivery() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    let a = s.watch(key("a")).unwrap();
    let b = s.watch(key("b")).unwrap();
    assert!(s.cancel(a));
    assert!(!s.cancel(a));
    assert!(!s.cancel(99));
    e.store.put(b"a", b"v", 0).unwrap();
    e.store.put(b"b", b"v", 0).unwrap();
    let r = next(&mut s);
    assert_eq!(r.watch_id, b);
    assert_quiet(&mut s);
    assert_eq!(e.ws.stats().synced, 1);
    drop(s);
    assert_eq!(e.ws.stats(), Default::default());
}

#[test]
fn a_future_start_revision_waits_for_it() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    s.watch(WatchRequest {
        start_rev: 4,
        ..key("k")
    })
    .unwrap();
    e.store.put(b"k", b"1", 0).unwrap(); // 2
    e.store.put(b"k", b"2", 0).unwrap(); // 3
    e.store.put(b"k", b"3", 0).unwrap(); // 4
    let r = next(&mut s);
    assert_eq!(summary(&[r]), vec![("k".into(), 4, false)]);
}

#[test]
fn progress_on_request_answers_for_the_whole_stream_with_the_current_revision() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    s.request_progress(); // no watchers: answered at once
    let r = next(&mut s);
    assert_eq!((r.watch_id, r.revision), (STREAM_PROGRESS_WATCH_ID, 1));
    assert!(r.is_progress());
    s.watch(key("a")).unwrap();
    e.store.put(b"z", b"v", 0).unwrap(); // 2, not watched
    s.request_progress();
    let r = next(&mut s);
    assert_eq!((r.watch_id, r.revision, r.events.len()), (-1, 2, 0));
}

#[test]
fn progress_requested_while_catching_up_comes_after_the_history() {
    let e = env(WatchOptions {
        chan_capacity: 2,
        sync_batch_events: 50,
        ..WatchOptions::default()
    });
    let mut b = e.store.batch().unwrap();
    for i in 0..500u32 {
        b.put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
    }
    b.commit().unwrap(); // 2..=501
    let mut s = e.ws.watch_stream();
    s.watch(WatchRequest {
        start_rev: 2,
        ..prefix("k")
    })
    .unwrap();
    s.request_progress();
    let mut events = 0;
    loop {
        let r = next(&mut s);
        if r.watch_id == STREAM_PROGRESS_WATCH_ID {
            assert_eq!(r.revision, 501);
            break;
        }
        events += r.events.len();
    }
    assert_eq!(events, 500, "progress only once every event is out");
}

#[test]
fn idle_progress_notify_watchers_get_periodic_progress() {
    let e = env(WatchOptions {
        progress_interval: Duration::from_millis(30),
        sync_interval: Duration::from_millis(5),
        ..WatchOptions::default()
    });
    let mut s = e.ws.watch_stream();
    e.store.put(b"x", b"v", 0).unwrap(); // 2
    let id = s
        .watch(WatchRequest {
            progress_notify: true,
            ..key("k")
        })
        .unwrap();
    s.watch(key("other")).unwrap(); // no progress_notify: never gets one
    let r = next(&mut s);
    assert_eq!((r.watch_id, r.revision), (id, 2));
    assert!(r.is_progress());
    e.store.put(b"y", b"v", 0).unwrap(); // 3
    loop {
        let r = next(&mut s);
        assert_eq!(r.watch_id, id);
        if r.revision == 3 {
            break;
        }
    }
}

#[test]
fn close_ends_every_stream() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    s.watch(key("a")).unwrap();
    e.store.put(b"a", b"v", 0).unwrap();
    e.ws.close();
    assert_eq!(
        next(&mut s).events.len(),
        1,
        "queued responses are still read"
    );
    assert_eq!(s.recv_timeout(WAIT), None);
    assert_eq!(s.watch(key("a")).unwrap_err(), WatchError::Closed);
    e.store.put(b"a", b"v", 0).unwrap(); // the observer is inert now
}

#[test]
fn async_recv_works_in_a_runtime() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    s.watch(key("a")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = e.store.clone();
    let resp = rt.block_on(async move {
        store.put(b"a", b"v", 0).unwrap();
        tokio::time::timeout(WAIT, s.recv()).await.unwrap()
    });
    assert_eq!(resp.unwrap().revision, 2);
}

#[test]
fn the_public_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<WatchableStore>();
    send_sync::<etcd_watch::WatchController>();
    send::<WatchStream>();
}

#[test]
fn a_controller_manages_watchers_while_another_task_receives() {
    let e = env(WatchOptions::default());
    let mut s = e.ws.watch_stream();
    let ctl = s.controller();
    let store = e.store.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let got = rt.block_on(async move {
        let receiver = tokio::spawn(async move {
            let mut out = Vec::new();
            while out.len() < 2 {
                match tokio::time::timeout(WAIT, s.recv()).await {
                    Ok(Some(r)) => out.push(r),
                    _ => break,
                }
            }
            out
        });
        let a = ctl.watch(key("a")).unwrap();
        store.put(b"a", b"1", 0).unwrap();
        assert!(ctl.cancel(a));
        let b = ctl.watch(key("b")).unwrap();
        assert_eq!(ctl.watch_ids(), vec![b]);
        store.put(b"a", b"2", 0).unwrap();
        store.put(b"b", b"3", 0).unwrap();
        let got = receiver.await.unwrap();
        assert!(
            ctl.watch_ids().is_empty(),
            "the receiver dropped the stream"
        );
        got.into_iter()
            .map(|r| (r.watch_id, r.revision))
            .collect::<Vec<_>>()
    });
    assert_eq!(got, vec![(0, 2), (1, 4)]);
}

#[test]
fn a_controller_of_a_dropped_stream_is_inert() {
    let e = env(WatchOptions::default());
    let s = e.ws.watch_stream();
    let ctl = s.controller();
    drop(s);
    assert_eq!(ctl.watch(key("a")).unwrap_err(), WatchError::Closed);
    assert!(!ctl.cancel(0));
    ctl.request_progress();
    assert_eq!(e.ws.stats(), Default::default());
}

/// A store whose content is replaced by a snapshot that is 5 revisions ahead.
fn restored_ahead(e: &Env) {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy");
    e.store.backend().checkpoint(&copy).unwrap();
    let ahead = tmp.path().join("ahead");
    {
        let other = Store::open(&copy).unwrap();
        for i in 0..5 {
            other.put(format!("k{i}").as_bytes(), b"leader", 0).unwrap();
        }
        other.backend().checkpoint(&ahead).unwrap();
    }
    e.store.restore_from(&ahead).unwrap();
}

#[test]
fn after_a_restore_synced_watchers_catch_up_from_the_new_history() {
    for explicit in [true, false] {
        let e = env(WatchOptions::default());
        let mut s = e.ws.watch_stream();
        s.watch(prefix("k")).unwrap();
        e.store.put(b"k", b"before", 0).unwrap(); // 2
        assert_eq!(next(&mut s).revision, 2);
        restored_ahead(&e); // revisions 3..=7 arrive without commits
        if explicit {
            e.ws.restore();
        }
        e.store.put(b"k", b"after", 0).unwrap(); // 8
        let revs: Vec<i64> = summary(&read_events(&mut s, 6))
            .iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(revs, vec![3, 4, 5, 6, 7, 8], "explicit restore: {explicit}");
        assert_quiet(&mut s);
    }
}

#[test]
fn extreme_options_do_not_panic() {
    let e = env(WatchOptions {
        chan_capacity: usize::MAX,
        progress_interval: Duration::MAX,
        ..WatchOptions::default()
    });
    let mut s = e.ws.watch_stream();
    s.watch(WatchRequest {
        progress_notify: true,
        ..key("a")
    })
    .unwrap();
    e.store.put(b"a", b"v", 0).unwrap();
    assert_eq!(s.recv_timeout(Duration::MAX).unwrap().revision, 2);
    let e = env(WatchOptions {
        chan_capacity: 0,
        sync_batch_events: 0,
        ..WatchOptions::default()
    });
    e.store.put(b"a", b"1", 0).unwrap();
    e.store.put(b"a", b"2", 0).unwrap();
    let mut s = e.ws.watch_stream();
    s.watch(WatchRequest {
        start_rev: 1,
        ..key("a")
    })
    .unwrap();
    let revs: Vec<i64> = summary(&read_events(&mut s, 2))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(revs, vec![2, 3]);
}
