//! `etcd-transport`: peer messaging between members, following etcd's rafthttp design.
//!
//! A [`Transport`] serves the `rafthttppb.Peer` gRPC service on the member's peer
//! listener and keeps, for every remote member added with [`Transport::add_peer`], a
//! set of bounded queues drained by background tasks: two long-lived gRPC streams (one
//! for `MsgApp`, one for all other small messages; see the `stream` module for why two),
//! a pipeline of short unary requests (a few in flight) for snapshot messages and for
//! everything while the streams are down, and a prober that measures the round-trip
//! time. [`Transport::send`] only routes each message by its `to` field into a queue with
//! `try_send`: it never blocks, so the raft loop may call it from a plain thread; when a
//! queue is full the message is dropped and the [`Raft`] handler hears
//! `report_unreachable`. [`Transport::send_snapshot`] streams a snapshot message with its
//! backend data (a file or a directory, e.g. a RocksDB checkpoint) in chunks with a
//! CRC32C; the receiver stages the files under its staging directory, verifies them and
//! calls [`Raft::receive_snapshot`], and the sender reports `report_snapshot(to, ok)`.
//! Every call carries the cluster id and both member ids as metadata; calls from another
//! cluster, from removed members, or for another member are refused, and a member
//! refused as removed hears it ([`Raft::report_removed`]). [`fetch_members`] asks a
//! running member for the cluster id and member list (a joining member's first step;
//! served from [`Raft::members`]). The transport knows
//! nothing about raft's state machine: it moves `raftpb::Message`s and files.
//!
//! ```no_run
//! use std::sync::Arc;
//! use etcd_proto::raftpb::{Message, MessageType};
//! use etcd_transport::{HandlerError, Raft, StagedSnapshot, Transport, TransportConfig};
//!
//! struct Node;
//! impl Raft for Node {
//!     fn process(&self, m: Message) -> Result<(), HandlerError> {
//!         println!("got {:?} from {:x}", m.r#type, m.from);
//!         Ok(())
//!     }
//!     fn report_unreachable(&self, _id: u64) {}
//!     fn report_snapshot(&self, _id: u64, _ok: bool) {}
//!     fn receive_snapshot(&self, _m: Message, staged: StagedSnapshot) -> Result<(), HandlerError> {
//!         let _dir = staged.into_path(); // keep the files
//!         Ok(())
//!     }
//!     fn is_id_removed(&self, _id: u64) -> bool { false }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TransportConfig::new(0x1, 0xc1, "/var/lib/etcd/member/snap/staging");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2380").await?;
//! let transport = Transport::start(config, listener, Arc::new(Node)).await?;
//! transport.add_peer(0x2, &["http://127.0.0.1:22380"])?;
//! // From the raft loop (any thread): never blocks.
//! transport.send(vec![Message {
//!     r#type: MessageType::MsgHeartbeat as i32,
//!     from: 0x1,
//!     to: 0x2,
//!     term: 1,
//!     ..Default::default()
//! }]);
//! transport.stop().await;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod handler;
mod members;
mod metadata;
mod peer;
mod pipeline;
mod probe;
mod server;
mod snapshot;
mod stats;
mod status;
mod stream;
mod transport;

pub use config::{
    PeerTlsConfig, TransportConfig, DEFAULT_PIPELINE_CONCURRENCY, DEFAULT_PIPELINE_QUEUE_LEN,
    DEFAULT_SNAPSHOT_CHUNK_BYTES, DEFAULT_STREAM_QUEUE_LEN,
};
pub use error::{HandlerError, TransportError};
pub use handler::{Raft, StagedFile, StagedSnapshot};
pub use members::fetch_members;
pub use metadata::{CLUSTER_ID_HEADER, FROM_HEADER, STREAM_KIND_HEADER, TO_HEADER};
pub use snapshot::SnapshotSource;
pub use stats::{BufferStats, PeerStats, RttHistogram, RTT_BUCKETS_SECONDS};
pub use transport::Transport;
