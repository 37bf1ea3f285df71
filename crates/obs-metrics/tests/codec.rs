//! Property tests of the chunk codec: any sequence of increasing timestamps and any value bits
//! round-trip exactly, including NaN, ±Inf, stale markers and counter resets.
#![allow(clippy::unwrap_used)]

use obs_metrics::chunk::{STALE_NAN_BITS, XorEncoder, decode, encode_sealed};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => (0u64..1_000_000).prop_map(|v| v as f64),
        2 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::from_bits(STALE_NAN_BITS)),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => any::<u64>().prop_map(f64::from_bits),
    ]
}

fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(15_000i64),
        3 => 14_990i64..15_010,
        1 => 1i64..3,
        1 => 1i64..(1 << 21),
        1 => 1i64..(1 << 40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunks_round_trip_bit_exact(
        start in -(1i64 << 50)..(1i64 << 50),
        points in proptest::collection::vec((step(), value()), 0..300),
    ) {
        let mut encoder = XorEncoder::new();
        let mut expected = Vec::new();
        let mut ts = start;
        for (step, value) in points {
            ts += step;
            encoder.append(ts, value);
            expected.push((ts, value.to_bits()));
        }
        let decoded: Vec<(i64, u64)> = decode(&encoder.to_bytes())
            .unwrap()
            .into_iter()
            .map(|(ts, value)| (ts, value.to_bits()))
            .collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn counters_with_resets_round_trip(resets in proptest::collection::vec(0usize..120, 0..5)) {
        let mut encoder = XorEncoder::new();
        let mut expected = Vec::new();
        let mut counter = 0.0;
        for i in 0..120usize {
            counter = if resets.contains(&i) { 0.0 } else { counter + (i % 7) as f64 * 0.5 };
            let ts = 1_700_000_000_000 + i as i64 * 15_000;
            encoder.append(ts, counter);
            expected.push((ts, counter));
        }
        prop_assert_eq!(decode(&encoder.to_bytes()).unwrap(), expected);
    }

    #[test]
    fn sealed_chunks_round_trip_bit_exact_in_either_format(
        start in -(1i64 << 50)..(1i64 << 50),
        decimals in 0u32..4,
        points in proptest::collection::vec((step(), prop_oneof![
            4 => (-1_000_000_000i64..1_000_000_000).prop_map(|v| v as f64),
            1 => value(),
        ]), 1..300),
    ) {
        let factor = 10f64.powi(decimals as i32);
        let mut samples = Vec::new();
        let mut ts = start;
        for (step, value) in points {
            ts += step;
            // Mostly decimal values (as parsed from text), sometimes anything at all.
            let value = if value.is_finite() && value.fract() == 0.0 { value / factor } else { value };
            samples.push((ts, value));
        }
        let decoded: Vec<(i64, u64)> = decode(&encode_sealed(&samples))
            .unwrap()
            .into_iter()
            .map(|(ts, value)| (ts, value.to_bits()))
            .collect();
        let expected: Vec<(i64, u64)> = samples.iter().map(|(ts, value)| (*ts, value.to_bits())).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }
}
