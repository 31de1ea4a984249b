//! `etcd-lease`: the lessor (not built yet; this crate says what it will own).
//!
//! A lease has an id, a granted TTL, a remaining TTL and a set of attached keys; when it
//! expires or is revoked, its keys are deleted in one transaction. The lessor grants,
//! revokes, renews (keep-alive, on the leader only), attaches and detaches keys, finds
//! expired leases through an ordered structure keyed by expiry (never a scan of every
//! lease), hands them out in bounded batches for the server to revoke through raft, and
//! produces checkpoints of remaining TTLs so a leader change does not reset a long lease.
//! Its clock is injected, so every test runs in virtual time.
