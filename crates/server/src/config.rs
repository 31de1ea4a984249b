//! The server's configuration: etcd's command line flags, `ETCD_*` environment
//! variables and `--config-file` YAML, turned into one validated [`ServerConfig`].
//!
//! Invariant kept here: every value a [`ServerConfig`] holds has passed etcd's checks
//! (URLs parse, the election timeout is 5..=50000/heartbeat-compatible, this member is in
//! `--initial-cluster`, enums hold known values), so the rest of the server never
//! re-validates. Defaults live in one place, [`Flags::with_defaults`].
//!
//! Sources, as etcd treats them: flags and environment variables are merged (a variable
//! that a flag also sets is an error, as in etcd); when `--config-file` is given, the file
//! is the only source and other flags and variables are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use url::Url;

/// The etcd version this server speaks and reports (`/version`, Status, `--version`).
pub const ETCD_VERSION: &str = "3.5.0";

/// The highest election timeout etcd accepts, in milliseconds.
const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;

/// A configuration problem, reported to the operator before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line could not be parsed (clap's message, with usage).
    #[error("{0}")]
    Usage(String),
    /// A flag or file value is invalid; the message names the flag and value.
    #[error("{0}")]
    Invalid(String),
    /// The config file could not be read or parsed.
    #[error("error reading config file {path}: {reason}")]
    File {
        /// The file named by `--config-file`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// What to do with the command line besides running the server.
#[derive(Debug)]
pub enum Invocation {
    /// Run a member with this configuration.
    Run(Box<ServerConfig>),
    /// `--version`: print the version and exit.
    Version,
    /// `--help`: print this help text and exit.
    Help(String),
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster.
    New,
    /// Join a cluster that already runs.
    Existing,
}

/// `--auto-compaction-mode` with its parsed `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// No automatic compaction (retention 0).
    Off,
    /// Keep this much history by time.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// The default.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only (`panic` and `fatal` map here too).
    Error,
}

/// `--logger`: etcd's `zap` (JSON lines, the default) or human-readable `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, as etcd's zap logger writes.
    Json,
    /// Human-readable lines.
    Text,
}

/// TLS files and switches for one side (clients or peers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TlsFlags {
    /// Server certificate.
    pub cert_file: Option<PathBuf>,
    /// Server key.
    pub key_file: Option<PathBuf>,
    /// CA that client certificates must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify client certificates.
    pub client_cert_auth: bool,
    /// Generate a self-signed certificate at start.
    pub auto_tls: bool,
}

impl TlsFlags {
    /// Whether this side serves TLS.
    pub fn enabled(&self) -> bool {
        self.auto_tls || (self.cert_file.is_some() && self.key_file.is_some())
    }
}

/// The raw flags, as given on the command line, in the environment or in the YAML file.
///
/// Every field is optional here; [`Flags::with_defaults`] fills etcd's defaults in and
/// [`ServerConfig::from_flags`] validates.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(
    name = "etcd",
    about = "A distributed, reliable key-value store (etcd-rs, etcd v3.5 API)",
    disable_version_flag = true
)]
#[serde(default, rename_all = "kebab-case")]
pub struct Flags {
    /// Print the version and exit.
    #[arg(long)]
    #[serde(skip)]
    pub version: bool,
    /// Path to the server configuration file (etcd's YAML keys). When given, other
    /// command line flags and environment variables are ignored.
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,

    /// Human-readable name for this member [default: default].
    #[arg(long, env = "ETCD_NAME")]
    pub name: Option<String>,
    /// Path to the data directory [default: ${name}.etcd].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path to the dedicated WAL directory [default: ${data-dir}/member/wal].
    #[arg(long, env = "ETCD_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic [default: http://localhost:2379].
    #[arg(long, env = "ETCD_LISTEN_CLIENT_URLS")]
    pub listen_client_urls: Option<String>,
    /// List of this member's client URLs to advertise [default: http://localhost:2379].
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,
    /// List of URLs to listen on for peer traffic [default: http://localhost:2380].
    #[arg(long, env = "ETCD_LISTEN_PEER_URLS")]
    pub listen_peer_urls: Option<String>,
    /// List of this member's peer URLs to advertise [default: http://localhost:2380].
    #[arg(long, env = "ETCD_INITIAL_ADVERTISE_PEER_URLS")]
    pub initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration for bootstrapping, `name=url,...`
    /// [default: default=http://localhost:2380].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to join one [default: new].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE")]
    pub initial_cluster_state: Option<String>,
    /// Initial cluster token, mixed into member and cluster ids [default: etcd-cluster].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// Number of committed transactions to trigger a snapshot to disk [default: 100000].
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT")]
    pub snapshot_count: Option<u64>,
    /// Entries kept in memory after a snapshot for slow followers [default: 5000].
    #[arg(
        long,
        alias = "experimental-snapshot-catchup-entries",
        env = "ETCD_SNAPSHOT_CATCHUP_ENTRIES"
    )]
    #[serde(alias = "experimental-snapshot-catch-up-entries")]
    pub snapshot_catchup_entries: Option<u64>,
    /// Time (in milliseconds) of a heartbeat interval [default: 100].
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<u64>,
    /// Time (in milliseconds) for an election to timeout [default: 1000].
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT")]
    pub election_timeout: Option<u64>,
    /// Maximum backend size in bytes before the NOSPACE alarm; 0 is the 2 GiB default.
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES")]
    pub quota_backend_bytes: Option<i64>,
    /// Maximum client request size in bytes [default: 1572864].
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<u64>,
    /// Maximum number of operations in a transaction [default: 128].
    #[arg(long, env = "ETCD_MAX_TXN_OPS")]
    pub max_txn_ops: Option<u64>,
    /// Maximum snapshot files to retain, 0 is unlimited [default: 5].
    #[arg(long, env = "ETCD_MAX_SNAPSHOTS")]
    pub max_snapshots: Option<u64>,
    /// Maximum WAL files to retain, 0 is unlimited [default: 5].
    #[arg(long, env = "ETCD_MAX_WALS")]
    pub max_wals: Option<u64>,
    /// `periodic` (retention is a duration, bare numbers are hours) or `revision`
    /// [default: periodic].
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE")]
    pub auto_compaction_mode: Option<String>,
    /// History to keep when auto compacting; 0 turns it off [default: 0].
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION")]
    pub auto_compaction_retention: Option<String>,
    /// debug, info, warn, error, panic or fatal [default: info].
    #[arg(long, env = "ETCD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// `zap` or `json` (JSON lines, as etcd) or `text` [default: zap].
    #[arg(long, env = "ETCD_LOGGER")]
    pub logger: Option<String>,
    /// Run the additional PreVote election phase [default: true].
    #[arg(long, env = "ETCD_PRE_VOTE")]
    pub pre_vote: Option<bool>,
    /// Reject reconfiguration requests that would cause quorum loss [default: true].
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK")]
    pub strict_reconfig_check: Option<bool>,
    /// Force a new cluster of one member from the existing data [default: false].
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER")]
    pub force_new_cluster: Option<bool>,
    /// `simple` or `jwt,...` [default: simple].
    #[arg(long, env = "ETCD_AUTH_TOKEN")]
    pub auth_token: Option<String>,
    /// Time to live of simple tokens, in seconds [default: 300].
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL")]
    pub auth_token_ttl: Option<u64>,
    /// bcrypt cost for hashing passwords [default: 10].
    #[arg(long, env = "ETCD_BCRYPT_COST")]
    pub bcrypt_cost: Option<u32>,
    /// Check this member's hash against its peers' before serving [default: false].
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK")]
    pub experimental_initial_corrupt_check: Option<bool>,
    /// Period of the cluster corruption check, e.g. `5m`; 0 turns it off [default: 0s].
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME")]
    pub experimental_corrupt_check_time: Option<String>,
    /// Additional URLs to serve /metrics and /health on.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,

    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    #[serde(skip)]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    #[serde(skip)]
    pub key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    #[serde(skip)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH")]
    #[serde(skip)]
    pub client_cert_auth: Option<bool>,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS")]
    #[serde(skip)]
    pub auto_tls: Option<bool>,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    #[serde(skip)]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    #[serde(skip)]
    pub peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    #[serde(skip)]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH")]
    #[serde(skip)]
    pub peer_client_cert_auth: Option<bool>,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS")]
    #[serde(skip)]
    pub peer_auto_tls: Option<bool>,

    /// `client-transport-security` in the YAML file.
    #[arg(skip)]
    pub client_transport_security: Option<TlsFlags>,
    /// `peer-transport-security` in the YAML file.
    #[arg(skip)]
    pub peer_transport_security: Option<TlsFlags>,
}

/// The validated configuration of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// This member's name.
    pub name: String,
    /// The data directory (`member/snap`, the backend, and `member/wal` unless moved).
    pub data_dir: PathBuf,
    /// Where the WAL lives.
    pub wal_dir: PathBuf,
    /// Client listeners.
    pub listen_client_urls: Vec<Url>,
    /// Client URLs this member advertises.
    pub advertise_client_urls: Vec<Url>,
    /// Peer listeners.
    pub listen_peer_urls: Vec<Url>,
    /// Peer URLs this member advertises.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// Members of the initial cluster: name -> peer URLs.
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
    /// Bootstrap a new cluster or join an existing one.
    pub initial_cluster_state: ClusterState,
    /// Mixed into member and cluster ids.
    pub initial_cluster_token: String,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Entries kept in the raft log after a snapshot.
    pub snapshot_catchup_entries: u64,
    /// One raft tick.
    pub heartbeat_interval_ms: u64,
    /// Election timeout (a whole number of ticks).
    pub election_timeout_ms: u64,
    /// Backend quota in bytes (0 in the flag is 2 GiB here).
    pub quota_backend_bytes: u64,
    /// Largest client request accepted.
    pub max_request_bytes: u64,
    /// Most operations in one txn.
    pub max_txn_ops: u64,
    /// Snapshot files kept (0: all).
    pub max_snapshots: u64,
    /// WAL files kept (0: all).
    pub max_wals: u64,
    /// Automatic compaction policy.
    pub auto_compaction: AutoCompaction,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// PreVote on.
    pub pre_vote: bool,
    /// Refuse reconfigurations that would lose quorum.
    pub strict_reconfig_check: bool,
    /// Restart as a one-member cluster.
    pub force_new_cluster: bool,
    /// `simple` or the jwt options string.
    pub auth_token: String,
    /// Simple token lifetime in seconds.
    pub auth_token_ttl_secs: u64,
    /// bcrypt cost.
    pub bcrypt_cost: u32,
    /// Compare hashes with peers before serving.
    pub initial_corrupt_check: bool,
    /// Period of the corruption check (None: off).
    pub corrupt_check_interval: Option<Duration>,
    /// Extra listeners for /metrics and /health.
    pub listen_metrics_urls: Vec<Url>,
    /// Client-side TLS.
    pub client_tls: TlsFlags,
    /// Peer-side TLS.
    pub peer_tls: TlsFlags,
}

/// The default backend quota when the flag is 0, as etcd: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl ServerConfig {
    /// Reads the command line (`args` includes the program name) and the environment.
    pub fn from_args<I, S>(args: I) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let args = normalize_go_style_flags(args);
        let mut cmd = Flags::command();
        let matches = match cmd.try_get_matches_from_mut(&args) {
            Ok(m) => m,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                return Ok(Invocation::Help(e.to_string()));
            }
            Err(e) => return Err(ConfigError::Usage(e.to_string())),
        };
        let flags =
            Flags::from_arg_matches(&matches).map_err(|e| ConfigError::Usage(e.to_string()))?;
        if flags.version {
            return Ok(Invocation::Version);
        }
        if let Some(path) = &flags.config_file {
            let from_file = Flags::from_yaml_file(path)?;
            return Ok(Invocation::Run(Box::new(Self::from_flags(from_file)?)));
        }
        reject_shadowed_env(&matches)?;
        Ok(Invocation::Run(Box::new(Self::from_flags(flags)?)))
    }

    /// Validates raw flags, with etcd's defaults for what is not set.
    pub fn from_flags(flags: Flags) -> Result<Self, ConfigError> {
        let f = flags.with_defaults();
        let name = f.name.unwrap_or_default();
        let data_dir = f.data_dir.unwrap_or_default();
        let wal_dir = f
            .wal_dir
            .unwrap_or_else(|| data_dir.join("member").join("wal"));

        let listen_client_urls =
            parse_urls("--listen-client-urls", f.listen_client_urls.as_deref())?;
        let advertise_client_urls = parse_urls(
            "--advertise-client-urls",
            f.advertise_client_urls.as_deref(),
        )?;
        let listen_peer_urls = parse_urls("--listen-peer-urls", f.listen_peer_urls.as_deref())?;
        let initial_advertise_peer_urls = parse_urls(
            "--initial-advertise-peer-urls",
            f.initial_advertise_peer_urls.as_deref(),
        )?;
        let listen_metrics_urls = match f.listen_metrics_urls.as_deref() {
            None | Some("") => Vec::new(),
            some => parse_urls("--listen-metrics-urls", some)?,
        };
        let initial_cluster = parse_initial_cluster(f.initial_cluster.as_deref().unwrap_or(""))?;

        let initial_cluster_state = match f.initial_cluster_state.as_deref() {
            Some("new") => ClusterState::New,
            Some("existing") => ClusterState::Existing,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "invalid value {:?} for flag -initial-cluster-state: valid values are \"new\", \"existing\"",
                    other.unwrap_or("")
                )))
            }
        };

        let heartbeat_interval_ms = f.heartbeat_interval.unwrap_or(0);
        let election_timeout_ms = f.election_timeout.unwrap_or(0);
        if heartbeat_interval_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--heartbeat-interval must be >0 (set to {heartbeat_interval_ms}ms)"
            )));
        }
        if election_timeout_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout must be >0 (set to {election_timeout_ms}ms)"
            )));
        }
        if 5 * heartbeat_interval_ms > election_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{election_timeout_ms}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat_interval_ms}ms]"
            )));
        }
        if election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{election_timeout_ms}ms] is too long, and should be set less than {MAX_ELECTION_TIMEOUT_MS}ms"
            )));
        }

        let auto_compaction = parse_auto_compaction(
            f.auto_compaction_mode.as_deref().unwrap_or(""),
            f.auto_compaction_retention.as_deref().unwrap_or(""),
        )?;
        let log_level = match f.log_level.as_deref().unwrap_or("") {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" | "dpanic" | "panic" | "fatal" => LogLevel::Error,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unrecognized level: {other:?} (--log-level supports debug, info, warn, error, panic, or fatal)"
                )))
            }
        };
        let log_format = match f.logger.as_deref().unwrap_or("") {
            "zap" | "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown logger option {other:?} (--logger supports zap, json or text)"
                )))
            }
        };
        let corrupt_check_interval = match f.experimental_corrupt_check_time.as_deref() {
            None | Some("") | Some("0") | Some("0s") => None,
            Some(s) => Some(parse_go_duration(s).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "invalid value {s:?} for flag -experimental-corrupt-check-time: parse error"
                ))
            })?),
        };
        let quota = f.quota_backend_bytes.unwrap_or(0);
        let quota_backend_bytes = match quota {
            0 => DEFAULT_QUOTA_BACKEND_BYTES,
            q if q < 0 => {
                return Err(ConfigError::Invalid(format!(
                    "--quota-backend-bytes must not be negative (set to {q})"
                )))
            }
            q => q.unsigned_abs(),
        };

        let client_tls = f.client_transport_security.clone().unwrap_or(TlsFlags {
            cert_file: f.cert_file.clone(),
            key_file: f.key_file.clone(),
            trusted_ca_file: f.trusted_ca_file.clone(),
            client_cert_auth: f.client_cert_auth.unwrap_or(false),
            auto_tls: f.auto_tls.unwrap_or(false),
        });
        let peer_tls = f.peer_transport_security.clone().unwrap_or(TlsFlags {
            cert_file: f.peer_cert_file.clone(),
            key_file: f.peer_key_file.clone(),
            trusted_ca_file: f.peer_trusted_ca_file.clone(),
            client_cert_auth: f.peer_client_cert_auth.unwrap_or(false),
            auto_tls: f.peer_auto_tls.unwrap_or(false),
        });

        let cfg = ServerConfig {
            name,
            data_dir,
            wal_dir,
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state,
            initial_cluster_token: f.initial_cluster_token.unwrap_or_default(),
            snapshot_count: f.snapshot_count.unwrap_or(0),
            snapshot_catchup_entries: f.snapshot_catchup_entries.unwrap_or(0),
            heartbeat_interval_ms,
            election_timeout_ms,
            quota_backend_bytes,
            max_request_bytes: f.max_request_bytes.unwrap_or(0),
            max_txn_ops: f.max_txn_ops.unwrap_or(0),
            max_snapshots: f.max_snapshots.unwrap_or(0),
            max_wals: f.max_wals.unwrap_or(0),
            auto_compaction,
            log_level,
            log_format,
            pre_vote: f.pre_vote.unwrap_or(true),
            strict_reconfig_check: f.strict_reconfig_check.unwrap_or(true),
            force_new_cluster: f.force_new_cluster.unwrap_or(false),
            auth_token: f.auth_token.unwrap_or_default(),
            auth_token_ttl_secs: f.auth_token_ttl.unwrap_or(0),
            bcrypt_cost: f.bcrypt_cost.unwrap_or(0),
            initial_corrupt_check: f.experimental_initial_corrupt_check.unwrap_or(false),
            corrupt_check_interval,
            listen_metrics_urls,
            client_tls,
            peer_tls,
        };
        cfg.check_cluster_membership()?;
        Ok(cfg)
    }

    /// The raft election timeout in ticks.
    pub fn election_ticks(&self) -> usize {
        usize::try_from(self.election_timeout_ms / self.heartbeat_interval_ms).unwrap_or(usize::MAX)
    }

    /// This member must be in `--initial-cluster` with exactly its advertised peer URLs.
    fn check_cluster_membership(&self) -> Result<(), ConfigError> {
        let Some(urls) = self.initial_cluster.get(&self.name) else {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        };
        let mut want: Vec<&str> = urls.iter().map(Url::as_str).collect();
        let mut have: Vec<&str> = self
            .initial_advertise_peer_urls
            .iter()
            .map(Url::as_str)
            .collect();
        want.sort_unstable();
        have.sort_unstable();
        if want != have {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} \
                 (the advertised peer URLs of this member must match its entry in --initial-cluster)",
                self.name,
                want.join(","),
                have.join(",")
            )));
        }
        Ok(())
    }
}

impl Flags {
    /// Reads etcd's YAML configuration file.
    pub fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_yaml(&text).map_err(|reason| ConfigError::File {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses etcd's YAML configuration keys.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Flags::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    /// Fills etcd's defaults into every unset field: the one place defaults live.
    pub fn with_defaults(mut self) -> Self {
        fn or<T>(v: &mut Option<T>, d: T) {
            if v.is_none() {
                *v = Some(d);
            }
        }
        or(&mut self.name, "default".to_string());
        let name = self.name.clone().unwrap_or_default();
        or(&mut self.data_dir, PathBuf::from(format!("{name}.etcd")));
        or(
            &mut self.listen_client_urls,
            "http://localhost:2379".to_string(),
        );
        or(
            &mut self.advertise_client_urls,
            "http://localhost:2379".to_string(),
        );
        or(
            &mut self.listen_peer_urls,
            "http://localhost:2380".to_string(),
        );
        or(
            &mut self.initial_advertise_peer_urls,
            "http://localhost:2380".to_string(),
        );
        if self.initial_cluster.is_none() {
            // etcd's default: this member alone, at its advertised peer URLs.
            let urls = self.initial_advertise_peer_urls.clone().unwrap_or_default();
            let cluster = urls
                .split(',')
                .filter(|u| !u.trim().is_empty())
                .map(|u| format!("{name}={}", u.trim()))
                .collect::<Vec<_>>()
                .join(",");
            self.initial_cluster = Some(cluster);
        }
        or(&mut self.initial_cluster_state, "new".to_string());
        or(&mut self.initial_cluster_token, "etcd-cluster".to_string());
        or(&mut self.snapshot_count, 100_000);
        or(&mut self.snapshot_catchup_entries, 5_000);
        or(&mut self.heartbeat_interval, 100);
        or(&mut self.election_timeout, 1_000);
        or(&mut self.quota_backend_bytes, 0);
        or(&mut self.max_request_bytes, 1_572_864);
        or(&mut self.max_txn_ops, 128);
        or(&mut self.max_snapshots, 5);
        or(&mut self.max_wals, 5);
        or(&mut self.auto_compaction_mode, "periodic".to_string());
        or(&mut self.auto_compaction_retention, "0".to_string());
        or(&mut self.log_level, "info".to_string());
        or(&mut self.logger, "zap".to_string());
        or(&mut self.auth_token, "simple".to_string());
        or(&mut self.auth_token_ttl, 300);
        or(&mut self.bcrypt_cost, 10);
        self
    }
}

/// Go's flag package accepts `-name value` as well as `--name value`; clap only the
/// latter. Scripts written for etcd use both, so single-dash long flags are rewritten.
fn normalize_go_style_flags(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest_verbatim = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest_verbatim {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        let is_single_dash_long = arg.starts_with('-')
            && !arg.starts_with("--")
            && arg.len() > 2
            && arg.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic);
        if is_single_dash_long {
            out.push(format!("-{arg}"));
        } else {
            out.push(arg);
        }
    }
    out
}

/// etcd refuses a flag that an `ETCD_*` variable also sets, rather than guessing.
fn reject_shadowed_env(matches: &ArgMatches) -> Result<(), ConfigError> {
    let cmd = Flags::command();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let (Some(env), Some(ValueSource::CommandLine)) = (arg.get_env(), matches.value_source(id))
        else {
            continue;
        };
        if std::env::var_os(env).is_some() {
            let env = env.to_string_lossy();
            return Err(ConfigError::Invalid(format!(
                "conflicting environment variable {env:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            )));
        }
    }
    Ok(())
}

fn parse_urls(flag: &str, value: Option<&str>) -> Result<Vec<Url>, ConfigError> {
    let value = value.unwrap_or("");
    let mut urls = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        urls.push(parse_url(flag, raw)?);
    }
    if urls.is_empty() {
        return Err(ConfigError::Invalid(format!("{flag} must not be empty")));
    }
    Ok(urls)
}

fn parse_url(flag: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| ConfigError::Invalid(format!("{flag} {raw:?}: invalid URL ({e})")))?;
    match url.scheme() {
        "http" | "https" | "unix" | "unixs" => {}
        other => {
            return Err(ConfigError::Invalid(format!(
                "{flag} {raw:?}: URL scheme must be http, https, unix or unixs (got {other:?})"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "{flag} {raw:?}: unexpected empty host"
        )));
    }
    if url.port().is_none() && matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid(format!(
            "{flag} {raw:?} must be \"host:port\" (missing port in address)"
        )));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{flag} {raw:?}: URL must not have a path"
        )));
    }
    Ok(url)
}

/// `name1=url1,name1=url2,name2=url3` -> name -> URLs.
fn parse_initial_cluster(value: &str) -> Result<BTreeMap<String, Vec<Url>>, ConfigError> {
    let mut cluster: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for pair in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, raw)) = pair.split_once('=') else {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: {pair:?} is not in the form name=url"
            )));
        };
        let url = parse_url("--initial-cluster", raw.trim())?;
        cluster
            .entry(name.trim().to_string())
            .or_default()
            .push(url);
    }
    if cluster.is_empty() {
        return Err(ConfigError::Invalid(
            "--initial-cluster must not be empty".to_string(),
        ));
    }
    Ok(cluster)
}

fn parse_auto_compaction(mode: &str, retention: &str) -> Result<AutoCompaction, ConfigError> {
    let retention = retention.trim();
    if retention.is_empty() || retention == "0" {
        return match mode {
            "periodic" | "revision" => Ok(AutoCompaction::Off),
            other => Err(ConfigError::Invalid(format!(
                "unknown auto-compaction-mode {other:?}"
            ))),
        };
    }
    match mode {
        "periodic" => {
            // A bare number is hours, as etcd reads it; otherwise a Go duration.
            let duration = match retention.parse::<u64>() {
                Ok(hours) => Some(Duration::from_secs(hours.saturating_mul(3600))),
                Err(_) => parse_go_duration(retention),
            };
            duration
                .filter(|d| !d.is_zero())
                .map(AutoCompaction::Periodic)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "invalid auto-compaction-retention {retention:?} for periodic mode"
                    ))
                })
        }
        "revision" => retention
            .parse::<u64>()
            .map(AutoCompaction::Revision)
            .map_err(|_| {
                ConfigError::Invalid(format!(
                    "invalid auto-compaction-retention {retention:?} for revision mode"
                ))
            }),
        other => Err(ConfigError::Invalid(format!(
            "unknown auto-compaction-mode {other:?}"
        ))),
    }
}

/// Parses Go durations such as `1h30m`, `5m`, `10s`, `250ms`, `1.5h`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut all = vec!["etcd"];
        all.extend_from_slice(args);
        match ServerConfig::from_args(all)? {
            Invocation::Run(cfg) => Ok(*cfg),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_start_one_member_named_default_on_etcds_ports() {
        let cfg = run(&[]).unwrap();
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(cfg.wal_dir, PathBuf::from("default.etcd/member/wal"));
        assert_eq!(cfg.listen_client_urls[0].as_str(), "http://localhost:2379/");
        assert_eq!(cfg.listen_peer_urls[0].port(), Some(2380));
        assert_eq!(cfg.initial_cluster.len(), 1);
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
        assert_eq!(cfg.initial_cluster_token, "etcd-cluster");
        assert_eq!(cfg.snapshot_count, 100_000);
        assert_eq!(cfg.snapshot_catchup_entries, 5_000);
        assert_eq!(cfg.election_ticks(), 10);
        assert_eq!(cfg.max_request_bytes, 1_572_864);
        assert_eq!(cfg.max_txn_ops, 128);
        assert_eq!(cfg.quota_backend_bytes, DEFAULT_QUOTA_BACKEND_BYTES);
        assert_eq!(cfg.auto_compaction, AutoCompaction::Off);
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert!(cfg.pre_vote);
    }

    #[test]
    fn data_dir_follows_the_name() {
        let cfg = run(&[
            "--name",
            "infra1",
            "--initial-cluster",
            "infra1=http://localhost:2380",
        ])
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("infra1.etcd"));
    }

    #[test]
    fn go_style_single_dash_flags_are_accepted() {
        let cfg = run(&["-snapshot-count", "5", "-heartbeat-interval=50"]).unwrap();
        assert_eq!(cfg.snapshot_count, 5);
        assert_eq!(cfg.heartbeat_interval_ms, 50);
    }

    #[test]
    fn election_timeout_must_be_five_heartbeats() {
        let err = run(&["--heartbeat-interval", "300", "--election-timeout", "1000"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
        );
        let err = run(&["--election-timeout", "60000"]).unwrap_err();
        assert!(err.to_string().contains("is too long"), "{err}");
    }

    #[test]
    fn bad_cluster_state_is_an_error_naming_valid_values() {
        let err = run(&["--initial-cluster-state", "bogus"]).unwrap_err();
        assert!(err.to_string().contains("\"new\", \"existing\""), "{err}");
    }

    #[test]
    fn member_missing_from_initial_cluster_is_an_error() {
        let err = run(&["--initial-cluster", "other=http://127.0.0.1:2380"]).unwrap_err();
        assert!(
            err.to_string().contains("couldn't find local name"),
            "{err}"
        );
        let err = run(&["--initial-cluster", "default=http://127.0.0.1:9999"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing from --initial-advertise-peer-urls"),
            "{err}"
        );
    }

    #[test]
    fn urls_without_port_or_with_bad_scheme_are_errors() {
        assert!(run(&["--listen-client-urls", "http://127.0.0.1"]).is_err());
        assert!(run(&["--listen-client-urls", "ftp://127.0.0.1:2379"]).is_err());
        assert!(run(&["--listen-client-urls", "not a url"]).is_err());
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let err = run(&["--no-such-flag"]).unwrap_err();
        assert!(matches!(err, ConfigError::Usage(_)));
    }

    #[test]
    fn version_and_help_are_invocations() {
        assert!(matches!(
            ServerConfig::from_args(["etcd", "--version"]).unwrap(),
            Invocation::Version
        ));
        assert!(matches!(
            ServerConfig::from_args(["etcd", "--help"]).unwrap(),
            Invocation::Help(_)
        ));
    }

    #[test]
    fn auto_compaction_retention_reads_hours_durations_and_revisions() {
        assert_eq!(
            parse_auto_compaction("periodic", "1").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_auto_compaction("periodic", "30m").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_auto_compaction("revision", "1000").unwrap(),
            AutoCompaction::Revision(1000)
        );
        assert!(parse_auto_compaction("revision", "1h").is_err());
        assert!(parse_auto_compaction("sometimes", "1").is_err());
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("m"), None);
    }

    #[test]
    fn yaml_config_file_uses_etcds_keys_and_nested_tls() {
        let yaml = r#"
name: infra2
data-dir: /var/lib/etcd
listen-client-urls: http://127.0.0.1:12379
advertise-client-urls: http://127.0.0.1:12379
listen-peer-urls: http://127.0.0.1:12380
initial-advertise-peer-urls: http://127.0.0.1:12380
initial-cluster: infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:12380
initial-cluster-state: existing
snapshot-count: 10000
heartbeat-interval: 200
election-timeout: 2000
auto-compaction-mode: revision
auto-compaction-retention: "100"
enable-v2: false
client-transport-security:
  cert-file: /etc/etcd/server.crt
  key-file: /etc/etcd/server.key
  client-cert-auth: true
"#;
        let cfg = ServerConfig::from_flags(Flags::from_yaml(yaml).unwrap()).unwrap();
        assert_eq!(cfg.name, "infra2");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/etcd"));
        assert_eq!(cfg.initial_cluster.len(), 2);
        assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
        assert_eq!(cfg.snapshot_count, 10_000);
        assert_eq!(cfg.election_ticks(), 10);
        assert_eq!(cfg.auto_compaction, AutoCompaction::Revision(100));
        assert!(cfg.client_tls.enabled());
        assert!(cfg.client_tls.client_cert_auth);
        assert!(!cfg.peer_tls.enabled());
    }

    #[test]
    fn config_file_wins_over_flags_and_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(
            &path,
            "name: fromfile\ninitial-cluster: fromfile=http://localhost:2380\n",
        )
        .unwrap();
        let cfg = run(&["--config-file", path.to_str().unwrap(), "--name", "ignored"]).unwrap();
        assert_eq!(cfg.name, "fromfile");

        let err = run(&["--config-file", "/nonexistent/etcd.yaml"]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }));
        std::fs::write(&path, "snapshot-count: [1, 2").unwrap();
        let err = run(&["--config-file", path.to_str().unwrap()]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }));
    }
}
