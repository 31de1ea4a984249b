//! The receiving side: the `rafthttppb.Peer` gRPC service that accepts streams, pipeline
//! messages, snapshots and probes from other members and hands them to raft.
//!
//! Owns the tasks that read inbound streams. Invariants: every call passes the [`Gate`]
//! before any message is read; inbound streams end when the transport stops or refuses
//! streams, so a graceful shutdown never waits on a long-lived call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use etcd_proto::rafthttppb::peer_server::Peer as PeerRpc;
use etcd_proto::rafthttppb::{
    MembersRequest, MembersResponse, ProbeRequest, ProbeResponse, SendResponse, SnapshotChunk,
    SnapshotResponse, StreamResponse,
};
use etcd_proto::raftpb::Message;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::metadata::{Gate, STREAM_KIND_HEADER};
use crate::snapshot::receiver::Receiver;
use crate::transport::Inner;

/// The gRPC service of one transport.
pub(crate) struct PeerService {
    pub(crate) inner: Arc<Inner>,
    pub(crate) gate: Arc<Gate>,
}

/// Decrements a counter when dropped.
struct Inbound(Arc<AtomicUsize>);

impl Drop for Inbound {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[tonic::async_trait]
impl PeerRpc for PeerService {
    type StreamStream = ReceiverStream<Result<StreamResponse, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<Message>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let id = self.gate.check(request.metadata(), &*self.inner.raft)?;
        if *self.inner.refuse_streams.borrow() || *self.inner.stop.borrow() {
            return Err(Status::unavailable(format!(
                "member {:x} does not accept streams now",
                self.gate.local_id
            )));
        }
        let kind = request
            .metadata()
            .get(STREAM_KIND_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("message")
            .to_string();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1);
        // Capacity 1 and nothing sent yet: this cannot fail.
        let _ = tx.try_send(Ok(StreamResponse {}));
        let inner = self.inner.clone();
        let gate = self.gate.clone();
        let mut stop = inner.stop.subscribe();
        let mut refuse = inner.refuse_streams.subscribe();
        inner.inbound_streams.fetch_add(1, Ordering::AcqRel);
        let guard = Inbound(inner.inbound_streams.clone());
        tracing::info!(local_member_id = %format!("{:x}", gate.local_id), remote_peer_id = %format!("{:x}", id.from),
            stream = %kind, "peer stream accepted");
        tokio::spawn(async move {
            let _guard = guard;
            let counters = inner.counters_of(id.from);
            loop {
                let m = tokio::select! {
                    _ = stop.changed() => {
                        let _ = tx.send(Err(Status::unavailable("member is stopping"))).await;
                        return;
                    }
                    _ = refuse.changed() => {
                        if *refuse.borrow_and_update() {
                            let _ = tx.send(Err(Status::unavailable("member refuses streams"))).await;
                            return;
                        }
                        continue;
                    }
                    _ = tx.closed() => return,
                    m = inbound.message() => m,
                };
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => {
                        tracing::debug!(remote_peer_id = %format!("{:x}", id.from), stream = %kind, "peer stream ended");
                        return;
                    }
                };
                let checked = gate
                    .check_message(&id, &m)
                    .and_then(|()| gate.check_removed(id.from, &*inner.raft));
                if let Err(status) = checked {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                if let Some(c) = &counters {
                    c.received(m.encoded_len());
                }
                if let Err(err) = inner.raft.process(m) {
                    tracing::debug!(remote_peer_id = %format!("{:x}", id.from), %err,
                        "raft did not take a streamed message; dropped");
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn send(&self, request: Request<Message>) -> Result<Response<SendResponse>, Status> {
        let id = self.gate.check(request.metadata(), &*self.inner.raft)?;
        let m = request.into_inner();
        self.gate.check_message(&id, &m)?;
        if let Some(c) = self.inner.counters_of(id.from) {
            c.received(m.encoded_len());
        }
        self.inner
            .raft
            .process(m)
            .map_err(|e| Status::unavailable(format!("raft did not take the message: {e}")))?;
        Ok(Response::new(SendResponse {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        let id = self.gate.check(request.metadata(), &*self.inner.raft)?;
        let receiver = Receiver {
            config: &self.inner.config,
            gate: &self.gate,
            raft: self.inner.raft.clone(),
            gauge: &self.inner.gauge,
            counters: self.inner.counters_of(id.from),
        };
        let mut stop = self.inner.stop.subscribe();
        let result = tokio::select! {
            r = receiver.receive(id, request.into_inner()) => r,
            _ = stop.changed() => Err(Status::unavailable("member is stopping")),
        };
        if let Err(status) = &result {
            tracing::warn!(remote_member_id = %format!("{:x}", id.from), code = ?status.code(),
                error = status.message(), "failed to receive database snapshot");
        }
        result.map(Response::new)
    }

    async fn probe(
        &self,
        request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        self.gate.check(request.metadata(), &*self.inner.raft)?;
        Ok(Response::new(ProbeResponse {}))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        // No identity check: a joining member knows neither the cluster id nor its own
        // member id yet; the answer is what etcd serves on `GET /members` to anyone.
        self.inner.raft.members().map(Response::new).ok_or_else(|| {
            Status::unavailable(format!(
                "member {:x} cannot list the cluster's members now",
                self.gate.local_id
            ))
        })
    }
}
