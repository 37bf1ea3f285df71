//! The default alert pack in `deploy/rules/`: every alert has a severity, a summary, a
//! description and unit tests; Prometheus' promtool accepts the rule files and passes their
//! unit tests (each alert pending, firing with its exact labels and annotations, resolved, and
//! the cases that must never alert); `check-config` accepts the pack as `rule_files`; and the
//! running appliance evaluates every rule without error over its own self-scraped metrics,
//! whose names and labels are the ones the rules expect.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Appliance;
use serde_json::Value;
use serde_yaml::Value as Yaml;

/// Self-metrics whose series exist only once the event they count has happened (a counter
/// family with a label and nothing counted yet is not exported); the rules allow for that.
const CREATED_ON_FIRST_EVENT: [&str; 2] = [
    "obs_scrape_failures_total",
    "obs_retention_dropped_partitions_total",
];

/// `deploy/rules/`.
fn pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/rules")
        .canonicalize()
        .unwrap()
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files_ending_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && file_name(path).ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {suffix} files in {}", dir.display());
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// What the default configuration will load: `deploy/rules/*.yml`.
fn rule_files() -> Vec<PathBuf> {
    files_ending_with(&pack_dir(), ".yml")
}

fn unit_test_files() -> Vec<PathBuf> {
    files_ending_with(&pack_dir().join("tests"), ".test.yml")
}

fn load_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn sequence<'a>(value: &'a Yaml, what: &str) -> &'a [Yaml] {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {value:?}"))
}

fn string<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// Every group of the pack: (rule file name, group name) → rule names, in file order.
fn pack_groups() -> BTreeMap<(String, String), Vec<String>> {
    let mut groups = BTreeMap::new();
    for path in rule_files() {
        let file = load_yaml(&path);
        for group in sequence(&file["groups"], "groups") {
            let names = sequence(&group["rules"], "rules")
                .iter()
                .map(|rule| {
                    let name = if rule["alert"].is_null() {
                        &rule["record"]
                    } else {
                        &rule["alert"]
                    };
                    string(name, "a rule's name").to_owned()
                })
                .collect();
            let key = (
                file_name(&path).to_owned(),
                string(&group["name"], "a group name").to_owned(),
            );
            groups.insert(key, names);
        }
    }
    groups
}

/// The self-metric names (`obs_…`) the pack's expressions use.
fn self_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for path in rule_files() {
        let file = load_yaml(&path);
        for group in sequence(&file["groups"], "groups") {
            for rule in sequence(&group["rules"], "rules") {
                let expr = string(&rule["expr"], "expr");
                let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
                names.extend(words.filter(|word| word.starts_with("obs_")).map(str::to_owned));
            }
        }
    }
    names
}

/// Copies the rule files into `dir`, each through `edit`.
fn copy_pack(dir: &Path, edit: impl Fn(&str) -> String) {
    std::fs::create_dir_all(dir).unwrap();
    for path in rule_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(dir.join(file_name(&path)), edit(&text)).unwrap();
    }
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_unit_tests() {
    for rule_file in rule_files() {
        let name = file_name(&rule_file);
        let stem = name
            .strip_suffix(".rules.yml")
            .unwrap_or_else(|| panic!("{name}: rule files are named <topic>.rules.yml"));
        let test_file = pack_dir().join("tests").join(format!("{stem}.test.yml"));
        assert!(
            test_file.is_file(),
            "{name} has no unit tests: {} is missing",
            test_file.display()
        );

        // The alerts of the file, each with what an operator needs.
        let rules = load_yaml(&rule_file);
        let mut alerts = BTreeSet::new();
        for group in sequence(&rules["groups"], "groups") {
            let group_name = string(&group["name"], "a group name");
            let interval = string(&group["interval"], "a group interval");
            assert!(
                ["30s", "1m"].contains(&interval),
                "{name}, group {group_name}: interval {interval}, not 30s or 1m"
            );
            for rule in sequence(&group["rules"], "rules") {
                let Some(alert) = rule["alert"].as_str() else {
                    continue;
                };
                let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
                assert!(
                    ["warning", "critical"].contains(&severity),
                    "{name}, {alert}: severity {severity:?}, not warning or critical"
                );
                for annotation in ["summary", "description"] {
                    let text = rule["annotations"][annotation].as_str().unwrap_or_default();
                    assert!(!text.trim().is_empty(), "{name}, {alert}: no {annotation}");
                }
                alerts.insert(alert.to_owned());
            }
        }

        // The unit tests load this file alone and check each of its alerts both firing and
        // not firing.
        let tests = load_yaml(&test_file);
        let loaded: Vec<&str> = sequence(&tests["rule_files"], "rule_files")
            .iter()
            .map(|file| string(file, "a rule file"))
            .collect();
        assert_eq!(loaded, [format!("../{name}")], "{}", test_file.display());
        let mut firing = BTreeSet::new();
        let mut not_firing = BTreeSet::new();
        for test in sequence(&tests["tests"], "tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let alertname = string(&case["alertname"], "alertname").to_owned();
                let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if expected == 0 {
                    not_firing.insert(alertname);
                } else {
                    firing.insert(alertname);
                }
            }
        }
        assert_eq!(firing, alerts, "{}: alerts tested firing", test_file.display());
        assert_eq!(
            not_firing,
            alerts,
            "{}: alerts tested not firing",
            test_file.display()
        );
    }
}

#[test]
fn promtool_accepts_the_rules_and_passes_their_unit_tests() {
    let Some(promtool) = common::required_tool(
        "promtool",
        "install the Debian package prometheus, as tests/run does",
    ) else {
        return;
    };
    for (verb, files) in [("check", rule_files()), ("test", unit_test_files())] {
        let output = Command::new(&promtool)
            .args([verb, "rules"])
            .args(files)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {verb} rules failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn check_config_accepts_the_pack_as_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let pattern = pack_dir().join("*.yml");
    std::fs::write(&config, format!("rule_files: ['{}']\n", pattern.display())).unwrap();
    let (code, stdout, stderr) = common::run(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");

    // The same kind of pattern over a copy with one bad rule added is refused, naming the file
    // and the group: check-config reads every file the pattern matches.
    let copy = dir.path().join("copy");
    copy_pack(&copy, str::to_owned);
    let spoiled = copy.join(file_name(&rule_files()[0]));
    let mut text = std::fs::read_to_string(&spoiled).unwrap();
    text.push_str("  - name: canary\n    rules:\n      - alert: Canary\n        expr: 'sum(up'\n");
    std::fs::write(&spoiled, text).unwrap();
    std::fs::write(
        &config,
        format!("rule_files: ['{}']\n", copy.join("*.yml").display()),
    )
    .unwrap();
    let (code, _, stderr) = common::run(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&spoiled.display().to_string()), "{stderr}");
    assert!(stderr.contains("group \"canary\""), "{stderr}");
}

fn get_json(appliance: &Appliance, path: &str) -> Value {
    let (status, _, body) = common::get(&appliance.url(path));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Each rule's `lastEvaluation`, keyed by group and rule position.
fn last_evaluations(rules: &Value) -> BTreeMap<(String, usize), String> {
    let mut evaluations = BTreeMap::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        let group_name = group["name"].as_str().unwrap().to_owned();
        for (index, rule) in group["rules"].as_array().unwrap().iter().enumerate() {
            let evaluated = rule["lastEvaluation"].as_str().unwrap_or_default().to_owned();
            evaluations.insert((group_name.clone(), index), evaluated);
        }
    }
    evaluations
}

#[test]
fn the_appliance_evaluates_every_rule_over_its_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // The pack with 1 s group intervals, so that every group evaluates within a second.
    let rules_dir = dir.path().join("rules");
    copy_pack(&rules_dir, |text| {
        text.replace("interval: 30s", "interval: 1s")
            .replace("interval: 1m", "interval: 1s")
    });
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "server: {listen: '127.0.0.1:0'}\n\
         global: {scrape_interval: 1s, evaluation_interval: 1s}\n\
         rule_files: ['rules/*.yml']\n\
         scrape_configs:\n\
         \x20 - job_name: obs-appliance\n\
         \x20   static_configs: [{targets: ['127.0.0.1:0']}]\n",
    )
    .unwrap();
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();

    // The self-scrape stores the scraper's counters with the scraped job as exported_job,
    // which is what ScrapeFailuresHigh aggregates by.
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrapes = loop {
        let answer = get_json(&appliance, "/api/v1/query?query=obs_scrape_scrapes_total");
        let result = answer["data"]["result"].as_array().unwrap().clone();
        if !result.is_empty() {
            break result;
        }
        assert!(
            Instant::now() < deadline,
            "no self-scraped series:\n{}",
            appliance.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(scrapes.len(), 1, "{scrapes:?}");
    assert_eq!(scrapes[0]["metric"]["job"], "obs-appliance", "{scrapes:?}");
    assert_eq!(
        scrapes[0]["metric"]["exported_job"], "obs-appliance",
        "{scrapes:?}"
    );

    // Every group and rule of the pack is loaded and, once evaluated over that data, healthy.
    let before = last_evaluations(&get_json(&appliance, "/api/v1/rules"));
    let rules = loop {
        let answer = get_json(&appliance, "/api/v1/rules");
        let now = last_evaluations(&answer);
        if now
            .iter()
            .all(|(rule, evaluated)| before.get(rule) != Some(evaluated))
        {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated: {answer:#}\n{}",
            appliance.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut loaded = BTreeMap::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        let file = Path::new(group["file"].as_str().unwrap());
        let key = (
            file_name(file).to_owned(),
            group["name"].as_str().unwrap().to_owned(),
        );
        assert_eq!(group["interval"], 1.0, "{key:?}");
        let mut names = Vec::new();
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "{key:?}: {rule:#}");
            names.push(rule["name"].as_str().unwrap().to_owned());
        }
        loaded.insert(key, names);
    }
    assert_eq!(loaded, pack_groups());

    // The self-metrics the rules read are the ones the appliance exports.
    let (status, _, exposition) = common::get(&appliance.url("/metrics"));
    assert_eq!(status, 200);
    let exported: BTreeSet<&str> = exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    for name in self_metric_names() {
        if CREATED_ON_FIRST_EVENT.contains(&name.as_str()) {
            continue;
        }
        assert!(
            exported.contains(name.as_str()),
            "the pack reads {name}, which the appliance does not export; it exports {exported:?}"
        );
    }
}
