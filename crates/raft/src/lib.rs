//! `etcd-raft`: the Raft consensus core that etcd's server drives (work in progress).
