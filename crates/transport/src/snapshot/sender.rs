//! The snapshot sender: streams one snapshot message and its backend data to a peer and
//! reports the outcome to raft.
//!
//! Owns the open source file and one chunk buffer at a time. Invariants: a chunk is read
//! from disk only when gRPC asks for the next one (pull-based), so at most one chunk read
//! by this code is alive per transfer; every transfer ends in exactly one
//! `report_snapshot(to, ok)`.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use etcd_proto::rafthttppb::snapshot_chunk::Chunk;
use etcd_proto::rafthttppb::{SnapshotChunk, SnapshotFile, SnapshotHeader, SnapshotTrailer};
use etcd_proto::raftpb::Message;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{list_files, SnapshotSource};
use crate::peer::PeerShared;
use crate::stats::{BufferGauge, GaugeGuard};

/// Sends a snapshot and reports the result: `report_snapshot(to, ok)`, and
/// `report_unreachable(to)` on failure.
pub(crate) async fn run(
    shared: Arc<PeerShared>,
    m: Message,
    source: SnapshotSource,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let (index, term) = m
        .snapshot
        .as_ref()
        .and_then(|s| s.metadata.as_ref())
        .map_or((0, 0), |md| (md.index, md.term));
    let result = tokio::select! {
        r = transfer(&shared, m, source) => r,
        _ = stop.changed() => Err("transport stopped".to_string()),
    };
    match result {
        Ok(bytes) => {
            shared
                .counters
                .sent(usize::try_from(bytes).unwrap_or(usize::MAX));
            shared.status.activate();
            tracing::info!(local_member_id = %format!("{:x}", shared.identity.from),
                remote_peer_id = %format!("{:x}", shared.id), snapshot_index = index, snapshot_term = term,
                bytes, took_ms = started.elapsed().as_millis() as u64, "sent database snapshot to peer");
            shared.raft.report_snapshot(shared.id, true);
        }
        Err(reason) => {
            tracing::warn!(local_member_id = %format!("{:x}", shared.identity.from),
                remote_peer_id = %format!("{:x}", shared.id), snapshot_index = index, snapshot_term = term,
                %reason, "failed to send database snapshot to peer; raft will retry");
            shared.counters.failed(1);
            shared.status.deactivate(&format!("snapshot: {reason}"));
            shared.raft.report_unreachable(shared.id);
            shared.raft.report_snapshot(shared.id, false);
        }
    }
}

async fn transfer(shared: &PeerShared, m: Message, source: SnapshotSource) -> Result<u64, String> {
    let is_dir = matches!(source, SnapshotSource::Dir(_));
    let files = tokio::task::spawn_blocking(move || list_files(&source))
        .await
        .map_err(|e| format!("listing snapshot files: {e}"))?
        .map_err(|e| format!("listing snapshot files: {e}"))?;
    let total: u64 = files.iter().map(|f| f.2).sum();
    let header = SnapshotHeader {
        message: Some(m),
        files: files
            .iter()
            .map(|(_, rel, size)| SnapshotFile {
                path: rel.clone(),
                size: *size,
            })
            .collect(),
        is_dir,
    };
    let error = Arc::new(Mutex::new(None));
    let state = ChunkState {
        header: Some(header),
        files: files
            .into_iter()
            .map(|(path, _, size)| (path, size))
            .collect(),
        current: None,
        crc: 0,
        chunk_bytes: shared.config.snapshot_chunk_bytes,
        gauge: shared.gauge.clone(),
        held: None,
        finished: false,
        error: error.clone(),
    };
    let chunks = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next().await?;
        Some((SnapshotChunk { chunk: Some(chunk) }, st))
    });
    let mut request = tonic::Request::new(chunks);
    shared.identity.insert(request.metadata_mut());
    let result = shared.client().snapshot(request).await;
    if let Some(local) = error.lock().take() {
        return Err(local);
    }
    match result {
        Ok(response) => {
            let received = response.into_inner().bytes_received;
            if received != total {
                return Err(format!("peer staged {received} bytes of {total}"));
            }
            Ok(total)
        }
        Err(status) => Err(format!("{}: {}", status.code(), status.message())),
    }
}

/// The pull-based producer of a transfer's chunks.
struct ChunkState {
    header: Option<SnapshotHeader>,
    files: VecDeque<(PathBuf, u64)>,
    current: Option<(std::fs::File, u64)>,
    crc: u32,
    chunk_bytes: usize,
    gauge: BufferGauge,
    /// The chunk handed out last: counted until gRPC asks for the next one.
    held: Option<GaugeGuard>,
    finished: bool,
    error: Arc<Mutex<Option<String>>>,
}

impl ChunkState {
    async fn next(&mut self) -> Option<Chunk> {
        self.held = None;
        if let Some(header) = self.header.take() {
            return Some(Chunk::Header(header));
        }
        loop {
            match self.current.take() {
                Some((file, remaining)) if remaining > 0 => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.chunk_bytes);
                    let guard = self.gauge.hold(n);
                    let read = tokio::task::spawn_blocking(move || {
                        let mut file = file;
                        let mut buf = vec![0u8; n];
                        file.read_exact(&mut buf).map(|()| (file, buf))
                    })
                    .await;
                    match read {
                        Ok(Ok((file, buf))) => {
                            self.crc = crc32c::crc32c_append(self.crc, &buf);
                            self.current = Some((file, remaining - n as u64));
                            self.held = Some(guard);
                            return Some(Chunk::Data(buf));
                        }
                        Ok(Err(e)) => return self.fail(format!("reading snapshot file: {e}")),
                        Err(e) => return self.fail(format!("reading snapshot file: {e}")),
                    }
                }
                _ => {}
            }
            match self.files.pop_front() {
                Some((path, size)) => {
                    let opened = tokio::task::spawn_blocking(move || {
                        std::fs::File::open(&path).map_err(|e| (path, e))
                    })
                    .await;
                    match opened {
                        Ok(Ok(file)) => self.current = Some((file, size)),
                        Ok(Err((path, e))) => {
                            return self
                                .fail(format!("opening snapshot file {}: {e}", path.display()))
                        }
                        Err(e) => return self.fail(format!("opening snapshot file: {e}")),
                    }
                }
                None if !self.finished => {
                    self.finished = true;
                    return Some(Chunk::Trailer(SnapshotTrailer { crc32c: self.crc }));
                }
                None => return None,
            }
        }
    }

    /// Records a local error and ends the stream without a trailer (the receiver then
    /// discards the transfer).
    fn fail(&mut self, reason: String) -> Option<Chunk> {
        *self.error.lock() = Some(reason);
        self.files.clear();
        self.finished = true;
        None
    }
}
