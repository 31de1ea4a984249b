//! Raft benchmarks: (a) propose-to-commit throughput of a 3-member in-memory cluster
//! driven in one thread, batches of 1 and 64; (b) the cost of one `step` of an append
//! at a follower and of an append response at the leader.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etcd_proto::raftpb::{ConfState, Entry, Message, MessageType};
use etcd_raft::{Config, MemStorage, RawNode};

struct Node {
    raw: RawNode<MemStorage>,
    store: MemStorage,
}

struct Bench {
    nodes: Vec<Node>,
    queue: VecDeque<Message>,
    compacted: u64,
    rounds: u64,
}

fn config(id: u64) -> Config {
    Config {
        max_inflight_msgs: 4096,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Config::new(id)
    }
}

impl Bench {
    fn new() -> Self {
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let nodes = (1..=3)
            .map(|id| {
                let store = MemStorage::new_with_conf_state(cs.clone());
                Node {
                    raw: RawNode::new(&config(id), store.clone()).unwrap(),
                    store,
                }
            })
            .collect();
        let mut b = Bench {
            nodes,
            queue: VecDeque::new(),
            compacted: 0,
            rounds: 0,
        };
        b.nodes[0].raw.campaign().unwrap();
        b.drive();
        assert!(b.nodes[0].raw.is_leader());
        b
    }

    /// Processes readies and delivers messages until quiet. Returns committed count at node 1.
    fn drive(&mut self) -> usize {
        let mut committed = 0;
        loop {
            let mut busy = false;
            for (i, n) in self.nodes.iter_mut().enumerate() {
                if !n.raw.has_ready() {
                    continue;
                }
                busy = true;
                let mut rd = n.raw.ready();
                {
                    let mut core = n.store.wl();
                    core.append(rd.entries()).unwrap();
                    if let Some(hs) = rd.take_hard_state() {
                        core.set_hard_state(hs);
                    }
                }
                self.queue.extend(rd.take_messages());
                let ce = rd.take_committed_entries();
                if i == 0 {
                    committed += ce.len();
                }
                n.raw.advance();
            }
            while let Some(m) = self.queue.pop_front() {
                busy = true;
                let to = m.to as usize - 1;
                self.nodes[to].raw.step(m).unwrap();
            }
            if !busy {
                return committed;
            }
        }
    }

    /// Keeps the in-memory logs short, as a server would by compacting.
    fn maybe_compact(&mut self) {
        self.rounds += 1;
        if !self.rounds.is_multiple_of(1024) {
            return;
        }
        let commit = self.nodes[0].raw.status().hard_state.commit;
        if commit > self.compacted + 100_000 {
            for n in &self.nodes {
                let applied = n.raw.status().applied;
                n.store.wl().compact(applied.min(commit) - 1000).unwrap();
            }
            self.compacted = commit;
        }
    }
}

fn propose_to_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("propose_to_commit_3_members");
    for batch in [1usize, 64] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut cl = Bench::new();
            let payload = Bytes::from(vec![b'x'; 128]);
            b.iter(|| {
                let data = (0..batch).map(|_| payload.clone());
                cl.nodes[0].raw.propose_batch(data).unwrap();
                let n = cl.drive();
                assert!(n >= batch);
                cl.maybe_compact();
            });
        });
    }
    g.finish();
}

fn step_costs(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    g.bench_function("msg_app_at_follower", |b| {
        let cl = Bench::new();
        let mut nodes = cl.nodes;
        let mut follower = nodes.remove(1);
        let term = follower.raw.status().hard_state.term;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let st = follower.raw.status();
                let last = st.last_index;
                let mut m = Message {
                    from: 1,
                    to: 2,
                    term,
                    index: last,
                    log_term: term,
                    commit: st.hard_state.commit,
                    ..Default::default()
                };
                m.set_type(MessageType::MsgApp);
                m.entries = vec![Entry {
                    term,
                    index: last + 1,
                    data: Bytes::from_static(&[7u8; 128]),
                    ..Default::default()
                }];
                let t = Instant::now();
                follower.raw.step(black_box(m)).unwrap();
                total += t.elapsed();
                let mut rd = follower.raw.ready();
                follower.store.wl().append(rd.entries()).unwrap();
                black_box(rd.take_messages());
                follower.raw.advance();
            }
            total
        });
    });
    g.bench_function("msg_app_resp_at_leader", |b| {
        let mut cl = Bench::new();
        let term = cl.nodes[0].raw.status().hard_state.term;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let leader = &mut cl.nodes[0];
                leader.raw.propose(Bytes::from_static(&[7u8; 128])).unwrap();
                let mut rd = leader.raw.ready();
                leader.store.wl().append(rd.entries()).unwrap();
                black_box(rd.take_messages());
                leader.raw.advance();
                let last = leader.raw.status().last_index;
                let mut m = Message {
                    from: 2,
                    to: 1,
                    term,
                    index: last,
                    ..Default::default()
                };
                m.set_type(MessageType::MsgAppResp);
                let t = Instant::now();
                leader.raw.step(black_box(m)).unwrap();
                total += t.elapsed();
                // Follower 3 catches up too so that the inflight windows drain.
                let mut m3 = Message {
                    from: 3,
                    to: 1,
                    term,
                    index: last,
                    ..Default::default()
                };
                m3.set_type(MessageType::MsgAppResp);
                leader.raw.step(m3).unwrap();
                let mut rd = leader.raw.ready();
                if let Some(hs) = rd.take_hard_state() {
                    leader.store.wl().set_hard_state(hs);
                }
                black_box(rd.take_messages());
                black_box(rd.take_committed_entries());
                leader.raw.advance();
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, propose_to_commit, step_costs);
criterion_main!(benches);
