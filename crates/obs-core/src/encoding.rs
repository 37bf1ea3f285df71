//! Small byte encodings shared by the on-disk formats: LEB128 varints, zigzag for signed
//! values, and 64-bit FNV-1a (stable across versions and processes, so fit for bytes on disk
//! and for fingerprints that must match Prometheus').

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes ended inside it.
    Truncated,
    /// More than 64 bits.
    TooLong,
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 varint at `*at`, moving `*at` past it.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(VarintError::Truncated)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

/// A signed value as an unsigned one, small magnitudes small (protobuf's zigzag).
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// The FNV-1a 64 offset basis: the hash of nothing.
pub const FNV1A_64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// The FNV-1a 64 prime.
const FNV1A_64_PRIME: u64 = 0x0100_0000_01b3;

/// Continues the FNV-1a 64 hash `hash` over `bytes`.
pub fn fnv1a_64(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV1A_64_PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_fail_cleanly() {
        let values = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut bytes = Vec::new();
        for value in values {
            put_varint(&mut bytes, value);
        }
        let mut at = 0;
        for value in values {
            assert_eq!(get_varint(&bytes, &mut at), Ok(value));
        }
        assert_eq!(at, bytes.len());
        assert_eq!(get_varint(&[0x80], &mut 0), Err(VarintError::Truncated));
        assert_eq!(get_varint(&[0xff; 10], &mut 0), Err(VarintError::TooLong));
    }

    #[test]
    fn zigzag_keeps_small_magnitudes_small() {
        for (value, encoded) in [
            (0, 0),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag(value), encoded);
            assert_eq!(unzigzag(encoded), value);
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a_64(FNV1A_64_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(FNV1A_64_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(FNV1A_64_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }
}
