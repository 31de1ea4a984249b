//! The write-ahead log.
//!
//! Owns: the WAL directory while a writable [`Wal`] is open (its `LOCK` file is held),
//! the tail segment and the write side's rolling CRC.
//! Invariants: records reach the tail in the order `save` is called; when `save`
//! returns after a sync, every record of that call is durable; segments only grow by
//! whole frames; a new segment becomes visible (renamed from a temporary file) only
//! after its opening records (CRC hand-over, metadata, hard state) are durable; the
//! file beyond the tail's valid end always reads as zeros.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_proto::raftpb::{Entry, HardState};
use etcd_proto::walpb;

use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::metrics::{NoMetrics, WalMetrics, SLOW_FSYNC};
use crate::pipeline::FilePipeline;
use crate::reader::{replay, TornTail};
use crate::record::RecordType;
use crate::segment::{self, fsync_dir, preallocate, SegmentName};

/// The default size at which a new segment is started (64 MiB, as etcd).
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;

/// The name of the lock file in a WAL directory.
pub const LOCK_FILE: &str = "LOCK";

/// Options for creating or opening a writable log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new segment is started once the tail reaches this size (also the size each
    /// segment file is preallocated to).
    pub segment_size_bytes: u64,
    /// Where fsync durations and written bytes are reported.
    pub metrics: Arc<dyn WalMetrics>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            metrics: Arc::new(NoMetrics),
        }
    }
}

/// What a log holds from a snapshot marker on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalContents {
    /// The metadata given to [`Wal::create`].
    pub metadata: Vec<u8>,
    /// The last hard state saved (default if none).
    pub hard_state: HardState,
    /// The entries after the marker, in index order, overwrites applied.
    pub entries: Vec<Entry>,
}

/// Raft's rule: a `Ready` must be synced before messages that depend on it are sent
/// if it carries entries, or the term or vote changed. (A commit index change alone can
/// be recovered from the leader.)
pub fn must_sync(prev: &HardState, new: &HardState, n_entries: usize) -> bool {
    n_entries != 0 || new.vote != prev.vote || new.term != prev.term
}

/// A writable write-ahead log. One owner (the raft node loop) calls `save` for each
/// `Ready`; there is no internal locking.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// Held for the lifetime of the handle: the directory lock.
    _lock: File,
    /// Segments from the one the log was opened at to the tail, oldest first.
    segments: Vec<SegmentName>,
    tail: File,
    tail_offset: u64,
    encoder: Encoder,
    metadata: Vec<u8>,
    state: HardState,
    last_index: u64,
    pipeline: FilePipeline,
    unread: Option<WalContents>,
    read_done: bool,
    failed: Option<String>,
}

impl Wal {
    /// Creates a new log in `dir` (which must not exist) with default options.
    pub fn create(dir: impl AsRef<Path>, metadata: &[u8]) -> Result<Wal> {
        Wal::create_with(dir, metadata, WalOptions::default())
    }

    /// Creates a new log in `dir`, atomically: it is built in `dir.tmp`, synced, and
    /// renamed into place, so a crash leaves either no log or a complete empty one.
    pub fn create_with(dir: impl AsRef<Path>, metadata: &[u8], opts: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size_bytes == 0 {
            return Err(Error::InvalidArgument(
                "segment_size_bytes must be positive".into(),
            ));
        }
        if dir.exists() {
            return Err(Error::AlreadyExists(dir));
        }
        let tmp = sibling_tmp(&dir);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(Error::io("remove", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(Error::io("create dir", &tmp))?;
        let lock = lock_dir(&tmp)?;
        let name = SegmentName {
            seq: 0,
            first_index: 0,
        };
        let tmp_seg = segment::path(&tmp, &name);
        let mut tail = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_seg)
            .map_err(Error::io("create", &tmp_seg))?;
        preallocate(&tail, opts.segment_size_bytes, &tmp_seg)?;
        let mut encoder = Encoder::new(0);
        encoder.push(RecordType::Crc, b"");
        encoder.push(RecordType::Metadata, metadata);
        encoder.push_message(RecordType::Snapshot, &walpb::Snapshot::default());
        tail.write_all(encoder.buffer())
            .map_err(Error::io("write", &tmp_seg))?;
        let tail_offset = encoder.buffer().len() as u64;
        opts.metrics.add_bytes_written(tail_offset);
        encoder.clear();
        timed_sync(&tail, &tmp_seg, opts.metrics.as_ref())?;
        fsync_dir(&tmp)?;
        fs::rename(&tmp, &dir).map_err(Error::io("rename into place", &tmp))?;
        fsync_dir(&parent_of(&dir))?;
        let pipeline = FilePipeline::start(&dir, opts.segment_size_bytes)?;
        Ok(Wal {
            dir,
            opts,
            _lock: lock,
            segments: vec![name],
            tail,
            tail_offset,
            encoder,
            metadata: metadata.to_vec(),
            state: HardState::default(),
            last_index: 0,
            pipeline,
            unread: None,
            read_done: true,
            failed: None,
        })
    }

    /// Opens the log in `dir` for appending, positioned after the snapshot `marker`
    /// (which must be in the log), with default options. Call [`Wal::read_all`] to get
    /// what it holds.
    pub fn open(dir: impl AsRef<Path>, marker: walpb::Snapshot) -> Result<Wal> {
        Wal::open_with(dir, marker, WalOptions::default())
    }

    /// Opens the log for appending: takes the directory lock (an error, not a wait, if
    /// another process holds it), replays the segments from the one holding `marker`,
    /// cuts a torn tail off the last segment (logging a warning), and positions the
    /// writer at the end of the last valid record.
    pub fn open_with(
        dir: impl AsRef<Path>,
        marker: walpb::Snapshot,
        opts: WalOptions,
    ) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size_bytes == 0 {
            return Err(Error::InvalidArgument(
                "segment_size_bytes must be positive".into(),
            ));
        }
        let lock = lock_dir(&dir)?;
        remove_stale_tmp_files(&dir)?;
        let names = segment::list(&dir)?;
        let start = segment::search_index(&names, marker.index)
            .ok_or_else(|| Error::NoSegment(dir.clone()))?;
        let names = names[start..].to_vec();
        let r = replay(&dir, &names, &marker, true, true)?;
        let (tail_name, valid_end) = r.tail;
        let tail_path = segment::path(&dir, &tail_name);
        if let Some(TornTail {
            path,
            offset,
            reason,
        }) = &r.torn
        {
            tracing::warn!(
                file = %path.display(),
                offset,
                reason = %reason,
                "wal: cutting a torn record off the end of the log (an unsynced write interrupted by a crash); no synced record is lost"
            );
        }
        let mut tail = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tail_path)
            .map_err(Error::io("open", &tail_path))?;
        if !r.tail_zeroed {
            // Zero everything after the valid end, so that a later torn write is
            // recognisable (the decoder's rule), then restore the preallocation.
            tail.set_len(valid_end)
                .map_err(Error::io("truncate", &tail_path))?;
            preallocate(&tail, opts.segment_size_bytes.max(valid_end), &tail_path)?;
            tail.sync_all().map_err(Error::io("fsync", &tail_path))?;
        } else if r.tail_file_len < opts.segment_size_bytes {
            // Already zero beyond the valid end; only restore the preallocation.
            preallocate(&tail, opts.segment_size_bytes, &tail_path)?;
        }
        tail.seek(SeekFrom::Start(valid_end))
            .map_err(Error::io("seek", &tail_path))?;
        let metadata = r.metadata.unwrap_or_default();
        let pipeline = FilePipeline::start(&dir, opts.segment_size_bytes)?;
        Ok(Wal {
            dir,
            opts,
            _lock: lock,
            segments: names,
            tail,
            tail_offset: valid_end,
            encoder: Encoder::new(r.crc),
            metadata: metadata.clone(),
            state: r.state,
            last_index: r.last_index,
            pipeline,
            unread: Some(WalContents {
                metadata,
                hard_state: r.state,
                entries: r.entries,
            }),
            read_done: false,
            failed: None,
        })
    }

    /// Opens the log read-only, for tools: no lock is taken and nothing is repaired.
    pub fn open_for_read(dir: impl AsRef<Path>, marker: walpb::Snapshot) -> Result<WalReader> {
        Ok(WalReader {
            dir: dir.as_ref().to_path_buf(),
            marker,
            torn: None,
        })
    }

    /// The metadata, last hard state and entries after the marker the log was opened
    /// at. Callable once per `open`; a created log has nothing to read.
    pub fn read_all(&mut self) -> Result<WalContents> {
        if self.read_done {
            return Err(Error::AlreadyRead);
        }
        self.read_done = true;
        self.unread.take().ok_or(Error::AlreadyRead)
    }

    /// Appends `entries` and, unless it is empty (default), the hard state, in one
    /// write, then does at most one fdatasync: when [`must_sync`] says so, or when the
    /// segment is full and a new one is cut. An index at or below the last one replaces
    /// the log from there (raft overwriting an uncommitted tail).
    pub fn save(&mut self, hard_state: &HardState, entries: &[Entry]) -> Result<()> {
        self.check_usable()?;
        let empty_state = *hard_state == HardState::default();
        if empty_state && entries.is_empty() {
            return Ok(());
        }
        self.check_entries(entries)?;
        let sync = must_sync(&self.state, hard_state, entries.len());
        for e in entries {
            self.encoder.push_message(RecordType::Entry, e);
        }
        if !empty_state {
            self.encoder.push_message(RecordType::State, hard_state);
        }
        self.guard(|w| w.flush())?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if !empty_state {
            self.state = *hard_state;
        }
        if self.tail_offset < self.opts.segment_size_bytes {
            if sync {
                self.guard(|w| w.sync())?;
            }
            return Ok(());
        }
        self.guard(|w| w.cut_now())
    }

    /// Records a snapshot marker (the log can later be opened at it) and syncs.
    pub fn save_snapshot(&mut self, marker: &walpb::Snapshot) -> Result<()> {
        self.check_usable()?;
        self.encoder.push_message(RecordType::Snapshot, marker);
        self.guard(|w| w.flush())?;
        self.last_index = self.last_index.max(marker.index);
        if self.tail_offset < self.opts.segment_size_bytes {
            self.guard(|w| w.sync())
        } else {
            self.guard(|w| w.cut_now())
        }
    }

    /// Starts a new segment now (the tail is trimmed and synced). `save` does this by
    /// itself when the tail is full; tools and tests may call it directly.
    pub fn cut(&mut self) -> Result<()> {
        self.check_usable()?;
        self.guard(|w| w.cut_now())
    }

    /// Removes the segment files that only hold entries below `index` (typically the
    /// index of the last snapshot). The segment that may hold `index` is kept, and so
    /// is the one before it (a segment's name is only a lower bound once raft has
    /// overwritten entries), and the tail is never removed. Returns how many files were
    /// removed.
    pub fn release_to(&mut self, index: u64) -> Result<usize> {
        self.check_usable()?;
        let keep_from = match self.segments.iter().position(|s| s.first_index >= index) {
            Some(i) => i.saturating_sub(1),
            None => self.segments.len().saturating_sub(1),
        };
        let Some(keep) = self.segments.get(keep_from).copied() else {
            return Ok(0);
        };
        let mut removed = 0;
        // Also removes segments older than the one the log was opened at.
        for name in segment::list(&self.dir)? {
            if name.seq < keep.seq {
                let p = segment::path(&self.dir, &name);
                fs::remove_file(&p).map_err(Error::io("remove", &p))?;
                removed += 1;
            }
        }
        self.segments.drain(..keep_from);
        if removed > 0 {
            fsync_dir(&self.dir)?;
            tracing::debug!(dir = %self.dir.display(), removed, index, "wal: released old segments");
        }
        Ok(removed)
    }

    /// Syncs the tail and closes the log (dropping it also closes it, without a sync).
    pub fn close(mut self) -> Result<()> {
        self.check_usable()?;
        self.sync()
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index of the last entry saved (or of the newest snapshot marker, if higher).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The last hard state saved.
    pub fn hard_state(&self) -> HardState {
        self.state
    }

    /// The segments this handle holds, oldest first; the last is being written.
    pub fn segments(&self) -> &[SegmentName] {
        &self.segments
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write step; an error leaves the tail in an unknown state, so the handle
    /// refuses further writes.
    fn guard(&mut self, f: impl FnOnce(&mut Wal) -> Result<()>) -> Result<()> {
        let r = f(self);
        if let Err(e) = &r {
            tracing::error!(dir = %self.dir.display(), error = %e, "wal: write failed; the log refuses further writes until the process restarts");
            self.failed = Some(e.to_string());
        }
        r
    }

    fn check_entries(&self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index == 0 || first.index > self.last_index + 1 {
            return Err(Error::InvalidArgument(format!(
                "first entry index {} would leave a gap after the last index {}",
                first.index, self.last_index
            )));
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(Error::InvalidArgument(format!(
                    "entries are not consecutive: {} then {}",
                    pair[0].index, pair[1].index
                )));
            }
        }
        Ok(())
    }

    fn tail_path(&self) -> PathBuf {
        match self.segments.last() {
            Some(name) => segment::path(&self.dir, name),
            None => self.dir.clone(),
        }
    }

    /// Writes the encoder's buffer to the tail with one `write`.
    fn flush(&mut self) -> Result<()> {
        let buf = self.encoder.buffer();
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len() as u64;
        if let Err(e) = self.tail.write_all(buf) {
            return Err(Error::Io {
                op: "write",
                path: self.tail_path(),
                source: e,
            });
        }
        self.tail_offset += n;
        self.opts.metrics.add_bytes_written(n);
        self.encoder.clear();
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let path = self.tail_path();
        timed_sync(&self.tail, &path, self.opts.metrics.as_ref())
    }

    fn cut_now(&mut self) -> Result<()> {
        let old_path = self.tail_path();
        let Some(&old) = self.segments.last() else {
            return Err(Error::NoSegment(self.dir.clone()));
        };
        // The finished segment keeps exactly its records: drop the unused preallocation.
        self.tail
            .set_len(self.tail_offset)
            .map_err(Error::io("truncate", &old_path))?;
        let start = Instant::now();
        self.tail
            .sync_all()
            .map_err(Error::io("fsync", &old_path))?;
        observe_sync(start.elapsed(), &old_path, self.opts.metrics.as_ref());

        let (mut file, tmp_path) = self.pipeline.next()?;
        let name = SegmentName {
            seq: old.seq + 1,
            first_index: self.last_index + 1,
        };
        let new_path = segment::path(&self.dir, &name);
        self.encoder.push(RecordType::Crc, b"");
        self.encoder.push(RecordType::Metadata, &self.metadata);
        if self.state != HardState::default() {
            let state = self.state;
            self.encoder.push_message(RecordType::State, &state);
        }
        let n = self.encoder.buffer().len() as u64;
        file.write_all(self.encoder.buffer())
            .map_err(Error::io("write", &tmp_path))?;
        self.opts.metrics.add_bytes_written(n);
        self.encoder.clear();
        timed_sync(&file, &tmp_path, self.opts.metrics.as_ref())?;
        fs::rename(&tmp_path, &new_path).map_err(Error::io("rename", &tmp_path))?;
        fsync_dir(&self.dir)?;
        self.tail = file;
        self.tail_offset = n;
        self.segments.push(name);
        tracing::debug!(segment = %new_path.display(), first_index = name.first_index, "wal: started a new segment");
        Ok(())
    }
}

/// Reads a log without locking or repairing it (for tools).
#[derive(Debug)]
pub struct WalReader {
    dir: PathBuf,
    marker: walpb::Snapshot,
    torn: Option<TornTail>,
}

impl WalReader {
    /// Replays the log from the marker. A torn tail is not an error here: what precedes
    /// it is returned and [`WalReader::torn_tail`] says where it is.
    pub fn read_all(&mut self) -> Result<WalContents> {
        let names = segment::list(&self.dir)?;
        let start = segment::search_index(&names, self.marker.index)
            .ok_or_else(|| Error::NoSegment(self.dir.clone()))?;
        let r = replay(&self.dir, &names[start..], &self.marker, true, true)?;
        self.torn = r.torn;
        Ok(WalContents {
            metadata: r.metadata.unwrap_or_default(),
            hard_state: r.state,
            entries: r.entries,
        })
    }

    /// Where the last segment's torn record starts, if the last `read_all` found one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The last hard state in the log.
    pub hard_state: HardState,
    /// The index of the last entry (or the marker's index if none follows it).
    pub last_index: u64,
    /// Set if the last segment ends in a torn record (which `open` would cut off).
    pub torn_tail: Option<TornTail>,
}

/// Checks the log in `dir` read-only from `marker`: every record's CRC, the CRC
/// hand-over between segments, metadata agreement, the entry sequence, and that the
/// marker is present. Takes no lock and changes nothing.
pub fn verify(dir: impl AsRef<Path>, marker: &walpb::Snapshot) -> Result<Verified> {
    let dir = dir.as_ref();
    let names = segment::list(dir)?;
    let start = segment::search_index(&names, marker.index)
        .ok_or_else(|| Error::NoSegment(dir.to_path_buf()))?;
    let r = replay(dir, &names[start..], marker, true, true)?;
    Ok(Verified {
        hard_state: r.state,
        last_index: r.last_index,
        torn_tail: r.torn,
    })
}

/// The snapshot markers in the log that are safe to load a snapshot for: those at or
/// below the commit index of the last hard state (etcd's `ValidSnapshotEntries`).
/// Pass them to [`crate::snap::Snapshotter::load_newest_available`].
pub fn valid_snapshot_entries(dir: impl AsRef<Path>) -> Result<Vec<walpb::Snapshot>> {
    let dir = dir.as_ref();
    let names = segment::list(dir)?;
    let r = replay(dir, &names, &walpb::Snapshot::default(), false, false)?;
    let commit = r.state.commit;
    Ok(r.snapshots
        .into_iter()
        .filter(|s| s.index <= commit)
        .collect())
}

fn timed_sync(file: &File, path: &Path, metrics: &dyn WalMetrics) -> Result<()> {
    let start = Instant::now();
    file.sync_data().map_err(Error::io("fdatasync", path))?;
    observe_sync(start.elapsed(), path, metrics);
    Ok(())
}

fn observe_sync(took: Duration, path: &Path, metrics: &dyn WalMetrics) {
    metrics.observe_fsync(took);
    if took > SLOW_FSYNC {
        tracing::warn!(
            file = %path.display(),
            took_ms = took.as_millis() as u64,
            expected_ms = SLOW_FSYNC.as_millis() as u64,
            "wal: slow fdatasync; the disk is too slow for etcd (check for other I/O on it, or move the WAL to a dedicated SSD)"
        );
    }
}

/// Takes the directory lock (`LOCK`), failing at once if it is held.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    match fs4::FileExt::try_lock(&f) {
        Ok(()) => Ok(f),
        Err(fs4::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(fs4::TryLockError::Error(e)) => Err(Error::Io {
            op: "lock",
            path,
            source: e,
        }),
    }
}

/// Removes the pipeline's leftover `*.tmp` files (from a crash or an earlier run).
fn remove_stale_tmp_files(dir: &Path) -> Result<()> {
    for ent in fs::read_dir(dir).map_err(Error::io("read dir", dir))? {
        let ent = ent.map_err(Error::io("read dir", dir))?;
        if ent
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".tmp"))
        {
            let p = ent.path();
            fs::remove_file(&p).map_err(Error::io("remove", &p))?;
        }
    }
    Ok(())
}

fn sibling_tmp(dir: &Path) -> PathBuf {
    let mut s = OsString::from(dir.as_os_str());
    s.push(".tmp");
    PathBuf::from(s)
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
