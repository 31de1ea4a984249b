//! Watch requests, watch responses, and one watcher's state.
//!
//! Owns the public request and response types and the per-watcher record the watchable
//! store keeps: what it watches, its filters, the next revision it needs (`min_rev`),
//! which group it is in, and (as a victim) the responses its full channel refused.
//! Invariant kept: every event with revision `< min_rev` that the watcher should see has
//! been put in its stream's channel or in its `pending` queue, in revision order.

use std::collections::VecDeque;

use etcd_proto::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
use etcd_proto::mvccpb::{event::EventType, Event};

use crate::error::WatchError;
use crate::group::KeySpan;
use crate::interval::RangeEnd;

/// The watch id that auto-assigns one (etcd v3.5's `AutoWatchID`).
pub const AUTO_WATCH_ID: i64 = 0;

/// The watch id of a progress response that speaks for every watcher of a stream
/// (etcd's `InvalidWatchID`).
pub const STREAM_PROGRESS_WATCH_ID: i64 = -1;

/// A request to create a watcher on a [`crate::WatchStream`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// The watch id; [`AUTO_WATCH_ID`] (0) lets the stream pick the lowest free id at or
    /// after its last pick, as etcd does.
    pub id: i64,
    /// The key, or the first key of the range. Empty means `"\0"` (as etcd's server does).
    pub key: Vec<u8>,
    /// etcd's `range_end` rules: empty = only `key`; `"\0"` = every key `>= key`;
    /// otherwise `[key, range_end)`, which must not be empty.
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = the revision after the current one. Revisions at
    /// or below the compacted revision get a compacted response.
    pub start_rev: i64,
    /// Do not deliver puts.
    pub no_put: bool,
    /// Do not deliver deletes.
    pub no_delete: bool,
    /// Deliver each event with the key's previous version.
    pub prev_kv: bool,
    /// Send an empty progress response every progress interval without events.
    pub progress_notify: bool,
    /// The client accepts fragmented responses (the server fragments; see
    /// [`crate::fragment`]). Recorded only.
    pub fragment: bool,
}

impl From<&WatchCreateRequest> for WatchRequest {
    fn from(r: &WatchCreateRequest) -> Self {
        WatchRequest {
            id: r.watch_id,
            key: r.key.clone(),
            range_end: r.range_end.clone(),
            start_rev: r.start_revision,
            no_put: r.filters.contains(&(FilterType::Noput as i32)),
            no_delete: r.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: r.prev_kv,
            progress_notify: r.progress_notify,
            fragment: r.fragment,
        }
    }
}

impl WatchRequest {
    /// The watched span, validated (etcd: `mvcc: watcher range is empty`).
    pub(crate) fn span(&self) -> Result<KeySpan, WatchError> {
        let start = if self.key.is_empty() {
            vec![0]
        } else {
            self.key.clone()
        };
        let end = match self.range_end.as_slice() {
            [] => None,
            [0] => Some(RangeEnd::Unbounded),
            end if end <= start.as_slice() => return Err(WatchError::EmptyRange),
            end => Some(RangeEnd::Key(end.to_vec())),
        };
        Ok(KeySpan { start, end })
    }
}

/// What a watch stream delivers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchResponse {
    /// The watcher it is for; [`STREAM_PROGRESS_WATCH_ID`] for a progress response to
    /// [`crate::WatchStream::request_progress`].
    pub watch_id: i64,
    /// Events in revision order; all events of a revision are in one response. Empty for
    /// progress and compacted responses.
    pub events: Vec<Event>,
    /// The store revision the watcher has seen everything up to: the committed revision
    /// for a live event, the end of the caught-up span for history, the current revision
    /// for progress.
    pub revision: i64,
    /// Set (with `canceled`) when the start revision was compacted: the compacted revision.
    pub compact_revision: i64,
    /// The watcher was canceled by the store (compaction); no more responses follow.
    pub canceled: bool,
    /// Why it was canceled (empty for compaction, as etcd sends it).
    pub cancel_reason: String,
}

impl WatchResponse {
    /// Whether this is a progress notification (no events, not canceled).
    pub fn is_progress(&self) -> bool {
        self.events.is_empty() && !self.canceled
    }
}

/// Which group a watcher is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Up to date: fed by the observer on every commit.
    Synced,
    /// Behind: fed from history by the catch-up rounds.
    Unsynced,
    /// Its channel was full: `pending` waits to be retried.
    Victim,
}

/// One watcher.
#[derive(Debug)]
pub(crate) struct Watcher {
    pub(crate) stream: u64,
    pub(crate) id: i64,
    pub(crate) span: KeySpan,
    pub(crate) start_rev: i64,
    /// The next revision this watcher needs.
    pub(crate) min_rev: i64,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) prev_kv: bool,
    pub(crate) progress_notify: bool,
    pub(crate) group: Group,
    /// Responses refused by the full channel, oldest first (victims only).
    pub(crate) pending: VecDeque<WatchResponse>,
    /// Canceled by compaction: removed once `pending` is delivered.
    pub(crate) compacted: bool,
    /// Events were sent since the last progress tick.
    pub(crate) sent_events: bool,
    /// Scratch list of event indexes matched in the current commit.
    pub(crate) scratch: Vec<u32>,
}

impl Watcher {
    /// Whether the watcher wants this event at all (filters), ignoring revisions.
    pub(crate) fn wants(&self, ev: &Event) -> bool {
        if ev.r#type == EventType::Delete as i32 {
            !self.no_delete
        } else {
            !self.no_put
        }
    }

    /// The event as this watcher receives it (`prev_kv` only if asked for).
    pub(crate) fn shape(&self, ev: &Event) -> Event {
        Event {
            r#type: ev.r#type,
            kv: ev.kv.clone(),
            prev_kv: if self.prev_kv {
                ev.prev_kv.clone()
            } else {
                None
            },
        }
    }
}

/// The revision of an event (its kv's `mod_revision`; 0 if it has no kv).
pub(crate) fn event_rev(ev: &Event) -> i64 {
    ev.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_etcds_range_end_rules() {
        let req = |k: &[u8], e: &[u8]| WatchRequest {
            key: k.to_vec(),
            range_end: e.to_vec(),
            ..Default::default()
        };
        let s = req(b"a", b"").span().unwrap();
        assert!(s.contains(b"a") && !s.contains(b"ab"));
        let s = req(b"a", b"\0").span().unwrap();
        assert!(s.contains(b"a") && s.contains(b"zzz") && !s.contains(b"0"));
        let s = req(b"a", b"c").span().unwrap();
        assert!(s.contains(b"b") && !s.contains(b"c"));
        let s = req(b"", b"\0").span().unwrap();
        assert!(s.contains(b"\0") && s.contains(b"x"), "empty key = \\0");
        assert!(matches!(
            req(b"b", b"a").span(),
            Err(WatchError::EmptyRange)
        ));
        assert!(matches!(
            req(b"b", b"b").span(),
            Err(WatchError::EmptyRange)
        ));
    }

    #[test]
    fn create_requests_convert_with_their_filters() {
        let pb = WatchCreateRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            start_revision: 7,
            progress_notify: true,
            filters: vec![FilterType::Nodelete as i32],
            prev_kv: true,
            watch_id: 3,
            fragment: true,
        };
        let r = WatchRequest::from(&pb);
        assert_eq!(
            r,
            WatchRequest {
                id: 3,
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                start_rev: 7,
                no_put: false,
                no_delete: true,
                prev_kv: true,
                progress_notify: true,
                fragment: true,
            }
        );
    }
}
