//! The client-facing gRPC services (tonic), wire-compatible with etcd v3.5, and the
//! listener that serves them.
//!
//! Every service checks a request, then either reads the local store (after a
//! linearizable barrier unless the request is serializable) or proposes the request
//! through raft and waits for the applier; every response header carries
//! `{cluster_id, member_id, revision, raft_term}`; every error is one of etcd's, from the
//! table in [`crate::errors`]. On a learner, only what etcd serves there passes
//! ([`LearnerLayer`]).

mod cluster;
mod kv;
mod learner;
mod maintenance;

use std::net::SocketAddr;
use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, maintenance_server::MaintenanceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use learner::LearnerLayer;
pub use maintenance::MaintenanceService;

use crate::server::Shared;

/// Extra bytes a gRPC message may carry beyond `--max-request-bytes`, as etcd allows.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Serves the client API on `listener` until the member stops.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) -> Result<(), String> {
    let max = shared.cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let mut stopping = shared.stopping();
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .accept_http1(true)
        .layer(crate::http::HttpLayer::new(shared.clone()))
        .layer(LearnerLayer::new(shared.clone()))
        .add_service(
            KvServer::new(KvService::new(shared.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            MaintenanceServer::new(MaintenanceService::new(shared.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            ClusterServer::new(ClusterService::new(shared.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX),
        );
    let router = crate::lease_watch::add_services(router, &shared, max).add_service(
        etcd_proto::v3lockpb::lock_server::LockServer::new(crate::lock::LockService::new(
            shared.clone(),
        ))
        .max_decoding_message_size(max),
    );
    let router = router.add_service(
        etcd_proto::v3electionpb::election_server::ElectionServer::new(
            crate::election::ElectionService::new(shared.clone()),
        )
        .max_decoding_message_size(max),
    );
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| format!("client listener: {e}"))
}

/// Binds a client listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for clients: {e}"))
}
