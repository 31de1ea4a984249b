//! A live watcher, a watcher that starts in the past, and a slow consumer, on one store.
//!
//! `cargo run -p etcd-watch --example watchers`

use std::sync::Arc;
use std::time::Duration;

use etcd_mvcc::Store;
use etcd_watch::{WatchOptions, WatchRequest, WatchableStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    // Some history before anyone watches: revisions 2..=1001.
    let mut b = store.batch()?;
    for i in 0..1000 {
        b.put(format!("jobs/{i:04}").as_bytes(), b"queued", 0)?;
    }
    b.commit()?;

    let ws = WatchableStore::new(
        store.clone(),
        WatchOptions {
            chan_capacity: 16, // small, to make the slow consumer a victim quickly
            ..WatchOptions::default()
        },
    );
    let prefix = |start_rev| WatchRequest {
        key: b"jobs/".to_vec(),
        range_end: b"jobs0".to_vec(),
        start_rev,
        prev_kv: true,
        ..Default::default()
    };
    let mut live = ws.watch_stream();
    live.watch(prefix(0))?;
    let mut history = ws.watch_stream();
    history.watch(prefix(2))?;
    let mut slow = ws.watch_stream();
    slow.watch(prefix(0))?;

    // A reader that keeps up with the live watcher.
    let reader = std::thread::spawn(move || {
        let mut responses = 0;
        let mut events = 0;
        while events < 200 {
            match live.recv_timeout(Duration::from_secs(30)) {
                Some(r) => {
                    responses += 1;
                    events += r.events.len();
                }
                None => break,
            }
        }
        (events, responses)
    });
    // 200 more writes; nobody reads `slow` or `history` meanwhile, and no write waits.
    for i in 0..200 {
        store.put(format!("jobs/{i:04}").as_bytes(), b"done", 0)?;
    }
    println!("after 200 writes: {:?}", ws.stats());
    let (events, responses) = reader.join().map_err(|_| "reader panicked")?;
    println!("   live: {events} events in {responses} responses, read as they happened");

    for (name, stream, want) in [("history", &mut history, 1200), ("slow", &mut slow, 200)] {
        let (mut events, mut responses, mut last_rev, mut with_prev) = (0, 0, 0, 0);
        while events < want {
            let r = stream
                .recv_timeout(Duration::from_secs(30))
                .ok_or("no response")?;
            responses += 1;
            for e in &r.events {
                let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                assert!(rev >= last_rev, "revision order");
                last_rev = rev;
                with_prev += usize::from(e.prev_kv.is_some());
            }
            events += r.events.len();
        }
        println!(
            "{name:>7}: {events} events in {responses} responses, \
             last revision {last_rev}, {with_prev} with prev_kv"
        );
    }
    println!("at the end: {:?}", ws.stats());
    Ok(())
}
