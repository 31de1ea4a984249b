//! A replicated key-value store of three members over in-process channels.
//!
//! Each member runs on its own thread and is the only owner of its `RawNode`. The loop:
//! take messages and proposals from the channel, tick every 10 ms, and on each `Ready`:
//! persist the snapshot, entries and hard state (a leader may send its messages
//! first; a follower only after persisting), send the messages, apply the committed
//! entries to the map, then `advance`.
//!
//! Run with `cargo run -p etcd-raft --example kv`.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::raftpb::{ConfState, EntryType, Message};
use etcd_raft::{decode_conf_change, Config, MemStorage, RawNode, Ready, StateRole};

/// What a member's thread receives.
enum Input {
    /// A raft message from a peer.
    Raft(Box<Message>),
    /// A client write `key=value`.
    Put(String, String),
    /// Report the state machine and stop.
    Stop(Sender<(u64, BTreeMap<String, String>)>),
}

/// What members tell the main thread.
enum Event {
    Leader(u64),
    Applied(u64, u64),
}

struct Member {
    node: RawNode<MemStorage>,
    storage: MemStorage,
    peers: BTreeMap<u64, Sender<Input>>,
    kv: BTreeMap<String, String>,
    events: Sender<Event>,
    is_leader: bool,
}

impl Member {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            // A peer that has stopped simply misses messages; raft retries.
            if let Some(p) = self.peers.get(&m.to) {
                let _ = p.send(Input::Raft(Box::new(m)));
            }
        }
    }

    fn handle_ready(&mut self, mut rd: Ready) {
        if let Some(ss) = rd.soft_state() {
            self.is_leader = ss.role == StateRole::Leader;
            if self.is_leader {
                let _ = self.events.send(Event::Leader(self.node.id()));
            }
        }
        // The leader may send before persisting: its own acknowledgement is implied.
        if self.is_leader {
            self.send(rd.take_messages());
        }
        if let Some(snap) = rd.take_snapshot() {
            self.storage
                .wl()
                .apply_snapshot(snap)
                .expect("snapshot newer than ours");
        }
        self.storage
            .wl()
            .append(rd.entries())
            .expect("entries follow our log");
        if let Some(hs) = rd.take_hard_state() {
            self.storage.wl().set_hard_state(hs);
        }
        // Followers acknowledge only what they have persisted.
        self.send(rd.take_messages());
        let mut last = None;
        for e in rd.take_committed_entries() {
            last = Some(e.index);
            if e.r#type == EntryType::EntryNormal as i32 {
                if let Some((k, v)) = std::str::from_utf8(&e.data)
                    .ok()
                    .and_then(|s| s.split_once('='))
                {
                    self.kv.insert(k.to_string(), v.to_string());
                }
            } else if let Ok(Some(cc)) = decode_conf_change(&e) {
                let cs = self
                    .node
                    .apply_conf_change(&cc)
                    .expect("committed conf change is valid");
                self.storage
                    .wl()
                    .create_snapshot(e.index, Some(cs), Bytes::new())
                    .ok();
            }
        }
        if let Some(i) = last {
            let _ = self.events.send(Event::Applied(self.node.id(), i));
        }
        self.node.advance();
    }

    fn run(mut self, inbox: Receiver<Input>) {
        let tick = Duration::from_millis(10);
        let mut next_tick = Instant::now() + tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(Input::Raft(m)) => {
                    let m = *m;
                    let _ = self.node.step(m);
                }
                Ok(Input::Put(k, v)) => {
                    if let Err(e) = self.node.propose(Bytes::from(format!("{k}={v}"))) {
                        eprintln!("member {}: put {k} dropped: {e}", self.node.id());
                    }
                }
                Ok(Input::Stop(reply)) => {
                    let _ = reply.send((self.node.id(), self.kv.clone()));
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick += tick;
            }
            while self.node.has_ready() {
                let rd = self.node.ready();
                self.handle_ready(rd);
            }
        }
    }
}

fn main() {
    let ids = [1u64, 2, 3];
    let cs = ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    };
    let (event_tx, event_rx) = channel();
    let mut inboxes = BTreeMap::new();
    let mut senders = BTreeMap::new();
    for id in ids {
        let (tx, rx) = channel();
        senders.insert(id, tx);
        inboxes.insert(id, rx);
    }
    let mut handles = Vec::new();
    for id in ids {
        let storage = MemStorage::new_with_conf_state(cs.clone());
        let config = Config {
            election_tick: 10,
            heartbeat_tick: 1,
            seed: id,
            ..Config::new(id)
        };
        let member = Member {
            node: RawNode::new(&config, storage.clone()).expect("valid config"),
            storage,
            peers: senders
                .iter()
                .filter(|(p, _)| **p != id)
                .map(|(p, s)| (*p, s.clone()))
                .collect(),
            kv: BTreeMap::new(),
            events: event_tx.clone(),
            is_leader: false,
        };
        let inbox = inboxes.remove(&id).expect("one inbox per member");
        handles.push(thread::spawn(move || member.run(inbox)));
    }

    // Wait for a leader, then write through it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        match event_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Leader(id)) => break id,
            Ok(Event::Applied(..)) => {}
            Err(_) => panic!("no leader elected within 10 s"),
        }
    };
    println!("member {leader} is the leader");
    let writes = 100;
    for i in 0..writes {
        let put = Input::Put(format!("key{i}"), format!("value{i}"));
        senders[&leader].send(put).expect("leader is running");
    }

    // Wait until every member applied the writes (leader's empty entry + the writes,
    // after the initial index 0).
    let target = writes + 1;
    let mut applied: BTreeMap<u64, u64> = BTreeMap::new();
    while applied.len() < ids.len() || applied.values().any(|a| *a < target) {
        match event_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Applied(id, index)) => {
                applied.insert(id, index);
            }
            Ok(Event::Leader(_)) => {}
            Err(_) => panic!("writes not applied everywhere within 10 s: {applied:?}"),
        }
    }

    let (reply_tx, reply_rx) = channel();
    for s in senders.values() {
        s.send(Input::Stop(reply_tx.clone()))
            .expect("member is running");
    }
    let mut stores = Vec::new();
    for _ in ids {
        stores.push(reply_rx.recv().expect("every member replies"));
    }
    for h in handles {
        h.join().expect("member thread exits cleanly");
    }
    for (id, kv) in &stores {
        println!(
            "member {id}: {} keys, key42={:?}",
            kv.len(),
            kv.get("key42")
        );
    }
    assert!(
        stores.iter().all(|(_, kv)| kv == &stores[0].1),
        "replicas agree"
    );
}
