//! Runtime membership on real members, through `etcd-client` only: adding a member that
//! joins with `--initial-cluster-state existing` and catches up (by snapshot), removing a
//! follower and the leader, learners and their promotion, member updates, etcd's error
//! strings and `--strict-reconfig-check`, and membership kept across restarts.

mod common;

use std::time::Duration;

use common::{assert_etcd_error, eventually, Cluster};
use etcd_client::{Client, GetOptions, MemberAddOptions};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(30);

/// The id of the member named `name`, as a member list shows it.
async fn id_of(c: &mut Client, name: &str) -> u64 {
    let list = c.member_list().await.expect("member list");
    list.members()
        .iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no member {name} in {:?}", list.members()))
        .id()
}

/// Waits until a member list on `endpoint` has `n` members, all named.
async fn wait_members(endpoint: &str, n: usize) -> Vec<etcd_client::Member> {
    let endpoints = vec![endpoint.to_string()];
    eventually(LIMIT, || {
        let endpoints = endpoints.clone();
        async move {
            let mut c = common::try_connect(&endpoints)
                .await
                .map_err(|e| e.to_string())?;
            let list = c.member_list().await.map_err(|e| e.to_string())?;
            let members = list.members().to_vec();
            let named = members.iter().filter(|m| !m.name().is_empty()).count();
            if members.len() == n && named == n {
                Ok(members)
            } else {
                Err(format!("{members:?}"))
            }
        }
    })
    .await
}

/// Waits until a serializable count of `prefix` on `endpoint` is `n`.
async fn wait_count(endpoint: &str, prefix: &str, n: i64) {
    let endpoints = vec![endpoint.to_string()];
    eventually(LIMIT, || {
        let endpoints = endpoints.clone();
        async move {
            let mut c = common::try_connect(&endpoints)
                .await
                .map_err(|e| e.to_string())?;
            let opts = GetOptions::new()
                .with_prefix()
                .with_count_only()
                .with_serializable();
            let r = c.get(prefix, Some(opts)).await.map_err(|e| e.to_string())?;
            if r.count() == n {
                Ok(())
            } else {
                Err(format!("count {}", r.count()))
            }
        }
    })
    .await;
}

/// Puts until one succeeds through `endpoint` (a leader may be changing).
async fn put_eventually(endpoint: &str, key: &str) {
    let endpoints = vec![endpoint.to_string()];
    eventually(LIMIT, || {
        let endpoints = endpoints.clone();
        async move {
            let mut c = common::try_connect(&endpoints)
                .await
                .map_err(|e| e.to_string())?;
            c.put(key, "v", None).await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_joins_catches_up_by_snapshot_and_survives_a_full_restart() {
    if common::against_other_etcd() {
        return; // --snapshot-catchup-entries and the log line are ours
    }
    let flags = ["--snapshot-count", "20", "--snapshot-catchup-entries", "5"];
    let mut cluster = Cluster::start_with(3, &flags).await;
    let mut c = cluster.client(0).await;
    for i in 0..100 {
        c.put(format!("s{i:03}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    let spec = cluster.new_spec("m3");
    let added = c.member_add([spec.peer_url()], None).await.unwrap();
    let member = added.member().unwrap().clone();
    assert_eq!(member.peer_urls(), [spec.peer_url()]);
    assert!(!member.is_learner());
    assert!(member.name().is_empty());
    assert_eq!(added.member_list().len(), 4);
    let fresh = added
        .member_list()
        .iter()
        .find(|m| m.id() == member.id())
        .unwrap();
    assert!(fresh.name().is_empty() && fresh.client_urls().is_empty());

    // The new member joins with the whole membership in --initial-cluster.
    let specs: Vec<_> = cluster.members.iter().map(|m| m.spec.clone()).collect();
    let initial = Cluster::initial_cluster_of(&[&specs[0], &specs[1], &specs[2], &spec]);
    let mut joiner_flags = flags.to_vec();
    joiner_flags.extend(["--initial-cluster-state", "existing"]);
    let new = cluster.start_member(spec, &initial, &joiner_flags);
    let url = cluster.members[new].spec.client_url();
    wait_count(&url, "s", 100).await;
    // The log before the add was compacted: the data came with a snapshot.
    let joined = &cluster.members[new];
    eventually(LIMIT, || {
        let log = joined.log();
        async move {
            if log.contains("installed the backend of a snapshot") {
                Ok(())
            } else {
                Err(format!("no snapshot was installed:\n{log}"))
            }
        }
    })
    .await;
    // It has the id MemberAdd gave it, follows new writes, and publishes its name.
    let mut n = common::connect(std::slice::from_ref(&url)).await;
    let status = n.status().await.unwrap();
    assert_eq!(status.header().unwrap().member_id(), member.id());
    assert!(!status.is_learner());
    c.put("after-join", "1", None).await.unwrap();
    assert_eq!(n.get("after-join", None).await.unwrap().count(), 1);
    let members = wait_members(&cluster.members[0].spec.client_url(), 4).await;
    let m3 = members.iter().find(|m| m.id() == member.id()).unwrap();
    assert_eq!(m3.name(), "m3");
    assert_eq!(m3.client_urls(), std::slice::from_ref(&url));
    // Four voters: the cluster survives losing one of the originals.
    drop(c);
    drop(n);
    cluster.members[0].kill();
    put_eventually(&url, "one-down").await;

    // Membership is kept in the backend: after all four restart, it is the same.
    for m in &mut cluster.members {
        m.kill();
    }
    for m in &mut cluster.members {
        m.restart();
    }
    cluster.wait_ready(LIMIT).await;
    for m in &cluster.members {
        let list = wait_members(&m.spec.client_url(), 4).await;
        let mut ids: Vec<u64> = list.iter().map(|m| m.id()).collect();
        let mut expected: Vec<u64> = members.iter().map(|m| m.id()).collect();
        ids.sort_unstable();
        expected.sort_unstable();
        assert_eq!(ids, expected, "member list on {}", m.spec.name);
    }
    put_eventually(&url, "after-restart").await;
    wait_count(&cluster.members[1].spec.client_url(), "after-restart", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_follower_stops_and_the_rest_keep_their_membership_across_restarts() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut c = cluster.client(leader).await;
    wait_members(&cluster.members[leader].spec.client_url(), 3).await;
    let id = id_of(&mut c, &cluster.members[follower].spec.name).await;
    let removed = c.member_remove(id).await.unwrap();
    assert_eq!(removed.members().len(), 2);
    assert!(removed.members().iter().all(|m| m.id() != id));

    // The removed member learns it and stops.
    let status = cluster.members[follower].wait_exit(LIMIT).await;
    assert!(status.is_some(), "the removed member still runs");
    if !common::against_other_etcd() {
        let log = cluster.members[follower].log();
        assert!(
            log.contains("permanently removed from the cluster"),
            "{log}"
        );
    }
    c.put("after-remove", "1", None).await.unwrap();
    wait_count(&cluster.members[other].spec.client_url(), "after-remove", 1).await;
    assert_eq!(c.member_list().await.unwrap().members().len(), 2);

    // Unknown (and already removed) ids are refused with etcd's error.
    for unknown in [id, 0x1234] {
        let err = c.member_remove(unknown).await.unwrap_err();
        assert_etcd_error(err, Code::NotFound, "etcdserver: member not found");
    }

    // The two left restart with two members.
    drop(c);
    for i in [leader, other] {
        cluster.members[i].kill();
    }
    for i in [leader, other] {
        cluster.members[i].restart();
    }
    for i in [leader, other] {
        let list = wait_members(&cluster.members[i].spec.client_url(), 2).await;
        assert!(list.iter().all(|m| m.id() != id));
    }
    put_eventually(&cluster.members[other].spec.client_url(), "after-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_stops_it_and_a_new_leader_takes_over() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(follower).await;
    wait_members(&cluster.members[follower].spec.client_url(), 3).await;
    let id = id_of(&mut c, &cluster.members[leader].spec.name).await;
    let removed = c.member_remove(id).await.unwrap();
    assert_eq!(removed.members().len(), 2);

    assert!(
        cluster.members[leader].wait_exit(LIMIT).await.is_some(),
        "the removed leader still runs"
    );
    let new_leader = cluster.leader(LIMIT).await;
    assert_ne!(new_leader, leader);
    put_eventually(&cluster.members[follower].spec.client_url(), "new-leader").await;
    let list = c.member_list().await.unwrap();
    assert_eq!(list.members().len(), 2);
    assert!(list.members().iter().all(|m| m.id() != id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_serves_only_serializable_reads_until_it_is_promoted() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let mut f = cluster.client(follower).await;
    c.put("k", "v", None).await.unwrap();

    let spec = cluster.new_spec("m3");
    let learner_opts = || Some(MemberAddOptions::new().with_is_learner());
    let added = c
        .member_add([spec.peer_url()], learner_opts())
        .await
        .unwrap();
    let member = added.member().unwrap().clone();
    assert!(member.is_learner());
    let id = member.id();
    assert!(added
        .member_list()
        .iter()
        .any(|m| m.id() == id && m.is_learner()));

    // One learner at a time, as etcd 3.5.
    let other = cluster.new_spec("m4");
    let err = c
        .member_add([other.peer_url()], learner_opts())
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: too many learner members in cluster",
    );

    // Not started, it has nothing of the log: promotion is refused, on the leader and
    // through a follower (which asks the leader).
    for client in [&mut c, &mut f] {
        let err = client.member_promote(id).await.unwrap_err();
        assert_etcd_error(
            err,
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
        );
    }

    let specs: Vec<_> = cluster.members.iter().map(|m| m.spec.clone()).collect();
    let initial = Cluster::initial_cluster_of(&[&specs[0], &specs[1], &specs[2], &spec]);
    let new = cluster.start_member(spec, &initial, &["--initial-cluster-state", "existing"]);
    let url = cluster.members[new].spec.client_url();
    wait_count(&url, "k", 1).await;

    // A learner answers serializable reads and Status, and refuses the rest.
    let mut l = common::connect(std::slice::from_ref(&url)).await;
    let r = l
        .get("k", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"v");
    assert!(l.status().await.unwrap().is_learner());
    let refused = "etcdserver: rpc not supported for learner";
    assert_etcd_error(
        l.get("k", None).await.unwrap_err(),
        Code::Unavailable,
        refused,
    );
    assert_etcd_error(
        l.put("k", "w", None).await.unwrap_err(),
        Code::Unavailable,
        refused,
    );
    assert_etcd_error(
        l.lease_grant(10, None).await.unwrap_err(),
        Code::Unavailable,
        refused,
    );
    assert_etcd_error(
        l.member_list().await.unwrap_err(),
        Code::Unavailable,
        refused,
    );

    // Once in sync it is promoted (asked through a follower).
    eventually(LIMIT, || {
        let mut f = f.clone();
        async move {
            match f.member_promote(id).await {
                Ok(resp) => {
                    if resp
                        .members()
                        .iter()
                        .any(|m| m.id() == id && !m.is_learner())
                    {
                        Ok(())
                    } else {
                        Err(format!("still a learner: {:?}", resp.members()))
                    }
                }
                Err(etcd_client::Error::GRpcStatus(s))
                    if s.message().ends_with("in sync with leader") =>
                {
                    Err(s.message().to_string())
                }
                Err(other) => panic!("promote failed: {other:?}"),
            }
        }
    })
    .await;
    // Now a voter, it serves linearizable reads and writes.
    eventually(LIMIT, || {
        let mut l = l.clone();
        async move {
            l.put("from-promoted", "1", None)
                .await
                .map_err(|e| e.to_string())?;
            l.get("k", None).await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;
    assert!(!l.status().await.unwrap().is_learner());

    // A voter is not promoted again; an unknown id is not found.
    let err = c.member_promote(id).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    );
    let err = c.member_promote(0x1234).await.unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: member not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_member_requests_get_etcds_errors_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let mut c = cluster.client(leader).await;
    wait_members(&cluster.members[leader].spec.client_url(), 3).await;
    let before = c.member_list().await.unwrap().members().to_vec();
    let bad = "etcdserver: given member URLs are invalid";
    for urls in [
        vec!["not a url".to_string()],
        vec!["http://127.0.0.1".to_string()],
        vec!["http://127.0.0.1:2380/path".to_string()],
        vec![],
    ] {
        let err = c.member_add(urls.clone(), None).await.unwrap_err();
        assert_etcd_error(err, Code::InvalidArgument, bad);
    }
    let taken = cluster.members[(leader + 1) % 3].spec.peer_url();
    let err = c.member_add([taken.clone()], None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );

    let me = id_of(&mut c, &cluster.members[leader].spec.name).await;
    let err = c.member_update(me, vec![taken]).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    let err = c
        .member_update(0x1234, vec!["http://127.0.0.1:1".to_string()])
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: member not found");
    let err = c
        .member_update(me, vec!["bad".to_string()])
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::InvalidArgument, bad);
    let err = c.member_remove(0x1234).await.unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: member not found");
    let err = c.member_promote(0x1234).await.unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: member not found");
    assert_eq!(c.member_list().await.unwrap().members(), &before[..]);

    // --strict-reconfig-check (on by default): unstarted voters count against quorum. With
    // 3 started voters, 2 unstarted ones may be added; a third would leave the started
    // members short of a quorum of 6.
    for name in ["x1", "x2"] {
        let spec = cluster.new_spec(name);
        c.member_add([spec.peer_url()], None).await.unwrap();
    }
    let spec = cluster.new_spec("x3");
    let err = c.member_add([spec.peer_url()], None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::FailedPrecondition,
        "etcdserver: re-configuration failed due to not enough started members",
    );
    assert_eq!(c.member_list().await.unwrap().members().len(), 5);
    // The cluster still has a quorum (3 of 5) and works.
    c.put("still", "works", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_reconfig_check_refuses_changes_that_break_the_active_quorum() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let (down, up) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut c = cluster.client(leader).await;
    wait_members(&cluster.members[leader].spec.client_url(), 3).await;
    let down_id = id_of(&mut c, &cluster.members[down].spec.name).await;
    let up_id = id_of(&mut c, &cluster.members[up].spec.name).await;
    cluster.members[down].kill();

    // With one of three down, the leader is connected to 2: adding a member (counted as
    // unavailable) would need 3 of 4.
    let spec = cluster.new_spec("m3");
    let err = eventually(LIMIT, || {
        let mut c = c.clone();
        let url = spec.peer_url();
        async move {
            match c.member_add([url], None).await {
                Err(etcd_client::Error::GRpcStatus(s))
                    if s.message() == "etcdserver: unhealthy cluster" =>
                {
                    Ok(s)
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(err.code(), Code::Unavailable);
    let err = c
        .member_add(
            [spec.peer_url()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::Unavailable, "etcdserver: unhealthy cluster");
    // Removing the member that is up would leave the leader alone with a dead one.
    let err = c.member_remove(up_id).await.unwrap_err();
    assert_etcd_error(err, Code::Unavailable, "etcdserver: unhealthy cluster");
    // Removing the one that is down is safe.
    let removed = c.member_remove(down_id).await.unwrap();
    assert_eq!(removed.members().len(), 2);
    c.put("two-left", "1", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_update_changes_peer_urls_and_the_cluster_keeps_working() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    wait_members(&cluster.members[leader].spec.client_url(), 3).await;
    let id = id_of(&mut c, &cluster.members[follower].spec.name).await;
    let old = cluster.members[follower].spec.peer_url();
    let extra = format!("http://127.0.0.1:{}", common::free_port());
    let updated = c
        .member_update(id, vec![old.clone(), extra.clone()])
        .await
        .unwrap();
    let mut expected = vec![old.clone(), extra.clone()];
    expected.sort();
    let m = updated.members().iter().find(|m| m.id() == id).unwrap();
    assert_eq!(m.peer_urls(), &expected[..]);
    // The name and client URLs it published are kept.
    assert_eq!(m.name(), cluster.members[follower].spec.name);
    assert!(!m.client_urls().is_empty());
    // Every member learns the new URLs, and the follower stays reachable.
    for i in 0..3 {
        let endpoints = vec![cluster.members[i].spec.client_url()];
        let expected = expected.clone();
        eventually(LIMIT, || {
            let endpoints = endpoints.clone();
            let expected = expected.clone();
            async move {
                let mut c = common::try_connect(&endpoints)
                    .await
                    .map_err(|e| e.to_string())?;
                let list = c.member_list().await.map_err(|e| e.to_string())?;
                let m = list.members().iter().find(|m| m.id() == id).cloned();
                match m {
                    Some(m) if m.peer_urls() == &expected[..] => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
    }
    c.put("after-update", "1", None).await.unwrap();
    wait_count(
        &cluster.members[follower].spec.client_url(),
        "after-update",
        1,
    )
    .await;

    // Back to the one URL it listens on; kept across a restart of the whole cluster.
    c.member_update(id, vec![old.clone()]).await.unwrap();
    drop(c);
    for m in &mut cluster.members {
        m.kill();
    }
    for m in &mut cluster.members {
        m.restart();
    }
    cluster.wait_ready(LIMIT).await;
    for i in 0..3 {
        let list = wait_members(&cluster.members[i].spec.client_url(), 3).await;
        let m = list.iter().find(|m| m.id() == id).unwrap();
        assert_eq!(
            m.peer_urls(),
            std::slice::from_ref(&old),
            "on {}",
            cluster.members[i].spec.name
        );
    }
    put_eventually(
        &cluster.members[follower].spec.client_url(),
        "after-restart",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_answered_without_waiting_for_a_timeout() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader(LIMIT).await;
    let c = cluster.client(leader).await;
    // Raft takes one conf change at a time: one proposed while another is not applied
    // yet is refused at once (etcd's proposer would wait for its request to time out).
    let (a, b) = (cluster.new_spec("a"), cluster.new_spec("b"));
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(
        {
            let mut c = c.clone();
            async move { c.member_add([a.peer_url()], None).await }
        },
        {
            let mut c = c.clone();
            async move { c.member_add([b.peer_url()], None).await }
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    let mut added = 0;
    for r in [ra, rb] {
        match r {
            Ok(_) => added += 1,
            Err(etcd_client::Error::GRpcStatus(s)) => {
                assert_eq!(s.code(), Code::Unknown, "{s:?}");
                assert!(s.message().starts_with("raft proposal dropped"), "{s:?}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(added >= 1);
    let mut c = c.clone();
    assert_eq!(c.member_list().await.unwrap().members().len(), 3 + added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_not_added_first_cannot_join() {
    if common::against_other_etcd() {
        return; // the check reads our log
    }
    let mut cluster = Cluster::start(3).await;
    let spec = cluster.new_spec("stranger");
    let specs: Vec<_> = cluster.members.iter().map(|m| m.spec.clone()).collect();
    let initial = Cluster::initial_cluster_of(&[&specs[0], &specs[1], &specs[2], &spec]);
    let i = cluster.start_member(spec, &initial, &["--initial-cluster-state", "existing"]);
    let status = cluster.members[i].wait_exit(LIMIT).await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let log = cluster.members[i].log();
    assert!(log.contains("member count is unequal"), "{log}");
    // The cluster is untouched.
    let mut c = cluster.client(0).await;
    assert_eq!(c.member_list().await.unwrap().members().len(), 3);
}
