//! `etcd-watch`: the watchable store (not built yet; this crate says what it will own).
//!
//! The multi-version store plus watchers. Watchers whose start revision is current sit in
//! the synced group and are matched against every write through an interval structure;
//! watchers that start in the past sit in the unsynced group and are caught up from the
//! backend in bounded batches; a watcher whose channel is full becomes a victim and is
//! retried, never dropped. Events reach each watcher ordered by revision, with no gaps,
//! a revision never split across responses unless fragmenting was asked for.
