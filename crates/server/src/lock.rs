//! The Lock service (`v3lockpb.Lock`), built on KV, leases and watches the way etcd
//! builds it (a `concurrency.Mutex` in the server).
//!
//! `Lock(name, lease)` creates the key `name/<lease id in hex>` attached to the lease,
//! unless it exists, in one txn that also reads the oldest key under `name/`; the caller
//! owns the lock when its key is the oldest (lowest create revision). Otherwise it waits
//! until every older key under the prefix is deleted (unlocked, or gone with its lease),
//! watching the newest older key each time, so waiters queue in creation order with no
//! thundering herd. `Unlock(key)` deletes the key. If the client gives up while waiting,
//! the key is deleted so it does not hold the queue.

use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request as Op,
    response_op::Response as OpResponse,
    Compare, DeleteRangeRequest, InternalRaftRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use etcd_proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use tonic::{Request, Response, Status};

use crate::apply::ApplyResponse;
use crate::errors::{EtcdError, ServerError};
use crate::kv;
use crate::server::Shared;

/// The Lock service of one member.
pub struct LockService {
    shared: Arc<Shared>,
}

impl LockService {
    /// A service over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> LockService {
        LockService { shared }
    }
}

/// The end of the range of keys with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Deletes `key` through raft (unlock, or cleanup of an abandoned wait).
pub(crate) async fn delete(shared: &Shared, key: Vec<u8>) -> Result<i64, ServerError> {
    let req = InternalRaftRequest {
        delete_range: Some(DeleteRangeRequest {
            key,
            ..Default::default()
        }),
        ..Default::default()
    };
    match shared.propose(req).await? {
        ApplyResponse::DeleteRange(r) => Ok(r.header.map_or(0, |h| h.revision)),
        _ => Err(ServerError::Internal("unexpected apply result".into())),
    }
}

/// Deletes the key if the future holding this guard is dropped before it is disarmed.
pub(crate) struct Abandon {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: Option<Vec<u8>>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let _ = delete(&shared, key).await;
            });
        }
    }
}

/// Waits until no key under `prefix` older than `my_rev` remains.
pub(crate) async fn wait_older_deleted(
    shared: &Shared,
    prefix: &[u8],
    my_rev: i64,
) -> Result<(), ServerError> {
    {
        let end = prefix_end(prefix);
        loop {
            let store = shared.store();
            let query = RangeRequest {
                key: prefix.to_vec(),
                range_end: end.clone(),
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision: my_rev - 1,
                ..Default::default()
            };
            let newest_older = {
                let _gate = shared.read_gate.read();
                let view = store.read();
                kv::range(&view, &query)?
            };
            let Some(kv) = newest_older.kvs.into_iter().next() else {
                return Ok(());
            };
            let rev = newest_older.header.map_or(0, |h| h.revision);
            // Watch that key for its deletion from the revision we read at.
            let mut ws = shared.watchable().watch_stream();
            ws.watch(etcd_watch::WatchRequest {
                key: kv.key.clone(),
                start_rev: rev + 1,
                no_put: true,
                ..Default::default()
            })
            .map_err(|e| ServerError::Internal(e.to_string()))?;
            loop {
                tokio::select! {
                    resp = ws.recv() => match resp {
                        Some(r) if r.canceled => break,
                        Some(r) if !r.events.is_empty() => break,
                        Some(_) => continue,
                        None => return Err(EtcdError::Stopped.into()),
                    },
                    () = shared.stopped() => return Err(EtcdError::Stopped.into()),
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let mut prefix = r.name.clone();
        prefix.push(b'/');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", r.lease).as_bytes());
        let end = prefix_end(&prefix);
        let oldest = RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: prefix.clone(),
                range_end: end,
                limit: 1,
                sort_order: SortOrder::Ascend as i32,
                sort_target: SortTarget::Create as i32,
                ..Default::default()
            })),
        };
        let mine = RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.clone(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::CreateRevision(0)),
            }],
            success: vec![
                RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key.clone(),
                        lease: r.lease,
                        ..Default::default()
                    })),
                },
                oldest.clone(),
            ],
            failure: vec![mine, oldest],
        };
        let req = InternalRaftRequest {
            txn: Some(txn),
            ..Default::default()
        };
        let resp = match self.shared.propose(req).await? {
            ApplyResponse::Txn(t) => t,
            _ => return Err(ServerError::Internal("unexpected apply result".into()).into()),
        };
        let txn_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        let my_rev = if resp.succeeded {
            txn_rev
        } else {
            match resp.responses.first().and_then(|r| r.response.as_ref()) {
                Some(OpResponse::ResponseRange(rr)) => {
                    rr.kvs.first().map_or(txn_rev, |kv| kv.create_revision)
                }
                _ => txn_rev,
            }
        };
        let owner_rev = match resp.responses.get(1).and_then(|r| r.response.as_ref()) {
            Some(OpResponse::ResponseRange(rr)) => {
                rr.kvs.first().map_or(my_rev, |kv| kv.create_revision)
            }
            _ => my_rev,
        };
        if owner_rev != my_rev {
            let mut guard = Abandon {
                shared: self.shared.clone(),
                key: Some(key.clone()),
            };
            wait_older_deleted(&self.shared, &prefix, my_rev).await?;
            guard.key = None;
        }
        Ok(Response::new(LockResponse {
            header: self.shared.header(),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let key = request.into_inner().key;
        if key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let rev = delete(&self.shared, key).await?;
        let mut header = self.shared.header();
        if let Some(h) = header.as_mut() {
            h.revision = rev;
        }
        Ok(Response::new(UnlockResponse { header }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
