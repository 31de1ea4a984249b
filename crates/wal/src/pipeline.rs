//! The file pipeline: keeps the next segment file created and preallocated.
//!
//! Owns: a background thread and the temporary files `0.tmp` / `1.tmp` it makes in the
//! WAL directory.
//! Invariant: at most one prepared file waits at a time (a rendezvous channel), so the
//! thread never runs ahead; when the pipeline is dropped the thread removes the file
//! it was holding and exits, and `drop` joins it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::segment::preallocate;

/// A prepared, preallocated, empty file and its temporary path.
pub(crate) type Prepared = (File, PathBuf);

/// Hands out preallocated files made on a background thread.
#[derive(Debug)]
pub(crate) struct FilePipeline {
    rx: Option<Receiver<Result<Prepared>>>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl FilePipeline {
    /// Starts preparing files of `size_bytes` in `dir`.
    pub(crate) fn start(dir: &Path, size_bytes: u64) -> Result<FilePipeline> {
        let (tx, rx) = sync_channel::<Result<Prepared>>(0);
        let thread_dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("wal-file-pipeline".into())
            .spawn(move || {
                for count in 0u64.. {
                    let path = thread_dir.join(format!("{}.tmp", count % 2));
                    let made = prepare(&path, size_bytes);
                    let failed = made.is_err();
                    if tx.send(made.map(|f| (f, path.clone()))).is_err() {
                        // The log is closed: nobody will use the file.
                        let _ = std::fs::remove_file(&path);
                        return;
                    }
                    if failed {
                        return;
                    }
                }
            })
            .map_err(Error::io("spawn file pipeline", dir))?;
        Ok(FilePipeline {
            rx: Some(rx),
            thread: Some(thread),
            dir: dir.to_path_buf(),
        })
    }

    /// The next prepared file; blocks only if the thread has not finished making it.
    pub(crate) fn next(&mut self) -> Result<Prepared> {
        let rx = self.rx.as_ref().ok_or_else(|| stopped(&self.dir))?;
        match rx.recv() {
            Ok(prepared) => prepared,
            Err(_) => Err(stopped(&self.dir)),
        }
    }
}

fn stopped(dir: &Path) -> Error {
    Error::Io {
        op: "file pipeline",
        path: dir.to_path_buf(),
        source: std::io::Error::other("the file pipeline thread stopped after an earlier error"),
    }
}

fn prepare(path: &Path, size_bytes: u64) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(Error::io("create", path))?;
    preallocate(&f, size_bytes, path)?;
    Ok(f)
}

impl Drop for FilePipeline {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's pending send fail, so it exits.
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_hands_out_preallocated_files_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = FilePipeline::start(dir.path(), 8192).unwrap();
        let (f, path) = p.next().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8192);
        std::fs::rename(&path, dir.path().join("kept")).unwrap();
        drop(p);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("kept")]);
    }
}
