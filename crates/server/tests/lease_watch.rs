//! Leases and watches over gRPC against real members, through `etcd-client` only.

mod common;

use std::time::{Duration, Instant};

use common::{assert_etcd_error, Cluster};
use etcd_client::{
    EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, WatchFilterType,
    WatchOptions,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_grant_attach_time_to_live_revoke() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;

    let g = c.lease_grant(60, None).await.unwrap();
    assert!(g.id() > 0);
    assert_eq!(g.ttl(), 60);
    let id = g.id();
    c.put("l1", "a", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("l2", "b", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("free", "c", None).await.unwrap();

    let t = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(t.granted_ttl(), 60);
    assert!(t.ttl() > 50 && t.ttl() <= 60, "{}", t.ttl());
    // etcd returns the attached keys in no particular order.
    let mut keys = t.keys().to_vec();
    keys.sort();
    assert_eq!(keys, [b"l1".to_vec(), b"l2".to_vec()]);
    let all = c.leases().await.unwrap();
    assert!(all.leases().iter().any(|l| l.id() == id));

    // An explicit id; a second grant with it is refused.
    c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(4242)))
        .await
        .unwrap();
    let err = c
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(4242)))
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );
    let err = c.lease_grant(9_000_000_001, None).await.unwrap_err();
    assert_etcd_error(err, Code::OutOfRange, "etcdserver: too large lease TTL");

    // Revoking deletes exactly the attached keys, in one revision.
    let before = c
        .get("free", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r = c.lease_revoke(id).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), before + 1);
    assert_eq!(
        c.get("l", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        0
    );
    assert_eq!(c.get("free", None).await.unwrap().count(), 1);

    let err = c.lease_revoke(id).await.unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: requested lease not found");
    // TimeToLive of an unknown lease is not an error: TTL -1 (as etcd).
    let t = c.lease_time_to_live(id, None).await.unwrap();
    assert_eq!((t.id(), t.ttl(), t.granted_ttl()), (id, -1, 0));
    let err = c
        .put("x", "y", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: requested lease not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_deletes_its_keys_and_keep_alive_holds_it() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    // TTLs below the minimum (derived from the election timeout) are raised to it.
    let short = c.lease_grant(1, None).await.unwrap();
    assert!(short.ttl() >= 1);
    c.put("short", "x", Some(PutOptions::new().with_lease(short.id())))
        .await
        .unwrap();
    let kept = c.lease_grant(2, None).await.unwrap();
    c.put("kept", "x", Some(PutOptions::new().with_lease(kept.id())))
        .await
        .unwrap();

    let (mut keeper, mut responses) = c.lease_keep_alive(kept.id()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        keeper.keep_alive().await.unwrap();
        let resp = match responses.message().await {
            Ok(Some(r)) => r,
            other => panic!(
                "keep-alive failed: {other:?}; log:\n{}",
                cluster.members[0].log()
            ),
        };
        assert_eq!(resp.id(), kept.id());
        assert!(resp.ttl() > 0);
        if c.get("short", None).await.unwrap().count() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the short lease never expired");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(c.get("kept", None).await.unwrap().count(), 1);
    // Keep-alive of an unknown lease answers TTL 0, which the client reports as
    // "lease not found" (it reads the first answer itself).
    match c.lease_keep_alive(short.id()).await {
        Err(etcd_client::Error::LeaseKeepAliveError(text)) => assert_eq!(text, "lease not found"),
        other => panic!("expected TTL 0 (lease not found), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_puts_and_deletes_in_order_with_prev_kv_and_filters() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    let mut w = cluster.client(0).await;
    let (mut watcher, mut stream) = w
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap()
        .split();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    let first_id = created.watch_id();

    c.put("w/a", "1", None).await.unwrap(); // rev 2
    c.put("w/a", "2", None).await.unwrap(); // rev 3
    c.put("other", "x", None).await.unwrap(); // rev 4, not watched
    c.delete("w/a", None).await.unwrap(); // rev 5

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch response in time")
            .unwrap()
            .unwrap();
        for ev in resp.events() {
            let kv = ev.kv().unwrap();
            let prev = ev.prev_kv().map(|p| p.value().to_vec());
            seen.push((ev.event_type(), kv.mod_revision(), prev));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put, 2, None),
            (EventType::Put, 3, Some(b"1".to_vec())),
            (EventType::Delete, 5, Some(b"2".to_vec())),
        ]
    );
    watcher.cancel(first_id).await.unwrap();

    // A watcher from the past replays history; NOPUT leaves only deletes.
    let (_w2, mut s2) = w
        .watch(
            "w/a",
            Some(
                WatchOptions::new()
                    .with_start_revision(2)
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap()
        .split();
    let mut deletes = Vec::new();
    while deletes.is_empty() {
        let resp = tokio::time::timeout(Duration::from_secs(10), s2.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        deletes.extend(
            resp.events()
                .iter()
                .map(|e| (e.event_type(), e.kv().unwrap().mod_revision())),
        );
    }
    assert_eq!(deletes, vec![(EventType::Delete, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_is_canceled_with_the_compact_revision() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    for i in 0..5 {
        c.put("k", format!("{i}"), None).await.unwrap();
    }
    c.compact(5, None).await.unwrap();
    let (_w, mut s) = c
        .watch("k", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap()
        .split();
    let mut canceled = None;
    for _ in 0..5 {
        let resp = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if resp.canceled() {
            canceled = Some(resp.compact_revision());
            break;
        }
    }
    assert_eq!(canceled, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_on_one_stream_and_progress_requests() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    let (mut watcher, mut stream) = c.watch("a", None).await.unwrap().split();
    assert!(stream.message().await.unwrap().unwrap().created());
    watcher.watch("b", None).await.unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    let b_id = created.watch_id();
    c.put("b", "1", None).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.watch_id(), b_id);
    assert_eq!(resp.events()[0].kv().unwrap().key(), b"b");

    watcher.request_progress().await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events().is_empty());
    assert_eq!(progress.header().unwrap().revision(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_gives_mutual_exclusion_to_contending_clients() {
    let cluster = Cluster::start(1).await;
    let mut setup = cluster.client(0).await;
    setup.put("counter", "0", None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut c = cluster.client(0).await;
        tasks.push(tokio::spawn(async move {
            let lease = c.lease_grant(30, None).await.unwrap().id();
            for _ in 0..5 {
                let opts = etcd_client::LockOptions::new().with_lease(lease);
                let held = c.lock("mutex", Some(opts)).await.unwrap();
                // Read-modify-write that would lose updates without mutual exclusion.
                let v: u64 = c.get("counter", None).await.unwrap().kvs()[0]
                    .value_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                c.put("counter", (v + 1).to_string(), None).await.unwrap();
                c.unlock(held.key()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("lock contention did not finish")
            .unwrap();
    }
    let v = setup.get("counter", None).await.unwrap();
    assert_eq!(v.kvs()[0].value_str().unwrap(), "50");
    // Nothing is left under the lock's prefix.
    let left = setup
        .get("mutex/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(left.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_an_expired_lease_is_released() {
    let cluster = Cluster::start(1).await;
    let mut a = cluster.client(0).await;
    let mut b = cluster.client(0).await;
    let short = a.lease_grant(1, None).await.unwrap().id();
    let long = b.lease_grant(60, None).await.unwrap().id();
    a.lock("m", Some(etcd_client::LockOptions::new().with_lease(short)))
        .await
        .unwrap();
    // b waits until a's lease expires (no keep-alive) and its key is deleted.
    let started = Instant::now();
    let held = tokio::time::timeout(
        Duration::from_secs(30),
        b.lock("m", Some(etcd_client::LockOptions::new().with_lease(long))),
    )
    .await
    .expect("the lock was never released")
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(held.key().starts_with(b"m/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_campaign_proclaim_observe_resign_and_hand_over() {
    let cluster = Cluster::start(1).await;
    let mut a = cluster.client(0).await;
    let mut b = cluster.client(0).await;
    let la = a.lease_grant(30, None).await.unwrap().id();
    let lb = b.lease_grant(30, None).await.unwrap().id();

    let err = a.leader("office").await.unwrap_err();
    let s = common::status_of(err);
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: no leader")
    );

    let won = a.campaign("office", "alice", la).await.unwrap();
    let leader_key = won.leader().unwrap().clone();
    let mut observe = b.observe("office").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), observe.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kv().unwrap().value(), b"alice");

    // b campaigns and waits behind a.
    let mut b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.campaign("office", "bob", lb).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "b became leader while a leads");

    let opts = etcd_client::ProclaimOptions::new().with_leader(leader_key.clone());
    a.proclaim("alice v2", Some(opts)).await.unwrap();
    let r = a.leader("office").await.unwrap();
    assert_eq!(r.kv().unwrap().value(), b"alice v2");
    let seen = tokio::time::timeout(Duration::from_secs(10), observe.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.kv().unwrap().value(), b"alice v2");

    // Resigning hands leadership to b; a's old key can no longer proclaim.
    a.resign(Some(
        etcd_client::ResignOptions::new().with_leader(leader_key.clone()),
    ))
    .await
    .unwrap();
    let won_b = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("b never became leader")
        .unwrap()
        .unwrap();
    assert!(won_b.leader().unwrap().rev() > leader_key.rev());
    let r = b.leader("office").await.unwrap();
    assert_eq!(r.kv().unwrap().value(), b"bob");
    let opts = etcd_client::ProclaimOptions::new().with_leader(leader_key);
    let err = a.proclaim("stale", Some(opts)).await.unwrap_err();
    let s = common::status_of(err);
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: not leader")
    );
}
