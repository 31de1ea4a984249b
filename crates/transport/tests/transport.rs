//! The transport's promises between three in-process members on loopback: ordered
//! delivery on the stream, pipeline fallback and stream recovery, reconnect after a peer
//! restart, non-blocking drops with unreachable reports, identity checks, clean
//! removal of a peer mid-stream, removed members hearing it, and the member list served
//! to joining members.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use etcd_proto::rafthttppb::peer_client::PeerClient;
use etcd_proto::rafthttppb::{MembersResponse, PeerMember, ProbeRequest};
use etcd_proto::raftpb::MessageType;
use etcd_transport::{fetch_members, TransportConfig, CLUSTER_ID_HEADER, FROM_HEADER, TO_HEADER};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_ten_thousand_messages_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    assert!(streams_up(&members[0], 3).await);
    let t = &members[0].transport;
    // Sent from a plain thread, as the raft loop does, in batches the queue can hold.
    std::thread::scope(|s| {
        s.spawn(|| {
            for batch in 0..10u64 {
                let msgs = (0..1000)
                    .map(|i| msg(MessageType::MsgApp, 1, 2, batch * 1000 + i + 1))
                    .collect();
                t.send(msgs);
                let hb = (0..100)
                    .map(|i| msg(MessageType::MsgHeartbeat, 1, 3, batch * 100 + i + 1))
                    .collect();
                t.send(hb);
                let deadline = Instant::now() + WAIT;
                while members[1].raft.count() < ((batch + 1) * 1000) as usize
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
    });
    assert!(
        wait_until(WAIT, || members[1].raft.count() == 10_000
            && members[2].raft.count() == 1000)
        .await
    );
    let got: Vec<u64> = members[1]
        .raft
        .messages
        .lock()
        .iter()
        .map(|m| m.index)
        .collect();
    assert_eq!(
        got,
        (1..=10_000).collect::<Vec<_>>(),
        "appends arrive in order, none lost"
    );
    let hb: Vec<u64> = members[2]
        .raft
        .messages
        .lock()
        .iter()
        .map(|m| m.index)
        .collect();
    assert_eq!(
        hb,
        (1..=1000).collect::<Vec<_>>(),
        "heartbeats arrive in order"
    );
    assert_eq!(members[0].raft.unreachable(2), 0);
    let sent = t.stats(2).unwrap();
    let received = members[1].transport.stats(1).unwrap();
    assert!(sent.sent_bytes > 0 && sent.sent_bytes == received.received_bytes);
    assert_eq!(sent.sent_failures, 0);
    assert!(sent.active);
    assert!(
        wait_until(WAIT, || t.stats(2).unwrap().rtt.count > 0).await,
        "the probe measures rtt"
    );
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_carries_messages_while_stream_is_down_and_stream_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    members[1].transport.set_refuse_streams(true);
    assert!(
        wait_until(WAIT, || {
            let s = members[0].transport.stats(2).unwrap();
            !s.msgapp_stream_working && !s.message_stream_working
        })
        .await
    );
    assert!(
        wait_until(WAIT, || members[1].transport.inbound_streams() == 0).await,
        "member 2 ends every inbound stream"
    );
    // A few at a time: the pipeline queue holds 64.
    for batch in 0..5u64 {
        let msgs = (0..20)
            .map(|i| msg(MessageType::MsgHeartbeat, 1, 2, batch * 20 + i))
            .collect();
        members[0].transport.send(msgs);
        assert!(
            wait_until(WAIT, || members[1].raft.count()
                == ((batch + 1) * 20) as usize)
            .await
        );
    }
    let s = members[0].transport.stats(2).unwrap();
    assert!(!s.message_stream_working, "delivered by the pipeline");
    members[1].transport.set_refuse_streams(false);
    assert!(streams_up(&members[0], 2).await, "stream reconnects");
    members[0].transport.send(
        (0..50)
            .map(|i| msg(MessageType::MsgApp, 1, 2, 1000 + i))
            .collect(),
    );
    assert!(wait_until(WAIT, || members[1].raft.count() == 150).await);
    let tail: Vec<u64> = members[1].raft.messages.lock()[100..]
        .iter()
        .map(|m| m.index)
        .collect();
    assert_eq!(tail, (1000..1050).collect::<Vec<_>>());
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reconnects_after_peer_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    let old = members.remove(1);
    let addr = old.transport.local_addr();
    old.transport.stop().await;
    assert_eq!(old.transport.running_tasks(), 0);
    drop(old);
    assert!(
        wait_until(WAIT, || !members[0]
            .transport
            .stats(2)
            .unwrap()
            .message_stream_working)
        .await,
        "the stream notices the peer is gone"
    );
    // Sends while the peer is down are dropped and reported, never block.
    members[0]
        .transport
        .send(vec![msg(MessageType::MsgHeartbeat, 1, 2, 1)]);
    assert!(wait_until(WAIT, || members[0].raft.unreachable(2) > 0).await);
    assert!(wait_until(WAIT, || !members[0].transport.stats(2).unwrap().active).await);

    let restarted = start_member(config(2, dir.path().join("m2b")), &addr.to_string()).await;
    restarted
        .transport
        .add_peer(1, &[members[0].url.as_str()])
        .unwrap();
    assert!(
        streams_up(&members[0], 2).await,
        "streams come back after the restart"
    );
    members[0]
        .transport
        .send(vec![msg(MessageType::MsgApp, 1, 2, 7)]);
    assert!(wait_until(WAIT, || restarted.raft.count() == 1).await);
    assert!(members[0].transport.stats(2).unwrap().active);
    members.push(restarted);
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_and_reports_unreachable_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1, dir.path().join("m1"));
    cfg.stream_queue_len = 2;
    cfg.pipeline_queue_len = 2;
    cfg.pipeline_concurrency = 1;
    let m1 = start_member(cfg, "127.0.0.1:0").await;
    // Peer 2: nothing listens at its address. Peer 3: a socket that accepts and never
    // reads or answers.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    m1.transport.add_peer(2, &[dead_url.as_str()]).unwrap();
    m1.transport.add_peer(3, &[silent_url.as_str()]).unwrap();
    let started = Instant::now();
    for i in 0..1000u64 {
        m1.transport.send(vec![
            msg(MessageType::MsgApp, 1, 2, i),
            msg(MessageType::MsgApp, 1, 3, i),
        ]);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "send blocked for {took:?}"
    );
    // At most queue + in-flight messages per peer can still be pending.
    assert!(
        m1.raft.unreachable(2) >= 990,
        "unreachable(2) = {}",
        m1.raft.unreachable(2)
    );
    assert!(
        m1.raft.unreachable(3) >= 990,
        "unreachable(3) = {}",
        m1.raft.unreachable(3)
    );
    assert!(m1.transport.stats(3).unwrap().sent_failures >= 990);
    drop(silent);
    stop_all(vec![m1]).await;
}

async fn raw_client(m: &Member) -> PeerClient<tonic::transport::Channel> {
    PeerClient::connect(m.url.clone()).await.unwrap()
}

fn with_identity<T>(msg: T, cluster: u64, from: u64, to: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(CLUSTER_ID_HEADER, format!("{cluster:x}").parse().unwrap());
    r.metadata_mut()
        .insert(FROM_HEADER, format!("{from:x}").parse().unwrap());
    r.metadata_mut()
        .insert(TO_HEADER, format!("{to:x}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_cluster_removed_member_and_wrong_target_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    let mut client = raw_client(&members[0]).await;

    let err = client
        .send(with_identity(
            msg(MessageType::MsgHeartbeat, 9, 1, 1),
            0xbad,
            9,
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("cluster bad") && err.message().contains("cluster c1"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("member 9") && err.message().contains("member 1"),
        "{}",
        err.message()
    );
    let err = client
        .probe(with_identity(ProbeRequest {}, 0xbad, 9, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    members[0].raft.removed.lock().insert(3);
    let err = client
        .send(with_identity(
            msg(MessageType::MsgHeartbeat, 3, 1, 1),
            CLUSTER,
            3,
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("member 3") && err.message().contains("member 1"),
        "{}",
        err.message()
    );
    members[0].raft.removed.lock().clear();

    let err = client
        .send(with_identity(
            msg(MessageType::MsgHeartbeat, 2, 5, 1),
            CLUSTER,
            2,
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a message for member 5 is refused by member 1"
    );
    let err = client
        .send(with_identity(
            msg(MessageType::MsgHeartbeat, 2, 1, 1),
            CLUSTER,
            2,
            4,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "a request for member 4 is refused by member 1"
    );
    let err = client
        .send(tonic::Request::new(msg(MessageType::MsgHeartbeat, 2, 1, 1)))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "identity metadata is required"
    );
    assert_eq!(members[0].raft.count(), 0, "nothing rejected reached raft");

    // A whole transport of another cluster never gets through either.
    let mut other_cfg: TransportConfig = config(9, dir.path().join("m9"));
    other_cfg.cluster_id = 0xbad;
    let other = start_member(other_cfg, "127.0.0.1:0").await;
    other
        .transport
        .add_peer(1, &[members[0].url.as_str()])
        .unwrap();
    other
        .transport
        .send(vec![msg(MessageType::MsgHeartbeat, 9, 1, 1)]);
    assert!(wait_until(WAIT, || other.raft.unreachable(1) > 0).await);
    assert!(!other.transport.stats(1).unwrap().message_stream_working);
    assert_eq!(members[0].raft.count(), 0);
    let mut all = members;
    all.push(other);
    stop_all(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_removed_mid_stream_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    assert!(streams_up(&members[0], 3).await);
    assert!(wait_until(WAIT, || members[1].transport.inbound_streams() == 4).await);
    let before = members[0].transport.running_tasks();
    let t = &members[0].transport;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..2000u64 {
                t.send(vec![msg(MessageType::MsgApp, 1, 2, i)]);
                if i == 1000 {
                    t.remove_peer(2);
                }
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
    });
    assert!(t.stats(2).is_none());
    assert!(
        wait_until(WAIT, || t.running_tasks() == before - 4).await,
        "the removed peer's four tasks end ({} running, {before} before)",
        t.running_tasks()
    );
    assert!(
        wait_until(WAIT, || members[1].transport.inbound_streams() == 2).await,
        "member 2 sees member 1's streams close"
    );
    // Member 3 is untouched.
    t.send(vec![msg(MessageType::MsgHeartbeat, 1, 3, 1)]);
    assert!(wait_until(WAIT, || members[2].raft.count() == 1).await);
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_peer_moves_streams_to_the_new_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    // Member 2 comes back on another port; member 1 learns its new URL.
    let old = members.remove(1);
    old.transport.stop().await;
    drop(old);
    let moved = start_member(config(2, dir.path().join("m2b")), "127.0.0.1:0").await;
    moved
        .transport
        .add_peer(1, &[members[0].url.as_str()])
        .unwrap();
    members[0]
        .transport
        .update_peer(2, &[moved.url.as_str()])
        .unwrap();
    assert!(
        streams_up(&members[0], 2).await,
        "streams open to the new URL"
    );
    members[0]
        .transport
        .send(vec![msg(MessageType::MsgApp, 1, 2, 3)]);
    assert!(wait_until(WAIT, || moved.raft.count() == 1).await);
    assert!(
        members[0]
            .transport
            .update_peer(2, &["ftp://nope"])
            .is_err(),
        "bad URLs are refused"
    );
    members.push(moved);
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_hears_that_its_peers_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    assert!(streams_up(&members[0], 2).await);
    // Members 2 and 3 learn that member 1 was removed: its streams and probes are
    // refused with PermissionDenied, and member 1's handler hears who refused it.
    members[1].raft.removed.lock().insert(1);
    members[2].raft.removed.lock().insert(1);
    members[0]
        .transport
        .send(vec![msg(MessageType::MsgHeartbeat, 1, 2, 1)]);
    assert!(
        wait_until(WAIT, || {
            let by = members[0].raft.removed_by.lock();
            by.contains(&2) && by.contains(&3)
        })
        .await
    );
    assert!(members[1].raft.removed_by.lock().is_empty());
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_list_is_served_without_identity() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path()).await;
    let err = fetch_members(&members[0].url, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Unavailable") || err.to_string().contains("unavailable"),
        "{err}"
    );
    let list = MembersResponse {
        cluster_id: CLUSTER,
        members: vec![PeerMember {
            id: 1,
            name: "m1".into(),
            peer_urls: vec![members[0].url.clone()],
            client_urls: vec![],
            is_learner: false,
        }],
    };
    *members[0].raft.members.lock() = Some(list.clone());
    let got = fetch_members(&members[0].url, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, list);
    // Nothing listens there: a bounded failure, not a hang.
    let started = Instant::now();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert!(
        fetch_members(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(fetch_members("https://127.0.0.1:1", Duration::from_secs(1))
        .await
        .is_err());
    stop_all(members).await;
}
