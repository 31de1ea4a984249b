//! `cargo xtask bench-compare`: our server and the reference etcd side by side, on the
//! same machine in the same run, driven by the same `benchmark` tool.
//!
//! For each server (ours: `target/release/etcd`; the reference: `/usr/bin/etcd` from
//! Debian's `etcd-server` package, or `$ETCD_REFERENCE`) it starts a fresh cluster of
//! `--members` members on loopback ports chosen at run time, in a temporary directory,
//! runs every scenario with `benchmark --output json`, reads each member's peak resident
//! memory (VmHWM), and kills the members; the two servers alternate for `--rounds`
//! rounds (default 3) and the table shows the median of each column and the ratios. Every member is killed even when a step fails.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, run, setup, target_dir};

/// One load scenario: a name and the benchmark arguments.
struct Scenario {
    name: &'static str,
    args: Vec<String>,
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let scale = |n: u32| if quick { (n / 10).max(100) } else { n };
    let s = |name, args: &[&str]| Scenario {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let t1 = scale(5_000).to_string();
    let tn = scale(100_000).to_string();
    vec![
        s(
            "put, 1 client",
            &[
                "--conns",
                "1",
                "--clients",
                "1",
                "put",
                "--total",
                &t1,
                "--key-size",
                "8",
                "--val-size",
                "256",
            ],
        ),
        s(
            "put, 100 conns x 1000 clients",
            &[
                "--conns",
                "100",
                "--clients",
                "1000",
                "put",
                "--total",
                &tn,
                "--key-size",
                "8",
                "--val-size",
                "256",
                "--key-space-size",
                "100000",
            ],
        ),
        s(
            "range linearizable, 100 x 1000",
            &[
                "--conns",
                "100",
                "--clients",
                "1000",
                "range",
                "key",
                "--consistency",
                "l",
                "--total",
                &tn,
            ],
        ),
        s(
            "range serializable, 100 x 1000",
            &[
                "--conns",
                "100",
                "--clients",
                "1000",
                "range",
                "key",
                "--consistency",
                "s",
                "--total",
                &tn,
            ],
        ),
    ]
}

/// What one scenario measured.
#[derive(Debug, Clone, Default)]
struct Measured {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// A running member of a benchmark cluster; killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_cluster(
    binary: &Path,
    members: usize,
    dir: &Path,
) -> Result<(Vec<Proc>, Vec<String>), String> {
    let mut ports = Vec::new();
    for _ in 0..members {
        ports.push((free_port()?, free_port()?));
    }
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect();
    let initial = initial.join(",");
    let mut procs = Vec::new();
    let mut endpoints = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let data = dir.join(format!("m{i}.etcd"));
        let log =
            std::fs::File::create(dir.join(format!("m{i}.log"))).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{c}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{c}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{p}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{p}"),
            ])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        procs.push(Proc(child));
        endpoints.push(format!("127.0.0.1:{c}"));
    }
    Ok((procs, endpoints))
}

fn wait_ready(benchmark: &Path, endpoints: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for e in endpoints {
        while TcpStream::connect(e).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{e} does not listen"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A write that succeeds means there is a leader.
    loop {
        let out = Command::new(benchmark)
            .args([
                "--endpoints",
                &endpoints.join(","),
                "--output",
                "json",
                "put",
                "--total",
                "1",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if let Ok(m) = parse(&String::from_utf8_lossy(&out.stdout)) {
            if m.errors == 0 && m.rps > 0.0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the cluster did not accept a write within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn parse(json: &str) -> Result<Measured, String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
    let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    Ok(Measured {
        rps: f("rps"),
        p50_ms: f("p50_ms"),
        p99_ms: f("p99_ms"),
        errors: v
            .get("errors")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    })
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs every scenario against one server; returns the measurements and the peak RSS
/// (largest member, KiB).
fn measure(
    label: &str,
    binary: &Path,
    benchmark: &Path,
    members: usize,
    quick: bool,
) -> Result<(Vec<Measured>, u64), String> {
    let dir = std::env::temp_dir().join(format!("etcd-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (procs, endpoints) = start_cluster(binary, members, &dir)?;
    let result = (|| {
        wait_ready(benchmark, &endpoints)?;
        let mut out = Vec::new();
        for s in scenarios(quick) {
            eprintln!("xtask: [{label}] {}", s.name);
            let o = Command::new(benchmark)
                .args(["--endpoints", &endpoints.join(","), "--output", "json"])
                .args(&s.args)
                .output()
                .map_err(|e| e.to_string())?;
            let m = parse(&String::from_utf8_lossy(&o.stdout))
                .map_err(|e| format!("{}: unreadable benchmark output ({e})", s.name))?;
            eprintln!(
                "xtask: [{label}] {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                s.name, m.rps, m.p50_ms, m.p99_ms, m.errors
            );
            out.push(m);
        }
        let rss = procs
            .iter()
            .map(|p| peak_rss_kib(p.0.id()))
            .max()
            .unwrap_or(0);
        Ok((out, rss))
    })();
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The median of each scenario over rounds (rps and latencies taken separately).
fn median(rounds: &[Vec<Measured>], scenario: usize) -> Measured {
    let pick = |f: fn(&Measured) -> f64| {
        let mut v: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.get(scenario))
            .map(f)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Measured {
        rps: pick(|m| m.rps),
        p50_ms: pick(|m| m.p50_ms),
        p99_ms: pick(|m| m.p99_ms),
        errors: rounds
            .iter()
            .filter_map(|r| r.get(scenario))
            .map(|m| m.errors)
            .sum(),
    }
}

/// `cargo xtask bench-compare [--members N] [--rounds N] [--quick]`.
pub fn bench_compare(args: &[String]) -> Result<(), String> {
    let mut members = 1;
    let mut rounds = 3;
    let mut quick = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--members" => {
                members = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or("--members needs a positive number")?;
            }
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or("--rounds needs a positive number")?;
            }
            "--quick" => quick = true,
            other => return Err(format!("bench-compare: unknown argument `{other}`")),
        }
    }
    setup::ensure_server_prerequisites()?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "etcd-server",
        "--bin",
        "etcd",
        "--package",
        "etcd-benchmark",
        "--bin",
        "benchmark",
    ]);
    run(build)?;
    let release = target_dir().join("release");
    let ours = release.join("etcd");
    let benchmark = release.join("benchmark");
    let reference = std::env::var_os("ETCD_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    if !reference.exists() {
        return Err(format!(
            "the reference etcd is not at {}: install Debian's package (apt-get install \
             etcd-server) or set ETCD_REFERENCE",
            reference.display()
        ));
    }
    // Alternate the two servers round by round, so a change in the machine's load hits
    // both, and report medians.
    let (mut ref_rounds, mut our_rounds) = (Vec::new(), Vec::new());
    let (mut ref_rss, mut our_rss) = (0, 0);
    for round in 1..=rounds {
        eprintln!("xtask: round {round} of {rounds}");
        let (m, rss) = measure("reference", &reference, &benchmark, members, quick)?;
        ref_rounds.push(m);
        ref_rss = ref_rss.max(rss);
        let (m, rss) = measure("ours", &ours, &benchmark, members, quick)?;
        our_rounds.push(m);
        our_rss = our_rss.max(rss);
    }
    let n = scenarios(quick).len();
    let our_m: Vec<Measured> = (0..n).map(|i| median(&our_rounds, i)).collect();
    let ref_m: Vec<Measured> = (0..n).map(|i| median(&ref_rounds, i)).collect();
    println!(
        "\n{members} member(s), median of {rounds} alternating rounds{}:\n",
        if quick { ", quick" } else { "" }
    );
    println!("| scenario | ours req/s | etcd 3.4 req/s | ratio | ours p99 ms | etcd p99 ms | p99 ratio |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (s, (o, r)) in scenarios(quick).iter().zip(our_m.iter().zip(&ref_m)) {
        let ratio = if r.rps > 0.0 { o.rps / r.rps } else { 0.0 };
        let p99 = if r.p99_ms > 0.0 {
            o.p99_ms / r.p99_ms
        } else {
            0.0
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} | {:.2}x |",
            s.name, o.rps, r.rps, ratio, o.p99_ms, r.p99_ms, p99
        );
        if o.errors > 0 || r.errors > 0 {
            println!("|   errors | {} | {} | | | | |", o.errors, r.errors);
        }
    }
    let rss_ratio = if ref_rss > 0 {
        our_rss as f64 / ref_rss as f64
    } else {
        0.0
    };
    println!(
        "| peak RSS (largest member) | {} MiB | {} MiB | {:.2}x | | | |",
        our_rss / 1024,
        ref_rss / 1024,
        rss_ratio
    );
    Ok(())
}
