//! `obs-appliance serve`: start-up, steady state and graceful shutdown.
//!
//! Start-up order matters for the operator: everything that can be wrong with the machine
//! (data directory unusable or already in use, a port taken) is found before any data is
//! touched, and reported with exit code 2. Then listeners serve at once (`/-/healthy` answers,
//! `/-/ready` says 503) while the write-ahead logs replay; `/-/ready` turns 200 when they are
//! done.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_core::Signal;
use obs_core::limits::Limits;
use obs_core::partition::{DataLayout, PartitionSet, RetentionManager, RetentionPolicy};
use obs_core::time::TimestampMs;
use obs_core::wal::WalOptions;
use obs_logs::model::EntryLimits;
use obs_logs::store::{LogStore, LogsOptions};
use obs_metrics::store::{MetricsOptions, MetricsStore};
use obs_server::listener::{self, BoundListener};
use obs_server::{AppState, BuildInfo};
use obs_traces::store::{TraceStore, TracesOptions};
use tokio_util::sync::CancellationToken;

use crate::EXIT_MISCONFIGURED;
use crate::config::Config;

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);
/// How often sealed metric chunks are written to their day partitions.
const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// How often the metrics store checkpoints (and its write-ahead log is truncated).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(600);
/// How long in-flight requests get to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// A start-up failure, with what to fix.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(
        "cannot use data directory {path} (storage.path or --data-dir): {reason}; make it a writable directory or choose another"
    )]
    DataDir { path: PathBuf, reason: String },
    #[error(
        "data directory {path} is in use by another obs-appliance process; stop it or choose another directory with --data-dir"
    )]
    DataDirLocked { path: PathBuf },
    #[error("cannot listen on {addr} ({key}): {source}; stop whatever uses it or change {key}")]
    Bind {
        addr: std::net::SocketAddr,
        key: String,
        source: std::io::Error,
    },
}

/// Runs the appliance until SIGTERM or SIGINT.
pub(crate) fn run(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("obs-worker")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let prepared = match prepare(&config) {
        Ok(prepared) => prepared,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_MISCONFIGURED);
        }
    };
    let code = runtime.block_on(serve(config, prepared, started));
    // Do not wait for blocking tasks that may still sleep on a timer.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// What start-up checked and holds before serving.
struct Prepared {
    layout: DataLayout,
    listeners: Vec<BoundListener>,
    /// Held for the life of the process: the exclusive lock on the data directory.
    _lock: File,
}

fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let path = config.storage.path.clone();
    let data_dir_error = |reason: String| StartError::DataDir {
        path: path.clone(),
        reason,
    };
    std::fs::create_dir_all(&path).map_err(|err| data_dir_error(err.to_string()))?;
    probe_writable(&path).map_err(|err| data_dir_error(err.to_string()))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join("LOCK"))
        .map_err(|err| data_dir_error(err.to_string()))?;
    if lock.try_lock().is_err() {
        return Err(StartError::DataDirLocked { path });
    }
    let layout = DataLayout::new(path);

    let mut listeners = Vec::new();
    for (key, addr) in config.listen_addresses() {
        let bound = listener::bind(addr).map_err(|source| StartError::Bind { addr, key, source })?;
        listeners.push(bound);
    }
    Ok(Prepared {
        layout,
        listeners,
        _lock: lock,
    })
}

/// Creates, syncs and removes a file: proves the directory is writable by this process.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"probe")?;
    File::open(&probe)?.sync_all()?;
    std::fs::remove_file(&probe)
}

async fn serve(config: Config, prepared: Prepared, started: Instant) -> ExitCode {
    let limits = Limits {
        max_request_body_bytes: config.limits.max_request_body.as_usize(),
        max_decompressed_bytes: config.limits.max_decompressed_body.as_usize(),
    };
    let state = AppState::new(BuildInfo::current(), limits).await;
    let mux = obs_server::router(state.clone());
    let main_address = prepared.listeners.first().map(|bound| bound.local_addr());
    for bound in &prepared.listeners {
        tracing::info!(addr = %bound.local_addr(), "listening");
    }
    let shutdown = CancellationToken::new();
    let mut server = tokio::spawn(listener::serve(prepared.listeners, mux, shutdown.clone()));

    let layout = prepared.layout.clone();
    let metrics_options = MetricsOptions {
        retention: config.retention(Signal::Metrics),
        out_of_order_window: config.metrics.out_of_order_window.as_std(),
        denied_label_names: config.metrics.denied_labels.clone(),
        max_series: config.metrics.max_series,
        max_series_per_metric: config.metrics.max_series_per_metric,
        wal: wal_options(Signal::Metrics, &config),
        ..MetricsOptions::default()
    };
    let logs_options = LogsOptions {
        retention: config.retention(Signal::Logs),
        limits: EntryLimits {
            max_line_bytes: config.logs.max_line_size.as_usize(),
            max_labels: config.logs.max_label_names_per_stream,
            ..EntryLimits::default()
        },
        max_streams: config.logs.max_streams,
        correlation_keys: config.logs.correlation_keys.clone(),
        discover_service_name: config.logs.discover_service_name,
        discover_log_levels: config.logs.discover_log_levels,
        wal: wal_options(Signal::Logs, &config),
        ..LogsOptions::default()
    };
    let traces_options = TracesOptions {
        retention: config.retention(Signal::Traces),
        wal: wal_options(Signal::Traces, &config),
        ..TracesOptions::default()
    };
    let opened = tokio::task::spawn_blocking(move || {
        let (store, report) = MetricsStore::open(&layout, metrics_options).map_err(|err| err.to_string())?;
        tracing::info!(
            indexed_series = report.indexed_series,
            replayed_records = report.replayed_records,
            replayed_samples = report.replayed_samples,
            corruptions = report.wal_corruptions,
            "metrics store opened"
        );
        let (logs, logs_report) = LogStore::open(&layout, logs_options).map_err(|err| err.to_string())?;
        tracing::info!(
            streams = logs_report.streams,
            replayed_records = logs_report.replayed_records,
            replayed_entries = logs_report.replayed_entries,
            corruptions = logs_report.wal_corruptions,
            "log store opened"
        );
        let (traces, traces_report) =
            TraceStore::open(&layout, traces_options).map_err(|err| err.to_string())?;
        tracing::info!(
            replayed_records = traces_report.replayed_records,
            replayed_spans = traces_report.replayed_spans,
            corruptions = traces_report.wal_corruptions,
            "span store opened"
        );
        Ok::<_, String>((Arc::new(store), Arc::new(logs), Arc::new(traces)))
    });
    let (metrics, logs, traces) = match opened.await {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "cannot open the write-ahead logs");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
        Err(err) => {
            tracing::error!(error = %err, "write-ahead log replay panicked");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };
    state.set_otlp_options(obs_metrics::otlp::OtlpOptions {
        scope_labels: config.metrics.otlp_scope_labels,
    });
    state.set_query_options(
        obs_promql::EngineOptions {
            lookback_delta_ms: config.query.lookback_delta.as_std().as_millis() as i64,
            max_samples: config.query.max_samples,
            timeout: config.query.timeout.as_std(),
            ..obs_promql::EngineOptions::default()
        },
        config.query.max_concurrency,
    );
    let retention_days = config.retention(Signal::Metrics).as_secs() / 86_400;
    state.set_prometheus_view(
        format!("{retention_days}d"),
        format!(
            "global:\n  evaluation_interval: 1m\n  scrape_interval: 1m\n  scrape_timeout: 10s\nstorage:\n  tsdb:\n    out_of_order_time_window: {}\n",
            config.metrics.out_of_order_window
        ),
    );
    state.attach_metrics(Arc::clone(&metrics));
    state.attach_logs(Arc::clone(&logs));
    state.attach_traces(Arc::clone(&traces));
    let span_metrics = match span_metrics_generator(&config) {
        Ok(generator) => generator,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the span metrics generator");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };
    if let Some(generator) = &span_metrics {
        let sink = Arc::clone(generator);
        state.set_span_sink(obs_server::SpanSink(Arc::new(move |docs| {
            feed_span_metrics(&sink, docs)
        })));
    }
    let scrape = obs_scrape::manager::ScrapeManager::new(Arc::clone(&metrics));
    let rules = obs_rules::manager::RuleManager::new(Arc::clone(&metrics), state.query_options());
    rules.set_log_querier(obs_server::log_rule_querier(
        Arc::clone(&logs),
        config.query.timeout.as_std(),
    ));
    let alertmanager = match start_alertmanager(&config, &prepared.layout, main_address) {
        Ok(started) => started,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the alertmanager");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };
    state.attach_alertmanager(alertmanager.clone());
    let forwarder =
        obs_alertmanager::forward::Forwarder::start(forward_targets(&config).unwrap_or_else(|err| {
            // Validated at start: a credentials file that changed since.
            tracing::error!(error = %err, "cannot set up alerting.alertmanagers; alerts are not forwarded");
            Vec::new()
        }));
    rules.set_notifier(obs_rules::manager::Notify {
        notifier: Arc::new(RuleAlerts {
            alertmanager: alertmanager.clone(),
            forwarder: forwarder.clone(),
        }),
        resend_delay_ms: config.alertmanager.resend_delay.as_std().as_millis() as i64,
        external_url: alertmanager.external_url().to_owned(),
    });
    let reloader = Reloader {
        source: config.source.clone(),
        self_address: main_address,
        scrape: scrape.clone(),
        rules: rules.clone(),
        alertmanager: alertmanager.clone(),
        forwarder: forwarder.clone(),
        lock: Arc::new(tokio::sync::Mutex::new(())),
    };
    if let Err(err) = reloader.reload().await {
        // The configuration was validated at start: this is a file that changed since.
        tracing::error!(error = %err, "cannot load the scrape configuration");
    }
    state.attach_scrape(scrape.clone());
    state.attach_rules(rules.clone());
    let hook_reloader = reloader.clone();
    state.set_reload(Arc::new(move || {
        let reloader = hook_reloader.clone();
        Box::pin(async move { reloader.reload().await })
    }));
    let sighup_task = tokio::spawn(reload_on_sighup(reloader.clone()));
    state.set_ready(true).await;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");

    let retention = Arc::new(retention_manager(
        &config,
        &prepared.layout,
        Arc::clone(&metrics),
        Arc::clone(&logs),
        Arc::clone(&traces),
    ));
    metrics.set_disk_pressure(retention.pressure());
    logs.set_disk_pressure(retention.pressure());
    traces.set_disk_pressure(retention.pressure());
    let retention_task = tokio::spawn(run_retention(Arc::clone(&retention), shutdown.clone()));
    let maintenance_task = tokio::spawn(run_metrics_maintenance(Arc::clone(&metrics), shutdown.clone()));
    let logs_task = tokio::spawn(run_head_maintenance(
        Arc::clone(&logs),
        config.logs.flush_interval.as_std(),
        shutdown.clone(),
    ));
    let span_metrics_task = span_metrics.map(|generator| {
        tokio::spawn(run_span_metrics(
            generator,
            Arc::clone(&metrics),
            config.traces.metrics_collection_interval.as_std(),
            shutdown.clone(),
        ))
    });
    let traces_task = tokio::spawn(run_head_maintenance(
        Arc::clone(&traces),
        config.traces.flush_interval.as_std(),
        shutdown.clone(),
    ));

    let exit = tokio::select! {
        signal = stop_signal() => {
            tracing::info!(signal, "shutting down");
            ExitCode::SUCCESS
        }
        result = &mut server => {
            tracing::error!(result = ?result, "listeners stopped unexpectedly");
            ExitCode::FAILURE
        }
    };
    state.set_ready(false).await;
    sighup_task.abort();
    scrape.shutdown();
    rules.shutdown();
    alertmanager.shutdown().await;
    forwarder.shutdown();
    shutdown.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await.is_err() {
        tracing::warn!(
            timeout_secs = DRAIN_TIMEOUT.as_secs(),
            "requests still in flight at shutdown were cut off"
        );
    }
    retention_task.abort();
    maintenance_task.abort();
    logs_task.abort();
    traces_task.abort();
    if let Some(task) = span_metrics_task {
        task.abort();
    }
    match flush_head(&traces).await {
        Ok(()) => tracing::info!("span store flushed"),
        Err(err) => {
            tracing::error!(error = %err, "span store flush at shutdown failed; the write-ahead log keeps the data")
        }
    }
    traces.close_wal();
    match flush_head(&logs).await {
        Ok(()) => {
            tracing::info!("log store flushed");
            // Small blocks left by the day's flushes become full ones, so that a stopped
            // appliance leaves its log days compact.
            let store = Arc::clone(&logs);
            match tokio::task::spawn_blocking(move || store.compact()).await {
                Ok(Ok(blocks)) => tracing::info!(blocks, "log store compacted"),
                Ok(Err(err)) => tracing::warn!(error = %err, "log store compaction at shutdown failed"),
                Err(err) => tracing::warn!(error = %err, "log store compaction at shutdown failed"),
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "log store flush at shutdown failed; the write-ahead log keeps the data")
        }
    }
    logs.close_wal();
    let checkpointed = checkpoint(&metrics).await;
    metrics.close_wal();
    match checkpointed {
        Ok(()) => tracing::info!("metrics store checkpointed and closed"),
        Err(err) => {
            tracing::error!(error = %err, "metrics store checkpoint at shutdown failed; the write-ahead log keeps the data")
        }
    }
    tracing::info!("stopped");
    exit
}

fn wal_options(signal: Signal, config: &Config) -> WalOptions {
    WalOptions {
        fsync: config.storage.wal.fsync.0,
        segment_size_bytes: config.storage.wal.segment_size.bytes(),
        ..WalOptions::named(signal.as_str())
    }
}

fn retention_manager(
    config: &Config,
    layout: &DataLayout,
    metrics: Arc<MetricsStore>,
    logs: Arc<LogStore>,
    traces: Arc<TraceStore>,
) -> RetentionManager {
    let sets: Vec<Arc<dyn PartitionSet>> = vec![metrics, logs, traces];
    let retention = Signal::ALL
        .iter()
        .map(|&signal| (signal, config.retention(signal)))
        .collect();
    RetentionManager::new(
        layout.clone(),
        sets,
        RetentionPolicy {
            retention,
            disk_budget: config.storage.disk_budget,
            min_free_bytes: config.storage.min_free_disk.bytes(),
        },
    )
}

async fn run_retention(manager: Arc<RetentionManager>, shutdown: CancellationToken) {
    loop {
        let pass = Arc::clone(&manager);
        match tokio::task::spawn_blocking(move || pass.run_once(TimestampMs::now())).await {
            Ok(Ok(report)) => {
                if !report.dropped.is_empty() {
                    tracing::info!(
                        dropped = report.dropped.len(),
                        used_bytes = report.used_bytes,
                        "retention pass done"
                    );
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "retention pass failed"),
            Err(err) => tracing::error!(error = %err, "retention pass panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
    }
}

/// Flushes sealed chunks every minute, and sooner when many were sealed at once; checkpoints
/// every ten minutes.
async fn run_metrics_maintenance(store: Arc<MetricsStore>, shutdown: CancellationToken) {
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(FLUSH_INTERVAL) => {}
            () = store.flush_requested() => {}
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            last_checkpoint = tokio::time::Instant::now();
            if let Err(err) = checkpoint(&store).await {
                tracing::error!(error = %err, "metrics checkpoint failed; retrying at the next one");
            }
            continue;
        }
        let flushing = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || flushing.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "metrics flush failed; retrying"),
            Err(err) => tracing::error!(error = %err, "metrics flush panicked"),
        }
    }
}

/// A store with an in-memory head that a flush moves into its day indexes (logs, spans).
trait HeadStore: Send + Sync + 'static {
    /// What the store holds, for log messages ("log", "span").
    const WHAT: &'static str;
    /// Resolves when the head has grown past its flush size.
    fn flush_requested(&self) -> impl std::future::Future<Output = ()> + Send;
    /// Whether the head has grown past its flush size.
    fn wants_flush(&self) -> bool;
    /// The first, async half of a flush (rotates the log).
    fn begin_flush(&self) -> impl std::future::Future<Output = Result<obs_core::wal::Lsn, String>> + Send;
    /// The second, blocking half.
    fn finish_flush(&self, rotated_at: obs_core::wal::Lsn) -> Result<(), String>;
}

impl HeadStore for LogStore {
    const WHAT: &'static str = "log";

    fn flush_requested(&self) -> impl std::future::Future<Output = ()> + Send {
        LogStore::flush_requested(self)
    }

    fn wants_flush(&self) -> bool {
        LogStore::wants_flush(self)
    }

    async fn begin_flush(&self) -> Result<obs_core::wal::Lsn, String> {
        LogStore::begin_flush(self).await.map_err(|err| err.to_string())
    }

    fn finish_flush(&self, rotated_at: obs_core::wal::Lsn) -> Result<(), String> {
        LogStore::finish_flush(self, rotated_at).map_err(|err| err.to_string())
    }
}

impl HeadStore for TraceStore {
    const WHAT: &'static str = "span";

    fn flush_requested(&self) -> impl std::future::Future<Output = ()> + Send {
        TraceStore::flush_requested(self)
    }

    fn wants_flush(&self) -> bool {
        TraceStore::wants_flush(self)
    }

    async fn begin_flush(&self) -> Result<obs_core::wal::Lsn, String> {
        TraceStore::begin_flush(self).await.map_err(|err| err.to_string())
    }

    fn finish_flush(&self, rotated_at: obs_core::wal::Lsn) -> Result<(), String> {
        TraceStore::finish_flush(self, rotated_at).map_err(|err| err.to_string())
    }
}

/// Moves a store's head into its day indexes every `interval`, or sooner when it grows large.
async fn run_head_maintenance<S: HeadStore>(store: Arc<S>, interval: Duration, shutdown: CancellationToken) {
    let tick = Duration::from_secs(1).min(interval);
    let mut since_flush = Duration::ZERO;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
            () = store.flush_requested() => {}
        }
        since_flush += started.elapsed();
        if since_flush < interval && !store.wants_flush() {
            continue;
        }
        since_flush = Duration::ZERO;
        if let Err(err) = flush_head(&store).await {
            tracing::error!(error = %err, "{} flush failed; retrying at the next one", S::WHAT);
        }
    }
}

/// A head flush, its blocking half off the async threads.
async fn flush_head<S: HeadStore>(store: &Arc<S>) -> Result<(), String> {
    let rotated_at = store.begin_flush().await?;
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.finish_flush(rotated_at))
        .await
        .map_err(|err| err.to_string())?
}

type SharedGenerator = Arc<std::sync::Mutex<obs_traces::spanmetrics::Generator>>;

/// The span-metrics and service-graph generator the configuration asks for, if any.
fn span_metrics_generator(config: &Config) -> Result<Option<SharedGenerator>, String> {
    if !config.traces.span_metrics && !config.traces.service_graph {
        return Ok(None);
    }
    let generator = obs_traces::spanmetrics::Generator::new(obs_traces::spanmetrics::GeneratorOptions {
        span_metrics: config.traces.span_metrics,
        service_graph: config.traces.service_graph,
        dimensions: config.traces.span_metrics_dimensions.clone(),
        ..obs_traces::spanmetrics::GeneratorOptions::default()
    })
    .map_err(|err| err.to_string())?;
    Ok(Some(Arc::new(std::sync::Mutex::new(generator))))
}

/// Feeds stored spans to the generator, trace by trace.
fn feed_span_metrics(generator: &SharedGenerator, docs: &[obs_traces::record::SpanDoc]) {
    let mut by_trace: std::collections::BTreeMap<[u8; 16], Vec<obs_traces::record::SpanDoc>> =
        std::collections::BTreeMap::new();
    for doc in docs {
        by_trace.entry(doc.trace_id).or_default().push(doc.clone());
    }
    let now_ms = TimestampMs::now().0;
    for (trace_id, docs) in by_trace {
        match obs_traces::record::to_model_spans(&docs) {
            Ok(spans) => generator
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .observe(trace_id, &spans, now_ms),
            Err(err) => tracing::warn!(error = %err, "a stored span could not be read for span metrics"),
        }
    }
}

/// Writes the generator's series into the metrics store every `interval`.
async fn run_span_metrics(
    generator: SharedGenerator,
    metrics: Arc<MetricsStore>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = TimestampMs::now();
        // With each new series' zero start sample, as Tempo writes it, so that `rate()` and
        // `increase()` count its first requests.
        let collected = generator
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .collect_samples(now.0);
        if collected.is_empty() {
            continue;
        }
        let mut by_series: std::collections::BTreeMap<obs_core::series::Labels, Vec<(i64, f64)>> =
            std::collections::BTreeMap::new();
        for sample in collected {
            by_series
                .entry(sample.labels)
                .or_default()
                .push((sample.timestamp_ms, sample.value));
        }
        let batch: Vec<obs_core::series::SeriesSamples> = by_series
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|(ts, _)| *ts);
                samples.dedup_by_key(|(ts, _)| *ts);
                obs_core::series::SeriesSamples { labels, samples }
            })
            .collect();
        match metrics.append(batch, now).await {
            Ok(outcome) if !outcome.rejected.is_empty() => tracing::warn!(
                rejected = outcome.rejected.len(),
                first = %outcome.rejected[0],
                "span metrics samples refused by the metrics store"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "span metrics could not be written"),
        }
    }
}

/// A metrics checkpoint, its blocking half off the async threads.
async fn checkpoint(store: &Arc<MetricsStore>) -> Result<(), String> {
    let rotated_at = store.begin_checkpoint().await.map_err(|err| err.to_string())?;
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.finish_checkpoint(rotated_at))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())
}

/// Starts the built-in Alertmanager on the configuration's routing, its state under
/// `<data>/alertmanager`.
fn start_alertmanager(
    config: &Config,
    layout: &DataLayout,
    main_address: Option<std::net::SocketAddr>,
) -> Result<obs_alertmanager::service::Alertmanager, String> {
    let origin = config.source.as_ref().map_or_else(
        || "(embedded default)".to_owned(),
        |path| path.display().to_string(),
    );
    let base_dir = config
        .source
        .as_ref()
        .and_then(|path| path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let routing = config
        .alertmanager_config(&origin, &base_dir)
        .map_err(|err| err.to_string())?;
    for warning in &routing.warnings {
        tracing::warn!(%warning, "alertmanager configuration");
    }
    let external_url = config
        .alertmanager
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", main_address.unwrap_or(config.server.listen)));
    obs_alertmanager::service::Alertmanager::start(
        routing,
        Some(&layout.root().join("alertmanager")),
        &external_url,
    )
    .map_err(|err| err.to_string())
}

/// The external Alertmanagers of a configuration.
fn forward_targets(config: &Config) -> Result<Vec<obs_alertmanager::forward::ForwardTarget>, String> {
    let origin = config.source.as_ref().map_or_else(
        || "(embedded default)".to_owned(),
        |path| path.display().to_string(),
    );
    let base_dir = config
        .source
        .as_ref()
        .and_then(|path| path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    config
        .forward_targets(&origin, &base_dir)
        .map_err(|err| err.to_string())
}

/// Hands the rule evaluator's alerts to the built-in Alertmanager and to the external ones.
struct RuleAlerts {
    alertmanager: obs_alertmanager::service::Alertmanager,
    forwarder: obs_alertmanager::forward::Forwarder,
}

impl obs_rules::group::AlertNotifier for RuleAlerts {
    fn send(&self, alerts: Vec<obs_rules::group::OutgoingAlert>) {
        use obs_alertmanager::time::Timestamp;
        let now = Timestamp::now();
        let alerts = alerts
            .into_iter()
            .map(|alert| obs_alertmanager::alert::Alert {
                labels: alert
                    .labels
                    .iter()
                    .map(|label| (label.name.to_string(), label.value.to_string()))
                    .collect(),
                annotations: alert.annotations.into_iter().collect(),
                starts_at: Timestamp::from_unix_millis(alert.starts_at_ms),
                ends_at: Some(Timestamp::from_unix_millis(alert.ends_at_ms)),
                generator_url: alert.generator_url,
                updated_at: now,
                timeout: false,
            })
            .collect::<Vec<_>>();
        self.forwarder.send(&alerts);
        self.alertmanager.put_alerts(alerts);
    }
}

/// Waits for SIGTERM or SIGINT and names it.
/// Re-reads the configuration's scrape jobs (SIGHUP, `POST /-/reload`).
#[derive(Clone)]
struct Reloader {
    source: Option<PathBuf>,
    /// The address the main listener actually bound: a target equal to the configured
    /// `server.listen` is the appliance itself and is scraped here.
    self_address: Option<std::net::SocketAddr>,
    scrape: obs_scrape::manager::ScrapeManager,
    rules: obs_rules::manager::RuleManager,
    alertmanager: obs_alertmanager::service::Alertmanager,
    forwarder: obs_alertmanager::forward::Forwarder,
    /// One reload at a time.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Reloader {
    async fn reload(&self) -> Result<(), String> {
        let _one_at_a_time = self.lock.lock().await;
        let source = self.source.clone();
        let self_address = self.self_address;
        let settings = tokio::task::spawn_blocking(move || {
            let config = match &source {
                Some(path) => Config::load(path),
                None => Config::embedded_default(),
            }
            .map_err(|err| err.to_string())?;
            let origin = source.as_ref().map_or_else(
                || "(embedded default)".to_owned(),
                |path| path.display().to_string(),
            );
            let base_dir = source
                .as_ref()
                .and_then(|path| path.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            let mut settings = config
                .scrape_settings(&origin, &base_dir)
                .map_err(|err| err.to_string())?;
            if let Some(actual) = self_address {
                let configured = config.server.listen.to_string();
                for job in &mut settings.jobs {
                    for group in &mut job.config.static_configs {
                        for target in &mut group.targets {
                            if *target == configured {
                                *target = actual.to_string();
                            }
                        }
                    }
                }
            }
            let groups = config
                .rule_groups(&origin, &base_dir, &settings)
                .map_err(|err| err.to_string())?;
            let alertmanager = config
                .alertmanager_config(&origin, &base_dir)
                .map_err(|err| err.to_string())?;
            let forward = config
                .forward_targets(&origin, &base_dir)
                .map_err(|err| err.to_string())?;
            Ok::<_, String>((settings, groups, (alertmanager, forward)))
        })
        .await
        .map_err(|err| format!("reload failed: {err}"))??;
        let (settings, groups, (alertmanager, forward)) = settings;
        self.forwarder.set_targets(forward);
        for warning in &alertmanager.warnings {
            tracing::warn!(%warning, "alertmanager configuration");
        }
        self.alertmanager
            .apply_config(alertmanager)
            .map_err(|err| err.to_string())?;
        let group_count = groups.len();
        self.rules.apply(groups);
        tracing::info!(groups = group_count, "rules loaded");
        for warning in &settings.warnings {
            tracing::warn!(%warning, "configuration has no effect here");
        }
        self.scrape.apply(&settings);
        tracing::info!(jobs = settings.jobs.len(), "scrape configuration loaded");
        Ok(())
    }
}

async fn reload_on_sighup(reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload with POST /-/reload");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        if let Err(err) = reloader.reload().await {
            tracing::error!(error = %err, "reload failed; the previous configuration stays in effect");
        }
    }
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
