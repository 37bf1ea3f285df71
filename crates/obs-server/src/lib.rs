//! The HTTP and gRPC front of obs-appliance.
//!
//! One [`Mux`] serves every API family on every listener: requests whose `content-type` is
//! `application/grpc` go to the gRPC services (tonic; OTLP and the standard gRPC health
//! service), everything else to the HTTP routers (axum): the operational endpoints
//! (`/-/healthy`, `/-/ready`, `/metrics`) and one module per compatible external API
//! (`prometheus_api`, `otlp_api`, `loki_api`, `alertmanager_api`, `tempo_api`). Their
//! paths do not collide, so a single port is enough; the classic ports are extra listeners
//! serving the same [`Mux`].
//!
//! This crate is the only one that knows HTTP status codes, gRPC codes and the JSON shapes of
//! the upstream APIs. Errors from the stores arrive as [`obs_core::error::ErrorKind`]s and are
//! mapped to each family's wire format in one place, [`error::ApiError`].
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use obs_server::{AppState, BuildInfo, listener, router};
//! let state = AppState::new(BuildInfo::current(), obs_core::limits::Limits::default()).await;
//! let mux = router(state.clone());
//! let bound = listener::bind("127.0.0.1:9090".parse().unwrap())?;
//! state.set_ready(true).await;
//! listener::serve(vec![bound], mux, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

mod alertmanager_api;
pub mod error;
mod http_metrics;
mod jaeger_api;
pub mod listener;
mod loki_api;
mod loki_discovery;
mod loki_query;
mod loki_tail;
mod mux;
mod ops;
mod otlp_api;
pub mod prometheus_api;
mod tempo_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use obs_core::limits::Limits;

pub use loki_query::log_rule_querier;
pub use mux::Mux;

/// What `/api/v1/status/buildinfo` and `obs_build_info` report.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The appliance's own version.
    pub version: &'static str,
    /// The Prometheus version whose API and PromQL semantics the appliance follows. Grafana
    /// reads it to decide which API features to use.
    pub prometheus_compatible_version: &'static str,
}

impl BuildInfo {
    /// The build of this binary.
    pub fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            prometheus_compatible_version: "2.42.0",
        }
    }
}

/// Reloads the configuration: `Err` carries the message for the client.
pub type ReloadHook = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// A [`ReloadHook`] in the state.
struct Reload(ReloadHook);

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reload")
    }
}

/// Queries that may run at once unless configured.
pub const DEFAULT_QUERY_CONCURRENCY: usize = 20;

/// State shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    ready: AtomicBool,
    build: BuildInfo,
    limits: Limits,
    health: tonic_health::server::HealthReporter,
    /// The standard gRPC health service; [`router`] adds the OTLP collectors.
    grpc_routes: tonic::service::Routes,
    /// Limits and defaults of PromQL queries.
    query_options: std::sync::RwLock<obs_promql::EngineOptions>,
    /// Slots for concurrent queries.
    query_slots: std::sync::RwLock<Arc<tokio::sync::Semaphore>>,
    /// When the appliance started (`/api/v1/status/runtimeinfo`).
    started: std::time::SystemTime,
    /// The metrics retention as Prometheus writes it (`15d`), and the Prometheus-facing
    /// configuration as YAML (`/api/v1/status/config`).
    prometheus_view: std::sync::RwLock<(String, String)>,
    /// How OTLP metrics become Prometheus series.
    otlp_options: std::sync::RwLock<obs_metrics::otlp::OtlpOptions>,
    /// The scrape manager, once scraping runs.
    scrape: std::sync::OnceLock<obs_scrape::manager::ScrapeManager>,
    /// The rule manager, once rules run.
    rules: std::sync::OnceLock<obs_rules::manager::RuleManager>,
    /// The notifier (Alertmanager API v2), once it runs.
    alertmanager: std::sync::OnceLock<obs_alertmanager::service::Alertmanager>,
    /// Reloads the configuration (`POST /-/reload`); set by the binary.
    reload: std::sync::OnceLock<Reload>,
    /// The metrics store, once it has replayed its write-ahead log.
    metrics: std::sync::OnceLock<Arc<obs_metrics::store::MetricsStore>>,
    /// The log store, once it has replayed its write-ahead log.
    logs: std::sync::OnceLock<Arc<obs_logs::store::LogStore>>,
    /// The span store, once it has replayed its write-ahead log.
    traces: std::sync::OnceLock<Arc<obs_traces::store::TraceStore>>,
    /// Spans handed to the span-metrics and service-graph generator after they are stored.
    span_sink: std::sync::OnceLock<SpanSink>,
}

/// Receives the spans of each stored export (the span-metrics generator).
#[derive(Clone)]
pub struct SpanSink(pub Arc<SpanSinkFn>);

/// What a [`SpanSink`] calls with the spans of each stored export.
pub type SpanSinkFn = dyn Fn(&[obs_traces::record::SpanDoc]) + Send + Sync;

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanSink")
    }
}

impl AppState {
    /// New state; not ready (HTTP `/-/ready` 503, gRPC health `NOT_SERVING`) until
    /// [`AppState::set_ready`].
    pub async fn new(build: BuildInfo, limits: Limits) -> AppState {
        let (health, health_service) = tonic_health::server::health_reporter();
        let state = AppState {
            inner: Arc::new(StateInner {
                ready: AtomicBool::new(false),
                build,
                limits,
                health,
                grpc_routes: tonic::service::Routes::new(health_service),
                otlp_options: std::sync::RwLock::new(obs_metrics::otlp::OtlpOptions::default()),
                query_options: std::sync::RwLock::new(obs_promql::EngineOptions::default()),
                query_slots: std::sync::RwLock::new(Arc::new(tokio::sync::Semaphore::new(
                    DEFAULT_QUERY_CONCURRENCY,
                ))),
                started: std::time::SystemTime::now(),
                prometheus_view: std::sync::RwLock::new(("15d".to_owned(), "global: {}\n".to_owned())),
                metrics: std::sync::OnceLock::new(),
                logs: std::sync::OnceLock::new(),
                traces: std::sync::OnceLock::new(),
                span_sink: std::sync::OnceLock::new(),
                scrape: std::sync::OnceLock::new(),
                rules: std::sync::OnceLock::new(),
                alertmanager: std::sync::OnceLock::new(),
                reload: std::sync::OnceLock::new(),
            }),
        };
        state.set_ready(false).await;
        state
    }

    /// Whether startup (write-ahead log replay) has finished.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Marks the appliance ready (or not) on `/-/ready` and on the gRPC health service.
    pub async fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
        let status = if ready {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        self.inner.health.set_service_status("", status).await;
    }

    /// Attaches the metrics store once it is open; ingest and queries of metrics answer 503
    /// until then.
    pub fn attach_metrics(&self, store: Arc<obs_metrics::store::MetricsStore>) {
        let _ = self.inner.metrics.set(store);
    }

    /// The metrics store, when attached.
    pub fn metrics(&self) -> Option<&Arc<obs_metrics::store::MetricsStore>> {
        self.inner.metrics.get()
    }

    /// Serves the log store from now on.
    pub fn attach_logs(&self, store: Arc<obs_logs::store::LogStore>) {
        let _ = self.inner.logs.set(store);
    }

    /// The log store, when attached.
    pub fn logs(&self) -> Option<&Arc<obs_logs::store::LogStore>> {
        self.inner.logs.get()
    }

    /// Serves the span store from now on.
    pub fn attach_traces(&self, store: Arc<obs_traces::store::TraceStore>) {
        let _ = self.inner.traces.set(store);
    }

    /// The span store, when attached.
    pub fn traces(&self) -> Option<&Arc<obs_traces::store::TraceStore>> {
        self.inner.traces.get()
    }

    /// Hands every stored span to `sink` from now on (span metrics and service graph).
    pub fn set_span_sink(&self, sink: SpanSink) {
        let _ = self.inner.span_sink.set(sink);
    }

    /// Where stored spans go after they are acknowledged, if anywhere.
    pub(crate) fn span_sink(&self) -> Option<&SpanSink> {
        self.inner.span_sink.get()
    }

    /// Sets how OTLP metrics are converted.
    pub fn set_otlp_options(&self, options: obs_metrics::otlp::OtlpOptions) {
        *self
            .inner
            .otlp_options
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = options;
    }

    /// How OTLP metrics are converted.
    pub fn otlp_options(&self) -> obs_metrics::otlp::OtlpOptions {
        self.inner
            .otlp_options
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Sets the limits of PromQL queries and how many run at once.
    pub fn set_query_options(&self, options: obs_promql::EngineOptions, max_concurrency: usize) {
        *self
            .inner
            .query_options
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = options;
        *self
            .inner
            .query_slots
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) =
            Arc::new(tokio::sync::Semaphore::new(max_concurrency.max(1)));
    }

    /// The limits of PromQL queries.
    pub fn query_options(&self) -> obs_promql::EngineOptions {
        self.inner
            .query_options
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The slots for concurrent queries.
    pub(crate) fn query_slots(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(
            &self
                .inner
                .query_slots
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Sets what `/api/v1/status/{flags,config,runtimeinfo}` report: the metrics retention
    /// (`15d`) and the Prometheus-facing configuration as YAML.
    pub fn set_prometheus_view(&self, retention: String, config_yaml: String) {
        *self
            .inner
            .prometheus_view
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = (retention, config_yaml);
    }

    pub(crate) fn metrics_retention_text(&self) -> String {
        self.inner
            .prometheus_view
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .0
            .clone()
    }

    pub(crate) fn prometheus_config_yaml(&self) -> String {
        self.inner
            .prometheus_view
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .1
            .clone()
    }

    /// When the appliance started.
    pub fn started(&self) -> std::time::SystemTime {
        self.inner.started
    }

    /// Attaches the scrape manager (`/api/v1/targets`).
    pub fn attach_scrape(&self, manager: obs_scrape::manager::ScrapeManager) {
        let _ = self.inner.scrape.set(manager);
    }

    /// The scrape manager, when attached.
    pub fn scrape(&self) -> Option<&obs_scrape::manager::ScrapeManager> {
        self.inner.scrape.get()
    }

    /// Attaches the rule manager (`/api/v1/rules`, `/api/v1/alerts`).
    pub fn attach_rules(&self, manager: obs_rules::manager::RuleManager) {
        let _ = self.inner.rules.set(manager);
    }

    /// The rule manager, when attached.
    pub fn rules(&self) -> Option<&obs_rules::manager::RuleManager> {
        self.inner.rules.get()
    }

    /// Serves the Alertmanager API from `service`.
    pub fn attach_alertmanager(&self, service: obs_alertmanager::service::Alertmanager) {
        let _ = self.inner.alertmanager.set(service);
    }

    /// The notifier, once it runs.
    pub fn alertmanager(&self) -> Option<&obs_alertmanager::service::Alertmanager> {
        self.inner.alertmanager.get()
    }

    /// Sets what `POST /-/reload` does.
    pub fn set_reload(&self, hook: ReloadHook) {
        let _ = self.inner.reload.set(Reload(hook));
    }

    pub(crate) fn reload_hook(&self) -> Option<ReloadHook> {
        self.inner.reload.get().map(|reload| Arc::clone(&reload.0))
    }

    /// The build being served.
    pub fn build(&self) -> &BuildInfo {
        &self.inner.build
    }

    /// Request limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }
}

/// Builds the [`Mux`] serving every API family.
pub fn router(state: AppState) -> Mux {
    let http = ops::routes()
        .merge(prometheus_api::routes())
        .merge(alertmanager_api::routes())
        .merge(otlp_api::routes())
        .merge(loki_api::routes())
        .merge(tempo_api::routes())
        .merge(jaeger_api::routes())
        .fallback(ops::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits().max_request_body_bytes,
        ))
        .layer(axum::middleware::from_fn(http_metrics::track))
        .with_state(state.clone());

    let grpc = state
        .inner
        .grpc_routes
        .clone()
        .add_service(otlp_api::ExportGrpc::<otlp_api::MetricsExport>::new(
            state.clone(),
        ))
        .add_service(otlp_api::ExportGrpc::<otlp_api::LogsExport>::new(state.clone()))
        .add_service(otlp_api::ExportGrpc::<otlp_api::TracesExport>::new(state.clone()))
        .into_axum_router()
        .layer(axum::middleware::from_fn(http_metrics::track));
    http_metrics::register_build_info(state.build());
    Mux::new(http, grpc)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let response = router(state.clone())
            .into_router()
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, body)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn ready_is_503_until_startup_finishes() {
        let state = AppState::new(BuildInfo::current(), Limits::default()).await;
        let (status, headers, _) = call(&state, get("/-/ready")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[http::header::RETRY_AFTER], "1");
        // Liveness does not depend on readiness.
        let (status, _, _) = call(&state, get("/-/healthy")).await;
        assert_eq!(status, StatusCode::OK);
        state.set_ready(true).await;
        let (status, _, body) = call(&state, get("/-/ready")).await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, &b"obs-appliance is Ready.\n"[..])
        );
    }

    fn health_check() -> Request<Body> {
        Request::post("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::from(vec![0u8, 0, 0, 0, 0]))
            .unwrap()
    }

    #[tokio::test]
    async fn grpc_health_follows_readiness() {
        let state = AppState::new(BuildInfo::current(), Limits::default()).await;
        // HealthCheckResponse { status: NOT_SERVING (2) }, then SERVING (1).
        let (_, _, body) = call(&state, health_check()).await;
        assert_eq!(body, [0, 0, 0, 0, 2, 0x08, 0x02]);
        state.set_ready(true).await;
        let (_, _, body) = call(&state, health_check()).await;
        assert_eq!(body, [0, 0, 0, 0, 2, 0x08, 0x01]);
    }

    #[tokio::test]
    async fn grpc_content_type_routes_to_grpc_even_on_http_paths() {
        let state = AppState::new(BuildInfo::current(), Limits::default()).await;
        let request = Request::post("/-/healthy")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = call(&state, request).await;
        // tonic answers unknown methods with UNIMPLEMENTED in a trailers-only response.
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["grpc-status"], "12");
    }
}
