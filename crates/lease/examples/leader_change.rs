//! Two members share a lease; the leader checkpoints it, loses leadership, and the new
//! leader expires it on time and revokes it, deleting its keys. Runs in virtual time.
//!
//! `cargo run -p etcd-lease --example leader_change`

use std::sync::Arc;
use std::time::Duration;

use etcd_lease::{Lessor, LessorConfig, ManualClock};
use etcd_mvcc::Store;

type Res = Result<(), Box<dyn std::error::Error>>;

struct Member {
    name: &'static str,
    store: Store,
    lessor: Lessor,
}

fn main() -> Res {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        checkpoint_interval: Duration::from_secs(30),
        ..LessorConfig::default()
    };
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let members: Vec<Member> = ["a", "b"]
        .into_iter()
        .zip(&dirs)
        .map(|(name, dir)| {
            Ok(Member {
                name,
                store: Store::open(dir.path())?,
                lessor: Lessor::new(cfg.clone(), clock.clone()),
            })
        })
        .collect::<Result<_, etcd_mvcc::Error>>()?;

    // "Raft": every member applies the same entries in the same order.
    let apply = |f: &dyn Fn(&Member, &mut etcd_mvcc::Batch<'_>) -> Res| -> Res {
        for m in &members {
            let mut b = m.store.batch()?;
            f(m, &mut b)?;
            b.commit()?;
        }
        Ok(())
    };

    members[0].lessor.promote(Duration::ZERO);
    apply(&|m, b| {
        m.lessor.grant(b, 42, 120)?;
        let r = b.put(b"service/a", b"10.0.0.1", 42)?;
        m.lessor.apply_events(&r.events);
        Ok(())
    })?;
    println!("granted lease 42 (ttl 120 s) with key service/a on both members");

    // The leader's loop, every 10 s of virtual time for 100 s.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(10));
        let cps = members[0].lessor.due_checkpoints(1000);
        if !cps.is_empty() {
            println!(
                "t={:>3}s leader checkpoints {cps:?}",
                clock.elapsed().as_secs()
            );
            apply(&|m, b| {
                for &(id, rem) in &cps {
                    m.lessor.checkpoint(b, id, rem)?;
                }
                Ok(())
            })?;
        }
    }

    // Leadership moves to b, with 2 s of grace.
    members[0].lessor.demote();
    members[1].lessor.promote(Duration::from_secs(2));
    let ttl = members[1]
        .lessor
        .time_to_live(42, true)
        .ok_or("lease lost")?;
    println!(
        "t={:>3}s {} is leader; lease 42 has {} s left of {} (keys {:?})",
        clock.elapsed().as_secs(),
        members[1].name,
        ttl.ttl,
        ttl.granted_ttl,
        ttl.keys
            .iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );

    loop {
        clock.advance(Duration::from_secs(1));
        let expired = members[1].lessor.expired(500);
        if expired.is_empty() {
            continue;
        }
        println!(
            "t={:>3}s new leader finds {expired:?} expired; revoking",
            clock.elapsed().as_secs()
        );
        apply(&|m, b| {
            for &id in &expired {
                let r = m.lessor.revoke(b, id)?;
                m.lessor.apply_events(&r.events);
            }
            Ok(())
        })?;
        break;
    }
    for m in &members {
        let left = m
            .store
            .range(b"service/", b"service0", Default::default())?;
        println!(
            "{}: {} keys under service/, {} leases",
            m.name,
            left.count,
            m.lessor.len()
        );
    }
    Ok(())
}
