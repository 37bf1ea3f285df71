//! A block: entries of one stream in time order, compressed together, the unit a day index
//! stores and finds (format: `docs/format/logs.md`).
//!
//! The entries are laid out by column, in four zstd frames of their own, so that like bytes
//! sit together. What varies from line to line is taken out of the lines and replaced by one
//! marker byte each, so that what is left of a line is mostly its template, which compresses
//! to little:
//! - the entry's own timestamp in RFC 3339 UTC form (the CRI prefix, a logfmt `ts=`, a JSON
//!   `"ts"`: most lines have one), which the timestamp columns hold already (measured: 43 %
//!   fewer compressed bytes for container lines);
//! - ids (runs of letters and digits of 8 bytes or more with a digit: trace, span, run and
//!   user ids, hashes), each distinct id once in the block's dictionary, the first frame;
//! - numbers, bit-packed per field (the text before them) in the last frame.
//!
//! Each distinct line left (a template) is stored once per block, and a line names its
//! template. The header holds a Bloom filter of the block's correlation keys, read in place:
//! a key lookup decodes only the blocks that may hold the key.
//!
//! The dictionary and the stored lines decide, for most needles, that a block cannot hold a
//! substring before anything else is decompressed ([`decode_if_contains`]); the rules are in
//! `docs/format/logs.md`, and the property test below and the `log_block` fuzz target check
//! them against the lines themselves. Measured on the logs benchmark: 15.5× smaller than the
//! raw text with the index, against 4× for zstd over whole lines in tantivy's doc store.
//!
//! The decoder is written for untrusted bytes: every length is checked, nothing panics, and the
//! decompressed size is bounded before anything is allocated.

use std::borrow::Cow;
use std::io::Write as _;

use obs_core::encoding::{FNV1A_64_OFFSET, VarintError, fnv1a_64, get_varint, put_varint, unzigzag, zigzag};
use obs_core::time::Day;

use crate::model::LogEntry;

/// The format version this code writes and reads.
const VERSION: u8 = 1;
/// Stands for the entry's timestamp in a line (ASCII "record separator"; a line that has this
/// byte itself is stored as it is).
const MARKER: u8 = 0x1e;
/// Ends every block, after its length (so a block can be found at the end of bytes that hold
/// more, such as a stored document).
const TRAILER_MAGIC: &[u8; 4] = b"OBK1";
/// The largest payload a block may decompress to.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// How a line's timestamp was written, when it was replaced by the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Not replaced.
    None = 0,
    /// `2026-12-07T10:11:12Z` (the entry's second).
    Seconds = 1,
    /// `2026-12-07T10:11:12.345Z` (its millisecond).
    Millis = 2,
    /// `2026-12-07T10:11:12.345678901Z` (its nanosecond).
    Nanos = 3,
}

impl Stamp {
    fn from_bits(bits: u64) -> Stamp {
        match bits & 3 {
            1 => Stamp::Seconds,
            2 => Stamp::Millis,
            3 => Stamp::Nanos,
            _ => Stamp::None,
        }
    }
}

/// Writes `value` as `width` decimal digits at `out[*at..]`.
fn put_digits(out: &mut [u8; 32], at: &mut usize, value: i64, width: usize) {
    let mut value = value.unsigned_abs();
    for position in (0..width).rev() {
        if let Some(slot) = out.get_mut(*at + position) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
    }
    *at += width;
}

fn put_byte(out: &mut [u8; 32], at: &mut usize, byte: u8) {
    if let Some(slot) = out.get_mut(*at) {
        *slot = byte;
    }
    *at += 1;
}

/// `timestamp_ns` in RFC 3339 UTC with the precision of `stamp`, into `out`; the used length.
fn format_stamp(timestamp_ns: i64, stamp: Stamp, out: &mut [u8; 32]) -> usize {
    let seconds = timestamp_ns.div_euclid(1_000_000_000);
    let nanos = timestamp_ns.rem_euclid(1_000_000_000);
    let day = Day(i32::try_from(seconds.div_euclid(86_400)).unwrap_or(0));
    let (year, month, date) = day.to_ymd();
    let in_day = seconds.rem_euclid(86_400);
    let mut at = 0;
    put_digits(out, &mut at, i64::from(year), 4);
    for (separator, value) in [
        (b'-', i64::from(month)),
        (b'-', i64::from(date)),
        (b'T', in_day / 3600),
        (b':', in_day / 60 % 60),
        (b':', in_day % 60),
    ] {
        put_byte(out, &mut at, separator);
        put_digits(out, &mut at, value, 2);
    }
    match stamp {
        Stamp::Millis => {
            put_byte(out, &mut at, b'.');
            put_digits(out, &mut at, nanos / 1_000_000, 3);
        }
        Stamp::Nanos => {
            put_byte(out, &mut at, b'.');
            put_digits(out, &mut at, nanos, 9);
        }
        Stamp::Seconds | Stamp::None => {}
    }
    put_byte(out, &mut at, b'Z');
    at
}

/// Which stamp of `timestamp_ns` the line holds (the first one found decides), if it may be
/// replaced.
fn find_stamp(line: &[u8], timestamp_ns: i64) -> Stamp {
    if timestamp_ns < 0 || memchr::memchr(MARKER, line).is_some() {
        return Stamp::None;
    }
    let mut buffer = [0u8; 32];
    let length = format_stamp(timestamp_ns, Stamp::Nanos, &mut buffer);
    // The date and time to the second, shared by every precision.
    let Some(prefix) = buffer.get(..19) else {
        return Stamp::None;
    };
    let full = buffer.get(..length).unwrap_or_default();
    for at in memchr::memmem::find_iter(line, prefix) {
        let rest = line.get(at + 19..).unwrap_or_default();
        if rest.first() == Some(&b'Z') {
            return Stamp::Seconds;
        }
        let fraction = full.get(19..).unwrap_or_default();
        if rest.starts_with(fraction) {
            return Stamp::Nanos;
        }
        if rest.len() >= 5 && rest.get(..4) == fraction.get(..4) && rest.get(4) == Some(&b'Z') {
            return Stamp::Millis;
        }
    }
    Stamp::None
}

/// A block's summary, kept beside its bytes in the day index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// The zstd level it was compressed at.
    pub level: i32,
    pub entries: u32,
    pub line_bytes: u64,
    pub min_ns: i64,
    pub max_ns: i64,
}

/// Stands for an id in a stored line (ASCII "unit separator"; a line that has this byte itself
/// keeps its ids in place).
const ID_MARKER: u8 = 0x1f;
/// An id: a run of ASCII letters and digits this long or longer with a digit in it.
const MIN_ID_BYTES: usize = 8;
/// Header flag: some line kept its ids in place (it had the id marker byte itself).
const FLAG_IDS_IN_PLACE: u8 = 1;

/// Whether a maximal run of ASCII letters and digits is an id.
fn is_id(run: &[u8]) -> bool {
    run.len() >= MIN_ID_BYTES && run.iter().any(u8::is_ascii_digit)
}

/// Stands for a number in a stored line (ASCII "group separator"; a line that has this byte
/// itself keeps its numbers in place).
const NUMBER_MARKER: u8 = 0x1d;

/// The fields of the numbers of `lines` (stored texts): for each line, the field of each of
/// its numbers, and how many fields there are. A number's field is the text just before it (up
/// to 16 bytes, not past the previous marker) and how many numbers of the line came after the
/// same text before it: `"duration_ms":` is one field in every template that has it, and the
/// four octets of an address are four.
fn number_fields<'a>(lines: impl Iterator<Item = &'a [u8]>) -> (Vec<Vec<usize>>, usize) {
    let mut fields: std::collections::HashMap<(&[u8], usize), usize, foldhash::fast::RandomState> =
        std::collections::HashMap::default();
    let mut per_line = Vec::new();
    let mut seen: Vec<(&[u8], usize)> = Vec::new();
    for text in lines {
        let mut line_fields = Vec::new();
        seen.clear();
        let mut previous_marker = 0;
        for (at, &byte) in text.iter().enumerate() {
            if !matches!(byte, MARKER | ID_MARKER | NUMBER_MARKER) {
                continue;
            }
            if byte == NUMBER_MARKER {
                let from = at.saturating_sub(16).max(previous_marker);
                let context = text.get(from..at).unwrap_or_default();
                let occurrence = match seen.iter_mut().find(|(seen, _)| *seen == context) {
                    Some((_, count)) => {
                        *count += 1;
                        *count
                    }
                    None => {
                        seen.push((context, 0));
                        0
                    }
                };
                let next = fields.len();
                line_fields.push(*fields.entry((context, occurrence)).or_insert(next));
            }
            previous_marker = at + 1;
        }
        per_line.push(line_fields);
    }
    (per_line, fields.len())
}

/// The numbers column: per field (see [`number_fields`]), in order of first use, the field's
/// values in line order, bit-packed ([`pack_field`]). `numbered_lines` are (first number,
/// start, end in `stored`).
fn number_column(stored: &[u8], numbered_lines: &[(usize, usize, usize)], numbers: &[u64]) -> Vec<u8> {
    let texts = numbered_lines
        .iter()
        .map(|&(_, start, end)| stored.get(start..end).unwrap_or_default());
    let (per_line, field_count) = number_fields(texts);
    let mut by_field: Vec<Vec<u64>> = vec![Vec::new(); field_count];
    for (&(first_number, _, _), line_fields) in numbered_lines.iter().zip(&per_line) {
        for (position, &field) in line_fields.iter().enumerate() {
            if let Some(values) = by_field.get_mut(field) {
                values.push(numbers.get(first_number + position).copied().unwrap_or(0));
            }
        }
    }
    let mut column = Vec::with_capacity(numbers.len() * 2);
    for values in &by_field {
        pack_field(values, &mut column);
    }
    column
}

/// One field's values, bit-packed: the smallest as a varint, the bit width of the largest
/// difference from it as a byte, then each difference in that many bits, lowest bits first.
/// Uniform values (a size, a latency, an octet) then cost about their information, and a
/// constant nothing (zstd's entropy coder cannot do that on varints of mixed fields).
fn pack_field(values: &[u64], out: &mut Vec<u8>) {
    let min = values.iter().copied().min().unwrap_or(0);
    let spread = values.iter().map(|value| value - min).max().unwrap_or(0);
    let width = 64 - spread.leading_zeros();
    put_varint(out, min);
    out.push(width as u8);
    let mut buffer = 0u128;
    let mut filled = 0u32;
    for value in values {
        buffer |= u128::from(value - min) << filled;
        filled += width;
        while filled >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(buffer as u8);
    }
}

/// Reads `count` values packed by [`pack_field`].
fn unpack_field(reader: &mut Reader<'_>, count: usize, into: &mut Vec<u64>) -> Result<(), BlockError> {
    let min = reader.varint()?;
    let width = u32::from(
        *reader
            .bytes
            .get(reader.at)
            .ok_or(BlockError("truncated numbers"))?,
    );
    reader.at += 1;
    if width > 64 {
        return Err(BlockError("number width out of range"));
    }
    let bytes = (count as u64 * u64::from(width)).div_ceil(8) as usize;
    let packed = reader
        .bytes
        .get(reader.at..reader.at + bytes)
        .ok_or(BlockError("truncated numbers"))?;
    reader.at += bytes;
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut buffer = 0u128;
    let mut filled = 0u32;
    let mut next = packed.iter();
    for _ in 0..count {
        while filled < width {
            buffer |= u128::from(*next.next().unwrap_or(&0)) << filled;
            filled += 8;
        }
        let value = (buffer as u64) & mask;
        buffer >>= width;
        filled -= width;
        into.push(min.checked_add(value).ok_or(BlockError("number out of range"))?);
    }
    Ok(())
}

/// The value of a run of digits that prints back as the same digits.
fn number_value(run: &[u8]) -> Option<u64> {
    if run.is_empty() || run.len() > 18 || (run.len() > 1 && run.first() == Some(&b'0')) {
        return None;
    }
    Some(
        run.iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0')),
    )
}

/// The maximal runs of bytes `in_run` accepts in `text`, as (start, end).
fn runs(text: &[u8], in_run: fn(&u8) -> bool) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + text.get(at..)?.iter().position(in_run)?;
        let end = start
            + text
                .get(start..)?
                .iter()
                .position(|byte| !in_run(byte))
                .unwrap_or(text.len() - start);
        at = end;
        Some((start, end))
    })
}

/// The maximal runs of ASCII letters and digits of `text`, as (start, end).
fn alphanumeric_runs(text: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    runs(text, u8::is_ascii_alphanumeric)
}

/// The maximal runs of ASCII digits of `text`, as (start, end).
fn digit_runs(text: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    runs(text, u8::is_ascii_digit)
}

/// Encodes `entries` (in time order) at zstd `level`.
///
/// Besides the timestamps, the ids of the lines (runs of letters and digits of 8 bytes or more
/// with a digit: trace, span, run and user ids, hashes) go to a dictionary of the block, each
/// distinct id once, compressed by itself: a substring filter whose needle holds an id reads
/// only the dictionary to rule a block out.
pub fn encode(entries: &[&LogEntry], keys: &[u64], level: i32) -> Encoded {
    let line_bytes: usize = entries.iter().map(|entry| entry.line.len()).sum();
    let mut columns = Vec::with_capacity(entries.len() * 12);
    let mut previous_ms = 0i64;
    for entry in entries {
        let ms = entry.timestamp_ns.div_euclid(1_000_000);
        put_varint(&mut columns, zigzag(ms.wrapping_sub(previous_ms)));
        previous_ms = ms;
    }
    for entry in entries {
        put_varint(&mut columns, entry.timestamp_ns.rem_euclid(1_000_000) as u64);
    }
    // The lines as stored (stamps and ids replaced by markers), their descriptors, the
    // dictionary and the references to it.
    let mut lines = Vec::with_capacity(line_bytes);
    let mut descriptors = Vec::with_capacity(entries.len());
    let mut dictionary: Vec<u8> = Vec::new();
    let mut ids: std::collections::HashMap<&[u8], u32, foldhash::fast::RandomState> =
        std::collections::HashMap::default();
    let mut references = Vec::new();
    let mut id_count = 0u32;
    let mut flags = 0u8;
    let mut stamped = Vec::new();
    let mut extracted = Vec::new();
    let mut numbers: Vec<u64> = Vec::new();
    // Per line with its numbers taken out: where they start in `numbers`, and where the
    // line is in `lines`.
    let mut numbered_lines: Vec<(usize, usize, usize)> = Vec::new();
    let mut segments: Vec<(usize, usize)> = Vec::new();
    let mut buffer = [0u8; 32];
    for entry in entries {
        let line = entry.line.as_bytes();
        let stamp = find_stamp(line, entry.timestamp_ns);
        stamped.clear();
        // Where each stretch of the stamped line starts, in it and in the line.
        segments.clear();
        segments.push((0, 0));
        if stamp == Stamp::None {
            stamped.extend_from_slice(line);
        } else {
            let length = format_stamp(entry.timestamp_ns, stamp, &mut buffer);
            let text = buffer.get(..length).unwrap_or_default();
            let mut copied = 0;
            for at in memchr::memmem::find_iter(line, text) {
                stamped.extend_from_slice(line.get(copied..at).unwrap_or_default());
                stamped.push(MARKER);
                copied = at + text.len();
                segments.push((stamped.len(), copied));
            }
            stamped.extend_from_slice(line.get(copied..).unwrap_or_default());
        }
        extracted.clear();
        let extract = memchr::memchr(ID_MARKER, &stamped).is_none();
        if extract {
            let mut copied = 0;
            for (start, end) in alphanumeric_runs(&stamped) {
                let Some(run) = stamped.get(start..end) else {
                    continue;
                };
                if !is_id(run) {
                    continue;
                }
                extracted.extend_from_slice(stamped.get(copied..start).unwrap_or_default());
                extracted.push(ID_MARKER);
                copied = end;
                // Distance back from the next new id: 0 for a new one, small for a recent one.
                match ids.get(run) {
                    Some(&index) => put_varint(&mut references, u64::from(id_count - index)),
                    None => {
                        if !dictionary.is_empty() {
                            dictionary.push(b'\n');
                        }
                        dictionary.extend_from_slice(run);
                        // Keyed by the id's bytes in the entry, which outlive this loop (a run
                        // of the stamped line lies within one stretch of the line's own bytes).
                        let (stretch, from) = segments
                            .iter()
                            .rev()
                            .find(|(stretch, _)| *stretch <= start)
                            .copied()
                            .unwrap_or((0, 0));
                        let at = from + (start - stretch);
                        if let Some(original) =
                            line.get(at..at + run.len()).filter(|original| *original == run)
                        {
                            ids.insert(original, id_count);
                        }
                        id_count += 1;
                        put_varint(&mut references, 0);
                    }
                }
            }
            extracted.extend_from_slice(stamped.get(copied..).unwrap_or_default());
        } else {
            flags |= FLAG_IDS_IN_PLACE;
            extracted.extend_from_slice(&stamped);
        }
        // Numbers: each run of digits that prints back the same (no leading zero, at most 18
        // digits) goes to the numbers column as a varint.
        let before = lines.len();
        let numbered = memchr::memchr(NUMBER_MARKER, &extracted).is_none();
        let first_number = numbers.len();
        if numbered {
            let mut copied = 0;
            for (start, end) in digit_runs(&extracted) {
                let Some(run) = extracted.get(start..end) else {
                    continue;
                };
                let Some(value) = number_value(run) else {
                    continue;
                };
                lines.extend_from_slice(extracted.get(copied..start).unwrap_or_default());
                lines.push(NUMBER_MARKER);
                numbers.push(value);
                copied = end;
            }
            lines.extend_from_slice(extracted.get(copied..).unwrap_or_default());
            numbered_lines.push((first_number, before, lines.len()));
        } else {
            lines.extend_from_slice(&extracted);
        }
        descriptors.push(
            (((lines.len() - before) as u64) << 4)
                | (u64::from(numbered) << 3)
                | (u64::from(extract) << 2)
                | stamp as u64,
        );
    }
    // Each distinct stored line (a template) once, in order of first use; a line's descriptor
    // names its template instead of giving its length.
    let mut template_ids: std::collections::HashMap<&[u8], u64, foldhash::fast::RandomState> =
        std::collections::HashMap::default();
    let mut template_frame = Vec::new();
    let mut at = 0usize;
    for descriptor in &mut descriptors {
        let length = (*descriptor >> 4) as usize;
        let text = lines.get(at..at + length).unwrap_or_default();
        at += length;
        let next = template_ids.len() as u64;
        let id = *template_ids.entry(text).or_insert_with(|| {
            put_varint(&mut template_frame, text.len() as u64);
            template_frame.extend_from_slice(text);
            next
        });
        *descriptor = (id << 4) | (*descriptor & 15);
    }
    let mut templates = Vec::with_capacity(template_frame.len() + 4);
    put_varint(&mut templates, template_ids.len() as u64);
    templates.extend_from_slice(&template_frame);
    // The other columns after the timestamps: descriptors, references, metadata.
    for descriptor in descriptors {
        put_varint(&mut columns, descriptor);
    }
    put_varint(&mut columns, references.len() as u64);
    columns.extend_from_slice(&references);
    // Metadata: each distinct pair once in a table, then per entry its pairs' places in it
    // (a `detected_level` on every entry then costs a fraction of a byte).
    let mut pairs: std::collections::HashMap<(&str, &str), u64, foldhash::fast::RandomState> =
        std::collections::HashMap::default();
    let mut table = Vec::new();
    let mut places = Vec::with_capacity(entries.len() * 2);
    for entry in entries {
        put_varint(&mut places, entry.metadata.len() as u64);
        for (name, value) in &entry.metadata {
            let next = pairs.len() as u64;
            let place = *pairs.entry((name.as_str(), value.as_str())).or_insert_with(|| {
                put_varint(&mut table, name.len() as u64);
                table.extend_from_slice(name.as_bytes());
                put_varint(&mut table, value.len() as u64);
                table.extend_from_slice(value.as_bytes());
                next
            });
            put_varint(&mut places, place);
        }
    }
    put_varint(&mut columns, pairs.len() as u64);
    columns.extend_from_slice(&table);
    columns.extend_from_slice(&places);
    // Compressing into a Vec cannot fail but for a level out of range; level 3 then.
    let level = level.clamp(1, 22);
    let compress = |data: &[u8]| {
        if data.is_empty() {
            return Vec::new();
        }
        zstd::bulk::compress(data, level)
            .or_else(|_| zstd::bulk::compress(data, 3))
            .unwrap_or_default()
    };
    // Four frames, each compressed by itself: the parts differ too much to share one (measured:
    // 9 % fewer bytes for three), and a substring filter decompresses the first two only.
    let numbers = number_column(&lines, &numbered_lines, &numbers);
    let frames = [dictionary, templates, columns, numbers];
    let compressed: Vec<Vec<u8>> = frames.iter().map(|frame| compress(frame)).collect();
    let mut bytes = Vec::with_capacity(compressed.iter().map(Vec::len).sum::<usize>() + 48);
    bytes.push(VERSION);
    bytes.push(flags);
    bytes.push(level as u8);
    put_varint(&mut bytes, entries.len() as u64);
    for (frame, packed) in frames.iter().zip(&compressed) {
        put_varint(&mut bytes, frame.len() as u64);
        put_varint(&mut bytes, packed.len() as u64);
    }
    let bloom = key_bloom(keys);
    put_varint(&mut bytes, bloom.len() as u64);
    bytes.extend_from_slice(&bloom);
    for packed in &compressed {
        bytes.extend_from_slice(packed);
    }
    let length = bytes.len() as u32;
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(TRAILER_MAGIC);
    Encoded {
        bytes,
        level,
        entries: entries.len() as u32,
        line_bytes: line_bytes as u64,
        min_ns: entries.first().map_or(0, |entry| entry.timestamp_ns),
        max_ns: entries.iter().map(|entry| entry.timestamp_ns).max().unwrap_or(0),
    }
}

/// The hash of a correlation key (`name`, `value`): 64-bit FNV-1a over the name, a zero byte
/// and the value (stable across versions and processes: it is on disk).
pub fn key_hash(name: &str, value: &str) -> u64 {
    let hash = fnv1a_64(FNV1A_64_OFFSET, name.as_bytes());
    fnv1a_64(fnv1a_64(hash, &[0]), value.as_bytes())
}

/// Probes per key in a block's key filter.
const BLOOM_PROBES: u64 = 4;

/// The bit positions of `key` in a filter of `bits` bits (double hashing over the key's hash,
/// mixed first so that near keys spread).
fn bloom_positions(key: u64, bits: u64) -> impl Iterator<Item = u64> {
    let mut mixed = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^= mixed >> 31;
    let (first, step) = (mixed & 0xffff_ffff, (mixed >> 32) | 1);
    (0..BLOOM_PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(step)) % bits.max(1))
}

/// A Bloom filter of a block's correlation keys: 10 bits a key (about 1 % false positives),
/// 8 bytes at least, none for a block without keys.
fn key_bloom(keys: &[u64]) -> Vec<u8> {
    if keys.is_empty() {
        return Vec::new();
    }
    let bytes = (keys.len() * 10).div_ceil(8).max(8);
    let mut bloom = vec![0u8; bytes];
    let bits = bytes as u64 * 8;
    for &key in keys {
        for position in bloom_positions(key, bits) {
            if let Some(byte) = bloom.get_mut((position / 8) as usize) {
                *byte |= 1 << (position % 8);
            }
        }
    }
    bloom
}

/// Whether the block in `bytes` may hold every key of `keys` (hashes, [`key_hash`]), told
/// from its key filter without decompressing anything; a damaged block may.
pub fn may_hold_keys(bytes: &[u8], keys: &[u64]) -> bool {
    let Ok((header, _)) = parse_header(bytes) else {
        return true;
    };
    let bits = header.bloom.len() as u64 * 8;
    keys.iter().all(|&key| {
        bits > 0
            && bloom_positions(key, bits).all(|position| {
                header
                    .bloom
                    .get((position / 8) as usize)
                    .is_some_and(|byte| byte & (1 << (position % 8)) != 0)
            })
    })
}

/// A block's header, read.
struct Header<'a> {
    flags: u8,
    count: usize,
    /// Per frame: raw size, where its compressed bytes start, compressed size.
    frames: [(usize, usize, usize); 4],
    bloom: &'a [u8],
}

/// Checks the trailer and reads the header of a block; the bytes before the trailer too.
fn parse_header(bytes: &[u8]) -> Result<(Header<'_>, &[u8]), BlockError> {
    let body_length = bytes
        .len()
        .checked_sub(8)
        .ok_or(BlockError("shorter than its trailer"))?;
    if bytes.get(body_length + 4..) != Some(TRAILER_MAGIC.as_slice())
        || bytes
            .get(body_length..body_length + 4)
            .map(|length| u32::from_le_bytes(length.try_into().unwrap_or_default()) as usize)
            != Some(body_length)
    {
        return Err(BlockError("bad trailer"));
    }
    let bytes = bytes.get(..body_length).unwrap_or_default();
    let version = *bytes.first().ok_or(BlockError("empty"))?;
    if version != VERSION {
        return Err(BlockError("unknown version"));
    }
    let flags = *bytes.get(1).ok_or(BlockError("no flags"))?;
    let mut header = Reader { bytes, at: 3 };
    let count = usize::try_from(header.varint()?).map_err(|_| BlockError("count too large"))?;
    let mut frames = [(0usize, 0usize, 0usize); 4];
    let mut total = 0usize;
    for frame in &mut frames {
        let size = usize::try_from(header.varint()?).map_err(|_| BlockError("size too large"))?;
        let compressed = usize::try_from(header.varint()?).map_err(|_| BlockError("size too large"))?;
        total = total.saturating_add(size);
        *frame = (size, 0, compressed);
    }
    // Each entry takes at least four bytes of columns (two timestamp parts, a descriptor, a
    // metadata count).
    if total > MAX_PAYLOAD_BYTES || count > frames[2].0 / 4 {
        return Err(BlockError("sizes out of range"));
    }
    let bloom_length = header.length()?;
    let bloom = bytes.get(header.at..header.at + bloom_length).unwrap_or_default();
    let mut at = header.at + bloom_length;
    for frame in &mut frames {
        frame.1 = at;
        at = at.checked_add(frame.2).ok_or(BlockError("size too large"))?;
    }
    if at != bytes.len() {
        return Err(BlockError("frames and their sizes disagree"));
    }
    Ok((
        Header {
            flags,
            count,
            frames,
            bloom,
        },
        bytes,
    ))
}

/// Why a block could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log block is damaged: {0}")]
pub struct BlockError(&'static str);

impl BlockError {
    /// A decoding thread panicked (a bug, reported rather than propagated).
    pub const PANICKED: BlockError = BlockError("decoding failed unexpectedly");
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, BlockError> {
        get_varint(self.bytes, &mut self.at).map_err(|err| match err {
            VarintError::Truncated => BlockError("truncated number"),
            VarintError::TooLong => BlockError("number too long"),
        })
    }

    fn length(&mut self) -> Result<usize, BlockError> {
        let length = usize::try_from(self.varint()?).map_err(|_| BlockError("length too large"))?;
        if length > self.bytes.len().saturating_sub(self.at) {
            return Err(BlockError("length past the end"));
        }
        Ok(length)
    }
}

/// A line as the block stores it.
#[derive(Debug, Clone, Copy)]
struct StoredLine {
    /// Where it is in the payload, and its stored length.
    at: usize,
    length: usize,
    stamp: Stamp,
    /// Its ids are in the dictionary, `references[first_reference..]` in order.
    ids_extracted: bool,
    first_reference: usize,
    /// Its numbers are `numbers[first_number..]` in order.
    numbers_extracted: bool,
    first_number: usize,
}

/// A decompressed block, read entry by entry.
#[derive(Debug)]
pub struct Decoded {
    /// The lines as stored, one after the other.
    stored_lines: Vec<u8>,
    /// The other columns.
    columns: Vec<u8>,
    /// The numbers taken out of the lines, in line order.
    numbers: Vec<u64>,
    dictionary: Vec<u8>,
    /// Where each id is in `dictionary`.
    ids: Vec<(usize, usize)>,
    /// The ids the lines refer to, in line order, as indexes into `ids`.
    references: Vec<u32>,
    timestamps: Vec<i64>,
    lines: Vec<StoredLine>,
    /// The distinct metadata pairs: where each name and value is in `columns`.
    pairs: Vec<((usize, usize), (usize, usize))>,
    /// Per entry: where its metadata's places in `pairs` start in `columns`.
    metadata: Vec<usize>,
}

/// The block that `bytes` end with, if they end with one (its trailer says where it starts).
pub fn at_end(bytes: &[u8]) -> Option<&[u8]> {
    let trailer_at = bytes.len().checked_sub(8)?;
    let trailer = bytes.get(trailer_at..)?;
    if trailer.get(4..) != Some(TRAILER_MAGIC.as_slice()) {
        return None;
    }
    let length = u32::from_le_bytes(trailer.get(..4)?.try_into().ok()?) as usize;
    bytes.get(trailer_at.checked_sub(length)?..)
}

/// Decompresses `compressed` into exactly `size` bytes, with this thread's reusable context.
fn decompress(compressed: &[u8], size: usize) -> Result<Vec<u8>, BlockError> {
    if size == 0 {
        return if compressed.is_empty() {
            Ok(Vec::new())
        } else {
            Err(BlockError("bytes for an empty part"))
        };
    }
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let payload = CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.is_none() {
            *context = zstd::bulk::Decompressor::new().ok();
        }
        match context.as_mut() {
            Some(context) => context.decompress(compressed, size),
            None => zstd::bulk::decompress(compressed, size),
        }
    });
    let payload = payload.map_err(|_| BlockError("bad compressed data"))?;
    if payload.len() != size {
        return Err(BlockError("size differs from the header"));
    }
    Ok(payload)
}

/// Reads a block's bytes (untrusted).
pub fn decode(bytes: &[u8]) -> Result<Decoded, BlockError> {
    decode_if_contains(bytes, &[])?.ok_or(BlockError("no block"))
}

/// Whether no line of a block whose id dictionary is `dictionary` can contain `needle`, told
/// from the dictionary alone: an id of the needle (a maximal run of letters and digits of 8
/// bytes or more with a digit) lies inside a run of the line at least as long and with that
/// digit, so an id of the line, which is in the dictionary (unless the block has lines that
/// kept their ids in place, `ids_in_place`). A needle that may overlap a timestamp is never
/// ruled out so: a stamp cut the runs around it.
fn ruled_out_by_ids(needle: &[u8], dictionary: &[u8], ids_in_place: bool) -> bool {
    !ids_in_place
        && !may_touch_stamp(needle)
        && !has_marker(needle)
        && alphanumeric_runs(needle)
            .filter_map(|(start, end)| needle.get(start..end))
            .any(|run| is_id(run) && memchr::memmem::find(dictionary, run).is_none())
}

/// Whether no line of a block can contain `needle`, told from its dictionary and its lines as
/// stored (stamps and ids replaced by markers).
fn ruled_out_by_lines(needle: &[u8], dictionary: &[u8], lines: &[u8], has_numbers: bool) -> bool {
    if may_touch_stamp(needle) || has_marker(needle) || memchr::memmem::find(lines, needle).is_some() {
        return false;
    }
    // A needle with a digit may overlap a number taken out of a line.
    if has_numbers && needle.iter().any(u8::is_ascii_digit) {
        return false;
    }
    if dictionary.is_empty() || !needle.iter().any(u8::is_ascii_alphanumeric) {
        // Nothing was taken out of the lines that the needle could overlap.
        return true;
    }
    // A needle of letters and digits only lies inside one run of the line: one the stored
    // lines show, or an id in the dictionary.
    needle.iter().all(u8::is_ascii_alphanumeric) && memchr::memmem::find(dictionary, needle).is_none()
}

/// Reads a block's bytes (untrusted), unless no line of it can contain one of `needles`
/// (`None` then). That is decided on the id dictionary and the lines as stored, before the
/// other columns are read.
pub fn decode_if_contains(
    bytes: &[u8],
    needles: &[memchr::memmem::Finder<'_>],
) -> Result<Option<Decoded>, BlockError> {
    let (header, bytes) = parse_header(bytes)?;
    let Header {
        flags, count, frames, ..
    } = header;
    let frame = |index: usize| -> Result<Vec<u8>, BlockError> {
        let (size, start, compressed) = frames.get(index).copied().unwrap_or_default();
        decompress(bytes.get(start..start + compressed).unwrap_or_default(), size)
    };
    // Not checked to hold only ids: a damaged dictionary gives wrong lines (or lines that are
    // not UTF-8, which `entry` refuses), never a panic.
    let dictionary = frame(0)?;
    let ids_in_place = flags & FLAG_IDS_IN_PLACE != 0;
    if needles
        .iter()
        .any(|needle| ruled_out_by_ids(needle.needle(), &dictionary, ids_in_place))
    {
        return Ok(None);
    }
    // The templates: a count, then each one's length and bytes.
    let stored_lines = frame(1)?;
    let has_numbers = frames.get(3).is_some_and(|frame| frame.0 > 0);
    if needles
        .iter()
        .any(|needle| ruled_out_by_lines(needle.needle(), &dictionary, &stored_lines, has_numbers))
    {
        return Ok(None);
    }
    let columns = frame(2)?;
    let number_bytes = frame(3)?;
    let mut reader = Reader {
        bytes: &columns,
        at: 0,
    };
    let mut timestamps = Vec::with_capacity(count);
    let mut ms = 0i64;
    for _ in 0..count {
        ms = ms.wrapping_add(unzigzag(reader.varint()?));
        timestamps.push(ms);
    }
    for timestamp in &mut timestamps {
        let nanos = reader.varint()?;
        if nanos >= 1_000_000 {
            return Err(BlockError("nanoseconds out of range"));
        }
        *timestamp = timestamp
            .checked_mul(1_000_000)
            .and_then(|ns| ns.checked_add(nanos as i64))
            .ok_or(BlockError("timestamp out of range"))?;
    }
    let mut template_reader = Reader {
        bytes: &stored_lines,
        at: 0,
    };
    let template_count = template_reader.varint()?;
    let mut template_places = Vec::new();
    for _ in 0..template_count {
        let length = template_reader.length()?;
        template_places.push((template_reader.at, length));
        template_reader.at += length;
    }
    if template_reader.at != stored_lines.len() {
        return Err(BlockError("templates and their lengths disagree"));
    }
    let mut lines = Vec::with_capacity(count);
    let mut markers = 0usize;
    let mut number_markers = 0usize;
    for _ in 0..count {
        let descriptor = reader.varint()?;
        let template = usize::try_from(descriptor >> 4).map_err(|_| BlockError("no such template"))?;
        let &(at, length) = template_places
            .get(template)
            .ok_or(BlockError("no such template"))?;
        let stored = stored_lines.get(at..at + length).unwrap_or_default();
        let ids_extracted = descriptor & 4 != 0;
        if !ids_extracted && !ids_in_place {
            return Err(BlockError("a line kept its ids but the block says none did"));
        }
        let numbers_extracted = descriptor & 8 != 0;
        lines.push(StoredLine {
            at,
            length,
            stamp: Stamp::from_bits(descriptor),
            ids_extracted,
            first_reference: markers,
            numbers_extracted,
            first_number: number_markers,
        });
        if ids_extracted {
            markers += memchr::memchr_iter(ID_MARKER, stored).count();
        }
        if numbers_extracted {
            number_markers += memchr::memchr_iter(NUMBER_MARKER, stored).count();
        }
    }
    let mut ids = Vec::new();
    let mut start = 0;
    if !dictionary.is_empty() {
        for end in memchr::memchr_iter(b'\n', &dictionary).chain(std::iter::once(dictionary.len())) {
            if end == start {
                return Err(BlockError("an empty id"));
            }
            ids.push((start, end));
            start = end + 1;
        }
    }
    let references_length = reader.length()?;
    let references_end = reader.at + references_length;
    let mut references = Vec::with_capacity(markers);
    let mut next_new = 0u64;
    while reader.at < references_end {
        let back = reader.varint()?;
        let index = if back == 0 {
            next_new += 1;
            next_new - 1
        } else {
            next_new
                .checked_sub(back)
                .ok_or(BlockError("a reference before the first id"))?
        };
        if index >= ids.len() as u64 {
            return Err(BlockError("a reference past the last id"));
        }
        references.push(index as u32);
    }
    if reader.at != references_end || references.len() != markers || next_new != ids.len() as u64 {
        return Err(BlockError("ids and their references disagree"));
    }
    // The numbers column is by template and field (see `number_column`); back to line order.
    let mut numbers = vec![0u64; number_markers];
    let mut number_reader = Reader {
        bytes: &number_bytes,
        at: 0,
    };
    let numbered: Vec<&StoredLine> = lines.iter().filter(|line| line.numbers_extracted).collect();
    let texts = numbered.iter().map(|line| {
        stored_lines
            .get(line.at..line.at + line.length)
            .unwrap_or_default()
    });
    let (per_line, field_count) = number_fields(texts);
    let mut counts = vec![0usize; field_count];
    for line_fields in &per_line {
        for &field in line_fields {
            if let Some(count) = counts.get_mut(field) {
                *count += 1;
            }
        }
    }
    let mut by_field: Vec<std::vec::IntoIter<u64>> = Vec::with_capacity(field_count);
    for count in counts {
        let mut values = Vec::with_capacity(count);
        unpack_field(&mut number_reader, count, &mut values)?;
        by_field.push(values.into_iter());
    }
    for (line, line_fields) in numbered.iter().zip(&per_line) {
        for (position, &field) in line_fields.iter().enumerate() {
            let value = by_field
                .get_mut(field)
                .and_then(Iterator::next)
                .ok_or(BlockError("numbers and their places disagree"))?;
            let slot = numbers
                .get_mut(line.first_number + position)
                .ok_or(BlockError("a number past the last"))?;
            *slot = value;
        }
    }
    if number_reader.at != number_bytes.len() {
        return Err(BlockError("numbers and their places disagree"));
    }
    let table_length = reader.varint()?;
    let mut pairs = Vec::new();
    for _ in 0..table_length {
        let name = reader.length()?;
        let name_at = reader.at;
        reader.at += name;
        let value = reader.length()?;
        let value_at = reader.at;
        reader.at += value;
        pairs.push(((name_at, name_at + name), (value_at, value_at + value)));
    }
    let mut metadata = Vec::with_capacity(count);
    for _ in 0..count {
        metadata.push(reader.at);
        for _ in 0..reader.varint()? {
            if reader.varint()? >= pairs.len() as u64 {
                return Err(BlockError("metadata past the table"));
            }
        }
    }
    if reader.at != columns.len() {
        return Err(BlockError("bytes after the metadata"));
    }
    Ok(Some(Decoded {
        stored_lines,
        columns,
        numbers,
        pairs,
        dictionary,
        ids,
        references,
        timestamps,
        lines,
        metadata,
    }))
}

/// The parts of a block with their raw bytes, each compressed by itself at `level` (for
/// measuring where the bytes go).
#[cfg(test)]
pub(crate) fn part_sizes(bytes: &[u8], level: i32) -> Vec<(&'static str, usize, usize)> {
    let Ok(decoded) = decode(bytes) else {
        return Vec::new();
    };
    let compressed = |data: &[u8]| zstd::bulk::compress(data, level).map_or(0, |out| out.len());
    let columns = &decoded.columns;
    let mut reader = Reader {
        bytes: columns,
        at: 0,
    };
    let mut bounds = vec![0];
    for _ in 0..3 {
        for _ in 0..decoded.len() {
            let _ = reader.varint();
        }
        bounds.push(reader.at);
    }
    let references = reader.length().unwrap_or(0);
    reader.at += references;
    bounds.push(reader.at);
    let part = |from: usize, to: usize| &columns[bounds[from]..bounds[to]];
    let mut numbers = Vec::new();
    for number in &decoded.numbers {
        put_varint(&mut numbers, *number);
    }
    let parts: [(&'static str, &[u8]); 9] = [
        ("numbers", &numbers),
        ("(the columns as one)", columns),
        ("line templates", &decoded.stored_lines),
        ("id dictionary", &decoded.dictionary),
        ("timestamps, milliseconds", part(0, 1)),
        ("timestamps, rest of the nanoseconds", part(1, 2)),
        ("line descriptors", part(2, 3)),
        ("id references", part(3, 4)),
        ("metadata", &columns[bounds[4]..]),
    ];
    parts
        .iter()
        .map(|(name, data)| (*name, data.len(), compressed(data)))
        .collect()
}

impl Decoded {
    /// The stored text of entry `index`'s line (its template).
    #[cfg(test)]
    fn stored_text(&self, index: usize) -> &[u8] {
        self.lines
            .get(index)
            .map(|line| self.stored(line))
            .unwrap_or_default()
    }

    /// How many entries the block holds.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the block holds no entry.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The timestamps, in the block's (time) order.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    fn stored(&self, line: &StoredLine) -> &[u8] {
        self.stored_lines
            .get(line.at..line.at + line.length)
            .unwrap_or_default()
    }

    /// The line of entry `index`, as bytes.
    fn line_bytes(&self, index: usize) -> Cow<'_, [u8]> {
        let Some(line) = self.lines.get(index) else {
            return Cow::Borrowed(&[]);
        };
        let stored = self.stored(line);
        let has_ids = line.ids_extracted && memchr::memchr(ID_MARKER, stored).is_some();
        let has_numbers = line.numbers_extracted && memchr::memchr(NUMBER_MARKER, stored).is_some();
        if line.stamp == Stamp::None && !has_ids && !has_numbers {
            return Cow::Borrowed(stored);
        }
        let mut buffer = [0u8; 32];
        let stamp = if line.stamp == Stamp::None {
            &[][..]
        } else {
            let timestamp = self.timestamps.get(index).copied().unwrap_or(0);
            let length = format_stamp(timestamp, line.stamp, &mut buffer);
            buffer.get(..length).unwrap_or_default()
        };
        let mut out = Vec::with_capacity(stored.len() + 64);
        let mut reference = line.first_reference;
        let mut number = line.first_number;
        for &byte in stored {
            match byte {
                NUMBER_MARKER if line.numbers_extracted => {
                    let value = self.numbers.get(number).copied().unwrap_or(0);
                    // Writing into a Vec cannot fail.
                    let _ = write!(out, "{value}");
                    number += 1;
                }
                MARKER if line.stamp != Stamp::None => out.extend_from_slice(stamp),
                ID_MARKER if line.ids_extracted => {
                    let id = self
                        .references
                        .get(reference)
                        .and_then(|&index| self.ids.get(index as usize))
                        .and_then(|&(start, end)| self.dictionary.get(start..end))
                        .unwrap_or_default();
                    out.extend_from_slice(id);
                    reference += 1;
                }
                _ => out.push(byte),
            }
        }
        Cow::Owned(out)
    }

    /// The line of entry `index` (a damaged line's invalid UTF-8 replaced; [`Decoded::entry`]
    /// refuses it).
    pub fn line(&self, index: usize) -> Cow<'_, str> {
        match self.line_bytes(index) {
            Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// The structured metadata of entry `index`.
    pub fn metadata(&self, index: usize) -> Result<Vec<(String, String)>, BlockError> {
        let at = *self.metadata.get(index).ok_or(BlockError("no such entry"))?;
        let mut reader = Reader {
            bytes: &self.columns,
            at,
        };
        let count = reader.varint()?;
        let mut metadata = Vec::with_capacity(count.min(128) as usize);
        let text = |(start, end): (usize, usize)| {
            String::from_utf8(self.columns.get(start..end).unwrap_or_default().to_vec())
                .map_err(|_| BlockError("metadata is not UTF-8"))
        };
        for _ in 0..count {
            let place =
                usize::try_from(reader.varint()?).map_err(|_| BlockError("metadata past the table"))?;
            let &(name, value) = self
                .pairs
                .get(place)
                .ok_or(BlockError("metadata past the table"))?;
            metadata.push((text(name)?, text(value)?));
        }
        Ok(metadata)
    }

    /// Entry `index` whole.
    pub fn entry(&self, index: usize) -> Result<LogEntry, BlockError> {
        let line = String::from_utf8(self.line_bytes(index).into_owned())
            .map_err(|_| BlockError("line is not UTF-8"))?;
        Ok(LogEntry {
            timestamp_ns: self
                .timestamps
                .get(index)
                .copied()
                .ok_or(BlockError("no such entry"))?,
            line,
            metadata: self.metadata(index)?,
        })
    }

    /// The ids of the dictionary that hold the first id of `text` (a maximal run of letters
    /// and digits of 8 bytes or more with a digit), one flag per id; `None` when `text` has no
    /// id, or could overlap a timestamp (then no line can be ruled out by its ids).
    pub fn ids_holding(&self, text: &str) -> Option<Vec<bool>> {
        let bytes = text.as_bytes();
        if may_touch_stamp(bytes) || has_marker(bytes) {
            return None;
        }
        let run = alphanumeric_runs(bytes)
            .filter_map(|(start, end)| bytes.get(start..end))
            .find(|run| is_id(run))?;
        let finder = memchr::memmem::Finder::new(run);
        Some(
            self.ids
                .iter()
                .map(|&(start, end)| {
                    finder
                        .find(self.dictionary.get(start..end).unwrap_or_default())
                        .is_some()
                })
                .collect(),
        )
    }

    /// Whether the line of entry `index` may hold, as it is written, a text whose first id is
    /// held by the ids `holding` flags ([`Decoded::ids_holding`]): false only when the line's
    /// ids were taken out, none of them is one of those, and the line has no backslash (so no
    /// JSON or logfmt escape could spell the text differently).
    pub fn line_may_hold(&self, index: usize, holding: &[bool]) -> bool {
        let Some(line) = self.lines.get(index) else {
            return false;
        };
        if !line.ids_extracted {
            return true;
        }
        let stored = self.stored(line);
        if stored.contains(&b'\\') {
            return true;
        }
        let count = memchr::memchr_iter(ID_MARKER, stored).count();
        (line.first_reference..line.first_reference + count).any(|reference| {
            self.references
                .get(reference)
                .and_then(|&id| holding.get(id as usize))
                .copied()
                .unwrap_or(true)
        })
    }

    /// Whether the line of entry `index` contains `needle`.
    pub fn line_contains(&self, index: usize, needle: &memchr::memmem::Finder<'_>) -> bool {
        let Some(line) = self.lines.get(index) else {
            return false;
        };
        let stored = self.stored(line);
        let bytes = needle.needle();
        // Found among the stored bytes (no marker in the needle): found in the line.
        if !has_marker(bytes) && needle.find(stored).is_some() {
            return true;
        }
        let replaced_stamp = line.stamp != Stamp::None && may_touch_stamp(bytes);
        let replaced_ids = line.ids_extracted && memchr::memchr(ID_MARKER, stored).is_some();
        let replaced_numbers = line.numbers_extracted
            && bytes.iter().any(u8::is_ascii_digit)
            && memchr::memchr(NUMBER_MARKER, stored).is_some();
        if !replaced_stamp && !replaced_ids && !replaced_numbers && !has_marker(bytes) {
            return false;
        }
        needle.find(&self.line_bytes(index)).is_some()
    }
}

/// Whether `bytes` hold one of the bytes that stand for something taken out of a line.
fn has_marker(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|byte| matches!(*byte, MARKER | ID_MARKER | NUMBER_MARKER))
}

/// Whether `text` could be how a timestamp the block replaces begins: the shape
/// `YYYY-MM-DDTHH:MM:SS`, then `Z` or a fraction and `Z`, with a year from 1000 to 2999
/// (timestamps in nanoseconds since 1970 end in 2262).
fn is_stamp_prefix(text: &[u8]) -> bool {
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    text.iter().enumerate().all(|(at, &byte)| match SHAPE.get(at) {
        Some(_) if at == 0 => byte == b'1' || byte == b'2',
        Some(b'd') => byte.is_ascii_digit(),
        Some(&expected) => byte == expected,
        None if at == SHAPE.len() => byte == b'.' || (byte == b'Z' && at + 1 == text.len()),
        None => byte.is_ascii_digit() || (byte == b'Z' && at + 1 == text.len()),
    })
}

/// Whether an occurrence of `needle` in a line could overlap one of the line's timestamps: a
/// needle made only of timestamp characters could lie inside one; one containing `Z` could
/// contain one or start inside one (every stamp ends with `Z`); one whose end could be how a
/// stamp begins could end inside one. A needle with the marker byte itself is treated so too.
fn may_touch_stamp(needle: &[u8]) -> bool {
    let stamp_byte = |byte: &u8| byte.is_ascii_digit() || b"-T:.Z".contains(byte) || *byte == MARKER;
    if needle.iter().all(stamp_byte) || needle.contains(&b'Z') || needle.contains(&MARKER) {
        return true;
    }
    let tail = needle.iter().rev().take_while(|byte| stamp_byte(byte)).count();
    (needle.len() - tail..needle.len()).any(|start| is_stamp_prefix(needle.get(start..).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timestamp_ns: i64, line: &str, metadata: &[(&str, &str)]) -> LogEntry {
        LogEntry {
            timestamp_ns,
            line: line.to_owned(),
            metadata: metadata
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    fn round_trip(entries: &[LogEntry]) -> Vec<LogEntry> {
        let refs: Vec<&LogEntry> = entries.iter().collect();
        let encoded = encode(&refs, &[], 3);
        assert_eq!(encoded.entries as usize, entries.len());
        let decoded = decode(&encoded.bytes).unwrap();
        (0..decoded.len())
            .map(|index| decoded.entry(index).unwrap())
            .collect()
    }

    // 2026-12-07T10:11:12.345678901Z
    const TS: i64 = 1_796_638_272_345_678_901;

    #[test]
    fn stamps_are_formatted_at_each_precision() {
        let mut buffer = [0u8; 32];
        let text = |stamp, buffer: &mut [u8; 32]| {
            let length = format_stamp(TS, stamp, buffer);
            String::from_utf8(buffer[..length].to_vec()).unwrap()
        };
        assert_eq!(text(Stamp::Seconds, &mut buffer), "2026-12-07T10:11:12Z");
        assert_eq!(text(Stamp::Millis, &mut buffer), "2026-12-07T10:11:12.345Z");
        assert_eq!(text(Stamp::Nanos, &mut buffer), "2026-12-07T10:11:12.345678901Z");
        assert_eq!(
            obs_core::time::TimestampMs(TS / 1_000_000).to_rfc3339(),
            "2026-12-07T10:11:12.345Z"
        );
    }

    #[test]
    fn entries_come_back_as_they_went_in() {
        let entries = vec![
            entry(
                TS,
                "2026-12-07T10:11:12.345Z stdout F level=info ts=2026-12-07T10:11:12.345Z msg=ok",
                &[],
            ),
            entry(
                TS + 1,
                r#"{"ts":"2026-12-07T10:11:12.345678902Z","level":"warn"}"#,
                &[("detected_level", "warn")],
            ),
            entry(
                TS + 2_000_000_000,
                "at 2026-12-07T10:11:14Z and 2026-12-07T10:11:14Z again",
                &[],
            ),
            // A stamp of another time stays text; so does a line with the marker byte.
            entry(
                TS + 3_000_000_000,
                "2026-12-07T10:11:12.345Z late",
                &[("trace_id", "abc"), ("a", "")],
            ),
            entry(TS + 3_000_000_001, "\u{1e} 2026-12-07T10:11:15.345Z", &[]),
            entry(TS + 4_000_000_000, "", &[]),
            entry(
                TS + 4_000_000_000,
                "ünïcödé 2026-12-07T10:11:16.345Z",
                &[("ключ", "значение")],
            ),
            entry(-5, "before the epoch", &[]),
        ];
        assert_eq!(round_trip(&entries), entries);
        assert!(round_trip(&[]).is_empty());
    }

    #[test]
    fn stamps_are_stored_as_markers() {
        let lines = [entry(
            TS,
            "2026-12-07T10:11:12.345Z stdout F ts=2026-12-07T10:11:12.345Z",
            &[],
        )];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let decoded = decode(&encode(&refs, &[], 3).bytes).unwrap();
        assert_eq!(decoded.stored_text(0), b"\x1e stdout F ts=\x1e");
    }

    #[test]
    fn lines_are_ruled_out_by_the_ids_they_refer_to() {
        let lines = [
            entry(TS, r#"{"run_id":"r-26dd11a11fc9","msg":"a"}"#, &[]),
            entry(TS + 1, r#"{"run_id":"r-77aa11a11fc9","msg":"b"}"#, &[]),
            entry(TS + 2, r#"{"run_id":"r-26dd\u0031","msg":"escaped"}"#, &[]),
            entry(TS + 3, "no ids at all", &[]),
        ];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let decoded = decode(&encode(&refs, &[], 3).bytes).unwrap();
        let holding = decoded.ids_holding("r-26dd11a11fc9").unwrap();
        let may: Vec<bool> = (0..4)
            .map(|index| decoded.line_may_hold(index, &holding))
            .collect();
        assert_eq!(may, [true, false, true, false]);
        // A part of an id is held by the ids it is part of.
        let holding = decoded.ids_holding("11a11fc9").unwrap();
        let may: Vec<bool> = (0..4)
            .map(|index| decoded.line_may_hold(index, &holding))
            .collect();
        assert_eq!(may, [true, true, true, false]);
        assert!(decoded.ids_holding("r-1").is_none(), "no id in it");
        assert!(
            decoded.ids_holding("2026-12-07T10:11:12Z").is_none(),
            "may overlap a stamp"
        );
    }

    #[test]
    fn the_key_filter_holds_the_block_keys() {
        let lines = [entry(TS, "hello", &[])];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let keys: Vec<u64> = (0..300)
            .map(|run| key_hash("run_id", &format!("r-{run}")))
            .collect();
        let bytes = encode(&refs, &keys, 3).bytes;
        assert!(keys.iter().all(|key| may_hold_keys(&bytes, &[*key])));
        assert!(may_hold_keys(&bytes, &keys[..3]));
        let strangers = (300..10_300)
            .filter(|run| may_hold_keys(&bytes, &[key_hash("run_id", &format!("r-{run}"))]))
            .count();
        assert!(strangers < 300, "{strangers} false positives in 10,000");
        // No keys: no filter, and no key can be there.
        let bare = encode(&refs, &[], 3).bytes;
        assert!(!may_hold_keys(&bare, &[keys[0]]));
        assert!(may_hold_keys(&bare, &[]));
        assert_eq!(decode(&bytes).unwrap().entry(0).unwrap(), lines[0]);
    }

    #[test]
    fn fields_are_bit_packed_from_their_smallest_value() {
        let cases: [&[u64]; 5] = [
            &[],
            &[7, 7, 7],
            &[10, 11, 12, 13, 14, 15, 16, 17, 18],
            &[0, u64::MAX, 3],
            &[999_999_999_999_999_999, 5, 1 << 40],
        ];
        for values in cases {
            let mut packed = Vec::new();
            pack_field(values, &mut packed);
            let mut reader = Reader {
                bytes: &packed,
                at: 0,
            };
            let mut back = Vec::new();
            unpack_field(&mut reader, values.len(), &mut back).unwrap();
            assert_eq!(back, values);
            assert_eq!(reader.at, packed.len());
        }
        // A constant costs its value and a zero width; nine values in 0..=8 cost 4 bits each.
        let mut packed = Vec::new();
        pack_field(&[7, 7, 7, 7], &mut packed);
        assert_eq!(packed, [7, 0]);
        packed.clear();
        pack_field(&[10, 11, 12, 13, 14, 15, 16, 17, 18], &mut packed);
        assert_eq!(packed.len(), 2 + 5);
        // Truncated or too wide: errors.
        let mut reader = Reader {
            bytes: &[0, 65],
            at: 0,
        };
        assert!(unpack_field(&mut reader, 1, &mut Vec::new()).is_err());
        let mut reader = Reader {
            bytes: &[0, 8],
            at: 0,
        };
        assert!(unpack_field(&mut reader, 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn lines_of_one_template_are_stored_once() {
        let lines = [
            entry(TS, "GET /api 200 in 13ms user=a5884caf", &[]),
            entry(TS + 1, "GET /api 404 in 2ms user=b77daa12", &[]),
            entry(TS + 2, "POST /api 200 in 13ms", &[]),
        ];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let decoded = decode(&encode(&refs, &[], 3).bytes).unwrap();
        assert_eq!(decoded.stored_lines[0], 2, "two templates");
        assert_eq!(decoded.stored_text(0), decoded.stored_text(1));
        assert_eq!(decoded.stored_text(0), b"GET /api \x1d in \x1dms user=\x1f");
        assert_eq!(decoded.numbers, vec![200, 13, 404, 2, 200, 13]);
        let back: Vec<LogEntry> = (0..decoded.len())
            .map(|index| decoded.entry(index).unwrap())
            .collect();
        assert_eq!(back, lines);
    }

    #[test]
    fn needles_are_found_with_or_without_restoring_stamps() {
        let lines = [
            entry(
                TS,
                "2026-12-07T10:11:12.345Z stdout F user=a5884caf latency=3ms",
                &[],
            ),
            entry(
                TS + 1_000_000_000,
                "2026-12-07T10:11:13.345Z stdout F user=b1 latency=4ms",
                &[],
            ),
        ];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let bytes = encode(&refs, &[], 3).bytes;
        let decoded = decode(&bytes).unwrap();
        let finder = |needle: &'static str| memchr::memmem::Finder::new(needle);
        let read_for =
            |needle: &'static str| decode_if_contains(&bytes, &[finder(needle)]).unwrap().is_some();
        assert!(read_for("a5884caf"));
        assert!(!read_for("zzz"), "skipped on the stored lines");
        // Needles that may overlap a stamp cannot be ruled out on the stored lines.
        for needle in [
            "10:11:13",
            "345Z stdout",
            "F 2026-12",
            "2026-12-07T10:11:12.345Z",
            "2099",
        ] {
            assert!(read_for(needle), "{needle}");
        }
        let matching = |needle: &'static str| -> Vec<usize> {
            (0..decoded.len())
                .filter(|&index| decoded.line_contains(index, &finder(needle)))
                .collect()
        };
        assert_eq!(matching("a5884caf"), vec![0]);
        assert_eq!(matching("latency="), vec![0, 1]);
        assert_eq!(matching("10:11:13"), vec![1]);
        assert_eq!(matching("345Z stdout F user=b"), vec![1]);
        assert_eq!(matching("T10:11"), vec![0, 1]);
        assert!(matching("\u{1e}").is_empty());
    }

    #[test]
    fn damaged_blocks_are_errors() {
        let lines = [entry(TS, "2026-12-07T10:11:12.345Z hello", &[("k", "v")])];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let bytes = encode(&refs, &[], 3).bytes;
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_size = vec![VERSION, 1];
        put_varint(&mut wrong_size, (MAX_PAYLOAD_BYTES + 1) as u64);
        assert!(decode(&wrong_size).is_err());
        // Frames whose content disagrees with itself: a template length past the frame's end,
        // and a line naming a template that is not there.
        let forge = |templates: &[u8], template: u64| {
            let mut columns = Vec::new();
            put_varint(&mut columns, 0);
            put_varint(&mut columns, 0);
            put_varint(&mut columns, (template << 4) | 4);
            put_varint(&mut columns, 0);
            put_varint(&mut columns, 0);
            put_varint(&mut columns, 0);
            let lines = zstd::bulk::compress(templates, 1).unwrap();
            let packed = zstd::bulk::compress(&columns, 1).unwrap();
            let mut forged = vec![VERSION, 0, 1, 1, 0, 0];
            put_varint(&mut forged, templates.len() as u64);
            put_varint(&mut forged, lines.len() as u64);
            put_varint(&mut forged, columns.len() as u64);
            put_varint(&mut forged, packed.len() as u64);
            put_varint(&mut forged, 0);
            put_varint(&mut forged, 0);
            put_varint(&mut forged, 0);
            forged.extend_from_slice(&lines);
            forged.extend_from_slice(&packed);
            let length = forged.len() as u32;
            forged.extend_from_slice(&length.to_le_bytes());
            forged.extend_from_slice(TRAILER_MAGIC);
            decode(&forged).map(|decoded| decoded.len())
        };
        assert_eq!(forge(b"\x01\x05short", 0), Ok(1));
        assert_eq!(forge(b"\x01\x28short", 0), Err(BlockError("length past the end")));
        assert_eq!(forge(b"\x01\x05short", 3), Err(BlockError("no such template")));
    }

    #[test]
    fn a_block_is_found_at_the_end_of_larger_bytes() {
        let lines = [entry(TS, "hello", &[])];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let bytes = encode(&refs, &[], 3).bytes;
        let mut document = b"some header".to_vec();
        document.extend_from_slice(&bytes);
        assert_eq!(at_end(&document), Some(bytes.as_slice()));
        assert_eq!(at_end(&bytes), Some(bytes.as_slice()));
        assert_eq!(at_end(&document[..document.len() - 1]), None);
        assert_eq!(at_end(b"OBK1"), None);
        assert_eq!(at_end(b"\xff\xff\xff\x00OBK1"), None);
    }

    /// A small deterministic generator for the property test below.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            choices[(self.next() % choices.len() as u64) as usize]
        }
    }

    #[test]
    fn what_the_block_rules_out_and_finds_is_what_the_lines_hold() {
        let pieces = [
            "\u{1d}",
            "007",
            "42",
            "1234567890123456789012",
            "user=",
            "a5884caf",
            "deadbeef1",
            "x",
            "12345678",
            "ab",
            " ",
            "=",
            "\"",
            "Z",
            "2026",
            "-",
            ":",
            "\u{1e}",
            "\u{1f}",
            "é",
            "run-",
            "0",
            "T10",
            "caf",
            "a5884cafe9",
        ];
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mut entries = Vec::new();
            let mut ts = TS + round * 7_000_000_001;
            for _ in 0..(1 + random.next() % 12) {
                ts += (random.next() % 3_000_000_000) as i64;
                let mut line = String::new();
                for _ in 0..(random.next() % 9) {
                    match random.next() % 6 {
                        0 => line.push_str(&obs_core::time::TimestampMs(ts / 1_000_000).to_rfc3339()),
                        1 => line.push_str(&obs_core::time::TimestampMs(ts / 1_000_000 + 1).to_rfc3339()),
                        _ => line.push_str(random.pick(&pieces)),
                    }
                }
                entries.push(entry(ts, &line, &[]));
            }
            let refs: Vec<&LogEntry> = entries.iter().collect();
            let bytes = encode(&refs, &[], 1).bytes;
            let decoded = decode(&bytes).unwrap();
            let back: Vec<LogEntry> = (0..decoded.len())
                .map(|index| decoded.entry(index).unwrap())
                .collect();
            assert_eq!(back, entries);
            for _ in 0..8 {
                let mut needle = String::new();
                for _ in 0..(1 + random.next() % 3) {
                    needle.push_str(random.pick(&pieces));
                }
                if random.next().is_multiple_of(4) {
                    // A piece of a line itself, which is there for sure.
                    let line = &entries[(random.next() % entries.len() as u64) as usize].line;
                    let chars: Vec<char> = line.chars().collect();
                    if !chars.is_empty() {
                        let start = (random.next() % chars.len() as u64) as usize;
                        let end = start + 1 + (random.next() % (chars.len() - start) as u64) as usize;
                        needle = chars[start..end].iter().collect();
                    }
                }
                let finder = memchr::memmem::Finder::new(needle.as_bytes());
                let holders: Vec<usize> = (0..entries.len())
                    .filter(|&index| entries[index].line.contains(needle.as_str()))
                    .collect();
                let found: Vec<usize> = (0..decoded.len())
                    .filter(|&index| decoded.line_contains(index, &finder))
                    .collect();
                assert_eq!(found, holders, "needle {needle:?} in {entries:?}");
                if decode_if_contains(&bytes, &[finder]).unwrap().is_none() {
                    assert!(holders.is_empty(), "ruled out {needle:?} wrongly in {entries:?}");
                }
            }
        }
    }

    #[test]
    fn ids_go_to_the_dictionary_once() {
        let lines = [
            entry(
                TS,
                r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"a5884caf"}"#,
                &[],
            ),
            entry(
                TS + 1,
                r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"b1"}"#,
                &[],
            ),
        ];
        let refs: Vec<&LogEntry> = lines.iter().collect();
        let decoded = decode(&encode(&refs, &[], 3).bytes).unwrap();
        assert_eq!(decoded.dictionary, b"4bf92f3577b34da6a3ce929d0e0e4736\na5884caf");
        assert_eq!(decoded.references, vec![0, 1, 0]);
        assert_eq!(decoded.numbers, vec![1], "the 1 of b1 is a number");
        assert_eq!(
            [decoded.stored_text(0), decoded.stored_text(1)].concat(),
            b"{\"trace_id\":\"\x1f\",\"user\":\"\x1f\"}{\"trace_id\":\"\x1f\",\"user\":\"b\x1d\"}"
        );
        // After a timestamp taken out of the line, an id is still recognised as seen.
        let stamped = [
            entry(TS, "2026-12-07T10:11:12.345Z x 4bf92f3577b34da6 y", &[]),
            entry(TS + 1, "4bf92f3577b34da6 2026-12-07T10:11:12.345Z", &[]),
            entry(
                TS + 2,
                "2026-12-07T10:11:12.345Z 2026-12-07T10:11:12.345Z 4bf92f3577b34da6",
                &[],
            ),
        ];
        let stamped_refs: Vec<&LogEntry> = stamped.iter().collect();
        let decoded_stamped = decode(&encode(&stamped_refs, &[], 3).bytes).unwrap();
        assert_eq!(decoded_stamped.dictionary, b"4bf92f3577b34da6");
        assert_eq!(decoded_stamped.references, vec![0, 0, 0]);
        let finder = |needle: &'static str| memchr::memmem::Finder::new(needle);
        let read_for = |needle: &'static str| {
            decode_if_contains(&encode(&refs, &[], 3).bytes, &[finder(needle)])
                .unwrap()
                .is_some()
        };
        // Ruled out on the dictionary alone: an id that is not there.
        assert!(!read_for("user\":\"c9990000\"}"));
        assert!(read_for("4bf92f3577b34da6"));
        assert!(read_for("\"user\":\"a5884caf\"}"));
    }

    #[test]
    fn needles_that_may_touch_a_stamp() {
        for needle in [
            "2026",
            "12:00",
            "Z",
            "ok Z",
            "x 2026",
            "x 2026-12-0",
            "ts=2026-12-07T10:11:12.3",
            "id-1",
            "fc2",
            "-",
            "\u{1e}",
        ] {
            assert!(may_touch_stamp(needle.as_bytes()), "{needle}");
        }
        for needle in [
            "a5884caf",
            "user=a1b",
            "2026x",
            "GET /api",
            "12 ms",
            "T-ok",
            "x 12:0",
            "r-26dd11a11fc9",
            "x 2026:",
            "x 2026:0",
        ] {
            assert!(!may_touch_stamp(needle.as_bytes()), "{needle}");
        }
    }
}
