//! A trivial in-process etcd for the tests: KV answers every Put/Range/Txn at once
//! (puts bump a revision and notify watchers; nothing is stored) and Watch streams the
//! puts of the watched key. It runs on an ephemeral loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use etcd_proto::etcdserverpb::kv_server::{Kv, KvServer};
use etcd_proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use etcd_proto::etcdserverpb::request_op::Request as Op;
use etcd_proto::etcdserverpb::watch_request::RequestUnion;
use etcd_proto::etcdserverpb::watch_server::{Watch, WatchServer};
use etcd_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, ResponseHeader, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use etcd_proto::mvccpb::{Event, KeyValue};
use etcd_proto::tonic::{self, Request, Response, Status, Streaming};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// What the fake server saw.
#[derive(Debug)]
pub struct FakeEtcd {
    revision: AtomicI64,
    /// Puts answered (successfully or not).
    pub puts: AtomicU64,
    /// Ranges answered.
    pub ranges: AtomicU64,
    /// Txns answered.
    pub txns: AtomicU64,
    /// Put operations inside txns.
    pub txn_puts: AtomicU64,
    /// Range operations inside txns.
    pub txn_ranges: AtomicU64,
    /// Leases granted.
    pub grants: AtomicU64,
    /// Keep-alives answered.
    pub keep_alives: AtomicU64,
    /// Every `fail_every`th put fails (0: none).
    fail_every: u64,
    /// The last range request seen.
    pub last_range: parking_lot::Mutex<Option<RangeRequest>>,
    events: broadcast::Sender<(Vec<u8>, i64)>,
}

impl FakeEtcd {
    pub fn new(fail_every: u64) -> Self {
        FakeEtcd {
            revision: AtomicI64::new(1),
            puts: AtomicU64::new(0),
            ranges: AtomicU64::new(0),
            txns: AtomicU64::new(0),
            txn_puts: AtomicU64::new(0),
            txn_ranges: AtomicU64::new(0),
            grants: AtomicU64::new(0),
            keep_alives: AtomicU64::new(0),
            fail_every,
            last_range: parking_lot::Mutex::new(None),
            events: broadcast::channel(1024).0,
        }
    }

    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: 1,
            revision,
            raft_term: 1,
        })
    }
}

/// Starts `fake` on 127.0.0.1 with an ephemeral port; returns its address.
pub async fn start(fake: Arc<FakeEtcd>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::from_arc(Arc::clone(&fake)))
            .add_service(LeaseServer::from_arc(Arc::clone(&fake)))
            .add_service(WatchServer::from_arc(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

#[tonic::async_trait]
impl Kv for FakeEtcd {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        self.ranges.fetch_add(1, Ordering::Relaxed);
        *self.last_range.lock() = Some(request.into_inner());
        Ok(Response::new(RangeResponse {
            header: Self::header(self.revision.load(Ordering::Relaxed)),
            ..Default::default()
        }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let n = self.puts.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(Status::unavailable("etcdserver: request timed out"));
        }
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.events.send((request.into_inner().key, revision));
        Ok(Response::new(PutResponse {
            header: Self::header(revision),
            prev_kv: None,
        }))
    }

    async fn delete_range(
        &self,
        _request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.txns.fetch_add(1, Ordering::Relaxed);
        for op in request.into_inner().success {
            match op.request {
                Some(Op::RequestPut(_)) => self.txn_puts.fetch_add(1, Ordering::Relaxed),
                Some(Op::RequestRange(_)) => self.txn_ranges.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Response::new(TxnResponse {
            header: Self::header(revision),
            succeeded: true,
            responses: Vec::new(),
        }))
    }

    async fn compact(
        &self,
        _request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

#[tonic::async_trait]
impl Watch for FakeEtcd {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut requests = request.into_inner();
        let mut events = self.events.subscribe();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let key = match requests.message().await {
                Ok(Some(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(create)),
                })) => create.key,
                _ => return,
            };
            let created = WatchResponse {
                header: FakeEtcd::header(0),
                created: true,
                ..Default::default()
            };
            if tx.send(Ok(created)).await.is_err() {
                return;
            }
            while let Ok((put_key, revision)) = events.recv().await {
                if put_key != key {
                    continue;
                }
                let event = Event {
                    r#type: 0,
                    kv: Some(KeyValue {
                        key: put_key,
                        mod_revision: revision,
                        ..Default::default()
                    }),
                    prev_kv: None,
                };
                let response = WatchResponse {
                    header: FakeEtcd::header(revision),
                    events: vec![event],
                    ..Default::default()
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl Lease for FakeEtcd {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let id = self.grants.fetch_add(1, Ordering::Relaxed) as i64 + 1;
        Ok(Response::new(LeaseGrantResponse {
            header: Self::header(1),
            id,
            ttl: request.into_inner().ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        _request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let granted = self.grants.load(Ordering::Relaxed) as i64;
        self.keep_alives.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(keep_alive)) = requests.message().await {
                let known = keep_alive.id >= 1 && keep_alive.id <= granted;
                let answer = LeaseKeepAliveResponse {
                    header: FakeEtcd::header(1),
                    id: keep_alive.id,
                    ttl: if known { 100 } else { 0 },
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        _request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}
