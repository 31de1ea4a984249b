//! Background work: retrying victims, progress, and catching up unsynced watchers.
//!
//! Owns one maintenance round ([`Shared::maintain`]). A catch-up round chooses at most
//! [`MAX_WATCHERS_PER_SYNC`] unsynced watchers, reads one bounded page of history from
//! the lowest revision any of them needs (never splitting a revision), fetches previous
//! versions for those that asked, and then, under the registry mutex again, hands each
//! watcher its part of the page. A watcher that reaches the observer's revision moves to
//! the synced group; one whose needed revision was compacted gets the compacted response.
//!
//! Invariants kept: the registry mutex is not held while reading the store; a watcher is
//! only advanced if it is still unsynced at the `min_rev` the round read for (so two
//! concurrent rounds, or a cancel in between, never deliver twice or skip).

use std::collections::HashMap;
use std::time::Instant;

use etcd_mvcc::{Event, EventType, KeyValue, RangeOptions, Store};

use crate::group::{KeySpan, WatcherGroup};
use crate::state::send;
use crate::store::{Shared, MAX_WATCHERS_PER_SYNC};
use crate::watcher::{event_rev, Group, WatchResponse};

/// A watcher chosen for a catch-up round, as it was when chosen.
struct Chosen {
    h: u64,
    min_rev: i64,
    span: KeySpan,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

impl Chosen {
    fn wants(&self, ev: &Event) -> bool {
        event_rev(ev) >= self.min_rev
            && if ev.r#type == EventType::Delete as i32 {
                !self.no_delete
            } else {
                !self.no_put
            }
    }
}

fn is_create(ev: &Event) -> bool {
    ev.r#type == EventType::Put as i32
        && ev
            .kv
            .as_ref()
            .is_some_and(|kv| kv.create_revision == kv.mod_revision)
}

impl Shared {
    /// One round of background work. Returns `true` if more catch-up work is ready now.
    pub(crate) fn maintain(&self, store: &Store, now: Instant) -> bool {
        self.retry_victims();
        self.progress(now);
        self.sync_round(store)
    }

    /// Retries every victim's pending responses; a victim whose queue empties goes back
    /// to the synced or unsynced group (or away, if it was canceled by compaction).
    fn retry_victims(&self) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let victims: Vec<u64> = inner.victims.iter().copied().collect();
        for h in victims {
            let Some(w) = inner.watchers.get_mut(&h) else {
                inner.victims.remove(&h);
                continue;
            };
            let pending = std::mem::take(&mut w.pending);
            let mut flushed = true;
            for resp in pending {
                if !flushed || !send(&inner.streams, w, resp) {
                    flushed = false;
                }
            }
            if !flushed {
                continue;
            }
            if w.compacted {
                inner.remove_watcher(h);
            } else {
                inner.resettle(h);
            }
        }
    }

    /// Owed stream progress responses and periodic progress.
    fn progress(&self, now: Instant) {
        let mut inner = self.inner.lock();
        let sids: Vec<u64> = inner.streams.keys().copied().collect();
        for sid in sids {
            inner.try_stream_progress(sid);
            inner.progress_tick(sid, now);
        }
    }

    /// One catch-up round. Returns `true` if unsynced watchers remain.
    fn sync_round(&self, store: &Store) -> bool {
        let mut chosen = Vec::new();
        {
            let mut inner = self.inner.lock();
            if inner.unsynced.is_empty() {
                return false;
            }
            let compact = store.compact_revision();
            let current = store.current_revision();
            let hs: Vec<u64> = inner
                .unsynced
                .iter()
                .take(MAX_WATCHERS_PER_SYNC)
                .copied()
                .collect();
            for h in hs {
                let Some(w) = inner.watchers.get(&h) else {
                    inner.unsynced.remove(&h);
                    continue;
                };
                if w.min_rev <= compact {
                    if inner.cancel_compacted(h, compact, current) {
                        self.kick();
                    }
                    continue;
                }
                chosen.push(Chosen {
                    h,
                    min_rev: w.min_rev,
                    span: w.span.clone(),
                    no_put: w.no_put,
                    no_delete: w.no_delete,
                    prev_kv: w.prev_kv,
                });
            }
        }
        let Some(from) = chosen.iter().map(|c| c.min_rev).min() else {
            return !self.inner.lock().unsynced.is_empty();
        };

        // Read history without the registry mutex.
        let page = match store.events(from, i64::MAX, self.opts.sync_batch_events) {
            Ok(p) => p,
            // A compaction overtook the read: the next round cancels who must be.
            Err(etcd_mvcc::Error::Compacted) => return true,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    from_rev = from,
                    "watch catch-up read failed; retrying next round"
                );
                return false;
            }
        };
        let mut group = WatcherGroup::default();
        for c in &chosen {
            group.add(c.h, &c.span);
        }
        let mut matched: HashMap<u64, Vec<u32>> = HashMap::new();
        for (i, ev) in page.events.iter().enumerate() {
            let (Some(kv), Ok(i)) = (&ev.kv, u32::try_from(i)) else {
                continue;
            };
            group.for_each_match(&kv.key, |h| matched.entry(h).or_default().push(i));
        }
        let prevs = fetch_prev_kvs(store, &chosen, &matched, &page.events);
        // Each watcher's part of the page, built before taking the mutex (the observer,
        // and with it every write, waits while we hold it).
        let parts: Vec<Vec<Event>> = chosen
            .iter()
            .map(|c| {
                matched
                    .get(&c.h)
                    .into_iter()
                    .flatten()
                    .filter_map(|&i| page.events.get(i as usize).map(|ev| (i, ev)))
                    .filter(|(_, ev)| c.wants(ev))
                    .map(|(i, ev)| Event {
                        r#type: ev.r#type,
                        kv: ev.kv.clone(),
                        prev_kv: if c.prev_kv {
                            prevs.get(&i).cloned()
                        } else {
                            None
                        },
                    })
                    .collect()
            })
            .collect();
        let compact = store.compact_revision();
        let current = store.current_revision();

        // Deliver under the registry mutex again.
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut victims = false;
        for (c, events) in chosen.iter().zip(parts) {
            let Some(w) = inner.watchers.get_mut(&c.h) else {
                continue;
            };
            if w.group != Group::Unsynced || w.min_rev != c.min_rev {
                continue; // changed meanwhile (canceled, or served by another round)
            }
            if w.min_rev <= compact {
                victims |= inner.cancel_compacted(c.h, compact, current);
                continue;
            }
            w.min_rev = w.min_rev.max(page.next_rev);
            if !events.is_empty() {
                w.sent_events = true;
                let resp = WatchResponse {
                    watch_id: w.id,
                    events,
                    revision: w.min_rev - 1,
                    ..Default::default()
                };
                if !send(&inner.streams, w, resp) {
                    inner.make_victim(c.h);
                    victims = true;
                    continue;
                }
            }
            if w.min_rev > inner.notified_rev {
                inner.resettle(c.h);
            }
        }
        if victims {
            self.kick();
        }
        !inner.unsynced.is_empty()
    }
}

/// The previous version of every event some `prev_kv` watcher will receive (not for
/// creations, which have none), read at `mod_revision - 1` as etcd's server does.
/// A version that is unreadable (compacted meanwhile) is left out, as etcd does.
fn fetch_prev_kvs(
    store: &Store,
    chosen: &[Chosen],
    matched: &HashMap<u64, Vec<u32>>,
    events: &[Event],
) -> HashMap<u32, KeyValue> {
    let mut prevs = HashMap::new();
    if !chosen.iter().any(|c| c.prev_kv) {
        return prevs;
    }
    // One read transaction (one RocksDB snapshot) for the whole page.
    let rtx = store.read();
    for c in chosen.iter().filter(|c| c.prev_kv) {
        for &i in matched.get(&c.h).into_iter().flatten() {
            if prevs.contains_key(&i) {
                continue;
            }
            let Some(ev) = events.get(i as usize) else {
                continue;
            };
            let Some(kv) = &ev.kv else { continue };
            if kv.mod_revision < c.min_rev || is_create(ev) {
                continue;
            }
            let opts = RangeOptions {
                rev: kv.mod_revision - 1,
                ..Default::default()
            };
            if let Ok(r) = rtx.range(&kv.key, b"", opts) {
                if let Some(prev) = r.kvs.into_iter().next() {
                    prevs.insert(i, prev);
                }
            }
        }
    }
    prevs
}
