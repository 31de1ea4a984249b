//! Fuzz the WAL record decoder: arbitrary bytes as a segment must never panic, and
//! every record it accepts must lie inside the input and advance.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, _end) = etcd_wal::decoder::decode_all(data);
    let mut prev = None;
    for r in &records {
        assert!((r.offset as usize) < data.len());
        if let Some(p) = prev {
            assert!(r.offset > p);
        }
        prev = Some(r.offset);
    }
});
