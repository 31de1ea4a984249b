//! `etcd-lease`: etcd's lessor, the keeper of leases.
//!
//! A lease has an id, a granted TTL (seconds), a remaining TTL and a set of attached keys;
//! when it expires or is revoked, its keys are deleted in one transaction (one revision).
//! The [`Lessor`] is replicated state: every member applies grants, revokes and
//! checkpoints in raft order ([`Lessor::grant`], [`Lessor::revoke`],
//! [`Lessor::checkpoint`], each writing the `lease` bucket in the applier's
//! [`etcd_mvcc::Batch`]), and follows which keys belong to which lease from the events of
//! committed writes ([`Lessor::apply_events`]). Time, however, belongs to the leader
//! alone: only the **primary** lessor ([`Lessor::promote`] when this member becomes
//! leader, [`Lessor::demote`] when it stops) gives leases deadlines, accepts keep-alives
//! ([`Lessor::renew`]) and finds expired leases. It does not revoke them itself: it hands
//! them out in bounded batches ([`Lessor::expired`]) for the server to revoke through
//! raft, and hands the same lease out again after `revoke_retry` if the revoke was lost.
//! Expired leases are found through a queue ordered by deadline, never a scan of every
//! lease. So that a leader change does not give a long lease its full TTL again, the
//! primary periodically produces checkpoints of remaining TTLs
//! ([`Lessor::due_checkpoints`]) that the server replicates; a new primary starts each
//! lease from its last checkpoint plus a grace period. Leases are stored in the backend as
//! etcd stores them and reloaded by [`Lessor::recover`]. The clock is injected
//! ([`Clock`]), so every test runs in virtual time ([`ManualClock`]).
//!
//! Where this differs from etcd v3.5: checkpoints are always persisted (etcd v3.6 does
//! that; v3.5 only with a flag), a lease handed out for checkpointing is rescheduled at
//! once (so a lost checkpoint proposal does not stop its checkpoints), renewing an expired
//! lease answers "lease not found" at once (etcd waits for the pending revoke and then
//! answers the same), and `promote` does not spread the expiries of piled-up leases over
//! time (the server's bounded `expired` batches limit the revoke rate instead).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use etcd_lease::{Lessor, LessorConfig, ManualClock};
//! use etcd_mvcc::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let clock = Arc::new(ManualClock::new());
//! let lessor = Lessor::new(LessorConfig::default(), clock.clone());
//! lessor.promote(Duration::ZERO); // this member is the leader
//!
//! // The applier: grant a lease and put a key attached to it, in one batch.
//! let mut batch = store.batch()?;
//! lessor.grant(&mut batch, 7, 10)?;
//! let put = batch.put(b"job/1", b"running", 7)?;
//! lessor.apply_events(&put.events);
//! batch.commit()?;
//!
//! // Ten seconds later nobody renewed it: the leader proposes a revoke...
//! clock.advance(Duration::from_secs(10));
//! assert_eq!(lessor.expired(100), vec![7]);
//! // ...and every member applies it: the key is deleted in one revision.
//! let mut batch = store.batch()?;
//! let revoked = lessor.revoke(&mut batch, 7)?;
//! batch.commit()?;
//! assert_eq!(revoked.events.len(), 1);
//! assert!(lessor.lookup(7).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod clock;
pub mod error;
pub mod lease;
pub mod lessor;
mod persist;
mod queue;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LeaseError;
pub use lease::{LeaseInfo, LessorConfig, TimeToLive, MAX_LEASE_TTL, NO_LEASE};
pub use lessor::Lessor;
