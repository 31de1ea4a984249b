//! The lessor's promises, in virtual time: expiry order and bounds, retries, renewals,
//! checkpoints across a leader change, revoke semantics, persistence and recovery.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use etcd_lease::{LeaseError, LeaseInfo, Lessor, LessorConfig, ManualClock, MAX_LEASE_TTL};
use etcd_mvcc::{RangeOptions, Store};

const SEC: Duration = Duration::from_secs(1);

/// One member: a store, a lessor and the (shared, virtual) clock.
struct Member {
    _dir: tempfile::TempDir,
    store: Store,
    lessor: Lessor,
}

impl Member {
    fn new(clock: &Arc<ManualClock>, cfg: LessorConfig) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lessor = Lessor::new(cfg, clock.clone());
        Member {
            _dir: dir,
            store,
            lessor,
        }
    }

    fn grant(&self, id: i64, ttl: i64) -> Result<LeaseInfo, LeaseError> {
        let mut b = self.store.batch().unwrap();
        let r = self.lessor.grant(&mut b, id, ttl);
        b.commit().unwrap();
        r
    }

    fn put(&self, key: &str, lease: i64) {
        let mut b = self.store.batch().unwrap();
        let r = b.put(key.as_bytes(), b"v", lease).unwrap();
        self.lessor.apply_events(&r.events);
        b.commit().unwrap();
    }

    fn delete(&self, key: &str) {
        let mut b = self.store.batch().unwrap();
        let r = b.delete_range(key.as_bytes(), b"").unwrap();
        self.lessor.apply_events(&r.events);
        b.commit().unwrap();
    }

    fn revoke(&self, id: i64) -> Result<etcd_mvcc::TxnResult, LeaseError> {
        let mut b = self.store.batch().unwrap();
        let r = self.lessor.revoke(&mut b, id);
        if let Ok(r) = &r {
            self.lessor.apply_events(&r.events);
        }
        b.commit().unwrap();
        r
    }

    fn checkpoint(&self, cps: &[(i64, i64)]) {
        let mut b = self.store.batch().unwrap();
        for &(id, rem) in cps {
            self.lessor.checkpoint(&mut b, id, rem).unwrap();
        }
        b.commit().unwrap();
    }

    fn keys(&self) -> Vec<String> {
        let r = self
            .store
            .range(b"\0", b"\0", RangeOptions::default())
            .unwrap();
        r.kvs
            .into_iter()
            .map(|kv| String::from_utf8(kv.key).unwrap())
            .collect()
    }
}

fn leader(clock: &Arc<ManualClock>) -> Member {
    let m = Member::new(clock, LessorConfig::default());
    m.lessor.promote(Duration::ZERO);
    m
}

#[test]
fn expired_leases_come_out_in_expiry_order() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 30).unwrap();
    m.grant(2, 10).unwrap();
    m.grant(3, 20).unwrap();
    m.grant(4, 40).unwrap();
    clock.advance(9 * SEC);
    assert!(m.lessor.expired(100).is_empty(), "nothing is due yet");
    clock.advance(21 * SEC);
    assert_eq!(m.lessor.expired(100), vec![2, 3, 1]);
    assert!(
        m.lessor.expired(100).is_empty(),
        "handed out once per retry interval"
    );
}

#[test]
fn expired_batches_are_bounded_by_the_caller_and_the_config() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        expired_batch: 3,
        ..LessorConfig::default()
    };
    let m = Member::new(&clock, cfg);
    m.lessor.promote(Duration::ZERO);
    for id in 1..=10 {
        m.grant(id, 5 + id).unwrap();
    }
    clock.advance(100 * SEC);
    assert_eq!(m.lessor.expired(2), vec![1, 2]);
    assert_eq!(
        m.lessor.expired(100),
        vec![3, 4, 5],
        "capped by expired_batch"
    );
    assert_eq!(m.lessor.expired(0), Vec::<i64>::new());
    assert_eq!(m.lessor.expired(100), vec![6, 7, 8]);
}

#[test]
fn a_lease_whose_revoke_was_lost_is_handed_out_again_after_the_retry_interval() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 5).unwrap();
    clock.advance(5 * SEC);
    assert_eq!(m.lessor.expired(10), vec![1]);
    // The revoke proposal is lost; nothing is handed out until revoke_retry (3 s) passed.
    clock.advance(2 * SEC);
    assert!(m.lessor.expired(10).is_empty());
    clock.advance(SEC);
    assert_eq!(m.lessor.expired(10), vec![1]);
    // This time it is applied: gone for good.
    m.revoke(1).unwrap();
    clock.advance(10 * SEC);
    assert!(m.lessor.expired(10).is_empty());
}

#[test]
fn renew_restarts_the_full_ttl() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 10).unwrap();
    clock.advance(8 * SEC);
    assert_eq!(m.lessor.time_to_live(1, false).unwrap().ttl, 2);
    assert_eq!(m.lessor.renew(1).unwrap(), 10);
    assert_eq!(m.lessor.time_to_live(1, false).unwrap().ttl, 10);
    clock.advance(9 * SEC);
    assert!(m.lessor.expired(10).is_empty(), "renewed: 1 s left");
    clock.advance(SEC);
    assert_eq!(m.lessor.expired(10), vec![1]);
}

#[test]
fn renew_fails_on_a_follower_for_unknown_and_for_expired_leases() {
    let clock = Arc::new(ManualClock::new());
    let f = Member::new(&clock, LessorConfig::default());
    f.grant(1, 10).unwrap();
    assert!(matches!(f.lessor.renew(1), Err(LeaseError::NotPrimary)));
    assert!(
        f.lessor.expired(10).is_empty(),
        "followers never expire leases"
    );

    let m = leader(&clock);
    m.grant(1, 10).unwrap();
    assert!(matches!(m.lessor.renew(2), Err(LeaseError::NotFound)));
    clock.advance(10 * SEC);
    assert!(matches!(m.lessor.renew(1), Err(LeaseError::NotFound)));
    assert_eq!(m.lessor.time_to_live(1, false).unwrap().ttl, 0);
}

#[test]
fn grant_raises_short_ttls_and_refuses_huge_ones_and_duplicates() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        min_ttl: 5,
        ..LessorConfig::default()
    };
    let m = Member::new(&clock, cfg);
    assert_eq!(m.grant(1, 1).unwrap().ttl, 5);
    assert_eq!(m.grant(2, -3).unwrap().ttl, 5);
    assert_eq!(m.grant(3, 60).unwrap().ttl, 60);
    assert_eq!(m.grant(4, MAX_LEASE_TTL).unwrap().ttl, MAX_LEASE_TTL);
    assert!(matches!(
        m.grant(5, MAX_LEASE_TTL + 1),
        Err(LeaseError::TtlTooLarge)
    ));
    assert!(matches!(m.grant(3, 60), Err(LeaseError::Exists)));
    assert_eq!(m.lessor.lookup(3).unwrap().ttl, 60);
    assert!(m.lessor.lookup(5).is_none());
}

#[test]
fn error_texts_are_etcds() {
    assert_eq!(LeaseError::NotFound.to_string(), "lease not found");
    assert_eq!(LeaseError::Exists.to_string(), "lease already exists");
    assert_eq!(LeaseError::TtlTooLarge.to_string(), "too large lease TTL");
    assert_eq!(LeaseError::NotPrimary.to_string(), "not a primary lessor");
}

#[test]
fn id_zero_picks_the_same_free_id_on_every_member() {
    let clock = Arc::new(ManualClock::new());
    let a = leader(&clock);
    let b = Member::new(&clock, LessorConfig::default());
    let mut ids = Vec::new();
    for _ in 0..20 {
        let x = a.grant(0, 10).unwrap().id;
        let y = b.grant(0, 10).unwrap().id;
        assert_eq!(x, y);
        assert!(x > 0);
        ids.push(x);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[test]
fn revoke_deletes_exactly_the_attached_keys_in_one_revision() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 10).unwrap();
    m.grant(2, 10).unwrap();
    m.put("a", 1);
    m.put("b", 1);
    m.put("c", 2);
    m.put("d", 0);
    m.put("e", 1);
    m.put("e", 2); // moved to lease 2
    m.put("f", 1);
    m.put("f", 0); // detached
    m.put("g", 1);
    m.delete("g"); // gone
    let rev = m.store.current_revision();
    let ttl = m.lessor.time_to_live(1, true).unwrap();
    assert_eq!(ttl.keys, vec![b"a".to_vec(), b"b".to_vec()]);
    let r = m.revoke(1).unwrap();
    assert_eq!(r.revision, rev + 1, "one revision for all deletes");
    let deleted: Vec<_> = r
        .events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().key.clone())
        .collect();
    assert_eq!(deleted, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(m.keys(), vec!["c", "d", "e", "f"]);
    assert!(matches!(m.revoke(1), Err(LeaseError::NotFound)));
    // A lease without keys is revoked without a revision.
    m.grant(3, 10).unwrap();
    let r = m.revoke(3).unwrap();
    assert_eq!(r.revision, rev + 1);
    assert!(r.events.is_empty());
}

#[test]
fn attach_and_detach_need_an_existing_lease() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 10).unwrap();
    m.lessor.attach(1, &[b"x", b"y"]).unwrap();
    m.lessor.detach(1, &[b"x"]).unwrap();
    assert_eq!(
        m.lessor.time_to_live(1, true).unwrap().keys,
        vec![b"y".to_vec()]
    );
    assert!(matches!(
        m.lessor.attach(9, &[b"x"]),
        Err(LeaseError::NotFound)
    ));
    assert!(matches!(
        m.lessor.detach(9, &[b"x"]),
        Err(LeaseError::NotFound)
    ));
    assert!(m.lessor.time_to_live(1, false).unwrap().keys.is_empty());
}

#[test]
fn promote_gives_every_lease_the_grace_period() {
    let clock = Arc::new(ManualClock::new());
    let m = Member::new(&clock, LessorConfig::default());
    m.grant(1, 5).unwrap();
    clock.advance(100 * SEC); // a follower: nothing expires
    m.lessor.promote(2 * SEC);
    assert!(m.lessor.is_primary());
    clock.advance(6 * SEC);
    assert!(m.lessor.expired(10).is_empty(), "5 s ttl + 2 s grace");
    clock.advance(SEC);
    assert_eq!(m.lessor.expired(10), vec![1]);
    m.lessor.demote();
    assert!(!m.lessor.is_primary());
    assert!(m.lessor.expired(10).is_empty());
    assert!(matches!(m.lessor.renew(1), Err(LeaseError::NotPrimary)));
}

/// The scenario: a long lease, a leader change after several checkpoints, and the
/// new leader expires it when it would have expired anyway, not a full TTL later.
#[test]
fn checkpoints_carry_the_remaining_ttl_across_a_leader_change() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        checkpoint_interval: 60 * SEC,
        ..LessorConfig::default()
    };
    let a = Member::new(&clock, cfg.clone());
    let b = Member::new(&clock, cfg);
    a.lessor.promote(Duration::ZERO);
    for m in [&a, &b] {
        m.grant(1, 300).unwrap();
        m.grant(2, 30).unwrap(); // shorter than the interval: never checkpointed
    }
    // The leader's periodic loop: every 10 s, replicate due checkpoints to both members.
    let mut produced = Vec::new();
    for _ in 0..15 {
        clock.advance(10 * SEC);
        let cps = a.lessor.due_checkpoints(100);
        produced.extend(cps.iter().copied());
        a.checkpoint(&cps);
        b.checkpoint(&cps);
    }
    assert_eq!(
        produced,
        vec![(1, 240), (1, 180)],
        "every 60 s, long leases only"
    );
    // 150 s in: a loses leadership, b wins with 5 s of grace.
    a.lessor.demote();
    b.lessor.promote(5 * SEC);
    let ttl = b.lessor.time_to_live(1, false).unwrap();
    assert_eq!(
        (ttl.ttl, ttl.granted_ttl),
        (185, 300),
        "from the checkpoint"
    );
    clock.advance(184 * SEC);
    assert_eq!(
        b.lessor.expired(10),
        vec![2],
        "the short lease got its full ttl + grace"
    );
    clock.advance(SEC);
    assert_eq!(b.lessor.expired(10), vec![1]);
}

#[test]
fn renewing_a_checkpointed_lease_queues_a_clearing_checkpoint() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        checkpoint_interval: 60 * SEC,
        ..LessorConfig::default()
    };
    let a = Member::new(&clock, cfg.clone());
    let b = Member::new(&clock, cfg);
    a.lessor.promote(Duration::ZERO);
    a.grant(1, 300).unwrap();
    b.grant(1, 300).unwrap();
    clock.advance(60 * SEC);
    let cps = a.lessor.due_checkpoints(10);
    assert_eq!(cps, vec![(1, 240)]);
    a.checkpoint(&cps);
    b.checkpoint(&cps);
    assert_eq!(b.lessor.lookup(1).unwrap().remaining_ttl, 240);
    clock.advance(SEC);
    assert_eq!(a.lessor.renew(1).unwrap(), 300);
    let cps = a.lessor.due_checkpoints(10);
    assert_eq!(
        cps,
        vec![(1, 0)],
        "the renewal clears the replicated remaining ttl"
    );
    a.checkpoint(&cps);
    b.checkpoint(&cps);
    assert_eq!(b.lessor.lookup(1).unwrap().remaining_ttl, 300);
    // A leader change now starts from the full ttl.
    a.lessor.demote();
    b.lessor.promote(Duration::ZERO);
    assert_eq!(b.lessor.time_to_live(1, false).unwrap().ttl, 300);
}

#[test]
fn leases_are_recovered_from_the_backend_with_their_keys() {
    let clock = Arc::new(ManualClock::new());
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let lessor = Lessor::new(LessorConfig::default(), clock.clone());
        let mut b = store.batch().unwrap();
        lessor.grant(&mut b, 1, 100).unwrap();
        lessor.grant(&mut b, 2, 200).unwrap();
        lessor.grant(&mut b, 3, 50).unwrap();
        b.put(b"k1", b"v", 1).unwrap();
        b.put(b"k2", b"v", 1).unwrap();
        b.put(b"k3", b"v", 2).unwrap();
        b.put(b"k4", b"v", 0).unwrap();
        lessor.checkpoint(&mut b, 2, 120).unwrap();
        lessor.revoke(&mut b, 3).unwrap();
        b.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let lessor = Lessor::new(LessorConfig::default(), clock.clone());
    lessor.recover(&store).unwrap();
    let ids: Vec<i64> = lessor.leases().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![1, 2]);
    let t1 = lessor.time_to_live(1, true).unwrap();
    assert_eq!(t1.keys, vec![b"k1".to_vec(), b"k2".to_vec()]);
    assert_eq!(t1.granted_ttl, 100);
    let t2 = lessor.time_to_live(2, true).unwrap();
    assert_eq!(
        (t2.ttl, t2.granted_ttl),
        (120, 200),
        "the checkpoint is persisted"
    );
    assert_eq!(t2.keys, vec![b"k3".to_vec()]);
    // The recovered lessor is a follower until promoted; then the checkpoint counts.
    lessor.promote(Duration::ZERO);
    clock.advance(120 * SEC);
    assert_eq!(lessor.expired(10), vec![1, 2]);
}

#[test]
fn recovery_raises_records_below_the_minimum_ttl() {
    let clock = Arc::new(ManualClock::new());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lessor = Lessor::new(
        LessorConfig {
            min_ttl: 1,
            ..LessorConfig::default()
        },
        clock.clone(),
    );
    let mut b = store.batch().unwrap();
    lessor.grant(&mut b, 1, 1).unwrap();
    b.commit().unwrap();
    let lessor = Lessor::new(
        LessorConfig {
            min_ttl: 7,
            ..LessorConfig::default()
        },
        clock,
    );
    lessor.recover(&store).unwrap();
    assert_eq!(lessor.lookup(1).unwrap().ttl, 7);
}

#[test]
fn a_corrupt_lease_record_is_an_error_not_a_skip() {
    let clock = Arc::new(ManualClock::new());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut b = store.batch().unwrap();
    b.put_raw(
        etcd_mvcc::Bucket::Lease,
        &5i64.to_be_bytes(),
        &[0xff, 0xff, 0xff],
    )
    .unwrap();
    b.commit().unwrap();
    let lessor = Lessor::new(LessorConfig::default(), clock.clone());
    let err = lessor.recover(&store).unwrap_err();
    assert!(err.to_string().contains("lease bucket"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut b = store.batch().unwrap();
    b.put_raw(etcd_mvcc::Bucket::Lease, b"short", b"").unwrap();
    b.commit().unwrap();
    assert!(lessor.recover(&store).is_err());
}

#[test]
fn leases_are_listed_soonest_expiry_first() {
    let clock = Arc::new(ManualClock::new());
    let m = leader(&clock);
    m.grant(1, 30).unwrap();
    m.grant(2, 10).unwrap();
    m.grant(3, 20).unwrap();
    let ids: Vec<i64> = m.lessor.leases().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![2, 3, 1]);
    assert_eq!(m.lessor.len(), 3);
    let f = Member::new(&clock, LessorConfig::default());
    f.grant(9, 30).unwrap();
    f.grant(4, 10).unwrap();
    let ids: Vec<i64> = f.lessor.leases().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![4, 9], "no deadlines on a follower: by id");
}

#[test]
fn a_revoked_lease_is_not_checkpointed_or_expired() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        checkpoint_interval: 10 * SEC,
        ..LessorConfig::default()
    };
    let m = Member::new(&clock, cfg);
    m.lessor.promote(Duration::ZERO);
    m.grant(1, 100).unwrap();
    m.revoke(1).unwrap();
    clock.advance(200 * SEC);
    assert!(m.lessor.due_checkpoints(10).is_empty());
    assert!(m.lessor.expired(10).is_empty());
}

#[test]
fn the_lessor_crosses_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lessor>();
    send_sync::<ManualClock>();
}

#[test]
fn extreme_configs_and_arguments_do_not_panic() {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        min_ttl: i64::MAX,
        checkpoint_interval: Duration::ZERO,
        expired_batch: 0,
        checkpoint_batch: usize::MAX,
        revoke_retry: Duration::MAX,
    };
    let m = Member::new(&clock, cfg);
    m.lessor.promote(Duration::MAX);
    m.grant(1, i64::MIN).unwrap();
    m.grant(i64::MIN, 5).unwrap();
    m.grant(i64::MAX, MAX_LEASE_TTL).unwrap();
    assert_eq!(m.lessor.renew(1).unwrap(), i64::MAX);
    clock.advance(Duration::MAX);
    assert!(m.lessor.expired(usize::MAX).is_empty(), "expired_batch 0");
    assert!(m.lessor.due_checkpoints(usize::MAX).is_empty());
    m.checkpoint(&[(1, i64::MIN), (2, i64::MAX)]);
    assert!(m.lessor.time_to_live(1, true).is_some());
    m.lessor.demote();
    m.lessor.promote(Duration::ZERO);
    assert_eq!(m.lessor.leases().len(), 3);
}
