//! The core load loop of the KV benchmarks (`put`, `range`, `txn-put`).
//!
//! `--clients` tasks share one request counter: each takes the next request number,
//! waits for the rate limiter, builds that request, sends it on its connection and waits
//! for the answer before taking the next, so at most `--clients` requests are in flight
//! and exactly `--total` are sent (a client stops as soon as the counter reaches the
//! total). Latencies are buffered per client and flushed into one shared [`Recorder`] in
//! batches of [`FLUSH_EVERY`], which bounds both memory and lock traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::request_op::Request;
use etcd_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use indicatif::ProgressBar;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::conn::{conn_for_client, status_message, Conn};
use crate::error::Error;
use crate::keys::{write_key, KeyChooser};
use crate::limiter::RateLimiter;
use crate::report::Recorder;

/// Latencies a client buffers before it merges them into the shared recorder.
pub const FLUSH_EVERY: usize = 256;

/// What the requests of a KV run look like.
#[derive(Debug, Clone)]
pub enum Workload {
    /// `put`: one key of the key space per request, always the same value.
    Put {
        /// Bytes per key.
        key_size: usize,
        /// The value of every put.
        value: Vec<u8>,
        /// Keys to choose from.
        key_space_size: u64,
        /// Request `n` writes key `n % key_space_size` instead of a random one.
        sequential: bool,
    },
    /// `range`: the same range request every time.
    Range(RangeRequest),
    /// `txn-put`: a txn without compares whose success branch puts `ops` keys;
    /// txn `n` writes keys `n * ops + j` (mod the key space) for `j < ops`.
    TxnPut {
        /// Bytes per key.
        key_size: usize,
        /// The value of every put.
        value: Vec<u8>,
        /// Keys to choose from.
        key_space_size: u64,
        /// Puts per txn.
        ops: u32,
    },
}

/// One request of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum KvRequest {
    /// A put.
    Put(PutRequest),
    /// A range.
    Range(RangeRequest),
    /// A txn.
    Txn(TxnRequest),
}

impl Workload {
    /// How a client picks keys: its own random generator, seeded with `seed`, unless keys
    /// are sequential.
    pub fn chooser(&self, seed: u64) -> KeyChooser {
        match self {
            Workload::Put {
                sequential: true, ..
            } => KeyChooser::Sequential,
            _ => KeyChooser::Random(Box::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// Request number `index` of the run.
    pub fn request(&self, index: u64, keys: &mut KeyChooser) -> KvRequest {
        match self {
            Workload::Put {
                key_size,
                value,
                key_space_size,
                ..
            } => {
                let mut key = Vec::new();
                write_key(&mut key, keys.index(index, *key_space_size), *key_size);
                KvRequest::Put(PutRequest {
                    key,
                    value: value.clone(),
                    ..Default::default()
                })
            }
            Workload::Range(range) => KvRequest::Range(range.clone()),
            Workload::TxnPut {
                key_size,
                value,
                key_space_size,
                ops,
            } => {
                let space = u128::from((*key_space_size).max(1));
                let first = u128::from(index) * u128::from(*ops);
                let success = (0..u128::from(*ops))
                    .map(|j| {
                        // The modulus is a u64, so the remainder fits in one.
                        let key_index = u64::try_from((first + j) % space).unwrap_or(0);
                        let mut key = Vec::new();
                        write_key(&mut key, key_index, *key_size);
                        RequestOp {
                            request: Some(Request::RequestPut(PutRequest {
                                key,
                                value: value.clone(),
                                ..Default::default()
                            })),
                        }
                    })
                    .collect();
                KvRequest::Txn(TxnRequest {
                    compare: Vec::new(),
                    success,
                    failure: Vec::new(),
                })
            }
        }
    }
}

/// How much load to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Concurrent clients (each has one request in flight at a time).
    pub clients: u32,
    /// Requests in all, over all clients.
    pub total: u64,
    /// Requests per second over all clients; 0 is no limit.
    pub rate: u64,
    /// Seed of the clients' key choices (client `c` uses `seed + c`).
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Latencies and errors.
    pub recorder: Recorder,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

/// Sends `spec.total` requests of `workload` from `spec.clients` clients spread over
/// `conns`, and returns what they measured. Failed requests are counted, never retried.
pub async fn run_kv(
    conns: &[Conn],
    workload: Arc<Workload>,
    spec: LoadSpec,
    progress: ProgressBar,
) -> Result<RunResult, Error> {
    let shared = Arc::new(Mutex::new(Recorder::new()?));
    let next = Arc::new(AtomicU64::new(0));
    let limiter = (spec.rate > 0).then(|| Arc::new(RateLimiter::new(spec.rate, 1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..usize::try_from(spec.clients).unwrap_or(0) {
        let Some(conn) = conn_for_client(conns, client) else {
            return Err(Error::InvalidFlag("no connections".to_string()));
        };
        let conn = conn.clone();
        let workload = Arc::clone(&workload);
        let shared = Arc::clone(&shared);
        let next = Arc::clone(&next);
        let limiter = limiter.clone();
        let progress = progress.clone();
        let mut keys = workload.chooser(spec.seed.wrapping_add(client as u64));
        let total = spec.total;
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(conn.channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let mut latencies: Vec<Duration> = Vec::with_capacity(FLUSH_EVERY);
            let mut errors: Vec<String> = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                if let Some(limiter) = &limiter {
                    limiter.wait().await;
                }
                let request = workload.request(index, &mut keys);
                let start = Instant::now();
                let outcome = match request {
                    KvRequest::Put(put) => kv.put(conn.request(put)).await.map(drop),
                    KvRequest::Range(range) => kv.range(conn.request(range)).await.map(drop),
                    KvRequest::Txn(txn) => kv.txn(conn.request(txn)).await.map(drop),
                };
                match outcome {
                    Ok(()) => latencies.push(start.elapsed()),
                    Err(status) => errors.push(status_message(&status)),
                }
                progress.inc(1);
                if latencies.len() + errors.len() >= FLUSH_EVERY {
                    flush(&shared, &mut latencies, &mut errors);
                }
            }
            flush(&shared, &mut latencies, &mut errors);
        }));
    }
    for task in tasks {
        task.await.map_err(|e| Error::Task(e.to_string()))?;
    }
    let elapsed = started.elapsed();
    let recorder = shared.lock().clone();
    Ok(RunResult { recorder, elapsed })
}

/// Moves a client's buffered latencies and errors into the shared recorder.
fn flush(shared: &Mutex<Recorder>, latencies: &mut Vec<Duration>, errors: &mut Vec<String>) {
    let mut recorder = shared.lock();
    for latency in latencies.drain(..) {
        recorder.record(latency);
    }
    for error in errors.drain(..) {
        recorder.record_error(&error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key;

    fn put_workload(sequential: bool, key_space_size: u64) -> Workload {
        Workload::Put {
            key_size: 8,
            value: b"vv".to_vec(),
            key_space_size,
            sequential,
        }
    }

    #[test]
    fn sequential_puts_walk_the_key_space() {
        let workload = put_workload(true, 3);
        let mut keys = workload.chooser(0);
        for n in 0..6 {
            let KvRequest::Put(put) = workload.request(n, &mut keys) else {
                panic!("not a put")
            };
            assert_eq!(put.key, key(n % 3, 8));
            assert_eq!(put.value, b"vv");
        }
    }

    #[test]
    fn random_puts_stay_in_the_key_space() {
        let workload = put_workload(false, 4);
        let mut keys = workload.chooser(42);
        let allowed: Vec<Vec<u8>> = (0..4).map(|i| key(i, 8)).collect();
        for n in 0..100 {
            let KvRequest::Put(put) = workload.request(n, &mut keys) else {
                panic!("not a put")
            };
            assert!(allowed.contains(&put.key));
        }
    }

    #[test]
    fn txn_put_writes_consecutive_keys_modulo_the_key_space() {
        let workload = Workload::TxnPut {
            key_size: 4,
            value: vec![1],
            key_space_size: 5,
            ops: 3,
        };
        let mut keys = workload.chooser(0);
        let KvRequest::Txn(txn) = workload.request(1, &mut keys) else {
            panic!("not a txn")
        };
        assert!(txn.compare.is_empty() && txn.failure.is_empty());
        let written: Vec<Vec<u8>> = txn
            .success
            .iter()
            .filter_map(|op| match &op.request {
                Some(Request::RequestPut(put)) => Some(put.key.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(written, vec![key(3, 4), key(4, 4), key(0, 4)]);
        // Huge request numbers do not overflow.
        let KvRequest::Txn(txn) = workload.request(u64::MAX, &mut keys) else {
            panic!("not a txn")
        };
        assert_eq!(txn.success.len(), 3);
    }

    #[test]
    fn range_repeats_its_request() {
        let range = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            serializable: true,
            ..Default::default()
        };
        let workload = Workload::Range(range.clone());
        let mut keys = workload.chooser(0);
        assert_eq!(workload.request(7, &mut keys), KvRequest::Range(range));
    }
}
