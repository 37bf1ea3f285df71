//! The Go `text/template` language, as Prometheus alerting rules and Alertmanager notification
//! templates use it.
//!
//! Prometheus expands alert-rule labels and annotations with Go's `text/template` plus its own
//! functions (`humanize`, `humanizeDuration`, `reReplaceAll`, …); Alertmanager renders
//! notifications with the same engine over other data (`.Alerts`, `.CommonLabels`, `.Status`).
//! Users bring templates written for those tools, so this crate reproduces Go's semantics and
//! output, down to `fmt`'s float formatting and the wording of error messages.
//!
//! - [`Template`]: parse once ([`Template::parse`], or with extra [`Functions`]), execute many
//!   times over a [`Value`]. Execution is bounded by [`Limits`] (output size, nesting, steps).
//! - [`Value`]: the data model — nil, bool, int, float64, string, `[]interface {}`,
//!   `map[string]interface {}`, `map[string]string`, and [`Object`] for structs and named types
//!   with methods (what Alertmanager's `Alerts.Firing` or `time.Time.Format` need).
//! - [`PrometheusContext`] and [`expand_alert_template`]: Prometheus' functions and its alert
//!   expansion (`$labels`, `$externalLabels`, `$externalURL`, `$value`, `missingkey=zero`).
//! - [`gotime::GoTime`]: Go's `time.Time` as a template value, formatted and parsed with Go's
//!   layouts (`2006-01-02T15:04:05Z07:00`), for callers whose functions return times.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming, comments, pipelines,
//! variables (`:=`, `=`, `$`), fields and map keys, `if`/`else if`/`else`, `range` (lists, maps in
//! key order, integers; `$i, $e :=`; `else`; `break`, `continue`), `with`/`else`,
//! `define`/`template`/`block`, string/raw-string/char/number/bool/nil constants, parenthesised
//! pipelines, and the builtins `and or not len index slice print printf println eq ne lt le gt
//! ge html js urlquery`. Not supported: complex numbers, `call` (there are no function values),
//! custom delimiters, `else with`, and the HTML-escaping `html/template` mode.
//!
//! This crate knows nothing about HTTP, rule evaluation or PromQL: the `query` function calls a
//! [`QueryFn`] that the caller supplies.
//!
//! ```
//! use std::collections::BTreeMap;
//! let labels = BTreeMap::from([
//!     ("alertname".to_owned(), "HighLatency".to_owned()),
//!     ("instance".to_owned(), "api-1:8080".to_owned()),
//! ]);
//! let summary = obs_template::expand_alert_template(
//!     "{{ $labels.alertname }} on {{ $labels.instance }}: p99 {{ humanizeDuration $value }}",
//!     &labels,
//!     &BTreeMap::new(),
//!     "http://prometheus.example:9090",
//!     1.2345,
//! )
//! .unwrap();
//! assert_eq!(summary, "HighLatency on api-1:8080: p99 1.234s");
//! ```

pub mod error;
mod exec;
mod funcs;
mod gofmt;
pub mod gotime;
mod lex;
mod parse;
pub mod prometheus;
mod template;
mod value;

pub use error::TemplateError;
pub use funcs::{ArgType, Function, Functions};
pub use prometheus::{PrometheusContext, QueryFn, Sample, alert_template_data, expand_alert_template};
pub use template::{Limits, MissingKey, Template};
pub use value::{Object, Record, Value};
