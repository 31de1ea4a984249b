//! The watcher registry: streams, watchers, the three groups, and delivery.
//!
//! Owns everything the watchable store's mutex protects: the streams (each with its
//! channel sender and its watch ids), the watchers, the synced group (indexed by span),
//! the unsynced and victim sets, and `notified_rev`, the last revision the observer has
//! delivered to the synced group. Every path that puts a response in a channel runs
//! under this mutex, which is what orders them.
//!
//! Invariants kept:
//! - a watcher is in exactly one of synced / unsynced / victims, as its `group` says;
//! - a synced watcher has received every wanted event below `max(min_rev,
//!   notified_rev + 1)`, and the observer delivers the rest; an unsynced watcher has
//!   `min_rev <= notified_rev` or is about to be moved; a victim's undelivered responses
//!   are all in its `pending` queue, so nothing is dropped and nothing overtakes them;
//! - progress responses go only to synced watchers (no pending, nothing unsent below
//!   `notified_rev`), so they never claim a revision whose events are still queued.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::error::WatchError;
use crate::group::WatcherGroup;
use crate::watcher::{
    Group, WatchRequest, WatchResponse, Watcher, AUTO_WATCH_ID, STREAM_PROGRESS_WATCH_ID,
};

/// One watch stream's registry entry.
pub(crate) struct StreamState {
    pub(crate) tx: mpsc::Sender<WatchResponse>,
    /// Watch id -> watcher handle.
    pub(crate) ids: HashMap<i64, u64>,
    pub(crate) next_id: i64,
    /// A stream-wide progress response is owed (sent once every watcher is synced).
    pub(crate) progress_requested: bool,
    pub(crate) progress_period: Duration,
    pub(crate) next_progress: Instant,
}

/// Everything behind the watchable store's mutex.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) closed: bool,
    pub(crate) notified_rev: i64,
    pub(crate) watchers: HashMap<u64, Watcher>,
    pub(crate) synced: WatcherGroup,
    pub(crate) unsynced: BTreeSet<u64>,
    pub(crate) victims: BTreeSet<u64>,
    pub(crate) streams: HashMap<u64, StreamState>,
    pub(crate) next_handle: u64,
    pub(crate) next_stream: u64,
}

/// Puts `resp` in `w`'s stream channel, or behind its pending responses. Returns `false`
/// when the response was queued in `pending` (the watcher must become a victim).
pub(crate) fn send(
    streams: &HashMap<u64, StreamState>,
    w: &mut Watcher,
    resp: WatchResponse,
) -> bool {
    if !w.pending.is_empty() {
        w.pending.push_back(resp);
        return false;
    }
    let Some(s) = streams.get(&w.stream) else {
        return true; // the stream is gone: nobody to deliver to
    };
    match s.tx.try_send(resp) {
        Ok(()) | Err(TrySendError::Closed(_)) => true,
        Err(TrySendError::Full(resp)) => {
            w.pending.push_back(resp);
            false
        }
    }
}

/// What the caller of [`Inner::add_watcher`] must do next.
pub(crate) enum Added {
    /// Nothing: the watcher is synced or already answered.
    Done,
    /// Wake the background thread (an unsynced watcher or a victim).
    Kick,
}

impl Inner {
    /// Registers a stream whose responses go to `tx`.
    pub(crate) fn add_stream(
        &mut self,
        tx: mpsc::Sender<WatchResponse>,
        progress_period: Duration,
        now: Instant,
    ) -> u64 {
        let sid = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            sid,
            StreamState {
                tx,
                ids: HashMap::new(),
                next_id: 0,
                progress_requested: false,
                progress_period,
                next_progress: after(now, progress_period),
            },
        );
        sid
    }

    /// Creates a watcher on stream `sid`. `current` and `compact` are the store's
    /// revisions, read under this mutex.
    pub(crate) fn add_watcher(
        &mut self,
        sid: u64,
        req: &WatchRequest,
        current: i64,
        compact: i64,
    ) -> Result<(i64, Added), WatchError> {
        if req.start_rev < 0 {
            return Err(WatchError::NegativeStartRevision);
        }
        let span = req.span()?;
        if self.closed {
            return Err(WatchError::Closed);
        }
        let s = self.streams.get_mut(&sid).ok_or(WatchError::Closed)?;
        let id = if req.id == AUTO_WATCH_ID {
            while s.ids.contains_key(&s.next_id) {
                s.next_id = s.next_id.wrapping_add(1);
            }
            let id = s.next_id;
            s.next_id = s.next_id.wrapping_add(1);
            id
        } else if s.ids.contains_key(&req.id) {
            return Err(WatchError::DuplicateId);
        } else {
            req.id
        };
        let h = self.next_handle;
        self.next_handle += 1;
        s.ids.insert(id, h);
        let mut w = Watcher {
            stream: sid,
            id,
            span,
            start_rev: req.start_rev,
            min_rev: req.start_rev,
            no_put: req.no_put,
            no_delete: req.no_delete,
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            group: Group::Synced,
            pending: Default::default(),
            compacted: false,
            sent_events: false,
            scratch: Vec::new(),
        };
        if req.start_rev > 0 && req.start_rev <= compact {
            // The history it asks for is gone, or incomplete at the compacted revision
            // itself (compaction drops tombstones there).
            w.compacted = true;
            w.group = Group::Victim;
            if send(
                &self.streams,
                &mut w,
                compacted_response(id, compact, current),
            ) {
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.ids.remove(&id);
                }
                return Ok((id, Added::Done));
            }
            self.victims.insert(h);
            self.watchers.insert(h, w);
            return Ok((id, Added::Kick));
        }
        if req.start_rev == 0 || req.start_rev > self.notified_rev {
            if req.start_rev == 0 {
                w.min_rev = current + 1;
            }
            self.synced.add(h, &w.span);
            self.watchers.insert(h, w);
            return Ok((id, Added::Done));
        }
        w.group = Group::Unsynced;
        self.unsynced.insert(h);
        self.watchers.insert(h, w);
        Ok((id, Added::Kick))
    }

    /// Takes watcher `h` out of whichever group it is in (it stays registered).
    fn leave_group(&mut self, h: u64) {
        let Some(w) = self.watchers.get(&h) else {
            return;
        };
        match w.group {
            Group::Synced => {
                self.synced.remove(h, &w.span);
            }
            Group::Unsynced => {
                self.unsynced.remove(&h);
            }
            Group::Victim => {
                self.victims.remove(&h);
            }
        }
    }

    /// The store's history changed under the synced watchers (a restore from a
    /// snapshot): every synced watcher has everything below `old_notified + 1` and goes
    /// to the unsynced group to catch up from the new history; `notified_rev` becomes
    /// `new_notified`. Returns whether any watcher moved.
    pub(crate) fn unsync_all(&mut self, old_notified: i64, new_notified: i64) -> bool {
        self.notified_rev = new_notified;
        let synced: Vec<u64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.group == Group::Synced)
            .map(|(h, _)| *h)
            .collect();
        let moved = !synced.is_empty();
        for h in synced {
            if let Some(w) = self.watchers.get_mut(&h) {
                w.min_rev = w.min_rev.max(old_notified + 1);
            }
            self.resettle(h);
        }
        moved
    }

    /// Moves watcher `h` to the victims (its channel was full).
    pub(crate) fn make_victim(&mut self, h: u64) {
        self.leave_group(h);
        if let Some(w) = self.watchers.get_mut(&h) {
            w.group = Group::Victim;
            self.victims.insert(h);
        }
    }

    /// Moves watcher `h` to the synced group if it has caught up with the observer,
    /// otherwise to the unsynced group.
    pub(crate) fn resettle(&mut self, h: u64) {
        self.leave_group(h);
        let notified = self.notified_rev;
        let Some(w) = self.watchers.get_mut(&h) else {
            return;
        };
        if w.min_rev > notified {
            w.group = Group::Synced;
            self.synced.add(h, &w.span);
        } else {
            w.group = Group::Unsynced;
            self.unsynced.insert(h);
        }
    }

    /// Removes watcher `h` entirely (and its id from its stream).
    pub(crate) fn remove_watcher(&mut self, h: u64) {
        self.leave_group(h);
        if let Some(w) = self.watchers.remove(&h) {
            if let Some(s) = self.streams.get_mut(&w.stream) {
                if s.ids.get(&w.id) == Some(&h) {
                    s.ids.remove(&w.id);
                }
            }
        }
    }

    /// Cancels watcher `h` because the revision it needs (`min_rev`) was compacted.
    /// Returns `true` if it became a victim (its channel is full).
    pub(crate) fn cancel_compacted(&mut self, h: u64, compact: i64, current: i64) -> bool {
        self.leave_group(h);
        let Some(w) = self.watchers.get_mut(&h) else {
            return false;
        };
        w.compacted = true;
        let resp = compacted_response(w.id, compact, current);
        if send(&self.streams, w, resp) {
            self.remove_watcher(h);
            false
        } else {
            w.group = Group::Victim;
            self.victims.insert(h);
            true
        }
    }

    /// Cancels watch `id` of stream `sid`.
    pub(crate) fn cancel(&mut self, sid: u64, id: i64) -> bool {
        let Some(h) = self.streams.get(&sid).and_then(|s| s.ids.get(&id).copied()) else {
            return false;
        };
        self.remove_watcher(h);
        true
    }

    /// Removes stream `sid` and all its watchers.
    pub(crate) fn remove_stream(&mut self, sid: u64) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        let hs: Vec<u64> = s.ids.values().copied().collect();
        for h in hs {
            self.remove_watcher(h);
        }
        self.streams.remove(&sid);
    }

    /// Sends stream `sid`'s owed progress response if every watcher of the stream is
    /// synced (etcd sends it with watch id -1 only then). Returns `true` if nothing is
    /// owed any more.
    pub(crate) fn try_stream_progress(&mut self, sid: u64) -> bool {
        let notified = self.notified_rev;
        let Some(s) = self.streams.get_mut(&sid) else {
            return true;
        };
        if !s.progress_requested {
            return true;
        }
        let all_synced = s.ids.values().all(|h| {
            self.watchers
                .get(h)
                .is_some_and(|w| w.group == Group::Synced && notified >= w.start_rev)
        });
        if !all_synced {
            return false;
        }
        let resp = WatchResponse {
            watch_id: STREAM_PROGRESS_WATCH_ID,
            revision: notified,
            ..Default::default()
        };
        match s.tx.try_send(resp) {
            Ok(()) | Err(TrySendError::Closed(_)) => {
                s.progress_requested = false;
                true
            }
            Err(TrySendError::Full(_)) => false,
        }
    }

    /// Periodic progress of stream `sid`'s `progress_notify` watchers that got no events
    /// since the last tick, if due at `now`.
    pub(crate) fn progress_tick(&mut self, sid: u64, now: Instant) {
        let notified = self.notified_rev;
        let Inner {
            streams, watchers, ..
        } = self;
        let Some(s) = streams.get_mut(&sid) else {
            return;
        };
        if now < s.next_progress {
            return;
        }
        s.next_progress = after(now, s.progress_period);
        for (&id, h) in &s.ids {
            let Some(w) = watchers.get_mut(h) else {
                continue;
            };
            if !w.progress_notify {
                continue;
            }
            if !w.sent_events && w.group == Group::Synced && notified >= w.start_rev {
                // A full channel skips this tick: the next one tries again.
                let _ = s.tx.try_send(WatchResponse {
                    watch_id: id,
                    revision: notified,
                    ..Default::default()
                });
            }
            w.sent_events = false;
        }
    }
}

fn compacted_response(id: i64, compact: i64, current: i64) -> WatchResponse {
    WatchResponse {
        watch_id: id,
        revision: current,
        compact_revision: compact,
        canceled: true,
        ..Default::default()
    }
}

/// The longest progress period honoured as such (about 100 years): longer ones mean
/// "never" without overflowing `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + period`, saturating at [`FAR_FUTURE`] from now.
fn after(now: Instant, period: Duration) -> Instant {
    now.checked_add(period.min(FAR_FUTURE)).unwrap_or(now)
}
