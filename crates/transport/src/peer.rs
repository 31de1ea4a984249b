//! One remote member: its queues (two streams, one pipeline), the tasks that drain them,
//! its connection and URLs, and the routing of each outgoing message.
//!
//! Owns the senders of the peer's bounded queues and the stop signal of its tasks.
//! Invariant: [`Peer::send`] never blocks: a message either enters a queue or is dropped
//! and reported (`report_unreachable`, and `report_snapshot(false)` for snapshots).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use etcd_proto::rafthttppb::peer_client::PeerClient;
use etcd_proto::raftpb::{Message, MessageType};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::handler::Raft;
use crate::metadata::Identity;
use crate::stats::{BufferGauge, PeerCounters};
use crate::status::PeerStatus;
use crate::stream::StreamKind;

/// Everything a peer's tasks share.
pub(crate) struct PeerShared {
    pub(crate) id: u64,
    pub(crate) identity: Identity,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) raft: Arc<dyn Raft>,
    pub(crate) counters: Arc<PeerCounters>,
    pub(crate) status: PeerStatus,
    pub(crate) gauge: BufferGauge,
    conn: RwLock<Connection>,
    /// Bumped when the URLs change so streams reconnect to the new ones.
    pub(crate) url_generation: watch::Sender<u64>,
}

struct Connection {
    urls: Vec<String>,
    current: usize,
    channel: Channel,
}

impl PeerShared {
    /// A gRPC client on the peer's current connection.
    pub(crate) fn client(&self) -> PeerClient<Channel> {
        let channel = self.conn.read().channel.clone();
        PeerClient::new(channel)
            .max_decoding_message_size(self.config.max_message_bytes)
            .max_encoding_message_size(self.config.max_message_bytes)
    }

    /// The URL in use.
    pub(crate) fn current_url(&self) -> String {
        let c = self.conn.read();
        c.urls.get(c.current).cloned().unwrap_or_default()
    }

    /// After a connection failure: moves on to the peer's next URL, if it has several.
    pub(crate) fn rotate_url(&self) {
        let mut c = self.conn.write();
        if c.urls.len() < 2 {
            return;
        }
        let next = (c.current + 1) % c.urls.len();
        if let Ok(channel) = build_channel(&self.config, self.id, &c.urls[next]) {
            c.current = next;
            c.channel = channel;
        }
    }

    fn set_urls(&self, urls: Vec<String>) -> Result<(), TransportError> {
        let first = urls.first().ok_or(TransportError::NoUrls(self.id))?;
        let channel = build_channel(&self.config, self.id, first)?;
        *self.conn.write() = Connection {
            urls,
            current: 0,
            channel,
        };
        self.url_generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Looks at a refusal from the peer: `PermissionDenied` means this member was removed
    /// from the cluster, which the handler hears (it should stop the member).
    pub(crate) fn check_refusal(&self, status: &tonic::Status) {
        if status.code() == tonic::Code::PermissionDenied {
            tracing::warn!(local_member_id = %format!("{:x}", self.identity.from),
                remote_peer_id = %format!("{:x}", self.id), reason = status.message(),
                "peer refused this member as removed from the cluster");
            self.raft.report_removed(self.id);
        }
    }

    /// Reports a message that will not be delivered.
    pub(crate) fn report_dropped(&self, m: &Message) {
        self.counters.failed(1);
        self.raft.report_unreachable(self.id);
        if m.r#type == MessageType::MsgSnap as i32 {
            self.raft.report_snapshot(self.id, false);
        }
    }
}

/// Checks a peer URL and builds a lazily connecting channel to it.
pub(crate) fn build_channel(
    config: &TransportConfig,
    id: u64,
    url: &str,
) -> Result<Channel, TransportError> {
    let invalid = |reason: &str| TransportError::InvalidUrl {
        id,
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("https://") {
        return Err(invalid(
            "https peer URLs need peer TLS, which is not supported yet",
        ));
    }
    if !url.starts_with("http://") {
        return Err(invalid("peer URLs must start with http://"));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| invalid(&e.to_string()))?
        .connect_timeout(config.dial_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(config.keep_alive_interval)
        .keep_alive_timeout(config.request_timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(config.http2_stream_window_bytes)
        .initial_connection_window_size(config.http2_connection_window_bytes);
    Ok(endpoint.connect_lazy())
}

/// Counts a running task until dropped.
pub(crate) struct TaskGuard(Arc<AtomicUsize>);

impl TaskGuard {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        TaskGuard(count.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A remote member and its running tasks.
pub(crate) struct Peer {
    pub(crate) shared: Arc<PeerShared>,
    msgapp_tx: mpsc::Sender<Message>,
    message_tx: mpsc::Sender<Message>,
    pipeline_tx: mpsc::Sender<Message>,
    pub(crate) snapshot_busy: Arc<AtomicBool>,
    stop_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    running: Arc<AtomicUsize>,
}

/// What a new peer needs from its transport.
pub(crate) struct PeerContext {
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) raft: Arc<dyn Raft>,
    pub(crate) gauge: BufferGauge,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) running: Arc<AtomicUsize>,
    pub(crate) counters: Arc<PeerCounters>,
}

impl Peer {
    /// Starts the peer's tasks (two stream writers, the pipeline, the prober).
    pub(crate) fn start(
        ctx: PeerContext,
        id: u64,
        urls: Vec<String>,
    ) -> Result<Peer, TransportError> {
        let first = urls.first().ok_or(TransportError::NoUrls(id))?;
        let _entered = ctx.runtime.enter();
        let channel = build_channel(&ctx.config, id, first)?;
        for url in &urls[1..] {
            build_channel(&ctx.config, id, url)?;
        }
        let config = ctx.config.clone();
        let shared = Arc::new(PeerShared {
            id,
            identity: Identity {
                cluster_id: config.cluster_id,
                from: config.member_id,
                to: id,
            },
            status: PeerStatus::new(config.member_id, id, ctx.counters.clone()),
            counters: ctx.counters,
            config: config.clone(),
            raft: ctx.raft,
            gauge: ctx.gauge,
            conn: RwLock::new(Connection {
                urls,
                current: 0,
                channel,
            }),
            url_generation: watch::channel(0).0,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let (msgapp_tx, msgapp_rx) = mpsc::channel(config.stream_queue_len);
        let (message_tx, message_rx) = mpsc::channel(config.stream_queue_len);
        let (pipeline_tx, pipeline_rx) = mpsc::channel(config.pipeline_queue_len);
        let spawn = |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            let guard = TaskGuard::new(&ctx.running);
            ctx.runtime.spawn(async move {
                fut.await;
                drop(guard);
            })
        };
        let tasks = vec![
            spawn(Box::pin(crate::stream::run_writer(
                shared.clone(),
                StreamKind::MsgApp,
                msgapp_rx,
                stop_rx.clone(),
            ))),
            spawn(Box::pin(crate::stream::run_writer(
                shared.clone(),
                StreamKind::Message,
                message_rx,
                stop_rx.clone(),
            ))),
            spawn(Box::pin(crate::pipeline::run(
                shared.clone(),
                pipeline_rx,
                stop_rx.clone(),
            ))),
            spawn(Box::pin(crate::probe::run(shared.clone(), stop_rx))),
        ];
        tracing::info!(local_member_id = %format!("{:x}", config.member_id),
            remote_peer_id = %format!("{id:x}"), url = %shared.current_url(), "started remote peer");
        Ok(Peer {
            shared,
            msgapp_tx,
            message_tx,
            pipeline_tx,
            snapshot_busy: Arc::new(AtomicBool::new(false)),
            stop_tx,
            tasks: Mutex::new(tasks),
            running: ctx.running,
        })
    }

    /// Routes one message: snapshots to the pipeline; appends to the MsgApp stream, else
    /// the message stream; anything to the pipeline while no stream is open.
    pub(crate) fn send(&self, m: Message) {
        let c = &self.shared.counters;
        let tx = if m.r#type == MessageType::MsgSnap as i32 {
            &self.pipeline_tx
        } else if m.r#type == MessageType::MsgApp as i32
            && c.msgapp_stream_working.load(Ordering::Acquire)
        {
            &self.msgapp_tx
        } else if c.message_stream_working.load(Ordering::Acquire) {
            &self.message_tx
        } else {
            &self.pipeline_tx
        };
        if let Err(err) = tx.try_send(m) {
            let m = match err {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            let failures = c.sent_failures.load(Ordering::Relaxed);
            if failures.is_power_of_two() || failures == 0 {
                tracing::warn!(local_member_id = %format!("{:x}", self.shared.config.member_id),
                    remote_peer_id = %format!("{:x}", self.shared.id), message_type = m.r#type,
                    dropped_total = failures + 1,
                    "dropped internal raft message since the sending buffer is full (overloaded network or slow peer)");
            }
            self.shared.report_dropped(&m);
        }
    }

    /// Points the peer at new URLs; open streams reconnect to them.
    pub(crate) fn update_urls(&self, urls: Vec<String>) -> Result<(), TransportError> {
        for url in &urls {
            build_channel(&self.shared.config, self.shared.id, url)?;
        }
        self.shared.set_urls(urls)
    }

    /// Signals the peer's tasks to stop and returns their handles.
    pub(crate) fn stop(&self) -> Vec<JoinHandle<()>> {
        self.stop_tx.send_replace(true);
        std::mem::take(&mut *self.tasks.lock())
    }

    /// The stop signal, for snapshot tasks spawned later.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    /// The transport-wide task counter.
    pub(crate) fn running(&self) -> &Arc<AtomicUsize> {
        &self.running
    }
}
