//! Small helpers shared by the modules: entry size accounting and size-limited
//! batches. Invariant: [`limit_size`] never empties a non-empty batch.

use etcd_proto::raftpb::Entry;

/// The bytes an entry counts for in size limits (its encoded size, approximated by
/// payload plus a small fixed header so that empty entries still count).
pub(crate) fn entry_size(e: &Entry) -> u64 {
    e.data.len() as u64 + 12
}

/// The payload bytes of entries, as counted by the uncommitted-size limit and the
/// inflight-bytes window.
pub(crate) fn payload_size(ents: &[Entry]) -> u64 {
    ents.iter().map(|e| e.data.len() as u64).sum()
}

/// A bare entry at `index` in `term`, for unit tests of the log modules.
#[cfg(test)]
pub(crate) fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

/// Truncates `ents` so that their total size is at most `max_size`, keeping at
/// least the first entry.
pub(crate) fn limit_size(ents: &mut Vec<Entry>, max_size: u64) {
    if ents.len() <= 1 || max_size == u64::MAX {
        return;
    }
    let mut size = 0u64;
    let mut keep = 0usize;
    for e in ents.iter() {
        size = size.saturating_add(entry_size(e));
        if keep > 0 && size > max_size {
            break;
        }
        keep += 1;
    }
    ents.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_size_keeps_at_least_one_entry() {
        let mut v = vec![Entry::default(), Entry::default()];
        limit_size(&mut v, 0);
        assert_eq!(v.len(), 1);
        let mut v = vec![Entry::default(); 5];
        limit_size(&mut v, 36);
        assert_eq!(v.len(), 3);
    }
}
