//! Scrape configuration in prometheus.yml's format: `global`, `scrape_configs`,
//! `scrape_config_files`, and whole prometheus.yml files.
//!
//! Fields the appliance does not implement are kept aside and reported as warnings (never
//! silently ignored, never fatal): a prometheus.yml written for Prometheus loads, and
//! `check-config` says what of it has no effect here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use obs_core::units::{ByteSize, PromDuration};
use serde::Deserialize;

use crate::relabel::RelabelConfig;

/// Prometheus' `global:` section, the part that matters to scraping.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: PromDuration,
    /// Default scrape timeout (10s).
    #[serde(default = "default_scrape_timeout")]
    pub scrape_timeout: PromDuration,
    /// Rule evaluation interval (1m), for the rules engine.
    #[serde(default = "default_scrape_interval")]
    pub evaluation_interval: PromDuration,
    /// Labels added to every scraped sample that does not have them.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Everything else in `global:`.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

fn default_scrape_interval() -> PromDuration {
    PromDuration::from_secs(60)
}

fn default_scrape_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}

impl Default for GlobalConfig {
    fn default() -> GlobalConfig {
        GlobalConfig {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            evaluation_interval: default_scrape_interval(),
            external_labels: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

/// `basic_auth:`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (read at every scrape, as Prometheus does).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `authorization:`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme (`Bearer`).
    #[serde(default = "default_authorization_type", rename = "type")]
    pub kind: String,
    /// The credentials.
    #[serde(default)]
    pub credentials: Option<String>,
    /// A file holding the credentials.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn default_authorization_type() -> String {
    "Bearer".to_owned()
}

/// `tls_config:`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM) to verify the target with.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name to verify the target's certificate against.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Skip verifying the target's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (accepted for compatibility).
    #[serde(default)]
    pub min_version: Option<String>,
}

/// One entry of `static_configs:` (also the shape of file_sd files).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs:` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Globs of `.json`, `.yml` or `.yaml` files.
    pub files: Vec<String>,
    /// How often to re-read them even without a change (5m).
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: PromDuration,
}

fn default_refresh_interval() -> PromDuration {
    PromDuration::from_secs(300)
}

/// One `scrape_configs:` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ScrapeConfig {
    /// The job name (the `job` label).
    pub job_name: String,
    /// How often to scrape (the global default when absent).
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Per-scrape timeout (the global default, capped at the interval).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// The path (`/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// On a clash, keep the scraped labels (else they become `exported_*`).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use the timestamps of the exposition (else the scrape's time).
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// The `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Legacy bearer token file.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// Fixed targets.
    #[serde(default)]
    pub static_configs: Vec<TargetGroup>,
    /// Targets from files, watched for changes.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabeling of targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// A scrape with more samples (after metric relabeling) fails (0: no limit).
    #[serde(default)]
    pub sample_limit: usize,
    /// A sample with more labels fails the scrape (0: no limit).
    #[serde(default)]
    pub label_limit: usize,
    /// A longer label name fails the scrape (0: no limit).
    #[serde(default)]
    pub label_name_length_limit: usize,
    /// A longer label value fails the scrape (0: no limit).
    #[serde(default)]
    pub label_value_length_limit: usize,
    /// A larger (uncompressed) body fails the scrape (absent or 0: 64 MiB, unlike Prometheus'
    /// unlimited default, so that an endless body cannot exhaust memory).
    #[serde(default)]
    pub body_size_limit: Option<ByteSize>,
    /// Other fields (service discovery the appliance lacks, …): reported as warnings.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

fn default_scheme() -> String {
    "http".to_owned()
}

fn default_true() -> bool {
    true
}

/// A prometheus.yml, or the scrape part of the appliance's configuration.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PrometheusFile {
    /// `global:`.
    #[serde(default)]
    pub global: Option<GlobalConfig>,
    /// `scrape_configs:`.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `scrape_config_files:` (globs, relative to the file).
    #[serde(default)]
    pub scrape_config_files: Vec<String>,
    /// Other sections (`rule_files`, `alerting`, `remote_write`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

/// A scrape job with its defaults resolved and validated.
#[derive(Debug, Clone)]
pub struct Job {
    /// The configuration as written.
    pub config: ScrapeConfig,
    /// Milliseconds between scrapes.
    pub interval_ms: u64,
    /// Milliseconds before a scrape times out.
    pub timeout_ms: u64,
    /// Where the job came from (for messages).
    pub source: String,
}

/// Everything the scrape manager runs.
#[derive(Debug, Clone, Default)]
pub struct ScrapeSettings {
    /// The effective global section.
    pub global: GlobalConfig,
    /// Jobs in configuration order, names unique.
    pub jobs: Vec<Job>,
    /// What the configuration asks for that the appliance does not do.
    pub warnings: Vec<String>,
}

/// Why a scrape configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or the appliance configuration).
        path: String,
        /// What is wrong, with line and column where known.
        message: String,
    },
}

/// Top-level prometheus.yml sections the appliance takes elsewhere or not at all.
fn section_warning(name: &str) -> String {
    match name {
        "rule_files" => "section rule_files is not read from prometheus.yml; configure rules in the appliance's own configuration".to_owned(),
        "alerting" => "section alerting is not read from prometheus.yml: the appliance notifies through its built-in Alertmanager; to also send to external Alertmanagers, move the section into the appliance's own configuration".to_owned(),
        "remote_write" | "remote_read" => {
            format!("section {name} has no effect: the appliance stores the samples itself")
        }
        "storage" | "tracing" | "runtime" | "otlp" => {
            format!("section {name} has no effect: configure storage and limits in the appliance's own configuration")
        }
        other => format!("section {other} is not supported and has no effect"),
    }
}

impl ScrapeSettings {
    /// Resolves inline configuration (`global`, `scrape_configs`, `scrape_config_files` of the
    /// appliance's file, with `base_dir` for relative globs) into jobs.
    pub fn resolve(
        inline: &PrometheusFile,
        base_dir: &Path,
        source: &str,
    ) -> Result<ScrapeSettings, ConfigError> {
        let mut settings = ScrapeSettings {
            global: inline.global.clone().unwrap_or_default(),
            ..ScrapeSettings::default()
        };
        for name in inline.other.keys() {
            settings
                .warnings
                .push(format!("{source}: {}", section_warning(name)));
        }
        let mut raw_jobs: Vec<(ScrapeConfig, String)> = inline
            .scrape_configs
            .iter()
            .cloned()
            .map(|config| (config, source.to_owned()))
            .collect();
        let mut global_from_file: Option<GlobalConfig> = None;
        for pattern in &inline.scrape_config_files {
            for path in expand_glob(base_dir, pattern)? {
                let file = read_prometheus_file(&path)?;
                let label = path.display().to_string();
                for name in file.other.keys() {
                    settings
                        .warnings
                        .push(format!("{label}: {}", section_warning(name)));
                }
                if !file.scrape_config_files.is_empty() {
                    settings
                        .warnings
                        .push(format!("{label}: nested scrape_config_files are not followed"));
                }
                if let Some(global) = file.global {
                    if inline.global.is_none() && global_from_file.is_none() {
                        global_from_file = Some(global);
                    } else {
                        settings.warnings.push(format!(
                            "{label}: its global section is ignored: another global section applies"
                        ));
                    }
                }
                raw_jobs.extend(
                    file.scrape_configs
                        .into_iter()
                        .map(|config| (config, label.clone())),
                );
            }
        }
        if let Some(global) = global_from_file {
            settings.global = global;
        }
        for name in settings.global.other.keys() {
            settings
                .warnings
                .push(format!("global.{name} has no effect on scraping here"));
        }
        let global = settings.global.clone();
        for (config, origin) in raw_jobs {
            let job = resolve_job(config, &global, &origin, &mut settings.warnings)?;
            if settings
                .jobs
                .iter()
                .any(|existing| existing.config.job_name == job.config.job_name)
            {
                return Err(ConfigError::Invalid {
                    path: origin,
                    message: format!(
                        "found multiple scrape configs with job name {:?}",
                        job.config.job_name
                    ),
                });
            }
            settings.jobs.push(job);
        }
        Ok(settings)
    }
}

fn resolve_job(
    config: ScrapeConfig,
    global: &GlobalConfig,
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<Job, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        message: format!("job {:?}: {message}", config.job_name),
    };
    if config.job_name.is_empty() {
        return Err(ConfigError::Invalid {
            path: origin.to_owned(),
            message: "job_name is empty".to_owned(),
        });
    }
    if config.scheme != "http" && config.scheme != "https" {
        return Err(invalid(format!(
            "scheme must be http or https, not {:?}",
            config.scheme
        )));
    }
    if !config.metrics_path.starts_with('/') {
        return Err(invalid(format!(
            "metrics_path {:?} must start with /",
            config.metrics_path
        )));
    }
    let interval = config.scrape_interval.unwrap_or(global.scrape_interval).as_std();
    if interval.is_zero() {
        return Err(invalid("scrape_interval must be positive".to_owned()));
    }
    let timeout = match config.scrape_timeout {
        Some(timeout) => {
            if timeout.as_std() > interval {
                return Err(invalid(format!(
                    "scrape timeout greater than scrape interval ({} > {})",
                    timeout,
                    PromDuration::from_millis(interval.as_millis() as u64)
                )));
            }
            timeout.as_std()
        }
        // The global timeout, capped at the job's interval (Prometheus does the same).
        None => global.scrape_timeout.as_std().min(interval),
    };
    let auth_methods = [
        config.basic_auth.is_some(),
        config.authorization.is_some(),
        config.bearer_token.is_some() || config.bearer_token_file.is_some(),
    ];
    if auth_methods.iter().filter(|set| **set).count() > 1 {
        return Err(invalid(
            "at most one of basic_auth, authorization and bearer_token(_file) may be set".to_owned(),
        ));
    }
    for rule in config
        .relabel_configs
        .iter()
        .chain(&config.metric_relabel_configs)
    {
        rule.validate().map_err(|err| invalid(err.to_string()))?;
    }
    for name in config.other.keys() {
        warnings.push(format!(
            "{origin}: job {:?}: {name} is not supported and has no effect",
            config.job_name
        ));
    }
    for file_sd in &config.file_sd_configs {
        for pattern in &file_sd.files {
            let extension_ok = [".json", ".yml", ".yaml"]
                .iter()
                .any(|ext| pattern.ends_with(ext));
            if !extension_ok {
                return Err(invalid(format!(
                    "file_sd_configs: {pattern:?} must end in .json, .yml or .yaml"
                )));
            }
        }
    }
    Ok(Job {
        interval_ms: interval.as_millis() as u64,
        timeout_ms: timeout.as_millis() as u64,
        source: origin.to_owned(),
        config,
    })
}

/// Reads a prometheus.yml-shaped file.
pub fn read_prometheus_file(path: &Path) -> Result<PrometheusFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: path.to_owned(),
        message: err.to_string(),
    })?;
    serde_yaml::from_str(&text).map_err(|err| ConfigError::Invalid {
        path: path.display().to_string(),
        message: err.to_string(),
    })
}

/// Files matching a glob (`*` and `?` in the last path component, as Prometheus' file lists
/// are written), sorted; see [`obs_core::files::expand_glob`].
pub fn expand_glob(base_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, ConfigError> {
    obs_core::files::expand_glob(base_dir, pattern).map_err(|err| ConfigError::Read {
        path: base_dir.join(pattern),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> PrometheusFile {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_whole_prometheus_yml_loads_with_warnings_for_what_has_no_effect() {
        let file = parse(
            r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels: {cluster: homelab}
rule_files: [rules/*.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: [am:9093]}]}]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [192.168.1.52:9100, 192.168.1.72:9100]
        labels: {rack: a}
  - job_name: kube-state-metrics
    scrape_interval: 30s
    scrape_timeout: 5s
    kubernetes_sd_configs: [{role: pod}]
"#,
        );
        let settings = ScrapeSettings::resolve(&file, Path::new("/"), "prometheus.yml").unwrap();
        assert_eq!(settings.jobs.len(), 2);
        assert_eq!(settings.jobs[0].interval_ms, 15_000);
        assert_eq!(settings.jobs[0].timeout_ms, 10_000);
        assert_eq!(settings.jobs[1].interval_ms, 30_000);
        assert_eq!(settings.jobs[1].timeout_ms, 5_000);
        let warnings = settings.warnings.join("\n");
        assert!(warnings.contains("rule_files"), "{warnings}");
        assert!(warnings.contains("alerting"), "{warnings}");
        assert!(
            warnings.contains("kubernetes_sd_configs is not supported"),
            "{warnings}"
        );
        assert_eq!(settings.global.external_labels["cluster"], "homelab");
    }

    #[test]
    fn invalid_jobs_are_refused_with_the_job_named() {
        let cases = [
            (
                "scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 10s}]",
                "scrape timeout greater than scrape interval",
            ),
            (
                "scrape_configs: [{job_name: a}, {job_name: a}]",
                "multiple scrape configs with job name \"a\"",
            ),
            (
                "scrape_configs: [{job_name: a, scheme: ftp}]",
                "scheme must be http or https",
            ),
            (
                "scrape_configs: [{job_name: a, basic_auth: {username: u}, bearer_token: t}]",
                "at most one of basic_auth",
            ),
        ];
        for (yaml, expected) in cases {
            let err = ScrapeSettings::resolve(&parse(yaml), Path::new("/"), "config.yaml").unwrap_err();
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
        // The default timeout is capped at a shorter interval.
        let settings = ScrapeSettings::resolve(
            &parse("scrape_configs: [{job_name: a, scrape_interval: 5s}]"),
            Path::new("/"),
            "config.yaml",
        )
        .unwrap();
        assert_eq!(settings.jobs[0].timeout_ms, 5_000);
    }

    #[test]
    fn scrape_config_files_bring_jobs_and_their_global() {
        let dir = tempfile_dir();
        std::fs::write(
            dir.join("prometheus.yml"),
            "global: {scrape_interval: 20s}\nscrape_configs: [{job_name: from-file}]\nremote_write: [{url: x}]\n",
        )
        .unwrap();
        let inline = parse("scrape_config_files: [prom*.yml]\nscrape_configs: [{job_name: inline}]");
        let settings = ScrapeSettings::resolve(&inline, &dir, "config.yaml").unwrap();
        let names: Vec<&str> = settings
            .jobs
            .iter()
            .map(|job| job.config.job_name.as_str())
            .collect();
        assert_eq!(names, ["inline", "from-file"]);
        assert_eq!(settings.jobs[1].interval_ms, 20_000);
        assert!(settings.warnings.join("\n").contains("remote_write"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("obs-scrape-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
