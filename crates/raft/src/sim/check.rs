//! Safety checks over a simulated [`Cluster`], cheap enough to run after every step:
//! election safety, log matching, leader completeness and state machine safety.
//!
//! The checker keeps, per node, the hash of every log prefix (entry `i`'s hash folds
//! entry `i` into the hash of entry `i - 1`), and looks only at what changed: the
//! log reports the lowest index it changed since the last check, and the commit
//! index only grows. Globally it remembers the prefix hash of every `(index, term)`
//! ever seen in any log, and the term and prefix hash of every committed index.
//! Then:
//! - log matching: two entries with the same index and term (in any two logs, at
//!   any two moments) have the same prefix hash, i.e. identical logs up to them;
//! - state machine safety: every node commits the same entry (same prefix) at an
//!   index; the cluster also compares the hashes of the applied sequences;
//! - leader completeness: a leader of term T holds (with the same prefix) the
//!   highest entry known committed by a node whose term was <= T, hence all of them;
//! - election safety: at most one leader per term.
//!
//! Invariant: after a successful [`Checker::check`], every live node's view here
//! mirrors its raft log from its first index - 1 to its last index.

use std::collections::{BTreeMap, HashMap, VecDeque};

use etcd_proto::raftpb::Entry;

use super::cluster::{Cluster, EMPTY_HASH};
use crate::storage::MemStorage;
use crate::RawNode;

/// Folds an entry (index, term, type, data) into the hash of the prefix before it.
fn chain(mut h: u64, e: &Entry) -> u64 {
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    feed(&e.index.to_le_bytes());
    feed(&e.term.to_le_bytes());
    feed(&e.r#type.to_le_bytes());
    feed(&(e.data.len() as u64).to_le_bytes());
    feed(&e.data);
    h
}

/// The hash standing for the unseen prefix of a log that starts at a snapshot no
/// log ever showed (the bootstrap snapshot, or an empty log).
fn anchor(index: u64, term: u64) -> u64 {
    chain(
        EMPTY_HASH,
        &Entry {
            index,
            term,
            ..Default::default()
        },
    )
}

/// One node's log as the checker last saw it.
#[derive(Debug, Default)]
struct NodeView {
    /// Index of `hashes[0]` (the entry just before the node's first index, when
    /// built; older entries may linger until pruned).
    base: u64,
    /// (term, prefix hash) of every index from `base` to the node's last index.
    hashes: VecDeque<(u64, u64)>,
    /// The commit index up to which committed entries were recorded.
    commit: u64,
}

impl NodeView {
    fn last(&self) -> u64 {
        self.base + self.hashes.len() as u64 - 1
    }

    fn at(&self, i: u64) -> Option<(u64, u64)> {
        if i < self.base {
            return None;
        }
        self.hashes.get((i - self.base) as usize).copied()
    }
}

/// What is known about a committed index.
#[derive(Debug, Clone, Copy)]
struct Committed {
    term: u64,
    hash: u64,
    /// The lowest term of a node that knew it committed: it was committed in this
    /// term or earlier.
    min_term: u64,
}

/// Remembers what it has seen across checks (leaders per term, prefix hashes,
/// committed entries, each node's log).
#[derive(Debug, Default)]
pub struct Checker {
    /// term -> the node that led it.
    leaders: BTreeMap<u64, u64>,
    /// (index, term) -> prefix hash, as first seen in any log.
    prefixes: HashMap<(u64, u64), u64>,
    /// index -> what was committed there (None where no node showed the entry, e.g.
    /// below a bootstrap snapshot).
    committed: Vec<Option<Committed>>,
    /// term T -> the highest index known committed by a node of term <= T (kept as
    /// a running maximum over the keys, so one lookup answers).
    committed_by_term: BTreeMap<u64, u64>,
    nodes: BTreeMap<u64, NodeView>,
}

impl Checker {
    /// The number of terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// Checks every invariant on what changed since the last call.
    pub fn check(&mut self, c: &mut Cluster) -> Result<(), String> {
        if let Some(d) = &c.divergence {
            return Err(format!("state machine safety: {d}"));
        }
        // A node whose log now starts at a snapshot of an entry no log has shown yet
        // (possible when many rounds run between checks) waits until the others, one
        // of which holds that entry, have been looked at.
        let mut deferred = Vec::new();
        for (id, n) in c.nodes.iter_mut() {
            let Some(raw) = n.node.as_mut() else { continue };
            let changed = raw.raft_mut().raft_log.take_changed_from();
            if !self.check_node(*id, raw, changed, false)? {
                deferred.push((*id, changed));
            }
        }
        for (id, changed) in deferred {
            if let Some(raw) = c.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) {
                self.check_node(id, raw, changed, true)?;
            }
        }
        Ok(())
    }

    /// Checks one node given the lowest index its log changed from. Returns false
    /// (having changed nothing) if its log starts at an unseen entry and `anchor_unseen`
    /// is false.
    fn check_node(
        &mut self,
        id: u64,
        raw: &RawNode<MemStorage>,
        changed: Option<u64>,
        anchor_unseen: bool,
    ) -> Result<bool, String> {
        let r = raw.raft();
        let term = r.term;
        let mut view = std::mem::take(self.nodes.entry(id).or_default());
        let res = (|| {
            if let Some(from) = changed {
                if !self.update_log(id, &mut view, raw, from, anchor_unseen)? {
                    return Ok(false);
                }
            }
            let commit = r.raft_log.committed;
            if commit < view.commit {
                // Restarted with the commit index of its hard state.
                view.commit = commit;
            }
            for i in view.commit + 1..=commit {
                if let Some((t, h)) = view.at(i) {
                    self.record_commit(id, i, t, h, term)?;
                }
            }
            view.commit = commit;
            if r.is_leader() {
                self.check_leader(id, term, &view)?;
            }
            Ok(true)
        })();
        if let Some(slot) = self.nodes.get_mut(&id) {
            *slot = view;
        }
        res
    }

    /// Re-reads the node's log from `from` (or from its first index - 1 when the view
    /// cannot be extended) and checks each new prefix against every one seen before.
    /// Returns false, changing nothing, if the log starts at an entry no log has
    /// shown and `anchor_unseen` is false.
    fn update_log(
        &mut self,
        id: u64,
        view: &mut NodeView,
        raw: &RawNode<MemStorage>,
        from: u64,
        anchor_unseen: bool,
    ) -> Result<bool, String> {
        let log = &raw.raft().raft_log;
        let first = log.first_index();
        let last = log.last_index();
        // A snapshot (the log then starts after `from`), a restart (`from` is 0), or a
        // view that cannot be extended: build the view from the first index - 1.
        let rebuild =
            view.hashes.is_empty() || from < first || from <= view.base || from > view.last() + 1;
        let start = if rebuild {
            let base = first - 1;
            let base_term = log
                .term(base)
                .map_err(|e| format!("node {id}: no term for its first index - 1 ({base}): {e}"))?;
            let h = match self.prefixes.get(&(base, base_term)) {
                Some(h) => *h,
                None if !anchor_unseen => return Ok(false),
                None => {
                    // Nobody shows it: the bootstrap snapshot or an empty log.
                    let h = anchor(base, base_term);
                    self.prefixes.insert((base, base_term), h);
                    h
                }
            };
            view.base = base;
            view.hashes.clear();
            view.hashes.push_back((base_term, h));
            base + 1
        } else {
            view.hashes.truncate((from - view.base) as usize);
            from
        };
        // Committed entries at or after `start` are recorded again (and so compared).
        view.commit = view.commit.min(start - 1);
        if start <= last {
            let ents = log
                .slice(start, last + 1, u64::MAX)
                .map_err(|e| format!("node {id}: cannot read its log [{start}, {last}]: {e}"))?;
            let mut h = view.hashes.back().map_or(EMPTY_HASH, |x| x.1);
            for e in &ents {
                h = chain(h, e);
                match self.prefixes.get(&(e.index, e.term)) {
                    Some(&seen) if seen != h => {
                        return Err(format!(
                            "log matching: node {id} holds entry {}/{} after a history that differs \
                             from the one it had in another log",
                            e.index, e.term
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.prefixes.insert((e.index, e.term), h);
                    }
                }
                view.hashes.push_back((e.term, h));
            }
        }
        // Forget what was compacted, in batches.
        let keep_from = first - 1;
        if keep_from > view.base + 256 {
            view.hashes.drain(..(keep_from - view.base) as usize);
            view.base = keep_from;
        }
        Ok(true)
    }

    fn record_commit(
        &mut self,
        id: u64,
        index: u64,
        term: u64,
        hash: u64,
        node_term: u64,
    ) -> Result<(), String> {
        let i = index as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        let min_term = match &mut self.committed[i] {
            Some(c) => {
                if (c.term, c.hash) != (term, hash) {
                    return Err(format!(
                        "state machine safety: node {id} committed {index}/{term} but {index}/{} \
                         (or another history before it) was committed before",
                        c.term
                    ));
                }
                if node_term >= c.min_term {
                    return Ok(());
                }
                c.min_term = node_term;
                node_term
            }
            slot @ None => {
                *slot = Some(Committed {
                    term,
                    hash,
                    min_term: node_term,
                });
                node_term
            }
        };
        let below = self
            .committed_by_term
            .range(..min_term)
            .next_back()
            .map_or(0, |(_, v)| *v);
        let v = self.committed_by_term.entry(min_term).or_insert(below);
        *v = (*v).max(index);
        for (_, v) in self.committed_by_term.range_mut(min_term..) {
            *v = (*v).max(index);
        }
        Ok(())
    }

    fn check_leader(&mut self, id: u64, term: u64, view: &NodeView) -> Result<(), String> {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(format!(
                    "election safety: {other} and {id} both led term {term}"
                ));
            }
        } else {
            self.leaders.insert(term, id);
        }
        let Some((_, &index)) = self.committed_by_term.range(..=term).next_back() else {
            return Ok(());
        };
        // Below the leader's snapshot, its snapshot's entry must be the committed one.
        let at = index.max(view.base);
        let Some(Some(want)) = self.committed.get(at as usize).copied() else {
            return Ok(());
        };
        match view.at(at) {
            Some((t, h)) if (t, h) == (want.term, want.hash) => Ok(()),
            Some((t, _)) => Err(format!(
                "leader completeness: leader {id} of term {term} holds {at}/{t} (or another \
                 history before it) instead of committed {at}/{}",
                want.term
            )),
            None => Err(format!(
                "leader completeness: leader {id} of term {term} lacks committed entry {at}/{} \
                 (its last index is {})",
                want.term,
                view.last()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use etcd_proto::raftpb::{ConfState, Entry};

    use super::Checker;
    use crate::sim::Cluster;
    use crate::Config;

    fn led_cluster() -> (Cluster, Checker) {
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let mut c = Cluster::new();
        for id in 1..=3 {
            c.add_node(id, Config::new(id), cs.clone());
        }
        let mut ck = Checker::default();
        c.raw(1).campaign().unwrap();
        c.stabilize(100);
        c.raw(1).propose(Bytes::from_static(b"a")).unwrap();
        c.stabilize(100);
        ck.check(&mut c).unwrap();
        (c, ck)
    }

    fn forge(c: &mut Cluster, id: u64, index: u64, term: u64, data: &'static [u8]) {
        let e = Entry {
            index,
            term,
            data: Bytes::from_static(data),
            ..Default::default()
        };
        c.raw(id).raft_mut().raft_log.append(vec![e]);
    }

    #[test]
    fn two_different_entries_at_one_index_and_term_break_log_matching() {
        let (mut c, mut ck) = led_cluster();
        let last = c.raw(2).status().last_index;
        let term = c.raw(2).status().hard_state.term;
        forge(&mut c, 2, last + 1, term, b"x");
        ck.check(&mut c).unwrap();
        forge(&mut c, 3, last + 1, term, b"y");
        let err = ck.check(&mut c).unwrap_err();
        assert!(err.starts_with("log matching"), "{err}");
    }

    #[test]
    fn an_entry_replaced_below_the_commit_index_breaks_state_machine_safety() {
        let (mut c, mut ck) = led_cluster();
        let commit = c.raw(2).status().hard_state.commit;
        let term = c.raw(2).status().hard_state.term;
        // Bypass the log's own assertion: rewrite the committed tail in place.
        let r = c.raw(2).raft_mut();
        r.raft_log.committed = commit - 1;
        r.raft_log.append(vec![Entry {
            index: commit,
            term: term + 1,
            ..Default::default()
        }]);
        r.raft_log.committed = commit;
        let err = ck.check(&mut c).unwrap_err();
        assert!(err.starts_with("state machine safety"), "{err}");
    }

    #[test]
    fn a_leader_without_a_committed_entry_breaks_leader_completeness() {
        let (mut c, mut ck) = led_cluster();
        c.partition(&[vec![1, 2], vec![3]]);
        c.raw(1).propose(Bytes::from_static(b"b")).unwrap();
        c.stabilize(100);
        ck.check(&mut c).unwrap();
        // Node 3 takes office without the votes it needs.
        let r = c.raw(3).raft_mut();
        r.become_candidate();
        r.become_leader();
        let err = ck.check(&mut c).unwrap_err();
        assert!(err.starts_with("leader completeness"), "{err}");
    }

    #[test]
    fn two_leaders_of_one_term_break_election_safety() {
        let (mut c, mut ck) = led_cluster();
        let term = c.raw(1).status().hard_state.term;
        let r = c.raw(2).raft_mut();
        r.term = term - 1;
        r.become_candidate();
        r.become_leader();
        let err = ck.check(&mut c).unwrap_err();
        assert!(err.starts_with("election safety"), "{err}");
    }
}
