//! `etcd-transport`: peer messaging between members (not built yet; this crate says what
//! it will own).
//!
//! Following etcd's rafthttp design, every peer gets a long-lived stream for small,
//! frequent raft messages (appends, heartbeats, votes) and a pipeline of short requests
//! for large ones (snapshots, which travel with the backend data) and as fallback while
//! the stream is down. Queues are bounded: a full queue drops the message and reports the
//! peer unreachable to raft, so a slow peer never blocks the raft loop.
