//! Test harness: real `etcd` processes (ours) on loopback ports chosen at run time,
//! reached only through the third-party `etcd-client` crate. Every process is killed
//! when its guard drops, also when a test fails; every wait is bounded.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

/// True when the tests run against another etcd (`ETCD_TEST_BINARY`): tests of our
/// own internals (log lines, data directory layout) are skipped then.
pub fn against_other_etcd() -> bool {
    std::env::var_os("ETCD_TEST_BINARY").is_some()
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// One member's settings.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
}

impl MemberSpec {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// A running member; killed (SIGKILL) on drop.
pub struct Member {
    pub spec: MemberSpec,
    child: Option<Child>,
    initial_cluster: String,
    extra: Vec<String>,
}

impl Member {
    fn spawn(spec: &MemberSpec, initial_cluster: &str, extra: &[String]) -> Child {
        // ETCD_TEST_BINARY runs the same tests against another etcd (e.g. the reference
        // etcd from Debian's package, /usr/bin/etcd), to compare behaviour.
        let binary = std::env::var_os("ETCD_TEST_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_etcd")));
        let logger: &[&str] = if std::env::var_os("ETCD_TEST_BINARY").is_some() {
            &[]
        } else {
            &["--logger", "text"]
        };
        let log = spec.data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open member log");
        Command::new(binary)
            .arg("--name")
            .arg(&spec.name)
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--listen-client-urls")
            .arg(spec.client_url())
            .arg("--advertise-client-urls")
            .arg(spec.client_url())
            .arg("--listen-peer-urls")
            .arg(spec.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(spec.peer_url())
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .args(logger)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start etcd")
    }

    /// Kills the process (SIGKILL), as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(Self::spawn(&self.spec, &self.initial_cluster, &self.extra));
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until the process exits on its own (`None` if it still runs after `limit`
    /// or was never started); the exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => return Some(status),
                Some(Ok(None)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => return None,
            }
        }
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.data_dir.with_extension("log")).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        connect(&[self.spec.client_url()]).await
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of members in a temporary directory.
pub struct Cluster {
    pub members: Vec<Member>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members and waits until they have a leader.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// Starts `n` members with extra flags.
    pub async fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs: Vec<MemberSpec> = (0..n)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}.etcd")),
            })
            .collect();
        let initial_cluster = specs
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let members = specs
            .iter()
            .map(|s| Member {
                child: Some(Member::spawn(s, &initial_cluster, &extra)),
                spec: s.clone(),
                initial_cluster: initial_cluster.clone(),
                extra: extra.clone(),
            })
            .collect();
        let c = Cluster { members, dir };
        c.wait_ready(Duration::from_secs(30)).await;
        c
    }

    /// Settings for one more member (fresh ports, data directory beside the others'),
    /// not started.
    pub fn new_spec(&self, name: &str) -> MemberSpec {
        MemberSpec {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: self.dir.path().join(format!("{name}.etcd")),
        }
    }

    /// An `--initial-cluster` value naming `specs`.
    pub fn initial_cluster_of(specs: &[&MemberSpec]) -> String {
        specs
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts one more member with this `--initial-cluster` and these flags (e.g.
    /// `--initial-cluster-state existing` to join) and appends it to `members`; returns
    /// its index. Does not wait for it.
    pub fn start_member(
        &mut self,
        spec: MemberSpec,
        initial_cluster: &str,
        extra: &[&str],
    ) -> usize {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.members.push(Member {
            child: Some(Member::spawn(&spec, initial_cluster, &extra)),
            spec,
            initial_cluster: initial_cluster.to_string(),
            extra,
        });
        self.members.len() - 1
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.spec.client_url()).collect()
    }

    /// A client of member `i`.
    pub async fn client(&self, i: usize) -> Client {
        self.members[i].client().await
    }

    /// Waits until every running member answers a status with a leader.
    pub async fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for m in &self.members {
            if m.child.is_none() {
                continue;
            }
            loop {
                if let Some(leader) = leader_of(&m.spec.client_url()).await {
                    if leader != 0 {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    panic!(
                        "member {} not ready within {limit:?}; log:\n{}",
                        m.spec.name,
                        m.log()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The index of the member that is the leader, as seen by the running members.
    pub async fn leader(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let Ok(mut c) = try_connect(&[m.spec.client_url()]).await else {
                    continue;
                };
                if let Ok(s) = c.status().await {
                    let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                    if s.leader() != 0 && s.leader() == me {
                        return i;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!("no leader within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn leader_of(endpoint: &str) -> Option<u64> {
    let mut c = try_connect(&[endpoint.to_string()]).await.ok()?;
    let s = tokio::time::timeout(Duration::from_secs(2), c.status())
        .await
        .ok()?
        .ok()?;
    Some(s.leader())
}

pub async fn try_connect(endpoints: &[String]) -> Result<Client, etcd_client::Error> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(15));
    Client::connect(endpoints, Some(opts)).await
}

/// Connects, retrying for a bounded time.
pub async fn connect(endpoints: &[String]) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match try_connect(endpoints).await {
            Ok(c) => return c,
            Err(err) if Instant::now() > deadline => {
                panic!("cannot connect to {endpoints:?}: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The gRPC status inside a client error.
pub fn status_of(err: etcd_client::Error) -> tonic::Status {
    match err {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Asserts an error carries etcd's code and message.
pub fn assert_etcd_error(err: etcd_client::Error, code: tonic::Code, message: &str) {
    let s = status_of(err);
    assert_eq!((s.code(), s.message()), (code, message), "{s:?}");
}

/// Retries an async operation until it succeeds or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("not within {limit:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
