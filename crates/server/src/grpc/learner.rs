//! What a learner serves, as etcd's gRPC interceptors decide it: Maintenance.Status,
//! Maintenance.Snapshot and Range (serializable only: [`super::KvService`] checks the
//! flag); every other call is refused with `etcdserver: rpc not supported for learner`.
//!
//! A tower layer in front of the services checks the path before any message is read,
//! so streams (Watch, LeaseKeepAlive) are refused as etcd's stream interceptor does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::errors::EtcdError;
use crate::server::Shared;

/// Paths a learner answers.
const LEARNER_PATHS: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
];

/// The layer that refuses other calls on a learner.
#[derive(Clone)]
pub struct LearnerLayer {
    shared: Arc<Shared>,
}

impl LearnerLayer {
    /// A layer over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> LearnerLayer {
        LearnerLayer { shared }
    }
}

impl<S> Layer<S> for LearnerLayer {
    type Service = LearnerService<S>;

    fn layer(&self, inner: S) -> LearnerService<S> {
        LearnerService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Refuses what a learner does not serve; passes everything else on.
#[derive(Clone)]
pub struct LearnerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<Body>> for LearnerService<S>
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
        let path = req.uri().path();
        let grpc = path.starts_with("/etcdserverpb.")
            || path.starts_with("/v3lockpb.")
            || path.starts_with("/v3electionpb.");
        if grpc && !LEARNER_PATHS.contains(&path) && self.shared.is_learner() {
            let status = tonic::Status::from(EtcdError::NotSupportedForLearner);
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(req))
    }
}
