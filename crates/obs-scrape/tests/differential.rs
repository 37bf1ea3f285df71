//! Differential test of scraping against Prometheus 2.42.
//!
//! `differential/fixtures/<name>/` holds a fixture target: `target.yaml` lists the responses
//! of its scrapes 0, 1, 2… (a body file, a status, a Content-Type, or `hang`: no answer within
//! the scrape timeout), the body files hold tricky expositions. `differential/prometheus.yml`
//! is the scrape configuration both sides use, with the relabel rules. `differential/golden.json`
//! holds what a real Prometheus 2.42 stored for every step of every target: the samples (labels,
//! value, explicit timestamps), the stale markers, `up` and the other synthetic series, and the
//! end-of-run stale markers written once the targets are gone.
//!
//! [`scraping_matches_prometheus_golden`] runs the same steps through our scraper, without any
//! server: `scrape_result` on the fixture bodies, each step with the previous step's series,
//! and compares. The differences our scraper is known to have are
//! listed, each with its reason, in `differential/known_differences.txt`; the test fails on
//! any other difference, and on a listed one that no longer differs.
//!
//! Re-record the golden file (after changing a fixture or the configuration) with a Prometheus
//! 2.42 binary at `$PROMETHEUS` or `/usr/bin/prometheus`:
//!
//! ```text
//! cargo test -p obs-scrape --test differential -- --ignored record_golden_from_prometheus
//! ```
//!
//! See `docs/compatibility.md`, section "Scraping compared with Prometheus 2.42".
#![allow(clippy::unwrap_used)]

#[path = "differential/servers.rs"]
mod servers;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use obs_core::series::METRIC_NAME_LABEL;
use obs_metrics::store::RefSample;
use obs_scrape::config::{PrometheusFile, ScrapeSettings};
use obs_scrape::scrape::{Fetched, ScrapeCache, scrape_result};
use obs_scrape::target::{Populated, Target, populate};
use serde::{Deserialize, Serialize};

use servers::{CaptureServer, FixtureServer, PrometheusProcess};

/// The command that re-records the golden file.
const RECORD_COMMAND: &str =
    "cargo test -p obs-scrape --test differential -- --ignored record_golden_from_prometheus";
/// Stands for the fixture server's address in the configuration and in label values.
const ADDRESS_PLACEHOLDER: &str = "{{address}}";
/// The address the replay puts in place of the placeholder (nothing listens there).
const REPLAY_ADDRESS: &str = "fixtures.invalid:9100";
/// The NaN Prometheus writes as a stale marker.
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// The series Prometheus 2.42 adds to every scrape, in the order it appends them.
const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
/// The golden file must hold at least this many targets.
const MIN_TARGETS: usize = 10;

fn differential_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/differential")
        .join(file)
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `target.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    /// The Content-Type of every step that does not say otherwise.
    content_type: Option<String>,
    steps: Vec<StepFile>,
}

/// One step of `target.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    /// The body's file, next to `target.yaml`.
    #[serde(default)]
    body: Option<String>,
    /// The status (200).
    #[serde(default)]
    status: Option<u16>,
    /// Overrides the target's Content-Type; `""` sends none.
    #[serde(default)]
    content_type: Option<String>,
    /// Never answer within the scrape timeout.
    #[serde(default)]
    hang: bool,
}

/// A fixture target: its directory's name and the response of each step.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) name: String,
    pub(crate) steps: Vec<Response>,
}

/// What the fixture server does for one scrape.
#[derive(Debug, Clone)]
pub(crate) enum Response {
    /// Keeps the connection open without answering, past the scrape timeout.
    Hang,
    /// Answers; the body is a template (see [`render`]).
    Answer {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
}

fn load_fixtures() -> Vec<Fixture> {
    let root = differential_path("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("reading {}: {err}", root.display()))
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = root.join(&name);
            let path = dir.join("target.yaml");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            let file: TargetFile =
                serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            assert!(!file.steps.is_empty(), "{}: no steps", path.display());
            let steps = file
                .steps
                .iter()
                .map(|step| {
                    if step.hang {
                        return Response::Hang;
                    }
                    let body = match &step.body {
                        Some(body_file) => std::fs::read_to_string(dir.join(body_file))
                            .unwrap_or_else(|err| panic!("{}: {body_file}: {err}", path.display())),
                        None => String::new(),
                    };
                    let content_type = step
                        .content_type
                        .clone()
                        .or_else(|| file.content_type.clone())
                        .filter(|content_type| !content_type.is_empty());
                    Response::Answer {
                        status: step.status.unwrap_or(200),
                        content_type,
                        body,
                    }
                })
                .collect();
            Fixture { name, steps }
        })
        .collect()
}

/// A digest of everything that decides what Prometheus records: the configuration and every
/// file of every fixture. The golden file carries the one it was recorded from.
fn fixtures_md5() -> String {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    hasher.update(std::fs::read(differential_path("prometheus.yml")).unwrap());
    let root = differential_path("fixtures");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for file in std::fs::read_dir(&dir).unwrap() {
                files.push(file.unwrap().path());
            }
        }
    }
    files.sort();
    for file in files {
        hasher.update(file.strip_prefix(&root).unwrap().to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).unwrap());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// Replaces `{{ms:N}}` with the base time plus N ms, in milliseconds (text-format timestamps),
/// and `{{s:N}}` with the same instant in seconds with three decimals (OpenMetrics).
pub(crate) fn render(template: &str, base_ms: i64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let placeholder = &after[..end];
        let rendered = match placeholder.split_once(':') {
            Some(("ms", offset)) => offset
                .parse::<i64>()
                .ok()
                .map(|offset| (base_ms + offset).to_string()),
            Some(("s", offset)) => offset.parse::<i64>().ok().map(|offset| {
                let ms = base_ms + offset;
                format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
            }),
            _ => None,
        };
        match rendered {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The instants (ms) a step's body names with placeholders, give or take the truncation of
/// OpenMetrics seconds.
fn explicit_instants(response: &Response, base_ms: i64) -> Vec<i64> {
    let Response::Answer { body, .. } = response else {
        return Vec::new();
    };
    body.split("{{")
        .skip(1)
        .filter_map(|part| {
            let (placeholder, _) = part.split_once("}}")?;
            let (_, offset) = placeholder.split_once(':')?;
            offset.parse::<i64>().ok().map(|offset| base_ms + offset)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Normalising scrapes, both sides the same way
// ---------------------------------------------------------------------------------------------

/// One sample as stored: from Prometheus' remote write, or from our scraper's batch.
#[derive(Debug, Clone)]
pub(crate) struct CapturedSample {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

impl CapturedSample {
    fn name(&self) -> &str {
        self.labels.get(METRIC_NAME_LABEL).map_or("", String::as_str)
    }

    fn is_stale(&self) -> bool {
        self.value.to_bits() == STALE_NAN_BITS
    }

    /// The labels without `__name__`.
    fn target_part(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.remove(METRIC_NAME_LABEL);
        labels
    }
}

/// What one scrape stored, in a form that does not depend on when it ran: the value of each
/// synthetic series but `scrape_duration_seconds`, and every other sample as
/// `name{labels} value`, with ` @base+N` when it carries its own timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StepRecord {
    step: usize,
    up: String,
    scrape_samples_scraped: String,
    scrape_samples_post_metric_relabeling: String,
    scrape_series_added: String,
    samples: Vec<String>,
}

/// Everything recorded for one fixture target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TargetRecord {
    fixture: String,
    /// The URL scraped.
    url: String,
    /// The target's labels (those of `up`).
    target_labels: String,
    steps: Vec<StepRecord>,
    /// The stale markers written once the target is gone, without timestamps.
    end_of_run: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Golden {
    prometheus_version: String,
    recorded_with: String,
    /// See [`fixtures_md5`].
    fixtures_md5: String,
    /// The time `{{ms:N}}` and `{{s:N}}` were relative to.
    base_ms: i64,
    targets: Vec<TargetRecord>,
}

/// Shortest round-trip decimal, in exponent form outside 1e-5..1e21.
fn format_float(value: f64) -> String {
    let scientific = format!("{value:e}");
    let exponent: i32 = scientific
        .split_once('e')
        .and_then(|(_, exponent)| exponent.parse().ok())
        .unwrap_or(0);
    if value == 0.0 || (-5..21).contains(&exponent) {
        format!("{value}")
    } else {
        scientific
    }
}

/// `stale`, `NaN`, `+Inf`, `-Inf` or the exact value. Negative zero is written `0`: remote
/// write cannot carry it (proto3 leaves out a double field equal to zero, and Go's `-0 != 0`
/// is false), so Prometheus' side always reads +0.
fn value_class(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value.to_bits() == STALE_NAN_BITS {
        "stale".to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format_float(value)
    }
}

/// `name{a="1", b="2"}` with the text format's escapes and the fixture server's address
/// replaced by the placeholder.
fn format_series(labels: &BTreeMap<String, String>, address: &str) -> String {
    let name = labels.get(METRIC_NAME_LABEL).map_or("", String::as_str);
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(label, _)| label.as_str() != METRIC_NAME_LABEL)
        .map(|(label, value)| {
            let value = value
                .replace(address, ADDRESS_PLACEHOLDER)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{label}=\"{value}\"")
        })
        .collect();
    format!("{name}{{{}}}", pairs.join(", "))
}

fn offset_text(timestamp_ms: i64, base_ms: i64) -> String {
    let offset = timestamp_ms - base_ms;
    if offset < 0 {
        format!("@base{offset}")
    } else {
        format!("@base+{offset}")
    }
}

/// Normalises the samples one scrape stored, given the target's labels. A sample carries an
/// explicit timestamp if its timestamp is not the scrape's (that of `up`).
fn normalise_scrape(
    step: usize,
    samples: &[CapturedSample],
    target_labels: &BTreeMap<String, String>,
    base_ms: i64,
    address: &str,
) -> Result<StepRecord, String> {
    let is_synthetic = |sample: &CapturedSample| {
        SYNTHETIC.contains(&sample.name()) && sample.target_part() == *target_labels
    };
    let synthetic = |name: &str| -> Result<&CapturedSample, String> {
        let mut found = samples
            .iter()
            .filter(|sample| sample.name() == name && is_synthetic(sample));
        let first = found
            .next()
            .ok_or_else(|| format!("no {name} sample in the scrape"))?;
        if found.next().is_some() {
            return Err(format!("more than one {name} sample in the scrape"));
        }
        Ok(first)
    };
    let up = synthetic("up")?;
    let scrape_ts = up.timestamp_ms;
    let mut lines: Vec<String> = samples
        .iter()
        .filter(|sample| !is_synthetic(sample))
        .map(|sample| {
            let mut line = format!(
                "{} {}",
                format_series(&sample.labels, address),
                value_class(sample.value)
            );
            if sample.timestamp_ms != scrape_ts {
                line.push(' ');
                line.push_str(&offset_text(sample.timestamp_ms, base_ms));
            }
            line
        })
        .collect();
    lines.sort();
    Ok(StepRecord {
        step,
        up: value_class(up.value),
        scrape_samples_scraped: value_class(synthetic("scrape_samples_scraped")?.value),
        scrape_samples_post_metric_relabeling: value_class(
            synthetic("scrape_samples_post_metric_relabeling")?.value,
        ),
        scrape_series_added: value_class(synthetic("scrape_series_added")?.value),
        samples: lines,
    })
}

/// The end-of-run stale markers: every sample, timestamps left out.
fn normalise_end_of_run(samples: &[CapturedSample], address: &str) -> Vec<String> {
    let mut lines: Vec<String> = samples
        .iter()
        .map(|sample| {
            format!(
                "{} {}",
                format_series(&sample.labels, address),
                value_class(sample.value)
            )
        })
        .collect();
    lines.sort();
    lines
}

// ---------------------------------------------------------------------------------------------
// Recording from Prometheus
// ---------------------------------------------------------------------------------------------

/// One scrape (or the end-of-run stale markers) of one target, cut out of the remote-write
/// stream.
struct Segment {
    samples: Vec<CapturedSample>,
    target_labels: BTreeMap<String, String>,
}

impl Segment {
    fn is_end_of_run(&self) -> bool {
        self.samples.iter().any(|sample| {
            sample.name() == "up" && sample.target_part() == self.target_labels && sample.is_stale()
        })
    }
}

/// Cuts the remote-write stream into scrapes. Prometheus commits each scrape as one batch
/// (its samples, its stale markers, then the five synthetic series, `scrape_series_added`
/// last), each batch is one write-ahead-log record, and with one remote-write shard the
/// samples arrive in log order: a scrape is what comes up to its `scrape_series_added`. The
/// segments are grouped by the `fixture` label of their synthetic series.
fn segments_by_fixture(samples: &[CapturedSample]) -> Result<BTreeMap<String, Vec<Segment>>, String> {
    let mut segments: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    let mut pending: Vec<CapturedSample> = Vec::new();
    for sample in samples {
        pending.push(sample.clone());
        if sample.name() != "scrape_series_added" {
            continue;
        }
        let target_labels = sample.target_part();
        let fixture = target_labels
            .get("fixture")
            .cloned()
            .ok_or_else(|| format!("scrape_series_added without a fixture label: {:?}", sample.labels))?;
        let samples = std::mem::take(&mut pending);
        // The five synthetic series must be at the end, in Prometheus' order.
        let tail: Vec<&str> = samples[samples.len().saturating_sub(5)..]
            .iter()
            .filter(|sample| sample.target_part() == target_labels)
            .map(CapturedSample::name)
            .collect();
        if tail != SYNTHETIC {
            return Err(format!(
                "a scrape of {fixture} does not end with the five synthetic series (ends with {tail:?}): \
                 were samples of two scrapes interleaved?"
            ));
        }
        segments.entry(fixture).or_default().push(Segment {
            samples,
            target_labels,
        });
    }
    Ok(segments)
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The recording's prometheus.yml: the template with the fixture server's address, each job's
/// `static_configs` moved to a file_sd file `<sd_dir>/<job>.json` (returned, to be written
/// when the targets are to appear), and a remote_write to the capture server with a single
/// shard, so that samples arrive in the order of Prometheus' write-ahead log.
///
/// File-based discovery is what lets the targets go away while their jobs stay: Prometheus
/// 2.42 writes end-of-run stale markers for a target removed from a job, but not for the
/// targets of a job removed (or changed) by a reload.
fn recording_config(
    template: &str,
    address: &str,
    capture_url: &str,
    sd_dir: &Path,
) -> (String, Vec<(PathBuf, String)>) {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&template.replace(ADDRESS_PLACEHOLDER, address)).unwrap();
    let mut sd_files = Vec::new();
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        let job = job.as_mapping_mut().unwrap();
        let name = job["job_name"].as_str().unwrap().to_owned();
        let groups = job
            .remove("static_configs")
            .unwrap_or(serde_yaml::Value::Sequence(Vec::new()));
        let path = sd_dir.join(format!("{name}.json"));
        sd_files.push((path.clone(), serde_json::to_string_pretty(&groups).unwrap()));
        let file_sd: serde_yaml::Value =
            serde_yaml::from_str(&format!("[{{files: ['{}']}}]", path.display())).unwrap();
        job.insert("file_sd_configs".into(), file_sd);
    }
    let remote_write: serde_yaml::Value = serde_yaml::from_str(&format!(
        "[{{url: '{capture_url}', queue_config: {{min_shards: 1, max_shards: 1, max_samples_per_send: 500, \
         batch_send_deadline: 100ms}}, metadata_config: {{send: false}}}}]"
    ))
    .unwrap();
    config
        .as_mapping_mut()
        .unwrap()
        .insert("remote_write".into(), remote_write);
    (serde_yaml::to_string(&config).unwrap(), sd_files)
}

/// Writes file_sd files whole (by renaming), so that Prometheus never reads half of one.
fn write_sd_files(files: &[(PathBuf, String)], empty: bool) {
    for (path, groups) in files {
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, if empty { "[]" } else { groups.as_str() }).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }
}

/// Waits, at most `limit`, until `done` holds; panics with `what` and Prometheus' log if not.
fn wait_until(prometheus: &PrometheusProcess, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\n{}",
            prometheus.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Re-records `differential/golden.json` from a real Prometheus 2.42 (`$PROMETHEUS`, else
/// `/usr/bin/prometheus`).
///
/// Starts the fixture server and a remote-write receiver on 127.0.0.1, then Prometheus with
/// `prometheus.yml`, its targets moved to file_sd files that are empty at first (see
/// [`recording_config`]); then writes the targets. The fixture server gives each target its
/// steps in order, one per scrape, so Prometheus sees exactly the sequence the replay runs.
/// Once every target has been scraped through all its steps, the file_sd files are emptied
/// and the recorder waits for the end-of-run stale markers (Prometheus writes them a little
/// over two intervals after a target goes away). The remote-write stream is then cut into scrapes
/// (see [`segments_by_fixture`]) and normalised.
///
/// ```text
/// cargo test -p obs-scrape --test differential -- --ignored record_golden_from_prometheus
/// ```
#[test]
#[ignore = "needs a Prometheus 2.42 binary; re-records tests/differential/golden.json"]
fn record_golden_from_prometheus() {
    let binary =
        PathBuf::from(std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".to_owned()));
    assert!(
        binary.exists(),
        "no prometheus binary at {}; set PROMETHEUS",
        binary.display()
    );
    let fixtures = load_fixtures();
    let template = std::fs::read_to_string(differential_path("prometheus.yml")).unwrap();
    let fixture_server = FixtureServer::start(&fixtures);
    let capture = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sd_dir = dir.path().join("sd");
    std::fs::create_dir(&sd_dir).unwrap();
    let (config, sd_files) = recording_config(&template, &fixture_server.address, &capture.url, &sd_dir);
    write_sd_files(&sd_files, true);
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let agent = http_agent();
    let mut prometheus = PrometheusProcess::start(&binary, dir.path(), &config_path);
    prometheus.wait_ready(&agent);
    let version = prometheus.version(&agent);
    assert!(
        version.starts_with("2.42."),
        "expected Prometheus 2.42, found {version}"
    );

    // Remote write skips samples older than its start, so every explicit timestamp of the
    // fixtures is at or after `base_ms`, which is after Prometheus started.
    let base_ms = (now_ms() / 1000 + 1) * 1000;
    fixture_server.set_base_ms(base_ms);
    while now_ms() < base_ms {
        std::thread::sleep(Duration::from_millis(10));
    }
    write_sd_files(&sd_files, false);

    let scraped_through = |samples: &[CapturedSample]| -> bool {
        let served = fixture_server.served();
        let Ok(segments) = segments_by_fixture(samples) else {
            return false;
        };
        fixtures.iter().all(|fixture| {
            served
                .get(&fixture.name)
                .is_some_and(|served| served.requests >= fixture.steps.len())
                && segments
                    .get(&fixture.name)
                    .is_some_and(|segments| segments.len() >= fixture.steps.len())
        })
    };
    wait_until(
        &prometheus,
        Duration::from_secs(60),
        "every target to be scraped through its steps",
        || scraped_through(&capture.samples()),
    );

    // The targets go away: Prometheus stops their scrape loops and, a little over two
    // intervals later, writes their end-of-run stale markers.
    write_sd_files(&sd_files, true);
    wait_until(
        &prometheus,
        Duration::from_secs(30),
        "the end-of-run stale markers of every target",
        || {
            segments_by_fixture(&capture.samples()).is_ok_and(|segments| {
                fixtures.iter().all(|fixture| {
                    segments
                        .get(&fixture.name)
                        .is_some_and(|segments| segments.iter().any(Segment::is_end_of_run))
                })
            })
        },
    );
    // Whatever remote write still had in flight.
    std::thread::sleep(Duration::from_millis(500));
    drop(prometheus);
    let errors = capture.errors();
    assert!(
        errors.is_empty(),
        "the capture server refused requests: {errors:?}"
    );

    let served = fixture_server.served();
    let mut segments = segments_by_fixture(&capture.samples()).unwrap();
    let address = fixture_server.address.clone();
    let mut targets = Vec::new();
    for fixture in &fixtures {
        let fixture_segments = segments.remove(&fixture.name).unwrap();
        let (end, scrapes): (Vec<Segment>, Vec<Segment>) =
            fixture_segments.into_iter().partition(Segment::is_end_of_run);
        let requests = served[&fixture.name].requests;
        assert_eq!(
            scrapes.len(),
            requests,
            "{}: {} scrapes stored for {requests} requests served",
            fixture.name,
            scrapes.len()
        );
        assert_eq!(
            end.len(),
            1,
            "{}: {} end-of-run segments",
            fixture.name,
            end.len()
        );
        let target_labels = scrapes[0].target_labels.clone();
        let steps: Vec<StepRecord> = scrapes
            .iter()
            .zip(&fixture.steps)
            .enumerate()
            .map(|(step, (segment, response))| {
                let scrape_ts = segment
                    .samples
                    .iter()
                    .find(|sample| sample.name() == "up")
                    .unwrap()
                    .timestamp_ms;
                assert!(
                    !explicit_instants(response, base_ms).contains(&scrape_ts),
                    "{} step {step}: a scrape happened at one of its explicit timestamps, which the \
                     normalisation cannot tell apart; record again",
                    fixture.name
                );
                normalise_scrape(step, &segment.samples, &target_labels, base_ms, &address)
                    .unwrap_or_else(|err| panic!("{} step {step}: {err}", fixture.name))
            })
            .collect();
        targets.push(TargetRecord {
            fixture: fixture.name.clone(),
            url: format!("http://{address}{}", served[&fixture.name].first_path)
                .replace(&address, ADDRESS_PLACEHOLDER),
            target_labels: format_series(&target_labels, &address),
            steps,
            end_of_run: normalise_end_of_run(&end[0].samples, &address),
        });
    }
    let golden = Golden {
        prometheus_version: version,
        recorded_with: RECORD_COMMAND.to_owned(),
        fixtures_md5: fixtures_md5(),
        base_ms,
        targets,
    };
    let path = differential_path("golden.json");
    let mut text = serde_json::to_string_pretty(&golden).unwrap();
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    println!(
        "recorded {} targets, {} steps into {}",
        golden.targets.len(),
        golden
            .targets
            .iter()
            .map(|target| target.steps.len())
            .sum::<usize>(),
        path.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Replaying through our scraper
// ---------------------------------------------------------------------------------------------

fn flatten(samples: &[RefSample]) -> Vec<CapturedSample> {
    samples
        .iter()
        .map(|sample| CapturedSample {
            labels: sample
                .labels
                .iter()
                .map(|label| (label.name.to_string(), label.value.to_string()))
                .collect(),
            timestamp_ms: sample.timestamp_ms,
            value: sample.value,
        })
        .collect()
}

/// What the fixture server would have answered, as our scraper's fetch reports it.
fn fetched(response: &Response, target: &Target, base_ms: i64) -> Fetched {
    match response {
        Response::Hang => Fetched::Failed(format!("Get \"{}\": context deadline exceeded", target.url)),
        Response::Answer { status, .. } if *status != 200 => {
            Fetched::Failed(format!("server returned HTTP status {status}"))
        }
        Response::Answer {
            content_type, body, ..
        } => Fetched::Body {
            body: render(body, base_ms),
            content_type: content_type.clone(),
        },
    }
}

/// Runs every fixture's steps through our scraper, with the configuration of
/// `prometheus.yml`, and normalises the results as the recorder normalises Prometheus'.
fn replay(fixtures: &[Fixture], base_ms: i64) -> Vec<TargetRecord> {
    let yaml = std::fs::read_to_string(differential_path("prometheus.yml"))
        .unwrap()
        .replace(ADDRESS_PLACEHOLDER, REPLAY_ADDRESS);
    let file: PrometheusFile = serde_yaml::from_str(&yaml).unwrap();
    let settings = ScrapeSettings::resolve(&file, &differential_path(""), "prometheus.yml").unwrap();
    let mut records = Vec::new();
    for job in &settings.jobs {
        for group in &job.config.static_configs {
            for populated in populate(job, group, &BTreeMap::new()) {
                let target = match populated {
                    Populated::Active(target) => target,
                    other => panic!(
                        "job {}: a fixture target is not active: {other:?}",
                        job.config.job_name
                    ),
                };
                let name = target.labels.get("fixture").unwrap().to_owned();
                let fixture = fixtures
                    .iter()
                    .find(|fixture| fixture.name == name)
                    .unwrap_or_else(|| panic!("prometheus.yml names fixture {name}, which does not exist"));
                let target_labels: BTreeMap<String, String> = target
                    .labels
                    .iter()
                    .map(|label| (label.name.to_string(), label.value.to_string()))
                    .collect();
                let mut cache = ScrapeCache::new();
                let mut steps = Vec::new();
                for (step, response) in fixture.steps.iter().enumerate() {
                    // Far from every explicit timestamp of the fixtures.
                    let scrape_ts = base_ms + 1_000_000 + step as i64 * 1000;
                    let result = scrape_result(
                        fetched(response, &target, base_ms),
                        &target,
                        job,
                        scrape_ts,
                        &mut cache,
                        Instant::now(),
                    );
                    let record = normalise_scrape(
                        step,
                        &flatten(&result.samples),
                        &target_labels,
                        base_ms,
                        REPLAY_ADDRESS,
                    )
                    .unwrap_or_else(|err| malformed_step(step, &err));
                    steps.push(record);
                }
                let end_ts = base_ms + 2_000_000;
                let end = flatten(&cache.end_of_run(&target, end_ts));
                records.push(TargetRecord {
                    fixture: name,
                    url: target.url.replace(REPLAY_ADDRESS, ADDRESS_PLACEHOLDER),
                    target_labels: format_series(&target_labels, REPLAY_ADDRESS),
                    steps,
                    end_of_run: normalise_end_of_run(&end, REPLAY_ADDRESS),
                });
            }
        }
    }
    records
}

/// A step record that matches no recorded one, saying why our batch could not be normalised.
fn malformed_step(step: usize, why: &str) -> StepRecord {
    StepRecord {
        step,
        up: format!("(our batch is malformed: {why})"),
        scrape_samples_scraped: String::new(),
        scrape_samples_post_metric_relabeling: String::new(),
        scrape_series_added: String::new(),
        samples: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------------

fn load_golden() -> Golden {
    let path = differential_path("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "reading {}: {err}; record it with `{RECORD_COMMAND}`",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `known_differences.txt`: difference keys (`<fixture> step <n> <field>`, `<fixture>
/// end_of_run`, `<fixture> url`, `<fixture> target_labels`), each block below `# reason`
/// lines; a blank line ends a block.
fn load_known_differences() -> BTreeMap<String, String> {
    let path = differential_path("known_differences.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut known = BTreeMap::new();
    let mut reason = String::new();
    let mut reason_done = false;
    for (index, line) in text.lines().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            if reason_done {
                reason.clear();
                reason_done = false;
            }
            if !reason.is_empty() {
                reason.push(' ');
            }
            reason.push_str(comment.trim());
        } else if line.trim().is_empty() {
            reason.clear();
            reason_done = false;
        } else {
            assert!(
                !reason.is_empty(),
                "{}:{}: a known difference needs a `# reason` line above it",
                path.display(),
                index + 1
            );
            reason_done = true;
            let previous = known.insert(line.trim().to_owned(), reason.clone());
            assert!(
                previous.is_none(),
                "{}:{}: {} is listed twice",
                path.display(),
                index + 1,
                line.trim()
            );
        }
    }
    known
}

/// Lines only in `expected` (prefixed `-`) and only in `actual` (`+`), as multisets.
fn multiset_diff(expected: &[String], actual: &[String]) -> Vec<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for line in expected {
        *counts.entry(line).or_default() += 1;
    }
    for line in actual {
        *counts.entry(line).or_default() -= 1;
    }
    let mut out = Vec::new();
    for (line, count) in counts {
        for _ in 0..count.abs() {
            out.push(format!("{} {line}", if count > 0 { "-" } else { "+" }));
        }
    }
    out
}

/// Every difference between Prometheus' record of a target and ours, by key.
fn compare_target(expected: &TargetRecord, actual: &TargetRecord) -> Vec<(String, String)> {
    let name = &expected.fixture;
    let mut differences = Vec::new();
    let field = |key: String, expected: &str, actual: &str| {
        (expected != actual).then(|| (key, format!("prometheus {expected}, ours {actual}")))
    };
    differences.extend(field(format!("{name} url"), &expected.url, &actual.url));
    differences.extend(field(
        format!("{name} target_labels"),
        &expected.target_labels,
        &actual.target_labels,
    ));
    differences.extend(field(
        format!("{name} steps"),
        &expected.steps.len().to_string(),
        &actual.steps.len().to_string(),
    ));
    for (e, a) in expected.steps.iter().zip(&actual.steps) {
        let step = e.step;
        differences.extend(field(format!("{name} step {step} up"), &e.up, &a.up));
        differences.extend(field(
            format!("{name} step {step} scrape_samples_scraped"),
            &e.scrape_samples_scraped,
            &a.scrape_samples_scraped,
        ));
        differences.extend(field(
            format!("{name} step {step} scrape_samples_post_metric_relabeling"),
            &e.scrape_samples_post_metric_relabeling,
            &a.scrape_samples_post_metric_relabeling,
        ));
        differences.extend(field(
            format!("{name} step {step} scrape_series_added"),
            &e.scrape_series_added,
            &a.scrape_series_added,
        ));
        let diff = multiset_diff(&e.samples, &a.samples);
        if !diff.is_empty() {
            differences.push((format!("{name} step {step} samples"), diff.join("\n        ")));
        }
    }
    let diff = multiset_diff(&expected.end_of_run, &actual.end_of_run);
    if !diff.is_empty() {
        differences.push((format!("{name} end_of_run"), diff.join("\n        ")));
    }
    differences
}

#[test]
fn scraping_matches_prometheus_golden() {
    let golden = load_golden();
    assert!(
        golden.targets.len() >= MIN_TARGETS,
        "the golden file has {} targets, fewer than {MIN_TARGETS}",
        golden.targets.len()
    );
    assert!(
        golden.fixtures_md5 == fixtures_md5(),
        "golden.json was recorded from other fixtures or another prometheus.yml; re-record it with \
         `{RECORD_COMMAND}`"
    );
    let fixtures = load_fixtures();
    let known = load_known_differences();
    let ours = replay(&fixtures, golden.base_ms);

    let mut recorded: Vec<&str> = golden.targets.iter().map(|t| t.fixture.as_str()).collect();
    let mut replayed: Vec<&str> = ours.iter().map(|t| t.fixture.as_str()).collect();
    recorded.sort_unstable();
    replayed.sort_unstable();
    assert_eq!(
        recorded, replayed,
        "the golden file and prometheus.yml name other targets"
    );

    let mut differences: Vec<(String, String)> = Vec::new();
    for expected in &golden.targets {
        let actual = ours
            .iter()
            .find(|target| target.fixture == expected.fixture)
            .unwrap();
        differences.extend(compare_target(expected, actual));
    }
    let steps: usize = golden.targets.iter().map(|target| target.steps.len()).sum();
    println!(
        "Scraping compared with Prometheus 2.42: {} targets, {steps} scrapes, {} differences ({} known)",
        golden.targets.len(),
        differences.len(),
        differences
            .iter()
            .filter(|(key, _)| known.contains_key(key))
            .count()
    );
    for (key, detail) in &differences {
        let tag = if known.contains_key(key) { "known" } else { "NEW" };
        println!("  [{tag}] {key}:\n        {detail}");
    }
    let differing: HashSet<&str> = differences.iter().map(|(key, _)| key.as_str()).collect();
    let now_matching: Vec<&String> = known
        .keys()
        .filter(|key| !differing.contains(key.as_str()))
        .collect();
    for key in &now_matching {
        println!("  [FIXED] listed in known_differences.txt but matches now: {key}");
    }
    let unexpected = differences
        .iter()
        .filter(|(key, _)| !known.contains_key(key))
        .count();
    assert!(
        unexpected == 0 && now_matching.is_empty(),
        "{unexpected} differences from Prometheus 2.42 are not listed in known_differences.txt, and {} listed \
         ones match now (run with --nocapture for details)",
        now_matching.len()
    );
}

#[test]
fn placeholders_render_the_base_time() {
    let base_ms = 1_767_225_600_000;
    assert_eq!(
        render("a 1 {{ms:0}}\nb 2 {{ms:-1500}}\nc 3 {{s:1234}}\n", base_ms),
        "a 1 1767225600000\nb 2 1767225598500\nc 3 1767225601.234\n"
    );
    assert_eq!(render("x{a=\"{{\"} 1 {{y}}", base_ms), "x{a=\"{{\"} 1 {{y}}");
    let response = Response::Answer {
        status: 200,
        content_type: None,
        body: "a 1 {{ms:5}}\nb 1 {{s:7}}\n".to_owned(),
    };
    assert_eq!(
        explicit_instants(&response, base_ms),
        vec![base_ms + 5, base_ms + 7]
    );
}

#[test]
fn values_are_classified_exactly() {
    assert_eq!(value_class(f64::from_bits(STALE_NAN_BITS)), "stale");
    assert_eq!(value_class(f64::NAN), "NaN");
    assert_eq!(value_class(f64::INFINITY), "+Inf");
    assert_eq!(value_class(f64::NEG_INFINITY), "-Inf");
    assert_eq!(value_class(-0.0), "0");
    assert_eq!(value_class(1.7560473e7), "17560473");
    assert_eq!(value_class(0.1), "0.1");
    assert_eq!(value_class(1e308), "1e308");
    assert_eq!(value_class(5e-324), "5e-324");
}

#[test]
fn series_are_written_with_text_format_escapes() {
    let labels: BTreeMap<String, String> = [
        ("__name__", "x"),
        ("a", "say \"hi\"\\\n"),
        ("instance", "127.0.0.1:1234"),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect();
    assert_eq!(
        format_series(&labels, "127.0.0.1:1234"),
        r#"x{a="say \"hi\"\\\n", instance="{{address}}"}"#
    );
}
