//! Silences: matchers plus a time window during which matching alerts are not notified
//! (`silence/silence.go`).
//!
//! State at an instant `t`: pending while `t < startsAt`, expired once `t > endsAt`, active in
//! between (both ends inclusive, as upstream's `getState`). Only active silences mute.
//!
//! [`Silences::set`] follows upstream's `Set` with the API v2 checks in front: a silence must
//! have at least one matcher, not only matchers that match the empty string, and start before
//! it ends; a new one must not end in the past. Updating an existing silence keeps its ID when
//! the history of what it muted does not change (same matchers; while active, same start and an
//! end not in the past; while pending, a start not in the past); otherwise the old silence is
//! expired and a new one with a new ID is created. Expired silences are kept for a retention
//! period after their end, then [`Silences::gc`] drops them.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Error;
use crate::labels::LabelSet;
use crate::matchers::Matcher;
use crate::time::Timestamp;

/// Upstream's default `--data.retention`: how long expired silences are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// A silence's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SilenceState {
    /// Ended.
    Expired,
    /// Muting now.
    Active,
    /// Not started yet.
    Pending,
}

impl SilenceState {
    /// `expired`, `active` or `pending`, as the API prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Expired => "expired",
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
        }
    }
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// UUID-form ID.
    pub id: String,
    /// All must match for the silence to apply.
    pub matchers: Vec<Matcher>,
    /// Start of the muting window.
    pub starts_at: Timestamp,
    /// End of the muting window.
    pub ends_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// A silence as a client posts it (API v2 `postableSilence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostableSilence {
    /// Set to update an existing silence.
    pub id: Option<String>,
    /// Matchers.
    pub matchers: Vec<Matcher>,
    /// Start; `None` = now.
    pub starts_at: Option<Timestamp>,
    /// End.
    pub ends_at: Timestamp,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// The state at `at`.
    pub fn state_at(&self, at: Timestamp) -> SilenceState {
        if at < self.starts_at {
            SilenceState::Pending
        } else if at > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// Whether the matchers accept these labels (regardless of state).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|matcher| matcher.matches_labels(labels))
    }

    /// Whether the silence mutes these labels at `at`: active and matching.
    pub fn mutes(&self, labels: &LabelSet, at: Timestamp) -> bool {
        self.state_at(at) == SilenceState::Active && self.matches(labels)
    }
}

/// Upstream's `validateSilence` (matchers, times) for a silence about to be stored.
fn validate(matchers: &[Matcher], starts_at: Timestamp, ends_at: Timestamp) -> Result<(), Error> {
    if matchers.is_empty() {
        return Err(Error::InvalidSilence("at least one matcher required".to_owned()));
    }
    for (index, matcher) in matchers.iter().enumerate() {
        if matcher.name.is_empty() {
            return Err(Error::InvalidSilence(format!(
                "invalid label matcher {index}: invalid label name \"\""
            )));
        }
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(Error::InvalidSilence(
            "at least one matcher must not match the empty string".to_owned(),
        ));
    }
    if ends_at < starts_at {
        return Err(Error::InvalidSilence(
            "end time must not be before start time".to_owned(),
        ));
    }
    Ok(())
}

/// The silence store.
#[derive(Debug, Clone)]
pub struct Silences {
    by_id: BTreeMap<String, Silence>,
    retention: Duration,
}

impl Default for Silences {
    fn default() -> Silences {
        Silences::new(DEFAULT_RETENTION)
    }
}

impl Silences {
    /// An empty store keeping expired silences for `retention` after their end.
    pub fn new(retention: Duration) -> Silences {
        Silences {
            by_id: BTreeMap::new(),
            retention,
        }
    }

    /// Restores a silence from a snapshot, as stored (no validation, ID kept).
    pub fn restore(&mut self, silence: Silence) {
        self.by_id.insert(silence.id.clone(), silence);
    }

    /// A silence by ID.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// All silences, by ID.
    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    /// The number of stored silences (expired ones included until [`Silences::gc`]).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// IDs of the silences muting `labels` at `at`, sorted.
    pub fn muted_by(&self, labels: &LabelSet, at: Timestamp) -> Vec<String> {
        self.by_id
            .values()
            .filter(|silence| silence.mutes(labels, at))
            .map(|silence| silence.id.clone())
            .collect()
    }

    /// Whether any active silence mutes `labels` at `at`.
    pub fn mutes(&self, labels: &LabelSet, at: Timestamp) -> bool {
        self.by_id.values().any(|silence| silence.mutes(labels, at))
    }

    /// Creates or updates a silence (API v2 `POST /silences`); returns the ID it is stored
    /// under, which is new unless the update could be made in place.
    pub fn set(&mut self, posted: PostableSilence, now: Timestamp) -> Result<String, Error> {
        let starts_at = posted.starts_at.unwrap_or(now);
        if starts_at >= posted.ends_at {
            return Err(Error::InvalidSilence(
                "start time must be before end time".to_owned(),
            ));
        }
        if posted.ends_at < now {
            return Err(Error::InvalidSilence("end time can't be in the past".to_owned()));
        }
        validate(&posted.matchers, starts_at, posted.ends_at)?;

        let previous = match posted.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => Some(
                self.by_id
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::SilenceNotFound(id.to_owned()))?,
            ),
            None => None,
        };
        if let Some(previous) = &previous
            && can_update(previous, &posted.matchers, starts_at, posted.ends_at, now)
        {
            let updated = Silence {
                id: previous.id.clone(),
                matchers: posted.matchers,
                starts_at,
                ends_at: posted.ends_at,
                updated_at: now,
                created_by: posted.created_by,
                comment: posted.comment,
            };
            self.by_id.insert(updated.id.clone(), updated);
            return Ok(previous.id.clone());
        }
        let mut id = new_uuid();
        while self.by_id.contains_key(&id) {
            id = new_uuid();
        }
        let silence = Silence {
            id: id.clone(),
            matchers: posted.matchers,
            starts_at: starts_at.max(now),
            ends_at: posted.ends_at,
            updated_at: now,
            created_by: posted.created_by,
            comment: posted.comment,
        };
        if let Some(previous) = previous
            && previous.state_at(now) != SilenceState::Expired
        {
            self.expire(&previous.id, now)?;
        }
        self.by_id.insert(id.clone(), silence);
        Ok(id)
    }

    /// Expires a silence now (API v2 `DELETE /silence/{id}`): an active one ends now, a
    /// pending one starts and ends now, an expired one is left alone.
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<(), Error> {
        let silence = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::SilenceNotFound(id.to_owned()))?;
        match silence.state_at(now) {
            SilenceState::Expired => return Ok(()),
            SilenceState::Active => silence.ends_at = now,
            SilenceState::Pending => {
                silence.starts_at = now;
                silence.ends_at = now;
            }
        }
        silence.updated_at = now;
        Ok(())
    }

    /// Drops silences whose end plus the retention has passed; returns how many.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.by_id.len();
        let retention = self.retention;
        self.by_id
            .retain(|_, silence| silence.ends_at.saturating_add(retention) > now);
        before - self.by_id.len()
    }
}

/// Upstream's `canUpdate`: whether `previous` can take the new values without changing what
/// it muted in the past.
fn can_update(
    previous: &Silence,
    matchers: &[Matcher],
    starts_at: Timestamp,
    ends_at: Timestamp,
    now: Timestamp,
) -> bool {
    if previous.matchers != matchers {
        return false;
    }
    match previous.state_at(now) {
        SilenceState::Active => previous.starts_at.unix_secs() == starts_at.unix_secs() && ends_at >= now,
        SilenceState::Pending => starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// A random UUID (version 4 layout) from the standard library's randomly seeded hasher, the
/// clock and a counter; unique, not meant to be unguessable.
pub fn new_uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut halves = [0u64; 2];
    for (index, half) in halves.iter_mut().enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_i64(Timestamp::now().unix_nanos());
        hasher.write_usize(index);
        *half = hasher.finish();
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&halves[0].to_be_bytes());
    bytes[8..].copy_from_slice(&halves[1].to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::parse_matchers;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn posted(matchers: &str, starts: Option<i64>, ends: i64) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers: parse_matchers(matchers).unwrap(),
            starts_at: starts.map(ts),
            ends_at: ts(ends),
            created_by: "me".to_owned(),
            comment: "maintenance".to_owned(),
        }
    }

    #[test]
    fn states_and_muting() {
        let mut silences = Silences::default();
        let id = silences.set(posted("job=api", Some(100), 200), ts(50)).unwrap();
        let silence = silences.get(&id).unwrap();
        assert_eq!(silence.state_at(ts(99)), SilenceState::Pending);
        assert_eq!(silence.state_at(ts(100)), SilenceState::Active);
        assert_eq!(
            silence.state_at(ts(200)),
            SilenceState::Active,
            "end is inclusive"
        );
        assert_eq!(silence.state_at(ts(201)), SilenceState::Expired);
        let api = LabelSet::from_pairs([("job", "api")]);
        assert!(!silences.mutes(&api, ts(99)));
        assert_eq!(silences.muted_by(&api, ts(150)), [id]);
        assert!(!silences.mutes(&LabelSet::from_pairs([("job", "web")]), ts(150)));
    }

    #[test]
    fn validation_as_upstream() {
        let mut silences = Silences::default();
        let now = ts(100);
        let err = |p: PostableSilence, s: &mut Silences| s.set(p, now).unwrap_err().to_string();
        assert_eq!(
            err(posted("", None, 200), &mut silences),
            "invalid silence: at least one matcher required"
        );
        assert_eq!(
            err(posted(r#"a=~".*",b="""#, None, 200), &mut silences),
            "invalid silence: at least one matcher must not match the empty string"
        );
        assert_eq!(
            err(posted("a=b", Some(300), 300), &mut silences),
            "invalid silence: start time must be before end time"
        );
        assert_eq!(
            err(posted("a=b", Some(10), 50), &mut silences),
            "invalid silence: end time can't be in the past"
        );
        // A negative matcher never matches "empty", so it is enough on its own.
        assert!(silences.set(posted("a!=b", None, 200), now).is_ok());
        let mut missing = posted("a=b", None, 200);
        missing.id = Some("nope".to_owned());
        assert_eq!(err(missing, &mut silences), "silence \"nope\" not found");
    }

    #[test]
    fn new_silences_start_no_earlier_than_now() {
        let mut silences = Silences::default();
        let id = silences.set(posted("a=b", Some(10), 200), ts(100)).unwrap();
        assert_eq!(silences.get(&id).unwrap().starts_at, ts(100));
        let uuid = silences.get(&id).unwrap().id.clone();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_uuid(), new_uuid());
    }

    #[test]
    fn updates_in_place_only_when_history_is_unchanged() {
        let mut silences = Silences::default();
        let id = silences.set(posted("a=b", Some(100), 200), ts(100)).unwrap();
        // Active: extending the end keeps the ID.
        let mut extend = posted("a=b", Some(100), 300);
        extend.id = Some(id.clone());
        assert_eq!(silences.set(extend, ts(150)).unwrap(), id);
        assert_eq!(silences.get(&id).unwrap().ends_at, ts(300));
        // Active: changing the matchers expires the old silence and creates a new one.
        let mut change = posted("a=c", None, 300);
        change.id = Some(id.clone());
        let new_id = silences.set(change, ts(160)).unwrap();
        assert_ne!(new_id, id);
        assert_eq!(silences.get(&id).unwrap().ends_at, ts(160));
        assert_eq!(
            silences.get(&id).unwrap().state_at(ts(161)),
            SilenceState::Expired
        );
        assert_eq!(silences.get(&new_id).unwrap().starts_at, ts(160));
        // Pending: moving the start later keeps the ID.
        let pending = silences.set(posted("x=y", Some(500), 600), ts(160)).unwrap();
        let mut later = posted("x=y", Some(550), 600);
        later.id = Some(pending.clone());
        assert_eq!(silences.set(later, ts(170)).unwrap(), pending);
        // Expired: any update creates a new silence and leaves the old one as it was.
        let mut revive = posted("a=b", None, 900);
        revive.id = Some(id.clone());
        let revived = silences.set(revive, ts(400)).unwrap();
        assert_ne!(revived, id);
        assert_eq!(silences.get(&id).unwrap().ends_at, ts(160));
    }

    #[test]
    fn expire_and_gc() {
        let mut silences = Silences::new(Duration::from_secs(1000));
        let active = silences.set(posted("a=b", None, 500), ts(100)).unwrap();
        let pending = silences.set(posted("c=d", Some(300), 500), ts(100)).unwrap();
        silences.expire(&active, ts(200)).unwrap();
        silences.expire(&pending, ts(200)).unwrap();
        let pending_silence = silences.get(&pending).unwrap();
        assert_eq!(
            (pending_silence.starts_at, pending_silence.ends_at),
            (ts(200), ts(200))
        );
        assert_eq!(
            silences.get(&active).unwrap().state_at(ts(201)),
            SilenceState::Expired
        );
        silences.expire(&active, ts(300)).unwrap();
        assert_eq!(
            silences.get(&active).unwrap().ends_at,
            ts(200),
            "expiring twice changes nothing"
        );
        assert!(silences.expire("missing", ts(300)).is_err());
        assert_eq!(silences.gc(ts(1199)), 0);
        assert_eq!(silences.gc(ts(1200)), 2);
    }
}
