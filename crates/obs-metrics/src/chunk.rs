//! Compressed chunks, in two formats chosen per chunk (format byte first):
//!
//! - [`FORMAT_XOR`]: Gorilla-style delta-of-delta timestamps and XOR'ed values. Open chunks
//!   (the head) are always XOR, since samples append bit by bit.
//! - [`FORMAT_DECIMAL`]: when every value of a sealed chunk is a decimal number (what exporters
//!   print and parsers read), values become integers scaled by a power of ten, stored as
//!   varint deltas beside varint delta-of-delta timestamps: about 2 bytes per sample where XOR
//!   needs 6–7. [`encode_sealed`] keeps whichever is smaller.
//!
//! Written by hand because it is the store's hot path. The bit layout follows Prometheus' XOR
//! chunk (millisecond timestamp buckets of 14, 17 and 20 bits) with one simplification: the
//! first timestamp and value are 64 raw bits each. The layout is in `docs/format/metrics.md`.
//!
//! Stale markers and every other NaN keep their exact bits: values are compared and stored as
//! bit patterns, never as floats.

use obs_core::encoding::{self, VarintError, put_varint, unzigzag, zigzag};

/// The NaN bit pattern Prometheus writes to mark a series stale.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a value is Prometheus' stale marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Writes a bit stream, most significant bit first. The last bits written wait in a word and
/// reach the byte vector 64 at a time, so that appending a sample of a few bits touches only
/// the encoder.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    /// The stream's first bits, as whole 64-bit words.
    bytes: Vec<u8>,
    /// The bits after `bytes`: the low `pending_bits` bits (the others zero), the first
    /// written most significant.
    pending: u64,
    /// Always below 64.
    pending_bits: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `count` bits of `value` (at most 64), most significant first.
    fn write_bits(&mut self, value: u64, count: u8) {
        debug_assert!(count <= 64, "at most 64 bits at a time");
        if count == 0 {
            return;
        }
        let value = value & (u64::MAX >> (64 - u32::from(count)));
        let total_bits = u32::from(self.pending_bits) + u32::from(count);
        // At most 63 + 64 bits.
        let bits = (u128::from(self.pending) << count) | u128::from(value);
        if total_bits >= 64 {
            let left_over = total_bits - 64;
            if self.bytes.len() == self.bytes.capacity() {
                // 32 bytes at a time rather than doubling: every series holds an open chunk
                // of up to 120 samples, and doubling leaves a quarter of them empty on average.
                self.bytes.reserve_exact(32);
            }
            self.bytes
                .extend_from_slice(&((bits >> left_over) as u64).to_be_bytes());
            self.pending = (bits as u64) & ((1u64 << left_over) - 1);
            self.pending_bits = left_over as u8;
        } else {
            self.pending = bits as u64;
            self.pending_bits = total_bits as u8;
        }
    }

    /// The length of the stream in bytes, the last one partial.
    fn byte_len(&self) -> usize {
        self.bytes.len() + usize::from(self.pending_bits).div_ceil(8)
    }

    /// Appends the stream to `out`, the last byte's unused low bits zero.
    fn copy_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        if self.pending_bits > 0 {
            let aligned = self.pending << (64 - self.pending_bits);
            let pending_bytes = usize::from(self.pending_bits).div_ceil(8);
            out.extend_from_slice(&aligned.to_be_bytes()[..pending_bytes]);
        }
    }
}

#[derive(Debug, Clone)]
struct BitReader<'a> {
    bytes: &'a [u8],
    bit_pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, bit_pos: 0 }
    }

    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.bit_pos / 8)?;
        let bit = byte & (0x80 >> (self.bit_pos % 8)) != 0;
        self.bit_pos += 1;
        Some(bit)
    }

    fn read_bits(&mut self, count: u8) -> Option<u64> {
        let mut value = 0u64;
        let mut remaining = count;
        while remaining > 0 {
            let byte = *self.bytes.get(self.bit_pos / 8)?;
            let offset = (self.bit_pos % 8) as u8;
            let available = 8 - offset;
            let take = available.min(remaining);
            let bits = (byte >> (available - take)) & (((1u16 << take) - 1) as u8);
            value = (value << take) | u64::from(bits);
            self.bit_pos += take as usize;
            remaining -= take;
        }
        Some(value)
    }
}

/// Timestamp delta-of-delta buckets: (prefix bits, prefix length, payload bits).
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

fn fits_in(value: i64, bits: u8) -> bool {
    let limit = 1i64 << (bits - 1);
    -limit < value && value <= limit
}

/// Appends samples with strictly increasing timestamps into a compressed chunk.
#[derive(Debug, Clone, Default)]
pub struct XorEncoder {
    bits: BitWriter,
    count: u16,
    first_ts: i64,
    last_ts: i64,
    last_delta: i64,
    last_value_bits: u64,
    leading: u8,
    trailing: u8,
}

impl XorEncoder {
    /// An empty chunk.
    pub fn new() -> XorEncoder {
        XorEncoder {
            leading: 0xff,
            ..XorEncoder::default()
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the chunk has no sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first timestamp (meaningless when empty).
    pub fn first_ts(&self) -> i64 {
        self.first_ts
    }

    /// The last timestamp (meaningless when empty).
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// The last value's bits (meaningless when empty).
    pub fn last_value_bits(&self) -> u64 {
        self.last_value_bits
    }

    /// Appends a sample. The caller guarantees `ts > last_ts()` when not empty and fewer than
    /// `u16::MAX` samples.
    pub fn append(&mut self, ts: i64, value: f64) {
        debug_assert!(self.count == 0 || ts > self.last_ts, "timestamps must increase");
        let value_bits = value.to_bits();
        if self.count == 0 {
            self.bits.write_bits(ts as u64, 64);
            self.bits.write_bits(value_bits, 64);
            self.first_ts = ts;
        } else {
            let delta = ts.wrapping_sub(self.last_ts);
            let dod = delta.wrapping_sub(self.last_delta);
            self.write_dod(dod);
            self.write_value(value_bits);
            self.last_delta = delta;
        }
        self.last_ts = ts;
        self.last_value_bits = value_bits;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.bits.write_bit(false);
            return;
        }
        for (prefix, prefix_len, payload_bits) in DOD_BUCKETS {
            if fits_in(dod, payload_bits) {
                self.bits.write_bits(prefix, prefix_len);
                self.bits.write_bits(dod as u64, payload_bits);
                return;
            }
        }
        self.bits.write_bits(0b1111, 4);
        self.bits.write_bits(dod as u64, 64);
    }

    fn write_value(&mut self, value_bits: u64) {
        let xor = value_bits ^ self.last_value_bits;
        if xor == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.bits.write_bit(false);
            let significant = 64 - self.leading - self.trailing;
            self.bits.write_bits(xor >> self.trailing, significant);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.bits.write_bit(true);
        self.bits.write_bits(u64::from(leading), 5);
        let significant = 64 - leading - trailing;
        // 64 significant bits do not fit in 6 bits; they are written as 0.
        self.bits.write_bits(u64::from(significant % 64), 6);
        self.bits.write_bits(xor >> trailing, significant);
    }

    /// The encoded chunk: format byte [`FORMAT_XOR`], `u16` big-endian sample count, then the
    /// bit stream.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(3 + self.bits.byte_len());
        bytes.push(FORMAT_XOR);
        bytes.extend_from_slice(&self.count.to_be_bytes());
        self.bits.copy_to(&mut bytes);
        bytes
    }
}

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt chunk: {0}")]
pub struct ChunkError(&'static str);

/// Chunk format byte: Gorilla XOR bit stream (open chunks, and sealed ones that are not
/// decimal).
pub const FORMAT_XOR: u8 = 1;
/// Chunk format byte: decimal values as scaled integers, varint deltas.
pub const FORMAT_DECIMAL: u8 = 2;

/// The number of samples an encoded chunk holds (0 for a damaged header).
pub fn sample_count(bytes: &[u8]) -> usize {
    match bytes.get(1..3) {
        Some(count) => u16::from_be_bytes([count[0], count[1]]) as usize,
        None => 0,
    }
}

/// Decodes every sample of an encoded chunk, of any format.
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    match bytes.split_first() {
        Some((&FORMAT_XOR, rest)) => decode_xor(rest),
        Some((&FORMAT_DECIMAL, rest)) => decode_decimal(rest),
        Some(_) => Err(ChunkError("unknown chunk format")),
        None => Err(ChunkError("empty chunk")),
    }
}

/// Encodes a sealed chunk in the smaller of the two formats. Samples must have strictly
/// increasing timestamps; at most `u16::MAX` of them.
pub fn encode_sealed(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut xor = XorEncoder::new();
    for &(ts, value) in samples {
        xor.append(ts, value);
    }
    let xor = xor.to_bytes();
    match encode_decimal(samples) {
        Some(decimal) if decimal.len() < xor.len() => decimal,
        _ => xor,
    }
}

/// The smallest power of ten (up to 10^9) that turns every value into an integer exactly
/// (bit for bit after dividing back), with the scaled integers; `None` when there is none
/// (NaN, infinities, -0.0, binary fractions, huge values).
fn decimal_scale(samples: &[(i64, f64)]) -> Option<(u8, Vec<i64>)> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53: integers exact in f64
    'scales: for scale in 0u8..=9 {
        let factor = 10f64.powi(i32::from(scale));
        let mut scaled = Vec::with_capacity(samples.len());
        for &(_, value) in samples {
            let candidate = (value * factor).round();
            if !candidate.is_finite() || candidate.abs() >= LIMIT {
                return None;
            }
            // Check through the integer, as decoding will see it (this also refuses -0.0).
            let integer = candidate as i64;
            if (integer as f64 / factor).to_bits() != value.to_bits() {
                continue 'scales;
            }
            scaled.push(integer);
        }
        return Some((scale, scaled));
    }
    None
}

fn put_signed(buffer: &mut Vec<u8>, value: i64) {
    put_varint(buffer, zigzag(value));
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, ChunkError> {
    encoding::get_varint(bytes, pos).map_err(|err| match err {
        VarintError::Truncated => ChunkError("truncated varint"),
        VarintError::TooLong => ChunkError("varint longer than 64 bits"),
    })
}

fn get_signed(bytes: &[u8], pos: &mut usize) -> Result<i64, ChunkError> {
    get_varint(bytes, pos).map(unzigzag)
}

/// Format [`FORMAT_DECIMAL`]: `u16` BE count, `u8` scale, then zigzag varints: the first
/// timestamp, the first delta, then deltas of deltas; the first scaled value, then deltas.
fn encode_decimal(samples: &[(i64, f64)]) -> Option<Vec<u8>> {
    let (scale, scaled) = decimal_scale(samples)?;
    let mut buffer = Vec::with_capacity(8 + samples.len() * 3);
    buffer.push(FORMAT_DECIMAL);
    buffer.extend_from_slice(&(samples.len() as u16).to_be_bytes());
    buffer.push(scale);
    let mut previous_ts = 0i64;
    let mut previous_delta = 0i64;
    for (index, &(ts, _)) in samples.iter().enumerate() {
        match index {
            0 => put_signed(&mut buffer, ts),
            1 => {
                previous_delta = ts.wrapping_sub(previous_ts);
                put_signed(&mut buffer, previous_delta);
            }
            _ => {
                let delta = ts.wrapping_sub(previous_ts);
                put_signed(&mut buffer, delta.wrapping_sub(previous_delta));
                previous_delta = delta;
            }
        }
        previous_ts = ts;
    }
    let mut previous = 0i64;
    for value in scaled {
        put_signed(&mut buffer, value.wrapping_sub(previous));
        previous = value;
    }
    Some(buffer)
}

fn decode_decimal(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let header = bytes.get(..3).ok_or(ChunkError("missing header"))?;
    let count = u16::from_be_bytes([header[0], header[1]]) as usize;
    let scale = header[2];
    if scale > 9 {
        return Err(ChunkError("decimal scale out of range"));
    }
    let factor = 10f64.powi(i32::from(scale));
    let mut pos = 3;
    let mut timestamps = Vec::with_capacity(count);
    let mut ts = 0i64;
    let mut delta = 0i64;
    for index in 0..count {
        let raw = get_signed(bytes, &mut pos)?;
        match index {
            0 => ts = raw,
            1 => {
                delta = raw;
                ts = ts.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(raw);
                ts = ts.wrapping_add(delta);
            }
        }
        timestamps.push(ts);
    }
    let mut samples = Vec::with_capacity(count);
    let mut value = 0i64;
    for ts in timestamps {
        value = value.wrapping_add(get_signed(bytes, &mut pos)?);
        samples.push((ts, value as f64 / factor));
    }
    if pos != bytes.len() {
        return Err(ChunkError("trailing bytes after the last sample"));
    }
    Ok(samples)
}

fn decode_xor(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let header = bytes.get(..2).ok_or(ChunkError("missing header"))?;
    let count = u16::from_be_bytes([header[0], header[1]]) as usize;
    let mut samples = Vec::with_capacity(count);
    let mut reader = BitReader::new(&bytes[2..]);
    let truncated = ChunkError("truncated bit stream");
    if count == 0 {
        return Ok(samples);
    }
    let mut ts = reader.read_bits(64).ok_or(truncated.clone())? as i64;
    let mut value_bits = reader.read_bits(64).ok_or(truncated.clone())?;
    samples.push((ts, f64::from_bits(value_bits)));
    let mut delta = 0i64;
    let mut leading = 0u8;
    let mut trailing = 0u8;
    for _ in 1..count {
        // Delta of delta.
        let mut prefix_len = 0;
        while prefix_len < 4 && reader.read_bit().ok_or(truncated.clone())? {
            prefix_len += 1;
        }
        let dod = match prefix_len {
            0 => 0,
            4 => reader.read_bits(64).ok_or(truncated.clone())? as i64,
            _ => {
                let payload_bits = DOD_BUCKETS[prefix_len - 1].2;
                let raw = reader.read_bits(payload_bits).ok_or(truncated.clone())? as i64;
                if raw > 1i64 << (payload_bits - 1) {
                    raw - (1i64 << payload_bits)
                } else {
                    raw
                }
            }
        };
        delta = delta.wrapping_add(dod);
        ts = ts.wrapping_add(delta);
        // Value.
        if reader.read_bit().ok_or(truncated.clone())? {
            if reader.read_bit().ok_or(truncated.clone())? {
                leading = reader.read_bits(5).ok_or(truncated.clone())? as u8;
                let mut significant = reader.read_bits(6).ok_or(truncated.clone())? as u8;
                if significant == 0 {
                    significant = 64;
                }
                if u16::from(leading) + u16::from(significant) > 64 {
                    return Err(ChunkError("value window exceeds 64 bits"));
                }
                trailing = 64 - leading - significant;
            }
            let significant = 64 - leading - trailing;
            let xor = reader.read_bits(significant).ok_or(truncated.clone())?;
            value_bits ^= xor << trailing;
        }
        samples.push((ts, f64::from_bits(value_bits)));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut encoder = XorEncoder::new();
        for &(ts, value) in samples {
            encoder.append(ts, value);
        }
        let decoded = decode(&encoder.to_bytes()).unwrap();
        assert_eq!(decoded.len(), samples.len());
        for (got, want) in decoded.iter().zip(samples) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1.to_bits(), want.1.to_bits(), "value bits at ts {}", want.0);
        }
    }

    #[test]
    fn special_values_keep_their_bits() {
        round_trip(&[
            (1000, 1.0),
            (2000, f64::NAN),
            (3000, f64::from_bits(STALE_NAN_BITS)),
            (4000, f64::INFINITY),
            (5000, f64::NEG_INFINITY),
            (6000, -0.0),
            (7000, 0.0),
            (8000, f64::MIN_POSITIVE),
            (9000, f64::MAX),
        ]);
    }

    #[test]
    fn every_timestamp_bucket_round_trips() {
        let mut ts = -5_000_000_000_000i64;
        let mut samples = Vec::new();
        for step in [
            15_000i64,
            15_000,
            15_001,
            14_999,
            8192,
            8193,
            65_536,
            65_537,
            524_288,
            524_289,
            1 << 40,
            1,
            1,
        ] {
            ts += step;
            samples.push((ts, step as f64));
        }
        round_trip(&samples);
    }

    #[test]
    fn regular_scrapes_compress_well() {
        let mut encoder = XorEncoder::new();
        let mut counter = 1_000_000.0;
        for i in 0..120 {
            counter += 15.0 * 3.0;
            encoder.append(1_700_000_000_000 + i * 15_000, counter);
        }
        let bytes = encoder.to_bytes();
        assert!(bytes.len() < 120 * 3, "{} bytes for 120 samples", bytes.len());
    }

    /// The bit writer as it was before it kept pending bits in a word: one byte pushed at a
    /// time. Chunks on disk were written by it, so the new writer must give the same bytes.
    #[derive(Default)]
    struct ByteAtATimeWriter {
        bytes: Vec<u8>,
        used_in_last: u8,
    }

    impl ByteAtATimeWriter {
        fn write_bits(&mut self, value: u64, count: u8) {
            let mut remaining = count;
            while remaining > 0 {
                if self.used_in_last == 0 {
                    self.bytes.push(0);
                }
                let free = 8 - self.used_in_last;
                let take = free.min(remaining);
                let shift = remaining - take;
                let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
                if let Some(last) = self.bytes.last_mut() {
                    *last |= chunk << (free - take);
                }
                self.used_in_last = (self.used_in_last + take) % 8;
                remaining -= take;
            }
        }
    }

    #[test]
    fn the_bit_writer_writes_what_the_byte_at_a_time_writer_wrote() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut writer = BitWriter::default();
            let mut reference = ByteAtATimeWriter::default();
            for _ in 0..rng.random_range(0..300) {
                let count = rng.random_range(0..=64u8);
                // Bits above `count` must be ignored.
                let value: u64 = rng.random();
                writer.write_bits(value, count);
                reference.write_bits(value, count);
                let mut bytes = Vec::new();
                writer.copy_to(&mut bytes);
                assert_eq!(bytes, reference.bytes);
                assert_eq!(writer.byte_len(), reference.bytes.len());
            }
        }
    }

    /// `XorEncoder::append` as it was with the byte-at-a-time writer, for random series.
    fn reference_xor_chunk(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut bits = ByteAtATimeWriter::default();
        let (mut last_ts, mut last_delta, mut last_value_bits) = (0i64, 0i64, 0u64);
        let (mut leading, mut trailing) = (0xffu8, 0u8);
        for (index, &(ts, value)) in samples.iter().enumerate() {
            let value_bits = value.to_bits();
            if index == 0 {
                bits.write_bits(ts as u64, 64);
                bits.write_bits(value_bits, 64);
            } else {
                let delta = ts.wrapping_sub(last_ts);
                let dod = delta.wrapping_sub(last_delta);
                let bucket = DOD_BUCKETS.iter().find(|bucket| fits_in(dod, bucket.2));
                if dod == 0 {
                    bits.write_bits(0, 1);
                } else if let Some(&(prefix, prefix_len, payload_bits)) = bucket {
                    bits.write_bits(prefix, prefix_len);
                    bits.write_bits(dod as u64, payload_bits);
                } else {
                    bits.write_bits(0b1111, 4);
                    bits.write_bits(dod as u64, 64);
                }
                let xor = value_bits ^ last_value_bits;
                if xor == 0 {
                    bits.write_bits(0, 1);
                } else {
                    bits.write_bits(1, 1);
                    let new_leading = (xor.leading_zeros() as u8).min(31);
                    let new_trailing = xor.trailing_zeros() as u8;
                    if leading != 0xff && new_leading >= leading && new_trailing >= trailing {
                        bits.write_bits(0, 1);
                        bits.write_bits(xor >> trailing, 64 - leading - trailing);
                    } else {
                        (leading, trailing) = (new_leading, new_trailing);
                        let significant = 64 - leading - trailing;
                        bits.write_bits(1, 1);
                        bits.write_bits(u64::from(leading), 5);
                        bits.write_bits(u64::from(significant % 64), 6);
                        bits.write_bits(xor >> trailing, significant);
                    }
                }
                last_delta = delta;
            }
            last_ts = ts;
            last_value_bits = value_bits;
        }
        let mut chunk = vec![FORMAT_XOR];
        chunk.extend_from_slice(&(samples.len() as u16).to_be_bytes());
        chunk.extend_from_slice(&bits.bytes);
        chunk
    }

    #[test]
    fn chunks_are_the_bytes_the_byte_at_a_time_writer_wrote() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for _ in 0..500 {
            let mut samples = Vec::new();
            let mut ts: i64 = rng.random_range(-(1i64 << 50)..(1i64 << 50));
            let mut counter = 0.0;
            for _ in 0..rng.random_range(1..=240) {
                ts += match rng.random_range(0..6) {
                    0 | 1 => 1000,
                    2 => rng.random_range(990..1010),
                    3 => rng.random_range(1..(1 << 21)),
                    4 => rng.random_range(1..(1 << 40)),
                    _ => 15_000,
                };
                let value = match rng.random_range(0..6) {
                    0 | 1 => {
                        counter += f64::from(rng.random_range(0..100u32));
                        counter
                    }
                    2 => f64::from(rng.random_range(0..1000u32)) / 100.0,
                    3 => f64::from_bits(rng.random()),
                    4 => f64::from_bits(STALE_NAN_BITS),
                    _ => rng.random(),
                };
                samples.push((ts, value));
            }
            let mut encoder = XorEncoder::new();
            for &(ts, value) in &samples {
                encoder.append(ts, value);
            }
            assert_eq!(encoder.to_bytes(), reference_xor_chunk(&samples));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[FORMAT_XOR, 0, 5, 1, 2, 3]).is_err());
        assert!(decode(&[FORMAT_DECIMAL, 0, 5, 1, 2, 3]).is_err());
        assert!(decode(&[9, 0, 0]).is_err());
        assert_eq!(decode(&[FORMAT_XOR, 0, 0]).unwrap(), vec![]);
    }

    #[test]
    fn decimal_values_take_the_decimal_format_and_round_trip() {
        // Values as a text parser produces them: the doubles nearest to 2-decimal numbers.
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000 + (i % 3),
                    ((1234.0 + i as f64 * 0.37) * 100.0).round() / 100.0,
                )
            })
            .collect();
        let sealed = encode_sealed(&samples);
        assert_eq!(sealed[0], FORMAT_DECIMAL);
        let decoded = decode(&sealed).unwrap();
        assert_eq!(decoded.len(), samples.len());
        for (got, want) in decoded.iter().zip(&samples) {
            assert_eq!((got.0, got.1.to_bits()), (want.0, want.1.to_bits()));
        }
        let mut xor = XorEncoder::new();
        for &(ts, value) in &samples {
            xor.append(ts, value);
        }
        assert!(
            sealed.len() * 2 < xor.to_bytes().len(),
            "{} vs {}",
            sealed.len(),
            xor.to_bytes().len()
        );
        // Specials fall back to XOR, bit-exact.
        let specials = [
            (1, -0.0),
            (2, f64::NAN),
            (3, f64::from_bits(STALE_NAN_BITS)),
            (4, 0.1 + 0.2),
        ];
        let sealed = encode_sealed(&specials);
        assert_eq!(sealed[0], FORMAT_XOR);
        let decoded = decode(&sealed).unwrap();
        for (got, want) in decoded.iter().zip(&specials) {
            assert_eq!(got.1.to_bits(), want.1.to_bits());
        }
    }
}
