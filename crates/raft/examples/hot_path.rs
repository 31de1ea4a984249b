//! The hot path of replication, repeated N times, for counting heap allocations per
//! entry with an external tool (the workspace forbids `unsafe`, so no counting
//! global allocator here):
//!
//! ```text
//! cargo build --release -p etcd-raft --example hot_path
//! for n in 1000 2000; do
//!   valgrind --tool=dhat --dhat-out-file=/dev/null \
//!     $CARGO_TARGET_DIR/release/examples/hot_path leader $n 2>&1 | grep 'Total:'
//! done
//! ```
//!
//! The difference of the two block counts divided by the difference of N is the
//! number of allocations per round; a round handles `batch` entries.
//!
//! Modes (`hot_path MODE N [BATCH]`):
//! - `leader`: propose BATCH entries at a leader of three, persist its `Ready`, step
//!   both followers' acknowledgements, persist and apply the next `Ready` (the
//!   leader's half of propose -> append -> commit; followers are simulated).
//! - `follower`: step one `MsgApp` of BATCH entries at a follower (its entry vector,
//!   one allocation, stands for the transport's decoding and is counted), then
//!   persist its `Ready` and `advance`.
//! - `cluster`: the whole round trip in a three-member in-memory cluster (what the
//!   `propose_to_commit` bench measures).
//!
//! Payloads are `Bytes::from_static`, so the payload itself never allocates: every
//! block counted is raft's (or the in-memory storage's, or the message vectors').
//! With a fourth argument `owned`, payloads are `Bytes::from(Vec<u8>)` instead, as
//! an application that encodes its requests makes them: that adds the payload's own
//! allocation and the one `bytes` makes when such a buffer is first shared.

use std::collections::VecDeque;
use std::hint::black_box;
use std::process::ExitCode;

use bytes::Bytes;
use etcd_proto::raftpb::{ConfState, Entry, Message, MessageType};
use etcd_raft::{Config, MemStorage, RawNode, Ready};

const PAYLOAD: &[u8] = &[7u8; 128];

/// Whether payloads are owned buffers (`owned` argument) rather than static.
static OWNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn payload() -> Bytes {
    if OWNED.load(std::sync::atomic::Ordering::Relaxed) {
        Bytes::from(PAYLOAD.to_vec())
    } else {
        Bytes::from_static(PAYLOAD)
    }
}

struct Node {
    raw: RawNode<MemStorage>,
    store: MemStorage,
}

fn node(id: u64) -> Node {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    let store = MemStorage::new_with_conf_state(cs);
    let cfg = Config {
        max_inflight_msgs: 4096,
        ..Config::new(id)
    };
    let raw = match RawNode::new(&cfg, store.clone()) {
        Ok(r) => r,
        Err(e) => panic!("valid config: {e}"),
    };
    Node { raw, store }
}

/// Persists a `Ready` into the node's storage and acknowledges it; returns its
/// messages and how many entries it committed.
fn handle(n: &mut Node, mut rd: Ready) -> (Vec<Message>, usize) {
    {
        let mut core = n.store.wl();
        if let Err(e) = core.append(rd.entries()) {
            panic!("append to memory storage: {e}");
        }
        if let Some(hs) = rd.take_hard_state() {
            core.set_hard_state(hs);
        }
    }
    let msgs = rd.take_messages();
    let committed = rd.take_committed_entries().len();
    n.raw.advance();
    (msgs, committed)
}

fn drain(n: &mut Node) -> Vec<Message> {
    let mut out = Vec::new();
    while n.raw.has_ready() {
        let rd = n.raw.ready();
        out.extend(handle(n, rd).0);
    }
    out
}

/// Three nodes, node 1 elected, everything delivered.
fn cluster() -> Vec<Node> {
    let mut nodes: Vec<Node> = (1..=3).map(node).collect();
    if let Err(e) = nodes[0].raw.campaign() {
        panic!("campaign: {e}");
    }
    let mut queue: VecDeque<Message> = VecDeque::new();
    loop {
        for n in nodes.iter_mut() {
            queue.extend(drain(n));
        }
        if queue.is_empty() {
            break;
        }
        while let Some(m) = queue.pop_front() {
            let to = m.to as usize - 1;
            let _ = nodes[to].raw.step(m);
        }
    }
    assert!(nodes[0].raw.is_leader());
    nodes
}

fn propose(n: &mut Node, batch: usize) {
    let r = if batch == 1 {
        n.raw.propose(payload())
    } else {
        n.raw.propose_batch((0..batch).map(|_| payload()))
    };
    if let Err(e) = r {
        panic!("the leader accepts proposals: {e}");
    }
}

fn leader_rounds(rounds: u64, batch: usize) {
    let mut nodes = cluster();
    let leader = &mut nodes[0];
    let st = leader.raw.status();
    let (term, mut last) = (st.hard_state.term, st.last_index);
    for _ in 0..rounds {
        propose(leader, batch);
        let rd = leader.raw.ready();
        black_box(handle(leader, rd));
        last += batch as u64;
        for from in [2, 3] {
            let mut m = Message {
                from,
                to: 1,
                term,
                index: last,
                ..Default::default()
            };
            m.set_type(MessageType::MsgAppResp);
            if let Err(e) = leader.raw.step(m) {
                panic!("ack: {e}");
            }
        }
        let rd = leader.raw.ready();
        let (_, committed) = handle(leader, rd);
        assert_eq!(committed, batch);
    }
}

fn follower_rounds(rounds: u64, batch: usize) {
    let mut nodes = cluster();
    let follower = &mut nodes[1];
    let st = follower.raw.status();
    let term = st.hard_state.term;
    let mut last = st.last_index;
    for _ in 0..rounds {
        // The message's entry vector is the transport's allocation (one per
        // message), counted in this mode's total.
        let entries: Vec<Entry> = (1..=batch as u64)
            .map(|i| Entry {
                term,
                index: last + i,
                data: payload(),
                ..Default::default()
            })
            .collect();
        let mut m = Message {
            from: 1,
            to: 2,
            term,
            index: last,
            log_term: term,
            commit: last,
            entries,
            ..Default::default()
        };
        m.set_type(MessageType::MsgApp);
        if let Err(e) = follower.raw.step(m) {
            panic!("append: {e}");
        }
        last += batch as u64;
        let rd = follower.raw.ready();
        black_box(handle(follower, rd));
    }
}

fn cluster_rounds(rounds: u64, batch: usize) {
    let mut nodes = cluster();
    let mut queue: VecDeque<Message> = VecDeque::new();
    for _ in 0..rounds {
        propose(&mut nodes[0], batch);
        loop {
            for n in nodes.iter_mut() {
                queue.extend(drain(n));
            }
            if queue.is_empty() {
                break;
            }
            while let Some(m) = queue.pop_front() {
                let to = m.to as usize - 1;
                let _ = nodes[to].raw.step(m);
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let rounds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    if args.get(3).is_some_and(|a| a == "owned") {
        OWNED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    match mode {
        "leader" => leader_rounds(rounds, batch),
        "follower" => follower_rounds(rounds, batch),
        "cluster" => cluster_rounds(rounds, batch),
        _ => {
            eprintln!("usage: hot_path leader|follower|cluster ROUNDS [BATCH [owned]]");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
