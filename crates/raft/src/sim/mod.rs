//! Deterministic randomized simulation of raft clusters.
//!
//! [`run`] builds a cluster of 3 or 5 voters (sometimes plus a learner) from one
//! `u64` seed and drives it for a number of steps with random proposals, conf changes
//! (v1 and joint v2), leader transfers, crashes and restarts (losing only unpersisted
//! state), partitions, message drops, duplicates, reordering and delays. After every
//! step the [`Checker`] checks election safety, log matching, leader completeness and
//! state machine safety (incrementally: it looks only at what changed), and every
//! linearizable read is checked against what was committed before it was asked.
//! Every [`PROGRESS_CHECK_STEPS`] steps and at the end, every fault heals (links cut
//! are restored, crashed members restart, nodes removed from the configuration stop
//! as etcd stops them) and a new proposal must be applied by every member within a
//! bounded number of rounds. The same seed always replays the same run.

mod check;
mod cluster;

pub use check::Checker;
pub use cluster::{fold_hash, Cluster, Delivery, ReadyTrace, SimNode, EMPTY_HASH};

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Config, ReadOnlyOption};

/// Summary of a successful run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Steps executed.
    pub steps: usize,
    /// Highest index applied by any node.
    pub max_applied: u64,
    /// Distinct terms that had a leader.
    pub leader_terms: usize,
    /// Crashes injected.
    pub crashes: usize,
    /// Conf changes proposed.
    pub conf_changes: usize,
    /// Snapshots (compactions) taken.
    pub compactions: usize,
    /// Messages dropped by faults.
    pub dropped: usize,
    /// Linearizable reads answered (and checked).
    pub reads_served: usize,
    /// Times every fault healed and the cluster had to make progress.
    pub progress_checks: usize,
    /// The most rounds a healed cluster needed to apply a proposal everywhere.
    pub progress_rounds: usize,
}

/// Every this many steps the faults heal and the cluster must make progress.
pub const PROGRESS_CHECK_STEPS: usize = 500;

/// Rounds (a tick of every node, then up to 50 rounds of message delivery) a healed
/// cluster gets to elect a leader and commit a proposal on every member.
const PROGRESS_ROUNDS: usize = 1000;

/// A failed run: the seed (with the run's step count) reproduces it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// The steps the run was asked for (with the seed, what reproduces it).
    pub steps: usize,
    /// The step at which the check failed.
    pub step: usize,
    /// What went wrong.
    pub reason: String,
    /// The last events before the failure.
    pub trace: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "raft simulation failed: seed {} step {}: {}",
            self.seed, self.step, self.reason
        )?;
        writeln!(f, "reproduce with: {}", self.reproduce())?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

impl SimFailure {
    /// The command that replays this run exactly.
    pub fn reproduce(&self) -> String {
        format!(
            "cargo xtask sim --seed {} --seeds 1 --steps {} \
             (or: RAFT_SIM_SEED={} RAFT_SIM_SEEDS=1 RAFT_SIM_STEPS={} cargo test -p etcd-raft --test sim)",
            self.seed, self.steps, self.seed, self.steps
        )
    }
}

impl std::error::Error for SimFailure {}

struct Sim {
    rng: StdRng,
    cluster: Cluster,
    checker: Checker,
    report: SimReport,
    trace: Vec<String>,
    next_id: u64,
    seq: u64,
    /// PreVote and CheckQuorum for this run (the same on every node).
    elections_guarded: bool,
    read_failure: Option<String>,
    /// Pending reads: context -> highest commit index in the cluster when asked.
    reads: std::collections::BTreeMap<Bytes, u64>,
}

fn cc_single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
    ConfChangeSingle {
        r#type: t as i32,
        node_id: id,
    }
}

impl Sim {
    fn log(&mut self, s: String) {
        if self.trace.len() >= 64 {
            self.trace.remove(0);
        }
        self.trace.push(s);
    }

    fn live_ids(&self) -> Vec<u64> {
        self.cluster
            .nodes
            .iter()
            .filter(|(_, n)| n.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.random_range(0..v.len())])
        }
    }

    fn config(&mut self) -> Config {
        Config {
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg_bytes: self.rng.random_range(16..256),
            max_inflight_msgs: self.rng.random_range(1..8),
            check_quorum: self.elections_guarded,
            pre_vote: self.elections_guarded,
            read_only_option: ReadOnlyOption::Safe,
            seed: self.rng.random_range(0..u64::MAX),
            ..Config::new(1)
        }
    }

    fn crashed_voters(&self, cs: &ConfState) -> usize {
        cs.voters
            .iter()
            .filter(|id| !self.cluster.is_up(**id))
            .count()
    }

    fn step(&mut self) {
        let roll = self.rng.random_range(0..100u32);
        let ids: Vec<u64> = self.cluster.nodes.keys().copied().collect();
        match roll {
            0..=17 => {
                // Tick one node, or all.
                if self.rng.random_range(0..4) == 0 {
                    for id in self.live_ids() {
                        self.cluster.raw(id).tick();
                    }
                } else if let Some(id) = self.pick(&self.live_ids()) {
                    self.cluster.raw(id).tick();
                }
            }
            18..=42 => {
                let ready: Vec<u64> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.cluster.has_ready(*id))
                    .collect();
                if let Some(id) = self.pick(&ready) {
                    if let Some(tr) = self.cluster.process_ready(id) {
                        for rs in tr.read_states {
                            self.check_read(rs.index, &rs.request_ctx);
                        }
                    }
                }
            }
            43..=74 => {
                for _ in 0..self.rng.random_range(1..5) {
                    self.deliver_random();
                }
            }
            75..=84 => {
                let target = self
                    .cluster
                    .leader()
                    .filter(|_| self.rng.random_range(0..4) != 0);
                let target = target.or_else(|| {
                    let l = self.live_ids();
                    self.pick(&l)
                });
                if let Some(id) = target {
                    self.seq += 1;
                    let data = Bytes::from(format!("v{}", self.seq));
                    let r = self.cluster.raw(id).propose(data);
                    self.log(format!("propose v{} at {id}: {r:?}", self.seq));
                }
            }
            85..=86 => self.conf_change(),
            87 | 98 | 99 if self.rng.random_range(0..3) != 0 => {
                // A linearizable read: its index must cover every entry committed
                // anywhere before it was asked. Stale leaders are the interesting
                // targets, so ask a node that believes it leads when there is one.
                let leaders: Vec<u64> = self
                    .live_ids()
                    .into_iter()
                    .filter(|id| self.cluster.raw(*id).is_leader())
                    .collect();
                let target = if leaders.is_empty() {
                    self.pick(&self.live_ids())
                } else {
                    self.pick(&leaders)
                };
                if let Some(id) = target {
                    self.seq += 1;
                    let ctx = Bytes::from(format!("r{}", self.seq));
                    let committed = self.max_commit();
                    self.reads.insert(ctx.clone(), committed);
                    self.cluster.raw(id).read_index(ctx);
                }
            }
            87 => {
                if let Some(l) = self.cluster.leader() {
                    let cs = self.cluster.nodes[&l].conf_state.clone();
                    if let Some(t) = self.pick(&cs.voters) {
                        self.log(format!("transfer leader {l} -> {t}"));
                        self.cluster.raw(l).transfer_leader(t);
                    }
                }
            }
            88 if self.rng.random_range(0..4) == 0 => {
                if let Some(l) = self.cluster.leader() {
                    if self.cluster.crash_leader_after_send(l) {
                        self.log(format!("crash leader {l} after sending, before persisting"));
                        self.report.crashes += 1;
                    }
                }
            }
            88 => {
                // Crash a node, keeping a quorum of the initial voters' worth alive.
                if let Some(id) = self.pick(&self.live_ids()) {
                    let cs = self.cluster.nodes[&id].conf_state.clone();
                    let quorum_left = self.crashed_voters(&cs) < (cs.voters.len().max(1) - 1) / 2;
                    if quorum_left || self.rng.random_range(0..10) == 0 {
                        self.log(format!("crash {id}"));
                        self.cluster.crash(id);
                        self.report.crashes += 1;
                    }
                }
            }
            89..=91 => {
                let down: Vec<u64> = ids
                    .iter()
                    .copied()
                    .filter(|id| !self.cluster.is_up(*id))
                    .collect();
                if let Some(id) = self.pick(&down) {
                    self.log(format!("restart {id}"));
                    self.cluster.restart(id);
                }
            }
            92 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for &id in &ids {
                    if self.rng.random_range(0..2) == 0 {
                        a.push(id);
                    } else {
                        b.push(id);
                    }
                }
                self.log(format!("partition {a:?} | {b:?}"));
                self.cluster.partition(&[a, b]);
            }
            93..=95 => {
                if !self.cluster.cut.is_empty() {
                    self.log("heal".to_string());
                    self.cluster.heal();
                }
            }
            96..=97 => {
                if let Some(id) = self.pick(&self.live_ids()) {
                    if let Some(i) = self.cluster.compact(id) {
                        self.log(format!("compact {id} at {i}"));
                        self.report.compactions += 1;
                    }
                }
            }
            _ => self.deliver_random(),
        }
    }

    fn max_commit(&self) -> u64 {
        self.cluster
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .map(|r| r.raft().raft_log.committed)
            .max()
            .unwrap_or(0)
    }

    fn check_read(&mut self, index: u64, ctx: &Bytes) {
        if let Some(committed) = self.reads.remove(ctx) {
            self.report.reads_served += 1;
            if index < committed && self.read_failure.is_none() {
                self.read_failure =
                    Some(format!("linearizable read {ctx:?} got index {index} but {committed} was committed before it"));
            }
        }
    }

    fn deliver_random(&mut self) {
        if self.cluster.network.is_empty() {
            return;
        }
        // Prefer old messages (bounded delay), but reorder freely.
        let n = self.cluster.network.len();
        let i = if self.rng.random_range(0..3) == 0 {
            self.rng.random_range(0..n)
        } else {
            0
        };
        let m = self.cluster.network.remove(i);
        let fate = self.rng.random_range(0..100u32);
        if fate < 5 {
            self.report.dropped += 1;
            self.cluster.lose(&m);
            return;
        }
        if fate < 8 {
            self.cluster.network.push(m.clone());
        }
        if self.cluster.deliver(m) == Delivery::Dropped {
            self.report.dropped += 1;
        }
    }

    fn conf_change(&mut self) {
        let Some(l) = self.cluster.leader() else {
            return;
        };
        let cs = self.cluster.nodes[&l].conf_state.clone();
        if !cs.voters_outgoing.is_empty() {
            return;
        }
        let kind = self.rng.random_range(0..4u32);
        let changes = match kind {
            0 if self.cluster.nodes.len() < 7 => {
                let id = self.next_id;
                self.next_id += 1;
                let cfg = self.config();
                self.cluster.add_node(id, cfg, ConfState::default());
                vec![cc_single(ConfChangeType::ConfChangeAddLearnerNode, id)]
            }
            1 => match self.pick(&cs.learners) {
                Some(id) => vec![cc_single(ConfChangeType::ConfChangeAddNode, id)],
                None => return,
            },
            2 if cs.voters.len() > 3 => match self.pick(&cs.voters) {
                Some(id) => vec![cc_single(ConfChangeType::ConfChangeRemoveNode, id)],
                None => return,
            },
            3 if cs.voters.len() > 3 && !cs.learners.is_empty() => {
                // Swap a voter and a learner in one joint change.
                let (Some(v), Some(ln)) = (self.pick(&cs.voters), self.pick(&cs.learners)) else {
                    return;
                };
                vec![
                    cc_single(ConfChangeType::ConfChangeAddLearnerNode, v),
                    cc_single(ConfChangeType::ConfChangeAddNode, ln),
                ]
            }
            _ => return,
        };
        self.report.conf_changes += 1;
        let r = if changes.len() == 1 && self.rng.random_range(0..2) == 0 {
            let cc = ConfChange {
                r#type: changes[0].r#type,
                node_id: changes[0].node_id,
                ..Default::default()
            };
            self.cluster.raw(l).propose_conf_change(&cc)
        } else {
            let transition = if self.rng.random_range(0..2) == 0 {
                ConfChangeTransition::Auto
            } else {
                ConfChangeTransition::JointImplicit
            };
            let cc = ConfChangeV2 {
                transition: transition as i32,
                changes: changes.clone(),
                context: Vec::new(),
            };
            self.cluster.raw(l).propose_conf_change(&cc)
        };
        self.log(format!("conf change at {l}: {changes:?}: {r:?}"));
    }

    /// Handles every `Ready` and delivers every message (nothing lost) until the
    /// cluster is quiet, at most `max_rounds` rounds, checking the invariants after
    /// each `Ready` and each delivery (as `Cluster::stabilize` does, checked).
    fn settle(&mut self, max_rounds: usize) -> Result<(), String> {
        for _ in 0..max_rounds {
            let ids: Vec<u64> = self.cluster.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                for _ in 0..8 {
                    let Some(tr) = self.cluster.process_ready(id) else {
                        break;
                    };
                    busy = true;
                    for rs in tr.read_states {
                        self.check_read(rs.index, &rs.request_ctx);
                    }
                    self.checker.check(&mut self.cluster)?;
                }
            }
            let msgs = std::mem::take(&mut self.cluster.network);
            busy |= !msgs.is_empty();
            for m in msgs {
                self.cluster.deliver(m);
                self.checker.check(&mut self.cluster)?;
            }
            if let Some(reason) = self.read_failure.clone() {
                return Err(reason);
            }
            if !busy {
                break;
            }
        }
        Ok(())
    }

    /// Restarts every crashed member of the latest applied configuration and stops
    /// every node outside it, as etcd stops a member once it is removed. (A removed
    /// node that missed its removal still thinks it votes; without PreVote and
    /// CheckQuorum its elections would depose every leader of the real members
    /// forever, the disruption the Raft thesis describes in 4.2.3.)
    fn heal_members(&mut self) {
        let Some(latest) = self
            .cluster
            .nodes
            .values()
            .max_by_key(|n| n.applied_index)
            .map(|n| n.conf_state.clone())
        else {
            return;
        };
        let ids: Vec<u64> = self.cluster.nodes.keys().copied().collect();
        for id in ids {
            let member = latest
                .voters
                .iter()
                .chain(&latest.learners)
                .chain(&latest.voters_outgoing)
                .chain(&latest.learners_next)
                .any(|m| *m == id);
            if member {
                self.cluster.restart(id);
            } else if self.cluster.is_up(id) {
                self.log(format!("stop {id}: not a member"));
                self.cluster.crash(id);
            }
        }
    }

    /// Heals every fault (links, crashed members; nodes removed from the
    /// configuration are stopped) and requires a new proposal to be applied by every
    /// member of the configuration within [`PROGRESS_ROUNDS`].
    fn require_progress(&mut self, step: usize) -> Result<(), String> {
        self.log(format!("heal everything; progress required (step {step})"));
        self.cluster.heal();
        self.report.progress_checks += 1;
        let marker = Bytes::from(format!("progress-{}-{step}", self.report.seed));
        let mut proposed = false;
        for round in 0..PROGRESS_ROUNDS {
            self.heal_members();
            for id in self.live_ids() {
                self.cluster.raw(id).tick();
                self.checker.check(&mut self.cluster)?;
            }
            self.settle(50)?;
            let Some(l) = self.cluster.leader() else {
                continue;
            };
            // Propose again now and then: a proposal may be lost with a leader.
            if !proposed || round % 50 == 49 {
                proposed |= self.cluster.raw(l).propose(marker.clone()).is_ok();
                continue;
            }
            let cs = self.cluster.nodes[&l].conf_state.clone();
            let all = cs.voters.iter().chain(&cs.learners).all(|id| {
                self.cluster
                    .nodes
                    .get(id)
                    .is_some_and(|n| n.applied_data.iter().any(|(_, d)| *d == marker))
            });
            if all {
                self.report.progress_rounds = self.report.progress_rounds.max(round);
                return Ok(());
            }
        }
        Err(format!(
            "no progress: a new proposal was not applied by every member within \
             {PROGRESS_ROUNDS} rounds after all faults healed; {}",
            self.cluster.describe()
        ))
    }
}

/// Runs one simulation of `steps` random steps from `seed`.
pub fn run(seed: u64, steps: usize) -> Result<SimReport, SimFailure> {
    let mut rng = StdRng::seed_from_u64(seed);
    let voters: u64 = if rng.random_range(0..2) == 0 { 3 } else { 5 };
    let learner = rng.random_range(0..3) == 0;
    // Most runs use PreVote and CheckQuorum (etcd's setting); some run without.
    let elections_guarded = rng.random_range(0..4) != 0;
    let mut sim = Sim {
        rng,
        cluster: Cluster::new(),
        checker: Checker::default(),
        report: SimReport {
            seed,
            ..Default::default()
        },
        trace: Vec::new(),
        next_id: voters + 2,
        seq: 0,
        elections_guarded,
        read_failure: None,
        reads: std::collections::BTreeMap::new(),
    };
    let cs = ConfState {
        voters: (1..=voters).collect(),
        learners: if learner {
            vec![voters + 1]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let ids: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
    // Founding members start either from a snapshot holding the configuration or,
    // as etcd does, from conf change entries at the start of the log.
    let by_log = !learner && sim.rng.random_range(0..2) == 0;
    for id in ids {
        let cfg = sim.config();
        if by_log {
            sim.cluster
                .add_node_bootstrapped_by_log(id, cfg, &cs.voters);
        } else {
            sim.cluster.add_node(id, cfg, cs.clone());
        }
    }
    let fail = |sim: &Sim, step: usize, reason: String| SimFailure {
        seed,
        steps,
        step,
        reason,
        trace: sim.trace.clone(),
    };
    for step in 0..steps {
        sim.step();
        if let Err(reason) = sim.checker.check(&mut sim.cluster) {
            return Err(fail(&sim, step, reason));
        }
        if let Some(reason) = sim.read_failure.clone() {
            return Err(fail(&sim, step, reason));
        }
        if (step + 1) % PROGRESS_CHECK_STEPS == 0 && step + 1 < steps {
            if let Err(reason) = sim.require_progress(step) {
                return Err(fail(&sim, step, reason));
            }
        }
    }
    if let Err(reason) = sim.require_progress(steps) {
        return Err(fail(&sim, steps, reason));
    }
    sim.report.steps = steps;
    sim.report.max_applied = sim
        .cluster
        .nodes
        .values()
        .map(|n| n.applied_index)
        .max()
        .unwrap_or(0);
    sim.report.leader_terms = sim.checker.leader_terms();
    Ok(sim.report)
}
