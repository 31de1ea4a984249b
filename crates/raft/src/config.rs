//! [`Config`]: the parameters of one raft node, with etcd's defaults, and their
//! validation. Every limit has a unit in its name; `u64::MAX` means "no limit".

use crate::errors::{Error, Result};
use crate::read_only::ReadOnlyOption;

/// The parameters of a raft node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns (the actual
    /// timeout is randomized in `[election_tick, 2 * election_tick)`).
    pub election_tick: usize,
    /// Ticks between leader heartbeats; must be less than `election_tick`.
    pub heartbeat_tick: usize,
    /// The last applied index at restart (entries up to it are not handed out again).
    pub applied: u64,
    /// Max bytes of entries in one MsgApp.
    pub max_size_per_msg_bytes: u64,
    /// Max bytes of committed entries handed out in one `Ready`.
    pub max_committed_size_per_ready_bytes: u64,
    /// Max bytes of uncommitted payload at the leader; proposals beyond are dropped.
    pub max_uncommitted_entries_bytes: u64,
    /// Max MsgApp in flight per follower in Replicate state.
    pub max_inflight_msgs: usize,
    /// Max payload bytes in flight per follower (0: no byte limit).
    pub max_inflight_bytes: u64,
    /// Leader steps down when it has not heard from a quorum for an election timeout;
    /// followers ignore votes while they have a live leader.
    pub check_quorum: bool,
    /// Run a pre-election that does not bump terms before a real election.
    pub pre_vote: bool,
    /// How read-only requests are served.
    pub read_only_option: ReadOnlyOption,
    /// Followers drop proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Seed of the node's RNG (election jitter); mixed with `id`.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg_bytes: 1024 * 1024,
            max_committed_size_per_ready_bytes: u64::MAX,
            max_uncommitted_entries_bytes: u64::MAX,
            max_inflight_msgs: 256,
            max_inflight_bytes: 0,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            seed: 0,
        }
    }
}

impl Config {
    /// The defaults with the given id.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            ..Default::default()
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::ConfigInvalid(s.to_string()));
        if self.id == 0 {
            return bad("cannot use none as id");
        }
        if self.heartbeat_tick == 0 {
            return bad("heartbeat tick must be greater than 0");
        }
        if self.election_tick <= self.heartbeat_tick {
            return bad("election tick must be greater than heartbeat tick");
        }
        if self.max_inflight_msgs == 0 {
            return bad("max inflight messages must be greater than 0");
        }
        if self.max_inflight_bytes != 0 && self.max_inflight_bytes < self.max_size_per_msg_bytes {
            return bad("max inflight bytes must be >= max message size");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return bad("CheckQuorum must be enabled when ReadOnlyOption is LeaseBased");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_based_reads_require_check_quorum() {
        let mut c = Config::new(1);
        assert!(c.validate().is_ok());
        c.read_only_option = ReadOnlyOption::LeaseBased;
        c.check_quorum = false;
        assert!(c.validate().is_err());
    }

    #[test]
    fn zero_id_and_bad_ticks_are_refused() {
        assert!(Config::default().validate().is_err());
        let c = Config {
            election_tick: 1,
            ..Config::new(1)
        };
        assert!(c.validate().is_err());
    }
}
