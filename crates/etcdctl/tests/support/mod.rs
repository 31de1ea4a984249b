//! Test harness: a real `etcd` (ours) on loopback ports chosen at run time, killed when
//! its guard drops (also when a test fails), and etcdctl runs bounded in time.
//!
//! The server binary is `$ETCD_BIN` if set, else our `etcd` in the target directory of
//! this test executable (`<target>/debug/etcd`, which `cargo nextest run --workspace`
//! builds for etcd-server's own tests).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for a server to elect itself leader.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest run of one etcdctl command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Our etcdctl.
pub fn etcdctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_etcdctl"))
}

/// The etcd server to test against.
pub fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // <target>/debug/deps/<test> -> <target>/debug/etcd
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("etcd"))
        .expect("the test executable sits in <target>/<profile>/deps");
    assert!(
        candidate.exists(),
        "no etcd server binary at {}: build it with `cargo build -p etcd-server --bin etcd` \
         (same target directory), or point ETCD_BIN at one",
        candidate.display()
    );
    candidate
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: String,
    /// Its exit code (-1 when killed by a signal or the time limit).
    pub code: i32,
}

impl Run {
    /// Standard output as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `program args` with `stdin` as its input, killed after `limit`.
pub fn run_bounded(mut command: Command, stdin: &[u8], limit: Duration) -> Run {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn command");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status.code().unwrap_or(-1),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = writer.join();
    Run {
        stdout: out_reader.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
        code,
    }
}

/// Runs an etcdctl binary with `args` (no `ETCDCTL_*` from the environment).
pub fn run_ctl(binary: &PathBuf, args: &[&str], stdin: &[u8]) -> Run {
    let mut command = Command::new(binary);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    run_bounded(command, stdin, COMMAND_TIMEOUT)
}

/// A running single-member etcd; killed (SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a member on fresh ports and waits until it has a leader.
    pub fn start() -> Server {
        Server::start_at(free_port(), free_port())
    }

    /// Starts a member on the given ports (the same ports give the same member and
    /// cluster IDs) and waits until it has a leader.
    pub fn start_at(client_port: u16, peer_port: u16) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server {
            child: None,
            client_port,
            peer_port,
            dir,
        };
        server.spawn();
        server.wait_ready();
        server
    }

    fn spawn(&mut self) {
        let dir = &self.dir;
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("etcd.log"))
            .expect("log file");
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    /// Kills the server and starts it again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let run = self.ctl(&[
                "--command-timeout",
                "1s",
                "endpoint",
                "status",
                "-w",
                "json",
            ]);
            if run.code == 0 && run.out().contains("\"leader\":") {
                return;
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("etcd exited while starting ({status}):\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not get ready within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// `127.0.0.1:<client port>`, as users pass it to `--endpoints`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Runs our etcdctl against this server.
    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_with(&etcdctl(), args, b"")
    }

    /// Runs our etcdctl against this server with `stdin`.
    pub fn ctl_in(&self, args: &[&str], stdin: &str) -> Run {
        self.ctl_with(&etcdctl(), args, stdin.as_bytes())
    }

    /// Runs `binary` (an etcdctl) against this server.
    pub fn ctl_with(&self, binary: &PathBuf, args: &[&str], stdin: &[u8]) -> Run {
        let endpoint = self.endpoint();
        let mut all = vec!["--endpoints", endpoint.as_str()];
        all.extend_from_slice(args);
        run_ctl(binary, &all, stdin)
    }

    /// Starts a long-running etcdctl (e.g. `watch`) against this server.
    pub fn spawn_ctl(&self, args: &[&str], envs: &[(&str, &str)]) -> Streaming {
        let mut command = Command::new(etcdctl());
        command
            .args(["--endpoints", &self.endpoint()])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Streaming::spawn(command)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running etcdctl whose output is read line by line with bounded waits; killed on
/// drop.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
    /// Its stdin (dropped to close it).
    pub stdin: Option<std::process::ChildStdin>,
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
}

impl Streaming {
    fn spawn(mut command: Command) -> Streaming {
        let mut child = command.spawn().expect("spawn etcdctl");
        let (tx, lines) = mpsc::channel();
        forward(child.stdout.take().expect("stdout"), tx);
        let (tx, errors) = mpsc::channel();
        forward(child.stderr.take().expect("stderr"), tx);
        let stdin = child.stdin.take();
        Streaming {
            child,
            lines,
            errors,
            stdin,
        }
    }

    /// The next `n` lines of stdout, waiting at most `limit` in all.
    pub fn next_lines(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        while lines.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => panic!(
                    "only {} of {n} lines within {limit:?}: {lines:?}",
                    lines.len()
                ),
            }
        }
        lines
    }

    /// The next line of stderr, waiting at most `limit`.
    pub fn next_error(&self, limit: Duration) -> String {
        self.errors
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no stderr line within {limit:?}"))
    }

    /// Writes a line to its stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Waits at most `limit` for it to exit; its exit code (-1 if killed).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "etcdctl did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
