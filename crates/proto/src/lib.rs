//! `etcd-proto`: the etcd v3 API and the internal records of etcd-rs, as Rust types.
//!
//! Everything here is generated at build time from the `.proto` files in the workspace's
//! `proto/` directory (prost for messages, tonic for gRPC clients and servers, protox as
//! the pure-Rust protobuf compiler, so no system `protoc` is needed). Nothing is written
//! by hand but these re-exports, one module per protobuf package:
//!
//! - client API, wire-compatible with etcd v3.5: [`etcdserverpb`] (services KV, Watch,
//!   Lease, Cluster, Maintenance, Auth), [`mvccpb`], [`authpb`], [`v3lockpb`],
//!   [`v3electionpb`];
//! - internal records: [`raftpb`] (entries, messages, states, conf changes), [`walpb`],
//!   [`snappb`], [`leasepb`], [`membershippb`], and [`etcdserverpb::InternalRaftRequest`],
//!   which wraps every client write on its way through raft.
//!
//! ```
//! use etcd_proto::etcdserverpb::PutRequest;
//! use prost::Message;
//!
//! let put = PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), ..Default::default() };
//! let bytes = put.encode_to_vec();
//! assert_eq!(PutRequest::decode(bytes.as_slice()).unwrap(), put);
//! ```

pub use prost;
pub use prost_types;
pub use tonic;

/// The encoded `FileDescriptorSet` of every package, e.g. for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

macro_rules! generated_package {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
        }
    };
}

generated_package!(
    /// Multi-version key-value records: `KeyValue` and watch `Event`.
    mvccpb
);
generated_package!(
    /// Auth store records: `User`, `Role`, `Permission`.
    authpb
);
generated_package!(
    /// The etcd v3 client API (KV, Watch, Lease, Cluster, Maintenance, Auth) and the
    /// server's internal raft request.
    etcdserverpb
);
generated_package!(
    /// The Lock service.
    v3lockpb
);
generated_package!(
    /// The Election service.
    v3electionpb
);
generated_package!(
    /// Raft entries, messages, hard state, conf state, conf changes and snapshots.
    raftpb
);
generated_package!(
    /// Write-ahead log records and snapshot markers.
    walpb
);
generated_package!(
    /// The snapshotter's file record.
    snappb
);
generated_package!(
    /// Leases as stored in the backend.
    leasepb
);
generated_package!(
    /// Cluster members as stored in the backend.
    membershippb
);
generated_package!(
    /// The peer transport's wire: the `Peer` service (stream, pipeline, snapshot, probe).
    rafthttppb
);
