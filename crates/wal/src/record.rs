//! Record kinds and the frame header.
//!
//! Owns: the on-disk vocabulary shared by the encoder and the decoder.
//! Invariant: a frame is an 8-byte little-endian header followed by an encoded
//! `walpb.Record` and zero padding so the next frame starts 8-byte aligned. The header
//! holds the record length in its low 56 bits; when padding is present its top byte is
//! `0x80 | pad` (pad in 1..=7), otherwise the top byte is zero. This is etcd's layout,
//! and because a header never straddles a 512-byte sector it is never torn.

/// Size of the frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The size of a disk sector for torn-write detection: a torn write leaves whole
/// sectors unwritten (zero), never part of one.
pub const SECTOR_BYTES: u64 = 512;

/// The kind of a WAL record (`walpb.Record.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// Opaque metadata given to [`crate::Wal::create`]; first in every segment.
    Metadata = 1,
    /// An encoded `raftpb.Entry`.
    Entry = 2,
    /// An encoded `raftpb.HardState`.
    State = 3,
    /// CRC hand-over: the rolling CRC at the end of the previous segment.
    Crc = 4,
    /// An encoded `walpb.Snapshot`: the log may be read from here on.
    Snapshot = 5,
}

impl RecordType {
    /// The kind for a raw `walpb.Record.type`, or `None` if unknown.
    pub fn from_i64(v: i64) -> Option<RecordType> {
        Some(match v {
            1 => RecordType::Metadata,
            2 => RecordType::Entry,
            3 => RecordType::State,
            4 => RecordType::Crc,
            5 => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// The padding after a record of `len` bytes.
pub fn pad_bytes(len: u64) -> u64 {
    (8 - len % 8) % 8
}

/// The header of a record of `len` bytes (`len` must fit in 56 bits).
pub fn encode_header(len: u64) -> u64 {
    debug_assert!(len < 1 << 56, "record length {len} does not fit in 56 bits");
    let pad = pad_bytes(len);
    if pad == 0 {
        len
    } else {
        len | ((0x80 | pad) << 56)
    }
}

/// Splits a header into (record length, padding length). `None` if the header is not
/// one the encoder could have written (bad top byte, inconsistent padding, zero length).
pub fn decode_header(header: u64) -> Option<(u64, u64)> {
    let len = header & ((1 << 56) - 1);
    if len == 0 || encode_header(len) != header {
        return None;
    }
    Some((len, pad_bytes(len)))
}

/// The header's length and padding as etcd reads them, without the consistency check:
/// used to measure how far a damaged frame claims to reach.
pub fn header_extent(header: u64) -> (u64, u64) {
    let len = header & ((1 << 56) - 1);
    let pad = if header >> 63 == 1 {
        (header >> 56) & 0x7
    } else {
        0
    };
    (len, pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_for_every_padding() {
        for len in 1..64u64 {
            let h = encode_header(len);
            assert_eq!(decode_header(h), Some((len, pad_bytes(len))));
            assert_eq!(header_extent(h), (len, pad_bytes(len)));
            assert_eq!((len + pad_bytes(len)) % 8, 0);
        }
        assert_eq!(decode_header(0), None);
        assert_eq!(decode_header(encode_header(9) ^ (1 << 56)), None);
        assert_eq!(decode_header(8 | (0x80 << 56)), None);
    }
}
