//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::raftpb::{Entry, HardState};
use etcd_wal::{WalMetrics, WalOptions};

/// An entry whose data is printable (never a zero byte), so that a flipped byte in it
/// can never look like an unwritten sector.
pub fn entry(index: u64, term: u64, len: usize) -> Entry {
    let data: Vec<u8> = (0..len)
        .map(|i| b'a' + ((index as usize * 7 + i) % 26) as u8)
        .collect();
    Entry {
        r#type: 0,
        term,
        index,
        data: data.into(),
    }
}

pub fn state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 1,
        commit,
    }
}

/// Counts fsyncs and bytes.
#[derive(Debug, Default)]
pub struct Counting {
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
}

impl WalMetrics for Counting {
    fn observe_fsync(&self, _d: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
    fn add_bytes_written(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

pub fn small(segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        ..WalOptions::default()
    }
}

pub fn counting(segment_size_bytes: u64) -> (WalOptions, Arc<Counting>) {
    let c = Arc::new(Counting::default());
    (
        WalOptions {
            segment_size_bytes,
            metrics: c.clone(),
        },
        c,
    )
}

/// The `.wal` files of a directory, sorted.
pub fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}
