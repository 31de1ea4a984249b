//! The round-trip-time prober: one small request to the peer every `probe_interval`.
//!
//! Owns nothing but its timer. Invariant: at most one probe per peer is in flight, and
//! each one is bounded by `request_timeout`.

use std::sync::Arc;
use std::time::Instant;

use etcd_proto::rafthttppb::ProbeRequest;
use tokio::sync::watch;

use crate::peer::PeerShared;

/// Probes the peer until it stops.
pub(crate) async fn run(shared: Arc<PeerShared>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(shared.config.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let mut request = tonic::Request::new(ProbeRequest {});
        shared.identity.insert(request.metadata_mut());
        request.set_timeout(shared.config.request_timeout);
        let started = Instant::now();
        let mut client = shared.client();
        let probe = tokio::time::timeout(shared.config.request_timeout, client.probe(request));
        let result = tokio::select! {
            r = probe => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(Ok(_)) => {
                shared.counters.observe_rtt(started.elapsed());
                shared.status.activate();
            }
            Ok(Err(status)) => {
                shared.check_refusal(&status);
                shared.status.deactivate(&format!(
                    "probe: {}: {}",
                    status.code(),
                    status.message()
                ));
            }
            Err(_) => shared.status.deactivate("probe: timed out"),
        }
    }
}
