//! Targets: from target groups through `relabel_configs` to the labels and URL a scrape loop
//! uses, as Prometheus 2.42's `PopulateLabels` does.

use std::collections::BTreeMap;
use std::sync::Mutex;

use obs_core::series::{Labels, MetricMetadata};
use obs_core::units::PromDuration;

use crate::config::{Job, TargetGroup};
use crate::relabel;

const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";
const META_PREFIX: &str = "__meta_";

/// A target to scrape.
#[derive(Debug)]
pub struct Target {
    /// The labels before relabeling (`discoveredLabels` in the API).
    pub discovered: BTreeMap<String, String>,
    /// The labels after relabeling, `__` labels included.
    pub all_labels: BTreeMap<String, String>,
    /// The labels every sample of the target gets (no `__` labels).
    pub labels: Labels,
    /// The URL scraped.
    pub url: String,
    /// The job (scrape pool).
    pub pool: String,
    /// Milliseconds between scrapes.
    pub interval_ms: u64,
    /// Milliseconds before a scrape times out.
    pub timeout_ms: u64,
    /// What the last scrape found.
    pub status: Mutex<TargetStatus>,
    /// Metric families the target described in its last successful scrape.
    pub metadata: Mutex<Vec<(String, MetricMetadata)>>,
}

/// The outcome of a target's last scrape.
#[derive(Debug, Clone, Default)]
pub struct TargetStatus {
    /// `up`, `down`, or `unknown` before the first scrape.
    pub health: Health,
    /// The error of the last scrape (empty when it succeeded).
    pub last_error: String,
    /// When the last scrape started (ms), if any.
    pub last_scrape_ms: Option<i64>,
    /// How long it took (seconds).
    pub last_duration_seconds: f64,
}

/// A target's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What relabeling made of one discovered target.
#[derive(Debug)]
pub enum Populated {
    /// Scrape it.
    Active(Box<Target>),
    /// Relabeling dropped it; the labels it had before.
    Dropped(BTreeMap<String, String>),
    /// It cannot be scraped (no address, bad interval…).
    Invalid(String),
}

/// Prometheus' duration text (`15s`, `1m30s`).
fn duration_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        PromDuration::from_secs(ms / 1000).to_string()
    } else {
        format!("{ms}ms")
    }
}

/// The targets of one group of a job.
pub fn populate(job: &Job, group: &TargetGroup, extra: &BTreeMap<String, String>) -> Vec<Populated> {
    group
        .targets
        .iter()
        .map(|address| {
            let mut labels: BTreeMap<String, String> = extra.clone();
            labels.extend(
                group
                    .labels
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
            labels.insert(ADDRESS.to_owned(), address.clone());
            populate_one(job, labels)
        })
        .collect()
}

fn populate_one(job: &Job, mut labels: BTreeMap<String, String>) -> Populated {
    let config = &job.config;
    let defaults = [
        ("job", config.job_name.clone()),
        (SCRAPE_INTERVAL, duration_text(job.interval_ms)),
        (SCRAPE_TIMEOUT, duration_text(job.timeout_ms)),
        (METRICS_PATH, config.metrics_path.clone()),
        (SCHEME, config.scheme.clone()),
    ];
    for (name, value) in defaults {
        if labels.get(name).is_none_or(String::is_empty) {
            labels.insert(name.to_owned(), value);
        }
    }
    for (name, values) in &config.params {
        if let Some(first) = values.first() {
            labels.insert(format!("{PARAM_PREFIX}{name}"), first.clone());
        }
    }
    let discovered = labels.clone();
    if !relabel::process(&mut labels, &config.relabel_configs) {
        return Populated::Dropped(discovered);
    }
    let Some(mut address) = labels.get(ADDRESS).filter(|value| !value.is_empty()).cloned() else {
        return Populated::Invalid("no address".to_owned());
    };
    let scheme = labels.get(SCHEME).cloned().unwrap_or_default();
    // Prometheus 2.x adds the scheme's default port to an address without one.
    if !has_port(&address) {
        address = match scheme.as_str() {
            "http" | "" => format!("{address}:80"),
            "https" => format!("{address}:443"),
            other => return Populated::Invalid(format!("invalid scheme: {other:?}")),
        };
        labels.insert(ADDRESS.to_owned(), address.clone());
    }
    if address.contains('/') || address.contains(char::is_whitespace) {
        return Populated::Invalid(format!("{address:?} is not a valid hostname"));
    }
    let interval_ms = match parse_duration_label(&labels, SCRAPE_INTERVAL) {
        Ok(ms) => ms,
        Err(err) => return Populated::Invalid(err),
    };
    let timeout_ms = match parse_duration_label(&labels, SCRAPE_TIMEOUT) {
        Ok(ms) => ms,
        Err(err) => return Populated::Invalid(err),
    };
    if interval_ms == 0 {
        return Populated::Invalid("scrape interval cannot be 0".to_owned());
    }
    if timeout_ms == 0 {
        return Populated::Invalid("scrape timeout cannot be 0".to_owned());
    }
    if timeout_ms > interval_ms {
        return Populated::Invalid(format!(
            "scrape timeout cannot be greater than scrape interval ({} > {})",
            duration_text(timeout_ms),
            duration_text(interval_ms)
        ));
    }
    labels.retain(|name, _| !name.starts_with(META_PREFIX));
    if labels.get("instance").is_none_or(String::is_empty) {
        labels.insert("instance".to_owned(), address.clone());
    }
    let public: Vec<(String, String)> = labels
        .iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let public = match Labels::from_pairs(public) {
        Ok(labels) => labels,
        Err(err) => return Populated::Invalid(err.to_string()),
    };
    let url = scrape_url(&labels, &address, &scheme, config);
    Populated::Active(Box::new(Target {
        discovered,
        all_labels: labels,
        labels: public,
        url,
        pool: config.job_name.clone(),
        interval_ms,
        timeout_ms,
        status: Mutex::new(TargetStatus::default()),
        metadata: Mutex::new(Vec::new()),
    }))
}

fn has_port(address: &str) -> bool {
    if let Some(rest) = address.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(_, tail)| tail.starts_with(':'));
    }
    match address.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && !port.is_empty(),
        None => false,
    }
}

fn parse_duration_label(labels: &BTreeMap<String, String>, name: &str) -> Result<u64, String> {
    let text = labels.get(name).cloned().unwrap_or_default();
    text.parse::<PromDuration>()
        .map(|duration| duration.as_std().as_millis() as u64)
        .map_err(|_| format!("error parsing {name}: {text:?} is not a duration"))
}

/// `scheme://address/path?params`, `__param_*` labels overriding the configured params.
fn scrape_url(
    labels: &BTreeMap<String, String>,
    address: &str,
    scheme: &str,
    config: &crate::config::ScrapeConfig,
) -> String {
    let path = labels
        .get(METRICS_PATH)
        .cloned()
        .unwrap_or_else(|| config.metrics_path.clone());
    let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
    for (name, value) in labels {
        if let Some(param) = name.strip_prefix(PARAM_PREFIX) {
            let values = params.entry(param.to_owned()).or_default();
            if values.is_empty() {
                values.push(value.clone());
            } else {
                values[0] = value.clone();
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let mut first = true;
    for (name, values) in &params {
        for value in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&percent_encode(name));
            url.push('=');
            url.push_str(&percent_encode(value));
        }
    }
    url
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PrometheusFile, ScrapeSettings};

    fn job(yaml: &str) -> Job {
        let file: PrometheusFile = serde_yaml::from_str(yaml).unwrap();
        ScrapeSettings::resolve(&file, std::path::Path::new("/"), "test")
            .unwrap()
            .jobs
            .remove(0)
    }

    fn active(populated: Populated) -> Box<Target> {
        match populated {
            Populated::Active(target) => target,
            other => panic!("not active: {other:?}"),
        }
    }

    #[test]
    fn targets_get_job_instance_and_url_like_prometheus() {
        let job = job(
            "global: {scrape_interval: 15s}\nscrape_configs: [{job_name: node, params: {module: [http_2xx]}, static_configs: [{targets: ['192.168.1.52:9100', 'nas'], labels: {rack: a}}]}]",
        );
        let group = job.config.static_configs[0].clone();
        let mut targets = populate(&job, &group, &BTreeMap::new()).into_iter().map(active);
        let first = targets.next().unwrap();
        assert_eq!(
            first.labels.to_string(),
            r#"{instance="192.168.1.52:9100", job="node", rack="a"}"#
        );
        assert_eq!(first.url, "http://192.168.1.52:9100/metrics?module=http_2xx");
        assert_eq!((first.interval_ms, first.timeout_ms), (15_000, 10_000));
        assert_eq!(first.discovered["__scrape_interval__"], "15s");
        // No port: the scheme's default is added (Prometheus 2.x).
        let second = targets.next().unwrap();
        assert_eq!(second.labels.get("instance"), Some("nas:80"));
    }

    #[test]
    fn relabeling_can_drop_rename_and_reparameterize() {
        let job = job(r#"
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    static_configs: [{targets: ['https://example.org', 'skip.me']}]
    relabel_configs:
      - {source_labels: [__address__], regex: 'skip.*', action: drop}
      - {source_labels: [__address__], target_label: __param_target}
      - {source_labels: [__param_target], target_label: instance}
      - {target_label: __address__, replacement: '127.0.0.1:9115'}
"#);
        let group = job.config.static_configs[0].clone();
        let populated = populate(&job, &group, &BTreeMap::new());
        let target = match &populated[0] {
            Populated::Active(target) => target,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            target.url,
            "http://127.0.0.1:9115/probe?target=https%3A%2F%2Fexample.org"
        );
        assert_eq!(target.labels.get("instance"), Some("https://example.org"));
        assert!(matches!(&populated[1], Populated::Dropped(labels) if labels["__address__"] == "skip.me"));
    }
}
