//! `lease grant|revoke|timetolive|list|keep-alive`.
//!
//! Lease IDs are hexadecimal on the command line and in the simple output. As in
//! etcdctl, failed `timetolive`, `list` and `keep-alive` requests exit with 2, and
//! `keep-alive` without `--once` renews every TTL/3 until the lease is gone (or no answer
//! came within its TTL), then says `lease ... expired or revoked.` and exits 0.

use std::ffi::OsString;
use std::time::Duration;

use etcd_proto::etcdserverpb::lease_client::LeaseClient;
use etcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::os_text;
use crate::cli::{KeepAliveArgs, TimeToLiveArgs};
use crate::client::{remaining, RpcError};
use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::printer::Format;
use crate::{emit, Env, Session};

/// etcd's `MaxLeaseTTL` (seconds).
const MAX_TTL_SECS: u64 = 9_000_000_000;

/// Pause before re-opening a broken keep-alive stream (clientv3's `retryConnWait`).
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// A lease ID argument (hexadecimal), with etcdctl's error.
fn lease_from_arg(arg: &OsString) -> Result<i64, CtlError> {
    gofmt::parse_int(&os_text(arg), 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// `lease grant <ttl>`
pub async fn grant(env: &Env, args: &[OsString]) -> Result<(), CtlError> {
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease grant command needs TTL argument"));
    }
    let ttl = gofmt::parse_int(&os_text(&args[0]), 10)
        .map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))?;
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            LeaseClient::new(conn.channel.clone())
                .lease_grant(conn.request(LeaseGrantRequest { ttl, id: 0 }, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit_wrapped(ExitCode::Error, |m| format!("failed to grant lease ({m})")))?;
    emit(&session.printer.grant(&response)?)
}

/// `lease revoke <leaseID>`
pub async fn revoke(env: &Env, args: &[OsString]) -> Result<(), CtlError> {
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_from_arg(&args[0])?;
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            LeaseClient::new(conn.channel.clone())
                .lease_revoke(conn.request(LeaseRevokeRequest { id }, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| {
            e.exit_wrapped(ExitCode::Error, |m| format!("failed to revoke lease ({m})"))
        })?;
    emit(&session.printer.revoke(id, &response)?)
}

/// `lease timetolive <leaseID> [--keys]`
pub async fn time_to_live(env: &Env, args: &TimeToLiveArgs) -> Result<(), CtlError> {
    if args.args.len() != 1 {
        return Err(CtlError::bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    }
    let id = lease_from_arg(&args.args[0])?;
    let session = env.session()?;
    let keys = args.keys;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            LeaseClient::new(conn.channel.clone())
                .lease_time_to_live(
                    conn.request(LeaseTimeToLiveRequest { id, keys }, Some(timeout)),
                )
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::BadConnection))?;
    emit(&session.printer.time_to_live(&response, keys)?)
}

/// `lease list`
pub async fn list(env: &Env) -> Result<(), CtlError> {
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            LeaseClient::new(conn.channel.clone())
                .lease_leases(conn.request(LeaseLeasesRequest {}, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::BadConnection))?;
    emit(&session.printer.leases(&response)?)
}

/// `lease keep-alive [--once] <leaseID>`
pub async fn keep_alive(env: &Env, args: &KeepAliveArgs) -> Result<(), CtlError> {
    if args.args.len() != 1 {
        return Err(CtlError::bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    }
    let id = lease_from_arg(&args.args[0])?;
    let session = env.session()?;
    if args.once {
        let deadline = session.connector.deadline();
        let response = keep_alive_once(&session, id, deadline)
            .await
            .map_err(|e| match e {
                KeepAliveError::Connect(e) => CtlError {
                    code: ExitCode::BadConnection,
                    message: e.message,
                },
                KeepAliveError::Rpc(e) => e.exit(ExitCode::BadConnection),
            })?;
        if response.ttl <= 0 {
            return Err(CtlError::new(
                ExitCode::BadConnection,
                "etcdserver: requested lease not found",
            ));
        }
        return emit(&session.printer.keep_alive(&response)?);
    }
    keep_alive_forever(env, &session, id).await
}

enum KeepAliveError {
    Connect(CtlError),
    Rpc(RpcError),
}

/// Opens a keep-alive stream, sends one request and waits for its answer.
async fn keep_alive_once(
    session: &Session,
    id: i64,
    deadline: Instant,
) -> Result<LeaseKeepAliveResponse, KeepAliveError> {
    let conn = session
        .connector
        .connect(deadline)
        .await
        .map_err(KeepAliveError::Connect)?;
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(LeaseKeepAliveRequest { id });
    let mut request = conn.request(ReceiverStream::new(rx), None);
    request.set_timeout(remaining(deadline));
    let answer = tokio::time::timeout_at(deadline, async {
        let mut stream = LeaseClient::new(conn.channel.clone())
            .lease_keep_alive(request)
            .await?
            .into_inner();
        stream.message().await
    })
    .await;
    drop(tx);
    match answer {
        Err(_) => Err(KeepAliveError::Rpc(RpcError::DeadlineExceeded)),
        Ok(Err(status)) => Err(KeepAliveError::Rpc(RpcError::from(status))),
        Ok(Ok(None)) => Err(KeepAliveError::Rpc(RpcError::StreamClosed)),
        Ok(Ok(Some(response))) => Ok(response),
    }
}

/// Renews the lease every TTL/3 until it is gone or unanswered for its TTL.
async fn keep_alive_forever(env: &Env, session: &Session, id: i64) -> Result<(), CtlError> {
    let first_timeout = env.global.keepalive_timeout.max(Duration::from_secs(1));
    let mut deadline = Instant::now() + first_timeout;
    'streams: loop {
        let conn = match session.connector.connect(deadline).await {
            Ok(conn) => conn,
            Err(e) if e.code == ExitCode::BadConnection => return Err(e),
            Err(_) => break 'streams,
        };
        // The first request goes in before the stream opens: a Go server sends its
        // response headers only with the first answer.
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(LeaseKeepAliveRequest { id });
        let opened = tokio::time::timeout_at(
            deadline,
            LeaseClient::new(conn.channel.clone())
                .lease_keep_alive(conn.request(ReceiverStream::new(rx), None)),
        )
        .await;
        let mut stream = match opened {
            Err(_) => break 'streams,
            Ok(Err(_)) => {
                session.connector.reset();
                retry_pause(deadline).await;
                continue 'streams;
            }
            Ok(Ok(stream)) => stream.into_inner(),
        };
        loop {
            let response = match tokio::time::timeout_at(deadline, stream.message()).await {
                Err(_) => break 'streams,
                Ok(Ok(Some(response))) => response,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    session.connector.reset();
                    retry_pause(deadline).await;
                    continue 'streams;
                }
            };
            if response.ttl <= 0 {
                break 'streams;
            }
            emit(&session.printer.keep_alive(&response)?)?;
            // etcd's longest lease TTL is 9e9 seconds; an answer beyond it is capped, so
            // the deadline arithmetic cannot overflow.
            let ttl =
                Duration::from_secs(u64::try_from(response.ttl).unwrap_or(0).min(MAX_TTL_SECS));
            let now = Instant::now();
            deadline = now + ttl;
            tokio::time::sleep_until(now + ttl / 3).await;
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                continue 'streams;
            }
        }
    }
    if session.printer.format == Format::Simple {
        emit(format!("lease {} expired or revoked.\n", gofmt::lease_hex(id)).as_bytes())?;
    }
    Ok(())
}

async fn retry_pause(deadline: Instant) {
    tokio::time::sleep_until((Instant::now() + RETRY_WAIT).min(deadline)).await;
}
