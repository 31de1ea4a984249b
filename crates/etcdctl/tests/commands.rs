//! Each etcdctl command against a real server (ours): its output and exit code, the
//! error cases included (unknown key, bad lease, bad flags, unreachable endpoint).

#![allow(clippy::unwrap_used)]

mod support;

use support::{etcdctl, free_port, run_ctl, Server};

fn ok(run: &support::Run) -> String {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    run.out()
}

#[test]
fn put_get_del_round_trip() {
    let s = Server::start();
    assert_eq!(ok(&s.ctl(&["put", "foo", "bar"])), "OK\n");
    assert_eq!(ok(&s.ctl(&["get", "foo"])), "foo\nbar\n");
    assert_eq!(
        ok(&s.ctl(&["put", "foo", "baz", "--prev-kv"])),
        "OK\nfoo\nbar\n"
    );
    assert_eq!(ok(&s.ctl(&["get", "foo", "--print-value-only"])), "baz\n");
    assert_eq!(
        ok(&s.ctl(&["get", "foo", "--hex"])),
        "\\x66\\x6f\\x6f\n\\x62\\x61\\x7a\n"
    );
    assert_eq!(ok(&s.ctl(&["del", "foo", "--prev-kv"])), "1\nfoo\nbaz\n");
    assert_eq!(ok(&s.ctl(&["del", "foo"])), "0\n");
}

#[test]
fn an_unknown_key_prints_nothing_and_succeeds() {
    let s = Server::start();
    let run = s.ctl(&["get", "nothing"]);
    assert_eq!(
        (run.out().as_str(), run.stderr.as_str(), run.code),
        ("", "", 0)
    );
    let json = ok(&s.ctl(&["get", "nothing", "-w", "json"]));
    assert!(json.starts_with("{\"header\":{\"cluster_id\":"), "{json}");
    assert!(!json.contains("kvs"), "{json}");
    let fields = ok(&s.ctl(&["get", "nothing", "-w", "fields"]));
    assert!(
        fields.ends_with("\"More\" : false\n\"Count\" : 0\n"),
        "{fields}"
    );
}

#[test]
fn get_ranges_sorts_limits_and_counts() {
    let s = Server::start();
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
        ok(&s.ctl(&["put", k, v]));
    }
    assert_eq!(ok(&s.ctl(&["get", "a", "c"])), "a\n1\nb\n2\n");
    assert_eq!(
        ok(&s.ctl(&["get", "b", "--from-key", "--keys-only"])),
        "b\n\nc\n\nd\n\n"
    );
    assert_eq!(
        ok(&s.ctl(&[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
            "--limit",
            "2"
        ])),
        "d\n4\nc\n3\n"
    );
    let fields = ok(&s.ctl(&["get", "", "--prefix", "--count-only", "-w", "fields"]));
    assert!(fields.contains("\"Count\" : 4\n"), "{fields}");
    assert!(!fields.contains("\"Key\""), "{fields}");
    // --count-only and --print-value-only are checked after the request, as etcdctl.
    let run = s.ctl(&["get", "a", "--count-only"]);
    assert_eq!(run.code, 128);
    assert_eq!(
        run.stderr,
        "Error: --count-only is only for `--write-out=fields`\n"
    );
    let run = s.ctl(&["get", "a", "--print-value-only", "-w", "json"]);
    assert_eq!(run.code, 128);
    assert_eq!(
        run.stderr,
        "Error: print-value-only is only for `--write-out=simple`\n"
    );
    let first = ok(&s.ctl(&["get", "a", "-w", "json"]));
    let revision: i64 = first
        .split("\"mod_revision\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    ok(&s.ctl(&["put", "a", "new"]));
    assert_eq!(
        ok(&s.ctl(&["get", "a", "--rev", &revision.to_string()])),
        "a\n1\n"
    );
}

#[test]
fn bad_get_flags_exit_as_etcdctl() {
    let s = Server::start();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["get"], 128, "get command needs one argument as key and an optional argument as range_end"),
        (&["get", "a", "--consistency", "x"], 4, "unknown consistency flag \"x\""),
        (&["get", "a", "--order", "x"], 4, "bad sort order x"),
        (&["get", "a", "--sort-by", "x"], 4, "bad sort target x"),
        (&["get", "a", "b", "--prefix"], 128, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"),
        (&["get", "a", "--prefix", "--from-key"], 128, "`--prefix` and `--from-key` cannot be set at the same time, choose one"),
        (&["get", "a", "--rev", "999"], 1, "etcdserver: mvcc: required revision is a future revision"),
        (&["get", "a", "-w", "table"], 4, "table not supported as output format"),
        (&["get", "a", "-w", "yaml"], 4, "unsupported output format"),
        (&["get", "a", "--bogus"], 1, "unknown flag: --bogus"),
        (&["get", "a", "--limit", "x"], 1, "invalid argument \"x\" for \"--limit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"),
        (&["frobnicate"], 1, "unknown command \"frobnicate\" for \"etcdctl\""),
    ];
    for (args, code, message) in cases {
        let run = s.ctl(args);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (*code, format!("Error: {message}\n").as_str()),
            "{args:?}"
        );
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn put_reads_stdin_and_checks_its_lease() {
    let s = Server::start();
    assert_eq!(ok(&s.ctl_in(&["put", "k"], "from stdin\n")), "OK\n");
    assert_eq!(
        ok(&s.ctl(&["get", "k", "--print-value-only"])),
        "from stdin\n\n"
    );
    let run = s.ctl_in(&["put", "k"], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            128,
            "Error: put command needs 1 argument and input from stdin or 2 arguments\n"
        )
    );
    let run = s.ctl(&["put", "k", "v", "--lease", "zz"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (128, "Error: bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex\n")
    );
    let run = s.ctl(&["put", "k", "v", "--lease", "123"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "Error: etcdserver: requested lease not found\n")
    );
    let run = s.ctl(&["put", "k", "v", "--ignore-value"]);
    assert_eq!(run.code, 128);
    let run = s.ctl(&["put", "new", "--ignore-value"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "Error: etcdserver: key not found\n")
    );
    assert_eq!(ok(&s.ctl(&["put", "k", "--ignore-value"])), "OK\n");
    assert_eq!(
        ok(&s.ctl(&["get", "k", "--print-value-only"])),
        "from stdin\n\n"
    );
}

#[test]
fn del_ranges_and_prefixes() {
    let s = Server::start();
    for k in ["p/1", "p/2", "q"] {
        ok(&s.ctl(&["put", k, "v"]));
    }
    let run = s.ctl(&["del", "p/1", "p/3"]);
    assert_eq!(run.out(), "2\n");
    assert_eq!(
        run.stderr,
        "In etcd v3.6, the operation will be suspended for a few seconds to provide the user time to verify range.\n"
    );
    let run = s.ctl(&["del", "q", "r", "--range"]);
    assert_eq!((run.out().as_str(), run.stderr.as_str()), ("1\n", ""));
    ok(&s.ctl(&["put", "p/3", "v"]));
    assert_eq!(
        ok(&s.ctl(&["del", "p/", "--prefix", "--prev-kv"])),
        "1\np/3\nv\n"
    );
    let run = s.ctl(&["del"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            128,
            "Error: del command needs one argument as key and an optional argument as range_end\n"
        )
    );
}

#[test]
fn txn_from_stdin() {
    let s = Server::start();
    ok(&s.ctl(&["put", "key1", "v1"]));
    let input = "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\nget key1\n\nput key1 \"created-key1\"\n\n";
    assert_eq!(
        ok(&s.ctl_in(&["txn"], input)),
        "SUCCESS\n\nOK\n\nkey1\noverwrote-key1\n"
    );
    let input = "val(\"key1\") = \"nope\"\n\nput key1 x\n\nget key1 --print-value-only\n\n";
    // As in etcdctl, --print-value-only has no effect inside a transaction.
    assert_eq!(
        ok(&s.ctl_in(&["txn"], input)),
        "FAILURE\n\nkey1\noverwrote-key1\n"
    );
    let interactive = ok(&s.ctl_in(&["txn", "-i"], "\n\n\n"));
    assert_eq!(
        interactive,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n"
    );
    let cases: &[(&str, i32, &str)] = &[
        ("mod(\"key1\") > \"0\"\n\nput key1 x\n", 3, "EOF"),
        (
            "mod(key1) > \"0\"\n\n\n\n",
            3,
            "malformed comparison: mod(key1) > \"0\"; got mod(\"\")  \"\"",
        ),
        (
            "foo(\"key1\") > \"0\"\n\n\n\n",
            3,
            "malformed comparison: foo(\"key1\") > \"0\" (unknown target foo)",
        ),
        (
            "mod(\"key1\") > \"x\"\n\n\n\n",
            3,
            "invalid txn compare request: mod(\"key1\") > \"x\"",
        ),
        ("\nbadop key\n\n\n", 3, "invalid txn request: badop key"),
        ("\nget\n\n\n", 3, "invalid txn compare request: get"),
        (
            "\nput key\n\n\n",
            128,
            "put command needs 1 argument and input from stdin or 2 arguments",
        ),
    ];
    for (input, code, message) in cases {
        let run = s.ctl_in(&["txn"], input);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (*code, format!("Error: {message}\n").as_str()),
            "{input:?}"
        );
    }
    let run = s.ctl(&["txn", "extra"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (128, "Error: txn command does not accept argument\n")
    );
}

#[test]
fn compaction_and_compacted_reads() {
    let s = Server::start();
    for v in ["1", "2", "3"] {
        ok(&s.ctl(&["put", "k", v]));
    }
    assert_eq!(ok(&s.ctl(&["compaction", "3"])), "compacted revision 3\n");
    let run = s.ctl(&["compaction", "3"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            "Error: etcdserver: mvcc: required revision has been compacted\n"
        )
    );
    let run = s.ctl(&["get", "k", "--rev", "2"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            "Error: etcdserver: mvcc: required revision has been compacted\n"
        )
    );
    assert_eq!(
        ok(&s.ctl(&["compaction", "--physical", "4"])),
        "compacted revision 4\n"
    );
    let run = s.ctl(&["compaction", "x"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            "Error: strconv.ParseInt: parsing \"x\": invalid syntax\n"
        )
    );
    let run = s.ctl(&["compaction"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (128, "Error: compaction command needs 1 argument\n")
    );
}

fn lease_id(grant_output: &str) -> String {
    // "lease 694d77aa9e38260f granted with TTL(60s)"
    grant_output.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn leases_grant_attach_list_and_revoke() {
    let s = Server::start();
    let granted = ok(&s.ctl(&["lease", "grant", "60"]));
    assert!(granted.ends_with(" granted with TTL(60s)\n"), "{granted}");
    let id = lease_id(&granted);
    assert_eq!(id.len(), 16, "{id}");
    ok(&s.ctl(&["put", "k1", "v", "--lease", &id]));
    let ttl = ok(&s.ctl(&["lease", "timetolive", &id, "--keys"]));
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("s), attached keys([k1])\n"), "{ttl}");
    assert_eq!(
        ok(&s.ctl(&["lease", "list"])),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        ok(&s.ctl(&["lease", "keep-alive", "--once", &id])),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert_eq!(
        ok(&s.ctl(&["lease", "revoke", &id])),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(&s.ctl(&["get", "k1"])), "");
    assert_eq!(
        ok(&s.ctl(&["lease", "timetolive", &id])),
        format!("lease {id} already expired\n")
    );
    assert_eq!(ok(&s.ctl(&["lease", "list"])), "found 0 leases\n");
}

#[test]
fn bad_leases_fail_as_etcdctl() {
    let s = Server::start();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["lease", "revoke", "1234"], 1, "failed to revoke lease (etcdserver: requested lease not found)"),
        (&["lease", "revoke", "zz"], 128, "bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"),
        (&["lease", "keep-alive", "--once", "1234"], 2, "etcdserver: requested lease not found"),
        (&["lease", "grant", "abc"], 128, "bad TTL (strconv.ParseInt: parsing \"abc\": invalid syntax)"),
        (&["lease", "grant"], 128, "lease grant command needs TTL argument"),
        (&["lease", "grant", "99999999999"], 1, "failed to grant lease (etcdserver: too large lease TTL)"),
        (&["lease", "timetolive"], 128, "lease timetolive command needs lease ID as argument"),
        (&["lease", "keep-alive"], 128, "lease keep-alive command needs lease ID as argument"),
        (&["lease", "revoke"], 128, "lease revoke command needs 1 argument"),
    ];
    for (args, code, message) in cases {
        let run = s.ctl(args);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (*code, format!("Error: {message}\n").as_str()),
            "{args:?}"
        );
    }
    // An unknown lease is "already expired" to timetolive, gone at once to keep-alive.
    assert_eq!(
        ok(&s.ctl(&["lease", "timetolive", "1234"])),
        "lease 0000000000001234 already expired\n"
    );
    assert_eq!(
        ok(&s.ctl(&["lease", "keep-alive", "1234"])),
        "lease 0000000000001234 expired or revoked.\n"
    );
}

#[test]
fn keep_alive_renews_until_the_lease_is_revoked() {
    let s = Server::start();
    let id = lease_id(&ok(&s.ctl(&["lease", "grant", "3"])));
    let keeper = s.spawn_ctl(&["lease", "keep-alive", &id], &[]);
    let first = keeper.next_lines(2, std::time::Duration::from_secs(10));
    for line in &first {
        assert_eq!(line, &format!("lease {id} keepalived with TTL(3)"));
    }
    ok(&s.ctl(&["lease", "revoke", &id]));
    let mut keeper = keeper;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let line = keeper
            .next_lines(1, std::time::Duration::from_secs(10))
            .remove(0);
        if line == format!("lease {id} expired or revoked.") {
            break;
        }
        assert_eq!(line, format!("lease {id} keepalived with TTL(3)"));
        assert!(std::time::Instant::now() < deadline);
    }
    assert_eq!(keeper.wait_exit(std::time::Duration::from_secs(5)), 0);
}

#[test]
fn cluster_and_maintenance_commands() {
    let s = Server::start();
    let members = ok(&s.ctl(&["member", "list"]));
    let fields: Vec<&str> = members.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 6, "{members}");
    assert_eq!(
        &fields[1..],
        [
            "started",
            "default",
            &format!("http://127.0.0.1:{}", s.peer_port),
            &format!("http://127.0.0.1:{}", s.client_port),
            "false"
        ]
    );
    let member_id = fields[0].to_string();
    let table = ok(&s.ctl(&["member", "list", "-w", "table"]));
    assert!(
        table.contains("|        ID        | STATUS  |  NAME   |"),
        "{table}"
    );

    let health = ok(&s.ctl(&["endpoint", "health"]));
    assert!(
        health.starts_with(&format!(
            "{} is healthy: successfully committed proposal: took = ",
            s.endpoint()
        )),
        "{health}"
    );
    let health = ok(&s.ctl(&["endpoint", "health", "--cluster", "-w", "json"]));
    assert!(
        health.starts_with(&format!(
            "[{{\"endpoint\":\"http://127.0.0.1:{}\",\"health\":true,\"took\":\"",
            s.client_port
        )),
        "{health}"
    );

    let status = ok(&s.ctl(&["endpoint", "status"]));
    assert!(
        status.starts_with(&format!("{}, {member_id}, 3.", s.endpoint())),
        "{status}"
    );
    assert!(status.contains(", true, false, "), "{status}");
    let status = ok(&s.ctl(&["endpoint", "status", "--cluster", "-w", "table"]));
    assert!(
        status.contains("| RAFT APPLIED INDEX | ERRORS |"),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "| http://127.0.0.1:{} | {member_id} |",
            s.client_port
        )),
        "{status}"
    );

    let hash = ok(&s.ctl(&["endpoint", "hashkv"]));
    assert!(hash.starts_with(&format!("{}, ", s.endpoint())), "{hash}");
    assert_eq!(
        ok(&s.ctl(&["endpoint", "hashkv", "-w", "table"]))
            .lines()
            .count(),
        5
    );

    assert_eq!(ok(&s.ctl(&["alarm", "list"])), "");
    assert_eq!(ok(&s.ctl(&["alarm", "disarm"])), "");
    let run = s.ctl(&["alarm", "list", "extra"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (128, "Error: alarm list command accepts no arguments\n")
    );

    assert_eq!(
        ok(&s.ctl(&["defrag"])),
        format!("Finished defragmenting etcd member[{}]\n", s.endpoint())
    );
    assert_eq!(
        ok(&s.ctl(&["defrag", "--cluster"])),
        format!(
            "Finished defragmenting etcd member[http://127.0.0.1:{}]\n",
            s.client_port
        )
    );

    assert_eq!(
        ok(&s.ctl(&["move-leader", &member_id])),
        format!("Leadership transferred from {member_id} to {member_id}\n")
    );
    let run = s.ctl(&["move-leader", "1234"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "Error: etcdserver: bad leader transferee\n")
    );
    let run = s.ctl(&["move-leader", "zz"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            128,
            "Error: strconv.ParseUint: parsing \"zz\": invalid syntax\n"
        )
    );
    let run = s.ctl(&["move-leader", &member_id, "-w", "fields"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (4, "Error: fields not supported as output format\n")
    );
}

#[test]
fn version_is_etcdctl_35() {
    let run = run_ctl(&etcdctl(), &["version"], b"");
    assert_eq!(run.out(), "etcdctl version: 3.5.0\nAPI version: 3.5\n");
    assert_eq!(run.code, 0);
}

#[test]
fn an_unreachable_endpoint_times_out_as_etcdctl() {
    let endpoint = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let run = run_ctl(
        &etcdctl(),
        &[
            "--endpoints",
            &endpoint,
            "--command-timeout",
            "1s",
            "get",
            "foo",
        ],
        b"",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "Error: context deadline exceeded\n")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let run = run_ctl(
        &etcdctl(),
        &[
            "--endpoints",
            &endpoint,
            "--command-timeout",
            "1s",
            "lease",
            "list",
        ],
        b"",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "Error: context deadline exceeded\n")
    );
    let run = run_ctl(
        &etcdctl(),
        &[
            "--endpoints",
            &endpoint,
            "--command-timeout",
            "1s",
            "endpoint",
            "health",
        ],
        b"",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, format!("{endpoint} is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n").as_str())
    );
    let run = run_ctl(
        &etcdctl(),
        &[
            "--endpoints",
            &endpoint,
            "--command-timeout",
            "1s",
            "endpoint",
            "status",
        ],
        b"",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            format!(
                "Failed to get the status of endpoint {endpoint} (context deadline exceeded)\n"
            )
            .as_str()
        )
    );
    let run = run_ctl(
        &etcdctl(),
        &[
            "--endpoints",
            &endpoint,
            "--dial-timeout",
            "500ms",
            "--user",
            "root:pw",
            "get",
            "foo",
        ],
        b"",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "Error: context deadline exceeded\n")
    );
}

#[test]
fn a_second_endpoint_serves_when_the_first_is_down() {
    let s = Server::start();
    ok(&s.ctl(&["put", "k", "v"]));
    let endpoints = format!("127.0.0.1:{},{}", free_port(), s.endpoint());
    let run = run_ctl(&etcdctl(), &["--endpoints", &endpoints, "get", "k"], b"");
    assert_eq!(ok(&run), "k\nv\n");
}

#[test]
fn global_flags_come_from_etcdctl_environment_variables() {
    let s = Server::start();
    ok(&s.ctl(&["put", "a", "b"]));
    let mut command = std::process::Command::new(etcdctl());
    command
        .args(["get", "a"])
        .env("ETCDCTL_ENDPOINTS", s.endpoint())
        .env("ETCDCTL_WRITE_OUT", "fields")
        .env("ETCDCTL_HEX", "true");
    let run = support::run_bounded(command, b"", support::COMMAND_TIMEOUT);
    assert!(ok(&run).contains("\"Key\" : \"a\"\n"), "{}", run.out());
    // A flag on the command line wins over its variable.
    let mut command = std::process::Command::new(etcdctl());
    command
        .args(["get", "a", "-w", "simple"])
        .env("ETCDCTL_ENDPOINTS", s.endpoint())
        .env("ETCDCTL_WRITE_OUT", "fields");
    let run = support::run_bounded(command, b"", support::COMMAND_TIMEOUT);
    assert_eq!(ok(&run), "a\nb\n");
}

#[test]
fn tls_and_unsupported_commands_fail_loudly() {
    let s = Server::start();
    let run = s.ctl(&["--cacert", "/tmp/ca.pem", "get", "a"]);
    assert_eq!(run.code, 128);
    assert!(
        run.stderr.starts_with("Error: TLS is not supported yet"),
        "{}",
        run.stderr
    );
    let run = run_ctl(
        &etcdctl(),
        &["--endpoints", "https://127.0.0.1:2379", "get", "a"],
        b"",
    );
    assert_eq!(run.code, 128);
    assert!(
        run.stderr.starts_with("Error: TLS is not supported yet"),
        "{}",
        run.stderr
    );
    for (args, name) in [
        (&["user", "list"][..], "user list"),
        (&["role", "add", "r"][..], "role add"),
        (&["auth", "enable"][..], "auth enable"),
        (&["lock", "l"][..], "lock"),
        (&["elect", "e", "p"][..], "elect"),
        (&["snapshot", "save", "/tmp/x.db"][..], "snapshot save"),
        (&["make-mirror", "127.0.0.1:1"][..], "make-mirror"),
        (&["check", "perf"][..], "check perf"),
        (
            &["member", "add", "m2", "--peer-urls", "http://127.0.0.1:1"][..],
            "member add",
        ),
        (&["member", "remove", "1"][..], "member remove"),
        (
            &["member", "update", "1", "--peer-urls", "http://x"][..],
            "member update",
        ),
        (&["member", "promote", "1"][..], "member promote"),
    ] {
        let run = s.ctl(args);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (
                4,
                format!("Error: \"{name}\" is not supported yet by this etcdctl\n").as_str()
            ),
            "{args:?}"
        );
    }
    let members = ok(&s.ctl(&["member", "list"]));
    assert_eq!(
        members.lines().count(),
        1,
        "member add must not have added: {members}"
    );
}

#[test]
fn debug_lists_the_global_flags_as_etcdctl_variables() {
    let s = Server::start();
    let run = s.ctl(&["--debug", "get", "a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 18, "{}", run.stderr);
    assert_eq!(lines[0], "ETCDCTL_CACERT=");
    assert_eq!(lines[2], "ETCDCTL_COMMAND_TIMEOUT=5s");
    assert_eq!(lines[7], format!("ETCDCTL_ENDPOINTS=[{}]", s.endpoint()));
    assert_eq!(lines[17], "ETCDCTL_WRITE_OUT=simple");
}

#[test]
fn a_command_group_alone_prints_its_usage() {
    let run = run_ctl(&etcdctl(), &["lease"], b"");
    assert_eq!(run.code, 0);
    assert!(run.out().contains("keep-alive"), "{}", run.out());
    let run = run_ctl(&etcdctl(), &[], b"");
    assert_eq!(run.code, 0);
    assert!(run
        .out()
        .contains("A simple command line client for etcd3."));
}
