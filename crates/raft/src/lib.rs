//! `etcd-raft`: the Raft consensus core that etcd's server drives.
//!
//! The crate is a pure state machine in the style of etcd's Go raft library: it never
//! touches a disk, a socket, a clock or a thread. Time advances when the application
//! calls [`RawNode::tick`]; randomness (election jitter) comes from an RNG seeded by
//! [`Config::seed`]; the stable log is read through the [`Storage`] trait
//! ([`MemStorage`] is the in-memory one). Everything raft wants done — entries and
//! hard state to persist, a snapshot to install, messages to send, committed entries
//! to apply, linearizable reads that are ready — comes out in one [`Ready`], whose
//! parts the application takes by value; it then calls [`RawNode::advance`].
//!
//! Features: leader election with randomized timeouts, PreVote and CheckQuorum (on by
//! default, as etcd configures them), log replication with per-follower flow control
//! (probe / replicate / snapshot, an inflight window in messages and bytes, batching
//! by `max_size_per_msg_bytes`), fast backtracking of rejected appends, commit by
//! quorum of current-term entries only, bounds on uncommitted bytes and on committed
//! bytes per `Ready`, snapshots, membership changes (single v1 changes and v2 joint
//! consensus with learners), leadership transfer, ReadIndex (Safe and LeaseBased), and
//! proposal forwarding. [`sim`] is a deterministic cluster simulator used by the tests
//! (`cargo xtask sim --seeds N` runs it over many seeds in release mode).
//!
//! # Panics
//!
//! Nothing a peer sends makes a node panic. [`RawNode::step`] refuses messages no
//! correct peer sends (see [`Error::MalformedMessage`]), and the handlers ignore,
//! with a `warn` event, what only a state check can catch (a heartbeat committing
//! beyond our log, an acknowledgement beyond the leader's log, a snapshot with an
//! impossible configuration). `src/raft/peer_input_tests.rs` pins each case and
//! feeds random messages to nodes in every role. The assertions that remain guard
//! this node's own invariants, and firing one means a bug here or in the
//! application, never bad input from the network:
//! - the storage contradicts itself or fails where it must not: `first_index`,
//!   `last_index` or the term of the last entry unavailable, committed entries
//!   missing, the hard state's commit outside the stored log at start-up, an error
//!   other than `SnapshotTemporarilyUnavailable` when a snapshot is needed, or an
//!   empty snapshot where the log is compacted;
//! - the application misuses the API: `ready` twice without `advance`, or an applied
//!   index beyond the commit index;
//! - the log's own bookkeeping: truncating a committed entry, a gap after the last
//!   index, a commit index beyond the last index, slices outside the log, role
//!   transitions raft never makes, the term going backwards, a message built with the
//!   wrong term, the inflight window overfilled, a read request queue out of sync.
//!
//! The order of work for one `Ready` (see `examples/kv.rs` for a whole node):
//!
//! ```
//! use etcd_proto::raftpb::ConfState;
//! use etcd_raft::{Config, MemStorage, RawNode, StateRole};
//!
//! // A single-member cluster: the member is the only voter.
//! let storage = MemStorage::new_with_conf_state(ConfState { voters: vec![1], ..Default::default() });
//! let mut node = RawNode::new(&Config::new(1), storage.clone()).expect("valid config");
//! node.campaign().expect("a voter can campaign");
//! let mut applied = Vec::new();
//! for round in 0..10 {
//!     if round == 1 {
//!         node.propose(&b"hello"[..]).expect("the leader accepts proposals");
//!     }
//!     if !node.has_ready() {
//!         continue;
//!     }
//!     let mut rd = node.ready();
//!     // 1. Persist (a leader may send its messages before this; followers after).
//!     storage.wl().append(rd.entries()).expect("append");
//!     if let Some(hs) = rd.take_hard_state() {
//!         storage.wl().set_hard_state(hs);
//!     }
//!     // 2. Send messages to peers (none in a single-member cluster).
//!     assert!(rd.take_messages().is_empty());
//!     // 3. Apply committed entries, then 4. acknowledge.
//!     applied.extend(rd.take_committed_entries().into_iter().filter(|e| !e.data.is_empty()));
//!     node.advance();
//! }
//! assert_eq!(node.status().soft_state.role, StateRole::Leader);
//! assert_eq!(&applied[0].data[..], b"hello");
//! ```

mod confchange;
mod config;
mod errors;
mod inflights;
mod log_unstable;
mod msg_check;
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
