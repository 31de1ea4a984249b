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
//! # For the server, the lessor and the watchers
//!
//! - **Applier protocol.** One batch per run of committed entries: `store.batch()`, one
//!   [`TxnWrite`] per entry (compare with [`TxnWrite::range`], then puts/deletes),
//!   [`Batch::put_raw`] for the other buckets, [`Batch::set_consistent_index`] with the
//!   last entry's index and term, [`Batch::commit`], and only then answer the clients.
//!   Keep batches bounded (e.g. at most 10,000 entries): values written in a batch are
//!   held in memory until it commits.
//! - **Durability.** RocksDB's own WAL is written but not fsynced per batch (see
//!   [`backend`]): after a process crash nothing committed is lost; after a machine crash
//!   the backend is a consistent prefix and [`Store::consistent_index`] says where to
//!   resume: replay raft entries with index > `consistent_index().index`. Call
//!   [`Store::sync`] before the raft WAL releases entries (after a raft snapshot).
//! - **Crash of the applier mid-batch.** A batch dropped without commit poisons the store
//!   ([`Error::Poisoned`]): reopen it, which rebuilds the index from the backend.
//! - **Events.** [`TxnResult::events`] per transaction; or an [`Observer`] gets every
//!   committed batch's events in revision order; watchers that start in the past page
//!   through history with [`Store::events`], which never splits a revision.
//! - **Leases.** The lessor attaches/detaches keys from events (a put's `kv.lease` and
//!   `prev_kv.lease`, a delete's `prev_kv.lease`) and rebuilds from
//!   [`Store::leased_keys`] on start.
//! - **Snapshots.** [`Backend::checkpoint`] writes a consistent copy of every bucket that
//!   opens as a store.
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
pub mod events;
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
pub use events::EventPage;
pub use hash::KeyValueHash;
pub use index::{KeyRange, TreeIndex};
pub use key_index::{Generation, KeyIndex};
pub use revision::Revision;
pub use store::{Observer, RangeOptions, RangeResult, ReadTxn, Store, StoreOptions};
pub use txn::{Batch, TxnResult, TxnWrite};
