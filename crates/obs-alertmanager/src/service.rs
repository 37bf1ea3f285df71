//! The notifier at run time: the [`Dispatcher`] behind a lock, driven by a tokio task that
//! wakes at the next group flush, delivers each notification (retried with backoff until its
//! deadline), reports the outcome, and keeps silences, the notification log and the alerts in
//! a redb file so that a restart neither forgets a silence nor sends a notification twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::alert::{Alert, PostableAlert};
use crate::config::{Config, HttpClientConfig, Secret};
use crate::dispatch::{Dispatcher, GroupView, Notification, SuppressionStatus};
use crate::labels::{Fingerprint, LabelSet};
use crate::matchers::parse_matcher;
use crate::nflog::{MemoryNotificationLog, NflogEntry, NflogKey, NotificationLog};
use crate::silence::{PostableSilence, Silence, Silences};
use crate::time::Timestamp;
use crate::webhook::{ntfy_message, webhook_payload};

const SILENCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("silences");
const NFLOG: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("nflog");
const ALERTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("alerts");

/// The most alerts one `POST /api/v2/alerts` may carry.
pub const MAX_ALERTS_PER_POST: usize = 10_000;
/// The most alerts held (firing and recently resolved); beyond it new alerts are refused.
pub const MAX_ALERTS: usize = 100_000;
/// The most silences held.
pub const MAX_SILENCES: usize = 10_000;

/// First retry delay of a failed delivery; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often expired silences, resolved alerts and log entries are collected.
const GC_INTERVAL: Duration = Duration::from_secs(60);
/// How often changed alerts are written to disk.
const ALERTS_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);

struct SelfMetrics {
    notifications: prometheus::IntCounterVec,
    failed: prometheus::IntCounterVec,
    requests: prometheus::IntCounterVec,
    received: prometheus::IntCounterVec,
    invalid: prometheus::IntCounter,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: std::sync::OnceLock<SelfMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        let notifications = registry.int_counter_vec(
            "alertmanager_notifications_total",
            "Notifications attempted, by integration (as Alertmanager counts them).",
            &["integration"],
        );
        let failed = registry.int_counter_vec(
            "alertmanager_notifications_failed_total",
            "Notifications given up after their retries, by integration.",
            &["integration"],
        );
        let requests = registry.int_counter_vec(
            "alertmanager_notification_requests_failed_total",
            "Delivery attempts that failed (each retry counts), by integration.",
            &["integration"],
        );
        for integration in ["webhook", "ntfy", "email"] {
            notifications.with_label_values(&[integration]);
            failed.with_label_values(&[integration]);
            requests.with_label_values(&[integration]);
        }
        let received = registry.int_counter_vec(
            "alertmanager_alerts_received_total",
            "Alerts received, by status.",
            &["status"],
        );
        SelfMetrics {
            notifications,
            failed,
            requests,
            received,
            invalid: registry.int_counter("alertmanager_alerts_invalid_total", "Alerts refused as invalid."),
        }
    })
}

/// An alert as the API shows it: with its receivers and why it is muted.
#[derive(Debug, Clone)]
pub struct AlertView {
    /// The alert.
    pub alert: Alert,
    /// Receivers its routes lead to.
    pub receivers: Vec<String>,
    /// Silences, inhibitions and mute intervals.
    pub status: SuppressionStatus,
}

/// The notifier service. Cheap to clone.
#[derive(Clone)]
pub struct Alertmanager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager").finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    shutdown: CancellationToken,
    /// The run loop and the deliveries in flight.
    tasks: TaskTracker,
    db: Option<Arc<Database>>,
    started_at: Timestamp,
    external_url: String,
}

struct State {
    dispatcher: Dispatcher<PersistedLog>,
    silences: Silences,
    alerts_dirty: bool,
}

/// The notification log, written through to redb.
struct PersistedLog {
    memory: MemoryNotificationLog,
    db: Option<Arc<Database>>,
}

impl NotificationLog for PersistedLog {
    fn query(&self, key: &NflogKey, now: Timestamp) -> Option<NflogEntry> {
        self.memory.query(key, now)
    }

    fn log(&mut self, key: NflogKey, entry: NflogEntry) {
        if let Some(db) = &self.db {
            let write = || -> Result<(), String> {
                let value = serde_json::to_vec(&(&key, &entry)).map_err(|err| err.to_string())?;
                let txn = db.begin_write().map_err(|err| err.to_string())?;
                {
                    let mut table = txn.open_table(NFLOG).map_err(|err| err.to_string())?;
                    table
                        .insert(key.storage_key().as_slice(), value.as_slice())
                        .map_err(|err| err.to_string())?;
                }
                txn.commit().map_err(|err| err.to_string())
            };
            if let Err(err) = write() {
                tracing::error!(error = %err, "cannot persist a notification log entry; a restart may notify again");
            }
        }
        self.memory.log(key, entry);
    }

    fn gc(&mut self, now: Timestamp) -> usize {
        let expired: Vec<NflogKey> = self
            .memory
            .entries()
            .filter(|(_, entry)| entry.expires_at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        if let Some(db) = &self.db
            && !expired.is_empty()
        {
            let delete = || -> Result<(), String> {
                let txn = db.begin_write().map_err(|err| err.to_string())?;
                {
                    let mut table = txn.open_table(NFLOG).map_err(|err| err.to_string())?;
                    for key in &expired {
                        table
                            .remove(key.storage_key().as_slice())
                            .map_err(|err| err.to_string())?;
                    }
                }
                txn.commit().map_err(|err| err.to_string())
            };
            if let Err(err) = delete() {
                tracing::warn!(error = %err, "cannot remove expired notification log entries from disk");
            }
        }
        self.memory.gc(now)
    }
}

/// A silence as stored: the API's fields, matchers in their canonical text.
#[derive(Serialize, Deserialize)]
struct StoredSilence {
    id: String,
    matchers: Vec<String>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    updated_at: Timestamp,
    created_by: String,
    comment: String,
}

impl StoredSilence {
    fn from_silence(silence: &Silence) -> StoredSilence {
        StoredSilence {
            id: silence.id.clone(),
            matchers: silence.matchers.iter().map(ToString::to_string).collect(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            updated_at: silence.updated_at,
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
        }
    }

    fn into_silence(self) -> Result<Silence, Error> {
        let matchers = self
            .matchers
            .iter()
            .map(|text| parse_matcher(text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Silence {
            id: self.id,
            matchers,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
            comment: self.comment,
        })
    }
}

/// An alert as stored.
#[derive(Serialize, Deserialize)]
struct StoredAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Timestamp,
    ends_at: Option<Timestamp>,
    generator_url: String,
    updated_at: Timestamp,
    timeout: bool,
}

impl StoredAlert {
    fn from_alert(alert: &Alert) -> StoredAlert {
        StoredAlert {
            labels: alert.labels.as_map().clone(),
            annotations: alert.annotations.as_map().clone(),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            generator_url: alert.generator_url.clone(),
            updated_at: alert.updated_at,
            timeout: alert.timeout,
        }
    }

    fn into_alert(self) -> Alert {
        Alert {
            labels: self.labels.into_iter().collect(),
            annotations: self.annotations.into_iter().collect(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            generator_url: self.generator_url,
            updated_at: self.updated_at,
            timeout: self.timeout,
        }
    }
}

/// Why a configuration cannot be run (on top of what [`Config::parse`] checks): nothing is
/// refused today; kept as the one place for such checks.
pub fn check_supported(_config: &Config) -> Result<(), Error> {
    Ok(())
}

impl Alertmanager {
    /// Opens (or creates) the state under `dir` (`None`: in memory only), restores
    /// silences, the notification log and the alerts, and starts delivering. Needs a tokio
    /// runtime.
    pub fn start(config: Config, dir: Option<&Path>, external_url: &str) -> Result<Alertmanager, Error> {
        check_supported(&config)?;
        let db = match dir {
            Some(dir) => Some(Arc::new(open_db(dir)?)),
            None => None,
        };
        let now = Timestamp::now();
        let mut memory = MemoryNotificationLog::new();
        let mut silences = Silences::default();
        let mut alerts = Vec::new();
        if let Some(db) = &db {
            restore(db, &mut memory, &mut silences, &mut alerts).map_err(|message| Error::Config {
                path: dir.map(|dir| dir.display().to_string()).unwrap_or_default(),
                message: format!("cannot read the alertmanager state: {message}"),
            })?;
        }
        let restored = (alerts.len(), silences.len(), memory.len());
        let log = PersistedLog {
            memory,
            db: db.clone(),
        };
        let mut dispatcher = Dispatcher::new(config, log);
        for alert in alerts {
            dispatcher.put_alert(alert, now);
        }
        if restored != (0, 0, 0) {
            tracing::info!(
                alerts = restored.0,
                silences = restored.1,
                notification_log = restored.2,
                "alertmanager state restored"
            );
        }
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                dispatcher,
                silences,
                alerts_dirty: false,
            }),
            wake: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            db,
            started_at: now,
            external_url: external_url.trim_end_matches('/').to_owned(),
        });
        inner.tasks.spawn(run(Arc::clone(&inner)));
        Ok(Alertmanager { inner })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Replaces the configuration (reload): groups, timers and the log carry over.
    pub fn apply_config(&self, config: Config) -> Result<(), Error> {
        check_supported(&config)?;
        self.state().dispatcher.apply_config(config, Timestamp::now());
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The configuration's text, as loaded.
    pub fn config_original(&self) -> String {
        self.state().dispatcher.config().original.clone()
    }

    /// Receiver names, in configuration order.
    pub fn receivers(&self) -> Vec<String> {
        self.state()
            .dispatcher
            .config()
            .receivers
            .iter()
            .map(|receiver| receiver.name.clone())
            .collect()
    }

    /// When the service started.
    pub fn started_at(&self) -> Timestamp {
        self.inner.started_at
    }

    /// The external URL used in notifications.
    pub fn external_url(&self) -> &str {
        &self.inner.external_url
    }

    /// Takes alerts already validated (the rule evaluator's).
    pub fn put_alerts(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let now = Timestamp::now();
        {
            let mut state = self.state();
            for alert in alerts {
                let status = if alert.resolved_at(now) {
                    "resolved"
                } else {
                    "firing"
                };
                self_metrics().received.with_label_values(&[status]).inc();
                state.dispatcher.put_alert(alert, now);
            }
            state.alerts_dirty = true;
        }
        self.inner.wake.notify_one();
    }

    /// `POST /api/v2/alerts`: every alert is checked first; if one is invalid none is taken
    /// and the errors are returned (as Alertmanager answers 400).
    pub fn post_alerts(&self, posted: Vec<PostableAlert>) -> Result<(), String> {
        if posted.len() > MAX_ALERTS_PER_POST {
            return Err(format!(
                "too many alerts in one request: {} (at most {MAX_ALERTS_PER_POST})",
                posted.len()
            ));
        }
        let now = Timestamp::now();
        let resolve_timeout = self.state().dispatcher.config().global.resolve_timeout;
        let mut alerts = Vec::with_capacity(posted.len());
        let mut errors = Vec::new();
        for alert in posted {
            match alert.into_alert(now, resolve_timeout) {
                Ok(alert) => alerts.push(alert),
                Err(err) => errors.push(err.to_string()),
            }
        }
        if !errors.is_empty() {
            self_metrics().invalid.inc_by(errors.len() as u64);
            return Err(errors.join(";"));
        }
        let held = self.state().dispatcher.alerts().count();
        if held + alerts.len() > MAX_ALERTS {
            let known = {
                let state = self.state();
                alerts
                    .iter()
                    .filter(|alert| state.dispatcher.alert(alert.fingerprint()).is_some())
                    .count()
            };
            if held + alerts.len() - known > MAX_ALERTS {
                return Err(format!("too many alerts: at most {MAX_ALERTS} are held"));
            }
        }
        self.put_alerts(alerts);
        Ok(())
    }

    /// Every alert held, with receivers and status, at `now`.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = Timestamp::now();
        let state = self.state();
        state
            .dispatcher
            .alerts()
            .map(|alert| AlertView {
                alert: alert.clone(),
                receivers: state.dispatcher.receivers_of(&alert.labels),
                status: state.dispatcher.suppression(&alert.labels, now, &state.silences),
            })
            .collect()
    }

    /// The aggregation groups with their alerts.
    pub fn groups(&self) -> Vec<(GroupView, Vec<AlertView>)> {
        let now = Timestamp::now();
        let state = self.state();
        state
            .dispatcher
            .groups()
            .into_iter()
            .map(|group| {
                let alerts = group
                    .alerts
                    .iter()
                    .filter_map(|fingerprint| state.dispatcher.alert(*fingerprint))
                    .map(|alert| AlertView {
                        alert: alert.clone(),
                        receivers: state.dispatcher.receivers_of(&alert.labels),
                        status: state.dispatcher.suppression(&alert.labels, now, &state.silences),
                    })
                    .collect();
                (group, alerts)
            })
            .collect()
    }

    /// Every silence.
    pub fn silences(&self) -> Vec<Silence> {
        self.state().silences.iter().cloned().collect()
    }

    /// One silence.
    pub fn silence(&self, id: &str) -> Option<Silence> {
        self.state().silences.get(id).cloned()
    }

    /// Creates or updates a silence; returns its id.
    pub fn set_silence(&self, posted: PostableSilence) -> Result<String, Error> {
        let now = Timestamp::now();
        let mut state = self.state();
        if posted.id.is_none() && state.silences.len() >= MAX_SILENCES {
            return Err(Error::InvalidSilence(format!(
                "too many silences: at most {MAX_SILENCES} are held"
            )));
        }
        let before: Vec<String> = state.silences.iter().map(|silence| silence.id.clone()).collect();
        let id = state.silences.set(posted, now)?;
        // An update may have expired the old silence and created a new one: store both.
        let touched: Vec<Silence> = state
            .silences
            .iter()
            .filter(|silence| silence.id == id || !before.contains(&silence.id) || silence.updated_at == now)
            .cloned()
            .collect();
        drop(state);
        self.persist_silences(&touched);
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Expires a silence now.
    pub fn expire_silence(&self, id: &str) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut state = self.state();
        state.silences.expire(id, now)?;
        let silence = state.silences.get(id).cloned();
        drop(state);
        if let Some(silence) = silence {
            self.persist_silences(&[silence]);
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    fn persist_silences(&self, silences: &[Silence]) {
        let Some(db) = &self.inner.db else {
            return;
        };
        let write = || -> Result<(), String> {
            let txn = db.begin_write().map_err(|err| err.to_string())?;
            {
                let mut table = txn.open_table(SILENCES).map_err(|err| err.to_string())?;
                for silence in silences {
                    let value = serde_json::to_vec(&StoredSilence::from_silence(silence))
                        .map_err(|err| err.to_string())?;
                    table
                        .insert(silence.id.as_str(), value.as_slice())
                        .map_err(|err| err.to_string())?;
                }
            }
            txn.commit().map_err(|err| err.to_string())
        };
        if let Err(err) = write() {
            tracing::error!(error = %err, "cannot persist silences; they will be lost at restart");
        }
    }

    /// Writes the alerts to disk now (also done every few seconds and at shutdown).
    pub fn snapshot(&self) {
        snapshot_alerts(&self.inner);
    }

    /// Stops delivering (deliveries in flight give up), waits for the tasks to end, and
    /// writes the alerts to disk.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        snapshot_alerts(&self.inner);
    }
}

fn open_db(dir: &Path) -> Result<Database, Error> {
    let to_error = |message: String| Error::Config {
        path: dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir)
        .map_err(|err| to_error(format!("cannot create {}: {err}", dir.display())))?;
    let path: PathBuf = dir.join("state.redb");
    let db =
        Database::create(&path).map_err(|err| to_error(format!("cannot open {}: {err}", path.display())))?;
    let txn = db.begin_write().map_err(|err| to_error(err.to_string()))?;
    {
        txn.open_table(SILENCES)
            .map_err(|err| to_error(err.to_string()))?;
        txn.open_table(NFLOG).map_err(|err| to_error(err.to_string()))?;
        txn.open_table(ALERTS).map_err(|err| to_error(err.to_string()))?;
    }
    txn.commit().map_err(|err| to_error(err.to_string()))?;
    Ok(db)
}

fn restore(
    db: &Database,
    log: &mut MemoryNotificationLog,
    silences: &mut Silences,
    alerts: &mut Vec<Alert>,
) -> Result<(), String> {
    let txn = db.begin_read().map_err(|err| err.to_string())?;
    let table = txn.open_table(SILENCES).map_err(|err| err.to_string())?;
    for entry in table.iter().map_err(|err| err.to_string())? {
        let (id, value) = entry.map_err(|err| err.to_string())?;
        match serde_json::from_slice::<StoredSilence>(value.value())
            .map_err(|err| err.to_string())
            .and_then(|stored| stored.into_silence().map_err(|err| err.to_string()))
        {
            Ok(silence) => silences.restore(silence),
            Err(err) => {
                tracing::warn!(id = id.value(), error = %err, "skipping an unreadable stored silence")
            }
        }
    }
    let table = txn.open_table(NFLOG).map_err(|err| err.to_string())?;
    for entry in table.iter().map_err(|err| err.to_string())? {
        let (_, value) = entry.map_err(|err| err.to_string())?;
        match serde_json::from_slice::<(NflogKey, NflogEntry)>(value.value()) {
            Ok((key, entry)) => log.log(key, entry),
            Err(err) => tracing::warn!(error = %err, "skipping an unreadable notification log entry"),
        }
    }
    let table = txn.open_table(ALERTS).map_err(|err| err.to_string())?;
    for entry in table.iter().map_err(|err| err.to_string())? {
        let (_, value) = entry.map_err(|err| err.to_string())?;
        match serde_json::from_slice::<StoredAlert>(value.value()) {
            Ok(stored) => alerts.push(stored.into_alert()),
            Err(err) => tracing::warn!(error = %err, "skipping an unreadable stored alert"),
        }
    }
    Ok(())
}

fn snapshot_alerts(inner: &Inner) {
    let Some(db) = &inner.db else {
        return;
    };
    let stored: Vec<(u64, Vec<u8>)> = {
        let mut state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
        if !state.alerts_dirty {
            return;
        }
        state.alerts_dirty = false;
        state
            .dispatcher
            .alerts()
            .filter_map(|alert| {
                let value = serde_json::to_vec(&StoredAlert::from_alert(alert)).ok()?;
                Some((fingerprint_key(alert.fingerprint()), value))
            })
            .collect()
    };
    let write = || -> Result<(), String> {
        let txn = db.begin_write().map_err(|err| err.to_string())?;
        {
            // The whole set: alerts collected since the last snapshot disappear with it.
            txn.delete_table(ALERTS).map_err(|err| err.to_string())?;
            let mut table = txn.open_table(ALERTS).map_err(|err| err.to_string())?;
            for (key, value) in &stored {
                table
                    .insert(*key, value.as_slice())
                    .map_err(|err| err.to_string())?;
            }
        }
        txn.commit().map_err(|err| err.to_string())
    };
    if let Err(err) = write() {
        tracing::warn!(error = %err, "cannot write the alerts to disk");
        inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .alerts_dirty = true;
    }
}

fn fingerprint_key(fingerprint: Fingerprint) -> u64 {
    u64::from_str_radix(&fingerprint.to_string(), 16).unwrap_or_default()
}

/// Wakes at the next flush (or when alerts or silences change), hands due notifications to
/// delivery tasks, and collects garbage.
async fn run(inner: Arc<Inner>) {
    let mut last_gc = std::time::Instant::now();
    let mut last_snapshot = std::time::Instant::now();
    loop {
        let wait = {
            let state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
            let now = Timestamp::now();
            state
                .dispatcher
                .next_flush_at()
                .map(|at| at.duration_since(now))
                .unwrap_or(ALERTS_SNAPSHOT_INTERVAL)
                .min(ALERTS_SNAPSHOT_INTERVAL)
        };
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let now = Timestamp::now();
        let due = {
            let mut state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
            let State {
                dispatcher, silences, ..
            } = &mut *state;
            dispatcher.flush_due(now, silences)
        };
        for notification in due {
            let delivery = Arc::clone(&inner);
            inner
                .tasks
                .spawn(async move { deliver(delivery, notification).await });
        }
        if last_gc.elapsed() >= GC_INTERVAL {
            last_gc = std::time::Instant::now();
            let mut state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
            let collected = state.dispatcher.gc(now);
            let silences = state.silences.gc(now);
            if collected.alerts > 0 {
                state.alerts_dirty = true;
            }
            if silences > 0 {
                drop(state);
                remove_collected_silences(&inner);
            }
        }
        if last_snapshot.elapsed() >= ALERTS_SNAPSHOT_INTERVAL {
            last_snapshot = std::time::Instant::now();
            let snapshot_inner = Arc::clone(&inner);
            let _ = tokio::task::spawn_blocking(move || snapshot_alerts(&snapshot_inner)).await;
        }
    }
}

/// Removes from disk the silences garbage collection dropped from memory.
fn remove_collected_silences(inner: &Inner) {
    let Some(db) = &inner.db else {
        return;
    };
    let kept: std::collections::HashSet<String> = inner
        .state
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .silences
        .iter()
        .map(|silence| silence.id.clone())
        .collect();
    let remove = || -> Result<(), String> {
        let txn = db.begin_write().map_err(|err| err.to_string())?;
        {
            let mut table = txn.open_table(SILENCES).map_err(|err| err.to_string())?;
            let stale: Vec<String> = table
                .iter()
                .map_err(|err| err.to_string())?
                .filter_map(Result::ok)
                .map(|(id, _)| id.value().to_owned())
                .filter(|id| !kept.contains(id))
                .collect();
            for id in stale {
                table.remove(id.as_str()).map_err(|err| err.to_string())?;
            }
        }
        txn.commit().map_err(|err| err.to_string())
    };
    if let Err(err) = remove() {
        tracing::warn!(error = %err, "cannot remove expired silences from disk");
    }
}

/// What one delivery sends.
#[derive(Clone)]
enum Delivery {
    Http(Box<Request>),
    Email(Box<(crate::config::EmailConfig, crate::email::EmailMessage)>),
}

/// One HTTP request of a delivery.
#[derive(Clone)]
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    http: HttpClientConfig,
    timeout: Option<Duration>,
}

/// Why an attempt failed, and whether trying again may help.
struct Failure {
    message: String,
    retry: bool,
}

/// Delivers one notification, retrying with backoff until its deadline, then reports.
async fn deliver(inner: Arc<Inner>, notification: Notification) {
    let integration = notification.integration.integration.clone();
    let request = {
        let state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
        build_request(state.dispatcher.config(), &notification, &inner.external_url)
    };
    let metrics = self_metrics();
    metrics.notifications.with_label_values(&[&integration]).inc();
    let delivered = match request {
        Err(message) => {
            tracing::error!(receiver = %notification.integration.describe(), error = %message, "cannot build the notification");
            false
        }
        Ok(request) => {
            let mut backoff = FIRST_BACKOFF;
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let attempt = request.clone();
                let now = Timestamp::now();
                let left = notification
                    .deadline
                    .duration_since(now)
                    .max(Duration::from_secs(1));
                let outcome = tokio::task::spawn_blocking(move || match &attempt {
                    Delivery::Http(request) => send(request, left),
                    Delivery::Email(email) => {
                        crate::email::send(&email.0, &email.1, left.min(Duration::from_secs(30))).map_err(
                            |err| Failure {
                                message: err.message,
                                retry: err.retry,
                            },
                        )
                    }
                })
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        message: "the delivery task panicked".to_owned(),
                        retry: false,
                    })
                });
                match outcome {
                    Ok(()) => break true,
                    Err(failure) => {
                        metrics.requests.with_label_values(&[&integration]).inc();
                        let next_try = Timestamp::now().saturating_add(backoff);
                        if !failure.retry
                            || next_try >= notification.deadline
                            || inner.shutdown.is_cancelled()
                        {
                            tracing::error!(
                                receiver = %notification.integration.describe(),
                                group_key = %notification.group_key,
                                attempts,
                                error = %failure.message,
                                "notification failed; giving up until the next group interval"
                            );
                            break false;
                        }
                        tracing::warn!(
                            receiver = %notification.integration.describe(),
                            attempts,
                            error = %failure.message,
                            retry_in_ms = backoff.as_millis() as u64,
                            "notification attempt failed; retrying"
                        );
                        tokio::select! {
                            () = inner.shutdown.cancelled() => break false,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    };
    if !delivered {
        metrics.failed.with_label_values(&[&integration]).inc();
    }
    let mut state = inner.state.lock().unwrap_or_else(|poison| poison.into_inner());
    state
        .dispatcher
        .report(&notification, delivered, Timestamp::now());
}

fn read_secret_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|err| format!("cannot read {path}: {err}"))
}

fn build_request(
    config: &Config,
    notification: &Notification,
    external_url: &str,
) -> Result<Delivery, String> {
    let reference = &notification.integration;
    let receiver = config
        .receiver(&reference.receiver)
        .ok_or_else(|| format!("receiver {:?} is no longer configured", reference.receiver))?;
    match reference.integration.as_str() {
        "webhook" => {
            let webhook = receiver
                .webhook_configs
                .get(reference.index)
                .ok_or_else(|| "webhook no longer configured".to_owned())?;
            let url = match (&webhook.url, &webhook.url_file) {
                (Some(url), _) => url.expose().to_owned(),
                (None, Some(file)) => read_secret_file(file)?,
                (None, None) => return Err("webhook without url".to_owned()),
            };
            Ok(Delivery::Http(Box::new(Request {
                url,
                headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
                body: webhook_payload(notification, external_url),
                http: webhook.http_config.clone(),
                timeout: webhook.timeout,
            })))
        }
        "ntfy" => {
            let ntfy = receiver
                .ntfy_configs
                .get(reference.index)
                .ok_or_else(|| "ntfy no longer configured".to_owned())?;
            let message = ntfy_message(notification, ntfy);
            let mut headers = message.headers;
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            let token = match (&ntfy.token, &ntfy.token_file) {
                (Some(token), _) => Some(token.expose().to_owned()),
                (None, Some(file)) => Some(read_secret_file(file)?),
                (None, None) => None,
            };
            if let Some(token) = token {
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
            }
            Ok(Delivery::Http(Box::new(Request {
                url: message.url,
                headers,
                body: message.body,
                http: ntfy.http_config.clone(),
                timeout: None,
            })))
        }
        "email" => {
            let email = receiver
                .email_configs
                .get(reference.index)
                .ok_or_else(|| "email no longer configured".to_owned())?;
            let message = crate::email::message(notification, email, external_url);
            Ok(Delivery::Email(Box::new((email.clone(), message))))
        }
        other => Err(format!("{other} delivery is not supported")),
    }
}

fn secret_value(secret: &Option<Secret>, file: &Option<String>) -> Result<Option<String>, String> {
    match (secret, file) {
        (_, Some(file)) => read_secret_file(file).map(Some),
        (Some(secret), None) => Ok(Some(secret.expose().to_owned())),
        (None, None) => Ok(None),
    }
}

/// One POST, blocking, within `left`.
fn send(request: &Request, left: Duration) -> Result<(), Failure> {
    let fail = |message: String| Failure {
        message,
        retry: false,
    };
    let timeout = request.timeout.map_or(left, |timeout| timeout.min(left));
    let tls = &request.http.tls_config;
    let read_pem = |inline: Option<String>, file: &Option<String>| -> Result<Option<Vec<u8>>, Failure> {
        match (inline, file) {
            (Some(text), _) => Ok(Some(text.into_bytes())),
            (None, Some(path)) => std::fs::read(path)
                .map(Some)
                .map_err(|err| fail(format!("cannot read {path}: {err}"))),
            (None, None) => Ok(None),
        }
    };
    let ca = read_pem(tls.ca.clone(), &tls.ca_file)?;
    let cert = read_pem(tls.cert.clone(), &tls.cert_file)?;
    let key = read_pem(tls.key.as_ref().map(|key| key.expose().to_owned()), &tls.key_file)?;
    let tls_config = obs_core::httpclient::tls_config(
        ca.as_deref(),
        cert.as_deref().zip(key.as_deref()),
        tls.insecure_skip_verify,
    )
    .map_err(fail)?;
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(if request.http.follow_redirects { 10 } else { 0 })
            .user_agent(concat!("obs-appliance/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config)
            .build(),
    );
    let mut call = agent.post(&request.url);
    for (name, value) in &request.headers {
        call = call.header(name.as_str(), value.as_str());
    }
    if let Some(basic) = &request.http.basic_auth {
        let username = match &basic.username_file {
            Some(file) => read_secret_file(file).map_err(fail)?,
            None => basic.username.clone(),
        };
        let password = secret_value(&basic.password, &basic.password_file)
            .map_err(fail)?
            .unwrap_or_default();
        call = call.header(
            "Authorization",
            format!(
                "Basic {}",
                obs_core::httpclient::base64(format!("{username}:{password}").as_bytes())
            ),
        );
    } else if let Some(auth) = &request.http.authorization {
        let credentials = secret_value(&auth.credentials, &auth.credentials_file)
            .map_err(fail)?
            .unwrap_or_default();
        call = call.header("Authorization", format!("{} {credentials}", auth.auth_type));
    }
    let response = call.send(request.body.as_bytes()).map_err(|err| Failure {
        message: format!("POST {}: {err}", redact(&request.url)),
        retry: true,
    })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(
        &mut std::io::Read::take(response.into_body().into_reader(), 1024),
        &mut body,
    );
    Err(Failure {
        message: format!("POST {}: HTTP {status}: {}", redact(&request.url), body.trim()),
        // As Alertmanager: 5xx and 429 may pass on a retry, other 4xx will not.
        retry: status >= 500 || status == 429,
    })
}

/// The URL without credentials or query (webhook URLs are secrets).
fn redact(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
            format!("{scheme}://{host_and_path}")
        }
        None => "<url>".to_owned(),
    }
}

impl AlertView {
    /// Whether it is muted (silenced, inhibited or in a mute interval).
    pub fn suppressed(&self) -> bool {
        !self.status.silenced_by.is_empty()
            || !self.status.inhibited_by.is_empty()
            || !self.status.muted_by.is_empty()
    }
}

/// Labels as a map (for JSON).
pub fn label_map(labels: &LabelSet) -> &BTreeMap<String, String> {
    labels.as_map()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_and_query() {
        assert_eq!(
            redact("https://user:pw@hooks.example/api/webhook/abc?token=x"),
            "https://hooks.example/api/webhook/abc"
        );
        assert_eq!(redact("not a url"), "<url>");
    }

    fn config() -> Config {
        Config::parse(
            "route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s}\n\
             receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]",
        )
        .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn silences_notification_log_and_alerts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let id = {
            let service = Alertmanager::start(config(), Some(dir.path()), "http://am.example").unwrap();
            let id = service
                .set_silence(PostableSilence {
                    id: None,
                    matchers: vec![parse_matcher("alertname=\"Down\"").unwrap()],
                    starts_at: None,
                    ends_at: now.saturating_add(Duration::from_secs(3600)),
                    created_by: "test".to_owned(),
                    comment: "maintenance".to_owned(),
                })
                .unwrap();
            service
                .post_alerts(vec![PostableAlert {
                    labels: LabelSet::from_pairs([("alertname", "Down"), ("instance", "a")]),
                    ..PostableAlert::default()
                }])
                .unwrap();
            service.shutdown().await;
            id
        };
        let service = Alertmanager::start(config(), Some(dir.path()), "http://am.example").unwrap();
        let silence = service.silence(&id).expect("silence restored");
        assert_eq!(silence.comment, "maintenance");
        assert_eq!(silence.matchers[0].to_string(), "alertname=\"Down\"");
        let alerts = service.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert.labels.get("instance"), "a");
        assert_eq!(alerts[0].status.silenced_by, vec![id.clone()]);
        service.expire_silence(&id).unwrap();
        service.shutdown().await;
        drop(service);
        let service = Alertmanager::start(config(), Some(dir.path()), "http://am.example").unwrap();
        let silence = service.silence(&id).unwrap();
        assert!(silence.ends_at <= Timestamp::now());
        service.shutdown().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn invalid_alerts_are_refused_as_a_whole() {
        let service = Alertmanager::start(config(), None, "").unwrap();
        let error = service
            .post_alerts(vec![
                PostableAlert {
                    labels: LabelSet::from_pairs([("alertname", "Ok")]),
                    ..PostableAlert::default()
                },
                PostableAlert::default(),
            ])
            .unwrap_err();
        assert!(error.contains("label"), "{error}");
        assert!(service.alerts().is_empty());
        let too_many = vec![
            PostableAlert {
                labels: LabelSet::from_pairs([("alertname", "x")]),
                ..PostableAlert::default()
            };
            MAX_ALERTS_PER_POST + 1
        ];
        assert!(service.post_alerts(too_many).unwrap_err().contains("too many"));
        service.shutdown().await;
    }
}
