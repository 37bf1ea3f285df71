//! The log data model: a stream is a label set; an entry is a timestamp in nanoseconds, a line
//! and structured metadata (name / value pairs that travel with the line without defining a
//! stream, as Loki 3 has them).

use obs_core::series::Labels;

/// Nanoseconds since the Unix epoch.
pub type TimestampNs = i64;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEntry {
    /// When it happened.
    pub timestamp_ns: TimestampNs,
    /// The line, without its trailing newline.
    pub line: String,
    /// Structured metadata, in the order the client sent it.
    pub metadata: Vec<(String, String)>,
}

/// Entries of one stream, as a push request carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamEntries {
    /// The stream's labels.
    pub labels: Labels,
    /// Its entries, in any order.
    pub entries: Vec<LogEntry>,
}

/// Limits on what one entry may carry (Loki's defaults where it has one).
#[derive(Debug, Clone)]
pub struct EntryLimits {
    /// The longest line, in bytes (Loki's `max_line_size`: 256 KB).
    pub max_line_bytes: usize,
    /// The most labels a stream may have (Loki's `max_label_names_per_series`: 15).
    pub max_labels: usize,
    /// The longest label name (Loki: 1024).
    pub max_label_name_bytes: usize,
    /// The longest label value (Loki: 2048).
    pub max_label_value_bytes: usize,
    /// The most structured-metadata bytes per entry (Loki: 64 KB).
    pub max_metadata_bytes: usize,
    /// The most structured-metadata pairs per entry (Loki: 128).
    pub max_metadata_pairs: usize,
}

impl Default for EntryLimits {
    fn default() -> EntryLimits {
        EntryLimits {
            max_line_bytes: 256 << 10,
            max_labels: 15,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_metadata_bytes: 64 << 10,
            max_metadata_pairs: 128,
        }
    }
}

impl EntryLimits {
    /// Why a stream's labels are refused, if they are.
    pub fn check_labels(&self, labels: &Labels) -> Option<String> {
        if labels.is_empty() {
            return Some("stream has no labels; at least one label is required".to_owned());
        }
        if labels.len() > self.max_labels {
            return Some(format!(
                "stream '{labels}' has {} label names; limit {}",
                labels.len(),
                self.max_labels
            ));
        }
        for label in labels.iter() {
            if label.name.len() > self.max_label_name_bytes {
                return Some(format!(
                    "stream '{labels}' has label name too long: {:?}",
                    label.name
                ));
            }
            if label.value.len() > self.max_label_value_bytes {
                return Some(format!(
                    "stream '{labels}' has label value too long: {:?}",
                    label.value
                ));
            }
        }
        None
    }

    /// Why an entry is refused, if it is (time bounds are the store's business).
    pub fn check_entry(&self, labels: &Labels, entry: &LogEntry) -> Option<String> {
        if entry.line.len() > self.max_line_bytes {
            return Some(format!(
                "max entry size '{}' bytes exceeded for stream '{labels}' while adding an entry with length '{}' bytes",
                self.max_line_bytes,
                entry.line.len()
            ));
        }
        if entry.metadata.len() > self.max_metadata_pairs {
            return Some(format!(
                "structured metadata of an entry for stream '{labels}' has {} pairs; limit {}",
                entry.metadata.len(),
                self.max_metadata_pairs
            ));
        }
        let metadata_bytes: usize = entry
            .metadata
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        if metadata_bytes > self.max_metadata_bytes {
            return Some(format!(
                "structured metadata of an entry for stream '{labels}' has {metadata_bytes} bytes; limit {}",
                self.max_metadata_bytes
            ));
        }
        for (name, _) in &entry.metadata {
            if !obs_core::series::is_valid_label_name(name) {
                return Some(format!(
                    "invalid structured metadata name {name:?} for stream '{labels}': names must match [a-zA-Z_][a-zA-Z0-9_]*"
                ));
            }
        }
        None
    }
}
