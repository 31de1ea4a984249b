//! HTTP endpoints on the client port (plain HTTP/1.1, as probes and curl send it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Cluster;

/// Sends `GET path` and returns (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// The body of a possibly chunked response, without chunk sizes.
fn unchunk(body: &str) -> String {
    if body.starts_with('{') || body.starts_with("ok") {
        return body.to_string();
    }
    body.lines()
        .filter(|l| !l.is_empty() && usize::from_str_radix(l.trim(), 16).is_err())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_metrics_livez_readyz() {
    let mut cluster = Cluster::start(3).await;
    let port = cluster.members[0].spec.client_port;
    let (status, body) = tokio::task::spawn_blocking(move || get(port, "/health"))
        .await
        .unwrap();
    assert_eq!(
        (status, unchunk(&body).as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );
    let (status, body) = tokio::task::spawn_blocking(move || get(port, "/version"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        unchunk(&body).contains(r#""etcdcluster":"3.5.0""#),
        "{body}"
    );
    let (status, _) = tokio::task::spawn_blocking(move || get(port, "/livez"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = tokio::task::spawn_blocking(move || get(port, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Without a quorum the member loses its leader and says so.
    cluster.members[1].kill();
    cluster.members[2].kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = tokio::task::spawn_blocking(move || get(port, "/health"))
            .await
            .unwrap();
        if status == 503 {
            let body = unchunk(&body);
            assert!(body.contains(r#""health":"false""#), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still healthy without quorum"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // gRPC still works on the same port.
    let mut c = cluster.client(0).await;
    let r = c
        .get(
            "x",
            Some(etcd_client::GetOptions::new().with_serializable()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 0);
}
