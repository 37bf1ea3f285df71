//! Message bodies: Alertmanager's webhook payload (version "4") and the ntfy message of the
//! obs-appliance `ntfy_configs` extension. Pure functions: the server sends them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alert::AlertStatus;
use crate::config::NtfyConfig;
use crate::dispatch::Notification;
use crate::time::go_json_time;

/// The webhook body for a notification, byte for byte as Alertmanager 0.27's
/// `json.NewEncoder(&buf).Encode(msg)` writes it: the fields of `template.Data` first
/// (`receiver`, `status`, `alerts`, `groupLabels`, `commonLabels`, `commonAnnotations`,
/// `externalURL`), then `version`, `groupKey`, `truncatedAlerts`; map keys sorted; `<`, `>`,
/// `&`, U+2028 and U+2029 escaped; a trailing newline. `receiver` is passed through Go's
/// `regexp.QuoteMeta` as upstream does (`team.a` → `team\\.a`).
pub fn webhook_payload(notification: &Notification, external_url: &str) -> String {
    let at = notification.created_at;
    let alerts: Vec<PayloadAlert<'_>> = notification
        .alerts
        .iter()
        .map(|alert| PayloadAlert {
            status: alert.status_at(at).as_str(),
            labels: alert.labels.as_map(),
            annotations: alert.annotations.as_map(),
            starts_at: go_json_time(Some(alert.starts_at)),
            ends_at: go_json_time(alert.ends_at),
            generator_url: &alert.generator_url,
            fingerprint: alert.fingerprint().to_string(),
        })
        .collect();
    let (common_labels, common_annotations) = common_labels_and_annotations(notification);
    let message = Message {
        receiver: quote_meta(&notification.integration.receiver),
        status: notification.status().as_str(),
        alerts,
        group_labels: notification.group_labels.as_map(),
        common_labels,
        common_annotations,
        external_url,
        version: "4",
        group_key: &notification.group_key,
        truncated_alerts: notification.truncated_alerts,
    };
    // Serializing maps of strings and plain structs cannot fail.
    let json = serde_json::to_string(&message).unwrap_or_default();
    let mut out = go_escape_html(&json);
    out.push('\n');
    out
}

#[derive(Serialize)]
struct Message<'a> {
    receiver: String,
    status: &'static str,
    alerts: Vec<PayloadAlert<'a>>,
    #[serde(rename = "groupLabels")]
    group_labels: &'a BTreeMap<String, String>,
    #[serde(rename = "commonLabels")]
    common_labels: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "commonAnnotations")]
    common_annotations: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    #[serde(rename = "groupKey")]
    group_key: &'a str,
    #[serde(rename = "truncatedAlerts")]
    truncated_alerts: u64,
}

#[derive(Serialize)]
struct PayloadAlert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

/// Labels and annotations with the same value in every alert (`commonLabels`,
/// `commonAnnotations`).
fn common_labels_and_annotations(
    notification: &Notification,
) -> (BTreeMap<&str, &str>, BTreeMap<&str, &str>) {
    let Some((first, rest)) = notification.alerts.split_first() else {
        return (BTreeMap::new(), BTreeMap::new());
    };
    let mut labels: BTreeMap<&str, &str> = first.labels.iter().collect();
    let mut annotations: BTreeMap<&str, &str> = first.annotations.iter().collect();
    for alert in rest {
        labels.retain(|name, value| alert.labels.contains(name) && alert.labels.get(name) == *value);
        annotations
            .retain(|name, value| alert.annotations.contains(name) && alert.annotations.get(name) == *value);
    }
    (labels, annotations)
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The escapes Go's `encoding/json` adds to serde_json's output by default (`SetEscapeHTML`
/// and the JavaScript line separators). These characters only occur inside strings.
fn go_escape_html(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The most bytes of message text ntfy accepts by default.
pub const NTFY_MAX_MESSAGE_BYTES: usize = 4096;

/// An ntfy publish request (JSON publishing: `POST <server>/` with the topic in the body).
/// Authentication (`token` / `token_file` / `http_config`) is added by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyMessage {
    /// Where to POST: the server URL.
    pub url: String,
    /// Headers besides authentication.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

#[derive(Serialize)]
struct NtfyBody<'a> {
    topic: &'a str,
    title: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

/// Builds the ntfy message of the obs-appliance `ntfy_configs` extension: title
/// `[FIRING:2] HighLatency` or `[RESOLVED] HighLatency` (the group's, else the common,
/// `alertname`), one block per alert with its status, `summary` (else its alertname) and
/// `description`, cut to 4096 bytes; tags are the configured ones plus `rotating_light` or
/// `white_check_mark`.
pub fn ntfy_message(notification: &Notification, config: &NtfyConfig) -> NtfyMessage {
    let at = notification.created_at;
    let status = notification.status();
    let firing = notification
        .alerts
        .iter()
        .filter(|alert| alert.status_at(at) == AlertStatus::Firing)
        .count();
    let (common_labels, _) = common_labels_and_annotations(notification);
    let name = [
        notification.group_labels.get("alertname"),
        common_labels.get("alertname").copied().unwrap_or(""),
    ]
    .into_iter()
    .find(|name| !name.is_empty())
    .unwrap_or("alerts");
    let title = match status {
        AlertStatus::Firing => format!("[FIRING:{firing}] {name}"),
        AlertStatus::Resolved => format!("[RESOLVED] {name}"),
    };
    let mut message = String::new();
    for alert in &notification.alerts {
        if !message.is_empty() {
            message.push('\n');
        }
        let summary = [alert.annotations.get("summary"), alert.name()]
            .into_iter()
            .find(|text| !text.is_empty())
            .unwrap_or("(no summary)");
        message.push_str(&format!("[{}] {summary}", alert.status_at(at).as_str()));
        let description = alert.annotations.get("description");
        if !description.is_empty() {
            message.push('\n');
            message.push_str(description);
        }
    }
    if notification.truncated_alerts > 0 {
        message.push_str(&format!("\n… and {} more", notification.truncated_alerts));
    }
    truncate_utf8(&mut message, NTFY_MAX_MESSAGE_BYTES);
    let mut tags = config.tags.clone();
    tags.push(
        match status {
            AlertStatus::Firing => "rotating_light",
            AlertStatus::Resolved => "white_check_mark",
        }
        .to_owned(),
    );
    let body = NtfyBody {
        topic: &config.topic,
        title,
        message,
        priority: config.priority,
        tags,
    };
    NtfyMessage {
        url: config.url.clone(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_string(&body).unwrap_or_default(),
    }
}

/// Cuts `text` to at most `max_bytes`, at a character boundary, ending with `…` when cut.
fn truncate_utf8(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let ellipsis = "…";
    let mut cut = max_bytes - ellipsis.len();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(ellipsis);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::config::Config;
    use crate::dispatch::Dispatcher;
    use crate::labels::LabelSet;
    use crate::nflog::MemoryNotificationLog;
    use crate::silence::Silences;
    use crate::time::Timestamp;

    fn notification(yaml: &str, alerts: Vec<Alert>, flush_at: &str) -> Notification {
        let mut dispatcher = Dispatcher::new(Config::parse(yaml).unwrap(), MemoryNotificationLog::new());
        let now = Timestamp::parse_rfc3339(flush_at).unwrap();
        for alert in alerts {
            dispatcher.put_alert(alert, now);
        }
        dispatcher.flush_due(now, &Silences::default()).remove(0)
    }

    fn alert(pairs: &[(&str, &str)], annotations: &[(&str, &str)], starts: &str, ends: &str) -> Alert {
        Alert {
            labels: LabelSet::from_pairs(pairs.iter().copied()),
            annotations: LabelSet::from_pairs(annotations.iter().copied()),
            starts_at: Timestamp::parse_rfc3339(starts).unwrap(),
            ends_at: Some(Timestamp::parse_rfc3339(ends).unwrap()),
            generator_url: "http://prom:9090/graph?g0.expr=up+%3C+1&g0.tab=1".to_owned(),
            updated_at: Timestamp::parse_rfc3339(starts).unwrap(),
            timeout: false,
        }
    }

    const YAML: &str = r#"
route:
  receiver: team.ops
  group_by: [alertname]
receivers:
  - name: team.ops
    webhook_configs: [{url: "http://hook/x", max_alerts: 2}]
    ntfy_configs: [{topic: ops, priority: high, tags: [server]}]
"#;

    #[test]
    fn webhook_payload_is_byte_identical_to_go() {
        let n = notification(
            YAML,
            vec![
                alert(
                    &[("alertname", "Down"), ("instance", "b"), ("job", "node")],
                    &[("summary", "b <down> & out")],
                    "2024-05-01T10:00:00.5Z",
                    "2024-05-01T10:20:00Z",
                ),
                alert(
                    &[("alertname", "Down"), ("instance", "a"), ("job", "node")],
                    &[("summary", "a down")],
                    "2024-05-01T09:00:00Z",
                    "2024-05-01T10:01:00.123456789Z",
                ),
                alert(
                    &[("alertname", "Down"), ("instance", "c")],
                    &[],
                    "2024-05-01T09:00:00Z",
                    "2024-05-01T10:20:00Z",
                ),
            ],
            "2024-05-01T10:05:00Z",
        );
        let expected = concat!(
            r#"{"receiver":"team\\.ops","status":"firing","alerts":["#,
            r#"{"status":"resolved","labels":{"alertname":"Down","instance":"a","job":"node"},"annotations":{"summary":"a down"},"startsAt":"2024-05-01T09:00:00Z","endsAt":"2024-05-01T10:01:00.123456789Z","generatorURL":"http://prom:9090/graph?g0.expr=up+%3C+1\u0026g0.tab=1","fingerprint":""#,
        );
        let payload = webhook_payload(&n, "http://am.example:9093");
        assert!(payload.starts_with(expected), "{payload}");
        let second = r#"{"status":"firing","labels":{"alertname":"Down","instance":"b","job":"node"},"annotations":{"summary":"b \u003cdown\u003e \u0026 out"},"startsAt":"2024-05-01T10:00:00.5Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"#;
        assert!(payload.contains(second), "{payload}");
        let tail = r#"],"groupLabels":{"alertname":"Down"},"commonLabels":{"alertname":"Down","job":"node"},"commonAnnotations":{},"externalURL":"http://am.example:9093","version":"4","groupKey":"{}:{alertname=\"Down\"}","truncatedAlerts":1}"#;
        assert!(payload.ends_with(&format!("{tail}\n")), "{payload}");
        let fingerprint =
            LabelSet::from_pairs([("alertname", "Down"), ("instance", "a"), ("job", "node")]).fingerprint();
        assert!(payload.contains(&format!(r#""fingerprint":"{fingerprint}"}}"#)));
        // Parses as JSON with the documented fields.
        let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(value["alerts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn ntfy_message_has_title_lines_and_tags() {
        let mut n = notification(
            YAML,
            vec![
                alert(
                    &[("alertname", "Down"), ("instance", "a")],
                    &[("summary", "a down"), ("description", "no scrape for 5m")],
                    "2024-05-01T09:00:00Z",
                    "2024-05-01T10:20:00Z",
                ),
                alert(
                    &[("alertname", "Down"), ("instance", "b")],
                    &[],
                    "2024-05-01T09:00:00Z",
                    "2024-05-01T10:20:00Z",
                ),
            ],
            "2024-05-01T10:05:00Z",
        );
        let config = Config::parse(YAML).unwrap().receivers[0].ntfy_configs[0].clone();
        n.truncated_alerts = 0;
        let message = ntfy_message(&n, &config);
        assert_eq!(message.url, "https://ntfy.sh");
        let body: serde_json::Value = serde_json::from_str(&message.body).unwrap();
        assert_eq!(body["topic"], "ops");
        assert_eq!(body["title"], "[FIRING:2] Down");
        assert_eq!(
            body["message"],
            "[firing] a down\nno scrape for 5m\n[firing] Down"
        );
        assert_eq!(body["priority"], 4);
        assert_eq!(body["tags"], serde_json::json!(["server", "rotating_light"]));
        let mut long = "é".repeat(3000);
        truncate_utf8(&mut long, NTFY_MAX_MESSAGE_BYTES);
        assert!(long.len() <= NTFY_MAX_MESSAGE_BYTES && long.ends_with('…'));
    }

    #[test]
    fn quote_meta_and_html_escapes_as_go() {
        assert_eq!(
            quote_meta(r"a.b+c*(d)|[e]{f}^$\"),
            r"a\.b\+c\*\(d\)\|\[e\]\{f\}\^\$\\"
        );
        assert_eq!(go_escape_html("<a&b>\u{2028}"), r"\u003ca\u0026b\u003e\u2028");
    }
}
