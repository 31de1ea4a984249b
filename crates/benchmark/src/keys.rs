//! Keys and values of the generated requests.
//!
//! A key is etcd's: the index of the key in the key space written with Go's
//! `binary.PutVarint` (zig-zag, then base-128 varint) at the start of a `--key-size`
//! buffer, the rest zero. Unlike etcd's tool, which reuses one buffer and so leaves bytes
//! of a longer earlier varint behind a shorter later one, a key here is a pure function of
//! its index: index `i` is always the same key, whatever was generated before.

use rand::rngs::StdRng;
use rand::{Rng, RngExt};

use crate::error::Error;

/// Bytes Go's `binary.PutVarint` needs for `index` (an index is below `i64::MAX`).
pub fn varint_len(index: u64) -> usize {
    let mut zigzag = index << 1;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

/// Writes the key of `index` into `buf` (cleared first): its varint, zero-padded to
/// `key_size` bytes. A varint longer than `key_size` is cut to fit (flag checks refuse
/// such a combination before a run, see [`check_key_space`]).
pub fn write_key(buf: &mut Vec<u8>, index: u64, key_size: usize) {
    buf.clear();
    buf.resize(key_size, 0);
    let mut zigzag = index << 1;
    let mut at = 0;
    while at < key_size {
        let more = zigzag >= 0x80;
        buf[at] = (zigzag as u8 & 0x7f) | if more { 0x80 } else { 0 };
        zigzag >>= 7;
        at += 1;
        if !more {
            break;
        }
    }
}

/// The key of `index`, `key_size` bytes long.
pub fn key(index: u64, key_size: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(key_size);
    write_key(&mut buf, index, key_size);
    buf
}

/// Checks that every index of a key space of `key_space_size` keys fits in `key_size`
/// bytes, so distinct indexes give distinct keys (etcd's tool panics instead).
pub fn check_key_space(key_size: usize, key_space_size: u64) -> Result<(), Error> {
    if key_space_size == 0 {
        return Err(Error::InvalidFlag(
            "expected positive --key-space-size, got (0)".to_string(),
        ));
    }
    let needed = varint_len(key_space_size - 1);
    if key_size < needed {
        return Err(Error::InvalidFlag(format!(
            "--key-size {key_size} is too small for --key-space-size {key_space_size}: \
             keys need at least {needed} bytes"
        )));
    }
    Ok(())
}

/// How the key of each request is chosen within the key space.
#[derive(Debug)]
pub enum KeyChooser {
    /// Request `n` uses key `n % key_space_size` (`--sequential-keys`).
    Sequential,
    /// Each request picks a key uniformly at random from the key space.
    Random(Box<StdRng>),
}

impl KeyChooser {
    /// The key index for request number `request` in a key space of `key_space_size`
    /// keys (at least 1; 0 is treated as 1).
    pub fn index(&mut self, request: u64, key_space_size: u64) -> u64 {
        let space = key_space_size.max(1);
        match self {
            KeyChooser::Sequential => request % space,
            KeyChooser::Random(rng) => rng.random_range(0..space),
        }
    }
}

/// `len` random bytes: the value every put of a run writes, as etcd's tool does.
pub fn random_value(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut value = vec![0u8; len];
    rng.fill_bytes(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keys_are_go_putvarint_zero_padded() {
        // Go: binary.PutVarint(make([]byte, 8), 0) = [0 0 0 0 0 0 0 0]
        assert_eq!(key(0, 8), vec![0; 8]);
        // 1 -> zigzag 2
        assert_eq!(key(1, 8), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        // 63 -> zigzag 126, still one byte; 64 -> zigzag 128 -> [0x80, 0x01]
        assert_eq!(key(63, 4), vec![126, 0, 0, 0]);
        assert_eq!(key(64, 4), vec![0x80, 0x01, 0, 0]);
        // 300 -> zigzag 600 = 0b100_1011000 -> [0xd8, 0x04]
        assert_eq!(key(300, 3), vec![0xd8, 0x04, 0]);
    }

    #[test]
    fn key_is_a_pure_function_of_its_index() {
        let mut buf = Vec::new();
        write_key(&mut buf, 100_000, 8);
        write_key(&mut buf, 1, 8);
        assert_eq!(buf, key(1, 8));
    }

    #[test]
    fn keys_have_exactly_key_size_bytes() {
        for size in [0, 1, 3, 8, 100] {
            assert_eq!(key(5, size).len(), size);
            assert_eq!(key(u64::from(u32::MAX), size).len(), size);
        }
    }

    #[test]
    fn varint_len_matches_encoding() {
        for index in [0, 1, 63, 64, 8191, 8192, 1 << 40, (i64::MAX as u64) - 1] {
            let encoded = key(index, 16);
            let used = encoded.iter().position(|b| b & 0x80 == 0).map(|p| p + 1);
            assert_eq!(used, Some(varint_len(index)), "index {index}");
        }
    }

    #[test]
    fn key_space_must_fit_key_size() {
        assert!(check_key_space(8, 1).is_ok());
        assert!(check_key_space(1, 64).is_ok());
        assert!(check_key_space(1, 65).is_err());
        assert!(check_key_space(0, 1).is_err());
        assert!(check_key_space(8, 0).is_err());
        assert!(check_key_space(10, i64::MAX as u64).is_ok());
        assert!(check_key_space(9, i64::MAX as u64).is_err());
    }

    #[test]
    fn sequential_keys_cycle_through_the_key_space() {
        let mut chooser = KeyChooser::Sequential;
        let picked: Vec<u64> = (0..7).map(|n| chooser.index(n, 3)).collect();
        assert_eq!(picked, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_keys_stay_in_the_key_space_and_cover_it() {
        let mut chooser = KeyChooser::Random(Box::new(StdRng::seed_from_u64(7)));
        let mut seen = [false; 10];
        for n in 0..1000 {
            let index = chooser.index(n, 10);
            assert!(index < 10);
            seen[index as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(chooser.index(0, 1), 0);
        assert_eq!(chooser.index(0, 0), 0);
    }

    #[test]
    fn random_value_has_the_requested_size() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(random_value(&mut rng, 0).len(), 0);
        assert_eq!(random_value(&mut rng, 1024).len(), 1024);
    }
}
