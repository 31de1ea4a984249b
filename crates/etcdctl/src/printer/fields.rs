//! The `fields` format: one `"Name" : value` line per field, strings Go-quoted, a
//! response header first. A missing header prints as zeros (etcdctl would crash).

use std::fmt::Write as _;

use etcd_proto::etcdserverpb::response_op::Response;
use etcd_proto::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, TxnResponse, WatchResponse,
};
use etcd_proto::mvccpb::KeyValue;

use super::{alarm_name, event_name, header_or_default, EpHashKv, EpHealth, EpStatus};
use crate::gofmt::quote;

fn hdr(out: &mut String, h: Option<&ResponseHeader>) {
    let h = header_or_default(h);
    let _ = writeln!(out, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(out, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(out, "\"Revision\" : {}", h.revision);
    let _ = writeln!(out, "\"RaftTerm\" : {}", h.raft_term);
}

fn kv(out: &mut String, prefix: &str, kv: &KeyValue) {
    let _ = writeln!(out, "\"{prefix}Key\" : {}", quote(&kv.key));
    let _ = writeln!(out, "\"{prefix}CreateRevision\" : {}", kv.create_revision);
    let _ = writeln!(out, "\"{prefix}ModRevision\" : {}", kv.mod_revision);
    let _ = writeln!(out, "\"{prefix}Version\" : {}", kv.version);
    let _ = writeln!(out, "\"{prefix}Value\" : {}", quote(&kv.value));
    let _ = writeln!(out, "\"{prefix}Lease\" : {}", kv.lease);
}

/// Go's `%v` of a `[]string`: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

pub(super) fn header_only(h: Option<&ResponseHeader>) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, h);
    out.into_bytes()
}

fn get_into(out: &mut String, r: &RangeResponse) {
    hdr(out, r.header.as_ref());
    for item in &r.kvs {
        kv(out, "", item);
    }
    let _ = writeln!(out, "\"More\" : {}", r.more);
    let _ = writeln!(out, "\"Count\" : {}", r.count);
}

fn put_into(out: &mut String, r: &PutResponse) {
    hdr(out, r.header.as_ref());
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev);
    }
}

fn del_into(out: &mut String, r: &DeleteRangeResponse) {
    hdr(out, r.header.as_ref());
    let _ = writeln!(out, "\"Deleted\" : {}", r.deleted);
    for prev in &r.prev_kvs {
        kv(out, "Prev", prev);
    }
}

pub(super) fn get(r: &RangeResponse) -> Vec<u8> {
    let mut out = String::new();
    get_into(&mut out, r);
    out.into_bytes()
}

pub(super) fn put(r: &PutResponse) -> Vec<u8> {
    let mut out = String::new();
    put_into(&mut out, r);
    out.into_bytes()
}

pub(super) fn del(r: &DeleteRangeResponse) -> Vec<u8> {
    let mut out = String::new();
    del_into(&mut out, r);
    out.into_bytes()
}

pub(super) fn txn(r: &TxnResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"Succeeded\" : {}", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(Response::ResponseDeleteRange(d)) => del_into(&mut out, d),
            Some(Response::ResponsePut(p)) => put_into(&mut out, p),
            Some(Response::ResponseRange(g)) => get_into(&mut out, g),
            Some(Response::ResponseTxn(_)) | None => {
                let _ = writeln!(out, "\"Unknown\" : \"\"");
            }
        }
    }
    out.into_bytes()
}

pub(super) fn watch(r: &WatchResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for event in &r.events {
        let _ = writeln!(out, "\"Type\" : {}", event_name(event.r#type));
        if let Some(prev) = &event.prev_kv {
            kv(&mut out, "Prev", prev);
        }
        kv(&mut out, "", &event.kv.clone().unwrap_or_default());
    }
    out.into_bytes()
}

pub(super) fn grant(r: &LeaseGrantResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"ID\" : {}", r.id);
    let _ = writeln!(out, "\"TTL\" : {}", r.ttl);
    out.into_bytes()
}

pub(super) fn keep_alive(r: &LeaseKeepAliveResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"ID\" : {}", r.id);
    let _ = writeln!(out, "\"TTL\" : {}", r.ttl);
    out.into_bytes()
}

pub(super) fn time_to_live(r: &LeaseTimeToLiveResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"ID\" : {}", r.id);
    let _ = writeln!(out, "\"TTL\" : {}", r.ttl);
    let _ = writeln!(out, "\"GrantedTTL\" : {}", r.granted_ttl);
    for key in &r.keys {
        let _ = writeln!(out, "\"Key\" : {}", quote(key));
    }
    out.into_bytes()
}

pub(super) fn leases(r: &LeaseLeasesResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for lease in &r.leases {
        let _ = writeln!(out, "\"ID\" : {}", lease.id);
    }
    out.into_bytes()
}

pub(super) fn member_list(r: &MemberListResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for m in &r.members {
        let _ = writeln!(out, "\"ID\" : {}", m.id);
        let _ = writeln!(out, "\"Name\" : {}", quote(m.name.as_bytes()));
        for url in &m.peer_ur_ls {
            let _ = writeln!(out, "\"PeerURL\" : {}", quote(url.as_bytes()));
        }
        for url in &m.client_ur_ls {
            let _ = writeln!(out, "\"ClientURL\" : {}", quote(url.as_bytes()));
        }
        let _ = writeln!(out, "\"IsLearner\" : {}", m.is_learner);
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn endpoint_health(list: &[EpHealth]) -> Vec<u8> {
    let mut out = String::new();
    for h in list {
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(h.endpoint.as_bytes()));
        let _ = writeln!(out, "\"Health\" : {}", h.health);
        let _ = writeln!(out, "\"Took\" : {}", h.took);
        let _ = writeln!(out, "\"Error\" : {}", h.error);
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn endpoint_status(list: &[EpStatus]) -> Vec<u8> {
    let mut out = String::new();
    for ep in list {
        let s = &ep.status;
        hdr(&mut out, s.header.as_ref());
        let _ = writeln!(out, "\"Version\" : {}", quote(s.version.as_bytes()));
        let _ = writeln!(out, "\"DBSize\" : {}", s.db_size);
        let _ = writeln!(out, "\"Leader\" : {}", s.leader);
        let _ = writeln!(out, "\"IsLearner\" : {}", s.is_learner);
        let _ = writeln!(out, "\"RaftIndex\" : {}", s.raft_index);
        let _ = writeln!(out, "\"RaftTerm\" : {}", s.raft_term);
        let _ = writeln!(out, "\"RaftAppliedIndex\" : {}", s.raft_applied_index);
        let _ = writeln!(out, "\"Errors\" : {}", go_list(&s.errors));
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(ep.endpoint.as_bytes()));
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn endpoint_hash_kv(list: &[EpHashKv]) -> Vec<u8> {
    let mut out = String::new();
    for h in list {
        hdr(&mut out, h.hash_kv.header.as_ref());
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(h.endpoint.as_bytes()));
        let _ = writeln!(out, "\"Hash\" : {}", h.hash_kv.hash);
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn alarm(r: &AlarmResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for a in &r.alarms {
        let _ = writeln!(out, "\"MemberID\" : {}", a.member_id);
        let _ = writeln!(out, "\"AlarmType\" : {}", alarm_name(a.alarm));
        out.push('\n');
    }
    out.into_bytes()
}
