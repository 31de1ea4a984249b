//! `watch-latency`: the time from a put's answer to the arrival of its watch event.
//!
//! As etcd's tool (v3.5): every client opens one watch on one random key over its
//! connection; a separate connection puts that key `--total` times at `--put-rate`. After
//! each put answers, every watcher's event for that put's revision counts as one result,
//! with its latency measured from the put's answer (an event that arrived before the
//! answer counts as 0). So a run records `--total * --clients` results. A watcher whose
//! event does not come within [`EVENT_TIMEOUT`] counts an error for that put, and so does
//! a watcher whose stream has ended; the run goes on.

use std::time::{Duration, Instant};

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::watch_client::WatchClient;
use etcd_proto::etcdserverpb::watch_request::RequestUnion;
use etcd_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use indicatif::ProgressBar;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::conn::{conn_for_client, status_message, Conn};
use crate::error::Error;
use crate::keys::random_value;
use crate::limiter::RateLimiter;
use crate::report::Recorder;
use crate::run::{unix_second, RunResult};

/// How long to wait for every watcher's event after a put.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a watch to be created.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a watcher task reports.
#[derive(Debug)]
enum Arrival {
    /// An event of revision `revision` arrived at `at`.
    Event {
        watcher: usize,
        revision: i64,
        at: Instant,
    },
    /// The watcher's stream ended.
    Closed { watcher: usize, reason: String },
}

/// The flags of a watch-latency run.
#[derive(Debug, Clone, Copy)]
pub struct WatchLatencySpec {
    /// Puts (rounds).
    pub total: u64,
    /// Puts per second (the burst is the same number, as in etcd's tool).
    pub put_rate: u64,
    /// Watchers.
    pub clients: u32,
    /// Bytes of the watched key.
    pub key_size: usize,
    /// Bytes of the value put.
    pub val_size: usize,
    /// Keep per-second samples (`--sample`).
    pub sample: bool,
}

/// Opens the watchers on `conns`, puts on `put_conn`, and measures.
pub async fn run_watch_latency(
    conns: &[Conn],
    put_conn: &Conn,
    spec: WatchLatencySpec,
    rng: &mut impl Rng,
    progress: ProgressBar,
) -> Result<RunResult, Error> {
    let key = random_value(rng, spec.key_size);
    let value = random_value(rng, spec.val_size);
    let watchers = usize::try_from(spec.clients).unwrap_or(0);
    // Each watcher sends at most one arrival per put before the main loop reads them.
    let (arrivals_tx, mut arrivals) = mpsc::channel(watchers.max(1) * 4);
    let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(watchers);
    let mut request_senders = Vec::with_capacity(watchers);
    let opened = open_watchers(
        conns,
        &key,
        watchers,
        spec.total,
        &arrivals_tx,
        &mut tasks,
        &mut request_senders,
    )
    .await;
    if let Err(e) = opened {
        for task in &tasks {
            task.abort();
        }
        return Err(e);
    }
    drop(arrivals_tx);

    let mut recorder = if spec.sample {
        Recorder::with_samples()?
    } else {
        Recorder::new()?
    };
    let mut kv = KvClient::new(put_conn.channel.clone());
    let limiter = RateLimiter::new(spec.put_rate, spec.put_rate);
    let mut closed: Vec<Option<String>> = vec![None; watchers];
    let mut seen = vec![false; watchers];
    let started = Instant::now();
    for _ in 0..spec.total {
        limiter.wait().await;
        let put = PutRequest {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        };
        let revision = match kv.put(put_conn.request(put)).await {
            Ok(response) => response.into_inner().header.map_or(0, |h| h.revision),
            Err(status) => {
                let message = format!("put for watch latency: {}", status_message(&status));
                for _ in 0..watchers {
                    recorder.record_error(&message);
                }
                progress.inc(1);
                continue;
            }
        };
        let put_answered = Instant::now();
        let second = spec.sample.then(unix_second);
        seen.iter_mut().for_each(|s| *s = false);
        let mut waiting = closed.iter().filter(|c| c.is_none()).count();
        let deadline = tokio::time::Instant::from(put_answered + EVENT_TIMEOUT);
        while waiting > 0 {
            let arrival = match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some(arrival)) => arrival,
                // Every watcher task has ended, or the deadline passed.
                Ok(None) | Err(_) => break,
            };
            match arrival {
                Arrival::Event {
                    watcher,
                    revision: event_revision,
                    at,
                } => {
                    // Events of earlier puts that timed out are stale; skip them.
                    let current = revision == 0 || event_revision >= revision;
                    if current && watcher < watchers && !seen[watcher] && closed[watcher].is_none()
                    {
                        seen[watcher] = true;
                        waiting -= 1;
                        recorder.record_at(at.saturating_duration_since(put_answered), second);
                    }
                }
                Arrival::Closed { watcher, reason } => {
                    if watcher < watchers && closed[watcher].is_none() {
                        if !seen[watcher] {
                            waiting = waiting.saturating_sub(1);
                        }
                        closed[watcher] = Some(reason);
                    }
                }
            }
        }
        for watcher in 0..watchers {
            if seen[watcher] {
                continue;
            }
            match &closed[watcher] {
                Some(reason) => recorder.record_error(&format!("watch stream closed: {reason}")),
                None => recorder.record_error(&format!(
                    "watch event not received within {}s",
                    EVENT_TIMEOUT.as_secs()
                )),
            }
        }
        progress.inc(1);
    }
    let elapsed = started.elapsed();
    drop(request_senders);
    for task in &tasks {
        task.abort();
    }
    Ok(RunResult {
        recorder,
        writes: Recorder::new()?,
        elapsed,
    })
}

/// Creates one watch per watcher on `key` and spawns the task that forwards its events.
async fn open_watchers(
    conns: &[Conn],
    key: &[u8],
    watchers: usize,
    total: u64,
    arrivals: &mpsc::Sender<Arrival>,
    tasks: &mut Vec<JoinHandle<()>>,
    request_senders: &mut Vec<mpsc::Sender<WatchRequest>>,
) -> Result<(), Error> {
    for watcher in 0..watchers {
        let conn = conn_for_client(conns, watcher)
            .ok_or_else(|| Error::InvalidFlag("no connections".to_string()))?;
        let (requests, requests_rx) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        };
        let setup = |reason: String| Error::Setup {
            what: "create watch",
            reason,
        };
        requests
            .send(create)
            .await
            .map_err(|_| setup("request stream closed".to_string()))?;
        let mut client = WatchClient::new(conn.channel.clone());
        let call = client.watch(conn.request(ReceiverStream::new(requests_rx)));
        let mut stream = tokio::time::timeout(CREATE_TIMEOUT, call)
            .await
            .map_err(|_| setup("timed out".to_string()))?
            .map_err(|status| setup(status_message(&status)))?
            .into_inner();
        // The first answer confirms the watch.
        let first = tokio::time::timeout(CREATE_TIMEOUT, stream.message())
            .await
            .map_err(|_| setup("timed out waiting for created".to_string()))?
            .map_err(|status| setup(status_message(&status)))?;
        match first {
            Some(response) if response.created && !response.canceled => {}
            Some(response) => {
                return Err(setup(format!("not created: {}", response.cancel_reason)))
            }
            None => return Err(setup("stream ended".to_string())),
        }
        request_senders.push(requests);
        let arrivals = arrivals.clone();
        tasks.push(tokio::spawn(async move {
            let mut events = 0u64;
            let reason = loop {
                if events >= total {
                    return;
                }
                match stream.message().await {
                    Ok(Some(response)) => {
                        if response.canceled {
                            break format!("watch canceled: {}", response.cancel_reason);
                        }
                        for event in &response.events {
                            events += 1;
                            let revision = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                            let arrival = Arrival::Event {
                                watcher,
                                revision,
                                at: Instant::now(),
                            };
                            if arrivals.send(arrival).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => break "stream ended".to_string(),
                    Err(status) => break status_message(&status),
                }
            };
            let _ = arrivals.send(Arrival::Closed { watcher, reason }).await;
        }));
    }
    Ok(())
}
