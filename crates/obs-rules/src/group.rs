//! Rule groups and their evaluation, with the semantics of Prometheus 2.42's `rules` package:
//! the rules of a group run in order at one timestamp; recording rules write their series
//! back; alerting rules move alerts from pending to firing after `for`, keep them firing for
//! `keep_firing_for` after the condition first cleared, and resolve them; `ALERTS` and
//! `ALERTS_FOR_STATE` series are written, and every series a rule's previous successful
//! evaluation wrote but this one did not gets a stale marker (a failing rule writes nothing,
//! not even stale markers, as in Prometheus).
//!
//! `tests/differential.rs` compares all of this with what Prometheus 2.42 does on the same
//! rules and data.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use obs_core::series::{Labels, METRIC_NAME_LABEL, Matcher, MetricsQuerier, SeriesSamples};
use obs_promql::{Engine, Value};
use obs_template::PrometheusContext;

use crate::file::{QueryLanguage, RuleConfig, RuleGroupConfig};

/// The NaN Prometheus writes as a stale marker.
const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// How long a resolved alert is kept (for notifications), as Prometheus' `resolvedRetention`.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// How far back `for` state is looked for after a restart (`--rules.alert.for-outage-tolerance`).
const FOR_OUTAGE_TOLERANCE_MS: i64 = 60 * 60 * 1000;

/// The least time an alert restored after a restart waits before firing
/// (`--rules.alert.for-grace-period`).
const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved (kept for a while for notifications).
    Inactive,
    /// Active for less than `for`.
    Pending,
    /// Active for `for` or longer.
    Firing,
}

impl AlertState {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Its labels (the result's labels, the rule's, `alertname`).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its state.
    pub state: AlertState,
    /// The value of the expression at the last evaluation where it was active.
    pub value: f64,
    /// When it became active (ms).
    pub active_at: i64,
    /// When it fired (ms), if it did.
    pub fired_at: Option<i64>,
    /// When it resolved (ms), if it did.
    pub resolved_at: Option<i64>,
    /// The last evaluation where the condition held (ms).
    pub last_seen: i64,
    /// The first evaluation where the condition no longer held while the alert was firing
    /// (ms): `keep_firing_for` counts from here (Prometheus' `KeepFiringSince`).
    pub keep_firing_since: Option<i64>,
    /// When it was last sent to the notifier (ms).
    pub last_sent_at: Option<i64>,
    /// Until when the last notification holds it firing (ms).
    pub valid_until: i64,
}

/// An alert to hand to the notifier, in Alertmanager's terms: `ends_at_ms` is when it resolved,
/// or, while firing, how long the notifier should assume it still fires without news.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAlert {
    /// Its labels.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired (ms).
    pub starts_at_ms: i64,
    /// When it resolved, or until when it is valid (ms).
    pub ends_at_ms: i64,
    /// A link to the expression (Prometheus' `generatorURL`).
    pub generator_url: String,
}

/// Where firing and resolved alerts go (the appliance's Alertmanager).
pub trait AlertNotifier: Send + Sync {
    /// Takes alerts of one rule; must not block for long.
    fn send(&self, alerts: Vec<OutgoingAlert>);
}

/// How a rule's last evaluation went.
#[derive(Debug, Clone, Default)]
pub struct RuleHealth {
    /// `ok`, `err`, or `unknown` before the first evaluation.
    pub health: &'static str,
    /// The last error.
    pub last_error: String,
    /// When it was last evaluated (ms).
    pub last_evaluation_ms: Option<i64>,
    /// How long that took (seconds).
    pub evaluation_seconds: f64,
}

/// A rule and its state.
#[derive(Debug)]
pub struct Rule {
    /// The rule as configured (with the group's labels merged in).
    pub config: RuleConfig,
    /// The expression as Prometheus prints it.
    pub query: String,
    /// Its alerts by label set (alerting rules).
    pub alerts: Mutex<BTreeMap<Labels, Alert>>,
    /// Health of the last evaluation.
    pub health: Mutex<RuleHealth>,
}

impl Rule {
    /// The rule's name (alert or record).
    pub fn name(&self) -> &str {
        self.config
            .alert
            .as_deref()
            .or(self.config.record.as_deref())
            .unwrap_or_default()
    }

    /// Whether it is an alerting rule.
    pub fn is_alerting(&self) -> bool {
        self.config.alert.is_some()
    }

    /// The highest state of its alerts.
    pub fn state(&self) -> AlertState {
        self.alerts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .values()
            .map(|alert| alert.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// Runs a LogQL metric query at an instant, for log rules (the log store through the LogQL
/// engine; supplied by the binary, so that this crate depends on neither).
pub trait LogQuerier: Send + Sync {
    /// The query's instant vector at `ts_ms` (a scalar is one sample without labels).
    fn instant(&self, expr: &str, ts_ms: i64) -> Result<Vec<(Labels, f64)>, String>;
}

/// How a group's expressions run at one evaluation.
#[derive(Clone, Copy)]
enum Evaluator<'a> {
    PromQL(&'a Engine),
    LogQL(Option<&'a dyn LogQuerier>),
}

impl Evaluator<'_> {
    fn instant(&self, expr: &str, ts: i64) -> Result<Vec<(Labels, f64)>, String> {
        match self {
            Evaluator::PromQL(engine) => instant_vector(engine, expr, ts),
            Evaluator::LogQL(Some(logs)) => logs.instant(expr, ts),
            Evaluator::LogQL(None) => Err("log rules need the log store, which is not running".to_owned()),
        }
    }
}

/// A group of rules.
#[derive(Debug)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// The language of its expressions.
    pub language: QueryLanguage,
    /// The file it came from.
    pub file: String,
    /// Milliseconds between evaluations.
    pub interval_ms: i64,
    /// The most series or alerts per rule (0: none).
    pub limit: usize,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
    /// When it was last evaluated and how long that took.
    pub last: Mutex<(Option<i64>, f64)>,
    /// Series written by each rule's last successful evaluation (for stale markers).
    previous: Mutex<PreviousSeries>,
    /// Whether `for` state was restored after start.
    restored: Mutex<bool>,
}

/// The series a group wrote, for stale markers, as Prometheus' `seriesInPreviousEval`.
#[derive(Debug, Default)]
struct PreviousSeries {
    /// What each rule (by index) wrote at its last successful evaluation.
    by_rule: Vec<HashSet<Labels>>,
    /// What rules that a reload removed wrote: marked stale at the next evaluation.
    orphaned: HashSet<Labels>,
}

/// Where a group writes its series.
pub trait SeriesSink: Send + Sync {
    /// Stores a batch; errors are logged by the caller.
    fn write(&self, batch: Vec<SeriesSamples>) -> Result<(), String>;
}

impl Group {
    /// A group of PromQL rules from its configuration; `default_interval_ms` applies when it
    /// sets none.
    pub fn new(config: &RuleGroupConfig, file: &str, default_interval_ms: i64) -> Group {
        Group::new_as(config, file, default_interval_ms, QueryLanguage::PromQL)
    }

    /// A group whose expressions are in `language`.
    pub fn new_as(
        config: &RuleGroupConfig,
        file: &str,
        default_interval_ms: i64,
        language: QueryLanguage,
    ) -> Group {
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .map(|rule| {
                let mut rule = rule.clone();
                for (name, value) in &config.labels {
                    rule.labels.entry(name.clone()).or_insert_with(|| value.clone());
                }
                let canonical = match language {
                    QueryLanguage::PromQL => {
                        obs_promql::parse(&rule.expr.0).map(|expr| expr.to_string()).ok()
                    }
                    QueryLanguage::LogQL => obs_logql::parse(&rule.expr.0).map(|expr| expr.to_string()).ok(),
                };
                let query = canonical.unwrap_or_else(|| rule.expr.0.trim().to_owned());
                Rule {
                    config: rule,
                    query,
                    alerts: Mutex::new(BTreeMap::new()),
                    health: Mutex::new(RuleHealth {
                        health: "unknown",
                        ..RuleHealth::default()
                    }),
                }
            })
            .collect();
        Group {
            name: config.name.clone(),
            language,
            file: file.to_owned(),
            interval_ms: config
                .interval
                .map_or(default_interval_ms, |interval| {
                    interval.as_std().as_millis() as i64
                })
                .max(1),
            limit: config.limit,
            previous: Mutex::new(PreviousSeries {
                by_rule: vec![HashSet::new(); rules.len()],
                orphaned: HashSet::new(),
            }),
            rules,
            last: Mutex::new((None, 0.0)),
            restored: Mutex::new(false),
        }
    }

    /// Evaluates every rule at `ts` and writes the results. Blocking (runs queries).
    ///
    /// Each rule's results go to `sink` before the next rule runs, with stale markers for the
    /// series that rule wrote at its previous successful evaluation and not now. A rule that
    /// fails writes nothing and keeps its previous series (they fade after the lookback
    /// delta), as in Prometheus.
    pub fn evaluate(&self, engine: &Engine, querier: &dyn MetricsQuerier, sink: &dyn SeriesSink, ts: i64) {
        self.evaluate_with_logs(engine, None, querier, sink, ts);
    }

    /// [`Group::evaluate`], with the log querier that a group of log rules runs its
    /// expressions on (`engine` still answers templates' `query` and the `for` state restore).
    pub fn evaluate_with_logs(
        &self,
        engine: &Engine,
        logs: Option<&dyn LogQuerier>,
        querier: &dyn MetricsQuerier,
        sink: &dyn SeriesSink,
        ts: i64,
    ) {
        let evaluator = match self.language {
            QueryLanguage::PromQL => Evaluator::PromQL(engine),
            QueryLanguage::LogQL => Evaluator::LogQL(logs),
        };
        let started = std::time::Instant::now();
        // Held only briefly: `carry_over` (from the async reload) takes it too.
        let previous = || self.previous.lock().unwrap_or_else(|poison| poison.into_inner());
        // Series some rule wrote at `ts`: another rule's stale marker must not hide them.
        let mut written_now: HashSet<Labels> = HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let rule_started = std::time::Instant::now();
            let outcome = if rule.is_alerting() {
                self.evaluate_alerting(rule, evaluator, engine, ts)
            } else {
                self.evaluate_recording(rule, evaluator, ts)
            };
            let result = outcome.and_then(|mut batch| {
                let returned: HashSet<Labels> = batch.iter().map(|series| series.labels.clone()).collect();
                let rule_previous = previous().by_rule.get(index).cloned().unwrap_or_default();
                batch.extend(
                    rule_previous
                        .difference(&returned)
                        .filter(|labels| !written_now.contains(*labels))
                        .map(|labels| SeriesSamples {
                            labels: labels.clone(),
                            samples: vec![(ts, STALE_NAN)],
                        }),
                );
                // Written before the next rule runs, so later rules of the group see it.
                if !batch.is_empty() {
                    sink.write(batch)?;
                }
                written_now.extend(returned.iter().cloned());
                if let Some(slot) = previous().by_rule.get_mut(index) {
                    *slot = returned;
                }
                Ok(())
            });
            let mut health = rule.health.lock().unwrap_or_else(|poison| poison.into_inner());
            health.last_evaluation_ms = Some(ts);
            health.evaluation_seconds = rule_started.elapsed().as_secs_f64();
            match result {
                Ok(()) => {
                    health.health = "ok";
                    health.last_error.clear();
                }
                Err(err) => {
                    tracing::warn!(group = %self.name, rule = %rule.name(), error = %err, "rule evaluation failed");
                    health.health = "err";
                    health.last_error = err;
                }
            }
        }
        // Series of rules a reload removed end with a stale marker.
        let orphaned: Vec<SeriesSamples> = std::mem::take(&mut previous().orphaned)
            .into_iter()
            .filter(|labels| !written_now.contains(labels))
            .map(|labels| SeriesSamples {
                labels,
                samples: vec![(ts, STALE_NAN)],
            })
            .collect();
        if !orphaned.is_empty()
            && let Err(err) = sink.write(orphaned)
        {
            tracing::warn!(group = %self.name, error = %err, "cannot write stale markers");
        }
        let mut restored = self.restored.lock().unwrap_or_else(|poison| poison.into_inner());
        if !*restored {
            *restored = true;
            self.restore_for_state(querier, ts);
        }
        *self.last.lock().unwrap_or_else(|poison| poison.into_inner()) =
            (Some(ts), started.elapsed().as_secs_f64());
    }

    fn evaluate_recording(
        &self,
        rule: &Rule,
        evaluator: Evaluator<'_>,
        ts: i64,
    ) -> Result<Vec<SeriesSamples>, String> {
        let record = rule.config.record.as_deref().unwrap_or_default();
        let samples = evaluator.instant(&rule.config.expr.0, ts)?;
        let mut batch = Vec::with_capacity(samples.len());
        let mut seen = HashSet::new();
        for (labels, value) in samples {
            let mut labels = labels
                .with_label(METRIC_NAME_LABEL, record)
                .map_err(|err| err.to_string())?;
            for (name, value) in &rule.config.labels {
                labels = labels.with_label(name, value).map_err(|err| err.to_string())?;
            }
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels".to_owned(),
                );
            }
            batch.push(SeriesSamples {
                labels,
                samples: vec![(ts, value)],
            });
        }
        // After the duplicate check, as Prometheus' RecordingRule.Eval.
        if self.limit > 0 && batch.len() > self.limit {
            return Err(format!(
                "exceeded limit of {} with {} series",
                self.limit,
                batch.len()
            ));
        }
        Ok(batch)
    }

    fn evaluate_alerting(
        &self,
        rule: &Rule,
        evaluator: Evaluator<'_>,
        engine: &Engine,
        ts: i64,
    ) -> Result<Vec<SeriesSamples>, String> {
        let name = rule.config.alert.as_deref().unwrap_or_default();
        let hold = rule
            .config
            .for_duration
            .map_or(0, |duration| duration.as_std().as_millis() as i64);
        let keep_firing = rule
            .config
            .keep_firing_for
            .map_or(0, |duration| duration.as_std().as_millis() as i64);
        let samples = evaluator.instant(&rule.config.expr.0, ts)?;
        let context = template_context(engine, ts);
        let mut current: BTreeMap<Labels, (BTreeMap<String, String>, f64)> = BTreeMap::new();
        for (sample_labels, value) in samples {
            let expression_labels = sample_labels.without_metric_name();
            // `$labels` is the sample's whole label set, `__name__` included (Prometheus takes
            // `smpl.Metric.Map()` before it drops the name from the alert's labels).
            let label_map: BTreeMap<String, String> = sample_labels
                .iter()
                .map(|label| (label.name.to_string(), label.value.to_string()))
                .collect();
            let expand = |text: &str| {
                context
                    .expand_alert(name, text, &label_map, &BTreeMap::new(), value)
                    .unwrap_or_else(|err| format!("<error expanding template: {err}>"))
            };
            // A label whose template expands to nothing is removed (`with_label`).
            let mut labels = expression_labels.clone();
            for (label, text) in &rule.config.labels {
                labels = labels
                    .with_label(label, &expand(text))
                    .map_err(|err| err.to_string())?;
            }
            labels = labels
                .with_label("alertname", name)
                .map_err(|err| err.to_string())?;
            let annotations: BTreeMap<String, String> = rule
                .config
                .annotations
                .iter()
                .map(|(key, text)| (key.clone(), expand(text)))
                .collect();
            if current.insert(labels, (annotations, value)).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels".to_owned(),
                );
            }
        }
        let mut alerts = rule.alerts.lock().unwrap_or_else(|poison| poison.into_inner());
        for (labels, (annotations, value)) in &current {
            match alerts.get_mut(labels) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = *value;
                    alert.annotations = annotations.clone();
                    alert.last_seen = ts;
                }
                _ => {
                    alerts.insert(
                        labels.clone(),
                        Alert {
                            labels: labels.clone(),
                            annotations: annotations.clone(),
                            state: AlertState::Pending,
                            value: *value,
                            active_at: ts,
                            fired_at: None,
                            resolved_at: None,
                            last_seen: ts,
                            keep_firing_since: None,
                            last_sent_at: None,
                            valid_until: 0,
                        },
                    );
                }
            }
        }
        let mut gone = Vec::new();
        for (labels, alert) in alerts.iter_mut() {
            if current.contains_key(labels) {
                alert.keep_firing_since = None;
                if alert.state == AlertState::Pending && ts - alert.active_at >= hold {
                    alert.state = AlertState::Firing;
                    alert.fired_at = Some(ts);
                }
                continue;
            }
            match alert.state {
                AlertState::Pending => gone.push(labels.clone()),
                AlertState::Firing => {
                    // Counted from the first evaluation without it, as Prometheus does: an
                    // alert last seen at t with `keep_firing_for: 1m` and evaluations every
                    // 15 s still fires at t + 1m and resolves at t + 1m15s.
                    if keep_firing > 0 && ts - *alert.keep_firing_since.get_or_insert(ts) < keep_firing {
                        continue;
                    }
                    alert.state = AlertState::Inactive;
                    alert.resolved_at = Some(ts);
                }
                AlertState::Inactive => {
                    if alert
                        .resolved_at
                        .is_some_and(|resolved| ts - resolved > RESOLVED_RETENTION_MS)
                    {
                        gone.push(labels.clone());
                    }
                }
            }
        }
        for labels in gone {
            alerts.remove(&labels);
        }
        // The limit counts the active alerts, those kept firing included; exceeding it drops
        // every alert of the rule (resolved ones too), as Prometheus' AlertingRule.Eval.
        let active = alerts
            .values()
            .filter(|alert| alert.state != AlertState::Inactive)
            .count();
        if self.limit > 0 && active > self.limit {
            alerts.clear();
            return Err(format!("exceeded limit of {} with {active} alerts", self.limit));
        }
        // ALERTS and ALERTS_FOR_STATE for every active alert.
        let mut batch = Vec::new();
        for alert in alerts
            .values()
            .filter(|alert| alert.state != AlertState::Inactive)
        {
            let alerts_labels = alert
                .labels
                .with_label(METRIC_NAME_LABEL, "ALERTS")
                .and_then(|labels| labels.with_label("alertstate", alert.state.as_str()))
                .map_err(|err| err.to_string())?;
            batch.push(SeriesSamples {
                labels: alerts_labels,
                samples: vec![(ts, 1.0)],
            });
            let for_state = alert
                .labels
                .with_label(METRIC_NAME_LABEL, "ALERTS_FOR_STATE")
                .map_err(|err| err.to_string())?;
            batch.push(SeriesSamples {
                labels: for_state,
                samples: vec![(ts, (alert.active_at / 1000) as f64)],
            });
        }
        Ok(batch)
    }

    /// After a restart, gives pending alerts back the time they had already been pending,
    /// from `ALERTS_FOR_STATE` (Prometheus' `RestoreForState`).
    fn restore_for_state(&self, querier: &dyn MetricsQuerier, ts: i64) {
        for rule in self.rules.iter().filter(|rule| rule.is_alerting()) {
            let hold = rule
                .config
                .for_duration
                .map_or(0, |duration| duration.as_std().as_millis() as i64);
            if hold < FOR_GRACE_PERIOD_MS {
                continue;
            }
            let mut alerts = rule.alerts.lock().unwrap_or_else(|poison| poison.into_inner());
            for alert in alerts
                .values_mut()
                .filter(|alert| alert.state == AlertState::Pending)
            {
                let matchers: Vec<Matcher> = alert
                    .labels
                    .iter()
                    .map(|label| Matcher::equal(label.name.to_string(), label.value.to_string()))
                    .chain(std::iter::once(Matcher::equal(
                        METRIC_NAME_LABEL,
                        "ALERTS_FOR_STATE",
                    )))
                    .collect();
                let Ok(found) = querier.select(&matchers, ts - FOR_OUTAGE_TOLERANCE_MS, ts - 1) else {
                    continue;
                };
                let Some(&(down_at, value)) = found
                    .iter()
                    .find(|series| series.labels.len() == alert.labels.len() + 1)
                    .and_then(|series| series.samples.iter().rev().find(|(_, v)| !v.is_nan()))
                else {
                    continue;
                };
                let mut restored = (value as i64) * 1000;
                let remaining = hold - (down_at - restored);
                if remaining <= 0 {
                    // It was firing when the appliance stopped; the next evaluation fires it.
                } else if remaining < FOR_GRACE_PERIOD_MS {
                    restored = ts + FOR_GRACE_PERIOD_MS - hold;
                } else {
                    restored += ts - down_at;
                }
                alert.active_at = restored;
            }
        }
    }
}

impl Group {
    /// Stale markers at `ts` for every series the group wrote at its last evaluation, for when
    /// a reload removes the group (Prometheus' `markStale` on a removed group).
    pub fn stale_markers(&self, ts: i64) -> Vec<SeriesSamples> {
        let previous = self.previous.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut series: Vec<&Labels> = previous
            .by_rule
            .iter()
            .flatten()
            .chain(previous.orphaned.iter())
            .collect();
        series.sort();
        series.dedup();
        series
            .into_iter()
            .map(|labels| SeriesSamples {
                labels: labels.clone(),
                samples: vec![(ts, STALE_NAN)],
            })
            .collect()
    }

    /// The alerts to send to the notifier after the evaluation at `ts`, as Prometheus'
    /// `sendAlerts`: firing alerts and alerts resolved since they were last sent, each at most
    /// once per `resend_delay_ms` unless it resolved; firing ones valid for four times the
    /// larger of the group interval and the resend delay (two missed evaluations or sends
    /// do not resolve them). `external_url` prefixes the generator link.
    pub fn alerts_to_send(&self, ts: i64, resend_delay_ms: i64, external_url: &str) -> Vec<OutgoingAlert> {
        let delta = resend_delay_ms.max(self.interval_ms);
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.is_alerting()) {
            let mut alerts = rule.alerts.lock().unwrap_or_else(|poison| poison.into_inner());
            for alert in alerts.values_mut() {
                if alert.state == AlertState::Pending {
                    continue;
                }
                let resolved_since_sent = alert
                    .resolved_at
                    .is_some_and(|resolved| alert.last_sent_at.is_none_or(|sent| resolved > sent));
                let resend_due = alert.last_sent_at.is_none_or(|sent| sent + resend_delay_ms < ts);
                if !resolved_since_sent && !resend_due {
                    continue;
                }
                alert.last_sent_at = Some(ts);
                alert.valid_until = ts + 4 * delta;
                out.push(OutgoingAlert {
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at_ms: alert.fired_at.unwrap_or(alert.active_at),
                    ends_at_ms: alert.resolved_at.unwrap_or(alert.valid_until),
                    generator_url: generator_url(external_url, &rule.query),
                });
            }
        }
        out
    }
}

/// Runs a rule's expression at `ts` as Prometheus' `EngineQueryFunc`: an instant vector, or a
/// scalar as one sample without labels.
fn instant_vector(engine: &Engine, expr: &str, ts: i64) -> Result<Vec<(Labels, f64)>, String> {
    match engine.instant(expr, ts).map_err(|err| err.to_string())? {
        Value::Vector(samples) => Ok(samples
            .into_iter()
            .map(|sample| (sample.labels, sample.v))
            .collect()),
        Value::Scalar { v, .. } => Ok(vec![(Labels::default(), v)]),
        Value::String { .. } | Value::Matrix(_) => Err("rule result is not a vector or scalar".to_owned()),
    }
}

/// What alert templates expand with at `ts`: Prometheus' functions, with `query` running
/// instant queries at `ts` through the rules' engine.
fn template_context(engine: &Engine, ts: i64) -> PrometheusContext {
    let engine = engine.clone();
    let query: obs_template::QueryFn = Arc::new(move |expr: &str| {
        Ok(instant_vector(&engine, expr, ts)?
            .into_iter()
            .map(|(labels, value)| obs_template::Sample {
                labels: labels
                    .iter()
                    .map(|label| (label.name.to_string(), label.value.to_string()))
                    .collect(),
                value,
            })
            .collect())
    });
    PrometheusContext {
        external_url: String::new(),
        timestamp_ms: ts,
        query: Some(query),
    }
}

/// Prometheus' link to an expression in its graph page (`strutil.TableLinkForExpression`).
fn generator_url(external_url: &str, expr: &str) -> String {
    let mut encoded = String::with_capacity(expr.len() * 2);
    for byte in expr.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(byte as char),
            b' ' => encoded.push('+'),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!(
        "{}/graph?g0.expr={encoded}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

/// The groups of every rule file, as the API shows them.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Groups in file order.
    pub groups: Vec<Arc<Group>>,
}

impl RuleSet {
    /// Every active alert (pending or firing) of every group.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.active_alerts_of(None)
    }

    /// The pending and firing alerts of the groups in `language` (all with `None`).
    pub fn active_alerts_of(&self, language: Option<QueryLanguage>) -> Vec<Alert> {
        let mut out = Vec::new();
        for group in self
            .groups
            .iter()
            .filter(|group| language.is_none_or(|language| group.language == language))
        {
            for rule in &group.rules {
                let alerts = rule.alerts.lock().unwrap_or_else(|poison| poison.into_inner());
                out.extend(
                    alerts
                        .values()
                        .filter(|alert| alert.state != AlertState::Inactive)
                        .cloned(),
                );
            }
        }
        out
    }
}

/// A key identifying a group across reloads: file and name.
pub fn group_key(file: &str, name: &str) -> String {
    format!("{file};{name}")
}

/// Carries alert state from an old group to its replacement with the same key: each new rule
/// takes the alerts and written series of the first old rule with its name and expression not
/// taken yet; the series of old rules nobody took are marked stale at the next evaluation.
pub fn carry_over(old: &Group, new: &Group) {
    let old_previous = old.previous.lock().unwrap_or_else(|poison| poison.into_inner());
    let mut new_previous = new.previous.lock().unwrap_or_else(|poison| poison.into_inner());
    let mut taken = vec![false; old.rules.len()];
    for (new_index, rule) in new.rules.iter().enumerate() {
        let Some(old_index) = old.rules.iter().enumerate().position(|(index, candidate)| {
            !taken[index] && candidate.name() == rule.name() && candidate.query == rule.query
        }) else {
            continue;
        };
        taken[old_index] = true;
        let alerts = old.rules[old_index]
            .alerts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        *rule.alerts.lock().unwrap_or_else(|poison| poison.into_inner()) = alerts;
        if let (Some(slot), Some(series)) = (
            new_previous.by_rule.get_mut(new_index),
            old_previous.by_rule.get(old_index),
        ) {
            slot.clone_from(series);
        }
    }
    let mut orphaned = old_previous.orphaned.clone();
    for (old_index, series) in old_previous.by_rule.iter().enumerate() {
        if !taken.get(old_index).copied().unwrap_or(false) {
            orphaned.extend(series.iter().cloned());
        }
    }
    new_previous.orphaned = orphaned;
    drop(new_previous);
    drop(old_previous);
    *new.restored.lock().unwrap_or_else(|poison| poison.into_inner()) = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::series::{MetricMetadata, StorageError};

    /// Series in memory: queried by the engine and written by the group.
    #[derive(Default)]
    struct Memory(Mutex<Vec<SeriesSamples>>);

    impl Memory {
        fn add(&self, labels: Labels, ts: i64, value: f64) {
            let mut all = self.0.lock().unwrap();
            match all.iter_mut().find(|series| series.labels == labels) {
                Some(series) => {
                    series.samples.retain(|(t, _)| *t != ts);
                    series.samples.push((ts, value));
                    series.samples.sort_by_key(|(t, _)| *t);
                }
                None => all.push(SeriesSamples {
                    labels,
                    samples: vec![(ts, value)],
                }),
            }
        }
    }

    impl MetricsQuerier for Memory {
        fn select(
            &self,
            matchers: &[Matcher],
            mint: i64,
            maxt: i64,
        ) -> Result<Vec<SeriesSamples>, StorageError> {
            let mut out: Vec<SeriesSamples> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|series| matchers.iter().all(|m| m.matches_labels(&series.labels)))
                .map(|series| SeriesSamples {
                    labels: series.labels.clone(),
                    samples: series
                        .samples
                        .iter()
                        .copied()
                        .filter(|(t, _)| *t >= mint && *t <= maxt)
                        .collect(),
                })
                .filter(|series| !series.samples.is_empty())
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(out)
        }
        fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
            Ok(vec![])
        }
        fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
            Ok(vec![])
        }
        fn metadata(&self, _: Option<&str>, _: Option<usize>) -> Vec<(String, Vec<MetricMetadata>)> {
            vec![]
        }
    }

    struct Sink<'a>(&'a Memory);

    impl SeriesSink for Sink<'_> {
        fn write(&self, batch: Vec<SeriesSamples>) -> Result<(), String> {
            for series in batch {
                for (ts, value) in series.samples {
                    self.0.add(series.labels.clone(), ts, value);
                }
            }
            Ok(())
        }
    }

    fn group(yaml: &str) -> Group {
        let file: crate::file::RuleFile = serde_yaml::from_str(yaml).unwrap();
        crate::file::validate(&file).unwrap();
        Group::new(&file.groups[0], "test.yml", 1000)
    }

    fn load(memory: &Memory, ts: i64, value: f64) {
        memory.add(
            Labels::series([("__name__", "temp"), ("room", "a")]).unwrap(),
            ts,
            value,
        );
    }

    fn state(group: &Group) -> Vec<(String, i64)> {
        group.rules[0]
            .alerts
            .lock()
            .unwrap()
            .values()
            .map(|alert| (alert.state.as_str().to_owned(), alert.active_at))
            .collect()
    }

    #[test]
    fn alerts_go_pending_firing_kept_and_resolved() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let group = group(
            "groups: [{name: g, rules: [{alert: Hot, expr: 'temp > 20', for: 2s, keep_firing_for: 2s}]}]",
        );
        let sink = Sink(&memory);
        let at = |seconds: i64| 1_000_000 + seconds * 1000;
        for (second, value, expected) in [
            (0, 25.0, vec![("pending", at(0))]),
            (1, 25.0, vec![("pending", at(0))]),
            (2, 25.0, vec![("firing", at(0))]),
            // Cleared at 3 s, kept firing for 2 s from there (Prometheus' KeepFiringSince).
            (3, 10.0, vec![("firing", at(0))]),
            (4, 10.0, vec![("firing", at(0))]),
            (5, 10.0, vec![("inactive", at(0))]),
            // Active again: a new alert, pending from now.
            (6, 30.0, vec![("pending", at(6))]),
        ] {
            load(&memory, at(second), value);
            group.evaluate(&engine, querier.as_ref(), &sink, at(second));
            let expected: Vec<(String, i64)> = expected.into_iter().map(|(s, t)| (s.to_owned(), t)).collect();
            assert_eq!(state(&group), expected, "at {second} s");
        }
        // ALERTS went stale when the alert resolved at 5 s, and came back pending at 6 s.
        let alerts = memory
            .select(&[Matcher::equal("__name__", "ALERTS")], 0, i64::MAX)
            .unwrap();
        let firing = alerts
            .iter()
            .find(|series| series.labels.get("alertstate") == Some("firing"))
            .unwrap();
        let last = firing.samples.last().unwrap();
        assert_eq!(last.0, at(5));
        assert_eq!(last.1.to_bits(), STALE_NAN.to_bits());
    }

    #[test]
    fn pending_time_is_restored_after_a_restart() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let yaml = "groups: [{name: g, rules: [{alert: Hot, expr: 'temp > 20', for: 30m}]}]";
        let sink = Sink(&memory);
        let minute = 60_000;
        let start = 100 * minute;
        // Before the "restart": pending since `start`, last evaluated 20 minutes later.
        let before = group(yaml);
        for step in 0..=20 {
            load(&memory, start + step * minute, 25.0);
            before.evaluate(&engine, querier.as_ref(), &sink, start + step * minute);
        }
        // Down for 5 minutes, then a new group (fresh state) evaluates.
        let after = group(yaml);
        let now = start + 25 * minute;
        load(&memory, now, 25.0);
        after.evaluate(&engine, querier.as_ref(), &sink, now);
        // 20 minutes were spent pending; 10 remain, which is not under the 10-minute grace
        // period, so the downtime is added: active since start + 5 min.
        assert_eq!(state(&after), vec![("pending".to_owned(), start + 5 * minute)]);
    }

    fn load_room(memory: &Memory, room: &str, ts: i64, value: f64) {
        memory.add(
            Labels::series([("__name__", "temp"), ("room", room)]).unwrap(),
            ts,
            value,
        );
    }

    fn samples_of(memory: &Memory, name: &str) -> Vec<(i64, u64)> {
        memory
            .select(&[Matcher::equal("__name__", name)], 0, i64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|series| series.samples)
            .map(|(ts, value)| (ts, value.to_bits()))
            .collect()
    }

    #[test]
    fn a_failing_rule_writes_nothing_and_keeps_its_series() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let group = group("groups: [{name: g, limit: 1, rules: [{record: 'room:temp', expr: temp}]}]");
        let sink = Sink(&memory);
        load_room(&memory, "a", 1000, 25.0);
        group.evaluate(&engine, querier.as_ref(), &sink, 1000);
        // A second room: over the limit, the rule fails.
        load_room(&memory, "a", 2000, 25.0);
        load_room(&memory, "b", 2000, 25.0);
        group.evaluate(&engine, querier.as_ref(), &sink, 2000);
        assert_eq!(group.rules[0].health.lock().unwrap().health, "err");
        // Room b goes stale: the rule works again.
        load_room(&memory, "a", 3000, 25.0);
        load_room(&memory, "b", 3000, STALE_NAN);
        group.evaluate(&engine, querier.as_ref(), &sink, 3000);
        // Room a goes stale: the recorded series gets its stale marker.
        load_room(&memory, "a", 4000, STALE_NAN);
        group.evaluate(&engine, querier.as_ref(), &sink, 4000);
        // No stale marker at 2000 (Prometheus keeps a failing rule's series; they fade after
        // the lookback delta), one when the series really went away.
        let bits = 25.0f64.to_bits();
        assert_eq!(
            samples_of(&memory, "room:temp"),
            vec![(1000, bits), (3000, bits), (4000, STALE_NAN.to_bits())]
        );
    }

    #[test]
    fn exceeding_the_limit_drops_the_alerts_of_the_rule() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let group =
            group("groups: [{name: g, limit: 1, rules: [{alert: Hot, expr: 'temp > 20', for: 10s}]}]");
        let sink = Sink(&memory);
        load_room(&memory, "a", 1000, 25.0);
        group.evaluate(&engine, querier.as_ref(), &sink, 1000);
        assert_eq!(state(&group), vec![("pending".to_owned(), 1000)]);
        load_room(&memory, "a", 2000, 25.0);
        load_room(&memory, "b", 2000, 25.0);
        group.evaluate(&engine, querier.as_ref(), &sink, 2000);
        let health = group.rules[0].health.lock().unwrap().clone();
        assert_eq!(health.last_error, "exceeded limit of 1 with 2 alerts");
        assert_eq!(state(&group), vec![]);
        // Back under the limit: a new alert, pending from now, as in Prometheus
        // (AlertingRule.Eval empties `r.active`).
        load_room(&memory, "a", 3000, 25.0);
        load_room(&memory, "b", 3000, STALE_NAN);
        group.evaluate(&engine, querier.as_ref(), &sink, 3000);
        assert_eq!(state(&group), vec![("pending".to_owned(), 3000)]);
    }

    #[test]
    fn a_reload_marks_the_series_of_removed_rules_stale() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let sink = Sink(&memory);
        let old = group(
            "groups: [{name: g, rules: [{record: 'a:x', expr: temp}, {record: 'b:x', expr: temp * 2}]}]",
        );
        load_room(&memory, "a", 1000, 25.0);
        old.evaluate(&engine, querier.as_ref(), &sink, 1000);
        let new = group("groups: [{name: g, rules: [{record: 'b:x', expr: temp * 2}]}]");
        carry_over(&old, &new);
        load_room(&memory, "a", 2000, 25.0);
        new.evaluate(&engine, querier.as_ref(), &sink, 2000);
        assert_eq!(
            samples_of(&memory, "a:x"),
            vec![(1000, 25.0f64.to_bits()), (2000, STALE_NAN.to_bits())]
        );
        assert_eq!(
            samples_of(&memory, "b:x"),
            vec![(1000, 50.0f64.to_bits()), (2000, 50.0f64.to_bits())]
        );
    }

    #[test]
    fn a_removed_group_marks_all_its_series_stale() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        let group = group(
            "groups: [{name: g, rules: [{record: 'a:x', expr: temp}, {alert: Hot, expr: 'temp > 20'}]}]",
        );
        load_room(&memory, "a", 1000, 25.0);
        group.evaluate(&engine, querier.as_ref(), &Sink(&memory), 1000);
        let stale = group.stale_markers(5000);
        let names: Vec<String> = stale
            .iter()
            .map(|series| series.labels.metric_name().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(names, ["ALERTS", "ALERTS_FOR_STATE", "a:x"], "{stale:?}");
        assert!(stale.iter().all(|series| {
            series.samples.len() == 1
                && series.samples[0].0 == 5000
                && series.samples[0].1.to_bits() == STALE_NAN.to_bits()
        }));
    }

    #[test]
    fn recording_rules_write_series_and_refuse_duplicates() {
        let memory = Arc::new(Memory::default());
        let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
        let engine = Engine::new(Arc::clone(&querier), obs_promql::EngineOptions::default());
        load(&memory, 1000, 25.0);
        memory.add(
            Labels::series([("__name__", "humidity"), ("room", "a")]).unwrap(),
            1000,
            40.0,
        );
        let group = group(
            "groups: [{name: g, labels: {src: rules}, rules: [{record: 'room:temp:x2', expr: 'temp * 2'}, {record: clash, expr: '{room=\"a\"}'}]}]",
        );
        group.evaluate(&engine, querier.as_ref(), &Sink(&memory), 1000);
        let written = memory
            .select(&[Matcher::equal("__name__", "room:temp:x2")], 0, i64::MAX)
            .unwrap();
        assert_eq!(
            written[0].labels.to_string(),
            r#"room:temp:x2{room="a", src="rules"}"#
        );
        assert_eq!(written[0].samples, vec![(1000, 50.0)]);
        let health = group.rules[1].health.lock().unwrap().clone();
        assert_eq!(health.health, "err");
        assert!(
            health.last_error.contains("same labelset"),
            "{}",
            health.last_error
        );
    }
}
