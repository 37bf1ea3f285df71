//! Loads rule files and runs one evaluation loop per group; reload keeps the state of groups
//! whose rules did not change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use obs_core::series::{MetricsQuerier, SeriesSamples};
use obs_core::time::TimestampMs;
use obs_metrics::store::MetricsStore;
use obs_promql::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;

use crate::file::{self, QueryLanguage, RuleFileError};
use crate::group::{AlertNotifier, Group, LogQuerier, RuleSet, SeriesSink, carry_over, group_key};

/// Runs the rule groups.
#[derive(Clone)]
pub struct RuleManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleManager").finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<MetricsStore>,
    options: EngineOptions,
    running: Mutex<Vec<(Arc<Group>, CancellationToken)>>,
    shutdown: CancellationToken,
    notify: Mutex<Option<Arc<Notify>>>,
    /// Where log rules run their LogQL expressions.
    logs: Mutex<Option<Arc<dyn LogQuerier>>>,
}

/// Where alerts go, and how often they are re-sent.
pub struct Notify {
    /// The notifier.
    pub notifier: Arc<dyn AlertNotifier>,
    /// Least time between two sends of an unchanged firing alert (Prometheus'
    /// `--rules.alert.resend-delay`, 1m).
    pub resend_delay_ms: i64,
    /// Prefix of the alerts' generator links.
    pub external_url: String,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("resend_delay_ms", &self.resend_delay_ms)
            .field("external_url", &self.external_url)
            .finish_non_exhaustive()
    }
}

/// Writes rule results into the metrics store from a blocking thread.
struct StoreSink {
    store: Arc<MetricsStore>,
    runtime: tokio::runtime::Handle,
}

impl SeriesSink for StoreSink {
    fn write(&self, batch: Vec<SeriesSamples>) -> Result<(), String> {
        let outcome = self
            .runtime
            .block_on(self.store.append(batch, TimestampMs::now()))
            .map_err(|err| err.to_string())?;
        match outcome.rejected.first() {
            Some(rejection) => Err(format!("the store refused a result: {rejection}")),
            None => Ok(()),
        }
    }
}

/// Reads every rule file matching `patterns` (globs in the last path component, relative to
/// `base_dir`) into groups.
pub fn load_groups(
    patterns: &[String],
    base_dir: &Path,
    default_interval_ms: i64,
) -> Result<Vec<Group>, RuleFileError> {
    load_groups_as(patterns, base_dir, default_interval_ms, QueryLanguage::PromQL)
}

/// [`load_groups`] for rule files whose expressions are in `language`.
pub fn load_groups_as(
    patterns: &[String],
    base_dir: &Path,
    default_interval_ms: i64,
    language: QueryLanguage,
) -> Result<Vec<Group>, RuleFileError> {
    let mut groups = Vec::new();
    for pattern in patterns {
        let paths = obs_core::files::expand_glob(base_dir, pattern).map_err(|err| RuleFileError {
            file: PathBuf::from(pattern),
            message: format!("cannot list the files of {pattern}: {err}"),
        })?;
        for path in paths {
            let rules = file::load_as(&path, language)?;
            let label = path.display().to_string();
            for group in &rules.groups {
                groups.push(Group::new_as(group, &label, default_interval_ms, language));
            }
        }
    }
    Ok(groups)
}

/// The default alert pack (`deploy/rules/*.rules.yml`), compiled in: file name and text.
pub const DEFAULT_ALERT_PACK: [(&str, &str); 4] = [
    (
        "scrape.rules.yml",
        include_str!("../../../deploy/rules/scrape.rules.yml"),
    ),
    (
        "node.rules.yml",
        include_str!("../../../deploy/rules/node.rules.yml"),
    ),
    (
        "traefik.rules.yml",
        include_str!("../../../deploy/rules/traefik.rules.yml"),
    ),
    (
        "obs-appliance.rules.yml",
        include_str!("../../../deploy/rules/obs-appliance.rules.yml"),
    ),
];

/// The groups of the default alert pack, named `(default alert pack)/<file>` in the APIs.
pub fn default_alert_pack(default_interval_ms: i64) -> Result<Vec<Group>, RuleFileError> {
    let mut groups = Vec::new();
    for (name, text) in DEFAULT_ALERT_PACK {
        let label = format!("(default alert pack)/{name}");
        let rules = file::parse(text, Path::new(&label))?;
        for group in &rules.groups {
            groups.push(Group::new(group, &label, default_interval_ms));
        }
    }
    Ok(groups)
}

impl RuleManager {
    /// A manager evaluating over `store`.
    pub fn new(store: Arc<MetricsStore>, options: EngineOptions) -> RuleManager {
        RuleManager {
            inner: Arc::new(Inner {
                store,
                options,
                running: Mutex::new(Vec::new()),
                shutdown: CancellationToken::new(),
                notify: Mutex::new(None),
                logs: Mutex::new(None),
            }),
        }
    }

    /// Runs log rules' expressions on `logs` from the next evaluation on.
    pub fn set_log_querier(&self, logs: Arc<dyn LogQuerier>) {
        *self
            .inner
            .logs
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(logs);
    }

    /// Sends alerts to `notify` from the next evaluation on.
    pub fn set_notifier(&self, notify: Notify) {
        *self
            .inner
            .notify
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(Arc::new(notify));
    }

    /// Replaces the running groups; groups with the same file, name, interval and rules keep
    /// their alerts.
    pub fn apply(&self, groups: Vec<Group>) {
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let old: HashMap<String, Arc<Group>> = running
            .iter()
            .map(|(group, _)| (group_key(&group.file, &group.name), Arc::clone(group)))
            .collect();
        for (_, stop) in running.drain(..) {
            stop.cancel();
        }
        // Groups the reload removed: their series end now, as Prometheus marks them stale.
        let kept: std::collections::HashSet<String> = groups
            .iter()
            .map(|group| group_key(&group.file, &group.name))
            .collect();
        let now = TimestampMs::now().0;
        let stale: Vec<SeriesSamples> = old
            .iter()
            .filter(|(key, _)| !kept.contains(*key))
            .flat_map(|(_, group)| group.stale_markers(now))
            .collect();
        if !stale.is_empty() {
            let store = Arc::clone(&self.inner.store);
            tokio::spawn(async move {
                if let Err(err) = store.append(stale, TimestampMs::now()).await {
                    tracing::warn!(error = %err, "cannot write the stale markers of removed rule groups");
                }
            });
        }
        for group in groups {
            if let Some(previous) = old.get(&group_key(&group.file, &group.name)) {
                carry_over(previous, &group);
            }
            let group = Arc::new(group);
            let stop = self.inner.shutdown.child_token();
            tokio::spawn(run_group(
                Arc::clone(&group),
                Arc::clone(&self.inner),
                stop.clone(),
            ));
            running.push((group, stop));
        }
    }

    /// The running groups.
    pub fn rules(&self) -> RuleSet {
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        RuleSet {
            groups: running.iter().map(|(group, _)| Arc::clone(group)).collect(),
        }
    }

    /// Stops every loop.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

/// Evaluates a group at the multiples of its interval shifted by a hash of its identity (as
/// Prometheus spreads groups), until stopped.
async fn run_group(group: Arc<Group>, manager: Arc<Inner>, stop: CancellationToken) {
    use std::hash::BuildHasher;
    let interval = group.interval_ms;
    let offset = (foldhash::fast::FixedState::with_seed(7).hash_one(group_key(&group.file, &group.name))
        % interval as u64) as i64;
    let now = TimestampMs::now().0;
    let mut next = now - now.rem_euclid(interval) + offset;
    if next < now {
        next += interval;
    }
    loop {
        let wait = std::time::Duration::from_millis((next - TimestampMs::now().0).max(0) as u64);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let ts = next;
        let (group, store, options) = (
            Arc::clone(&group),
            Arc::clone(&manager.store),
            manager.options.clone(),
        );
        let notify = manager
            .notify
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let logs = manager
            .logs
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let runtime = tokio::runtime::Handle::current();
        let evaluated = tokio::task::spawn_blocking(move || {
            let querier: Arc<dyn MetricsQuerier> = Arc::clone(&store) as Arc<dyn MetricsQuerier>;
            let engine = Engine::new(Arc::clone(&querier), options);
            let sink = StoreSink { store, runtime };
            group.evaluate_with_logs(&engine, logs.as_deref(), querier.as_ref(), &sink, ts);
            if let Some(notify) = notify {
                let alerts = group.alerts_to_send(ts, notify.resend_delay_ms, &notify.external_url);
                if !alerts.is_empty() {
                    notify.notifier.send(alerts);
                }
            }
        })
        .await;
        if evaluated.is_err() {
            tracing::error!("a rule group evaluation panicked");
        }
        next += interval;
        let now = TimestampMs::now().0;
        if next <= now {
            // Missed evaluations are skipped, as in Prometheus.
            next += ((now - next) / interval + 1) * interval;
        }
    }
}
