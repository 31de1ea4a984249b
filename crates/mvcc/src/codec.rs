//! Encoding and decoding of the values of the `key` bucket (`mvccpb.KeyValue`).
//!
//! Owns the byte format of stored values. Full decoding goes through prost; opening the
//! store uses [`decode_index_fields`], a small zero-copy reader of just the fields the key
//! index needs (key, create revision, version), which makes restoring millions of keys
//! cheap. Invariant kept: nothing here panics on any input; bad bytes are
//! [`Error::Corrupt`].

use etcd_proto::mvccpb::KeyValue;
use prost::Message;

use crate::error::{Error, Result};

/// Decodes a stored `mvccpb.KeyValue`.
pub fn decode_kv(bytes: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(bytes).map_err(|e| Error::corrupt("stored KeyValue", e.to_string()))
}

/// Encodes a `mvccpb.KeyValue` for storage.
pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    kv.encode_to_vec()
}

/// The fields of a stored `KeyValue` that the key index is rebuilt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexFields<'a> {
    /// The user key.
    pub key: &'a [u8],
    /// `create_revision`.
    pub create_revision: i64,
    /// `version`.
    pub version: i64,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| Error::corrupt("stored KeyValue", "truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::corrupt(
        "stored KeyValue",
        "varint longer than 10 bytes",
    ))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8]> {
    let len = usize::try_from(len).map_err(|_| Error::corrupt("stored KeyValue", "huge length"))?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| Error::corrupt("stored KeyValue", "field runs past the end"))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

/// Reads key, create revision and version from an encoded `KeyValue` without copying.
pub fn decode_index_fields(buf: &[u8]) -> Result<IndexFields<'_>> {
    let mut out = IndexFields::default();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match (field, wire) {
            (1, 2) => {
                let len = read_varint(buf, &mut pos)?;
                out.key = take(buf, &mut pos, len)?;
            }
            (2, 0) => out.create_revision = read_varint(buf, &mut pos)? as i64,
            (4, 0) => out.version = read_varint(buf, &mut pos)? as i64,
            (0, _) => return Err(Error::corrupt("stored KeyValue", "field number 0")),
            (_, 0) => {
                read_varint(buf, &mut pos)?;
            }
            (_, 1) => {
                take(buf, &mut pos, 8)?;
            }
            (_, 2) => {
                let len = read_varint(buf, &mut pos)?;
                take(buf, &mut pos, len)?;
            }
            (_, 5) => {
                take(buf, &mut pos, 4)?;
            }
            _ => {
                return Err(Error::corrupt(
                    "stored KeyValue",
                    format!("wire type {wire}"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_fields_agree_with_prost(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            create in any::<i64>(), modr in any::<i64>(), ver in any::<i64>(), lease in any::<i64>(),
        ) {
            let kv = KeyValue { key: key.clone(), create_revision: create, mod_revision: modr, version: ver, value, lease };
            let bytes = encode_kv(&kv);
            let f = decode_index_fields(&bytes).unwrap();
            prop_assert_eq!(f, IndexFields { key: &key, create_revision: create, version: ver });
            prop_assert_eq!(decode_kv(&bytes).unwrap(), kv);
        }

        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_index_fields(&bytes);
            let _ = decode_kv(&bytes);
        }
    }

    #[test]
    fn truncated_value_is_corrupt() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            ..Default::default()
        };
        let bytes = encode_kv(&kv);
        assert!(decode_index_fields(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_kv(&bytes[..bytes.len() - 1]).is_err());
    }
}
