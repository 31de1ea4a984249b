//! The record decoder.
//!
//! Owns: turning the bytes of one segment into records, and the rule that separates a
//! torn tail from corruption.
//! Invariant: it never panics and never allocates by a length read from disk (it works
//! on a buffer already in memory); every step either returns a record and advances by
//! a whole frame, or stops.
//!
//! # Torn tail or corruption
//!
//! The log is written in batches, each followed by an fdatasync, into files whose
//! unwritten space reads as zeros (preallocated, and zeroed again beyond the valid end
//! when a log is reopened). A crash can only damage the last, unsynced batch, and a
//! disk writes whole 512-byte sectors, so after a crash the last segment is: valid
//! frames, then a region where each sector is either fully new or still zero, then
//! zeros (or the end of the file, if its size was not yet updated). Frame headers are
//! 8-byte aligned and so never straddle a sector. Hence the rule, applied at the first
//! frame that does not decode:
//!
//! - the header is cut off by the end of the file, or is zero: the log ends here;
//! - the header is not one the encoder writes (bad top byte, padding that does not
//!   match the length): **corruption**, since a torn write cannot produce it;
//! - the frame's payload contains a sector-aligned piece that is all zeros, or the
//!   frame runs past the end of the file: a **torn write** (the tail is cut here);
//! - anything else (payload does not decode, unknown type, CRC mismatch): **corruption**.
//!
//! A torn frame is only acceptable in the last segment (the reader checks that). What
//! this cannot tell apart: damage that itself looks like a torn write, e.g. a length
//! changed by a multiple of 8 so that the frame now reaches into the zero tail, is
//! treated as one and the records after it are dropped, as etcd does. The record type
//! is not covered by the CRC (etcd's format), so a change of one valid type into
//! another is caught only if the payload then fails to decode as the new type or the
//! entry sequence breaks.

use bytes::Bytes;
use etcd_proto::prost::Message;
use etcd_proto::walpb::Record;

use crate::record::{decode_header, RecordType, FRAME_HEADER_BYTES, SECTOR_BYTES};

/// One record that decoded and passed its CRC check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// The record kind.
    pub kind: RecordType,
    /// The rolling CRC stored in the record.
    pub crc: u32,
    /// The payload.
    pub data: Bytes,
}

/// The outcome of one decoding step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A valid record.
    Record(DecodedRecord),
    /// The records end cleanly at `offset` (end of file, or a zero header).
    End {
        /// Offset just after the last valid frame.
        offset: u64,
    },
    /// The frame at `offset` was cut short by a crash.
    Torn {
        /// Offset just after the last valid frame.
        offset: u64,
        /// Why the frame is judged torn.
        reason: String,
    },
    /// The frame at `offset` is damaged.
    Corrupt {
        /// Offset of the damaged frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Decodes the frames of one segment held in memory.
#[derive(Debug)]
pub struct Decoder {
    buf: Bytes,
    pos: usize,
    crc: Option<u32>,
    done: bool,
}

impl Decoder {
    /// A decoder over `buf` whose rolling CRC starts at `prev_crc`; with `None` the CRC
    /// is taken from the first CRC record (reading from the middle of a log).
    pub fn new(buf: Bytes, prev_crc: Option<u32>) -> Decoder {
        Decoder {
            buf,
            pos: 0,
            crc: prev_crc,
            done: false,
        }
    }

    /// The rolling CRC after the last valid record (0 if none was learned yet).
    pub fn crc(&self) -> u32 {
        self.crc.unwrap_or(0)
    }

    /// Offset just after the last valid frame.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Decodes the next frame. After a step other than `Record`, the decoder stays put
    /// and returns `End` at the same offset.
    pub fn next_step(&mut self) -> Step {
        let offset = self.pos as u64;
        if self.done {
            return Step::End { offset };
        }
        let step = self.decode_at(self.pos);
        match &step {
            Step::Record(_) => {}
            _ => self.done = true,
        }
        step
    }

    fn decode_at(&mut self, x: usize) -> Step {
        let offset = x as u64;
        let total = self.buf.len();
        let Some(header_bytes) = self.buf.get(x..x.saturating_add(FRAME_HEADER_BYTES)) else {
            if x >= total {
                return Step::End { offset };
            }
            return Step::Torn {
                offset,
                reason: "the frame header is cut off by the end of the file".into(),
            };
        };
        let mut h = [0u8; FRAME_HEADER_BYTES];
        h.copy_from_slice(header_bytes);
        let header = u64::from_le_bytes(h);
        if header == 0 {
            return Step::End { offset };
        }
        let Some((len, pad)) = decode_header(header) else {
            return Step::Corrupt {
                offset,
                reason: format!("invalid frame header {header:#018x}"),
            };
        };
        let data_start = x + FRAME_HEADER_BYTES;
        // The part of the payload that exists in the file.
        let data_end_claimed = (data_start as u64).saturating_add(len);
        let data_end = usize::try_from(data_end_claimed.min(total as u64)).unwrap_or(total);
        if let Some(sector) = zero_sector(&self.buf[data_start..data_end], data_start as u64) {
            return Step::Torn {
                offset,
                reason: format!(
                    "the payload holds an unwritten (all-zero) sector at byte {sector}"
                ),
            };
        }
        let frame_end = data_end_claimed.saturating_add(pad);
        if frame_end > total as u64 {
            return Step::Torn {
                offset,
                reason: format!(
                    "the frame ({len} bytes) runs past the end of the file ({total} bytes)"
                ),
            };
        }
        let rec = match Record::decode(self.buf.slice(data_start..data_end)) {
            Ok(rec) => rec,
            Err(e) => {
                return Step::Corrupt {
                    offset,
                    reason: format!("the record does not decode: {e}"),
                }
            }
        };
        let Some(kind) = RecordType::from_i64(rec.r#type) else {
            return Step::Corrupt {
                offset,
                reason: format!("unknown record type {}", rec.r#type),
            };
        };
        if kind == RecordType::Crc {
            match self.crc {
                Some(crc) if crc != rec.crc => {
                    return Step::Corrupt {
                        offset,
                        reason: format!("CRC hand-over mismatch: the log so far has {crc:#010x}, the record says {:#010x}", rec.crc),
                    };
                }
                _ => self.crc = Some(rec.crc),
            }
        } else {
            let crc = crc32c::crc32c_append(self.crc.unwrap_or(0), &rec.data);
            if crc != rec.crc {
                return Step::Corrupt {
                    offset,
                    reason: format!(
                        "CRC mismatch: computed {crc:#010x}, the record says {:#010x}",
                        rec.crc
                    ),
                };
            }
            self.crc = Some(crc);
        }
        // frame_end <= total, so it fits in usize.
        self.pos = usize::try_from(frame_end).unwrap_or(total);
        Step::Record(DecodedRecord {
            offset,
            kind,
            crc: rec.crc,
            data: rec.data,
        })
    }
}

/// The file offset of the first sector-aligned piece of `data` (which starts at file
/// offset `start`) that is all zeros.
fn zero_sector(data: &[u8], start: u64) -> Option<u64> {
    let mut off = start;
    let mut rest = data;
    while !rest.is_empty() {
        let in_sector = (SECTOR_BYTES - off % SECTOR_BYTES) as usize;
        let n = in_sector.min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        if chunk.iter().all(|&b| b == 0) {
            return Some(off);
        }
        off += n as u64;
        rest = tail;
    }
    None
}

/// Decodes every frame of `buf` until the first non-record step; returns the records
/// and that final step. For fuzzing and tools. Bounded: each record advances at least
/// one frame header.
pub fn decode_all(buf: &[u8]) -> (Vec<DecodedRecord>, Step) {
    let mut dec = Decoder::new(Bytes::copy_from_slice(buf), None);
    let mut records = Vec::new();
    loop {
        match dec.next_step() {
            Step::Record(r) => records.push(r),
            other => return (records, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Encoder;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut enc = Encoder::new(0);
        enc.push(RecordType::Crc, b"");
        enc.push(RecordType::Metadata, b"m");
        for i in 0..20u8 {
            enc.push(RecordType::Entry, &vec![b'a' + i; 100 + usize::from(i) * 7]);
        }
        enc.buffer().to_vec()
    }

    #[test]
    fn decodes_what_the_encoder_wrote_and_stops_at_zeros() {
        let mut buf = sample();
        let end = buf.len() as u64;
        buf.extend_from_slice(&[0u8; 4096]);
        let (recs, last) = decode_all(&buf);
        assert_eq!(recs.len(), 22);
        assert_eq!(last, Step::End { offset: end });
    }

    #[test]
    fn truncation_anywhere_is_a_torn_or_clean_end_never_corruption() {
        let buf = sample();
        for cut in 0..buf.len() {
            let (recs, last) = decode_all(&buf[..cut]);
            assert!(
                matches!(last, Step::Torn { .. } | Step::End { .. }),
                "cut {cut}: {last:?}"
            );
            let end = recs.last().map_or(0, |r| r.offset);
            assert!(end <= cut as u64);
        }
    }

    #[test]
    fn zero_sector_is_found_only_on_sector_aligned_pieces() {
        assert_eq!(zero_sector(&[1, 0, 0], 510), Some(512));
        assert_eq!(zero_sector(&[1, 1, 0], 509), None);
        assert_eq!(zero_sector(&[], 0), None);
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_random_bytes(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_all(&buf);
        }

        #[test]
        fn decoder_never_panics_on_damaged_logs(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut buf = sample();
            for (i, b) in flips {
                let i = i.index(buf.len());
                buf[i] ^= b;
            }
            let cut = cut.index(buf.len() + 1);
            let _ = decode_all(&buf[..cut]);
        }
    }
}
