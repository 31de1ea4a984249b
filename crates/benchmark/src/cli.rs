//! The command line, with etcd's `tools/benchmark` flag names and defaults.
//!
//! Global flags may stand before or after the subcommand, as cobra's persistent flags do.
//! Boolean flags also take Go's `--flag=true|false` form.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Largest `--key-size` / `--val-size` accepted (64 MiB; etcd's default request limit
/// is 1.5 MiB).
pub const MAX_ITEM_BYTES: u64 = 64 << 20;

/// `benchmark`: a low-level benchmark tool for etcd v3 servers.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "benchmark",
    version,
    about = "A low-level benchmark tool for etcd3",
    long_about = "benchmark is a low-level benchmark tool for etcd3.\n\
                  It uses gRPC clients directly and works against any etcd v3 server."
)]
pub struct Cli {
    /// Flags shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to benchmark.
    #[command(subcommand)]
    pub command: Command,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// etcd's summary, histogram and latency distribution.
    Text,
    /// One JSON object (total_secs, requests, errors, rps, p50_ms ... p999_ms).
    Json,
}

/// Flags of every subcommand (etcd's persistent flags).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// gRPC endpoints, comma-separated; `host:port` or `http://host:port`
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// Total number of gRPC connections
    #[arg(long, global = true, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub conns: u32,

    /// Total number of gRPC clients
    #[arg(long, global = true, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// Use full floating point precision
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub precise: bool,

    /// Sample requests for every second ('true' to print a per-second table)
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sample: bool,

    /// Dial timeout for client connections (Go duration, e.g. 5s, 500ms; 0 = 5s)
    #[arg(long, global = true, default_value = "0s", value_parser = parse_go_duration)]
    pub dial_timeout: Duration,

    /// Connect only to the leader node
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub target_leader: bool,

    /// Authenticate as username:password
    #[arg(long, global = true)]
    pub user: Option<String>,

    /// Report format: text (etcd's) or json
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Same as --output json
    #[arg(long, global = true)]
    pub json: bool,

    /// Never show the progress bar (it is shown only when stderr is a terminal)
    #[arg(long, global = true)]
    pub no_progress: bool,
}

impl GlobalArgs {
    /// The report format chosen by `--output` or `--json`.
    pub fn format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.output
        }
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Benchmark put
    Put(PutArgs),
    /// Benchmark range
    Range(RangeArgs),
    /// Benchmark txn-put
    TxnPut(TxnPutArgs),
    /// Benchmark a mixed load of txn-put & txn-range
    TxnMixed(TxnMixedArgs),
    /// Benchmark lease keepalive
    LeaseKeepalive(LeaseKeepaliveArgs),
    /// Benchmark watch latency: the time between a put's answer and its watch event
    WatchLatency(WatchLatencyArgs),
}

impl Command {
    /// The subcommand's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Put(_) => "put",
            Command::Range(_) => "range",
            Command::TxnPut(_) => "txn-put",
            Command::TxnMixed(_) => "txn-mixed",
            Command::LeaseKeepalive(_) => "lease-keepalive",
            Command::WatchLatency(_) => "watch-latency",
        }
    }
}

/// `benchmark put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// Total number of put requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
    /// Key size of put request
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub key_size: u64,
    /// Value size of put request
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub val_size: u64,
    /// Maximum puts per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1, value_parser = key_space_parser())]
    pub key_space_size: u64,
    /// Use sequential keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sequential_keys: bool,
}

/// Range consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable (through a ReadIndex round).
    #[value(name = "l")]
    Linearizable,
    /// Serializable (local read).
    #[value(name = "s")]
    Serializable,
}

/// `benchmark range key [end]`.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// The key, or the start of the range
    pub key: String,
    /// The end of the range (exclusive); absent for a single key
    pub end: Option<String>,
    /// Total number of range requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
    /// Maximum range requests per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Maximum number of results to return from range request (0 is no limit)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub limit: i64,
    /// Only returns the count of keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub count_only: bool,
    /// Only returns the keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub keys_only: bool,
    /// Range over all keys with the given key as prefix
    #[arg(long, num_args = 0..=1, require_equals = true, conflicts_with = "end",
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefix: bool,
}

/// `benchmark txn-put`.
#[derive(Debug, Clone, Args)]
pub struct TxnPutArgs {
    /// Total number of txn requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
    /// Key size of txn put
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub key_size: u64,
    /// Value size of txn put
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub val_size: u64,
    /// Number of puts per txn
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub txn_ops: u32,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1, value_parser = key_space_parser())]
    pub key_space_size: u64,
}

/// `benchmark txn-mixed`: txns of one op, reads (a range over all keys, at most
/// `--limit` of them) and puts in the ratio `--rw-ratio`.
#[derive(Debug, Clone, Args)]
pub struct TxnMixedArgs {
    /// Accepted and ignored, as etcd's tool does (`txn-mixed key [end-range]`)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
    /// Total number of txn requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
    /// Key size of mixed txn
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub key_size: u64,
    /// Value size of mixed txn
    #[arg(long, default_value_t = 8, value_parser = size_parser())]
    pub val_size: u64,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Read operation range end key; as in etcd 3.5 the read is a prefix read of all
    /// keys, which overrides it
    #[arg(long, default_value = "")]
    pub end_key: String,
    /// Read operation range result limit
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(0..))]
    pub limit: i64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1, value_parser = key_space_parser())]
    pub key_space_size: u64,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Read/write ops ratio
    #[arg(long, default_value_t = 1.0, value_parser = parse_ratio)]
    pub rw_ratio: f64,
}

/// `benchmark lease-keepalive`.
#[derive(Debug, Clone, Args)]
pub struct LeaseKeepaliveArgs {
    /// Total number of lease keepalive requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
}

/// `benchmark watch-latency`.
#[derive(Debug, Clone, Args)]
pub struct WatchLatencyArgs {
    /// Total number of put requests
    #[arg(long, default_value_t = 10000, value_parser = total_parser())]
    pub total: u64,
    /// Number of keys to put per second
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub put_rate: u64,
    /// Key size of watch response
    #[arg(long, default_value_t = 32, value_parser = size_parser())]
    pub key_size: u64,
    /// Value size of watch response
    #[arg(long, default_value_t = 32, value_parser = size_parser())]
    pub val_size: u64,
}

fn total_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=i64::MAX as u64)
}

fn size_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=MAX_ITEM_BYTES)
}

fn key_space_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=i64::MAX as u64)
}

/// A read/write ratio: a finite number >= 0.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if ratio.is_finite() && ratio >= 0.0 => Ok(ratio),
        _ => Err(format!("expected a finite number >= 0, got {text:?}")),
    }
}

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `300ms`, `1.5s`, `2m30s`; a bare `0` is
/// zero. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_secs = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_secs += number * unit_secs;
    }
    Duration::try_from_secs_f64(total_secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("benchmark").chain(args.iter().copied()))
    }

    #[test]
    fn put_defaults_are_etcds() {
        let cli = parse(&["put"]).unwrap();
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!((cli.global.conns, cli.global.clients), (1, 1));
        assert!(!cli.global.precise && !cli.global.target_leader && !cli.global.sample);
        assert_eq!(cli.global.format(), OutputFormat::Text);
        let Command::Put(put) = cli.command else {
            panic!("not put")
        };
        assert_eq!(put.total, 10000);
        assert_eq!((put.key_size, put.val_size), (8, 8));
        assert_eq!((put.rate, put.key_space_size), (0, 1));
        assert!(!put.sequential_keys);
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = parse(&["--clients=10", "--conns", "2", "put", "--total=5"]).unwrap();
        let after = parse(&["put", "--clients", "10", "--conns=2", "--total", "5"]).unwrap();
        for cli in [before, after] {
            assert_eq!((cli.global.conns, cli.global.clients), (2, 10));
            let Command::Put(put) = cli.command else {
                panic!("not put")
            };
            assert_eq!(put.total, 5);
        }
    }

    #[test]
    fn endpoints_split_on_commas() {
        let cli = parse(&["--endpoints", "a:1,http://b:2", "put"]).unwrap();
        assert_eq!(cli.global.endpoints, vec!["a:1", "http://b:2"]);
    }

    #[test]
    fn bools_take_go_forms() {
        let cli = parse(&["--precise", "put", "--sequential-keys=true"]).unwrap();
        assert!(cli.global.precise);
        let Command::Put(put) = cli.command else {
            panic!("not put")
        };
        assert!(put.sequential_keys);
        let cli = parse(&["--precise=false", "put"]).unwrap();
        assert!(!cli.global.precise);
    }

    #[test]
    fn range_takes_key_end_and_options() {
        let cli = parse(&["range", "a", "z", "--consistency", "s", "--limit", "3"]).unwrap();
        let Command::Range(range) = cli.command else {
            panic!("not range")
        };
        assert_eq!((range.key.as_str(), range.end.as_deref()), ("a", Some("z")));
        assert_eq!(range.consistency, Consistency::Serializable);
        assert_eq!(range.limit, 3);
        assert_eq!(range.total, 10000);
        assert!(parse(&["range"]).is_err());
        assert!(parse(&["range", "a", "--consistency", "x"]).is_err());
        assert!(parse(&["range", "a", "b", "--prefix"]).is_err());
    }

    #[test]
    fn txn_put_and_watch_latency_defaults() {
        let Command::TxnPut(txn) = parse(&["txn-put"]).unwrap().command else {
            panic!("not txn-put")
        };
        assert_eq!((txn.total, txn.txn_ops, txn.key_space_size), (10000, 1, 1));
        let Command::WatchLatency(w) = parse(&["watch-latency"]).unwrap().command else {
            panic!("not watch-latency")
        };
        assert_eq!(
            (w.total, w.put_rate, w.key_size, w.val_size),
            (10000, 100, 32, 32)
        );
    }

    #[test]
    fn txn_mixed_and_lease_keepalive_defaults() {
        let Command::TxnMixed(mixed) = parse(&["txn-mixed", "ignored-key"]).unwrap().command else {
            panic!("not txn-mixed")
        };
        assert_eq!(
            (mixed.total, mixed.limit, mixed.rw_ratio),
            (10000, 1000, 1.0)
        );
        assert_eq!(
            (mixed.key_size, mixed.val_size, mixed.key_space_size),
            (8, 8, 1)
        );
        assert_eq!(mixed.consistency, Consistency::Linearizable);
        let Command::LeaseKeepalive(lease) = parse(&["lease-keepalive"]).unwrap().command else {
            panic!("not lease-keepalive")
        };
        assert_eq!(lease.total, 10000);
    }

    #[test]
    fn out_of_range_values_are_refused_not_panics() {
        for args in [
            &["--clients", "0", "put"][..],
            &["--conns", "-1", "put"],
            &["put", "--total", "-5"],
            &["put", "--key-space-size", "0"],
            &["put", "--val-size", "99999999999"],
            &["put", "--rate", "x"],
            &["txn-put", "--txn-ops", "0"],
            &["watch-latency", "--put-rate", "0"],
            &["txn-mixed", "--rw-ratio", "-1"],
            &["txn-mixed", "--rw-ratio", "inf"],
            &["txn-mixed", "--limit", "-1"],
            &["--dial-timeout", "-1s", "put"],
            &["nosuch"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn json_output_by_either_flag() {
        assert_eq!(
            parse(&["--json", "put"]).unwrap().global.format(),
            OutputFormat::Json
        );
        let cli = parse(&["put", "--output", "json"]).unwrap();
        assert_eq!(cli.global.format(), OutputFormat::Json);
        assert!(parse(&["--output", "yaml", "put"]).is_err());
    }

    #[test]
    fn go_durations_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_go_duration("2m30s"), Ok(ms(150_000)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in ["", "5", "s", "-1s", "1x", "1..2s", "1e400h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subcommand_names_match_the_command_line() {
        for name in [
            "put",
            "txn-put",
            "txn-mixed",
            "lease-keepalive",
            "watch-latency",
        ] {
            assert_eq!(parse(&[name]).unwrap().command.name(), name);
        }
        assert_eq!(parse(&["range", "k"]).unwrap().command.name(), "range");
    }
}
