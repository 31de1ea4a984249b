//! The one error type of the tool: everything that stops a run before or instead of a
//! report. Failed requests during a run are not errors here: they are counted in the
//! report (see [`crate::report::Recorder::record_error`]).

use std::time::Duration;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value is out of range or inconsistent with another flag.
    #[error("{0}")]
    InvalidFlag(String),
    /// An endpoint is not a usable `host:port` or `http://host:port`.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting to an endpoint failed or timed out.
    #[error("dial error: {endpoint}: {reason}")]
    Dial {
        /// The endpoint dialled.
        endpoint: String,
        /// The transport's message.
        reason: String,
    },
    /// Connecting took longer than `--dial-timeout`.
    #[error("dial error: {endpoint}: timed out after {timeout:?}")]
    DialTimeout {
        /// The endpoint dialled.
        endpoint: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A request made while setting up the run (authenticate, find the leader, create a
    /// watch) failed.
    #[error("{what}: {reason}")]
    Setup {
        /// Which step failed.
        what: &'static str,
        /// The server's or transport's message.
        reason: String,
    },
    /// The latency histogram refused its bounds or a merge (an internal bug).
    #[error("histogram: {0}")]
    Histogram(String),
    /// A client task died (an internal bug).
    #[error("client task failed: {0}")]
    Task(String),
}
