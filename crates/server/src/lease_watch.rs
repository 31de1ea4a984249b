//! The Lease and Watch services (added once the lessor and the watchable store are
//! wired in).

use std::sync::Arc;

use tonic::transport::server::Router;

use crate::server::Shared;

/// Adds the Lease and Watch services to the client router.
pub(crate) fn add_services(router: Router, _shared: &Arc<Shared>, _max_bytes: usize) -> Router {
    router
}
