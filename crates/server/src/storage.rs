//! The member's data directory and how a member starts from it: a brand-new member
//! bootstraps raft from `--initial-cluster`; a member joining a running cluster
//! (`--initial-cluster-state existing`) starts raft with an empty log and the ids the
//! cluster gave it ([`crate::join`]); a restarting one loads the newest snapshot the WAL
//! knows, replays the WAL after it, and opens the backend. A member the backend records
//! as removed does not start.
//!
//! Layout (as etcd's): `<data-dir>/member/wal` (unless `--wal-dir`), `<data-dir>/member/snap`
//! with the `*.snap` files, and the backend in `<data-dir>/member/snap/db`. A backend
//! received from the leader is kept as `member/snap/<index:016x>.snap.db` until it is
//! installed, so a crash between persisting the snapshot and installing it is repaired
//! on restart. The WAL directory's lock refuses a second process on the same data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use etcd_mvcc::Store;
use etcd_proto::etcdserverpb::Metadata;
use etcd_proto::prost::Message as _;
use etcd_proto::raftpb::{HardState, Snapshot};
use etcd_proto::walpb;
use etcd_raft::{Config as RaftConfig, MemStorage, RawNode};
use etcd_wal::{Snapshotter, Wal};

use crate::config::{ClusterState, ServerConfig};
use crate::ids;
use crate::join::Existing;
use crate::membership::{Cluster, Member};
use crate::reconfig::ConfView;

/// Why a member could not start from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not describe this member.
    #[error("{0}")]
    Config(String),
    /// The WAL or a snapshot could not be read or written.
    #[error("{0}")]
    Wal(#[from] etcd_wal::Error),
    /// The backend could not be opened.
    #[error("{0}")]
    Backend(#[from] etcd_mvcc::Error),
    /// Raft refused the state it was given.
    #[error("raft: {0}")]
    Raft(#[from] etcd_raft::Error),
    /// A file-system error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Paths of a member's data.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// `<data-dir>/member`.
    pub member: PathBuf,
    /// The WAL directory.
    pub wal: PathBuf,
    /// `<data-dir>/member/snap`.
    pub snap: PathBuf,
    /// The backend directory.
    pub backend: PathBuf,
    /// Where received snapshots are staged.
    pub staging: PathBuf,
}

impl DataDir {
    /// The layout for a configuration.
    pub fn new(cfg: &ServerConfig) -> DataDir {
        let member = cfg.data_dir.join("member");
        let default_wal = member.join("wal");
        let wal = if cfg.wal_dir.as_os_str().is_empty() || cfg.wal_dir == default_wal {
            default_wal
        } else {
            cfg.wal_dir.clone()
        };
        let snap = member.join("snap");
        DataDir {
            backend: snap.join("db"),
            staging: snap.join("staging"),
            member,
            wal,
            snap,
        }
    }

    /// Where a received backend for a snapshot at `index` waits to be installed.
    pub fn received_backend(&self, index: u64) -> PathBuf {
        self.snap.join(format!("{index:016x}.snap.db"))
    }

    /// Whether a WAL exists (the member has started before).
    pub fn has_wal(&self) -> bool {
        std::fs::read_dir(&self.wal).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal")))
        })
    }
}

/// Everything the node loop and the applier start from.
pub struct Started {
    /// This member's id.
    pub member_id: u64,
    /// The cluster id.
    pub cluster_id: u64,
    /// The raft node.
    pub node: RawNode<MemStorage>,
    /// Its storage (shared with the node).
    pub storage: MemStorage,
    /// The WAL, positioned for appending.
    pub wal: Wal,
    /// The snapshot files.
    pub snapshotter: Snapshotter,
    /// The backend.
    pub store: Arc<Store>,
    /// The members.
    pub cluster: Arc<Cluster>,
    /// The snapshot the member restarted from (index 0 if none).
    pub snapshot_index: u64,
    /// That snapshot's term (0 if none).
    pub snapshot_term: u64,
    /// True if this is the member's first start.
    pub fresh: bool,
    /// Members of a new cluster (or those a joining member fetched), applied when the
    /// bootstrap entries are, which carry only ids.
    pub initial_members: Vec<Member>,
    /// The membership as of the snapshot raft starts from: what decides the conf
    /// changes after it.
    pub conf_view: ConfView,
}

/// The WAL's options: etcd's segment size, fsync timings into the metrics.
fn wal_options() -> etcd_wal::WalOptions {
    etcd_wal::WalOptions {
        metrics: Arc::new(crate::metrics::WalMetrics),
        ..etcd_wal::WalOptions::default()
    }
}

/// The raft configuration for a member.
pub fn raft_config(cfg: &ServerConfig, member_id: u64, applied: u64) -> RaftConfig {
    let mut rc = RaftConfig::new(member_id);
    rc.election_tick = cfg.election_ticks();
    rc.heartbeat_tick = 1;
    rc.applied = applied;
    rc.max_size_per_msg_bytes = 1024 * 1024;
    rc.max_inflight_msgs = 4096 / 8;
    rc.max_uncommitted_entries_bytes = 1 << 30;
    rc.check_quorum = true;
    rc.pre_vote = cfg.pre_vote;
    rc.seed = member_id ^ std::process::id() as u64;
    rc
}

/// The members named by `--initial-cluster`, with the ids etcd gives them.
pub fn initial_members(cfg: &ServerConfig) -> Vec<Member> {
    let mut members: Vec<Member> = cfg
        .initial_cluster
        .iter()
        .map(|(name, urls)| {
            let peer_urls: Vec<String> = urls.iter().map(ids::url_string).collect();
            Member {
                id: ids::member_id(urls, &cfg.initial_cluster_token, None),
                name: name.clone(),
                peer_urls,
                client_urls: Vec::new(),
                is_learner: false,
            }
        })
        .collect();
    members.sort_by_key(|m| m.id);
    members
}

/// Whether starting needs the running cluster's ids first ([`crate::join`]): no WAL yet
/// and `--initial-cluster-state existing`.
pub fn needs_join(cfg: &ServerConfig) -> bool {
    cfg.initial_cluster_state == ClusterState::Existing && !DataDir::new(cfg).has_wal()
}

/// Opens the member's data (or creates it) and builds the raft node. `existing` is what
/// a joining member fetched from the cluster ([`needs_join`]).
pub fn start(cfg: &ServerConfig, existing: Option<Existing>) -> Result<Started, StartError> {
    let dirs = DataDir::new(cfg);
    if dirs.has_wal() {
        restart(cfg, &dirs)
    } else if let Some(existing) = existing {
        join(cfg, &dirs, existing)
    } else {
        bootstrap(cfg, &dirs)
    }
}

/// Starts a member added to a running cluster: its ids from the cluster, an empty log
/// (the leader sends the log or a snapshot).
fn join(cfg: &ServerConfig, dirs: &DataDir, existing: Existing) -> Result<Started, StartError> {
    let Existing {
        cluster_id,
        member_id,
        members,
    } = existing;
    first_start(
        cfg,
        dirs,
        member_id,
        cluster_id,
        members,
        ConfView::default(),
    )
}

fn bootstrap(cfg: &ServerConfig, dirs: &DataDir) -> Result<Started, StartError> {
    if cfg.initial_cluster_state == ClusterState::Existing {
        return Err(StartError::Config(
            "joining an existing cluster needs its member list first; start through \
             EtcdServer::start"
                .into(),
        ));
    }
    let members = initial_members(cfg);
    // The configuration has checked that this member is in --initial-cluster.
    let Some(urls) = cfg.initial_cluster.get(&cfg.name) else {
        return Err(StartError::Config(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        )));
    };
    let member_id = ids::member_id(urls, &cfg.initial_cluster_token, None);
    let member_ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let cluster_id = ids::cluster_id(&member_ids);
    let view = ConfView::new(&members, &[]);
    let mut started = first_start(cfg, dirs, member_id, cluster_id, members, view)?;
    started.node.bootstrap(&member_ids)?;
    Ok(started)
}

/// The data directory of a member's first start: backend, an empty WAL with the ids,
/// and a raft node with an empty log.
fn first_start(
    cfg: &ServerConfig,
    dirs: &DataDir,
    member_id: u64,
    cluster_id: u64,
    initial_members: Vec<Member>,
    conf_view: ConfView,
) -> Result<Started, StartError> {
    std::fs::create_dir_all(&dirs.snap)?;
    let store = Arc::new(Store::open(&dirs.backend)?);
    if let Some(parent) = dirs.wal.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let metadata = Metadata {
        node_id: member_id,
        cluster_id,
    }
    .encode_to_vec();
    let wal = Wal::create_with(&dirs.wal, &metadata, wal_options())?;
    let snapshotter = Snapshotter::new(&dirs.snap)?;
    let storage = MemStorage::new();
    let node = RawNode::new(&raft_config(cfg, member_id, 0), storage.clone())?;
    Ok(Started {
        member_id,
        cluster_id,
        node,
        storage,
        wal,
        snapshotter,
        store,
        cluster: Arc::new(Cluster::new(cluster_id)),
        snapshot_index: 0,
        snapshot_term: 0,
        fresh: true,
        initial_members,
        conf_view,
    })
}

fn restart(cfg: &ServerConfig, dirs: &DataDir) -> Result<Started, StartError> {
    std::fs::create_dir_all(&dirs.snap)?;
    let snapshotter = Snapshotter::new(&dirs.snap)?;
    let wal_snaps = etcd_wal::valid_snapshot_entries(&dirs.wal)?;
    let snapshot = match snapshotter.load_newest_available(&wal_snaps) {
        Ok(s) => Some(s),
        Err(etcd_wal::Error::NoSnapshot(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let marker = snapshot
        .as_ref()
        .and_then(|s| s.metadata.as_ref())
        .map(|m| walpb::Snapshot {
            index: m.index,
            term: m.term,
            conf_state: m.conf_state.clone(),
        })
        .unwrap_or_default();
    let mut wal = Wal::open_with(&dirs.wal, marker.clone(), wal_options())?;
    let contents = wal.read_all()?;
    let meta = Metadata::decode(contents.metadata.as_slice())
        .map_err(|e| StartError::Config(format!("wal metadata does not decode: {e}")))?;
    let (member_id, cluster_id) = (meta.node_id, meta.cluster_id);

    install_received_backend(dirs, marker.index)?;
    let store = Arc::new(Store::open(&dirs.backend)?);
    let ci = store.consistent_index();
    if ci.index < marker.index {
        return Err(StartError::Config(format!(
            "the backend's consistent index {} is older than snapshot index {}: the backend \
             is missing or damaged; restore the member from a snapshot",
            ci.index, marker.index
        )));
    }
    let cluster = Arc::new(Cluster::new(cluster_id));
    cluster.recover(&store)?;
    if cluster.is_removed(member_id) {
        return Err(StartError::Config(format!(
            "member {member_id:x} has been permanently removed from cluster {cluster_id:x}; \
             remove its data directory ({}) and add it again with MemberAdd to rejoin",
            cfg.data_dir.display()
        )));
    }
    // The conf changes after the snapshot are decided as they were the first time: from
    // the membership the snapshot holds (or from the start of the log).
    let conf_view = match &snapshot {
        None => ConfView::default(),
        Some(s) => ConfView::from_snapshot_data(&s.data).unwrap_or_else(|| {
            tracing::warn!(snapshot_index = marker.index,
                "the snapshot holds no member list; membership changes after it are checked against the backend's members");
            ConfView::new(&cluster.members(), &cluster.removed_ids())
        }),
    };

    let storage = MemStorage::new();
    if let Some(snap) = snapshot {
        storage.wl().apply_snapshot(snap)?;
    }
    let hs: HardState = contents.hard_state;
    storage.wl().set_hard_state(hs);
    storage.wl().append(&contents.entries)?;
    let node = RawNode::new(&raft_config(cfg, member_id, marker.index), storage.clone())?;
    tracing::info!(local_member_id = %format!("{member_id:x}"), cluster_id = %format!("{cluster_id:x}"),
        snapshot_index = marker.index, consistent_index = ci.index, term = hs.term, commit = hs.commit,
        entries = contents.entries.len(), "restarting member");
    Ok(Started {
        member_id,
        cluster_id,
        node,
        storage,
        wal,
        snapshotter,
        store,
        cluster,
        snapshot_index: marker.index,
        snapshot_term: marker.term,
        fresh: false,
        initial_members: initial_members(cfg),
        conf_view,
    })
}

/// If a received backend for the snapshot at `index` waits in `member/snap`, it replaces
/// the backend (the member crashed between persisting the snapshot and installing it).
fn install_received_backend(dirs: &DataDir, index: u64) -> Result<(), StartError> {
    if index == 0 {
        return Ok(());
    }
    let received = dirs.received_backend(index);
    if !received.is_dir() {
        return Ok(());
    }
    let needs = match Store::open(&dirs.backend) {
        Ok(store) => store.consistent_index().index < index,
        Err(_) => true,
    };
    if needs {
        tracing::warn!(path = %received.display(), "installing the backend received with snapshot {index}");
        replace_dir(&received, &dirs.backend)?;
    } else {
        std::fs::remove_dir_all(&received)?;
    }
    Ok(())
}

/// Moves `from` onto `to`, replacing it (the old one is removed after the rename).
pub fn replace_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let old = to.with_extension("old");
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if to.exists() {
        std::fs::rename(to, &old)?;
    }
    std::fs::rename(from, to)?;
    if let Some(parent) = to.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// A snapshot's index (0 when it has no metadata).
pub fn snapshot_index(s: &Snapshot) -> u64 {
    s.metadata.as_ref().map_or(0, |m| m.index)
}
