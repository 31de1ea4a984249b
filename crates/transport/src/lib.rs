//! etcd-transport
