//! The record encoder.
//!
//! Owns: the rolling CRC of the write side and the batch buffer that one `save` fills.
//! Invariant: after `push`, `crc()` is the CRC32C of every record payload written to the
//! log so far (continued across segments by a CRC record), and the buffer holds whole,
//! 8-byte aligned frames only, so one `write` of it never leaves a half-built frame in
//! memory.

use etcd_proto::prost::encoding::encode_varint;
use etcd_proto::prost::Message;

use crate::record::{encode_header, pad_bytes, RecordType, FRAME_HEADER_BYTES};

/// Builds frames into a buffer, chaining the CRC from record to record.
pub struct Encoder {
    crc: u32,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("crc", &format_args!("{:#010x}", self.crc))
            .field("buffered_bytes", &self.buf.len())
            .finish()
    }
}

impl Encoder {
    /// An encoder whose first record chains on `prev_crc` (0 for a new log).
    pub fn new(prev_crc: u32) -> Encoder {
        Encoder {
            crc: prev_crc,
            buf: Vec::with_capacity(64 * 1024),
            scratch: Vec::new(),
        }
    }

    /// The rolling CRC after the last record pushed.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The frames pushed since the last `clear`.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the buffered frames (after they were written); the CRC chain stays.
    pub fn clear(&mut self) {
        self.buf.clear();
        // Do not keep a huge buffer alive after one giant batch.
        if self.buf.capacity() > 16 * 1024 * 1024 {
            self.buf.shrink_to(64 * 1024);
        }
    }

    /// Appends one frame holding a record of `kind` with `data`. A CRC record is pushed
    /// with empty data: its crc field is then the current rolling CRC.
    pub fn push(&mut self, kind: RecordType, data: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, data);
        let kind = kind as u64;
        // walpb.Record, proto3: fields with default values are not written.
        let mut len = 1 + varint_len(kind);
        if self.crc != 0 {
            len += 1 + varint_len(u64::from(self.crc));
        }
        if !data.is_empty() {
            len += 1 + varint_len(data.len() as u64) + data.len() as u64;
        }
        self.buf.reserve(FRAME_HEADER_BYTES + len as usize + 7);
        self.buf
            .extend_from_slice(&encode_header(len).to_le_bytes());
        self.buf.push(0x08); // field 1, varint: type
        encode_varint(kind, &mut self.buf);
        if self.crc != 0 {
            self.buf.push(0x10); // field 2, varint: crc
            encode_varint(u64::from(self.crc), &mut self.buf);
        }
        if !data.is_empty() {
            self.buf.push(0x1a); // field 3, length-delimited: data
            encode_varint(data.len() as u64, &mut self.buf);
            self.buf.extend_from_slice(data);
        }
        let pad = pad_bytes(len) as usize;
        self.buf.extend_from_slice(&[0u8; 8][..pad]);
        debug_assert_eq!(self.buf.len() % 8, 0, "frames must stay 8-byte aligned");
    }

    /// Appends a record whose data is the protobuf encoding of `msg`.
    pub fn push_message<M: Message>(&mut self, kind: RecordType, msg: &M) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        // Encoding into a Vec cannot run out of space.
        msg.encode_raw(&mut scratch);
        self.push(kind, &scratch);
        self.scratch = scratch;
    }
}

fn varint_len(v: u64) -> u64 {
    etcd_proto::prost::encoding::encoded_len_varint(v) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_proto::walpb::Record;

    #[test]
    fn hand_encoding_matches_prost() {
        let mut enc = Encoder::new(0);
        for (kind, data) in [
            (RecordType::Crc, &b""[..]),
            (RecordType::Metadata, b"meta"),
            (RecordType::Entry, &[7u8; 300][..]),
        ] {
            enc.push(kind, data);
        }
        let buf = enc.buffer().to_vec();
        let mut pos = 0;
        let mut crc = 0;
        let mut n = 0;
        while pos < buf.len() {
            let h = u64::from_le_bytes(buf[pos..pos + 8].try_into().unwrap());
            let (len, pad) = crate::record::decode_header(h).unwrap();
            let body = &buf[pos + 8..pos + 8 + len as usize];
            let rec = Record::decode(body).unwrap();
            crc = crc32c::crc32c_append(crc, &rec.data);
            assert_eq!(rec.crc, crc);
            assert_eq!(rec.encode_to_vec(), body);
            pos += 8 + (len + pad) as usize;
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(enc.crc(), crc);
    }
}
