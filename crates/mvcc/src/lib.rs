//! `etcd-mvcc`: etcd's state machine, a multi-version key-value store on RocksDB.
//!
//! Every change gets a revision `(main, sub)`; every old version stays readable until it
//! is compacted away. Data lives in a RocksDB backend with one column family per etcd
//! bucket (`key`, `meta`, `lease`, `auth`, `members`, `alarm`); an in-memory key index
//! maps each user key to its generations of revisions and is rebuilt from the backend on
//! open. The consistent index (the last applied raft index) is written in the same batch
//! as the data it covers, so the raft WAL stays the log of record.
//!
//! This crate is being built up issue by issue; today it holds the backend smoke test that
//! proves the RocksDB build works on a fresh machine.

#[cfg(test)]
mod tests {
    #[test]
    fn rocksdb_opens_writes_and_reads_back_in_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let db = rocksdb::DB::open_default(dir.path()).unwrap();
        db.put(b"foo", b"bar").unwrap();
        assert_eq!(db.get(b"foo").unwrap().as_deref(), Some(&b"bar"[..]));
    }
}
