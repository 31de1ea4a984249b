//! KV over gRPC against one real member, through the `etcd-client` crate only.

mod common;

use std::time::Duration;

use common::{assert_etcd_error, Cluster};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_with_etcds_revisions_and_headers() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;

    // An empty store is at revision 1; the first write gets 2.
    let r = c.get("nothing", None).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), 1);
    assert_eq!(r.count(), 0);

    let p = c.put("foo", "bar", None).await.unwrap();
    let h = p.header().unwrap();
    assert_eq!(h.revision(), 2);
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 1);

    let p = c
        .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(p.prev_key().unwrap().value(), b"bar");
    assert_eq!(p.header().unwrap().revision(), 3);

    let g = c.get("foo", None).await.unwrap();
    let kv = &g.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"baz"[..], 2, 3, 2)
    );

    // Old revisions stay readable.
    let g = c
        .get("foo", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(g.kvs()[0].value(), b"bar");

    let d = c
        .delete("foo", Some(DeleteOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(d.deleted(), 1);
    assert_eq!(d.prev_kvs()[0].value(), b"baz");
    assert_eq!(d.header().unwrap().revision(), 4);
    // Deleting nothing changes nothing.
    let d = c.delete("foo", None).await.unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_options_limit_sort_filters_keys_and_count_only() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    for (k, v) in [("a1", "3"), ("a2", "1"), ("a3", "2"), ("b1", "0")] {
        c.put(k, v, None).await.unwrap();
    }
    c.put("a1", "4", None).await.unwrap(); // a1: version 2, mod 6

    let r = c
        .get("a", Some(GetOptions::new().with_prefix().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 2);
    assert!(r.more());
    assert_eq!(r.count(), 3);

    let r = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Value, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = r.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
    assert_eq!(keys, ["a1", "a3", "a2"]);

    let r = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Mod, SortOrder::Descend)
                    .with_limit(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].key(), b"a1");
    assert!(r.more());

    let r = c
        .get(
            "a",
            Some(GetOptions::new().with_prefix().with_min_mod_revision(4)),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = r.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
    assert_eq!(keys, ["a1", "a3"]);
    let r = c
        .get(
            "a",
            Some(GetOptions::new().with_prefix().with_max_create_revision(3)),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = r.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
    assert_eq!(keys, ["a1", "a2"]);

    let r = c
        .get("a", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));
    let r = c
        .get("a", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!((r.count(), r.kvs().len()), (3, 0));

    let r = c
        .get("a2", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(r.count(), 3);
    let r = c
        .get("a", Some(GetOptions::new().with_range("a3")))
        .await
        .unwrap();
    assert_eq!(r.count(), 2);
    let r = c
        .get("a1", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_compares_branches_nested_txns_and_one_revision() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    c.put("k", "v1", None).await.unwrap(); // rev 2

    let txn = Txn::new()
        .when([
            Compare::value("k", CompareOp::Equal, "v1"),
            Compare::version("k", CompareOp::Equal, 1),
        ])
        .and_then([
            TxnOp::put("k", "v2", None),
            TxnOp::put("other", "x", None),
            TxnOp::get("k", None),
        ])
        .or_else([TxnOp::put("failed", "1", None)]);
    let r = c.txn(txn).await.unwrap();
    assert!(r.succeeded());
    assert_eq!(r.header().unwrap().revision(), 3);
    match &r.op_responses()[2] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"v2"),
        other => panic!("unexpected {other:?}"),
    }
    // Writes inside a txn report the txn's revision in their own header, as etcd.
    match &r.op_responses()[0] {
        TxnOpResponse::Put(p) => assert_eq!(p.header().unwrap().revision(), 3),
        other => panic!("unexpected {other:?}"),
    }
    // Both puts share one revision.
    let g = c.get("other", None).await.unwrap();
    assert_eq!(g.kvs()[0].mod_revision(), 3);

    // Failing compare runs the else branch; a nested txn inside it.
    let txn = Txn::new()
        .when([Compare::mod_revision("k", CompareOp::Less, 3)])
        .and_then([TxnOp::put("never", "1", None)])
        .or_else([TxnOp::txn(
            Txn::new()
                .when([Compare::create_revision("k", CompareOp::Equal, 2)])
                .and_then([TxnOp::delete("other", None)]),
        )]);
    let r = c.txn(txn).await.unwrap();
    assert!(!r.succeeded());
    assert_eq!(r.header().unwrap().revision(), 4);
    assert_eq!(c.get("other", None).await.unwrap().count(), 0);
    assert_eq!(c.get("never", None).await.unwrap().count(), 0);

    // A VALUE compare on a missing key fails; a VERSION compare treats it as 0.
    let r = c
        .txn(Txn::new().when([Compare::value("missing", CompareOp::NotEqual, "x")]))
        .await
        .unwrap();
    assert!(!r.succeeded());
    let r = c
        .txn(Txn::new().when([Compare::version("missing", CompareOp::Equal, 0)]))
        .await
        .unwrap();
    assert!(r.succeeded());
    // Compares over a range hold for every key in it.
    c.put("r1", "a", None).await.unwrap();
    c.put("r2", "b", None).await.unwrap();
    let r = c
        .txn(Txn::new().when([Compare::version("r", CompareOp::Equal, 1).with_prefix()]))
        .await
        .unwrap();
    assert!(r.succeeded());
    // A read-only txn does not bump the revision.
    let before = c.get("k", None).await.unwrap().header().unwrap().revision();
    let r = c
        .txn(Txn::new().and_then([TxnOp::get("k", None)]))
        .await
        .unwrap();
    assert_eq!(r.header().unwrap().revision(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcds_errors_and_change_nothing() {
    let cluster =
        Cluster::start_with(1, &["--max-txn-ops", "4", "--max-request-bytes", "4096"]).await;
    let mut c = cluster.client(0).await;
    c.put("k", "v", None).await.unwrap();
    let rev = c.get("k", None).await.unwrap().header().unwrap().revision();

    let err = c.put("", "v", None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    let err = c.get("", None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    let ops: Vec<TxnOp> = (0..5)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    let err = c.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );

    let err = c
        .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    let err = c.put("big", vec![b'x'; 8192], None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );

    let err = c
        .put("k", "v", Some(PutOptions::new().with_lease(12345)))
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::NotFound, "etcdserver: requested lease not found");

    let err = c
        .put("absent", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::InvalidArgument, "etcdserver: key not found");
    let err = c
        .put("k", "v", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_etcd_error(err, Code::InvalidArgument, "etcdserver: value is provided");

    let err = c
        .get("k", Some(GetOptions::new().with_revision(rev + 100)))
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );

    // Nothing above changed the store.
    let g = c.get("k", None).await.unwrap();
    assert_eq!(g.header().unwrap().revision(), rev);
    assert_eq!(g.kvs()[0].value(), b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_its_revision_and_refuses_older_reads() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client(0).await;
    for i in 0..5 {
        c.put("c", format!("{i}"), None).await.unwrap(); // revs 2..=6
    }
    c.compact(
        4,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    let g = c
        .get("c", Some(GetOptions::new().with_revision(4)))
        .await
        .unwrap();
    assert_eq!(g.kvs()[0].value(), b"2");
    let err = c
        .get("c", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let err = c.compact(3, None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let err = c.compact(100, None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_and_restart() {
    let mut cluster = Cluster::start_with(1, &["--snapshot-count", "50"]).await;
    let mut c = cluster.client(0).await;
    for i in 0..200 {
        c.put(format!("key{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let rev = c
        .get("key000", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    drop(c);
    cluster.members[0].restart();
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.client(0).await;
    let r = c
        .get(
            "key",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 200);
    assert_eq!(r.header().unwrap().revision(), rev);
    let p = c.put("after", "restart", None).await.unwrap();
    assert_eq!(p.header().unwrap().revision(), rev + 1);
    // Snapshots were taken (count 50) and the member restarted from one.
    let snaps = std::fs::read_dir(cluster.members[0].spec.data_dir.join("member/snap"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "snap")
        })
        .count();
    assert!(snaps >= 1, "no snapshot files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    if common::against_other_etcd() {
        return; // starts our binary on the data directory
    }
    let cluster = Cluster::start(1).await;
    let spec = &cluster.members[0].spec;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd"))
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .arg("--listen-client-urls")
        .arg(format!("http://127.0.0.1:{}", common::free_port()))
        .arg("--advertise-client-urls")
        .arg("http://127.0.0.1:1")
        .arg("--listen-peer-urls")
        .arg(format!("http://127.0.0.1:{}", common::free_port()))
        .arg("--name")
        .arg(&spec.name)
        .arg("--initial-advertise-peer-urls")
        .arg(spec.peer_url())
        .arg("--initial-cluster")
        .arg(format!("{}={}", spec.name, spec.peer_url()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lock") || stderr.contains("LOCK"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_quota_get_no_space_and_deletes_still_pass() {
    let cluster = Cluster::start_with(1, &["--quota-backend-bytes", "1"]).await;
    let mut c = cluster.client(0).await;
    // The size is sampled once a second; the first write may slip in before it.
    let err = common::eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            match c.put("k", "v", None).await {
                Ok(_) => Err("accepted".to_string()),
                Err(e) => Ok(e),
            }
        }
    })
    .await;
    assert_etcd_error(
        err,
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    c.delete("k", None).await.unwrap();

    // The breach raised a NOSPACE alarm for this member, replicated and listed.
    let alarms = common::eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            let r = c
                .alarm(
                    etcd_client::AlarmAction::Get,
                    etcd_client::AlarmType::None,
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            if r.alarms().is_empty() {
                Err("no alarm yet".to_string())
            } else {
                Ok(r.alarms().to_vec())
            }
        }
    })
    .await;
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].alarm(), etcd_client::AlarmType::Nospace);
    let member = c.status().await.unwrap().header().unwrap().member_id();
    assert_eq!(alarms[0].member_id(), member);
    // Writes that grow the backend fail while it is raised, txns too.
    let err = c
        .txn(etcd_client::Txn::new().and_then([etcd_client::TxnOp::put("t", "v", None)]))
        .await
        .unwrap_err();
    assert_etcd_error(
        err,
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );

    // Disarming clears it; the backend is still over this quota, so the next write
    // fails again and raises it again, as etcd does.
    let mut opts = etcd_client::AlarmOptions::new();
    opts.with_member(member);
    c.alarm(
        etcd_client::AlarmAction::Deactivate,
        etcd_client::AlarmType::Nospace,
        Some(opts),
    )
    .await
    .unwrap();
    let r = c
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        )
        .await
        .unwrap();
    assert!(r.alarms().is_empty(), "{} alarms left", r.alarms().len());
    let err = c.put("k", "v", None).await.unwrap_err();
    assert_etcd_error(
        err,
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_compacts_old_history() {
    let cluster = Cluster::start_with(
        1,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "1s",
        ],
    )
    .await;
    let mut c = cluster.client(0).await;
    for i in 0..5 {
        c.put("p", format!("{i}"), None).await.unwrap();
    }
    common::eventually(Duration::from_secs(20), || {
        let mut c = c.clone();
        async move {
            // Keep writing so there is newer history to keep.
            c.put("p", "x", None).await.map_err(|e| e.to_string())?;
            match c.get("p", Some(GetOptions::new().with_revision(2))).await {
                Err(e) => {
                    assert_etcd_error(
                        e,
                        Code::OutOfRange,
                        "etcdserver: mvcc: required revision has been compacted",
                    );
                    Ok(())
                }
                Ok(_) => Err("revision 2 still readable".to_string()),
            }
        }
    })
    .await;
}
