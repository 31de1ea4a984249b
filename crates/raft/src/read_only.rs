//! Pending linearizable reads (ReadIndex) at the leader in Safe mode: each request
//! records the commit index when it arrived and waits for a quorum of heartbeat
//! acknowledgements carrying its context.
//!
//! Invariant: requests complete in arrival order; completing one completes every
//! request queued before it.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use etcd_proto::raftpb::Message;

/// How read-only requests are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a heartbeat round to a quorum (linearizable).
    #[default]
    Safe,
    /// Rely on the leader lease (needs CheckQuorum; depends on bounded clock drift).
    LeaseBased,
}

/// A read that may be served once the applied index reaches `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index at the time the read was received.
    pub index: u64,
    /// The request context given to `read_index`.
    pub request_ctx: Bytes,
}

#[derive(Debug)]
pub(crate) struct ReadIndexStatus {
    pub(crate) req: Message,
    pub(crate) index: u64,
    pub(crate) acks: BTreeSet<u64>,
}

#[derive(Debug)]
pub(crate) struct ReadOnly {
    pub(crate) option: ReadOnlyOption,
    pending: HashMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    pub(crate) fn new(option: ReadOnlyOption) -> Self {
        ReadOnly {
            option,
            pending: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Queues a request (its context is `req.entries[0].data`) at commit `index`.
    pub(crate) fn add_request(&mut self, index: u64, req: Message) {
        let ctx = req.entries[0].data.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(
            ctx.clone(),
            ReadIndexStatus {
                req,
                index,
                acks: BTreeSet::new(),
            },
        );
        self.queue.push_back(ctx);
    }

    /// Records that `id` acknowledged the heartbeat with `ctx`; returns the acks so far.
    pub(crate) fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&BTreeSet<u64>> {
        let rs = self.pending.get_mut(ctx)?;
        rs.acks.insert(id);
        Some(&rs.acks)
    }

    /// Completes the request with `ctx` and every request before it.
    pub(crate) fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_ref() == ctx) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(pos + 1);
        for c in self.queue.drain(..=pos) {
            let rs = self
                .pending
                .remove(&c)
                .expect("queued read request is pending");
            out.push(rs);
        }
        out
    }

    pub(crate) fn last_pending_request_ctx(&self) -> Bytes {
        self.queue.back().cloned().unwrap_or_default()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_proto::raftpb::Entry;

    fn req(ctx: &'static [u8]) -> Message {
        Message {
            entries: vec![Entry {
                data: Bytes::from_static(ctx),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn completing_a_read_completes_all_earlier_reads() {
        let mut ro = ReadOnly::new(ReadOnlyOption::Safe);
        ro.add_request(5, req(b"a"));
        ro.add_request(6, req(b"b"));
        ro.add_request(7, req(b"c"));
        assert_eq!(ro.recv_ack(2, b"b").map(|a| a.len()), Some(1));
        let done = ro.advance(b"b");
        assert_eq!(done.iter().map(|r| r.index).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(ro.pending_count(), 1);
        assert_eq!(ro.last_pending_request_ctx(), Bytes::from_static(b"c"));
        assert!(ro.recv_ack(2, b"zz").is_none());
    }
}
