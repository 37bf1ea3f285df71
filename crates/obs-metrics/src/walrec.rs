//! The payload of a metrics write-ahead log record: one accepted batch.
//!
//! Series are logged by id. A record carries the definition (id and label set) of every
//! series it references whose definition is not yet known to be durable in an earlier record,
//! so that replay in log order always meets a definition before its first use; a definition
//! may repeat, harmlessly.
//!
//! Layout (little-endian): `u8 version (2)`; `u32 definition count`, then per definition
//! `u32 series_id` and the label set in `Labels::encode` form; `u32 series count`, then per
//! series `u32 series_id`, `u32 sample count` and per sample `i64 timestamp_ms`, `u64 value
//! bits`.

use obs_core::series::Labels;

const VERSION: u8 = 2;

/// One decoded record.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Record {
    /// Series defined by this record.
    pub(crate) definitions: Vec<(u32, Labels)>,
    /// Samples by series id.
    pub(crate) samples: Vec<(u32, Vec<(i64, f64)>)>,
}

/// Encodes a record.
pub(crate) fn encode<S: AsRef<[(i64, f64)]>>(
    definitions: &[(u32, &Labels)],
    samples: &[(u32, S)],
) -> Vec<u8> {
    let sample_count: usize = samples.iter().map(|(_, s)| s.as_ref().len()).sum();
    let mut buffer = Vec::with_capacity(9 + definitions.len() * 96 + samples.len() * 8 + sample_count * 16);
    buffer.push(VERSION);
    buffer.extend_from_slice(&(definitions.len() as u32).to_le_bytes());
    for (id, labels) in definitions {
        buffer.extend_from_slice(&id.to_le_bytes());
        labels.encode(&mut buffer);
    }
    buffer.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    for (id, series_samples) in samples {
        let series_samples = series_samples.as_ref();
        buffer.extend_from_slice(&id.to_le_bytes());
        buffer.extend_from_slice(&(series_samples.len() as u32).to_le_bytes());
        for &(ts, value) in series_samples {
            buffer.extend_from_slice(&ts.to_le_bytes());
            buffer.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    buffer
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    let (&version, mut rest) = bytes.split_first().ok_or("empty record")?;
    if version != VERSION {
        return Err(format!("unknown metrics record version {version}"));
    }
    let mut record = Record::default();
    let definitions = take_u32(&mut rest)? as usize;
    for _ in 0..definitions {
        let id = take_u32(&mut rest)?;
        let (labels, used) = Labels::decode(rest)?;
        rest = &rest[used..];
        record.definitions.push((id, labels));
    }
    let series_count = take_u32(&mut rest)? as usize;
    for _ in 0..series_count {
        let id = take_u32(&mut rest)?;
        let sample_count = take_u32(&mut rest)? as usize;
        let sample_bytes = sample_count.checked_mul(16).ok_or("sample count overflow")?;
        let raw = rest.get(..sample_bytes).ok_or("truncated samples")?;
        rest = &rest[sample_bytes..];
        let samples = raw
            .chunks_exact(16)
            .map(|sample| {
                let mut ts = [0u8; 8];
                let mut bits = [0u8; 8];
                ts.copy_from_slice(&sample[..8]);
                bits.copy_from_slice(&sample[8..]);
                (i64::from_le_bytes(ts), f64::from_bits(u64::from_le_bytes(bits)))
            })
            .collect();
        record.samples.push((id, samples));
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the last series".to_owned());
    }
    Ok(record)
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
    fn records_round_trip_bit_exact_and_truncation_is_detected() {
        let up = Labels::series([("__name__", "up"), ("job", "node")]).unwrap();
        let stale = f64::from_bits(crate::chunk::STALE_NAN_BITS);
        let samples = vec![(7, vec![(1, 1.0), (2, stale)]), (9, vec![])];
        let encoded = encode(&[(7, &up)], &samples);
        let record = decode(&encoded).unwrap();
        assert_eq!(record.definitions, vec![(7, up)]);
        assert_eq!(record.samples[0].1[1].1.to_bits(), crate::chunk::STALE_NAN_BITS);
        assert_eq!(record.samples[1], (9, vec![]));
        for cut in 0..encoded.len() {
            assert!(decode(&encoded[..cut]).is_err(), "cut at {cut}");
        }
    }
}
