//! The `benchmark` binary end to end against the in-process fake etcd: the JSON report
//! parses and counts the requests, the text report is etcd's, bad flags exit non-zero
//! with a message.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use support::{start, FakeEtcd};

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_benchmark"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn json_report_is_one_parseable_object() {
    let addr = start(Arc::new(FakeEtcd::new(0))).await;
    let endpoint = format!("http://{addr}");
    let out = run(args(&[
        "--endpoints",
        &endpoint,
        "--clients",
        "4",
        "put",
        "--total",
        "100",
        "--output",
        "json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["command"], "put");
    assert_eq!(json["requests"], 100);
    assert_eq!(json["errors"], 0);
    for field in ["total_secs", "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms"] {
        assert!(json[field].as_f64().is_some(), "{field} in {json}");
    }
}

#[tokio::test]
async fn text_report_is_etcds() {
    let addr = start(Arc::new(FakeEtcd::new(0))).await;
    let out = run(args(&[
        "range",
        "k",
        "--total",
        "30",
        "--endpoints",
        &addr.to_string(),
        "--precise",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("bench with linearizable range\n\nSummary:\n"),
        "{text}"
    );
    assert!(
        text.contains("\nLatency distribution:\n  10% in "),
        "{text}"
    );
}

#[tokio::test]
async fn bad_flags_exit_non_zero_with_a_message() {
    let out = run(args(&[
        "put",
        "--key-size",
        "1",
        "--key-space-size",
        "1000",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-size 1 is too small"));
    let out = run(args(&["put", "--clients", "0"])).await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(args(&["--endpoints", "https://127.0.0.1:1", "put"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}
