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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::lease_client::LeaseClient;
use etcd_proto::etcdserverpb::request_op::Request;
use etcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use etcd_proto::tonic::transport::Channel;
use etcd_proto::tonic::Status;
use indicatif::ProgressBar;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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
    /// `txn-mixed`: txns of one op each, a read (`read`) with probability
    /// `read_fraction`, else a put of key `n % key_space_size` (request `n`).
    TxnMixed {
        /// Bytes per key.
        key_size: usize,
        /// The value of every put.
        value: Vec<u8>,
        /// Keys to write.
        key_space_size: u64,
        /// The read.
        read: RangeRequest,
        /// Share of reads, in [0, 1].
        read_fraction: f64,
    },
    /// `lease-keepalive`: one keep-alive of the client's own lease per request.
    LeaseKeepAlive,
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
    /// A keep-alive of the client's lease.
    KeepAlive,
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

    /// Request number `index` of the run, and the report its result goes to.
    pub fn request(
        &self,
        index: u64,
        keys: &mut KeyChooser,
        rng: &mut StdRng,
    ) -> (Class, KvRequest) {
        match self {
            Workload::Put {
                key_size,
                value,
                key_space_size,
                ..
            } => {
                let key_index = keys.index(index, *key_space_size);
                let put = put_request(key_index, *key_size, value);
                (Class::Main, KvRequest::Put(put))
            }
            Workload::Range(range) => (Class::Main, KvRequest::Range(range.clone())),
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
                        let put = put_request(key_index, *key_size, value);
                        RequestOp {
                            request: Some(Request::RequestPut(put)),
                        }
                    })
                    .collect();
                (Class::Main, KvRequest::Txn(txn(success)))
            }
            Workload::TxnMixed {
                key_size,
                value,
                key_space_size,
                read,
                read_fraction,
            } => {
                let (class, op) = if rng.random::<f64>() < *read_fraction {
                    (Class::Main, Request::RequestRange(read.clone()))
                } else {
                    let key_index = index % (*key_space_size).max(1);
                    let put = put_request(key_index, *key_size, value);
                    (Class::Write, Request::RequestPut(put))
                };
                let success = vec![RequestOp { request: Some(op) }];
                (class, KvRequest::Txn(txn(success)))
            }
            Workload::LeaseKeepAlive => (Class::Main, KvRequest::KeepAlive),
        }
    }
}

/// A put of key `key_index`.
fn put_request(key_index: u64, key_size: usize, value: &[u8]) -> PutRequest {
    let mut key = Vec::new();
    write_key(&mut key, key_index, key_size);
    PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    }
}

/// A txn without compares that runs `success`.
fn txn(success: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
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
    /// Keep per-second samples (`--sample`).
    pub sample: bool,
}

/// Which report a request's result goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Every request of a run, or the reads of `txn-mixed`.
    Main = 0,
    /// The writes of `txn-mixed`.
    Write = 1,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Latencies and errors of the requests of [`Class::Main`].
    pub recorder: Recorder,
    /// Latencies and errors of the requests of [`Class::Write`] (only `txn-mixed` has
    /// any).
    pub writes: Recorder,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

/// A client's own state: its key choices, its random choices, its lease.
struct Client {
    keys: KeyChooser,
    rng: StdRng,
    conn: Conn,
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    lease_id: i64,
}

impl Client {
    /// Sends one request; `Ok` when it succeeded.
    async fn send(&mut self, request: KvRequest) -> Result<(), Status> {
        match request {
            KvRequest::Put(put) => self.kv.put(self.conn.request(put)).await.map(drop),
            KvRequest::Range(range) => self.kv.range(self.conn.request(range)).await.map(drop),
            KvRequest::Txn(txn) => self.kv.txn(self.conn.request(txn)).await.map(drop),
            KvRequest::KeepAlive => self.keep_alive_once().await,
        }
    }

    /// Grants the client's lease (`lease-keepalive`), as etcd's tool: TTL 100 s.
    async fn grant(&mut self) -> Result<(), Error> {
        let grant = LeaseGrantRequest { ttl: 100, id: 0 };
        let response = self
            .lease
            .lease_grant(self.conn.request(grant))
            .await
            .map_err(|status| Error::Setup {
                what: "lease grant",
                reason: status_message(&status),
            })?;
        self.lease_id = response.into_inner().id;
        Ok(())
    }

    /// One keep-alive on a stream of its own, as etcd's `KeepAliveOnce`.
    async fn keep_alive_once(&mut self) -> Result<(), Status> {
        let (sender, receiver) = mpsc::channel(1);
        let request = LeaseKeepAliveRequest { id: self.lease_id };
        sender
            .send(request)
            .await
            .map_err(|_| Status::internal("keep-alive request stream closed"))?;
        let mut answers = self
            .lease
            .lease_keep_alive(self.conn.request(ReceiverStream::new(receiver)))
            .await?
            .into_inner();
        let answer = answers.message().await?;
        drop(sender);
        match answer {
            Some(answer) if answer.ttl > 0 => Ok(()),
            Some(_) => Err(Status::not_found("etcdserver: requested lease not found")),
            None => Err(Status::unavailable(
                "keep-alive stream ended without an answer",
            )),
        }
    }
}

/// Sends `spec.total` requests of `workload` from `spec.clients` clients spread over
/// `conns`, and returns what they measured. Failed requests are counted, never retried.
pub async fn run_kv(
    conns: &[Conn],
    workload: Arc<Workload>,
    spec: LoadSpec,
    progress: ProgressBar,
) -> Result<RunResult, Error> {
    let new_recorder = || {
        if spec.sample {
            Recorder::with_samples()
        } else {
            Recorder::new()
        }
    };
    let shared = Arc::new(Mutex::new([new_recorder()?, new_recorder()?]));
    let next = Arc::new(AtomicU64::new(0));
    let limiter = (spec.rate > 0).then(|| Arc::new(RateLimiter::new(spec.rate, 1)));
    let mut clients = Vec::new();
    for index in 0..usize::try_from(spec.clients).unwrap_or(0) {
        let Some(conn) = conn_for_client(conns, index) else {
            return Err(Error::InvalidFlag("no connections".to_string()));
        };
        let seed = spec.seed.wrapping_add(index as u64);
        let mut client = Client {
            keys: workload.chooser(seed),
            rng: StdRng::seed_from_u64(seed.rotate_left(32)),
            conn: conn.clone(),
            kv: KvClient::new(conn.channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            lease: LeaseClient::new(conn.channel.clone()),
            lease_id: 0,
        };
        if matches!(*workload, Workload::LeaseKeepAlive) {
            client.grant().await?;
        }
        clients.push(client);
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let workload = Arc::clone(&workload);
        let shared = Arc::clone(&shared);
        let next = Arc::clone(&next);
        let limiter = limiter.clone();
        let progress = progress.clone();
        let total = spec.total;
        let sample = spec.sample;
        tasks.push(tokio::spawn(async move {
            let mut results: Vec<Sent> = Vec::with_capacity(FLUSH_EVERY);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                if let Some(limiter) = &limiter {
                    limiter.wait().await;
                }
                let (class, request) = workload.request(index, &mut client.keys, &mut client.rng);
                let second = sample.then(unix_second);
                let start = Instant::now();
                let outcome = client.send(request).await;
                let result = match outcome {
                    Ok(()) => Ok(start.elapsed()),
                    Err(status) => Err(status_message(&status)),
                };
                results.push(Sent {
                    class,
                    second,
                    result,
                });
                progress.inc(1);
                if results.len() >= FLUSH_EVERY {
                    flush(&shared, &mut results);
                }
            }
            flush(&shared, &mut results);
        }));
    }
    for task in tasks {
        task.await.map_err(|e| Error::Task(e.to_string()))?;
    }
    let elapsed = started.elapsed();
    let [recorder, writes] = shared.lock().clone();
    Ok(RunResult {
        recorder,
        writes,
        elapsed,
    })
}

/// The result of one request, buffered by its client.
struct Sent {
    class: Class,
    /// The unix second it started in, when sampling.
    second: Option<i64>,
    result: Result<Duration, String>,
}

/// Moves a client's buffered results into the shared recorders.
fn flush(shared: &Mutex<[Recorder; 2]>, results: &mut Vec<Sent>) {
    let mut recorders = shared.lock();
    for sent in results.drain(..) {
        let recorder = &mut recorders[sent.class as usize];
        match sent.result {
            Ok(latency) => recorder.record_at(latency, sent.second),
            Err(message) => recorder.record_error(&message),
        }
    }
}

/// The current unix second (0 if the clock is before 1970).
pub fn unix_second() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key;

    #[test]
    fn txn_mixed_splits_reads_and_writes_by_ratio() {
        let read = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            limit: 1000,
            ..Default::default()
        };
        let workload = Workload::TxnMixed {
            key_size: 8,
            value: vec![1],
            key_space_size: 10,
            read: read.clone(),
            read_fraction: 0.75,
        };
        let mut keys = workload.chooser(0);
        let mut rng = StdRng::seed_from_u64(9);
        let mut reads = 0;
        for n in 0..4000 {
            let (class, KvRequest::Txn(txn)) = workload.request(n, &mut keys, &mut rng) else {
                panic!("not a txn")
            };
            assert_eq!(txn.success.len(), 1);
            match (&txn.success[0].request, class) {
                (Some(Request::RequestRange(r)), Class::Main) => {
                    assert_eq!(r, &read);
                    reads += 1;
                }
                (Some(Request::RequestPut(p)), Class::Write) => assert_eq!(p.key, key(n % 10, 8)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!((2800..3200).contains(&reads), "{reads} reads");
    }

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
        let mut rng = StdRng::seed_from_u64(0);
        for n in 0..6 {
            let KvRequest::Put(put) = workload.request(n, &mut keys, &mut rng).1 else {
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
        let mut rng = StdRng::seed_from_u64(0);
        let allowed: Vec<Vec<u8>> = (0..4).map(|i| key(i, 8)).collect();
        for n in 0..100 {
            let KvRequest::Put(put) = workload.request(n, &mut keys, &mut rng).1 else {
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
        let mut rng = StdRng::seed_from_u64(0);
        let KvRequest::Txn(txn) = workload.request(1, &mut keys, &mut rng).1 else {
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
        let KvRequest::Txn(txn) = workload.request(u64::MAX, &mut keys, &mut rng).1 else {
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
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            workload.request(7, &mut keys, &mut rng).1,
            KvRequest::Range(range)
        );
    }
}
