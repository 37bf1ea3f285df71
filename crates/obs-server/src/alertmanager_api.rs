//! The Alertmanager API v2 (`/api/v2/...`), as Prometheus, vmalert and Grafana use it:
//! Prometheus and vmalert post alerts; Grafana's Alertmanager datasource (implementation
//! "prometheus") lists alerts and groups and manages silences.
//!
//! Shapes follow Alertmanager 0.27's `api/v2/openapi.yaml`: times as RFC 3339 with
//! milliseconds (go-swagger's `strfmt.DateTime`), errors of handlers as a JSON string with
//! status 400 / 404 / 500, success of `POST /alerts` as an empty 200.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use obs_alertmanager::alert::PostableAlert;
use obs_alertmanager::labels::LabelSet;
use obs_alertmanager::matchers::{MatchType, Matcher, parse_matchers};
use obs_alertmanager::service::{AlertView, Alertmanager};
use obs_alertmanager::silence::{PostableSilence, Silence, SilenceState};
use obs_alertmanager::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::AppState;

/// The Alertmanager version whose API this follows.
const ALERTMANAGER_VERSION: &str = "0.27.0";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(alert_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        // Some clients (and the upstream UI) use DELETE on the plural path.
        .route("/api/v2/silences/{id}", delete(delete_silence))
}

/// A handler error as Alertmanager writes it: a JSON string.
struct AmError(StatusCode, String);

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> AmError {
    AmError(status, message.into())
}

fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    error(status, message).into_response()
}

fn service(state: &AppState) -> Result<&Alertmanager, AmError> {
    state.alertmanager().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alertmanager is not running yet",
        )
    })
}

/// go-swagger's `strfmt.DateTime`: RFC 3339 in UTC with milliseconds.
fn datetime(time: Timestamp) -> String {
    let text = time.to_rfc3339_nano();
    // `2024-05-01T10:00:00.123456789Z` or `2024-05-01T10:00:00Z` → `…:00.123Z` / `…:00.000Z`.
    let (seconds, fraction) = match text.strip_suffix('Z').and_then(|text| text.split_once('.')) {
        Some((seconds, fraction)) => (seconds.to_owned(), fraction.to_owned()),
        None => (text.trim_end_matches('Z').to_owned(), String::new()),
    };
    let millis: String = fraction.chars().chain(std::iter::repeat('0')).take(3).collect();
    format!("{seconds}.{millis}Z")
}

fn parse_datetime(text: &str, field: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|err| format!("{field} in body must be of type date-time: {err}"))
}

/// Query parameters, repeated keys kept (`filter` may appear several times).
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
        .unwrap_or_default()
}

/// The alert list filters of `GET /alerts` and `/alerts/groups`.
struct AlertFilter {
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
}

impl AlertFilter {
    fn parse(query: Option<&str>) -> Result<AlertFilter, AmError> {
        let mut filter = AlertFilter {
            matchers: Vec::new(),
            receiver: None,
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
        };
        let flag = |name: &str, value: &str| -> Result<bool, AmError> {
            value.parse::<bool>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{name} in query must be of type boolean: {value:?}"),
                )
            })
        };
        for (name, value) in query_pairs(query) {
            match name.as_str() {
                "filter" => {
                    let parsed = parse_matchers(&value).map_err(|err| {
                        error(StatusCode::BAD_REQUEST, format!("bad matcher format: {err}"))
                    })?;
                    filter.matchers.extend(parsed);
                }
                "receiver" => {
                    let regex = regex::Regex::new(&format!("^(?:{value})$")).map_err(|err| {
                        error(
                            StatusCode::BAD_REQUEST,
                            format!("failed to parse receiver param: {err}"),
                        )
                    })?;
                    filter.receiver = Some(regex);
                }
                "active" => filter.active = flag(&name, &value)?,
                "silenced" => filter.silenced = flag(&name, &value)?,
                "inhibited" => filter.inhibited = flag(&name, &value)?,
                "unprocessed" => filter.unprocessed = flag(&name, &value)?,
                _ => {}
            }
        }
        Ok(filter)
    }

    /// As upstream's `alertFilter`: receivers, then state flags, then matchers.
    fn accepts(&self, view: &AlertView, now: Timestamp) -> bool {
        if view.alert.ends_at.is_some_and(|ends| ends < now) {
            return false;
        }
        if let Some(receiver) = &self.receiver
            && !view.receivers.iter().any(|name| receiver.is_match(name))
        {
            return false;
        }
        let silenced = !view.status.silenced_by.is_empty();
        let inhibited = !view.status.inhibited_by.is_empty();
        let suppressed = view.suppressed();
        if !self.active && !suppressed {
            return false;
        }
        if !self.silenced && silenced {
            return false;
        }
        if !self.inhibited && inhibited {
            return false;
        }
        self.matchers
            .iter()
            .all(|matcher| matcher.matches_labels(&view.alert.labels))
    }
}

#[derive(Serialize)]
struct Receiver {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatus {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    muted_by: Vec<String>,
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableAlert {
    annotations: BTreeMap<String, String>,
    ends_at: String,
    fingerprint: String,
    receivers: Vec<Receiver>,
    starts_at: String,
    status: AlertStatus,
    updated_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    labels: BTreeMap<String, String>,
}

fn gettable_alert(view: &AlertView) -> GettableAlert {
    let alert = &view.alert;
    GettableAlert {
        annotations: alert.annotations.as_map().clone(),
        ends_at: alert
            .ends_at
            .map(datetime)
            .unwrap_or_else(|| datetime(Timestamp::from_unix_secs(0))),
        fingerprint: alert.fingerprint().to_string(),
        receivers: view
            .receivers
            .iter()
            .map(|name| Receiver { name: name.clone() })
            .collect(),
        starts_at: datetime(alert.starts_at),
        status: AlertStatus {
            inhibited_by: view.status.inhibited_by.iter().map(ToString::to_string).collect(),
            silenced_by: view.status.silenced_by.clone(),
            muted_by: view.status.muted_by.clone(),
            state: view.status.state(),
        },
        updated_at: datetime(alert.updated_at),
        generator_url: alert.generator_url.clone(),
        labels: alert.labels.as_map().clone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    cluster: ClusterStatus,
    config: ConfigBody,
    uptime: String,
    version_info: VersionInfo,
}

#[derive(Serialize)]
struct ClusterStatus {
    name: String,
    peers: Vec<()>,
    status: &'static str,
}

#[derive(Serialize)]
struct ConfigBody {
    original: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
    revision: String,
    version: &'static str,
}

async fn status(State(state): State<AppState>) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    axum::Json(StatusBody {
        cluster: ClusterStatus {
            name: String::new(),
            peers: Vec::new(),
            status: "disabled",
        },
        config: ConfigBody {
            original: service.config_original(),
        },
        uptime: datetime(service.started_at()),
        version_info: VersionInfo {
            branch: "obs-appliance",
            build_date: "",
            build_user: "obs-appliance",
            go_version: "none (rust)",
            revision: format!("obs-appliance-{}", state.build().version),
            version: ALERTMANAGER_VERSION,
        },
    })
    .into_response()
}

async fn receivers(State(state): State<AppState>) -> Response {
    match service(&state) {
        Ok(service) => axum::Json(
            service
                .receivers()
                .into_iter()
                .map(|name| Receiver { name })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(response) => response.into_response(),
    }
}

async fn get_alerts(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(response) => return response.into_response(),
    };
    let now = Timestamp::now();
    let mut alerts: Vec<AlertView> = service
        .alerts()
        .into_iter()
        .filter(|view| filter.accepts(view, now))
        .collect();
    alerts.sort_by_key(|view| view.alert.fingerprint());
    axum::Json(alerts.iter().map(gettable_alert).collect::<Vec<_>>()).into_response()
}

#[derive(Serialize)]
struct AlertGroup {
    alerts: Vec<GettableAlert>,
    labels: BTreeMap<String, String>,
    receiver: Receiver,
}

async fn alert_groups(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(response) => return response.into_response(),
    };
    let now = Timestamp::now();
    let groups: Vec<AlertGroup> = service
        .groups()
        .into_iter()
        .filter(|(group, _)| {
            filter
                .receiver
                .as_ref()
                .is_none_or(|regex| regex.is_match(&group.receiver))
        })
        .filter_map(|(group, views)| {
            let alerts: Vec<GettableAlert> = views
                .iter()
                .filter(|view| filter.accepts(view, now))
                .map(gettable_alert)
                .collect();
            (!alerts.is_empty()).then(|| AlertGroup {
                alerts,
                labels: group.labels.as_map().clone(),
                receiver: Receiver { name: group.receiver },
            })
        })
        .collect();
    axum::Json(groups).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

async fn post_alerts(State(state): State<AppState>, body: Bytes) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    let limit = state.limits().max_request_body_bytes;
    if body.len() > limit {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        );
    }
    let posted: Vec<PostedAlert> = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(err) => return error_response(StatusCode::BAD_REQUEST, format!("parsing alerts: {err}")),
    };
    let mut alerts = Vec::with_capacity(posted.len());
    for (index, alert) in posted.into_iter().enumerate() {
        let time = |text: Option<String>, field: &str| -> Result<Option<Timestamp>, AmError> {
            match text.as_deref() {
                None | Some("") | Some("0001-01-01T00:00:00Z") | Some("0001-01-01T00:00:00.000Z") => Ok(None),
                Some(text) => parse_datetime(text, &format!("{index}.{field}"))
                    .map(Some)
                    .map_err(|message| error(StatusCode::BAD_REQUEST, message)),
            }
        };
        let starts_at = match time(alert.starts_at, "startsAt") {
            Ok(time) => time,
            Err(response) => return response.into_response(),
        };
        let ends_at = match time(alert.ends_at, "endsAt") {
            Ok(time) => time,
            Err(response) => return response.into_response(),
        };
        alerts.push(PostableAlert {
            labels: alert.labels.into_iter().collect::<LabelSet>(),
            annotations: alert.annotations.into_iter().collect::<LabelSet>(),
            starts_at,
            ends_at,
            generator_url: alert.generator_url,
        });
    }
    match service.post_alerts(alerts) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(message) => error_response(StatusCode::BAD_REQUEST, message),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "default_true")]
    is_equal: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize)]
struct SilenceStatus {
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence {
    id: String,
    status: SilenceStatus,
    updated_at: String,
    comment: String,
    created_by: String,
    ends_at: String,
    matchers: Vec<ApiMatcher>,
    starts_at: String,
}

fn gettable_silence(silence: &Silence, now: Timestamp) -> GettableSilence {
    GettableSilence {
        id: silence.id.clone(),
        status: SilenceStatus {
            state: silence.state_at(now).as_str(),
        },
        updated_at: datetime(silence.updated_at),
        comment: silence.comment.clone(),
        created_by: silence.created_by.clone(),
        ends_at: datetime(silence.ends_at),
        matchers: silence
            .matchers
            .iter()
            .map(|matcher| ApiMatcher {
                name: matcher.name.clone(),
                value: matcher.value.clone(),
                is_regex: matcher.match_type.is_regex(),
                is_equal: matcher.match_type.is_equal(),
            })
            .collect(),
        starts_at: datetime(silence.starts_at),
    }
}

async fn get_silences(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    let mut matchers = Vec::new();
    for (name, value) in query_pairs(query.as_deref()) {
        if name == "filter" {
            match parse_matchers(&value) {
                Ok(parsed) => matchers.extend(parsed),
                Err(err) => {
                    return error_response(StatusCode::BAD_REQUEST, format!("bad matcher format: {err}"));
                }
            }
        }
    }
    let now = Timestamp::now();
    let mut silences: Vec<Silence> = service
        .silences()
        .into_iter()
        .filter(|silence| {
            // As upstream's `CheckSilenceMatchesFilterLabels`: a filter matcher must match one
            // of the silence's matchers taken as a label pair.
            matchers.iter().all(|filter| {
                silence
                    .matchers
                    .iter()
                    .any(|matcher| matcher.name == filter.name && filter.matches(&matcher.value))
            })
        })
        .collect();
    // As upstream's `SortSilences`: active by end, then pending by start, then expired, newest
    // end first.
    silences.sort_by(|a, b| {
        let rank = |silence: &Silence| match silence.state_at(now) {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| match a.state_at(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    axum::Json(
        silences
            .iter()
            .map(|silence| gettable_silence(silence, now))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<ApiMatcher>,
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

#[derive(Serialize)]
struct SilenceId {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

async fn post_silence(State(state): State<AppState>, body: Bytes) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    let posted: PostedSilence = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(err) => return error_response(StatusCode::BAD_REQUEST, format!("parsing silence: {err}")),
    };
    let mut matchers = Vec::with_capacity(posted.matchers.len());
    for matcher in &posted.matchers {
        let match_type = MatchType::from_flags(matcher.is_regex, matcher.is_equal);
        match Matcher::new(match_type, matcher.name.clone(), matcher.value.clone()) {
            Ok(matcher) => matchers.push(matcher),
            Err(err) => return error_response(StatusCode::BAD_REQUEST, err.to_string()),
        }
    }
    let starts_at = match parse_datetime(&posted.starts_at, "startsAt") {
        Ok(time) => time,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let ends_at = match parse_datetime(&posted.ends_at, "endsAt") {
        Ok(time) => time,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let id = posted.id.filter(|id| !id.is_empty());
    if let Some(id) = &id
        && service.silence(id).is_none()
    {
        return error_response(StatusCode::NOT_FOUND, format!("silence {id} not found"));
    }
    let silence = PostableSilence {
        id,
        matchers,
        starts_at: Some(starts_at),
        ends_at,
        created_by: posted.created_by,
        comment: posted.comment,
    };
    match service.set_silence(silence) {
        Ok(silence_id) => axum::Json(SilenceId { silence_id }).into_response(),
        Err(err) => error_response(StatusCode::BAD_REQUEST, err.to_string()),
    }
}

async fn get_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    match service.silence(&id) {
        Some(silence) => axum::Json(gettable_silence(&silence, Timestamp::now())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response.into_response(),
    };
    if service.silence(&id).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    match service.expire_silence(&id) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => error_response(StatusCode::BAD_REQUEST, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_have_milliseconds_as_go_swagger_writes_them() {
        let at = Timestamp::parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(datetime(at), "2024-05-01T10:00:00.000Z");
        let at = Timestamp::parse_rfc3339("2024-05-01T10:00:00.123456789Z").unwrap();
        assert_eq!(datetime(at), "2024-05-01T10:00:00.123Z");
        let at = Timestamp::parse_rfc3339("2024-05-01T10:00:00.5Z").unwrap();
        assert_eq!(datetime(at), "2024-05-01T10:00:00.500Z");
    }
}
