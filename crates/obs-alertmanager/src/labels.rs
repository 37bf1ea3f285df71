//! Label sets as Alertmanager sees them (`model.LabelSet`): a map from name to value, with the
//! fingerprint and the string form that group keys are made of.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use obs_core::encoding::{FNV1A_64_OFFSET, fnv1a_64};
use serde::{Deserialize, Serialize};

/// The byte between names and values in a fingerprint; it cannot occur in UTF-8.
const SEPARATOR_BYTE: u8 = 0xff;

/// A label set's fingerprint, as prometheus/common `LabelSet.Fingerprint()` computes it:
/// FNV-1a 64 over the names in sorted order, each name and value followed by `0xff`. Printed
/// as 16 lowercase hex digits, like Go's `Fingerprint.String()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// Parses the hex form (Go's `model.FingerprintFromString`).
    fn from_str(text: &str) -> Result<Fingerprint, String> {
        u64::from_str_radix(text, 16)
            .map(Fingerprint)
            .map_err(|_| format!("{text:?} is not a fingerprint: expected up to 16 hex digits"))
    }
}

/// Labels or annotations: names to values, iterated in name order (byte-wise, as Go sorts
/// strings). A missing name reads as the empty value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelSet(BTreeMap<String, String>);

impl LabelSet {
    /// An empty set.
    pub fn new() -> LabelSet {
        LabelSet(BTreeMap::new())
    }

    /// A set from pairs; a later duplicate name wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> LabelSet {
        LabelSet(
            pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        )
    }

    /// The value of `name`, `""` when absent (as a Go map lookup).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Whether `name` is present (even with an empty value).
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Sets a label.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// Removes a label.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Drops labels whose value is empty (Alertmanager's `removeEmptyLabels` on posted alerts).
    pub fn remove_empty(&mut self) {
        self.0.retain(|_, value| !value.is_empty());
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The fingerprint (see [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = FNV1A_64_OFFSET;
        for (name, value) in &self.0 {
            hash = fnv1a_64(hash, name.as_bytes());
            hash = fnv1a_64(hash, &[SEPARATOR_BYTE]);
            hash = fnv1a_64(hash, value.as_bytes());
            hash = fnv1a_64(hash, &[SEPARATOR_BYTE]);
        }
        Fingerprint(hash)
    }

    /// Go's `LabelSet.String()`: `{a="1", b="x\ny"}`, names sorted, values quoted as
    /// `strconv.Quote` does. This is the group-labels half of a group key.
    pub fn go_string(&self) -> String {
        let mut out = String::from("{");
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&go_quote(value));
        }
        out.push('}');
        out
    }

    /// Whether this set sorts before `other` as prometheus/common `LabelSet.Before` orders
    /// them: fewer labels first, then by the first differing name or value.
    pub fn go_before(&self, other: &LabelSet) -> bool {
        if self.len() != other.len() {
            return self.len() < other.len();
        }
        let mut names: Vec<&String> = self.0.keys().chain(other.0.keys()).collect();
        names.sort();
        for name in names {
            let Some(mine) = self.0.get(name) else { return true };
            let Some(theirs) = other.0.get(name) else {
                return false;
            };
            if mine != theirs {
                return mine < theirs;
            }
        }
        false
    }
}

impl FromIterator<(String, String)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> LabelSet {
        LabelSet(iter.into_iter().collect())
    }
}

/// Go's `strconv.Quote`: a double-quoted Go string literal with `\a \b \f \n \r \t \v \\ \"`
/// escapes, other control characters as `\x..`, and non-printable runes as `\u....`.
/// Printability of non-ASCII runes approximates Go's `unicode.IsPrint` (no Unicode tables).
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_ascii() || is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `strconv.IsPrint` for non-ASCII runes (same rule as obs-template's).
fn is_go_printable(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0x00AD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xE000..=0xF8FF | 0xFFF9..=0xFFFB))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_prometheus_common_published_values() {
        // prometheus/common model/signature_test.go: TestLabelsToSignature and
        // TestLabelSetToFingerprint use these two cases; labelSetToFingerprint is the same
        // algorithm.
        assert_eq!(LabelSet::new().fingerprint().0, 14_695_981_039_346_656_037);
        let labels = LabelSet::from_pairs([("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(labels.fingerprint().0, 5_799_056_148_416_392_346);
        assert_eq!(labels.fingerprint().to_string(), "507a62d79ee76c9a");
    }

    #[test]
    fn fingerprint_by_hand_for_one_label() {
        // FNV-1a 64 over the bytes "a", 0xff, "b", 0xff, step by step.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in [b'a', 0xff, b'b', 0xff] {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(LabelSet::from_pairs([("a", "b")]).fingerprint().0, hash);
        assert_eq!(Fingerprint(0xab).to_string(), "00000000000000ab");
        assert_eq!("00000000000000ab".parse::<Fingerprint>(), Ok(Fingerprint(0xab)));
    }

    #[test]
    fn go_string_sorts_names_and_quotes_values() {
        let labels = LabelSet::from_pairs([("b", "x\"y"), ("a0", "tab\there"), ("a", "é\u{200b}")]);
        assert_eq!(labels.go_string(), r#"{a="é\u200b", a0="tab\there", b="x\"y"}"#);
        assert_eq!(LabelSet::new().go_string(), "{}");
    }

    #[test]
    fn before_orders_by_size_then_content() {
        let one = LabelSet::from_pairs([("a", "1")]);
        let two = LabelSet::from_pairs([("a", "1"), ("b", "2")]);
        assert!(one.go_before(&two) && !two.go_before(&one));
        let other = LabelSet::from_pairs([("a", "2")]);
        assert!(one.go_before(&other) && !other.go_before(&one));
        let by_name = LabelSet::from_pairs([("b", "0")]);
        // Go's quirk: the set lacking the first name in the merged order sorts first.
        assert!(by_name.go_before(&one) && !one.go_before(&by_name));
        assert!(!one.go_before(&one));
    }
}
