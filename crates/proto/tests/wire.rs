//! Pins the wire format: encodings are checked byte for byte against encodings worked
//! out by hand from the protobuf rules (tag = field_number << 3 | wire_type), so a wrong
//! field number or type fails here; and every service exposes etcd v3.5's RPCs.

use etcd_proto::etcdserverpb::{
    compare, CompactionRequest, Compare, InternalRaftRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, RequestHeader, WatchResponse,
};
use etcd_proto::mvccpb::{Event, KeyValue};
use etcd_proto::prost::Message;
use etcd_proto::raftpb::{self, Entry, EntryType, HardState, MessageType};

#[test]
fn put_request_fields_have_etcd_numbers() {
    let put = PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 1,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    let expected = [
        0x0a, 3, b'f', b'o', b'o', // 1: key
        0x12, 3, b'b', b'a', b'r', // 2: value
        0x18, 1, // 3: lease
        0x20, 1, // 4: prev_kv
        0x28, 1, // 5: ignore_value
        0x30, 1, // 6: ignore_lease
    ];
    assert_eq!(put.encode_to_vec(), expected);
}

#[test]
fn range_request_uses_all_thirteen_fields() {
    let range = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 10,
        revision: 5,
        sort_order: 2,  // DESCEND
        sort_target: 3, // MOD
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    };
    let expected = [
        0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 10, 0x20, 5, 0x28, 2, 0x30, 3, 0x38, 1, 0x40, 1, 0x48,
        1, 0x50, 1, 0x58, 2, 0x60, 3, 0x68, 4,
    ];
    assert_eq!(range.encode_to_vec(), expected);
}

#[test]
fn compare_range_end_is_field_64() {
    let cmp = Compare {
        result: 3, // NOT_EQUAL
        target: 2, // MOD
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(7)),
    };
    // Field 64, length-delimited: (64 << 3) | 2 = 514 = varint 0x82 0x04.
    let expected = [
        0x08, 3, 0x10, 2, 0x1a, 1, b'k', 0x30, 7, 0x82, 0x04, 1, b'l',
    ];
    assert_eq!(cmp.encode_to_vec(), expected);
}

#[test]
fn watch_response_events_are_field_11() {
    let resp = WatchResponse {
        watch_id: 1,
        events: vec![Event {
            r#type: 1, // DELETE
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                mod_revision: 9,
                ..Default::default()
            }),
            prev_kv: None,
        }],
        ..Default::default()
    };
    // Event: type (0x08 1), kv (0x12 len KeyValue{key 0x0a 1 'k', mod_revision 0x18 9}).
    let event = [0x08, 1, 0x12, 5, 0x0a, 1, b'k', 0x18, 9];
    let mut expected = vec![0x10, 1, 0x5a, event.len() as u8];
    expected.extend_from_slice(&event);
    assert_eq!(resp.encode_to_vec(), expected);
}

#[test]
fn lease_and_compaction_requests_match_hand_encoding() {
    let grant = LeaseGrantRequest { ttl: 60, id: 7 };
    assert_eq!(grant.encode_to_vec(), [0x08, 60, 0x10, 7]);
    let compact = CompactionRequest {
        revision: 300,
        physical: true,
    };
    // 300 = 0b10_0101100 -> varint 0xac 0x02.
    assert_eq!(compact.encode_to_vec(), [0x08, 0xac, 0x02, 0x10, 1]);
}

#[test]
fn internal_raft_request_uses_high_field_numbers() {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: 5,
            ..Default::default()
        }),
        id: 5,
        auth_enable: Some(Default::default()),
        ..Default::default()
    };
    // id (field 1) = 0x08 5; header (field 100) = tag 802 = 0xa2 0x06, len 2, {0x08 5};
    // auth_enable (field 1000) = tag 8002 = 0xc2 0x3e, len 0. prost writes fields in
    // the order the message declares them.
    let bytes = req.encode_to_vec();
    assert!(
        bytes.windows(5).any(|w| w == [0xa2, 0x06, 2, 0x08, 5]),
        "{bytes:x?}"
    );
    assert!(bytes.windows(3).any(|w| w == [0xc2, 0x3e, 0]), "{bytes:x?}");
    assert_eq!(InternalRaftRequest::decode(bytes.as_slice()).unwrap(), req);
}

#[test]
fn raft_entry_and_message_match_hand_encoding() {
    let entry = Entry {
        r#type: EntryType::EntryConfChange as i32,
        term: 2,
        index: 3,
        data: bytes::Bytes::from_static(b"x"),
    };
    let entry_bytes = [0x08, 1, 0x10, 2, 0x18, 3, 0x22, 1, b'x'];
    assert_eq!(entry.encode_to_vec(), entry_bytes);

    let msg = raftpb::Message {
        r#type: MessageType::MsgApp as i32,
        to: 2,
        from: 1,
        term: 5,
        log_term: 4,
        index: 10,
        entries: vec![entry],
        commit: 9,
        ..Default::default()
    };
    let mut expected = vec![
        0x08, 3, 0x10, 2, 0x18, 1, 0x20, 5, 0x28, 4, 0x30, 10, 0x3a, 9,
    ];
    expected.extend_from_slice(&entry_bytes);
    expected.extend_from_slice(&[0x40, 9]);
    assert_eq!(msg.encode_to_vec(), expected);

    let hs = HardState {
        term: 1,
        vote: 2,
        commit: 3,
    };
    assert_eq!(hs.encode_to_vec(), [0x08, 1, 0x10, 2, 0x18, 3]);
}
