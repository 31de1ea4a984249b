//! The semantics of etcd's KV requests over the multi-version store: the checks a
//! request passes before it is proposed, and how Range, Put, DeleteRange and Txn run.
//!
//! Reads run over any [`KvRead`] (a read view for serializable and linearizable reads, or
//! the write transaction itself inside a Txn, which then sees its own writes). Writes
//! run inside one `TxnWrite`: a Put, a DeleteRange or a whole Txn (with nested Txns) is
//! one main revision. A Txn evaluates every compare of every nested level against the
//! state before any of its operations, then checks the chosen operations (leases exist,
//! `ignore_value` keys exist) and only then writes, so a failed check changes nothing.

use std::cmp::Ordering;
use std::collections::HashSet;

use etcd_mvcc::{KeyValue, RangeOptions, RangeResult, ReadTxn, TxnWrite};
use etcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};

use crate::errors::{EtcdError, ServerError};

/// A read view the KV semantics run over.
pub trait KvRead {
    /// Reads a range (etcd's `range_end` rules).
    fn range_kvs(
        &self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> etcd_mvcc::Result<RangeResult>;
}

impl KvRead for ReadTxn<'_> {
    fn range_kvs(
        &self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> etcd_mvcc::Result<RangeResult> {
        self.range(key, end, opts)
    }
}

impl KvRead for TxnWrite<'_, '_> {
    fn range_kvs(
        &self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> etcd_mvcc::Result<RangeResult> {
        self.range(key, end, opts)
    }
}

/// Checks a Range before it runs.
pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Checks a Put before it is proposed.
pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange before it is proposed.
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Checks a Txn before it is proposed: operation counts, empty keys, and that no key is
/// put twice or both put and deleted on one path.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    check_txn_ops(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => check_range(r)?,
            Some(Request::RequestPut(r)) => check_put(r)?,
            Some(Request::RequestDeleteRange(r)) => check_delete(r)?,
            Some(Request::RequestTxn(t)) => check_txn_ops(t, max_txn_ops - opc)?,
            None => return Err(EtcdError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted interval `[start, end)`; an empty `end` is the single key `start`.
struct Interval {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            key == self.start.as_slice()
        } else {
            key >= self.start.as_slice() && key < self.end.as_slice()
        }
    }
}

/// etcd's rule: on any one path through a Txn, a key is put at most once and never both
/// put and deleted. Returns the keys put and the intervals deleted below `reqs`.
fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in reqs {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().cloned());
        for k in puts_else {
            // A key put in both branches is fine: only one branch runs.
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// Runs a Range, with etcd's sorting, filtering, `limit` and `more` rules.
pub fn range(
    view: &(impl KvRead + ?Sized),
    r: &RangeRequest,
) -> Result<RangeResponse, ServerError> {
    let sort_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let sort_target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let mut limit = if sort_order != SortOrder::None || filtered {
        0
    } else {
        r.limit.max(0) as usize
    };
    if limit > 0 {
        // One more than asked, to know whether there is more.
        limit += 1;
    }
    let opts = RangeOptions {
        rev: r.revision,
        limit,
        count_only: r.count_only,
        keys_only: r.keys_only,
    };
    let rr = view.range_kvs(&r.key, &r.range_end, opts)?;
    let mut kvs = rr.kvs;
    if filtered {
        kvs.retain(|kv| {
            (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
        });
    }
    // The store returns keys in ascending order; any other target sorts ascending by
    // default.
    let order = if sort_target != SortTarget::Key && sort_order == SortOrder::None {
        SortOrder::Ascend
    } else {
        sort_order
    };
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match sort_target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        if order == SortOrder::Descend {
            kvs.sort_by(|a, b| cmp(b, a));
        } else {
            kvs.sort_by(cmp);
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: Some(header(rr.rev)),
        kvs,
        more,
        count: rr.count as i64,
    })
}

/// A header with only the revision set (the services fill in the rest).
pub fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// Whether a lease id is known to the lessor (checked before a write uses it).
pub type LeaseCheck<'a> = &'a dyn Fn(i64) -> bool;

/// Checks a Put against the state: its lease exists, and the key exists when the value
/// or lease is to be kept.
fn check_put_state(
    view: &(impl KvRead + ?Sized),
    p: &PutRequest,
    lease_exists: LeaseCheck<'_>,
) -> Result<(), ServerError> {
    if p.lease != 0 && !lease_exists(p.lease) {
        return Err(EtcdError::LeaseNotFound.into());
    }
    if p.ignore_value || p.ignore_lease {
        let rr = view.range_kvs(&p.key, b"", RangeOptions::default())?;
        if rr.kvs.is_empty() {
            return Err(EtcdError::KeyNotFound.into());
        }
    }
    Ok(())
}

/// Runs a Put inside `txn` (the caller ends the transaction).
fn put_in(txn: &mut TxnWrite<'_, '_>, p: &PutRequest) -> Result<PutResponse, ServerError> {
    let (mut value, mut lease) = (p.value.clone(), p.lease);
    if p.ignore_value || p.ignore_lease {
        let rr = txn.range(&p.key, b"", RangeOptions::default())?;
        let Some(cur) = rr.kvs.into_iter().next() else {
            return Err(EtcdError::KeyNotFound.into());
        };
        if p.ignore_value {
            value = cur.value;
        }
        if p.ignore_lease {
            lease = cur.lease;
        }
    }
    let prev = txn.put(&p.key, &value, lease)?;
    Ok(PutResponse {
        header: Some(header(txn.read_rev())),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// Runs a DeleteRange inside `txn`.
fn delete_in(
    txn: &mut TxnWrite<'_, '_>,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ServerError> {
    let deleted = txn.delete_range(&d.key, &d.range_end)?;
    Ok(DeleteRangeResponse {
        header: Some(header(txn.read_rev())),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    })
}

/// Applies a Put as one write transaction. Returns the response and the transaction's
/// result (revision and events).
pub fn apply_put(
    txn: &mut TxnWrite<'_, '_>,
    p: &PutRequest,
    lease_exists: LeaseCheck<'_>,
) -> Result<PutResponse, ServerError> {
    check_put_state(txn, p, lease_exists)?;
    put_in(txn, p)
}

/// Applies a DeleteRange as one write transaction.
pub fn apply_delete(
    txn: &mut TxnWrite<'_, '_>,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ServerError> {
    delete_in(txn, d)
}

/// Which branch each (nested) Txn takes, in the order the Txns are met.
fn txn_path(
    view: &(impl KvRead + ?Sized),
    t: &TxnRequest,
    path: &mut Vec<bool>,
) -> Result<(), ServerError> {
    let ok = compares(view, &t.compare)?;
    path.push(ok);
    let ops = if ok { &t.success } else { &t.failure };
    for op in ops {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            txn_path(view, nested, path)?;
        }
    }
    Ok(())
}

fn compares(view: &(impl KvRead + ?Sized), cmps: &[Compare]) -> Result<bool, ServerError> {
    for c in cmps {
        if !compare(view, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare(view: &(impl KvRead + ?Sized), c: &Compare) -> Result<bool, ServerError> {
    let rr = match view.range_kvs(&c.key, &c.range_end, RangeOptions::default()) {
        Ok(rr) => rr,
        Err(_) => return Ok(false),
    };
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if rr.kvs.is_empty() {
        // A missing key has no value to compare: a VALUE compare fails.
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&match u {
            Some(TargetUnion::CreateRevision(r)) => *r,
            _ => 0,
        }),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&match u {
            Some(TargetUnion::ModRevision(r)) => *r,
            _ => 0,
        }),
        (CompareTarget::Version, u) => kv.version.cmp(&match u {
            Some(TargetUnion::Version(r)) => *r,
            _ => 0,
        }),
        (CompareTarget::Lease, u) => kv.lease.cmp(&match u {
            Some(TargetUnion::Lease(r)) => *r,
            _ => 0,
        }),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// Checks the operations on the chosen path against the state before the txn.
fn check_path(
    view: &(impl KvRead + ?Sized),
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    lease_exists: LeaseCheck<'_>,
) -> Result<(), ServerError> {
    let ok = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    let ops = if ok { &t.success } else { &t.failure };
    for op in ops {
        match &op.request {
            Some(Request::RequestPut(p)) => check_put_state(view, p, lease_exists)?,
            Some(Request::RequestTxn(nested)) => check_path(view, nested, path, at, lease_exists)?,
            _ => {}
        }
    }
    Ok(())
}

/// Whether a Txn writes nothing on any path (then it can be served as a read).
pub fn txn_is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) => true,
            Some(Request::RequestTxn(nested)) => txn_is_read_only(nested),
            _ => false,
        })
}

/// Whether every Range in a read-only Txn is serializable.
pub fn txn_is_serializable(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(r)) => r.serializable,
            Some(Request::RequestTxn(nested)) => txn_is_serializable(nested),
            _ => true,
        })
}

/// Runs a read-only Txn over a read view.
pub fn read_txn(view: &(impl KvRead + ?Sized), t: &TxnRequest) -> Result<TxnResponse, ServerError> {
    let mut path = Vec::new();
    txn_path(view, t, &mut path)?;
    let mut at = 0;
    let mut resp = read_txn_ops(view, t, &path, &mut at)?;
    let rev = view
        .range_kvs(
            b"\0",
            b"\0",
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )?
        .rev;
    resp.header = Some(header(rev));
    Ok(resp)
}

fn read_txn_ops(
    view: &(impl KvRead + ?Sized),
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse, ServerError> {
    let ok = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    let ops = if ok { &t.success } else { &t.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(range(view, r)?),
            Some(Request::RequestTxn(nested)) => {
                let mut n = read_txn_ops(view, nested, path, at)?;
                n.header = Some(ResponseHeader::default());
                Response::ResponseTxn(n)
            }
            _ => return Err(ServerError::Internal("write in a read-only txn".into())),
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

/// Applies a Txn as one write transaction: compares first (all levels, against the
/// state before the txn), then checks, then the operations of the chosen paths.
pub fn apply_txn(
    txn: &mut TxnWrite<'_, '_>,
    t: &TxnRequest,
    lease_exists: LeaseCheck<'_>,
) -> Result<TxnResponse, ServerError> {
    let mut path = Vec::new();
    txn_path(txn, t, &mut path)?;
    let mut at = 0;
    check_path(txn, t, &path, &mut at, lease_exists)?;
    let mut at = 0;
    write_txn_ops(txn, t, &path, &mut at)
}

fn write_txn_ops(
    txn: &mut TxnWrite<'_, '_>,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse, ServerError> {
    let ok = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    let ops = if ok { &t.success } else { &t.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(range(txn, r)?),
            Some(Request::RequestPut(p)) => Response::ResponsePut(put_in(txn, p)?),
            Some(Request::RequestDeleteRange(d)) => {
                Response::ResponseDeleteRange(delete_in(txn, d)?)
            }
            Some(Request::RequestTxn(nested)) => {
                let mut n = write_txn_ops(txn, nested, path, at)?;
                n.header = Some(ResponseHeader::default());
                Response::ResponseTxn(n)
            }
            None => return Err(EtcdError::KeyNotFound.into()),
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(t)),
        }
    }

    #[test]
    fn a_key_put_twice_on_one_path_is_a_duplicate() {
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![]), 128),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![put("b"), del("a", "c")], vec![]), 128),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check_txn(
                &txn(vec![put("a"), nested(txn(vec![put("a")], vec![]))], vec![]),
                128
            ),
            Err(EtcdError::DuplicateKey)
        );
    }

    #[test]
    fn a_key_put_in_both_branches_is_not_a_duplicate() {
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")]), 128), Ok(()));
        assert_eq!(
            check_txn(
                &txn(vec![nested(txn(vec![put("a")], vec![put("a")]))], vec![]),
                128
            ),
            Ok(())
        );
        assert_eq!(
            check_txn(&txn(vec![put("c"), del("a", "c")], vec![]), 128),
            Ok(())
        );
    }

    #[test]
    fn too_many_ops_and_empty_keys_are_refused() {
        let many: Vec<RequestOp> = (0..5).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(
            check_txn(&txn(many.clone(), vec![]), 4),
            Err(EtcdError::TooManyOps)
        );
        assert_eq!(check_txn(&txn(many, vec![]), 5), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![put("")], vec![]), 5),
            Err(EtcdError::EmptyKey)
        );
        let empty_op = RequestOp { request: None };
        assert_eq!(
            check_txn(&txn(vec![empty_op], vec![]), 5),
            Err(EtcdError::KeyNotFound)
        );
    }

    #[test]
    fn put_checks_match_etcds() {
        let mut p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::ValueProvided));
        p.ignore_value = false;
        p.ignore_lease = true;
        p.lease = 5;
        assert_eq!(check_put(&p), Err(EtcdError::LeaseProvided));
        p.key.clear();
        assert_eq!(check_put(&p), Err(EtcdError::EmptyKey));
    }

    #[test]
    fn read_only_txns_are_recognised() {
        let range = RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                serializable: true,
                ..Default::default()
            })),
        };
        let t = txn(
            vec![range.clone()],
            vec![nested(txn(vec![range.clone()], vec![]))],
        );
        assert!(txn_is_read_only(&t));
        assert!(txn_is_serializable(&t));
        assert!(!txn_is_read_only(&txn(vec![range], vec![put("a")])));
    }
}
