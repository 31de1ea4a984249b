//! History as events: what a watcher that starts in the past catches up from.
//!
//! Owns the conversion of `key` bucket entries to `mvccpb.Event`s (puts carry the stored
//! kv; tombstones become delete events whose kv holds only the key and `mod_revision`).
//! Invariant kept: a page of events never splits a main revision, so a watcher never sees
//! half of a transaction, and pages are bounded by [`Store::events`]'s `max_events`
//! (exceeded only to finish the last revision).

use etcd_proto::mvccpb::{event::EventType, Event, KeyValue};

use crate::backend::Bucket;
use crate::codec::decode_kv;
use crate::error::{Error, Result};
use crate::revision::{decode_bucket_key, Revision};
use crate::store::Store;

/// A page of history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// Events in revision order (no `prev_kv`; read it with a range at `mod_revision - 1`).
    pub events: Vec<Event>,
    /// The next revision to ask for: every revision below it up to the requested end is
    /// in this or an earlier page.
    pub next_rev: i64,
}

impl Store {
    /// The events of revisions `from_rev..=to_rev` (`to_rev` clamped to the current
    /// revision), at most about `max_events` of them (a revision is never split).
    /// [`Error::Compacted`] if `from_rev` is below the compact revision.
    pub fn events(&self, from_rev: i64, to_rev: i64, max_events: usize) -> Result<EventPage> {
        let current = self.current_revision();
        let tx = self.backend().read();
        if from_rev < self.compact_revision() {
            return Err(Error::Compacted);
        }
        let to_rev = to_rev.min(current);
        let mut page = EventPage {
            events: Vec::new(),
            next_rev: to_rev + 1,
        };
        if from_rev > to_rev {
            page.next_rev = from_rev;
            return Ok(page);
        }
        let end = Revision::new(to_rev + 1, 0);
        let mut it = tx.iter(Bucket::Key);
        it.seek(Revision::new(from_rev.max(0), 0).to_bytes(false));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let bk = decode_bucket_key(k)?;
            if bk.rev >= end {
                break;
            }
            if page.events.len() >= max_events.max(1) {
                let last_main = page
                    .events
                    .last()
                    .and_then(|e| e.kv.as_ref())
                    .map(|kv| kv.mod_revision);
                if last_main != Some(bk.rev.main) {
                    page.next_rev = bk.rev.main;
                    break;
                }
            }
            let kv = decode_kv(v)?;
            page.events.push(if bk.tombstone {
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: kv.key,
                        mod_revision: bk.rev.main,
                        ..Default::default()
                    }),
                    prev_kv: None,
                }
            } else {
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            });
            it.next();
        }
        it.status()?;
        // A compaction that overtook the scan may have removed part of it.
        if from_rev < self.compact_revision() {
            return Err(Error::Compacted);
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use crate::{EventType, Store};

    #[test]
    fn events_pages_never_split_a_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put(b"a", b"1", 0).unwrap(); // 2
        let mut b = store.batch().unwrap();
        let mut t = b.txn();
        t.put(b"b", b"1", 0).unwrap();
        t.put(b"c", b"1", 0).unwrap();
        t.put(b"d", b"1", 0).unwrap();
        t.end(); // 3
        b.commit().unwrap();
        store.delete_range(b"a", b"").unwrap(); // 4
        let p = store.events(2, 100, 2).unwrap();
        assert_eq!(p.events.len(), 4, "revision 3 is not split");
        assert_eq!(p.next_rev, 4);
        let p = store.events(p.next_rev, 100, 2).unwrap();
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].r#type, EventType::Delete as i32);
        let kv = p.events[0].kv.as_ref().unwrap();
        assert_eq!((kv.key.as_slice(), kv.mod_revision), (&b"a"[..], 4));
        assert_eq!(p.next_rev, 5);
        let p = store.events(5, 100, 2).unwrap();
        assert!(p.events.is_empty());
        assert_eq!(p.next_rev, 5);
        store.compact(3).unwrap().wait().unwrap();
        assert!(store.events(2, 100, 10).is_err());
        assert_eq!(store.events(3, 100, 10).unwrap().events.len(), 4);
    }
}
