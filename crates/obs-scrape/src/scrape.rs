//! One scrape: fetch, parse, label, relabel, limit, mark stale — as Prometheus 2.42's
//! `scrapeLoop` does it.
//!
//! The HTTP request and the CPU work run on the blocking pool; the loop waits for the store to
//! make the batch durable before the next scrape.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_core::series::{Labels, METRIC_NAME_LABEL, MetricMetadata};
use obs_metrics::store::{RefSample, SeriesRef};

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
    /// Samples, stale markers and the synthetic series, each with its series' store handle
    /// when the cache knows it.
    pub samples: Vec<RefSample>,
    /// For each sample, the cache slot its handle goes back to (or [`NO_SLOT`]).
    slots: Vec<u32>,
    /// Metadata from the body.
    pub metadata: Vec<(String, MetricMetadata)>,
    /// The error, when the scrape failed.
    pub error: Option<String>,
    /// How long fetching and parsing took.
    pub duration: Duration,
}

/// A sample whose store handle is not kept.
const NO_SLOT: u32 = u32::MAX;
/// Slots of the synthetic series: `SYNTHETIC_SLOT + i`.
const SYNTHETIC_SLOT: u32 = u32::MAX - 8;

/// The synthetic series, in the order Prometheus writes them.
const SYNTHETIC_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// What a series written as some text became.
#[derive(Debug)]
struct Entry {
    /// `None` when metric relabeling dropped it.
    kept: Option<KeptSeries>,
    /// The last scrape (iteration) whose body had it.
    seen: u64,
    /// The last scrape that had it without an explicit timestamp: only those go stale.
    tracked: u64,
    /// Where the last successful scrape had it in its body ([`NO_POSITION`] if it did not).
    position: u32,
}

/// The position of a cache entry not in the last successful scrape's order.
const NO_POSITION: u32 = u32::MAX;

#[derive(Debug)]
struct KeptSeries {
    labels: Arc<Labels>,
    /// The hash of `labels`: two spellings of one series are one series for staleness.
    hash: u64,
    series: Option<SeriesRef>,
}

/// A target's memory from scrape to scrape, as Prometheus' `scrapeCache`: every series by the
/// text it is written as (name and label set, as in the body) → its final labels after target
/// labels and metric relabeling (or the fact that relabeling drops it), the hash of those
/// labels, and the store's handle on the series. A series seen before costs one map lookup on
/// its bytes and an append by handle; labels are built, relabeled and checked only for text
/// not seen before. The entries also say which scrape last saw each series, which gives the
/// stale markers (series the previous scrape saw and this one did not) and
/// `scrape_series_added` (cache misses). Entries not seen by a successful non-empty scrape are
/// dropped after it, so the cache follows the target's series.
pub struct ScrapeCache {
    /// Entries by series text; the texts are shared with `order`.
    index: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Scrapes done; entries mark the scrape that saw them by this number.
    iteration: u64,
    /// Whether the last scrape succeeded: only then do its series go stale when missing now.
    previous_ok: bool,
    /// Entries after the last successful scrape (to bound growth over failed scrapes).
    successful_count: usize,
    /// The synthetic series' labels and handles.
    synthetic: Vec<(Arc<Labels>, Option<SeriesRef>)>,
    /// The entries the last successful scrape saw, in its body's order (and whether each counts
    /// for staleness).
    touched: Vec<(u32, bool)>,
    /// The series of the last successful scrape, as its body wrote them and in its order (their
    /// entries are `touched`, position for position): the next body, most likely in the same
    /// order, is compared with them as it is parsed, which spares reading label sets and
    /// looking texts up.
    order: parse::SeriesOrder,
    /// The memory of older lists, reused for the next ones.
    spare_touched: Vec<(u32, bool)>,
    spare_order: parse::SeriesOrder,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for ScrapeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeCache")
            .field("series", &self.index.len())
            .field("iteration", &self.iteration)
            .field("previous_ok", &self.previous_ok)
            .finish_non_exhaustive()
    }
}

impl Default for ScrapeCache {
    fn default() -> ScrapeCache {
        ScrapeCache::new()
    }
}

impl ScrapeCache {
    /// An empty cache: every series of the first scrape is added.
    pub fn new() -> ScrapeCache {
        ScrapeCache {
            index: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            iteration: 0,
            previous_ok: false,
            successful_count: 0,
            synthetic: Vec::new(),
            touched: Vec::new(),
            order: parse::SeriesOrder::new(),
            spare_touched: Vec::new(),
            spare_order: parse::SeriesOrder::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x0b5_5c4a),
        }
    }

    /// Series the cache remembers (including those metric relabeling drops).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the cache remembers no series.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn hash(&self, labels: &Labels) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(labels)
    }

    fn insert(&mut self, key: Arc<str>, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        slot
    }

    /// Undoes the [`ScrapeCache::insert`]s of `keys` (in the order they were made), when
    /// `entries` had `entries_before` slots before them: the slots they took from `free` go
    /// back to it as they were.
    fn forget_inserted(&mut self, keys: &[&str], entries_before: usize) {
        for key in keys.iter().rev() {
            let Some(slot) = self.index.remove(*key) else {
                debug_assert!(false, "an inserted key is in the index");
                continue;
            };
            if let Some(entry) = self.entries.get_mut(slot as usize) {
                *entry = None;
            }
            if (slot as usize) < entries_before {
                self.free.push(slot);
            }
        }
        self.entries.truncate(entries_before);
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Forgets the entries no scrape saw since `iteration`.
    fn flush(&mut self, iteration: u64) {
        let entries = &mut self.entries;
        let free = &mut self.free;
        self.index.retain(|_, slot| {
            let keep = entries[*slot as usize]
                .as_ref()
                .is_some_and(|entry| entry.seen >= iteration);
            if !keep {
                entries[*slot as usize] = None;
                free.push(*slot);
            }
            keep
        });
    }

    /// Stale markers at `ts` for the series scrape `previous` tracked and scrape `current`
    /// (if it succeeded) did not.
    fn stale_markers(&self, previous: u64, current: Option<u64>, ts: i64, out: &mut ScrapeResult) {
        if !self.previous_ok || previous == 0 {
            return;
        }
        let gone: Vec<&KeptSeries> = self
            .entries
            .iter()
            .flatten()
            .filter(|entry| entry.tracked == previous && entry.tracked != 0)
            .filter_map(|entry| entry.kept.as_ref())
            .collect();
        if gone.is_empty() {
            return;
        }
        // By label hash, as Prometheus tracks staleness: another spelling of a series still
        // present keeps it fresh, and two gone spellings give one marker.
        let mut present: std::collections::HashSet<u64, foldhash::fast::RandomState> = self
            .entries
            .iter()
            .flatten()
            .filter(|entry| current.is_some_and(|current| entry.tracked == current))
            .filter_map(|entry| entry.kept.as_ref().map(|kept| kept.hash))
            .collect();
        for kept in gone {
            if present.insert(kept.hash) {
                out.samples.push(RefSample {
                    series: kept.series,
                    labels: Arc::clone(&kept.labels),
                    timestamp_ms: ts,
                    value: STALE_NAN,
                });
                out.slots.push(NO_SLOT);
            }
        }
    }

    fn synthetic(&mut self, target: &Target) -> &mut Vec<(Arc<Labels>, Option<SeriesRef>)> {
        if self.synthetic.is_empty() {
            self.synthetic = SYNTHETIC_NAMES
                .iter()
                .filter_map(|name| target.labels.with_label(METRIC_NAME_LABEL, name).ok())
                .map(|labels| (Arc::new(labels), None))
                .collect();
        }
        &mut self.synthetic
    }

    /// Keeps the store's handles of the series of an appended scrape, and its copies of their
    /// labels (one copy of each label set, shared by the head and this cache).
    pub fn record_handles(&mut self, result: &ScrapeResult) {
        for (sample, &slot) in result.samples.iter().zip(&result.slots) {
            if slot == NO_SLOT {
                continue;
            }
            if slot >= SYNTHETIC_SLOT {
                if let Some(synthetic) = self.synthetic.get_mut((slot - SYNTHETIC_SLOT) as usize) {
                    synthetic.1 = sample.series;
                }
                continue;
            }
            if let Some(kept) = self.entry_mut(slot).and_then(|entry| entry.kept.as_mut()) {
                kept.series = sample.series;
                if !Arc::ptr_eq(&kept.labels, &sample.labels) {
                    kept.labels = Arc::clone(&sample.labels);
                }
            }
        }
    }

    /// Stale markers at `ts` for everything the target's last scrape wrote, for when the
    /// target goes away: its series (if that scrape succeeded) and its synthetic series.
    /// Empty if it never scraped.
    pub fn end_of_run(&mut self, target: &Target, ts: i64) -> Vec<RefSample> {
        if self.iteration == 0 {
            return Vec::new();
        }
        let mut samples = Vec::new();
        if self.previous_ok {
            let last = self.iteration;
            let mut markers = ScrapeResult::default();
            let mut seen_hashes = std::collections::HashSet::<u64, foldhash::fast::RandomState>::default();
            for kept in self
                .entries
                .iter()
                .flatten()
                .filter(|entry| entry.tracked == last)
                .filter_map(|entry| entry.kept.as_ref())
            {
                if seen_hashes.insert(kept.hash) {
                    markers.samples.push(RefSample {
                        series: kept.series,
                        labels: Arc::clone(&kept.labels),
                        timestamp_ms: ts,
                        value: STALE_NAN,
                    });
                }
            }
            samples = markers.samples;
        }
        for (labels, series) in self.synthetic(target).iter() {
            samples.push(RefSample {
                series: *series,
                labels: Arc::clone(labels),
                timestamp_ms: ts,
                value: STALE_NAN,
            });
        }
        samples
    }
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

/// Idle connections a target's client keeps.
const MAX_IDLE_CONNECTIONS: usize = 2;
/// How long an idle connection is kept: longer than any usual scrape interval.
const MAX_IDLE_AGE: Duration = Duration::from_secs(600);
/// A connection's read buffer: the response head must fit; the body streams through it.
const INPUT_BUFFER_BYTES: usize = 32 << 10;
/// A connection's write buffer: the request head (with its `Authorization` header) must fit.
const OUTPUT_BUFFER_BYTES: usize = 16 << 10;

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
        // One kept-alive connection per target, as Prometheus keeps one: with ureq's defaults
        // (10 idle connections per agent, dropped after 15 s idle) a job of 50 targets
        // connected anew for most scrapes, each connection allocating and zeroing 256 KiB of
        // buffers. Each target gets an agent of its own (see [`Client::for_target`]): ureq's
        // pool finds a connection by scanning all of them, which a job-wide pool of 50 made a
        // tenth of the scrape's CPU. The buffers are sized for scrapes: a request head is
        // small, and the body is read through the input buffer in pieces.
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .max_idle_connections(MAX_IDLE_CONNECTIONS)
                .max_idle_connections_per_host(2)
                .max_idle_age(MAX_IDLE_AGE)
                .input_buffer_size(INPUT_BUFFER_BYTES)
                .output_buffer_size(OUTPUT_BUFFER_BYTES)
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_millis(timeout_ms)))
                .user_agent(concat!("obs-appliance/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls_builder.build())
                .build(),
        );
        Ok(Client { agent })
    }

    /// A client with the same settings and a connection pool of its own, for one target.
    pub(crate) fn for_target(&self) -> Client {
        Client {
            agent: ureq::Agent::new_with_config(self.agent.config().clone()),
        }
    }

    /// GETs the target into the start of `body` (a buffer kept from scrape to scrape, see
    /// [`read_reusing`]): the content type and the body's length.
    fn fetch(
        &self,
        target: &Target,
        job: &Job,
        body: &mut Vec<u8>,
    ) -> Result<(Option<String>, usize), String> {
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
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let body_len = read_reusing(&mut reader, body, limit.saturating_add(1)).map_err(|err| {
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
        if body_len as u64 > limit {
            return Err(format!("body size limit exceeded ({limit} bytes)"));
        }
        Ok((content_type, body_len))
    }
}

/// Reads `reader` to its end, or to `max_bytes`, into the start of `buffer`: the number of bytes
/// read. All of `buffer`'s length counts as initialized bytes and is kept from body to body,
/// so that reading a body zeroes memory only when the buffer grows (`read_to_end` zeroes its
/// spare capacity on every call).
fn read_reusing(reader: &mut impl Read, buffer: &mut Vec<u8>, max_bytes: u64) -> std::io::Result<usize> {
    let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut filled = 0;
    loop {
        let end = buffer.len().min(max_bytes);
        if filled >= end {
            if filled >= max_bytes {
                return Ok(filled);
            }
            let grown = buffer
                .len()
                .saturating_mul(2)
                .clamp(64 << 10, max_bytes.max(64 << 10));
            buffer.resize(grown, 0);
            continue;
        }
        let free = buffer.get_mut(filled..end).unwrap_or_default();
        match reader.read(free) {
            Ok(0) => return Ok(filled),
            Ok(read) => filled += read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
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

/// Scrapes once at `scrape_ts` (ms): fetches and processes through the target's `cache`.
/// Runs on the blocking pool.
pub(crate) fn scrape(
    client: &Client,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    cache: &mut ScrapeCache,
) -> ScrapeResult {
    let started = Instant::now();
    let mut body = BODY_BUFFERS.take();
    let mut body_len = 0;
    let fetched = client
        .fetch(target, job, &mut body)
        .and_then(|(content_type, len)| {
            body_len = len;
            let bytes = body.get(..len).unwrap_or_default();
            let text = std::str::from_utf8(bytes).map_err(|_| "the body is not UTF-8".to_owned())?;
            Ok((text, content_type))
        });
    let result = finish(fetched, target, job, scrape_ts, cache, started);
    BODY_BUFFERS.give_back(body, body_len);
    result
}

/// The buffers bodies are read into, shared by all targets: only scrapes in flight need one,
/// so a few buffers serve every target (one per target held 50 × 185 kB in a benchmark).
static BODY_BUFFERS: BodyBuffers = BodyBuffers {
    free: std::sync::Mutex::new(Vec::new()),
};

/// How many idle body buffers are kept.
const MAX_IDLE_BODY_BUFFERS: usize = 8;

struct BodyBuffers {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl BodyBuffers {
    /// A buffer, with its initialized bytes kept (see [`read_reusing`]).
    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Keeps `buffer` for another scrape unless enough are idle or it is far larger than the
    /// body it last held (one huge body must not pin its memory).
    fn give_back(&self, buffer: Vec<u8>, body_len: usize) {
        if buffer.capacity() > 4 * body_len + (64 << 10) {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|poison| poison.into_inner());
        if free.len() < MAX_IDLE_BODY_BUFFERS {
            free.push(buffer);
        }
    }
}

/// Turns what a fetch gave into the scrape's samples: the body's samples, stale markers for
/// the series the previous scrape had and this one lacks (all of them when this one failed),
/// and the synthetic series. `cache` is the target's [`ScrapeCache`]; after the samples are
/// appended, [`ScrapeCache::record_handles`] keeps the store's handles in it. `started` is
/// when the scrape began (for `scrape_duration_seconds`). Deterministic but for that
/// duration, so tests replay sequences of responses without a server.
pub fn scrape_result(
    fetched: Fetched,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    cache: &mut ScrapeCache,
    started: Instant,
) -> ScrapeResult {
    let fetched = match &fetched {
        Fetched::Body { body, content_type } => Ok((body.as_str(), content_type.clone())),
        Fetched::Failed(error) => Err(error.clone()),
    };
    finish(fetched, target, job, scrape_ts, cache, started)
}

/// [`scrape_result`] on a borrowed body.
fn finish(
    fetched: Result<(&str, Option<String>), String>,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    cache: &mut ScrapeCache,
    started: Instant,
) -> ScrapeResult {
    let previous = cache.iteration;
    let iteration = previous + 1;
    let mut result = ScrapeResult::default();
    let processed = fetched.and_then(|(body, content_type)| {
        let format = Format::from_content_type(content_type.as_deref());
        process(body, format, target, job, scrape_ts, cache, &mut result)
            .map_err(|err| err.to_string())
            .map(|counts| (counts, body.is_empty()))
    });
    result.duration = started.elapsed();
    let (scraped, post_relabel, added) = match processed {
        Ok((counts, empty_body)) => {
            cache.spare_order = std::mem::replace(&mut cache.order, counts.order);
            for (position, &(slot, tracked)) in counts.touched.iter().enumerate() {
                if let Some(entry) = cache.entry_mut(slot) {
                    entry.seen = iteration;
                    entry.position = position as u32;
                    if tracked {
                        entry.tracked = iteration;
                    }
                }
            }
            cache.spare_touched = std::mem::replace(&mut cache.touched, counts.touched);
            cache.stale_markers(previous, Some(iteration), scrape_ts, &mut result);
            // As Prometheus: an empty body (usually a failing exporter) does not flush.
            if !empty_body {
                cache.flush(iteration);
                cache.successful_count = cache.len();
            }
            cache.previous_ok = true;
            (counts.scraped, counts.post_relabel, counts.added)
        }
        Err(error) => {
            result.samples.clear();
            result.slots.clear();
            result.metadata.clear();
            result.error = Some(error);
            cache.stale_markers(previous, None, scrape_ts, &mut result);
            // Series that varied over failed scrapes would otherwise pile up.
            if cache.len() > cache.successful_count * 2 + 1000 {
                cache.flush(iteration);
                // The order may name entries the flush dropped, whose slots new ones take.
                cache.order = parse::SeriesOrder::new();
                cache.touched.clear();
            }
            cache.previous_ok = false;
            (0, 0, 0)
        }
    };
    cache.iteration = iteration;
    let up = if result.error.is_none() { 1.0 } else { 0.0 };
    let values = [
        up,
        result.duration.as_secs_f64(),
        scraped as f64,
        post_relabel as f64,
        added as f64,
    ];
    for (index, ((labels, series), value)) in cache.synthetic(target).iter().zip(values).enumerate() {
        result.samples.push(RefSample {
            series: *series,
            labels: Arc::clone(labels),
            timestamp_ms: scrape_ts,
            value,
        });
        result.slots.push(SYNTHETIC_SLOT + index as u32);
    }
    result
}

/// The synthetic series of a target, for stale markers when it goes away.
pub fn synthetic_series(target: &Target) -> Vec<Labels> {
    SYNTHETIC_NAMES
        .iter()
        .filter_map(|name| target.labels.with_label(METRIC_NAME_LABEL, name).ok())
        .collect()
}

/// What processing a body counted, and the cache entries it saw.
struct Counts {
    scraped: usize,
    post_relabel: usize,
    added: usize,
    /// Each sample's cache slot, and whether it counts for staleness (no explicit timestamp).
    touched: Vec<(u32, bool)>,
    /// The body's series texts, in order.
    order: parse::SeriesOrder,
}

/// Why a scrape's body was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
    #[error("{0}")]
    Limit(String),
}

/// Turns a body into samples in `out`: series known to the cache by their text as they are;
/// new ones labeled (target labels per `honor_labels`), relabeled, checked against the label
/// limits and remembered. Fails on the sample limit.
///
/// The body is parsed as a stream, each sample handled as it is read. As when the whole body
/// was parsed first, a syntax error anywhere wins over a refusal of an earlier sample (the
/// label limits, a relabeling that leaves no name) and leaves the cache as it was: the series
/// this body added are forgotten again.
fn process(
    body: &str,
    format: Format,
    target: &Target,
    job: &Job,
    scrape_ts: i64,
    cache: &mut ScrapeCache,
    out: &mut ScrapeResult,
) -> Result<Counts, ProcessError> {
    let config = &job.config;
    // The last scrape's size is the best guess at this one's.
    out.samples.reserve(cache.len() + SYNTHETIC_NAMES.len());
    out.slots.reserve(cache.len() + SYNTHETIC_NAMES.len());
    let mut touched = std::mem::take(&mut cache.spare_touched);
    touched.clear();
    let order = std::mem::take(&mut cache.order);
    let last_touched = std::mem::take(&mut cache.touched);
    let mut next_order = std::mem::take(&mut cache.spare_order);
    next_order.clear(format);
    let mut scraped = 0;
    let mut added = 0;
    // The texts this body added to the cache, for a syntax error found after them.
    let mut inserted: Vec<&str> = Vec::new();
    let entries_before = cache.entries.len();
    // The first sample refused; the rest of the body is still parsed for syntax errors.
    let mut refused: Option<ProcessError> = None;
    let parsed = parse::parse_each_ordered(body, format, &order, |sample| {
        scraped += 1;
        if refused.is_some() {
            return None;
        }
        let explicit = config.honor_timestamps && sample.timestamp_ms.is_some();
        let ts = match sample.timestamp_ms {
            Some(ts) if explicit => ts,
            _ => scrape_ts,
        };
        // Where the body goes on in the last order, when it left it.
        let mut resume = None;
        let known = sample
            .position
            .and_then(|position| Some((last_touched.get(position)?.0, order.get(position)?)));
        let (slot, key) = match known.or_else(|| {
            cache
                .index
                .get_key_value(sample.series)
                .map(|(key, &slot)| (slot, key))
        }) {
            Some((slot, key)) => {
                if sample.position.is_none() {
                    resume = cache
                        .entry(slot)
                        .filter(|entry| entry.position != NO_POSITION)
                        .map(|entry| entry.position as usize + 1);
                }
                (slot, Arc::clone(key))
            }
            None => {
                let kept = match series_labels(sample, target, config) {
                    Ok(kept) => kept.map(|labels| KeptSeries {
                        hash: cache.hash(&labels),
                        labels: Arc::new(labels),
                        series: None,
                    }),
                    Err(err) => {
                        refused = Some(err);
                        return None;
                    }
                };
                added += usize::from(kept.is_some());
                inserted.push(sample.series);
                let key: Arc<str> = Arc::from(sample.series);
                let slot = cache.insert(
                    Arc::clone(&key),
                    Entry {
                        kept,
                        seen: 0,
                        tracked: 0,
                        position: NO_POSITION,
                    },
                );
                (slot, key)
            }
        };
        touched.push((slot, !explicit));
        next_order.push(key);
        if let Some(kept) = cache.entry(slot).and_then(|entry| entry.kept.as_ref()) {
            out.samples.push(RefSample {
                series: kept.series,
                labels: Arc::clone(&kept.labels),
                timestamp_ms: ts,
                value: sample.value,
            });
            out.slots.push(slot);
        }
        resume
    });
    // The last order stays until this body's replaces it in `finish`.
    cache.order = order;
    cache.touched = last_touched;
    let metadata = match parsed {
        Ok(metadata) => metadata,
        Err(err) => {
            cache.forget_inserted(&inserted, entries_before);
            cache.spare_order = next_order;
            return Err(err.into());
        }
    };
    if let Some(err) = refused {
        cache.spare_order = next_order;
        return Err(err);
    }
    let post_relabel = out.samples.len();
    if config.sample_limit > 0 && post_relabel > config.sample_limit {
        cache.spare_order = next_order;
        return Err(ProcessError::Limit(format!(
            "sample limit exceeded ({post_relabel} samples, limit {})",
            config.sample_limit
        )));
    }
    out.metadata = metadata
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
    Ok(Counts {
        scraped,
        post_relabel,
        added,
        touched,
        order: next_order,
    })
}

/// The final labels of a series not seen before: its own, the target's per `honor_labels`,
/// then metric relabeling (`None` when that drops it); checked as Prometheus checks them.
fn series_labels(
    sample: &parse::ScrapedSample<'_>,
    target: &Target,
    config: &ScrapeConfig,
) -> Result<Option<Labels>, ProcessError> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert(METRIC_NAME_LABEL.to_owned(), sample.name.to_owned());
    for (name, value) in &sample.labels {
        labels.insert((*name).to_owned(), value.to_string());
    }
    merge_target_labels(&mut labels, &target.labels, config.honor_labels);
    // Empty values are absent labels (kept until here so that `honor_labels` sees a scraped
    // `job=""` as present, as Prometheus does).
    labels.retain(|_, value| !value.is_empty());
    if !config.metric_relabel_configs.is_empty()
        && !relabel::process(&mut labels, &config.metric_relabel_configs)
    {
        return Ok(None);
    }
    // Prometheus fails the whole scrape when relabeling leaves a series without a name or with
    // invalid labels.
    if labels.get(METRIC_NAME_LABEL).is_none_or(String::is_empty) {
        return Err(ProcessError::Limit("__name__ label is mandatory".to_owned()));
    }
    check_label_limits(&labels, config)?;
    Labels::from_pairs(labels)
        .map(Some)
        .map_err(|err| ProcessError::Limit(format!("invalid metric name or label names: {err}")))
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
                .entry(label.name.to_string())
                .or_insert_with(|| label.value.to_string());
        }
        return;
    }
    let exposed: std::collections::BTreeSet<String> = labels.keys().cloned().collect();
    let mut clashes: Vec<(String, String)> = Vec::new();
    for label in target.iter() {
        if let Some(existing) = labels.insert(label.name.to_string(), label.value.to_string())
            && !existing.is_empty()
        {
            clashes.push((label.name.to_string(), existing));
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

    /// The job and target of a one-target job with `settings` (indented YAML lines of a
    /// scrape config).
    fn job_and_target(settings: &str) -> (Job, Target) {
        let yaml = format!(
            "scrape_configs:\n  - job_name: test\n{settings}    static_configs:\n      - targets: ['127.0.0.1:9']\n"
        );
        let file: crate::config::PrometheusFile = serde_yaml::from_str(&yaml).expect("valid YAML");
        let settings = crate::config::ScrapeSettings::resolve(&file, std::path::Path::new(""), "test.yml")
            .expect("a valid configuration");
        let job = settings.jobs.into_iter().next().expect("one job");
        let group = job.config.static_configs.first().expect("one group").clone();
        let target = match crate::target::populate(&job, &group, &BTreeMap::new()).pop() {
            Some(crate::target::Populated::Active(target)) => target,
            other => panic!("not an active target: {other:?}"),
        };
        (job, *target)
    }

    /// Scrapes `body` through `cache`: the error, or the series added and the samples'
    /// names and values (synthetic series left out).
    fn scrape_body(
        body: &str,
        cache: &mut ScrapeCache,
        job: &Job,
        target: &Target,
    ) -> Result<(f64, Vec<(String, f64)>), String> {
        let fetched = Fetched::Body {
            body: body.to_owned(),
            content_type: None,
        };
        let result = scrape_result(fetched, target, job, 1_000_000, cache, Instant::now());
        if let Some(error) = result.error {
            return Err(error);
        }
        let name = |sample: &RefSample| {
            sample
                .labels
                .get(METRIC_NAME_LABEL)
                .unwrap_or_default()
                .to_owned()
        };
        let added = result
            .samples
            .iter()
            .find(|sample| name(sample) == "scrape_series_added")
            .map(|sample| sample.value)
            .expect("scrape_series_added");
        let samples = result
            .samples
            .iter()
            .filter(|sample| !SYNTHETIC_NAMES.contains(&name(sample).as_str()))
            .map(|sample| (name(sample), sample.value))
            .collect();
        Ok((added, samples))
    }

    #[test]
    fn a_syntax_error_after_new_series_leaves_the_cache_as_it_was() {
        let (job, target) = job_and_target("");
        let mut cache = ScrapeCache::new();
        assert_eq!(
            scrape_body("a 1\nb 2\n", &mut cache, &job, &target).map(|r| r.0),
            Ok(2.0)
        );
        // `b` gone: its entry is flushed and its slot freed.
        assert_eq!(
            scrape_body("a 1\n", &mut cache, &job, &target).map(|r| r.0),
            Ok(0.0)
        );
        assert_eq!(cache.len(), 1);
        // New series fill the freed slot, then a new one; then the body fails.
        let failed = scrape_body("a 1\nc 3\nd 4\ne{ 5\n", &mut cache, &job, &target);
        let expected = parse::parse("a 1\nc 3\nd 4\ne{ 5\n", Format::PrometheusText)
            .map(|_| ())
            .map_err(|err| err.to_string());
        assert_eq!(failed.map(|_| ()), expected);
        assert!(expected.is_err());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.entries.iter().flatten().count(), 1);
        // As if the failed body had never been read: its series are added now.
        assert_eq!(
            scrape_body("a 1\nc 3\nd 4\n", &mut cache, &job, &target),
            Ok((
                2.0,
                vec![
                    ("a".to_owned(), 1.0),
                    ("c".to_owned(), 3.0),
                    ("d".to_owned(), 4.0)
                ]
            ))
        );
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn series_in_the_last_order_are_what_a_full_parse_makes_of_them() {
        let (job, target) = job_and_target(
            "    sample_limit: 1500\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: c\n        action: drop\n",
        );
        let many = |prefix: &str| -> String { (0..2000).map(|i| format!("{prefix}_{i} 1\n")).collect() };
        let bodies = [
            "a 1\nb{x=\"1\"} 2\nc 3\n".to_owned(),
            "a 2\nb{x=\"1\"} 3\nc 4\n".to_owned(),
            // Reordered, one gone, one new, one renamed into a longer name.
            "c 5\nnew 1\na_b 7\na 3\n".to_owned(),
            "a 1\nzz{ 1\n".to_owned(),
            "a 4\nb{x=\"1\"} 5\nc 6\nb{x=\"1\",y=\"2\"} 1\n".to_owned(),
            // Over the sample limit, twice: the cache grows past its bound and is flushed,
            // and new series take the freed slots.
            many("p"),
            many("q"),
            "q_0 1\nq_1 1\nb{x=\"1\"} 5\na 4\n".to_owned(),
            "a 4\nb{x=\"1\"} 5\nc 6\nb{x=\"1\",y=\"2\"} 1\n".to_owned(),
            "a 5\nb{x=\"1\"} 6\nc 7\nb{x=\"1\",y=\"2\"} 2\n".to_owned(),
        ];
        // Sorted: stale markers come in cache slot order, which follows each cache's hashing.
        let described = |result: &ScrapeResult| -> (Option<String>, Vec<String>) {
            let mut samples: Vec<String> = result
                .samples
                .iter()
                .filter(|sample| sample.labels.get(METRIC_NAME_LABEL) != Some("scrape_duration_seconds"))
                .map(|sample| {
                    format!(
                        "{} {} {:x}",
                        sample.labels,
                        sample.timestamp_ms,
                        sample.value.to_bits()
                    )
                })
                .collect();
            samples.sort();
            (result.error.clone(), samples)
        };
        let mut ordered = ScrapeCache::new();
        let mut unordered = ScrapeCache::new();
        let mut hits = 0;
        for (index, body) in bodies.iter().enumerate() {
            let ts = 1_000_000 + index as i64 * 1000;
            let scrape = |cache: &mut ScrapeCache| {
                let fetched = Fetched::Body {
                    body: body.clone(),
                    content_type: None,
                };
                scrape_result(fetched, &target, &job, ts, cache, Instant::now())
            };
            unordered.order = parse::SeriesOrder::new();
            let expected = scrape(&mut unordered);
            let order = ordered.order.clone();
            hits = 0;
            parse::parse_each_ordered(body, Format::PrometheusText, &order, |sample| {
                hits += usize::from(sample.position.is_some());
                None
            })
            .ok();
            let got = scrape(&mut ordered);
            assert_eq!(described(&got), described(&expected), "body {index}");
            ordered.record_handles(&got);
            unordered.record_handles(&expected);
        }
        // The last body, written as the one before, was read by its order.
        assert_eq!(hits, 4);
    }

    #[test]
    fn a_syntax_error_wins_over_an_earlier_refused_sample() {
        let (job, target) = job_and_target("    label_limit: 3\n");
        let mut cache = ScrapeCache::new();
        let too_many_labels = "a{x=\"1\",y=\"2\"} 1\n";
        let limit = scrape_body(&format!("{too_many_labels}b 1\n"), &mut cache, &job, &target);
        assert!(limit.is_err_and(|err| err.starts_with("label_limit exceeded")));
        let body = format!("{too_many_labels}b{{ 1\n");
        let syntax = scrape_body(&body, &mut cache, &job, &target);
        let expected = parse::parse(&body, Format::PrometheusText).map_err(|err| err.to_string());
        assert!(expected.as_ref().is_err_and(|err| err.ends_with("(line 2)")));
        assert_eq!(syntax.map(|_| ()), expected.map(|_| ()));
    }

    #[test]
    fn bodies_are_read_into_the_start_of_the_kept_buffer() {
        /// Hands out at most 1000 bytes per read, with an interruption before each.
        struct Trickle<'a> {
            rest: &'a [u8],
            interrupt: bool,
        }
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.interrupt = !self.interrupt;
                if self.interrupt {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                let count = out.len().min(self.rest.len()).min(1000);
                let (head, tail) = self.rest.split_at(count);
                out[..count].copy_from_slice(head);
                self.rest = tail;
                Ok(count)
            }
        }
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut buffer = Vec::new();
        for (body, max_bytes, expected_len) in [
            (&big[..], 1 << 20, big.len()),
            // Shorter than what the buffer holds from the last body.
            (&big[..10], 1 << 20, 10),
            (&big[..], 70_001, 70_001),
            (&big[..0], 1 << 20, 0),
        ] {
            let mut reader = Trickle {
                rest: body,
                interrupt: false,
            };
            let len = read_reusing(&mut reader, &mut buffer, max_bytes).expect("no error");
            assert_eq!(len, expected_len);
            assert_eq!(&buffer[..len], &body[..expected_len]);
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b""), "");
    }
}
