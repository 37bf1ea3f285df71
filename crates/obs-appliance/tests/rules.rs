//! Alerting and recording rules against the real binary: rules evaluate over live scraped
//! data, recording rules write series back, alerts go pending → firing → resolved with
//! `ALERTS` series and templated annotations, errors show as rule health, and
//! `/api/v1/rules` / `/api/v1/alerts` answer in Prometheus' shapes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Appliance;
use serde_json::Value;

/// A target serving `temperature <value>`.
fn target(value: Arc<Mutex<f64>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                line.clear();
            }
            let body = format!("temperature {}\n", value.lock().unwrap());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

fn get_json(appliance: &Appliance, path: &str) -> Value {
    let (status, _, body) = common::get(&appliance.url(path));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_for(appliance: &Appliance, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = get_json(appliance, path);
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} is {value:#}\n{}",
            appliance.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const RULES: &str = r#"
groups:
  - name: room
    interval: 1s
    labels: {team: facilities}
    rules:
      - record: room:temperature:max
        expr: max by (job) (temperature)
      - alert: TooWarm
        expr: temperature > 20
        for: 3s
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.instance }} is at {{ $value }} degrees"
      - alert: Broken
        expr: temperature + on() (label_replace(temperature, "x", "1", "", "") or label_replace(temperature, "x", "2", "", ""))
"#;

#[test]
fn rules_record_and_alert_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let value = Arc::new(Mutex::new(25.0));
    let address = target(Arc::clone(&value));
    std::fs::write(dir.path().join("room.rules.yml"), RULES).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['*.rules.yml']\nscrape_configs:\n  - job_name: room\n    static_configs: [{{targets: ['{address}']}}]\n"
        ),
    )
    .unwrap();
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();

    // The alert is pending first (for: 3s), with its labels and expanded annotation.
    let alerts = wait_for(&appliance, "/api/v1/alerts", "pending alert", |body| {
        body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|alert| alert["state"] == "pending")
    });
    let pending = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "TooWarm")
        .unwrap()
        .clone();
    assert_eq!(
        pending["labels"],
        serde_json::json!({"alertname": "TooWarm", "instance": address, "job": "room",
            "severity": "warning", "team": "facilities"})
    );
    assert_eq!(
        pending["annotations"]["summary"],
        format!("{address} is at 25 degrees")
    );
    assert_eq!(pending["value"], "2.5e+01");

    // Then firing, with ALERTS series, and the recording rule's series.
    wait_for(&appliance, "/api/v1/alerts", "firing alert", |body| {
        body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|alert| alert["state"] == "firing")
    });
    let firing = get_json(
        &appliance,
        "/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D",
    );
    assert_eq!(firing["data"]["result"][0]["metric"]["alertname"], "TooWarm");
    let recorded = get_json(&appliance, "/api/v1/query?query=room%3Atemperature%3Amax");
    assert_eq!(
        recorded["data"]["result"][0]["metric"],
        serde_json::json!({"__name__": "room:temperature:max", "job": "room", "team": "facilities"})
    );
    assert_eq!(recorded["data"]["result"][0]["value"][1], "25");

    // /api/v1/rules: groups, rule types, health; the broken rule says why.
    let rules = get_json(&appliance, "/api/v1/rules");
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "room");
    assert_eq!(group["interval"], 1.0);
    assert!(group["file"].as_str().unwrap().ends_with("room.rules.yml"));
    let by_name = |name: &str| {
        group["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("room:temperature:max")["type"], "recording");
    assert_eq!(by_name("room:temperature:max")["health"], "ok");
    let too_warm = by_name("TooWarm");
    assert_eq!(
        (too_warm["type"].as_str(), too_warm["state"].as_str()),
        (Some("alerting"), Some("firing"))
    );
    assert_eq!(too_warm["duration"], 3.0);
    assert_eq!(too_warm["query"], "temperature > 20");
    let broken = by_name("Broken");
    assert_eq!(broken["health"], "err");
    assert!(
        broken["lastError"].as_str().unwrap().contains("many-to-many"),
        "{broken}"
    );
    let only_recording = get_json(&appliance, "/api/v1/rules?type=record");
    assert_eq!(
        only_recording["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The condition clears: the alert resolves and its ALERTS series end at once.
    *value.lock().unwrap() = 10.0;
    wait_for(&appliance, "/api/v1/alerts", "resolved alert", |body| {
        body["data"]["alerts"].as_array().unwrap().is_empty()
    });
    let firing = get_json(&appliance, "/api/v1/query?query=ALERTS");
    assert_eq!(
        firing["data"]["result"],
        serde_json::json!([]),
        "ALERTS must be stale"
    );
    let rules = get_json(&appliance, "/api/v1/rules?type=alert");
    let states: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["inactive", "inactive"]);
}

#[test]
fn check_config_names_the_file_group_and_rule_of_a_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n  - name: disks\n    rules:\n      - alert: Full\n        expr: 'sum(node_filesystem_avail_bytes'\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "rule_files: [bad.yml]\n").unwrap();
    let (code, _, stderr) = common::run(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.yml"), "{stderr}");
    assert!(
        stderr.contains("group \"disks\", rule 1, alert=\"Full\": could not parse expression"),
        "{stderr}"
    );
}
