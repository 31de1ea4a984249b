//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask setup`  installs what the build needs on this machine (libclang for
//!   RocksDB's bindings) and says what it did.
//! - `cargo xtask test`   fmt check, clippy with warnings denied, every test.
//! - `cargo xtask serve`  builds and runs the `etcd` server with its defaults (extra
//!   arguments after `--` go to the server).
//! - `cargo xtask deny`   runs cargo-deny (installing it if missing).
//!
//! Every step prints the command it runs, so a failure can be reproduced by hand.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod setup;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup            install build prerequisites (libclang, protoc) if missing
  test             cargo fmt --check, clippy -D warnings, all tests (nextest when present)
  serve [-- ARGS]  build and run the etcd server (defaults: 127.0.0.1:2379, data in default.etcd)
  deny             cargo deny check (installs cargo-deny if missing)
  bench-compare [--members N] [--rounds N] [--quick]
                   our server and the reference etcd (/usr/bin/etcd) side by side with the
                   benchmark tool; prints a Markdown table for docs/benchmarks.md
  sim --seeds N [--seed S] [--steps N]
                   the raft simulation over N seeds from S (default 0), in release mode
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "setup" => setup::ensure_build_prerequisites(),
        "test" => test(rest),
        "serve" => serve(rest),
        "deny" => deny(),
        "sim" => sim(rest),
        "bench-compare" => bench::bench_compare(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The target directory cargo builds into (`$CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs us, so `cargo +toolchain xtask` keeps its toolchain.
fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs a command to completion, echoing it first; a non-zero exit is an error.
fn run(mut cmd: Command) -> Result<(), String> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed with {status}"))
    }
}

/// Whether a cargo subcommand (`cargo nextest`, `cargo deny`) is installed.
fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn test(args: &[String]) -> Result<(), String> {
    setup::ensure_build_prerequisites()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;

    if has_cargo_subcommand("nextest") {
        let mut nextest = cargo();
        nextest.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]);
        nextest.args(args);
        run(nextest)?;
        // nextest does not run doc tests; they are part of every crate's promise.
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--locked", "--doc"]);
        run(doc)
    } else {
        let mut test = cargo();
        test.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
        test.args(args);
        run(test)
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    setup::ensure_server_prerequisites()?;
    let server_main = workspace_root().join("crates/server/src/main.rs");
    if !server_main.exists() {
        return Err(
            "the `etcd` server binary is not there yet (crates/server has no main.rs); \
             it arrives with the server issue"
                .to_string(),
        );
    }
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "etcd-server",
        "--bin",
        "etcd",
        "--",
    ]);
    cmd.args(args.iter().skip_while(|a| a.as_str() == "--"));
    run(cmd)
}

fn deny() -> Result<(), String> {
    if !has_cargo_subcommand("deny") {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-deny"]);
        run(install)?;
    }
    // Policy checks that need nothing from the network.
    let mut cmd = cargo();
    cmd.args([
        "deny",
        "--workspace",
        "check",
        "bans",
        "licenses",
        "sources",
    ]);
    run(cmd)?;
    // Advisories need RustSec's database, which lives on GitHub. Where it cannot be
    // fetched, say so loudly rather than pretend the check passed.
    let mut cmd = cargo();
    cmd.args(["deny", "--workspace", "check", "advisories"]);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo deny: {e}"))?;
    if !status.success() {
        let db = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".cargo/advisory-dbs"))
            .filter(|p| {
                p.read_dir()
                    .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join(".git").exists())))
            });
        if db.is_none() {
            eprintln!(
                "xtask deny: WARNING: advisories NOT checked: the RustSec database \
                 could not be fetched (no network to github.com?); bans, licenses \
                 and sources passed"
            );
            return Ok(());
        }
        return Err("cargo deny check advisories failed".into());
    }
    Ok(())
}

/// `cargo xtask sim --seeds N [--seed S] [--steps N]`: runs etcd-raft's deterministic
/// simulation (its `sim` example) in release mode over seeds `S..S+N`, `--steps`
/// steps each (default 2500). The example prints progress, and on a failure the seed
/// with the command that replays it.
fn sim(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask sim --seeds N [--seed S] [--steps N]";
    let mut seeds = None;
    let mut seed = 0u64;
    let mut steps = 2500u64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value\n{usage}"))?;
        let n: u64 = value
            .parse()
            .map_err(|e| format!("`{flag} {value}`: {e}\n{usage}"))?;
        match flag.as_str() {
            "--seeds" => seeds = Some(n),
            "--seed" => seed = n,
            "--steps" => steps = n,
            other => return Err(format!("unknown option `{other}`\n{usage}")),
        }
    }
    let seeds = seeds.ok_or_else(|| format!("`--seeds` is required\n{usage}"))?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "etcd-raft",
        "--example",
        "sim",
    ]);
    cmd.env("RAFT_SIM_SEEDS", seeds.to_string())
        .env("RAFT_SIM_SEED", seed.to_string())
        .env("RAFT_SIM_STEPS", steps.to_string());
    eprintln!("xtask: RAFT_SIM_SEEDS={seeds} RAFT_SIM_SEED={seed} RAFT_SIM_STEPS={steps}");
    run(cmd).map_err(|e| format!("{e}: the failing seed and how to replay it are printed above"))
}
