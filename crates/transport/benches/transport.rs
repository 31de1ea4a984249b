//! Peer transport throughput between two members on loopback: small messages per
//! second, MB/s of appends (64 entries of 256 bytes per message) on the stream, and the
//! time to transfer a snapshot (`ETCD_TRANSPORT_BENCH_SNAPSHOT_MB`, default 200 MB).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etcd_proto::raftpb::{Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use etcd_transport::{
    HandlerError, Raft, SnapshotSource, StagedSnapshot, Transport, TransportConfig,
};

#[derive(Default)]
struct Counter {
    messages: AtomicU64,
    snapshots_ok: AtomicU64,
}

impl Raft for Counter {
    fn process(&self, _m: Message) -> Result<(), HandlerError> {
        self.messages.fetch_add(1, Ordering::Release);
        Ok(())
    }
    fn report_unreachable(&self, _id: u64) {}
    fn report_snapshot(&self, _id: u64, ok: bool) {
        if ok {
            self.snapshots_ok.fetch_add(1, Ordering::Release);
        }
    }
    fn receive_snapshot(&self, _m: Message, _staged: StagedSnapshot) -> Result<(), HandlerError> {
        Ok(()) // dropping `staged` removes the files
    }
    fn is_id_removed(&self, _id: u64) -> bool {
        false
    }
}

struct Pair {
    rt: tokio::runtime::Runtime,
    sender: Transport,
    receiver: Transport,
    sent_side: Arc<Counter>,
    recv_side: Arc<Counter>,
    dir: tempfile::TempDir,
}

fn pair() -> Pair {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sent_side = Arc::new(Counter::default());
    let recv_side = Arc::new(Counter::default());
    let (sender, receiver) = rt.block_on(async {
        let a = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let b = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let b_url = format!("http://{}", b.local_addr().expect("addr"));
        let a_url = format!("http://{}", a.local_addr().expect("addr"));
        let sender = Transport::start(
            TransportConfig::new(1, 7, dir.path().join("a")),
            a,
            sent_side.clone(),
        )
        .await
        .expect("start");
        let receiver = Transport::start(
            TransportConfig::new(2, 7, dir.path().join("b")),
            b,
            recv_side.clone(),
        )
        .await
        .expect("start");
        sender.add_peer(2, &[b_url]).expect("peer");
        receiver.add_peer(1, &[a_url]).expect("peer");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sender
            .stats(2)
            .is_some_and(|s| s.msgapp_stream_working && s.message_stream_working)
        {
            assert!(Instant::now() < deadline, "streams did not open");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sender, receiver)
    });
    Pair {
        rt,
        sender,
        receiver,
        sent_side,
        recv_side,
        dir,
    }
}

/// Sends `n` copies of `m` keeping at most `window` unacknowledged, and waits for all.
fn pump(p: &Pair, m: &Message, n: u64, window: u64) -> Duration {
    let start = Instant::now();
    let base = p.recv_side.messages.load(Ordering::Acquire);
    let deadline = start + Duration::from_secs(60);
    let mut sent = 0;
    while p.recv_side.messages.load(Ordering::Acquire) - base < n {
        let received = p.recv_side.messages.load(Ordering::Acquire) - base;
        if sent < n && sent - received < window {
            let batch = (n - sent).min(256).min(window - (sent - received));
            p.sender.send((0..batch).map(|_| m.clone()).collect());
            sent += batch;
        } else {
            std::thread::yield_now();
        }
        assert!(Instant::now() < deadline, "messages were lost");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let p = pair();
    let mut g = c.benchmark_group("transport");

    let hb = Message {
        r#type: MessageType::MsgHeartbeat as i32,
        from: 1,
        to: 2,
        term: 5,
        commit: 9,
        ..Default::default()
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("small_messages", |b| {
        b.iter_custom(|iters| pump(&p, &hb, iters, 2048))
    });

    let entries: Vec<Entry> = (0..64)
        .map(|i| Entry {
            r#type: 0,
            term: 5,
            index: i,
            data: bytes::Bytes::from(vec![7u8; 256]),
        })
        .collect();
    let app = Message {
        r#type: MessageType::MsgApp as i32,
        from: 1,
        to: 2,
        term: 5,
        entries,
        ..Default::default()
    };
    g.throughput(Throughput::Bytes(64 * 256));
    g.bench_function("append_64x256B", |b| {
        b.iter_custom(|iters| pump(&p, &app, iters, 1024))
    });
    g.finish();

    let mb: usize = std::env::var("ETCD_TRANSPORT_BENCH_SNAPSHOT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let src = p.dir.path().join("snapshot.db");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).expect("create"));
        let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..mb {
            f.write_all(&block).expect("write");
        }
        f.flush().expect("flush");
    }
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((mb as u64) << 20));
    g.bench_function(format!("transfer_{mb}MB"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let before = p.sent_side.snapshots_ok.load(Ordering::Acquire);
                let m = Message {
                    r#type: MessageType::MsgSnap as i32,
                    from: 1,
                    to: 2,
                    term: 5,
                    snapshot: Some(Snapshot {
                        data: bytes::Bytes::new(),
                        metadata: Some(SnapshotMetadata {
                            index: 100,
                            term: 5,
                            conf_state: None,
                        }),
                    }),
                    ..Default::default()
                };
                p.sender.send_snapshot(m, SnapshotSource::File(src.clone()));
                let deadline = Instant::now() + Duration::from_secs(120);
                while p.sent_side.snapshots_ok.load(Ordering::Acquire) == before {
                    assert!(Instant::now() < deadline, "snapshot did not finish");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            start.elapsed()
        })
    });
    g.finish();
    let peak_send = p.sender.buffer_stats().peak_bytes;
    let peak_recv = p.receiver.buffer_stats().peak_bytes;
    println!("snapshot buffer peak: sender {peak_send} B, receiver {peak_recv} B");
    p.rt.block_on(async {
        p.sender.stop().await;
        p.receiver.stop().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
