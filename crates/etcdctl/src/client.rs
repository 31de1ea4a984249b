//! Connections to the cluster and the errors of requests, as etcd's Go client shows them.
//!
//! Like etcdctl's client, a connection is not dialled up front: a request waits for one
//! endpoint of `--endpoints` to accept a connection (trying them in turn, each dial
//! bounded by `--dial-timeout`) and fails with `context deadline exceeded` when its own
//! deadline (`--command-timeout`) passes first. With `--user`, the client authenticates
//! right after connecting, within `--dial-timeout`, and a failure there is a connection
//! failure (exit 2), as in etcdctl.

use std::sync::Mutex;
use std::time::Duration;

use etcd_proto::etcdserverpb::auth_client::AuthClient;
use etcd_proto::etcdserverpb::AuthenticateRequest;
use etcd_proto::tonic;
use tokio::time::Instant;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::cli::GlobalArgs;
use crate::error::{CtlError, ExitCode};

/// Longest pause between two rounds of dialling unreachable endpoints.
const MAX_DIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Shortest interval between HTTP/2 keepalive pings: gRPC's clients raise
/// `--keepalive-time` to it, and etcd answers pings more frequent than its
/// `--grpc-keepalive-min-time` (5s) with GOAWAY.
const MIN_KEEPALIVE_TIME: Duration = Duration::from_secs(10);

/// First pause between two rounds of dialling.
const FIRST_DIAL_BACKOFF: Duration = Duration::from_millis(50);

/// Why a request failed, printed as etcd's Go client prints it.
#[derive(Debug, Clone)]
pub enum RpcError {
    /// The server (or the transport) answered with a gRPC status.
    Status(tonic::Status),
    /// The request's deadline passed, waiting for a connection or for the answer.
    DeadlineExceeded,
    /// A stream closed without an answer.
    StreamClosed,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Status(status) => f.write_str(&status_message(status)),
            RpcError::DeadlineExceeded => f.write_str("context deadline exceeded"),
            RpcError::StreamClosed => f.write_str("EOF"),
        }
    }
}

impl RpcError {
    /// This error as a command failure with exit code `code`.
    pub fn exit(&self, code: ExitCode) -> CtlError {
        CtlError::new(code, self.to_string())
    }

    /// The gRPC status, if the failure is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            RpcError::Status(status) => Some(status),
            _ => None,
        }
    }
}

impl From<tonic::Status> for RpcError {
    fn from(status: tonic::Status) -> RpcError {
        if status.code() == tonic::Code::DeadlineExceeded
            && !status.message().starts_with("etcdserver: ")
        {
            return RpcError::DeadlineExceeded;
        }
        RpcError::Status(status)
    }
}

/// A failed request's text as etcd's Go client gives it: etcd's own errors by their text
/// (`etcdserver: ...`), anything else as `rpc error: code = <Code> desc = <message>`.
pub fn status_message(status: &tonic::Status) -> String {
    let message = status.message();
    if message.starts_with("etcdserver: ") {
        message.to_string()
    } else {
        format!("rpc error: code = {:?} desc = {message}", status.code())
    }
}

/// An endpoint as given (for printing) and as a URL (for dialling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// As the user wrote it (or as the member list gave it).
    pub display: String,
    /// `http://host:port`.
    pub url: String,
}

/// Reads `host:port` or `http://host:port` as etcd's client does. TLS (`https://`) and
/// unix sockets are refused for now, with a clear message.
pub fn parse_endpoint(endpoint: &str) -> Result<EndpointUrl, CtlError> {
    let trimmed = endpoint.trim();
    let bad = |why: &str| CtlError::bad_args(format!("bad endpoint {trimmed:?}: {why}"));
    let rest = if let Some(rest) = trimmed.strip_prefix("http://") {
        rest
    } else if trimmed.starts_with("https://") || trimmed.starts_with("unixs://") {
        return Err(CtlError::bad_args(format!(
            "TLS is not supported yet by this etcdctl (endpoint {trimmed})"
        )));
    } else if trimmed.starts_with("unix://") || trimmed.starts_with("unix:") {
        return Err(bad("unix socket endpoints are not supported yet"));
    } else if trimmed.contains("://") {
        return Err(bad("only http:// endpoints are supported"));
    } else {
        trimmed
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(bad("expected host:port"));
    }
    let url = format!("http://{rest}");
    Endpoint::from_shared(url.clone()).map_err(|e| bad(&e.to_string()))?;
    Ok(EndpointUrl {
        display: trimmed.to_string(),
        url,
    })
}

/// One established connection: the channel and the auth token to send on it.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The HTTP/2 channel.
    pub channel: Channel,
    token: Option<AsciiMetadataValue>,
}

impl Conn {
    /// Wraps `message` in a request that carries the auth token, if any, and a gRPC
    /// timeout of `timeout` (so the server gives up too).
    pub fn request<T>(&self, message: T, timeout: Option<Duration>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }

    /// Like [`Conn::request`], also asking the server to fail at once when it has no
    /// leader (`hasleader=true`, clientv3's `WithRequireLeader`), as watches do.
    pub fn request_requiring_leader<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = self.request(message, None);
        request
            .metadata_mut()
            .insert("hasleader", AsciiMetadataValue::from_static("true"));
        request
    }
}

/// `user`/`password` for authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Dials the endpoints of the global flags; caches the first connection made.
#[derive(Debug)]
pub struct Connector {
    endpoints: Vec<EndpointUrl>,
    dial_timeout: Duration,
    command_timeout: Duration,
    keepalive_time: Duration,
    keepalive_timeout: Duration,
    credentials: Option<Credentials>,
    cached: Mutex<Option<Conn>>,
}

impl Connector {
    /// A connector for the endpoints and timeouts of `global`, authenticating with
    /// `credentials`.
    pub fn new(
        global: &GlobalArgs,
        endpoints: Vec<EndpointUrl>,
        credentials: Option<Credentials>,
    ) -> Connector {
        Connector {
            endpoints,
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
            keepalive_time: global.keepalive_time,
            keepalive_timeout: global.keepalive_timeout,
            credentials,
            cached: Mutex::new(None),
        }
    }

    /// The endpoints, in `--endpoints` order.
    pub fn endpoints(&self) -> &[EndpointUrl] {
        &self.endpoints
    }

    /// `--command-timeout`.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The same settings for other endpoints (e.g. one member's).
    pub fn with_endpoints(&self, endpoints: Vec<EndpointUrl>) -> Connector {
        Connector {
            endpoints,
            dial_timeout: self.dial_timeout,
            command_timeout: self.command_timeout,
            keepalive_time: self.keepalive_time,
            keepalive_timeout: self.keepalive_timeout,
            credentials: self.credentials.clone(),
            cached: Mutex::new(None),
        }
    }

    /// The deadline of a request that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.command_timeout
    }

    fn cached(&self) -> Option<Conn> {
        self.cached.lock().ok().and_then(|c| c.clone())
    }

    fn cache(&self, conn: &Conn) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(conn.clone());
        }
    }

    /// Forgets the cached connection (after a stream broke), so the next request dials.
    pub fn reset(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    async fn dial(&self, url: &str, deadline: Instant) -> Option<Channel> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        let mut bound = deadline - now;
        if !self.dial_timeout.is_zero() {
            bound = bound.min(self.dial_timeout);
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .ok()?
            .connect_timeout(bound)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.keepalive_time.max(MIN_KEEPALIVE_TIME))
            .keep_alive_timeout(self.keepalive_timeout.max(Duration::from_secs(1)))
            .keep_alive_while_idle(false);
        match tokio::time::timeout(bound, endpoint.connect()).await {
            Ok(Ok(channel)) => Some(channel),
            _ => None,
        }
    }

    /// A connection to any endpoint, dialling them in turn until `deadline`.
    pub async fn connect(&self, deadline: Instant) -> Result<Conn, CtlError> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let deadline = self.client_deadline(deadline);
        let channel = self.dial_any(deadline).await;
        let conn = self.finish(channel, deadline).await?;
        self.cache(&conn);
        Ok(conn)
    }

    async fn dial_any(&self, deadline: Instant) -> Option<Channel> {
        let mut backoff = FIRST_DIAL_BACKOFF;
        loop {
            for endpoint in &self.endpoints {
                if let Some(channel) = self.dial(&endpoint.url, deadline).await {
                    return Some(channel);
                }
                if Instant::now() >= deadline {
                    return None;
                }
            }
            let now = Instant::now();
            if now >= deadline || self.endpoints.is_empty() {
                return None;
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_DIAL_BACKOFF);
        }
    }

    /// Authenticates on a dialled channel (or reports that none could be dialled).
    async fn finish(&self, channel: Option<Channel>, deadline: Instant) -> Result<Conn, CtlError> {
        match &self.credentials {
            None => match channel {
                Some(channel) => Ok(Conn {
                    channel,
                    token: None,
                }),
                None => Err(RpcError::DeadlineExceeded.exit(ExitCode::Error)),
            },
            Some(credentials) => {
                // etcdctl authenticates while creating its client, bounded by the dial
                // timeout; any failure there is a connection failure.
                let channel = channel
                    .ok_or_else(|| RpcError::DeadlineExceeded.exit(ExitCode::BadConnection))?;
                let token = authenticate(&channel, credentials, deadline)
                    .await
                    .map_err(|e| e.exit(ExitCode::BadConnection))?;
                Ok(Conn { channel, token })
            }
        }
    }

    /// With credentials, etcdctl's client connects and authenticates before any request,
    /// within `--dial-timeout`; without, the connection is waited for within the
    /// request's own deadline.
    fn client_deadline(&self, deadline: Instant) -> Instant {
        if self.credentials.is_some() && !self.dial_timeout.is_zero() {
            Instant::now() + self.dial_timeout
        } else {
            deadline
        }
    }

    /// A connection to one given endpoint (as `c.Status(ctx, endpoint)` makes one).
    pub async fn connect_to(
        &self,
        endpoint: &EndpointUrl,
        deadline: Instant,
    ) -> Result<Conn, CtlError> {
        let deadline = self.client_deadline(deadline);
        let mut backoff = FIRST_DIAL_BACKOFF;
        let channel = loop {
            if let Some(channel) = self.dial(&endpoint.url, deadline).await {
                break Some(channel);
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_DIAL_BACKOFF);
        };
        self.finish(channel, deadline).await
    }

    /// Runs one unary request on a connection to any endpoint, bounded by
    /// `--command-timeout` from now (the wait for a connection included).
    pub async fn unary<T, F, Fut>(&self, call: F) -> Result<T, UnaryError>
    where
        F: FnOnce(Conn, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = self.deadline();
        let conn = self.connect(deadline).await.map_err(UnaryError::Connect)?;
        run_until(deadline, call(conn, remaining(deadline))).await
    }

    /// Like [`Connector::unary`], on a connection to `endpoint`.
    pub async fn unary_to<T, F, Fut>(
        &self,
        endpoint: &EndpointUrl,
        call: F,
    ) -> Result<T, UnaryError>
    where
        F: FnOnce(Conn, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = self.deadline();
        let conn = self
            .connect_to(endpoint, deadline)
            .await
            .map_err(UnaryError::Connect)?;
        run_until(deadline, call(conn, remaining(deadline))).await
    }
}

/// The time left until `deadline` (at least a millisecond, for a gRPC timeout header).
pub fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

async fn run_until<T, Fut>(deadline: Instant, call: Fut) -> Result<T, UnaryError>
where
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(UnaryError::Rpc(RpcError::from(status))),
        Err(_) => Err(UnaryError::Rpc(RpcError::DeadlineExceeded)),
    }
}

/// A failed unary request: no connection (already a command failure, with the code
/// etcdctl gives it), or the request itself failed.
#[derive(Debug, Clone)]
pub enum UnaryError {
    /// Connecting (or authenticating) failed.
    Connect(CtlError),
    /// The request failed.
    Rpc(RpcError),
}

impl UnaryError {
    /// This failure as a command failure: request failures get `code`; a connection
    /// that timed out without credentials also gets `code` (etcdctl only notices it as
    /// the request's deadline), an authentication failure keeps exit 2.
    pub fn exit(self, code: ExitCode) -> CtlError {
        match self {
            UnaryError::Connect(e) if e.code == ExitCode::BadConnection => e,
            UnaryError::Connect(e) => CtlError {
                code,
                message: e.message,
            },
            UnaryError::Rpc(e) => e.exit(code),
        }
    }

    /// This failure with its message wrapped by `wrap` (e.g. `failed to grant lease (%v)`).
    pub fn exit_wrapped(self, code: ExitCode, wrap: impl Fn(&str) -> String) -> CtlError {
        let e = self.exit(code);
        if e.code == ExitCode::BadConnection && code != ExitCode::BadConnection {
            return e;
        }
        CtlError {
            code: e.code,
            message: e.message.map(|m| wrap(&m)),
        }
    }

    /// The text etcd's client gives for this failure.
    pub fn message(&self) -> String {
        match self {
            UnaryError::Connect(e) => e.message.clone().unwrap_or_default(),
            UnaryError::Rpc(e) => e.to_string(),
        }
    }
}

async fn authenticate(
    channel: &Channel,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Option<AsciiMetadataValue>, RpcError> {
    let mut request = tonic::Request::new(AuthenticateRequest {
        name: credentials.user.clone(),
        password: credentials.password.clone(),
    });
    request.set_timeout(remaining(deadline));
    let answer = tokio::time::timeout_at(
        deadline,
        AuthClient::new(channel.clone()).authenticate(request),
    )
    .await;
    match answer {
        Err(_) => Err(RpcError::DeadlineExceeded),
        Ok(Ok(response)) => {
            let token = response.into_inner().token;
            if token.is_empty() {
                return Ok(None);
            }
            token
                .parse()
                .map(Some)
                .map_err(|_| RpcError::Status(tonic::Status::internal("non-ASCII auth token")))
        }
        // Without auth on the server (etcd's answer, or a server without the Auth
        // service), requests go without a token, as etcd's client does.
        Ok(Err(status))
            if status.message() == "etcdserver: authentication is not enabled"
                || status.code() == tonic::Code::Unimplemented =>
        {
            Ok(None)
        }
        Ok(Err(status)) => Err(RpcError::from(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcds_forms() {
        let e = parse_endpoint("127.0.0.1:2379").unwrap();
        assert_eq!(e.url, "http://127.0.0.1:2379");
        assert_eq!(e.display, "127.0.0.1:2379");
        let e = parse_endpoint(" http://localhost:2379/ ").unwrap();
        assert_eq!(e.url, "http://localhost:2379");
        assert_eq!(e.display, "http://localhost:2379/");
        assert_eq!(
            parse_endpoint("[::1]:2379").unwrap().url,
            "http://[::1]:2379"
        );
    }

    #[test]
    fn unusable_endpoints_are_refused_clearly() {
        let e = parse_endpoint("https://a:1").unwrap_err();
        assert_eq!(e.code, ExitCode::BadArgs);
        assert!(e.message.unwrap().contains("TLS is not supported"));
        for bad in ["", "http://", "unix://x", "a:1/path", "a b:1", "ftp://x:1"] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_print_as_the_go_client() {
        let s = tonic::Status::not_found("etcdserver: requested lease not found");
        assert_eq!(
            RpcError::from(s).to_string(),
            "etcdserver: requested lease not found"
        );
        let s = tonic::Status::unavailable("connection refused");
        assert_eq!(
            RpcError::from(s).to_string(),
            "rpc error: code = Unavailable desc = connection refused"
        );
        let s = tonic::Status::deadline_exceeded("timeout expired");
        assert_eq!(RpcError::from(s).to_string(), "context deadline exceeded");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_times_out_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let global = crate::cli::GlobalArgs {
            command_timeout: Duration::from_millis(300),
            ..test_global()
        };
        let connector = Connector::new(
            &global,
            vec![parse_endpoint(&addr.to_string()).unwrap()],
            None,
        );
        let started = std::time::Instant::now();
        let err = connector.connect(connector.deadline()).await.unwrap_err();
        assert_eq!(err.message.as_deref(), Some("context deadline exceeded"));
        assert_eq!(err.code, ExitCode::Error);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    fn test_global() -> GlobalArgs {
        use clap::Parser;
        crate::cli::Cli::parse_from(["etcdctl"]).global
    }
}
