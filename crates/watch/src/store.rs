//! The watchable store: the mvcc store, its observer, and the background sync thread.
//!
//! Owns the shared state ([`Shared`]: options, the registry mutex, the wake-up channel)
//! and the thread that catches up unsynced watchers, retries victims and sends periodic
//! progress. The observer ([`Shared::on_commit`]) runs on the applier's thread under the
//! mvcc writer lock: it only matches events against the synced group and `try_send`s, so
//! a slow watcher never blocks a write.
//!
//! Invariant kept: the registry mutex is never held across a store read (history pages,
//! previous versions), so the observer, and with it the applier, never waits on disk I/O
//! done for watchers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use etcd_mvcc::{Event, Observer, Store};
use parking_lot::Mutex;

use crate::state::{send, Inner};
use crate::stream::WatchStream;
use crate::watcher::WatchResponse;

/// Most unsynced watchers served by one catch-up round (etcd: 512).
pub(crate) const MAX_WATCHERS_PER_SYNC: usize = 512;

/// Tuning of the [`WatchableStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Capacity of each stream's response channel, in responses (etcd: 128; clamped to
    /// `1..=`[`crate::MAX_CHAN_CAPACITY`]).
    pub chan_capacity: usize,
    /// Pause between catch-up rounds when there is nothing more to do right away
    /// (etcd: 100 ms). Also the granularity of periodic progress.
    pub sync_interval: Duration,
    /// Events read from history per catch-up round (a revision is never split, so a
    /// round may read a few more).
    pub sync_batch_events: usize,
    /// Interval of progress responses to idle `progress_notify` watchers (etcd: 10 min,
    /// plus up to 10% of jitter per stream).
    pub progress_interval: Duration,
    /// Pause between retries of victims (watchers whose channel was full; etcd: 10 ms).
    pub victim_retry: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            chan_capacity: 128,
            sync_interval: Duration::from_millis(100),
            sync_batch_events: 1000,
            progress_interval: Duration::from_secs(10 * 60),
            victim_retry: Duration::from_millis(10),
        }
    }
}

/// How many watchers are where (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Open watch streams.
    pub streams: usize,
    /// Watchers fed live by every commit.
    pub synced: usize,
    /// Watchers catching up from history.
    pub unsynced: usize,
    /// Watchers whose channel was full, waiting for a retry.
    pub victims: usize,
}

impl WatchStats {
    /// Watchers not yet synced (unsynced + victims).
    pub fn pending(&self) -> usize {
        self.unsynced + self.victims
    }
}

/// State shared by the store handle, its streams, the observer and the sync thread.
pub(crate) struct Shared {
    pub(crate) opts: WatchOptions,
    pub(crate) inner: Mutex<Inner>,
    kick_tx: Sender<()>,
    kick_rx: Receiver<()>,
    stop: AtomicBool,
}

impl Shared {
    /// Wakes the sync thread (never blocks).
    pub(crate) fn kick(&self) {
        let _ = self.kick_tx.try_send(());
    }
}

impl Observer for Shared {
    fn on_commit(&self, revision: i64, events: &[Event]) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.closed {
            return;
        }
        let first = events
            .first()
            .and_then(|e| e.kv.as_ref())
            .map_or(revision, |kv| kv.mod_revision);
        if first > inner.notified_rev + 1 {
            // Revisions were skipped: the store was restored without a call to
            // `WatchableStore::restore`. Catch everyone up from history instead.
            tracing::warn!(
                notified_rev = inner.notified_rev,
                first_rev = first,
                "watchable store missed revisions (store restored?); \
                 synced watchers catch up from history"
            );
            let old = inner.notified_rev;
            if inner.unsync_all(old, revision) {
                self.kick();
            }
            return;
        }
        inner.notified_rev = inner.notified_rev.max(revision);
        if inner.synced.is_empty() {
            return;
        }
        let mut touched = Vec::new();
        {
            let Inner {
                synced, watchers, ..
            } = &mut *inner;
            for (i, ev) in events.iter().enumerate() {
                let Some(kv) = &ev.kv else { continue };
                let rev = kv.mod_revision;
                let Ok(i) = u32::try_from(i) else { break };
                synced.for_each_match(&kv.key, |h| {
                    if let Some(w) = watchers.get_mut(&h) {
                        if rev >= w.min_rev && w.wants(ev) {
                            if w.scratch.is_empty() {
                                touched.push(h);
                            }
                            w.scratch.push(i);
                        }
                    }
                });
            }
        }
        let mut victims = false;
        for h in touched {
            let Inner {
                watchers, streams, ..
            } = &mut *inner;
            let Some(w) = watchers.get_mut(&h) else {
                continue;
            };
            let evs: Vec<Event> = w
                .scratch
                .iter()
                .filter_map(|&i| events.get(i as usize))
                .map(|ev| w.shape(ev))
                .collect();
            w.scratch.clear();
            w.min_rev = revision + 1;
            w.sent_events = true;
            let resp = WatchResponse {
                watch_id: w.id,
                events: evs,
                revision,
                ..Default::default()
            };
            if !send(streams, w, resp) {
                inner.make_victim(h);
                victims = true;
            }
        }
        if victims {
            self.kick();
        }
    }
}

/// The multi-version store plus watchers. Create it with [`WatchableStore::new`], open
/// streams with [`WatchableStore::watch_stream`].
pub struct WatchableStore {
    store: Arc<Store>,
    pub(crate) shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WatchableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchableStore")
            .field("stats", &self.stats())
            .finish()
    }
}

impl WatchableStore {
    /// Wraps `store`: installs itself as the store's [`Observer`] (replacing any other) and
    /// starts the background sync thread (`etcd-watch-sync`). If the thread cannot be
    /// started, this is logged and watchers that start in the past only catch up through
    /// [`WatchableStore::sync_now`].
    pub fn new(store: Arc<Store>, opts: WatchOptions) -> Arc<WatchableStore> {
        let (kick_tx, kick_rx) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            opts,
            inner: Mutex::new(Inner::default()),
            kick_tx,
            kick_rx,
            stop: AtomicBool::new(false),
        });
        store.set_observer(shared.clone());
        {
            // Every batch committed before the observer was installed is at or below the
            // current revision read now; every later one reaches the observer.
            let mut inner = shared.inner.lock();
            inner.notified_rev = inner.notified_rev.max(store.current_revision());
        }
        let worker = {
            let (shared, store) = (shared.clone(), store.clone());
            std::thread::Builder::new()
                .name("etcd-watch-sync".into())
                .spawn(move || run(&shared, &store))
        };
        let worker = match worker {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "cannot start the watch sync thread; watchers that start in the past \
                     will not catch up: raise the process's thread limit"
                );
                None
            }
        };
        Arc::new(WatchableStore {
            store,
            shared,
            worker: Mutex::new(worker),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The store's current revision.
    pub fn rev(&self) -> i64 {
        self.store.current_revision()
    }

    /// The options.
    pub fn options(&self) -> &WatchOptions {
        &self.shared.opts
    }

    /// Opens a watch stream: a set of watchers sharing one bounded response channel.
    pub fn watch_stream(self: &Arc<Self>) -> WatchStream {
        WatchStream::open(self.clone())
    }

    /// Counts of streams and watchers by group.
    pub fn stats(&self) -> WatchStats {
        let inner = self.shared.inner.lock();
        WatchStats {
            streams: inner.streams.len(),
            synced: inner.synced.len(),
            unsynced: inner.unsynced.len(),
            victims: inner.victims.len(),
        }
    }

    /// Runs one round of the background work on the calling thread: retry victims, send
    /// owed and periodic progress, one catch-up round of unsynced watchers. Returns the
    /// stats after it. The background thread does the same on its own; calling this is
    /// for tests and benchmarks that want to drive catch-up deterministically.
    pub fn sync_now(&self) -> WatchStats {
        self.shared.maintain(&self.store, Instant::now());
        self.stats()
    }

    /// Call after the store's content was replaced (`Store::restore_from`, a snapshot
    /// from the leader), before the next write: every synced watcher catches up from the
    /// restored history (and is canceled with `compact_revision` if that history no longer
    /// reaches back to it), as etcd's `watchableStore.Restore` does. Unsynced watchers and
    /// victims continue from the new history anyway. (A commit that skips revisions
    /// triggers the same, as a safety net, with a warning.)
    pub fn restore(&self) {
        let current = self.store.current_revision();
        let moved = {
            let mut inner = self.shared.inner.lock();
            let old = inner.notified_rev;
            inner.unsync_all(old, current)
        };
        if moved {
            self.shared.kick();
        }
    }

    /// Stops the background thread and ends every stream: their `recv` returns `None`
    /// once the responses already queued are read. Idempotent.
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.kick();
        if let Some(h) = self.worker.lock().take() {
            if h.join().is_err() {
                tracing::error!("the watch sync thread panicked");
            }
        }
        let mut inner = self.shared.inner.lock();
        inner.closed = true;
        inner.streams.clear();
        inner.watchers.clear();
        inner.synced = Default::default();
        inner.unsynced.clear();
        inner.victims.clear();
    }
}

impl Drop for WatchableStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The background sync thread.
fn run(shared: &Shared, store: &Store) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let more = shared.maintain(store, Instant::now());
        let wait = if more {
            // More history to read right away; let the applier and readers in first.
            std::thread::yield_now();
            continue;
        } else if shared.inner.lock().victims.is_empty() {
            shared.opts.sync_interval
        } else {
            shared.opts.victim_retry
        };
        match shared.kick_rx.recv_timeout(wait) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}
