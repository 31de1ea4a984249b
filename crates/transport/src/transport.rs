//! The [`Transport`]: the peer registry, the gRPC server on the peer listener, and the
//! public API the raft loop and the server use.
//!
//! Owns the map of peers and the server task. Invariants: a message goes only to the
//! peer named in its `to` field; every method but [`Transport::start`] and
//! [`Transport::stop`] is synchronous and non-blocking, so the raft loop can call it
//! from a plain thread; after `stop` no task of this transport is left running.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::rafthttppb::peer_server::PeerServer;
use etcd_proto::raftpb::Message;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::handler::Raft;
use crate::metadata::Gate;
use crate::peer::{Peer, PeerContext, TaskGuard};
use crate::server::PeerService;
use crate::snapshot::SnapshotSource;
use crate::stats::{BufferGauge, BufferStats, PeerCounters, PeerStats};

/// How long [`Transport::stop`] waits for tasks before aborting them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by the transport's API, its peers and its gRPC service.
pub(crate) struct Inner {
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) raft: Arc<dyn Raft>,
    pub(crate) gauge: BufferGauge,
    peers: RwLock<HashMap<u64, Arc<Peer>>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) refuse_streams: watch::Sender<bool>,
    pub(crate) inbound_streams: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    runtime: tokio::runtime::Handle,
    /// Handles of peer tasks that were stopped but may still be finishing.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    /// The counters of a known peer (for bytes received from it).
    pub(crate) fn counters_of(&self, id: u64) -> Option<Arc<PeerCounters>> {
        self.peers
            .read()
            .get(&id)
            .map(|p| p.shared.counters.clone())
    }
}

/// The peer transport of one member. See the [crate docs](crate) for the model.
pub struct Transport {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Transport {
    /// Starts serving the peer API on `listener` (bound to a `--listen-peer-urls`
    /// address) and returns the transport, with no peers yet. Must be called inside a
    /// tokio runtime; the transport's tasks run on it.
    ///
    /// A `std::net::TcpListener` can be passed after `set_nonblocking(true)` and
    /// `tokio::net::TcpListener::from_std`.
    pub async fn start(
        config: TransportConfig,
        listener: tokio::net::TcpListener,
        raft: Arc<dyn Raft>,
    ) -> Result<Transport, TransportError> {
        config.validate()?;
        let local_addr = listener.local_addr()?;
        let config = Arc::new(config);
        let inner = Arc::new(Inner {
            config: config.clone(),
            raft,
            gauge: BufferGauge::default(),
            peers: RwLock::new(HashMap::new()),
            stop: watch::channel(false).0,
            refuse_streams: watch::channel(false).0,
            inbound_streams: Arc::new(AtomicUsize::new(0)),
            running: Arc::new(AtomicUsize::new(0)),
            runtime: tokio::runtime::Handle::current(),
            retired: Mutex::new(Vec::new()),
        });
        let gate = Arc::new(Gate {
            local_id: config.member_id,
            cluster_id: config.cluster_id,
        });
        let service = PeerServer::new(PeerService {
            inner: inner.clone(),
            gate,
        })
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(config.http2_stream_window_bytes)
            .initial_connection_window_size(config.http2_connection_window_bytes)
            .http2_keepalive_interval(Some(config.keep_alive_interval))
            .http2_keepalive_timeout(Some(config.request_timeout))
            .add_service(service);
        let mut stop = inner.stop.subscribe();
        let guard = TaskGuard::new(&inner.running);
        let member_id = config.member_id;
        let server = tokio::spawn(async move {
            let _guard = guard;
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(err) = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await
            {
                tracing::error!(local_member_id = %format!("{member_id:x}"), %err,
                    "peer listener failed; the member cannot receive raft messages: restart it");
            }
        });
        tracing::info!(local_member_id = %format!("{:x}", config.member_id),
            cluster_id = %format!("{:x}", config.cluster_id), %local_addr, "peer transport started");
        Ok(Transport {
            inner,
            local_addr,
            server: Mutex::new(Some(server)),
        })
    }

    /// Binds `addr` and starts (see [`Transport::start`]).
    pub async fn bind(
        config: TransportConfig,
        addr: SocketAddr,
        raft: Arc<dyn Raft>,
    ) -> Result<Transport, TransportError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Transport::start(config, listener, raft).await
    }

    /// The address the peer API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.inner.config.member_id
    }

    /// Starts talking to member `id` at its peer URLs (`http://host:port`; the first is
    /// used, the next ones after connection failures). Replaces an existing peer `id`.
    pub fn add_peer<S: AsRef<str>>(&self, id: u64, urls: &[S]) -> Result<(), TransportError> {
        if *self.inner.stop.borrow() {
            return Err(TransportError::Stopped);
        }
        let urls: Vec<String> = urls.iter().map(|u| u.as_ref().to_string()).collect();
        let ctx = PeerContext {
            config: self.inner.config.clone(),
            raft: self.inner.raft.clone(),
            gauge: self.inner.gauge.clone(),
            runtime: self.inner.runtime.clone(),
            running: self.inner.running.clone(),
            counters: Arc::new(PeerCounters::default()),
        };
        let peer = Arc::new(Peer::start(ctx, id, urls)?);
        if let Some(old) = self.inner.peers.write().insert(id, peer) {
            self.retire(&old);
        }
        Ok(())
    }

    /// Stops talking to member `id`: its tasks stop, queued messages are dropped.
    pub fn remove_peer(&self, id: u64) {
        let removed = self.inner.peers.write().remove(&id);
        if let Some(peer) = removed {
            self.retire(&peer);
            tracing::info!(local_member_id = %format!("{:x}", self.member_id()),
                remote_peer_id = %format!("{id:x}"), "removed remote peer");
        }
    }

    /// Points member `id` at new peer URLs; its streams reconnect to them. Adds the peer
    /// if it is unknown.
    pub fn update_peer<S: AsRef<str>>(&self, id: u64, urls: &[S]) -> Result<(), TransportError> {
        let peer = self.inner.peers.read().get(&id).cloned();
        match peer {
            Some(peer) => peer.update_urls(urls.iter().map(|u| u.as_ref().to_string()).collect()),
            None => self.add_peer(id, urls),
        }
    }

    fn retire(&self, peer: &Peer) {
        let mut retired = self.inner.retired.lock();
        retired.retain(|h| !h.is_finished());
        retired.extend(peer.stop());
    }

    /// Hands messages to their peers' queues (by `to`); never blocks. A message to an
    /// unknown peer is dropped; one whose queue is full is dropped and reported with
    /// `report_unreachable` (and `report_snapshot(to, false)` for snapshots).
    pub fn send(&self, msgs: Vec<Message>) {
        let peers = self.inner.peers.read();
        for m in msgs {
            if m.to == 0 {
                continue;
            }
            match peers.get(&m.to) {
                Some(peer) => peer.send(m),
                None => tracing::debug!(local_member_id = %format!("{:x}", self.member_id()),
                    target = %format!("{:x}", m.to), "ignored message to unknown peer"),
            }
        }
    }

    /// Sends a snapshot message (`MsgSnap`) with its backend data to the peer `m.to`, in
    /// the background; the result comes back as `report_snapshot(m.to, ok)`. One
    /// snapshot per peer at a time: a second one while the first is in flight fails at
    /// once.
    pub fn send_snapshot(&self, m: Message, source: SnapshotSource) {
        let to = m.to;
        let peer = self.inner.peers.read().get(&to).cloned();
        let Some(peer) = peer else {
            tracing::warn!(target_member = %format!("{to:x}"), "cannot send snapshot to unknown peer");
            self.inner.raft.report_snapshot(to, false);
            return;
        };
        if peer.snapshot_busy.swap(true, Ordering::AcqRel) {
            tracing::warn!(remote_peer_id = %format!("{to:x}"),
                "a snapshot to this peer is already in flight; refusing another");
            self.inner.raft.report_snapshot(to, false);
            return;
        }
        let guard = TaskGuard::new(peer.running());
        let shared = peer.shared.clone();
        let busy = peer.snapshot_busy.clone();
        let stop = peer.stop_signal();
        let mut transport_stop = self.inner.stop.subscribe();
        let handle = self.inner.runtime.spawn(async move {
            let _guard = guard;
            tokio::select! {
                () = crate::snapshot::sender::run(shared.clone(), m, source, stop) => {}
                _ = transport_stop.wait_for(|s| *s) => {
                    shared.raft.report_snapshot(shared.id, false);
                }
            }
            busy.store(false, Ordering::Release);
        });
        let mut retired = self.inner.retired.lock();
        retired.retain(|h| !h.is_finished());
        retired.push(handle);
    }

    /// Counters of peer `id`, if known.
    pub fn stats(&self, id: u64) -> Option<PeerStats> {
        self.inner
            .peers
            .read()
            .get(&id)
            .map(|p| p.shared.counters.snapshot(id))
    }

    /// Counters of every peer, by id.
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let mut out: Vec<_> = self
            .inner
            .peers
            .read()
            .iter()
            .map(|(id, p)| p.shared.counters.snapshot(*id))
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Ids of the known peers.
    pub fn peer_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.inner.peers.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Current and peak bytes held in snapshot chunk buffers by this transport.
    pub fn buffer_stats(&self) -> BufferStats {
        self.inner.gauge.stats()
    }

    /// Resets the peak of [`Transport::buffer_stats`] to the current value.
    pub fn reset_buffer_peak(&self) {
        self.inner.gauge.reset_peak();
    }

    /// Background tasks of this transport still running (peer writers, pipelines,
    /// probers, snapshot senders, the server). For diagnostics and tests.
    pub fn running_tasks(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Inbound streams currently open from other members.
    pub fn inbound_streams(&self) -> usize {
        self.inner.inbound_streams.load(Ordering::Acquire)
    }

    /// Fault injection: while `true`, this member refuses inbound streams and ends the
    /// open ones, so senders fall back to the pipeline; `false` lets them reconnect.
    pub fn set_refuse_streams(&self, refuse: bool) {
        self.inner.refuse_streams.send_replace(refuse);
    }

    /// Stops every peer and the server, and waits (bounded) for their tasks to end.
    /// Idempotent.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let peers: Vec<Arc<Peer>> = self.inner.peers.write().drain().map(|(_, p)| p).collect();
        let mut handles: Vec<JoinHandle<()>> = peers.iter().flat_map(|p| p.stop()).collect();
        handles.extend(self.inner.retired.lock().drain(..));
        handles.extend(self.server.lock().take());
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for mut handle in handles {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!("peer transport task did not stop in time; aborted");
                handle.abort();
            }
        }
        tracing::info!(local_member_id = %format!("{:x}", self.member_id()), "peer transport stopped");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.inner.stop.send_replace(true);
        for peer in self.inner.peers.write().drain() {
            peer.1.stop();
        }
    }
}
