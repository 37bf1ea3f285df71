//! Inhibition: an alert matching a rule's target matchers is muted while a firing alert
//! matching its source matchers has the same values for the rule's `equal` labels (a missing
//! label counts as empty).
//!
//! As in Alertmanager 0.27 (`inhibit/inhibit.go`): source alerts are all stored alerts, whether
//! silenced or not, that are not resolved at the time of the check; and when the target alert
//! also matches the source matchers, source alerts that also match the target matchers are
//! skipped, so an alert never inhibits itself and two alerts matching both sides do not
//! inhibit each other.

use crate::alert::Alert;
use crate::config::InhibitRuleConfig;
use crate::labels::{Fingerprint, LabelSet};
use crate::time::Timestamp;

/// The inhibition rules of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRuleConfig>,
}

impl Inhibitor {
    /// From the configured rules.
    pub fn new(rules: &[InhibitRuleConfig]) -> Inhibitor {
        Inhibitor {
            rules: rules.to_vec(),
        }
    }

    /// The fingerprint of an alert inhibiting `target`, if any, among `alerts` (all stored
    /// alerts), at `now`. Alerts are tried in the order given; the first inhibiting one is
    /// returned.
    pub fn inhibited_by<'a>(
        &self,
        target: &LabelSet,
        alerts: impl IntoIterator<Item = &'a Alert> + Clone,
        now: Timestamp,
    ) -> Option<Fingerprint> {
        for rule in &self.rules {
            if !rule.target_matchers.matches(target) {
                continue;
            }
            let target_is_also_source = rule.source_matchers.matches(target);
            for source in alerts.clone() {
                if source.resolved_at(now) || !rule.source_matchers.matches(&source.labels) {
                    continue;
                }
                if rule
                    .equal
                    .iter()
                    .any(|name| source.labels.get(name) != target.get(name))
                {
                    continue;
                }
                if target_is_also_source && rule.target_matchers.matches(&source.labels) {
                    continue;
                }
                return Some(source.fingerprint());
            }
        }
        None
    }

    /// Whether `target` is inhibited.
    pub fn mutes<'a>(
        &self,
        target: &LabelSet,
        alerts: impl IntoIterator<Item = &'a Alert> + Clone,
        now: Timestamp,
    ) -> bool {
        self.inhibited_by(target, alerts, now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn inhibitor(rules: &str) -> Inhibitor {
        let yaml = format!("route: {{receiver: r}}\nreceivers: [{{name: r}}]\ninhibit_rules:\n{rules}");
        Inhibitor::new(&Config::parse(&yaml).unwrap().inhibit_rules)
    }

    fn alert(pairs: &[(&str, &str)], ends: Option<i64>) -> Alert {
        Alert {
            labels: LabelSet::from_pairs(pairs.iter().copied()),
            annotations: LabelSet::new(),
            starts_at: Timestamp::from_unix_secs(0),
            ends_at: ends.map(Timestamp::from_unix_secs),
            generator_url: String::new(),
            updated_at: Timestamp::from_unix_secs(0),
            timeout: false,
        }
    }

    #[test]
    fn firing_source_with_equal_labels_inhibits() {
        let rules = inhibitor(
            "  - source_matchers: [severity=critical]\n    target_matchers: [severity=warning]\n    equal: [cluster]\n",
        );
        let critical = alert(&[("severity", "critical"), ("cluster", "eu")], Some(100));
        let now = Timestamp::from_unix_secs(50);
        let warning_eu = LabelSet::from_pairs([("severity", "warning"), ("cluster", "eu")]);
        let warning_us = LabelSet::from_pairs([("severity", "warning"), ("cluster", "us")]);
        let alerts = [critical.clone()];
        assert_eq!(
            rules.inhibited_by(&warning_eu, &alerts, now),
            Some(critical.fingerprint())
        );
        assert!(!rules.mutes(&warning_us, &alerts, now));
        // Resolved sources do not inhibit.
        assert!(!rules.mutes(&warning_eu, &alerts, Timestamp::from_unix_secs(100)));
    }

    #[test]
    fn missing_equal_label_equals_empty() {
        let rules = inhibitor("  - source_match: {a: s}\n    target_match: {a: t}\n    equal: [zone]\n");
        let source = alert(&[("a", "s")], None);
        assert!(rules.mutes(
            &LabelSet::from_pairs([("a", "t")]),
            [&source],
            Timestamp::from_unix_secs(1)
        ));
        let zoned = LabelSet::from_pairs([("a", "t"), ("zone", "x")]);
        assert!(!rules.mutes(&zoned, [&source], Timestamp::from_unix_secs(1)));
    }

    #[test]
    fn alerts_matching_both_sides_do_not_inhibit_each_other() {
        // Upstream's TestInhibitRuleMatchers "equal labels, both sides": a rule whose source
        // and target both match `job=test`.
        let rules = inhibitor("  - source_matchers: [job=test]\n    target_matchers: [job=test]\n");
        let first = alert(&[("job", "test"), ("x", "1")], None);
        let second = alert(&[("job", "test"), ("x", "2")], None);
        let alerts = [first.clone(), second.clone()];
        let now = Timestamp::from_unix_secs(1);
        assert!(
            !rules.mutes(&first.labels, &alerts, now),
            "not by itself nor its twin"
        );
        // A source matching only the source side still inhibits a two-sided target.
        let rules = inhibitor("  - source_matchers: ['s=~\"1|2\"']\n    target_matchers: ['s=\"2\"']\n");
        let source_only = alert(&[("s", "1")], None);
        let both = alert(&[("s", "2")], None);
        let alerts = [source_only.clone(), both.clone()];
        assert_eq!(
            rules.inhibited_by(&both.labels, &alerts, now),
            Some(source_only.fingerprint())
        );
        assert!(!rules.mutes(&source_only.labels, &alerts, now));
    }
}
