//! Three real members on loopback, through `etcd-client` only: replication, requests to
//! followers, leader failure, restarts, and a follower catching up by snapshot.

mod common;

use std::time::Duration;

use common::{eventually, Cluster};
use etcd_client::{GetOptions, PutOptions};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_any_member_are_read_on_every_member() {
    let cluster = Cluster::start(3).await;
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        c.put(format!("from{i}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        // Linearizable reads on followers see every acknowledged write.
        let r = c
            .get("from", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.count(), 3, "member {i}");
        // Serializable reads converge.
        eventually(LIMIT, || {
            let mut c = c.clone();
            async move {
                let r = c
                    .get(
                        "from",
                        Some(GetOptions::new().with_prefix().with_serializable()),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if r.count() == 3 {
                    Ok(())
                } else {
                    Err(format!("count {}", r.count()))
                }
            }
        })
        .await;
    }
    let ml = cluster.client(0).await.member_list().await.unwrap();
    assert_eq!(ml.members().len(), 3);
    // Every member published its name and client URL.
    eventually(LIMIT, || {
        let endpoints = cluster.endpoints();
        async move {
            let mut c = common::try_connect(&endpoints[..1])
                .await
                .map_err(|e| e.to_string())?;
            let ml = c.member_list().await.map_err(|e| e.to_string())?;
            let named = ml
                .members()
                .iter()
                .filter(|m| !m.name().is_empty() && !m.client_urls().is_empty())
                .count();
            if named == 3 {
                Ok(())
            } else {
                Err(format!("{named} of 3 published"))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_watches_work_through_followers() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let follower = (leader + 1) % 3;
    let mut f = cluster.client(follower).await;
    let mut l = cluster.client(leader).await;
    let (_w, mut stream) = f.watch("watched", None).await.unwrap().split();
    assert!(stream.message().await.unwrap().unwrap().created());

    let lease = f.lease_grant(30, None).await.unwrap();
    l.put(
        "watched",
        "v",
        Some(PutOptions::new().with_lease(lease.id())),
    )
    .await
    .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].kv().unwrap().value(), b"v");

    // Keep-alive and time-to-live on a follower are answered by the leader.
    eventually(LIMIT, || {
        let mut f = f.clone();
        let id = lease.id();
        async move {
            let (mut k, mut r) = f.lease_keep_alive(id).await.map_err(|e| e.to_string())?;
            k.keep_alive().await.map_err(|e| e.to_string())?;
            let resp = r
                .message()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no answer")?;
            if resp.ttl() == 30 {
                Ok(())
            } else {
                Err(format!("ttl {}", resp.ttl()))
            }
        }
    })
    .await;
    let ttl = f.lease_time_to_live(lease.id(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 30);
    f.lease_revoke(lease.id()).await.unwrap();
    assert_eq!(l.get("watched", None).await.unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_elects_a_new_leader_and_writes_continue() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let mut c = cluster.client((leader + 1) % 3).await;
    for i in 0..20 {
        c.put(format!("k{i:02}"), "before", None).await.unwrap();
    }
    cluster.members[leader].kill();
    let survivor = (leader + 1) % 3;
    let endpoints = vec![cluster.members[survivor].spec.client_url()];
    eventually(LIMIT, || {
        let endpoints = endpoints.clone();
        async move {
            let mut c = common::try_connect(&endpoints)
                .await
                .map_err(|e| e.to_string())?;
            c.put("after", "kill", None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;
    let new_leader = cluster.leader(LIMIT).await;
    assert_ne!(new_leader, leader);
    let mut c = cluster.client(survivor).await;
    assert_eq!(
        c.get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        20
    );

    // The old leader comes back as a follower and catches up.
    cluster.members[leader].restart();
    let mut old = common::connect(&[cluster.members[leader].spec.client_url()]).await;
    eventually(LIMIT, || {
        let mut old = old.clone();
        async move {
            let r = old.get("after", None).await.map_err(|e| e.to_string())?;
            if r.count() == 1 {
                Ok(())
            } else {
                Err("not caught up".into())
            }
        }
    })
    .await;
    let r = old
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(r.count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_killed_and_restarted_lose_no_acknowledged_write() {
    let mut cluster = Cluster::start(3).await;
    let mut c = cluster.client(0).await;
    let mut last = 0;
    for i in 0..100 {
        last = c
            .put(format!("d{i:03}"), format!("{i}"), None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
    }
    drop(c);
    for m in &mut cluster.members {
        m.kill();
    }
    for m in &mut cluster.members {
        m.restart();
    }
    cluster.wait_ready(LIMIT).await;
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        let r = eventually(LIMIT, || {
            let mut c = c.clone();
            async move {
                c.get("d", Some(GetOptions::new().with_prefix().with_count_only()))
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        assert_eq!(r.count(), 100, "member {i}");
        assert!(r.header().unwrap().revision() >= last);
        let _ = c.put("alive", "yes", None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_down_past_a_snapshot_catches_up_by_snapshot() {
    if common::against_other_etcd() {
        return; // etcd 3.4 has no --snapshot-catchup-entries, and the check reads our log
    }
    let mut cluster = Cluster::start_with(
        3,
        &["--snapshot-count", "20", "--snapshot-catchup-entries", "5"],
    )
    .await;
    let leader = cluster.leader(LIMIT).await;
    let lagging = (leader + 1) % 3;
    cluster.members[lagging].kill();
    let mut c = cluster.client(leader).await;
    for i in 0..100 {
        c.put(format!("s{i:03}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    cluster.members[lagging].restart();
    let mut f = common::connect(&[cluster.members[lagging].spec.client_url()]).await;
    eventually(LIMIT, || {
        let mut f = f.clone();
        async move {
            let r = f
                .get(
                    "s",
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_count_only()
                            .with_serializable(),
                    ),
                )
                .await
                .map_err(|e| e.to_string())?;
            if r.count() == 100 {
                Ok(())
            } else {
                Err(format!("count {}", r.count()))
            }
        }
    })
    .await;
    // The data arrived by snapshot, not by replaying the (compacted) log (our log line).
    let member = &cluster.members[lagging];
    eventually(LIMIT, || {
        let log = member.log();
        async move {
            if log.contains("installed the backend of a snapshot") {
                Ok(())
            } else {
                Err(format!("no snapshot was installed:\n{log}"))
            }
        }
    })
    .await;
    // It keeps following after the snapshot.
    c.put("after-snapshot", "1", None).await.unwrap();
    let r = f.get("after-snapshot", None).await.unwrap();
    assert_eq!(r.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_time_out_and_require_leader_fails_fast() {
    let mut cluster = Cluster::start(3).await;
    let mut c = cluster.client(0).await;
    c.put("before", "1", None).await.unwrap();
    // A watch opened with `hasleader` ends with `no leader` once the leader is gone.
    let opts = etcd_client::ConnectOptions::new().with_require_leader(true);
    let mut rl = etcd_client::Client::connect([cluster.members[0].spec.client_url()], Some(opts))
        .await
        .unwrap();
    let (_w, mut watch) = rl.watch("before", None).await.unwrap().split();
    assert!(watch.message().await.unwrap().unwrap().created());
    cluster.members[1].kill();
    cluster.members[2].kill();
    let ended = tokio::time::timeout(LIMIT, async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => return Some(common::status_of(e)),
            }
        }
    })
    .await
    .expect("the watch did not end");
    let status = ended.expect("the watch ended without an error");
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
    // CheckQuorum makes a leader without a quorum step down within an election timeout;
    // a client that requires a leader is then refused at once.
    let url = cluster.members[0].spec.client_url();
    let err = eventually(LIMIT, || {
        let url = url.clone();
        async move {
            let opts = etcd_client::ConnectOptions::new()
                .with_require_leader(true)
                .with_timeout(Duration::from_secs(10));
            let mut c = etcd_client::Client::connect([url], Some(opts))
                .await
                .map_err(|e| e.to_string())?;
            match c.put("k", "v", None).await {
                Err(etcd_client::Error::GRpcStatus(s))
                    if s.message() == "etcdserver: no leader" =>
                {
                    Ok(s)
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(err.code(), tonic::Code::Unavailable);
    // Without that option the proposal waits and times out with etcd's error.
    let started = std::time::Instant::now();
    let err = c.put("k", "v", None).await.unwrap_err();
    let status = common::status_of(err);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message() == "etcdserver: request timed out"
            || status.message()
                == "etcdserver: request timed out, possibly due to previous leader failure",
        "{status:?}"
    );
    assert!(started.elapsed() < LIMIT);
    // Serializable reads still work on the lone member.
    let r = c
        .get("before", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(r.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_revisions_never_go_backwards_for_a_client_across_members() {
    let cluster = Cluster::start(3).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await);
    }
    let mut seen = 0;
    for round in 0..60 {
        let c = &mut clients[round % 3];
        let rev = if round % 2 == 0 {
            c.put(format!("r{round}"), "v", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision()
        } else {
            c.get("r", Some(GetOptions::new().with_prefix()))
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision()
        };
        assert!(rev >= seen, "round {round}: revision {rev} after {seen}");
        seen = rev;
    }
}
