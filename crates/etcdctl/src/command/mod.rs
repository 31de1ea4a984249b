//! The commands: each checks its arguments as etcdctl does (same messages, same exit
//! codes, in the same order), makes its requests and prints the answer.

mod cluster;
mod kv;
mod lease;
pub mod txn;
mod watch;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, IsTerminal, Read, Write};

use crate::cli::{AlarmCommand, Command, EndpointCommand, LeaseCommand, MemberCommand};
use crate::error::CtlError;
use crate::{emit, Env, API_VERSION, VERSION};

/// Runs one command.
pub async fn run(env: &Env, command: Command) -> Result<(), CtlError> {
    match command {
        Command::Get(args) => kv::get(env, &args).await,
        Command::Put(args) => kv::put(env, &args).await,
        Command::Del(args) => kv::del(env, &args).await,
        Command::Txn(args) => txn::run(env, &args).await,
        Command::Compaction(args) => kv::compaction(env, &args).await,
        Command::Alarm(AlarmCommand::List(args)) => cluster::alarm(env, &args.args, false).await,
        Command::Alarm(AlarmCommand::Disarm(args)) => cluster::alarm(env, &args.args, true).await,
        Command::Defrag(args) => cluster::defrag(env, &args).await,
        Command::Endpoint(args) => match args.command {
            EndpointCommand::Health(_) => cluster::endpoint_health(env, args.cluster).await,
            EndpointCommand::Status(_) => cluster::endpoint_status(env, args.cluster).await,
            EndpointCommand::Hashkv(hash) => {
                cluster::endpoint_hash_kv(env, args.cluster, hash.rev).await
            }
        },
        Command::MoveLeader(args) => cluster::move_leader(env, &args.args).await,
        Command::Watch(args) => watch::run(env, &args).await,
        Command::Version(_) => {
            emit(format!("etcdctl version: {VERSION}\nAPI version: {API_VERSION}\n").as_bytes())
        }
        Command::Lease(lease) => match lease {
            LeaseCommand::Grant(args) => lease::grant(env, &args.args).await,
            LeaseCommand::Revoke(args) => lease::revoke(env, &args.args).await,
            LeaseCommand::Timetolive(args) => lease::time_to_live(env, &args).await,
            LeaseCommand::List(_) => lease::list(env).await,
            LeaseCommand::KeepAlive(args) => lease::keep_alive(env, &args).await,
        },
        Command::Member(member) => match member {
            MemberCommand::List(_) => cluster::member_list(env).await,
            MemberCommand::Add(_) => Err(CtlError::not_supported("member add")),
            MemberCommand::Remove(_) => Err(CtlError::not_supported("member remove")),
            MemberCommand::Update(_) => Err(CtlError::not_supported("member update")),
            MemberCommand::Promote(_) => Err(CtlError::not_supported("member promote")),
        },
        Command::Snapshot(args) => Err(unsupported("snapshot", &args.args)),
        Command::MakeMirror(_) => Err(CtlError::not_supported("make-mirror")),
        Command::Lock(_) => Err(CtlError::not_supported("lock")),
        Command::Elect(_) => Err(CtlError::not_supported("elect")),
        Command::Auth(args) => Err(unsupported("auth", &args.args)),
        Command::User(args) => Err(unsupported("user", &args.args)),
        Command::Role(args) => Err(unsupported("role", &args.args)),
        Command::Check(args) => Err(unsupported("check", &args.args)),
    }
}

/// `not supported yet` naming the command and its subcommand, if one was given.
fn unsupported(command: &str, args: &[OsString]) -> CtlError {
    match args.first().and_then(|a| a.to_str()) {
        Some(sub) if !sub.starts_with('-') => CtlError::not_supported(&format!("{command} {sub}")),
        _ => CtlError::not_supported(command),
    }
}

/// The bytes of a command-line argument (keys and values may be any bytes on Unix).
pub(crate) fn os_bytes(arg: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        arg.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}

/// A command-line argument as text (arguments that are not UTF-8 are read lossily).
pub(crate) fn os_text(arg: &OsStr) -> String {
    arg.to_string_lossy().into_owned()
}

/// All of stdin (etcdctl's `argOrStdin`).
pub(crate) fn read_stdin_all() -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().lock().read_to_end(&mut buf)?;
    Ok(buf)
}

/// Asks for a password as etcdctl does (`Password: ` on stdout, no echo when stdin is a
/// terminal), and reads one line from stdin.
pub(crate) fn ask_password() -> Result<String, CtlError> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(b"Password: ");
        let _ = stdout.flush();
    }
    let echo_off = terminal && set_echo(false);
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        set_echo(true);
        let _ = std::io::stdout().write_all(b"\n");
    }
    read.map_err(|e| CtlError::error(e.to_string()))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns the terminal's echo on or off with `stty`, as etcdctl's password prompt does.
fn set_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}
