//! Hashes of the store for corruption checks between members.
//!
//! Owns `hash_kv`: CRC32-Castagnoli over the `key` bucket's keys and values of every
//! revision up to a revision, skipping revisions that the current compaction will delete
//! (whether or not the physical compaction has got to them yet), so two members with the
//! same history give the same hash at the same revision whatever their compaction
//! progress. Same rules as etcd's `HashKV`. Invariant kept: the hash is computed over one
//! RocksDB snapshot and one compact revision; if a compaction starts meanwhile the hash is
//! recomputed (a bounded number of times).

use crate::backend::Bucket;
use crate::error::{Error, Result};
use crate::revision::{decode_bucket_key, Revision};
use crate::store::Store;

/// How many times `hash_kv` restarts when compactions keep racing with it.
const HASH_KV_ATTEMPTS: usize = 8;

/// The answer of [`Store::hash_kv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueHash {
    /// CRC32-Castagnoli of the history up to `revision`.
    pub hash: u32,
    /// The compact revision the hash was computed under.
    pub compact_revision: i64,
    /// The revision hashed up to.
    pub revision: i64,
    /// The store's current revision when the hash was computed.
    pub current_revision: i64,
}

impl Store {
    /// etcd's `HashKV`: the hash of every key-value revision up to `rev` (0 = current).
    /// [`Error::Compacted`] if `rev` is below the compact revision, [`Error::FutureRev`]
    /// if above the current one.
    pub fn hash_kv(&self, rev: i64) -> Result<KeyValueHash> {
        for _ in 0..HASH_KV_ATTEMPTS {
            let current = self.current_revision();
            let tx = self.backend().read();
            let compact = self.compact_revision();
            if rev > 0 && rev < compact {
                return Err(Error::Compacted);
            }
            if rev > current {
                return Err(Error::FutureRev);
            }
            let at = if rev <= 0 { current } else { rev };
            let keep = self.shared.index.keep(at);
            if self.compact_revision() != compact {
                continue;
            }
            let upper = Revision::new(at + 1, 0);
            let lower = Revision::new(compact + 1, 0);
            let mut crc = crc32c::crc32c(Bucket::Key.name().as_bytes());
            let mut it = tx.scan(Bucket::Key);
            it.seek_to_first();
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                let kr = decode_bucket_key(k)?.rev;
                if kr >= upper {
                    break;
                }
                let skip = kr < lower && !keep.is_empty() && !keep.contains(&kr);
                if !skip {
                    crc = crc32c::crc32c_append(crc, k);
                    crc = crc32c::crc32c_append(crc, v);
                }
                it.next();
            }
            it.status()?;
            return Ok(KeyValueHash {
                hash: crc,
                compact_revision: compact,
                revision: at,
                current_revision: current,
            });
        }
        Err(Error::Compacted)
    }

    /// etcd's backend `Hash`: CRC32-Castagnoli over every bucket (see
    /// [`Backend::hash`](crate::Backend::hash)), with the current revision.
    pub fn hash(&self) -> Result<(u32, i64)> {
        let rev = self.current_revision();
        Ok((self.backend().hash()?, rev))
    }
}
