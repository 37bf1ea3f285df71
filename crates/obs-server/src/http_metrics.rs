//! Self-metrics of HTTP and gRPC requests, by route and status code.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use crate::BuildInfo;

struct SelfMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    build_info: IntGaugeVec,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        SelfMetrics {
            requests: registry.int_counter_vec(
                "obs_http_requests_total",
                "HTTP and gRPC requests served, by route and status code.",
                &["handler", "code"],
            ),
            duration: registry.histogram_vec(
                "obs_http_request_duration_seconds",
                "Latency of HTTP and gRPC requests until the response head, by route.",
                &["handler"],
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            ),
            in_flight: registry.int_gauge_vec("obs_http_requests_in_flight", "Requests being served, by route.", &["handler"]),
            build_info: registry.int_gauge_vec(
                "obs_build_info",
                "Always 1; labelled with the appliance's version and the Prometheus version it is compatible with.",
                &["version", "prometheus_compatible_version"],
            ),
        }
    })
}

pub(crate) fn register_build_info(build: &BuildInfo) {
    self_metrics()
        .build_info
        .with_label_values(&[build.version, build.prometheus_compatible_version])
        .set(1);
}

/// Counts and times a request. The `handler` label is the route pattern (bounded), never the
/// raw path, so that arbitrary paths cannot create series.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let handler = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let metrics = self_metrics();
    let in_flight = metrics.in_flight.with_label_values(&[&handler]);
    in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    in_flight.dec();
    metrics
        .duration
        .with_label_values(&[&handler])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&handler, response.status().as_str()])
        .inc();
    response
}
