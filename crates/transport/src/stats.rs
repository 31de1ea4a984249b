//! Per-peer counters for metrics, the round-trip-time histogram, and the gauge of bytes
//! the transport holds in snapshot buffers.
//!
//! Owns only atomics and one small lock per histogram; readers get copies
//! ([`PeerStats`], [`BufferStats`]). Invariant: counters only grow; the buffer gauge goes
//! back to zero when every [`GaugeGuard`] is dropped.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the round-trip-time histogram buckets: etcd's
/// `etcd_network_peer_round_trip_time_seconds` buckets, 0.1 ms doubling 16 times.
pub const RTT_BUCKETS_SECONDS: [f64; 16] = {
    let mut b = [0.0; 16];
    let mut i = 0;
    let mut v = 0.0001;
    while i < 16 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

/// A copy of one peer's counters, for metrics export.
///
/// Metric names: `sent_bytes` is `etcd_network_peer_sent_bytes_total`, `received_bytes`
/// is `etcd_network_peer_received_bytes_total`, `sent_failures` is
/// `etcd_network_peer_sent_failures_total`, `rtt` is
/// `etcd_network_peer_round_trip_time_seconds` (each labelled `To`/`From` = member id).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    /// The peer's member id.
    pub id: u64,
    /// Whether the peer is reachable (last stream, pipeline or probe attempt succeeded).
    pub active: bool,
    /// Whether the MsgApp stream to the peer is open.
    pub msgapp_stream_working: bool,
    /// Whether the general message stream to the peer is open.
    pub message_stream_working: bool,
    /// Encoded bytes of messages and snapshot data sent to the peer.
    pub sent_bytes: u64,
    /// Encoded bytes of messages and snapshot data received from the peer.
    pub received_bytes: u64,
    /// Messages that could not be sent (queue full, connection error, rejected).
    pub sent_failures: u64,
    /// Messages sent and acknowledged by the transport layer.
    pub sent_messages: u64,
    /// Round-trip times measured by the probe.
    pub rtt: RttHistogram,
}

/// A cumulative histogram of probe round-trip times, shaped like a Prometheus histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RttHistogram {
    /// Observations per bucket of [`RTT_BUCKETS_SECONDS`] (not cumulative; the last
    /// entry counts everything above the last bound).
    pub bucket_counts: [u64; 17],
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
    /// The latest observation.
    pub last: Option<Duration>,
}

impl RttHistogram {
    fn observe(&mut self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        let idx = RTT_BUCKETS_SECONDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(16);
        self.bucket_counts[idx] += 1;
        self.sum_seconds += secs;
        self.count += 1;
        self.last = Some(rtt);
    }
}

/// Live counters of one peer, shared by its tasks and the receive side.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub(crate) active: AtomicBool,
    pub(crate) msgapp_stream_working: AtomicBool,
    pub(crate) message_stream_working: AtomicBool,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) sent_failures: AtomicU64,
    pub(crate) sent_messages: AtomicU64,
    rtt: Mutex<RttHistogram>,
}

impl PeerCounters {
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.sent_messages.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, n: u64) {
        self.sent_failures.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn observe_rtt(&self, rtt: Duration) {
        self.rtt.lock().observe(rtt);
    }

    pub(crate) fn snapshot(&self, id: u64) -> PeerStats {
        PeerStats {
            id,
            active: self.active.load(Ordering::Relaxed),
            msgapp_stream_working: self.msgapp_stream_working.load(Ordering::Relaxed),
            message_stream_working: self.message_stream_working.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            sent_failures: self.sent_failures.load(Ordering::Relaxed),
            sent_messages: self.sent_messages.load(Ordering::Relaxed),
            rtt: self.rtt.lock().clone(),
        }
    }
}

/// Current and peak bytes held in the transport's snapshot buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStats {
    /// Bytes held now.
    pub current_bytes: u64,
    /// The most bytes held at once since start (or the last reset).
    pub peak_bytes: u64,
}

/// Gauge of bytes in chunk buffers owned by this transport's code (read from disk and
/// not yet handed to gRPC on the send side; received and not yet written on the
/// receive side). Buffers inside tonic/hyper are bounded by the HTTP/2 windows instead.
#[derive(Debug, Default, Clone)]
pub(crate) struct BufferGauge {
    inner: Arc<GaugeInner>,
}

#[derive(Debug, Default)]
struct GaugeInner {
    current: AtomicI64,
    peak: AtomicI64,
}

impl BufferGauge {
    /// Counts `bytes` as held until the guard is dropped.
    pub(crate) fn hold(&self, bytes: usize) -> GaugeGuard {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let now = self.inner.current.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.inner.peak.fetch_max(now, Ordering::AcqRel);
        GaugeGuard {
            gauge: self.clone(),
            bytes,
        }
    }

    pub(crate) fn stats(&self) -> BufferStats {
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        BufferStats {
            current_bytes: clamp(self.inner.current.load(Ordering::Acquire)),
            peak_bytes: clamp(self.inner.peak.load(Ordering::Acquire)),
        }
    }

    pub(crate) fn reset_peak(&self) {
        let now = self.inner.current.load(Ordering::Acquire);
        self.inner.peak.store(now, Ordering::Release);
    }
}

/// Bytes counted in a [`BufferGauge`] until dropped.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    gauge: BufferGauge,
    bytes: i64,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge
            .inner
            .current
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_tracks_peak_and_returns_to_zero() {
        let g = BufferGauge::default();
        let a = g.hold(10);
        let b = g.hold(5);
        drop(a);
        let _c = g.hold(3);
        drop(b);
        assert_eq!(
            g.stats(),
            BufferStats {
                current_bytes: 3,
                peak_bytes: 15
            }
        );
    }

    #[test]
    fn rtt_lands_in_the_right_bucket() {
        let mut h = RttHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_secs(100));
        assert_eq!(h.bucket_counts[0], 1);
        assert_eq!(h.bucket_counts[4], 1); // 0.0016 s bound
        assert_eq!(h.bucket_counts[16], 1);
        assert_eq!(h.count, 3);
    }
}
