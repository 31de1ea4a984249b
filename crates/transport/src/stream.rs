//! The stream writer: one long-lived gRPC bidi call per peer and kind, carrying raft
//! messages in queue order, re-opened with bounded exponential backoff when it breaks.
//!
//! Why two streams (as etcd): appends can pile up behind a slow follower (the queue holds
//! up to 4096 messages of up to `max-request-bytes` each), while heartbeats and votes are
//! tiny and time-critical: behind a backlog of appends they would arrive late and the
//! follower would start an election. Two gRPC streams on the same HTTP/2 connection have
//! their own queues and their frames interleave, so a heartbeat waits for at most one
//! HTTP/2 frame, not for the append backlog. The cost is small (one more task and queue per
//! peer). Raft needs no ordering between appends and other messages; each stream keeps
//! its own messages in order.
//!
//! Owns the receiving end of one stream queue. Invariants: the `*_stream_working` flag is
//! true only between the receiver's acceptance and the first failure; messages taken off
//! the queue are either handed to gRPC or reported dropped; when the stream breaks, the
//! queued messages are dropped and reported (raft resends), never sent late on a new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::raftpb::Message;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::AsciiMetadataValue;

use crate::metadata::STREAM_KIND_HEADER;
use crate::peer::PeerShared;

/// Messages handed to gRPC but not yet written to the HTTP/2 stream.
const STREAM_INFLIGHT: usize = 16;

/// Which of a peer's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// MsgApp only.
    MsgApp,
    /// Everything else but snapshots.
    Message,
}

impl StreamKind {
    fn name(self) -> &'static str {
        match self {
            StreamKind::MsgApp => "msgapp",
            StreamKind::Message => "message",
        }
    }

    fn working(self, shared: &PeerShared) -> &AtomicBool {
        match self {
            StreamKind::MsgApp => &shared.counters.msgapp_stream_working,
            StreamKind::Message => &shared.counters.message_stream_working,
        }
    }
}

/// How one stream session ended.
enum End {
    /// The transport or the peer stops.
    Stop,
    /// The peer's URLs changed: reconnect at once.
    Reconnect,
    /// The stream broke or could not be opened.
    Failed(String),
}

/// Runs the writer of one stream until the peer stops.
pub(crate) async fn run_writer(
    shared: Arc<PeerShared>,
    kind: StreamKind,
    mut queue: mpsc::Receiver<Message>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = shared.config.stream_backoff_min;
    let mut urls = shared.url_generation.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        urls.mark_unchanged();
        let end = session(
            &shared,
            kind,
            &mut queue,
            &mut stop,
            &mut urls,
            &mut backoff,
        )
        .await;
        kind.working(&shared).store(false, Ordering::Release);
        drain(&shared, &mut queue);
        match end {
            End::Stop => break,
            End::Reconnect => continue,
            End::Failed(reason) => {
                tracing::debug!(remote_peer_id = %format!("{:x}", shared.id), stream = kind.name(),
                    %reason, "peer stream closed; retrying after backoff");
                shared.status.deactivate(&reason);
                shared.rotate_url();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(shared.config.stream_backoff_max);
            }
        }
    }
    kind.working(&shared).store(false, Ordering::Release);
    drain(&shared, &mut queue);
}

/// Drops what is queued for a stream that is not open.
fn drain(shared: &PeerShared, queue: &mut mpsc::Receiver<Message>) {
    let mut dropped = false;
    while let Ok(m) = queue.try_recv() {
        shared.counters.failed(1);
        if !dropped {
            shared.raft.report_unreachable(shared.id);
            dropped = true;
        }
        drop(m);
    }
}

/// Opens one stream and pumps the queue into it until it ends.
async fn session(
    shared: &PeerShared,
    kind: StreamKind,
    queue: &mut mpsc::Receiver<Message>,
    stop: &mut watch::Receiver<bool>,
    urls: &mut watch::Receiver<u64>,
    backoff: &mut Duration,
) -> End {
    let (tx, rx) = mpsc::channel::<Message>(STREAM_INFLIGHT);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    shared.identity.insert(request.metadata_mut());
    request.metadata_mut().insert(
        STREAM_KIND_HEADER,
        AsciiMetadataValue::from_static(kind.name()),
    );
    let mut client = shared.client();
    let open = async {
        let response = client.stream(request).await?;
        let mut inbound = response.into_inner();
        match inbound.message().await? {
            Some(_) => Ok(inbound),
            None => Err(tonic::Status::unavailable(
                "peer closed the stream before accepting it",
            )),
        }
    };
    let open = tokio::time::timeout(
        shared.config.dial_timeout + shared.config.request_timeout,
        open,
    );
    let mut inbound = tokio::select! {
        r = open => match r {
            Ok(Ok(inbound)) => inbound,
            Ok(Err(status)) => {
                shared.check_refusal(&status);
                return End::Failed(format!("{}: {}", status.code(), status.message()));
            }
            Err(_) => return End::Failed("timed out opening the stream".to_string()),
        },
        _ = stop.changed() => return End::Stop,
        _ = urls.changed() => return End::Reconnect,
    };
    kind.working(shared).store(true, Ordering::Release);
    shared.status.activate();
    *backoff = shared.config.stream_backoff_min;
    tracing::info!(local_member_id = %format!("{:x}", shared.identity.from),
        remote_peer_id = %format!("{:x}", shared.id), stream = kind.name(), "established peer stream");
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return End::Stop,
            _ = urls.changed() => return End::Reconnect,
            r = inbound.message() => {
                return End::Failed(match r {
                    Ok(_) => "peer closed the stream".to_string(),
                    Err(status) => {
                        shared.check_refusal(&status);
                        format!("{}: {}", status.code(), status.message())
                    }
                });
            }
            m = queue.recv() => {
                let Some(m) = m else { return End::Stop };
                let len = m.encoded_len();
                tokio::select! {
                    r = tx.send(m) => match r {
                        Ok(()) => shared.counters.sent(len),
                        Err(mpsc::error::SendError(m)) => {
                            shared.report_dropped(&m);
                            return End::Failed("connection to the peer closed".to_string());
                        }
                    },
                    _ = stop.changed() => return End::Stop,
                }
            }
        }
    }
}
