//! The `simple` format: keys and values on lines of their own (raw bytes, or `\xHH` with
//! `--hex`), `OK`, counts, and one comma-separated line per member or endpoint.

use etcd_proto::etcdserverpb::response_op::Response;
use etcd_proto::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse, PutResponse,
    RangeResponse, TxnResponse, WatchResponse,
};
use etcd_proto::mvccpb::KeyValue;

use super::{alarm_name, event_name, EpHealth, Printer};
use crate::gofmt;

fn line(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.push(b'\n');
}

fn kv(out: &mut Vec<u8>, p: &Printer, kv: &KeyValue) {
    if p.hex {
        if !p.value_only {
            line(out, gofmt::hex_escaped(&kv.key).as_bytes());
        }
        line(out, gofmt::hex_escaped(&kv.value).as_bytes());
    } else {
        if !p.value_only {
            line(out, &kv.key);
        }
        line(out, &kv.value);
    }
}

pub(super) fn get(p: &Printer, r: &RangeResponse) -> Vec<u8> {
    let mut out = Vec::new();
    for item in &r.kvs {
        kv(&mut out, p, item);
    }
    out
}

pub(super) fn put(p: &Printer, r: &PutResponse) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(prev) = &r.prev_kv {
        kv(&mut out, p, prev);
    }
    out
}

pub(super) fn del(p: &Printer, r: &DeleteRangeResponse) -> Vec<u8> {
    let mut out = format!("{}\n", r.deleted).into_bytes();
    for prev in &r.prev_kvs {
        kv(&mut out, p, prev);
    }
    out
}

pub(super) fn txn(p: &Printer, r: &TxnResponse) -> Vec<u8> {
    let mut out = if r.succeeded {
        b"SUCCESS\n".to_vec()
    } else {
        b"FAILURE\n".to_vec()
    };
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(Response::ResponseDeleteRange(d)) => out.extend(del(p, d)),
            Some(Response::ResponsePut(put_response)) => out.extend(put(p, put_response)),
            Some(Response::ResponseRange(range)) => out.extend(get(p, range)),
            Some(Response::ResponseTxn(_)) | None => {
                out.extend_from_slice(b"unexpected response\n");
            }
        }
    }
    out
}

pub(super) fn watch(p: &Printer, r: &WatchResponse) -> Vec<u8> {
    let mut out = Vec::new();
    for event in &r.events {
        line(&mut out, event_name(event.r#type).as_bytes());
        if let Some(prev) = &event.prev_kv {
            kv(&mut out, p, prev);
        }
        kv(&mut out, p, &event.kv.clone().unwrap_or_default());
    }
    out
}

pub(super) fn time_to_live(r: &LeaseTimeToLiveResponse, keys: bool) -> Vec<u8> {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {} already expired\n", gofmt::lease_hex(r.id)).into_bytes();
    }
    let mut out = format!(
        "lease {} granted with TTL({}s), remaining({}s)",
        gofmt::lease_hex(r.id),
        r.granted_ttl,
        r.ttl
    )
    .into_bytes();
    if keys {
        out.extend_from_slice(b", attached keys([");
        for (i, key) in r.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(key);
        }
        out.extend_from_slice(b"])");
    }
    out.push(b'\n');
    out
}

pub(super) fn leases(r: &LeaseLeasesResponse) -> Vec<u8> {
    let mut out = format!("found {} leases\n", r.leases.len());
    for lease in &r.leases {
        out.push_str(&gofmt::lease_hex(lease.id));
        out.push('\n');
    }
    out.into_bytes()
}

/// Each alarm as Go's `%+v` prints the protobuf message: its non-zero fields in
/// protobuf text form, each followed by a space.
pub(super) fn alarm(r: &AlarmResponse) -> Vec<u8> {
    let mut out = String::new();
    for a in &r.alarms {
        if a.member_id != 0 {
            out.push_str(&format!("memberID:{} ", a.member_id));
        }
        if a.alarm != 0 {
            out.push_str(&format!("alarm:{} ", alarm_name(a.alarm)));
        }
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn rows(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.join(", "));
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn endpoint_health(list: &[EpHealth]) -> (Vec<u8>, Vec<u8>) {
    let mut out = String::new();
    let mut err = String::new();
    for h in list {
        if h.error.is_empty() {
            out.push_str(&format!(
                "{} is healthy: successfully committed proposal: took = {}\n",
                h.endpoint, h.took
            ));
        } else {
            err.push_str(&format!(
                "{} is unhealthy: failed to commit proposal: {}\n",
                h.endpoint, h.error
            ));
        }
    }
    (out.into_bytes(), err.into_bytes())
}
