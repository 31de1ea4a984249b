//! Text rendering of raft records for transcripts: short, stable, one line each.

use etcd_proto::raftpb::{ConfState, Entry, EntryType, Message, MessageType};
use etcd_raft::{decode_conf_change, Status};

pub fn ids(v: &[u64]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn conf(cs: &ConfState) -> String {
    let mut s = format!("voters=({})", ids(&cs.voters));
    if !cs.voters_outgoing.is_empty() {
        s += &format!("&&({})", ids(&cs.voters_outgoing));
    }
    if !cs.learners.is_empty() {
        s += &format!(" learners=({})", ids(&cs.learners));
    }
    if !cs.learners_next.is_empty() {
        s += &format!(" learners_next=({})", ids(&cs.learners_next));
    }
    if cs.auto_leave {
        s += " autoleave";
    }
    s
}

fn text(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

pub fn entry(e: &Entry) -> String {
    let mut s = format!("{}/{}", e.index, e.term);
    if e.r#type == EntryType::EntryNormal as i32 {
        if !e.data.is_empty() {
            s += &format!(" {}", text(&e.data));
        }
        return s;
    }
    match decode_conf_change(e) {
        Ok(Some(cc)) => {
            let v = if e.r#type == EntryType::EntryConfChange as i32 {
                "v1"
            } else {
                "v2"
            };
            let changes: Vec<String> = cc
                .changes
                .iter()
                .map(|c| {
                    let k = match c.r#type {
                        0 => "add",
                        1 => "remove",
                        2 => "update",
                        _ => "learner",
                    };
                    format!("{k}:{}", c.node_id)
                })
                .collect();
            let t = match cc.transition {
                1 => " implicit",
                2 => " explicit",
                _ => "",
            };
            if changes.is_empty() {
                s += &format!(" conf-{v}(leave-joint)");
            } else {
                s += &format!(" conf-{v}({}{t})", changes.join(" "));
            }
        }
        _ => s += " conf(undecodable)",
    }
    s
}

pub fn entries(es: &[Entry]) -> String {
    es.iter().map(entry).collect::<Vec<_>>().join(", ")
}

pub fn message(m: &Message) -> String {
    let t = m.r#type();
    let mut s = format!("{}->{} {} term={}", m.from, m.to, t.as_str_name(), m.term);
    match t {
        MessageType::MsgApp => {
            s += &format!(" prev={}/{} commit={}", m.index, m.log_term, m.commit);
            if !m.entries.is_empty() {
                s += &format!(" [{}]", entries(&m.entries));
            }
        }
        MessageType::MsgAppResp => {
            s += &format!(" index={}", m.index);
            if m.reject {
                s += &format!(" reject hint={}/{}", m.reject_hint, m.log_term);
            }
        }
        MessageType::MsgVote | MessageType::MsgPreVote => {
            s += &format!(" last={}/{}", m.index, m.log_term);
            if !m.context.is_empty() {
                s += " transfer";
            }
        }
        MessageType::MsgVoteResp | MessageType::MsgPreVoteResp if m.reject => s += " reject",
        MessageType::MsgHeartbeat => s += &format!(" commit={}", m.commit),
        MessageType::MsgSnap => {
            let md = m
                .snapshot
                .as_ref()
                .and_then(|s| s.metadata.clone())
                .unwrap_or_default();
            s += &format!(
                " snap={}/{} {}",
                md.index,
                md.term,
                conf(&md.conf_state.unwrap_or_default())
            );
        }
        MessageType::MsgProp => s += &format!(" [{}]", entries(&m.entries)),
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp => {
            s += &format!(" index={}", m.index);
            if let Some(e) = m.entries.first() {
                s += &format!(" ctx={}", text(&e.data));
            }
        }
        _ => {}
    }
    if matches!(t, MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResp)
        && !m.context.is_empty()
    {
        s += &format!(" ctx={}", text(&m.context));
    }
    s
}

pub fn role(st: &Status) -> String {
    format!("{:?}", st.soft_state.role)
}

pub fn status(st: &Status) -> Vec<String> {
    let mut out = vec![format!(
        "{}: {} term={} vote={} lead={} commit={} applied={} last={} {}",
        st.id,
        role(st),
        st.hard_state.term,
        st.hard_state.vote,
        st.soft_state.leader_id,
        st.hard_state.commit,
        st.applied,
        st.last_index,
        conf(&st.conf_state)
    )];
    for (id, p) in &st.progress {
        let mut s = format!("  {id}: {:?} match={} next={}", p.state, p.matched, p.next);
        if p.is_learner {
            s += " learner";
        }
        if p.inflight_msgs > 0 {
            s += &format!(" inflight={}", p.inflight_msgs);
        }
        if p.pending_snapshot > 0 {
            s += &format!(" pending_snap={}", p.pending_snapshot);
        }
        out.push(s);
    }
    if st.lead_transferee != 0 {
        out.push(format!("  transferring to {}", st.lead_transferee));
    }
    out
}
