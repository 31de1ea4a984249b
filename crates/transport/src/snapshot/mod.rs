//! Snapshot transfer: a raft snapshot message together with the backend data it refers
//! to, streamed in chunks with a CRC32C over the content.
//!
//! The sender lists the files (a single file or a directory tree) in the header, then
//! streams their content back to back, then a trailer with the checksum; the receiver
//! writes each chunk to its file in a fresh staging directory as it arrives. Neither side
//! holds more than a chunk or two of data in memory (see [`crate::BufferStats`]).

pub(crate) mod receiver;
pub(crate) mod sender;

use std::path::{Component, Path, PathBuf};

/// Where a snapshot's backend data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// No backend data: only the raft message travels (it still reports the result).
    None,
    /// One file (e.g. a database file); staged under its file name.
    File(PathBuf),
    /// A directory tree of regular files (e.g. a RocksDB checkpoint); staged with the
    /// same relative layout.
    Dir(PathBuf),
}

/// Most files a snapshot may list (bounds the header a receiver accepts).
pub(crate) const MAX_SNAPSHOT_FILES: usize = 65_536;

/// Lists the files of a source as (absolute path, '/'-separated relative path, size),
/// in a stable order.
pub(crate) fn list_files(source: &SnapshotSource) -> std::io::Result<Vec<(PathBuf, String, u64)>> {
    match source {
        SnapshotSource::None => Ok(Vec::new()),
        SnapshotSource::File(path) => {
            let size = std::fs::metadata(path)?.len();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| std::io::Error::other("snapshot file name is not UTF-8"))?;
            Ok(vec![(path.clone(), name.to_string(), size)])
        }
        SnapshotSource::Dir(root) => {
            let mut out = Vec::new();
            let mut pending = vec![root.clone()];
            while let Some(dir) = pending.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
                entries.sort_by_key(|e| e.file_name());
                for entry in entries {
                    let path = entry.path();
                    let meta = std::fs::metadata(&path)?;
                    if meta.is_dir() {
                        pending.push(path);
                    } else if meta.is_file() {
                        let rel = path
                            .strip_prefix(root)
                            .map_err(std::io::Error::other)?
                            .components()
                            .map(|c| c.as_os_str().to_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                std::io::Error::other("snapshot file name is not UTF-8")
                            })?
                            .join("/");
                        out.push((path, rel, meta.len()));
                    }
                    if out.len() > MAX_SNAPSHOT_FILES {
                        return Err(std::io::Error::other(
                            "snapshot directory has too many files",
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Turns a relative path received from a peer into a safe path below the staging dir:
/// only normal components, no root, no `..`, not empty.
pub(crate) fn safe_relative_path(rel: &str) -> Option<PathBuf> {
    if rel.is_empty() || rel.len() > 4096 {
        return None;
    }
    let path = Path::new(rel);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_relative_paths_are_refused() {
        assert!(safe_relative_path("../x").is_none());
        assert!(safe_relative_path("/etc/passwd").is_none());
        assert!(safe_relative_path("a/../../b").is_none());
        assert!(safe_relative_path("").is_none());
        assert_eq!(
            safe_relative_path("a/b.sst"),
            Some(PathBuf::from("a/b.sst"))
        );
    }

    #[test]
    fn directory_listing_is_sorted_and_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("b"), b"bb").expect("write");
        std::fs::write(dir.path().join("a"), b"a").expect("write");
        std::fs::write(dir.path().join("sub/c"), b"ccc").expect("write");
        let files = list_files(&SnapshotSource::Dir(dir.path().to_path_buf())).expect("list");
        let rel: Vec<_> = files.iter().map(|(_, r, s)| (r.as_str(), *s)).collect();
        assert_eq!(rel, vec![("a", 1), ("b", 2), ("sub/c", 3)]);
    }
}
