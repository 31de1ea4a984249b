//! gRPC connections to the cluster: endpoint parsing, dialling, `--target-leader`,
//! `--user`, and the spread of clients over connections.
//!
//! As in etcd's tool, connection `i` dials endpoint `i % endpoints` (or, with
//! `--target-leader`, the leader's client URLs), and client `j` uses connection
//! `j % conns`. One tonic `Channel` is one HTTP/2 connection; clients that share it
//! multiplex their requests on it.

use std::time::Duration;

use etcd_proto::etcdserverpb::auth_client::AuthClient;
use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::{AuthenticateRequest, MemberListRequest, StatusRequest};
use etcd_proto::tonic;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::cli::GlobalArgs;
use crate::error::Error;

/// Dial timeout used when `--dial-timeout` is 0 (etcd's client then dials in the
/// background; a bound keeps an unreachable endpoint from hanging the run).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// One gRPC connection, with the auth token to send on it if `--user` was given.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The endpoint URL it was dialled at.
    pub endpoint: String,
    /// The HTTP/2 channel.
    pub channel: Channel,
    token: Option<AsciiMetadataValue>,
}

impl Conn {
    /// A connection without auth.
    pub fn new(endpoint: String, channel: Channel) -> Self {
        Conn {
            endpoint,
            channel,
            token: None,
        }
    }

    /// Wraps `message` in a request carrying this connection's auth token, if any.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }
}

/// Turns `host:port` into `http://host:port`; keeps `http://` URLs. Refuses `https://`
/// (no TLS yet), other schemes, and empty endpoints.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, Error> {
    let trimmed = endpoint.trim();
    let bad = |reason: &str| Error::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let rest = if let Some(rest) = trimmed.strip_prefix("http://") {
        rest
    } else if trimmed.starts_with("https://") {
        return Err(bad("TLS endpoints are not supported yet; use http://"));
    } else if trimmed.contains("://") {
        return Err(bad("only http:// endpoints are supported"));
    } else {
        trimmed
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(bad("expected host:port"));
    }
    let url = format!("http://{rest}");
    Endpoint::from_shared(url.clone()).map_err(|e| bad(&error_chain(&e)))?;
    Ok(url)
}

/// The message of `error` and of each of its sources, joined by ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The message of a failed request, as etcd's Go client prints it: etcd's own errors by
/// their text (`etcdserver: ...`), others as `rpc error: code = ... desc = ...`.
pub fn status_message(status: &tonic::Status) -> String {
    let message = status.message();
    if message.starts_with("etcdserver: ") || message.starts_with("mvcc: ") {
        message.to_string()
    } else {
        format!("rpc error: code = {:?} desc = {message}", status.code())
    }
}

/// Dials `url` (already normalized), waiting at most `timeout`.
pub async fn dial(url: &str, timeout: Duration) -> Result<Channel, Error> {
    let timeout = if timeout.is_zero() {
        DEFAULT_DIAL_TIMEOUT
    } else {
        timeout
    };
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| Error::BadEndpoint {
            endpoint: url.to_string(),
            reason: error_chain(&e),
        })?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(Error::Dial {
            endpoint: url.to_string(),
            reason: error_chain(&e),
        }),
        Err(_) => Err(Error::DialTimeout {
            endpoint: url.to_string(),
            timeout,
        }),
    }
}

/// Finds the leader's client URLs: asks each endpoint in turn for its status until one
/// answers with a leader, then looks that member up in the member list.
pub async fn leader_endpoints(
    endpoints: &[String],
    timeout: Duration,
) -> Result<Vec<String>, Error> {
    let mut last_error = String::from("no endpoint answered");
    for url in endpoints {
        let channel = match dial(url, timeout).await {
            Ok(channel) => channel,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        let status = MaintenanceClient::new(channel.clone())
            .status(StatusRequest {})
            .await;
        let leader = match status {
            Ok(status) if status.get_ref().leader != 0 => status.into_inner().leader,
            Ok(_) => {
                last_error = format!("{url} has no leader");
                continue;
            }
            Err(status) => {
                last_error = status_message(&status);
                continue;
            }
        };
        let members = ClusterClient::new(channel)
            .member_list(MemberListRequest {
                linearizable: false,
            })
            .await
            .map_err(|status| Error::Setup {
                what: "failed to get a member list",
                reason: status_message(&status),
            })?
            .into_inner()
            .members;
        let urls = members
            .into_iter()
            .find(|m| m.id == leader)
            .map(|m| m.client_ur_ls)
            .unwrap_or_default();
        if urls.is_empty() {
            return Err(Error::Setup {
                what: "failed to find a leader endpoint",
                reason: format!("member {leader:x} has no client URLs"),
            });
        }
        return urls.iter().map(|u| normalize_endpoint(u)).collect();
    }
    Err(Error::Setup {
        what: "failed to find a leader endpoint",
        reason: last_error,
    })
}

/// Opens `count` connections, connection `i` to `urls[i % urls.len()]`, authenticated
/// as `user` (`name:password`) if given.
pub async fn connect(
    urls: &[String],
    count: u32,
    timeout: Duration,
    user: Option<&str>,
) -> Result<Vec<Conn>, Error> {
    if urls.is_empty() {
        return Err(Error::InvalidFlag("no --endpoints given".to_string()));
    }
    let credentials = match user {
        None => None,
        Some(user) => match user.split_once(':') {
            Some((name, password)) => Some((name.to_string(), password.to_string())),
            None => {
                return Err(Error::InvalidFlag(format!(
                    "bad user information: {user}: give --user name:password \
                     (this tool does not prompt)"
                )))
            }
        },
    };
    let mut conns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 0..usize::try_from(count).unwrap_or(0) {
        let url = &urls[i % urls.len()];
        let mut conn = Conn::new(url.clone(), dial(url, timeout).await?);
        if let Some((name, password)) = &credentials {
            let token = AuthClient::new(conn.channel.clone())
                .authenticate(AuthenticateRequest {
                    name: name.clone(),
                    password: password.clone(),
                })
                .await
                .map_err(|status| Error::Setup {
                    what: "authenticate",
                    reason: status_message(&status),
                })?
                .into_inner()
                .token;
            conn.token = Some(token.parse().map_err(|_| Error::Setup {
                what: "authenticate",
                reason: "the server sent a token that is not ASCII".to_string(),
            })?);
        }
        conns.push(conn);
    }
    Ok(conns)
}

/// Opens the connections the global flags ask for: `--conns` of them over
/// `--endpoints`, or over the leader's URLs with `--target-leader`.
pub async fn connect_global(global: &GlobalArgs, count: u32) -> Result<Vec<Conn>, Error> {
    let urls = global
        .endpoints
        .iter()
        .map(|e| normalize_endpoint(e))
        .collect::<Result<Vec<_>, _>>()?;
    let urls = if global.target_leader {
        leader_endpoints(&urls, global.dial_timeout).await?
    } else {
        urls
    };
    connect(&urls, count, global.dial_timeout, global.user.as_deref()).await
}

/// The connection client `client` uses: `conns[client % conns.len()]`.
pub fn conn_for_client(conns: &[Conn], client: usize) -> Option<&Conn> {
    if conns.is_empty() {
        None
    } else {
        conns.get(client % conns.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_http_scheme() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize_endpoint(" http://localhost:2379/ ").unwrap(),
            "http://localhost:2379"
        );
        assert_eq!(
            normalize_endpoint("[::1]:2379").unwrap(),
            "http://[::1]:2379"
        );
    }

    #[test]
    fn unusable_endpoints_are_refused() {
        for bad in [
            "",
            "http://",
            "https://a:1",
            "unix://x",
            "a:1/path",
            "a b:1",
        ] {
            assert!(normalize_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn etcd_errors_print_as_the_go_client_does() {
        let status = tonic::Status::unavailable("etcdserver: leader changed");
        assert_eq!(status_message(&status), "etcdserver: leader changed");
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(
            status_message(&status),
            "rpc error: code = Unavailable desc = connection refused"
        );
    }

    #[tokio::test]
    async fn clients_are_spread_round_robin() {
        let channel = Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let conns: Vec<Conn> = (0..3)
            .map(|i| Conn::new(format!("c{i}"), channel.clone()))
            .collect();
        let picked: Vec<&str> = (0..7)
            .filter_map(|c| conn_for_client(&conns, c))
            .map(|c| c.endpoint.as_str())
            .collect();
        assert_eq!(picked, vec!["c0", "c1", "c2", "c0", "c1", "c2", "c0"]);
        assert!(conn_for_client(&[], 0).is_none());
    }

    #[tokio::test]
    async fn dialling_a_closed_port_fails_quickly() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = dial(&format!("http://{addr}"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Dial { .. }), "{err}");
    }
}
