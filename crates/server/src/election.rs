//! The Election service (`v3electionpb.Election`), built on KV, leases and watches the
//! way etcd builds it (a `concurrency.Election` in the server).
//!
//! A candidate's key is `name/<lease id in hex>` holding its proclaimed value; the
//! leader is the key under `name/` with the lowest create revision. `Campaign` creates
//! the key (or finds it) and waits, like a lock, until every older key is gone;
//! `Proclaim` changes the leader's value only while the caller still holds the key at
//! the same create revision; `Resign` deletes it; `Leader` reads the current leader;
//! `Observe` streams the leader each time it or its value changes. Errors are etcd's
//! recipe errors (`election: not leader`, `election: no leader`, with gRPC code Unknown).

use std::pin::Pin;
use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request as Op,
    response_op::Response as OpResponse,
    Compare, DeleteRangeRequest, InternalRaftRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use etcd_proto::mvccpb::KeyValue;
use etcd_proto::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::apply::ApplyResponse;
use crate::errors::{EtcdError, ServerError};
use crate::kv;
use crate::lock::{prefix_end, wait_older_deleted, Abandon};
use crate::server::Shared;

/// etcd's recipe errors (answered with code Unknown, as etcd's election server does).
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// The Election service of one member.
pub struct ElectionService {
    shared: Arc<Shared>,
}

impl ElectionService {
    /// A service over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> ElectionService {
        ElectionService { shared }
    }
}

fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

fn compare_created(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

async fn txn(
    shared: &Shared,
    t: TxnRequest,
) -> Result<etcd_proto::etcdserverpb::TxnResponse, ServerError> {
    let req = InternalRaftRequest {
        txn: Some(t),
        ..Default::default()
    };
    match shared.propose(req).await? {
        ApplyResponse::Txn(t) => Ok(t),
        _ => Err(ServerError::Internal("unexpected apply result".into())),
    }
}

/// The current leader's key-value under `name/`, read locally.
fn current_leader(shared: &Shared, name: &[u8]) -> Result<(Option<KeyValue>, i64), ServerError> {
    let prefix = prefix_of(name);
    let query = RangeRequest {
        range_end: prefix_end(&prefix),
        key: prefix,
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    };
    let store = shared.store();
    let resp = {
        let _gate = shared.read_gate.read();
        let view = store.read();
        kv::range(&view, &query)?
    };
    let rev = resp.header.map_or(0, |h| h.revision);
    Ok((resp.kvs.into_iter().next(), rev))
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let prefix = prefix_of(&r.name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", r.lease).as_bytes());
        let resp = txn(
            &self.shared,
            TxnRequest {
                compare: vec![compare_created(&key, 0)],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key.clone(),
                        value: r.value.clone(),
                        lease: r.lease,
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(Op::RequestRange(RangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    })),
                }],
            },
        )
        .await?;
        let txn_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        let mut my_rev = txn_rev;
        if !resp.succeeded {
            // Campaigning again with the same lease: keep the key, update its value.
            if let Some(OpResponse::ResponseRange(rr)) =
                resp.responses.first().and_then(|x| x.response.as_ref())
            {
                if let Some(kv) = rr.kvs.first() {
                    my_rev = kv.create_revision;
                    if kv.value != r.value {
                        self.proclaim_at(&key, my_rev, r.lease, r.value.clone())
                            .await?;
                    }
                }
            }
        }
        let mut guard = Abandon {
            shared: self.shared.clone(),
            key: Some(key.clone()),
        };
        wait_older_deleted(&self.shared, &prefix, my_rev).await?;
        guard.key = None;
        Ok(Response::new(CampaignResponse {
            header: self.shared.header(),
            leader: Some(LeaderKey {
                name: r.name,
                key,
                rev: my_rev,
                lease: r.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        let Some(leader) = r.leader else {
            return Err(ServerError::Recipe(MISSING_LEADER_KEY).into());
        };
        self.proclaim_at(&leader.key, leader.rev, leader.lease, r.value)
            .await?;
        Ok(Response::new(ProclaimResponse {
            header: self.shared.header(),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let name = request.into_inner().name;
        self.shared.linearizable_read().await?;
        match current_leader(&self.shared, &name)? {
            (Some(kv), rev) => {
                let mut header = self.shared.header();
                if let Some(h) = header.as_mut() {
                    h.revision = rev;
                }
                Ok(Response::new(LeaderResponse {
                    header,
                    kv: Some(kv),
                }))
            }
            (None, _) => Err(ServerError::Recipe(NO_LEADER).into()),
        }
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let name = request.into_inner().name;
        let prefix = prefix_of(&name);
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        let mut ws = shared.watchable().watch_stream();
        ws.watch(etcd_watch::WatchRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            ..Default::default()
        })
        .map_err(|e| ServerError::Internal(e.to_string()))?;
        tokio::spawn(async move {
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                // Report the leader whenever it (or its value) changed since the last
                // report; then wait for the next change under the prefix.
                if let Ok((Some(kv), rev)) = current_leader(&shared, &name) {
                    let now = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let mut header = shared.header();
                        if let Some(h) = header.as_mut() {
                            h.revision = rev;
                        }
                        if tx
                            .send(Ok(LeaderResponse {
                                header,
                                kv: Some(kv),
                            }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                tokio::select! {
                    resp = ws.recv() => if resp.is_none() { return },
                    () = tx.closed() => return,
                    () = shared.stopped() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let Some(leader) = request.into_inner().leader else {
            return Err(ServerError::Recipe(MISSING_LEADER_KEY).into());
        };
        let resp = txn(
            &self.shared,
            TxnRequest {
                compare: vec![compare_created(&leader.key, leader.rev)],
                success: vec![RequestOp {
                    request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                        key: leader.key.clone(),
                        ..Default::default()
                    })),
                }],
                failure: Vec::new(),
            },
        )
        .await?;
        let mut header = self.shared.header();
        if let (Some(h), Some(rh)) = (header.as_mut(), resp.header) {
            h.revision = rh.revision;
        }
        Ok(Response::new(ResignResponse { header }))
    }
}

impl ElectionService {
    /// Puts `value` on `key` if it is still the caller's (same create revision).
    async fn proclaim_at(
        &self,
        key: &[u8],
        rev: i64,
        lease: i64,
        value: Vec<u8>,
    ) -> Result<(), ServerError> {
        let resp = txn(
            &self.shared,
            TxnRequest {
                compare: vec![compare_created(key, rev)],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key.to_vec(),
                        value,
                        lease,
                        ..Default::default()
                    })),
                }],
                failure: Vec::new(),
            },
        )
        .await?;
        if resp.succeeded {
            Ok(())
        } else {
            Err(ServerError::Recipe(NOT_LEADER))
        }
    }
}
