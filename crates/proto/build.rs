//! Generates the prost messages and tonic services from `proto/` at build time.
//!
//! No system `protoc` is needed: `protox` parses the .proto files in pure Rust and hands
//! the descriptor set to prost/tonic's code generators.

use std::path::PathBuf;

/// Every .proto file of the workspace, relative to the `proto/` include root.
const PROTOS: &[&str] = &[
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/api/v3lockpb/v3lock.proto",
    "etcd/api/v3electionpb/v3election.proto",
    "etcd/internal/raftpb/raft.proto",
    "etcd/internal/walpb/record.proto",
    "etcd/internal/snappb/snap.proto",
    "etcd/internal/leasepb/lease.proto",
    "etcd/internal/membershippb/membership.proto",
    "etcd/internal/etcdserverpb/raft_internal.proto",
    "etcd/internal/rafthttppb/rafthttp.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let include = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", include.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", include.join(proto).display());
    }

    let fds = protox::compile(PROTOS, [&include])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    let mut builder = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true);
    // Raft payloads are handed from the log to the transport and the applier without
    // copies: they are `bytes::Bytes`.
    for path in [
        ".raftpb.Entry.Data",
        ".raftpb.Snapshot.data",
        ".raftpb.Message.context",
        ".walpb.Record.data",
    ] {
        builder = builder.bytes(path);
    }
    builder.compile_fds(fds)?;
    Ok(())
}
