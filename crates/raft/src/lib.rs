//! `etcd-raft`: the Raft consensus core that etcd's server drives.
//! (crate docs are completed below)

mod confchange;
mod config;
mod errors;
mod inflights;
mod log_unstable;
mod progress;
mod quorum;
mod raft;
mod raft_log;
mod raw_node;
mod read_only;
pub mod sim;
mod status;
mod storage;
mod tracker;
mod util;

pub use confchange::{decode_conf_change, enters_joint, leaves_joint, ConfChangeI};
pub use config::Config;
pub use errors::{Error, Result, StorageError};
pub use progress::ProgressState;
pub use quorum::{JointConfig, MajorityConfig, VoteResult};
pub use raft::{SoftState, StateRole, INVALID_ID};
pub use raw_node::{RawNode, Ready, SnapshotStatus};
pub use read_only::{ReadOnlyOption, ReadState};
pub use status::{PeerProgress, Status};
pub use storage::{MemStorage, MemStorageCore, Storage};
pub use tracker::TrackerConfig;
