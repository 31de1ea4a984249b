//! Criterion benchmarks of the lessor with 100,000 leases: granting them (records written
//! in one applier batch), renewing them, and handing them out as expired; plus revoking
//! 100,000 expired leases with one key each through the store.
//!
//! Run: `cargo bench -p etcd-lease --bench lessor -- --warm-up-time 1 --measurement-time 3`

// Benchmark setup unwraps: a failure there is a broken benchmark.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etcd_lease::{Lessor, LessorConfig, ManualClock};
use etcd_mvcc::Store;

const N: i64 = 100_000;

fn cfg() -> LessorConfig {
    LessorConfig {
        expired_batch: 1000,
        ..LessorConfig::default()
    }
}

/// A primary lessor with `N` leases of TTL 10..=1009 s, granted in one batch; with one key
/// each if `keys`.
fn loaded(store: &Store, clock: &Arc<ManualClock>, keys: bool) -> Lessor {
    let lessor = Lessor::new(cfg(), clock.clone());
    lessor.promote(Duration::ZERO);
    let mut b = store.batch().unwrap();
    for id in 1..=N {
        lessor.grant(&mut b, id, 10 + id % 1000).unwrap();
        if keys {
            let r = b.put(&id.to_be_bytes(), b"v", id).unwrap();
            lessor.apply_events(&r.events);
        }
    }
    b.commit().unwrap();
    lessor
}

fn lessor_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("lessor_100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));

    g.bench_function("grant", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                (dir, store, Arc::new(ManualClock::new()))
            },
            |(dir, store, clock)| {
                let lessor = Lessor::new(cfg(), clock);
                lessor.promote(Duration::ZERO);
                let mut b = store.batch().unwrap();
                for id in 1..=N {
                    lessor.grant(&mut b, id, 10 + id % 1000).unwrap();
                }
                b.commit().unwrap();
                (dir, store, lessor)
            },
            BatchSize::PerIteration,
        )
    });

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new());
    let lessor = loaded(&store, &clock, false);
    g.bench_function("renew", |b| {
        b.iter(|| {
            for id in 1..=N {
                lessor.renew(id).unwrap();
            }
        })
    });
    drop(lessor);

    g.bench_function("expired_handout", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                let clock = Arc::new(ManualClock::new());
                let lessor = loaded(&store, &clock, false);
                clock.advance(Duration::from_secs(2000));
                (dir, store, lessor)
            },
            |(dir, store, lessor)| {
                let mut n = 0;
                loop {
                    let ids = lessor.expired(1000);
                    if ids.is_empty() {
                        break;
                    }
                    n += ids.len();
                }
                assert_eq!(n, N as usize);
                (dir, store, lessor)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("expire_and_revoke_with_one_key_each", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                let clock = Arc::new(ManualClock::new());
                let lessor = loaded(&store, &clock, true);
                clock.advance(Duration::from_secs(2000));
                (dir, store, lessor)
            },
            |(dir, store, lessor)| {
                loop {
                    let ids = lessor.expired(1000);
                    if ids.is_empty() {
                        break;
                    }
                    let mut b = store.batch().unwrap();
                    for id in ids {
                        let r = lessor.revoke(&mut b, id).unwrap();
                        lessor.apply_events(&r.events);
                    }
                    b.commit().unwrap();
                }
                assert!(lessor.is_empty());
                (dir, store, lessor)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lessor_benches);
criterion_main!(benches);
