//! Snapshot transfer between two members on loopback: content arrives intact and
//! staged, memory on both sides stays within a few chunks, and a receiver refuses
//! corrupt or unsafe transfers without leaving files behind.
//!
//! The size of the big transfer is `ETCD_TRANSPORT_SNAPSHOT_MB` (default 200 MB, which takes
//! about 5 s in a debug build; set it lower on slow disks).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use etcd_proto::rafthttppb::peer_client::PeerClient;
use etcd_proto::rafthttppb::snapshot_chunk::Chunk;
use etcd_proto::rafthttppb::{SnapshotChunk, SnapshotFile, SnapshotHeader, SnapshotTrailer};
use etcd_proto::raftpb::{Message, MessageType, Snapshot, SnapshotMetadata};
use etcd_transport::{SnapshotSource, CLUSTER_ID_HEADER, FROM_HEADER, TO_HEADER};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn snap_msg(from: u64, to: u64, index: u64) -> Message {
    Message {
        r#type: MessageType::MsgSnap as i32,
        from,
        to,
        term: 2,
        snapshot: Some(Snapshot {
            data: bytes::Bytes::from_static(b"membership"),
            metadata: Some(SnapshotMetadata {
                index,
                term: 2,
                conf_state: None,
            }),
        }),
        ..Default::default()
    }
}

/// Writes `len` pseudo-random bytes (deterministic per seed) in 1 MiB pieces.
fn write_file(path: &std::path::Path, len: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

fn crc_of(path: &std::path::Path) -> u32 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return crc;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_snapshot_transfers_with_bounded_memory() {
    let mb: usize = std::env::var("ETCD_TRANSPORT_SNAPSHOT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("checkpoint");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    write_file(&src.join("000010.sst"), mb << 20, 1);
    write_file(&src.join("MANIFEST-000005"), 12_345, 2);
    write_file(&src.join("sub/OPTIONS"), 777, 3);
    std::fs::File::create(src.join("empty.log")).unwrap();

    let members = cluster(dir.path()).await;
    let chunk = members[0].transport.buffer_stats();
    assert_eq!(chunk.peak_bytes, 0);
    members[0]
        .transport
        .send_snapshot(snap_msg(1, 2, 42), SnapshotSource::Dir(src.clone()));
    assert!(
        wait_until(WAIT, || !members[0].raft.snapshot_reports.lock().is_empty()).await,
        "the transfer finishes"
    );
    assert_eq!(*members[0].raft.snapshot_reports.lock(), vec![(2, true)]);
    let snaps = members[1].raft.snapshots.lock().clone();
    assert_eq!(snaps.len(), 1);
    let (m, staged, files) = &snaps[0];
    assert_eq!(
        m.snapshot
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .index,
        42
    );
    assert_eq!(m.snapshot.as_ref().unwrap().data.as_ref(), b"membership");
    assert!(staged.starts_with(dir.path().join("m2")));
    assert_eq!(files.len(), 4);
    for (rel, size) in files {
        let a = src.join(rel);
        let b = staged.join(rel);
        assert_eq!(std::fs::metadata(&b).unwrap().len(), *size);
        assert_eq!(crc_of(&a), crc_of(&b), "{} differs", rel.display());
    }
    let chunk_bytes = etcd_transport::DEFAULT_SNAPSHOT_CHUNK_BYTES as u64;
    for m in &members[..2] {
        let b = m.transport.buffer_stats();
        assert_eq!(b.current_bytes, 0);
        assert!(
            b.peak_bytes > 0 && b.peak_bytes <= 3 * chunk_bytes,
            "member {} held {:?}",
            m.id,
            b
        );
    }
    let total = (mb << 20) as u64 + 12_345 + 777;
    assert!(members[0].transport.stats(2).unwrap().sent_bytes >= total);
    assert!(members[1].transport.stats(1).unwrap().received_bytes >= total);
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_file_and_bare_snapshots_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    write_file(&db, 3 << 20, 9);
    let members = cluster(dir.path()).await;
    members[0]
        .transport
        .send_snapshot(snap_msg(1, 3, 7), SnapshotSource::File(db.clone()));
    assert!(wait_until(WAIT, || members[0].raft.snapshot_reports.lock().len() == 1).await);
    members[0]
        .transport
        .send_snapshot(snap_msg(1, 3, 8), SnapshotSource::None);
    assert!(wait_until(WAIT, || members[0].raft.snapshot_reports.lock().len() == 2).await);
    assert_eq!(
        *members[0].raft.snapshot_reports.lock(),
        vec![(3, true), (3, true)]
    );
    let snaps = members[2].raft.snapshots.lock().clone();
    assert_eq!(snaps[0].2, vec![(std::path::PathBuf::from("db"), 3 << 20)]);
    assert_eq!(crc_of(&db), crc_of(&snaps[0].1.join("db")));
    assert!(snaps[1].2.is_empty());
    // A missing source fails and is reported.
    members[0].transport.send_snapshot(
        snap_msg(1, 3, 9),
        SnapshotSource::File(dir.path().join("nope")),
    );
    assert!(wait_until(WAIT, || members[0].raft.snapshot_reports.lock().len() == 3).await);
    assert_eq!(members[0].raft.snapshot_reports.lock()[2], (3, false));
    stop_all(members).await;
}

fn chunks(
    header: SnapshotHeader,
    data: Vec<Vec<u8>>,
    crc: u32,
) -> tonic::Request<impl tokio_stream::Stream<Item = SnapshotChunk>> {
    let mut items = vec![SnapshotChunk {
        chunk: Some(Chunk::Header(header)),
    }];
    items.extend(data.into_iter().map(|d| SnapshotChunk {
        chunk: Some(Chunk::Data(d)),
    }));
    items.push(SnapshotChunk {
        chunk: Some(Chunk::Trailer(SnapshotTrailer { crc32c: crc })),
    });
    let mut r = tonic::Request::new(tokio_stream::iter(items));
    r.metadata_mut()
        .insert(CLUSTER_ID_HEADER, format!("{CLUSTER:x}").parse().unwrap());
    r.metadata_mut().insert(FROM_HEADER, "2".parse().unwrap());
    r.metadata_mut().insert(TO_HEADER, "1".parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_unsafe_snapshots_are_refused_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let m1 = start_member(config(1, dir.path().join("stage")), "127.0.0.1:0").await;
    let mut client = PeerClient::connect(m1.url.clone()).await.unwrap();
    let header = |path: &str, size: u64| SnapshotHeader {
        message: Some(snap_msg(2, 1, 5)),
        files: vec![SnapshotFile {
            path: path.to_string(),
            size,
        }],
        is_dir: true,
    };
    let data = vec![b"hello ".to_vec(), b"world".to_vec()];
    let good_crc = crc32c::crc32c(b"hello world");

    let err = client
        .snapshot(chunks(header("f", 11), data.clone(), good_crc ^ 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    let err = client
        .snapshot(chunks(header("../escape", 11), data.clone(), good_crc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .snapshot(chunks(header("f", 10), data.clone(), good_crc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "more data than listed");
    let err = client
        .snapshot(chunks(header("f", 12), data.clone(), good_crc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "less data than listed");
    assert!(!dir.path().join("escape").exists());
    let leftovers = std::fs::read_dir(dir.path().join("stage")).unwrap().count();
    assert_eq!(leftovers, 0, "refused transfers leave nothing staged");
    assert!(m1.raft.snapshots.lock().is_empty());

    let ok = client
        .snapshot(chunks(header("f", 11), data, good_crc))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().bytes_received, 11);
    let (_, staged, _) = m1.raft.snapshots.lock()[0].clone();
    assert_eq!(std::fs::read(staged.join("f")).unwrap(), b"hello world");
    stop_all(vec![m1]).await;
}
