//! `watch` against a real server: events as they come, in each format, exec mode with
//! etcdctl's environment variables, the key from `ETCDCTL_WATCH_KEY`, interactive mode,
//! cancellation by compaction (exit 5), resumption after a server restart, and the
//! argument errors.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::Server;

const WAIT: Duration = Duration::from_secs(15);

fn ok(run: &support::Run) -> String {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    run.out()
}

/// The next revision the server will write (watching from it misses nothing).
fn next_revision(s: &Server) -> String {
    let json = ok(&s.ctl(&["get", "any", "-w", "json"]));
    let revision: i64 = json
        .split("\"revision\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap()
        .parse()
        .unwrap();
    (revision + 1).to_string()
}

#[test]
fn watch_prints_puts_and_deletes_with_previous_values() {
    let s = Server::start();
    ok(&s.ctl(&["put", "w1", "a"]));
    let rev = next_revision(&s);
    let watcher = s.spawn_ctl(&["watch", "w", "--prefix", "--prev-kv", "--rev", &rev], &[]);
    ok(&s.ctl(&["put", "w1", "b c"]));
    ok(&s.ctl(&["del", "w1"]));
    ok(&s.ctl(&["put", "other", "x"]));
    let lines = watcher.next_lines(10, WAIT);
    assert_eq!(
        lines,
        ["PUT", "w1", "a", "w1", "b c", "DELETE", "w1", "b c", "w1", ""]
    );
}

#[test]
fn watch_prints_json_and_fields() {
    let s = Server::start();
    let rev = next_revision(&s);
    let json = s.spawn_ctl(&["watch", "k", "--rev", &rev, "-w", "json"], &[]);
    let fields = s.spawn_ctl(&["watch", "k", "--rev", &rev, "-w", "fields"], &[]);
    ok(&s.ctl(&["put", "k", "v"]));
    let line = json.next_lines(1, WAIT).remove(0);
    assert!(line.starts_with("{\"Header\":{\"cluster_id\":"), "{line}");
    assert!(
        line.ends_with(&format!(
            "\"Events\":[{{\"kv\":{{\"key\":\"aw==\",\"create_revision\":{rev},\"mod_revision\":{rev},\"version\":1,\"value\":\"dg==\"}}}}],\"CompactRevision\":0,\"Canceled\":false,\"Created\":false}}"
        )),
        "{line}"
    );
    let lines = fields.next_lines(11, WAIT);
    assert!(lines[0].starts_with("\"ClusterID\" : "), "{lines:?}");
    assert_eq!(lines[2], format!("\"Revision\" : {rev}"));
    assert_eq!(
        &lines[4..7],
        [
            "\"Type\" : PUT",
            "\"Key\" : \"k\"",
            &format!("\"CreateRevision\" : {rev}")
        ]
    );
}

#[test]
fn exec_mode_runs_the_command_per_event_with_etcdctls_variables() {
    let s = Server::start();
    let rev = next_revision(&s);
    let script =
        "echo \"$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"";
    let watcher = s.spawn_ctl(
        &["watch", "k", "--rev", &rev, "--", "sh", "-c", script],
        &[],
    );
    ok(&s.ctl(&["put", "k", "v 1"]));
    ok(&s.ctl(&["del", "k"]));
    let lines = watcher.next_lines(8, WAIT);
    let next: i64 = rev.parse::<i64>().unwrap() + 1;
    assert_eq!(
        lines,
        [
            "PUT".to_string(),
            "k".to_string(),
            "v 1".to_string(),
            format!("{rev} \"PUT\" \"k\" \"v 1\""),
            "DELETE".to_string(),
            "k".to_string(),
            String::new(),
            format!("{next} \"DELETE\" \"k\" \"\""),
        ]
    );
}

#[test]
fn a_failing_command_ends_the_watch_with_exit_1() {
    let s = Server::start();
    let rev = next_revision(&s);
    let mut watcher = s.spawn_ctl(
        &["watch", "k", "--rev", &rev, "--", "sh", "-c", "exit 3"],
        &[],
    );
    ok(&s.ctl(&["put", "k", "v"]));
    assert_eq!(
        watcher.next_error(WAIT),
        "command [\"sh\" \"-c\" \"exit 3\"] error (exit status 3)"
    );
    assert_eq!(watcher.wait_exit(WAIT), 1);
}

#[test]
fn the_key_may_come_from_the_environment() {
    let s = Server::start();
    let rev = next_revision(&s);
    let watcher = s.spawn_ctl(
        &["watch", "--rev", &rev],
        &[("ETCDCTL_WATCH_KEY", "a"), ("ETCDCTL_WATCH_RANGE_END", "c")],
    );
    ok(&s.ctl(&["put", "c", "not watched"]));
    ok(&s.ctl(&["put", "b", "watched"]));
    assert_eq!(watcher.next_lines(3, WAIT), ["PUT", "b", "watched"]);
}

#[test]
fn a_compacted_revision_cancels_the_watch_with_exit_5() {
    let s = Server::start();
    for v in ["1", "2", "3"] {
        ok(&s.ctl(&["put", "k", v]));
    }
    ok(&s.ctl(&["compaction", "3"]));
    let mut watcher = s.spawn_ctl(&["watch", "k", "--rev", "2"], &[]);
    assert_eq!(
        watcher.next_error(WAIT),
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
    );
    assert_eq!(
        watcher.next_error(WAIT),
        "Error: watch is canceled by the server"
    );
    assert_eq!(watcher.wait_exit(WAIT), 5);
}

#[test]
fn interactive_mode_watches_and_asks_for_progress() {
    let s = Server::start();
    let rev = next_revision(&s);
    let mut watcher = s.spawn_ctl(&["watch", "-i"], &[]);
    watcher.send_line("bogus");
    assert_eq!(
        watcher.next_error(WAIT),
        "Invalid command bogus (only support watch)"
    );
    watcher.send_line("watch a b --prefix");
    assert_eq!(
        watcher.next_error(WAIT),
        "Invalid command watch a b --prefix (`range_end` and `--prefix` are mutually exclusive)"
    );
    watcher.send_line(&format!("watch k --rev {rev}"));
    ok(&s.ctl(&["put", "k", "v"]));
    assert_eq!(watcher.next_lines(3, WAIT), ["PUT", "k", "v"]);
    watcher.send_line("progress");
    assert_eq!(
        watcher.next_lines(1, WAIT),
        [format!("progress notify: {rev}")]
    );
    drop(watcher.stdin.take());
    assert_eq!(
        watcher.next_error(WAIT),
        "Error: error reading watch request line: EOF"
    );
    assert_eq!(watcher.wait_exit(WAIT), 3);
}

#[test]
fn a_watch_resumes_after_the_server_restarts() {
    let mut s = Server::start();
    let rev = next_revision(&s);
    let watcher = s.spawn_ctl(&["watch", "k", "--rev", &rev], &[]);
    ok(&s.ctl(&["put", "k", "1"]));
    assert_eq!(watcher.next_lines(3, WAIT), ["PUT", "k", "1"]);
    s.restart();
    ok(&s.ctl(&["put", "k", "2"]));
    assert_eq!(
        watcher.next_lines(3, Duration::from_secs(30)),
        ["PUT", "k", "2"]
    );
}

#[test]
fn bad_watch_arguments_exit_128() {
    let s = Server::start();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["watch"], &[], "bad number of arguments"),
        (
            &["watch", "a", "--"],
            &[],
            "bad number of arguments (found separator --, but no commands)",
        ),
        (
            &["watch", "--prefix", "a", "b"],
            &[],
            "`range_end` and `--prefix` are mutually exclusive",
        ),
        (
            &["watch", "a"],
            &[("ETCDCTL_WATCH_KEY", "b")],
            "bad number of arguments (found conflicting environment key)",
        ),
        (
            &["watch"],
            &[("ETCDCTL_WATCH_RANGE_END", "b")],
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=\"b\"",
        ),
    ];
    for (args, envs, message) in cases {
        let mut watcher = s.spawn_ctl(args, envs);
        assert_eq!(
            watcher.next_error(WAIT),
            format!("Error: {message}"),
            "{args:?}"
        );
        assert_eq!(watcher.wait_exit(WAIT), 128, "{args:?}");
    }
}
