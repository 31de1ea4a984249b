//! etcd-lease
