//! Arbitrary bytes as stored log blocks, and arbitrary entries through the block encoder: the
//! decoder never panics on damaged bytes; a block decodes to exactly the entries encoded; and
//! what it rules out or finds for a substring is exactly what its lines hold; its key filter
//! holds its keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_logs::block::{decode, decode_if_contains, encode};
use obs_logs::model::LogEntry;

fuzz_target!(|data: &[u8]| {
    // Damaged or forged bytes: an error or a block, never a panic.
    if let Ok(decoded) = decode(data) {
        for index in 0..decoded.len() {
            let _ = decoded.entry(index);
            let _ = decoded.line(index);
        }
    }
    // Entries from the bytes: the first line is the needle, each further line an entry whose
    // timestamp grows by the line's first byte (in seconds, plus as many nanoseconds) and
    // whose text may hold its own timestamp.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let needle = lines.next().unwrap_or_default().to_owned();
    let mut timestamp: i64 = 1_796_638_272_345_678_901;
    let mut entries = Vec::new();
    for line in lines.take(64) {
        let step = i64::from(line.bytes().next().unwrap_or(0));
        timestamp += step * 1_000_000_007;
        let stamp = obs_core::time::TimestampMs(timestamp / 1_000_000).to_rfc3339();
        let line = line.replace('@', &stamp);
        entries.push(LogEntry {
            timestamp_ns: timestamp,
            line,
            // Pairs repeated across entries and within one, as the block's table shares them.
            metadata: match step % 4 {
                0 => vec![("k".to_owned(), needle.clone())],
                1 => vec![("detected_level".to_owned(), "info".to_owned()), ("k".to_owned(), needle.clone())],
                2 => vec![("k".to_owned(), needle.clone()), ("k".to_owned(), needle.clone())],
                _ => Vec::new(),
            },
        });
    }
    let refs: Vec<&LogEntry> = entries.iter().collect();
    // The needle as a correlation key of every entry: the block's key filter must hold it.
    let key = obs_logs::block::key_hash("k", &needle);
    let bytes = encode(&refs, &[key], 1).bytes;
    assert!(obs_logs::block::may_hold_keys(&bytes, &[key]), "a key of the block was ruled out");
    let decoded = decode(&bytes).expect("a block just encoded decodes");
    assert_eq!(decoded.len(), entries.len());
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(&decoded.entry(index).expect("an entry just encoded"), entry);
    }
    if needle.is_empty() {
        return;
    }
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let holders = entries.iter().filter(|entry| entry.line.contains(needle.as_str())).count();
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(decoded.line_contains(index, &finder), entry.line.contains(needle.as_str()));
    }
    if decode_if_contains(&bytes, &[finder]).expect("decodes").is_none() {
        assert_eq!(holders, 0, "a block holding the needle was ruled out");
    }
});
