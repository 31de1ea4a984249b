//! Behaviour of the raft state machine, including the scenarios of the Raft paper
//! (§5.2 election, §5.3 replication, §5.4 safety) and the thesis' membership and
//! leadership transfer chapters, driven through the simulated cluster harness.

use bytes::Bytes;
use etcd_proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, Message, MessageType,
};

use crate::sim::Cluster;
use crate::{Config, Error, ProgressState, ReadOnlyOption, StateRole};

fn cfg(pre_vote: bool, check_quorum: bool) -> Config {
    Config {
        pre_vote,
        check_quorum,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Config::new(1)
    }
}

fn cluster_with(n: u64, c: Config) -> Cluster {
    let cs = ConfState {
        voters: (1..=n).collect(),
        ..Default::default()
    };
    let mut cl = Cluster::new();
    for id in 1..=n {
        cl.add_node(id, c.clone(), cs.clone());
    }
    cl
}

fn cluster(n: u64) -> Cluster {
    cluster_with(n, cfg(true, true))
}

fn elect(c: &mut Cluster, id: u64) {
    c.raw(id).campaign().unwrap();
    assert!(c.stabilize(100));
    assert_eq!(
        c.raw(id).soft_state().role,
        StateRole::Leader,
        "{id} should lead"
    );
}

fn term(c: &mut Cluster, id: u64) -> u64 {
    c.raw(id).status().hard_state.term
}

fn commit(c: &mut Cluster, id: u64) -> u64 {
    c.raw(id).status().hard_state.commit
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

fn tick_n(c: &mut Cluster, id: u64, n: usize) {
    for _ in 0..n {
        c.raw(id).tick();
    }
}

#[test]
fn candidate_with_majority_of_votes_becomes_leader() {
    let mut c = cluster_with(3, cfg(false, false));
    elect(&mut c, 1);
    assert_eq!(term(&mut c, 1), 2, "the bootstrap snapshot is at term 1");
    for id in [2, 3] {
        assert_eq!(c.raw(id).soft_state().leader_id, 1);
        assert_eq!(
            c.raw(id).status().hard_state.vote,
            1,
            "vote is persisted in the hard state"
        );
    }
}

#[test]
fn follower_campaigns_after_randomized_election_timeout() {
    let mut c = cluster_with(3, cfg(false, false));
    tick_n(&mut c, 1, 9);
    assert_eq!(c.raw(1).soft_state().role, StateRole::Follower);
    tick_n(&mut c, 1, 11);
    assert_eq!(
        c.raw(1).soft_state().role,
        StateRole::Candidate,
        "timeout is within [10, 20)"
    );
}

#[test]
fn pre_candidate_does_not_bump_its_term() {
    let mut c = cluster(3);
    let t0 = term(&mut c, 1);
    c.heal();
    c.partition(&[vec![1], vec![2, 3]]);
    c.raw(1).campaign().unwrap();
    c.stabilize(10);
    assert_eq!(c.raw(1).soft_state().role, StateRole::PreCandidate);
    assert_eq!(term(&mut c, 1), t0, "a pre-vote leaves the term alone");
}

#[test]
fn node_votes_at_most_once_per_term() {
    let mut c = cluster_with(3, cfg(false, false));
    let t = term(&mut c, 3) + 1;
    let mut v = msg(1, 3, MessageType::MsgVote, t);
    v.log_term = 1;
    v.index = 1;
    c.raw(3).step(v).unwrap();
    let mut v2 = msg(2, 3, MessageType::MsgVote, t);
    v2.log_term = 1;
    v2.index = 1;
    c.raw(3).step(v2).unwrap();
    let rd = c.process_ready(3).unwrap();
    let grants: Vec<(u64, bool)> = rd.messages.iter().map(|m| (m.to, m.reject)).collect();
    assert_eq!(grants, vec![(1, false), (2, true)]);
}

#[test]
fn candidate_with_stale_log_is_rejected() {
    // §5.4.1: a voter denies its vote if its own log is more up to date.
    let mut c = cluster_with(3, cfg(false, false));
    elect(&mut c, 1);
    c.raw(1).propose(Bytes::from_static(b"x")).unwrap();
    c.partition(&[vec![1, 2], vec![3]]);
    c.stabilize(50);
    c.heal();
    c.network.clear();
    c.raw(3).campaign().unwrap();
    c.stabilize(50);
    assert_ne!(c.raw(3).soft_state().role, StateRole::Leader);
    assert!(c.raw(1).is_leader() || c.raw(2).is_leader() || !c.raw(3).is_leader());
}

#[test]
fn leader_steps_down_on_message_with_higher_term() {
    let mut c = cluster_with(3, cfg(false, false));
    elect(&mut c, 1);
    let t = term(&mut c, 1);
    let m = msg(2, 1, MessageType::MsgAppResp, t + 1);
    c.raw(1).step(m).unwrap();
    assert_eq!(c.raw(1).soft_state().role, StateRole::Follower);
    assert_eq!(term(&mut c, 1), t + 1);
}

#[test]
fn leader_steps_down_without_quorum() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1], vec![2, 3]]);
    for _ in 0..2 {
        tick_n(&mut c, 1, 10);
        c.stabilize(10);
    }
    assert_eq!(c.raw(1).soft_state().role, StateRole::Follower);
}

#[test]
fn follower_with_live_leader_ignores_vote_requests() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    let t = term(&mut c, 2);
    let mut v = msg(3, 2, MessageType::MsgVote, t + 1);
    v.log_term = t;
    v.index = 100;
    c.raw(2).step(v).unwrap();
    assert_eq!(term(&mut c, 2), t, "in lease: the vote is ignored entirely");
}

#[test]
fn log_replicates_and_commits_on_majority() {
    // §5.3
    let mut c = cluster(5);
    elect(&mut c, 1);
    c.partition(&[vec![1, 2, 3], vec![4, 5]]);
    c.raw(1).propose(Bytes::from_static(b"a")).unwrap();
    c.stabilize(50);
    let ci = commit(&mut c, 1);
    assert_eq!(
        ci,
        c.raw(1).status().last_index,
        "three of five is a majority"
    );
    assert_eq!(
        commit(&mut c, 4),
        2,
        "cut-off followers have only the leader's empty entry... or less"
    );
}

#[test]
fn commit_only_counts_current_term_entries() {
    use crate::raft::Raft;
    use crate::storage::MemStorage;
    let s = MemStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    });
    s.wl()
        .append(&[Entry {
            index: 1,
            term: 1,
            ..Default::default()
        }])
        .unwrap();
    s.wl().set_hard_state(etcd_proto::raftpb::HardState {
        term: 2,
        vote: 0,
        commit: 0,
    });
    let mut r = Raft::new(
        &Config {
            id: 1,
            pre_vote: false,
            check_quorum: false,
            ..Config::new(1)
        },
        s,
    )
    .unwrap();
    r.become_candidate();
    r.become_leader();
    // Follower 2 acknowledges index 1 (term 1): not committable by counting.
    let mut m = msg(2, 1, MessageType::MsgAppResp, r.term);
    m.index = 1;
    r.step(m).unwrap();
    assert_eq!(r.raft_log.committed, 0);
    let mut m = msg(2, 1, MessageType::MsgAppResp, r.term);
    m.index = 2;
    r.step(m).unwrap();
    assert_eq!(
        r.raft_log.committed, 2,
        "committing the current-term entry commits index 1 too"
    );
}

#[test]
fn follower_rejects_mismatched_append_with_conflict_hint() {
    let mut c = cluster_with(3, cfg(false, false));
    let t = term(&mut c, 2) + 5;
    let mut m = msg(1, 2, MessageType::MsgApp, t);
    m.index = 7;
    m.log_term = 3;
    c.raw(2).step(m).unwrap();
    let rd = c.process_ready(2).unwrap();
    let r = &rd.messages[0];
    assert!(r.reject);
    assert_eq!(
        (r.index, r.reject_hint, r.log_term),
        (7, 1, 1),
        "hint: our last index 1 of term 1"
    );
}

#[test]
fn leader_backtracks_fast_over_conflicting_terms() {
    let mut c = cluster_with(3, cfg(false, false));
    elect(&mut c, 1);
    // Node 3 misses many entries.
    c.partition(&[vec![1, 2], vec![3]]);
    for i in 0..20 {
        c.raw(1).propose(Bytes::from(format!("e{i}"))).unwrap();
    }
    c.stabilize(50);
    c.heal();
    let mut sends = 0;
    for _ in 0..20 {
        c.raw(1).tick();
        let tr = c.process_ready(1);
        sends += tr.map_or(0, |t| {
            t.messages
                .iter()
                .filter(|m| m.to == 3 && m.r#type() == MessageType::MsgApp)
                .count()
        });
        c.stabilize(50);
        if commit(&mut c, 3) == commit(&mut c, 1) {
            break;
        }
    }
    assert_eq!(commit(&mut c, 3), commit(&mut c, 1));
    assert!(
        sends <= 3,
        "catching up takes a few probes, not one per entry ({sends})"
    );
}

#[test]
fn heartbeat_commit_is_capped_by_follower_match() {
    let mut c = cluster_with(3, cfg(false, false));
    elect(&mut c, 1);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize(50);
    c.heal();
    c.network.clear();
    tick_n(&mut c, 1, 1);
    let rd = c.process_ready(1).unwrap();
    let hb3 = rd
        .messages
        .iter()
        .find(|m| m.to == 3 && m.r#type() == MessageType::MsgHeartbeat)
        .unwrap();
    let hb2 = rd
        .messages
        .iter()
        .find(|m| m.to == 2 && m.r#type() == MessageType::MsgHeartbeat)
        .unwrap();
    assert!(
        hb3.commit < hb2.commit,
        "3 lags: it must not be told to commit what it lacks"
    );
}

#[test]
fn proposals_are_dropped_without_a_leader() {
    let mut c = cluster(3);
    assert_eq!(
        c.raw(2).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn follower_forwards_proposals_to_the_leader() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.raw(2).propose(Bytes::from_static(b"fwd")).unwrap();
    c.stabilize(50);
    assert!(c.nodes[&1]
        .applied_data
        .iter()
        .any(|(_, d)| d.as_ref() == b"fwd"));
}

#[test]
fn disabled_forwarding_drops_follower_proposals() {
    let mut c = cluster_with(
        3,
        Config {
            disable_proposal_forwarding: true,
            ..cfg(true, true)
        },
    );
    elect(&mut c, 1);
    assert_eq!(
        c.raw(2).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn leader_sends_snapshot_to_follower_behind_first_index() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1, 2], vec![3]]);
    for i in 0..5 {
        c.raw(1).propose(Bytes::from(format!("e{i}"))).unwrap();
    }
    c.stabilize(50);
    c.compact(1).unwrap();
    c.heal();
    for _ in 0..10 {
        c.raw(1).tick();
        c.stabilize(50);
    }
    assert!(
        c.nodes[&3].storage.rl().snapshot_index_term().0 > 1,
        "3 caught up from a snapshot"
    );
    assert_eq!(c.nodes[&3].applied_index, c.nodes[&1].applied_index);
    assert_eq!(c.nodes[&3].applied_hash, c.nodes[&1].applied_hash);
}

#[test]
fn failed_snapshot_report_moves_follower_back_to_probe() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize(50);
    c.compact(1).unwrap();
    c.heal();
    c.raw(1).tick();
    // Deliver heartbeats etc. but intercept the snapshot.
    for _ in 0..5 {
        c.process_ready(1);
        c.process_ready(3);
        let msgs = std::mem::take(&mut c.network);
        for m in msgs {
            if m.r#type() != MessageType::MsgSnap {
                c.deliver(m);
            }
        }
    }
    assert_eq!(
        c.raw(1).status().progress[&3].state,
        ProgressState::Snapshot
    );
    c.raw(1).report_snapshot(3, crate::SnapshotStatus::Failure);
    assert_eq!(c.raw(1).status().progress[&3].state, ProgressState::Probe);
}

#[test]
fn learner_receives_the_log_but_never_campaigns() {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    };
    let mut c = Cluster::new();
    for id in 1..=4 {
        c.add_node(id, cfg(true, true), cs.clone());
    }
    elect(&mut c, 1);
    c.raw(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize(50);
    assert_eq!(commit(&mut c, 4), commit(&mut c, 1));
    for _ in 0..100 {
        c.raw(4).tick();
    }
    c.stabilize(50);
    assert_eq!(c.raw(4).soft_state().role, StateRole::Follower);
    assert!(c.raw(1).is_leader());
}

fn single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
    ConfChangeSingle {
        r#type: t as i32,
        node_id: id,
    }
}

#[test]
fn only_one_conf_change_may_be_pending() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.add_node(4, cfg(true, true), ConfState::default());
    c.add_node(5, cfg(true, true), ConfState::default());
    let cc = |id| ConfChange {
        r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: id,
        ..Default::default()
    };
    c.raw(1).propose_conf_change(&cc(4)).unwrap();
    c.raw(1).propose_conf_change(&cc(5)).unwrap();
    c.stabilize(100);
    let cs = c.raw(1).status().conf_state;
    assert_eq!(
        cs.learners,
        vec![4],
        "the second change was replaced by an empty entry"
    );
}

#[test]
fn joint_consensus_enters_and_leaves_automatically() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.add_node(4, cfg(true, true), ConfState::default());
    let cc = ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        changes: vec![
            single(ConfChangeType::ConfChangeAddNode, 4),
            single(ConfChangeType::ConfChangeRemoveNode, 3),
        ],
        context: Vec::new(),
    };
    c.raw(1).propose_conf_change(&cc).unwrap();
    c.stabilize(100);
    let cs = c.raw(1).status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 4]);
    assert!(
        cs.voters_outgoing.is_empty(),
        "auto-leave completed: {cs:?}"
    );
    assert_eq!(c.nodes[&4].conf_state, cs);
}

#[test]
fn explicit_joint_config_waits_for_an_empty_change() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    let cc = ConfChangeV2 {
        transition: ConfChangeTransition::JointExplicit as i32,
        changes: vec![single(ConfChangeType::ConfChangeAddLearnerNode, 3)],
        context: Vec::new(),
    };
    c.raw(1).propose_conf_change(&cc).unwrap();
    c.stabilize(100);
    let cs = c.raw(1).status().conf_state;
    assert_eq!(cs.voters_outgoing, vec![1, 2, 3]);
    assert_eq!(cs.learners_next, vec![3]);
    c.raw(1)
        .propose_conf_change(&ConfChangeV2::default())
        .unwrap();
    c.stabilize(100);
    let cs = c.raw(1).status().conf_state;
    assert!(cs.voters_outgoing.is_empty());
    assert_eq!(cs.learners, vec![3]);
}

#[test]
fn removed_leader_steps_down() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: 1,
        ..Default::default()
    };
    c.raw(1).propose_conf_change(&cc).unwrap();
    c.stabilize(100);
    assert_eq!(c.raw(1).soft_state().role, StateRole::Follower);
    assert_eq!(
        c.raw(1).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn leadership_transfers_to_an_up_to_date_follower() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.raw(1).transfer_leader(2);
    c.stabilize(100);
    assert!(c.raw(2).is_leader());
    assert_eq!(c.raw(1).soft_state().leader_id, 2);
}

#[test]
fn leadership_transfer_catches_up_a_lagging_target_first() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize(50);
    c.heal();
    c.raw(1).transfer_leader(3);
    assert_eq!(
        c.raw(1).propose(Bytes::from_static(b"y")),
        Err(Error::ProposalDropped),
        "no proposals during transfer"
    );
    c.stabilize(100);
    assert!(c.raw(3).is_leader());
}

#[test]
fn leadership_transfer_aborts_after_an_election_timeout() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1, 2], vec![3]]);
    c.raw(1).transfer_leader(3);
    assert_eq!(c.raw(1).status().lead_transferee, 3);
    for _ in 0..10 {
        c.raw(1).tick();
        c.stabilize(10);
    }
    assert_eq!(c.raw(1).status().lead_transferee, 0);
    assert!(c.raw(1).is_leader());
    c.raw(1).propose(Bytes::from_static(b"ok")).unwrap();
}

#[test]
fn safe_read_index_needs_a_heartbeat_quorum() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.partition(&[vec![1], vec![2, 3]]);
    c.raw(1).read_index(Bytes::from_static(b"r1"));
    c.stabilize(10);
    let tr = c.process_ready(1);
    assert!(tr.is_none_or(|t| t.read_states.is_empty()));
    c.heal();
    c.raw(1).read_index(Bytes::from_static(b"r2"));
    let mut states = Vec::new();
    for _ in 0..10 {
        for id in [1, 2, 3] {
            if let Some(t) = c.process_ready(id) {
                states.extend(t.read_states);
            }
        }
        let msgs = std::mem::take(&mut c.network);
        for m in msgs {
            c.deliver(m);
        }
    }
    let ctxs: Vec<&[u8]> = states.iter().map(|s| s.request_ctx.as_ref()).collect();
    assert!(ctxs.contains(&b"r2".as_ref()), "{ctxs:?}");
    assert_eq!(states[0].index, commit(&mut c, 1));
}

#[test]
fn follower_read_index_is_answered_through_the_leader() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.raw(2).read_index(Bytes::from_static(b"f"));
    let mut states = Vec::new();
    for _ in 0..10 {
        for id in [1, 2, 3] {
            if let Some(t) = c.process_ready(id) {
                states.extend(t.read_states);
            }
        }
        let msgs = std::mem::take(&mut c.network);
        for m in msgs {
            c.deliver(m);
        }
    }
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].request_ctx.as_ref(), b"f");
}

#[test]
fn lease_based_read_is_answered_without_a_round_trip() {
    let mut c = cluster_with(
        3,
        Config {
            read_only_option: ReadOnlyOption::LeaseBased,
            ..cfg(true, true)
        },
    );
    elect(&mut c, 1);
    c.partition(&[vec![1], vec![2, 3]]);
    c.raw(1).read_index(Bytes::from_static(b"l"));
    let tr = c.process_ready(1).unwrap();
    assert_eq!(tr.read_states.len(), 1);
}

#[test]
fn uncommitted_size_limit_drops_proposals() {
    let mut c = cluster_with(
        3,
        Config {
            max_uncommitted_entries_bytes: 10,
            ..cfg(true, true)
        },
    );
    elect(&mut c, 1);
    c.partition(&[vec![1], vec![2, 3]]);
    c.raw(1).propose(Bytes::from_static(b"123456")).unwrap();
    assert_eq!(
        c.raw(1).propose(Bytes::from_static(b"123456")),
        Err(Error::ProposalDropped)
    );
    c.heal();
    c.stabilize(50);
    c.raw(1).tick();
    c.stabilize(50);
    c.raw(1).propose(Bytes::from_static(b"123456")).unwrap();
}

#[test]
fn committed_entries_per_ready_are_bounded() {
    let mut c = cluster_with(
        1,
        Config {
            max_committed_size_per_ready_bytes: 40,
            ..cfg(true, true)
        },
    );
    elect(&mut c, 1);
    c.raw(1)
        .propose_batch((0..10).map(|i| Bytes::from(format!("entry{i}"))))
        .unwrap();
    let tr = c.process_ready(1).unwrap();
    assert_eq!(tr.entries.len(), 10);
    assert!(
        tr.committed.len() < 10 && !tr.committed.is_empty(),
        "{}",
        tr.committed.len()
    );
    let mut total = tr.committed.len();
    while let Some(tr) = c.process_ready(1) {
        total += tr.committed.len();
    }
    assert_eq!(total, 10);
}

#[test]
fn inflight_window_pauses_replication() {
    let mut c = cluster_with(
        3,
        Config {
            max_inflight_msgs: 2,
            ..cfg(true, true)
        },
    );
    elect(&mut c, 1);
    // Responses are withheld: the leader sends at most two appends per follower.
    for i in 0..5 {
        c.raw(1).propose(Bytes::from(format!("p{i}"))).unwrap();
    }
    let tr = c.process_ready(1).unwrap();
    let to2 = tr
        .messages
        .iter()
        .filter(|m| m.to == 2 && m.r#type() == MessageType::MsgApp)
        .count();
    assert_eq!(to2, 2);
    assert_eq!(c.raw(1).status().progress[&2].inflight_msgs, 2);
}

#[test]
fn restart_recovers_persisted_term_vote_and_log() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    c.raw(1).propose(Bytes::from_static(b"durable")).unwrap();
    c.stabilize(50);
    let before = c.raw(2).status();
    c.crash(2);
    c.restart(2);
    let after = c.raw(2).status();
    assert_eq!(before.hard_state, after.hard_state);
    assert_eq!(before.last_index, after.last_index);
    c.stabilize(50);
    assert_eq!(c.nodes[&2].applied_hash, c.nodes[&1].applied_hash);
}

#[test]
fn local_messages_from_the_network_are_refused() {
    let mut c = cluster(3);
    assert_eq!(
        c.raw(1).step(msg(2, 1, MessageType::MsgHup, 0)),
        Err(Error::StepLocalMsg)
    );
    assert_eq!(
        c.raw(1).step(msg(9, 1, MessageType::MsgAppResp, 5)),
        Err(Error::StepPeerNotFound)
    );
}

#[test]
fn stale_term_messages_change_nothing() {
    let mut c = cluster(3);
    elect(&mut c, 1);
    let t = term(&mut c, 2);
    let mut m = msg(3, 2, MessageType::MsgApp, t - 1);
    (m.index, m.log_term) = (98, t - 1);
    m.entries = vec![Entry {
        index: 99,
        term: t - 1,
        ..Default::default()
    }];
    c.raw(2).step(m).unwrap();
    assert_eq!(term(&mut c, 2), t);
    assert_eq!(c.raw(2).soft_state().leader_id, 1);
}

#[test]
fn member_joining_a_log_bootstrapped_cluster_learns_membership_by_replay() {
    let mut c = Cluster::new();
    for id in 1..=3 {
        c.add_node_bootstrapped_by_log(id, cfg(true, true), &[1, 2, 3]);
    }
    c.stabilize(10);
    assert_eq!(
        c.nodes[&1].conf_state.voters,
        vec![1, 2, 3],
        "bootstrap entries applied"
    );
    elect(&mut c, 1);
    c.add_node(4, cfg(true, true), ConfState::default());
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: 4,
        ..Default::default()
    };
    c.raw(1).propose_conf_change(&cc).unwrap();
    c.stabilize(100);
    assert_eq!(c.nodes[&4].conf_state, c.nodes[&1].conf_state);
    assert_eq!(c.nodes[&4].applied_hash, c.nodes[&1].applied_hash);
    use crate::storage::Storage;
    assert_eq!(
        c.nodes[&4].storage.first_index(),
        Ok(1),
        "caught up from the log, not a snapshot"
    );
}

#[test]
fn bootstrap_refuses_a_non_empty_storage() {
    let mut c = cluster(1);
    assert!(c.raw(1).bootstrap(&[1]).is_err());
    assert!(c.raw(1).bootstrap(&[]).is_err());
}
