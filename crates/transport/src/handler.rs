//! The boundary between the transport and the member it serves: the [`Raft`] trait the
//! transport delivers to, and [`StagedSnapshot`], a received snapshot's files on disk.
//!
//! Invariant: a [`StagedSnapshot`] owns its staging directory; unless the handler takes
//! it with [`StagedSnapshot::into_path`], dropping it removes the directory, so failed or
//! refused transfers never leave files behind.

use std::path::{Path, PathBuf};

use etcd_proto::rafthttppb::MembersResponse;
use etcd_proto::raftpb::Message;

use crate::error::HandlerError;

/// What the transport delivers to. Implemented by the server's raft node loop.
///
/// Every method is called from transport tasks (or, for `report_unreachable` and
/// `report_snapshot`, possibly from the thread calling [`crate::Transport::send`]): it
/// must not block for long or re-enter the transport; hand the event to the raft loop
/// through a bounded channel and return.
pub trait Raft: Send + Sync + 'static {
    /// Takes one raft message received from a peer. An error is reported back to the
    /// sender (pipeline) or logged (stream).
    fn process(&self, m: Message) -> Result<(), HandlerError>;
    /// The peer could not be reached or its queue was full: a message to it was dropped.
    fn report_unreachable(&self, id: u64);
    /// A snapshot sent to `id` finished (`ok == true`) or failed.
    fn report_snapshot(&self, id: u64, ok: bool);
    /// Takes a received snapshot message with its staged, verified backend data. The
    /// handler keeps the files with [`StagedSnapshot::into_path`] (or moves them out of
    /// the directory); otherwise they are removed when `staged` is dropped.
    fn receive_snapshot(&self, m: Message, staged: StagedSnapshot) -> Result<(), HandlerError>;
    /// Whether `id` was removed from the cluster (its messages are refused).
    fn is_id_removed(&self, id: u64) -> bool;
    /// Peer `by` refused this member's messages because it was removed from the cluster
    /// (a `PermissionDenied` answer). The member should stop, as etcd's does. Called at
    /// most once per refused attempt; the default ignores it.
    fn report_removed(&self, by: u64) {
        let _ = by;
    }
    /// The cluster id and members, served to members that join (`Members` call); `None`
    /// (the default) answers `Unavailable`.
    fn members(&self) -> Option<MembersResponse> {
        None
    }
}

/// One file of a staged snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// Path relative to [`StagedSnapshot::path`].
    pub relative_path: PathBuf,
    /// Size in bytes (verified).
    pub size: u64,
}

/// A received snapshot's backend data, written to a fresh directory under the configured
/// staging directory and verified against the sender's checksum.
#[derive(Debug)]
pub struct StagedSnapshot {
    dir: Option<PathBuf>,
    files: Vec<StagedFile>,
    is_dir: bool,
    total_bytes: u64,
}

impl StagedSnapshot {
    pub(crate) fn new(dir: PathBuf, files: Vec<StagedFile>, is_dir: bool) -> Self {
        let total_bytes = files.iter().map(|f| f.size).sum();
        StagedSnapshot {
            dir: Some(dir),
            files,
            is_dir,
            total_bytes,
        }
    }

    /// The staging directory holding the files.
    pub fn path(&self) -> &Path {
        self.dir.as_deref().unwrap_or_else(|| Path::new(""))
    }

    /// The files, in the order the sender listed them.
    pub fn files(&self) -> &[StagedFile] {
        &self.files
    }

    /// True if the sender's source was a directory (e.g. a RocksDB checkpoint); false if
    /// it was one file (then [`StagedSnapshot::files`] has one entry) or absent (none).
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// Sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Keeps the staging directory on disk and returns its path; the caller now owns it.
    pub fn into_path(mut self) -> PathBuf {
        self.dir.take().unwrap_or_default()
    }
}

impl Drop for StagedSnapshot {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Err(err) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %err, "could not remove staged snapshot; remove it by hand");
            }
        }
    }
}
