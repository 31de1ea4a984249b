//! A peer's message never panics us: each test sends one message that no correct
//! peer sends (or one a role does not expect) and checks that the node refuses or
//! ignores it, keeps its invariants, and that the cluster still commits afterwards.
//! `props` feeds random messages to nodes in every role.

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};

use crate::sim::Cluster;
use crate::{Config, Error, StateRole};

fn cfg() -> Config {
    Config {
        election_tick: 10,
        heartbeat_tick: 1,
        ..Config::new(1)
    }
}

/// Three voters (and a learner 4 with `learner`), node 1 leading.
fn led_cluster(learner: bool) -> Cluster {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        learners: if learner { vec![4] } else { Vec::new() },
        ..Default::default()
    };
    let mut c = Cluster::new();
    for id in cs.voters.iter().chain(&cs.learners) {
        c.add_node(*id, cfg(), cs.clone());
    }
    c.raw(1).campaign().unwrap();
    assert!(c.stabilize(100));
    assert!(c.raw(1).is_leader());
    c.raw(1).propose(Bytes::from_static(b"before")).unwrap();
    assert!(c.stabilize(100));
    c
}

fn term(c: &mut Cluster, id: u64) -> u64 {
    c.raw(id).status().hard_state.term
}

fn msg(from: u64, to: u64, t: MessageType, term: u64) -> Message {
    let mut m = Message {
        from,
        to,
        term,
        ..Default::default()
    };
    m.set_type(t);
    m
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from_static(b"e"),
        ..Default::default()
    }
}

/// The node's own invariants hold, and after healing the cluster commits a new
/// proposal on every member.
fn assert_sane_and_live(c: &mut Cluster) {
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        let st = c.raw(id).status();
        assert!(st.applied <= st.hard_state.commit, "node {id}: {st:?}");
        assert!(st.hard_state.commit <= st.last_index, "node {id}: {st:?}");
    }
    c.heal();
    for _ in 0..40 {
        if c.leader().is_some() {
            break;
        }
        for id in c.nodes.keys().copied().collect::<Vec<_>>() {
            c.raw(id).tick();
        }
        c.stabilize(50);
    }
    let l = c.leader().expect("a leader after healing");
    c.stabilize(50);
    c.raw(l).propose(Bytes::from_static(b"after")).unwrap();
    assert!(c.stabilize(100));
    let target = c.raw(l).status().last_index;
    for (id, n) in &c.nodes {
        assert!(
            n.applied_index >= target,
            "node {id} applied {} < {target}",
            n.applied_index
        );
    }
}

#[test]
fn heartbeat_commit_beyond_our_log_is_ignored() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let before = c.raw(2).status();
    for commit in [before.last_index + 1, before.last_index + 1000, u64::MAX] {
        let mut m = msg(1, 2, MessageType::MsgHeartbeat, t);
        m.commit = commit;
        c.raw(2).step(m).unwrap();
        assert_eq!(
            c.raw(2).status().hard_state.commit,
            before.hard_state.commit
        );
    }
    let rd = c.process_ready(2).unwrap();
    assert!(rd
        .messages
        .iter()
        .all(|m| m.r#type() == MessageType::MsgHeartbeatResp));
    assert_sane_and_live(&mut c);
}

#[test]
fn heartbeat_commit_beyond_our_log_at_a_candidate_is_ignored() {
    let mut c = led_cluster(false);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(3).campaign().unwrap();
    c.network.clear();
    let t = term(&mut c, 3);
    let mut m = msg(1, 3, MessageType::MsgHeartbeat, t);
    m.commit = u64::MAX;
    c.raw(3).step(m).unwrap();
    assert_eq!(c.raw(3).soft_state().role, StateRole::Follower);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_with_entries_not_following_its_index_is_refused() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let last = c.raw(2).status().last_index;
    let mut m = msg(1, 2, MessageType::MsgApp, t);
    (m.index, m.log_term) = (last, t);
    m.entries = vec![entry(last + 5, t), entry(last + 6, t)];
    assert!(matches!(
        c.raw(2).step(m.clone()),
        Err(Error::MalformedMessage(_))
    ));
    m.entries = vec![entry(last + 1, t), entry(last + 1, t)];
    assert!(matches!(c.raw(2).step(m), Err(Error::MalformedMessage(_))));
    assert_eq!(c.raw(2).status().last_index, last);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_with_entry_terms_out_of_order_or_from_the_future_is_refused() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let last = c.raw(2).status().last_index;
    let mut m = msg(1, 2, MessageType::MsgApp, t);
    (m.index, m.log_term) = (last, t);
    m.entries = vec![entry(last + 1, t), entry(last + 2, t - 1)];
    assert!(c.raw(2).step(m.clone()).is_err());
    m.entries = vec![entry(last + 1, t + 1)];
    assert!(c.raw(2).step(m).is_err());
    assert_eq!(c.raw(2).status().last_index, last);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_beyond_our_last_index_is_rejected_with_a_hint_inside_our_log() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let last = c.raw(2).status().last_index;
    for index in [last + 10, u64::MAX - 2] {
        let mut m = msg(1, 2, MessageType::MsgApp, t);
        (m.index, m.log_term, m.commit) = (index, t, index);
        m.entries = vec![entry(index + 1, t)];
        c.raw(2).step(m).unwrap();
        let rd = c.process_ready(2).unwrap();
        let r = &rd.messages[0];
        assert!(r.reject && r.reject_hint <= last, "{r:?}");
    }
    assert_eq!(c.raw(2).status().last_index, last);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_below_our_commit_is_answered_with_our_commit() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let st = c.raw(2).status();
    let mut m = msg(1, 2, MessageType::MsgApp, t);
    (m.index, m.log_term) = (st.hard_state.commit - 1, t);
    m.entries = vec![entry(st.hard_state.commit, t)];
    c.raw(2).step(m).unwrap();
    let rd = c.process_ready(2).unwrap();
    assert_eq!(rd.messages[0].index, st.hard_state.commit);
    assert!(!rd.messages[0].reject);
    assert_eq!(c.raw(2).status().last_index, st.last_index);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_acknowledgement_beyond_the_leaders_log_is_ignored() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 1);
    let before = c.raw(1).status();
    for index in [before.last_index + 1, u64::MAX] {
        let mut m = msg(2, 1, MessageType::MsgAppResp, t);
        m.index = index;
        c.raw(1).step(m).unwrap();
    }
    let after = c.raw(1).status();
    assert_eq!(after.progress[&2], before.progress[&2]);
    assert_eq!(after.hard_state.commit, before.hard_state.commit);
    assert_sane_and_live(&mut c);
}

#[test]
fn append_rejection_with_extreme_hints_does_not_overflow() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 1);
    let last = c.raw(1).status().last_index;
    for (index, hint, log_term) in [
        (last, u64::MAX, 0),
        (last, u64::MAX, u64::MAX),
        (u64::MAX, u64::MAX, 1),
        (0, 0, 0),
    ] {
        let mut m = msg(2, 1, MessageType::MsgAppResp, t);
        (m.index, m.reject, m.reject_hint, m.log_term) = (index, true, hint, log_term);
        c.raw(1).step(m).unwrap();
        c.stabilize(50);
    }
    assert!(c.raw(1).is_leader());
    assert_sane_and_live(&mut c);
}

fn snapshot(index: u64, term: u64, cs: ConfState) -> Snapshot {
    Snapshot {
        data: Bytes::new(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs),
            index,
            term,
        }),
    }
}

fn voters(v: &[u64]) -> ConfState {
    ConfState {
        voters: v.to_vec(),
        ..Default::default()
    }
}

#[test]
fn snapshot_with_a_stale_index_is_answered_with_our_commit() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let st = c.raw(2).status();
    let mut m = msg(1, 2, MessageType::MsgSnap, t);
    m.snapshot = Some(snapshot(1, 1, voters(&[1, 2, 3])));
    c.raw(2).step(m).unwrap();
    let rd = c.process_ready(2).unwrap();
    assert!(rd.snapshot.is_none());
    assert_eq!(rd.messages[0].index, st.hard_state.commit);
    assert_sane_and_live(&mut c);
}

#[test]
fn snapshot_with_an_impossible_configuration_is_refused_whole() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let last = c.raw(2).status().last_index;
    let bad = [
        ConfState {
            voters: vec![1, 2],
            learners: vec![2],
            ..Default::default()
        },
        ConfState {
            learners: vec![1, 2, 3],
            ..Default::default()
        },
        ConfState {
            voters: vec![1, 2, 3],
            auto_leave: true,
            ..Default::default()
        },
        ConfState {
            voters: vec![2, 3],
            learners_next: vec![2],
            ..Default::default()
        },
        voters(&[1, 3]),
    ];
    for cs in bad {
        let mut m = msg(1, 2, MessageType::MsgSnap, t);
        m.snapshot = Some(snapshot(last + 50, t, cs.clone()));
        c.raw(2).step(m).unwrap();
        let st = c.raw(2).status();
        assert_eq!(st.last_index, last, "{cs:?}");
        assert_eq!(st.conf_state, voters(&[1, 2, 3]), "{cs:?}");
    }
    assert_sane_and_live(&mut c);
}

#[test]
fn snapshot_listing_voters_unsorted_or_twice_is_restored_normalized() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let last = c.raw(2).status().last_index;
    let mut m = msg(1, 2, MessageType::MsgSnap, t);
    m.snapshot = Some(snapshot(last + 1, t, voters(&[3, 2, 1, 2])));
    c.raw(2).step(m).unwrap();
    let st = c.raw(2).status();
    assert_eq!(st.last_index, last + 1);
    assert_eq!(st.conf_state, voters(&[1, 2, 3]));
    c.process_ready(2).unwrap();
}

#[test]
fn snapshot_messages_without_a_real_snapshot_are_refused() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let mut m = msg(1, 2, MessageType::MsgSnap, t);
    assert!(c.raw(2).step(m.clone()).is_err(), "no snapshot");
    m.snapshot = Some(snapshot(0, 0, voters(&[1, 2, 3])));
    assert!(c.raw(2).step(m.clone()).is_err(), "index 0");
    m.snapshot = Some(snapshot(100, t + 1, voters(&[1, 2, 3])));
    assert!(c.raw(2).step(m).is_err(), "a term beyond the sender's");
    assert_sane_and_live(&mut c);
}

#[test]
fn messages_without_a_proper_sender_or_recipient_are_refused() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    for (from, to) in [(0, 2), (2, 2), (1, 3), (1, 0)] {
        let m = msg(from, to, MessageType::MsgHeartbeat, t);
        assert!(
            matches!(c.raw(2).step(m), Err(Error::MalformedMessage(_))),
            "from {from} to {to}"
        );
    }
    let mut unknown_type = msg(1, 2, MessageType::MsgHeartbeat, t);
    unknown_type.r#type = 1000;
    assert!(c.raw(2).step(unknown_type).is_err());
    assert_sane_and_live(&mut c);
}

#[test]
fn responses_from_unknown_peers_are_refused_in_every_role() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 1);
    for to in [1, 2] {
        for ty in [
            MessageType::MsgAppResp,
            MessageType::MsgHeartbeatResp,
            MessageType::MsgVoteResp,
            MessageType::MsgPreVoteResp,
        ] {
            let m = msg(77, to, ty, t);
            assert_eq!(c.raw(to).step(m), Err(Error::StepPeerNotFound));
        }
    }
    assert_sane_and_live(&mut c);
}

#[test]
fn term_zero_append_cannot_make_a_candidate_step_back_in_term() {
    let mut c = led_cluster(false);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(3).campaign().unwrap();
    let m = msg(1, 3, MessageType::MsgApp, 0);
    assert!(matches!(c.raw(3).step(m), Err(Error::MalformedMessage(_))));
    assert_sane_and_live(&mut c);
}

#[test]
fn learner_with_a_newer_term_answers_a_stale_leader_without_pre_vote() {
    // Without PreVote and CheckQuorum a node ahead in term makes the leader catch up
    // by campaigning; a learner cannot, so it must answer the stale appends instead.
    let cs = ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    };
    let unguarded = Config {
        pre_vote: false,
        check_quorum: false,
        ..cfg()
    };
    let mut c = Cluster::new();
    for id in 1..=4 {
        c.add_node(id, unguarded.clone(), cs.clone());
    }
    c.raw(1).campaign().unwrap();
    assert!(c.stabilize(100));
    let t = term(&mut c, 1);
    let mut v = msg(2, 4, MessageType::MsgVote, t + 1);
    (v.index, v.log_term) = (0, 0);
    c.raw(4).step(v).unwrap();
    assert_eq!(term(&mut c, 4), t + 1);
    c.network.clear();
    c.raw(1).tick();
    c.stabilize(100);
    assert!(term(&mut c, 1) > t, "the leader learned the newer term");
    assert_sane_and_live(&mut c);
}

#[test]
fn vote_requests_without_a_term_are_refused() {
    // Answering one would build a vote response of term 0 (an assertion).
    let mut c = led_cluster(false);
    for ty in [MessageType::MsgVote, MessageType::MsgPreVote] {
        let mut v = msg(3, 2, ty, 0);
        (v.index, v.log_term) = (u64::MAX, u64::MAX);
        assert!(matches!(c.raw(2).step(v), Err(Error::MalformedMessage(_))));
    }
    assert_sane_and_live(&mut c);
}

#[test]
fn forwarded_requests_with_a_term_are_refused_and_transfers_are_re_forwarded() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 2);
    let mut p = msg(3, 2, MessageType::MsgProp, t);
    p.entries = vec![entry(0, 0)];
    assert!(c.raw(2).step(p).is_err(), "proposals travel without a term");
    // A transfer request (which carries the sender's term) reaching a follower is
    // sent on to the leader rather than tripping over its term.
    let tr = msg(3, 2, MessageType::MsgTransferLeader, t);
    c.raw(2).step(tr).unwrap();
    let rd = c.process_ready(2).unwrap();
    assert_eq!(rd.messages.len(), 1);
    assert_eq!(
        (rd.messages[0].to, rd.messages[0].term),
        (1, t),
        "forwarded in our term"
    );
    assert_sane_and_live(&mut c);
}

#[test]
fn read_index_messages_need_exactly_one_context_entry() {
    let mut c = led_cluster(false);
    let t = term(&mut c, 1);
    let empty = msg(2, 1, MessageType::MsgReadIndex, 0);
    assert!(c.raw(1).step(empty).is_err());
    let mut two = msg(2, 1, MessageType::MsgReadIndex, 0);
    two.entries = vec![entry(0, 0), entry(0, 0)];
    assert!(c.raw(1).step(two).is_err());
    let resp = msg(1, 2, MessageType::MsgReadIndexResp, t);
    assert!(c.raw(2).step(resp).is_err());
    let empty_prop = msg(2, 1, MessageType::MsgProp, 0);
    assert!(c.raw(1).step(empty_prop).is_err());
    assert_sane_and_live(&mut c);
}

#[test]
fn undecodable_conf_change_proposal_commits_as_an_empty_entry() {
    let mut c = led_cluster(false);
    let mut p = msg(2, 1, MessageType::MsgProp, 0);
    p.entries = vec![Entry {
        r#type: EntryType::EntryConfChangeV2 as i32,
        data: Bytes::from_static(&[0xff, 0xff, 0xff]),
        ..Default::default()
    }];
    c.raw(1).step(p).unwrap();
    assert!(c.stabilize(100));
    let last = c.raw(1).log_entries().last().cloned().unwrap();
    assert_eq!(last.r#type, EntryType::EntryNormal as i32);
    assert!(last.data.is_empty());
    assert_eq!(c.raw(1).status().conf_state, voters(&[1, 2, 3]));
    assert_sane_and_live(&mut c);
}

#[test]
fn maximal_term_never_overflows_an_election() {
    let mut c = led_cluster(false);
    let mut hb = msg(1, 2, MessageType::MsgHeartbeat, u64::MAX);
    hb.commit = 0;
    c.raw(2).step(hb).unwrap();
    assert_eq!(term(&mut c, 2), u64::MAX);
    c.network.clear();
    for _ in 0..50 {
        c.raw(2).tick();
    }
    c.raw(2).campaign().unwrap();
    assert_eq!(term(&mut c, 2), u64::MAX);
    assert_ne!(c.raw(2).soft_state().role, StateRole::Leader);
    c.process_ready(2);
}

#[test]
fn every_message_type_is_survived_in_every_role() {
    // Plausible fields, every type, sent to a leader, a follower, a learner, a
    // candidate and a pre-candidate, from a member and from a stranger.
    for role in 0..5 {
        let mut c = led_cluster(true);
        let target = match role {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => 3,
        };
        if role >= 3 {
            c.partition(&[vec![1, 2, 4], vec![3]]);
            if role == 3 {
                let node = c.nodes.get_mut(&3).unwrap();
                node.config.pre_vote = false;
                c.crash(3);
                c.restart(3);
            }
            c.raw(3).campaign().unwrap();
        }
        for ty in 0..20 {
            for from in [1, 2, 3, 4, 9] {
                if from == target {
                    continue;
                }
                let st = c.raw(target).status();
                let t = st.hard_state.term;
                let mut m = msg(from, target, MessageType::MsgHup, t);
                m.r#type = ty;
                if matches!(ty, 2 | 15) {
                    m.term = 0;
                }
                m.index = st.last_index;
                m.log_term = t;
                m.commit = st.hard_state.commit;
                m.entries = vec![entry(st.last_index + 1, t)];
                m.context = Bytes::from_static(b"ctx");
                let cs = ConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![4],
                    ..Default::default()
                };
                m.snapshot = Some(snapshot(st.last_index + 1, t, cs));
                let _ = c.raw(target).step(m);
                c.stabilize(20);
            }
        }
        assert_sane_and_live(&mut c);
    }
}

mod props {
    //! Random messages, built around the receiving node's current state so that
    //! many get past the shape checks, fed to nodes in every role.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Fuzz {
        ty: i32,
        from: u8,
        to_self: bool,
        term: u8,
        index: u8,
        log_term: u8,
        commit: u8,
        reject: bool,
        hint: u8,
        entries: u8,
        shape: u8,
        snap: Option<(u8, u8, u8)>,
        ctx: bool,
    }

    fn fuzz() -> impl Strategy<Value = Fuzz> {
        (
            (0..21i32, 0..6u8, prop::bool::weighted(0.95), 0..7u8),
            (0..8u8, 0..7u8, 0..8u8, any::<bool>(), 0..8u8),
            (
                0..4u8,
                0..5u8,
                prop::option::of((0..8u8, 0..7u8, 0..5u8)),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (ty, from, to_self, term),
                    (index, log_term, commit, reject, hint),
                    (entries, shape, snap, ctx),
                )| Fuzz {
                    ty,
                    from,
                    to_self,
                    term,
                    index,
                    log_term,
                    commit,
                    reject,
                    hint,
                    entries,
                    shape,
                    snap,
                    ctx,
                },
            )
    }

    /// An index near something interesting in the node's log.
    fn pick_index(sel: u8, last: u64, commit: u64) -> u64 {
        match sel {
            0 => 0,
            1 => last.saturating_sub(1),
            2 => last,
            3 => last.saturating_add(1),
            4 => last.saturating_add(100),
            5 => commit,
            6 => commit.saturating_sub(1),
            _ => u64::MAX,
        }
    }

    fn pick_term(sel: u8, t: u64) -> u64 {
        match sel {
            0 => 0,
            1 => t.saturating_sub(1),
            2 | 3 => t,
            4 => t.saturating_add(1),
            5 => t.saturating_add(100),
            _ => u64::MAX,
        }
    }

    fn conf(sel: u8) -> ConfState {
        match sel {
            0 => voters(&[1, 2, 3]),
            1 => ConfState {
                voters: vec![1, 2, 3],
                learners: vec![4],
                ..Default::default()
            },
            2 => voters(&[3, 1, 1, 2]),
            3 => ConfState {
                voters: vec![1, 2],
                learners: vec![2, 3, 4],
                ..Default::default()
            },
            _ => ConfState::default(),
        }
    }

    fn build(f: &Fuzz, target: u64, c: &mut Cluster) -> Message {
        let st = c.raw(target).status();
        let (last, commit, t) = (st.last_index, st.hard_state.commit, st.hard_state.term);
        let from = match f.from {
            0 => 0,
            1 => target,
            2 => 9,
            n => (u64::from(n) + target) % 4 + 1,
        };
        let mut m = msg(
            from,
            if f.to_self { target } else { 7 },
            MessageType::MsgHup,
            0,
        );
        m.r#type = f.ty;
        m.term = pick_term(f.term, t);
        m.index = pick_index(f.index, last, commit);
        m.log_term = pick_term(f.log_term, t).min(m.term);
        m.commit = pick_index(f.commit, last, commit);
        m.reject = f.reject;
        m.reject_hint = pick_index(f.hint, last, commit);
        let mut prev = (m.index, m.log_term);
        for i in 0..f.entries {
            let (index, term) = match f.shape {
                0 | 1 => (prev.0.wrapping_add(1), prev.1.max(m.term)),
                2 => (prev.0.wrapping_add(2), prev.1),
                3 => (prev.0.wrapping_add(1), prev.1.saturating_sub(1)),
                _ => (u64::from(i) * 7, u64::from(i)),
            };
            let mut e = entry(index, term);
            if f.shape == 1 && i == 0 {
                e.r#type = EntryType::EntryConfChange as i32;
                e.data = Bytes::from_static(&[8, 1, 16, 5]);
            }
            m.entries.push(e);
            prev = (index, term);
        }
        if let Some((index, term, cs)) = f.snap {
            m.snapshot = Some(snapshot(
                pick_index(index, last, commit),
                pick_term(term, t).min(m.term),
                conf(cs),
            ));
        }
        if f.ctx {
            m.context = Bytes::from_static(b"ctx");
        }
        m
    }

    /// Handles one Ready of `id` like an application that refuses conf changes it
    /// cannot apply (instead of the simulation, which treats that as a bug).
    fn handle_ready(c: &mut Cluster, id: u64) {
        let n = c.nodes.get_mut(&id).unwrap();
        let Some(raw) = n.node.as_mut() else { return };
        if !raw.has_ready() {
            return;
        }
        let mut rd = raw.ready();
        if let Some(s) = rd.take_snapshot() {
            n.storage.wl().apply_snapshot(s).unwrap();
        }
        n.storage.wl().append(rd.entries()).unwrap();
        if let Some(hs) = rd.take_hard_state() {
            n.storage.wl().set_hard_state(hs);
        }
        c.network.extend(rd.take_messages());
        for e in rd.take_committed_entries() {
            if let Ok(Some(cc)) = crate::decode_conf_change(&e) {
                let _ = raw.apply_conf_change(&cc);
            }
        }
        raw.advance();
    }

    fn check(c: &mut Cluster, id: u64, min_term: u64) -> u64 {
        let st = c.raw(id).status();
        assert!(st.applied <= st.hard_state.commit, "{st:?}");
        assert!(st.hard_state.commit <= st.last_index, "{st:?}");
        assert!(st.hard_state.term >= min_term, "{st:?}");
        st.hard_state.term
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever arrives, in whichever role, no node panics and every node keeps
        /// `applied <= commit <= last index` and a term that never decreases.
        #[test]
        fn random_peer_messages_never_panic_any_role(role in 0..5u8, msgs in prop::collection::vec(fuzz(), 1..24)) {
            let mut c = led_cluster(true);
            let target = match role { 0 => 1, 1 => 2, 2 => 4, _ => 3 };
            if role >= 3 {
                c.partition(&[vec![1, 2, 4], vec![3]]);
                if role == 3 {
                    c.nodes.get_mut(&3).unwrap().config.pre_vote = false;
                    c.crash(3);
                    c.restart(3);
                }
                c.raw(3).campaign().unwrap();
            }
            let mut t = check(&mut c, target, 0);
            for f in &msgs {
                let m = build(f, target, &mut c);
                let _ = c.raw(target).step(m);
                t = check(&mut c, target, t);
                handle_ready(&mut c, target);
                t = check(&mut c, target, t);
            }
            // Let the rest of the cluster react to whatever the target said.
            c.heal();
            for _ in 0..20 {
                for id in 1..=4 {
                    handle_ready(&mut c, id);
                }
                for m in std::mem::take(&mut c.network) {
                    if c.is_up(m.to) {
                        let _ = c.raw(m.to).step(m);
                    }
                }
                for id in 1..=4 {
                    c.raw(id).tick();
                    check(&mut c, id, 0);
                }
            }
        }
    }
}
