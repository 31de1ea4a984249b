//! The transport's configuration: identities, queue capacities, timeouts and limits.
//!
//! Owns no state. Invariant: every queue, window and size the transport uses comes from
//! here and has a finite bound; [`TransportConfig::validate`] rejects zero capacities.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::TransportError;

/// How this member talks to its peers. Start from [`TransportConfig::new`] and override
/// fields; the defaults follow etcd's rafthttp.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id; requests from another cluster are rejected.
    pub cluster_id: u64,
    /// Where incoming snapshots are staged (a temp dir per transfer is created inside).
    pub snapshot_staging_dir: PathBuf,
    /// Capacity of each per-peer stream queue (etcd: 4096).
    pub stream_queue_len: usize,
    /// Capacity of the per-peer pipeline queue (etcd: 64).
    pub pipeline_queue_len: usize,
    /// Concurrent pipeline requests per peer (etcd: 4).
    pub pipeline_concurrency: usize,
    /// Size of one snapshot data chunk on the wire.
    pub snapshot_chunk_bytes: usize,
    /// Largest accepted snapshot (all files together); larger transfers are rejected.
    pub max_snapshot_bytes: u64,
    /// Largest encoded raft message accepted or sent (gRPC message size limit).
    pub max_message_bytes: usize,
    /// Timeout for connecting to a peer.
    pub dial_timeout: Duration,
    /// Timeout for one pipeline request or probe.
    pub request_timeout: Duration,
    /// First delay before re-opening a broken stream; doubled on each failure.
    pub stream_backoff_min: Duration,
    /// Upper bound of the stream reconnect delay.
    pub stream_backoff_max: Duration,
    /// Interval of the round-trip-time probe to each peer.
    pub probe_interval: Duration,
    /// HTTP/2 keep-alive ping interval on peer connections (detects dead peers).
    pub keep_alive_interval: Duration,
    /// HTTP/2 flow-control window per stream, in bytes (bounds memory per stream).
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 flow-control window per connection, in bytes.
    pub http2_connection_window_bytes: u32,
    /// TLS for peer connections (`--peer-cert-file` and friends). Not supported yet:
    /// [`crate::Transport::start`] fails with [`TransportError::TlsNotSupported`] if set.
    pub tls: Option<PeerTlsConfig>,
}

/// TLS settings for peer connections, mirroring etcd's `--peer-*` flags. Reserved: the
/// transport runs on tonic, whose rustls support plugs in here without a redesign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTlsConfig {
    /// `--peer-cert-file`: this member's certificate (PEM).
    pub cert_file: PathBuf,
    /// `--peer-key-file`: its private key (PEM).
    pub key_file: PathBuf,
    /// `--peer-trusted-ca-file`: CA bundle that peer certificates must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--peer-client-cert-auth`: require and verify client certificates.
    pub client_cert_auth: bool,
}

/// etcd's stream buffer size.
pub const DEFAULT_STREAM_QUEUE_LEN: usize = 4096;
/// etcd's pipeline buffer size.
pub const DEFAULT_PIPELINE_QUEUE_LEN: usize = 64;
/// etcd's number of pipeline connections.
pub const DEFAULT_PIPELINE_CONCURRENCY: usize = 4;
/// One MiB snapshot chunks.
pub const DEFAULT_SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

impl TransportConfig {
    /// A configuration with etcd's defaults for the given identities and staging dir.
    pub fn new(member_id: u64, cluster_id: u64, snapshot_staging_dir: impl Into<PathBuf>) -> Self {
        TransportConfig {
            member_id,
            cluster_id,
            snapshot_staging_dir: snapshot_staging_dir.into(),
            stream_queue_len: DEFAULT_STREAM_QUEUE_LEN,
            pipeline_queue_len: DEFAULT_PIPELINE_QUEUE_LEN,
            pipeline_concurrency: DEFAULT_PIPELINE_CONCURRENCY,
            snapshot_chunk_bytes: DEFAULT_SNAPSHOT_CHUNK_BYTES,
            max_snapshot_bytes: 1 << 40,
            max_message_bytes: 64 * 1024 * 1024,
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            stream_backoff_min: Duration::from_millis(100),
            stream_backoff_max: Duration::from_secs(2),
            probe_interval: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(5),
            http2_stream_window_bytes: 2 * 1024 * 1024,
            http2_connection_window_bytes: 8 * 1024 * 1024,
            tls: None,
        }
    }

    /// Checks that every bound is usable.
    pub fn validate(&self) -> Result<(), TransportError> {
        let bad = |what: &str| Err(TransportError::InvalidConfig(what.to_string()));
        if self.member_id == 0 {
            return bad("member_id must not be 0");
        }
        if self.stream_queue_len == 0 || self.pipeline_queue_len == 0 {
            return bad("queue lengths must be at least 1");
        }
        if self.pipeline_concurrency == 0 {
            return bad("pipeline_concurrency must be at least 1");
        }
        if self.snapshot_chunk_bytes < 1024 {
            return bad("snapshot_chunk_bytes must be at least 1024");
        }
        if self.max_message_bytes < self.snapshot_chunk_bytes + 1024 {
            return bad("max_message_bytes must exceed snapshot_chunk_bytes by 1 KiB");
        }
        if self.stream_backoff_min.is_zero() || self.stream_backoff_max < self.stream_backoff_min {
            return bad("stream backoff bounds must satisfy 0 < min <= max");
        }
        if self.probe_interval.is_zero() {
            return bad("probe_interval must not be zero");
        }
        if self.tls.is_some() {
            return Err(TransportError::TlsNotSupported);
        }
        Ok(())
    }
}
