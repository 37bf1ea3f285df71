//! The configuration file: its shape, its defaults and its validation.
//!
//! Parsing reports the file, line, column and key of the first problem (serde_yaml carries the
//! location; every value type parses inside deserialization so its errors carry it too).
//! Unknown keys are errors everywhere.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use obs_core::units::{ByteSize, DiskBudget, PromDuration};
use obs_core::wal::FsyncPolicy;
use serde::Deserialize;

/// The embedded default configuration, printed by `obs-appliance config default`.
pub(crate) const DEFAULT_CONFIG_YAML: &str = include_str!("../default-config.yaml");

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Listeners.
    #[serde(default)]
    pub(crate) server: ServerConfig,
    /// Data directory, retention, disk budget, write-ahead log.
    #[serde(default)]
    pub(crate) storage: StorageConfig,
    /// Request size limits.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    /// The metrics store: ingest rules and the cardinality guard.
    #[serde(default)]
    pub(crate) metrics: MetricsConfig,
    /// PromQL queries: lookback, limits.
    #[serde(default)]
    pub(crate) query: QueryConfig,
    /// The log store: ingest limits, correlation keys, Loki 3's label discovery.
    #[serde(default)]
    pub(crate) logs: LogsConfig,
    /// The span store and the span metrics generated from it.
    #[serde(default)]
    pub(crate) traces: TracesConfig,
    /// Logging.
    #[serde(default)]
    pub(crate) log: LogConfig,
    /// Prometheus' `global:` section (scrape interval and timeout defaults).
    #[serde(default)]
    pub(crate) global: Option<serde_yaml::Value>,
    /// Prometheus `scrape_configs:`, inline.
    #[serde(default)]
    pub(crate) scrape_configs: Vec<serde_yaml::Value>,
    /// Files (globs) holding `scrape_configs:`, or whole prometheus.yml files.
    #[serde(default)]
    pub(crate) scrape_config_files: Vec<String>,
    /// Prometheus-format rule files (globs), alerting and recording rules over PromQL.
    #[serde(default)]
    pub(crate) rule_files: Vec<String>,
    /// Loki-ruler rule files (globs): the same format with LogQL metric queries as
    /// expressions, evaluated over the log store; alerts and recorded series as for
    /// `rule_files`.
    #[serde(default)]
    pub(crate) log_rule_files: Vec<String>,
    /// Whether the default alert pack (target down, disks, Traefik 5xx, the appliance's own
    /// health; `deploy/rules/`) runs besides `rule_files`. On in the embedded default, off
    /// unless set in a configuration file.
    #[serde(default)]
    pub(crate) default_alert_pack: bool,
    /// The built-in Alertmanager: routing and receivers in alertmanager.yml's format.
    #[serde(default)]
    pub(crate) alertmanager: AlertmanagerSection,
    /// Prometheus' `alerting:`: external Alertmanagers that get the rules' alerts too.
    #[serde(default)]
    pub(crate) alerting: AlertingSection,
    /// Where the configuration came from (`None`: the embedded default), for reloads.
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
}

/// The routing of the built-in Alertmanager when none is configured: alerts are listed by
/// the API (and Grafana) but sent nowhere.
pub(crate) const DEFAULT_ALERTMANAGER_YAML: &str =
    "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// `alertmanager:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertmanagerSection {
    /// An alertmanager.yml (relative to this file).
    #[serde(default)]
    pub(crate) config_file: Option<String>,
    /// alertmanager.yml's content, inline.
    #[serde(default)]
    pub(crate) config: Option<serde_yaml::Value>,
    /// The URL users reach the appliance at (links in notifications); default
    /// `http://<server.listen>`.
    #[serde(default)]
    pub(crate) external_url: Option<String>,
    /// Least time between two sends of an unchanged firing alert to the Alertmanager.
    #[serde(default = "default_resend_delay")]
    pub(crate) resend_delay: PromDuration,
}

fn default_true() -> bool {
    true
}

fn default_resend_delay() -> PromDuration {
    PromDuration::from_millis(60_000)
}

impl Default for AlertmanagerSection {
    fn default() -> AlertmanagerSection {
        AlertmanagerSection {
            config_file: None,
            config: None,
            external_url: None,
            resend_delay: default_resend_delay(),
        }
    }
}

/// `alerting:` as in prometheus.yml (the parts that apply here).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertingSection {
    /// External Alertmanagers.
    #[serde(default)]
    pub(crate) alertmanagers: Vec<ExternalAlertmanager>,
}

/// One `alerting.alertmanagers` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalAlertmanager {
    /// `host:port` of each Alertmanager.
    #[serde(default)]
    pub(crate) static_configs: Vec<StaticAlertmanagers>,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub(crate) scheme: String,
    /// Prefix of the API path.
    #[serde(default)]
    pub(crate) path_prefix: String,
    /// Only `v2` (Alertmanager ≥ 0.16).
    #[serde(default = "default_api_version")]
    pub(crate) api_version: String,
    /// Per-request timeout.
    #[serde(default = "default_alertmanager_timeout")]
    pub(crate) timeout: PromDuration,
    /// Basic authentication.
    #[serde(default)]
    pub(crate) basic_auth: Option<ExternalBasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub(crate) authorization: Option<ExternalAuthorization>,
    /// TLS.
    #[serde(default)]
    pub(crate) tls_config: Option<ExternalTls>,
}

/// `static_configs` entry of an external Alertmanager.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticAlertmanagers {
    pub(crate) targets: Vec<String>,
}

/// `basic_auth`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalBasicAuth {
    pub(crate) username: String,
    #[serde(default)]
    pub(crate) password: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<PathBuf>,
}

/// `authorization`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalAuthorization {
    #[serde(default = "default_auth_type", rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) credentials: Option<String>,
    #[serde(default)]
    pub(crate) credentials_file: Option<PathBuf>,
}

/// `tls_config`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalTls {
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) cert_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) insecure_skip_verify: bool,
}

fn default_scheme() -> String {
    "http".to_owned()
}

fn default_api_version() -> String {
    "v2".to_owned()
}

fn default_auth_type() -> String {
    "Bearer".to_owned()
}

fn default_alertmanager_timeout() -> PromDuration {
    PromDuration::from_millis(10_000)
}

/// `query:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryConfig {
    /// How far back an instant selector looks for a sample.
    #[serde(default = "default_lookback_delta")]
    pub(crate) lookback_delta: PromDuration,
    /// How long a query may run.
    #[serde(default = "default_query_timeout")]
    pub(crate) timeout: PromDuration,
    /// The most samples one query may hold in memory.
    #[serde(default = "default_max_samples")]
    pub(crate) max_samples: usize,
    /// Queries running at once; more wait for a slot.
    #[serde(default = "default_max_concurrency")]
    pub(crate) max_concurrency: usize,
}

fn default_lookback_delta() -> PromDuration {
    PromDuration::from_secs(300)
}

fn default_query_timeout() -> PromDuration {
    PromDuration::from_secs(120)
}

fn default_max_samples() -> usize {
    50_000_000
}

fn default_max_concurrency() -> usize {
    20
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            lookback_delta: default_lookback_delta(),
            timeout: default_query_timeout(),
            max_samples: default_max_samples(),
            max_concurrency: default_max_concurrency(),
        }
    }
}

/// `server:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// The main address; every API is served here.
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    /// More addresses serving the same APIs.
    #[serde(default)]
    pub(crate) extra_listeners: Vec<ListenerConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: default_listen(),
            extra_listeners: Vec::new(),
        }
    }
}

/// One entry of `server.extra_listeners`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerConfig {
    /// The address.
    pub(crate) listen: SocketAddr,
}

/// `storage:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageConfig {
    /// The data directory.
    #[serde(default = "default_data_path")]
    pub(crate) path: PathBuf,
    /// Retention per signal.
    #[serde(default)]
    pub(crate) retention: RetentionConfig,
    /// The most the data directory may use.
    #[serde(default = "default_disk_budget")]
    pub(crate) disk_budget: DiskBudget,
    /// Free space always left on the filesystem.
    #[serde(default = "default_min_free_disk")]
    pub(crate) min_free_disk: ByteSize,
    /// The write-ahead log.
    #[serde(default)]
    pub(crate) wal: WalConfig,
}

fn default_data_path() -> PathBuf {
    PathBuf::from("./data")
}

fn default_disk_budget() -> DiskBudget {
    DiskBudget::PercentOfFilesystem(80.0)
}

fn default_min_free_disk() -> ByteSize {
    ByteSize::gib(1)
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            path: default_data_path(),
            retention: RetentionConfig::default(),
            disk_budget: default_disk_budget(),
            min_free_disk: default_min_free_disk(),
            wal: WalConfig::default(),
        }
    }
}

/// `storage.retention:`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionConfig {
    /// Metrics retention (default 15d).
    #[serde(default = "default_metrics_retention")]
    pub(crate) metrics: PromDuration,
    /// Logs retention (default 14d).
    #[serde(default = "default_logs_retention")]
    pub(crate) logs: PromDuration,
    /// Traces retention (default 7d).
    #[serde(default = "default_traces_retention")]
    pub(crate) traces: PromDuration,
}

fn default_metrics_retention() -> PromDuration {
    PromDuration::from_days(15)
}

fn default_logs_retention() -> PromDuration {
    PromDuration::from_days(14)
}

fn default_traces_retention() -> PromDuration {
    PromDuration::from_days(7)
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            metrics: default_metrics_retention(),
            logs: default_logs_retention(),
            traces: default_traces_retention(),
        }
    }
}

/// `storage.wal:`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct WalConfig {
    /// `always` or a duration.
    #[serde(default)]
    pub(crate) fsync: FsyncSetting,
    /// Segment size.
    #[serde(default = "default_segment_size")]
    pub(crate) segment_size: ByteSize,
}

fn default_segment_size() -> ByteSize {
    ByteSize::mib(64)
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            fsync: FsyncSetting::default(),
            segment_size: default_segment_size(),
        }
    }
}

/// `storage.wal.fsync`: `always` or an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsyncSetting(pub FsyncPolicy);

impl Default for FsyncSetting {
    fn default() -> FsyncSetting {
        FsyncSetting(FsyncPolicy::Always)
    }
}

impl FromStr for FsyncSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<FsyncSetting, String> {
        if text == "always" {
            return Ok(FsyncSetting(FsyncPolicy::Always));
        }
        let interval: PromDuration = text.parse().map_err(|_| {
            format!("{text:?} is not a valid fsync policy: use always or a duration such as 1s")
        })?;
        if interval.as_std().is_zero() {
            return Ok(FsyncSetting(FsyncPolicy::Always));
        }
        Ok(FsyncSetting(FsyncPolicy::Interval(interval.as_std())))
    }
}

impl<'de> Deserialize<'de> for FsyncSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FsyncSetting, D::Error> {
        obs_core::units::deserialize_from_str(deserializer)
    }
}

/// `metrics:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// How far behind a series' newest sample a sample may still arrive.
    #[serde(default = "default_out_of_order_window")]
    pub(crate) out_of_order_window: PromDuration,
    /// Label names refused on metrics: high-cardinality correlation keys belong in logs and
    /// traces.
    #[serde(default = "default_denied_labels")]
    pub(crate) denied_labels: Vec<String>,
    /// The most series the store holds.
    #[serde(default = "default_max_series")]
    pub(crate) max_series: usize,
    /// The most series one metric name may have.
    #[serde(default = "default_max_series_per_metric")]
    pub(crate) max_series_per_metric: usize,
    /// Put `otel_scope_name` / `otel_scope_version` on series received over OTLP.
    #[serde(default = "default_true")]
    pub(crate) otlp_scope_labels: bool,
}

fn default_out_of_order_window() -> PromDuration {
    PromDuration::from_secs(3600)
}

fn default_denied_labels() -> Vec<String> {
    ["run_id", "session_id", "task_id", "trace_id", "span_id"]
        .map(String::from)
        .to_vec()
}

fn default_max_series() -> usize {
    2_000_000
}

fn default_max_series_per_metric() -> usize {
    200_000
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            out_of_order_window: default_out_of_order_window(),
            denied_labels: default_denied_labels(),
            max_series: default_max_series(),
            max_series_per_metric: default_max_series_per_metric(),
            otlp_scope_labels: true,
        }
    }
}

/// `logs:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsConfig {
    /// The longest line accepted (Loki's `max_line_size`).
    #[serde(default = "default_max_line_size")]
    pub(crate) max_line_size: ByteSize,
    /// The most labels a stream may have (Loki's `max_label_names_per_series`).
    #[serde(default = "default_max_label_names")]
    pub(crate) max_label_names_per_stream: usize,
    /// The most streams the store holds; entries of new streams beyond it are refused.
    #[serde(default = "default_max_streams")]
    pub(crate) max_streams: usize,
    /// Keys indexed as exact terms, from stream labels, structured metadata or the top-level
    /// fields of JSON and logfmt lines: `| json | run_id="r-1"` is then an index lookup.
    #[serde(default = "default_correlation_keys")]
    pub(crate) correlation_keys: Vec<String>,
    /// Add `service_name` to streams without it, as Loki 3 does.
    #[serde(default = "default_true")]
    pub(crate) discover_service_name: bool,
    /// Add `detected_level` to entries' structured metadata, as Loki 3 does.
    #[serde(default = "default_true")]
    pub(crate) discover_log_levels: bool,
    /// How often entries move from memory into the day indexes (they are queryable at once
    /// either way; this bounds the write-ahead log and the memory held).
    #[serde(default = "default_logs_flush_interval")]
    pub(crate) flush_interval: PromDuration,
}

fn default_max_line_size() -> ByteSize {
    ByteSize::kib(256)
}

fn default_max_label_names() -> usize {
    15
}

fn default_max_streams() -> usize {
    100_000
}

fn default_correlation_keys() -> Vec<String> {
    obs_logs::keys::DEFAULT_CORRELATION_KEYS
        .map(String::from)
        .to_vec()
}

fn default_logs_flush_interval() -> PromDuration {
    PromDuration::from_secs(10)
}

impl Default for LogsConfig {
    fn default() -> LogsConfig {
        LogsConfig {
            max_line_size: default_max_line_size(),
            max_label_names_per_stream: default_max_label_names(),
            max_streams: default_max_streams(),
            correlation_keys: default_correlation_keys(),
            discover_service_name: true,
            discover_log_levels: true,
            flush_interval: default_logs_flush_interval(),
        }
    }
}

/// `traces:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TracesConfig {
    /// How often spans move from memory into the day indexes (they are queryable at once
    /// either way; this bounds the write-ahead log and the memory held).
    #[serde(default = "default_traces_flush_interval")]
    pub(crate) flush_interval: PromDuration,
    /// Generate Tempo's span metrics (`traces_spanmetrics_*`) into the metrics store.
    #[serde(default = "default_true")]
    pub(crate) span_metrics: bool,
    /// Generate Tempo's service graph (`traces_service_graph_*`) into the metrics store.
    #[serde(default = "default_true")]
    pub(crate) service_graph: bool,
    /// Span or resource attributes added as labels to the span metrics (never the
    /// correlation keys: they would make a series per run).
    #[serde(default)]
    pub(crate) span_metrics_dimensions: Vec<String>,
    /// How often the generated series are written to the metrics store (Tempo's
    /// `collection_interval`).
    #[serde(default = "default_metrics_collection_interval")]
    pub(crate) metrics_collection_interval: PromDuration,
}

fn default_metrics_collection_interval() -> PromDuration {
    PromDuration::from_secs(15)
}

fn default_traces_flush_interval() -> PromDuration {
    PromDuration::from_secs(10)
}

impl Default for TracesConfig {
    fn default() -> TracesConfig {
        TracesConfig {
            flush_interval: default_traces_flush_interval(),
            span_metrics: true,
            service_graph: true,
            span_metrics_dimensions: Vec::new(),
            metrics_collection_interval: default_metrics_collection_interval(),
        }
    }
}

/// `limits:`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// The largest request body, as sent.
    #[serde(default = "default_max_request_body")]
    pub(crate) max_request_body: ByteSize,
    /// The largest body after decompression.
    #[serde(default = "default_max_decompressed_body")]
    pub(crate) max_decompressed_body: ByteSize,
}

fn default_max_request_body() -> ByteSize {
    ByteSize::mib(32)
}

fn default_max_decompressed_body() -> ByteSize {
    ByteSize::mib(64)
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_request_body: default_max_request_body(),
            max_decompressed_body: default_max_decompressed_body(),
        }
    }
}

/// `log:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// A tracing filter: `info`, `debug`, `info,obs_core=debug`.
    #[serde(default = "default_log_level")]
    pub(crate) level: String,
    /// Output format.
    #[serde(default)]
    pub(crate) format: LogFormat,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines with `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why a configuration was refused. The message names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema.
    #[error("config file {origin}: {message}")]
    Parse {
        /// The file, or "embedded default".
        origin: String,
        /// What serde_yaml said, with key path, line and column.
        message: String,
    },
    /// Values parse but do not make sense together.
    #[error("config file {origin}: {key}: {message}")]
    Invalid {
        /// The file, or "embedded default".
        origin: String,
        /// The key, as a dotted path.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl Config {
    /// The scrape jobs of this configuration (its `global`, `scrape_configs` and
    /// `scrape_config_files`; relative file globs are relative to `base_dir`).
    pub(crate) fn scrape_settings(
        &self,
        origin: &str,
        base_dir: &Path,
    ) -> Result<obs_scrape::config::ScrapeSettings, ConfigError> {
        let mut mapping = serde_yaml::Mapping::new();
        if let Some(global) = &self.global {
            mapping.insert("global".into(), global.clone());
        }
        mapping.insert(
            "scrape_configs".into(),
            serde_yaml::Value::Sequence(self.scrape_configs.clone()),
        );
        let files = self
            .scrape_config_files
            .iter()
            .map(|file| serde_yaml::Value::String(file.clone()))
            .collect();
        mapping.insert("scrape_config_files".into(), serde_yaml::Value::Sequence(files));
        let file: obs_scrape::config::PrometheusFile =
            serde_yaml::from_value(serde_yaml::Value::Mapping(mapping)).map_err(|err| {
                ConfigError::Parse {
                    origin: origin.to_owned(),
                    message: format!("scrape configuration: {err}"),
                }
            })?;
        obs_scrape::config::ScrapeSettings::resolve(&file, base_dir, origin).map_err(|err| {
            ConfigError::Parse {
                origin: origin.to_owned(),
                message: err.to_string(),
            }
        })
    }

    /// The rule groups of `rule_files` and `log_rule_files`, validated (file, group, rule and
    /// reason on error).
    pub(crate) fn rule_groups(
        &self,
        origin: &str,
        base_dir: &Path,
        settings: &obs_scrape::config::ScrapeSettings,
    ) -> Result<Vec<obs_rules::group::Group>, ConfigError> {
        let interval_ms = settings.global.evaluation_interval.as_std().as_millis() as i64;
        let mut groups =
            obs_rules::manager::load_groups(&self.rule_files, base_dir, interval_ms).map_err(|err| {
                ConfigError::Parse {
                    origin: origin.to_owned(),
                    message: format!("rule_files: {err}"),
                }
            })?;
        groups.extend(
            obs_rules::manager::load_groups_as(
                &self.log_rule_files,
                base_dir,
                interval_ms,
                obs_rules::file::QueryLanguage::LogQL,
            )
            .map_err(|err| ConfigError::Parse {
                origin: origin.to_owned(),
                message: format!("log_rule_files: {err}"),
            })?,
        );
        if self.default_alert_pack {
            groups.extend(
                obs_rules::manager::default_alert_pack(interval_ms).map_err(|err| ConfigError::Parse {
                    origin: origin.to_owned(),
                    message: format!("default_alert_pack: {err}"),
                })?,
            );
        }
        Ok(groups)
    }

    /// Reads and validates a configuration file.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The embedded default configuration.
    pub(crate) fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG_YAML, "(embedded default)")
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let only_comments = text
            .lines()
            .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'));
        let config = if only_comments {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|err| ConfigError::Parse {
                origin: origin.to_owned(),
                message: err.to_string(),
            })?
        };
        config.validate(origin)?;
        let base_dir = Path::new(origin).parent().unwrap_or(Path::new("."));
        let settings = config.scrape_settings(origin, base_dir)?;
        config.rule_groups(origin, base_dir, &settings)?;
        config.alertmanager_config(origin, base_dir)?;
        config.forward_targets(origin, base_dir)?;
        Ok(config)
    }

    /// The external Alertmanagers of `alerting.alertmanagers`, credentials and certificates
    /// read (relative paths from `base_dir`).
    pub(crate) fn forward_targets(
        &self,
        origin: &str,
        base_dir: &Path,
    ) -> Result<Vec<obs_alertmanager::forward::ForwardTarget>, ConfigError> {
        let mut targets = Vec::new();
        for (index, entry) in self.alerting.alertmanagers.iter().enumerate() {
            let key = format!("alerting.alertmanagers[{index}]");
            let invalid = |field: &str, message: String| ConfigError::Invalid {
                origin: origin.to_owned(),
                key: format!("{key}{field}"),
                message,
            };
            if entry.api_version != "v2" {
                return Err(invalid(
                    ".api_version",
                    format!(
                        "{:?}: only v2 is supported (Alertmanager 0.16 and later)",
                        entry.api_version
                    ),
                ));
            }
            if entry.scheme != "http" && entry.scheme != "https" {
                return Err(invalid(
                    ".scheme",
                    format!("{:?}: use http or https", entry.scheme),
                ));
            }
            let read = |field: &str, path: &Path| -> Result<Vec<u8>, ConfigError> {
                std::fs::read(base_dir.join(path))
                    .map_err(|err| invalid(field, format!("cannot read {}: {err}", path.display())))
            };
            let text = |field: &str, path: &Path| -> Result<String, ConfigError> {
                read(field, path).map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            };
            let authorization = match (&entry.basic_auth, &entry.authorization) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "",
                        "set basic_auth or authorization, not both".to_owned(),
                    ));
                }
                (Some(basic), None) => {
                    let password = match (&basic.password, &basic.password_file) {
                        (_, Some(file)) => text(".basic_auth.password_file", file)?,
                        (Some(password), None) => password.clone(),
                        (None, None) => String::new(),
                    };
                    Some(format!(
                        "Basic {}",
                        obs_core::httpclient::base64(format!("{}:{password}", basic.username).as_bytes())
                    ))
                }
                (None, Some(auth)) => {
                    let credentials = match (&auth.credentials, &auth.credentials_file) {
                        (_, Some(file)) => text(".authorization.credentials_file", file)?,
                        (Some(credentials), None) => credentials.clone(),
                        (None, None) => String::new(),
                    };
                    Some(format!("{} {credentials}", auth.kind))
                }
                (None, None) => None,
            };
            let tls = entry.tls_config.clone().unwrap_or_default();
            let ca_pem = tls
                .ca_file
                .as_ref()
                .map(|file| read(".tls_config.ca_file", file))
                .transpose()?;
            let client_pem = match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => Some((
                    read(".tls_config.cert_file", cert)?,
                    read(".tls_config.key_file", key)?,
                )),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        ".tls_config",
                        "cert_file and key_file go together".to_owned(),
                    ));
                }
            };
            let prefix = entry.path_prefix.trim_end_matches('/');
            for group in &entry.static_configs {
                for target in &group.targets {
                    targets.push(obs_alertmanager::forward::ForwardTarget {
                        url: format!("{}://{target}{prefix}/api/v2/alerts", entry.scheme),
                        timeout: entry.timeout.as_std(),
                        authorization: authorization.clone(),
                        ca_pem: ca_pem.clone(),
                        client_pem: client_pem.clone(),
                        insecure_skip_verify: tls.insecure_skip_verify,
                    });
                }
            }
        }
        Ok(targets)
    }

    /// The built-in Alertmanager's configuration: `alertmanager.config_file`,
    /// `alertmanager.config`, or a single receiver that sends nothing.
    pub(crate) fn alertmanager_config(
        &self,
        origin: &str,
        base_dir: &Path,
    ) -> Result<obs_alertmanager::config::Config, ConfigError> {
        let section = &self.alertmanager;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let config = match (&section.config_file, &section.config) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "alertmanager",
                    "set config_file or config, not both".to_owned(),
                ));
            }
            (Some(file), None) => {
                let path = base_dir.join(file);
                obs_alertmanager::config::Config::load_file(&path).map_err(|err| {
                    invalid("alertmanager.config_file", format!("{}: {err}", path.display()))
                })?
            }
            (None, Some(inline)) => {
                let text = serde_yaml::to_string(inline)
                    .map_err(|err| invalid("alertmanager.config", err.to_string()))?;
                obs_alertmanager::config::Config::parse(&text)
                    .map_err(|err| invalid("alertmanager.config", err.to_string()))?
            }
            (None, None) => obs_alertmanager::config::Config::parse(DEFAULT_ALERTMANAGER_YAML)
                .map_err(|err| invalid("alertmanager", err.to_string()))?,
        };
        let key = if section.config_file.is_some() {
            "alertmanager.config_file"
        } else {
            "alertmanager.config"
        };
        obs_alertmanager::service::check_supported(&config).map_err(|err| invalid(key, err.to_string()))?;
        if let Some(url) = &section.external_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "alertmanager.external_url",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        for (index, extra) in self.server.extra_listeners.iter().enumerate() {
            if extra.listen == self.server.listen {
                return Err(invalid(
                    format!("server.extra_listeners[{index}].listen"),
                    format!("{} is already server.listen; remove the duplicate", extra.listen),
                ));
            }
            if let Some(earlier) = self.server.extra_listeners[..index]
                .iter()
                .position(|other| other.listen == extra.listen)
            {
                return Err(invalid(
                    format!("server.extra_listeners[{index}].listen"),
                    format!(
                        "{} is already server.extra_listeners[{earlier}]; remove the duplicate",
                        extra.listen
                    ),
                ));
            }
        }
        for (key, retention) in [
            ("storage.retention.metrics", self.storage.retention.metrics),
            ("storage.retention.logs", self.storage.retention.logs),
            ("storage.retention.traces", self.storage.retention.traces),
        ] {
            if retention.as_std() < Duration::from_secs(3600) {
                return Err(invalid(
                    key.to_owned(),
                    format!("retention {retention} is too short; use at least 1h"),
                ));
            }
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path".to_owned(), "must not be empty".to_owned()));
        }
        for (index, dimension) in self.traces.span_metrics_dimensions.iter().enumerate() {
            if self
                .metrics
                .denied_labels
                .iter()
                .any(|denied| denied == dimension)
            {
                return Err(invalid(
                    format!("traces.span_metrics_dimensions[{index}]"),
                    format!(
                        "{dimension} is a correlation key (metrics.denied_labels): as a label it would make a series per value; find it in traces and logs instead"
                    ),
                ));
            }
        }
        for (key, interval) in [
            ("traces.flush_interval", self.traces.flush_interval),
            (
                "traces.metrics_collection_interval",
                self.traces.metrics_collection_interval,
            ),
        ] {
            if interval.as_std() < Duration::from_secs(1) {
                return Err(invalid(
                    key.to_owned(),
                    format!("{interval} is too short; use at least 1s"),
                ));
            }
        }
        if self.storage.wal.segment_size < ByteSize::mib(1) {
            return Err(invalid(
                "storage.wal.segment_size".to_owned(),
                format!(
                    "{} is too small; use at least 1MiB",
                    self.storage.wal.segment_size
                ),
            ));
        }
        if self.limits.max_request_body.bytes() == 0 {
            return Err(invalid(
                "limits.max_request_body".to_owned(),
                "must be more than 0".to_owned(),
            ));
        }
        if self.limits.max_decompressed_body < self.limits.max_request_body {
            return Err(invalid(
                "limits.max_decompressed_body".to_owned(),
                format!(
                    "{} is smaller than limits.max_request_body ({}); raise it",
                    self.limits.max_decompressed_body, self.limits.max_request_body
                ),
            ));
        }
        for (index, name) in self.metrics.denied_labels.iter().enumerate() {
            if !obs_core::series::is_valid_label_name(name) {
                return Err(invalid(
                    format!("metrics.denied_labels[{index}]"),
                    format!("{name:?} is not a valid label name"),
                ));
            }
        }
        if self.metrics.max_series == 0 || self.metrics.max_series_per_metric == 0 {
            return Err(invalid(
                "metrics.max_series".to_owned(),
                "series limits must be more than 0".to_owned(),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level".to_owned(),
                format!(
                    "{:?} is not a log level; use error, warn, info, debug or trace",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// The retention of a signal.
    pub(crate) fn retention(&self, signal: obs_core::Signal) -> Duration {
        let retention = &self.storage.retention;
        match signal {
            obs_core::Signal::Metrics => retention.metrics.as_std(),
            obs_core::Signal::Logs => retention.logs.as_std(),
            obs_core::Signal::Traces => retention.traces.as_std(),
        }
    }

    /// Every address to listen on, with the key that configures it (for error messages).
    pub(crate) fn listen_addresses(&self) -> Vec<(String, SocketAddr)> {
        let mut addresses = vec![("server.listen".to_owned(), self.server.listen)];
        for (index, extra) in self.server.extra_listeners.iter().enumerate() {
            addresses.push((format!("server.extra_listeners[{index}].listen"), extra.listen));
        }
        addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses_and_matches_the_documented_defaults() {
        let config = Config::embedded_default().unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:9090".parse().unwrap());
        let extra: Vec<String> = config
            .server
            .extra_listeners
            .iter()
            .map(|l| l.listen.to_string())
            .collect();
        assert_eq!(extra, ["127.0.0.1:4317", "127.0.0.1:4318"]);
        // The default scrapes the appliance itself, every 15 s.
        let settings = config
            .scrape_settings("(embedded default)", Path::new("/"))
            .unwrap();
        assert_eq!(settings.jobs.len(), 1);
        assert_eq!(settings.jobs[0].config.job_name, "obs-appliance");
        assert_eq!(settings.jobs[0].interval_ms, 15_000);
        assert_eq!(
            settings.jobs[0].config.static_configs[0].targets,
            ["127.0.0.1:9090"]
        );
        assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
        // The default alert pack runs, and every group of it loads.
        assert!(config.default_alert_pack);
        let groups = config
            .rule_groups("(embedded default)", Path::new("/"), &settings)
            .unwrap();
        assert!(groups.len() >= 4, "{} groups", groups.len());
        // Apart from the extra listeners, the self-scrape and the alert pack, the file says
        // exactly what the code defaults are.
        let mut without_extras = config.clone();
        without_extras.server.extra_listeners.clear();
        without_extras.global = None;
        without_extras.scrape_configs.clear();
        without_extras.default_alert_pack = false;
        assert_eq!(without_extras, Config::default());
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = Config::parse("server:\n  listen: 127.0.0.1:9090\n  lisen: 1\n", "a.yaml").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("a.yaml"), "{message}");
        assert!(message.contains("lisen"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let err = Config::parse("storage:\n  retention:\n    metrics: 15 days\n", "b.yaml").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("storage.retention.metrics"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("not a valid duration"), "{message}");

        let err = Config::parse("storage:\n  wal:\n    fsync: sometimes\n", "c.yaml").unwrap_err();
        assert!(err.to_string().contains("storage.wal.fsync"), "{err}");

        let err = Config::parse("server:\n  listen: localhost\n", "d.yaml").unwrap_err();
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let err = Config::parse(
            "server:\n  listen: 127.0.0.1:9090\n  extra_listeners:\n    - listen: 127.0.0.1:9090\n",
            "e.yaml",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("server.extra_listeners[0].listen"),
            "{err}"
        );
        let err = Config::parse("storage:\n  retention:\n    traces: 1m\n", "f.yaml").unwrap_err();
        assert!(err.to_string().contains("storage.retention.traces"), "{err}");
    }

    #[test]
    fn an_empty_file_means_defaults_and_values_parse() {
        assert_eq!(
            Config::parse("# nothing\n\n", "g.yaml").unwrap(),
            Config::default()
        );
        let config = Config::parse(
            "storage:\n  disk_budget: 200GiB\n  wal:\n    fsync: 1s\nlog:\n  format: json\n",
            "h.yaml",
        )
        .unwrap();
        assert_eq!(config.storage.disk_budget, DiskBudget::Size(ByteSize::gib(200)));
        assert_eq!(
            config.storage.wal.fsync.0,
            FsyncPolicy::Interval(Duration::from_secs(1))
        );
        assert_eq!(config.log.format, LogFormat::Json);
    }
}
