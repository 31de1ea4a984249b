//! The pipeline: short unary requests, a bounded number in flight, for snapshot messages
//! (without backend data) and for any message while the peer's streams are down.
//!
//! Owns the receiving end of the peer's pipeline queue. Invariants: at most
//! `pipeline_concurrency` requests are in flight per peer; every message is either
//! acknowledged by the peer or reported (`report_unreachable`, and
//! `report_snapshot(false)` for snapshots); a snapshot message that arrives reports
//! `report_snapshot(true)`.

use std::sync::Arc;

use etcd_proto::raftpb::{Message, MessageType};
use prost::Message as _;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::peer::PeerShared;

/// Runs the pipeline of one peer until it stops.
pub(crate) async fn run(
    shared: Arc<PeerShared>,
    mut queue: mpsc::Receiver<Message>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.pipeline_concurrency));
    let mut inflight = JoinSet::new();
    loop {
        let m = tokio::select! {
            _ = stop.changed() => break,
            m = queue.recv() => match m { Some(m) => m, None => break },
        };
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => { shared.report_dropped(&m); break }
        };
        while inflight.try_join_next().is_some() {}
        inflight.spawn(post(shared.clone(), m, permit));
    }
    inflight.shutdown().await;
    while let Ok(m) = queue.try_recv() {
        shared.report_dropped(&m);
    }
}

/// Sends one message as a unary request.
async fn post(shared: Arc<PeerShared>, m: Message, permit: OwnedSemaphorePermit) {
    let is_snap = m.r#type == MessageType::MsgSnap as i32;
    let len = m.encoded_len();
    let mut request = tonic::Request::new(m.clone());
    shared.identity.insert(request.metadata_mut());
    request.set_timeout(shared.config.request_timeout);
    let result =
        tokio::time::timeout(shared.config.request_timeout, shared.client().send(request)).await;
    drop(permit);
    match result {
        Ok(Ok(_)) => {
            shared.counters.sent(len);
            shared.status.activate();
            if is_snap {
                shared.raft.report_snapshot(shared.id, true);
            }
        }
        Ok(Err(status)) => {
            shared.check_refusal(&status);
            shared.status.deactivate(&format!(
                "pipeline: {}: {}",
                status.code(),
                status.message()
            ));
            shared.report_dropped(&m);
        }
        Err(_) => {
            shared.status.deactivate("pipeline: request timed out");
            shared.report_dropped(&m);
        }
    }
}
