//! The cluster's membership: who the members are, their peer and client URLs, and
//! which ids were removed.
//!
//! Members are kept in memory ([`Cluster`]) and in the backend's `members` and
//! `members_removed` buckets, keyed by the member id in hex and valued by the same JSON
//! etcd writes (`{"id":…,"peerURLs":[…],"name":…,"clientURLs":[…],"isLearner":…}`), so the
//! records read the same in both. Invariant: the in-memory view changes only when the
//! applier applies a conf change or a member attribute update, in raft order, and the
//! backend write is in the same batch as the consistent index that covers it.

use std::collections::{BTreeMap, BTreeSet};

use etcd_mvcc::{Batch, Bucket, Store};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member id.
    pub id: u64,
    /// The member's name (empty until it has published it).
    #[serde(default)]
    pub name: String,
    /// URLs the other members reach it on.
    #[serde(rename = "peerURLs", default, deserialize_with = "null_as_empty")]
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on (empty until it has published them).
    #[serde(rename = "clientURLs", default, deserialize_with = "null_as_empty")]
    pub client_urls: Vec<String>,
    /// A learner: receives the log, does not vote.
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

/// Reads a JSON list that Go may have written as `null` (etcd's promotion context has
/// `"peerURLs":null`).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl Member {
    /// Whether the member has published its name (etcd's `IsStarted`).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// The protobuf form used by the Cluster service.
    pub fn to_proto(&self) -> etcd_proto::etcdserverpb::Member {
        etcd_proto::etcdserverpb::Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// The key of a member's record: its id in lower-case hex, as etcd writes it.
fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// The members of one cluster.
#[derive(Debug)]
pub struct Cluster {
    id: u64,
    members: RwLock<BTreeMap<u64, Member>>,
    removed: RwLock<BTreeSet<u64>>,
}

impl Cluster {
    /// An empty cluster with the given id.
    pub fn new(id: u64) -> Cluster {
        Cluster {
            id,
            members: RwLock::new(BTreeMap::new()),
            removed: RwLock::new(BTreeSet::new()),
        }
    }

    /// The cluster id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Loads the members recorded in the backend.
    pub fn recover(&self, store: &Store) -> Result<(), etcd_mvcc::Error> {
        let backend = store.backend();
        let read = backend.read();
        let mut members = BTreeMap::new();
        let mut it = read.iter(Bucket::Members);
        it.seek_to_first();
        while it.valid() {
            if let Some(value) = it.value() {
                match serde_json::from_slice::<Member>(value) {
                    Ok(m) => {
                        members.insert(m.id, m);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "skipping an unreadable member record");
                    }
                }
            }
            it.next();
        }
        let mut removed = BTreeSet::new();
        let mut it = read.iter(Bucket::MembersRemoved);
        it.seek_to_first();
        while it.valid() {
            if let Some(key) = it.key() {
                if let Some(id) = std::str::from_utf8(key)
                    .ok()
                    .and_then(|k| u64::from_str_radix(k, 16).ok())
                {
                    removed.insert(id);
                }
            }
            it.next();
        }
        *self.members.write() = members;
        *self.removed.write() = removed;
        Ok(())
    }

    /// Every member, ordered by id.
    pub fn members(&self) -> Vec<Member> {
        self.members.read().values().cloned().collect()
    }

    /// One member.
    pub fn member(&self, id: u64) -> Option<Member> {
        self.members.read().get(&id).cloned()
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.read().contains(&id)
    }

    /// Every removed id, ascending.
    pub fn removed_ids(&self) -> Vec<u64> {
        self.removed.read().iter().copied().collect()
    }

    /// Whether `id` is a learner (false for an unknown id).
    pub fn is_learner(&self, id: u64) -> bool {
        self.members.read().get(&id).is_some_and(|m| m.is_learner)
    }

    /// Makes a learner a voter, in memory and in `batch`.
    pub fn promote(&self, batch: &mut Batch<'_>, id: u64) -> Result<(), etcd_mvcc::Error> {
        let Some(mut m) = self.member(id) else {
            return Ok(());
        };
        m.is_learner = false;
        self.add(batch, m)
    }

    /// Replaces a member's peer URLs, in memory and in `batch`.
    pub fn update_peer_urls(
        &self,
        batch: &mut Batch<'_>,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<(), etcd_mvcc::Error> {
        let Some(mut m) = self.member(id) else {
            return Ok(());
        };
        m.peer_urls = peer_urls;
        self.add(batch, m)
    }

    /// Adds or replaces a member, in memory and in `batch`.
    pub fn add(&self, batch: &mut Batch<'_>, m: Member) -> Result<(), etcd_mvcc::Error> {
        let value = serde_json::to_vec(&m).map_err(|e| etcd_mvcc::Error::Corrupt {
            what: "member record",
            detail: e.to_string(),
        })?;
        batch.put_raw(Bucket::Members, &member_key(m.id), &value)?;
        self.members.write().insert(m.id, m);
        Ok(())
    }

    /// Removes a member, in memory and in `batch`, and remembers its id as removed.
    pub fn remove(&self, batch: &mut Batch<'_>, id: u64) -> Result<(), etcd_mvcc::Error> {
        batch.delete_raw(Bucket::Members, &member_key(id))?;
        batch.put_raw(Bucket::MembersRemoved, &member_key(id), b"removed")?;
        self.members.write().remove(&id);
        self.removed.write().insert(id);
        Ok(())
    }

    /// Sets a member's published name and client URLs.
    pub fn set_attributes(
        &self,
        batch: &mut Batch<'_>,
        id: u64,
        name: String,
        client_urls: Vec<String>,
    ) -> Result<(), etcd_mvcc::Error> {
        let Some(mut m) = self.member(id) else {
            return Ok(());
        };
        m.name = name;
        m.client_urls = client_urls;
        self.add(batch, m)
    }

    /// Replaces the whole view (after installing a snapshot's backend).
    pub fn replace(&self, other: &Cluster) {
        *self.members.write() = other.members.read().clone();
        *self.removed.write() = other.removed.read().clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_matches_etcds_field_names() {
        let m = Member {
            id: 0x8e9e05c52164694d,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            is_learner: false,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"id":10276657743932975437,"name":"default","peerURLs":["http://localhost:2380"],"clientURLs":["http://localhost:2379"],"isLearner":false}"#
        );
        let back: Member = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        // Go writes nil lists as null and leaves out empty fields.
        let promote: Member =
            serde_json::from_str(r#"{"id":5,"peerURLs":null,"clientURLs":null}"#).unwrap();
        assert_eq!(promote.id, 5);
        assert!(promote.peer_urls.is_empty() && promote.client_urls.is_empty());
        assert!(!promote.is_learner && !promote.is_started());
    }

    #[test]
    fn members_survive_a_reopen_and_removed_ids_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let c = Cluster::new(7);
            let mut b = store.batch().unwrap();
            for id in [1, 2, 3] {
                c.add(
                    &mut b,
                    Member {
                        id,
                        name: format!("m{id}"),
                        peer_urls: vec![format!("http://127.0.0.1:{id}")],
                        client_urls: vec![],
                        is_learner: false,
                    },
                )
                .unwrap();
            }
            c.remove(&mut b, 2).unwrap();
            b.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let c = Cluster::new(7);
        c.recover(&store).unwrap();
        let ids: Vec<u64> = c.members().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!(c.is_removed(2));
        assert!(!c.is_removed(3));
    }
}
