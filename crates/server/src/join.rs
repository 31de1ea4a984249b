//! How a member with an empty data directory joins a running cluster
//! (`--initial-cluster-state existing`), as etcd 3.5's `NewServer` does when it has no
//! WAL and the cluster is not new.
//!
//! The member asks the other members named in `--initial-cluster` for the cluster id and
//! the member list (the peer transport's `Members` call: etcd's `GET /members` on the
//! peer port), checks that `--initial-cluster` names exactly those members by their peer
//! URLs (etcd's `ValidateClusterAndAssignIDs`), and takes its own id from the list:
//! MemberAdd derived it from the peer URLs and the time of the add, so it cannot be
//! derived from the flags, and the cluster id is the original members' and cannot
//! either. Raft then starts with an empty log and no bootstrap entries; the leader sends
//! the log, or a snapshot, once the member's addition is applied.
//!
//! Invariant: every call to a peer is bounded ([`PEER_TIMEOUT`]), and the member starts
//! only with ids the running cluster gave it.

use std::time::Duration;

use crate::config::ServerConfig;
use crate::ids;
use crate::membership::Member;
use crate::storage::{self, StartError};

/// How long one peer may take to answer (etcd: 10 s per URL).
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a joining member learns from the running cluster.
#[derive(Debug, Clone)]
pub struct Existing {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The members, this one included.
    pub members: Vec<Member>,
}

/// Fetches the cluster id and members from the other members' peer URLs and finds this
/// member among them.
pub async fn fetch_existing(cfg: &ServerConfig) -> Result<Existing, StartError> {
    let mut remote_urls: Vec<String> = cfg
        .initial_cluster
        .iter()
        .filter(|(name, _)| **name != cfg.name)
        .flat_map(|(_, urls)| urls.iter().map(ids::url_string))
        .collect();
    remote_urls.sort();
    let mut fetched = None;
    for url in &remote_urls {
        match etcd_transport::fetch_members(url, PEER_TIMEOUT).await {
            Ok(resp) if !resp.members.is_empty() => {
                fetched = Some(resp);
                break;
            }
            Ok(_) => {
                tracing::warn!(address = %url, "the peer knows no members yet");
            }
            Err(err) => {
                tracing::warn!(address = %url, %err, "failed to get cluster response");
            }
        }
    }
    let Some(resp) = fetched else {
        return Err(StartError::Config(
            "cannot fetch cluster info from peer urls: could not retrieve cluster information \
             from the given URLs; check that the other members named in --initial-cluster are \
             running"
                .into(),
        ));
    };
    let members: Vec<Member> = resp
        .members
        .into_iter()
        .map(|m| {
            let mut peer_urls = m.peer_urls;
            peer_urls.sort();
            Member {
                id: m.id,
                name: m.name,
                peer_urls,
                client_urls: m.client_urls,
                is_learner: m.is_learner,
            }
        })
        .collect();
    let member_id = validate(cfg, &members)?;
    tracing::info!(cluster_id = %format!("{:x}", resp.cluster_id), local_member_id = %format!("{member_id:x}"),
        members = members.len(), "joining an existing cluster");
    Ok(Existing {
        cluster_id: resp.cluster_id,
        member_id,
        members,
    })
}

/// etcd's `ValidateClusterAndAssignIDs`: `--initial-cluster` names the same members as the
/// running cluster, matched by peer URLs. Returns this member's id.
fn validate(cfg: &ServerConfig, existing: &[Member]) -> Result<u64, StartError> {
    let local = storage::initial_members(cfg);
    let listed = || {
        existing
            .iter()
            .map(|m| format!("{:x}={}", m.id, m.peer_urls.join(",")))
            .collect::<Vec<_>>()
            .join(",")
    };
    if local.len() != existing.len() {
        return Err(StartError::Config(format!(
            "error validating peerURLs {}: member count is unequal (--initial-cluster names {}, \
             the cluster has {}; add this member with MemberAdd first and list every member)",
            listed(),
            local.len(),
            existing.len()
        )));
    }
    for m in existing {
        if !local.iter().any(|l| same_urls(&l.peer_urls, &m.peer_urls)) {
            return Err(StartError::Config(format!(
                "error validating peerURLs {}: PeerURLs: no match found for existing member ({:x}, {:?})",
                listed(),
                m.id,
                m.peer_urls
            )));
        }
    }
    let own = local
        .iter()
        .find(|l| l.name == cfg.name)
        .map(|l| l.peer_urls.clone())
        .unwrap_or_default();
    existing
        .iter()
        .find(|m| same_urls(&m.peer_urls, &own))
        .map(|m| m.id)
        .ok_or_else(|| {
            StartError::Config(format!(
                "member {:?} with peer URLs {own:?} is not in the cluster; add it with MemberAdd first",
                cfg.name
            ))
        })
}

fn same_urls(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
