//! Deterministic randomized simulation over many seeds (see `etcd_raft::sim`).
//! `RAFT_SIM_SEEDS` sets how many seeds run (default 300), `RAFT_SIM_SEED` the first
//! seed (default 0), `RAFT_SIM_STEPS` the steps per seed (default 2500). A failing seed
//! is printed with the command that reproduces it.

use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn safety_and_progress_hold_over_many_seeds() {
    let seeds = env_u64("RAFT_SIM_SEEDS", 300);
    let start = env_u64("RAFT_SIM_SEED", 0);
    let steps = env_u64("RAFT_SIM_STEPS", 2500) as usize;
    let t0 = Instant::now();
    let mut applied = 0;
    let mut crashes = 0;
    let mut confs = 0;
    let mut compactions = 0;
    let mut reads = 0;
    let mut progress_checks = 0;
    let mut progress_rounds = 0;
    for seed in start..start + seeds {
        match etcd_raft::sim::run(seed, steps) {
            Ok(r) => {
                applied += r.max_applied;
                crashes += r.crashes;
                confs += r.conf_changes;
                compactions += r.compactions;
                reads += r.reads_served;
                progress_checks += r.progress_checks;
                progress_rounds = progress_rounds.max(r.progress_rounds);
            }
            Err(f) => panic!("{f}"),
        }
    }
    eprintln!(
        "raft sim: {seeds} seeds from {start}, {steps} steps each, in {:?}: {applied} entries applied, \
         {crashes} crashes, {confs} conf changes, {compactions} compactions, {reads} reads checked, \
         {progress_checks} progress checks after healing (at most {progress_rounds} rounds)",
        t0.elapsed()
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = etcd_raft::sim::run(7, 800);
    let b = etcd_raft::sim::run(7, 800);
    assert_eq!(a, b);
}
