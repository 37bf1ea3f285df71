//! The payload of a metrics write-ahead log record: one accepted batch.
//!
//! Layout (little-endian): `u8 version (1)`, `u32 series count`, then per series the label set
//! in `Labels::encode` form, `u32 sample count`, and per sample `i64 timestamp_ms` and `u64`
//! value bits. Self-contained on purpose: a record replays without any other state.

use obs_core::series::{Labels, SeriesSamples};

const VERSION: u8 = 1;

/// Encodes an accepted batch.
pub(crate) fn encode(batch: &[SeriesSamples]) -> Vec<u8> {
    let samples: usize = batch.iter().map(|series| series.samples.len()).sum();
    let mut buffer = Vec::with_capacity(5 + batch.len() * 64 + samples * 16);
    buffer.push(VERSION);
    buffer.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for series in batch {
        series.labels.encode(&mut buffer);
        buffer.extend_from_slice(&(series.samples.len() as u32).to_le_bytes());
        for &(ts, value) in &series.samples {
            buffer.extend_from_slice(&ts.to_le_bytes());
            buffer.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    buffer
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<SeriesSamples>, String> {
    let (&version, rest) = bytes.split_first().ok_or("empty record")?;
    if version != VERSION {
        return Err(format!("unknown metrics record version {version}"));
    }
    let mut rest = rest;
    let series_count = take_u32(&mut rest)? as usize;
    let mut batch = Vec::with_capacity(series_count.min(1 << 16));
    for _ in 0..series_count {
        let (labels, used) = Labels::decode(rest)?;
        rest = &rest[used..];
        let sample_count = take_u32(&mut rest)? as usize;
        let sample_bytes = sample_count.checked_mul(16).ok_or("sample count overflow")?;
        let samples_raw = rest.get(..sample_bytes).ok_or("truncated samples")?;
        rest = &rest[sample_bytes..];
        let samples = samples_raw
            .chunks_exact(16)
            .map(|raw| {
                let mut ts = [0u8; 8];
                let mut bits = [0u8; 8];
                ts.copy_from_slice(&raw[..8]);
                bits.copy_from_slice(&raw[8..]);
                (i64::from_le_bytes(ts), f64::from_bits(u64::from_le_bytes(bits)))
            })
            .collect();
        batch.push(SeriesSamples { labels, samples });
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the last series".to_owned());
    }
    Ok(batch)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, String> {
    let raw = rest.get(..4).ok_or("truncated count")?;
    let value = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    *rest = &rest[4..];
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_bit_exact() {
        let batch = vec![
            SeriesSamples {
                labels: Labels::series([("__name__", "up"), ("job", "node")]).unwrap(),
                samples: vec![(1, 1.0), (2, f64::from_bits(crate::chunk::STALE_NAN_BITS))],
            },
            SeriesSamples {
                labels: Labels::series([("__name__", "x")]).unwrap(),
                samples: vec![],
            },
        ];
        let decoded = decode(&encode(&batch)).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].labels, batch[0].labels);
        assert_eq!(decoded[0].samples[1].1.to_bits(), crate::chunk::STALE_NAN_BITS);
        let encoded = encode(&batch);
        for cut in 0..encoded.len() {
            assert!(decode(&encoded[..cut]).is_err(), "cut at {cut}");
        }
    }
}
