//! `save` throughput with 1, 16 and 256 entries of 256 bytes per call, each call with
//! its fdatasync, beside the raw fdatasync rate of the same disk (4 KiB write +
//! fdatasync in a loop, in the same directory): the physical limit.
//!
//! Run: `cargo bench -p etcd-wal -- --warm-up-time 1 --measurement-time 3`. After
//! criterion's report a summary prints calls/s, records/s, MB/s, fdatasyncs per call
//! and the ratio of calls/s to the raw fdatasync rate.
#![allow(missing_docs, clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use etcd_proto::raftpb::{Entry, HardState};
use etcd_wal::{Wal, WalMetrics, WalOptions};

const ENTRY_BYTES: usize = 256;
const BATCHES: [usize; 3] = [1, 16, 256];

#[derive(Debug, Default)]
struct Count {
    fsyncs: AtomicU64,
}

impl WalMetrics for Count {
    fn observe_fsync(&self, _d: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
}

struct Writer {
    wal: Wal,
    next: u64,
    data: Bytes,
}

impl Writer {
    fn new(dir: &Path, metrics: Arc<Count>) -> Writer {
        let opts = WalOptions {
            metrics,
            ..WalOptions::default()
        };
        let wal = Wal::create_with(dir, b"bench", opts).unwrap();
        Writer {
            wal,
            next: 1,
            data: Bytes::from(vec![b'x'; ENTRY_BYTES]),
        }
    }

    fn save(&mut self, n: usize) {
        let ents: Vec<Entry> = (0..n as u64)
            .map(|i| Entry {
                r#type: 0,
                term: 1,
                index: self.next + i,
                data: self.data.clone(),
            })
            .collect();
        self.next += n as u64;
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: self.next - 1,
        };
        self.wal.save(&hs, &ents).unwrap();
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// fdatasyncs per second of 4 KiB appends in `dir`.
fn raw_fdatasync_rate(dir: &Path, for_time: Duration) -> f64 {
    let path = dir.join("raw");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let buf = vec![b'r'; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_time && n < 1_000_000 {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    rate
}

fn bench_save(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_save");
    for n in BATCHES {
        let tmp = bench_dir();
        let mut w = Writer::new(&tmp.path().join("wal"), Arc::new(Count::default()));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("entries_256B", n), &n, |b, &n| {
            b.iter(|| w.save(n))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("raw_fdatasync");
    let tmp = bench_dir();
    let path = tmp.path().join("raw");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let buf = vec![b'r'; 4096];
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("write_4KiB_fdatasync", |b| {
        b.iter(|| {
            f.write_all(&buf).unwrap();
            f.sync_data().unwrap();
        })
    });
    g.finish();
}

fn summary() {
    let tmp = bench_dir();
    let measure = Duration::from_secs(3);
    let raw = raw_fdatasync_rate(tmp.path(), measure);
    println!(
        "\n== etcd-wal save summary (disk of {}) ==",
        tmp.path().display()
    );
    println!("raw 4 KiB write + fdatasync: {raw:.0} /s (the physical limit for calls/s)");
    println!(
        "{:>8} {:>10} {:>12} {:>9} {:>14} {:>10}",
        "entries", "calls/s", "records/s", "MB/s", "fsyncs/call", "vs raw"
    );
    for n in BATCHES {
        let count = Arc::new(Count::default());
        let mut w = Writer::new(&tmp.path().join(format!("wal-{n}")), count.clone());
        let base = count.fsyncs.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < measure && calls < 1_000_000 {
            w.save(n);
            calls += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let fsyncs = count.fsyncs.load(Ordering::Relaxed) - base;
        let rate = calls as f64 / secs;
        println!(
            "{:>8} {:>10.0} {:>12.0} {:>9.2} {:>14.3} {:>9.1}%",
            n,
            rate,
            rate * n as f64,
            rate * (n * ENTRY_BYTES) as f64 / 1e6,
            fsyncs as f64 / calls as f64,
            100.0 * rate / raw
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_save(&mut c);
    c.final_summary();
    summary();
}
