//! The dispatcher: stored alerts, aggregation groups and their timers, and the decision of
//! what to notify, driven by an explicit clock so that every step is deterministic.
//!
//! It follows Alertmanager's `dispatch` and `notify` packages:
//!
//! 1. [`Dispatcher::put_alert`] merges a received alert into the store and inserts it into one
//!    aggregation group per matching route; a group is identified by its route and the values
//!    of the route's `group_by` labels. A new group first flushes `group_wait` after it was
//!    created — at once if an alert's `startsAt + group_wait` has already passed before the
//!    first flush (0.27 behaviour) — then every `group_interval`.
//! 2. [`Dispatcher::flush_due`] flushes every group whose timer is due: it snapshots the
//!    group's alerts (a firing alert's `endsAt` is cleared, as upstream does), removes the
//!    inhibited ones, drops everything if the route is outside its `active_time_intervals` or
//!    inside a `mute_time_intervals` entry, removes the silenced ones, then, for each
//!    integration of the receiver, asks the notification log whether anything changed
//!    (upstream's `DedupStage.needsUpdate`): new firing alerts, newly resolved alerts when
//!    `send_resolved`, all alerts resolved, or `repeat_interval` elapsed since the last
//!    notification. It returns the [`Notification`]s to deliver.
//! 3. The caller delivers them (retrying until the notification's `deadline`, which is
//!    `group_interval` after the flush, as upstream's retry stage) and calls
//!    [`Dispatcher::report`]. A delivered notification is written to the notification log.
//!    When every notification of a flush was delivered — or there was nothing to send — the
//!    resolved alerts of the flush are removed from the group (unless they changed since), and
//!    an empty group is dropped.
//!
//! [`Dispatcher::gc`] is the periodic maintenance: resolved alerts leave the store (upstream's
//! `--alerts.gc-interval`), expired log entries are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::alert::{Alert, AlertStatus, compare_for_notification};
use crate::config::{Config, Receiver};
use crate::inhibit::Inhibitor;
use crate::labels::{Fingerprint, LabelSet};
use crate::nflog::{IntegrationRef, MemoryNotificationLog, NflogEntry, NflogKey, NotificationLog};
use crate::route::{RouteId, RouteTree};
use crate::silence::Silences;
use crate::time::Timestamp;
use crate::timeinterval::any_contains;

/// Why a notification is sent (upstream's `NotifyReason`, reported as `notification_reason`
/// by Alertmanager 0.32+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyReason {
    /// Nothing to send.
    DoNotNotify,
    /// The group was never notified, or its last notification was a full resolve.
    FirstNotification,
    /// A firing alert was not in the last notification.
    NewAlertsInGroup,
    /// An alert resolved since the last notification (integrations with `send_resolved`).
    NewResolvedAlerts,
    /// No alert is firing any more.
    AllAlertsResolved,
    /// Nothing changed, but `repeat_interval` has passed.
    RepeatIntervalElapsed,
}

impl NotifyReason {
    /// Whether to notify.
    pub fn should_notify(self) -> bool {
        self != NotifyReason::DoNotNotify
    }

    /// Upstream's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyReason::DoNotNotify => "none",
            NotifyReason::FirstNotification => "first notification",
            NotifyReason::NewAlertsInGroup => "new alerts added",
            NotifyReason::NewResolvedAlerts => "some alerts resolved",
            NotifyReason::AllAlertsResolved => "all alerts resolved",
            NotifyReason::RepeatIntervalElapsed => "repeat interval elapsed",
        }
    }
}

/// Upstream's `DedupStage.needsUpdate`.
pub fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat_interval: Duration,
    now: Timestamp,
) -> NotifyReason {
    let Some(entry) = entry else {
        return if firing.is_empty() {
            NotifyReason::DoNotNotify
        } else {
            NotifyReason::FirstNotification
        };
    };
    if !firing.is_subset(&entry.firing) {
        return if entry.firing.is_empty() {
            NotifyReason::FirstNotification
        } else {
            NotifyReason::NewAlertsInGroup
        };
    }
    if firing.is_empty() {
        // Sent whatever send_resolved says, so that the log forgets the firing alerts; when
        // the last notification had none either, the receiver never heard of them.
        return if entry.firing.is_empty() {
            NotifyReason::DoNotNotify
        } else {
            NotifyReason::AllAlertsResolved
        };
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return NotifyReason::NewResolvedAlerts;
    }
    if entry.timestamp < now.saturating_sub(repeat_interval) {
        return NotifyReason::RepeatIntervalElapsed;
    }
    NotifyReason::DoNotNotify
}

/// One message to deliver through one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Unique within this dispatcher.
    pub id: u64,
    /// The receiver integration to use.
    pub integration: IntegrationRef,
    /// The aggregation group's key (`groupKey` in the webhook payload).
    pub group_key: String,
    /// The group's labels (`groupLabels`).
    pub group_labels: LabelSet,
    /// The alerts to send, in upstream's order: firing ones have `ends_at: None`, resolved
    /// ones only when the integration sends resolved alerts; cut to `max_alerts`.
    pub alerts: Vec<Alert>,
    /// How many alerts `max_alerts` cut off (`truncatedAlerts`).
    pub truncated_alerts: u64,
    /// Why it is sent.
    pub reason: NotifyReason,
    /// The flush time: alert statuses in the message are as of this instant.
    pub created_at: Timestamp,
    /// Give up delivering after this (flush time + `group_interval`).
    pub deadline: Timestamp,
    /// What the notification log records once delivered: the group's firing alerts…
    pub firing: BTreeSet<Fingerprint>,
    /// …and resolved alerts (all unmuted ones, whether sent or not, as upstream).
    pub resolved: BTreeSet<Fingerprint>,
    /// The route's `repeat_interval` (the log entry is kept twice that long).
    pub repeat_interval: Duration,
    flush_id: u64,
}

impl Notification {
    /// Firing if any alert sent is firing, as the webhook `status`.
    pub fn status(&self) -> AlertStatus {
        if self
            .alerts
            .iter()
            .any(|alert| !alert.resolved_at(self.created_at))
        {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }
}

/// Why an alert is not being notified, for the API's alert status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SuppressionStatus {
    /// IDs of the active silences matching it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<Fingerprint>,
    /// Names of the time intervals muting its routes.
    pub muted_by: Vec<String>,
}

impl SuppressionStatus {
    /// `suppressed` when anything mutes it, else `active` (API v2 `status.state`).
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() && self.muted_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// A read-only view of an aggregation group (API v2 `/alerts/groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The route.
    pub route: RouteId,
    /// The receiver.
    pub receiver: String,
    /// The group key.
    pub group_key: String,
    /// The group labels.
    pub labels: LabelSet,
    /// The alerts' fingerprints.
    pub alerts: Vec<Fingerprint>,
    /// The next flush.
    pub next_flush: Timestamp,
}

/// What a maintenance pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcStats {
    /// Resolved alerts dropped from the store.
    pub alerts: usize,
    /// Expired notification-log entries.
    pub nflog_entries: usize,
}

type GroupId = (RouteId, Fingerprint);

#[derive(Debug, Clone)]
struct AggrGroup {
    route: RouteId,
    labels: LabelSet,
    key: String,
    alerts: BTreeMap<Fingerprint, Alert>,
    next_flush: Timestamp,
    has_flushed: bool,
}

#[derive(Debug, Clone)]
struct PendingFlush {
    group: GroupId,
    outstanding: BTreeSet<u64>,
    failed: bool,
    resolved: Vec<(Fingerprint, Timestamp)>,
}

/// The dispatcher (see the module docs).
#[derive(Debug)]
pub struct Dispatcher<L: NotificationLog = MemoryNotificationLog> {
    config: Config,
    routes: RouteTree,
    inhibitor: Inhibitor,
    alerts: BTreeMap<Fingerprint, Alert>,
    groups: BTreeMap<GroupId, AggrGroup>,
    pending: BTreeMap<u64, PendingFlush>,
    nflog: L,
    next_id: u64,
}

impl<L: NotificationLog> Dispatcher<L> {
    /// A dispatcher for a validated configuration, with a notification log (restored from
    /// disk by the caller, or empty).
    pub fn new(config: Config, nflog: L) -> Dispatcher<L> {
        Dispatcher {
            routes: RouteTree::new(&config.route),
            inhibitor: Inhibitor::new(&config.inhibit_rules),
            config,
            alerts: BTreeMap::new(),
            groups: BTreeMap::new(),
            pending: BTreeMap::new(),
            nflog,
            next_id: 1,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The compiled routing tree.
    pub fn routes(&self) -> &RouteTree {
        &self.routes
    }

    /// The notification log.
    pub fn nflog(&self) -> &L {
        &self.nflog
    }

    /// The notification log, mutably (to restore or persist it).
    pub fn nflog_mut(&mut self) -> &mut L {
        &mut self.nflog
    }

    /// Replaces the configuration, as a reload does upstream: groups are rebuilt from the
    /// stored alerts with fresh timers (`group_wait` from now, or at once for old alerts);
    /// notifications still being delivered no longer remove resolved alerts when they finish,
    /// but are still written to the notification log, which is kept.
    pub fn apply_config(&mut self, config: Config, now: Timestamp) {
        self.routes = RouteTree::new(&config.route);
        self.inhibitor = Inhibitor::new(&config.inhibit_rules);
        self.config = config;
        self.groups.clear();
        self.pending.clear();
        let alerts: Vec<Alert> = self.alerts.values().cloned().collect();
        for alert in alerts {
            self.route_alert(alert, now);
        }
    }

    /// Stores an alert received at `now` (merged with the stored one with the same labels if
    /// their activity overlaps, as upstream) and inserts it into its groups.
    pub fn put_alert(&mut self, alert: Alert, now: Timestamp) {
        let fingerprint = alert.fingerprint();
        let stored = match self.alerts.get(&fingerprint) {
            Some(existing) if existing.overlaps(&alert) => existing.merge(&alert, now),
            _ => alert,
        };
        self.alerts.insert(fingerprint, stored.clone());
        self.route_alert(stored, now);
    }

    fn route_alert(&mut self, alert: Alert, now: Timestamp) {
        let fingerprint = alert.fingerprint();
        for route_id in self.routes.match_labels(&alert.labels) {
            let group_labels = self.routes.group_labels(route_id, &alert.labels);
            let group_id = (route_id, group_labels.fingerprint());
            let opts = &self.routes.route(route_id).opts;
            let group_wait = opts.group_wait;
            let group = self.groups.entry(group_id).or_insert_with(|| AggrGroup {
                route: route_id,
                key: self.routes.group_key(route_id, &group_labels),
                labels: group_labels,
                alerts: BTreeMap::new(),
                next_flush: now.saturating_add(group_wait),
                has_flushed: false,
            });
            if !group.has_flushed && alert.starts_at.saturating_add(group_wait) < now {
                group.next_flush = now;
            }
            group.alerts.insert(fingerprint, alert.clone());
        }
    }

    /// When the next group is due, if any: call [`Dispatcher::flush_due`] then.
    pub fn next_flush_at(&self) -> Option<Timestamp> {
        self.groups.values().map(|group| group.next_flush).min()
    }

    /// Flushes every group due at `now` and returns what to deliver.
    pub fn flush_due(&mut self, now: Timestamp, silences: &Silences) -> Vec<Notification> {
        let mut due: Vec<(Timestamp, GroupId)> = self
            .groups
            .iter()
            .filter(|(_, group)| group.next_flush <= now)
            .map(|(id, group)| (group.next_flush, *id))
            .collect();
        due.sort();
        let mut notifications = Vec::new();
        for (_, group_id) in due {
            self.flush_group(group_id, now, silences, &mut notifications);
        }
        notifications
    }

    fn flush_group(
        &mut self,
        group_id: GroupId,
        now: Timestamp,
        silences: &Silences,
        out: &mut Vec<Notification>,
    ) {
        // A flush still outstanding from the last tick has run out of time.
        self.pending.retain(|_, pending| pending.group != group_id);
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        let opts = self.routes.route(group.route).opts.clone();
        group.next_flush = now.saturating_add(opts.group_interval);
        group.has_flushed = true;
        if group.alerts.is_empty() {
            self.groups.remove(&group_id);
            return;
        }

        let mut snapshot: Vec<Alert> = Vec::with_capacity(group.alerts.len());
        let mut resolved_versions = Vec::new();
        for alert in group.alerts.values() {
            let mut copy = alert.clone();
            if copy.resolved_at(now) {
                resolved_versions.push((copy.fingerprint(), copy.updated_at));
            } else {
                copy.ends_at = None;
            }
            snapshot.push(copy);
        }
        snapshot.sort_by(compare_for_notification);
        let group_key = group.key.clone();
        let group_labels = group.labels.clone();

        // Inhibition, time intervals, silences: upstream's stage order.
        let stored_alerts = &self.alerts;
        snapshot.retain(|alert| !self.inhibitor.mutes(&alert.labels, stored_alerts.values(), now));
        if !self.route_active(&opts.active_time_intervals, now)
            || !self.muted_by(&opts.mute_time_intervals, now).is_empty()
        {
            snapshot.clear();
        }
        snapshot.retain(|alert| !silences.mutes(&alert.labels, now));

        let flush_id = self.next_id;
        self.next_id += 1;
        let mut outstanding = BTreeSet::new();
        if !snapshot.is_empty() {
            let firing: BTreeSet<Fingerprint> = snapshot
                .iter()
                .filter(|alert| !alert.resolved_at(now))
                .map(Alert::fingerprint)
                .collect();
            let resolved: BTreeSet<Fingerprint> = snapshot
                .iter()
                .filter(|alert| alert.resolved_at(now))
                .map(Alert::fingerprint)
                .collect();
            let receiver = self.config.receiver(&opts.receiver).cloned();
            for (integration, send_resolved, max_alerts) in receiver.iter().flat_map(integrations) {
                let key = NflogKey {
                    group_key: group_key.clone(),
                    integration,
                };
                let entry = self.nflog.query(&key, now);
                let reason = needs_update(
                    entry.as_ref(),
                    &firing,
                    &resolved,
                    send_resolved,
                    opts.repeat_interval,
                    now,
                );
                if !reason.should_notify() {
                    continue;
                }
                let mut sent: Vec<Alert> = if send_resolved {
                    snapshot.clone()
                } else {
                    snapshot
                        .iter()
                        .filter(|alert| !alert.resolved_at(now))
                        .cloned()
                        .collect()
                };
                if sent.is_empty() {
                    // Upstream's retry stage succeeds without sending; the log still records
                    // that the group was resolved.
                    self.nflog.log(
                        key,
                        log_entry(firing.clone(), resolved.clone(), now, opts.repeat_interval),
                    );
                    continue;
                }
                let mut truncated_alerts = 0;
                if max_alerts > 0 && sent.len() as u64 > max_alerts {
                    truncated_alerts = sent.len() as u64 - max_alerts;
                    sent.truncate(max_alerts as usize);
                }
                let id = self.next_id;
                self.next_id += 1;
                outstanding.insert(id);
                out.push(Notification {
                    id,
                    integration: key.integration,
                    group_key: group_key.clone(),
                    group_labels: group_labels.clone(),
                    alerts: sent,
                    truncated_alerts,
                    reason,
                    created_at: now,
                    deadline: now.saturating_add(opts.group_interval),
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    repeat_interval: opts.repeat_interval,
                    flush_id,
                });
            }
        }
        if outstanding.is_empty() {
            self.remove_notified(group_id, &resolved_versions);
        } else {
            self.pending.insert(
                flush_id,
                PendingFlush {
                    group: group_id,
                    outstanding,
                    failed: false,
                    resolved: resolved_versions,
                },
            );
        }
    }

    /// Reports the outcome of delivering a notification. `delivered_at` is when the receiver
    /// accepted it: the notification log records that time, as upstream, so a repeat goes out
    /// on the first flush more than `repeat_interval` after it.
    pub fn report(&mut self, notification: &Notification, delivered: bool, delivered_at: Timestamp) {
        if delivered {
            self.nflog.log(
                NflogKey {
                    group_key: notification.group_key.clone(),
                    integration: notification.integration.clone(),
                },
                log_entry(
                    notification.firing.clone(),
                    notification.resolved.clone(),
                    delivered_at,
                    notification.repeat_interval,
                ),
            );
        }
        let Some(pending) = self.pending.get_mut(&notification.flush_id) else {
            return;
        };
        if !pending.outstanding.remove(&notification.id) {
            return;
        }
        pending.failed |= !delivered;
        if !pending.outstanding.is_empty() {
            return;
        }
        if let Some(done) = self.pending.remove(&notification.flush_id)
            && !done.failed
        {
            self.remove_notified(done.group, &done.resolved);
        }
    }

    /// Removes resolved alerts that were just notified, unless they were updated since.
    fn remove_notified(&mut self, group_id: GroupId, resolved: &[(Fingerprint, Timestamp)]) {
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        for (fingerprint, updated_at) in resolved {
            if group
                .alerts
                .get(fingerprint)
                .is_some_and(|alert| alert.updated_at == *updated_at)
            {
                group.alerts.remove(fingerprint);
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(&group_id);
        }
    }

    /// Maintenance: drops alerts resolved at `now` from the store (they stay in their groups
    /// until notified) and expired notification-log entries.
    pub fn gc(&mut self, now: Timestamp) -> GcStats {
        let before = self.alerts.len();
        self.alerts.retain(|_, alert| !alert.resolved_at(now));
        GcStats {
            alerts: before - self.alerts.len(),
            nflog_entries: self.nflog.gc(now),
        }
    }

    /// All stored alerts, by fingerprint.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// A stored alert.
    pub fn alert(&self, fingerprint: Fingerprint) -> Option<&Alert> {
        self.alerts.get(&fingerprint)
    }

    /// The receivers an alert is routed to, sorted and unique.
    pub fn receivers_of(&self, labels: &LabelSet) -> Vec<String> {
        let receivers: BTreeSet<String> = self
            .routes
            .match_labels(labels)
            .into_iter()
            .map(|id| self.routes.route(id).opts.receiver.clone())
            .collect();
        receivers.into_iter().collect()
    }

    /// Why an alert is suppressed at `now`, computed afresh (API v2 `status`).
    pub fn suppression(&self, labels: &LabelSet, now: Timestamp, silences: &Silences) -> SuppressionStatus {
        let mut muted_by = BTreeSet::new();
        for route_id in self.routes.match_labels(labels) {
            let opts = &self.routes.route(route_id).opts;
            muted_by.extend(self.muted_by(&opts.mute_time_intervals, now));
            if !self.route_active(&opts.active_time_intervals, now) {
                muted_by.extend(opts.active_time_intervals.iter().cloned());
            }
        }
        SuppressionStatus {
            silenced_by: silences.muted_by(labels, now),
            inhibited_by: self
                .inhibitor
                .inhibited_by(labels, self.alerts.values(), now)
                .into_iter()
                .collect(),
            muted_by: muted_by.into_iter().collect(),
        }
    }

    /// The aggregation groups, ordered by route then group labels' fingerprint.
    pub fn groups(&self) -> Vec<GroupView> {
        self.groups
            .values()
            .map(|group| GroupView {
                route: group.route,
                receiver: self.routes.route(group.route).opts.receiver.clone(),
                group_key: group.key.clone(),
                labels: group.labels.clone(),
                alerts: group.alerts.keys().copied().collect(),
                next_flush: group.next_flush,
            })
            .collect()
    }

    /// Names of the given time intervals that contain `now`.
    fn muted_by(&self, names: &[String], now: Timestamp) -> Vec<String> {
        names
            .iter()
            .filter(|name| {
                self.config
                    .time_intervals
                    .get(*name)
                    .is_some_and(|intervals| any_contains(intervals, now))
            })
            .cloned()
            .collect()
    }

    /// Whether a route with these `active_time_intervals` is active at `now` (no intervals =
    /// always).
    fn route_active(&self, names: &[String], now: Timestamp) -> bool {
        names.is_empty() || !self.muted_by(names, now).is_empty()
    }
}

fn log_entry(
    firing: BTreeSet<Fingerprint>,
    resolved: BTreeSet<Fingerprint>,
    at: Timestamp,
    repeat_interval: Duration,
) -> NflogEntry {
    NflogEntry {
        firing,
        resolved,
        timestamp: at,
        expires_at: at.saturating_add(repeat_interval.saturating_mul(2)),
    }
}

/// A receiver's integrations with their `send_resolved` and `max_alerts` (0 = no limit).
fn integrations(receiver: &Receiver) -> Vec<(IntegrationRef, bool, u64)> {
    let reference = |integration: &str, index: usize| IntegrationRef {
        receiver: receiver.name.clone(),
        integration: integration.to_owned(),
        index,
    };
    let mut all = Vec::new();
    for (index, webhook) in receiver.webhook_configs.iter().enumerate() {
        all.push((
            reference("webhook", index),
            webhook.send_resolved,
            webhook.max_alerts,
        ));
    }
    for (index, email) in receiver.email_configs.iter().enumerate() {
        all.push((reference("email", index), email.send_resolved, 0));
    }
    for (index, ntfy) in receiver.ntfy_configs.iter().enumerate() {
        all.push((reference("ntfy", index), ntfy.send_resolved, 0));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::parse_matchers;
    use crate::silence::PostableSilence;

    const BASE: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs:
      - url: http://hook.example/a
"#;

    fn dispatcher(yaml: &str) -> Dispatcher {
        Dispatcher::new(Config::parse(yaml).unwrap(), MemoryNotificationLog::new())
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    /// An alert as Prometheus sends it: start, and an end a few minutes ahead.
    fn alert(name: &str, instance: &str, starts: i64, ends: i64, received: i64) -> Alert {
        Alert {
            labels: LabelSet::from_pairs([("alertname", name), ("instance", instance)]),
            annotations: LabelSet::new(),
            starts_at: ts(starts),
            ends_at: Some(ts(ends)),
            generator_url: String::new(),
            updated_at: ts(received),
            timeout: false,
        }
    }

    fn instances(notification: &Notification) -> Vec<(String, &'static str)> {
        notification
            .alerts
            .iter()
            .map(|a| {
                (
                    a.labels.get("instance").to_owned(),
                    a.status_at(notification.created_at).as_str(),
                )
            })
            .collect()
    }

    fn deliver_all(d: &mut Dispatcher, notifications: &[Notification], at: i64) {
        for notification in notifications {
            d.report(notification, true, ts(at));
        }
    }

    #[test]
    fn first_notification_waits_for_group_wait_then_dedups_and_repeats() {
        let mut d = dispatcher(BASE);
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 1000, 1300, 1000), ts(1000));
        assert_eq!(d.next_flush_at(), Some(ts(1030)));
        assert!(d.flush_due(ts(1029), &silences).is_empty());
        let sent = d.flush_due(ts(1030), &silences);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, NotifyReason::FirstNotification);
        assert_eq!(sent[0].group_key, r#"{}:{alertname="Down"}"#);
        assert_eq!(sent[0].alerts[0].ends_at, None, "a firing alert's end is cleared");
        assert_eq!(sent[0].deadline, ts(1330));
        deliver_all(&mut d, &sent, 1031);

        // Prometheus re-sends every minute, pushing the end ahead.
        let mut now = 1030;
        let mut repeats = Vec::new();
        while now < 1030 + 8000 {
            now += 300;
            d.put_alert(alert("Down", "a", 1000, now + 240, now - 1), ts(now - 1));
            let sent = d.flush_due(ts(now), &silences);
            for notification in &sent {
                repeats.push((now, notification.reason));
            }
            deliver_all(&mut d, &sent, now + 1);
        }
        // Logged at 1031 (delivery time): a repeat needs 1031 < now - 1h, i.e. now > 4631;
        // ticks fall at 1030 + k·300, so 4630 is too early and 4930 repeats. As upstream, the
        // repeat is rounded up to a group_interval tick and the delivery delay can add one.
        assert_eq!(
            repeats,
            [
                (4930, NotifyReason::RepeatIntervalElapsed),
                (8830, NotifyReason::RepeatIntervalElapsed)
            ]
        );
    }

    #[test]
    fn new_alerts_join_at_the_next_group_interval() {
        let mut d = dispatcher(BASE);
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 0, 900, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        deliver_all(&mut d, &sent, 30);
        d.put_alert(alert("Down", "b", 100, 900, 100), ts(100));
        assert!(
            d.flush_due(ts(100), &silences).is_empty(),
            "no group_wait after the first flush"
        );
        let sent = d.flush_due(ts(330), &silences);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, NotifyReason::NewAlertsInGroup);
        assert_eq!(
            instances(&sent[0]),
            [("a".to_owned(), "firing"), ("b".to_owned(), "firing")]
        );
    }

    #[test]
    fn resolved_alerts_are_sent_once_then_dropped() {
        let mut d = dispatcher(BASE);
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 0, 900, 0), ts(0));
        d.put_alert(alert("Down", "b", 0, 900, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        deliver_all(&mut d, &sent, 30);
        // b resolves at 200.
        d.put_alert(alert("Down", "b", 0, 200, 200), ts(200));
        let sent = d.flush_due(ts(330), &silences);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, NotifyReason::NewResolvedAlerts);
        assert_eq!(
            instances(&sent[0]),
            [("a".to_owned(), "firing"), ("b".to_owned(), "resolved")]
        );
        deliver_all(&mut d, &sent, 331);
        assert_eq!(d.groups()[0].alerts.len(), 1, "b left the group once notified");
        // Now a resolves too: "all alerts resolved", then the group is gone.
        d.put_alert(alert("Down", "a", 0, 400, 400), ts(400));
        let sent = d.flush_due(ts(630), &silences);
        assert_eq!(sent[0].reason, NotifyReason::AllAlertsResolved);
        assert_eq!(sent[0].status(), AlertStatus::Resolved);
        deliver_all(&mut d, &sent, 631);
        assert!(d.groups().is_empty());
        assert_eq!(d.next_flush_at(), None);
        // The store keeps resolved alerts until gc.
        assert_eq!(d.gc(ts(700)).alerts, 2);
    }

    #[test]
    fn without_send_resolved_only_firing_alerts_are_sent_but_the_log_is_updated() {
        let mut d = dispatcher(&BASE.replace(
            "- url: http://hook.example/a",
            "- url: http://hook.example/a\n        send_resolved: false",
        ));
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 0, 900, 0), ts(0));
        d.put_alert(alert("Down", "b", 0, 900, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        deliver_all(&mut d, &sent, 30);
        d.put_alert(alert("Down", "b", 0, 200, 200), ts(200));
        assert!(
            d.flush_due(ts(330), &silences).is_empty(),
            "a resolve alone is not news"
        );
        d.put_alert(alert("Down", "a", 0, 400, 400), ts(400));
        // All resolved: needsUpdate says notify, nothing firing to send, log updated at once.
        assert!(d.flush_due(ts(630), &silences).is_empty());
        let key = NflogKey {
            group_key: r#"{}:{alertname="Down"}"#.to_owned(),
            integration: IntegrationRef {
                receiver: "team".to_owned(),
                integration: "webhook".to_owned(),
                index: 0,
            },
        };
        let entry = d.nflog().query(&key, ts(630)).unwrap();
        assert!(entry.firing.is_empty());
        assert_eq!(entry.resolved.len(), 1, "a; b was dropped after the 330 flush");
        assert!(d.groups().is_empty());
    }

    #[test]
    fn an_alert_resolved_within_group_wait_sends_nothing() {
        let mut d = dispatcher(BASE);
        d.put_alert(alert("Flap", "a", 0, 10, 0), ts(0));
        d.put_alert(alert("Flap", "a", 0, 10, 10), ts(10));
        assert!(d.flush_due(ts(30), &Silences::default()).is_empty());
        assert!(d.groups().is_empty());
    }

    #[test]
    fn old_alerts_flush_at_once_before_the_first_flush() {
        let mut d = dispatcher(BASE);
        d.put_alert(alert("Down", "a", 0, 9000, 5000), ts(5000));
        assert_eq!(d.next_flush_at(), Some(ts(5000)));
        assert_eq!(d.flush_due(ts(5000), &Silences::default()).len(), 1);
    }

    #[test]
    fn failed_delivery_keeps_resolved_alerts_and_retries_next_interval() {
        let mut d = dispatcher(BASE);
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 0, 900, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        d.report(&sent[0], false, ts(60));
        let sent = d.flush_due(ts(330), &silences);
        assert_eq!(sent.len(), 1, "the log has no entry, so it is sent again");
        assert_eq!(sent[0].reason, NotifyReason::FirstNotification);
        // Resolve, fail the resolve notification: the alert stays and is sent again.
        d.report(&sent[0], true, ts(331));
        d.put_alert(alert("Down", "a", 0, 400, 400), ts(400));
        let sent = d.flush_due(ts(630), &silences);
        d.report(&sent[0], false, ts(640));
        assert_eq!(d.groups().len(), 1);
        let sent = d.flush_due(ts(930), &silences);
        assert_eq!(sent[0].reason, NotifyReason::AllAlertsResolved);
        d.report(&sent[0], true, ts(931));
        d.report(&sent[0], true, ts(932));
        assert!(d.groups().is_empty());
    }

    #[test]
    fn silenced_and_inhibited_alerts_are_not_sent() {
        let yaml = format!(
            "{BASE}inhibit_rules:\n  - source_matchers: [alertname=NodeDown]\n    target_matchers: [alertname=Down]\n    equal: [instance]\n"
        );
        let mut d = dispatcher(&yaml);
        let mut silences = Silences::default();
        silences
            .set(
                PostableSilence {
                    id: None,
                    matchers: parse_matchers("instance=b").unwrap(),
                    starts_at: None,
                    ends_at: ts(10_000),
                    created_by: "me".to_owned(),
                    comment: String::new(),
                },
                ts(0),
            )
            .unwrap();
        d.put_alert(alert("Down", "a", 0, 900, 0), ts(0));
        d.put_alert(alert("Down", "b", 0, 900, 0), ts(0));
        d.put_alert(alert("Down", "c", 0, 900, 0), ts(0));
        d.put_alert(alert("NodeDown", "a", 0, 900, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        let down = sent.iter().find(|n| n.group_key.contains("\"Down\"")).unwrap();
        assert_eq!(instances(down), [("c".to_owned(), "firing")]);
        assert_eq!(down.firing.len(), 1, "muted alerts are not logged either");
        let labels_a = LabelSet::from_pairs([("alertname", "Down"), ("instance", "a")]);
        let status = d.suppression(&labels_a, ts(30), &silences);
        assert_eq!(status.state(), "suppressed");
        assert_eq!(status.inhibited_by.len(), 1);
        let labels_b = LabelSet::from_pairs([("alertname", "Down"), ("instance", "b")]);
        assert_eq!(d.suppression(&labels_b, ts(30), &silences).silenced_by.len(), 1);
    }

    #[test]
    fn time_intervals_mute_whole_groups() {
        let yaml = r#"
route:
  receiver: team
  routes:
    - matchers: [team=night]
      receiver: team
      mute_time_intervals: [nights]
    - matchers: [team=day]
      receiver: team
      active_time_intervals: [nights]
receivers:
  - name: team
    webhook_configs: [{url: "http://hook.example/a"}]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
"#;
        let mut d = dispatcher(yaml);
        let silences = Silences::default();
        let at_3am = 3 * 3600;
        let mut muted = alert("X", "a", at_3am, at_3am + 900, at_3am);
        muted.labels.insert("team", "night");
        let mut active = alert("Y", "a", at_3am, at_3am + 900, at_3am);
        active.labels.insert("team", "day");
        d.put_alert(muted.clone(), ts(at_3am));
        d.put_alert(active, ts(at_3am));
        let sent = d.flush_due(ts(at_3am + 30), &silences);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].alerts[0].labels.get("team"), "day");
        assert_eq!(
            d.suppression(&muted.labels, ts(at_3am), &silences).muted_by,
            ["nights"]
        );
    }

    #[test]
    fn max_alerts_truncates_and_continue_fans_out() {
        let yaml = r#"
route:
  receiver: all
  group_by: ['...']
  routes:
    - matchers: [alertname=Down]
      receiver: capped
      group_by: [alertname]
      continue: true
    - matchers: [alertname=Down]
      receiver: all
receivers:
  - name: all
  - name: capped
    webhook_configs: [{url: "http://hook.example/a", max_alerts: 2}]
    ntfy_configs: [{topic: alerts}]
"#;
        let mut d = dispatcher(yaml);
        for instance in ["a", "b", "c"] {
            d.put_alert(alert("Down", instance, 0, 900, 0), ts(0));
        }
        let sent = d.flush_due(ts(30), &Silences::default());
        let kinds: Vec<(&str, usize, u64)> = sent
            .iter()
            .map(|n| {
                (
                    n.integration.integration.as_str(),
                    n.alerts.len(),
                    n.truncated_alerts,
                )
            })
            .collect();
        assert_eq!(kinds, [("webhook", 2, 1), ("ntfy", 3, 0)]);
        // The `all` receiver has no integrations: its three groups (one per alert, `...`)
        // flush with nothing to send.
        assert_eq!(d.groups().iter().filter(|g| g.receiver == "all").count(), 3);
    }

    #[test]
    fn needs_update_follows_upstream_table() {
        let set = |items: &[u64]| items.iter().copied().map(Fingerprint).collect::<BTreeSet<_>>();
        let entry = |firing: &[u64], resolved: &[u64], at: i64| NflogEntry {
            firing: set(firing),
            resolved: set(resolved),
            timestamp: ts(at),
            expires_at: ts(at + 10_000),
        };
        let hour = Duration::from_secs(3600);
        let now = ts(1000);
        let check = |e: Option<&NflogEntry>, firing: &[u64], resolved: &[u64], send_resolved: bool| {
            needs_update(e, &set(firing), &set(resolved), send_resolved, hour, now)
        };
        use NotifyReason::*;
        assert_eq!(check(None, &[], &[1], true), DoNotNotify);
        assert_eq!(check(None, &[1], &[], true), FirstNotification);
        assert_eq!(
            check(Some(&entry(&[], &[1], 900)), &[2], &[], true),
            FirstNotification
        );
        assert_eq!(
            check(Some(&entry(&[1], &[], 900)), &[1, 2], &[], true),
            NewAlertsInGroup
        );
        assert_eq!(
            check(Some(&entry(&[1, 2], &[], 900)), &[1], &[2], true),
            NewResolvedAlerts
        );
        assert_eq!(
            check(Some(&entry(&[1, 2], &[], 900)), &[1], &[2], false),
            DoNotNotify
        );
        assert_eq!(
            check(Some(&entry(&[1], &[], 900)), &[], &[1], false),
            AllAlertsResolved
        );
        assert_eq!(check(Some(&entry(&[], &[1], 900)), &[], &[2], true), DoNotNotify);
        assert_eq!(
            check(Some(&entry(&[1], &[], -2601)), &[1], &[], true),
            RepeatIntervalElapsed
        );
        assert_eq!(
            check(Some(&entry(&[1], &[], -2600)), &[1], &[], true),
            DoNotNotify
        );
    }

    #[test]
    fn reload_rebuilds_groups_and_keeps_the_log() {
        let mut d = dispatcher(BASE);
        let silences = Silences::default();
        d.put_alert(alert("Down", "a", 0, 9000, 0), ts(0));
        let sent = d.flush_due(ts(30), &silences);
        deliver_all(&mut d, &sent, 30);
        d.apply_config(Config::parse(BASE).unwrap(), ts(100));
        // The alert is old, so its new group flushes at once; the log suppresses a duplicate.
        assert_eq!(d.next_flush_at(), Some(ts(100)));
        assert!(d.flush_due(ts(100), &silences).is_empty());
    }
}
