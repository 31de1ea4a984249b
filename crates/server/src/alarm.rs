//! Alarms (NOSPACE, CORRUPT), replicated through raft and kept in the backend's `alarm`
//! bucket, as etcd keeps them.
//!
//! A member whose backend grows over `--quota-backend-bytes` proposes a NOSPACE alarm;
//! once applied, every member refuses requests that grow the backend (puts, writing
//! txns, lease grants) with `etcdserver: mvcc: database space exceeded`, also after space
//! was freed, until an operator disarms the alarm (`etcdctl alarm disarm`). The record's
//! key is the encoded `AlarmMember`, with an empty value, as etcd writes it.

use std::collections::BTreeSet;

use etcd_mvcc::{Batch, Bucket, Store};
use etcd_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmType};
use etcd_proto::prost::Message as _;
use parking_lot::RwLock;

/// The active alarms of a cluster.
#[derive(Debug, Default)]
pub struct Alarms {
    active: RwLock<BTreeSet<(u64, i32)>>,
}

impl Alarms {
    /// Loads the alarms recorded in the backend.
    pub fn recover(&self, store: &Store) {
        let backend = store.backend();
        let read = backend.read();
        let mut it = read.iter(Bucket::Alarm);
        it.seek_to_first();
        let mut active = BTreeSet::new();
        while it.valid() {
            if let Some(key) = it.key() {
                match AlarmMember::decode(key) {
                    Ok(a) => {
                        active.insert((a.member_id, a.alarm));
                    }
                    Err(err) => tracing::warn!(%err, "skipping an unreadable alarm record"),
                }
            }
            it.next();
        }
        *self.active.write() = active;
    }

    /// Every active alarm.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether an alarm of this type is active on any member.
    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.read().iter().any(|&(_, a)| a == alarm as i32)
    }

    /// Applies an alarm request in raft order; returns the alarms it concerns, as etcd
    /// answers (the activated or deactivated one, or all for GET).
    pub fn apply(
        &self,
        batch: &mut Batch<'_>,
        req: &AlarmRequest,
    ) -> Result<Vec<AlarmMember>, etcd_mvcc::Error> {
        let m = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        match AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get) {
            AlarmAction::Get => Ok(self.list()),
            AlarmAction::Activate => {
                if req.alarm == AlarmType::None as i32 {
                    return Ok(Vec::new());
                }
                batch.put_raw(Bucket::Alarm, &m.encode_to_vec(), b"")?;
                self.active.write().insert((m.member_id, m.alarm));
                tracing::warn!(member = %format!("{:x}", m.member_id), alarm = m.alarm, "alarm raised");
                Ok(vec![m])
            }
            AlarmAction::Deactivate => {
                if !self.active.write().remove(&(m.member_id, m.alarm)) {
                    return Ok(Vec::new());
                }
                batch.delete_raw(Bucket::Alarm, &m.encode_to_vec())?;
                tracing::info!(member = %format!("{:x}", m.member_id), alarm = m.alarm, "alarm disarmed");
                Ok(vec![m])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_are_raised_disarmed_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let activate = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: 7,
            alarm: AlarmType::Nospace as i32,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let alarms = Alarms::default();
            let mut b = store.batch().unwrap();
            assert_eq!(alarms.apply(&mut b, &activate).unwrap().len(), 1);
            b.commit().unwrap();
            assert!(alarms.is_active(AlarmType::Nospace));
            assert!(!alarms.is_active(AlarmType::Corrupt));
        }
        let store = Store::open(dir.path()).unwrap();
        let alarms = Alarms::default();
        alarms.recover(&store);
        assert_eq!(
            alarms.list(),
            vec![AlarmMember {
                member_id: 7,
                alarm: AlarmType::Nospace as i32
            }]
        );
        let mut b = store.batch().unwrap();
        let off = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            ..activate
        };
        assert_eq!(alarms.apply(&mut b, &off).unwrap().len(), 1);
        // Disarming what is not raised changes nothing.
        assert!(alarms.apply(&mut b, &off).unwrap().is_empty());
        b.commit().unwrap();
        assert!(alarms.list().is_empty());
    }
}
