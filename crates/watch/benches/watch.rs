//! Criterion benchmarks of the watchable store: a put delivered to 0, 1, 100 and 10,000
//! synced watchers, on distinct keys (one watcher concerned per put) and on one shared
//! prefix (every watcher concerned); and the catch-up of one unsynced watcher over
//! 100,000 events of history (with and without `prev_kv`).
//!
//! Run: `cargo bench -p etcd-watch --bench watch -- --warm-up-time 1 --measurement-time 3`

// Benchmark setup unwraps: a failure there is a broken benchmark.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etcd_mvcc::Store;
use etcd_watch::{WatchOptions, WatchRequest, WatchableStore};

fn key(i: u64) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

/// A store with `n` synced watchers in one stream drained by a thread; each watches its
/// own key (`shared = false`) or the prefix `key/` (`shared = true`). Returns the store,
/// the watchable store and the count of events the drainer has received.
fn with_watchers(
    dir: &tempfile::TempDir,
    n: u64,
    shared: bool,
) -> (
    Arc<Store>,
    Arc<WatchableStore>,
    Arc<AtomicU64>,
    std::thread::JoinHandle<()>,
) {
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ws = WatchableStore::new(
        store.clone(),
        WatchOptions {
            chan_capacity: 1 << 16,
            ..WatchOptions::default()
        },
    );
    let mut stream = ws.watch_stream();
    for i in 0..n {
        let req = if shared {
            WatchRequest {
                key: b"key/".to_vec(),
                range_end: b"key0".to_vec(),
                ..Default::default()
            }
        } else {
            WatchRequest {
                key: key(i),
                ..Default::default()
            }
        };
        stream.watch(req).unwrap();
    }
    let seen = Arc::new(AtomicU64::new(0));
    let drained = seen.clone();
    let drainer = std::thread::spawn(move || {
        while let Some(r) = stream.blocking_recv() {
            drained.fetch_add(r.events.len() as u64, Ordering::Relaxed);
        }
    });
    (store, ws, seen, drainer)
}

fn delivery(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_delivered_to_synced_watchers");
    for shared in [false, true] {
        for n in [0u64, 1, 100, 10_000] {
            if shared && n == 0 {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let (store, ws, seen, drainer) = with_watchers(&dir, n, shared);
            let per_put = if shared { n } else { n.min(1) };
            g.throughput(Throughput::Elements(per_put.max(1)));
            let name = if shared {
                "shared_prefix"
            } else {
                "distinct_keys"
            };
            let mut i = 0u64;
            let mut expected = 0u64;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| {
                    let k = if n == 0 { i } else { i % n };
                    store.put(&key(k), b"value", 0).unwrap();
                    i += 1;
                    expected += per_put;
                    // Keep the drainer within reach, so the channel never fills.
                    if expected.saturating_sub(seen.load(Ordering::Relaxed)) > 30_000 {
                        while expected.saturating_sub(seen.load(Ordering::Relaxed)) > 1_000 {
                            std::thread::yield_now();
                        }
                    }
                })
            });
            while seen.load(Ordering::Relaxed) < expected {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(ws.stats().victims, 0);
            ws.close();
            drainer.join().unwrap();
        }
    }
    g.finish();
}

fn catch_up(c: &mut Criterion) {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    for chunk in 0..N / 1000 {
        let mut b = store.batch().unwrap();
        for i in 0..1000 {
            // 10,000 keys updated 10 times: updates have a previous version.
            b.put(&key((chunk * 1000 + i) % 10_000), b"value", 0)
                .unwrap();
        }
        b.commit().unwrap();
    }
    let ws = WatchableStore::new(store.clone(), WatchOptions::default());
    let mut g = c.benchmark_group("catch_up_unsynced_watcher");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    for prev_kv in [false, true] {
        let name = if prev_kv {
            "100k_events_prev_kv"
        } else {
            "100k_events"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = ws.watch_stream();
                s.watch(WatchRequest {
                    key: b"key/".to_vec(),
                    range_end: b"key0".to_vec(),
                    start_rev: 2,
                    prev_kv,
                    ..Default::default()
                })
                .unwrap();
                let mut got = 0u64;
                while got < N {
                    match s.try_recv() {
                        Some(r) => got += r.events.len() as u64,
                        None => {
                            ws.sync_now();
                        }
                    }
                }
                assert_eq!(got, N);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, delivery, catch_up);
criterion_main!(benches);
