//! Splitting an oversized watch response into fragments, as etcd's server does for
//! watchers created with `fragment = true`.
//!
//! Owns nothing but the splitting rule: a response is sent whole if it encodes to fewer
//! than `max_bytes` or has fewer than two events; otherwise events are packed in order
//! into responses of at most `max_bytes` (a single event larger than that travels
//! alone), every fragment but the last has `fragment = true`, and all carry the same
//! header, watch id and flags.

use etcd_proto::etcdserverpb::WatchResponse;
use prost::Message;

/// Protobuf field number of `WatchResponse.events`.
const EVENTS_FIELD: u32 = 11;

/// Splits `resp` into fragments of at most `max_bytes` encoded bytes each (see the module
/// docs); returns `[resp]` when it need not be split.
pub fn fragment(resp: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < max_bytes {
        return vec![resp];
    }
    let mut base = resp.clone();
    base.events = Vec::new();
    base.fragment = true;
    let base_len = base.encoded_len();
    let mut out = Vec::new();
    let mut cur = base.clone();
    let mut cur_len = base_len;
    for ev in resp.events {
        let ev_len = prost::encoding::message::encoded_len(EVENTS_FIELD, &ev);
        if !cur.events.is_empty() && cur_len + ev_len >= max_bytes {
            out.push(std::mem::replace(&mut cur, base.clone()));
            cur_len = base_len;
        }
        cur_len += ev_len;
        cur.events.push(ev);
    }
    cur.fragment = false;
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_proto::mvccpb::{Event, KeyValue};

    fn ev(i: u8, size: usize) -> Event {
        Event {
            r#type: 0,
            kv: Some(KeyValue {
                key: vec![b'k', i],
                value: vec![i; size],
                mod_revision: 5,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn small_or_single_event_responses_are_not_split() {
        let r = WatchResponse {
            watch_id: 1,
            events: vec![ev(1, 10), ev(2, 10)],
            ..Default::default()
        };
        assert_eq!(fragment(r.clone(), 1 << 20), vec![r.clone()]);
        let one = WatchResponse {
            events: vec![ev(1, 1000)],
            ..Default::default()
        };
        assert_eq!(fragment(one.clone(), 10), vec![one]);
    }

    #[test]
    fn fragments_respect_the_limit_and_keep_every_event_in_order() {
        let events: Vec<Event> = (0..20).map(|i| ev(i, 100)).collect();
        let r = WatchResponse {
            watch_id: 7,
            events: events.clone(),
            ..Default::default()
        };
        let parts = fragment(r, 500);
        assert!(parts.len() > 1);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.watch_id, 7);
            assert!(
                p.encoded_len() < 500,
                "fragment {i} is {} bytes",
                p.encoded_len()
            );
            assert_eq!(p.fragment, i + 1 < parts.len());
        }
        let all: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(all, events);
    }
}
