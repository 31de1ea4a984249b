//! The Lease and Watch services, and the leader's lease duties (revoking expired leases
//! and replicating checkpoints through raft).
//!
//! Leases: Grant and Revoke go through raft; KeepAlive and TimeToLive are answered by the
//! leader's lessor (a follower forwards them to the leader's client URL, as etcd forwards
//! them to the leader); Leases is read locally. Only the leader's lessor is primary: it
//! finds expired leases and the server proposes their revocation in bounded batches.
//!
//! Watch: one bi-directional stream per client stream, carrying many watchers of one
//! `etcd_watch::WatchStream`; one task per stream handles both the client's requests and
//! the store's responses, so a watcher's `created` response always precedes its events.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_lease::LeaseError;
use etcd_proto::etcdserverpb::{
    lease_client::LeaseClient, lease_server::Lease, lease_server::LeaseServer,
    watch_request::RequestUnion, watch_server::Watch, watch_server::WatchServer,
    InternalRaftRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, WatchRequest as PbWatchRequest,
    WatchResponse as PbWatchResponse,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

use crate::apply::ApplyResponse;
use crate::errors::{EtcdError, ServerError};
use crate::server::Shared;

/// How often the leader looks for expired leases and due checkpoints.
const LEASE_LOOP_INTERVAL: Duration = Duration::from_millis(500);
/// Revocations proposed at once by the lease loop.
const MAX_CONCURRENT_REVOKES: usize = 16;
/// Responses buffered per client stream.
const STREAM_BUFFER: usize = 128;

/// Adds the Lease and Watch services to the client router.
pub(crate) fn add_services<L>(
    router: Router<L>,
    shared: &Arc<Shared>,
    max_bytes: usize,
) -> Router<L> {
    router
        .add_service(
            LeaseServer::new(LeaseService {
                shared: shared.clone(),
            })
            .max_decoding_message_size(max_bytes)
            .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::new(WatchService {
                shared: shared.clone(),
            })
            .max_decoding_message_size(max_bytes)
            .max_encoding_message_size(usize::MAX),
        )
}

/// etcd's error for a lessor error.
pub(crate) fn lease_error(err: LeaseError) -> ServerError {
    match err {
        LeaseError::NotFound => EtcdError::LeaseNotFound.into(),
        LeaseError::Exists => EtcdError::LeaseExist.into(),
        LeaseError::TtlTooLarge => EtcdError::LeaseTtlTooLarge.into(),
        LeaseError::NotPrimary => EtcdError::NotLeader.into(),
        LeaseError::Store(e) => ServerError::Internal(e.to_string()),
    }
}

/// The leader's lease duties, until the member stops.
pub(crate) async fn lease_loop(shared: Arc<Shared>) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REVOKES));
    loop {
        tokio::select! {
            () = tokio::time::sleep(LEASE_LOOP_INTERVAL) => {}
            () = shared.stopped() => return,
        }
        let lessor = shared.lessor();
        if !lessor.is_primary() {
            continue;
        }
        for id in lessor.expired(limit.available_permits()) {
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                break;
            };
            let s = shared.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let req = InternalRaftRequest {
                    lease_revoke: Some(LeaseRevokeRequest { id }),
                    ..Default::default()
                };
                match s.propose(req).await {
                    Ok(_) | Err(ServerError::Etcd(EtcdError::LeaseNotFound)) => {}
                    Err(err) => {
                        tracing::warn!(lease_id = id, %err, "failed to revoke an expired lease; will retry")
                    }
                }
            });
        }
        let due = lessor.due_checkpoints(usize::MAX);
        if !due.is_empty() {
            let req = InternalRaftRequest {
                lease_checkpoint: Some(LeaseCheckpointRequest {
                    checkpoints: due
                        .into_iter()
                        .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                        .collect(),
                }),
                ..Default::default()
            };
            let s = shared.clone();
            tokio::spawn(async move {
                if let Err(err) = s.propose(req).await {
                    tracing::warn!(%err, "failed to replicate lease checkpoints");
                }
            });
        }
    }
}

/// The Lease service of one member.
pub struct LeaseService {
    shared: Arc<Shared>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

impl LeaseService {
    /// A client of the leader's Lease service, for requests only the leader answers.
    async fn leader_client(&self) -> Result<LeaseClient<tonic::transport::Channel>, ServerError> {
        let leader = self.shared.leader();
        if leader == 0 {
            return Err(EtcdError::NoLeader.into());
        }
        let url = self
            .shared
            .cluster
            .member(leader)
            .and_then(|m| m.client_urls.first().cloned())
            .ok_or(ServerError::Etcd(EtcdError::NoLeader))?;
        let endpoint = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.shared.request_timeout());
        let channel = endpoint
            .connect()
            .await
            .map_err(|_| ServerError::Etcd(EtcdError::NoLeader))?;
        Ok(LeaseClient::new(channel))
    }

    /// Renews a lease here if this member leads, else at the leader. A lease that does
    /// not exist answers TTL 0, as etcd does.
    async fn renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        if self.shared.is_leader() {
            let ttl = match self.shared.lessor().renew(id) {
                Ok(ttl) => ttl,
                Err(LeaseError::NotFound) => 0,
                Err(LeaseError::NotPrimary) => return self.renew_at_leader(id).await,
                Err(err) => return Err(lease_error(err).into()),
            };
            return Ok(LeaseKeepAliveResponse {
                header: self.shared.header(),
                id,
                ttl,
            });
        }
        self.renew_at_leader(id).await
    }

    async fn renew_at_leader(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        let mut client = self.leader_client().await?;
        let mut responses = client
            .lease_keep_alive(futures::stream::iter([LeaseKeepAliveRequest { id }]))
            .await?
            .into_inner();
        match responses.message().await? {
            Some(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(resp)
            }
            None => Err(EtcdError::NoLeader.into()),
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let mut r = request.into_inner();
        if r.ttl > etcd_lease::MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        if r.id == 0 {
            // Chosen here, before proposing, so every member applies the same id.
            r.id = (self.shared.ids.next() & (i64::MAX as u64)) as i64;
        }
        let req = InternalRaftRequest {
            lease_grant: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::LeaseGrant(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(ServerError::Internal("unexpected apply result".into()).into()),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let req = InternalRaftRequest {
            lease_revoke: Some(request.into_inner()),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::LeaseRevoke(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(ServerError::Internal("unexpected apply result".into()).into()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let service = LeaseService {
            shared: self.shared.clone(),
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = incoming.message() => m,
                    () = shared.stopped() => return,
                };
                let req = match msg {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(err) => {
                        tracing::debug!(%err, "keep-alive stream closed");
                        return;
                    }
                };
                let resp = service.renew(req.id).await;
                let stop = resp.is_err();
                if tx.send(resp).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        if !self.shared.is_leader() {
            let mut client = self.leader_client().await?;
            let mut resp = client.lease_time_to_live(r).await?.into_inner();
            self.shared.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        let Some(ttl) = self.shared.lessor().time_to_live(r.id, r.keys) else {
            // etcd answers an unknown lease with TTL -1, not an error.
            return Ok(Response::new(LeaseTimeToLiveResponse {
                header: self.shared.header(),
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.shared.header(),
            id: ttl.id,
            ttl: ttl.ttl,
            granted_ttl: ttl.granted_ttl,
            keys: ttl.keys,
        }))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        self.shared.linearizable_read().await?;
        let leases = self
            .shared
            .lessor()
            .leases()
            .into_iter()
            .map(|l| LeaseStatus { id: l.id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.shared.header(),
            leases,
        }))
    }
}

/// The Watch service of one member.
pub struct WatchService {
    shared: Arc<Shared>,
}

type WatchStreamOut = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

/// One client watch stream's state.
struct WatchSession {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<PbWatchResponse, Status>>,
    fragment: HashMap<i64, bool>,
}

impl WatchSession {
    fn response(&self, revision: i64) -> PbWatchResponse {
        let mut header = self.shared.header();
        if let Some(h) = header.as_mut() {
            h.revision = revision;
        }
        PbWatchResponse {
            header,
            ..Default::default()
        }
    }

    /// Handles one client request; false when the client is gone.
    async fn on_request(&mut self, ws: &etcd_watch::WatchStream, req: PbWatchRequest) -> bool {
        match req.request_union {
            Some(RequestUnion::CreateRequest(mut c)) => {
                if c.key.is_empty() {
                    c.key = vec![0];
                }
                let fragment = c.fragment;
                let result = ws.watch(etcd_watch::WatchRequest::from(&c));
                let mut resp = self.response(ws.rev());
                resp.created = true;
                match result {
                    Ok(id) => {
                        resp.watch_id = id;
                        self.fragment.insert(id, fragment);
                    }
                    Err(err) => {
                        resp.watch_id = -1;
                        resp.canceled = true;
                        resp.cancel_reason = err.to_string();
                    }
                }
                self.tx.send(Ok(resp)).await.is_ok()
            }
            Some(RequestUnion::CancelRequest(c)) => {
                if ws.cancel(c.watch_id) {
                    self.fragment.remove(&c.watch_id);
                    let mut resp = self.response(ws.rev());
                    resp.watch_id = c.watch_id;
                    resp.canceled = true;
                    return self.tx.send(Ok(resp)).await.is_ok();
                }
                true
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                ws.request_progress();
                true
            }
            None => true,
        }
    }

    /// Forwards one store response; false when the client is gone.
    async fn on_response(&mut self, r: etcd_watch::WatchResponse) -> bool {
        let mut resp = self.response(r.revision);
        resp.watch_id = r.watch_id;
        resp.events = r.events;
        resp.compact_revision = r.compact_revision;
        resp.canceled = r.canceled;
        resp.cancel_reason = r.cancel_reason;
        if r.canceled {
            self.fragment.remove(&r.watch_id);
        }
        let max = self.shared.cfg.max_request_bytes as usize;
        let parts = if self.fragment.get(&r.watch_id).copied().unwrap_or(false) {
            etcd_watch::fragment(resp, max)
        } else {
            vec![resp]
        };
        for p in parts {
            if self.tx.send(Ok(p)).await.is_err() {
                return false;
            }
        }
        true
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStreamOut;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<WatchStreamOut>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        // With `hasleader=true` the stream ends with `no leader` once the member loses
        // its leader, as etcd's watch server does.
        let require_leader = request
            .metadata()
            .get("hasleader")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "true");
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut ws = self.shared.watchable().watch_stream();
        let mut session = WatchSession {
            shared: self.shared.clone(),
            tx,
            fragment: HashMap::new(),
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let leader_lost = async {
                if !require_leader {
                    return std::future::pending::<()>().await;
                }
                let mut leader = shared.leader_watch();
                let _ = leader.wait_for(|l| *l == 0).await;
            };
            tokio::pin!(leader_lost);
            loop {
                tokio::select! {
                    () = &mut leader_lost => {
                        let _ = session.tx.send(Err(EtcdError::NoLeader.into())).await;
                        return;
                    }
                    msg = incoming.next() => match msg {
                        Some(Ok(req)) => {
                            if !session.on_request(&ws, req).await {
                                return;
                            }
                        }
                        Some(Err(err)) => {
                            tracing::debug!(%err, "watch stream closed by the client");
                            return;
                        }
                        None => return,
                    },
                    resp = ws.recv() => match resp {
                        Some(r) => {
                            if !session.on_response(r).await {
                                return;
                            }
                        }
                        None => return,
                    },
                    () = shared.stopped() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
