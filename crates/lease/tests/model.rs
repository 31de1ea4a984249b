//! Property test: the lessor against a model, in virtual time. Random grants, leased puts,
//! deletes, renewals, time steps, expiry rounds (with lost and applied revokes) and
//! explicit revokes; after each step the lessor's answers and the store's keys must be
//! the model's.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use etcd_lease::{LeaseError, Lessor, LessorConfig, ManualClock};
use etcd_mvcc::{RangeOptions, Store};
use proptest::prelude::*;

const MIN_TTL: i64 = 2;
const RETRY_MS: u64 = 3000;

#[derive(Debug, Clone)]
enum Op {
    Grant { id: i64, ttl: i64 },
    Put { key: u8, lease: i64 },
    Delete { key: u8 },
    Renew { id: i64 },
    Advance { ms: u64 },
    Expire { apply_revokes: bool },
    Revoke { id: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1..6i64, -1..20i64).prop_map(|(id, ttl)| Op::Grant { id, ttl }),
        3 => (0..8u8, 0..6i64).prop_map(|(key, lease)| Op::Put { key, lease }),
        1 => (0..8u8).prop_map(|key| Op::Delete { key }),
        2 => (1..6i64).prop_map(|id| Op::Renew { id }),
        3 => (0..6000u64).prop_map(|ms| Op::Advance { ms }),
        2 => any::<bool>().prop_map(|apply_revokes| Op::Expire { apply_revokes }),
        1 => (1..6i64).prop_map(|id| Op::Revoke { id }),
    ]
}

#[derive(Debug, Default)]
struct ModelLease {
    ttl: i64,
    /// Deadline in virtual milliseconds.
    deadline: u64,
    /// When it was last handed out as expired.
    handed_out: Option<u64>,
}

#[derive(Debug, Default)]
struct Model {
    now: u64,
    leases: BTreeMap<i64, ModelLease>,
    /// key -> lease (0 = none); absent = deleted.
    keys: BTreeMap<u8, i64>,
}

impl Model {
    fn keys_of(&self, id: i64) -> Vec<Vec<u8>> {
        self.keys
            .iter()
            .filter(|(_, l)| **l == id)
            .map(|(k, _)| vec![b'k', *k])
            .collect()
    }

    fn revoke(&mut self, id: i64) {
        self.leases.remove(&id);
        self.keys.retain(|_, l| *l != id);
    }

    fn due(&self) -> Vec<i64> {
        let mut due: Vec<(u64, i64)> = self
            .leases
            .iter()
            .filter_map(|(id, l)| {
                let key = match l.handed_out {
                    None => l.deadline,
                    Some(t) => t + RETRY_MS,
                };
                (key <= self.now).then_some((key, *id))
            })
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, id)| id).collect()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        min_ttl: MIN_TTL,
        revoke_retry: Duration::from_millis(RETRY_MS),
        ..LessorConfig::default()
    };
    let lessor = Lessor::new(cfg, clock.clone());
    lessor.promote(Duration::ZERO);
    let mut m = Model::default();

    for op in ops {
        match op {
            Op::Grant { id, ttl } => {
                let mut b = store.batch().unwrap();
                let r = lessor.grant(&mut b, id, ttl);
                b.commit().unwrap();
                if m.leases.contains_key(&id) {
                    prop_assert!(matches!(r, Err(LeaseError::Exists)));
                } else {
                    let ttl = ttl.max(MIN_TTL);
                    prop_assert_eq!(r.unwrap().ttl, ttl);
                    m.leases.insert(
                        id,
                        ModelLease {
                            ttl,
                            deadline: m.now + ttl as u64 * 1000,
                            handed_out: None,
                        },
                    );
                }
            }
            Op::Put { key, lease } => {
                // The server refuses puts to missing leases before they reach the store.
                if lease != 0 && !m.leases.contains_key(&lease) {
                    continue;
                }
                let mut b = store.batch().unwrap();
                let r = b.put(&[b'k', key], b"v", lease).unwrap();
                lessor.apply_events(&r.events);
                b.commit().unwrap();
                m.keys.insert(key, lease);
            }
            Op::Delete { key } => {
                let mut b = store.batch().unwrap();
                let r = b.delete_range(&[b'k', key], b"").unwrap();
                lessor.apply_events(&r.events);
                b.commit().unwrap();
                m.keys.remove(&key);
            }
            Op::Renew { id } => {
                let r = lessor.renew(id);
                match m.leases.get_mut(&id) {
                    Some(l) if l.deadline > m.now => {
                        prop_assert_eq!(r.unwrap(), l.ttl);
                        l.deadline = m.now + l.ttl as u64 * 1000;
                        l.handed_out = None;
                    }
                    _ => prop_assert!(matches!(r, Err(LeaseError::NotFound))),
                }
            }
            Op::Advance { ms } => {
                clock.advance(Duration::from_millis(ms));
                m.now += ms;
            }
            Op::Expire { apply_revokes } => {
                let got = lessor.expired(usize::MAX);
                prop_assert_eq!(&got, &m.due());
                for id in &got {
                    if let Some(l) = m.leases.get_mut(id) {
                        l.handed_out = Some(m.now);
                    }
                }
                if apply_revokes {
                    let mut b = store.batch().unwrap();
                    for id in got {
                        let r = lessor.revoke(&mut b, id).unwrap();
                        lessor.apply_events(&r.events);
                        m.revoke(id);
                    }
                    b.commit().unwrap();
                }
            }
            Op::Revoke { id } => {
                let mut b = store.batch().unwrap();
                let r = lessor.revoke(&mut b, id);
                b.commit().unwrap();
                if m.leases.contains_key(&id) {
                    let r = r.unwrap();
                    lessor.apply_events(&r.events);
                    let mut deleted: Vec<Vec<u8>> = r
                        .events
                        .iter()
                        .map(|e| e.kv.as_ref().unwrap().key.clone())
                        .collect();
                    deleted.sort();
                    prop_assert_eq!(deleted, m.keys_of(id));
                    m.revoke(id);
                } else {
                    prop_assert!(matches!(r, Err(LeaseError::NotFound)));
                }
            }
        }
        // The store holds exactly the model's keys, each with the model's lease.
        let kvs = store
            .range(b"\0", b"\0", RangeOptions::default())
            .unwrap()
            .kvs;
        let got: BTreeMap<u8, i64> = kvs.iter().map(|kv| (kv.key[1], kv.lease)).collect();
        prop_assert_eq!(&got, &m.keys);
        // The lessor's leases and key sets are the model's.
        let ids: BTreeSet<i64> = lessor.leases().iter().map(|l| l.id).collect();
        let want: BTreeSet<i64> = m.leases.keys().copied().collect();
        prop_assert_eq!(ids, want);
        for id in m.leases.keys() {
            prop_assert_eq!(lessor.time_to_live(*id, true).unwrap().keys, m.keys_of(*id));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn lessor_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
