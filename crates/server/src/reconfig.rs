//! Runtime membership changes through raft, as etcd makes them: MemberAdd (voter or
//! learner), MemberRemove, MemberUpdate (peer URLs) and MemberPromote.
//!
//! A change is proposed as a raft `ConfChange` whose `id` is a fresh request id and whose
//! context is etcd's member JSON ([`ConfChangeContext`]); the proposer waits on that id
//! ([`configure`]). When the entry commits, the node loop decides it with [`ConfView`]:
//! the membership as of the entry before, kept by the node loop itself, so the decision
//! depends only on the log (and the snapshot the member started from), never on how far
//! the applier has got. A valid change is applied to raft and the transport; an invalid
//! one (a peer URL a concurrent add took, a member removed meanwhile) changes nothing, as
//! etcd's `ValidateConfigurationChange`. The applier then makes the decided change
//! ([`ConfOutcome`]) to the members in the backend and answers the waiter with the member
//! list or the error. Snapshots carry the view ([`snapshot_data`]), so a restart or a
//! member that catches up by snapshot decides the entries after it the same way.
//!
//! Before proposing, the API checks what etcd checks with `--strict-reconfig-check`
//! (refuse a change after which the started or connected members would not make a
//! quorum) and answers what the apply-time checks would answer at once.
//!
//! Invariant: the view changes only in raft log order, in the node loop, and every
//! member makes the same decision for the same entry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::{MemberPromoteRequest, MemberPromoteResponse};
use etcd_proto::prost::Message as _;
use etcd_proto::raftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};
use etcd_raft::ConfChangeI;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::apply::ApplyResponse;
use crate::errors::{EtcdError, ServerError};
use crate::ids;
use crate::membership::Member;
use crate::node::NodeInput;
use crate::server::Shared;

/// Learners a cluster may have at once, as etcd 3.5 (`maxLearners`).
pub const MAX_LEARNERS: usize = 1;
/// A learner is in sync once its raft match index is this share of the leader's.
const LEARNER_READY_SHARE: f64 = 0.9;
/// How long a promotion waits for the applier to reach the commit index (etcd's
/// `applyTimeout`).
const APPLY_WAIT: Duration = Duration::from_secs(1);
/// Pause between attempts to reach the leader when forwarding a promotion.
const FORWARD_RETRY: Duration = Duration::from_millis(100);
/// gRPC metadata marking a promotion forwarded by a follower: the receiver does not
/// forward it again.
const FORWARDED_HEADER: &str = "x-etcd-rs-forwarded";

/// The context of a conf change that adds or promotes a member: etcd's
/// `ConfigChangeContext`, a member's JSON with `isPromote`. A member update carries the
/// plain member JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeContext {
    /// The member (only the id for a promotion).
    #[serde(flatten)]
    pub member: Member,
    /// True for a promotion of a learner (which is also a `ConfChangeAddNode`).
    #[serde(rename = "isPromote", default, skip_serializing_if = "is_false")]
    pub is_promote: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a committed conf change does to the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A member joins (a voter, or a learner if `is_learner`).
    Add(Member),
    /// A learner becomes a voter.
    Promote(u64),
    /// A member leaves.
    Remove(u64),
    /// A member's peer URLs change.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
}

/// One committed conf change as the node loop decided it, handed to the applier.
#[derive(Debug, Clone)]
pub struct ConfOutcome {
    /// The entry's index.
    pub index: u64,
    /// The proposal's request id (0 if it has none), whose waiter gets the result.
    pub request_id: u64,
    /// The change to make to the members (`None`: a raft-only change, e.g. leaving a
    /// joint configuration), or the error its proposer gets.
    pub result: Result<Option<MemberChange>, ServerError>,
}

/// A decided conf change: the outcome, and the change to apply to raft if it is valid.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What the applier makes of it.
    pub outcome: ConfOutcome,
    /// What raft applies (`None`: nothing, the change was refused).
    pub raft_change: Option<ConfChangeV2>,
}

/// The membership as raft's log has decided it so far: what validation needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfView {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

/// The membership a snapshot carries in its data.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotMembers {
    members: Vec<Member>,
    #[serde(default)]
    removed: Vec<u64>,
}

/// A raft snapshot's data: the members and the removed ids at its index.
pub fn snapshot_data(members: &[Member], removed: &[u64]) -> Vec<u8> {
    serde_json::to_vec(&SnapshotMembers {
        members: members.to_vec(),
        removed: removed.to_vec(),
    })
    .unwrap_or_default()
}

impl ConfView {
    /// A view of these members and removed ids.
    pub fn new(members: &[Member], removed: &[u64]) -> ConfView {
        ConfView {
            members: members.iter().map(|m| (m.id, m.clone())).collect(),
            removed: removed.iter().copied().collect(),
        }
    }

    /// The view a snapshot's data holds ([`snapshot_data`]; an older snapshot holds only
    /// the member list). `None` if the data is empty or does not decode.
    pub fn from_snapshot_data(data: &[u8]) -> Option<ConfView> {
        if data.is_empty() {
            return None;
        }
        if let Ok(s) = serde_json::from_slice::<SnapshotMembers>(data) {
            return Some(ConfView::new(&s.members, &s.removed));
        }
        match serde_json::from_slice::<Vec<Member>>(data) {
            Ok(members) => Some(ConfView::new(&members, &[])),
            Err(err) => {
                tracing::warn!(%err, "a snapshot's member list does not decode");
                None
            }
        }
    }

    /// The members, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Whether `id` was removed.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Decides a committed entry if it is a conf change (`None` otherwise, or if it does
    /// not decode) and, if the change is valid, applies it to the view. `fallback` names
    /// the members of the bootstrap entries, which carry no context.
    pub fn decide(&mut self, e: &Entry, fallback: &[Member]) -> Option<Decided> {
        let (request_id, cc) = match EntryType::try_from(e.r#type) {
            Ok(EntryType::EntryConfChange) => match ConfChange::decode(e.data.clone()) {
                Ok(cc) => (cc.id, cc.as_v2()),
                Err(err) => {
                    tracing::error!(index = e.index, %err, "a committed conf change does not decode; skipped");
                    return None;
                }
            },
            Ok(EntryType::EntryConfChangeV2) => match ConfChangeV2::decode(e.data.clone()) {
                Ok(cc) => (0, cc),
                Err(err) => {
                    tracing::error!(index = e.index, %err, "a committed conf change does not decode; skipped");
                    return None;
                }
            },
            _ => return None,
        };
        let outcome = |result| ConfOutcome {
            index: e.index,
            request_id,
            result,
        };
        let [single] = cc.changes.as_slice() else {
            // Joint configuration changes are raft's own business; this server makes none.
            return Some(Decided {
                outcome: outcome(Ok(None)),
                raft_change: Some(cc),
            });
        };
        match self.validate(single.node_id, single.r#type, &cc.context, fallback) {
            Ok(change) => {
                self.apply(&change);
                Some(Decided {
                    outcome: outcome(Ok(Some(change))),
                    raft_change: Some(cc),
                })
            }
            Err(err) => {
                tracing::warn!(index = e.index, member = %format!("{:x}", single.node_id), %err,
                    "conf change refused; the configuration is unchanged");
                Some(Decided {
                    outcome: outcome(Err(err)),
                    raft_change: None,
                })
            }
        }
    }

    /// etcd's `ValidateConfigurationChange`, for one change.
    fn validate(
        &self,
        id: u64,
        kind: i32,
        context: &[u8],
        fallback: &[Member],
    ) -> Result<MemberChange, ServerError> {
        if self.removed.contains(&id) {
            return Err(EtcdError::MemberNotFound.into());
        }
        let kind = ConfChangeType::try_from(kind)
            .map_err(|_| ServerError::Internal(format!("unknown conf change type {kind}")))?;
        match kind {
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                let learner = kind == ConfChangeType::ConfChangeAddLearnerNode;
                if context.is_empty() {
                    // A bootstrap entry: the members of the initial cluster.
                    let mut m = self
                        .members
                        .get(&id)
                        .or_else(|| fallback.iter().find(|m| m.id == id))
                        .cloned()
                        .unwrap_or_else(|| Member {
                            id,
                            name: String::new(),
                            peer_urls: Vec::new(),
                            client_urls: Vec::new(),
                            is_learner: false,
                        });
                    m.is_learner = learner;
                    return Ok(MemberChange::Add(m));
                }
                let ctx = decode_context(context, id)?;
                if ctx.is_promote {
                    let m = self.members.get(&id).ok_or(EtcdError::MemberNotFound)?;
                    if !m.is_learner {
                        return Err(EtcdError::MemberNotLearner.into());
                    }
                    return Ok(MemberChange::Promote(id));
                }
                if self.members.contains_key(&id) {
                    return Err(EtcdError::MemberExist.into());
                }
                if self.url_taken(&ctx.member.peer_urls, None) {
                    return Err(EtcdError::PeerUrlExist.into());
                }
                if learner && self.learners() + 1 > MAX_LEARNERS {
                    return Err(EtcdError::TooManyLearners.into());
                }
                let mut m = ctx.member;
                m.is_learner = learner;
                Ok(MemberChange::Add(m))
            }
            ConfChangeType::ConfChangeRemoveNode => {
                if !self.members.contains_key(&id) {
                    return Err(EtcdError::MemberNotFound.into());
                }
                Ok(MemberChange::Remove(id))
            }
            ConfChangeType::ConfChangeUpdateNode => {
                if !self.members.contains_key(&id) {
                    return Err(EtcdError::MemberNotFound.into());
                }
                let ctx = decode_context(context, id)?;
                if self.url_taken(&ctx.member.peer_urls, Some(id)) {
                    return Err(EtcdError::PeerUrlExist.into());
                }
                Ok(MemberChange::Update {
                    id,
                    peer_urls: ctx.member.peer_urls,
                })
            }
        }
    }

    fn apply(&mut self, change: &MemberChange) {
        match change {
            MemberChange::Add(m) => {
                self.members.insert(m.id, m.clone());
            }
            MemberChange::Promote(id) => {
                if let Some(m) = self.members.get_mut(id) {
                    m.is_learner = false;
                }
            }
            MemberChange::Remove(id) => {
                self.members.remove(id);
                self.removed.insert(*id);
            }
            MemberChange::Update { id, peer_urls } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.peer_urls = peer_urls.clone();
                }
            }
        }
    }

    fn url_taken(&self, urls: &[String], except: Option<u64>) -> bool {
        self.members
            .values()
            .filter(|m| Some(m.id) != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
    }

    fn learners(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }
}

fn decode_context(context: &[u8], id: u64) -> Result<ConfChangeContext, ServerError> {
    let ctx: ConfChangeContext = serde_json::from_slice(context)
        .map_err(|e| ServerError::Internal(format!("conf change context does not decode: {e}")))?;
    if ctx.member.id != id {
        return Err(ServerError::Internal(format!(
            "conf change for member {id:x} carries member {:x}",
            ctx.member.id
        )));
    }
    Ok(ctx)
}

/// Parses peer URLs as etcd's `types.NewURLs`: at least one; each `http(s)://host:port`
/// without a path (or `unix(s)://`); returned sorted, as etcd prints them.
pub fn parse_peer_urls(urls: &[String]) -> Result<Vec<String>, ServerError> {
    if urls.is_empty() {
        return Err(EtcdError::MemberBadUrls.into());
    }
    let mut out = Vec::with_capacity(urls.len());
    for raw in urls {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|_| EtcdError::MemberBadUrls)?;
        match url.scheme() {
            "http" | "https" => {
                if !has_port(raw)
                    || url.host_str().is_none_or(str::is_empty)
                    || url.path() != "/"
                    || raw.ends_with('/')
                {
                    return Err(EtcdError::MemberBadUrls.into());
                }
                out.push(raw.to_string());
            }
            "unix" | "unixs" => out.push(raw.to_string()),
            _ => return Err(EtcdError::MemberBadUrls.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the authority of `raw` (`scheme://[user@]host:port/...`) names a port.
fn has_port(raw: &str) -> bool {
    let rest = raw.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once("]:").map(|(_, p)| p)
    } else {
        host_port.rsplit_once(':').map(|(_, p)| p)
    };
    port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Proposes a conf change and waits until the member has applied it: the member list
/// after it, or etcd's error. A change raft refuses is answered at once.
pub async fn configure(shared: &Shared, mut cc: ConfChange) -> Result<Vec<Member>, ServerError> {
    if *shared.stopping().borrow() {
        return Err(EtcdError::Stopped.into());
    }
    cc.id = shared.ids.next();
    let id = cc.id;
    let (kind, node) = (cc.r#type, cc.node_id);
    let rx = shared.wait.register(id);
    if shared
        .node_tx
        .try_send(NodeInput::ProposeConfChange(cc))
        .is_err()
    {
        shared.wait.cancel(id);
        return Err(EtcdError::TooManyRequests.into());
    }
    match tokio::time::timeout(shared.request_timeout(), rx).await {
        Ok(Ok(Ok(ApplyResponse::Members(members)))) => {
            tracing::info!(local_member_id = %format!("{:x}", shared.member_id),
                raft_conf_change = ?ConfChangeType::try_from(kind),
                raft_conf_change_node_id = %format!("{node:x}"),
                "applied a configuration change through raft");
            Ok(members)
        }
        Ok(Ok(Ok(_))) => Err(ServerError::Internal("unexpected apply result".into())),
        Ok(Ok(Err(err))) => Err(err),
        Ok(Err(_)) => Err(EtcdError::Stopped.into()),
        Err(_) => {
            shared.wait.cancel(id);
            if shared.leader() == 0 {
                Err(EtcdError::TimeoutDueToLeaderFail.into())
            } else {
                Err(EtcdError::Timeout.into())
            }
        }
    }
}

/// MemberAdd: a new member with the id etcd gives members added at run time (peer URLs
/// and the current Unix time; no cluster token), as a voter or a learner. Returns the
/// member and the member list after it.
pub async fn add_member(
    shared: &Shared,
    peer_urls: &[String],
    is_learner: bool,
) -> Result<(Member, Vec<Member>), ServerError> {
    let urls = parse_peer_urls(peer_urls)?;
    let parsed: Vec<Url> = urls.iter().filter_map(|u| Url::parse(u).ok()).collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let member = Member {
        id: ids::member_id(&parsed, "", Some(now)),
        name: String::new(),
        peer_urls: urls,
        client_urls: Vec::new(),
        is_learner,
    };
    if shared.cfg.strict_reconfig_check {
        may_add_member(shared, &member)?;
    }
    // What the apply-time check would answer, answered at once.
    let view = ConfView::new(&shared.cluster.members(), &shared.cluster.removed_ids());
    if view.is_removed(member.id) {
        return Err(EtcdError::MemberNotFound.into());
    }
    if view.members.contains_key(&member.id) {
        return Err(EtcdError::MemberExist.into());
    }
    if view.url_taken(&member.peer_urls, None) {
        return Err(EtcdError::PeerUrlExist.into());
    }
    if is_learner && view.learners() + 1 > MAX_LEARNERS {
        return Err(EtcdError::TooManyLearners.into());
    }
    let context = serde_json::to_vec(&member)
        .map_err(|e| ServerError::Internal(format!("cannot encode the member: {e}")))?;
    let kind = if is_learner {
        ConfChangeType::ConfChangeAddLearnerNode
    } else {
        ConfChangeType::ConfChangeAddNode
    };
    let cc = ConfChange {
        r#type: kind as i32,
        node_id: member.id,
        context,
        ..Default::default()
    };
    let members = configure(shared, cc).await?;
    Ok((member, members))
}

/// MemberRemove. Removing this member itself stops it once the change is applied.
pub async fn remove_member(shared: &Shared, id: u64) -> Result<Vec<Member>, ServerError> {
    if shared.cfg.strict_reconfig_check {
        may_remove_member(shared, id)?;
    }
    if shared.cluster.member(id).is_none() {
        return Err(EtcdError::MemberNotFound.into());
    }
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: id,
        ..Default::default()
    };
    configure(shared, cc).await
}

/// MemberUpdate: new peer URLs for a member.
pub async fn update_member(
    shared: &Shared,
    id: u64,
    peer_urls: &[String],
) -> Result<Vec<Member>, ServerError> {
    // etcd takes the URLs as given; refusing malformed ones keeps the member reachable.
    let urls = parse_peer_urls(peer_urls)?;
    let view = ConfView::new(&shared.cluster.members(), &shared.cluster.removed_ids());
    if !view.members.contains_key(&id) {
        return Err(EtcdError::MemberNotFound.into());
    }
    if view.url_taken(&urls, Some(id)) {
        return Err(EtcdError::PeerUrlExist.into());
    }
    let member = Member {
        id,
        name: String::new(),
        peer_urls: urls,
        client_urls: Vec::new(),
        is_learner: false,
    };
    let context = serde_json::to_vec(&member)
        .map_err(|e| ServerError::Internal(format!("cannot encode the member: {e}")))?;
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeUpdateNode as i32,
        node_id: id,
        context,
        ..Default::default()
    };
    configure(shared, cc).await
}

/// MemberPromote. Only the leader knows whether the learner is in sync, so a follower
/// forwards the request to the leader's client URL (etcd forwards it over the peer
/// port), once: a forwarded request that reaches a follower is answered `not leader`
/// and the forwarding member tries the new leader until the request times out.
pub async fn promote_member(
    shared: &Shared,
    id: u64,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Vec<Member>, tonic::Status> {
    let forwarded = metadata.contains_key(FORWARDED_HEADER);
    let deadline = tokio::time::Instant::now() + shared.request_timeout();
    loop {
        if shared.is_leader() {
            match promote_here(shared, id).await {
                Err(ServerError::Etcd(EtcdError::NotLeader)) if !forwarded => {}
                other => return other.map_err(Into::into),
            }
        } else if forwarded {
            return Err(EtcdError::NotLeader.into());
        } else {
            match promote_at_leader(shared, id).await {
                Ok(resp) => return Ok(resp.members.iter().map(member_from_proto).collect()),
                Err(status) if is_final(&status) => return Err(status),
                Err(_) => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(EtcdError::Timeout.into());
        }
        tokio::time::sleep(FORWARD_RETRY).await;
    }
}

/// Errors a forwarded promotion returns at once (etcd stops retrying on these too).
fn is_final(status: &tonic::Status) -> bool {
    [
        EtcdError::LearnerNotReady,
        EtcdError::MemberNotFound,
        EtcdError::MemberNotLearner,
        EtcdError::MemberNotEnoughStarted,
    ]
    .iter()
    .any(|e| e.message() == status.message())
}

fn member_from_proto(m: &etcd_proto::etcdserverpb::Member) -> Member {
    Member {
        id: m.id,
        name: m.name.clone(),
        peer_urls: m.peer_ur_ls.clone(),
        client_urls: m.client_ur_ls.clone(),
        is_learner: m.is_learner,
    }
}

async fn promote_at_leader(
    shared: &Shared,
    id: u64,
) -> Result<MemberPromoteResponse, tonic::Status> {
    let leader = shared.leader();
    let url = shared
        .cluster
        .member(leader)
        .and_then(|m| m.client_urls.first().cloned())
        .ok_or(EtcdError::NoLeader)?;
    let endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| ServerError::Internal(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(shared.request_timeout());
    let channel = endpoint
        .connect()
        .await
        .map_err(|_| ServerError::Etcd(EtcdError::NoLeader))?;
    let mut request = tonic::Request::new(MemberPromoteRequest { id });
    request.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::AsciiMetadataValue::from_static("1"),
    );
    Ok(ClusterClient::new(channel)
        .member_promote(request)
        .await?
        .into_inner())
}

/// The leader's part of a promotion: etcd's `isLearnerReady` and `mayPromoteMember`.
async fn promote_here(shared: &Shared, id: u64) -> Result<Vec<Member>, ServerError> {
    // The progress is compared with what this member has applied.
    let commit = shared.commit_index();
    let mut applied = shared.applied_watch();
    match tokio::time::timeout(APPLY_WAIT, applied.wait_for(|a| *a >= commit)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(EtcdError::Stopped.into()),
        Err(_) => return Err(EtcdError::TimeoutWaitAppliedIndex.into()),
    }
    let status = raft_status(shared).await?;
    if status.progress.is_empty() {
        return Err(EtcdError::NotLeader.into());
    }
    let learner = status.progress.get(&id).ok_or(EtcdError::MemberNotFound)?;
    let leader_match = status.progress.get(&status.id).map_or(0, |p| p.matched);
    if (learner.matched as f64) < (leader_match as f64) * LEARNER_READY_SHARE {
        return Err(EtcdError::LearnerNotReady.into());
    }
    if shared.cfg.strict_reconfig_check && !ready_to_promote(&shared.cluster.members()) {
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), member = %format!("{id:x}"),
            "rejecting member promote request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted.into());
    }
    match shared.cluster.member(id) {
        None => return Err(EtcdError::MemberNotFound.into()),
        Some(m) if !m.is_learner => return Err(EtcdError::MemberNotLearner.into()),
        Some(_) => {}
    }
    let context = ConfChangeContext {
        member: Member {
            id,
            name: String::new(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: false,
        },
        is_promote: true,
    };
    let context = serde_json::to_vec(&context)
        .map_err(|e| ServerError::Internal(format!("cannot encode the member: {e}")))?;
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: id,
        context,
        ..Default::default()
    };
    configure(shared, cc).await
}

/// The raft node's status, from the node loop.
async fn raft_status(shared: &Shared) -> Result<etcd_raft::Status, ServerError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared
        .node_tx
        .try_send(NodeInput::RaftStatus(tx))
        .map_err(|_| EtcdError::TooManyRequests)?;
    match tokio::time::timeout(shared.request_timeout(), rx).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(_)) => Err(EtcdError::Stopped.into()),
        Err(_) => Err(EtcdError::Timeout.into()),
    }
}

/// A majority of `n`.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

fn voters(members: &[Member]) -> impl Iterator<Item = &Member> {
    members.iter().filter(|m| !m.is_learner)
}

/// etcd's `IsReadyToAddVotingMember`: the started voters would still be a quorum with
/// one more (unstarted) voter.
pub fn ready_to_add_voter(members: &[Member]) -> bool {
    let nmembers = 1 + voters(members).count();
    let nstarted = voters(members).filter(|m| m.is_started()).count();
    if nstarted == 1 && nmembers == 2 {
        // Growing a one-member cluster (etcd allows it for restoring a cluster).
        return true;
    }
    nstarted >= quorum(nmembers)
}

/// etcd's `IsReadyToRemoveVotingMember`: the other started voters are a quorum of the
/// other voters.
pub fn ready_to_remove_voter(members: &[Member], id: u64) -> bool {
    let others: Vec<&Member> = voters(members).filter(|m| m.id != id).collect();
    let nstarted = others.iter().filter(|m| m.is_started()).count();
    nstarted >= quorum(others.len())
}

/// etcd's `IsReadyToPromoteMember`: with the learner counted as a started voter, the
/// started voters are a quorum.
pub fn ready_to_promote(members: &[Member]) -> bool {
    let nmembers = 1 + voters(members).count();
    let nstarted = 1 + voters(members).filter(|m| m.is_started()).count();
    nstarted >= quorum(nmembers)
}

/// Voters this member is connected to now, itself included.
fn connected_voters(shared: &Shared, members: &[Member]) -> usize {
    voters(members)
        .filter(|m| m.id == shared.member_id || shared.peer_active(m.id))
        .count()
}

/// etcd's `mayAddMember` (with `--strict-reconfig-check`).
fn may_add_member(shared: &Shared, member: &Member) -> Result<(), ServerError> {
    let members = shared.cluster.members();
    if !member.is_learner && !ready_to_add_voter(&members) {
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), member = %format!("{:x}", member.id),
            "rejecting member add request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted.into());
    }
    // The new member counts as unavailable.
    let nvoters = voters(&members).count();
    if nvoters > 1 && connected_voters(shared, &members) < quorum(nvoters + 1) {
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), member = %format!("{:x}", member.id),
            "rejecting member add request; local member has not been connected to majority peers, reconfigure breaks active quorum");
        return Err(EtcdError::Unhealthy.into());
    }
    Ok(())
}

/// etcd's `mayRemoveMember` (with `--strict-reconfig-check`).
fn may_remove_member(shared: &Shared, id: u64) -> Result<(), ServerError> {
    let members = shared.cluster.members();
    if shared.cluster.is_learner(id) {
        return Ok(());
    }
    if !ready_to_remove_voter(&members, id) {
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), member = %format!("{id:x}"),
            "rejecting member remove request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted.into());
    }
    // A member that is down is not part of the active quorum: safe to remove.
    if id != shared.member_id && !shared.peer_active(id) {
        return Ok(());
    }
    let nvoters = voters(&members).count();
    let active = connected_voters(shared, &members);
    if active.saturating_sub(1) < 1 + nvoters.saturating_sub(1) / 2 {
        tracing::warn!(local_member_id = %format!("{:x}", shared.member_id), member = %format!("{id:x}"), active,
            "rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum");
        return Err(EtcdError::Unhealthy.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str, name: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![url.into()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn entry(index: u64, cc: ConfChange) -> Entry {
        Entry {
            index,
            term: 2,
            ..cc.to_entry()
        }
    }

    fn add(id: u64, request_id: u64, url: &str, learner: bool) -> ConfChange {
        let m = member(id, url, "", learner);
        ConfChange {
            id: request_id,
            r#type: if learner {
                ConfChangeType::ConfChangeAddLearnerNode
            } else {
                ConfChangeType::ConfChangeAddNode
            } as i32,
            node_id: id,
            context: serde_json::to_vec(&m).unwrap(),
        }
    }

    fn three() -> ConfView {
        ConfView::new(
            &[
                member(1, "http://a:1", "a", false),
                member(2, "http://b:1", "b", false),
                member(3, "http://c:1", "c", false),
            ],
            &[],
        )
    }

    fn result(d: Option<Decided>) -> Result<Option<MemberChange>, ServerError> {
        d.unwrap().outcome.result
    }

    #[test]
    fn adds_are_checked_like_etcds_validate_configuration_change() {
        let mut v = three();
        let d = v
            .decide(&entry(10, add(4, 77, "http://d:1", false)), &[])
            .unwrap();
        assert_eq!(d.outcome.request_id, 77);
        assert!(d.raft_change.is_some());
        assert!(matches!(d.outcome.result, Ok(Some(MemberChange::Add(ref m))) if m.id == 4));
        // The same id again, or another id on a taken URL, changes nothing in raft.
        let d = v
            .decide(&entry(11, add(4, 78, "http://e:1", false)), &[])
            .unwrap();
        assert_eq!(d.outcome.result, Err(EtcdError::MemberExist.into()));
        assert!(d.raft_change.is_none());
        let d = v.decide(&entry(12, add(5, 79, "http://d:1", false)), &[]);
        assert_eq!(result(d), Err(EtcdError::PeerUrlExist.into()));
        // One learner at most.
        assert!(result(v.decide(&entry(13, add(6, 0, "http://f:1", true)), &[])).is_ok());
        assert_eq!(
            result(v.decide(&entry(14, add(7, 0, "http://g:1", true)), &[])),
            Err(EtcdError::TooManyLearners.into())
        );
    }

    #[test]
    fn promote_remove_and_update_follow_the_view() {
        let mut v = three();
        v.decide(&entry(10, add(4, 0, "http://d:1", true)), &[]);
        let promote = |id: u64| {
            let ctx = ConfChangeContext {
                member: member(id, "x", "", false),
                is_promote: true,
            };
            let mut ctx = serde_json::to_value(&ctx).unwrap();
            // As Go writes it.
            ctx["peerURLs"] = serde_json::Value::Null;
            ConfChange {
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: id,
                context: serde_json::to_vec(&ctx).unwrap(),
                ..Default::default()
            }
        };
        assert_eq!(
            result(v.decide(&entry(11, promote(1)), &[])),
            Err(EtcdError::MemberNotLearner.into())
        );
        assert_eq!(
            result(v.decide(&entry(12, promote(4)), &[])),
            Ok(Some(MemberChange::Promote(4)))
        );
        assert!(v.members().all(|m| !m.is_learner));
        let remove = |id| ConfChange {
            r#type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: id,
            ..Default::default()
        };
        assert_eq!(
            result(v.decide(&entry(13, remove(2)), &[])),
            Ok(Some(MemberChange::Remove(2)))
        );
        assert_eq!(
            result(v.decide(&entry(14, remove(2)), &[])),
            Err(EtcdError::MemberNotFound.into())
        );
        // A removed id never comes back.
        assert_eq!(
            result(v.decide(&entry(15, add(2, 0, "http://z:1", false)), &[])),
            Err(EtcdError::MemberNotFound.into())
        );
        let update = |id, url: &str| ConfChange {
            r#type: ConfChangeType::ConfChangeUpdateNode as i32,
            node_id: id,
            context: serde_json::to_vec(&member(id, url, "", false)).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            result(v.decide(&entry(16, update(3, "http://a:1")), &[])),
            Err(EtcdError::PeerUrlExist.into())
        );
        assert_eq!(
            result(v.decide(&entry(17, update(3, "http://c:2")), &[])),
            Ok(Some(MemberChange::Update {
                id: 3,
                peer_urls: vec!["http://c:2".into()]
            }))
        );
        // Its own URL is not "taken".
        assert!(result(v.decide(&entry(18, update(3, "http://c:2")), &[])).is_ok());
    }

    #[test]
    fn bootstrap_entries_take_members_from_the_fallback_and_the_view_survives_a_snapshot() {
        let mut v = ConfView::default();
        let fallback = [member(9, "http://i:1", "i", false)];
        let boot = ConfChange {
            r#type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: 9,
            ..Default::default()
        };
        assert_eq!(
            result(v.decide(&entry(1, boot), &fallback)),
            Ok(Some(MemberChange::Add(fallback[0].clone())))
        );
        let remove = ConfChange {
            r#type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: 9,
            ..Default::default()
        };
        v.decide(&entry(2, remove), &[]);
        v.decide(&entry(3, add(4, 0, "http://d:1", true)), &[]);
        let members: Vec<Member> = v.members().cloned().collect();
        let data = snapshot_data(&members, &[9]);
        assert_eq!(ConfView::from_snapshot_data(&data), Some(v.clone()));
        // Snapshots written before the removed ids were kept hold the list only.
        let old = serde_json::to_vec(&members).unwrap();
        let from_old = ConfView::from_snapshot_data(&old).unwrap();
        assert!(!from_old.is_removed(9));
        assert_eq!(ConfView::from_snapshot_data(b""), None);
        assert_eq!(ConfView::from_snapshot_data(b"{nonsense"), None);
    }

    #[test]
    fn normal_entries_and_garbage_are_not_conf_changes() {
        let mut v = three();
        let normal = Entry {
            index: 5,
            data: bytes::Bytes::from_static(b"x"),
            ..Default::default()
        };
        assert!(v.decide(&normal, &[]).is_none());
        let garbage = Entry {
            index: 6,
            r#type: EntryType::EntryConfChange as i32,
            data: bytes::Bytes::from_static(&[0xff, 0xff, 0xff]),
            ..Default::default()
        };
        assert!(v.decide(&garbage, &[]).is_none());
        // A context naming another member is refused, not applied.
        let mut cc = add(4, 0, "http://d:1", false);
        cc.node_id = 5;
        let d = v.decide(&entry(7, cc), &[]).unwrap();
        assert!(d.raft_change.is_none());
        assert!(matches!(d.outcome.result, Err(ServerError::Internal(_))));
        assert_eq!(v, three());
    }

    #[test]
    fn peer_urls_are_checked_like_etcds_new_urls() {
        let ok = |v: &[&str]| parse_peer_urls(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ok(&["http://127.0.0.1:2380", " http://10.0.0.1:2380 "]).unwrap(),
            vec!["http://10.0.0.1:2380", "http://127.0.0.1:2380"]
        );
        assert!(ok(&["https://[::1]:2380"]).is_ok());
        assert!(ok(&["unix://localhost:1"]).is_ok());
        for bad in [
            &[][..],
            &["127.0.0.1:2380"],
            &["http://127.0.0.1"],
            &["http://127.0.0.1:2380/path"],
            &["http://127.0.0.1:2380/"],
            &["ftp://127.0.0.1:2380"],
            &["not a url"],
            &["http://:2380"],
        ] {
            assert_eq!(
                ok(bad),
                Err(EtcdError::MemberBadUrls.into()),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn strict_reconfig_counts_started_voters() {
        let started = |n: usize, unstarted: usize| -> Vec<Member> {
            (0..n)
                .map(|i| member(i as u64 + 1, "u", "m", false))
                .chain((0..unstarted).map(|i| member(100 + i as u64, "u", "", false)))
                .chain([member(999, "u", "", true)])
                .collect()
        };
        assert!(ready_to_add_voter(&started(1, 0)));
        assert!(ready_to_add_voter(&started(3, 0)));
        assert!(ready_to_add_voter(&started(3, 1)));
        assert!(!ready_to_add_voter(&started(3, 2)));
        assert!(ready_to_remove_voter(&started(3, 0), 1));
        assert!(ready_to_remove_voter(&started(3, 1), 1));
        assert!(!ready_to_remove_voter(&started(3, 2), 1));
        assert!(ready_to_promote(&started(3, 3)));
        assert!(!ready_to_promote(&started(3, 5)));
    }
}
