//! A real crash: a child process applies batches and reports each committed consistent
//! index; the parent kills it with SIGKILL mid-stream, reopens the store, and checks that
//! every acknowledged batch survived and that the state is exactly the applied prefix
//! named by the consistent index.

// Test helpers outside #[test] fns unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use etcd_mvcc::{ConsistentIndex, RangeOptions, Store};

const CHILD_ENV: &str = "ETCD_MVCC_KILL_TEST_DIR";
const ENTRIES_PER_BATCH: u64 = 10;
const MAX_BATCHES: u64 = 100_000;

/// Entry `i` puts key `k{i % 50}` = `v{i}`.
fn apply_batch(store: &Store, first_entry: u64) {
    let mut b = store.batch().unwrap();
    for i in first_entry..first_entry + ENTRIES_PER_BATCH {
        b.put(
            format!("k{}", i % 50).as_bytes(),
            format!("v{i}").as_bytes(),
            0,
        )
        .unwrap();
    }
    b.set_consistent_index(ConsistentIndex {
        index: first_entry + ENTRIES_PER_BATCH - 1,
        term: 1,
    });
    b.commit().unwrap();
}

fn child(dir: &str) {
    let store = Store::open(dir).unwrap();
    for n in 0..MAX_BATCHES {
        apply_batch(&store, 1 + n * ENTRIES_PER_BATCH);
        // The acknowledgement: printed only after commit returned.
        println!("acked {}", store.consistent_index().index);
    }
}

#[test]
fn batches_acknowledged_before_a_sigkill_survive_it() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "batches_acknowledged_before_a_sigkill_survive_it",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let mut last_acked = 0u64;
    for line in BufReader::new(stdout).lines().take(300) {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            last_acked = n.trim().parse().unwrap();
        }
    }
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    assert!(last_acked > 0, "the child acknowledged nothing");

    let store = Store::open(dir.path()).unwrap();
    let ci = store.consistent_index().index;
    assert!(
        ci >= last_acked,
        "acknowledged {last_acked}, recovered {ci}"
    );
    // The state is exactly entries 1..=ci: one revision per entry, last writer wins.
    assert_eq!(store.current_revision(), 1 + ci as i64);
    let r = store.range(b"k", b"l", RangeOptions::default()).unwrap();
    assert_eq!(r.count, 50.min(ci as usize));
    for kv in &r.kvs {
        let i: u64 = std::str::from_utf8(&kv.value[1..])
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            i <= ci && i + 50 > ci,
            "{kv:?} is not the last write of its key"
        );
        assert_eq!(kv.mod_revision, 1 + i as i64);
    }
    // Replaying the rest of the log continues without a gap.
    apply_batch(&store, ci + 1);
    assert_eq!(
        store.current_revision(),
        1 + (ci + ENTRIES_PER_BATCH) as i64
    );
}
