//! The built-in Alertmanager end to end: rules fire and resolve through a webhook with the
//! exact version-4 payload, grouping and repeat timings, silences and inhibition suppress,
//! a restart neither forgets silences nor notifies twice, a real Prometheus delivers its alerts
//! through `/api/v2/alerts`, and bad input gets a 4xx.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Appliance;
use serde_json::{Value, json};

/// A webhook receiver on loopback: records every POST body with its arrival time, and
/// answers with `status` (200 unless changed).
struct Webhook {
    address: String,
    received: Arc<Mutex<Vec<(Instant, Value)>>>,
    status: Arc<Mutex<u16>>,
    /// Request line and `Authorization` header of every request.
    heads: Arc<Mutex<Vec<(String, String)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200u16));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (sink, answer, head_sink) = (Arc::clone(&received), Arc::clone(&status), Arc::clone(&heads));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (sink, answer, head_sink) =
                    (Arc::clone(&sink), Arc::clone(&answer), Arc::clone(&head_sink));
                std::thread::spawn(move || serve(stream, &sink, &answer, &head_sink));
            }
        });
        Webhook {
            address,
            received,
            status,
            heads,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn payloads(&self) -> Vec<(Instant, Value)> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a payload satisfies `check`; returns it.
    fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> (Instant, Value) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self.payloads().into_iter().find(|(_, payload)| check(payload)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no webhook payload {what} within {limit:?}; received: {:#?}",
                self.payloads()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(
    stream: TcpStream,
    sink: &Mutex<Vec<(Instant, Value)>>,
    status: &Mutex<u16>,
    heads: &Mutex<Vec<(String, String)>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut authorization = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                if name.eq_ignore_ascii_case("authorization") {
                    authorization = value.trim().to_owned();
                }
            }
        }
        heads
            .lock()
            .unwrap()
            .push((request_line.trim_end().to_owned(), authorization));
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let code = *status.lock().unwrap();
        if code == 200 {
            let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            sink.lock().unwrap().push((Instant::now(), payload));
        }
        let reason = if code == 200 { "OK" } else { "Error" };
        let answer = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// prometheus/common's `LabelSet.Fingerprint()`: FNV-1a 64 over the sorted pairs, each name
/// and value followed by 0xff.
fn fingerprint(labels: &[(&str, &str)]) -> String {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, value) in sorted {
        for byte in name.bytes().chain([0xff]).chain(value.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn get_json(appliance: &Appliance, path: &str) -> (u16, Value) {
    let (status, _, body) = common::get(&appliance.url(path));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn post_json(appliance: &Appliance, path: &str, body: &Value) -> (u16, Value) {
    let mut response = common::http()
        .post(&appliance.url(path))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn start(dir: &Path, config: &str) -> Appliance {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let appliance = Appliance::start(&dir.join("data"), &["--config", path.to_str().unwrap()]);
    appliance.wait_ready();
    appliance
}

#[test]
fn a_stopped_node_exporter_fires_a_webhook_and_its_return_resolves_it() {
    let Some(exporter) = common::required_tool(
        "prometheus-node-exporter",
        "apt-get install prometheus-node-exporter (tests/run does it as root)",
    ) else {
        return;
    };
    let port = common::free_port();
    let start_exporter = || {
        common::Killed(
            Command::new(&exporter)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let webhook = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("targets.rules.yml"),
        "groups:\n  - name: targets\n    interval: 1s\n    rules:\n      - alert: TargetDown\n        expr: up == 0\n        for: 2s\n        labels: {severity: critical}\n        annotations:\n          summary: '{{ $labels.instance }} of job {{ $labels.job }} is down'\n",
    )
    .unwrap();
    let running = start_exporter();
    let appliance = start(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             rule_files: ['*.rules.yml']\n\
             alertmanager:\n  resend_delay: 1s\n  external_url: http://obs.example:9090\n  config:\n    route: {{receiver: hook, group_by: [alertname, job], group_wait: 1s, group_interval: 2s, repeat_interval: 1h}}\n    receivers: [{{name: hook, webhook_configs: [{{url: '{}'}}]}}]\n",
            webhook.url()
        ),
    );
    // Scraped and up first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get_json(&appliance, "/api/v1/query?query=up%7Bjob%3D%22node%22%7D");
        if body["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "node-exporter never up: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(running);
    let stopped_at = Instant::now();

    let instance = format!("127.0.0.1:{port}");
    let (fired_at, firing) = webhook.wait_for("firing TargetDown", Duration::from_secs(30), |payload| {
        payload["status"] == "firing" && payload["commonLabels"]["alertname"] == "TargetDown"
    });
    assert!(
        fired_at.duration_since(stopped_at) >= Duration::from_secs(2),
        "fired before `for: 2s` passed"
    );
    let labels = [
        ("alertname", "TargetDown"),
        ("instance", instance.as_str()),
        ("job", "node"),
        ("severity", "critical"),
    ];
    let alert = &firing["alerts"][0];
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "hook");
    assert_eq!(firing["groupKey"], "{}:{alertname=\"TargetDown\", job=\"node\"}");
    assert_eq!(
        firing["groupLabels"],
        json!({"alertname": "TargetDown", "job": "node"})
    );
    assert_eq!(firing["truncatedAlerts"], 0);
    assert_eq!(firing["externalURL"], "http://obs.example:9090");
    assert_eq!(firing["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "TargetDown", "instance": instance, "job": "node", "severity": "critical"})
    );
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{instance} of job node is down")
    );
    assert_eq!(alert["fingerprint"], fingerprint(&labels));
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://obs.example:9090/graph?g0.expr=up+%3D%3D+0"),
        "{alert}"
    );
    // The Alertmanager API lists it, routed to the receiver.
    let (status, alerts) = get_json(&appliance, "/api/v2/alerts");
    assert_eq!(status, 200);
    let listed = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["labels"]["alertname"] == "TargetDown")
        .unwrap_or_else(|| panic!("TargetDown not listed: {alerts}"));
    assert_eq!(listed["fingerprint"], fingerprint(&labels));
    assert_eq!(listed["receivers"], json!([{"name": "hook"}]));
    assert_eq!(listed["status"]["state"], "active");

    // Back up: one resolved notification.
    let _running = start_exporter();
    let (_, resolved) = webhook.wait_for("resolved TargetDown", Duration::from_secs(30), |payload| {
        payload["status"] == "resolved" && payload["commonLabels"]["alertname"] == "TargetDown"
    });
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["fingerprint"], fingerprint(&labels));
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    // Nothing was sent twice (repeat_interval is 1h; resends from the rules every second
    // only refresh the alert).
    std::thread::sleep(Duration::from_secs(3));
    let firing_count = webhook
        .payloads()
        .iter()
        .filter(|(_, payload)| payload["status"] == "firing")
        .count();
    assert_eq!(firing_count, 1, "{:#?}", webhook.payloads());
}

const GROUPING_ROUTE: &str = "    route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 2s, repeat_interval: REPEAT}\n    inhibit_rules:\n      - source_matchers: ['severity=\"critical\"']\n        target_matchers: ['severity=\"warning\"']\n        equal: [instance]\n";

fn grouping_config(webhook: &Webhook, repeat: &str) -> String {
    format!(
        "alertmanager:\n  config:\n{}    receivers: [{{name: hook, webhook_configs: [{{url: '{}'}}]}}]\n",
        GROUPING_ROUTE.replace("REPEAT", repeat),
        webhook.url()
    )
}

fn alert(labels: Value) -> Value {
    json!({"labels": labels, "annotations": {"summary": "test"}})
}

#[test]
fn grouping_repeat_silences_inhibition_and_a_restart() {
    let webhook = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    let mut appliance = start(dir.path(), &grouping_config(&webhook, "4s"));

    // A silence for one alert name, made through the API as Grafana makes it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, created) = post_json(
        &appliance,
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "alertname", "value": "Silenced", "isRegex": false, "isEqual": true}],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": format!("{}", humantime_rfc3339(now + 3600)),
            "createdBy": "test",
            "comment": "maintenance window"
        }),
    );
    assert_eq!(status, 200, "{created}");
    let silence_id = created["silenceID"].as_str().unwrap().to_owned();

    let (status, body) = post_json(
        &appliance,
        "/api/v2/alerts",
        &json!([
            alert(json!({"alertname": "DiskFull", "instance": "a", "severity": "warning"})),
            alert(json!({"alertname": "DiskFull", "instance": "b", "severity": "warning"})),
            alert(json!({"alertname": "NodeDown", "instance": "a", "severity": "critical"})),
            alert(json!({"alertname": "Silenced", "instance": "c", "severity": "warning"})),
        ]),
    );
    assert_eq!(status, 200, "{body}");

    // DiskFull on a is inhibited by NodeDown on a: only b is notified, in one group.
    let (disk_at, disk) = webhook.wait_for("DiskFull", Duration::from_secs(15), |payload| {
        payload["groupLabels"]["alertname"] == "DiskFull"
    });
    assert_eq!(disk["alerts"].as_array().unwrap().len(), 1, "{disk}");
    assert_eq!(disk["alerts"][0]["labels"]["instance"], "b");
    assert_eq!(disk["groupKey"], "{}:{alertname=\"DiskFull\"}");
    let (first_node_at, node) = webhook.wait_for("NodeDown", Duration::from_secs(15), |payload| {
        payload["groupLabels"]["alertname"] == "NodeDown"
    });
    assert_eq!(node["alerts"][0]["labels"]["instance"], "a");
    assert!(disk_at.duration_since(appliance.started) >= Duration::from_secs(1));

    // The API says why: silenced, inhibited (by NodeDown's fingerprint), active.
    let (_, alerts) = get_json(&appliance, "/api/v2/alerts");
    let by_instance = |name: &str, instance: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name && alert["labels"]["instance"] == instance)
            .unwrap_or_else(|| panic!("{name} {instance} not listed: {alerts}"))
            .clone()
    };
    let silenced = by_instance("Silenced", "c");
    assert_eq!(silenced["status"]["state"], "suppressed");
    assert_eq!(silenced["status"]["silencedBy"], json!([silence_id]));
    let inhibited = by_instance("DiskFull", "a");
    assert_eq!(inhibited["status"]["state"], "suppressed");
    assert_eq!(
        inhibited["status"]["inhibitedBy"],
        json!([fingerprint(&[
            ("alertname", "NodeDown"),
            ("instance", "a"),
            ("severity", "critical")
        ])])
    );
    assert_eq!(by_instance("DiskFull", "b")["status"]["state"], "active");
    let (_, unsilenced) = get_json(&appliance, "/api/v2/alerts?silenced=false&inhibited=false");
    assert_eq!(unsilenced.as_array().unwrap().len(), 2, "{unsilenced}");
    let (_, filtered) = get_json(&appliance, "/api/v2/alerts?filter=instance%3D%22b%22");
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");
    let (_, groups) = get_json(&appliance, "/api/v2/alerts/groups");
    let group_names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert!(
        group_names.contains(&"DiskFull") && group_names.contains(&"NodeDown"),
        "{groups}"
    );

    // repeat_interval 4s: NodeDown is sent again, not before 4s, at a group_interval tick.
    let (second_node_at, _) = webhook.wait_for("NodeDown repeated", Duration::from_secs(15), |payload| {
        payload["groupLabels"]["alertname"] == "NodeDown"
            && webhook
                .payloads()
                .iter()
                .filter(|(_, other)| other["groupLabels"]["alertname"] == "NodeDown")
                .count()
                >= 2
    });
    let nodes: Vec<Instant> = webhook
        .payloads()
        .iter()
        .filter(|(_, payload)| payload["groupLabels"]["alertname"] == "NodeDown")
        .map(|(at, _)| *at)
        .collect();
    let gap = nodes[1].duration_since(nodes[0]);
    assert!(gap >= Duration::from_millis(3900), "repeated after {gap:?}");
    assert!(second_node_at >= first_node_at);
    assert!(
        !webhook
            .payloads()
            .iter()
            .any(|(_, payload)| payload["groupLabels"]["alertname"] == "Silenced"),
        "a silenced alert was notified"
    );

    // Switch to repeat_interval 1h and change both groups, so that their last notifications
    // are logged under it (the log keeps an entry for twice the repeat interval, as upstream).
    std::fs::write(dir.path().join("config.yaml"), grouping_config(&webhook, "1h")).unwrap();
    let reloaded = common::http()
        .post(&appliance.url("/-/reload"))
        .send_empty()
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let (status, _) = post_json(
        &appliance,
        "/api/v2/alerts",
        &json!([
            alert(json!({"alertname": "NodeDown", "instance": "y", "severity": "critical"})),
            alert(json!({"alertname": "DiskFull", "instance": "d", "severity": "warning"})),
        ]),
    );
    assert_eq!(status, 200);
    let group_size = |payload: &Value, name: &str| {
        if payload["groupLabels"]["alertname"] == name {
            payload["alerts"].as_array().unwrap().len()
        } else {
            0
        }
    };
    webhook.wait_for("NodeDown a and y", Duration::from_secs(10), |payload| {
        group_size(payload, "NodeDown") == 2
    });
    webhook.wait_for("DiskFull b and d", Duration::from_secs(10), |payload| {
        group_size(payload, "DiskFull") == 2
    });

    // Restart: the silence is still there, the alerts come back, and nothing already notified
    // is sent again.
    appliance.signal("TERM");
    assert!(appliance.wait_exit(Duration::from_secs(10)).is_some());
    let before_restart = webhook.payloads().len();
    let appliance = start(dir.path(), &grouping_config(&webhook, "1h"));
    let (status, silence) = get_json(&appliance, &format!("/api/v2/silence/{silence_id}"));
    assert_eq!(status, 200);
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["comment"], "maintenance window");
    assert_eq!(silence["matchers"][0]["name"], "alertname");
    let (_, alerts) = get_json(&appliance, "/api/v2/alerts");
    assert_eq!(
        alerts.as_array().unwrap().len(),
        6,
        "alerts not restored: {alerts}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        webhook.payloads().len(),
        before_restart,
        "notified again after a restart: {:#?}",
        &webhook.payloads()[before_restart..]
    );
    // Still delivering: a new alert in the NodeDown group is notified.
    let (status, _) = post_json(
        &appliance,
        "/api/v2/alerts",
        &json!([alert(
            json!({"alertname": "NodeDown", "instance": "z", "severity": "critical"})
        )]),
    );
    assert_eq!(status, 200);
    let (_, grown) = webhook.wait_for("NodeDown with z", Duration::from_secs(10), |payload| {
        group_size(payload, "NodeDown") == 3
    });
    assert_eq!(grown["status"], "firing");

    // Expiring the silence through the API.
    let response = common::http()
        .delete(&appliance.url(&format!("/api/v2/silence/{silence_id}")))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, silence) = get_json(&appliance, &format!("/api/v2/silence/{silence_id}"));
    assert_eq!(silence["status"]["state"], "expired");
}

/// `seconds` since the epoch as RFC 3339 UTC (whole seconds).
fn humantime_rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn a_failing_webhook_is_retried_and_does_not_stop_other_receivers() {
    let failing = Webhook::start();
    *failing.status.lock().unwrap() = 500;
    let working = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    let appliance = start(
        dir.path(),
        &format!(
            "alertmanager:\n  config:\n    route:\n      receiver: broken\n      group_wait: 1s\n      group_interval: 3s\n      routes:\n        - {{receiver: broken, continue: true}}\n        - {{receiver: working}}\n    receivers:\n      - {{name: broken, webhook_configs: [{{url: '{}'}}]}}\n      - {{name: working, webhook_configs: [{{url: '{}'}}]}}\n",
            failing.url(),
            working.url()
        ),
    );
    let (status, _) = post_json(
        &appliance,
        "/api/v2/alerts",
        &json!([alert(json!({"alertname": "Both"}))]),
    );
    assert_eq!(status, 200);
    working.wait_for(
        "Both at the working receiver",
        Duration::from_secs(10),
        |payload| payload["commonLabels"]["alertname"] == "Both",
    );
    // The broken one is retried, then counted as failed; then it recovers and gets it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, metrics) = common::get(&appliance.url("/metrics"));
        let failed: f64 = metrics
            .lines()
            .find(|line| line.starts_with("alertmanager_notifications_failed_total{integration=\"webhook\"}"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0);
        let retries: f64 = metrics
            .lines()
            .find(|line| {
                line.starts_with("alertmanager_notification_requests_failed_total{integration=\"webhook\"}")
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0);
        if failed >= 1.0 {
            assert!(
                retries >= 2.0,
                "gave up without retrying ({retries} failed attempts)"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failure was never counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        appliance.log_text().contains("notification failed"),
        "the failure was not logged:\n{}",
        appliance.log_text()
    );
    *failing.status.lock().unwrap() = 200;
    failing.wait_for("Both after recovery", Duration::from_secs(15), |payload| {
        payload["commonLabels"]["alertname"] == "Both"
    });
    assert_eq!(
        working
            .payloads()
            .iter()
            .filter(|(_, payload)| payload["status"] == "firing")
            .count(),
        1,
        "the working receiver was notified again"
    );
}

#[test]
fn bad_input_is_refused_with_a_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = start(dir.path(), "# defaults\n");
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("/api/v2/alerts", "POST", "{not json".to_owned(), "parsing alerts"),
        ("/api/v2/alerts", "POST", json!([{"labels": {}}]).to_string(), "label"),
        (
            "/api/v2/alerts",
            "POST",
            json!([{"labels": {"alertname": "x"}, "startsAt": "yesterday"}]).to_string(),
            "date-time",
        ),
        (
            "/api/v2/silences",
            "POST",
            json!({"matchers": [{"name": "a", "value": "(", "isRegex": true}], "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-02T00:00:00Z"}).to_string(),
            "regexp",
        ),
        (
            "/api/v2/silences",
            "POST",
            json!({"matchers": [], "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-02T00:00:00Z"}).to_string(),
            "matcher",
        ),
        ("/api/v2/alerts?filter=%7Bbroken", "GET", String::new(), "bad matcher format"),
        ("/api/v2/alerts?active=maybe", "GET", String::new(), "boolean"),
    ];
    for (path, method, body, expected) in cases {
        let agent = common::http();
        let mut response = if method == "POST" {
            agent
                .post(&appliance.url(path))
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .unwrap()
        } else {
            agent.get(&appliance.url(path)).call().unwrap()
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(status, 400, "{method} {path} {body}: {text}");
        assert!(
            text.contains(expected),
            "{method} {path}: {text:?} lacks {expected:?}"
        );
    }
    // 100,000 alerts in one request: refused whole, nothing taken.
    let many: Vec<Value> = (0..100_000)
        .map(|index| json!({"labels": {"alertname": "Flood", "n": index.to_string()}}))
        .collect();
    let (status, body) = post_json(&appliance, "/api/v2/alerts", &Value::Array(many));
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("too many alerts"), "{body}");
    let (_, alerts) = get_json(&appliance, "/api/v2/alerts");
    assert_eq!(alerts, json!([]));
    let (status, _) = get_json(&appliance, "/api/v2/silence/does-not-exist");
    assert_eq!(status, 404);
    // Status and receivers answer as Grafana's datasource expects.
    let (status, body) = get_json(&appliance, "/api/v2/status");
    assert_eq!(status, 200);
    assert_eq!(body["cluster"]["status"], "disabled");
    assert!(
        body["config"]["original"]
            .as_str()
            .unwrap()
            .contains("receiver: default"),
        "{body}"
    );
    assert!(body["versionInfo"]["version"].as_str().unwrap().starts_with("0."));
    let (_, receivers) = get_json(&appliance, "/api/v2/receivers");
    assert_eq!(receivers, json!([{"name": "default"}]));
}

#[test]
fn check_config_refuses_a_broken_alertmanager_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "alertmanager:\n  config:\n    route: {receiver: nobody}\n    receivers: [{name: hook}]\n",
            "nobody",
        ),
        (
            "alertmanager:\n  config:\n    route: {receiver: hook, matchers: ['a=~\"(\"']}\n    receivers: [{name: hook}]\n",
            "alertmanager.config",
        ),
        (
            "alertmanager:\n  config:\n    route: {receiver: hook, group_wait: soon}\n    receivers: [{name: hook}]\n",
            "group_wait",
        ),
        ("alertmanager:\n  config_file: missing.yml\n", "missing.yml"),
        (
            "alertmanager:\n  config:\n    route: {receiver: hook}\n    receivers: [{name: hook, pager_configs: []}]\n",
            "pager_configs",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        let (code, _, stderr) = common::run(&["check-config", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr:?} lacks {expected:?}");
    }
    // An existing alertmanager.yml next to the config is accepted.
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        "route:\n  receiver: ha\n  group_by: ['...']\nreceivers:\n  - name: ha\n    webhook_configs:\n      - url: http://homeassistant.local:8123/api/webhook/alerts\n        send_resolved: true\n",
    )
    .unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "alertmanager:\n  config_file: alertmanager.yml\n").unwrap();
    let (code, stdout, stderr) = common::run(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn prometheus_sends_its_alerts_to_the_appliance() {
    let Some(prometheus) = common::required_tool(
        "prometheus",
        "apt-get install prometheus (tests/run does it as root)",
    ) else {
        return;
    };
    let webhook = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    let appliance = start(
        dir.path(),
        &format!(
            "alertmanager:\n  config:\n    route: {{receiver: hook, group_by: [alertname], group_wait: 1s}}\n    receivers: [{{name: hook, webhook_configs: [{{url: '{}'}}]}}]\n",
            webhook.url()
        ),
    );
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::write(
        prom_dir.join("rules.yml"),
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels: {severity: info}\n        annotations: {summary: sent by Prometheus}\n",
    )
    .unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [{{targets: ['{}']}}]\n",
            appliance.addr
        ),
    )
    .unwrap();
    let port = common::free_port();
    let _prometheus = common::Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Its default 1m: the first send may find no Alertmanager discovered yet.
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_, payload) = webhook.wait_for("FromPrometheus", Duration::from_secs(60), |payload| {
        payload["commonLabels"]["alertname"] == "FromPrometheus"
    });
    let alert = &payload["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "FromPrometheus", "severity": "info"})
    );
    assert_eq!(alert["annotations"]["summary"], "sent by Prometheus");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph?g0.expr=vector%281%29")
    );
    assert_eq!(
        alert["fingerprint"],
        fingerprint(&[("alertname", "FromPrometheus"), ("severity", "info")])
    );
}

/// A plain SMTP server on loopback that accepts every message: records the commands and the
/// message data.
fn smtp_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut say = |text: &str| writer.write_all(format!("{text}\r\n").as_bytes());
                if say("220 test.smtp ESMTP").is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end().to_owned();
                    sink.lock().unwrap().push(line.clone());
                    let verb = line.split(' ').next().unwrap_or_default().to_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" => "250-test.smtp\r\n250 AUTH PLAIN LOGIN".to_owned(),
                        "AUTH" => "235 ok".to_owned(),
                        "MAIL" | "RCPT" => "250 ok".to_owned(),
                        "DATA" => {
                            if say("354 go on").is_err() {
                                return;
                            }
                            let mut data = String::new();
                            loop {
                                let mut part = String::new();
                                if reader.read_line(&mut part).unwrap_or(0) == 0 || part == ".\r\n" {
                                    break;
                                }
                                data.push_str(&part);
                            }
                            sink.lock().unwrap().push(format!("DATA:{data}"));
                            "250 queued".to_owned()
                        }
                        "QUIT" => {
                            let _ = say("221 bye");
                            return;
                        }
                        _ => "502 unknown".to_owned(),
                    };
                    if say(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, log)
}

#[test]
fn email_receivers_deliver_through_smtp() {
    let (smtp, log) = smtp_server();
    let dir = tempfile::tempdir().unwrap();
    let appliance = start(
        dir.path(),
        &format!(
            "alertmanager:\n  config:\n    route: {{receiver: mail, group_by: [alertname], group_wait: 1s}}\n    receivers:\n      - name: mail\n        email_configs:\n          - to: 'ops@example.org, oncall@example.org'\n            from: 'Alerts <alerts@example.org>'\n            smarthost: '{smtp}'\n            require_tls: false\n            auth_username: watcher\n            auth_password: s3cret\n"
        ),
    );
    let (status, _) = post_json(
        &appliance,
        "/api/v2/alerts",
        &json!([alert(
            json!({"alertname": "DiskFull", "instance": "node-a", "severity": "warning"})
        )]),
    );
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let data = loop {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| line.strip_prefix("DATA:").map(str::to_owned));
        if let Some(data) = found {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "no mail within 15s; SMTP log: {:?}\n{}",
            log.lock().unwrap(),
            appliance.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let commands = log.lock().unwrap().clone();
    assert!(
        commands.iter().any(|line| line.starts_with("EHLO ")),
        "{commands:?}"
    );
    // AUTH PLAIN with "\0watcher\0s3cret".
    assert!(
        commands.contains(&"AUTH PLAIN AHdhdGNoZXIAczNjcmV0".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"MAIL FROM:<alerts@example.org>".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<ops@example.org>".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<oncall@example.org>".to_owned()),
        "{commands:?}"
    );
    assert!(
        data.contains("Subject: [FIRING:1] DiskFull (node-a warning)\r\n"),
        "{data}"
    );
    assert!(
        data.contains("To: ops@example.org, oncall@example.org\r\n"),
        "{data}"
    );
    assert!(data.contains("  - instance = node-a\r\n"), "{data}");
    assert!(data.contains("  - summary = test\r\n"), "{data}");
}

#[test]
fn a_broken_reload_keeps_the_running_rules_and_routing() {
    let first = Webhook::start();
    let second = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("always.rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    let config_text = |name: &str, url: String| {
        format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: ['*.rules.yml']\nalertmanager:\n  resend_delay: 1s\n  config:\n    route: {{receiver: {name}, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\n    receivers: [{{name: {name}, webhook_configs: [{{url: '{url}'}}]}}]\n"
        )
    };
    let appliance = start(dir.path(), &config_text("hook", first.url()));
    first.wait_for("Always", Duration::from_secs(15), |payload| {
        payload["commonLabels"]["alertname"] == "Always"
    });
    let reload = || {
        let mut response = common::http()
            .post(&appliance.url("/-/reload"))
            .send_empty()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    let rule_names = || {
        let (_, body) = get_json(&appliance, "/api/v1/rules");
        body["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|group| group["rules"].as_array().unwrap().clone())
            .map(|rule| rule["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(rule_names(), ["Always"]);

    // A broken rule file: refused, the rule keeps running.
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    rules:\n      - alert: Broken\n        expr: 'vector(1'\n",
    )
    .unwrap();
    let (status, body) = reload();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("always.rules.yml"), "{body}");
    assert_eq!(rule_names(), ["Always"]);

    // A broken routing (a route to a receiver that does not exist): refused, nothing changes.
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        config_text("other", second.url()).replace("route: {receiver: other,", "route: {receiver: nobody,"),
    )
    .unwrap();
    let (status, body) = reload();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("nobody"), "{body}");
    let (_, status_body) = get_json(&appliance, "/api/v2/status");
    assert!(
        status_body["config"]["original"]
            .as_str()
            .unwrap()
            .contains(&first.url()),
        "{status_body}"
    );

    // A good reload switches the receiver (the group is new to it, so it is notified there;
    // as in Alertmanager, the notification log is per receiver name, so a changed URL under
    // the same name would not be notified again).
    std::fs::write(dir.path().join("config.yaml"), config_text("other", second.url())).unwrap();
    let (status, body) = reload();
    assert_eq!(status, 200, "{body}");
    second.wait_for("Always at the new receiver", Duration::from_secs(15), |payload| {
        payload["commonLabels"]["alertname"] == "Always"
    });
}

#[test]
fn rule_alerts_are_forwarded_to_external_alertmanagers() {
    let external = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("always.rules.yml"),
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: Forwarded\n        expr: vector(1)\n        labels: {severity: info}\n        annotations: {summary: also elsewhere}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    let appliance = start(
        dir.path(),
        &format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: ['*.rules.yml']\nalertmanager:\n  resend_delay: 1s\nalerting:\n  alertmanagers:\n    - path_prefix: /am\n      basic_auth: {{username: prom, password_file: password}}\n      static_configs: [{{targets: ['{}']}}]\n",
            external.address
        ),
    );
    let (_, posted) = external.wait_for("forwarded alerts", Duration::from_secs(15), |payload| {
        payload.as_array().is_some_and(|alerts| {
            alerts
                .iter()
                .any(|alert| alert["labels"]["alertname"] == "Forwarded")
        })
    });
    let alert = &posted.as_array().unwrap()[0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "Forwarded", "severity": "info"})
    );
    assert_eq!(alert["annotations"], json!({"summary": "also elsewhere"}));
    assert!(alert["startsAt"].as_str().unwrap().ends_with('Z'), "{alert}");
    assert!(
        alert["endsAt"].as_str().unwrap() > alert["startsAt"].as_str().unwrap(),
        "{alert}"
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("g0.expr=vector%281%29")
    );
    let heads = external.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .any(|(line, auth)| line == "POST /am/api/v2/alerts HTTP/1.1"
                && auth == &format!("Basic {}", "cHJvbTpzM2NyZXQ=")),
        "{heads:?}"
    );
    // The built-in Alertmanager has it too.
    let (_, alerts) = get_json(&appliance, "/api/v2/alerts");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|alert| alert["labels"]["alertname"] == "Forwarded"),
        "{alerts}"
    );
}

fn push_lines(appliance: &Appliance, app: &str, lines: &[&str]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| json!([(now + i as i64).to_string(), line]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let mut response = common::http()
        .post(&appliance.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );
}

#[test]
fn log_rules_alert_and_record_from_logql_like_lokis_ruler() {
    let webhook = Webhook::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("jarvis.logrules.yml"),
        "groups:\n  - name: jarvis-logs\n    interval: 1s\n    rules:\n      - record: jarvis:error_lines:count1m\n        expr: sum by (app) (count_over_time({app=\"jarvis\"} |= \"error\" [1m]))\n      - alert: JarvisErrors\n        expr: sum by (app) (count_over_time({app=\"jarvis\"} | logfmt | level=\"error\" [1m])) > 2\n        labels: {severity: warning}\n        annotations: {summary: '{{ $value }} errors in a minute from {{ $labels.app }}'}\n",
    )
    .unwrap();
    let appliance = start(
        dir.path(),
        &format!(
            "log_rule_files: ['*.logrules.yml']\nalertmanager:\n  resend_delay: 1s\n  config:\n    route: {{receiver: hook, group_by: [alertname], group_wait: 1s}}\n    receivers: [{{name: hook, webhook_configs: [{{url: '{}'}}]}}]\n",
            webhook.url()
        ),
    );
    // Log rules are listed where Loki's ruler lists them, not among the PromQL rules.
    let (status, rules) = get_json(&appliance, "/prometheus/api/v1/rules");
    assert_eq!(status, 200);
    assert_eq!(rules["data"]["groups"][0]["name"], "jarvis-logs");
    assert_eq!(
        rules["data"]["groups"][0]["rules"][1]["query"],
        r#"sum by (app) (count_over_time({app="jarvis"} | logfmt | level="error" [1m])) > 2"#
    );
    let (_, prometheus_rules) = get_json(&appliance, "/api/v1/rules");
    assert!(
        !prometheus_rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|group| group["name"] == "jarvis-logs")
    );

    push_lines(
        &appliance,
        "jarvis",
        &[
            "level=error msg=\"tool call failed\" run_id=r-1",
            "level=error msg=\"tool call failed\" run_id=r-2",
            "level=info msg=\"run finished\" run_id=r-1",
            "level=error msg=\"llm timeout\" run_id=r-3",
        ],
    );
    let (_, payload) = webhook.wait_for("JarvisErrors", Duration::from_secs(30), |payload| {
        payload["commonLabels"]["alertname"] == "JarvisErrors"
    });
    let alert = &payload["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "JarvisErrors", "app": "jarvis", "severity": "warning"})
    );
    assert_eq!(
        alert["annotations"]["summary"],
        "3 errors in a minute from jarvis"
    );
    let (_, alerts) = get_json(&appliance, "/prometheus/api/v1/alerts");
    assert_eq!(alerts["data"]["alerts"][0]["labels"]["alertname"], "JarvisErrors");
    // The recording rule wrote its series into the metrics store (three lines contain "error").
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, result) = get_json(&appliance, "/api/v1/query?query=jarvis:error_lines:count1m");
        if result["data"]["result"][0]["value"][1] == "3" {
            assert_eq!(result["data"]["result"][0]["metric"]["app"], "jarvis");
            break;
        }
        assert!(Instant::now() < deadline, "no recorded series: {result}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // check-config refuses a log rule whose expression is a log query, naming where.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(dir.path().join("bad.logrules.yml"), "groups:\n  - name: bad\n    rules:\n      - alert: Lines\n        expr: '{app=\"jarvis\"} |= \"error\"'\n").unwrap();
    std::fs::write(&broken, "log_rule_files: ['bad.logrules.yml']\n").unwrap();
    let (code, _, stderr) = common::run(&["check-config", "--config", broken.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("log_rule_files"), "{stderr}");
    assert!(
        stderr.contains("group \"bad\", rule 1, alert=\"Lines\""),
        "{stderr}"
    );
    assert!(stderr.contains("must be a metric query"), "{stderr}");
}
