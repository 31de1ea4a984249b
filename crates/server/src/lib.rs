//! etcd-server
