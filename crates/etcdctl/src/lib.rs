//! `etcd-ctl`: the `etcdctl` command line client of etcd v3.5, for any etcd v3 server.
//!
//! It speaks etcd's gRPC API through the tonic clients of `etcd-proto`, and reproduces
//! etcdctl 3.5's commands, flags, output formats, error messages and exit codes, so that
//! scripts written for etcdctl keep working against our server (and the reference etcd).
//!
//! ```text
//! etcdctl put foo bar                       # OK
//! etcdctl get foo --prefix -w json          # {"header":{...},"kvs":[{"key":"Zm9v",...}],"count":1}
//! etcdctl --endpoints 127.0.0.1:2379 member list -w table
//! etcdctl watch foo --prefix -- sh -c 'echo $ETCD_WATCH_KEY'
//! printf 'mod("k") > "0"\n\nput k v\n\n\n' | etcdctl txn
//! ```
//!
//! Commands: `get`, `put`, `del`, `txn` (stdin or `-i`), `compaction`, `watch` (also
//! interactive and exec mode), `lease grant|revoke|timetolive|list|keep-alive`,
//! `member list`, `endpoint health|status|hashkv` (`--cluster`), `defrag`,
//! `alarm list|disarm`, `move-leader`, `version`. The other etcdctl commands (`auth`,
//! `user`, `role`, `lock`, `elect`, `snapshot`, `make-mirror`, `check`, `member
//! add|remove|update|promote`) exist and fail with `not supported yet` (exit 4).
//!
//! Output formats (`-w`): `simple`, `json` (Go's `encoding/json` of etcd's types: keys
//! and values base64, zero fields left out), `fields`, `table` (member and endpoint
//! lists) and `protobuf`. Errors print as `Error: <message>` on stderr with etcdctl's exit
//! codes (see [`error::ExitCode`]).
//!
//! The library is what the binary runs: parse a [`cli::Cli`] and give it to [`run`].
//!
//! ```
//! use clap::Parser;
//! use etcd_ctl::cli::{Cli, Command};
//!
//! let cli = Cli::parse_from(["etcdctl", "--endpoints", "127.0.0.1:2379", "get", "foo", "--prefix"]);
//! assert!(matches!(cli.command, Some(Command::Get(ref get)) if get.prefix));
//! ```

pub mod cli;
pub mod client;
pub mod command;
pub mod error;
pub mod gofmt;
pub mod printer;
pub mod table;

use std::ffi::OsString;
use std::io::Write;

use crate::cli::{Cli, GlobalArgs};
use crate::client::{parse_endpoint, Connector, Credentials, EndpointUrl};
use crate::error::{CtlError, ExitCode};
use crate::printer::{Format, Printer};

/// The version etcdctl reports, and the API version.
pub const VERSION: &str = "3.5.0";

/// The API version printed by `etcdctl version`.
pub const API_VERSION: &str = "3.5";

/// What a command runs with: the global flags and the raw command line (which `watch`
/// reads for its `--` separator, as etcdctl does).
#[derive(Debug, Clone)]
pub struct Env {
    /// The global flags.
    pub global: GlobalArgs,
    /// The process arguments, program name first.
    pub raw_args: Vec<OsString>,
}

/// A client's settings checked and ready: how to print and where to connect.
#[derive(Debug)]
pub struct Session {
    /// The `-w`/`--hex` printer.
    pub printer: Printer,
    /// Connections to `--endpoints`.
    pub connector: Connector,
}

impl Env {
    /// The `-w`/`--hex` printer, or etcdctl's `unsupported output format` (exit 4).
    pub fn printer(&self) -> Result<Printer, CtlError> {
        match Format::parse(&self.global.write_out) {
            Some(format) => Ok(Printer::new(format, self.global.hex)),
            None => Err(CtlError::new(
                ExitCode::BadFeature,
                "unsupported output format",
            )),
        }
    }

    /// The endpoints of `--endpoints`.
    pub fn endpoints(&self) -> Result<Vec<EndpointUrl>, CtlError> {
        if self
            .global
            .discovery_srv
            .as_deref()
            .is_some_and(|d| !d.is_empty())
        {
            return Err(CtlError::bad_args(
                "DNS discovery (--discovery-srv) is not supported yet by this etcdctl",
            ));
        }
        self.global
            .endpoints
            .iter()
            .map(|e| parse_endpoint(e))
            .collect()
    }

    /// Checks the TLS flags: any of them asks for TLS, which this etcdctl does not do yet.
    pub fn check_tls(&self) -> Result<(), CtlError> {
        let g = &self.global;
        for (flag, value) in [("cert", &g.cert), ("key", &g.key), ("cacert", &g.cacert)] {
            match value.as_deref() {
                Some("") => {
                    return Err(CtlError::bad_args(format!(
                        "empty string is passed to --{flag} option"
                    )))
                }
                Some(_) => {
                    return Err(CtlError::bad_args(format!(
                        "TLS is not supported yet by this etcdctl (--{flag} given); use http:// endpoints"
                    )))
                }
                None => {}
            }
        }
        if !g.insecure_transport {
            return Err(CtlError::bad_args(
                "TLS is not supported yet by this etcdctl (--insecure-transport=false)",
            ));
        }
        Ok(())
    }

    /// `--user`/`--password` as etcdctl reads them: `name:password`, `name` with
    /// `--password`, or `name` alone (the password is then asked on the terminal).
    pub fn credentials(&self) -> Result<Option<Credentials>, CtlError> {
        let user = match self.global.user.as_deref() {
            None | Some("") => return Ok(None),
            Some(user) => user,
        };
        match self.global.password.as_deref() {
            Some(password) if !password.is_empty() => Ok(Some(Credentials {
                user: user.to_string(),
                password: password.to_string(),
            })),
            _ => match user.split_once(':') {
                Some((name, password)) => Ok(Some(Credentials {
                    user: name.to_string(),
                    password: password.to_string(),
                })),
                None => Ok(Some(Credentials {
                    user: user.to_string(),
                    password: command::ask_password()?,
                })),
            },
        }
    }

    /// With `--debug`, the global flags as `ETCDCTL_<FLAG>=<value>` lines on stderr, as
    /// etcdctl prints them before it makes its client (its gRPC logs are not copied).
    pub fn debug_flags(&self) {
        if !self.global.debug {
            return;
        }
        let g = &self.global;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let flags = [
            ("CACERT", text(&g.cacert)),
            ("CERT", text(&g.cert)),
            ("COMMAND_TIMEOUT", gofmt::duration_string(g.command_timeout)),
            ("DEBUG", g.debug.to_string()),
            ("DIAL_TIMEOUT", gofmt::duration_string(g.dial_timeout)),
            ("DISCOVERY_SRV", text(&g.discovery_srv)),
            ("DISCOVERY_SRV_NAME", text(&g.discovery_srv_name)),
            ("ENDPOINTS", format!("[{}]", g.endpoints.join(","))),
            ("HEX", g.hex.to_string()),
            ("INSECURE_DISCOVERY", g.insecure_discovery.to_string()),
            (
                "INSECURE_SKIP_TLS_VERIFY",
                g.insecure_skip_tls_verify.to_string(),
            ),
            ("INSECURE_TRANSPORT", g.insecure_transport.to_string()),
            ("KEEPALIVE_TIME", gofmt::duration_string(g.keepalive_time)),
            (
                "KEEPALIVE_TIMEOUT",
                gofmt::duration_string(g.keepalive_timeout),
            ),
            ("KEY", text(&g.key)),
            ("PASSWORD", text(&g.password)),
            ("USER", text(&g.user)),
            ("WRITE_OUT", g.write_out.clone()),
        ];
        let mut out = String::new();
        for (name, value) in flags {
            out.push_str(&format!("ETCDCTL_{name}={value}\n"));
        }
        emit_err(&out);
    }

    /// Checks the global flags as etcdctl does before it makes its client (TLS,
    /// endpoints, credentials, output format), and gets ready to connect.
    pub fn session(&self) -> Result<Session, CtlError> {
        self.debug_flags();
        self.check_tls()?;
        let endpoints = self.endpoints()?;
        let credentials = self.credentials()?;
        let printer = self.printer()?;
        Ok(Session {
            printer,
            connector: Connector::new(&self.global, endpoints, credentials),
        })
    }
}

/// Writes `bytes` to stdout at once (a closed stdout ends the command, quietly).
pub fn emit(bytes: &[u8]) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|_| CtlError::silent(ExitCode::Error))
}

/// Writes `text` to stderr (errors writing it are ignored: there is nowhere to say so).
pub fn emit_err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Runs the command of `cli`. `raw_args` are the process arguments, program name first.
pub async fn run(cli: Cli, raw_args: Vec<OsString>) -> Result<(), CtlError> {
    let env = Env {
        global: cli.global,
        raw_args,
    };
    match cli.command {
        Some(command) => command::run(&env, command).await,
        None => Ok(()),
    }
}
