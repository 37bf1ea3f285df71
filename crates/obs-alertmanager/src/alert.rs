//! The alert model (`types.Alert`: `model.Alert` plus `UpdatedAt` and `Timeout`), its
//! resolved-ness at an instant, and the merge of a re-sent alert into the stored one.

use std::cmp::Ordering;
use std::time::Duration;

use crate::Error;
use crate::labels::{Fingerprint, LabelSet};
use crate::time::Timestamp;

/// The label naming an alert.
pub const ALERT_NAME_LABEL: &str = "alertname";

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertStatus {
    /// Still active.
    Firing,
    /// `endsAt` has passed.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`, as in the webhook payload.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// An alert as Alertmanager stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Identifying labels; the fingerprint is computed from them.
    pub labels: LabelSet,
    /// Descriptive annotations.
    pub annotations: LabelSet,
    /// When the alert started firing.
    pub starts_at: Timestamp,
    /// When it ends (or ended); `None` = unknown (Go's zero time).
    pub ends_at: Option<Timestamp>,
    /// Link back to the rule that produced it.
    pub generator_url: String,
    /// When Alertmanager last received it.
    pub updated_at: Timestamp,
    /// Whether `ends_at` was set by Alertmanager from `resolve_timeout` rather than sent.
    pub timeout: bool,
}

/// An alert as a client posts it (API v2 `postableAlert`): times optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostableAlert {
    /// Labels (required, at least one non-empty).
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// Start, if sent.
    pub starts_at: Option<Timestamp>,
    /// End, if sent.
    pub ends_at: Option<Timestamp>,
    /// Generator URL.
    pub generator_url: String,
}

impl PostableAlert {
    /// What the API v2 `POST /alerts` handler does to each alert before storing it:
    /// `updated_at` = now; a missing start becomes the end or now; a missing end becomes
    /// now + `resolve_timeout` with the `timeout` flag; labels and annotations with empty
    /// values are dropped; then the alert is validated.
    pub fn into_alert(self, now: Timestamp, resolve_timeout: Duration) -> Result<Alert, Error> {
        let starts_at = self.starts_at.or(self.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match self.ends_at {
            Some(ends_at) => (ends_at, false),
            None => (now.saturating_add(resolve_timeout), true),
        };
        let mut labels = self.labels;
        labels.remove_empty();
        let mut annotations = self.annotations;
        annotations.remove_empty();
        let alert = Alert {
            labels,
            annotations,
            starts_at,
            ends_at: Some(ends_at),
            generator_url: self.generator_url,
            updated_at: now,
            timeout,
        };
        alert.validate()?;
        Ok(alert)
    }
}

impl Alert {
    /// The fingerprint of the labels.
    pub fn fingerprint(&self) -> Fingerprint {
        self.labels.fingerprint()
    }

    /// The `alertname` label.
    pub fn name(&self) -> &str {
        self.labels.get(ALERT_NAME_LABEL)
    }

    /// Whether the alert is resolved at `at`: it has an end, and the end is not after `at`.
    pub fn resolved_at(&self, at: Timestamp) -> bool {
        self.ends_at.is_some_and(|ends_at| ends_at <= at)
    }

    /// Firing or resolved at `at`.
    pub fn status_at(&self, at: Timestamp) -> AlertStatus {
        if self.resolved_at(at) {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        }
    }

    /// Upstream's `Alert.Validate`.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(ends_at) = self.ends_at
            && ends_at < self.starts_at
        {
            return Err(Error::InvalidAlert(
                "start time must be before end time".to_owned(),
            ));
        }
        if self.labels.is_empty() {
            return Err(Error::InvalidAlert("at least one label pair required".to_owned()));
        }
        for (set, what) in [(&self.labels, "label set"), (&self.annotations, "annotations")] {
            if let Some((name, _)) = set.iter().find(|(name, _)| name.is_empty()) {
                return Err(Error::InvalidAlert(format!(
                    "invalid {what}: invalid name {name:?}"
                )));
            }
        }
        Ok(())
    }

    /// Upstream's `Alert.Merge`: the result is the more recently updated alert, with the
    /// earlier `starts_at` of the two, and the later `ends_at` kept when both are resolved or
    /// when the newer one is firing and the older end was not a timeout. `at` stands for
    /// upstream's `time.Now()` in its resolved checks.
    pub fn merge(&self, other: &Alert, at: Timestamp) -> Alert {
        if other.updated_at < self.updated_at {
            return other.merge(self, at);
        }
        let mut result = other.clone();
        if self.starts_at < other.starts_at {
            result.starts_at = self.starts_at;
        }
        let self_ends_later = match (self.ends_at, other.ends_at) {
            (Some(mine), Some(theirs)) => mine > theirs,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if other.resolved_at(at) {
            if self.resolved_at(at) && self_ends_later {
                result.ends_at = self.ends_at;
            }
        } else if self_ends_later && !self.timeout {
            result.ends_at = self.ends_at;
        }
        result
    }

    /// Whether a newly received `incoming` alert overlaps this stored one in time, the
    /// condition under which the store merges them instead of replacing (upstream's
    /// `provider/mem.Put`).
    pub fn overlaps(&self, incoming: &Alert) -> bool {
        let after_start = |t: Option<Timestamp>| t.is_some_and(|t| t > self.starts_at);
        let before_end = |t: Option<Timestamp>| match (t, self.ends_at) {
            (Some(t), Some(end)) => t < end,
            _ => false,
        };
        (after_start(incoming.ends_at) && before_end(incoming.ends_at))
            || (after_start(Some(incoming.starts_at)) && before_end(Some(incoming.starts_at)))
    }
}

/// The order Alertmanager sorts a group's alerts in before notifying (`AlertSlice.Less`): by
/// `job`, then `instance` (an alert with the label before one without), then by label set.
pub fn compare_for_notification(a: &Alert, b: &Alert) -> Ordering {
    for key in ["job", "instance"] {
        match (a.labels.contains(key), b.labels.contains(key)) {
            (false, false) => continue,
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            (true, true) => {
                let ordering = a.labels.get(key).cmp(b.labels.get(key));
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
    if a.labels.go_before(&b.labels) {
        Ordering::Less
    } else if b.labels.go_before(&a.labels) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn alert(starts: i64, ends: Option<i64>, updated: i64) -> Alert {
        Alert {
            labels: LabelSet::from_pairs([("alertname", "A")]),
            annotations: LabelSet::new(),
            starts_at: ts(starts),
            ends_at: ends.map(ts),
            generator_url: String::new(),
            updated_at: ts(updated),
            timeout: false,
        }
    }

    #[test]
    fn resolved_when_end_is_not_after_now() {
        let a = alert(0, Some(100), 0);
        assert!(!a.resolved_at(ts(99)));
        assert!(a.resolved_at(ts(100)));
        assert_eq!(a.status_at(ts(101)), AlertStatus::Resolved);
        assert!(!alert(0, None, 0).resolved_at(ts(i64::MAX / 2_000_000_000)));
    }

    #[test]
    fn merge_keeps_earliest_start_and_the_newer_alert() {
        let old = alert(10, Some(500), 100);
        let mut new = alert(50, Some(400), 200);
        new.annotations.insert("summary", "new");
        let merged = old.merge(&new, ts(300));
        assert_eq!(merged.starts_at, ts(10));
        assert_eq!(merged.annotations.get("summary"), "new");
        // Newer is firing at 300 and the older end (500) was sent, not a timeout: keep 500.
        assert_eq!(merged.ends_at, Some(ts(500)));
        assert_eq!(new.merge(&old, ts(300)), merged, "argument order does not matter");
    }

    #[test]
    fn merge_lets_a_resolve_shorten_and_a_timeout_be_overridden() {
        // The older end came from resolve_timeout: the newer end wins.
        let mut old = alert(10, Some(500), 100);
        old.timeout = true;
        let new = alert(10, Some(400), 200);
        assert_eq!(old.merge(&new, ts(300)).ends_at, Some(ts(400)));
        // Newer one is resolved (ends 250 <= now 300), older one firing: newer end wins.
        let old = alert(10, Some(500), 100);
        let resolved = alert(10, Some(250), 200);
        assert_eq!(old.merge(&resolved, ts(300)).ends_at, Some(ts(250)));
        // Both resolved: the later end is kept.
        let old = alert(10, Some(280), 100);
        assert_eq!(old.merge(&resolved, ts(300)).ends_at, Some(ts(280)));
    }

    #[test]
    fn posted_alerts_get_upstream_defaults() {
        let now = ts(1000);
        let posted = PostableAlert {
            labels: LabelSet::from_pairs([("alertname", "A"), ("empty", "")]),
            ..PostableAlert::default()
        };
        let alert = posted.into_alert(now, Duration::from_secs(300)).unwrap();
        assert_eq!(alert.starts_at, now);
        assert_eq!(alert.ends_at, Some(ts(1300)));
        assert!(alert.timeout);
        assert!(!alert.labels.contains("empty"));
        let only_end = PostableAlert {
            labels: LabelSet::from_pairs([("alertname", "A")]),
            ends_at: Some(ts(900)),
            ..PostableAlert::default()
        };
        let alert = only_end.into_alert(now, Duration::from_secs(300)).unwrap();
        assert_eq!(
            (alert.starts_at, alert.ends_at, alert.timeout),
            (ts(900), Some(ts(900)), false)
        );
        let empty = PostableAlert::default().into_alert(now, Duration::from_secs(300));
        assert_eq!(
            empty.unwrap_err().to_string(),
            "invalid alert: at least one label pair required"
        );
        let backwards = PostableAlert {
            labels: LabelSet::from_pairs([("a", "b")]),
            starts_at: Some(ts(10)),
            ends_at: Some(ts(5)),
            ..PostableAlert::default()
        };
        assert!(backwards.into_alert(now, Duration::ZERO).is_err());
    }

    #[test]
    fn notification_order_puts_job_and_instance_first() {
        let with = |pairs: &[(&str, &str)]| Alert {
            labels: LabelSet::from_pairs(pairs.iter().copied()),
            ..alert(0, None, 0)
        };
        let mut alerts = [
            with(&[("alertname", "Z")]),
            with(&[("job", "b"), ("alertname", "A")]),
            with(&[("job", "a"), ("instance", "2")]),
            with(&[("job", "a"), ("instance", "1")]),
        ];
        alerts.sort_by(compare_for_notification);
        let order: Vec<String> = alerts.iter().map(|a| a.labels.go_string()).collect();
        assert_eq!(
            order,
            [
                r#"{instance="1", job="a"}"#,
                r#"{instance="2", job="a"}"#,
                r#"{alertname="A", job="b"}"#,
                r#"{alertname="Z"}"#,
            ]
        );
    }
}
