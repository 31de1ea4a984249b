//! The member: starts the node loop, the applier, the peer transport and the client
//! services, and holds what they share ([`Shared`]).
//!
//! Requests reach the member through [`Shared::propose`] (writes: encoded as an
//! `InternalRaftRequest` with a fresh id, proposed, answered when the applier has applied
//! it) and [`Shared::linearizable_read`] (reads: concurrent readers share one raft
//! ReadIndex round, then wait until the applied index reaches the read index).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use etcd_lease::{Lessor, LessorConfig, SystemClock};
use etcd_mvcc::{Batch, Event, Store};
use etcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, InternalRaftRequest, LeaseGrantResponse,
    RequestHeader, ResponseHeader,
};
use etcd_proto::prost::Message as _;
use etcd_proto::rafthttppb::{MembersResponse, PeerMember};
use etcd_proto::raftpb::Message;
use etcd_transport::{HandlerError, Raft, StagedSnapshot, Transport, TransportConfig};
use etcd_watch::{WatchOptions, WatchableStore};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use crate::apply::{Applier, ApplyResult};
use crate::config::ServerConfig;
use crate::errors::{EtcdError, ServerError};
use crate::membership::Cluster;
use crate::node::{NodeInput, NodeLoop};
use crate::storage::{self, DataDir, StartError};
use crate::wait::{IdGenerator, Wait};

/// Inputs the node loop may have queued before it refuses more.
const NODE_QUEUE: usize = 16_384;
/// Apply batches queued between the node loop and the applier.
const APPLY_QUEUE: usize = 256;
/// Linearizable reads waiting for the next ReadIndex round before new ones are refused
/// with `etcdserver: too many requests`.
const MAX_WAITING_READS: usize = 65_536;
/// How long one ReadIndex round may take before it is asked again.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);
/// Committed but not yet applied entries beyond which new proposals are refused, as etcd.
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT: u64 = 5000;

/// What the node loop, the applier and the services share.
pub struct Shared {
    /// The member's configuration.
    pub cfg: ServerConfig,
    /// This member's id.
    pub member_id: u64,
    /// The members.
    pub cluster: Arc<Cluster>,
    store: Arc<Store>,
    lessor: Arc<Lessor>,
    watchable: Arc<WatchableStore>,
    /// Waiters for proposals, by request id.
    pub wait: Wait<ApplyResult>,
    /// Request and lease ids.
    pub ids: IdGenerator,
    /// The node loop's input.
    pub node_tx: Sender<NodeInput>,
    applied: watch::Sender<u64>,
    leader: watch::Sender<u64>,
    is_leader: AtomicBool,
    term: AtomicU64,
    commit: AtomicU64,
    last_index: AtomicU64,
    db_size: AtomicU64,
    nospace_proposed: AtomicBool,
    /// The cluster's alarms.
    pub alarms: crate::alarm::Alarms,
    /// Client reads hold it shared; installing a leader's backend holds it exclusively.
    pub read_gate: parking_lot::RwLock<()>,
    read_states: Mutex<HashMap<u64, oneshot::Sender<u64>>>,
    read_waiters: Mutex<Vec<oneshot::Sender<Result<(), ServerError>>>>,
    read_notify: Notify,
    stopping: watch::Sender<bool>,
    fatal: Mutex<Option<String>>,
    /// The peer transport, once started (for the reconfiguration checks).
    transport: OnceLock<Arc<Transport>>,
}

impl Shared {
    /// The backend store.
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The lessor.
    pub fn lessor(&self) -> Arc<Lessor> {
        self.lessor.clone()
    }

    /// The watchable store.
    pub fn watchable(&self) -> Arc<WatchableStore> {
        self.watchable.clone()
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.cluster.id()
    }

    /// The current leader (0: none known).
    pub fn leader(&self) -> u64 {
        *self.leader.borrow()
    }

    /// A receiver of leader changes.
    pub fn leader_watch(&self) -> watch::Receiver<u64> {
        self.leader.subscribe()
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// The last applied index.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// A receiver of the applied index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Whether this member is a learner (it answers only serializable reads and Status).
    pub fn is_learner(&self) -> bool {
        self.cluster.is_learner(self.member_id)
    }

    /// Whether the peer transport reaches member `id` now.
    pub fn peer_active(&self, id: u64) -> bool {
        self.transport
            .get()
            .and_then(|t| t.stats(id))
            .is_some_and(|s| s.active)
    }

    /// The raft commit index.
    pub fn commit_index(&self) -> u64 {
        self.commit.load(Ordering::Acquire)
    }

    /// The last index in the raft log.
    pub fn raft_index(&self) -> u64 {
        self.last_index.load(Ordering::Acquire)
    }

    /// A fatal error that stopped the member, if any.
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().clone()
    }

    /// Completes when the member stops.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// A receiver that turns true when the member stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub(crate) fn set_leader(&self, leader: u64, is_leader: bool) {
        let was_leader = self.is_leader.swap(is_leader, Ordering::AcqRel);
        let previous = self.leader.send_replace(leader);
        if previous != leader {
            if leader != 0 {
                crate::metrics::METRICS
                    .leader_changes
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(local_member_id = %format!("{:x}", self.member_id),
                leader = %format!("{leader:x}"), term = self.term(), "leader changed");
        }
        if is_leader != was_leader {
            self.on_leadership(is_leader);
        }
    }

    pub(crate) fn set_hard_state(&self, term: u64, commit: u64) {
        self.term.store(term, Ordering::Release);
        self.commit.store(commit, Ordering::Release);
    }

    pub(crate) fn set_last_index(&self, index: u64) {
        self.last_index.store(index, Ordering::Release);
    }

    pub(crate) fn set_applied(&self, index: u64) {
        self.applied.send_replace(index);
    }

    pub(crate) fn read_state(&self, ctx: u64, index: u64) {
        if let Some(tx) = self.read_states.lock().remove(&ctx) {
            let _ = tx.send(index);
        }
    }

    /// Stops the member on a fatal error (logged; the binary exits with it).
    pub(crate) fn fail(&self, err: String) {
        tracing::error!(local_member_id = %format!("{:x}", self.member_id), %err, "member stopping on a fatal error");
        *self.fatal.lock() = Some(err);
        self.stopping.send_replace(true);
    }

    /// Fills a response header: cluster and member ids and the raft term; the revision
    /// is the store's current one unless already set.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id();
        h.member_id = self.member_id;
        h.raft_term = self.term();
        if h.revision == 0 {
            h.revision = self.store.current_revision();
        }
    }

    /// A header for a response that carries no revision of its own.
    pub fn header(&self) -> Option<ResponseHeader> {
        let mut h = None;
        self.fill_header(&mut h);
        h
    }

    /// The time a request may take: 5 s plus two election timeouts, as etcd.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + Duration::from_millis(2 * self.cfg.election_timeout_ms)
    }

    /// Proposes a request and waits for its result.
    pub async fn propose(&self, req: InternalRaftRequest) -> ApplyResult {
        let result = self.propose_once(req).await;
        if let Err(ServerError::Etcd(
            EtcdError::Timeout
            | EtcdError::TimeoutDueToLeaderFail
            | EtcdError::TooManyRequests
            | EtcdError::Stopped,
        )) = &result
        {
            crate::metrics::METRICS
                .proposals_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn propose_once(&self, mut req: InternalRaftRequest) -> ApplyResult {
        if *self.stopping.borrow() {
            return Err(EtcdError::Stopped.into());
        }
        let id = self.ids.next();
        req.header = Some(RequestHeader {
            id,
            ..Default::default()
        });
        self.check_quota(&req)?;
        let data = req.encode_to_vec();
        if data.len() as u64 > self.cfg.max_request_bytes {
            return Err(EtcdError::RequestTooLarge.into());
        }
        if self.commit_index() > self.applied_index() + MAX_GAP_BETWEEN_APPLY_AND_COMMIT {
            return Err(EtcdError::TooManyRequests.into());
        }
        let rx = self.wait.register(id);
        if self
            .node_tx
            .try_send(NodeInput::Propose(Bytes::from(data)))
            .is_err()
        {
            self.wait.cancel(id);
            return Err(EtcdError::TooManyRequests.into());
        }
        match tokio::time::timeout(self.request_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EtcdError::Stopped.into()),
            Err(_) => {
                self.wait.cancel(id);
                if self.leader() == 0 {
                    Err(EtcdError::TimeoutDueToLeaderFail.into())
                } else {
                    Err(EtcdError::Timeout.into())
                }
            }
        }
    }

    /// Refuses requests that grow the backend while a NOSPACE alarm is raised, or once
    /// the backend is over `--quota-backend-bytes` (then raising the alarm, as etcd).
    /// Deletes, revokes and compactions still pass, so space can be reclaimed.
    fn check_quota(&self, req: &InternalRaftRequest) -> Result<(), ServerError> {
        if !grows_backend(req) {
            return Ok(());
        }
        if self.alarms.is_active(AlarmType::Nospace) {
            return Err(EtcdError::NoSpace.into());
        }
        if self.db_size.load(Ordering::Relaxed) > self.cfg.quota_backend_bytes {
            self.raise_nospace();
            return Err(EtcdError::NoSpace.into());
        }
        Ok(())
    }

    /// Proposes a NOSPACE alarm for this member (once until it is disarmed).
    fn raise_nospace(&self) {
        if self.nospace_proposed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            quota = self.cfg.quota_backend_bytes,
            size = self.db_size.load(Ordering::Relaxed),
            "backend over its quota; raising the NOSPACE alarm"
        );
        let req = InternalRaftRequest {
            header: Some(RequestHeader {
                id: self.ids.next(),
                ..Default::default()
            }),
            alarm: Some(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            }),
            ..Default::default()
        };
        if self
            .node_tx
            .try_send(NodeInput::Propose(Bytes::from(req.encode_to_vec())))
            .is_err()
        {
            self.nospace_proposed.store(false, Ordering::Release);
        }
    }

    /// Lets the next quota breach raise the alarm again (after a disarm).
    pub(crate) fn alarm_disarmed(&self) {
        self.nospace_proposed.store(false, Ordering::Release);
    }

    /// Samples the backend's size (for the quota) until the member stops.
    async fn size_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.stopped() => return,
            }
            let store = self.store();
            if let Ok(Ok(size)) =
                tokio::task::spawn_blocking(move || store.backend().size_bytes()).await
            {
                self.db_size.store(size, Ordering::Relaxed);
            }
        }
    }

    /// Waits until this member has applied everything committed before the call, so a
    /// local read that follows is linearizable. Concurrent callers share one ReadIndex.
    pub async fn linearizable_read(&self) -> Result<(), ServerError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.read_waiters.lock();
            if waiters.len() >= MAX_WAITING_READS {
                return Err(EtcdError::TooManyRequests.into());
            }
            waiters.push(tx);
        }
        self.read_notify.notify_one();
        match tokio::time::timeout(self.request_timeout() + READ_INDEX_RETRY, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EtcdError::Stopped.into()),
            Err(_) => Err(EtcdError::Timeout.into()),
        }
    }

    /// The read loop: one ReadIndex round per batch of waiting readers.
    async fn read_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.read_notify.notified() => {}
                () = self.stopped() => return,
            }
            let waiters: Vec<_> = std::mem::take(&mut *self.read_waiters.lock());
            if waiters.is_empty() {
                continue;
            }
            let result = self.read_index_round().await;
            for w in waiters {
                let _ = w.send(result.clone());
            }
        }
    }

    async fn read_index_round(&self) -> Result<(), ServerError> {
        let ctx = self.ids.next();
        let deadline = tokio::time::Instant::now() + self.request_timeout();
        let index = loop {
            let (tx, rx) = oneshot::channel();
            self.read_states.lock().insert(ctx, tx);
            if self.node_tx.try_send(NodeInput::ReadIndex(ctx)).is_err() {
                self.read_states.lock().remove(&ctx);
                return Err(EtcdError::TooManyRequests.into());
            }
            match tokio::time::timeout(READ_INDEX_RETRY, rx).await {
                Ok(Ok(index)) => break index,
                _ => {
                    self.read_states.lock().remove(&ctx);
                    if tokio::time::Instant::now() >= deadline {
                        return Err(EtcdError::Timeout.into());
                    }
                }
            }
        };
        let mut applied = self.applied.subscribe();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let waited = tokio::time::timeout(remaining.max(READ_INDEX_RETRY), async {
            applied.wait_for(|a| *a >= index).await.is_ok()
        })
        .await;
        match waited {
            Ok(true) => Ok(()),
            Ok(false) => Err(EtcdError::Stopped.into()),
            Err(_) => Err(EtcdError::TimeoutWaitAppliedIndex.into()),
        }
    }

    /// Fails at once with `no leader` when the client asked for it (`hasleader=true`
    /// metadata) and this member knows no leader.
    pub fn check_has_leader(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<(), ServerError> {
        let wants = metadata
            .get("hasleader")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "true");
        if wants && self.leader() == 0 {
            return Err(EtcdError::NoLeader.into());
        }
        Ok(())
    }

    // --- Hooks of the applier and the node loop into the lessor ---

    /// Whether a lease exists.
    pub(crate) fn lease_exists(&self, id: i64) -> bool {
        self.lessor.lookup(id).is_some()
    }

    pub(crate) fn lease_grant(
        &self,
        batch: &mut Batch<'_>,
        id: i64,
        ttl: i64,
    ) -> Result<LeaseGrantResponse, ServerError> {
        let info = self
            .lessor
            .grant(batch, id, ttl)
            .map_err(crate::lease_watch::lease_error)?;
        Ok(LeaseGrantResponse {
            header: Some(crate::kv::header(batch.revision())),
            id: info.id,
            ttl: info.ttl,
            error: String::new(),
        })
    }

    /// Revokes a lease; returns the revision after its keys were deleted.
    pub(crate) fn lease_revoke(&self, batch: &mut Batch<'_>, id: i64) -> Result<i64, ServerError> {
        let done = self
            .lessor
            .revoke(batch, id)
            .map_err(crate::lease_watch::lease_error)?;
        self.on_events(&done.events);
        Ok(done.revision.max(batch.revision()))
    }

    pub(crate) fn lease_checkpoint(&self, batch: &mut Batch<'_>, id: i64, remaining: i64) {
        if let Err(err) = self.lessor.checkpoint(batch, id, remaining) {
            tracing::debug!(lease_id = id, %err, "lease checkpoint not applied");
        }
    }

    pub(crate) fn on_events(&self, events: &[Event]) {
        self.lessor.apply_events(events);
    }

    pub(crate) fn after_restore(&self, store: &Store) {
        self.alarms.recover(store);
        // Watchers catch up from the replaced history.
        self.watchable.restore();
        if let Err(err) = self.lessor.recover(store) {
            tracing::error!(%err, "cannot reload leases after installing a snapshot");
        }
    }

    pub(crate) fn on_members_changed(&self) {}

    fn on_leadership(&self, is_leader: bool) {
        if is_leader {
            self.lessor
                .promote(Duration::from_millis(self.cfg.election_timeout_ms));
        } else {
            self.lessor.demote();
        }
    }
}

/// Whether a request can grow the backend (what the quota and NOSPACE refuse).
pub fn grows_backend(req: &InternalRaftRequest) -> bool {
    req.put.is_some()
        || req.lease_grant.is_some()
        || req
            .txn
            .as_ref()
            .is_some_and(|t| !crate::kv::txn_is_read_only(t))
}

/// Delivers peer traffic to the node loop.
struct PeerHandler {
    node_tx: Sender<NodeInput>,
    cluster: Arc<Cluster>,
    /// Weak: the transport holds the handler and the member holds the transport.
    shared: std::sync::Weak<Shared>,
}

impl Raft for PeerHandler {
    fn process(&self, m: Message) -> Result<(), HandlerError> {
        self.node_tx
            .try_send(NodeInput::Step(m))
            .map_err(|_| HandlerError("raft loop is busy".into()))
    }

    fn report_unreachable(&self, id: u64) {
        let _ = self.node_tx.try_send(NodeInput::Unreachable(id));
    }

    fn report_snapshot(&self, id: u64, ok: bool) {
        let _ = self.node_tx.send(NodeInput::SnapshotReport(id, ok));
    }

    fn receive_snapshot(&self, m: Message, staged: StagedSnapshot) -> Result<(), HandlerError> {
        let path = staged.into_path();
        self.node_tx
            .send(NodeInput::ReceivedSnapshot(m, path))
            .map_err(|_| HandlerError("member is stopping".into()))
    }

    fn is_id_removed(&self, id: u64) -> bool {
        self.cluster.is_removed(id)
    }

    fn report_removed(&self, by: u64) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if *shared.stopping.borrow() {
            return;
        }
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), remote_peer_id = %format!("{by:x}"),
            "a peer refuses this member as removed from the cluster; the data-dir used by this member must be removed");
        shared.fail("the member has been permanently removed from the cluster".into());
    }

    fn members(&self) -> Option<MembersResponse> {
        let members = self.cluster.members();
        if members.is_empty() {
            return None;
        }
        Some(MembersResponse {
            cluster_id: self.cluster.id(),
            members: members
                .into_iter()
                .map(|m| PeerMember {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
        })
    }
}

/// A running member.
pub struct EtcdServer {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    node_thread: Option<std::thread::JoinHandle<()>>,
    apply_thread: Option<std::thread::JoinHandle<()>>,
    peer_addr: SocketAddr,
}

/// Resolves a `http://host:port` URL to a socket address to listen on.
pub fn listen_addr(url: &url::Url) -> Result<SocketAddr, String> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("listen URL {url} has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| format!("cannot resolve {host}"))
        })
        .map_err(|e: String| format!("listen URL {url}: {e}"))
}

impl EtcdServer {
    /// Opens the data directory, starts raft, the applier and the peer transport. Must
    /// run inside a tokio runtime. Client services are served separately
    /// ([`crate::grpc::serve`]).
    pub async fn start(cfg: ServerConfig) -> Result<EtcdServer, StartError> {
        let peer_url = cfg
            .listen_peer_urls
            .first()
            .cloned()
            .ok_or_else(|| StartError::Config("--listen-peer-urls is empty".into()))?;
        let peer_addr = listen_addr(&peer_url).map_err(StartError::Config)?;
        let peer_listener = tokio::net::TcpListener::bind(peer_addr)
            .await
            .map_err(|e| {
                StartError::Config(format!("cannot listen on {peer_addr} for peers: {e}"))
            })?;
        let peer_addr = peer_listener.local_addr()?;

        let existing = if storage::needs_join(&cfg) {
            Some(crate::join::fetch_existing(&cfg).await?)
        } else {
            None
        };
        let started = tokio::task::block_in_place(|| storage::start(&cfg, existing))?;
        let dirs = DataDir::new(&cfg);
        let member_id = started.member_id;
        let (node_tx, node_rx) = crossbeam_channel::bounded(NODE_QUEUE);
        let (apply_tx, apply_rx) = crossbeam_channel::bounded(APPLY_QUEUE);
        let applied0 = started
            .store
            .consistent_index()
            .index
            .max(started.snapshot_index);
        let lessor_cfg = LessorConfig {
            min_ttl: LessorConfig::min_ttl_for(
                cfg.election_ticks() as u64,
                Duration::from_millis(cfg.heartbeat_interval_ms),
            ),
            ..LessorConfig::default()
        };
        let lessor = Arc::new(Lessor::new(lessor_cfg, Arc::new(SystemClock)));
        lessor
            .recover(&started.store)
            .map_err(|e| StartError::Config(format!("cannot load leases: {e}")))?;
        let watchable = WatchableStore::new(started.store.clone(), WatchOptions::default());
        let shared = Arc::new(Shared {
            member_id,
            cluster: started.cluster.clone(),
            store: started.store.clone(),
            lessor,
            watchable,
            wait: Wait::default(),
            ids: IdGenerator::new(member_id),
            node_tx: node_tx.clone(),
            applied: watch::channel(applied0).0,
            leader: watch::channel(0).0,
            is_leader: AtomicBool::new(false),
            term: AtomicU64::new(0),
            commit: AtomicU64::new(0),
            last_index: AtomicU64::new(0),
            db_size: AtomicU64::new(started.store.backend().size_bytes().unwrap_or(0)),
            nospace_proposed: AtomicBool::new(false),
            read_gate: parking_lot::RwLock::new(()),
            alarms: {
                let alarms = crate::alarm::Alarms::default();
                alarms.recover(&started.store);
                alarms
            },
            read_states: Mutex::new(HashMap::new()),
            read_waiters: Mutex::new(Vec::new()),
            read_notify: Notify::new(),
            stopping: watch::channel(false).0,
            fatal: Mutex::new(None),
            transport: OnceLock::new(),
            cfg: cfg.clone(),
        });

        std::fs::create_dir_all(&dirs.staging)?;
        let tcfg = TransportConfig::new(member_id, started.cluster_id, dirs.staging.clone());
        let handler = Arc::new(PeerHandler {
            node_tx: node_tx.clone(),
            cluster: started.cluster.clone(),
            shared: Arc::downgrade(&shared),
        });
        let transport = Arc::new(
            Transport::start(tcfg, peer_listener, handler)
                .await
                .map_err(|e| StartError::Config(format!("peer transport: {e}")))?,
        );
        let _ = shared.transport.set(transport.clone());
        let peers = if started.fresh {
            started.initial_members.clone()
        } else {
            started.cluster.members()
        };
        for m in &peers {
            if m.id != member_id {
                if let Err(err) = transport.add_peer(m.id, &m.peer_urls) {
                    tracing::warn!(peer = %format!("{:x}", m.id), %err, "cannot add peer");
                }
            }
        }

        let applier = Applier {
            shared: shared.clone(),
            rx: apply_rx,
            applied_index: applied0,
            applied_term: if started.store.consistent_index().index >= started.snapshot_index {
                started.store.consistent_index().term
            } else {
                started.snapshot_term
            },
            snapshot_index: started.snapshot_index,
            conf_state: started.node.status().conf_state,
            removed: false,
        };
        let node_loop = NodeLoop {
            shared: shared.clone(),
            node: started.node,
            storage: started.storage,
            wal: started.wal,
            snapshotter: started.snapshotter,
            transport: transport.clone(),
            rx: node_rx,
            apply_tx,
            dirs,
            tick: Duration::from_millis(cfg.heartbeat_interval_ms.max(1)),
            initial_members: started.initial_members,
            conf_view: started.conf_view,
            proposed_conf_changes: Vec::new(),
            pending: Default::default(),
            proposals: Vec::new(),
            received_backends: HashMap::new(),
            outgoing: HashMap::new(),
            outgoing_seq: 0,
            runtime: tokio::runtime::Handle::current(),
        };
        let s = shared.clone();
        let apply_thread = std::thread::Builder::new()
            .name("etcd-apply".into())
            .spawn(move || {
                let _span =
                    tracing::info_span!("apply", local_member_id = %format!("{member_id:x}"))
                        .entered();
                if let Err(err) = applier.run() {
                    s.fail(err);
                }
            })?;
        let s = shared.clone();
        let node_thread =
            std::thread::Builder::new()
                .name("etcd-raft".into())
                .spawn(move || {
                    let _span =
                        tracing::info_span!("raft", local_member_id = %format!("{member_id:x}"))
                            .entered();
                    if let Err(err) = node_loop.run() {
                        s.fail(err);
                    }
                })?;
        tokio::spawn(shared.clone().read_loop());
        tokio::spawn(publish(shared.clone()));
        tokio::spawn(crate::lease_watch::lease_loop(shared.clone()));
        tokio::spawn(crate::compactor::run(shared.clone()));
        tokio::spawn(shared.clone().size_loop());
        tracing::info!(local_member_id = %format!("{member_id:x}"), cluster_id = %format!("{:x}", started.cluster_id),
            %peer_addr, "member started");
        Ok(EtcdServer {
            shared,
            transport,
            node_thread: Some(node_thread),
            apply_thread: Some(apply_thread),
            peer_addr,
        })
    }

    /// What the services share.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The peer listener's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Stops the member: the node loop, the applier and the transport.
    pub async fn stop(mut self) {
        self.shared.stopping.send_replace(true);
        let _ = self.shared.node_tx.send(NodeInput::Stop);
        let node = self.node_thread.take();
        let apply = self.apply_thread.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(t) = node {
                let _ = t.join();
            }
            if let Some(t) = apply {
                let _ = t.join();
            }
        })
        .await;
        self.shared.watchable.close();
        self.transport.stop().await;
    }
}

/// Publishes this member's name and client URLs through raft once there is a leader,
/// retrying until it succeeds or the member stops.
async fn publish(shared: Arc<Shared>) {
    use etcd_proto::membershippb::{Attributes, ClusterMemberAttrSetRequest};
    let attributes = Attributes {
        name: shared.cfg.name.clone(),
        client_urls: shared
            .cfg
            .advertise_client_urls
            .iter()
            .map(crate::ids::url_string)
            .collect(),
    };
    loop {
        if let Some(m) = shared.cluster.member(shared.member_id) {
            if m.name == attributes.name && m.client_urls == attributes.client_urls {
                return;
            }
        }
        let req = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: shared.member_id,
                member_attributes: Some(attributes.clone()),
            }),
            ..Default::default()
        };
        tokio::select! {
            r = shared.propose(req) => {
                if r.is_ok() {
                    tracing::info!(name = %attributes.name, "published local member to cluster");
                    return;
                }
            }
            () = shared.stopped() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shared.stopped() => return,
        }
    }
}
