//! obs-appliance's Alertmanager-compatible notifier. Most of it is what Alertmanager 0.27
//! decides, as pure functions over an explicit clock (the modules below); [`service`] runs
//! them: it feeds alerts and the time in, delivers the [`dispatch::Notification`]s (webhook,
//! ntfy, [`email`]), and persists silences, the notification log and the alerts.
//!
//! - [`config`]: alertmanager.yml — strict parsing, upstream defaults and validation, errors
//!   with YAML paths; receivers `webhook_configs`, `email_configs` and the obs-appliance
//!   extension `ntfy_configs`.
//! - [`matchers`]: `foo="bar"`, `{a=~"x.*",b!="y"}` and UTF-8 names, parsed as upstream's
//!   default (fallback) mode, printed in canonical form.
//! - [`alert`]: [`alert::Alert`], resolved-ness, merge of re-sent alerts; [`labels`]: label
//!   sets and their fingerprints (FNV-1a, as prometheus/common).
//! - [`route`]: the routing tree, route keys and group keys.
//! - [`inhibit`], [`silence`], [`timeinterval`]: what mutes an alert or a route.
//! - [`nflog`]: the notification log behind deduplication.
//! - [`dispatch`]: aggregation groups, their timers, and the dedup decision, on an explicit
//!   clock.
//! - [`webhook`]: the webhook payload (version "4", byte-compatible with Go's encoder) and the
//!   ntfy message.
//!
//! Only [`service`] and [`email`] know about networks, async runtimes or storage; elsewhere
//! times are [`time::Timestamp`]s passed in by the caller, so every decision is deterministic
//! and testable.
//!
//! ```
//! use obs_alertmanager::alert::Alert;
//! use obs_alertmanager::config::Config;
//! use obs_alertmanager::dispatch::Dispatcher;
//! use obs_alertmanager::labels::LabelSet;
//! use obs_alertmanager::nflog::MemoryNotificationLog;
//! use obs_alertmanager::silence::Silences;
//! use obs_alertmanager::time::Timestamp;
//! use obs_alertmanager::webhook::webhook_payload;
//!
//! let config = Config::parse(
//!     "route: {receiver: ops, group_by: [alertname]}\n\
//!      receivers: [{name: ops, webhook_configs: [{url: 'http://hook.example/'}]}]",
//! )?;
//! let mut dispatcher = Dispatcher::new(config, MemoryNotificationLog::new());
//! let now = Timestamp::parse_rfc3339("2024-05-01T10:00:00Z")?;
//! dispatcher.put_alert(
//!     Alert {
//!         labels: LabelSet::from_pairs([("alertname", "Down"), ("instance", "a")]),
//!         annotations: LabelSet::new(),
//!         starts_at: now,
//!         ends_at: Some(now.saturating_add(std::time::Duration::from_secs(300))),
//!         generator_url: String::new(),
//!         updated_at: now,
//!         timeout: false,
//!     },
//!     now,
//! );
//! let silences = Silences::default();
//! // Nothing before group_wait (30s) has passed.
//! assert!(dispatcher.flush_due(now, &silences).is_empty());
//! let due = dispatcher.next_flush_at().unwrap();
//! let notifications = dispatcher.flush_due(due, &silences);
//! assert_eq!(notifications[0].group_key, r#"{}:{alertname="Down"}"#);
//! let body = webhook_payload(&notifications[0], "http://am.example:9093");
//! assert!(body.contains(r#""version":"4""#));
//! // After a successful POST, tell the dispatcher; the notification log records it.
//! dispatcher.report(&notifications[0], true, due);
//! # Ok::<(), obs_alertmanager::Error>(())
//! ```

pub mod alert;
pub mod config;
pub mod dispatch;
pub mod email;
mod error;
pub mod forward;
pub mod goregex;
pub mod inhibit;
pub mod labels;
pub mod matchers;
pub mod nflog;
pub mod route;
pub mod service;
pub mod silence;
pub mod time;
pub mod timeinterval;
pub mod webhook;

pub use error::Error;

/// Fuzzing entry point for alertmanager.yml: parses and validates arbitrary text; never
/// panics.
pub fn fuzz_config(text: &str) -> Result<config::Config, Error> {
    config::Config::parse(text)
}

/// Fuzzing entry point for matchers: parses arbitrary text as a matcher list and as a single
/// matcher; whatever parses prints to a form that parses back to the same matchers.
pub fn fuzz_matchers(text: &str) -> Result<Vec<matchers::Matcher>, Error> {
    let _ = matchers::parse_matcher(text);
    matchers::parse_matchers(text)
}
