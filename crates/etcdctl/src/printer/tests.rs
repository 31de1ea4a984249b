//! Each format against output captured from etcdctl (3.4 where it agrees with 3.5's
//! source, 3.5's source where they differ).

use etcd_proto::etcdserverpb::response_op::Response;
use etcd_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseLeasesResponse,
    LeaseStatus, LeaseTimeToLiveResponse, Member, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, ResponseOp, StatusResponse, TxnResponse, WatchResponse,
};
use etcd_proto::mvccpb::{Event, KeyValue};

use super::*;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 324952591200643719,
        member_id: 3319814642761637952,
        revision,
        raft_term: 2,
    })
}

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.as_bytes().to_vec(),
        lease: 0,
    }
}

fn text(printed: Printed) -> String {
    String::from_utf8(printed.unwrap()).unwrap()
}

fn printer(format: Format) -> Printer {
    Printer::new(format, false)
}

fn foo_range() -> RangeResponse {
    RangeResponse {
        header: header(3),
        kvs: vec![kv("foo", "bar", 2, 2, 1)],
        more: false,
        count: 1,
    }
}

#[test]
fn get_in_every_format() {
    let r = foo_range();
    assert_eq!(text(printer(Format::Simple).get(&r)), "foo\nbar\n");
    assert_eq!(
        text(printer(Format::Json).get(&r)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":3,\"raft_term\":2},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":2,\"version\":1,\"value\":\"YmFy\"}],\"count\":1}\n"
    );
    assert_eq!(
        text(printer(Format::Fields).get(&r)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 3\n\"RaftTerm\" : 2\n\"Key\" : \"foo\"\n\"CreateRevision\" : 2\n\"ModRevision\" : 2\n\"Version\" : 1\n\"Value\" : \"bar\"\n\"Lease\" : 0\n\"More\" : false\n\"Count\" : 1\n"
    );
    let err = printer(Format::Table).get(&r).unwrap_err();
    assert_eq!(
        err,
        CtlError::new(ExitCode::BadFeature, "table not supported as output format")
    );
    assert_eq!(
        printer(Format::Protobuf).get(&r).unwrap(),
        r.encode_to_vec()
    );
}

#[test]
fn hex_and_value_only_change_simple_keys_and_values() {
    let r = RangeResponse {
        kvs: vec![kv("a", "1", 1, 1, 1)],
        ..foo_range()
    };
    let hex = Printer::new(Format::Simple, true);
    assert_eq!(text(hex.get(&r)), "\\x61\n\\x31\n");
    let value_only = Printer {
        value_only: true,
        ..printer(Format::Simple)
    };
    assert_eq!(text(value_only.get(&r)), "1\n");
    // --hex changes neither fields nor json.
    assert!(text(Printer::new(Format::Fields, true).get(&r)).contains("\"Key\" : \"a\"\n"));
    assert!(text(Printer::new(Format::Json, true).get(&r)).contains("\"key\":\"YQ==\""));
}

#[test]
fn an_empty_range_prints_nothing_in_simple() {
    let r = RangeResponse {
        header: header(20),
        ..RangeResponse::default()
    };
    assert_eq!(text(printer(Format::Simple).get(&r)), "");
    assert_eq!(
        text(printer(Format::Json).get(&r)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":20,\"raft_term\":2}}\n"
    );
    assert!(text(printer(Format::Fields).get(&r)).ends_with("\"More\" : false\n\"Count\" : 0\n"));
}

#[test]
fn put_and_del_with_previous_values() {
    let put = PutResponse {
        header: header(6),
        prev_kv: Some(kv("foo", "baz", 2, 5, 3)),
    };
    assert_eq!(text(printer(Format::Simple).put(&put)), "OK\nfoo\nbaz\n");
    assert_eq!(
        text(printer(Format::Json).put(&put)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":6,\"raft_term\":2},\"prev_kv\":{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":5,\"version\":3,\"value\":\"YmF6\"}}\n"
    );
    assert!(text(printer(Format::Fields).put(&put)).ends_with(
        "\"PrevKey\" : \"foo\"\n\"PrevCreateRevision\" : 2\n\"PrevModRevision\" : 5\n\"PrevVersion\" : 3\n\"PrevValue\" : \"baz\"\n\"PrevLease\" : 0\n"
    ));
    let del = DeleteRangeResponse {
        header: header(8),
        deleted: 1,
        prev_kvs: vec![kv("foo", "baz", 2, 7, 4)],
    };
    assert_eq!(text(printer(Format::Simple).del(&del)), "1\nfoo\nbaz\n");
    let none = DeleteRangeResponse {
        header: header(7),
        ..DeleteRangeResponse::default()
    };
    assert_eq!(text(printer(Format::Simple).del(&none)), "0\n");
    assert_eq!(
        text(printer(Format::Json).del(&none)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":7,\"raft_term\":2}}\n"
    );
}

#[test]
fn txn_responses_nest_as_etcdctl_35() {
    let inner = Some(ResponseHeader {
        revision: 13,
        ..ResponseHeader::default()
    });
    let r = TxnResponse {
        header: header(13),
        succeeded: true,
        responses: vec![
            ResponseOp {
                response: Some(Response::ResponsePut(PutResponse {
                    header: inner,
                    prev_kv: None,
                })),
            },
            ResponseOp {
                response: Some(Response::ResponseRange(RangeResponse {
                    header: inner,
                    kvs: vec![kv("key1", "overwrote-key1", 11, 13, 3)],
                    more: false,
                    count: 1,
                })),
            },
            ResponseOp {
                response: Some(Response::ResponseDeleteRange(DeleteRangeResponse {
                    header: inner,
                    ..DeleteRangeResponse::default()
                })),
            },
        ],
    };
    assert_eq!(
        text(printer(Format::Simple).txn(&r)),
        "SUCCESS\n\nOK\n\nkey1\noverwrote-key1\n\n0\n"
    );
    // etcdctl 3.5 (gogo-protobuf 1.3 tags): "response_put"; 3.4 printed "ResponsePut".
    assert_eq!(
        text(printer(Format::Json).txn(&r)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":13,\"raft_term\":2},\"succeeded\":true,\"responses\":[{\"Response\":{\"response_put\":{\"header\":{\"revision\":13}}}},{\"Response\":{\"response_range\":{\"header\":{\"revision\":13},\"kvs\":[{\"key\":\"a2V5MQ==\",\"create_revision\":11,\"mod_revision\":13,\"version\":3,\"value\":\"b3Zlcndyb3RlLWtleTE=\"}],\"count\":1}}},{\"Response\":{\"response_delete_range\":{\"header\":{\"revision\":13}}}}]}\n"
    );
    let fields = text(printer(Format::Fields).txn(&r));
    assert!(fields.starts_with("\"ClusterID\" : 324952591200643719\n"));
    assert!(fields.contains("\"Succeeded\" : true\n\"ClusterID\" : 0\n\"MemberID\" : 0\n\"Revision\" : 13\n\"RaftTerm\" : 0\n"));
    assert!(fields.ends_with("\"RaftTerm\" : 0\n\"Deleted\" : 0\n"));
}

fn put_event(key: &str, value: &str, create: i64, modified: i64, version: i64) -> Event {
    Event {
        r#type: 0,
        kv: Some(kv(key, value, create, modified, version)),
        prev_kv: None,
    }
}

#[test]
fn watch_events_in_every_format() {
    let mut delete = Event {
        r#type: 1,
        kv: Some(KeyValue {
            key: b"w1".to_vec(),
            mod_revision: 17,
            ..KeyValue::default()
        }),
        prev_kv: Some(kv("w1", "b c", 15, 16, 2)),
    };
    let r = WatchResponse {
        header: header(17),
        events: vec![delete.clone()],
        ..WatchResponse::default()
    };
    assert_eq!(
        text(printer(Format::Simple).watch(&r)),
        "DELETE\nw1\nb c\nw1\n\n"
    );
    delete.prev_kv = None;
    let r = WatchResponse {
        events: vec![delete],
        ..r
    };
    assert_eq!(
        text(printer(Format::Json).watch(&r)),
        "{\"Header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":17,\"raft_term\":2},\"Events\":[{\"type\":1,\"kv\":{\"key\":\"dzE=\",\"mod_revision\":17}}],\"CompactRevision\":0,\"Canceled\":false,\"Created\":false}\n"
    );
    let put = WatchResponse {
        header: header(15),
        events: vec![put_event("w1", "a", 15, 15, 1)],
        ..WatchResponse::default()
    };
    assert_eq!(text(printer(Format::Simple).watch(&put)), "PUT\nw1\na\n");
    assert_eq!(
        text(printer(Format::Fields).watch(&put)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 15\n\"RaftTerm\" : 2\n\"Type\" : PUT\n\"Key\" : \"w1\"\n\"CreateRevision\" : 15\n\"ModRevision\" : 15\n\"Version\" : 1\n\"Value\" : \"a\"\n\"Lease\" : 0\n"
    );
    let canceled = WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: 324952591200643719,
            member_id: 3319814642761637952,
            revision: 0,
            raft_term: 2,
        }),
        canceled: true,
        compact_revision: 12,
        ..WatchResponse::default()
    };
    assert_eq!(
        text(printer(Format::Json).watch(&canceled)),
        "{\"Header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"raft_term\":2},\"Events\":[],\"CompactRevision\":12,\"Canceled\":true,\"Created\":false}\n"
    );
    assert_eq!(text(printer(Format::Simple).watch(&canceled)), "");
}

#[test]
fn lease_answers_in_every_format() {
    let grant = LeaseGrantResponse {
        header: header(8),
        id: 2324035536862251543,
        ttl: 100,
        error: String::new(),
    };
    assert_eq!(
        text(printer(Format::Simple).grant(&grant)),
        "lease 2040a201ec0f0a17 granted with TTL(100s)\n"
    );
    assert_eq!(
        text(printer(Format::Json).grant(&grant)),
        "{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":8,\"raft_term\":2,\"ID\":2324035536862251543,\"TTL\":100,\"Error\":\"\"}\n"
    );
    assert_eq!(
        text(printer(Format::Fields).grant(&grant)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 8\n\"RaftTerm\" : 2\n\"ID\" : 2324035536862251543\n\"TTL\" : 100\n"
    );
    let list = LeaseLeasesResponse {
        header: header(8),
        leases: vec![
            LeaseStatus {
                id: 2324035536862251541,
            },
            LeaseStatus {
                id: 2324035536862251543,
            },
        ],
    };
    assert_eq!(
        text(printer(Format::Simple).leases(&list)),
        "found 2 leases\n2040a201ec0f0a15\n2040a201ec0f0a17\n"
    );
    assert_eq!(
        text(printer(Format::Json).leases(&list)),
        "{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":8,\"raft_term\":2,\"leases\":[{\"id\":2324035536862251541},{\"id\":2324035536862251543}]}\n"
    );
    let empty = LeaseLeasesResponse {
        header: header(8),
        leases: Vec::new(),
    };
    assert_eq!(
        text(printer(Format::Simple).leases(&empty)),
        "found 0 leases\n"
    );
    assert!(text(printer(Format::Json).leases(&empty)).ends_with(",\"leases\":[]}\n"));
    let ttl = LeaseTimeToLiveResponse {
        header: header(9),
        id: 2324035536862251547,
        ttl: 99,
        granted_ttl: 100,
        keys: vec![b"k1".to_vec()],
    };
    assert_eq!(
        text(printer(Format::Simple).time_to_live(&ttl, true)),
        "lease 2040a201ec0f0a1b granted with TTL(100s), remaining(99s), attached keys([k1])\n"
    );
    assert_eq!(
        text(printer(Format::Simple).time_to_live(&ttl, false)),
        "lease 2040a201ec0f0a1b granted with TTL(100s), remaining(99s)\n"
    );
    assert_eq!(
        text(printer(Format::Json).time_to_live(&ttl, true)),
        "{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":9,\"raft_term\":2,\"id\":2324035536862251547,\"ttl\":99,\"granted-ttl\":100,\"keys\":[\"azE=\"]}\n"
    );
    let expired = LeaseTimeToLiveResponse {
        header: header(10),
        id: 2324035536862251547,
        ttl: -1,
        granted_ttl: 0,
        keys: Vec::new(),
    };
    assert_eq!(
        text(printer(Format::Simple).time_to_live(&expired, false)),
        "lease 2040a201ec0f0a1b already expired\n"
    );
    assert_eq!(
        text(printer(Format::Json).time_to_live(&expired, false)),
        "{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":10,\"raft_term\":2,\"id\":2324035536862251547,\"ttl\":-1,\"granted-ttl\":0,\"keys\":null}\n"
    );
    for format in [Format::Table, Format::Protobuf] {
        assert_eq!(
            printer(format).grant(&grant).unwrap_err().code,
            ExitCode::BadFeature
        );
    }
}

fn members() -> MemberListResponse {
    MemberListResponse {
        header: Some(ResponseHeader {
            revision: 0,
            ..header(0).unwrap_or_default()
        }),
        members: vec![Member {
            id: 3319814642761637952,
            name: "default".to_string(),
            peer_ur_ls: vec!["http://127.0.0.1:23800".to_string()],
            client_ur_ls: vec!["http://127.0.0.1:23790".to_string()],
            is_learner: false,
        }],
    }
}

#[test]
fn member_list_in_every_format() {
    let r = members();
    assert_eq!(
        text(printer(Format::Simple).member_list(&r)),
        "2e1259d415f2a040, started, default, http://127.0.0.1:23800, http://127.0.0.1:23790, false\n"
    );
    assert_eq!(
        text(printer(Format::Json).member_list(&r)),
        "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"raft_term\":2},\"members\":[{\"ID\":3319814642761637952,\"name\":\"default\",\"peerURLs\":[\"http://127.0.0.1:23800\"],\"clientURLs\":[\"http://127.0.0.1:23790\"]}]}\n"
    );
    // etcdctl 3.5 only: --hex turns the IDs into hex strings.
    assert_eq!(
        text(Printer::new(Format::Json, true).member_list(&r)),
        "{\"header\":{\"cluster_id\":\"48276a8f75b6a87\",\"member_id\":\"2e1259d415f2a040\",\"raft_term\":2},\"members\":[{\"ID\":\"2e1259d415f2a040\",\"name\":\"default\",\"peerURLs\":[\"http://127.0.0.1:23800\"],\"clientURLS\":[\"http://127.0.0.1:23790\"]}]}\n"
    );
    assert_eq!(
        text(printer(Format::Fields).member_list(&r)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 0\n\"RaftTerm\" : 2\n\"ID\" : 3319814642761637952\n\"Name\" : \"default\"\n\"PeerURL\" : \"http://127.0.0.1:23800\"\n\"ClientURL\" : \"http://127.0.0.1:23790\"\n\"IsLearner\" : false\n\n"
    );
    assert!(text(printer(Format::Table).member_list(&r)).contains(
        "| 2e1259d415f2a040 | started | default | http://127.0.0.1:23800 | http://127.0.0.1:23790 |      false |\n"
    ));
    let unstarted = MemberListResponse {
        members: vec![Member {
            id: 10,
            name: String::new(),
            peer_ur_ls: vec!["http://p".to_string()],
            client_ur_ls: Vec::new(),
            is_learner: true,
        }],
        ..members()
    };
    assert_eq!(
        text(printer(Format::Simple).member_list(&unstarted)),
        "a, unstarted, , http://p, , true\n"
    );
}

fn status() -> EpStatus {
    EpStatus {
        endpoint: "127.0.0.1:23790".to_string(),
        status: StatusResponse {
            header: header(17),
            version: "3.4.23".to_string(),
            db_size: 20480,
            leader: 3319814642761637952,
            raft_index: 40,
            raft_term: 2,
            raft_applied_index: 40,
            errors: Vec::new(),
            db_size_in_use: 16384,
            is_learner: false,
        },
    }
}

#[test]
fn endpoint_status_in_every_format() {
    let list = vec![status()];
    assert_eq!(
        text(printer(Format::Simple).endpoint_status(&list)),
        "127.0.0.1:23790, 2e1259d415f2a040, 3.4.23, 20 kB, true, false, 2, 40, 40, \n"
    );
    assert_eq!(
        text(printer(Format::Json).endpoint_status(&list)),
        "[{\"Endpoint\":\"127.0.0.1:23790\",\"Status\":{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":17,\"raft_term\":2},\"version\":\"3.4.23\",\"dbSize\":20480,\"leader\":3319814642761637952,\"raftIndex\":40,\"raftTerm\":2,\"raftAppliedIndex\":40,\"dbSizeInUse\":16384}}]\n"
    );
    assert_eq!(
        text(printer(Format::Fields).endpoint_status(&list)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 17\n\"RaftTerm\" : 2\n\"Version\" : \"3.4.23\"\n\"DBSize\" : 20480\n\"Leader\" : 3319814642761637952\n\"IsLearner\" : false\n\"RaftIndex\" : 40\n\"RaftTerm\" : 2\n\"RaftAppliedIndex\" : 40\n\"Errors\" : []\n\"Endpoint\" : \"127.0.0.1:23790\"\n\n"
    );
    assert_eq!(
        text(printer(Format::Table).endpoint_status(&list)),
        "\
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
|    ENDPOINT     |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
| 127.0.0.1:23790 | 2e1259d415f2a040 |  3.4.23 |   20 kB |      true |      false |         2 |         40 |                 40 |        |
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
"
    );
    assert_eq!(text(printer(Format::Json).endpoint_status(&[])), "[]\n");
}

#[test]
fn endpoint_health_and_hash_in_every_format() {
    let healthy = EpHealth {
        endpoint: "127.0.0.1:23790".to_string(),
        health: true,
        took: "1.244975ms".to_string(),
        error: String::new(),
    };
    let sick = EpHealth {
        endpoint: "127.0.0.1:1".to_string(),
        health: false,
        took: "5s".to_string(),
        error: "context deadline exceeded".to_string(),
    };
    let (out, err) = printer(Format::Simple)
        .endpoint_health(&[healthy.clone(), sick])
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "127.0.0.1:23790 is healthy: successfully committed proposal: took = 1.244975ms\n"
    );
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "127.0.0.1:1 is unhealthy: failed to commit proposal: context deadline exceeded\n"
    );
    let (out, _) = printer(Format::Json)
        .endpoint_health(std::slice::from_ref(&healthy))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[{\"endpoint\":\"127.0.0.1:23790\",\"health\":true,\"took\":\"1.244975ms\"}]\n"
    );
    let (out, _) = printer(Format::Fields)
        .endpoint_health(std::slice::from_ref(&healthy))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"Endpoint\" : \"127.0.0.1:23790\"\n\"Health\" : true\n\"Took\" : 1.244975ms\n\"Error\" : \n\n"
    );
    let (out, _) = printer(Format::Table).endpoint_health(&[healthy]).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
+-----------------+--------+------------+-------+
|    ENDPOINT     | HEALTH |    TOOK    | ERROR |
+-----------------+--------+------------+-------+
| 127.0.0.1:23790 |   true | 1.244975ms |       |
+-----------------+--------+------------+-------+
"
    );
    let hash = vec![EpHashKv {
        endpoint: "127.0.0.1:23790".to_string(),
        hash_kv: HashKvResponse {
            header: header(17),
            hash: 2042782941,
            compact_revision: -1,
            ..HashKvResponse::default()
        },
    }];
    assert_eq!(
        text(printer(Format::Simple).endpoint_hash_kv(&hash)),
        "127.0.0.1:23790, 2042782941\n"
    );
    assert_eq!(
        text(printer(Format::Json).endpoint_hash_kv(&hash)),
        "[{\"Endpoint\":\"127.0.0.1:23790\",\"HashKV\":{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":17,\"raft_term\":2},\"hash\":2042782941,\"compact_revision\":-1}}]\n"
    );
    assert_eq!(
        text(printer(Format::Fields).endpoint_hash_kv(&hash)),
        "\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 17\n\"RaftTerm\" : 2\n\"Endpoint\" : \"127.0.0.1:23790\"\n\"Hash\" : 2042782941\n\n"
    );
}

#[test]
fn alarms_and_move_leader() {
    let r = AlarmResponse {
        header: None,
        alarms: vec![AlarmMember {
            member_id: 13668033151171901709,
            alarm: 1,
        }],
    };
    assert_eq!(
        text(printer(Format::Simple).alarm(&r)),
        "memberID:13668033151171901709 alarm:NOSPACE \n"
    );
    assert_eq!(
        text(printer(Format::Json).alarm(&r)),
        "{\"alarms\":[{\"memberID\":13668033151171901709,\"alarm\":1}]}\n"
    );
    assert_eq!(
        text(printer(Format::Json).alarm(&AlarmResponse::default())),
        "{}\n"
    );
    let moved = MoveLeaderResponse::default();
    assert_eq!(
        text(printer(Format::Simple).move_leader(0x2e1259d415f2a040, 0xa, &moved)),
        "Leadership transferred from 2e1259d415f2a040 to a\n"
    );
    assert_eq!(
        text(printer(Format::Json).move_leader(1, 2, &moved)),
        "{}\n"
    );
    assert_eq!(
        printer(Format::Fields)
            .move_leader(1, 2, &moved)
            .unwrap_err(),
        CtlError::new(
            ExitCode::BadFeature,
            "fields not supported as output format"
        )
    );
}

#[test]
fn format_names_round_trip() {
    for name in ["simple", "json", "fields", "table", "protobuf"] {
        assert_eq!(Format::parse(name).map(Format::name), Some(name));
    }
    assert_eq!(Format::parse("yaml"), None);
}
