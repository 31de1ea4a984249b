//! Revisions and their on-disk encoding.
//!
//! Owns the `(main, sub)` revision pair and the byte layout of a revision as a key of the
//! `key` bucket: 8-byte big-endian `main`, a `_` separator, 8-byte big-endian `sub`, and for
//! deletions a trailing `t` (tombstone marker). Invariant kept: the byte order of encoded
//! revisions equals the numeric order of `(main, sub)` for non-negative revisions, so a
//! RocksDB iterator over the `key` bucket walks history in revision order. Decoding never
//! panics: bytes that are not exactly such a key are an [`Error::Corrupt`].

use crate::error::Error;

/// Length of an encoded revision without the tombstone marker.
pub const REVISION_BYTES_LEN: usize = 17;
/// Length of an encoded tombstone revision.
pub const TOMBSTONE_BYTES_LEN: usize = 18;
const SEPARATOR: u8 = b'_';
const TOMBSTONE_MARK: u8 = b't';

/// A point in the store's history: `main` is bumped once per write transaction, `sub`
/// numbers the changes inside it (0, 1, 2, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The revision of the write transaction (what clients see as `mod_revision`).
    pub main: i64,
    /// The index of the change inside that transaction.
    pub sub: i64,
}

impl Revision {
    /// A revision `(main, sub)`.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Encodes this revision as a `key` bucket key, with the tombstone marker if asked.
    pub fn to_bytes(self, tombstone: bool) -> RevisionBytes {
        let mut buf = [0u8; TOMBSTONE_BYTES_LEN];
        buf[..8].copy_from_slice(&self.main.to_be_bytes());
        buf[8] = SEPARATOR;
        buf[9..17].copy_from_slice(&self.sub.to_be_bytes());
        let len = if tombstone {
            buf[17] = TOMBSTONE_MARK;
            TOMBSTONE_BYTES_LEN
        } else {
            REVISION_BYTES_LEN
        };
        RevisionBytes { buf, len }
    }
}

/// An encoded revision (17 bytes, or 18 with the tombstone marker), on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RevisionBytes {
    buf: [u8; TOMBSTONE_BYTES_LEN],
    len: usize,
}

impl AsRef<[u8]> for RevisionBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for RevisionBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_ref())
    }
}

/// A decoded `key` bucket key: the revision and whether it marks a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketKey {
    /// The revision.
    pub rev: Revision,
    /// True when the entry is a tombstone (the key was deleted at `rev`).
    pub tombstone: bool,
}

/// Decodes a `key` bucket key. Anything but a well-formed 17/18-byte key is an error.
pub fn decode_bucket_key(bytes: &[u8]) -> Result<BucketKey, Error> {
    let tombstone = match bytes.len() {
        REVISION_BYTES_LEN => false,
        TOMBSTONE_BYTES_LEN if bytes[17] == TOMBSTONE_MARK => true,
        _ => return Err(Error::corrupt("revision key", format!("bad key {bytes:?}"))),
    };
    if bytes[8] != SEPARATOR {
        return Err(Error::corrupt(
            "revision key",
            format!("no separator in {bytes:?}"),
        ));
    }
    let mut main = [0u8; 8];
    main.copy_from_slice(&bytes[..8]);
    let mut sub = [0u8; 8];
    sub.copy_from_slice(&bytes[9..17]);
    Ok(BucketKey {
        rev: Revision::new(i64::from_be_bytes(main), i64::from_be_bytes(sub)),
        tombstone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn revision_encodes_as_big_endian_main_separator_sub() {
        let b = Revision::new(2, 1).to_bytes(false);
        assert_eq!(
            b.as_ref(),
            &[0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 1][..]
        );
        let t = Revision::new(2, 1).to_bytes(true);
        assert_eq!(t.as_ref().len(), 18);
        assert_eq!(t.as_ref()[17], b't');
    }

    #[test]
    fn decode_rejects_malformed_keys() {
        assert!(decode_bucket_key(b"").is_err());
        assert!(decode_bucket_key(&[0u8; 16]).is_err());
        assert!(decode_bucket_key(&[0u8; 17]).is_err(), "no separator");
        let mut k = Revision::new(1, 0).to_bytes(true).as_ref().to_vec();
        k[17] = b'x';
        assert!(decode_bucket_key(&k).is_err(), "bad tombstone marker");
        assert!(decode_bucket_key(&[0u8; 19]).is_err());
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(main in 0i64..i64::MAX, sub in 0i64..i64::MAX, t: bool) {
            let rev = Revision::new(main, sub);
            let key = decode_bucket_key(rev.to_bytes(t).as_ref()).unwrap();
            prop_assert_eq!(key, BucketKey { rev, tombstone: t });
        }

        #[test]
        fn byte_order_matches_revision_order(a in (0i64..1000, 0i64..1000), b in (0i64..1000, 0i64..1000)) {
            let (ra, rb) = (Revision::new(a.0, a.1), Revision::new(b.0, b.1));
            prop_assert_eq!(ra.cmp(&rb), ra.to_bytes(false).as_ref().cmp(rb.to_bytes(false).as_ref()));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = decode_bucket_key(&bytes);
        }
    }
}
