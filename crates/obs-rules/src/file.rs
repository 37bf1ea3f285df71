//! Rule files in Prometheus' format: `groups:` with `name`, `interval`, `limit`, `labels`, and
//! alerting (`alert`, `expr`, `for`, `keep_firing_for`, `labels`, `annotations`) or recording
//! (`record`, `expr`, `labels`) rules. Validation names the file, group, rule and reason, as
//! `promtool check rules` does. Log rules (Loki's ruler) use the same format with LogQL
//! metric queries as expressions ([`QueryLanguage::LogQL`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use obs_core::units::PromDuration;
use serde::Deserialize;

/// The language of a rule file's expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    /// PromQL over the metrics store (`rule_files`).
    #[default]
    PromQL,
    /// LogQL metric queries over the log store (`log_rule_files`, as Loki's ruler).
    LogQL,
}

/// A rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Its groups.
    #[serde(default)]
    pub groups: Vec<RuleGroupConfig>,
}

/// One group of rules, evaluated in order at one timestamp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupConfig {
    /// Unique in its file.
    pub name: String,
    /// How often to evaluate (the global evaluation interval when absent).
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// The most alerts or series a rule may produce (0: no limit).
    #[serde(default)]
    pub limit: usize,
    /// Labels added to every rule's output (a rule's own labels win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Accepted for compatibility with Prometheus 3 / Loki (`query_offset`, …) and reported.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The name of the series a recording rule writes.
    #[serde(default)]
    pub record: Option<String>,
    /// The name of the alert.
    #[serde(default)]
    pub alert: Option<String>,
    /// The PromQL expression.
    pub expr: ExprText,
    /// How long an alert stays pending before firing.
    #[serde(default, rename = "for")]
    pub for_duration: Option<PromDuration>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<PromDuration>,
    /// Labels to add (templates for alerts).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An expression, written as a string or (as YAML allows) a number.
#[derive(Debug, Clone)]
pub struct ExprText(pub String);

impl<'de> Deserialize<'de> for ExprText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ExprText, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        match value {
            serde_yaml::Value::String(text) => Ok(ExprText(text)),
            serde_yaml::Value::Number(number) => Ok(ExprText(number.to_string())),
            serde_yaml::Value::Bool(flag) => Ok(ExprText(flag.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expr must be a string, not {other:?}"
            ))),
        }
    }
}

/// Why a rule file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct RuleFileError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong: group, rule index and name, reason.
    pub message: String,
}

/// Reads and validates a rule file of PromQL rules.
pub fn load(path: &Path) -> Result<RuleFile, RuleFileError> {
    load_as(path, QueryLanguage::PromQL)
}

/// Reads and validates a rule file whose expressions are in `language`.
pub fn load_as(path: &Path, language: QueryLanguage) -> Result<RuleFile, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|err| RuleFileError {
        file: path.to_owned(),
        message: format!("cannot read: {err}"),
    })?;
    parse_as(&text, path, language)
}

/// Parses and validates rule-file text of PromQL rules; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<RuleFile, RuleFileError> {
    parse_as(text, path, QueryLanguage::PromQL)
}

/// Parses and validates rule-file text whose expressions are in `language`.
pub fn parse_as(text: &str, path: &Path, language: QueryLanguage) -> Result<RuleFile, RuleFileError> {
    let error = |message: String| RuleFileError {
        file: path.to_owned(),
        message,
    };
    let file: RuleFile = if text.trim().is_empty() {
        RuleFile { groups: Vec::new() }
    } else {
        serde_yaml::from_str(text).map_err(|err| error(err.to_string()))?
    };
    validate_as(&file, language).map_err(error)?;
    Ok(file)
}

/// Prometheus' rule file validation.
pub fn validate(file: &RuleFile) -> Result<(), String> {
    validate_as(file, QueryLanguage::PromQL)
}

/// Checks a parsed rule file whose expressions are in `language`.
pub fn validate_as(file: &RuleFile, language: QueryLanguage) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for group in &file.groups {
        if group.name.is_empty() {
            return Err("group name should not be empty".to_owned());
        }
        if !names.insert(group.name.as_str()) {
            return Err(format!(
                "groupname: {:?} is repeated in the same file",
                group.name
            ));
        }
        if let Some(interval) = group.interval
            && interval.as_std().is_zero()
        {
            return Err(format!("group {:?}: interval must be positive", group.name));
        }
        for (index, rule) in group.rules.iter().enumerate() {
            let described = match (&rule.alert, &rule.record) {
                (Some(alert), _) => format!("alert={alert:?}"),
                (None, Some(record)) => format!("record={record:?}"),
                (None, None) => String::new(),
            };
            let fail = |reason: String| {
                format!(
                    "group {:?}, rule {}, {described}: {reason}",
                    group.name,
                    index + 1
                )
            };
            validate_rule(rule, language).map_err(fail)?;
        }
    }
    Ok(())
}

fn validate_rule(rule: &RuleConfig, language: QueryLanguage) -> Result<(), String> {
    match (&rule.record, &rule.alert) {
        (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' must be set".to_owned()),
        (None, None) => return Err("one of 'record' or 'alert' must be set".to_owned()),
        _ => {}
    }
    if rule.expr.0.trim().is_empty() {
        return Err("field 'expr' must be set in rule".to_owned());
    }
    match language {
        QueryLanguage::PromQL => {
            obs_promql::parse(&rule.expr.0).map_err(|err| format!("could not parse expression: {err}"))?;
        }
        QueryLanguage::LogQL => {
            let expr =
                obs_logql::parse(&rule.expr.0).map_err(|err| format!("could not parse expression: {err}"))?;
            if expr.is_log() {
                return Err("a rule expression must be a metric query, not a log query".to_owned());
            }
        }
    }
    if let Some(record) = &rule.record {
        if !rule.annotations.is_empty() {
            return Err("invalid field 'annotations' in recording rule".to_owned());
        }
        if rule.for_duration.is_some() {
            return Err("invalid field 'for' in recording rule".to_owned());
        }
        if rule.keep_firing_for.is_some() {
            return Err("invalid field 'keep_firing_for' in recording rule".to_owned());
        }
        if !obs_core::series::is_valid_metric_name(record) {
            return Err(format!("invalid recording rule name: {record}"));
        }
    }
    for name in rule.labels.keys() {
        if name == "__name__" {
            return Err("invalid label name: __name__".to_owned());
        }
        if !obs_core::series::is_valid_label_name(name) {
            return Err(format!("invalid label name: {name}"));
        }
    }
    for name in rule.annotations.keys() {
        if !obs_core::series::is_valid_label_name(name) {
            return Err(format!("invalid annotation name: {name}"));
        }
    }
    if rule.alert.is_some() {
        for (name, text) in rule.labels.iter().chain(&rule.annotations) {
            // Parsed as Prometheus expands it: with $labels, $value … defined and its functions.
            let functions = obs_template::prometheus::PrometheusContext::default().functions();
            let full = format!("{}{text}", obs_template::prometheus::ALERT_TEMPLATE_PREFIX);
            obs_template::Template::parse_with_functions(name, &full, functions)
                .map_err(|err| format!("template in {name:?} does not parse: {err}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(), String> {
        let file: RuleFile = serde_yaml::from_str(text).map_err(|err| err.to_string())?;
        validate(&file)
    }

    #[test]
    fn prometheus_rule_files_load() {
        parse(
            r#"
groups:
  - name: node
    interval: 30s
    labels: {team: infra}
    rules:
      - record: job:node_load1:avg
        expr: avg by (job) (node_load1)
      - alert: DiskAlmostFull
        expr: 100 * (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes) > 80
        for: 10m
        keep_firing_for: 5m
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.instance }} disk {{ $value | humanize }}% full"
"#,
        )
        .unwrap();
    }

    #[test]
    fn invalid_rules_name_group_rule_and_reason() {
        let cases = [
            (
                "groups: [{name: g, rules: [{expr: up}]}]",
                "group \"g\", rule 1, : one of 'record' or 'alert' must be set",
            ),
            (
                "groups: [{name: g, rules: [{record: a, alert: b, expr: up}]}]",
                "only one of 'record' and 'alert' must be set",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: 'sum('}]}]",
                "alert=\"A\": could not parse expression",
            ),
            (
                "groups: [{name: g, rules: [{record: 'bad-name', expr: up}]}]",
                "invalid recording rule name: bad-name",
            ),
            (
                "groups: [{name: g, rules: [{record: a, expr: up, for: 1m}]}]",
                "invalid field 'for' in recording rule",
            ),
            (
                "groups: [{name: g}, {name: g}]",
                "groupname: \"g\" is repeated in the same file",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: up, labels: {'0x': y}}]}]",
                "invalid label name: 0x",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: up, annotations: {s: '{{ .Broken'}}]}]",
                "template in \"s\" does not parse",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(parse("groups: [{name: g, rules: [{alert: A, expr: up, bogus: 1}]}]").is_err());
    }
}
