//! Scraping against the real binary: a target served by the test (its body changed between
//! scrapes), a real node-exporter, stale markers when series or targets vanish, failures,
//! relabeling, `honor_labels`, limits, reload by `POST /-/reload` and SIGHUP, and the targets
//! and metadata APIs.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Appliance;
use serde_json::Value;

/// An HTTP target answering every request with the current status and body.
struct FakeTarget {
    address: String,
    response: Arc<Mutex<(u16, String)>>,
}

impl FakeTarget {
    fn start(body: &str) -> FakeTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let response = Arc::new(Mutex::new((200, body.to_owned())));
        let shared = Arc::clone(&response);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // Read the request head; the scraper sends no body.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let (status, body) = shared.lock().unwrap().clone();
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeTarget { address, response }
    }

    fn set(&self, status: u16, body: &str) {
        *self.response.lock().unwrap() = (status, body.to_owned());
    }
}

fn query(appliance: &Appliance, promql: &str) -> Vec<Value> {
    let url = appliance.url(&format!(
        "/api/v1/query?query={}",
        promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    ));
    let (status, _, body) = common::get(&url);
    assert_eq!(status, 200, "{promql}: {body}");
    let parsed: Value = serde_json::from_str(&body).unwrap();
    parsed["data"]["result"].as_array().unwrap().clone()
}

/// Polls `promql` until `check` accepts its result (at most 15 s).
fn wait_for(appliance: &Appliance, promql: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let result = query(appliance, promql);
        if check(&result) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {promql} is {result:?}\n{}",
            appliance.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

fn write_config(path: &std::path::Path, jobs: &str) {
    std::fs::write(
        path,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"),
    )
    .unwrap();
}

const BODY: &str = "# HELP jobs_done_total Jobs finished.\n# TYPE jobs_done_total counter\njobs_done_total{queue=\"a\",job=\"worker\"} 3\njobs_done_total{queue=\"b\",job=\"worker\"} 5\n# TYPE dropped_metric gauge\ndropped_metric 1\ntemperature 21.5\n";

#[test]
fn scraping_follows_prometheus_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let target = FakeTarget::start(BODY);
    let config = dir.path().join("config.yaml");
    let job = format!(
        "  - job_name: fake\n    static_configs: [{{targets: ['{}'], labels: {{env: test}}}}]\n    metric_relabel_configs:\n      - {{source_labels: [__name__], regex: dropped_metric, action: drop}}\n",
        target.address
    );
    write_config(&config, &job);
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();

    // Scraped series get the target's labels; the scraped `job` label is kept as exported_job.
    let done = wait_for(&appliance, "jobs_done_total", "first scrape", |result| {
        result.len() == 2
    });
    assert_eq!(
        done[0]["metric"],
        serde_json::json!({"__name__": "jobs_done_total", "env": "test", "exported_job": "worker",
            "instance": target.address, "job": "fake", "queue": "a"})
    );
    assert_eq!(value(&done[1]), 5.0);
    assert!(
        query(&appliance, "dropped_metric").is_empty(),
        "metric_relabel_configs drop"
    );
    let up = query(&appliance, "up{job=\"fake\"}");
    assert_eq!(value(&up[0]), 1.0);
    // 4 samples in the body, 3 after relabeling.
    assert_eq!(
        value(&query(&appliance, "scrape_samples_scraped{job=\"fake\"}")[0]),
        4.0
    );
    assert_eq!(
        value(&query(&appliance, "scrape_samples_post_metric_relabeling{job=\"fake\"}")[0]),
        3.0
    );

    // A series that vanishes from the body is marked stale at the next scrape: it disappears
    // from instant queries at once, not after the 5-minute lookback.
    target.set(
        200,
        &BODY.replace("jobs_done_total{queue=\"b\",job=\"worker\"} 5\n", ""),
    );
    wait_for(
        &appliance,
        "jobs_done_total",
        "stale marker for a vanished series",
        |result| result.len() == 1,
    );

    // A failing target: up is 0, its series are stale, the targets API says why.
    target.set(500, "oops");
    wait_for(&appliance, "up{job=\"fake\"}", "up = 0", |result| {
        result.first().is_some_and(|sample| value(sample) == 0.0)
    });
    wait_for(
        &appliance,
        "temperature",
        "stale markers on failure",
        <[Value]>::is_empty,
    );
    let (_, _, body) = common::get(&appliance.url("/api/v1/targets"));
    let targets: Value = serde_json::from_str(&body).unwrap();
    let fake = targets["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|target| target["scrapePool"] == "fake")
        .unwrap()
        .clone();
    assert_eq!(fake["health"], "down");
    assert_eq!(
        fake["lastError"],
        "server returned HTTP status 500 Internal Server Error"
    );
    assert_eq!(fake["scrapeUrl"], format!("http://{}/metrics", target.address));
    assert_eq!(fake["labels"]["env"], "test");
    assert_eq!(fake["discoveredLabels"]["__address__"], target.address);
    assert_eq!(fake["scrapeInterval"], "1s");

    // Recovery, then metadata from HELP / TYPE.
    target.set(200, BODY);
    wait_for(&appliance, "up{job=\"fake\"}", "up = 1 again", |result| {
        result.first().is_some_and(|sample| value(sample) == 1.0)
    });
    let (_, _, body) = common::get(&appliance.url("/api/v1/metadata?metric=jobs_done_total"));
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        metadata["data"]["jobs_done_total"][0],
        serde_json::json!({"type": "counter", "help": "Jobs finished.", "unit": ""})
    );
    let (_, _, body) = common::get(
        &appliance.url("/api/v1/targets/metadata?match_target=%7Bjob%3D%22fake%22%7D&metric=jobs_done_total"),
    );
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["data"][0]["type"], "counter");
    assert_eq!(metadata["data"][0]["target"]["job"], "fake");

    // Reload by POST /-/reload: the job goes away (its series end with stale markers), a new
    // job with a sample limit starts and fails on the limit.
    let other = FakeTarget::start(BODY);
    write_config(
        &config,
        &format!(
            "  - job_name: limited\n    sample_limit: 2\n    honor_labels: true\n    static_configs: [{{targets: ['{}']}}]\n",
            other.address
        ),
    );
    let response = common::http()
        .post(&appliance.url("/-/reload"))
        .send_empty()
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for(
        &appliance,
        "up{job=\"fake\"}",
        "stale markers of a removed target",
        <[Value]>::is_empty,
    );
    let up = wait_for(&appliance, "up{job=\"limited\"}", "the new job", |result| {
        !result.is_empty()
    });
    assert_eq!(value(&up[0]), 0.0, "4 samples exceed sample_limit 2");
    let (_, _, body) = common::get(&appliance.url("/api/v1/targets?state=active"));
    assert!(body.contains("sample limit exceeded"), "{body}");

    // A broken configuration is refused by reload; the running one stays.
    std::fs::write(
        &config,
        "scrape_configs: [{job_name: x, scrape_interval: nonsense}]\n",
    )
    .unwrap();
    let mut response = common::http()
        .post(&appliance.url("/-/reload"))
        .send_empty()
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(
        response
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("failed to reload config")
    );

    // SIGHUP reloads too: honor_labels keeps the scraped job label.
    write_config(
        &config,
        &format!(
            "  - job_name: honored\n    honor_labels: true\n    static_configs: [{{targets: ['{}']}}]\n",
            other.address
        ),
    );
    appliance.signal("HUP");
    let honored = wait_for(
        &appliance,
        "jobs_done_total{queue=\"a\"}",
        "honor_labels after SIGHUP",
        |result| result.iter().any(|sample| sample["metric"]["job"] == "worker"),
    );
    assert!(
        honored
            .iter()
            .all(|sample| sample["metric"].get("exported_job").is_none())
    );
}

#[test]
fn a_real_node_exporter_is_scraped_completely() {
    let Some(exporter) = common::required_tool(
        "prometheus-node-exporter",
        "apt-get install prometheus-node-exporter (tests/run does it as root)",
    ) else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let running = start_exporter();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exposition = loop {
        if let Ok(mut response) = common::http().get(&url).call()
            && response.status() == 200
        {
            break response.body_mut().read_to_string().unwrap();
        }
        assert!(Instant::now() < deadline, "node-exporter never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Metric names node-exporter exposes (stable between scrapes).
    let mut names: Vec<String> = exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    write_config(
        &config,
        &format!("  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"),
    );
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();
    let up = wait_for(
        &appliance,
        "up{job=\"node\"}",
        "node-exporter scraped",
        |result| result.first().is_some_and(|sample| value(sample) == 1.0),
    );
    assert_eq!(up[0]["metric"]["instance"], format!("127.0.0.1:{port}"));
    let scraped = value(&query(&appliance, "scrape_samples_scraped{job=\"node\"}")[0]);
    assert!(
        scraped > 200.0,
        "node-exporter exposes hundreds of samples, got {scraped}"
    );
    let (_, _, body) =
        common::get(&appliance.url("/api/v1/label/__name__/values?match[]=%7Bjob%3D%22node%22%7D"));
    let stored: Value = serde_json::from_str(&body).unwrap();
    let stored: Vec<&str> = stored["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in &names {
        assert!(
            stored.contains(&name.as_str()),
            "{name} scraped from node-exporter is missing"
        );
    }
    // And what PromQL dashboards ask of it works.
    let busy = wait_for(
        &appliance,
        "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5s]))",
        "CPU rate over two scrapes",
        |result| !result.is_empty(),
    );
    assert!(value(&busy[0]) >= 0.0);

    // node-exporter stops: up is 0 and its series are stale at once.
    drop(running);
    wait_for(
        &appliance,
        "up{job=\"node\"}",
        "up = 0 when node-exporter is down",
        |result| result.first().is_some_and(|sample| value(sample) == 0.0),
    );
    assert!(
        query(&appliance, "node_time_seconds{job=\"node\"}").is_empty(),
        "stale markers"
    );
    let (_, _, body) = common::get(&appliance.url("/api/v1/targets"));
    assert!(
        body.contains("connection refused") || body.contains("Connection refused"),
        "{body}"
    );
    // It comes back: up is 1 and its series are there again.
    let _back = start_exporter();
    wait_for(
        &appliance,
        "up{job=\"node\"}",
        "up = 1 when node-exporter is back",
        |result| result.first().is_some_and(|sample| value(sample) == 1.0),
    );
    wait_for(
        &appliance,
        "node_time_seconds{job=\"node\"}",
        "series back",
        |result| result.len() == 1,
    );
}

#[test]
fn the_default_configuration_scrapes_the_appliance_itself() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default's self-scrape target is server.listen; with --listen the appliance
    // scrapes the address it actually bound.
    let appliance = Appliance::start(dir.path(), &[]);
    appliance.wait_ready();
    let (_, _, body) = common::get(&appliance.url("/api/v1/targets"));
    let targets: Value = serde_json::from_str(&body).unwrap();
    let own = &targets["data"]["activeTargets"][0];
    assert_eq!(own["scrapePool"], "obs-appliance");
    assert_eq!(own["scrapeUrl"], format!("http://{}/metrics", appliance.addr));
    assert_eq!(own["scrapeInterval"], "15s");
}

/// A target whose connections are handled by `serve` (one thread per connection).
fn raw_target(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(stream));
        }
    });
    address
}

/// Reads the request head.
fn read_head(stream: &std::net::TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        head.push_str(&line);
        line.clear();
    }
    head
}

#[test]
fn bad_targets_fail_alone_with_the_reason() {
    // Garbage, invalid UTF-8, an endless body, a slow drip, and a million series; beside them a
    // healthy target that must keep its schedule.
    let respond = |body: &'static [u8]| {
        move |mut stream: std::net::TcpStream| {
            read_head(&stream);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    };
    let garbage = raw_target(respond(b"this is not { an exposition\n"));
    let invalid_utf8 = raw_target(respond(b"metric{label=\"\xff\xfe\"} 1\n"));
    let endless = raw_target(|mut stream| {
        read_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
        let line = b"# an endless comment line that never ends the body\n".repeat(1000);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && stream.write_all(&line).is_ok() {}
    });
    let slow = raw_target(|mut stream| {
        read_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
        for _ in 0..100 {
            if stream.write_all(b"#").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let many: &'static [u8] = Box::leak(
        (0..1_000_000)
            .map(|i| format!("series{{i=\"{i}\"}} 1\n"))
            .collect::<String>()
            .into_bytes()
            .into_boxed_slice(),
    );
    let million = raw_target(respond(many));
    let healthy = FakeTarget::start("ok 1\n");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let job = |name: &str, address: &str, extra: &str| {
        format!("  - job_name: {name}\n    static_configs: [{{targets: ['{address}']}}]\n{extra}")
    };
    let jobs = [
        job("garbage", &garbage, ""),
        job("invalid_utf8", &invalid_utf8, ""),
        job("endless", &endless, "    body_size_limit: 1MB\n"),
        job("slow", &slow, ""),
        job("million", &million, "    sample_limit: 100000\n"),
        job("healthy", &healthy.address, ""),
    ]
    .concat();
    write_config(&config, &jobs);
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();

    let started = Instant::now();
    let reasons = [
        ("garbage", "invalid syntax (line 1)"),
        ("invalid_utf8", "UTF-8"),
        ("endless", "body size limit exceeded"),
        ("slow", "deadline exceeded"),
        ("million", "sample limit exceeded"),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, body) = common::get(&appliance.url("/api/v1/targets"));
        let targets: Value = serde_json::from_str(&body).unwrap();
        let active = targets["data"]["activeTargets"].as_array().unwrap().clone();
        let by_pool = |pool: &str| {
            active
                .iter()
                .find(|target| target["scrapePool"] == pool)
                .unwrap()
                .clone()
        };
        let done = reasons.iter().all(|(pool, reason)| {
            let target = by_pool(pool);
            target["health"] == "down"
                && target["lastError"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains(&reason.to_lowercase())
        });
        if done {
            assert_eq!(by_pool("healthy")["health"], "up");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets never failed as expected: {:#}",
            Value::Array(active)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for (pool, _) in reasons {
        let up = query(&appliance, &format!("up{{job=\"{pool}\"}}"));
        assert_eq!(value(&up[0]), 0.0, "{pool}");
    }
    assert!(
        query(&appliance, "series").is_empty(),
        "a scrape over sample_limit stores nothing"
    );
    // The healthy target kept its 1 s schedule meanwhile.
    let scrapes = query(&appliance, "count_over_time(up{job=\"healthy\"}[1m])");
    let expected = started.elapsed().as_secs_f64().floor() - 1.0;
    assert!(
        value(&scrapes[0]) >= expected.max(1.0),
        "{scrapes:?} after {:?}",
        started.elapsed()
    );
}

#[test]
fn file_sd_changes_credentials_and_unchanged_targets_on_reload() {
    // A target that records the Authorization header it receives.
    let seen_auth = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = Arc::clone(&seen_auth);
    let secured = raw_target(move |mut stream| {
        let head = read_head(&stream);
        if let Some(line) = head
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("authorization:"))
        {
            recorder
                .lock()
                .unwrap()
                .push(line.split_once(':').unwrap().1.trim().to_owned());
        }
        let body = "secured_metric 1\n";
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let first = FakeTarget::start("from_file 1\n");
    let second = FakeTarget::start("from_file 2\n");

    let dir = tempfile::tempdir().unwrap();
    let targets_file = dir.path().join("targets.json");
    std::fs::write(
        &targets_file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "a"}}}}]"#,
            first.address
        ),
    )
    .unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let config = dir.path().join("config.yaml");
    let jobs = format!(
        "  - job_name: files\n    file_sd_configs: [{{files: ['{}']}}]\n  - job_name: basic\n    basic_auth: {{username: scraper, password: pw}}\n    static_configs: [{{targets: ['{secured}']}}]\n  - job_name: bearer\n    authorization: {{credentials_file: '{}'}}\n    metrics_path: /other\n    static_configs: [{{targets: ['{secured}']}}]\n",
        dir.path().join("*.json").display(),
        token_file.display()
    );
    write_config(&config, &jobs);
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();

    let found = wait_for(&appliance, "from_file", "file_sd target", |result| {
        result.len() == 1
    });
    assert_eq!(found[0]["metric"]["team"], "a");
    assert_eq!(found[0]["metric"]["instance"], first.address);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let auth = seen_auth.lock().unwrap().clone();
        // user "scraper", password "pw"; the bearer token read from its file, trimmed.
        if auth.contains(&"Basic c2NyYXBlcjpwdw==".to_owned()) && auth.contains(&"Bearer s3cret".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "credentials never arrived: {auth:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The file changes: the old target goes away (stale), the new one is scraped.
    std::fs::write(
        &targets_file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "b"}}}}]"#,
            second.address
        ),
    )
    .unwrap();
    let found = wait_for(&appliance, "from_file", "file_sd change picked up", |result| {
        result.len() == 1 && result[0]["metric"]["team"] == "b"
    });
    assert_eq!(value(&found[0]), 2.0);

    // Reloading an unchanged configuration keeps the running targets: right after the reload
    // they still report their last scrape instead of starting over as "unknown".
    let response = common::http()
        .post(&appliance.url("/-/reload"))
        .send_empty()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, _, body) = common::get(&appliance.url("/api/v1/targets"));
    let targets: Value = serde_json::from_str(&body).unwrap();
    for target in targets["data"]["activeTargets"].as_array().unwrap() {
        assert_eq!(target["health"], "up", "{target}");
    }
}
