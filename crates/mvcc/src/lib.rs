//! `etcd-mvcc`: etcd's state machine, a multi-version key-value store on RocksDB.
//!
//! Every change gets a [`Revision`] `(main, sub)`: `main` is bumped once per write
//! transaction, `sub` numbers the changes inside it. Every old version stays readable
//! until it is compacted away. The history lives in a RocksDB [`Backend`] with one column
//! family per etcd bucket ([`Bucket`]): the `key` bucket maps the encoded revision
//! (8-byte big-endian main, `_`, 8-byte big-endian sub, `t` for a deletion) to the encoded
//! `mvccpb.KeyValue`. An in-memory tree index maps each user key to its generations of
//! revisions ([`KeyIndex`]) and is rebuilt from the backend on open.
//!
//! Writes go through a [`Batch`]: the applier opens one, applies a run of committed raft
//! entries as write transactions ([`TxnWrite`], one main revision each), records the
//! [`ConsistentIndex`] (the last applied raft index and term), and commits everything as
//! one RocksDB write. The consistent index is therefore always exactly as new as the data,
//! so after a crash the server replays the raft log from the entry after it. Readers
//! ([`Store::range`], [`Store::read`]) see committed batches only, each at a consistent
//! point in time, and never wait for the writer for more than a bounded index chunk.
//!
//! Semantics are etcd's: an empty store is at revision 1 and the first write gets 2;
//! `version` counts puts since creation and restarts after a delete; reading below the
//! compact revision is [`Error::Compacted`], above the current one [`Error::FutureRev`];
//! compacting at `N` keeps `N` readable. Each write transaction returns its [`Event`]s
//! (with `prev_kv`), and an [`Observer`] may receive every committed batch's events: that
//! is the hook for watchers and the lessor.
//!
//! ```
//! use etcd_mvcc::{ConsistentIndex, RangeOptions, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! assert_eq!(store.current_revision(), 1);
//!
//! // The applier: many entries, one batch, one RocksDB write.
//! let mut batch = store.batch()?;
//! let r = batch.put(b"foo", b"bar", 0)?;
//! assert_eq!(r.revision, 2);
//! let mut txn = batch.txn();
//! txn.put(b"foo", b"baz", 0)?;
//! txn.put(b"zoo", b"1", 0)?;
//! // A transaction reads its own writes.
//! assert_eq!(txn.range(b"foo", b"", RangeOptions::default())?.kvs[0].value, b"baz");
//! let r = txn.end();
//! assert_eq!((r.revision, r.events.len()), (3, 2));
//! batch.set_consistent_index(ConsistentIndex { index: 10, term: 1 });
//! batch.commit()?;
//!
//! // Readers: the current revision, or any revision not yet compacted.
//! let now = store.range(b"a", b"\0", RangeOptions::default())?;
//! assert_eq!((now.count, now.rev), (2, 3));
//! let then = store.range(b"foo", b"", RangeOptions { rev: 2, ..Default::default() })?;
//! assert_eq!(then.kvs[0].value, b"bar");
//!
//! store.compact(3)?.wait()?;
//! assert!(store.range(b"foo", b"", RangeOptions { rev: 2, ..Default::default() }).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
pub mod codec;
pub mod compaction;
pub mod error;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod revision;
pub mod store;
pub mod txn;

pub use backend::{Backend, BackendOptions, Bucket, ConsistentIndex, ReadTx, WriteTx};
pub use compaction::CompactionHandle;
pub use error::{Error, Result};
pub use etcd_proto::mvccpb::{event::EventType, Event, KeyValue};
pub use hash::KeyValueHash;
pub use index::{KeyRange, TreeIndex};
pub use key_index::{Generation, KeyIndex};
pub use revision::Revision;
pub use store::{Observer, RangeOptions, RangeResult, ReadTxn, Store, StoreOptions};
pub use txn::{Batch, TxnResult, TxnWrite};
