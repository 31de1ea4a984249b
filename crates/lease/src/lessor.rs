//! The lessor: every lease of this member, and the primary's expiry and checkpoint duty.
//!
//! Owns the lease map, the expiry queue and the checkpoint queue behind one mutex. Two
//! kinds of callers use it:
//! - the **applier**, on every member in raft order: [`Lessor::grant`], [`Lessor::revoke`],
//!   [`Lessor::checkpoint`] (each writes the lease bucket in the applier's open
//!   [`Batch`], so lease records commit atomically with the data and the consistent
//!   index) and [`Lessor::apply_events`] (key attachment from committed puts/deletes);
//! - the **leader**: [`Lessor::promote`]/[`Lessor::demote`], [`Lessor::renew`], and the
//!   periodic [`Lessor::expired`]/[`Lessor::due_checkpoints`], whose answers the server
//!   proposes through raft (`LeaseRevoke`, `LeaseCheckpoint`).
//!
//! Invariants kept:
//! - only the primary has deadlines; a follower's leases never expire by themselves;
//! - every lease with a deadline is in the expiry queue exactly once, at its deadline or,
//!   once handed out as expired, at the time it is due to be handed out again;
//! - a revoke deletes the attached keys in key order in one transaction (one revision),
//!   so every member computes the same store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_mvcc::{Batch, Event, EventType, Store, TxnResult};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::error::LeaseError;
use crate::lease::{
    deadline_after, Lease, LeaseInfo, LessorConfig, TimeToLive, MAX_LEASE_TTL, NO_LEASE,
};
use crate::persist;
use crate::queue::DeadlineQueue;

/// The smallest pause before an expired lease is handed out again, whatever the config.
const MIN_REVOKE_RETRY: Duration = Duration::from_millis(1);

/// etcd's lessor. `Send + Sync`; share it with `Arc`; every method takes `&self`.
pub struct Lessor {
    cfg: LessorConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Lease>,
    primary: bool,
    /// Deadlines of the primary's leases (or their next hand-out time once expired).
    expiry: DeadlineQueue,
    /// When each long lease is next due for a checkpoint (primary only).
    checkpoints: DeadlineQueue,
    /// Leases renewed after a checkpoint: their replicated remaining TTL must be cleared
    /// (a checkpoint of 0), or a new leader would cut the renewed lease short.
    clears: BTreeSet<i64>,
}

impl std::fmt::Debug for Lessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Lessor")
            .field("leases", &st.leases.len())
            .field("primary", &st.primary)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Lessor {
    /// An empty, non-primary lessor. Call [`Lessor::recover`] to load the leases of a store.
    pub fn new(cfg: LessorConfig, clock: Arc<dyn Clock>) -> Lessor {
        Lessor {
            cfg,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LessorConfig {
        &self.cfg
    }

    /// Replaces every lease with those stored in `store`'s lease bucket and attaches each
    /// live key to its lease (from the keys' `lease` field). Records with a TTL below the
    /// minimum are raised to it, as etcd does. A key naming a missing lease is logged and
    /// left unattached. If this lessor is primary, the loaded leases get deadlines at once
    /// (no grace); otherwise they wait for [`Lessor::promote`].
    pub fn recover(&self, store: &Store) -> Result<(), LeaseError> {
        let records = persist::load_all(store)?;
        let leased_keys = store.leased_keys()?;
        let now = self.clock.now();
        let mut st = self.state.lock();
        let primary = st.primary;
        *st = State {
            primary,
            ..State::default()
        };
        for r in records {
            let ttl = r.ttl.max(self.cfg.min_ttl);
            st.leases
                .insert(r.id, Lease::new(r.id, ttl, r.remaining_ttl));
        }
        for (key, id) in leased_keys {
            match st.leases.get_mut(&id) {
                Some(l) => {
                    l.keys.insert(key);
                }
                None => tracing::warn!(
                    lease_id = id,
                    key = %String::from_utf8_lossy(&key),
                    "key is attached to a lease that does not exist; it will not expire"
                ),
            }
        }
        if primary {
            let ids: Vec<i64> = st.leases.keys().copied().collect();
            for id in ids {
                st.refresh(id, now, Duration::ZERO, &self.cfg);
            }
        }
        tracing::debug!(leases = st.leases.len(), primary, "lessor recovered");
        Ok(())
    }

    // ---- apply path (every member, raft order) ----

    /// Grants lease `id` with `ttl` seconds, writing its record into `batch`.
    /// `id == 0` lets the lessor pick a free id; the pick depends only on replicated state
    /// (the batch's revision and the lease set), so every member picks the same one.
    /// A `ttl` below the minimum is raised to it. Errors: [`LeaseError::TtlTooLarge`]
    /// above [`MAX_LEASE_TTL`], [`LeaseError::Exists`].
    pub fn grant(&self, batch: &mut Batch<'_>, id: i64, ttl: i64) -> Result<LeaseInfo, LeaseError> {
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge);
        }
        let now = self.clock.now();
        let mut st = self.state.lock();
        let id = if id == NO_LEASE {
            st.pick_id(batch.revision())
        } else {
            id
        };
        if st.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let lease = Lease::new(id, ttl.max(self.cfg.min_ttl), 0);
        persist::put(batch, &lease)?;
        st.leases.insert(id, lease);
        if st.primary {
            st.refresh(id, now, Duration::ZERO, &self.cfg);
        }
        let info = st.leases.get(&id).map(|l| l.info(now));
        info.ok_or(LeaseError::NotFound)
    }

    /// Revokes lease `id`: deletes every attached key in one write transaction (one
    /// revision, keys in key order; no revision if it has no keys), then its record, all
    /// in `batch`. Returns the transaction's result (its delete events go to the watchers
    /// and back to [`Lessor::apply_events`] like any other). Errors: [`LeaseError::NotFound`];
    /// [`LeaseError::Store`] if a delete fails, after which the batch must not be committed.
    pub fn revoke(&self, batch: &mut Batch<'_>, id: i64) -> Result<TxnResult, LeaseError> {
        let mut st = self.state.lock();
        let Some(lease) = st.leases.get(&id) else {
            return Err(LeaseError::NotFound);
        };
        let mut txn = batch.txn();
        for key in &lease.keys {
            txn.delete_range(key, b"")?;
        }
        let result = txn.end();
        persist::delete(batch, id)?;
        st.leases.remove(&id);
        st.expiry.remove(id);
        st.checkpoints.remove(id);
        st.clears.remove(&id);
        Ok(result)
    }

    /// Records a checkpoint of lease `id`'s remaining TTL (seconds; 0 clears it) and
    /// persists it in `batch`, so a new leader, or this member after a restart, starts the
    /// lease from there instead of from its full TTL. The current deadline does not change.
    /// An unknown id is ignored, as etcd does.
    pub fn checkpoint(
        &self,
        batch: &mut Batch<'_>,
        id: i64,
        remaining_ttl: i64,
    ) -> Result<(), LeaseError> {
        let mut st = self.state.lock();
        let Some(lease) = st.leases.get_mut(&id) else {
            return Ok(());
        };
        let mut updated = lease.clone();
        updated.remaining_ttl = remaining_ttl.max(0);
        persist::put(batch, &updated)?;
        lease.remaining_ttl = updated.remaining_ttl;
        Ok(())
    }

    /// Follows committed changes of keys: a put attaches its key to `kv.lease` and detaches
    /// it from `prev_kv.lease` when that differs; a delete detaches the key from
    /// `prev_kv.lease`. Leases that do not exist are ignored. The applier calls this with
    /// every write transaction's events right after the transaction ends (before the next
    /// entry), so a revoke later in the same batch sees the keys.
    pub fn apply_events(&self, events: &[Event]) {
        let mut st = self.state.lock();
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let prev = ev.prev_kv.as_ref().map_or(NO_LEASE, |p| p.lease);
            let new = if ev.r#type == EventType::Put as i32 {
                kv.lease
            } else {
                NO_LEASE
            };
            if prev != NO_LEASE && prev != new {
                if let Some(l) = st.leases.get_mut(&prev) {
                    l.keys.remove(&kv.key);
                }
            }
            if new != NO_LEASE {
                if let Some(l) = st.leases.get_mut(&new) {
                    l.keys.insert(kv.key.clone());
                }
            }
        }
    }

    /// Attaches `keys` to lease `id`. Error: [`LeaseError::NotFound`].
    pub fn attach(&self, id: i64, keys: &[&[u8]]) -> Result<(), LeaseError> {
        let mut st = self.state.lock();
        let lease = st.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        lease.keys.extend(keys.iter().map(|k| k.to_vec()));
        Ok(())
    }

    /// Detaches `keys` from lease `id`. Error: [`LeaseError::NotFound`].
    pub fn detach(&self, id: i64, keys: &[&[u8]]) -> Result<(), LeaseError> {
        let mut st = self.state.lock();
        let lease = st.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        for k in keys {
            lease.keys.remove(*k);
        }
        Ok(())
    }

    // ---- leader only ----

    /// Makes this lessor primary (this member became leader): every lease gets a deadline
    /// of now + `extend` + its remaining TTL (the checkpointed one if any, else the granted
    /// TTL). etcd's server passes the election timeout as `extend`, so no lease expires
    /// before clients had a chance to find the new leader and renew.
    pub fn promote(&self, extend: Duration) {
        let now = self.clock.now();
        let mut st = self.state.lock();
        st.primary = true;
        let ids: Vec<i64> = st.leases.keys().copied().collect();
        for id in ids {
            st.refresh(id, now, extend, &self.cfg);
        }
        tracing::info!(
            leases = st.leases.len(),
            extend_ms = extend.as_millis() as u64,
            "lessor promoted"
        );
    }

    /// Makes this lessor a follower: no deadlines, nothing expires, nothing to checkpoint.
    pub fn demote(&self) {
        let mut st = self.state.lock();
        st.primary = false;
        for l in st.leases.values_mut() {
            l.deadline = None;
        }
        st.expiry.clear();
        st.checkpoints.clear();
        st.clears.clear();
    }

    /// Whether this lessor is primary.
    pub fn is_primary(&self) -> bool {
        self.state.lock().primary
    }

    /// Keep-alive: restarts lease `id`'s full TTL and returns it (seconds). Errors:
    /// [`LeaseError::NotPrimary`] on a follower (forward to the leader);
    /// [`LeaseError::NotFound`] for an unknown lease, and for one that has already expired
    /// (its revoke is pending; etcd waits for the revoke and then answers the same).
    /// If the lease was checkpointed, a checkpoint clearing its remaining TTL is queued
    /// for [`Lessor::due_checkpoints`].
    pub fn renew(&self, id: i64) -> Result<i64, LeaseError> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        if !st.primary {
            return Err(LeaseError::NotPrimary);
        }
        let lease = st.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if lease.deadline.is_some_and(|d| d <= now) {
            return Err(LeaseError::NotFound);
        }
        let ttl = lease.ttl;
        let deadline = deadline_after(now, ttl, Duration::ZERO);
        lease.deadline = deadline;
        let clear = lease.remaining_ttl > 0;
        match deadline {
            Some(d) => st.expiry.schedule(id, d),
            None => st.expiry.remove(id),
        }
        if clear {
            st.clears.insert(id);
        }
        if !st.checkpoints.contains(id) {
            st.schedule_checkpoint(id, now, &self.cfg);
        }
        Ok(ttl)
    }

    /// Leases whose deadline has passed, earliest first, at most
    /// `min(max, expired_batch)` of them, for the server to revoke through raft. A lease
    /// handed out here is not handed out again before `revoke_retry` has passed, and is
    /// handed out again after that if it still exists (its revoke failed or was lost).
    /// Empty unless primary. Cost: `O(log n)` per lease returned.
    pub fn expired(&self, max: usize) -> Vec<i64> {
        let max = max.min(self.cfg.expired_batch);
        let now = self.clock.now();
        let retry_at = now
            .checked_add(self.cfg.revoke_retry.max(MIN_REVOKE_RETRY))
            .unwrap_or(now);
        let mut st = self.state.lock();
        let mut out = Vec::new();
        if !st.primary {
            return out;
        }
        while out.len() < max {
            let Some((_, id)) = st.expiry.pop_due(now) else {
                break;
            };
            let Some(deadline) = st.leases.get(&id).and_then(|l| l.deadline) else {
                continue;
            };
            if deadline > now {
                // Not expired after all (cannot happen while renew reschedules): requeue.
                st.expiry.schedule(id, deadline);
                continue;
            }
            out.push(id);
            if retry_at > now {
                st.expiry.schedule(id, retry_at);
            }
        }
        out
    }

    /// Checkpoints that are due: `(lease id, remaining TTL in seconds)`, at most
    /// `min(max, checkpoint_batch)`, for the server to replicate in one
    /// `LeaseCheckpoint` raft entry and apply with [`Lessor::checkpoint`]. First come the
    /// clears queued by renewals (remaining TTL 0), then leases whose checkpoint time has
    /// come (each long lease every `checkpoint_interval`, while it has more than that left).
    /// Empty unless primary.
    pub fn due_checkpoints(&self, max: usize) -> Vec<(i64, i64)> {
        let max = max.min(self.cfg.checkpoint_batch);
        let now = self.clock.now();
        let mut st = self.state.lock();
        let mut out = Vec::new();
        if !st.primary {
            return out;
        }
        while out.len() < max {
            let Some(id) = st.clears.pop_first() else {
                break;
            };
            if st.leases.contains_key(&id) {
                out.push((id, 0));
            }
        }
        while out.len() < max {
            let Some((_, id)) = st.checkpoints.pop_due(now) else {
                break;
            };
            let Some(lease) = st.leases.get(&id) else {
                continue;
            };
            let Some(deadline) = lease.deadline.filter(|d| *d > now) else {
                continue; // expired: it is being revoked
            };
            let left = deadline - now;
            let remaining = i64::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                .unwrap_or(i64::MAX);
            let ttl = lease.ttl;
            st.schedule_checkpoint(id, now, &self.cfg);
            if remaining < ttl {
                out.push((id, remaining));
            }
        }
        out
    }

    // ---- queries ----

    /// The lease `id`, if it exists.
    pub fn lookup(&self, id: i64) -> Option<LeaseInfo> {
        let now = self.clock.now();
        self.state.lock().leases.get(&id).map(|l| l.info(now))
    }

    /// Every lease, soonest expiry first (as etcd lists them), then by id.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let now = self.clock.now();
        let st = self.state.lock();
        let mut ls: Vec<(Option<Instant>, LeaseInfo)> = st
            .leases
            .values()
            .map(|l| (l.deadline, l.info(now)))
            .collect();
        drop(st);
        ls.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.cmp(&y).then(a.1.id.cmp(&b.1.id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.id.cmp(&b.1.id),
        });
        ls.into_iter().map(|(_, i)| i).collect()
    }

    /// The answer to `LeaseTimeToLive` for lease `id`, with its keys if asked.
    pub fn time_to_live(&self, id: i64, with_keys: bool) -> Option<TimeToLive> {
        let now = self.clock.now();
        let st = self.state.lock();
        let l = st.leases.get(&id)?;
        Some(TimeToLive {
            id,
            ttl: l.remaining_secs(now),
            granted_ttl: l.ttl,
            keys: if with_keys {
                l.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.state.lock().leases.len()
    }

    /// Whether there are no leases.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Gives lease `id` a deadline of now + extend + its effective TTL and schedules its
    /// checkpoint (primary only).
    fn refresh(&mut self, id: i64, now: Instant, extend: Duration, cfg: &LessorConfig) {
        let Some(lease) = self.leases.get_mut(&id) else {
            return;
        };
        let deadline = deadline_after(now, lease.effective_ttl(), extend);
        lease.deadline = deadline;
        match deadline {
            Some(d) => self.expiry.schedule(id, d),
            None => self.expiry.remove(id),
        }
        self.schedule_checkpoint(id, now, cfg);
    }

    /// Schedules lease `id`'s next checkpoint at now + interval if it will still be alive
    /// then; otherwise unschedules it.
    fn schedule_checkpoint(&mut self, id: i64, now: Instant, cfg: &LessorConfig) {
        let at = now.checked_add(cfg.checkpoint_interval);
        let alive_then = match (self.leases.get(&id).map(|l| l.deadline), at) {
            (Some(Some(deadline)), Some(at)) => deadline > at,
            // A lease without deadline on the primary lives beyond Instant's range.
            (Some(None), Some(_)) => self.primary,
            _ => false,
        };
        match at {
            Some(at) if alive_then && !cfg.checkpoint_interval.is_zero() => {
                self.checkpoints.schedule(id, at)
            }
            _ => self.checkpoints.remove(id),
        }
    }

    /// A free, non-zero lease id chosen from replicated state only.
    fn pick_id(&self, revision: i64) -> i64 {
        let mut seed = (revision as u64) ^ (self.leases.len() as u64).rotate_left(32);
        loop {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // Positive ids, as etcd's generator gives (the top bit is cleared).
            let id = (z & (i64::MAX as u64)) as i64;
            if id != NO_LEASE && !self.leases.contains_key(&id) {
                return id;
            }
        }
    }
}
