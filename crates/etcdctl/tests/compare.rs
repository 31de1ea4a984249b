//! Differential test: the same commands, run once with our etcdctl and once with the
//! reference etcdctl (Debian's `etcd-client`, `/usr/bin/etcdctl`, or `$ETCDCTL_REFERENCE`),
//! each against a fresh server of ours on the same ports (so member and cluster IDs and
//! revisions agree), must print the same bytes and exit with the same code.
//!
//! Normalized before comparing: lease IDs (time-based, they differ between servers),
//! `took` durations, the reference client's JSON log lines on stderr, and the places
//! where the reference (3.4) and etcdctl 3.5, which we follow, differ: txn JSON names its
//! responses `response_put` (3.4: `ResponsePut`), and `del` of a range warns on stderr.
//! Skipped, with a note, when no reference etcdctl is installed. `COMPARE_DEBUG=1` prints
//! the reference's normalized transcript.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use support::{etcdctl, free_port, Run, Server};

/// One command: its arguments (`{lease}` and `{member}` stand for the last lease granted
/// and the member's ID) and its stdin.
struct Case {
    args: &'static [&'static str],
    stdin: &'static str,
}

const fn case(args: &'static [&'static str]) -> Case {
    Case { args, stdin: "" }
}

const fn with_stdin(args: &'static [&'static str], stdin: &'static str) -> Case {
    Case { args, stdin }
}

const CASES: &[Case] = &[
    // KV, every format.
    case(&["put", "foo", "bar"]),
    case(&["put", "foo", "bar", "-w", "json"]),
    case(&["put", "foo", "baz", "--prev-kv"]),
    case(&["put", "foo", "baz", "--prev-kv", "-w", "json"]),
    case(&["put", "foo", "baz", "--prev-kv", "-w", "fields"]),
    case(&["put", "foo", "baz", "--prev-kv", "-w", "protobuf"]),
    case(&["get", "foo"]),
    case(&["get", "foo", "-w", "json"]),
    case(&["get", "foo", "-w", "fields"]),
    case(&["get", "foo", "-w", "protobuf"]),
    case(&["get", "foo", "-w", "table"]),
    case(&["get", "foo", "--hex"]),
    case(&["get", "foo", "--hex", "-w", "fields"]),
    case(&["get", "nothing"]),
    case(&["get", "nothing", "-w", "json"]),
    case(&["get", "nothing", "-w", "fields"]),
    case(&["put", "quote\"key", "tab\tvalue\n"]),
    case(&["put", "ключ", "値 ☃"]),
    case(&["get", "quote\"key", "-w", "fields"]),
    case(&["get", "ключ", "-w", "fields"]),
    case(&["get", "ключ", "--hex"]),
    case(&["put", "a", "1"]),
    case(&["put", "b", "2"]),
    case(&["put", "c", "3"]),
    case(&["get", "a", "c"]),
    case(&["get", "", "--prefix"]),
    case(&["get", "--from-key", "b", "--keys-only"]),
    case(&["get", "", "--prefix", "--limit", "2", "-w", "fields"]),
    case(&["get", "", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--print-value-only"]),
    case(&["get", "", "--prefix", "--sort-by=value", "--order=ascend", "-w", "json"]),
    case(&["get", "a", "-w", "json", "--print-value-only"]),
    case(&["get", "a", "--consistency", "s"]),
    case(&["get", "a", "--consistency", "x"]),
    case(&["get", "a", "--order", "x"]),
    case(&["get", "a", "--sort-by", "x"]),
    case(&["get", "a", "b", "--prefix"]),
    case(&["get", "a", "--prefix", "--from-key"]),
    case(&["get", "a", "--rev", "999"]),
    case(&["get"]),
    case(&["put"]),
    case(&["put", "a", "b", "--lease", "123"]),
    case(&["put", "a", "b", "--lease", "zz"]),
    case(&["put", "a", "b", "--ignore-value"]),
    case(&["put", "missing", "--ignore-value"]),
    with_stdin(&["put", "from-stdin"], "line one\nline two\n"),
    case(&["get", "from-stdin"]),
    case(&["-w", "yaml", "get", "a"]),
    case(&["del", "nothing"]),
    case(&["del", "nothing", "-w", "json"]),
    case(&["del", "a", "--prev-kv"]),
    case(&["del", "b", "--prev-kv", "-w", "fields"]),
    case(&["del", "c", "d"]),
    case(&["del"]),
    // Transactions.
    case(&["put", "key1", "v1"]),
    with_stdin(&["txn"], "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\n\nput key1 \"created-key1\"\nput key2 \"some extra key\"\n\n"),
    with_stdin(&["txn", "-w", "json"], "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\nget key1\ndel key2 --prev-kv\n\nput key1 \"created-key1\"\n\n"),
    with_stdin(&["txn", "-w", "fields"], "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\nget key1\ndel key2\n\n\n"),
    with_stdin(&["txn", "-w", "protobuf"], "val(\"key1\") = \"overwrote-key1\"\n\nget key1\n\n\n"),
    with_stdin(&["txn"], "val(\"key1\") = \"nope\"\n\nput key1 \"x\"\n\nget key1\nget key1 --print-value-only\n\n"),
    with_stdin(&["txn"], "version(\"key1\") != \"1\"\nc(\"key1\") < \"100\"\n\nget key1 --keys-only\n\n\n"),
    with_stdin(&["txn", "-i"], "ver(\"key1\") > \"1\"\n\nget key1\n\n\n"),
    with_stdin(&["txn"], "mod(\"key1\") > \"0\"\n\nput key1 \"x\"\n"),
    with_stdin(&["txn"], "mod(key1) > \"0\"\n\n\n\n"),
    with_stdin(&["txn"], "foo(\"key1\") > \"0\"\n\n\n\n"),
    with_stdin(&["txn"], "mod(\"key1\") > \"x\"\n\n\n\n"),
    with_stdin(&["txn"], "mod(\"key1\")\n\n\n\n"),
    with_stdin(&["txn"], "\nbadop key\n\n\n"),
    with_stdin(&["txn"], "\nput key\n\n\n"),
    with_stdin(&["txn"], "\nget\n\n\n"),
    with_stdin(&["txn"], "\n\n\n"),
    case(&["txn", "extra"]),
    // Cluster and maintenance (before any lease: keys with leases change the hash).
    case(&["member", "list"]),
    case(&["member", "list", "-w", "json"]),
    case(&["member", "list", "-w", "fields"]),
    case(&["member", "list", "-w", "table"]),
    case(&["member", "list", "-w", "protobuf"]),
    case(&["endpoint", "hashkv"]),
    case(&["endpoint", "hashkv", "-w", "json"]),
    case(&["endpoint", "hashkv", "-w", "fields"]),
    case(&["endpoint", "hashkv", "-w", "table"]),
    case(&["endpoint", "health", "-w", "json"]),
    case(&["endpoint", "health", "-w", "fields"]),
    case(&["endpoint", "status", "-w", "protobuf"]),
    case(&["alarm", "list"]),
    case(&["alarm", "list", "-w", "json"]),
    case(&["alarm", "list", "-w", "fields"]),
    case(&["alarm", "disarm"]),
    case(&["alarm", "list", "extra"]),
    case(&["defrag"]),
    case(&["defrag", "-w", "json"]),
    case(&["move-leader", "{member}"]),
    case(&["move-leader", "{member}", "-w", "json"]),
    case(&["move-leader", "{member}", "-w", "fields"]),
    case(&["move-leader", "1234"]),
    case(&["move-leader", "zz"]),
    case(&["move-leader"]),
    case(&["compaction", "3"]),
    case(&["compaction", "3"]),
    case(&["compaction", "--physical", "5"]),
    case(&["compaction", "x"]),
    case(&["compaction"]),
    case(&["get", "foo", "--rev", "2"]),
    // Leases.
    case(&["lease", "grant", "100"]),
    case(&["lease", "grant", "100", "-w", "json"]),
    case(&["lease", "grant", "100", "-w", "fields"]),
    case(&["lease", "list"]),
    case(&["lease", "list", "-w", "json"]),
    case(&["lease", "list", "-w", "fields"]),
    case(&["put", "leased", "v", "--lease", "{lease}"]),
    case(&["get", "leased", "-w", "json"]),
    case(&["lease", "keep-alive", "--once", "{lease}"]),
    case(&["lease", "keep-alive", "--once", "{lease}", "-w", "json"]),
    case(&["lease", "keep-alive", "--once", "{lease}", "-w", "fields"]),
    case(&["lease", "revoke", "{lease}"]),
    case(&["lease", "revoke", "{lease}"]),
    case(&["lease", "timetolive", "{lease}"]),
    case(&["lease", "timetolive", "{lease}", "-w", "json"]),
    case(&["lease", "timetolive", "{lease}", "-w", "fields"]),
    case(&["lease", "keep-alive", "--once", "{lease}"]),
    case(&["lease", "keep-alive", "{lease}"]),
    case(&["lease", "grant", "0"]),
    case(&["lease", "grant", "99999999999"]),
    case(&["lease", "grant", "abc"]),
    case(&["lease", "grant"]),
    case(&["lease", "revoke", "zz"]),
    case(&["lease", "timetolive"]),
    case(&["lease", "keep-alive"]),
];

fn reference_etcdctl() -> Option<PathBuf> {
    let path = std::env::var_os("ETCDCTL_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcdctl"));
    path.exists().then_some(path)
}

/// Runs every case with `binary` against `server`; the transcript per case.
fn transcript(binary: &PathBuf, server: &Server) -> Vec<Run> {
    let mut lease = String::new();
    let mut member = String::new();
    let mut runs = Vec::new();
    for case in CASES {
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| a.replace("{lease}", &lease).replace("{member}", &member))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = server.ctl_with(binary, &args, case.stdin.as_bytes());
        let out = run.out();
        if let Some(rest) = out.strip_prefix("lease ") {
            if out.contains(" granted with TTL(") {
                lease = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        if case.args == ["member", "list"] {
            member = out.split(',').next().unwrap_or_default().to_string();
        }
        runs.push(run);
    }
    runs
}

/// Replaces lease IDs by placeholders numbered in order of appearance (hex as printed,
/// and decimal in JSON and fields), consistently over the whole transcript.
struct IdMap {
    seen: HashMap<String, usize>,
}

impl IdMap {
    fn normalize(&mut self, text: &str, stable: &[String]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut token = String::new();
        let flush = |token: &mut String, out: &mut String, seen: &mut HashMap<String, usize>| {
            let is_hex_id = token.len() == 16 && token.chars().all(|c| c.is_ascii_hexdigit());
            let is_dec_id =
                (17..=20).contains(&token.len()) && token.chars().all(|c| c.is_ascii_digit());
            if (is_hex_id || is_dec_id) && !stable.contains(token) {
                let next = seen.len();
                let n = *seen.entry(token.clone()).or_insert(next);
                out.push_str(&format!("<id{n}>"));
            } else {
                out.push_str(token);
            }
            token.clear();
        };
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                token.push(c);
            } else {
                flush(&mut token, &mut out, &mut self.seen);
                out.push(c);
            }
        }
        flush(&mut token, &mut out, &mut self.seen);
        out
    }
}

/// Durations after `took = ` and in `"took":"..."` / `"Took" : ...`.
fn normalize_took(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(at) = line.find("took = ") {
            out.push_str(&line[..at]);
            out.push_str("took = <d>\n");
        } else if line.starts_with("\"Took\" : ") {
            out.push_str("\"Took\" : <d>\n");
        } else if let Some(at) = line.find("\"took\":\"") {
            let rest = &line[at + 8..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push_str(&line[..at]);
            out.push_str("\"took\":\"<d>");
            out.push_str(&rest[end..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

const RANGE_WARNING: &str = "In etcd v3.6, the operation will be suspended for a few seconds to provide the user time to verify range.\n";

/// One case's output, normalized: stdout, stderr and exit code in one text.
fn render(run: &Run, ids: &mut IdMap, stable: &[String], reference: bool) -> String {
    let mut stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let mut stderr: String = run
        .stderr
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("{\"level\":"))
        .collect();
    if reference {
        for (v34, v35) in [
            ("\"ResponsePut\"", "\"response_put\""),
            ("\"ResponseRange\"", "\"response_range\""),
            ("\"ResponseDeleteRange\"", "\"response_delete_range\""),
            ("\"ResponseTxn\"", "\"response_txn\""),
        ] {
            stdout = stdout.replace(v34, v35);
        }
        stderr = stderr.replace(
            "Error reading watch request line",
            "error reading watch request line",
        );
    } else {
        stderr = stderr.replace(RANGE_WARNING, "");
    }
    let text = format!("{stdout}--- stderr\n{stderr}--- exit {}\n", run.code);
    ids.normalize(&normalize_took(&text), stable)
}

#[test]
fn same_output_as_the_reference_etcdctl() {
    let Some(reference) = reference_etcdctl() else {
        eprintln!(
            "note: no reference etcdctl (/usr/bin/etcdctl or $ETCDCTL_REFERENCE): comparison skipped"
        );
        return;
    };
    let (client_port, peer_port) = (free_port(), free_port());
    let (ours, stable) = {
        let server = Server::start_at(client_port, peer_port);
        let runs = transcript(&etcdctl(), &server);
        // Member and cluster IDs are the same on both servers: keep them readable.
        let json = server.ctl(&["member", "list", "-w", "json"]).out();
        let decimal: Vec<String> = json
            .split([',', ':', '{', '}', '[', ']'])
            .filter(|t| t.len() >= 17 && t.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_string)
            .collect();
        let hex: Vec<String> = decimal
            .iter()
            .filter_map(|d| d.parse::<u64>().ok())
            .map(|id| format!("{id:x}"))
            .collect();
        (runs, [decimal, hex].concat())
    };
    let theirs = {
        let server = Server::start_at(client_port, peer_port);
        transcript(&reference, &server)
    };
    let mut our_ids = IdMap {
        seen: HashMap::new(),
    };
    let mut their_ids = IdMap {
        seen: HashMap::new(),
    };
    let mut mismatches = Vec::new();
    for ((case, ours), theirs) in CASES.iter().zip(&ours).zip(&theirs) {
        if theirs.stderr.contains("panic: ") {
            // etcdctl crashes here (e.g. `alarm list -w fields` when etcd 3.4 answers
            // without a header): nothing to copy.
            eprintln!(
                "note: the reference etcdctl crashed on {:?}; not compared",
                case.args
            );
            continue;
        }
        let a = render(ours, &mut our_ids, &stable, false);
        let b = render(theirs, &mut their_ids, &stable, true);
        if std::env::var_os("COMPARE_DEBUG").is_some() {
            eprintln!("== {:?}\n{b}", case.args);
        }
        if a != b {
            mismatches.push(format!(
                "etcdctl {:?} (stdin {:?})\n--- ours:\n{a}--- reference:\n{b}",
                case.args, case.stdin
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} commands differ:\n\n{}",
        mismatches.len(),
        CASES.len(),
        mismatches.join("\n")
    );
}
