//! HTTP on the client port, beside gRPC (as etcd serves them on one port): `/health`,
//! `/livez`, `/readyz`, `/version` and `/metrics` (Prometheus text, [`crate::metrics`]).
//!
//! A tower layer in front of the gRPC router answers these paths itself and passes
//! everything else on, so gRPC (HTTP/2) and plain HTTP/1.1 probes share the listener.
//! `/health` answers etcd's JSON: `{"health":"true","reason":""}` with 200, or
//! `"false"` with a reason (`RAFT NO LEADER`, `QGET ERROR`) and 503 when the member has no
//! leader or cannot complete a linearizable read in time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::config::ETCD_VERSION;
use crate::server::Shared;

/// How long `/health` waits for its linearizable read.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The layer that adds the HTTP endpoints.
#[derive(Clone)]
pub struct HttpLayer {
    shared: Arc<Shared>,
}

impl HttpLayer {
    /// A layer over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> HttpLayer {
        HttpLayer { shared }
    }
}

impl<S> Layer<S> for HttpLayer {
    type Service = HttpService<S>;

    fn layer(&self, inner: S) -> HttpService<S> {
        HttpService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The HTTP endpoints in front of the gRPC services.
#[derive(Clone)]
pub struct HttpService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<Body>> for HttpService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let is_get = req.method() == Method::GET;
        let shared = self.shared.clone();
        match (is_get, req.uri().path()) {
            (true, "/health") => {
                let serializable = req
                    .uri()
                    .query()
                    .is_some_and(|q| q.contains("serializable=true"));
                Box::pin(async move { Ok(health(&shared, serializable).await) })
            }
            (true, "/metrics") => Box::pin(async move {
                let body = crate::metrics::render(&shared);
                Ok(respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body,
                ))
            }),
            (true, "/livez") => Box::pin(async move { Ok(text(StatusCode::OK, "ok")) }),
            (true, "/readyz") => Box::pin(async move {
                if shared.leader() == 0 {
                    Ok(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: no leader",
                    ))
                } else {
                    Ok(text(StatusCode::OK, "ok"))
                }
            }),
            (true, "/version") => Box::pin(async move {
                let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"3.5.0"}}"#);
                Ok(json(StatusCode::OK, body))
            }),
            _ => Box::pin(self.inner.call(req)),
        }
    }
}

async fn health(shared: &Shared, serializable: bool) -> Response<Body> {
    if shared.leader() == 0 {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#.to_string(),
        );
    }
    if let Some(a) = shared.alarms.list().first() {
        let name = etcd_proto::etcdserverpb::AlarmType::try_from(a.alarm)
            .map(|t| t.as_str_name())
            .unwrap_or("UNKNOWN");
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"health":"false","reason":"ALARM {name}"}}"#),
        );
    }
    if !serializable {
        let read = tokio::time::timeout(HEALTH_READ_TIMEOUT, shared.linearizable_read()).await;
        if !matches!(read, Ok(Ok(()))) {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"health":"false","reason":"QGET ERROR"}"#.to_string(),
            );
        }
    }
    json(
        StatusCode::OK,
        r#"{"health":"true","reason":""}"#.to_string(),
    )
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "application/json", body)
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}
