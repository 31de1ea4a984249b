//! Cluster and maintenance commands: `member list`, `endpoint health|status|hashkv`,
//! `defrag`, `alarm list|disarm`, `move-leader`.
//!
//! The per-endpoint commands ask each endpoint of `--endpoints` (or, with `--cluster`,
//! each client URL of the member list) on a connection of its own, and print endpoints
//! as they were given.

use std::ffi::OsString;
use std::time::Instant as StdInstant;

use etcd_proto::etcdserverpb::alarm_request::AlarmAction;
use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, DefragmentRequest, HashKvRequest, MemberListRequest,
    MoveLeaderRequest, RangeRequest, StatusRequest,
};

use super::os_text;
use crate::cli::DefragArgs;
use crate::client::{parse_endpoint, Connector, EndpointUrl, UnaryError};
use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::printer::{EpHashKv, EpHealth, EpStatus};
use crate::{emit, emit_err, Env};

/// The endpoints a per-endpoint command works on: `--endpoints`, or with `--cluster`
/// every client URL of the member list.
async fn endpoints_from_cluster(
    env: &Env,
    connector: &Connector,
    cluster: bool,
) -> Result<Vec<EndpointUrl>, CtlError> {
    if !cluster {
        return env.endpoints();
    }
    let members = connector
        .unary(|conn, timeout| async move {
            ClusterClient::new(conn.channel.clone())
                .member_list(conn.request(MemberListRequest { linearizable: true }, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| {
            CtlError::error(format!(
                "failed to fetch endpoints from etcd cluster member list: {}",
                e.message()
            ))
        })?;
    members
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.iter())
        .map(|url| parse_endpoint(url))
        .collect()
}

/// `member list`
pub async fn member_list(env: &Env) -> Result<(), CtlError> {
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            ClusterClient::new(conn.channel.clone())
                .member_list(conn.request(MemberListRequest { linearizable: true }, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    emit(&session.printer.member_list(&response)?)
}

/// `endpoint health [--cluster]`: a linearizable read of the key `health` on each
/// endpoint (an endpoint answering `permission denied` counts as healthy), then its
/// alarm list.
pub async fn endpoint_health(env: &Env, cluster: bool) -> Result<(), CtlError> {
    env.debug_flags();
    env.check_tls()?;
    let printer = env.printer()?;
    let credentials = env.credentials()?;
    let base = Connector::new(&env.global, env.endpoints()?, credentials);
    let endpoints = endpoints_from_cluster(env, &base, cluster).await?;
    let checks = endpoints.iter().map(|endpoint| {
        let connector = base.with_endpoints(vec![endpoint.clone()]);
        async move { check_health(&connector, endpoint).await }
    });
    let list = futures::future::join_all(checks).await;
    let unhealthy = list.iter().any(|h| !h.error.is_empty());
    let (out, err) = printer.endpoint_health(&list)?;
    emit(&out)?;
    emit_err(&String::from_utf8_lossy(&err));
    if unhealthy {
        return Err(CtlError::error("unhealthy cluster"));
    }
    Ok(())
}

async fn check_health(connector: &Connector, endpoint: &EndpointUrl) -> EpHealth {
    let mut health = EpHealth {
        endpoint: endpoint.display.clone(),
        health: false,
        took: String::new(),
        error: String::new(),
    };
    let deadline = connector.deadline();
    let conn = match connector.connect(deadline).await {
        Ok(conn) => conn,
        Err(e) if e.code == ExitCode::BadConnection => {
            health.error = e.message.unwrap_or_default();
            return health;
        }
        Err(_) => {
            // No connection before the deadline: the read times out, as etcdctl's would.
            health.took = gofmt::duration_string(connector.command_timeout());
            health.error = "context deadline exceeded".to_string();
            return health;
        }
    };
    let started = StdInstant::now();
    let read = tokio::time::timeout_at(
        deadline,
        KvClient::new(conn.channel.clone()).range(conn.request(
            RangeRequest {
                key: b"health".to_vec(),
                ..RangeRequest::default()
            },
            Some(crate::client::remaining(deadline)),
        )),
    )
    .await;
    health.took = gofmt::duration_string(started.elapsed());
    match read {
        Ok(Ok(_)) => health.health = true,
        Ok(Err(status)) if status.message() == "etcdserver: permission denied" => {
            health.health = true
        }
        Ok(Err(status)) => {
            health.error = crate::client::RpcError::from(status).to_string();
        }
        Err(_) => health.error = "context deadline exceeded".to_string(),
    }
    if !health.health {
        return health;
    }
    let alarms = tokio::time::timeout_at(
        deadline,
        MaintenanceClient::new(conn.channel.clone()).alarm(conn.request(
            AlarmRequest {
                action: AlarmAction::Get as i32,
                member_id: 0,
                alarm: 0,
            },
            Some(crate::client::remaining(deadline)),
        )),
    )
    .await;
    match alarms {
        Ok(Ok(response)) => {
            let alarms = response.into_inner().alarms;
            if !alarms.is_empty() {
                health.health = false;
                health.error = "Active Alarm(s): ".to_string();
                for a in alarms {
                    health.error.push_str(match a.alarm {
                        1 => "NOSPACE ",
                        2 => "CORRUPT ",
                        _ => "UNKNOWN ",
                    });
                }
            }
        }
        _ => {
            health.health = false;
            health.error = "Unable to fetch the alarm list".to_string();
        }
    }
    health
}

/// `endpoint status [--cluster]`
pub async fn endpoint_status(env: &Env, cluster: bool) -> Result<(), CtlError> {
    let session = env.session()?;
    let endpoints = endpoints_from_cluster(env, &session.connector, cluster).await?;
    let mut list = Vec::new();
    let mut failed = false;
    for endpoint in &endpoints {
        let status = session
            .connector
            .unary_to(endpoint, |conn, timeout| async move {
                MaintenanceClient::new(conn.channel.clone())
                    .status(conn.request(StatusRequest {}, Some(timeout)))
                    .await
            })
            .await;
        match status {
            Ok(status) => list.push(EpStatus {
                endpoint: endpoint.display.clone(),
                status,
            }),
            Err(e) => {
                failed = true;
                emit_err(&format!(
                    "Failed to get the status of endpoint {} ({})\n",
                    endpoint.display,
                    e.message()
                ));
            }
        }
    }
    emit(&session.printer.endpoint_status(&list)?)?;
    if failed {
        return Err(CtlError::silent(ExitCode::Error));
    }
    Ok(())
}

/// `endpoint hashkv [--cluster] [--rev]`
pub async fn endpoint_hash_kv(env: &Env, cluster: bool, revision: i64) -> Result<(), CtlError> {
    let session = env.session()?;
    let endpoints = endpoints_from_cluster(env, &session.connector, cluster).await?;
    let mut list = Vec::new();
    let mut last_error: Option<UnaryError> = None;
    for endpoint in &endpoints {
        let hash = session
            .connector
            .unary_to(endpoint, |conn, timeout| async move {
                MaintenanceClient::new(conn.channel.clone())
                    .hash_kv(conn.request(HashKvRequest { revision }, Some(timeout)))
                    .await
            })
            .await;
        match hash {
            Ok(hash_kv) => list.push(EpHashKv {
                endpoint: endpoint.display.clone(),
                hash_kv,
            }),
            Err(e) => {
                emit_err(&format!(
                    "Failed to get the hash of endpoint {} ({})\n",
                    endpoint.display,
                    e.message()
                ));
                last_error = Some(e);
            }
        }
    }
    emit(&session.printer.endpoint_hash_kv(&list)?)?;
    match last_error {
        Some(e) => Err(CtlError::error(e.message())),
        None => Ok(()),
    }
}

/// `defrag [--cluster]`
pub async fn defrag(env: &Env, args: &DefragArgs) -> Result<(), CtlError> {
    if args.data_dir.as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(CtlError::not_supported("defrag --data-dir"));
    }
    let session = env.session()?;
    let endpoints = endpoints_from_cluster(env, &session.connector, args.cluster).await?;
    let mut failures = 0usize;
    for endpoint in &endpoints {
        let done = session
            .connector
            .unary_to(endpoint, |conn, timeout| async move {
                MaintenanceClient::new(conn.channel.clone())
                    .defragment(conn.request(DefragmentRequest {}, Some(timeout)))
                    .await
            })
            .await;
        match done {
            Ok(_) => emit(
                format!("Finished defragmenting etcd member[{}]\n", endpoint.display).as_bytes(),
            )?,
            Err(e) => {
                failures += 1;
                emit_err(&format!(
                    "Failed to defragment etcd member[{}] ({})\n",
                    endpoint.display,
                    e.message()
                ));
            }
        }
    }
    if failures > 0 {
        return Err(CtlError::silent(ExitCode::Error));
    }
    Ok(())
}

/// `alarm list` and `alarm disarm` (disarm deactivates every listed alarm, one request
/// each, and prints the alarms deactivated, as clientv3's `AlarmDisarm` does).
pub async fn alarm(env: &Env, args: &[OsString], disarm: bool) -> Result<(), CtlError> {
    if !args.is_empty() {
        let name = if disarm { "disarm" } else { "list" };
        return Err(CtlError::bad_args(format!(
            "alarm {name} command accepts no arguments"
        )));
    }
    let session = env.session()?;
    let list = alarm_request(&session.connector, AlarmAction::Get, AlarmMember::default())
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    if !disarm {
        return emit(&session.printer.alarm(&list)?);
    }
    let mut disarmed = AlarmResponse::default();
    for member in list.alarms {
        let response = alarm_request(&session.connector, AlarmAction::Deactivate, member)
            .await
            .map_err(|e| e.exit(ExitCode::Error))?;
        disarmed.alarms.extend(response.alarms);
    }
    emit(&session.printer.alarm(&disarmed)?)
}

async fn alarm_request(
    connector: &Connector,
    action: AlarmAction,
    member: AlarmMember,
) -> Result<AlarmResponse, UnaryError> {
    connector
        .unary(|conn, timeout| async move {
            MaintenanceClient::new(conn.channel.clone())
                .alarm(conn.request(
                    AlarmRequest {
                        action: action as i32,
                        member_id: member.member_id,
                        alarm: member.alarm,
                    },
                    Some(timeout),
                ))
                .await
        })
        .await
}

/// `move-leader <transferee-member-id>`: finds the leader among `--endpoints` and asks
/// it to hand leadership to the given member.
pub async fn move_leader(env: &Env, args: &[OsString]) -> Result<(), CtlError> {
    if args.len() != 1 {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    }
    let target = gofmt::parse_uint(&os_text(&args[0]), 16).map_err(CtlError::bad_args)?;
    let session = env.session()?;
    let deadline = session.connector.deadline();
    let mut leader = None;
    for endpoint in session.connector.endpoints() {
        let connector = session.connector.with_endpoints(vec![endpoint.clone()]);
        let conn = connector
            .connect(deadline)
            .await
            .map_err(|e| UnaryError::Connect(e).exit(ExitCode::Error))?;
        let status = tokio::time::timeout_at(
            deadline,
            MaintenanceClient::new(conn.channel.clone())
                .status(conn.request(StatusRequest {}, Some(crate::client::remaining(deadline)))),
        )
        .await
        .map_err(|_| CtlError::error("context deadline exceeded"))?
        .map_err(|s| crate::client::RpcError::from(s).exit(ExitCode::Error))?
        .into_inner();
        let member_id = status.header.map(|h| h.member_id).unwrap_or(0);
        if member_id == status.leader {
            leader = Some((conn, status.leader));
            break;
        }
    }
    let Some((conn, leader_id)) = leader else {
        let given: Vec<&str> = session
            .connector
            .endpoints()
            .iter()
            .map(|e| e.display.as_str())
            .collect();
        return Err(CtlError::bad_args(format!(
            "no leader endpoint given at [{}]",
            given.join(" ")
        )));
    };
    let response = tokio::time::timeout_at(
        deadline,
        MaintenanceClient::new(conn.channel.clone()).move_leader(conn.request(
            MoveLeaderRequest { target_id: target },
            Some(crate::client::remaining(deadline)),
        )),
    )
    .await
    .map_err(|_| CtlError::error("context deadline exceeded"))?
    .map_err(|s| crate::client::RpcError::from(s).exit(ExitCode::Error))?
    .into_inner();
    emit(&session.printer.move_leader(leader_id, target, &response)?)
}
