//! The tool's promises, checked against an in-process fake etcd on a loopback port: the
//! core loop sends exactly `--total` requests over all clients and connections, counts
//! failures, honours `--rate`, and each subcommand sends what it says.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use etcd_benchmark::cli::{Cli, OutputFormat};
use etcd_benchmark::conn::{connect, normalize_endpoint};
use etcd_benchmark::run::{run_kv, LoadSpec, Workload};
use etcd_benchmark::{execute, render, Error};
use indicatif::ProgressBar;
use support::{start, FakeEtcd};

fn put_workload() -> Workload {
    Workload::Put {
        key_size: 8,
        value: vec![7; 16],
        key_space_size: 100,
        sequential: false,
    }
}

async fn connections(addr: std::net::SocketAddr, count: u32) -> Vec<etcd_benchmark::conn::Conn> {
    let url = normalize_endpoint(&addr.to_string()).unwrap();
    connect(&[url], count, Duration::from_secs(2), None)
        .await
        .unwrap()
}

fn cli(addr: std::net::SocketAddr, args: &[&str]) -> Cli {
    let endpoints = format!("--endpoints={addr}");
    let all = ["benchmark", endpoints.as_str(), "--no-progress"];
    Cli::try_parse_from(all.iter().copied().chain(args.iter().copied())).unwrap()
}

#[tokio::test]
async fn core_loop_sends_exactly_total_requests_over_all_clients() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let conns = connections(addr, 3).await;
    let spec = LoadSpec {
        clients: 7,
        total: 500,
        rate: 0,
        seed: 1,
        sample: false,
    };
    let result = run_kv(
        &conns,
        Arc::new(put_workload()),
        spec,
        ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(fake.puts.load(Ordering::Relaxed), 500);
    let summary = result.recorder.summary(result.elapsed);
    assert_eq!((summary.requests, summary.errors), (500, 0));
    let latency = summary.latency.unwrap();
    assert!(latency.fastest_secs > 0.0 && latency.fastest_secs <= latency.slowest_secs);
    assert!(summary.rps > 0.0);
}

#[tokio::test]
async fn failed_requests_are_counted_with_their_message() {
    let fake = Arc::new(FakeEtcd::new(10));
    let addr = start(Arc::clone(&fake)).await;
    let conns = connections(addr, 1).await;
    let spec = LoadSpec {
        clients: 4,
        total: 300,
        rate: 0,
        seed: 2,
        sample: false,
    };
    let result = run_kv(
        &conns,
        Arc::new(put_workload()),
        spec,
        ProgressBar::hidden(),
    )
    .await
    .unwrap();
    let summary = result.recorder.summary(result.elapsed);
    assert_eq!((summary.requests, summary.errors), (270, 30));
    assert_eq!(
        summary.error_distribution,
        vec![("etcdserver: request timed out".to_string(), 30)]
    );
}

#[tokio::test]
async fn rate_caps_requests_per_second_over_all_clients() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let conns = connections(addr, 2).await;
    let spec = LoadSpec {
        clients: 4,
        total: 21,
        rate: 100,
        seed: 3,
        sample: false,
    };
    let result = run_kv(
        &conns,
        Arc::new(put_workload()),
        spec,
        ProgressBar::hidden(),
    )
    .await
    .unwrap();
    // 21 requests spaced 10 ms apart take at least 200 ms.
    assert!(
        result.elapsed >= Duration::from_millis(195),
        "{:?}",
        result.elapsed
    );
    assert_eq!(fake.puts.load(Ordering::Relaxed), 21);
}

#[tokio::test]
async fn zero_total_sends_nothing() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let outcome = execute(&cli(addr, &["put", "--total", "0"])).await.unwrap();
    assert_eq!(fake.puts.load(Ordering::Relaxed), 0);
    assert_eq!(outcome.summary.requests, 0);
    assert_eq!(render(&outcome, OutputFormat::Text, false), "\n");
}

#[tokio::test]
async fn put_command_reports_in_etcds_format() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "5",
        "--conns",
        "2",
        "put",
        "--total",
        "200",
        "--sequential-keys",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    assert_eq!(fake.puts.load(Ordering::Relaxed), 200);
    let text = render(&outcome, OutputFormat::Text, false);
    assert!(text.starts_with("\nSummary:\n  Total:\t"), "{text}");
    for section in [
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
    ] {
        assert!(text.contains(section), "{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&render(&outcome, OutputFormat::Json, false)).unwrap();
    assert_eq!(json["requests"], 200);
    assert_eq!(json["errors"], 0);
}

#[tokio::test]
async fn sample_adds_a_per_second_table() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let outcome = execute(&cli(addr, &["--sample", "put", "--total", "50"]))
        .await
        .unwrap();
    let text = render(&outcome, OutputFormat::Text, false);
    assert!(
        text.contains("\nSample in one second (unix latency throughput):\n"),
        "{text}"
    );
    let series = outcome.summary.samples.unwrap();
    assert_eq!(series.iter().map(|(_, p)| p.count).sum::<u64>(), 50);
}

#[tokio::test]
async fn range_command_sends_its_range() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "3",
        "range",
        "foo",
        "--prefix",
        "--consistency",
        "s",
        "--limit",
        "5",
        "--count-only",
        "--total",
        "50",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    assert_eq!(fake.ranges.load(Ordering::Relaxed), 50);
    let seen = fake.last_range.lock().clone().unwrap();
    assert_eq!(
        (seen.key.as_slice(), seen.range_end.as_slice()),
        (&b"foo"[..], &b"fop"[..])
    );
    assert!(seen.serializable && seen.count_only && !seen.keys_only);
    assert_eq!(seen.limit, 5);
    let text = render(&outcome, OutputFormat::Text, false);
    assert!(
        text.starts_with("bench with serializable range\n\nSummary:"),
        "{text}"
    );
}

#[tokio::test]
async fn txn_put_command_puts_txn_ops_keys_per_txn() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "2",
        "txn-put",
        "--txn-ops",
        "3",
        "--key-space-size",
        "10",
        "--total",
        "40",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    assert_eq!(fake.txns.load(Ordering::Relaxed), 40);
    assert_eq!(fake.txn_puts.load(Ordering::Relaxed), 120);
    assert_eq!(outcome.summary.requests, 40);
}

#[tokio::test]
async fn txn_mixed_reports_reads_and_writes_apart() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "4",
        "txn-mixed",
        "--rw-ratio",
        "3",
        "--key-space-size",
        "10",
        "--total",
        "400",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    let reads = fake.txn_ranges.load(Ordering::Relaxed);
    let writes = fake.txn_puts.load(Ordering::Relaxed);
    assert_eq!(reads + writes, 400);
    assert!((240..360).contains(&reads), "{reads} reads");
    let write_summary = outcome.writes.clone().unwrap();
    assert_eq!(
        (outcome.summary.requests, write_summary.requests),
        (reads, writes)
    );
    let text = render(&outcome, OutputFormat::Text, false);
    assert!(
        text.starts_with(&format!(
            "bench with linearizable range\nTotal Read Ops: {reads}\nDetails:\nSummary:"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Total Write Ops: {writes}\nDetails:\nSummary:")),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&outcome, OutputFormat::Json, false)).unwrap();
    assert_eq!(json["command"], "txn-mixed");
    assert_eq!(json["read"]["requests"], reads);
    assert_eq!(json["write"]["requests"], writes);
}

#[tokio::test]
async fn lease_keepalive_grants_one_lease_per_client_and_keeps_it_alive() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "3",
        "--conns",
        "2",
        "lease-keepalive",
        "--total",
        "60",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    assert_eq!(fake.grants.load(Ordering::Relaxed), 3);
    assert_eq!(fake.keep_alives.load(Ordering::Relaxed), 60);
    assert_eq!((outcome.summary.requests, outcome.summary.errors), (60, 0));
}

#[tokio::test]
async fn inconsistent_flags_are_errors_before_any_request() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let too_small = execute(&cli(
        addr,
        &["put", "--key-size", "1", "--key-space-size", "1000"],
    ))
    .await;
    assert!(matches!(too_small, Err(Error::InvalidFlag(_))));
    let too_many_ops = execute(&cli(
        addr,
        &["txn-put", "--txn-ops", "5", "--key-space-size", "4"],
    ))
    .await;
    assert!(matches!(too_many_ops, Err(Error::InvalidFlag(_))));
    let no_password = execute(&cli(addr, &["--user", "root", "put"])).await;
    assert!(matches!(no_password, Err(Error::InvalidFlag(_))));
    assert_eq!(
        fake.puts.load(Ordering::Relaxed) + fake.txns.load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn watch_latency_records_one_result_per_watcher_and_put() {
    let fake = Arc::new(FakeEtcd::new(0));
    let addr = start(Arc::clone(&fake)).await;
    let args = [
        "--clients",
        "3",
        "--conns",
        "2",
        "watch-latency",
        "--total",
        "20",
        "--put-rate",
        "1000",
    ];
    let outcome = execute(&cli(addr, &args)).await.unwrap();
    assert_eq!(fake.puts.load(Ordering::Relaxed), 20);
    assert_eq!((outcome.summary.requests, outcome.summary.errors), (60, 0));
}

#[tokio::test]
async fn unreachable_endpoint_is_an_error_not_a_panic() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let result = execute(&cli(
        addr,
        &["--dial-timeout", "2s", "put", "--total", "10"],
    ))
    .await;
    assert!(matches!(result, Err(Error::Dial { .. })), "{result:?}");
}
