//! Shared helpers for the transport's integration tests: a recording raft handler, a
//! cluster of transports on loopback, bounded waits.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_proto::rafthttppb::MembersResponse;
use etcd_proto::raftpb::{Message, MessageType};
use etcd_transport::{HandlerError, Raft, StagedSnapshot, Transport, TransportConfig};
use parking_lot::Mutex;

pub const CLUSTER: u64 = 0xc1;

/// A received snapshot: the message, the staging dir, the files (relative path, size).
pub type ReceivedSnapshot = (Message, PathBuf, Vec<(PathBuf, u64)>);

/// A raft handler that records everything.
#[derive(Default)]
pub struct Recorder {
    pub messages: Mutex<Vec<Message>>,
    pub unreachable: Mutex<HashMap<u64, u64>>,
    pub snapshot_reports: Mutex<Vec<(u64, bool)>>,
    pub snapshots: Mutex<Vec<ReceivedSnapshot>>,
    pub removed: Mutex<HashSet<u64>>,
    /// Peers that refused this member as removed.
    pub removed_by: Mutex<Vec<u64>>,
    /// What the `Members` call answers.
    pub members: Mutex<Option<MembersResponse>>,
}

impl Recorder {
    pub fn count(&self) -> usize {
        self.messages.lock().len()
    }
    pub fn unreachable(&self, id: u64) -> u64 {
        self.unreachable.lock().get(&id).copied().unwrap_or(0)
    }
}

impl Raft for Recorder {
    fn process(&self, m: Message) -> Result<(), HandlerError> {
        self.messages.lock().push(m);
        Ok(())
    }
    fn report_unreachable(&self, id: u64) {
        *self.unreachable.lock().entry(id).or_default() += 1;
    }
    fn report_snapshot(&self, id: u64, ok: bool) {
        self.snapshot_reports.lock().push((id, ok));
    }
    fn receive_snapshot(&self, m: Message, staged: StagedSnapshot) -> Result<(), HandlerError> {
        let files = staged
            .files()
            .iter()
            .map(|f| (f.relative_path.clone(), f.size))
            .collect();
        let dir = staged.into_path();
        self.snapshots.lock().push((m, dir, files));
        Ok(())
    }
    fn is_id_removed(&self, id: u64) -> bool {
        self.removed.lock().contains(&id)
    }
    fn report_removed(&self, by: u64) {
        self.removed_by.lock().push(by);
    }
    fn members(&self) -> Option<MembersResponse> {
        self.members.lock().clone()
    }
}

/// A config with short timers for tests.
pub fn config(id: u64, staging: PathBuf) -> TransportConfig {
    let mut c = TransportConfig::new(id, CLUSTER, staging);
    c.probe_interval = Duration::from_millis(100);
    c.stream_backoff_min = Duration::from_millis(20);
    c.stream_backoff_max = Duration::from_millis(200);
    c.dial_timeout = Duration::from_millis(500);
    c.request_timeout = Duration::from_secs(3);
    c
}

pub struct Member {
    pub id: u64,
    pub transport: Transport,
    pub raft: Arc<Recorder>,
    pub url: String,
}

pub async fn start_member(cfg: TransportConfig, addr: &str) -> Member {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let raft = Arc::new(Recorder::default());
    let id = cfg.member_id;
    let transport = Transport::start(cfg, listener, raft.clone()).await.unwrap();
    Member {
        id,
        transport,
        raft,
        url,
    }
}

/// Three members (ids 1, 2, 3) on loopback ports chosen at run time, all connected.
pub async fn cluster(staging: &std::path::Path) -> Vec<Member> {
    let mut members = Vec::new();
    for id in 1..=3u64 {
        members.push(start_member(config(id, staging.join(format!("m{id}"))), "127.0.0.1:0").await);
    }
    connect(&members);
    members
}

pub fn connect(members: &[Member]) {
    for a in members {
        for b in members {
            if a.id != b.id {
                a.transport.add_peer(b.id, &[b.url.as_str()]).unwrap();
            }
        }
    }
}

pub async fn stop_all(members: Vec<Member>) {
    for m in members {
        m.transport.stop().await;
        assert_eq!(
            m.transport.running_tasks(),
            0,
            "member {} left tasks running",
            m.id
        );
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn streams_up(from: &Member, to: u64) -> bool {
    wait_until(Duration::from_secs(10), || {
        from.transport
            .stats(to)
            .is_some_and(|s| s.msgapp_stream_working && s.message_stream_working)
    })
    .await
}

pub fn msg(t: MessageType, from: u64, to: u64, index: u64) -> Message {
    Message {
        r#type: t as i32,
        from,
        to,
        term: 1,
        index,
        ..Default::default()
    }
}
