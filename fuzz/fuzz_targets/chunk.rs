//! Chunks: arbitrary bytes never panic the decoder; arbitrary samples round-trip bit-exactly
//! through the sealed encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_metrics::chunk::{decode, encode_sealed};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    // Reinterpret the bytes as (timestamp step, value) pairs with increasing timestamps.
    let mut samples = Vec::new();
    let mut ts = 0i64;
    for pair in data.chunks_exact(12).take(2000) {
        let step = i64::from(u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]])) + 1;
        let mut bits = [0u8; 8];
        bits.copy_from_slice(&pair[4..12]);
        ts += step;
        // Small integers divided by powers of ten exercise the decimal format.
        let raw = u64::from_le_bytes(bits);
        let value = if raw & 1 == 0 { (raw >> 40) as f64 / 100.0 } else { f64::from_bits(raw) };
        samples.push((ts, value));
    }
    let decoded = decode(&encode_sealed(&samples)).expect("a sealed chunk decodes");
    assert_eq!(decoded.len(), samples.len());
    for (got, want) in decoded.iter().zip(&samples) {
        assert_eq!((got.0, got.1.to_bits()), (want.0, want.1.to_bits()));
    }
});
