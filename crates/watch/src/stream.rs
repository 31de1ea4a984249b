//! A watch stream: watchers that share one bounded response channel (one gRPC Watch
//! stream in the server).
//!
//! Owns the receiving end of the stream's channel and the stream's registration; dropping
//! it cancels every watcher of the stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::error::WatchError;
use crate::store::WatchableStore;
use crate::watcher::{WatchRequest, WatchResponse};

/// The largest channel capacity honoured (larger [`crate::WatchOptions::chan_capacity`]
/// values are clamped to it).
pub const MAX_CHAN_CAPACITY: usize = 1 << 24;

/// How long [`WatchStream::recv_timeout`] sleeps between polls.
const POLL: Duration = Duration::from_millis(1);

/// A set of watchers sharing one bounded channel of [`WatchResponse`]s.
///
/// Ordering: responses of one watcher arrive in revision order, every event once, no
/// revision split across responses. Responses of different watchers interleave. A
/// created/canceled confirmation is the server's to send: responses for a new watch id
/// may be received before the server has announced it (etcd's server buffers them until
/// it has), and responses queued before a [`WatchStream::cancel`] may still be received
/// after it.
pub struct WatchStream {
    ctl: WatchController,
    rx: mpsc::Receiver<WatchResponse>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("id", &self.ctl.sid)
            .finish()
    }
}

/// A cloneable handle that creates and cancels watchers of one [`WatchStream`] (and asks
/// for its progress) from another task or thread while the stream itself is receiving:
/// one task can own the stream and `recv().await` while another handles the client's
/// requests. After the stream is dropped, [`WatchController::watch`] fails with
/// [`WatchError::Closed`] and the rest do nothing.
#[derive(Clone)]
pub struct WatchController {
    ws: Arc<WatchableStore>,
    sid: u64,
}

impl std::fmt::Debug for WatchController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchController")
            .field("stream", &self.sid)
            .finish()
    }
}

/// Up to 10% of `interval`, derived from the stream id (etcd jitters each stream's
/// progress ticker so streams opened together do not tick together).
fn jitter(interval: Duration, sid: u64) -> Duration {
    let mut z = sid.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    let permille = u32::try_from(z % 100).unwrap_or(0);
    interval / 1000 * permille
}

impl WatchStream {
    pub(crate) fn open(ws: Arc<WatchableStore>) -> WatchStream {
        let opts = ws.options();
        let (tx, rx) = mpsc::channel(opts.chan_capacity.clamp(1, MAX_CHAN_CAPACITY));
        let interval = opts.progress_interval;
        let sid = {
            let mut inner = ws.shared.inner.lock();
            let sid = inner.next_stream;
            inner.add_stream(
                tx,
                interval.saturating_add(jitter(interval, sid)),
                Instant::now(),
            )
        };
        WatchStream {
            ctl: WatchController { ws, sid },
            rx,
        }
    }

    /// Creates a watcher; see [`WatchController::watch`].
    pub fn watch(&self, req: WatchRequest) -> Result<i64, WatchError> {
        self.ctl.watch(req)
    }

    /// Cancels watch `id`; see [`WatchController::cancel`].
    pub fn cancel(&self, id: i64) -> bool {
        self.ctl.cancel(id)
    }

    /// Asks for a stream-wide progress response; see [`WatchController::request_progress`].
    pub fn request_progress(&self) {
        self.ctl.request_progress()
    }

    /// A handle to manage this stream's watchers from elsewhere while it receives.
    pub fn controller(&self) -> WatchController {
        self.ctl.clone()
    }

    /// The store's current revision (for response headers).
    pub fn rev(&self) -> i64 {
        self.ctl.ws.rev()
    }

    /// The watch ids of this stream's watchers, sorted.
    pub fn watch_ids(&self) -> Vec<i64> {
        self.ctl.watch_ids()
    }

    /// The next response; `None` once the watchable store is closed and the queue is read.
    pub async fn recv(&mut self) -> Option<WatchResponse> {
        self.rx.recv().await
    }

    /// The next response if one is queued.
    pub fn try_recv(&mut self) -> Option<WatchResponse> {
        self.rx.try_recv().ok()
    }

    /// The next response, blocking the thread (not for use inside an async runtime: that
    /// panics, as tokio's `blocking_recv` does).
    pub fn blocking_recv(&mut self) -> Option<WatchResponse> {
        self.rx.blocking_recv()
    }

    /// The next response, waiting at most `timeout` (polls; meant for tests and tools).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<WatchResponse> {
        // A timeout beyond Instant's range waits without end.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.rx.try_recv() {
                Ok(r) => return Some(r),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return None
                }
                Err(TryRecvError::Empty) => std::thread::sleep(POLL),
            }
        }
    }
}

impl WatchController {
    /// Creates a watcher; returns its watch id. Errors: [`WatchError::DuplicateId`],
    /// [`WatchError::EmptyRange`], [`WatchError::NegativeStartRevision`],
    /// [`WatchError::Closed`]. A start revision at or below the compacted revision is not
    /// an error: the watcher gets one response with `compact_revision` and `canceled`.
    pub fn watch(&self, req: WatchRequest) -> Result<i64, WatchError> {
        let shared = &self.ws.shared;
        let store = self.ws.store();
        let (id, added) = {
            let mut inner = shared.inner.lock();
            // Read under the mutex: the observer publishes nothing newer meanwhile.
            let current = store.current_revision();
            let compact = store.compact_revision();
            inner.add_watcher(self.sid, &req, current, compact)?
        };
        if matches!(added, crate::state::Added::Kick) {
            shared.kick();
        }
        Ok(id)
    }

    /// Cancels watch `id`; `false` if the stream has no such watcher. No response for it
    /// is queued after this returns.
    pub fn cancel(&self, id: i64) -> bool {
        self.ws.shared.inner.lock().cancel(self.sid, id)
    }

    /// Asks for a progress response (watch id -1, the current revision, no events), sent
    /// as soon as every watcher of the stream is synced: at once if they are (or if there
    /// are none), later if some are still catching up. (etcd v3.5 drops the request in
    /// that case; v3.6 defers it like this.)
    pub fn request_progress(&self) {
        let shared = &self.ws.shared;
        let done = {
            let mut inner = shared.inner.lock();
            if let Some(s) = inner.streams.get_mut(&self.sid) {
                s.progress_requested = true;
            }
            inner.try_stream_progress(self.sid)
        };
        if !done {
            shared.kick();
        }
    }

    /// The watch ids of the stream's watchers, sorted.
    pub fn watch_ids(&self) -> Vec<i64> {
        let inner = self.ws.shared.inner.lock();
        let mut ids: Vec<i64> = inner
            .streams
            .get(&self.sid)
            .map(|s| s.ids.keys().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.ctl.ws.shared.inner.lock().remove_stream(self.ctl.sid);
    }
}
