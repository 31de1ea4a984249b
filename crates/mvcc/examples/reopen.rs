//! Index memory per key and reopen time for a store of many keys.
//!
//! Writes N keys (8-byte big-endian keys, 256-byte values; N = 1,000,000 by default, or
//! the first argument), closes the store cleanly, and measures:
//! - the time to reopen it (the key index is rebuilt from RocksDB);
//! - index memory per key, two ways: the bytes the keys and key indexes ask the allocator
//!   for (exact accounting from the index itself, B-tree nodes excluded), and the growth of
//!   the process's resident memory while building the same index alone (everything,
//!   B-tree nodes and malloc overhead included). A counting global allocator would need
//!   `unsafe`, which the workspace forbids, hence the resident-set measurement.
//! - with `--compact`: writes every key once more and times the compaction of the first N
//!   revisions (what the applier pays, then the index and RocksDB work of the compactor
//!   thread).
//!
//! Run: `cargo run --release -p etcd-mvcc --example reopen -- 1000000 --compact`

// An example's setup unwraps: any failure ends the measurement.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use etcd_mvcc::{Revision, Store, StoreOptions, TreeIndex};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn write_all(store: &Store, n: u64, value: &[u8]) {
    let mut i = 0;
    while i < n {
        let mut b = store.batch().unwrap();
        for k in i..(i + 1000).min(n) {
            b.put(&k.to_be_bytes(), value, 0).unwrap();
        }
        b.commit().unwrap();
        i += 1000;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let compact = args.iter().any(|a| a == "--compact");
    let value = vec![b'v'; 256];
    let dir = tempfile::tempdir().unwrap();

    // Index memory: build the index alone, as open() does, and watch the resident set.
    let rss0 = rss_bytes();
    let index = TreeIndex::new();
    for k in 0..n {
        index.put(&k.to_be_bytes(), Revision::new(k as i64 + 2, 0));
    }
    let rss1 = rss_bytes();
    let accounted = index.heap_bytes_excluding_tree_nodes();
    println!(
        "index of {n} keys: {:.1} B/key requested by keys + key indexes (B-tree nodes excluded); \
         {:.1} B/key resident-set growth (everything)",
        accounted as f64 / n as f64,
        (rss1.saturating_sub(rss0)) as f64 / n as f64
    );
    drop(index);

    let t = Instant::now();
    {
        let store = Store::open(dir.path()).unwrap();
        write_all(&store, n, &value);
    }
    println!(
        "wrote {n} keys in batches of 1000 and closed in {:.2?}",
        t.elapsed()
    );

    let t = Instant::now();
    let store = Store::open(dir.path()).unwrap();
    let reopen = t.elapsed();
    assert_eq!(store.index_len() as u64, n);
    println!(
        "reopened {n} keys in {reopen:.2?} (current revision {})",
        store.current_revision()
    );

    if compact {
        let opts = StoreOptions {
            compaction_batch_interval: std::time::Duration::ZERO,
            ..Default::default()
        };
        drop(store);
        let store = Store::open_with(dir.path(), opts).unwrap();
        write_all(&store, n, &value);
        let at = n as i64 + 1;
        let t = Instant::now();
        let h = store.compact(at).unwrap();
        let applier = t.elapsed();
        h.wait().unwrap();
        println!(
            "compacted {n} revisions: the applier's share (compact + commit) {applier:.2?}; \
             index + backend compaction on the compactor thread done after {:.2?}",
            t.elapsed()
        );
    }
}
