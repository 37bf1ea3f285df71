//! The notification log: what was last sent for each aggregation group to each receiver
//! integration, so that unchanged groups are not notified again before `repeat_interval`
//! (Alertmanager's `nflog`).
//!
//! [`NotificationLog`] is the storage interface the dispatcher uses; [`MemoryNotificationLog`]
//! keeps entries in a map and serialises them with serde, so the server can snapshot it or
//! keep each entry in redb under [`NflogKey::storage_key`]. Entries expire (upstream keeps
//! them `2 × repeat_interval`); an expired entry reads as absent.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::labels::Fingerprint;
use crate::time::Timestamp;

/// Which integration of which receiver, as upstream's `nflogpb.Receiver`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IntegrationRef {
    /// The receiver name.
    pub receiver: String,
    /// `webhook`, `email` or `ntfy`.
    pub integration: String,
    /// Position within that receiver's list for this integration.
    pub index: usize,
}

impl IntegrationRef {
    /// `receiver/integration[index]`, as upstream logs it.
    pub fn describe(&self) -> String {
        format!("{}/{}[{}]", self.receiver, self.integration, self.index)
    }
}

/// The key of a log entry: the group key and the integration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NflogKey {
    /// The aggregation group's key.
    pub group_key: String,
    /// The integration notified.
    pub integration: IntegrationRef,
}

impl NflogKey {
    /// A byte-string key for a key-value store: the four parts separated by `0xff`, which
    /// cannot occur in UTF-8.
    pub fn storage_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.group_key.len() + self.integration.receiver.len() + 32);
        key.extend_from_slice(self.group_key.as_bytes());
        key.push(0xff);
        key.extend_from_slice(self.integration.receiver.as_bytes());
        key.push(0xff);
        key.extend_from_slice(self.integration.integration.as_bytes());
        key.push(0xff);
        key.extend_from_slice(self.integration.index.to_string().as_bytes());
        key
    }
}

/// What was last notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogEntry {
    /// Fingerprints of the firing alerts in the last notification.
    pub firing: BTreeSet<Fingerprint>,
    /// Fingerprints of the resolved alerts in the last notification.
    pub resolved: BTreeSet<Fingerprint>,
    /// When it was sent.
    pub timestamp: Timestamp,
    /// When the entry stops counting.
    pub expires_at: Timestamp,
}

/// Storage of notification-log entries.
pub trait NotificationLog {
    /// The entry for `key`, if present and not expired at `now`.
    fn query(&self, key: &NflogKey, now: Timestamp) -> Option<NflogEntry>;
    /// Records an entry, replacing any previous one.
    fn log(&mut self, key: NflogKey, entry: NflogEntry);
    /// Removes entries expired at `now`; returns how many.
    fn gc(&mut self, now: Timestamp) -> usize;
}

/// An in-memory notification log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryNotificationLog {
    entries: BTreeMap<String, (NflogKey, NflogEntry)>,
}

impl MemoryNotificationLog {
    /// An empty log.
    pub fn new() -> MemoryNotificationLog {
        MemoryNotificationLog::default()
    }

    /// All entries, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (&NflogKey, &NflogEntry)> {
        self.entries.values().map(|(key, entry)| (key, entry))
    }

    /// The number of entries (expired ones included until [`NotificationLog::gc`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn map_key(key: &NflogKey) -> String {
        String::from_utf8_lossy(&key.storage_key()).into_owned()
    }
}

impl NotificationLog for MemoryNotificationLog {
    fn query(&self, key: &NflogKey, now: Timestamp) -> Option<NflogEntry> {
        let (_, entry) = self.entries.get(&MemoryNotificationLog::map_key(key))?;
        (entry.expires_at > now).then(|| entry.clone())
    }

    fn log(&mut self, key: NflogKey, entry: NflogEntry) {
        self.entries
            .insert(MemoryNotificationLog::map_key(&key), (key, entry));
    }

    fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (_, entry)| entry.expires_at > now);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, index: usize) -> NflogKey {
        NflogKey {
            group_key: group.to_owned(),
            integration: IntegrationRef {
                receiver: "team".to_owned(),
                integration: "webhook".to_owned(),
                index,
            },
        }
    }

    #[test]
    fn entries_expire_and_are_collected() {
        let mut log = MemoryNotificationLog::new();
        let entry = NflogEntry {
            firing: BTreeSet::from([Fingerprint(1)]),
            resolved: BTreeSet::new(),
            timestamp: Timestamp::from_unix_secs(10),
            expires_at: Timestamp::from_unix_secs(20),
        };
        log.log(key("{}:{}", 0), entry.clone());
        assert_eq!(
            log.query(&key("{}:{}", 0), Timestamp::from_unix_secs(19)),
            Some(entry)
        );
        assert_eq!(log.query(&key("{}:{}", 1), Timestamp::from_unix_secs(19)), None);
        assert_eq!(log.query(&key("{}:{}", 0), Timestamp::from_unix_secs(20)), None);
        assert_eq!(log.gc(Timestamp::from_unix_secs(20)), 1);
        assert!(log.is_empty());
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut log = MemoryNotificationLog::new();
        log.log(
            key("{}/{a=\"b\"}:{}", 2),
            NflogEntry {
                firing: BTreeSet::from([Fingerprint(7)]),
                resolved: BTreeSet::from([Fingerprint(9)]),
                timestamp: Timestamp::from_unix_secs(1),
                expires_at: Timestamp::from_unix_secs(2),
            },
        );
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(serde_json::from_str::<MemoryNotificationLog>(&json).unwrap(), log);
        assert_ne!(key("a", 0).storage_key(), key("a", 1).storage_key());
    }
}
