//! `etcd-server`: the glue that makes the `etcd` binary (not built yet; this crate says
//! what it will own).
//!
//! It owns the raft node loop (one owner of the `RawNode`: group commit to the WAL,
//! messages to the transport, committed entries to the applier), the applier (committed
//! entries applied in order to the multi-version store with the consistent index), the
//! gRPC services of etcd v3.5 with etcd's error codes and strings from one table, the
//! HTTP endpoints, and the command line compatible with etcd's flags.
//!
//! Built so far: [`config`] (etcd's flags, `ETCD_*` variables and YAML config file),
//! [`errors`] (the table of etcd's gRPC codes and error strings), [`ids`] (member and
//! cluster ids as etcd derives them), [`logging`] (JSON or text `tracing` output).

pub mod alarm;
pub mod apply;
pub mod compactor;
pub mod config;
pub mod election;
pub mod errors;
pub mod grpc;
pub mod http;
pub mod ids;
pub mod join;
pub mod kv;
mod lease_watch;
pub mod lock;
pub mod logging;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod reconfig;
pub mod server;
pub mod storage;
pub mod wait;

pub use server::{EtcdServer, Shared};
