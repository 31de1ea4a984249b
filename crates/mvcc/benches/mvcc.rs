//! Criterion benchmarks of the mvcc store: puts (single and batched as the applier
//! batches), ranges of 1 and 1,000 keys at the current and an old revision, a txn, and the
//! compaction of 100k revisions.
//!
//! Run: `cargo bench -p etcd-mvcc --bench mvcc`

// Benchmark setup unwraps: a failure there is a broken benchmark.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etcd_mvcc::{ConsistentIndex, RangeOptions, Store, StoreOptions};

const VALUE: [u8; 256] = [7u8; 256];

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_with(
        dir.path(),
        StoreOptions {
            compaction_batch_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap()
}

/// `keys` keys written `versions` times each, 1,000 puts per batch.
fn load(store: &Store, keys: u64, versions: u64) {
    for _ in 0..versions {
        let mut i = 0;
        while i < keys {
            let mut b = store.batch().unwrap();
            for k in i..(i + 1000).min(keys) {
                b.put(&key(k), &VALUE, 0).unwrap();
            }
            b.commit().unwrap();
            i += 1000;
        }
    }
}

fn puts(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("single_put_per_batch", |b| {
        b.iter(|| {
            i += 1;
            store.put(&key(i % 100_000), &VALUE, 0).unwrap()
        })
    });
    g.throughput(Throughput::Elements(100));
    let mut index = 0u64;
    g.bench_function("100_puts_per_batch", |b| {
        b.iter(|| {
            let mut batch = store.batch().unwrap();
            for _ in 0..100 {
                i += 1;
                batch.put(&key(i % 100_000), &VALUE, 0).unwrap();
            }
            index += 100;
            batch.set_consistent_index(ConsistentIndex { index, term: 1 });
            batch.commit().unwrap()
        })
    });
    g.finish();
}

fn ranges(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // 10k keys, 3 versions each: revisions 2..=30_001.
    load(&store, 10_000, 3);
    let current = store.current_revision();
    let old = 12_000; // in the second round of versions
    let mut g = c.benchmark_group("range");
    for (name, rev) in [("current", 0), ("old", old)] {
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        g.throughput(Throughput::Elements(1));
        let mut i = 0u64;
        g.bench_function(format!("1_key_{name}_rev"), |b| {
            b.iter(|| {
                i = (i + 7919) % 10_000;
                let r = store.range(&key(i), b"", opts).unwrap();
                black_box(r.kvs.len())
            })
        });
        g.throughput(Throughput::Elements(1000));
        g.bench_function(format!("1000_keys_{name}_rev"), |b| {
            b.iter(|| {
                i = (i + 7919) % 9_000;
                let r = store.range(&key(i), &key(i + 1000), opts).unwrap();
                assert_eq!(r.kvs.len(), 1000);
                black_box(r.count)
            })
        });
    }
    g.finish();
    assert_eq!(store.current_revision(), current);
}

fn txns(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    load(&store, 10_000, 1);
    let mut g = c.benchmark_group("txn");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    // The shape of a compare-and-swap: read a key, then put two keys, in one revision.
    g.bench_function("read_then_2_puts", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            let mut batch = store.batch().unwrap();
            let mut t = batch.txn();
            let r = t.range(&key(i), b"", RangeOptions::default()).unwrap();
            black_box(r.count);
            t.put(&key(i), &VALUE, 0).unwrap();
            t.put(&key((i + 1) % 10_000), &VALUE, 0).unwrap();
            t.end();
            batch.commit().unwrap()
        })
    });
    g.finish();
}

fn compaction(c: &mut Criterion) {
    const REVISIONS: u64 = 100_000;
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(REVISIONS));
    // 10k keys x 10 versions = 100k revisions; compact at the end: 90k deleted.
    g.bench_function("compact_100k_revisions", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = open(&dir);
                load(&store, 10_000, REVISIONS / 10_000);
                (dir, store)
            },
            |(dir, store)| {
                let t = Instant::now();
                store
                    .compact(store.current_revision())
                    .unwrap()
                    .wait()
                    .unwrap();
                black_box(t.elapsed());
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, puts, ranges, txns, compaction);
criterion_main!(benches);
