//! Runs the deterministic raft simulation (`etcd_raft::sim::run`) over many seeds,
//! on every core, printing progress as it goes; on a failure it prints the failing
//! run (seed, step, reason, last events) with the command that replays it and exits
//! with status 1. `cargo xtask sim` runs this in release mode.
//!
//! Environment, as for the `sim` test: `RAFT_SIM_SEEDS` (how many seeds, default 300),
//! `RAFT_SIM_SEED` (the first seed, default 0), `RAFT_SIM_STEPS` (steps per seed,
//! default 2500).
//!
//! Run with `RAFT_SIM_SEEDS=10000 cargo run --release -p etcd-raft --example sim`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use etcd_raft::sim::{self, SimFailure, SimReport};

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("{name}={v} is not a number: {e}")),
        Err(_) => Ok(default),
    }
}

/// Totals over the seeds that passed.
#[derive(Default)]
struct Totals {
    seeds: u64,
    applied: u64,
    crashes: usize,
    conf_changes: usize,
    compactions: usize,
    reads: usize,
    progress_checks: usize,
    progress_rounds: usize,
}

impl Totals {
    fn add(&mut self, r: &SimReport) {
        self.seeds += 1;
        self.applied += r.max_applied;
        self.crashes += r.crashes;
        self.conf_changes += r.conf_changes;
        self.compactions += r.compactions;
        self.reads += r.reads_served;
        self.progress_checks += r.progress_checks;
        self.progress_rounds = self.progress_rounds.max(r.progress_rounds);
    }
}

fn main() -> ExitCode {
    let (seeds, first, steps) = match (
        env_u64("RAFT_SIM_SEEDS", 300),
        env_u64("RAFT_SIM_SEED", 0),
        env_u64("RAFT_SIM_STEPS", 2500),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c as usize),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("raft sim: {e}");
            return ExitCode::from(2);
        }
    };
    let workers = thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "raft sim: seeds {first}..{} ({seeds}), {steps} steps each, {workers} threads",
        first + seeds
    );
    let t0 = Instant::now();
    let next = AtomicU64::new(first);
    let stop = AtomicBool::new(false);
    let totals = Mutex::new(Totals::default());
    // The failure with the smallest seed (the one a rerun from `first` meets first).
    let failure: Mutex<Option<SimFailure>> = Mutex::new(None);
    let report_every = (seeds / 20).max(1);
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + seeds {
                        break;
                    }
                    match sim::run(seed, steps) {
                        Ok(r) => {
                            let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                            t.add(&r);
                            if t.seeds % report_every == 0 {
                                eprintln!(
                                    "raft sim: {}/{seeds} seeds passed ({:.1?})",
                                    t.seeds,
                                    t0.elapsed()
                                );
                            }
                        }
                        Err(f) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                            if slot.as_ref().is_none_or(|g| f.seed < g.seed) {
                                *slot = Some(f);
                            }
                        }
                    }
                }
            });
        }
    });
    let t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        eprintln!("{f}");
        println!("FAILED seed {} (step {}): {}", f.seed, f.step, f.reason);
        println!("reproduce with: {}", f.reproduce());
        return ExitCode::FAILURE;
    }
    println!(
        "raft sim: {} seeds from {first}, {steps} steps each, passed in {:.1?}: {} entries applied, \
         {} crashes, {} conf changes, {} compactions, {} reads checked, {} progress checks \
         after healing (at most {} rounds)",
        t.seeds,
        t0.elapsed(),
        t.applied,
        t.crashes,
        t.conf_changes,
        t.compactions,
        t.reads,
        t.progress_checks,
        t.progress_rounds
    );
    ExitCode::SUCCESS
}
