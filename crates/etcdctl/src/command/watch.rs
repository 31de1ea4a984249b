//! `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
//!
//! Prints every event as it comes (and `progress notify: <rev>` with
//! `--progress-notify`). With a command after `--`, runs it once per event with
//! `ETCD_WATCH_REVISION`, `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and `ETCD_WATCH_VALUE`
//! in its environment (the last three Go-quoted, as etcdctl sets them). The key may also
//! come from `ETCDCTL_WATCH_KEY`/`ETCDCTL_WATCH_RANGE_END`. A broken connection is
//! re-dialled and the watch resumed after the last revision seen; a watch the server
//! cancels ends the command with exit 5. `-i` reads `watch ...` and `progress` lines from
//! stdin.

use std::ffi::OsString;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use etcd_proto::etcdserverpb::watch_client::WatchClient;
use etcd_proto::etcdserverpb::watch_request::RequestUnion;
use etcd_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use etcd_proto::tonic;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::kv::prefix_end;
use super::os_bytes;
use super::txn::argify;
use crate::cli::{usage_error_message, WatchArgs};
use crate::client::Connector;
use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::printer::Printer;
use crate::{emit, emit_err, Env};

/// Longest pause between attempts to re-open a broken watch.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Requests queued on one watch stream (a create, then progress requests).
const REQUEST_QUEUE: usize = 16;

/// Longest line read in interactive mode.
const MAX_LINE_BYTES: u64 = 1 << 20;

fn bad_args(message: &str) -> CtlError {
    CtlError::bad_args(message)
}

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// First key.
    pub key: Vec<u8>,
    /// End of the range, empty for one key.
    pub range_end: Vec<u8>,
    /// Revision to start at (0: from now).
    pub start_revision: i64,
    /// Send the previous key-value with each event.
    pub prev_kv: bool,
    /// Ask for periodic progress notifications.
    pub progress_notify: bool,
}

/// The watch flags a spec is built from.
#[derive(Debug, Clone, Copy, Default)]
struct WatchFlags {
    prefix: bool,
    rev: i64,
    prev_kv: bool,
    progress_notify: bool,
}

/// etcdctl's `getWatchChan`: the key (and range end) from the first arguments.
fn watch_spec(args: &[Vec<u8>], flags: WatchFlags) -> Result<WatchSpec, String> {
    let Some(key) = args.first() else {
        return Err("bad number of arguments".to_string());
    };
    let mut spec = WatchSpec {
        key: key.clone(),
        range_end: Vec::new(),
        start_revision: flags.rev,
        prev_kv: flags.prev_kv,
        progress_notify: flags.progress_notify,
    };
    if args.len() == 2 {
        if flags.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_string());
        }
        spec.range_end = args[1].clone();
    }
    if flags.prefix {
        if spec.key.is_empty() {
            spec.key = vec![0];
            spec.range_end = vec![0];
        } else {
            spec.range_end = prefix_end(&spec.key);
        }
    }
    Ok(spec)
}

/// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END`, as key arguments.
fn env_key_args() -> Result<Vec<Vec<u8>>, CtlError> {
    let key = std::env::var_os("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let range_end = std::env::var_os("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if key.is_empty() && !range_end.is_empty() {
        return Err(bad_args(&format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            gofmt::quote(&os_bytes(&range_end))
        )));
    }
    let mut args = Vec::new();
    if !key.is_empty() {
        args.push(os_bytes(&key));
        if !range_end.is_empty() {
            args.push(os_bytes(&range_end));
        }
    }
    Ok(args)
}

/// `watch ...`
pub async fn run(env: &Env, args: &WatchArgs) -> Result<(), CtlError> {
    let env_args = env_key_args()?;
    let flags = WatchFlags {
        prefix: args.prefix,
        rev: args.rev,
        prev_kv: args.prev_kv,
        progress_notify: args.progress_notify,
    };
    if args.interactive {
        return interactive(env, flags, !env_args.is_empty()).await;
    }
    let separator = env.raw_args.iter().any(|a| a == "--");
    if separator && args.exec.is_empty() {
        return Err(bad_args(
            "bad number of arguments (found separator --, but no commands)",
        ));
    }
    if !env_args.is_empty() && !args.args.is_empty() {
        return Err(bad_args(
            "bad number of arguments (found conflicting environment key)",
        ));
    }
    let key_args: Vec<Vec<u8>> = if env_args.is_empty() {
        args.args.iter().map(|a| os_bytes(a)).collect()
    } else {
        env_args
    };
    let session = env.session()?;
    let spec = watch_spec(&key_args, flags).map_err(|e| bad_args(&e))?;
    let connector = Arc::new(session.connector);
    let (_progress_tx, progress_rx) = mpsc::channel(1);
    let end = watch_stream(
        connector,
        session.printer,
        spec,
        args.exec.clone(),
        progress_rx,
    )
    .await;
    match end {
        WatchEnd::Canceled => Err(CtlError::new(
            ExitCode::Interrupted,
            "watch is canceled by the server",
        )),
        WatchEnd::Failed(e) => Err(e),
    }
}

/// How a watch ended.
enum WatchEnd {
    /// The server canceled it (the reason was printed).
    Canceled,
    /// Printing or running the command failed.
    Failed(CtlError),
}

/// The text of a cancellation, as clientv3's `WatchResponse.Err()` gives it.
fn cancel_reason(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        return "etcdserver: mvcc: required revision has been compacted".to_string();
    }
    if !r.cancel_reason.is_empty() {
        if r.cancel_reason.starts_with("etcdserver: ") {
            return r.cancel_reason.clone();
        }
        return format!(
            "rpc error: code = FailedPrecondition desc = {}",
            r.cancel_reason
        );
    }
    "etcdserver: mvcc: required revision is a future revision".to_string()
}

fn is_progress_notify(r: &WatchResponse) -> bool {
    r.events.is_empty()
        && !r.canceled
        && !r.created
        && r.compact_revision == 0
        && r.header.as_ref().is_some_and(|h| h.revision != 0)
}

/// Whether a stream error ends the watch (as clientv3's `isHaltErr`): anything but an
/// unavailable or internal (transport) error, and always `no leader`.
fn halts(status: &tonic::Status) -> bool {
    status.message() == "etcdserver: no leader"
        || !matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Unknown
        )
}

/// Runs one watch until the server cancels it; reconnects when the stream breaks.
/// `progress` asks for a progress notification.
async fn watch_stream(
    connector: Arc<Connector>,
    printer: Printer,
    spec: WatchSpec,
    exec: Vec<OsString>,
    mut progress: mpsc::Receiver<()>,
) -> WatchEnd {
    let mut start_revision = spec.start_revision;
    let mut retry_wait = Duration::from_millis(100);
    // Once a stream broke, a server that restarts may accept the new stream before it
    // has a leader (etcd itself serves only once ready): `no leader` on a resumed
    // stream, before any answer, is waited out instead of ending the watch.
    let mut resuming = false;
    loop {
        // A watch waits for the cluster as long as it takes, as etcdctl's does.
        let deadline = Instant::now() + connector.command_timeout().max(Duration::from_secs(1));
        let conn = match connector.connect(deadline).await {
            Ok(conn) => conn,
            Err(e) if e.code == ExitCode::BadConnection => return WatchEnd::Failed(e),
            Err(_) => {
                tokio::time::sleep(retry_wait).await;
                retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: spec.key.clone(),
                range_end: spec.range_end.clone(),
                start_revision,
                progress_notify: spec.progress_notify,
                prev_kv: spec.prev_kv,
                ..WatchCreateRequest::default()
            })),
        };
        let _ = tx.try_send(create);
        let opened = WatchClient::new(conn.channel.clone())
            .watch(conn.request_requiring_leader(ReceiverStream::new(rx)))
            .await;
        let mut stream = match opened {
            Ok(stream) => stream.into_inner(),
            Err(status) if halts(&status) && !(resuming && is_no_leader(&status)) => {
                return canceled_by_error(&printer, &status);
            }
            Err(_) => {
                resuming = true;
                connector.reset();
                tokio::time::sleep(retry_wait).await;
                retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                continue;
            }
        };
        let mut answered = false;
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                Some(()) = progress.recv() => {
                    let request = WatchRequest {
                        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                    };
                    let _ = tx.try_send(request);
                    continue;
                }
            };
            let response = match message {
                Ok(Some(response)) => response,
                Err(status)
                    if halts(&status) && !(resuming && !answered && is_no_leader(&status)) =>
                {
                    return canceled_by_error(&printer, &status)
                }
                Ok(None) | Err(_) => {
                    resuming = true;
                    connector.reset();
                    break;
                }
            };
            answered = true;
            retry_wait = Duration::from_millis(100);
            if response.created && response.events.is_empty() && !response.canceled {
                continue;
            }
            if let Some(last) = response.events.last() {
                if let Some(kv) = &last.kv {
                    start_revision = kv.mod_revision + 1;
                }
            }
            if let Err(e) = show(&printer, &response, &exec).await {
                return WatchEnd::Failed(e);
            }
            if response.canceled {
                return WatchEnd::Canceled;
            }
        }
        tokio::time::sleep(retry_wait).await;
        retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
    }
}

fn is_no_leader(status: &tonic::Status) -> bool {
    status.message() == "etcdserver: no leader"
}

/// A watch closed by a stream error: clientv3 delivers it as a canceled response.
fn canceled_by_error(printer: &Printer, status: &tonic::Status) -> WatchEnd {
    let reason = crate::client::RpcError::from(status.clone()).to_string();
    emit_err(&format!("watch was canceled ({reason})\n"));
    let response = WatchResponse {
        canceled: true,
        ..WatchResponse::default()
    };
    match printer.watch(&response).and_then(|bytes| emit(&bytes)) {
        Ok(()) => WatchEnd::Canceled,
        Err(e) => WatchEnd::Failed(e),
    }
}

/// Prints one response and runs the exec command for each of its events.
async fn show(printer: &Printer, r: &WatchResponse, exec: &[OsString]) -> Result<(), CtlError> {
    if r.canceled {
        emit_err(&format!("watch was canceled ({})\n", cancel_reason(r)));
    }
    if is_progress_notify(r) {
        let revision = r.header.as_ref().map_or(0, |h| h.revision);
        emit(format!("progress notify: {revision}\n").as_bytes())?;
    }
    emit(&printer.watch(r)?)?;
    let Some((program, program_args)) = exec.split_first() else {
        return Ok(());
    };
    let revision = r.header.as_ref().map_or(0, |h| h.revision);
    for event in &r.events {
        let kv = event.kv.clone().unwrap_or_default();
        let kind = if event.r#type == 1 { "DELETE" } else { "PUT" };
        let mut command = std::process::Command::new(program);
        command
            .args(program_args)
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", format!("\"{kind}\""))
            .env("ETCD_WATCH_KEY", gofmt::quote(&kv.key))
            .env("ETCD_WATCH_VALUE", gofmt::quote(&kv.value));
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .map_err(|e| CtlError::error(e.to_string()))?;
        let failure = match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(match status.code() {
                Some(code) => format!("exit status {code}"),
                None => status.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "exec: {}: executable file not found in $PATH",
                gofmt::quote(&os_bytes(program))
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            let quoted: Vec<String> = exec.iter().map(|a| gofmt::quote(&os_bytes(a))).collect();
            emit_err(&format!(
                "command [{}] error ({failure})\n",
                quoted.join(" ")
            ));
            return Err(CtlError::silent(ExitCode::Error));
        }
    }
    Ok(())
}

/// A `watch ...` line of interactive mode.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct InteractiveWatch {
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = gofmt::parse_bool, action = clap::ArgAction::Set)]
    interactive: bool,
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = gofmt::parse_bool, action = clap::ArgAction::Set)]
    prefix: bool,
    #[arg(long, default_value = "0", value_parser = parse_i64, allow_negative_numbers = true)]
    rev: i64,
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = gofmt::parse_bool, action = clap::ArgAction::Set)]
    prev_kv: bool,
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = gofmt::parse_bool, action = clap::ArgAction::Set)]
    progress_notify: bool,
    args: Vec<OsString>,
    #[arg(last = true)]
    exec: Vec<OsString>,
}

fn parse_i64(text: &str) -> Result<i64, String> {
    gofmt::parse_int(text, 10)
}

fn to_os(word: &[u8]) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(word.to_vec())
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(word).into_owned())
    }
}

/// `watch -i`: reads `watch [options] <key> [range_end] [-- cmd ...]` and `progress`
/// lines until stdin ends (which ends the command with exit 3, as etcdctl).
async fn interactive(env: &Env, flags: WatchFlags, env_key: bool) -> Result<(), CtlError> {
    let session = env.session()?;
    let connector = Arc::new(session.connector);
    let (line_tx, mut line_rx) = mpsc::channel::<Result<Vec<u8>, String>>(1);
    // stdin is read on a thread of its own, so watches keep printing meanwhile.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            let read = std::io::Read::take(&mut input, MAX_LINE_BYTES).read_until(b'\n', &mut line);
            let item = match read {
                Ok(_) if line.last() == Some(&b'\n') => Ok(line),
                Ok(_) => Err("EOF".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let last = item.is_err();
            if line_tx.blocking_send(item).is_err() || last {
                return;
            }
        }
    });
    let mut progress_senders: Vec<mpsc::Sender<()>> = Vec::new();
    loop {
        let line = match line_rx.recv().await {
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                return Err(CtlError::new(
                    ExitCode::InvalidInput,
                    format!("error reading watch request line: {e}"),
                ))
            }
            None => {
                return Err(CtlError::new(
                    ExitCode::InvalidInput,
                    "error reading watch request line: EOF",
                ))
            }
        };
        let line = line.strip_suffix(b"\n").unwrap_or(&line).to_vec();
        let text = String::from_utf8_lossy(&line).into_owned();
        let words = argify(&line)?;
        let Some(first) = words.first() else {
            emit_err(&format!(
                "Invalid command: {text} (watch and progress supported)\n"
            ));
            continue;
        };
        match first.as_slice() {
            b"watch" => {
                if words.len() < 2 && !env_key {
                    emit_err(&format!(
                        "Invalid command {text} (command type or key is not provided)\n"
                    ));
                    continue;
                }
                let rest = &words[1..];
                if rest.last().is_some_and(|w| w == b"--") {
                    return Err(bad_args(
                        "bad number of arguments (found separator --, but no commands)",
                    ));
                }
                let parsed = InteractiveWatch::try_parse_from(rest.iter().map(|w| to_os(w)))
                    .map_err(|e| bad_args(&usage_error_message(&e)))?;
                let has_exec = rest.iter().any(|w| w == b"--");
                if !has_exec && !env_key && parsed.args.is_empty() {
                    return Err(bad_args("bad number of arguments"));
                }
                if !has_exec && env_key && !parsed.args.is_empty() {
                    return Err(bad_args(
                        "bad number of arguments (found conflicting environment key)",
                    ));
                }
                let mut key_args = env_key_args()?;
                key_args.extend(parsed.args.iter().map(|a| os_bytes(a)));
                let line_flags = WatchFlags {
                    prefix: parsed.prefix,
                    rev: parsed.rev,
                    prev_kv: parsed.prev_kv,
                    progress_notify: flags.progress_notify || parsed.progress_notify,
                };
                let spec = match watch_spec(&key_args, line_flags) {
                    Ok(spec) => spec,
                    Err(e) => {
                        emit_err(&format!("Invalid command {text} ({e})\n"));
                        continue;
                    }
                };
                let (progress_tx, progress_rx) = mpsc::channel(1);
                progress_senders.push(progress_tx);
                let connector = Arc::clone(&connector);
                let printer = session.printer;
                let exec = parsed.exec;
                tokio::spawn(async move {
                    let end = watch_stream(connector, printer, spec, exec, progress_rx).await;
                    if let WatchEnd::Failed(CtlError {
                        message: Some(message),
                        ..
                    }) = end
                    {
                        emit_err(&format!("Error: {message}\n"));
                    }
                });
            }
            b"progress" => {
                progress_senders.retain(|tx| !tx.is_closed());
                for tx in &progress_senders {
                    let _ = tx.try_send(());
                }
            }
            _ => {
                emit_err(&format!("Invalid command {text} (only support watch)\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(prefix: bool) -> WatchFlags {
        WatchFlags {
            prefix,
            ..WatchFlags::default()
        }
    }

    #[test]
    fn specs_follow_etcdctls_arguments() {
        let spec = watch_spec(&[b"foo".to_vec()], flags(true)).unwrap();
        assert_eq!(spec.range_end, b"fop");
        let spec = watch_spec(&[b"a".to_vec(), b"c".to_vec()], flags(false)).unwrap();
        assert_eq!((spec.key, spec.range_end), (b"a".to_vec(), b"c".to_vec()));
        // As etcdctl: a range end only with exactly two arguments.
        let spec =
            watch_spec(&[b"a".to_vec(), b"c".to_vec(), b"x".to_vec()], flags(false)).unwrap();
        assert_eq!((spec.key, spec.range_end), (b"a".to_vec(), Vec::new()));
        let spec = watch_spec(&[Vec::new()], flags(true)).unwrap();
        assert_eq!((spec.key, spec.range_end), (vec![0], vec![0]));
        assert_eq!(
            watch_spec(&[b"a".to_vec(), b"b".to_vec()], flags(true)).unwrap_err(),
            "`range_end` and `--prefix` are mutually exclusive"
        );
        assert_eq!(
            watch_spec(&[], flags(false)).unwrap_err(),
            "bad number of arguments"
        );
    }

    #[test]
    fn cancellations_read_as_clientv3s() {
        let compacted = WatchResponse {
            canceled: true,
            compact_revision: 12,
            ..WatchResponse::default()
        };
        assert_eq!(
            cancel_reason(&compacted),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let other = WatchResponse {
            canceled: true,
            cancel_reason: "permission denied".to_string(),
            ..WatchResponse::default()
        };
        assert_eq!(
            cancel_reason(&other),
            "rpc error: code = FailedPrecondition desc = permission denied"
        );
    }

    #[test]
    fn progress_notifications_are_recognized() {
        let mut r = WatchResponse {
            header: Some(etcd_proto::etcdserverpb::ResponseHeader {
                revision: 5,
                ..Default::default()
            }),
            ..WatchResponse::default()
        };
        assert!(is_progress_notify(&r));
        r.created = true;
        assert!(!is_progress_notify(&r));
    }

    #[test]
    fn stream_errors_that_end_a_watch() {
        assert!(halts(&tonic::Status::unavailable("etcdserver: no leader")));
        assert!(halts(&tonic::Status::permission_denied("x")));
        assert!(!halts(&tonic::Status::unavailable("transport error")));
    }
}
