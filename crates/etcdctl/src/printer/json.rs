//! The `json` format: what Go's `encoding/json` makes of etcd's (gogo-protobuf) types and
//! of etcdctl's own structs. Protobuf fields use their `json:"name,omitempty"` tags (zero
//! values left out, bytes as base64); clientv3's lease responses embed the header, so its
//! fields stand at the top level; watch responses use Go field names (`Header`,
//! `Events`, ...) and print every field.

use std::fmt::Write as _;

use etcd_proto::etcdserverpb::response_op::Response;
use etcd_proto::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, Member, MemberListResponse, PutResponse,
    RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use etcd_proto::mvccpb::{Event, KeyValue};

use super::{header_or_default, EpHashKv, EpHealth, EpStatus};
use crate::gofmt::{json_bytes, json_string};

/// A JSON object under construction, fields in insertion order.
#[derive(Default)]
struct Obj {
    body: String,
}

impl Obj {
    fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        let _ = write!(self.body, "\"{key}\":{value}");
        self
    }

    fn int<T: Default + PartialEq + std::fmt::Display>(
        &mut self,
        key: &str,
        value: T,
    ) -> &mut Self {
        if value != T::default() {
            self.raw(key, &value.to_string());
        }
        self
    }

    fn int_always<T: std::fmt::Display>(&mut self, key: &str, value: T) -> &mut Self {
        self.raw(key, &value.to_string())
    }

    fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        if value {
            self.raw(key, "true");
        }
        self
    }

    fn string(&mut self, key: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.raw(key, &json_string(value));
        }
        self
    }

    fn bytes(&mut self, key: &str, value: &[u8]) -> &mut Self {
        if !value.is_empty() {
            self.raw(key, &json_bytes(value));
        }
        self
    }

    fn object(&mut self, key: &str, value: Option<String>) -> &mut Self {
        if let Some(value) = value {
            self.raw(key, &value);
        }
        self
    }

    fn list(&mut self, key: &str, items: &[String]) -> &mut Self {
        if !items.is_empty() {
            self.raw(key, &format!("[{}]", items.join(",")));
        }
        self
    }

    fn finish(&self) -> String {
        format!("{{{}}}", self.body)
    }
}

fn header_fields(obj: &mut Obj, h: &ResponseHeader) {
    obj.int("cluster_id", h.cluster_id)
        .int("member_id", h.member_id)
        .int("revision", h.revision)
        .int("raft_term", h.raft_term);
}

fn header(h: Option<&ResponseHeader>) -> Option<String> {
    h.map(|h| {
        let mut obj = Obj::default();
        header_fields(&mut obj, h);
        obj.finish()
    })
}

fn kv(kv: &KeyValue) -> String {
    Obj::default()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .finish()
}

fn kvs(items: &[KeyValue]) -> Vec<String> {
    items.iter().map(kv).collect()
}

pub(super) fn header_only(h: Option<&ResponseHeader>) -> String {
    Obj::default().object("header", header(h)).finish()
}

pub(super) fn range(r: &RangeResponse) -> String {
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .list("kvs", &kvs(&r.kvs))
        .boolean("more", r.more)
        .int("count", r.count)
        .finish()
}

pub(super) fn put(r: &PutResponse) -> String {
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .object("prev_kv", r.prev_kv.as_ref().map(kv))
        .finish()
}

pub(super) fn delete(r: &DeleteRangeResponse) -> String {
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .int("deleted", r.deleted)
        .list("prev_kvs", &kvs(&r.prev_kvs))
        .finish()
}

pub(super) fn txn(r: &TxnResponse) -> String {
    let responses: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(Response::ResponseRange(g)) => {
                    Some(Obj::default().raw("response_range", &range(g)).finish())
                }
                Some(Response::ResponsePut(p)) => {
                    Some(Obj::default().raw("response_put", &put(p)).finish())
                }
                Some(Response::ResponseDeleteRange(d)) => Some(
                    Obj::default()
                        .raw("response_delete_range", &delete(d))
                        .finish(),
                ),
                Some(Response::ResponseTxn(t)) => {
                    Some(Obj::default().raw("response_txn", &txn(t)).finish())
                }
                None => None,
            };
            Obj::default().object("Response", inner).finish()
        })
        .collect();
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .boolean("succeeded", r.succeeded)
        .list("responses", &responses)
        .finish()
}

fn event(e: &Event) -> String {
    Obj::default()
        .int("type", e.r#type)
        .object("kv", e.kv.as_ref().map(kv))
        .object("prev_kv", e.prev_kv.as_ref().map(kv))
        .finish()
}

pub(super) fn watch(r: &WatchResponse) -> String {
    let events: Vec<String> = r.events.iter().map(event).collect();
    let mut header_obj = Obj::default();
    header_fields(&mut header_obj, &header_or_default(r.header.as_ref()));
    Obj::default()
        .raw("Header", &header_obj.finish())
        .raw("Events", &format!("[{}]", events.join(",")))
        .int_always("CompactRevision", r.compact_revision)
        .raw("Canceled", &r.canceled.to_string())
        .raw("Created", &r.created.to_string())
        .finish()
}

/// clientv3's lease responses embed `*pb.ResponseHeader`: its fields are promoted.
fn embedded_header(h: Option<&ResponseHeader>) -> Obj {
    let mut obj = Obj::default();
    if let Some(h) = h {
        header_fields(&mut obj, h);
    }
    obj
}

pub(super) fn grant(r: &LeaseGrantResponse) -> String {
    embedded_header(r.header.as_ref())
        .int_always("ID", r.id)
        .int_always("TTL", r.ttl)
        .raw("Error", &json_string(&r.error))
        .finish()
}

pub(super) fn keep_alive(r: &LeaseKeepAliveResponse) -> String {
    embedded_header(r.header.as_ref())
        .int_always("ID", r.id)
        .int_always("TTL", r.ttl)
        .finish()
}

pub(super) fn time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = r.keys.iter().map(|k| json_bytes(k)).collect();
        format!("[{}]", items.join(","))
    };
    embedded_header(r.header.as_ref())
        .int_always("id", r.id)
        .int_always("ttl", r.ttl)
        .int_always("granted-ttl", r.granted_ttl)
        .raw("keys", &keys)
        .finish()
}

pub(super) fn leases(r: &LeaseLeasesResponse) -> String {
    let items: Vec<String> = r
        .leases
        .iter()
        .map(|l| Obj::default().int_always("id", l.id).finish())
        .collect();
    embedded_header(r.header.as_ref())
        .raw("leases", &format!("[{}]", items.join(",")))
        .finish()
}

fn strings(items: &[String]) -> Vec<String> {
    items.iter().map(|s| json_string(s)).collect()
}

fn member(m: &Member) -> String {
    Obj::default()
        .int("ID", m.id)
        .string("name", &m.name)
        .list("peerURLs", &strings(&m.peer_ur_ls))
        .list("clientURLs", &strings(&m.client_ur_ls))
        .boolean("isLearner", m.is_learner)
        .finish()
}

pub(super) fn member_list(r: &MemberListResponse) -> String {
    let members: Vec<String> = r.members.iter().map(member).collect();
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .list("members", &members)
        .finish()
}

/// etcdctl 3.5's hand-built `member list -w json --hex`: IDs as hex strings, the name
/// unescaped, `clientURLS` (sic), no learner flag.
pub(super) fn member_list_hex(r: &MemberListResponse) -> String {
    let h = header_or_default(r.header.as_ref());
    let mut out = format!(
        "{{\"header\":{{\"cluster_id\":\"{:x}\",\"member_id\":\"{:x}\",\"raft_term\":{}}}",
        h.cluster_id, h.member_id, h.raft_term
    );
    for (i, m) in r.members.iter().enumerate() {
        out.push_str(if i == 0 {
            ",\"members\":[{\"ID\":\""
        } else {
            ",{\"ID\":\""
        });
        let _ = write!(
            out,
            "{:x}\",\"name\":\"{}\",\"peerURLs\":{},\"clientURLS\":{}}}",
            m.id,
            m.name,
            json_string_list(&m.peer_ur_ls),
            json_string_list(&m.client_ur_ls)
        );
        if i + 1 == r.members.len() {
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// Go's `json.Marshal` of a `[]string`: `null` when empty (nil), else a list.
fn json_string_list(items: &[String]) -> String {
    if items.is_empty() {
        "null".to_string()
    } else {
        format!("[{}]", strings(items).join(","))
    }
}

pub(super) fn endpoint_health(list: &[EpHealth]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            Obj::default()
                .raw("endpoint", &json_string(&h.endpoint))
                .raw("health", &h.health.to_string())
                .raw("took", &json_string(&h.took))
                .string("error", &h.error)
                .finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn status(s: &StatusResponse) -> String {
    Obj::default()
        .object("header", header(s.header.as_ref()))
        .string("version", &s.version)
        .int("dbSize", s.db_size)
        .int("leader", s.leader)
        .int("raftIndex", s.raft_index)
        .int("raftTerm", s.raft_term)
        .int("raftAppliedIndex", s.raft_applied_index)
        .list("errors", &strings(&s.errors))
        .int("dbSizeInUse", s.db_size_in_use)
        .boolean("isLearner", s.is_learner)
        .finish()
}

pub(super) fn endpoint_status(list: &[EpStatus]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|s| {
            Obj::default()
                .raw("Endpoint", &json_string(&s.endpoint))
                .raw("Status", &status(&s.status))
                .finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn hash_kv(h: &HashKvResponse) -> String {
    Obj::default()
        .object("header", header(h.header.as_ref()))
        .int("hash", h.hash)
        .int("compact_revision", h.compact_revision)
        .finish()
}

pub(super) fn endpoint_hash_kv(list: &[EpHashKv]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            Obj::default()
                .raw("Endpoint", &json_string(&h.endpoint))
                .raw("HashKV", &hash_kv(&h.hash_kv))
                .finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

pub(super) fn alarm(r: &AlarmResponse) -> String {
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            Obj::default()
                .int("memberID", a.member_id)
                .int("alarm", a.alarm)
                .finish()
        })
        .collect();
    Obj::default()
        .object("header", header(r.header.as_ref()))
        .list("alarms", &alarms)
        .finish()
}
