//! Forwarding the rule evaluator's alerts to external Alertmanagers, as Prometheus'
//! `alerting.alertmanagers` does: a bounded queue (alerts beyond it are dropped and counted,
//! oldest first, as Prometheus' notifier drops), batches of up to 64 alerts POSTed as JSON to
//! each Alertmanager's `/api/v2/alerts`, failures logged and counted per Alertmanager.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::alert::Alert;
use crate::time::go_json_time;

/// Alerts held while the Alertmanagers are slow or down (Prometheus'
/// `--alertmanager.notification-queue-capacity`).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Alerts per request (Prometheus' `maxBatchSize`).
const MAX_BATCH: usize = 64;

/// One external Alertmanager.
#[derive(Debug, Clone)]
pub struct ForwardTarget {
    /// The full URL of its alerts endpoint (`http://am:9093/api/v2/alerts`).
    pub url: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// CA certificates (PEM) to trust instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM).
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
}

struct SelfMetrics {
    sent: prometheus::IntCounterVec,
    errors: prometheus::IntCounterVec,
    dropped: prometheus::IntCounter,
    queue: prometheus::IntGauge,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: std::sync::OnceLock<SelfMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        SelfMetrics {
            sent: registry.int_counter_vec(
                "obs_alerts_forwarded_total",
                "Alerts sent to an external Alertmanager, by its URL.",
                &["alertmanager"],
            ),
            errors: registry.int_counter_vec(
                "obs_alerts_forward_errors_total",
                "Failed requests to an external Alertmanager, by its URL.",
                &["alertmanager"],
            ),
            dropped: registry.int_counter(
                "obs_alerts_forward_dropped_total",
                "Alerts dropped because the forwarding queue was full.",
            ),
            queue: registry.int_gauge(
                "obs_alerts_forward_queue_length",
                "Alerts waiting to be forwarded.",
            ),
        }
    })
}

/// The forwarder. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

struct Inner {
    queue: Mutex<VecDeque<Alert>>,
    targets: Mutex<Arc<Vec<ForwardTarget>>>,
    wake: tokio::sync::Notify,
    shutdown: CancellationToken,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Posted<'a> {
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

impl Forwarder {
    /// Starts forwarding to `targets` (none: alerts are discarded). Needs a tokio runtime.
    pub fn start(targets: Vec<ForwardTarget>) -> Forwarder {
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            targets: Mutex::new(Arc::new(targets)),
            wake: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(run(Arc::clone(&inner)));
        Forwarder { inner }
    }

    /// Replaces the Alertmanagers (reload).
    pub fn set_targets(&self, targets: Vec<ForwardTarget>) {
        *self
            .inner
            .targets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(targets);
    }

    /// Queues alerts for every Alertmanager.
    pub fn send(&self, alerts: &[Alert]) {
        if self
            .inner
            .targets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_empty()
        {
            return;
        }
        let mut queue = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        queue.extend(alerts.iter().cloned());
        let overflow = queue.len().saturating_sub(QUEUE_CAPACITY);
        if overflow > 0 {
            queue.drain(..overflow);
            self_metrics().dropped.inc_by(overflow as u64);
            tracing::warn!(
                dropped = overflow,
                "alert forwarding queue full; oldest alerts dropped"
            );
        }
        self_metrics().queue.set(queue.len() as i64);
        drop(queue);
        self.inner.wake.notify_one();
    }

    /// Stops forwarding.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

async fn run(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = inner.wake.notified() => {}
        }
        loop {
            let batch: Vec<Alert> = {
                let mut queue = inner.queue.lock().unwrap_or_else(|poison| poison.into_inner());
                let take = queue.len().min(MAX_BATCH);
                let batch = queue.drain(..take).collect();
                self_metrics().queue.set(queue.len() as i64);
                batch
            };
            if batch.is_empty() {
                break;
            }
            let targets = Arc::clone(&inner.targets.lock().unwrap_or_else(|poison| poison.into_inner()));
            let body = body(&batch);
            let count = batch.len() as u64;
            let sent = tokio::task::spawn_blocking(move || {
                for target in targets.iter() {
                    match post(target, &body) {
                        Ok(()) => self_metrics().sent.with_label_values(&[&target.url]).inc_by(count),
                        Err(err) => {
                            self_metrics().errors.with_label_values(&[&target.url]).inc();
                            tracing::warn!(alertmanager = %target.url, error = %err, alerts = count, "cannot forward alerts");
                        }
                    }
                }
            })
            .await;
            if sent.is_err() {
                tracing::error!("alert forwarding panicked");
            }
        }
    }
}

/// The JSON body of `POST /api/v2/alerts`, as Prometheus' notifier writes it.
fn body(alerts: &[Alert]) -> String {
    let posted: Vec<Posted<'_>> = alerts
        .iter()
        .map(|alert| Posted {
            labels: alert.labels.as_map(),
            annotations: alert.annotations.as_map(),
            starts_at: go_json_time(Some(alert.starts_at)),
            ends_at: go_json_time(alert.ends_at),
            generator_url: &alert.generator_url,
        })
        .collect();
    serde_json::to_string(&posted).unwrap_or_else(|_| "[]".to_owned())
}

fn post(target: &ForwardTarget, body: &str) -> Result<(), String> {
    let tls = obs_core::httpclient::tls_config(
        target.ca_pem.as_deref(),
        target
            .client_pem
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
        target.insecure_skip_verify,
    )?;
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(target.timeout))
            .user_agent(concat!("obs-appliance/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build(),
    );
    let mut request = agent.post(&target.url).header("Content-Type", "application/json");
    if let Some(authorization) = &target.authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send(body.as_bytes()).map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}
