//! Output formats (`-w simple|json|fields|table|protobuf`), byte for byte as etcdctl 3.5
//! prints them.
//!
//! A [`Printer`] turns one response into the bytes to write on stdout. A format that has
//! no rendering for a response answers etcdctl's error (`table not supported as output
//! format`, exit 4) instead: `table` renders only member and endpoint lists, `fields`
//! has no `move-leader`, `json` and `protobuf` none for endpoint lists or leases
//! respectively, as in etcdctl.

mod fields;
mod json;
mod simple;

use etcd_proto::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse,
    MoveLeaderResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse,
    WatchResponse,
};
use etcd_proto::prost::Message;

use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::table;

/// An output format of `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (the default).
    Simple,
    /// One JSON document per response, as Go's `encoding/json` writes etcd's types.
    Json,
    /// `"Name" : value` lines.
    Fields,
    /// ASCII tables (member and endpoint lists only).
    Table,
    /// The response's protobuf encoding.
    Protobuf,
}

impl Format {
    /// Reads a `--write-out` value; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "simple" => Some(Format::Simple),
            "json" => Some(Format::Json),
            "fields" => Some(Format::Fields),
            "table" => Some(Format::Table),
            "protobuf" => Some(Format::Protobuf),
            _ => None,
        }
    }

    /// The name as given to `--write-out`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// One endpoint's answer to `endpoint health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpHealth {
    /// The endpoint as given.
    pub endpoint: String,
    /// Whether it answered a read and has no alarm.
    pub health: bool,
    /// How long the read took (Go duration text), empty if it was never sent.
    pub took: String,
    /// Why it is unhealthy, empty if healthy.
    pub error: String,
}

/// One endpoint's answer to `endpoint status`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpStatus {
    /// The endpoint as given.
    pub endpoint: String,
    /// Its status.
    pub status: StatusResponse,
}

/// One endpoint's answer to `endpoint hashkv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpHashKv {
    /// The endpoint as given.
    pub endpoint: String,
    /// Its hash.
    pub hash_kv: HashKvResponse,
}

/// What a printer produces: bytes for stdout, or etcdctl's error for an unsupported
/// format.
pub type Printed = Result<Vec<u8>, CtlError>;

/// Renders responses in one output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printer {
    /// The format.
    pub format: Format,
    /// `--hex`: keys and values as `\xHH` (simple format), member IDs in hex (json).
    pub hex: bool,
    /// `--print-value-only`: values without keys (simple format).
    pub value_only: bool,
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: Format, hex: bool) -> Printer {
        Printer {
            format,
            hex,
            value_only: false,
        }
    }

    /// etcdctl's error for a response this format cannot render.
    pub fn unsupported(&self) -> CtlError {
        CtlError::new(
            ExitCode::BadFeature,
            format!("{} not supported as output format", self.format.name()),
        )
    }

    fn json_line(text: String) -> Vec<u8> {
        let mut out = text.into_bytes();
        out.push(b'\n');
        out
    }

    /// `get`.
    pub fn get(&self, r: &RangeResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::get(self, r)),
            Format::Fields => Ok(fields::get(r)),
            Format::Json => Ok(Self::json_line(json::range(r))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }

    /// `put`.
    pub fn put(&self, r: &PutResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::put(self, r)),
            Format::Fields => Ok(fields::put(r)),
            Format::Json => Ok(Self::json_line(json::put(r))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }

    /// `del`.
    pub fn del(&self, r: &DeleteRangeResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::del(self, r)),
            Format::Fields => Ok(fields::del(r)),
            Format::Json => Ok(Self::json_line(json::delete(r))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }

    /// `txn`.
    pub fn txn(&self, r: &TxnResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::txn(self, r)),
            Format::Fields => Ok(fields::txn(r)),
            Format::Json => Ok(Self::json_line(json::txn(r))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }

    /// One watch response (events, a progress notification or a cancellation).
    pub fn watch(&self, r: &WatchResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::watch(self, r)),
            Format::Fields => Ok(fields::watch(r)),
            Format::Json => Ok(Self::json_line(json::watch(r))),
            Format::Protobuf => Ok(WatchResponse {
                header: Some(r.header.unwrap_or_default()),
                events: r.events.clone(),
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: r.created,
                ..WatchResponse::default()
            }
            .encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }

    /// `lease grant`.
    pub fn grant(&self, r: &LeaseGrantResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(format!(
                "lease {} granted with TTL({}s)\n",
                gofmt::lease_hex(r.id),
                r.ttl
            )
            .into_bytes()),
            Format::Fields => Ok(fields::grant(r)),
            Format::Json => Ok(Self::json_line(json::grant(r))),
            Format::Table | Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `lease revoke`.
    pub fn revoke(&self, id: i64, r: &LeaseRevokeResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(format!("lease {} revoked\n", gofmt::lease_hex(id)).into_bytes()),
            Format::Fields => Ok(fields::header_only(r.header.as_ref())),
            Format::Json => Ok(Self::json_line(json::header_only(r.header.as_ref()))),
            Format::Table | Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// One `lease keep-alive` answer.
    pub fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(format!(
                "lease {} keepalived with TTL({})\n",
                gofmt::lease_hex(r.id),
                r.ttl
            )
            .into_bytes()),
            Format::Fields => Ok(fields::keep_alive(r)),
            Format::Json => Ok(Self::json_line(json::keep_alive(r))),
            Format::Table | Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `lease timetolive [--keys]`.
    pub fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::time_to_live(r, keys)),
            Format::Fields => Ok(fields::time_to_live(r)),
            Format::Json => Ok(Self::json_line(json::time_to_live(r))),
            Format::Table | Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `lease list`.
    pub fn leases(&self, r: &LeaseLeasesResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::leases(r)),
            Format::Fields => Ok(fields::leases(r)),
            Format::Json => Ok(Self::json_line(json::leases(r))),
            Format::Table | Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `member list`.
    pub fn member_list(&self, r: &MemberListResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::rows(&member_rows(r))),
            Format::Fields => Ok(fields::member_list(r)),
            Format::Json if self.hex => Ok(Self::json_line(json::member_list_hex(r))),
            Format::Json => Ok(Self::json_line(json::member_list(r))),
            Format::Table => Ok(table::render(&MEMBER_HEADER, &member_rows(r)).into_bytes()),
            Format::Protobuf => Ok(r.encode_to_vec()),
        }
    }

    /// `endpoint health`: bytes for stdout and for stderr (simple prints unhealthy
    /// endpoints on stderr).
    pub fn endpoint_health(&self, list: &[EpHealth]) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
        match self.format {
            Format::Simple => Ok(simple::endpoint_health(list)),
            Format::Fields => Ok((fields::endpoint_health(list), Vec::new())),
            Format::Json => Ok((Self::json_line(json::endpoint_health(list)), Vec::new())),
            Format::Table => {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                let text = table::render(&["endpoint", "health", "took", "error"], &rows);
                Ok((text.into_bytes(), Vec::new()))
            }
            Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `endpoint status`.
    pub fn endpoint_status(&self, list: &[EpStatus]) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::rows(&status_rows(list))),
            Format::Fields => Ok(fields::endpoint_status(list)),
            Format::Json => Ok(Self::json_line(json::endpoint_status(list))),
            Format::Table => Ok(table::render(&STATUS_HEADER, &status_rows(list)).into_bytes()),
            Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `endpoint hashkv`.
    pub fn endpoint_hash_kv(&self, list: &[EpHashKv]) -> Printed {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|h| vec![h.endpoint.clone(), h.hash_kv.hash.to_string()])
            .collect();
        match self.format {
            Format::Simple => Ok(simple::rows(&rows)),
            Format::Fields => Ok(fields::endpoint_hash_kv(list)),
            Format::Json => Ok(Self::json_line(json::endpoint_hash_kv(list))),
            Format::Table => Ok(table::render(&["endpoint", "hash"], &rows).into_bytes()),
            Format::Protobuf => Err(self.unsupported()),
        }
    }

    /// `move-leader`.
    pub fn move_leader(&self, leader: u64, target: u64, r: &MoveLeaderResponse) -> Printed {
        match self.format {
            Format::Simple => {
                Ok(format!("Leadership transferred from {leader:x} to {target:x}\n").into_bytes())
            }
            Format::Json => Ok(Self::json_line(json::header_only(r.header.as_ref()))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Fields | Format::Table => Err(self.unsupported()),
        }
    }

    /// `alarm list` and `alarm disarm`.
    pub fn alarm(&self, r: &AlarmResponse) -> Printed {
        match self.format {
            Format::Simple => Ok(simple::alarm(r)),
            Format::Fields => Ok(fields::alarm(r)),
            Format::Json => Ok(Self::json_line(json::alarm(r))),
            Format::Protobuf => Ok(r.encode_to_vec()),
            Format::Table => Err(self.unsupported()),
        }
    }
}

const MEMBER_HEADER: [&str; 6] = [
    "ID",
    "Status",
    "Name",
    "Peer Addrs",
    "Client Addrs",
    "Is Learner",
];

const STATUS_HEADER: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

fn member_rows(r: &MemberListResponse) -> Vec<Vec<String>> {
    r.members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

fn status_rows(list: &[EpStatus]) -> Vec<Vec<String>> {
    list.iter()
        .map(|s| {
            let member_id = header_or_default(s.status.header.as_ref()).member_id;
            let st = &s.status;
            vec![
                s.endpoint.clone(),
                format!("{member_id:x}"),
                st.version.clone(),
                gofmt::humanize_bytes(u64::try_from(st.db_size).unwrap_or(0)),
                (st.leader == member_id).to_string(),
                st.is_learner.to_string(),
                st.raft_term.to_string(),
                st.raft_index.to_string(),
                st.raft_applied_index.to_string(),
                st.errors.join(", "),
            ]
        })
        .collect()
}

fn header_or_default(header: Option<&ResponseHeader>) -> ResponseHeader {
    header.cloned().unwrap_or_default()
}

/// The name of an alarm type, as Go's enum `String()` gives it.
fn alarm_name(alarm: i32) -> String {
    match alarm {
        0 => "NONE".to_string(),
        1 => "NOSPACE".to_string(),
        2 => "CORRUPT".to_string(),
        other => other.to_string(),
    }
}

/// The name of a watch event type.
fn event_name(kind: i32) -> String {
    match kind {
        0 => "PUT".to_string(),
        1 => "DELETE".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
