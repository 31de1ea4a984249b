//! The snapshot receiver: stages an incoming snapshot's files under the staging
//! directory, verifies sizes and checksum, and hands it to raft.
//!
//! Owns one staging directory per transfer (through [`StagedSnapshot`], which removes it
//! unless raft takes it) and at most one received chunk at a time. Invariants: nothing
//! from the peer is trusted (paths are confined to the staging dir, sizes and file counts
//! are bounded, every byte is accounted for and checksummed); raft sees a snapshot only
//! after the checksum matched and every file was synced to disk.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_proto::rafthttppb::snapshot_chunk::Chunk;
use etcd_proto::rafthttppb::{SnapshotChunk, SnapshotResponse};
use etcd_proto::raftpb::MessageType;
use tonic::{Status, Streaming};

use super::{safe_relative_path, MAX_SNAPSHOT_FILES};
use crate::config::TransportConfig;
use crate::handler::{Raft, StagedFile, StagedSnapshot};
use crate::metadata::{Gate, Identity};
use crate::stats::{BufferGauge, PeerCounters};

/// Longest wait for the next chunk before the transfer is abandoned.
const CHUNK_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a transfer needs from the transport.
pub(crate) struct Receiver<'a> {
    pub(crate) config: &'a TransportConfig,
    pub(crate) gate: &'a Gate,
    pub(crate) raft: Arc<dyn Raft>,
    pub(crate) gauge: &'a BufferGauge,
    pub(crate) counters: Option<Arc<PeerCounters>>,
}

fn io_status(what: &str, e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "{what}; check the snapshot staging directory (disk space, permissions)");
    Status::internal(format!("{what}: {e}"))
}

fn blocking_failed(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("snapshot staging task failed: {e}"))
}

impl Receiver<'_> {
    async fn next(&self, inbound: &mut Streaming<SnapshotChunk>) -> Result<Chunk, Status> {
        match tokio::time::timeout(CHUNK_IDLE_TIMEOUT, inbound.message()).await {
            Err(_) => Err(Status::deadline_exceeded("snapshot sender stalled")),
            Ok(Err(status)) => Err(status),
            Ok(Ok(None)) => Err(Status::invalid_argument(
                "snapshot stream ended before its trailer",
            )),
            Ok(Ok(Some(SnapshotChunk { chunk: None }))) => {
                Err(Status::invalid_argument("empty snapshot chunk"))
            }
            Ok(Ok(Some(SnapshotChunk { chunk: Some(c) }))) => Ok(c),
        }
    }

    /// Receives one transfer.
    pub(crate) async fn receive(
        &self,
        id: Identity,
        mut inbound: Streaming<SnapshotChunk>,
    ) -> Result<SnapshotResponse, Status> {
        let Chunk::Header(header) = self.next(&mut inbound).await? else {
            return Err(Status::invalid_argument(
                "snapshot transfer must start with a header",
            ));
        };
        let m = header
            .message
            .ok_or_else(|| Status::invalid_argument("snapshot header carries no raft message"))?;
        if m.r#type != MessageType::MsgSnap as i32 {
            return Err(Status::invalid_argument(
                "snapshot header message is not MsgSnap",
            ));
        }
        self.gate.check_message(&id, &m)?;
        if header.files.len() > MAX_SNAPSHOT_FILES || (!header.is_dir && header.files.len() > 1) {
            return Err(Status::invalid_argument("snapshot lists too many files"));
        }
        let mut files = Vec::with_capacity(header.files.len());
        let mut seen = HashSet::new();
        let mut total: u64 = 0;
        for f in &header.files {
            let rel = safe_relative_path(&f.path).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "snapshot file path {:?} is not a safe relative path",
                    f.path
                ))
            })?;
            if !seen.insert(rel.clone()) {
                return Err(Status::invalid_argument(format!(
                    "snapshot lists {:?} twice",
                    f.path
                )));
            }
            total = total
                .checked_add(f.size)
                .filter(|t| *t <= self.config.max_snapshot_bytes)
                .ok_or_else(|| {
                    Status::resource_exhausted(format!(
                        "snapshot exceeds the limit of {} bytes",
                        self.config.max_snapshot_bytes
                    ))
                })?;
            files.push(StagedFile {
                relative_path: rel,
                size: f.size,
            });
        }
        let index = m
            .snapshot
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map_or(0, |md| md.index);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = self
            .config
            .snapshot_staging_dir
            .join(format!("snap-{:x}-{index:016x}-{nanos}.tmp", id.from));
        let staging = self.config.snapshot_staging_dir.clone();
        let mk = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&staging)?;
            std::fs::create_dir(&mk)
        })
        .await
        .map_err(blocking_failed)?
        .map_err(|e| io_status("creating snapshot staging dir", e))?;
        // From here on, dropping `staged` removes the directory.
        let staged = StagedSnapshot::new(dir.clone(), files.clone(), header.is_dir);

        let mut crc = 0u32;
        let mut received: u64 = 0;
        let mut pending: Option<(Vec<u8>, usize, crate::stats::GaugeGuard)> = None;
        for f in &files {
            let path = dir.join(&f.relative_path);
            let mut file = tokio::task::spawn_blocking(move || {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::File::create(&path)
            })
            .await
            .map_err(blocking_failed)?
            .map_err(|e| io_status("creating staged snapshot file", e))?;
            let mut remaining = f.size;
            while remaining > 0 {
                let (buf, off, guard) = match pending.take() {
                    Some(p) => p,
                    None => {
                        let Chunk::Data(buf) = self.next(&mut inbound).await? else {
                            return Err(Status::invalid_argument(
                                "snapshot data ended before the listed sizes",
                            ));
                        };
                        let guard = self.gauge.hold(buf.len());
                        if buf.is_empty() || buf.len() as u64 > total - received {
                            return Err(Status::invalid_argument(
                                "snapshot data exceeds the listed sizes",
                            ));
                        }
                        received += buf.len() as u64;
                        crc = crc32c::crc32c_append(crc, &buf);
                        if let Some(c) = &self.counters {
                            c.received(buf.len());
                        }
                        (buf, 0, guard)
                    }
                };
                let n = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - off);
                let (f2, buf, res) = tokio::task::spawn_blocking(move || {
                    let res = file.write_all(&buf[off..off + n]);
                    (file, buf, res)
                })
                .await
                .map_err(blocking_failed)?;
                file = f2;
                res.map_err(|e| io_status("writing staged snapshot file", e))?;
                remaining -= n as u64;
                if off + n < buf.len() {
                    pending = Some((buf, off + n, guard));
                }
            }
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(blocking_failed)?
                .map_err(|e| io_status("syncing staged snapshot file", e))?;
        }
        if pending.is_some() || received != total {
            return Err(Status::invalid_argument(
                "snapshot data exceeds the listed sizes",
            ));
        }
        let Chunk::Trailer(trailer) = self.next(&mut inbound).await? else {
            return Err(Status::invalid_argument(
                "snapshot data exceeds the listed sizes",
            ));
        };
        if trailer.crc32c != crc {
            tracing::warn!(remote_member_id = %format!("{:x}", id.from), expected = trailer.crc32c, actual = crc,
                "received snapshot failed its checksum; discarded (the leader will resend it)");
            return Err(Status::data_loss(format!(
                "snapshot checksum mismatch: sender crc32c {:08x}, received {crc:08x}",
                trailer.crc32c
            )));
        }
        let dir_to_sync: PathBuf = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&dir_to_sync).and_then(|d| d.sync_all())
        })
        .await
        .map_err(blocking_failed)?
        .map_err(|e| io_status("syncing snapshot staging dir", e))?;
        tracing::info!(remote_member_id = %format!("{:x}", id.from), snapshot_index = index, bytes = total,
            "received and staged database snapshot");
        let raft = self.raft.clone();
        tokio::task::spawn_blocking(move || raft.receive_snapshot(m, staged))
            .await
            .map_err(blocking_failed)?
            .map_err(|e| Status::unavailable(format!("raft refused the snapshot: {e}")))?;
        Ok(SnapshotResponse {
            bytes_received: total,
        })
    }
}
