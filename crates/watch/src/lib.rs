//! etcd-watch
