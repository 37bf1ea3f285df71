//! The scrape manager: one pool per job, one loop per target, reconciled on reload and on
//! file_sd changes without restarting unchanged targets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use obs_core::time::TimestampMs;
use obs_metrics::store::MetricsStore;
use tokio_util::sync::CancellationToken;

use crate::config::{FileSdConfig, Job, ScrapeSettings, TargetGroup, expand_glob};
use crate::scrape::{self, Client, ScrapeCache};
use crate::target::{Health, Populated, Target};

/// The scraper's self-metrics.
struct SelfMetrics {
    scrapes: prometheus::IntCounterVec,
    failures: prometheus::IntCounterVec,
    samples: prometheus::IntCounterVec,
    duration: prometheus::HistogramVec,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: std::sync::OnceLock<SelfMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        SelfMetrics {
            scrapes: registry.int_counter_vec("obs_scrape_scrapes_total", "Scrapes done, by job.", &["job"]),
            failures: registry.int_counter_vec(
                "obs_scrape_failures_total",
                "Scrapes that failed (up = 0), by job.",
                &["job"],
            ),
            samples: registry.int_counter_vec(
                "obs_scrape_samples_stored_total",
                "Samples from scrapes the store accepted, by job.",
                &["job"],
            ),
            duration: registry.histogram_vec(
                "obs_scrape_duration_seconds",
                "Time to fetch and parse a target, by job.",
                &["job"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
        }
    })
}

/// How often file_sd files are checked for changes.
const FILE_SD_POLL: Duration = Duration::from_secs(5);

/// Runs the scrape loops.
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager").finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<MetricsStore>,
    pools: Mutex<BTreeMap<String, Pool>>,
    shutdown: CancellationToken,
}

struct Pool {
    job: Arc<Job>,
    /// The job's configuration as text: a pool whose text changes restarts its targets.
    identity: String,
    client: Option<Client>,
    targets: HashMap<String, RunningTarget>,
    dropped: Vec<BTreeMap<String, String>>,
    /// file_sd: the groups read last, and the files' modification times.
    file_groups: Vec<(TargetGroup, BTreeMap<String, String>)>,
    file_stamps: BTreeMap<std::path::PathBuf, Option<SystemTime>>,
    last_file_read: std::time::Instant,
}

struct RunningTarget {
    target: Arc<Target>,
    stop: CancellationToken,
    /// Set before `stop` when a replacement loop continues the same series: no stale markers.
    quiet: Arc<std::sync::atomic::AtomicBool>,
}

impl RunningTarget {
    /// Stops the loop; it writes stale markers for its series unless `quiet`.
    fn stop(self, quiet: bool) {
        self.quiet.store(quiet, std::sync::atomic::Ordering::Relaxed);
        self.stop.cancel();
    }
}

/// A target relabeling dropped: its pool and the labels it had before.
pub type DroppedTarget = (String, BTreeMap<String, String>);

impl ScrapeManager {
    /// A manager writing into `store`; no jobs until [`ScrapeManager::apply`].
    pub fn new(store: Arc<MetricsStore>) -> ScrapeManager {
        let manager = ScrapeManager {
            inner: Arc::new(Inner {
                store,
                pools: Mutex::new(BTreeMap::new()),
                shutdown: CancellationToken::new(),
            }),
        };
        let watcher = manager.clone();
        tokio::spawn(async move { watcher.watch_files().await });
        manager
    }

    /// Applies a configuration: pools of removed jobs stop (writing stale markers), pools of
    /// changed jobs restart, unchanged targets keep running.
    pub fn apply(&self, settings: &ScrapeSettings) {
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let wanted: HashSet<&str> = settings
            .jobs
            .iter()
            .map(|job| job.config.job_name.as_str())
            .collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(pool) = pools.remove(&name) {
                for running in pool.targets.into_values() {
                    running.stop(false);
                }
            }
        }
        for job in &settings.jobs {
            let identity = format!("{:?}|{}|{}", job.config, job.interval_ms, job.timeout_ms);
            let name = job.config.job_name.clone();
            let unchanged = pools.get(&name).is_some_and(|pool| pool.identity == identity);
            if unchanged {
                continue;
            }
            if let Some(old) = pools.remove(&name) {
                // The new pool's loops continue these series (Prometheus does the same on a
                // changed job): no stale markers in between.
                for running in old.targets.into_values() {
                    running.stop(true);
                }
            }
            let client = match Client::new(&job.config, job.timeout_ms) {
                Ok(client) => Some(client),
                Err(err) => {
                    tracing::error!(job = %name, error = %err, "cannot set up the scrape client; the job's targets are not scraped");
                    None
                }
            };
            let mut pool = Pool {
                job: Arc::new(job.clone()),
                identity,
                client,
                targets: HashMap::new(),
                dropped: Vec::new(),
                file_groups: Vec::new(),
                file_stamps: BTreeMap::new(),
                last_file_read: std::time::Instant::now(),
            };
            read_file_sd(&mut pool, true);
            self.sync_pool(&mut pool);
            pools.insert(name, pool);
        }
    }

    /// Starts and stops target loops to match the pool's current groups.
    fn sync_pool(&self, pool: &mut Pool) {
        let job = Arc::clone(&pool.job);
        let mut groups: Vec<(TargetGroup, BTreeMap<String, String>)> = job
            .config
            .static_configs
            .iter()
            .map(|group| (group.clone(), BTreeMap::new()))
            .collect();
        groups.extend(pool.file_groups.iter().cloned());
        let mut wanted: HashMap<String, Target> = HashMap::new();
        let mut dropped = Vec::new();
        for (group, extra) in &groups {
            for populated in crate::target::populate(&job, group, extra) {
                match populated {
                    Populated::Active(target) => {
                        let key = format!("{}|{}", target.url, target.labels);
                        wanted.entry(key).or_insert(*target);
                    }
                    Populated::Dropped(labels) => dropped.push(labels),
                    Populated::Invalid(reason) => {
                        tracing::warn!(job = %job.config.job_name, %reason, "target refused");
                    }
                }
            }
        }
        pool.dropped = dropped;
        let gone: Vec<String> = pool
            .targets
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(running) = pool.targets.remove(&key) {
                running.stop(false);
            }
        }
        let Some(client) = pool.client.clone() else {
            return;
        };
        for (key, target) in wanted {
            if pool.targets.contains_key(&key) {
                continue;
            }
            let target = Arc::new(target);
            let stop = self.inner.shutdown.child_token();
            let loop_target = Arc::clone(&target);
            let store = Arc::clone(&self.inner.store);
            let loop_job = Arc::clone(&job);
            let loop_stop = stop.clone();
            let loop_client = client.for_target();
            let offset = offset_ms(&key, target.interval_ms);
            let quiet = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let loop_quiet = Arc::clone(&quiet);
            let shutdown = self.inner.shutdown.clone();
            tokio::spawn(async move {
                let ended = run_loop(
                    loop_client,
                    Arc::clone(&loop_target),
                    loop_job,
                    Arc::clone(&store),
                    loop_stop,
                    offset,
                )
                .await;
                // On shutdown the series simply pause (they continue after a restart); a loop
                // replaced by a changed job is continued by its successor.
                if !shutdown.is_cancelled() && !loop_quiet.load(std::sync::atomic::Ordering::Relaxed) {
                    write_end_of_run_staleness(&loop_target, &store, ended).await;
                }
            });
            pool.targets.insert(key, RunningTarget { target, stop, quiet });
        }
    }

    /// Active targets by pool, and dropped targets' discovered labels.
    pub fn targets(&self) -> (Vec<Arc<Target>>, Vec<DroppedTarget>) {
        let pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut active: Vec<Arc<Target>> = pools
            .values()
            .flat_map(|pool| pool.targets.values().map(|running| Arc::clone(&running.target)))
            .collect();
        active.sort_by(|a, b| a.pool.cmp(&b.pool).then_with(|| a.url.cmp(&b.url)));
        let dropped = pools
            .iter()
            .flat_map(|(name, pool)| {
                pool.dropped
                    .iter()
                    .map(move |labels| (name.clone(), labels.clone()))
            })
            .collect();
        (active, dropped)
    }

    /// Stops every loop, writing stale markers for their series.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    async fn watch_files(self) {
        loop {
            tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                () = tokio::time::sleep(FILE_SD_POLL) => {}
            }
            let mut pools = self
                .inner
                .pools
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            for pool in pools.values_mut() {
                if pool.job.config.file_sd_configs.is_empty() {
                    continue;
                }
                if read_file_sd(pool, false) {
                    self.sync_pool(pool);
                }
            }
        }
    }
}

/// Re-reads a pool's file_sd files when they changed (or `force`, or the refresh interval
/// passed). Returns whether the groups changed. A file that fails to parse keeps its previous
/// groups, as Prometheus does.
fn read_file_sd(pool: &mut Pool, force: bool) -> bool {
    let configs: Vec<FileSdConfig> = pool.job.config.file_sd_configs.clone();
    if configs.is_empty() {
        return false;
    }
    let refresh = configs
        .iter()
        .map(|config| config.refresh_interval.as_std())
        .min()
        .unwrap_or(Duration::from_secs(300));
    let mut stamps = BTreeMap::new();
    let base = std::path::Path::new(&pool.job.source)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    for config in &configs {
        for pattern in &config.files {
            for path in expand_glob(&base, pattern).unwrap_or_default() {
                let modified = std::fs::metadata(&path).and_then(|meta| meta.modified()).ok();
                stamps.insert(path, modified);
            }
        }
    }
    let due = pool.last_file_read.elapsed() >= refresh;
    if !force && !due && stamps == pool.file_stamps {
        return false;
    }
    let mut groups = Vec::new();
    for path in stamps.keys() {
        match read_target_file(path) {
            Ok(file_groups) => {
                for (index, group) in file_groups.into_iter().enumerate() {
                    let mut extra = BTreeMap::new();
                    extra.insert("__meta_filepath".to_owned(), path.display().to_string());
                    let _ = index;
                    groups.push((group, extra));
                }
            }
            Err(err) => {
                tracing::warn!(job = %pool.job.config.job_name, file = %path.display(), error = %err, "cannot read file_sd file; keeping its previous targets");
                groups.extend(
                    pool.file_groups
                        .iter()
                        .filter(|(_, extra)| {
                            extra.get("__meta_filepath").map(String::as_str) == path.to_str()
                        })
                        .cloned(),
                );
            }
        }
    }
    pool.file_stamps = stamps;
    pool.last_file_read = std::time::Instant::now();
    let changed = groups != pool.file_groups;
    pool.file_groups = groups;
    changed
}

/// A file_sd file: a JSON or YAML list of `{targets, labels}`.
fn read_target_file(path: &std::path::Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    // JSON is YAML; one parser reads both.
    serde_yaml::from_str::<Vec<TargetGroup>>(&text).map_err(|err| err.to_string())
}

/// A stable offset inside the interval from the target's identity, so that targets spread
/// over the interval and keep their phase across restarts.
fn offset_ms(key: &str, interval_ms: u64) -> u64 {
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key);
    hash % interval_ms.max(1)
}

/// Scrapes until stopped; returns the target's cache (to write stale markers for what its
/// last scrape wrote).
async fn run_loop(
    client: Client,
    target: Arc<Target>,
    job: Arc<Job>,
    store: Arc<MetricsStore>,
    stop: CancellationToken,
    offset: u64,
) -> ScrapeCache {
    let interval = target.interval_ms as i64;
    let now = TimestampMs::now().0;
    let mut next = now - now.rem_euclid(interval) + offset as i64;
    if next < now {
        next += interval;
    }
    let mut cache = ScrapeCache::new();
    loop {
        let wait = Duration::from_millis((next - TimestampMs::now().0).max(0) as u64);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let scrape_ts = TimestampMs::now().0;
        let (loop_client, loop_target, loop_job) = (client.clone(), Arc::clone(&target), Arc::clone(&job));
        let mut loop_cache = std::mem::take(&mut cache);
        let outcome = tokio::task::spawn_blocking(move || {
            let result = scrape::scrape(&loop_client, &loop_target, &loop_job, scrape_ts, &mut loop_cache);
            (result, loop_cache)
        })
        .await;
        let Ok((mut result, returned_cache)) = outcome else {
            tracing::error!(target = %target.url, "a scrape panicked");
            next += interval;
            continue;
        };
        cache = returned_cache;
        {
            let mut status = target.status.lock().unwrap_or_else(|poison| poison.into_inner());
            status.health = if result.error.is_none() {
                Health::Up
            } else {
                Health::Down
            };
            status.last_error = result.error.clone().unwrap_or_default();
            status.last_scrape_ms = Some(scrape_ts);
            status.last_duration_seconds = result.duration.as_secs_f64();
        }
        if !result.metadata.is_empty() {
            let metadata = std::mem::take(&mut result.metadata);
            store.record_metadata(metadata.iter().cloned());
            *target
                .metadata
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = metadata;
        }
        let metrics = self_metrics();
        metrics.scrapes.with_label_values(&[&target.pool]).inc();
        metrics
            .duration
            .with_label_values(&[&target.pool])
            .observe(result.duration.as_secs_f64());
        if let Some(error) = &result.error {
            metrics.failures.with_label_values(&[&target.pool]).inc();
            tracing::debug!(target = %target.url, %error, "scrape failed");
        }
        match store.append_refs(&mut result.samples, TimestampMs::now()).await {
            Ok(outcome) => {
                cache.record_handles(&result);
                self_metrics()
                    .samples
                    .with_label_values(&[&target.pool])
                    .inc_by(outcome.accepted + outcome.duplicates);
                if !outcome.rejected.is_empty() {
                    tracing::debug!(target = %target.url, refused = outcome.rejected.len(), "the store refused samples of a scrape");
                }
            }
            Err(err) => tracing::warn!(target = %target.url, error = %err, "cannot store a scrape"),
        }
        // Skip missed slots rather than scraping in a burst.
        next += interval;
        let now = TimestampMs::now().0;
        if next <= now {
            next += ((now - next) / interval + 1) * interval;
        }
    }
    cache
}

/// Stale markers for every series of a target that went away (reload, discovery).
async fn write_end_of_run_staleness(target: &Target, store: &MetricsStore, mut cache: ScrapeCache) {
    let mut samples = cache.end_of_run(target, TimestampMs::now().0);
    if samples.is_empty() {
        return;
    }
    if let Err(err) = store.append_refs(&mut samples, TimestampMs::now()).await {
        tracing::debug!(target = %target.url, error = %err, "cannot write the stale markers of a stopped target");
    }
}
