//! Safety checks over a simulated [`Cluster`]: election safety, log matching, leader
//! completeness and state machine safety.

use std::collections::BTreeMap;

use super::cluster::Cluster;

/// Remembers what it has seen across checks (leaders per term, committed entries).
#[derive(Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<u64, u64>,
    /// index -> (term, smallest term of a node that had applied it).
    committed: BTreeMap<u64, (u64, u64)>,
}

impl Checker {
    /// The number of terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// Checks the invariants. With `full`, also compares logs pairwise and against
    /// the committed entries (more expensive).
    pub fn check(&mut self, c: &Cluster, full: bool) -> Result<(), String> {
        if let Some(d) = &c.divergence {
            return Err(format!("state machine safety: {d}"));
        }
        // Election safety: at most one leader per term.
        for (id, n) in &c.nodes {
            let Some(r) = n.node.as_ref() else { continue };
            if r.is_leader() {
                let term = r.status().hard_state.term;
                if let Some(&other) = self.leaders.get(&term) {
                    if other != *id {
                        return Err(format!(
                            "election safety: {other} and {id} both led term {term}"
                        ));
                    }
                }
                self.leaders.insert(term, *id);
            }
        }
        if !full {
            return Ok(());
        }
        // Record applied entries as committed, with a bound on their commit term.
        let mut logs = BTreeMap::new();
        for (id, n) in &c.nodes {
            let Some(r) = n.node.as_ref() else { continue };
            let st = r.status();
            let ents = r.log_entries();
            for e in &ents {
                if e.index <= n.applied_index {
                    let slot = self
                        .committed
                        .entry(e.index)
                        .or_insert((e.term, st.hard_state.term));
                    if slot.0 != e.term {
                        return Err(format!(
                            "state machine safety: index {} applied with terms {} and {}",
                            e.index, slot.0, e.term
                        ));
                    }
                    slot.1 = slot.1.min(st.hard_state.term);
                }
            }
            logs.insert(*id, (ents, st.hard_state.term, r.is_leader()));
        }
        // Log matching: if two logs have an entry with the same index and term, the
        // logs are identical up to it.
        let ids: Vec<u64> = logs.keys().copied().collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                let (la, _, _) = &logs[a];
                let (lb, _, _) = &logs[b];
                let at = |l: &[etcd_proto::raftpb::Entry], i: u64| {
                    let first = l.first()?.index;
                    if i < first {
                        return None;
                    }
                    l.get((i - first) as usize).cloned()
                };
                // The highest index where both have an entry of the same term.
                let last_match = la
                    .iter()
                    .rev()
                    .find(|e| at(lb, e.index).is_some_and(|f| f.term == e.term))
                    .map(|e| e.index);
                if let Some(m) = last_match {
                    for e in la.iter().filter(|e| e.index <= m) {
                        if let Some(f) = at(lb, e.index) {
                            if f.term != e.term || f.data != e.data {
                                return Err(format!(
                                    "log matching: nodes {a} and {b} agree at {m} but differ at {}",
                                    e.index
                                ));
                            }
                        }
                    }
                }
            }
        }
        // Leader completeness: a leader of term T holds every entry committed at a
        // term <= T (that it has not compacted).
        for (id, (ents, term, leader)) in &logs {
            if !leader {
                continue;
            }
            let Some(first) = ents.first().map(|e| e.index) else {
                continue;
            };
            for (idx, (eterm, bound)) in self.committed.range(first..) {
                if *bound > *term {
                    continue;
                }
                match ents.get((idx - first) as usize) {
                    Some(e) if e.term == *eterm => {}
                    _ => return Err(format!("leader completeness: leader {id} of term {term} lacks committed entry {idx}/{eterm}")),
                }
            }
        }
        Ok(())
    }
}
