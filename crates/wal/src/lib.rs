//! `etcd-wal`: the write-ahead log and snapshotter (work in progress).
