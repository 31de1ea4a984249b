//! The command line: etcdctl 3.5's commands, flags and defaults.
//!
//! Global flags may stand before or after the command (cobra's persistent flags), read
//! `ETCDCTL_<FLAG>` environment variables when not given (`ETCDCTL_ENDPOINTS`,
//! `ETCDCTL_WRITE_OUT`, `ETCDCTL_DIAL_TIMEOUT`, ...), and booleans also take Go's
//! `--flag=true|false` form. Commands take their positional arguments as a list and
//! check the count themselves, so that a wrong count gets etcdctl's own message.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::gofmt;

/// A simple command line client for etcd3.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "etcdctl",
    about = "A simple command line client for etcd3.",
    disable_version_flag = true,
    infer_subcommands = true
)]
pub struct Cli {
    /// Flags of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run (none: print the usage).
    #[command(subcommand)]
    pub command: Option<Command>,
}

fn parse_bool(text: &str) -> Result<bool, String> {
    gofmt::parse_bool(text)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    gofmt::parse_duration(text)
}

fn parse_i64(text: &str) -> Result<i64, String> {
    gofmt::parse_int(text, 10)
}

/// The global (persistent) flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// enable client-side debug logging
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub debug: bool,

    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long,
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple"
    )]
    pub write_out: String,

    /// print byte strings as hex encoded strings
    #[arg(long, global = true, env = "ETCDCTL_HEX", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub hex: bool,

    /// dial timeout for client connections
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s",
          value_parser = parse_duration)]
    pub dial_timeout: Duration,

    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s",
          value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// keepalive time for client connections
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s",
          value_parser = parse_duration)]
    pub keepalive_time: Duration,

    /// keepalive timeout for client connections
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s",
          value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// disable transport security for client connections
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true",
          value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub insecure_transport: bool,

    /// accept insecure SRV records describing cluster endpoints
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_DISCOVERY", num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true",
          value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub insecure_discovery: bool,

    /// skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true",
          value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,

    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<String>,

    /// identify secure client using this TLS key file
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<String>,

    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<String>,

    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, env = "ETCDCTL_USER", hide_env_values = true)]
    pub user: Option<String>,

    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// domain name to query for SRV records describing cluster endpoints
    #[arg(short = 'd', long, global = true, env = "ETCDCTL_DISCOVERY_SRV")]
    pub discovery_srv: Option<String>,

    /// service name to query when using DNS discovery
    #[arg(long, global = true, env = "ETCDCTL_DISCOVERY_SRV_NAME")]
    pub discovery_srv_name: Option<String>,
}

/// Positional arguments a command checks itself (keys may be any bytes).
#[derive(Debug, Clone, Default, Args)]
pub struct Positionals {
    /// Arguments
    #[arg(value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Puts the given key into the store
    Put(PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(DefragArgs),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(Positionals),
    /// Watches events stream on keys or prefixes
    Watch(WatchArgs),
    /// Prints the version of etcdctl
    Version(Positionals),
    /// Lease related commands
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Membership related commands
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manages etcd node snapshots (not supported yet)
    Snapshot(Unsupported),
    /// Makes a mirror at the destination etcd cluster (not supported yet)
    MakeMirror(Unsupported),
    /// Acquires a named lock (not supported yet)
    Lock(Unsupported),
    /// Observes and participates in leader election (not supported yet)
    Elect(Unsupported),
    /// Enable or disable authentication (not supported yet)
    Auth(Unsupported),
    /// User related commands (not supported yet)
    User(Unsupported),
    /// Role related commands (not supported yet)
    Role(Unsupported),
    /// commands for checking properties of the etcd cluster (not supported yet)
    Check(Unsupported),
}

/// Arguments of a command that exists only to fail loudly.
#[derive(Debug, Clone, Args)]
pub struct Unsupported {
    /// Anything
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// `get [options] <key> [range_end]`
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value = "0", value_parser = parse_i64, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value = "0", value_parser = parse_i64, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub keys_only: bool,
    /// Get only the count
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub print_value_only: bool,
    /// <key> [range_end]
    #[arg(value_name = "KEY")]
    pub args: Vec<OsString>,
}

/// `put [options] <key> <value>` (the value may come from stdin)
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub ignore_lease: bool,
    /// <key> <value>
    #[arg(value_name = "KEY")]
    pub args: Vec<OsString>,
}

/// `del [options] <key> [range_end]`
#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub from_key: bool,
    /// delete range of keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub range: bool,
    /// <key> [range_end]
    #[arg(value_name = "KEY")]
    pub args: Vec<OsString>,
}

/// `txn [options]` (the transaction comes from stdin)
#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub interactive: bool,
    /// (none)
    #[arg(value_name = "ARGS", hide = true)]
    pub args: Vec<OsString>,
}

/// `compaction [options] <revision>`
#[derive(Debug, Clone, Args)]
pub struct CompactionArgs {
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub physical: bool,
    /// <revision>
    #[arg(value_name = "REVISION")]
    pub args: Vec<OsString>,
}

/// `alarm <subcommand>`
#[derive(Debug, Clone, Subcommand)]
pub enum AlarmCommand {
    /// Disarms all alarms
    Disarm(Positionals),
    /// Lists all alarms
    List(Positionals),
}

/// `defrag [options]`
#[derive(Debug, Clone, Args)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub cluster: bool,
    /// Optional. If present, defragments a data directory not in use by etcd.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// (none)
    #[arg(value_name = "ARGS", hide = true)]
    pub args: Vec<OsString>,
}

/// `endpoint <subcommand>`
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub cluster: bool,
    /// The endpoint subcommand.
    #[command(subcommand)]
    pub command: EndpointCommand,
}

/// `endpoint health|status|hashkv`
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health(Positionals),
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status(Positionals),
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv(HashKvArgs),
}

/// `endpoint hashkv [--rev]`
#[derive(Debug, Clone, Args)]
pub struct HashKvArgs {
    /// maximum revision to hash (default: all revisions)
    #[arg(long, default_value = "0", value_parser = parse_i64, allow_negative_numbers = true)]
    pub rev: i64,
    /// (none)
    #[arg(value_name = "ARGS", hide = true)]
    pub args: Vec<OsString>,
}

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value = "0", value_parser = parse_i64, allow_negative_numbers = true)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub progress_notify: bool,
    /// [key or prefix] [range_end]
    #[arg(value_name = "KEY")]
    pub args: Vec<OsString>,
    /// The command to run for each event, after `--`
    #[arg(last = true, value_name = "EXEC")]
    pub exec: Vec<OsString>,
}

/// `lease <subcommand>`
#[derive(Debug, Clone, Subcommand)]
pub enum LeaseCommand {
    /// Creates leases
    Grant(Positionals),
    /// Revokes leases
    Revoke(Positionals),
    /// Get lease information
    Timetolive(TimeToLiveArgs),
    /// List all active leases
    List(Positionals),
    /// Keeps leases alive (renew)
    KeepAlive(KeepAliveArgs),
}

/// `lease timetolive <leaseID> [--keys]`
#[derive(Debug, Clone, Args)]
pub struct TimeToLiveArgs {
    /// Get keys attached to this lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub keys: bool,
    /// <leaseID>
    #[arg(value_name = "LEASE_ID")]
    pub args: Vec<OsString>,
}

/// `lease keep-alive [--once] <leaseID>`
#[derive(Debug, Clone, Args)]
pub struct KeepAliveArgs {
    /// Resets the keep-alive time to its original value and exits immediately
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub once: bool,
    /// <leaseID>
    #[arg(value_name = "LEASE_ID")]
    pub args: Vec<OsString>,
}

/// `member <subcommand>`
#[derive(Debug, Clone, Subcommand)]
pub enum MemberCommand {
    /// Lists all members in the cluster
    List(Positionals),
    /// Adds a member into the cluster (not supported yet)
    Add(Unsupported),
    /// Removes a member from the cluster (not supported yet)
    Remove(Unsupported),
    /// Updates a member in the cluster (not supported yet)
    Update(Unsupported),
    /// Promotes a non-voting member in the cluster (not supported yet)
    Promote(Unsupported),
}

/// A command-line error in cobra's words, as etcdctl prints it after `Error: `
/// (`unknown flag: --foo`, `unknown command "foo" for "etcdctl"`,
/// `invalid argument "x" for "--rev" flag: ...`); clap's own text for other errors.
pub fn usage_error_message(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind: ContextKind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(list)) => list.first().cloned(),
        _ => None,
    };
    // clap names a flag with its value placeholder (`--rev <REV>`): keep the flag.
    let flag = context(ContextKind::InvalidArg)
        .map(|a| a.split([' ', '=']).next().unwrap_or_default().to_string());
    match (err.kind(), flag) {
        (ErrorKind::UnknownArgument, Some(flag)) if flag.starts_with("--") => {
            format!("unknown flag: {flag}")
        }
        (ErrorKind::UnknownArgument, Some(flag)) if flag.starts_with('-') => {
            let short = flag.chars().nth(1).unwrap_or('-');
            format!("unknown shorthand flag: '{short}' in {flag}")
        }
        (ErrorKind::InvalidSubcommand, _) | (ErrorKind::UnknownArgument, _) => {
            let name = context(ContextKind::InvalidSubcommand)
                .or_else(|| context(ContextKind::InvalidArg))
                .unwrap_or_default();
            format!("unknown command {name:?} for \"etcdctl\"")
        }
        (ErrorKind::ValueValidation | ErrorKind::InvalidValue, Some(flag)) => {
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            let reason = std::error::Error::source(err)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "invalid value".to_string());
            format!("invalid argument {value:?} for {flag:?} flag: {reason}")
        }
        (
            ErrorKind::NoEquals | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues,
            Some(flag),
        ) => {
            format!("flag needs an argument: {flag}")
        }
        _ => {
            let text = err.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("etcdctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_etcdctls() {
        let cli = parse(&["get", "foo"]).unwrap();
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(cli.global.dial_timeout, Duration::from_secs(2));
        assert_eq!(cli.global.command_timeout, Duration::from_secs(5));
        assert_eq!(cli.global.write_out, "simple");
        assert!(!cli.global.hex);
        assert!(cli.global.insecure_transport);
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "get",
            "foo",
            "-w",
            "json",
            "--endpoints=a:1,b:2",
            "--hex",
            "--prefix",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(cli.global.write_out, "json");
        assert!(cli.global.hex);
        match cli.command {
            Some(Command::Get(get)) => {
                assert!(get.prefix);
                assert_eq!(get.args, vec![OsString::from("foo")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn booleans_take_go_values() {
        let cli = parse(&["--hex=false", "put", "--prev-kv=true", "k", "v"]).unwrap();
        assert!(!cli.global.hex);
        assert!(matches!(cli.command, Some(Command::Put(ref p)) if p.prev_kv));
        assert!(parse(&["--hex=maybe", "get", "k"]).is_err());
    }

    #[test]
    fn watch_exec_follows_the_separator() {
        let cli = parse(&["watch", "foo", "--", "echo", "-n", "x"]).unwrap();
        match cli.command {
            Some(Command::Watch(w)) => {
                assert_eq!(w.args, vec![OsString::from("foo")]);
                assert_eq!(w.exec.len(), 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_are_matched_by_prefix() {
        assert!(matches!(
            parse(&["compact", "3"]).unwrap().command,
            Some(Command::Compaction(_))
        ));
        assert!(matches!(
            parse(&["lease", "keep", "1"]).unwrap().command,
            Some(Command::Lease(LeaseCommand::KeepAlive(_)))
        ));
    }

    #[test]
    fn usage_errors_read_as_cobras() {
        let message = |args: &[&str]| usage_error_message(&parse(args).unwrap_err());
        assert_eq!(message(&["get", "--foo", "k"]), "unknown flag: --foo");
        assert_eq!(
            message(&["get", "-x", "k"]),
            "unknown shorthand flag: 'x' in -x"
        );
        assert_eq!(
            message(&["frobnicate"]),
            "unknown command \"frobnicate\" for \"etcdctl\""
        );
        assert_eq!(
            message(&["get", "k", "--limit", "x"]),
            "invalid argument \"x\" for \"--limit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn unsupported_commands_take_anything() {
        let cli = parse(&["user", "add", "root", "--new-user-password", "x"]).unwrap();
        assert!(matches!(cli.command, Some(Command::User(_))));
        let cli = parse(&["member", "add", "m2", "--peer-urls", "http://x"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Member(MemberCommand::Add(_)))
        ));
    }
}
