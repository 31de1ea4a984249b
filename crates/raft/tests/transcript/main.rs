//! Transcript tests: each `tests/testdata/*.txt` file is a cluster scenario. A line
//! `> command args` runs a command; the lines after it (up to a blank line) are the
//! expected output. Lines starting with `#` are comments. Run with `REWRITE=1` to
//! rewrite the expected output in place after an intended change.
//!
//! Commands (ids are node ids):
//!   add-nodes <id>... [voters=1,2,3] [learners=4] [join] [bootstrap=log] [pre-vote=false]
//!       [check-quorum=false] [read-only=lease] [max-inflight=N] [max-msg-bytes=N]
//!       [max-uncommitted-bytes=N] [max-committed-per-ready-bytes=N] [forwarding=false]
//!   campaign <id> | propose <id> <data> | propose-batch <id> <n>
//!   propose-conf-change <id> [v1] [transition=auto|implicit|explicit] add:<id> remove:<id> learner:<id>
//!   tick <id> [n] | tick-election <id> | tick-heartbeat <id>
//!   process-ready <id>... | deliver-msgs [<id>...] | drop-msgs [<id>...] | stabilize [max-rounds]
//!   partition <ids> / <ids> [/ ...] | isolate <id> | heal | crash <id> | restart <id>
//!   compact <id> | transfer-leadership <from> <to> | read-index <id> <ctx>
//!   report-unreachable <id> <peer> | report-snapshot <id> <peer> ok|fail
//!   status <id> | log <id> | raft-state | applied <id>

#![allow(clippy::unwrap_used)]

mod format;

use std::path::Path;

use bytes::Bytes;
use etcd_proto::raftpb::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};
use etcd_raft::sim::{Cluster, Delivery, ReadyTrace};
use etcd_raft::{Config, ReadOnlyOption, SnapshotStatus, StateRole};

struct Env {
    c: Cluster,
}

fn kv<'a>(args: &'a [&'a str], key: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn id_list(s: &str) -> Vec<u64> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap())
        .collect()
}

fn trace(id: u64, t: &ReadyTrace, out: &mut Vec<String>) {
    out.push(format!("n{id} ready:"));
    if let Some(ss) = &t.soft_state {
        out.push(format!("  role={:?} lead={}", ss.role, ss.leader_id));
    }
    if let Some(hs) = &t.hard_state {
        out.push(format!(
            "  hard term={} vote={} commit={}",
            hs.term, hs.vote, hs.commit
        ));
    }
    if let Some(s) = &t.snapshot {
        let md = s.metadata.clone().unwrap_or_default();
        out.push(format!(
            "  snapshot {}/{} {}",
            md.index,
            md.term,
            format::conf(&md.conf_state.unwrap_or_default())
        ));
    }
    if !t.entries.is_empty() {
        out.push(format!("  persist {}", format::entries(&t.entries)));
    }
    if !t.committed.is_empty() {
        out.push(format!("  apply {}", format::entries(&t.committed)));
    }
    for cs in &t.conf_states {
        out.push(format!("  conf -> {}", format::conf(cs)));
    }
    for rs in &t.read_states {
        out.push(format!(
            "  read-state index={} ctx={:?}",
            rs.index,
            String::from_utf8_lossy(&rs.request_ctx)
        ));
    }
    for m in &t.messages {
        out.push(format!("  send {}", format::message(m)));
    }
}

impl Env {
    fn ids(&self) -> Vec<u64> {
        self.c.nodes.keys().copied().collect()
    }

    fn process(&mut self, ids: &[u64], out: &mut Vec<String>) -> bool {
        let mut any = false;
        for &id in ids {
            if let Some(t) = self.c.process_ready(id) {
                trace(id, &t, out);
                any = true;
            }
        }
        any
    }

    fn deliver(&mut self, to: &[u64], out: &mut Vec<String>) -> bool {
        let msgs = std::mem::take(&mut self.c.network);
        let mut any = false;
        for m in msgs {
            if !to.is_empty() && !to.contains(&m.to) {
                self.c.network.push(m);
                continue;
            }
            any = true;
            let line = format::message(&m);
            if self.c.deliver(m) == Delivery::Dropped {
                out.push(format!("dropped {line}"));
            }
        }
        any
    }

    fn run(&mut self, line: &str) -> Vec<String> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = (parts[0], &parts[1..]);
        let num = |i: usize| -> u64 {
            args[i]
                .parse()
                .unwrap_or_else(|_| panic!("bad number in {line:?}"))
        };
        let mut out = Vec::new();
        match cmd {
            "add-nodes" => {
                let new: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
                let voters = kv(args, "voters")
                    .map(id_list)
                    .unwrap_or_else(|| new.clone());
                let learners = kv(args, "learners").map(id_list).unwrap_or_default();
                let cs = if args.contains(&"join") {
                    ConfState::default()
                } else {
                    ConfState {
                        voters,
                        learners,
                        ..Default::default()
                    }
                };
                let mut cfg = Config {
                    election_tick: 10,
                    heartbeat_tick: 1,
                    seed: 1,
                    ..Config::new(1)
                };
                cfg.pre_vote = kv(args, "pre-vote") != Some("false");
                cfg.check_quorum = kv(args, "check-quorum") != Some("false");
                cfg.disable_proposal_forwarding = kv(args, "forwarding") == Some("false");
                if kv(args, "read-only") == Some("lease") {
                    cfg.read_only_option = ReadOnlyOption::LeaseBased;
                }
                let n = |k: &str| kv(args, k).map(|v| v.parse::<u64>().unwrap());
                if let Some(v) = n("max-inflight") {
                    cfg.max_inflight_msgs = v as usize;
                }
                if let Some(v) = n("max-msg-bytes") {
                    cfg.max_size_per_msg_bytes = v;
                }
                if let Some(v) = n("max-uncommitted-bytes") {
                    cfg.max_uncommitted_entries_bytes = v;
                }
                if let Some(v) = n("max-committed-per-ready-bytes") {
                    cfg.max_committed_size_per_ready_bytes = v;
                }
                let by_log = kv(args, "bootstrap") == Some("log");
                for id in new {
                    if by_log {
                        self.c
                            .add_node_bootstrapped_by_log(id, cfg.clone(), &cs.voters);
                    } else {
                        self.c.add_node(id, cfg.clone(), cs.clone());
                    }
                    out.extend(format::status(&self.c.raw(id).status()));
                }
            }
            "campaign" => {
                if let Err(e) = self.c.raw(num(0)).campaign() {
                    out.push(format!("error: {e}"));
                }
            }
            "propose" => {
                if let Err(e) = self.c.raw(num(0)).propose(Bytes::from(args[1].to_string())) {
                    out.push(format!("error: {e}"));
                }
            }
            "propose-batch" => {
                let data = (0..num(1)).map(|i| Bytes::from(format!("b{i}")));
                if let Err(e) = self.c.raw(num(0)).propose_batch(data) {
                    out.push(format!("error: {e}"));
                }
            }
            "propose-conf-change" => {
                let mut changes = Vec::new();
                for a in &args[1..] {
                    let (k, v) = match a.split_once(':') {
                        Some(x) => x,
                        None => continue,
                    };
                    let t = match k {
                        "add" => ConfChangeType::ConfChangeAddNode,
                        "remove" => ConfChangeType::ConfChangeRemoveNode,
                        "learner" => ConfChangeType::ConfChangeAddLearnerNode,
                        _ => ConfChangeType::ConfChangeUpdateNode,
                    };
                    changes.push(ConfChangeSingle {
                        r#type: t as i32,
                        node_id: v.parse().unwrap(),
                    });
                }
                let r = if args.contains(&"v1") {
                    let c = &changes[0];
                    let cc = ConfChange {
                        r#type: c.r#type,
                        node_id: c.node_id,
                        ..Default::default()
                    };
                    self.c.raw(num(0)).propose_conf_change(&cc)
                } else {
                    let transition = match kv(args, "transition") {
                        Some("implicit") => 1,
                        Some("explicit") => 2,
                        _ => 0,
                    };
                    let cc = ConfChangeV2 {
                        transition,
                        changes,
                        context: Vec::new(),
                    };
                    self.c.raw(num(0)).propose_conf_change(&cc)
                };
                if let Err(e) = r {
                    out.push(format!("error: {e}"));
                }
            }
            "tick" => {
                let n = if args.len() > 1 { num(1) } else { 1 };
                for _ in 0..n {
                    self.c.raw(num(0)).tick();
                }
            }
            "tick-heartbeat" => self.c.raw(num(0)).tick(),
            "tick-election" => {
                let id = num(0);
                let before = self.c.raw(id).status();
                let leader = before.soft_state.role == StateRole::Leader;
                // A leader ticks one election timeout; others tick until their
                // randomized timeout fires (at most twice the election timeout).
                for _ in 0..if leader { 10 } else { 20 } {
                    self.c.raw(id).tick();
                    let st = self.c.raw(id).status();
                    if !leader
                        && (st.soft_state != before.soft_state
                            || st.hard_state.term != before.hard_state.term)
                    {
                        break;
                    }
                }
            }
            "process-ready" => {
                let ids: Vec<u64> = if args.is_empty() {
                    self.ids()
                } else {
                    args.iter().map(|a| a.parse().unwrap()).collect()
                };
                self.process(&ids, &mut out);
            }
            "deliver-msgs" => {
                let to: Vec<u64> = args.iter().map(|a| a.parse().unwrap()).collect();
                self.deliver(&to, &mut out);
            }
            "drop-msgs" => {
                let to: Vec<u64> = args.iter().map(|a| a.parse().unwrap()).collect();
                let msgs = std::mem::take(&mut self.c.network);
                for m in msgs {
                    if to.is_empty() || to.contains(&m.to) {
                        out.push(format!("dropped {}", format::message(&m)));
                    } else {
                        self.c.network.push(m);
                    }
                }
            }
            "stabilize" => {
                let max = if args.is_empty() { 100 } else { num(0) };
                for _ in 0..max {
                    let ids = self.ids();
                    let a = self.process(&ids, &mut out);
                    let b = self.deliver(&[], &mut out);
                    if !a && !b {
                        break;
                    }
                }
            }
            "partition" => {
                let groups: Vec<Vec<u64>> = line["partition".len()..]
                    .split('/')
                    .map(|g| g.split_whitespace().map(|x| x.parse().unwrap()).collect())
                    .collect();
                self.c.partition(&groups);
            }
            "isolate" => {
                let id = num(0);
                let rest: Vec<u64> = self.ids().into_iter().filter(|x| *x != id).collect();
                self.c.partition(&[vec![id], rest]);
            }
            "heal" => self.c.heal(),
            "crash" => self.c.crash(num(0)),
            "restart" => {
                self.c.restart(num(0));
                out.extend(format::status(&self.c.raw(num(0)).status()));
            }
            "compact" => match self.c.compact(num(0)) {
                Some(i) => out.push(format!("compacted {} up to {i}", num(0))),
                None => out.push("nothing to compact".to_string()),
            },
            "transfer-leadership" => self.c.raw(num(0)).transfer_leader(num(1)),
            "read-index" => self
                .c
                .raw(num(0))
                .read_index(Bytes::from(args[1].to_string())),
            "report-unreachable" => self.c.raw(num(0)).report_unreachable(num(1)),
            "report-snapshot" => {
                let st = if args[2] == "ok" {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.c.raw(num(0)).report_snapshot(num(1), st);
            }
            "status" => out.extend(format::status(&self.c.raw(num(0)).status())),
            "log" => {
                let ents = self.c.raw(num(0)).log_entries();
                if ents.is_empty() {
                    out.push("(empty)".to_string());
                }
                for e in &ents {
                    out.push(format::entry(e));
                }
            }
            "applied" => {
                let n = &self.c.nodes[&num(0)];
                let data: Vec<String> = n
                    .applied_data
                    .iter()
                    .map(|(i, d)| format!("{i}:{}", String::from_utf8_lossy(d)))
                    .collect();
                out.push(format!("applied={} [{}]", n.applied_index, data.join(" ")));
            }
            "raft-state" => {
                for id in self.ids() {
                    if !self.c.is_up(id) {
                        out.push(format!("{id}: down"));
                        continue;
                    }
                    let st = self.c.raw(id).status();
                    out.push(format!(
                        "{id}: {} term={} lead={} commit={} applied={}",
                        format::role(&st),
                        st.hard_state.term,
                        st.soft_state.leader_id,
                        st.hard_state.commit,
                        st.applied
                    ));
                }
            }
            other => panic!("unknown command {other:?}"),
        }
        if let Some(d) = &self.c.divergence {
            out.push(format!("STATE MACHINE DIVERGENCE: {d}"));
        }
        out
    }
}

struct Block {
    comments: Vec<String>,
    command: String,
    expected: Vec<String>,
}

fn parse(text: &str) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut comments = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(cmd) = l.strip_prefix("> ") {
            let mut expected = Vec::new();
            while let Some(n) = lines.peek() {
                if n.trim().is_empty() || n.starts_with("> ") || n.starts_with('#') {
                    break;
                }
                expected.push(n.to_string());
                lines.next();
            }
            blocks.push(Block {
                comments: std::mem::take(&mut comments),
                command: cmd.trim().to_string(),
                expected,
            });
        } else if l.starts_with('#') {
            comments.push(l.to_string());
        }
    }
    (blocks, comments)
}

fn run_file(path: &Path, rewrite: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let (blocks, trailing) = parse(&text);
    let mut env = Env { c: Cluster::new() };
    let mut rendered = String::new();
    let mut first_diff = None;
    for b in &blocks {
        for c in &b.comments {
            rendered += c;
            rendered += "\n";
        }
        let got = env.run(&b.command);
        rendered += &format!("> {}\n", b.command);
        for g in &got {
            rendered += g;
            rendered += "\n";
        }
        rendered += "\n";
        if got != b.expected && first_diff.is_none() {
            first_diff = Some(format!(
                "{}: command `{}`\n--- expected\n{}\n--- got\n{}",
                path.display(),
                b.command,
                b.expected.join("\n"),
                got.join("\n")
            ));
        }
    }
    for c in trailing {
        rendered += &c;
        rendered += "\n";
    }
    if rewrite {
        if rendered != text {
            std::fs::write(path, rendered).unwrap();
        }
        return Ok(());
    }
    first_diff.map_or(Ok(()), Err)
}

#[test]
fn transcripts_replay_as_recorded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let rewrite = std::env::var("REWRITE").is_ok_and(|v| v == "1");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    files.sort();
    assert!(
        files.len() >= 25,
        "expected at least 25 transcripts, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run_file(f, rewrite).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} transcript(s) differ (REWRITE=1 to accept):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
