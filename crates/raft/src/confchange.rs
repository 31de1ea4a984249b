//! Membership changes: turning a conf change (v1 single change or v2 joint change)
//! into a new tracker configuration, and encoding conf changes into log entries.
//!
//! Invariants checked after every change (violations are errors, the old
//! configuration stays in force): voters and learners are disjoint; every member has
//! a progress; `learners_next` only holds outgoing voters; a simple change alters at
//! most one voter; a configuration always has at least one voter.

use std::collections::BTreeSet;

use bytes::Bytes;
use etcd_proto::prost::Message as _;
use etcd_proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType,
};

use crate::errors::{Error, Result};
use crate::progress::Progress;
use crate::quorum::{JointConfig, MajorityConfig};
use crate::tracker::{ProgressMap, ProgressTracker, TrackerConfig};

/// A conf change of either version, as raft needs it.
pub trait ConfChangeI {
    /// The change as a v2 conf change (a v1 change is a v2 change with one item).
    fn as_v2(&self) -> ConfChangeV2;
    /// The log entry that carries this change (type and encoded data).
    fn to_entry(&self) -> Entry;
}

impl ConfChangeI for ConfChange {
    fn as_v2(&self) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: ConfChangeTransition::Auto as i32,
            changes: vec![ConfChangeSingle {
                r#type: self.r#type,
                node_id: self.node_id,
            }],
            context: self.context.clone(),
        }
    }

    fn to_entry(&self) -> Entry {
        Entry {
            r#type: EntryType::EntryConfChange as i32,
            data: Bytes::from(self.encode_to_vec()),
            ..Default::default()
        }
    }
}

impl ConfChangeI for ConfChangeV2 {
    fn as_v2(&self) -> ConfChangeV2 {
        self.clone()
    }

    fn to_entry(&self) -> Entry {
        Entry {
            r#type: EntryType::EntryConfChangeV2 as i32,
            data: Bytes::from(self.encode_to_vec()),
            ..Default::default()
        }
    }
}

/// Decodes the conf change carried by `e`, if it is a conf change entry.
pub fn decode_conf_change(e: &Entry) -> Result<Option<ConfChangeV2>> {
    match EntryType::try_from(e.r#type) {
        Ok(EntryType::EntryConfChange) => {
            let cc =
                ConfChange::decode(e.data.clone()).map_err(|err| Error::Decode(err.to_string()))?;
            Ok(Some(cc.as_v2()))
        }
        Ok(EntryType::EntryConfChangeV2) => {
            let cc = ConfChangeV2::decode(e.data.clone())
                .map_err(|err| Error::Decode(err.to_string()))?;
            Ok(Some(cc))
        }
        _ => Ok(None),
    }
}

/// Whether `cc` enters a joint configuration, and if so whether it leaves it
/// automatically (`Some(auto_leave)`).
pub fn enters_joint(cc: &ConfChangeV2) -> Option<bool> {
    let t = ConfChangeTransition::try_from(cc.transition).unwrap_or(ConfChangeTransition::Auto);
    if t != ConfChangeTransition::Auto || cc.changes.len() > 1 {
        Some(t != ConfChangeTransition::JointExplicit)
    } else {
        None
    }
}

/// Whether `cc` is the empty change that leaves a joint configuration.
pub fn leaves_joint(cc: &ConfChangeV2) -> bool {
    cc.transition == ConfChangeTransition::Auto as i32 && cc.changes.is_empty()
}

/// Computes new configurations from the current one.
pub(crate) struct Changer<'a> {
    pub(crate) tracker: &'a ProgressTracker,
    pub(crate) last_index: u64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::ConfChangeInvalid(msg.into())
}

impl Changer<'_> {
    fn copy(&self) -> (TrackerConfig, ProgressMap) {
        (self.tracker.config.clone(), self.tracker.progress.clone())
    }

    /// Enters a joint configuration: the current voters become the outgoing half,
    /// `ccs` is applied to the incoming half.
    pub(crate) fn enter_joint(
        &self,
        auto_leave: bool,
        ccs: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.copy();
        if cfg.voters.is_joint() {
            return Err(invalid("config is already joint"));
        }
        if cfg.voters.incoming.is_empty() {
            return Err(invalid("can't make a zero-voter config joint"));
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply(&mut cfg, &mut prs, ccs)?;
        cfg.auto_leave = auto_leave;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Leaves a joint configuration: the incoming half becomes the configuration.
    pub(crate) fn leave_joint(&self) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.copy();
        if !cfg.voters.is_joint() {
            return Err(invalid("can't leave a non-joint config"));
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            if let Some(pr) = prs.get_mut(&id) {
                pr.is_learner = true;
            }
        }
        for id in cfg.voters.outgoing.ids().clone() {
            if !cfg.voters.incoming.contains(id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.voters.outgoing = MajorityConfig::default();
        cfg.auto_leave = false;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Applies changes that alter at most one voter, without a joint state.
    pub(crate) fn simple(&self, ccs: &[ConfChangeSingle]) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.copy();
        if cfg.voters.is_joint() {
            return Err(invalid("can't apply simple config change in joint config"));
        }
        self.apply(&mut cfg, &mut prs, ccs)?;
        let old = self.tracker.config.voters.incoming.ids();
        let new = cfg.voters.incoming.ids();
        if old.symmetric_difference(new).count() > 1 {
            return Err(invalid(
                "more than one voter changed without entering joint config",
            ));
        }
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    fn apply(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        ccs: &[ConfChangeSingle],
    ) -> Result<()> {
        for cc in ccs {
            if cc.node_id == 0 {
                continue;
            }
            match ConfChangeType::try_from(cc.r#type) {
                Ok(ConfChangeType::ConfChangeAddNode) => self.make_voter(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeAddLearnerNode) => {
                    self.make_learner(cfg, prs, cc.node_id)
                }
                Ok(ConfChangeType::ConfChangeRemoveNode) => remove(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeUpdateNode) => {}
                Err(_) => return Err(invalid(format!("unknown conf change type {}", cc.r#type))),
            }
        }
        if cfg.voters.incoming.is_empty() {
            return Err(invalid("removed all voters"));
        }
        Ok(())
    }

    fn init_progress(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        id: u64,
        is_learner: bool,
    ) {
        if is_learner {
            cfg.learners.insert(id);
        } else {
            cfg.voters.incoming.ids_mut().insert(id);
        }
        let mut pr = Progress::new(
            self.last_index.max(1),
            self.tracker.max_inflight,
            self.tracker.max_inflight_bytes,
        );
        pr.is_learner = is_learner;
        // A new member counts as active so that CheckQuorum does not immediately
        // step the leader down.
        pr.recent_active = true;
        prs.insert(id, pr);
    }

    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get_mut(&id) else {
            self.init_progress(cfg, prs, id, false);
            return;
        };
        pr.is_learner = false;
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        cfg.voters.incoming.ids_mut().insert(id);
    }

    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get(&id).cloned() else {
            self.init_progress(cfg, prs, id, true);
            return;
        };
        if pr.is_learner {
            return;
        }
        remove(cfg, prs, id);
        let mut pr = pr;
        if cfg.voters.outgoing.contains(id) {
            // Still votes in the outgoing half: becomes a learner when the joint
            // configuration is left.
            cfg.learners_next.insert(id);
        } else {
            pr.is_learner = true;
            cfg.learners.insert(id);
        }
        prs.insert(id, pr);
    }
}

fn remove(cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
    if !prs.contains_key(&id) {
        return;
    }
    cfg.voters.incoming.ids_mut().remove(&id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(&id);
    }
}

fn check_invariants(cfg: &TrackerConfig, prs: &ProgressMap) -> Result<()> {
    let voters = cfg.voters.ids();
    for id in voters.iter().chain(&cfg.learners).chain(&cfg.learners_next) {
        if !prs.contains_key(id) {
            return Err(invalid(format!("no progress for {id}")));
        }
    }
    for id in &cfg.learners_next {
        if !cfg.voters.outgoing.contains(*id) {
            return Err(invalid(format!(
                "{id} is in learners_next, but not outgoing"
            )));
        }
        if prs.get(id).is_some_and(|p| p.is_learner) {
            return Err(invalid(format!(
                "{id} is in learners_next, but is already marked as learner"
            )));
        }
    }
    for id in &cfg.learners {
        if voters.contains(id) {
            return Err(invalid(format!("{id} is in learners and voters")));
        }
        if !prs.get(id).is_some_and(|p| p.is_learner) {
            return Err(invalid(format!(
                "{id} is in learners, but is not marked as learner"
            )));
        }
    }
    if !cfg.voters.is_joint() {
        if !cfg.learners_next.is_empty() {
            return Err(invalid("learners_next must be empty when not joint"));
        }
        if cfg.auto_leave {
            return Err(invalid("auto_leave must be false when not joint"));
        }
    }
    Ok(())
}

/// `cs` as the tracker reports it: every id list sorted, without duplicates.
pub(crate) fn normalized(cs: &ConfState) -> ConfState {
    let norm = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    ConfState {
        voters: norm(&cs.voters),
        learners: norm(&cs.learners),
        voters_outgoing: norm(&cs.voters_outgoing),
        learners_next: norm(&cs.learners_next),
        auto_leave: cs.auto_leave,
    }
}

/// Builds the configuration described by `cs` (at start-up and on snapshot restore).
pub(crate) fn restore(
    tracker: &ProgressTracker,
    cs: &ConfState,
    last_index: u64,
) -> Result<(TrackerConfig, ProgressMap)> {
    let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
    let cfg = TrackerConfig {
        voters: JointConfig {
            incoming: MajorityConfig::new(set(&cs.voters)),
            outgoing: MajorityConfig::new(set(&cs.voters_outgoing)),
        },
        auto_leave: cs.auto_leave,
        learners: set(&cs.learners),
        learners_next: set(&cs.learners_next),
    };
    let mut prs = ProgressMap::new();
    let ids = cfg
        .voters
        .ids()
        .into_iter()
        .chain(cfg.learners.iter().copied())
        .chain(cfg.learners_next.iter().copied());
    for id in ids {
        let mut pr = Progress::new(
            last_index + 1,
            tracker.max_inflight,
            tracker.max_inflight_bytes,
        );
        pr.is_learner = cfg.learners.contains(&id);
        prs.insert(id, pr);
    }
    check_invariants(&cfg, &prs)?;
    Ok((cfg, prs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
        ConfChangeSingle {
            r#type: t as i32,
            node_id: id,
        }
    }

    fn tracker_of(voters: &[u64]) -> ProgressTracker {
        let t = ProgressTracker::new(10, 0);
        let cs = ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        };
        let (cfg, prs) = restore(&t, &cs, 5).unwrap();
        let mut t = t;
        t.config = cfg;
        t.progress = prs;
        t
    }

    #[test]
    fn simple_change_may_alter_only_one_voter() {
        let t = tracker_of(&[1, 2, 3]);
        let ch = Changer {
            tracker: &t,
            last_index: 5,
        };
        assert!(ch
            .simple(&[single(ConfChangeType::ConfChangeAddNode, 4)])
            .is_ok());
        let err = ch.simple(&[
            single(ConfChangeType::ConfChangeAddNode, 4),
            single(ConfChangeType::ConfChangeRemoveNode, 1),
        ]);
        assert!(err.is_err());
        assert!(ch
            .simple(&[single(ConfChangeType::ConfChangeAddLearnerNode, 7)])
            .is_ok());
    }

    #[test]
    fn removing_the_last_voter_is_refused() {
        let t = tracker_of(&[1]);
        let ch = Changer {
            tracker: &t,
            last_index: 5,
        };
        assert!(ch
            .simple(&[single(ConfChangeType::ConfChangeRemoveNode, 1)])
            .is_err());
    }

    #[test]
    fn joint_change_keeps_outgoing_voters_until_left() {
        let t = tracker_of(&[1, 2, 3]);
        let ch = Changer {
            tracker: &t,
            last_index: 5,
        };
        let (cfg, prs) = ch
            .enter_joint(
                true,
                &[
                    single(ConfChangeType::ConfChangeRemoveNode, 3),
                    single(ConfChangeType::ConfChangeAddNode, 4),
                ],
            )
            .unwrap();
        assert!(cfg.voters.is_joint());
        assert!(prs.contains_key(&3), "outgoing voter keeps its progress");
        let mut t2 = t.clone();
        t2.config = cfg;
        t2.progress = prs;
        let ch2 = Changer {
            tracker: &t2,
            last_index: 6,
        };
        assert!(
            ch2.enter_joint(false, &[]).is_err(),
            "cannot enter joint twice"
        );
        let (cfg, prs) = ch2.leave_joint().unwrap();
        assert!(!cfg.voters.is_joint());
        assert!(!prs.contains_key(&3));
        assert_eq!(
            cfg.voters
                .incoming
                .ids()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
    }

    #[test]
    fn demoted_outgoing_voter_becomes_learner_on_leave() {
        let t = tracker_of(&[1, 2, 3]);
        let ch = Changer {
            tracker: &t,
            last_index: 5,
        };
        let (cfg, prs) = ch
            .enter_joint(
                false,
                &[single(ConfChangeType::ConfChangeAddLearnerNode, 3)],
            )
            .unwrap();
        assert!(cfg.learners_next.contains(&3));
        let mut t2 = t.clone();
        t2.config = cfg;
        t2.progress = prs;
        let (cfg, prs) = Changer {
            tracker: &t2,
            last_index: 5,
        }
        .leave_joint()
        .unwrap();
        assert!(cfg.learners.contains(&3));
        assert!(prs[&3].is_learner);
    }

    #[test]
    fn conf_change_round_trips_through_an_entry() {
        let cc = ConfChange {
            id: 1,
            r#type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: 4,
            context: vec![1],
        };
        let v2 = decode_conf_change(&cc.to_entry()).unwrap().unwrap();
        assert_eq!(
            v2.changes,
            vec![single(ConfChangeType::ConfChangeAddNode, 4)]
        );
        assert_eq!(enters_joint(&v2), None);
        assert!(!leaves_joint(&v2));
        assert!(leaves_joint(&ConfChangeV2::default()));
        let explicit = ConfChangeV2 {
            transition: ConfChangeTransition::JointExplicit as i32,
            ..Default::default()
        };
        assert_eq!(enters_joint(&explicit), Some(false));
    }
}
