//! The payload of a logs write-ahead log record (one accepted push), and the stored form of
//! one entry in a day index.
//!
//! Record layout (little-endian): `u8 version (1)`; `u32 stream count`; per stream the label
//! set in `Labels::encode` form, `u32 entry count`, then per entry the entry form below.
//!
//! Entry form: `i64 timestamp_ns`, `u32 line length` and the line, `u16 metadata count`, then
//! per pair `u16 name length`, the name, `u32 value length`, the value.

use obs_core::series::Labels;

use crate::model::{LogEntry, StreamEntries};

const VERSION: u8 = 1;

/// Encodes accepted streams as one record.
pub(crate) fn encode(streams: &[StreamEntries]) -> Vec<u8> {
    let bytes: usize = streams
        .iter()
        .map(|stream| 64 + stream.entries.iter().map(entry_size_hint).sum::<usize>())
        .sum();
    let mut buffer = Vec::with_capacity(5 + bytes);
    buffer.push(VERSION);
    buffer.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for stream in streams {
        stream.labels.encode(&mut buffer);
        buffer.extend_from_slice(&(stream.entries.len() as u32).to_le_bytes());
        for entry in &stream.entries {
            encode_entry(entry, &mut buffer);
        }
    }
    buffer
}

fn entry_size_hint(entry: &LogEntry) -> usize {
    14 + entry.line.len()
        + entry
            .metadata
            .iter()
            .map(|(name, value)| 6 + name.len() + value.len())
            .sum::<usize>()
}

/// Appends the entry form of `entry` to `buffer`.
pub(crate) fn encode_entry(entry: &LogEntry, buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(&entry.timestamp_ns.to_le_bytes());
    buffer.extend_from_slice(&(entry.line.len() as u32).to_le_bytes());
    buffer.extend_from_slice(entry.line.as_bytes());
    buffer.extend_from_slice(&(entry.metadata.len() as u16).to_le_bytes());
    for (name, value) in &entry.metadata {
        buffer.extend_from_slice(&(name.len() as u16).to_le_bytes());
        buffer.extend_from_slice(name.as_bytes());
        buffer.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buffer.extend_from_slice(value.as_bytes());
    }
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<StreamEntries>, String> {
    let mut reader = Reader { rest: bytes };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(format!("unknown logs record version {version}"));
    }
    let stream_count = reader.u32()? as usize;
    let mut streams = Vec::with_capacity(stream_count.min(4096));
    for _ in 0..stream_count {
        let (labels, used) = Labels::decode(reader.rest)?;
        reader.rest = reader.rest.get(used..).ok_or("truncated labels")?;
        let entry_count = reader.u32()? as usize;
        let mut entries = Vec::with_capacity(entry_count.min(65_536));
        for _ in 0..entry_count {
            entries.push(reader.entry()?);
        }
        streams.push(StreamEntries { labels, entries });
    }
    if !reader.rest.is_empty() {
        return Err(format!("{} bytes after the last stream", reader.rest.len()));
    }
    Ok(streams)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < len {
            return Err(format!("truncated: {len} bytes needed, {} left", self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn string(&mut self, len: usize) -> Result<String, String> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "invalid UTF-8".to_owned())
    }

    fn entry(&mut self) -> Result<LogEntry, String> {
        let timestamp_ns = i64::from_le_bytes(self.array()?);
        let line_len = self.u32()? as usize;
        let line = self.string(line_len)?;
        let pairs = self.u16()? as usize;
        let mut metadata = Vec::with_capacity(pairs);
        for _ in 0..pairs {
            let name_len = self.u16()? as usize;
            let name = self.string(name_len)?;
            let value_len = self.u32()? as usize;
            let value = self.string(value_len)?;
            metadata.push((name, value));
        }
        Ok(LogEntry {
            timestamp_ns,
            line,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<StreamEntries> {
        vec![
            StreamEntries {
                labels: Labels::from_pairs([("app", "jarvis"), ("env", "prod")]).unwrap(),
                entries: vec![
                    LogEntry {
                        timestamp_ns: 1_700_000_000_000_000_001,
                        line: "level=info msg=\"hello\" run_id=r-1".to_owned(),
                        metadata: vec![("trace_id".to_owned(), "abc".to_owned())],
                    },
                    LogEntry {
                        timestamp_ns: -5,
                        line: String::new(),
                        metadata: Vec::new(),
                    },
                ],
            },
            StreamEntries {
                labels: Labels::from_pairs([("job", "x")]).unwrap(),
                entries: Vec::new(),
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        let streams = sample();
        assert_eq!(decode(&encode(&streams)).unwrap(), streams);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
