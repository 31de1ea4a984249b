//! Lease records in the backend's `lease` bucket, stored the way etcd stores them.
//!
//! Owns the record format: key = the lease id as 8 bytes big-endian, value = the encoded
//! `leasepb.Lease {ID, TTL, RemainingTTL}`. Writes go into the applier's [`Batch`], so a
//! record commits atomically with the data and the consistent index. Keys are not stored
//! here: they are recovered from the `lease` field of the live keys.
//! Invariant kept: a record that does not decode is reported as corruption, never skipped.

use etcd_mvcc::{Batch, Bucket, Store};
use etcd_proto::leasepb;
use prost::Message;

use crate::error::LeaseError;
use crate::lease::Lease;

/// The bucket key of lease `id`.
pub(crate) fn key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Writes lease `l`'s record in `batch`.
pub(crate) fn put(batch: &mut Batch<'_>, l: &Lease) -> Result<(), LeaseError> {
    let rec = leasepb::Lease {
        id: l.id,
        ttl: l.ttl,
        remaining_ttl: l.remaining_ttl,
    };
    batch.put_raw(Bucket::Lease, &key(l.id), &rec.encode_to_vec())?;
    Ok(())
}

/// Deletes lease `id`'s record in `batch`.
pub(crate) fn delete(batch: &mut Batch<'_>, id: i64) -> Result<(), LeaseError> {
    batch.delete_raw(Bucket::Lease, &key(id))?;
    Ok(())
}

fn corrupt(detail: String) -> LeaseError {
    LeaseError::Store(etcd_mvcc::Error::Corrupt {
        what: "lease bucket",
        detail,
    })
}

/// Every lease record in `store`, in key order.
pub(crate) fn load_all(store: &Store) -> Result<Vec<leasepb::Lease>, LeaseError> {
    let tx = store.backend().read();
    let mut it = tx.iter(Bucket::Lease);
    it.seek_to_first();
    let mut out = Vec::new();
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let id = <[u8; 8]>::try_from(k)
            .map(i64::from_be_bytes)
            .map_err(|_| corrupt(format!("lease key of {} bytes, want 8", k.len())))?;
        let rec =
            leasepb::Lease::decode(v).map_err(|e| corrupt(format!("lease {id:016x}: {e}")))?;
        if rec.id != id {
            return Err(corrupt(format!(
                "lease record under key {id:016x} has id {:016x}",
                rec.id
            )));
        }
        out.push(rec);
        it.next();
    }
    it.status().map_err(etcd_mvcc::Error::from)?;
    Ok(out)
}
