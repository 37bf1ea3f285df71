//! alertmanager.yml: parsing, defaults and validation as Alertmanager 0.27 applies them.
//!
//! [`Config::parse`] reads the YAML strictly (an unknown key is an error, as upstream's
//! `yaml.UnmarshalStrict`), applies the defaults (`resolve_timeout` 5m; `send_resolved` true
//! for webhooks and false for email; SMTP settings inherited from `global`), and checks what
//! upstream checks: the root route has a receiver and no matchers, `continue` or time
//! intervals; every receiver and time interval a route names exists; receiver names are
//! unique; `group_interval` and `repeat_interval` are not zero; `group_by` has no duplicates
//! and does not mix `...` with names. Errors name the YAML path (`route.routes[1].matchers[0]:
//! …`).
//!
//! Supported receivers: `webhook_configs`, `email_configs`, and the obs-appliance extension
//! `ntfy_configs` (not in upstream Alertmanager). The other upstream integrations (Slack,
//! PagerDuty, …) are refused with an error saying so, rather than accepted and never
//! delivered; their `global` settings (`slack_api_url`, …) are accepted and ignored with a
//! warning. `templates` is accepted, with a warning when it lists files: custom notification
//! templates are not supported.
//!
//! Secrets ([`Secret`]: passwords, tokens, credentials, webhook URLs) never appear in `Debug`
//! output or in error messages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use obs_core::units::PromDuration;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::Error;
use crate::matchers::{MatchType, Matcher, Matchers, parse_matchers};
use crate::timeinterval::TimeInterval;

/// The default `group_wait`.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// The default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// The default `global.resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The default ntfy server of an `ntfy_configs` entry without `url`.
pub const DEFAULT_NTFY_URL: &str = "https://ntfy.sh";

/// A secret string (password, token, credentials, webhook URL): its value is only reachable
/// through [`Secret::expose`]; `Debug` prints `<secret>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the code that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        // Any scalar is accepted, so that a type error never echoes the value.
        deserializer
            .deserialize_any(ScalarStringVisitor("a secret string"))
            .map(Secret)
    }
}

/// A YAML scalar read as a string (yaml.v2 decodes `500` into a string field as `"500"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ScalarString(String);

struct ScalarStringVisitor(&'static str);

impl Visitor<'_> for ScalarStringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }
}

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ScalarString, D::Error> {
        deserializer
            .deserialize_any(ScalarStringVisitor("a string"))
            .map(ScalarString)
    }
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// A validated alertmanager.yml. `Debug` leaves out the original text, which holds secrets.
#[derive(Clone)]
pub struct Config {
    /// `global`, with defaults applied.
    pub global: GlobalConfig,
    /// The root of the routing tree.
    pub route: RouteConfig,
    /// `inhibit_rules`.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// `receivers`, in file order.
    pub receivers: Vec<Receiver>,
    /// `templates` as written (not used; see the module docs).
    pub templates: Vec<String>,
    /// `time_intervals` and the deprecated `mute_time_intervals`, by name.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    /// Things accepted but ignored, to log once at load.
    pub warnings: Vec<String>,
    /// The YAML text the configuration was parsed from (API v2 `/status` shows it).
    pub original: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("global", &self.global)
            .field("route", &self.route)
            .field("inhibit_rules", &self.inhibit_rules)
            .field("receivers", &self.receivers)
            .field("templates", &self.templates)
            .field("time_intervals", &self.time_intervals)
            .field("warnings", &self.warnings)
            .field("original", &format_args!("<{} bytes>", self.original.len()))
            .finish()
    }
}

/// `global`.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// After how long an alert without `endsAt` counts as resolved.
    pub resolve_timeout: Duration,
    /// The default HTTP client settings of webhook and ntfy receivers.
    pub http_config: HttpClientConfig,
    /// Default sender address.
    pub smtp_from: Option<String>,
    /// Default SMTP HELO name (`localhost`).
    pub smtp_hello: String,
    /// Default `host:port` of the SMTP server.
    pub smtp_smarthost: Option<String>,
    /// Default SMTP user.
    pub smtp_auth_username: Option<String>,
    /// Default SMTP password.
    pub smtp_auth_password: Option<Secret>,
    /// Default SMTP password file.
    pub smtp_auth_password_file: Option<String>,
    /// Default CRAM-MD5 secret.
    pub smtp_auth_secret: Option<Secret>,
    /// Default PLAIN identity.
    pub smtp_auth_identity: Option<String>,
    /// Whether STARTTLS is required (default true).
    pub smtp_require_tls: bool,
    /// Default TLS settings of SMTP connections.
    pub smtp_tls_config: TlsConfig,
}

/// How alerts are grouped on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `['...']`: every label, i.e. no aggregation.
    All,
    /// These label names (possibly none: one group for the route).
    Labels(Vec<String>),
}

/// One node of the routing tree as configured (inheritance is applied by [`crate::route`]).
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The receiver, if set on this node.
    pub receiver: Option<String>,
    /// `group_by`, if set on this node.
    pub group_by: Option<GroupBy>,
    /// `continue`.
    pub continue_matching: bool,
    /// `match`, `match_re` and `matchers` together, sorted as upstream sorts them.
    pub matchers: Matchers,
    /// `group_wait`, if set.
    pub group_wait: Option<Duration>,
    /// `group_interval`, if set.
    pub group_interval: Option<Duration>,
    /// `repeat_interval`, if set.
    pub repeat_interval: Option<Duration>,
    /// `mute_time_intervals` (not inherited, as upstream).
    pub mute_time_intervals: Vec<String>,
    /// `active_time_intervals` (not inherited, as upstream).
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    pub routes: Vec<RouteConfig>,
}

/// An inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRuleConfig {
    /// What a source (inhibiting) alert must match (`source_match`, `source_match_re`,
    /// `source_matchers`).
    pub source_matchers: Matchers,
    /// What a target (inhibited) alert must match.
    pub target_matchers: Matchers,
    /// Labels whose values must be equal in source and target (missing = empty).
    pub equal: Vec<String>,
}

/// A named receiver and its integrations.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The name routes refer to.
    pub name: String,
    /// Webhooks.
    pub webhook_configs: Vec<WebhookConfig>,
    /// Email.
    pub email_configs: Vec<EmailConfig>,
    /// ntfy (obs-appliance extension).
    pub ntfy_configs: Vec<NtfyConfig>,
}

/// `webhook_configs` entry.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Whether resolved alerts are sent (default true).
    pub send_resolved: bool,
    /// HTTP client settings (the global ones if absent).
    pub http_config: HttpClientConfig,
    /// The URL (a secret, as upstream's `SecretURL`).
    pub url: Option<Secret>,
    /// A file holding the URL, read at send time.
    pub url_file: Option<String>,
    /// At most this many alerts per message; 0 = no limit.
    pub max_alerts: u64,
    /// Request timeout; `None` = bounded only by `group_interval`.
    pub timeout: Option<Duration>,
}

/// `email_configs` entry, with the `global` SMTP defaults applied.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Whether resolved alerts are sent (default false).
    pub send_resolved: bool,
    /// Recipient(s).
    pub to: String,
    /// Sender.
    pub from: String,
    /// HELO name.
    pub hello: String,
    /// `host:port`.
    pub smarthost: String,
    /// SMTP user.
    pub auth_username: Option<String>,
    /// SMTP password.
    pub auth_password: Option<Secret>,
    /// SMTP password file.
    pub auth_password_file: Option<String>,
    /// CRAM-MD5 secret.
    pub auth_secret: Option<Secret>,
    /// PLAIN identity.
    pub auth_identity: Option<String>,
    /// Extra headers, names canonicalised (`Subject`, `X-Team`).
    pub headers: BTreeMap<String, String>,
    /// HTML body template (default `{{ template "email.default.html" . }}`).
    pub html: String,
    /// Text body template (default empty).
    pub text: String,
    /// Whether STARTTLS is required.
    pub require_tls: bool,
    /// TLS settings.
    pub tls_config: TlsConfig,
}

/// `ntfy_configs` entry — an **obs-appliance extension**, not an upstream Alertmanager
/// receiver: posts to `<url>/<topic>` with `Title`, `Priority` and `Tags` headers.
#[derive(Debug, Clone)]
pub struct NtfyConfig {
    /// Whether resolved alerts are sent (default true).
    pub send_resolved: bool,
    /// The server, default `https://ntfy.sh`.
    pub url: String,
    /// The topic.
    pub topic: String,
    /// Priority 1 (min) to 5 (max); `None` = the server's default (3).
    pub priority: Option<u8>,
    /// Tags (emoji shortcodes or words).
    pub tags: Vec<String>,
    /// Access token, sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// A file holding the token.
    pub token_file: Option<String>,
    /// HTTP client settings (basic auth, TLS; the global ones if absent).
    pub http_config: HttpClientConfig,
}

/// prometheus/common `http_config`, the parts obs-appliance supports.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpClientConfig {
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// The `Authorization` header (`bearer_token` is folded in here, as upstream does).
    pub authorization: Option<Authorization>,
    /// TLS settings.
    pub tls_config: TlsConfig,
    /// Whether redirects are followed (default true).
    pub follow_redirects: bool,
    /// Whether HTTP/2 may be used (default true).
    pub enable_http2: bool,
    /// Proxy URL.
    pub proxy_url: Option<Secret>,
    /// Hosts that bypass the proxy.
    pub no_proxy: Option<String>,
    /// Whether the proxy comes from the environment.
    pub proxy_from_environment: bool,
}

impl Default for HttpClientConfig {
    fn default() -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
        }
    }
}

/// `basic_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// File holding the user name.
    pub username_file: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<String>,
}

/// `authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The scheme, default `Bearer`.
    pub auth_type: String,
    /// The credentials.
    pub credentials: Option<Secret>,
    /// A file holding the credentials.
    pub credentials_file: Option<String>,
}

/// `tls_config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// CA certificate (PEM text).
    pub ca: Option<String>,
    /// CA certificate file.
    pub ca_file: Option<String>,
    /// Client certificate (PEM text).
    pub cert: Option<String>,
    /// Client certificate file.
    pub cert_file: Option<String>,
    /// Client key (PEM text).
    pub key: Option<Secret>,
    /// Client key file.
    pub key_file: Option<String>,
    /// Server name for SNI and verification.
    pub server_name: Option<String>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    pub min_version: Option<String>,
    /// Maximum TLS version.
    pub max_version: Option<String>,
}

impl Config {
    /// Parses and validates alertmanager.yml text. This is the fuzzing entry point: it never
    /// panics, whatever the input.
    pub fn parse(yaml: &str) -> Result<Config, Error> {
        let raw: Option<RawConfig> =
            serde_yaml::from_str(yaml).map_err(|err| Error::config("", err.to_string()))?;
        // As upstream: an empty document fails in `Load`, a document without `route` in
        // `UnmarshalYAML`, with different messages.
        let Some(raw) = raw else {
            return Err(Error::config("route", "no route provided in config"));
        };
        let mut config = build(raw)?;
        config.original = yaml.to_owned();
        Ok(config)
    }

    /// Reads and parses a file, then resolves relative file paths in `http_config` (password,
    /// credentials, bearer token and TLS files) and `templates` against its directory, as
    /// upstream's `LoadFile` does.
    pub fn load_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::config("", format!("read {}: {err}", path.display())))?;
        let mut config = Config::parse(&text)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// The receiver named `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|receiver| receiver.name == name)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |file: &mut Option<String>| {
            if let Some(name) = file
                && !name.is_empty()
                && Path::new(name.as_str()).is_relative()
            {
                *name = base.join(name.as_str()).to_string_lossy().into_owned();
            }
        };
        let resolve_http = |http: &mut HttpClientConfig| {
            if let Some(basic) = &mut http.basic_auth {
                join(&mut basic.username_file);
                join(&mut basic.password_file);
            }
            if let Some(authorization) = &mut http.authorization {
                join(&mut authorization.credentials_file);
            }
            join(&mut http.tls_config.ca_file);
            join(&mut http.tls_config.cert_file);
            join(&mut http.tls_config.key_file);
        };
        for template in &mut self.templates {
            if Path::new(template.as_str()).is_relative() {
                *template = base.join(template.as_str()).to_string_lossy().into_owned();
            }
        }
        resolve_http(&mut self.global.http_config);
        for receiver in &mut self.receivers {
            for webhook in &mut receiver.webhook_configs {
                resolve_http(&mut webhook.http_config);
            }
            for ntfy in &mut receiver.ntfy_configs {
                resolve_http(&mut ntfy.http_config);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The YAML as written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: Option<RawGlobal>,
    route: Option<RawRoute>,
    inhibit_rules: Option<Vec<RawInhibitRule>>,
    receivers: Option<Vec<RawReceiver>>,
    templates: Option<Vec<String>>,
    mute_time_intervals: Option<Vec<RawNamedIntervals>>,
    time_intervals: Option<Vec<RawNamedIntervals>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    resolve_timeout: Option<PromDuration>,
    http_config: Option<RawHttpConfig>,
    smtp_from: Option<String>,
    smtp_hello: Option<String>,
    smtp_smarthost: Option<String>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<Secret>,
    smtp_auth_password_file: Option<String>,
    smtp_auth_secret: Option<Secret>,
    smtp_auth_identity: Option<String>,
    smtp_require_tls: Option<bool>,
    smtp_tls_config: Option<RawTlsConfig>,
    // Settings of integrations obs-appliance does not have: accepted, ignored, warned about.
    slack_api_url: Option<serde_yaml::Value>,
    slack_api_url_file: Option<serde_yaml::Value>,
    pagerduty_url: Option<serde_yaml::Value>,
    opsgenie_api_url: Option<serde_yaml::Value>,
    opsgenie_api_key: Option<serde_yaml::Value>,
    opsgenie_api_key_file: Option<serde_yaml::Value>,
    wechat_api_url: Option<serde_yaml::Value>,
    wechat_api_secret: Option<serde_yaml::Value>,
    wechat_api_corp_id: Option<serde_yaml::Value>,
    victorops_api_url: Option<serde_yaml::Value>,
    victorops_api_key: Option<serde_yaml::Value>,
    victorops_api_key_file: Option<serde_yaml::Value>,
    telegram_api_url: Option<serde_yaml::Value>,
    webex_api_url: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    #[serde(rename = "continue")]
    continue_matching: Option<bool>,
    #[serde(rename = "match")]
    match_equal: Option<BTreeMap<String, ScalarString>>,
    match_re: Option<BTreeMap<String, Option<ScalarString>>>,
    matchers: Option<Vec<String>>,
    mute_time_intervals: Option<Vec<String>>,
    active_time_intervals: Option<Vec<String>>,
    routes: Option<Vec<RawRoute>>,
    group_wait: Option<PromDuration>,
    group_interval: Option<PromDuration>,
    repeat_interval: Option<PromDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInhibitRule {
    source_match: Option<BTreeMap<String, ScalarString>>,
    source_match_re: Option<BTreeMap<String, Option<ScalarString>>>,
    source_matchers: Option<Vec<String>>,
    target_match: Option<BTreeMap<String, ScalarString>>,
    target_match_re: Option<BTreeMap<String, Option<ScalarString>>>,
    target_matchers: Option<Vec<String>>,
    equal: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Option<String>,
    webhook_configs: Option<Vec<Option<RawWebhook>>>,
    email_configs: Option<Vec<Option<RawEmail>>>,
    ntfy_configs: Option<Vec<Option<RawNtfy>>>,
    discord_configs: Option<serde_yaml::Value>,
    pagerduty_configs: Option<serde_yaml::Value>,
    slack_configs: Option<serde_yaml::Value>,
    opsgenie_configs: Option<serde_yaml::Value>,
    wechat_configs: Option<serde_yaml::Value>,
    pushover_configs: Option<serde_yaml::Value>,
    victorops_configs: Option<serde_yaml::Value>,
    sns_configs: Option<serde_yaml::Value>,
    telegram_configs: Option<serde_yaml::Value>,
    webex_configs: Option<serde_yaml::Value>,
    msteams_configs: Option<serde_yaml::Value>,
    msteamsv2_configs: Option<serde_yaml::Value>,
    jira_configs: Option<serde_yaml::Value>,
    rocketchat_configs: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    send_resolved: Option<bool>,
    http_config: Option<RawHttpConfig>,
    url: Option<Secret>,
    url_file: Option<String>,
    max_alerts: Option<u64>,
    timeout: Option<PromDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    send_resolved: Option<bool>,
    to: Option<String>,
    from: Option<String>,
    hello: Option<String>,
    smarthost: Option<String>,
    auth_username: Option<String>,
    auth_password: Option<Secret>,
    auth_password_file: Option<String>,
    auth_secret: Option<Secret>,
    auth_identity: Option<String>,
    headers: Option<BTreeMap<String, ScalarString>>,
    html: Option<String>,
    text: Option<String>,
    require_tls: Option<bool>,
    tls_config: Option<RawTlsConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNtfy {
    send_resolved: Option<bool>,
    url: Option<String>,
    topic: Option<String>,
    priority: Option<ScalarString>,
    tags: Option<Vec<String>>,
    token: Option<Secret>,
    token_file: Option<String>,
    http_config: Option<RawHttpConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttpConfig {
    basic_auth: Option<RawBasicAuth>,
    authorization: Option<RawAuthorization>,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    tls_config: Option<RawTlsConfig>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
    proxy_url: Option<Secret>,
    no_proxy: Option<String>,
    proxy_from_environment: Option<bool>,
    oauth2: Option<serde_yaml::Value>,
    proxy_connect_header: Option<serde_yaml::Value>,
    http_headers: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    username_file: Option<String>,
    password: Option<Secret>,
    password_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(rename = "type")]
    auth_type: Option<String>,
    credentials: Option<Secret>,
    credentials_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTlsConfig {
    ca: Option<String>,
    ca_file: Option<String>,
    cert: Option<String>,
    cert_file: Option<String>,
    key: Option<Secret>,
    key_file: Option<String>,
    server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedIntervals {
    name: Option<String>,
    time_intervals: Option<Vec<TimeInterval>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

fn non_empty_secret(value: Option<Secret>) -> Option<Secret> {
    value.filter(|secret| !secret.is_empty())
}

/// Prometheus' legacy label-name rule, which `match` keys must follow.
fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn build(raw: RawConfig) -> Result<Config, Error> {
    let mut warnings = Vec::new();
    let global = build_global(raw.global.unwrap_or_default(), &mut warnings)?;

    let mut receivers = Vec::new();
    let mut receiver_names = BTreeSet::new();
    for (index, raw_receiver) in raw.receivers.unwrap_or_default().into_iter().enumerate() {
        let path = format!("receivers[{index}]");
        let receiver = build_receiver(raw_receiver, &global, &path)?;
        if !receiver_names.insert(receiver.name.clone()) {
            return Err(Error::config(
                format!("{path}.name"),
                format!("notification config name {:?} is not unique", receiver.name),
            ));
        }
        receivers.push(receiver);
    }

    let Some(raw_route) = raw.route else {
        return Err(Error::config("route", "no routes provided"));
    };
    let route = build_route(raw_route, "route")?;
    if route.continue_matching {
        return Err(Error::config(
            "route.continue",
            "cannot have continue in root route",
        ));
    }
    if route.receiver.is_none() {
        return Err(Error::config(
            "route.receiver",
            "root route must specify a default receiver",
        ));
    }
    if !route.matchers.is_empty() {
        return Err(Error::config("route", "root route must not have any matchers"));
    }
    if !route.mute_time_intervals.is_empty() {
        return Err(Error::config(
            "route.mute_time_intervals",
            "root route must not have any mute time intervals",
        ));
    }
    if !route.active_time_intervals.is_empty() {
        return Err(Error::config(
            "route.active_time_intervals",
            "root route must not have any active time intervals",
        ));
    }
    check_receivers(&route, "route", &receiver_names)?;

    let mut time_intervals = BTreeMap::new();
    for (key, kind, list) in [
        (
            "mute_time_intervals",
            "mute time interval",
            raw.mute_time_intervals,
        ),
        ("time_intervals", "time interval", raw.time_intervals),
    ] {
        for (index, named) in list.unwrap_or_default().into_iter().enumerate() {
            let path = format!("{key}[{index}]");
            let Some(name) = non_empty(named.name) else {
                return Err(Error::config(path, format!("missing name in {kind}")));
            };
            if time_intervals.contains_key(&name) {
                return Err(Error::config(
                    format!("{path}.name"),
                    format!("{kind} {name:?} is not unique"),
                ));
            }
            time_intervals.insert(name, named.time_intervals.unwrap_or_default());
        }
    }
    check_time_intervals(&route, "route", &time_intervals)?;

    let mut inhibit_rules = Vec::new();
    for (index, rule) in raw.inhibit_rules.unwrap_or_default().into_iter().enumerate() {
        inhibit_rules.push(build_inhibit_rule(rule, &format!("inhibit_rules[{index}]"))?);
    }

    let templates = raw.templates.unwrap_or_default();
    if !templates.is_empty() {
        warnings.push(format!(
            "templates: custom notification template files are not supported; {} file pattern(s) ignored, the built-in payloads are used",
            templates.len()
        ));
    }

    Ok(Config {
        global,
        route,
        inhibit_rules,
        receivers,
        templates,
        time_intervals,
        warnings,
        original: String::new(),
    })
}

fn build_global(raw: RawGlobal, warnings: &mut Vec<String>) -> Result<GlobalConfig, Error> {
    let ignored = [
        ("slack_api_url", raw.slack_api_url.is_some()),
        ("slack_api_url_file", raw.slack_api_url_file.is_some()),
        ("pagerduty_url", raw.pagerduty_url.is_some()),
        ("opsgenie_api_url", raw.opsgenie_api_url.is_some()),
        ("opsgenie_api_key", raw.opsgenie_api_key.is_some()),
        ("opsgenie_api_key_file", raw.opsgenie_api_key_file.is_some()),
        ("wechat_api_url", raw.wechat_api_url.is_some()),
        ("wechat_api_secret", raw.wechat_api_secret.is_some()),
        ("wechat_api_corp_id", raw.wechat_api_corp_id.is_some()),
        ("victorops_api_url", raw.victorops_api_url.is_some()),
        ("victorops_api_key", raw.victorops_api_key.is_some()),
        ("victorops_api_key_file", raw.victorops_api_key_file.is_some()),
        ("telegram_api_url", raw.telegram_api_url.is_some()),
        ("webex_api_url", raw.webex_api_url.is_some()),
    ];
    for (key, present) in ignored {
        if present {
            warnings.push(format!(
                "global.{key}: ignored, obs-appliance has no integration that uses it"
            ));
        }
    }
    if raw
        .smtp_auth_password
        .as_ref()
        .is_some_and(|secret| !secret.is_empty())
        && raw
            .smtp_auth_password_file
            .as_ref()
            .is_some_and(|file| !file.is_empty())
    {
        return Err(Error::config(
            "global",
            "at most one of smtp_auth_password & smtp_auth_password_file must be configured",
        ));
    }
    let smtp_smarthost = non_empty(raw.smtp_smarthost);
    if let Some(host_port) = &smtp_smarthost {
        check_host_port(host_port).map_err(|message| Error::config("global.smtp_smarthost", message))?;
    }
    Ok(GlobalConfig {
        resolve_timeout: raw
            .resolve_timeout
            .map_or(DEFAULT_RESOLVE_TIMEOUT, PromDuration::as_std),
        http_config: build_http(raw.http_config.unwrap_or_default(), "global.http_config")?,
        smtp_from: non_empty(raw.smtp_from),
        smtp_hello: non_empty(raw.smtp_hello).unwrap_or_else(|| "localhost".to_owned()),
        smtp_smarthost,
        smtp_auth_username: non_empty(raw.smtp_auth_username),
        smtp_auth_password: non_empty_secret(raw.smtp_auth_password),
        smtp_auth_password_file: non_empty(raw.smtp_auth_password_file),
        smtp_auth_secret: non_empty_secret(raw.smtp_auth_secret),
        smtp_auth_identity: non_empty(raw.smtp_auth_identity),
        smtp_require_tls: raw.smtp_require_tls.unwrap_or(true),
        smtp_tls_config: build_tls(raw.smtp_tls_config.unwrap_or_default(), "global.smtp_tls_config")?,
    })
}

/// Go's `net.SplitHostPort` plus upstream's "port cannot be empty".
fn check_host_port(text: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("address {text}: missing ']' in address"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!("address {text}: missing port in address"));
        };
        (host, port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("address {text}: missing port in address"));
        };
        if host.contains(':') {
            return Err(format!("address {text}: too many colons in address"));
        }
        (host, port)
    };
    let _ = host;
    if port.is_empty() {
        return Err(format!("address {text:?}: port cannot be empty"));
    }
    Ok(())
}

fn build_route(raw: RawRoute, path: &str) -> Result<RouteConfig, Error> {
    let mut matchers = Vec::new();
    for (name, value) in raw.match_equal.unwrap_or_default() {
        if !is_legacy_label_name(&name) {
            return Err(Error::config(
                format!("{path}.match"),
                format!("invalid label name {name:?}"),
            ));
        }
        matchers.push(
            Matcher::new(MatchType::Equal, name, value.0)
                .map_err(|err| Error::config(format!("{path}.match"), err.to_string()))?,
        );
    }
    for (name, value) in raw.match_re.unwrap_or_default() {
        let match_path = format!("{path}.match_re");
        if !is_legacy_label_name(&name) {
            return Err(Error::config(match_path, format!("invalid label name {name:?}")));
        }
        let Some(value) = value else {
            return Err(Error::config(
                match_path,
                format!("invalid regexp value for {name:?}"),
            ));
        };
        // Upstream builds the matcher from the compiled regexp's text, which is the
        // anchored pattern: route keys show `service=~"^(?:pg.*)$"`.
        matchers.push(
            Matcher::new(MatchType::Regexp, name, format!("^(?:{})$", value.0))
                .map_err(|err| Error::config(match_path, err.to_string()))?,
        );
    }
    for (index, line) in raw.matchers.unwrap_or_default().iter().enumerate() {
        let parsed = parse_matchers(line)
            .map_err(|err| Error::config(format!("{path}.matchers[{index}]"), err.to_string()))?;
        matchers.extend(parsed);
    }
    let mut matchers = Matchers(matchers);
    matchers.sort();

    let group_by = match raw.group_by {
        None => None,
        Some(names) => Some(build_group_by(names, &format!("{path}.group_by"))?),
    };
    for (key, value) in [
        ("group_interval", raw.group_interval),
        ("repeat_interval", raw.repeat_interval),
    ] {
        if value.is_some_and(|duration| duration.as_std().is_zero()) {
            return Err(Error::config(
                format!("{path}.{key}"),
                format!("{key} cannot be zero"),
            ));
        }
    }

    let mut routes = Vec::new();
    for (index, child) in raw.routes.unwrap_or_default().into_iter().enumerate() {
        routes.push(build_route(child, &format!("{path}.routes[{index}]"))?);
    }
    Ok(RouteConfig {
        receiver: non_empty(raw.receiver),
        group_by,
        continue_matching: raw.continue_matching.unwrap_or(false),
        matchers,
        group_wait: raw.group_wait.map(PromDuration::as_std),
        group_interval: raw.group_interval.map(PromDuration::as_std),
        repeat_interval: raw.repeat_interval.map(PromDuration::as_std),
        mute_time_intervals: raw.mute_time_intervals.unwrap_or_default(),
        active_time_intervals: raw.active_time_intervals.unwrap_or_default(),
        routes,
    })
}

fn build_group_by(names: Vec<String>, path: &str) -> Result<GroupBy, Error> {
    let mut all = false;
    let mut labels: Vec<String> = Vec::new();
    for name in names {
        if name == "..." {
            all = true;
            continue;
        }
        // Upstream's UTF-8 mode (the default since 0.27): any non-empty UTF-8 name.
        if name.is_empty() {
            return Err(Error::config(
                path,
                format!("invalid label name {name:?} in group_by list"),
            ));
        }
        if labels.contains(&name) {
            return Err(Error::config(
                path,
                format!("duplicated label {name:?} in group_by"),
            ));
        }
        labels.push(name);
    }
    if all && !labels.is_empty() {
        return Err(Error::config(
            path,
            "cannot have wildcard group_by (`...`) and other labels at the same time",
        ));
    }
    Ok(if all {
        GroupBy::All
    } else {
        GroupBy::Labels(labels)
    })
}

fn check_receivers(route: &RouteConfig, path: &str, names: &BTreeSet<String>) -> Result<(), Error> {
    for (index, child) in route.routes.iter().enumerate() {
        check_receivers(child, &format!("{path}.routes[{index}]"), names)?;
    }
    if let Some(receiver) = &route.receiver
        && !names.contains(receiver)
    {
        return Err(Error::config(
            format!("{path}.receiver"),
            format!("undefined receiver {receiver:?} used in route"),
        ));
    }
    Ok(())
}

fn check_time_intervals(
    route: &RouteConfig,
    path: &str,
    intervals: &BTreeMap<String, Vec<TimeInterval>>,
) -> Result<(), Error> {
    for (index, child) in route.routes.iter().enumerate() {
        check_time_intervals(child, &format!("{path}.routes[{index}]"), intervals)?;
    }
    for (key, names) in [
        ("active_time_intervals", &route.active_time_intervals),
        ("mute_time_intervals", &route.mute_time_intervals),
    ] {
        for (index, name) in names.iter().enumerate() {
            if !intervals.contains_key(name) {
                return Err(Error::config(
                    format!("{path}.{key}[{index}]"),
                    format!("undefined time interval {name:?} used in route"),
                ));
            }
        }
    }
    Ok(())
}

fn build_matcher_side(
    equal: Option<BTreeMap<String, ScalarString>>,
    regex: Option<BTreeMap<String, Option<ScalarString>>>,
    lines: Option<Vec<String>>,
    path: &str,
    prefix: &str,
) -> Result<Matchers, Error> {
    let mut matchers = Vec::new();
    for (name, value) in equal.unwrap_or_default() {
        let match_path = format!("{path}.{prefix}_match");
        if !is_legacy_label_name(&name) {
            return Err(Error::config(match_path, format!("invalid label name {name:?}")));
        }
        matchers.push(
            Matcher::new(MatchType::Equal, name, value.0)
                .map_err(|err| Error::config(match_path, err.to_string()))?,
        );
    }
    for (name, value) in regex.unwrap_or_default() {
        let match_path = format!("{path}.{prefix}_match_re");
        if !is_legacy_label_name(&name) {
            return Err(Error::config(match_path, format!("invalid label name {name:?}")));
        }
        let Some(value) = value else {
            return Err(Error::config(
                match_path,
                format!("invalid regexp value for {name:?}"),
            ));
        };
        matchers.push(
            Matcher::new(MatchType::Regexp, name, format!("^(?:{})$", value.0))
                .map_err(|err| Error::config(match_path, err.to_string()))?,
        );
    }
    for (index, line) in lines.unwrap_or_default().iter().enumerate() {
        let parsed = parse_matchers(line)
            .map_err(|err| Error::config(format!("{path}.{prefix}_matchers[{index}]"), err.to_string()))?;
        matchers.extend(parsed);
    }
    let mut matchers = Matchers(matchers);
    matchers.sort();
    Ok(matchers)
}

fn build_inhibit_rule(raw: RawInhibitRule, path: &str) -> Result<InhibitRuleConfig, Error> {
    let source_matchers = build_matcher_side(
        raw.source_match,
        raw.source_match_re,
        raw.source_matchers,
        path,
        "source",
    )?;
    let target_matchers = build_matcher_side(
        raw.target_match,
        raw.target_match_re,
        raw.target_matchers,
        path,
        "target",
    )?;
    let equal = raw.equal.unwrap_or_default();
    for name in &equal {
        if name.is_empty() {
            return Err(Error::config(
                format!("{path}.equal"),
                format!("invalid label name {name:?} in equal list"),
            ));
        }
    }
    Ok(InhibitRuleConfig {
        source_matchers,
        target_matchers,
        equal,
    })
}

fn build_receiver(raw: RawReceiver, global: &GlobalConfig, path: &str) -> Result<Receiver, Error> {
    let Some(name) = non_empty(raw.name) else {
        return Err(Error::config(path, "missing name in receiver"));
    };
    let unsupported = [
        ("discord_configs", &raw.discord_configs),
        ("pagerduty_configs", &raw.pagerduty_configs),
        ("slack_configs", &raw.slack_configs),
        ("opsgenie_configs", &raw.opsgenie_configs),
        ("wechat_configs", &raw.wechat_configs),
        ("pushover_configs", &raw.pushover_configs),
        ("victorops_configs", &raw.victorops_configs),
        ("sns_configs", &raw.sns_configs),
        ("telegram_configs", &raw.telegram_configs),
        ("webex_configs", &raw.webex_configs),
        ("msteams_configs", &raw.msteams_configs),
        ("msteamsv2_configs", &raw.msteamsv2_configs),
        ("jira_configs", &raw.jira_configs),
        ("rocketchat_configs", &raw.rocketchat_configs),
    ];
    for (key, value) in unsupported {
        let present = match value {
            None | Some(serde_yaml::Value::Null) => false,
            Some(serde_yaml::Value::Sequence(items)) => !items.is_empty(),
            Some(_) => true,
        };
        if present {
            return Err(Error::config(
                format!("{path}.{key}"),
                format!(
                    "{key} are not supported by obs-appliance; use webhook_configs, email_configs or ntfy_configs (an obs-appliance extension)"
                ),
            ));
        }
    }
    let mut webhook_configs = Vec::new();
    for (index, raw_webhook) in raw.webhook_configs.unwrap_or_default().into_iter().enumerate() {
        let item_path = format!("{path}.webhook_configs[{index}]");
        let Some(raw_webhook) = raw_webhook else {
            return Err(Error::config(item_path, "missing webhook config"));
        };
        webhook_configs.push(build_webhook(raw_webhook, global, &item_path)?);
    }
    let mut email_configs = Vec::new();
    for (index, raw_email) in raw.email_configs.unwrap_or_default().into_iter().enumerate() {
        let item_path = format!("{path}.email_configs[{index}]");
        let Some(raw_email) = raw_email else {
            return Err(Error::config(item_path, "missing email config"));
        };
        email_configs.push(build_email(raw_email, global, &item_path)?);
    }
    let mut ntfy_configs = Vec::new();
    for (index, raw_ntfy) in raw.ntfy_configs.unwrap_or_default().into_iter().enumerate() {
        let item_path = format!("{path}.ntfy_configs[{index}]");
        let Some(raw_ntfy) = raw_ntfy else {
            return Err(Error::config(item_path, "missing ntfy config"));
        };
        ntfy_configs.push(build_ntfy(raw_ntfy, global, &item_path)?);
    }
    Ok(Receiver {
        name,
        webhook_configs,
        email_configs,
        ntfy_configs,
    })
}

/// Upstream's `ParseURL` check: an absolute http(s) URL with a host. The URL itself is never
/// put in the message (it may hold a token).
fn check_http_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("invalid URL: expected an absolute http or https URL".to_owned());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("unsupported scheme {scheme:?} for URL"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return Err("host is missing in URL".to_owned());
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("invalid URL: contains spaces or control characters".to_owned());
    }
    Ok(())
}

fn build_webhook(raw: RawWebhook, global: &GlobalConfig, path: &str) -> Result<WebhookConfig, Error> {
    let url = non_empty_secret(raw.url);
    let url_file = non_empty(raw.url_file);
    match (&url, &url_file) {
        (None, None) => return Err(Error::config(path, "one of url or url_file must be configured")),
        (Some(_), Some(_)) => {
            return Err(Error::config(
                path,
                "at most one of url & url_file must be configured",
            ));
        }
        _ => {}
    }
    if let Some(url) = &url
        && !url.expose().contains("{{")
    {
        check_http_url(url.expose()).map_err(|message| Error::config(format!("{path}.url"), message))?;
    }
    let http_config = match raw.http_config {
        Some(http) => build_http(http, &format!("{path}.http_config"))?,
        None => global.http_config.clone(),
    };
    Ok(WebhookConfig {
        send_resolved: raw.send_resolved.unwrap_or(true),
        http_config,
        url,
        url_file,
        max_alerts: raw.max_alerts.unwrap_or(0),
        timeout: raw
            .timeout
            .map(PromDuration::as_std)
            .filter(|duration| !duration.is_zero()),
    })
}

/// Go's `textproto.CanonicalMIMEHeaderKey` for ASCII names: `x-team` → `X-Team`.
fn canonical_header(name: &str) -> String {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let mapped = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            mapped
        })
        .collect()
}

fn build_email(raw: RawEmail, global: &GlobalConfig, path: &str) -> Result<EmailConfig, Error> {
    let Some(to) = non_empty(raw.to) else {
        return Err(Error::config(path, "missing to address in email config"));
    };
    let mut headers = BTreeMap::new();
    for (name, value) in raw.headers.unwrap_or_default() {
        let canonical = canonical_header(&name);
        if headers.insert(canonical.clone(), value.0).is_some() {
            return Err(Error::config(
                format!("{path}.headers"),
                format!("duplicate header {canonical:?} in email config"),
            ));
        }
    }
    let Some(smarthost) = non_empty(raw.smarthost).or_else(|| global.smtp_smarthost.clone()) else {
        return Err(Error::config(path, "no global SMTP smarthost set"));
    };
    check_host_port(&smarthost).map_err(|message| Error::config(format!("{path}.smarthost"), message))?;
    let Some(from) = non_empty(raw.from).or_else(|| global.smtp_from.clone()) else {
        return Err(Error::config(path, "no global SMTP from set"));
    };
    let mut auth_password = non_empty_secret(raw.auth_password);
    let mut auth_password_file = non_empty(raw.auth_password_file);
    if auth_password.is_some() && auth_password_file.is_some() {
        return Err(Error::config(
            path,
            "at most one of auth_password & auth_password_file must be configured",
        ));
    }
    if auth_password.is_none() && auth_password_file.is_none() {
        auth_password = global.smtp_auth_password.clone();
        auth_password_file = global.smtp_auth_password_file.clone();
    }
    let tls_config = match raw.tls_config {
        Some(tls) => build_tls(tls, &format!("{path}.tls_config"))?,
        None => global.smtp_tls_config.clone(),
    };
    Ok(EmailConfig {
        send_resolved: raw.send_resolved.unwrap_or(false),
        to,
        from,
        hello: non_empty(raw.hello).unwrap_or_else(|| global.smtp_hello.clone()),
        smarthost,
        auth_username: non_empty(raw.auth_username).or_else(|| global.smtp_auth_username.clone()),
        auth_password,
        auth_password_file,
        auth_secret: non_empty_secret(raw.auth_secret).or_else(|| global.smtp_auth_secret.clone()),
        auth_identity: non_empty(raw.auth_identity).or_else(|| global.smtp_auth_identity.clone()),
        headers,
        html: raw
            .html
            .unwrap_or_else(|| r#"{{ template "email.default.html" . }}"#.to_owned()),
        text: raw.text.unwrap_or_default(),
        require_tls: raw.require_tls.unwrap_or(global.smtp_require_tls),
        tls_config,
    })
}

/// Parses an ntfy priority: 1–5 or `min`, `low`, `default`, `high`, `max`/`urgent`.
fn parse_ntfy_priority(text: &str) -> Option<u8> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "min" => Some(1),
        "2" | "low" => Some(2),
        "3" | "default" => Some(3),
        "4" | "high" => Some(4),
        "5" | "max" | "urgent" => Some(5),
        _ => None,
    }
}

fn build_ntfy(raw: RawNtfy, global: &GlobalConfig, path: &str) -> Result<NtfyConfig, Error> {
    let Some(topic) = non_empty(raw.topic) else {
        return Err(Error::config(path, "missing topic in ntfy config"));
    };
    if topic.contains(['/', '?', '#']) || topic.chars().any(char::is_whitespace) {
        return Err(Error::config(
            format!("{path}.topic"),
            "ntfy topic must not contain '/', '?', '#' or whitespace",
        ));
    }
    let url = non_empty(raw.url).unwrap_or_else(|| DEFAULT_NTFY_URL.to_owned());
    check_http_url(&url).map_err(|message| Error::config(format!("{path}.url"), message))?;
    let priority = match raw.priority {
        None => None,
        Some(text) => Some(parse_ntfy_priority(&text.0).ok_or_else(|| {
            Error::config(
                format!("{path}.priority"),
                format!(
                    "invalid ntfy priority {:?}: use 1 to 5 or min, low, default, high, max",
                    text.0
                ),
            )
        })?),
    };
    let token = non_empty_secret(raw.token);
    let token_file = non_empty(raw.token_file);
    if token.is_some() && token_file.is_some() {
        return Err(Error::config(
            path,
            "at most one of token & token_file must be configured",
        ));
    }
    let has_token = token.is_some() || token_file.is_some();
    let http_config = match raw.http_config {
        Some(http) => {
            let http = build_http(http, &format!("{path}.http_config"))?;
            if has_token && (http.basic_auth.is_some() || http.authorization.is_some()) {
                return Err(Error::config(
                    path,
                    "at most one of token/token_file and http_config basic_auth/authorization must be configured",
                ));
            }
            http
        }
        None => {
            // The token replaces any authentication inherited from global.http_config.
            let mut http = global.http_config.clone();
            if has_token {
                http.basic_auth = None;
                http.authorization = None;
            }
            http
        }
    };
    Ok(NtfyConfig {
        send_resolved: raw.send_resolved.unwrap_or(true),
        url,
        topic,
        priority,
        tags: raw.tags.unwrap_or_default(),
        token,
        token_file,
        http_config,
    })
}

fn build_http(raw: RawHttpConfig, path: &str) -> Result<HttpClientConfig, Error> {
    for (key, present) in [
        ("oauth2", raw.oauth2.is_some()),
        ("proxy_connect_header", raw.proxy_connect_header.is_some()),
        ("http_headers", raw.http_headers.is_some()),
    ] {
        if present {
            return Err(Error::config(
                format!("{path}.{key}"),
                format!("{key} is not supported by obs-appliance"),
            ));
        }
    }
    let bearer_token = non_empty_secret(raw.bearer_token);
    let bearer_token_file = non_empty(raw.bearer_token_file);
    if bearer_token.is_some() && bearer_token_file.is_some() {
        return Err(Error::config(
            path,
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    let has_bearer = bearer_token.is_some() || bearer_token_file.is_some();
    let basic_auth = match raw.basic_auth {
        None => None,
        Some(basic) => {
            if has_bearer {
                return Err(Error::config(
                    path,
                    "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
                ));
            }
            let username = non_empty(basic.username);
            let username_file = non_empty(basic.username_file);
            if username.is_some() && username_file.is_some() {
                return Err(Error::config(
                    format!("{path}.basic_auth"),
                    "at most one of basic_auth username, username_file & username_ref must be configured",
                ));
            }
            let password = non_empty_secret(basic.password);
            let password_file = non_empty(basic.password_file);
            if password.is_some() && password_file.is_some() {
                return Err(Error::config(
                    format!("{path}.basic_auth"),
                    "at most one of basic_auth password, password_file & password_ref must be configured",
                ));
            }
            Some(BasicAuth {
                username: username.unwrap_or_default(),
                username_file,
                password,
                password_file,
            })
        }
    };
    let authorization = match raw.authorization {
        Some(authorization) => {
            if has_bearer {
                return Err(Error::config(
                    path,
                    "authorization is not compatible with bearer_token & bearer_token_file",
                ));
            }
            let credentials = non_empty_secret(authorization.credentials);
            let credentials_file = non_empty(authorization.credentials_file);
            if credentials.is_some() && credentials_file.is_some() {
                return Err(Error::config(
                    format!("{path}.authorization"),
                    "at most one of authorization credentials & credentials_file must be configured",
                ));
            }
            let auth_type = authorization.auth_type.unwrap_or_default().trim().to_owned();
            let auth_type = if auth_type.is_empty() {
                "Bearer".to_owned()
            } else {
                auth_type
            };
            if auth_type.eq_ignore_ascii_case("basic") {
                return Err(Error::config(
                    format!("{path}.authorization"),
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#,
                ));
            }
            if basic_auth.is_some() {
                return Err(Error::config(
                    path,
                    "at most one of basic_auth, oauth2 & authorization must be configured",
                ));
            }
            Some(Authorization {
                auth_type,
                credentials,
                credentials_file,
            })
        }
        None if has_bearer => Some(Authorization {
            auth_type: "Bearer".to_owned(),
            credentials: bearer_token,
            credentials_file: bearer_token_file,
        }),
        None => None,
    };
    let proxy_url = non_empty_secret(raw.proxy_url);
    let proxy_from_environment = raw.proxy_from_environment.unwrap_or(false);
    if proxy_from_environment && proxy_url.is_some() {
        return Err(Error::config(
            path,
            "if proxy_from_environment is configured, proxy_url must not be configured",
        ));
    }
    Ok(HttpClientConfig {
        basic_auth,
        authorization,
        tls_config: build_tls(raw.tls_config.unwrap_or_default(), &format!("{path}.tls_config"))?,
        follow_redirects: raw.follow_redirects.unwrap_or(true),
        enable_http2: raw.enable_http2.unwrap_or(true),
        proxy_url,
        no_proxy: non_empty(raw.no_proxy),
        proxy_from_environment,
    })
}

fn build_tls(raw: RawTlsConfig, path: &str) -> Result<TlsConfig, Error> {
    let tls = TlsConfig {
        ca: non_empty(raw.ca),
        ca_file: non_empty(raw.ca_file),
        cert: non_empty(raw.cert),
        cert_file: non_empty(raw.cert_file),
        key: non_empty_secret(raw.key),
        key_file: non_empty(raw.key_file),
        server_name: non_empty(raw.server_name),
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        min_version: non_empty(raw.min_version),
        max_version: non_empty(raw.max_version),
    };
    let pairs = [
        ("ca", tls.ca.is_some(), "ca_file", tls.ca_file.is_some()),
        ("cert", tls.cert.is_some(), "cert_file", tls.cert_file.is_some()),
        ("key", tls.key.is_some(), "key_file", tls.key_file.is_some()),
    ];
    for (inline, has_inline, file, has_file) in pairs {
        if has_inline && has_file {
            return Err(Error::config(
                path,
                format!("at most one of {inline} and {file} must be configured"),
            ));
        }
    }
    let has_cert = tls.cert.is_some() || tls.cert_file.is_some();
    let has_key = tls.key.is_some() || tls.key_file.is_some();
    if has_cert && !has_key {
        return Err(Error::config(
            path,
            "exactly one of key or key_file must be configured when a client certificate is configured",
        ));
    }
    if has_key && !has_cert {
        return Err(Error::config(
            path,
            "exactly one of cert or cert_file must be configured when a client key is configured",
        ));
    }
    for (key, version) in [
        ("min_version", &tls.min_version),
        ("max_version", &tls.max_version),
    ] {
        if let Some(version) = version
            && !matches!(version.as_str(), "TLS10" | "TLS11" | "TLS12" | "TLS13")
        {
            return Err(Error::config(
                format!("{path}.{key}"),
                format!("unknown TLS version: {version}"),
            ));
        }
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        Config::parse(yaml).map_err(|err| err.to_string())
    }

    const MINIMAL: &str = "route: {receiver: r}\nreceivers: [{name: r}]\n";

    #[test]
    fn defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.global.resolve_timeout, DEFAULT_RESOLVE_TIMEOUT);
        assert!(config.global.smtp_require_tls);
        assert_eq!(config.global.smtp_hello, "localhost");
        assert!(config.global.http_config.follow_redirects);
        assert!(config.warnings.is_empty());
        assert_eq!(parse("").unwrap_err(), "route: no route provided in config");
        assert_eq!(
            parse("global: {resolve_timeout: 1m}").unwrap_err(),
            "route: no routes provided"
        );
    }

    #[test]
    fn receivers_get_defaults_and_global_smtp_settings() {
        let config = parse(
            r#"
global:
  smtp_smarthost: mail:25
  smtp_from: am@x
  smtp_auth_password: s3cret
  http_config: {bearer_token: tok}
route: {receiver: r}
receivers:
  - name: r
    webhook_configs: [{url: "https://hook/x"}]
    email_configs: [{to: a@x, headers: {x-team: ops}}, {to: b@x, from: me@x, require_tls: false, auth_password_file: /p}]
    ntfy_configs: [{topic: alerts, priority: urgent}, {url: "http://ntfy.lan", topic: t, send_resolved: false, token: abc}]
"#,
        )
        .unwrap();
        let receiver = &config.receivers[0];
        let webhook = &receiver.webhook_configs[0];
        assert!(webhook.send_resolved);
        assert_eq!(webhook.max_alerts, 0);
        let authorization = webhook.http_config.authorization.as_ref().unwrap();
        assert_eq!(
            (
                authorization.auth_type.as_str(),
                authorization.credentials.as_ref().map(Secret::expose)
            ),
            ("Bearer", Some("tok"))
        );
        let [first, second] = &receiver.email_configs[..] else {
            panic!("two email configs")
        };
        assert!(!first.send_resolved);
        assert_eq!(
            (first.smarthost.as_str(), first.from.as_str()),
            ("mail:25", "am@x")
        );
        assert_eq!(first.auth_password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(first.headers.get("X-Team").map(String::as_str), Some("ops"));
        assert!(first.require_tls);
        assert_eq!(second.from, "me@x");
        assert!(!second.require_tls);
        assert_eq!(
            (
                second.auth_password.as_ref(),
                second.auth_password_file.as_deref()
            ),
            (None, Some("/p"))
        );
        let [ntfy, lan] = &receiver.ntfy_configs[..] else {
            panic!("two ntfy configs")
        };
        assert_eq!(
            (ntfy.url.as_str(), ntfy.priority, ntfy.send_resolved),
            (DEFAULT_NTFY_URL, Some(5), true)
        );
        assert_eq!((lan.url.as_str(), lan.send_resolved), ("http://ntfy.lan", false));
        assert!(
            ntfy.http_config.authorization.is_some(),
            "global http_config is inherited"
        );
        assert!(
            lan.http_config.authorization.is_none(),
            "the token replaces inherited auth"
        );
    }

    #[test]
    fn errors_name_the_yaml_path() {
        let cases = [
            (
                "route:\n  receiver: r\n  routes:\n    - receiver: r\n    - matchers: ['a=~(']\nreceivers: [{name: r}]",
                "route.routes[1].matchers[0]: error parsing regexp",
            ),
            (
                "route:\n  receiver: r\n  continue: true\nreceivers: [{name: r}]",
                "route.continue: cannot have continue in root route",
            ),
            (
                "route: {group_by: [a]}\nreceivers: [{name: r}]",
                "route.receiver: root route must specify a default receiver",
            ),
            (
                "route: {receiver: r, group_by: [a, a]}\nreceivers: [{name: r}]",
                "route.group_by: duplicated label \"a\" in group_by",
            ),
            (
                "route: {receiver: r, group_by: ['...', a]}\nreceivers: [{name: r}]",
                "route.group_by: cannot have wildcard group_by (`...`) and other labels at the same time",
            ),
            (
                "route: {receiver: r, routes: [{match: {1a: x}}]}\nreceivers: [{name: r}]",
                "route.routes[0].match: invalid label name \"1a\"",
            ),
            (
                "route: {receiver: r, routes: [{match_re: {a: null}}]}\nreceivers: [{name: r}]",
                "route.routes[0].match_re: invalid regexp value for \"a\"",
            ),
            (
                "route: {receiver: r, repeat_interval: 0}\nreceivers: [{name: r}]",
                "route.repeat_interval: repeat_interval cannot be zero",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, slack_configs: [{}]}]",
                "receivers[0].slack_configs: slack_configs are not supported",
            ),
            (
                "route: {receiver: r}\nreceivers: [{webhook_configs: []}]",
                "receivers[0]: missing name in receiver",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{}]}]",
                "receivers[0].webhook_configs[0]: one of url or url_file must be configured",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'ftp://x'}]}]",
                "receivers[0].webhook_configs[0].url: unsupported scheme \"ftp\" for URL",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, email_configs: [{to: a@x}]}]",
                "receivers[0].email_configs[0]: no global SMTP smarthost set",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, email_configs: [{smarthost: 'h:25'}]}]",
                "receivers[0].email_configs[0]: missing to address in email config",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, email_configs: [{to: a, from: b, smarthost: 'h:25', headers: {subject: x, Subject: y}}]}]",
                "receivers[0].email_configs[0].headers: duplicate header \"Subject\" in email config",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, ntfy_configs: [{priority: 3}]}]",
                "receivers[0].ntfy_configs[0]: missing topic in ntfy config",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, ntfy_configs: [{topic: t, priority: 9}]}]",
                "receivers[0].ntfy_configs[0].priority: invalid ntfy priority \"9\"",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x', http_config: {basic_auth: {username: u}, authorization: {credentials: c}}}]}]",
                "receivers[0].webhook_configs[0].http_config: at most one of basic_auth, oauth2 & authorization must be configured",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x', http_config: {oauth2: {client_id: a}}}]}]",
                "receivers[0].webhook_configs[0].http_config.oauth2: oauth2 is not supported by obs-appliance",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x', http_config: {tls_config: {cert_file: c}}}]}]",
                "receivers[0].webhook_configs[0].http_config.tls_config: exactly one of key or key_file must be configured",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules: [{equal: ['']}]",
                "inhibit_rules[0].equal: invalid label name \"\" in equal list",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ntime_intervals: [{time_intervals: []}]",
                "time_intervals[0]: missing name in time interval",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ntime_intervals: [{name: a}]\nmute_time_intervals: [{name: a}]",
                "time_intervals[0].name: time interval \"a\" is not unique",
            ),
            (
                "route: {receiver: r, active_time_intervals: [a]}\nreceivers: [{name: r}]\ntime_intervals: [{name: a}]",
                "route.active_time_intervals: root route must not have any active time intervals",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ntime_intervals: [{name: a, time_intervals: [{weekdays: [someday]}]}]",
                "time_intervals[0].time_intervals[0].weekdays[0]: someday is not a valid weekday",
            ),
        ];
        for (yaml, expected) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.starts_with(expected), "{yaml}\n got: {err}\nwant: {expected}");
        }
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug() {
        let yaml = "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'gopher://tok3n@x', http_config: {basic_auth: {username: u, password: pw123, password_file: /f}}}]}]";
        let err = parse(yaml).unwrap_err();
        assert!(!err.contains("tok3n") && !err.contains("pw123"), "{err}");
        let yaml = "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://tok3n@x', http_config: {basic_auth: {username: u, password: 123456}}}]}]";
        let config = parse(yaml).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("tok3n") && !debug.contains("123456"), "{debug}");
        let basic = config.receivers[0].webhook_configs[0]
            .http_config
            .basic_auth
            .clone()
            .unwrap();
        assert_eq!(
            basic.password.unwrap().expose(),
            "123456",
            "numbers are read as strings"
        );
    }

    #[test]
    fn warnings_for_templates_and_foreign_globals() {
        let config = parse(&format!(
            "{MINIMAL}templates: ['/etc/am/*.tmpl']\nglobal: {{slack_api_url: 'https://hooks.slack.com/x'}}"
        ))
        .unwrap();
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.starts_with("templates: custom notification template files are not supported"))
        );
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.starts_with("global.slack_api_url: ignored"))
        );
    }

    #[test]
    fn matchers_of_all_forms_are_merged_and_sorted() {
        let config = parse(
            "route:\n  receiver: r\n  routes:\n    - match: {b: '1'}\n      match_re: {a: 'x|y'}\n      matchers: ['c!=2', '{d=~\"z\"}']\nreceivers: [{name: r}]",
        )
        .unwrap();
        assert_eq!(
            config.route.routes[0].matchers.to_string(),
            r#"{a=~"^(?:x|y)$",b="1",c!="2",d=~"z"}"#
        );
    }
}
