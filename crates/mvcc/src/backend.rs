//! The RocksDB backend: buckets, batched writes, point-in-time reads, maintenance.
//!
//! Owns the RocksDB handle. Each etcd bucket is a column family ([`Bucket`]). Writers
//! collect many changes in a [`WriteTx`] and commit them as one RocksDB `WriteBatch`
//! (atomic across buckets); readers get a [`ReadTx`] over a RocksDB snapshot, a consistent
//! point in time that later commits do not change.
//!
//! Durability (the decision): RocksDB's own WAL is **on but never synced** per write.
//! The raft WAL is the log of record and is fsynced by the server; the backend only has to
//! be a consistent *prefix* of the applied log, never ahead of it. With RocksDB's WAL on:
//! - a process crash (kill -9) loses nothing committed: the WAL is in the OS page cache;
//! - a machine crash may lose the unsynced tail, but RocksDB recovers to a point in time
//!   at a `WriteBatch` boundary, and since the consistent index is written in the same
//!   batch as the data it covers, the recovered consistent index names exactly the raft
//!   entries to replay.
//!
//! The server must call [`Backend::sync`] before it releases raft WAL entries (after a
//! raft snapshot): entries at or below the consistent index are then on disk here.
//! Invariant kept: every commit is one atomic `WriteBatch`.

use std::path::{Path, PathBuf};

use rocksdb::{
    checkpoint::Checkpoint, BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily,
    ColumnFamilyDescriptor, CompactOptions, DBRawIterator, Options, ReadOptions,
    SnapshotWithThreadMode, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};

/// An etcd bucket, stored as a RocksDB column family of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// MVCC history: revision -> encoded `mvccpb.KeyValue`.
    Key,
    /// Store metadata: consistent index, term, compaction progress.
    Meta,
    /// Leases.
    Lease,
    /// Auth enabled flag and revision.
    Auth,
    /// Auth users.
    AuthUsers,
    /// Auth roles.
    AuthRoles,
    /// Cluster members.
    Members,
    /// Removed cluster members.
    MembersRemoved,
    /// Alarms.
    Alarm,
    /// Cluster version and the like.
    Cluster,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 10] = [
        Bucket::Key,
        Bucket::Meta,
        Bucket::Lease,
        Bucket::Auth,
        Bucket::AuthUsers,
        Bucket::AuthRoles,
        Bucket::Members,
        Bucket::MembersRemoved,
        Bucket::Alarm,
        Bucket::Cluster,
    ];

    /// The bucket's name, as etcd names it.
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::Key => "key",
            Bucket::Meta => "meta",
            Bucket::Lease => "lease",
            Bucket::Auth => "auth",
            Bucket::AuthUsers => "authUsers",
            Bucket::AuthRoles => "authRoles",
            Bucket::Members => "members",
            Bucket::MembersRemoved => "members_removed",
            Bucket::Alarm => "alarm",
            Bucket::Cluster => "cluster",
        }
    }
}

/// Meta bucket key of the consistent index (8-byte big-endian).
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Meta bucket key of the raft term of the consistent index (8-byte big-endian).
pub const META_TERM: &[u8] = b"term";
/// Meta bucket key of the last scheduled compaction (an encoded revision).
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
/// Meta bucket key of the last finished compaction (an encoded revision).
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

/// The last raft entry applied to the backend: its index and term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct ConsistentIndex {
    /// Raft log index of the last applied entry.
    pub index: u64,
    /// Raft term of that entry.
    pub term: u64,
}

/// Tuning of the RocksDB backend.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Size of the shared block cache in bytes.
    pub block_cache_bytes: usize,
    /// Size of one memtable of the `key` bucket in bytes.
    pub write_buffer_bytes: usize,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

/// The RocksDB database with one column family per [`Bucket`].
pub struct Backend {
    db: DB,
    path: PathBuf,
    write_opts: WriteOptions,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("path", &self.path).finish()
    }
}

impl Backend {
    /// Opens (creating if needed) the backend in directory `path`.
    pub fn open(path: impl AsRef<Path>, opts: &BackendOptions) -> Result<Backend> {
        let path = path.as_ref().to_path_buf();
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Writes are not WAL-synced; this keeps the WAL at most this large before memtables
        // are flushed so that recovery after a crash stays short.
        db_opts.set_max_total_wal_size(256 << 20);
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let cfs = Bucket::ALL.iter().map(|b| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            cf_opts.set_block_based_table_factory(&table);
            if *b == Bucket::Key {
                cf_opts.set_write_buffer_size(opts.write_buffer_bytes);
            } else {
                cf_opts.set_write_buffer_size(4 << 20);
            }
            ColumnFamilyDescriptor::new(b.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(false);
        write_opts.disable_wal(false);
        Ok(Backend {
            db,
            path,
            write_opts,
        })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cf(&self, bucket: Bucket) -> &ColumnFamily {
        self.db
            .cf_handle(bucket.name())
            .expect("every bucket's column family is created on open")
    }

    /// Reads one value as of the latest commit.
    pub fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(bucket), key)?)
    }

    /// A read transaction over a consistent point in time (a RocksDB snapshot).
    pub fn read(&self) -> ReadTx<'_> {
        ReadTx {
            backend: self,
            snapshot: self.db.snapshot(),
        }
    }

    /// A new, empty write transaction; nothing is visible until [`WriteTx::commit`].
    /// For a backend owned by a [`Store`](crate::Store), write through the applier's
    /// [`Batch`](crate::Batch) instead (`put_raw`), so the change commits atomically with
    /// the entries it belongs to and the consistent index; never write the `key` bucket
    /// here behind the store's back.
    pub fn write(&self) -> WriteTx<'_> {
        WriteTx {
            backend: self,
            batch: WriteBatch::default(),
        }
    }

    /// Forces everything committed so far to stable storage (fsyncs RocksDB's WAL).
    /// Call before the raft WAL releases entries at or below the consistent index.
    pub fn sync(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Flushes every bucket's memtable to SST files (done on a clean close so that the
    /// next open has no RocksDB WAL to replay).
    pub fn flush(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = Bucket::ALL.iter().map(|b| self.cf(*b)).collect();
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// The consistent index stored in the meta bucket (zero when none was ever written).
    pub fn consistent_index(&self) -> Result<ConsistentIndex> {
        Ok(ConsistentIndex {
            index: read_u64(
                self.get(Bucket::Meta, META_CONSISTENT_INDEX)?,
                "consistent index",
            )?,
            term: read_u64(self.get(Bucket::Meta, META_TERM)?, "term")?,
        })
    }

    fn sum_property(&self, name: &str) -> Result<u64> {
        let mut total = 0u64;
        for b in Bucket::ALL {
            total += self
                .db
                .property_int_value_cf(self.cf(b), name)?
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// Bytes the backend occupies: SST files plus memtables.
    pub fn size_bytes(&self) -> Result<u64> {
        Ok(self.sum_property("rocksdb.total-sst-files-size")?
            + self.sum_property("rocksdb.size-all-mem-tables")?)
    }

    /// Bytes of live data (RocksDB's estimate): what [`Backend::defrag`] would shrink
    /// [`Backend::size_bytes`] towards.
    pub fn size_in_use_bytes(&self) -> Result<u64> {
        Ok(self.sum_property("rocksdb.estimate-live-data-size")?
            + self.sum_property("rocksdb.size-all-mem-tables")?)
    }

    /// Defragments: flushes memtables and fully compacts every bucket, dropping deleted
    /// and overwritten entries from disk.
    pub fn defrag(&self) -> Result<()> {
        let mut opts = CompactOptions::default();
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        for b in Bucket::ALL {
            let cf = self.cf(b);
            self.db.flush_cf(cf)?;
            self.db
                .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }

    /// Writes a consistent checkpoint of the whole backend (every bucket at one point in
    /// time) into the new directory `dir`, which can be opened as a backend: for
    /// snapshots and for sending the state to a follower.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// CRC32-Castagnoli over every bucket (name, then each key and value in order), as
    /// etcd's backend hash; the consistent index and term are left out since members
    /// apply the same data at different raft indexes.
    pub fn hash(&self) -> Result<u32> {
        let tx = self.read();
        let mut buckets = Bucket::ALL;
        buckets.sort_by_key(|b| b.name());
        let mut crc = 0u32;
        for b in buckets {
            crc = crc32c::crc32c_append(crc, b.name().as_bytes());
            let mut it = tx.iter(b);
            it.seek_to_first();
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                let ignored = b == Bucket::Meta && (k == META_CONSISTENT_INDEX || k == META_TERM);
                if !ignored {
                    crc = crc32c::crc32c_append(crc, k);
                    crc = crc32c::crc32c_append(crc, v);
                }
                it.next();
            }
            it.status()?;
        }
        Ok(crc)
    }
}

fn read_u64(bytes: Option<Vec<u8>>, what: &'static str) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => {
            let arr: [u8; 8] = b
                .as_slice()
                .try_into()
                .map_err(|_| Error::corrupt(what, format!("{} bytes, want 8", b.len())))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

/// A read transaction: every read sees the backend as of the moment it was created.
pub struct ReadTx<'a> {
    backend: &'a Backend,
    snapshot: SnapshotWithThreadMode<'a, DB>,
}

impl ReadTx<'_> {
    /// Reads one value.
    pub fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snapshot.get_cf(self.backend.cf(bucket), key)?)
    }

    /// Reads many values of one bucket in one call; results are in the order of `keys`.
    pub fn multi_get<K: AsRef<[u8]>>(
        &self,
        bucket: Bucket,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        let out = self.backend.db.batched_multi_get_cf_opt(
            self.backend.cf(bucket),
            keys.iter().map(|k| k.as_ref()),
            false,
            &opts,
        );
        out.into_iter()
            .map(|r| r.map(|v| v.map(|s| s.to_vec())).map_err(Error::from))
            .collect()
    }

    /// A raw iterator over one bucket (unpositioned: seek first).
    pub fn iter(&self, bucket: Bucket) -> DBRawIterator<'_> {
        self.snapshot
            .raw_iterator_cf_opt(self.backend.cf(bucket), ReadOptions::default())
    }

    /// A raw iterator for a long sequential scan (restore, compaction, hashing): reads
    /// ahead and does not fill the block cache, so a scan does not evict the hot data.
    pub fn scan(&self, bucket: Bucket) -> DBRawIterator<'_> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        self.snapshot
            .raw_iterator_cf_opt(self.backend.cf(bucket), opts)
    }
}

/// A write transaction: changes collected in one RocksDB `WriteBatch`.
pub struct WriteTx<'a> {
    backend: &'a Backend,
    batch: WriteBatch,
}

impl WriteTx<'_> {
    /// Sets `key` to `value` in `bucket`.
    pub fn put(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.backend.cf(bucket), key, value);
    }

    /// Deletes `key` from `bucket`.
    pub fn delete(&mut self, bucket: Bucket, key: &[u8]) {
        self.batch.delete_cf(self.backend.cf(bucket), key);
    }

    /// Records the consistent index in the meta bucket, in this batch.
    pub fn set_consistent_index(&mut self, ci: ConsistentIndex) {
        self.put(Bucket::Meta, META_CONSISTENT_INDEX, &ci.index.to_be_bytes());
        self.put(Bucket::Meta, META_TERM, &ci.term.to_be_bytes());
    }

    /// Number of changes collected.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Applies every collected change atomically.
    pub fn commit(self) -> Result<()> {
        self.backend
            .db
            .write_opt(self.batch, &self.backend.write_opts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_writes_survive_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
            let mut tx = b.write();
            tx.put(Bucket::Lease, b"l1", b"v1");
            tx.set_consistent_index(ConsistentIndex { index: 7, term: 2 });
            tx.commit().unwrap();
        }
        let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
        assert_eq!(b.get(Bucket::Lease, b"l1").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(
            b.consistent_index().unwrap(),
            ConsistentIndex { index: 7, term: 2 }
        );
    }

    #[test]
    fn read_tx_sees_a_fixed_point_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
        let mut tx = b.write();
        tx.put(Bucket::Members, b"m", b"1");
        tx.commit().unwrap();
        let read = b.read();
        let mut tx = b.write();
        tx.put(Bucket::Members, b"m", b"2");
        tx.delete(Bucket::Members, b"m");
        tx.put(Bucket::Alarm, b"a", b"x");
        tx.commit().unwrap();
        assert_eq!(
            read.get(Bucket::Members, b"m").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(read.get(Bucket::Alarm, b"a").unwrap(), None);
        assert_eq!(b.get(Bucket::Members, b"m").unwrap(), None);
    }

    #[test]
    fn uncommitted_write_tx_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
        let mut tx = b.write();
        tx.put(Bucket::Auth, b"k", b"v");
        drop(tx);
        assert_eq!(b.get(Bucket::Auth, b"k").unwrap(), None);
    }

    #[test]
    fn checkpoint_opens_as_a_backend_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path().join("db"), &BackendOptions::default()).unwrap();
        let mut tx = b.write();
        for i in 0..100u32 {
            tx.put(Bucket::Key, &i.to_be_bytes(), b"value");
        }
        tx.commit().unwrap();
        b.checkpoint(dir.path().join("cp")).unwrap();
        let cp = Backend::open(dir.path().join("cp"), &BackendOptions::default()).unwrap();
        assert_eq!(cp.hash().unwrap(), b.hash().unwrap());
    }

    #[test]
    fn defrag_shrinks_a_backend_of_deleted_data() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
        let value = vec![7u8; 1024];
        let mut tx = b.write();
        for i in 0..2000u32 {
            tx.put(Bucket::Key, &i.to_be_bytes(), &value);
        }
        tx.commit().unwrap();
        b.defrag().unwrap();
        let full = b.size_bytes().unwrap();
        let mut tx = b.write();
        for i in 0..2000u32 {
            tx.delete(Bucket::Key, &i.to_be_bytes());
        }
        tx.commit().unwrap();
        b.defrag().unwrap();
        let after = b.size_bytes().unwrap();
        assert!(after < full / 2, "size {full} -> {after}");
        assert!(b.size_in_use_bytes().unwrap() <= after + 1);
    }

    #[test]
    fn corrupt_consistent_index_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path(), &BackendOptions::default()).unwrap();
        let mut tx = b.write();
        tx.put(Bucket::Meta, META_CONSISTENT_INDEX, b"abc");
        tx.commit().unwrap();
        assert!(matches!(b.consistent_index(), Err(Error::Corrupt { .. })));
    }
}
