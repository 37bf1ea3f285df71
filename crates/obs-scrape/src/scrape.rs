//! One scrape: fetch, parse, label, relabel, limit, mark stale — as Prometheus 2.42's
//! `scrapeLoop` does it.
//!
//! The HTTP request and the CPU work run on the blocking pool; the loop waits for the store to
//! make the batch durable before the next scrape.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::time::{Duration, Instant};

use obs_core::series::{Labels, METRIC_NAME_LABEL, MetricMetadata, SeriesSamples};

use crate::config::{Job, ScrapeConfig};
use crate::parse::{self, Format};
use crate::relabel;
use crate::target::Target;

/// The NaN Prometheus writes as a stale marker.
pub(crate) const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// The largest (decompressed) body read when a job sets no `body_size_limit`. Prometheus reads
/// without limit; an endless or gigantic body must not exhaust the appliance's memory.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 << 20;

/// What Prometheus sends as `Accept`: OpenMetrics first, then the text format.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The outcome of one scrape, ready for the store.
#[derive(Debug, Default)]
pub struct ScrapeResult {
    /// Samples, stale markers and the synthetic series.
    pub batch: Vec<SeriesSamples>,
    /// Series to mark stale if the next scrape lacks them.
    pub seen: HashSet<Labels>,
    /// Metadata from the body.
    pub metadata: Vec<(String, MetricMetadata)>,
    /// The error, when the scrape failed.
    pub error: Option<String>,
    /// How long fetching and parsing took.
    pub duration: Duration,
}

/// What fetching a target gave.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// A 200 answer.
    Body {
        /// The (decompressed) body.
        body: String,
        /// Its `Content-Type`.
        content_type: Option<String>,
    },
    /// The scrape failed before a body arrived (status, timeout, connection, limit).
    Failed(String),
}

/// An HTTP client configured for one job.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(config: &ScrapeConfig, timeout_ms: u64) -> Result<Client, String> {
        let tls = &config.tls_config;
        let mut tls_builder = ureq::tls::TlsConfig::builder().disable_verification(tls.insecure_skip_verify);
        if let Some(ca_file) = &tls.ca_file {
            let pem = std::fs::read(ca_file)
                .map_err(|err| format!("cannot read ca_file {}: {err}", ca_file.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("no certificate in ca_file {}", ca_file.display()));
            }
            tls_builder = tls_builder.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
            let cert_pem = std::fs::read(cert_file)
                .map_err(|err| format!("cannot read cert_file {}: {err}", cert_file.display()))?;
            let key_pem = std::fs::read(key_file)
                .map_err(|err| format!("cannot read key_file {}: {err}", key_file.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            let key = ureq::tls::PrivateKey::from_pem(&key_pem)
                .map_err(|err| format!("invalid key_file {}: {err}", key_file.display()))?;
            tls_builder = tls_builder.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&certs, key)));
        }
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_millis(timeout_ms)))
                .user_agent(concat!("obs-appliance/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls_builder.build())
                .build(),
        );
        Ok(Client { agent })
    }

    /// GETs the target: the body and its content type.
    fn fetch(&self, target: &Target, job: &Job) -> Result<(String, Option<String>), String> {
        let config = &job.config;
        let mut request = self.agent.get(&target.url).header("Accept", ACCEPT).header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            &format!("{}", target.timeout_ms as f64 / 1000.0),
        );
        if let Some(value) = authorization(config)? {
            request = request.header("Authorization", &value);
        }
        let url = &target.url;
        let mut response = request.call().map_err(|err| match err {
            ureq::Error::Timeout(_) => format!(
                "Get {url:?}: context deadline exceeded (timeout {}ms)",
                target.timeout_ms
            ),
            other => format!("Get {url:?}: {other}"),
        })?;
        let status = response.status();
        if status != 200 {
            return Err(format!(
                "server returned HTTP status {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let limit = config
            .body_size_limit
            .map(|size| size.bytes())
            .filter(|limit| *limit > 0)
            .unwrap_or(DEFAULT_BODY_SIZE_LIMIT);
        let mut body = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|err| {
                let timed_out = err.kind() == std::io::ErrorKind::TimedOut
                    || err
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
                if timed_out {
                    format!(
                        "Get {url:?}: context deadline exceeded (timeout {}ms) while reading the body",
                        target.timeout_ms
                    )
                } else {
                    format!("reading the body of {url:?}: {err}")
                }
            })?;
        if body.len() as u64 > limit {
            return Err(format!("body size limit exceeded ({limit} bytes)"));
        }
        let body = String::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
        Ok((body, content_type))
    }
}

/// The `Authorization` header of a job, reading credential files at every scrape.
fn authorization(config: &ScrapeConfig) -> Result<Option<String>, String> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|err| format!("cannot read {}: {err}", path.display()))
    };
    if let Some(basic) = &config.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (_, Some(file)) => read(file)?,
            (Some(password), None) => password.clone(),
            (None, None) => String::new(),
        };
        return Ok(Some(format!(
            "Basic {}",
            base64(format!("{}:{password}", basic.username).as_bytes())
        )));
    }
    if let Some(auth) = &config.authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (_, Some(file)) => read(file)?,
            (Some(credentials), None) => credentials.clone(),
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{} {credentials}", auth.kind)));
    }
    if let Some(file) = &config.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read(file)?)));
    }
    Ok(config
        .bearer_token
        .as_ref()
        .map(|token| format!("Bearer {token}")))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Scrapes once at `scrape_ts` (ms): fetches, processes, and adds stale markers for the series
/// of `previous` that are gone. Runs on the blocking pool.
pub(crate) fn scrape(
    client: &Client,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    previous: &HashSet<Labels>,
    cache: &mut HashSet<Labels>,
) -> ScrapeResult {
    let started = Instant::now();
    let fetched = match client.fetch(target, job) {
        Ok((body, content_type)) => Fetched::Body { body, content_type },
        Err(error) => Fetched::Failed(error),
    };
    scrape_result(fetched, target, job, scrape_ts, previous, cache, started)
}

/// Turns what a fetch gave into the scrape's batch: the samples, the stale markers of the
/// series of `previous` that are gone, and the synthetic series. `cache` holds every series
/// of the last successful scrape (explicit timestamps included) and survives failed scrapes,
/// as Prometheus' scrape cache does: `scrape_series_added` counts series missing from it.
/// `started` is when the scrape began (for `scrape_duration_seconds`). Deterministic but for
/// that duration, so tests replay sequences of responses without a server.
pub fn scrape_result(
    fetched: Fetched,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    previous: &HashSet<Labels>,
    cache: &mut HashSet<Labels>,
    started: Instant,
) -> ScrapeResult {
    let processed = match fetched {
        Fetched::Body { body, content_type } => {
            let format = Format::from_content_type(content_type.as_deref());
            process(&body, format, target, job, scrape_ts).map_err(|err| err.to_string())
        }
        Fetched::Failed(error) => Err(error),
    };
    let duration = started.elapsed();
    let mut result = ScrapeResult {
        duration,
        ..ScrapeResult::default()
    };
    let (scraped, post_relabel, added) = match processed {
        Ok(processed) => {
            let current: HashSet<Labels> = processed
                .batch
                .iter()
                .map(|series| series.labels.clone())
                .collect();
            let added = current.iter().filter(|labels| !cache.contains(*labels)).count();
            *cache = current;
            result.batch = processed.batch;
            result.seen = processed.seen;
            result.metadata = processed.metadata;
            (processed.scraped, processed.post_relabel, added)
        }
        Err(error) => {
            result.error = Some(error);
            (0, 0, 0)
        }
    };
    for gone in previous.difference(&result.seen) {
        result.batch.push(SeriesSamples {
            labels: gone.clone(),
            samples: vec![(scrape_ts, STALE_NAN)],
        });
    }
    let up = if result.error.is_none() { 1.0 } else { 0.0 };
    let synthetic = [
        ("up", up),
        ("scrape_duration_seconds", duration.as_secs_f64()),
        ("scrape_samples_scraped", scraped as f64),
        ("scrape_samples_post_metric_relabeling", post_relabel as f64),
        ("scrape_series_added", added as f64),
    ];
    for (name, value) in synthetic {
        if let Ok(labels) = target.labels.with_label(METRIC_NAME_LABEL, name) {
            result.batch.push(SeriesSamples {
                labels,
                samples: vec![(scrape_ts, value)],
            });
        }
    }
    result
}

/// The synthetic series of a target, for stale markers when it goes away.
pub fn synthetic_series(target: &Target) -> Vec<Labels> {
    [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ]
    .iter()
    .filter_map(|name| target.labels.with_label(METRIC_NAME_LABEL, name).ok())
    .collect()
}

struct Processed {
    batch: Vec<SeriesSamples>,
    seen: HashSet<Labels>,
    metadata: Vec<(String, MetricMetadata)>,
    scraped: usize,
    post_relabel: usize,
}

/// Why a scrape's body was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
    #[error("{0}")]
    Limit(String),
}

/// Turns a body into series: target labels per `honor_labels`, metric relabeling, limits.
fn process(
    body: &str,
    format: Format,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
) -> Result<Processed, ProcessError> {
    let config = &job.config;
    let parsed = parse::parse(body, format)?;
    let scraped = parsed.samples.len();
    let mut batch = Vec::with_capacity(scraped);
    let mut seen = HashSet::with_capacity(scraped);
    for sample in &parsed.samples {
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        labels.insert(METRIC_NAME_LABEL.to_owned(), sample.name.to_owned());
        for (name, value) in &sample.labels {
            labels.insert((*name).to_owned(), value.to_string());
        }
        merge_target_labels(&mut labels, &target.labels, config.honor_labels);
        // Empty values are absent labels (kept until here so that `honor_labels` sees a
        // scraped `job=""` as present, as Prometheus does).
        labels.retain(|_, value| !value.is_empty());
        if !config.metric_relabel_configs.is_empty()
            && !relabel::process(&mut labels, &config.metric_relabel_configs)
        {
            continue;
        }
        // Prometheus fails the whole scrape when relabeling leaves a series without a name or
        // with invalid labels.
        if labels.get(METRIC_NAME_LABEL).is_none_or(String::is_empty) {
            return Err(ProcessError::Limit("__name__ label is mandatory".to_owned()));
        }
        check_label_limits(&labels, config)?;
        let labels = Labels::from_pairs(labels)
            .map_err(|err| ProcessError::Limit(format!("invalid metric name or label names: {err}")))?;
        let explicit = config.honor_timestamps && sample.timestamp_ms.is_some();
        let ts = if explicit {
            sample.timestamp_ms.unwrap_or(scrape_ts)
        } else {
            scrape_ts
        };
        if !explicit {
            seen.insert(labels.clone());
        }
        batch.push(SeriesSamples {
            labels,
            samples: vec![(ts, sample.value)],
        });
    }
    let post_relabel = batch.len();
    if config.sample_limit > 0 && post_relabel > config.sample_limit {
        return Err(ProcessError::Limit(format!(
            "sample limit exceeded ({post_relabel} samples, limit {})",
            config.sample_limit
        )));
    }
    let metadata = parsed
        .metadata
        .into_iter()
        .map(|family| {
            (
                family.name,
                MetricMetadata {
                    metric_type: family.metric_type,
                    help: family.help,
                    unit: family.unit,
                },
            )
        })
        .collect();
    Ok(Processed {
        batch,
        seen,
        metadata,
        scraped,
        post_relabel,
    })
}

/// Adds the target's labels. With `honor_labels` the scraped labels win (even empty ones);
/// otherwise the target's do and each clashing scraped label is renamed `exported_<name>`
/// (shortest names first, more `exported_` prefixes while the name is taken by a scraped
/// label, a target label or an earlier rename), as Prometheus'
/// `resolveConflictingExposedLabels` does.
fn merge_target_labels(labels: &mut BTreeMap<String, String>, target: &Labels, honor_labels: bool) {
    if honor_labels {
        for label in target.iter() {
            labels
                .entry(label.name.clone())
                .or_insert_with(|| label.value.clone());
        }
        return;
    }
    let exposed: std::collections::BTreeSet<String> = labels.keys().cloned().collect();
    let mut clashes: Vec<(String, String)> = Vec::new();
    for label in target.iter() {
        if let Some(existing) = labels.insert(label.name.clone(), label.value.clone())
            && !existing.is_empty()
        {
            clashes.push((label.name.clone(), existing));
        }
    }
    clashes.sort_by_key(|(name, _)| name.len());
    let mut renamed: Vec<String> = Vec::new();
    for (name, value) in clashes {
        let mut exported = name;
        loop {
            exported = format!("exported_{exported}");
            if !exposed.contains(&exported) && target.get(&exported).is_none() && !renamed.contains(&exported)
            {
                break;
            }
        }
        renamed.push(exported.clone());
        labels.insert(exported, value);
    }
}

fn check_label_limits(labels: &BTreeMap<String, String>, config: &ScrapeConfig) -> Result<(), ProcessError> {
    let metric = labels.get(METRIC_NAME_LABEL).map(String::as_str).unwrap_or("");
    let short: String = metric.chars().take(50).collect();
    if config.label_limit > 0 && labels.len() > config.label_limit {
        return Err(ProcessError::Limit(format!(
            "label_limit exceeded (metric: {short}, number of labels: {}, limit: {})",
            labels.len(),
            config.label_limit
        )));
    }
    for (name, value) in labels {
        if config.label_name_length_limit > 0 && name.len() > config.label_name_length_limit {
            return Err(ProcessError::Limit(format!(
                "label_name_length_limit exceeded (metric: {short}, label name: {name}, length: {}, limit: {})",
                name.len(),
                config.label_name_length_limit
            )));
        }
        if config.label_value_length_limit > 0 && value.len() > config.label_value_length_limit {
            return Err(ProcessError::Limit(format!(
                "label_value_length_limit exceeded (metric: {short}, label name: {name}, value: {value:?}, length: {}, limit: {})",
                value.len(),
                config.label_value_length_limit
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_labels_are_exported_unless_honored() {
        let target = Labels::from_pairs([("job", "node"), ("instance", "a:1")]).unwrap();
        let mut labels: BTreeMap<String, String> =
            [("__name__", "x"), ("job", "scraped"), ("exported_job", "older")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        merge_target_labels(&mut labels, &target, false);
        assert_eq!(labels["job"], "node");
        assert_eq!(labels["exported_exported_job"], "scraped");
        assert_eq!(labels["exported_job"], "older");
        assert_eq!(labels["instance"], "a:1");
        let mut honored: BTreeMap<String, String> = [("__name__", "x"), ("job", "scraped")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        merge_target_labels(&mut honored, &target, true);
        assert_eq!(honored["job"], "scraped");
        assert_eq!(honored["instance"], "a:1");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b""), "");
    }
}
