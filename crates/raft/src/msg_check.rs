//! What a message from a peer must look like before the state machine sees it.
//!
//! [`RawNode::step`](crate::RawNode::step) is the only door for peer messages; it runs
//! [`check_peer_message`] first, so the handlers behind it may rely on these shapes
//! (the checks that depend on the node's state, such as a heartbeat's commit index
//! against our log, live in the handlers). Everything here holds for every message a
//! correct peer sends; anything else is refused with [`Error::MalformedMessage`]
//! instead of reaching an assertion.
//!
//! Invariant: a message that passes has a known type, a sender that is neither
//! nobody nor us, us as its recipient, a term that is 0 exactly for forwarded
//! proposals and reads, and (for appends and snapshots) entries and metadata that are
//! consistent with the message's own index and term.

use etcd_proto::raftpb::{Message, MessageType};

use crate::errors::{Error, Result};
use crate::raft::INVALID_ID;

fn malformed(what: &'static str) -> Result<()> {
    Err(Error::MalformedMessage(what))
}

/// Checks the shape of a message received from a peer (see the module docs).
pub(crate) fn check_peer_message(m: &Message, self_id: u64) -> Result<()> {
    let Ok(t) = MessageType::try_from(m.r#type) else {
        return malformed("unknown message type");
    };
    if matches!(
        t,
        MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
    ) {
        return Err(Error::StepLocalMsg);
    }
    if m.from == INVALID_ID {
        return malformed("message without a sender");
    }
    if m.from == self_id {
        return malformed("message from our own id");
    }
    if m.to != self_id {
        return malformed("message addressed to another member");
    }
    let forwarded = matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex);
    if forwarded && m.term != 0 {
        return malformed("forwarded proposal or read with a term");
    }
    if !forwarded && m.term == 0 {
        return malformed("message without a term");
    }
    match t {
        MessageType::MsgProp if m.entries.is_empty() => malformed("proposal without entries"),
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp if m.entries.len() != 1 => {
            malformed("read index message without exactly one context entry")
        }
        MessageType::MsgApp => check_append(m),
        MessageType::MsgSnap => check_snapshot(m),
        _ => Ok(()),
    }
}

/// The entries of an append follow `(index, log_term)` without gaps, with terms (at
/// least 1: only the dummy entry at index 0 has term 0) that never decrease and never
/// exceed the sender's term.
fn check_append(m: &Message) -> Result<()> {
    if m.log_term > m.term {
        return malformed("append whose previous entry is of a later term than the sender's");
    }
    let (mut prev_index, mut prev_term) = (m.index, m.log_term);
    for e in &m.entries {
        if prev_index.checked_add(1) != Some(e.index) {
            return malformed("append with entries that do not follow its index");
        }
        if e.index == u64::MAX {
            // The log needs room for a next index.
            return malformed("append of an entry at the largest index");
        }
        if e.term == 0 || e.term < prev_term || e.term > m.term {
            return malformed("append with entry terms out of order");
        }
        (prev_index, prev_term) = (e.index, e.term);
    }
    Ok(())
}

/// A snapshot message carries a snapshot with metadata of a real entry (index and
/// term at least 1, term at most the sender's) and a configuration.
fn check_snapshot(m: &Message) -> Result<()> {
    let Some(meta) = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()) else {
        return malformed("snapshot message without snapshot metadata");
    };
    if meta.index == 0 || meta.term == 0 {
        return malformed("snapshot of index or term 0");
    }
    if meta.index == u64::MAX {
        return malformed("snapshot at the largest index");
    }
    if meta.term > m.term {
        return malformed("snapshot of a later term than the sender's");
    }
    if meta.conf_state.is_none() {
        return malformed("snapshot without a configuration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::ent;
    use etcd_proto::raftpb::{ConfState, Snapshot, SnapshotMetadata};

    fn app(index: u64, log_term: u64, term: u64, ents: &[(u64, u64)]) -> Message {
        let mut m = Message {
            from: 2,
            to: 1,
            term,
            index,
            log_term,
            entries: ents.iter().map(|&(i, t)| ent(i, t)).collect(),
            ..Default::default()
        };
        m.set_type(MessageType::MsgApp);
        m
    }

    #[test]
    fn append_entries_must_follow_the_previous_index_without_gaps() {
        assert!(check_peer_message(&app(5, 2, 3, &[(6, 2), (7, 3)]), 1).is_ok());
        assert!(check_peer_message(&app(5, 2, 3, &[(7, 2)]), 1).is_err());
        assert!(check_peer_message(&app(5, 2, 3, &[(6, 2), (6, 3)]), 1).is_err());
        assert!(check_peer_message(&app(u64::MAX, 2, 3, &[(0, 3)]), 1).is_err());
        assert!(check_peer_message(&app(u64::MAX - 1, 2, 3, &[(u64::MAX, 3)]), 1).is_err());
    }

    #[test]
    fn append_entry_terms_never_decrease_nor_pass_the_senders_term() {
        assert!(check_peer_message(&app(5, 2, 3, &[(6, 1)]), 1).is_err());
        assert!(check_peer_message(&app(5, 2, 3, &[(6, 4)]), 1).is_err());
        assert!(check_peer_message(&app(0, 0, 3, &[(1, 0)]), 1).is_err());
        assert!(check_peer_message(&app(5, 4, 3, &[]), 1).is_err());
    }

    #[test]
    fn sender_recipient_and_term_are_checked_for_every_type() {
        let mut m = app(5, 2, 3, &[]);
        m.from = 0;
        assert!(check_peer_message(&m, 1).is_err());
        m.from = 1;
        assert!(check_peer_message(&m, 1).is_err(), "from ourselves");
        m.from = 2;
        m.to = 3;
        assert!(check_peer_message(&m, 1).is_err(), "for someone else");
        m.to = 1;
        m.term = 0;
        assert!(check_peer_message(&m, 1).is_err(), "an append needs a term");
        let mut p = Message {
            from: 2,
            to: 1,
            term: 3,
            entries: vec![ent(0, 0)],
            ..Default::default()
        };
        p.set_type(MessageType::MsgProp);
        assert!(
            check_peer_message(&p, 1).is_err(),
            "proposals carry no term"
        );
        p.term = 0;
        assert!(check_peer_message(&p, 1).is_ok());
        p.r#type = 99;
        assert!(check_peer_message(&p, 1).is_err(), "unknown type");
    }

    #[test]
    fn snapshot_messages_need_metadata_of_a_real_entry() {
        let mut m = Message {
            from: 2,
            to: 1,
            term: 3,
            ..Default::default()
        };
        m.set_type(MessageType::MsgSnap);
        assert!(check_peer_message(&m, 1).is_err());
        let meta = |index, term| Snapshot {
            metadata: Some(SnapshotMetadata {
                index,
                term,
                conf_state: Some(ConfState::default()),
            }),
            ..Default::default()
        };
        m.snapshot = Some(meta(0, 0));
        assert!(check_peer_message(&m, 1).is_err());
        m.snapshot = Some(meta(9, 4));
        assert!(
            check_peer_message(&m, 1).is_err(),
            "term beyond the sender's"
        );
        m.snapshot = Some(meta(9, 3));
        assert!(check_peer_message(&m, 1).is_ok());
    }
}
