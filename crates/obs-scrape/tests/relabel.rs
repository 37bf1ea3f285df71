//! Relabeling against Prometheus 2.42's behaviour: the cases of `model/relabel/relabel_test.go`
//! (`TestRelabel`), rewritten, then what that file does not cover: YAML loading, validation
//! messages, template corner cases and properties over arbitrary label sets.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use obs_scrape::relabel::{Action, Regex, RelabelConfig, RelabelError, process};
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

/// The label set after `rules`, or `None` if they drop it.
fn relabeled(input: &[(&str, &str)], rules: &[RelabelConfig]) -> Option<BTreeMap<String, String>> {
    let mut set = labels(input);
    process(&mut set, rules).then_some(set)
}

fn rules_from_yaml(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml::from_str(yaml).unwrap()
}

fn yaml_error(yaml: &str) -> String {
    serde_yaml::from_str::<Vec<RelabelConfig>>(yaml)
        .unwrap_err()
        .to_string()
}

// ---- relabel_test.go TestRelabel, case by case ----

#[test]
fn replace_expands_braced_groups() {
    let rule = RelabelConfig {
        source_labels: names(&["a"]),
        regex: re("f(.*)"),
        target_label: "d".to_owned(),
        replacement: "ch${1}-ch${1}".to_owned(),
        ..RelabelConfig::default()
    };
    assert_eq!(
        relabeled(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &[rule]),
        Some(labels(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "choo-choo")
        ]))
    );
}

#[test]
fn replace_joins_sources_and_sees_earlier_rules() {
    let rules = [
        RelabelConfig {
            source_labels: names(&["a", "b"]),
            regex: re("f(.*);(.*)r"),
            target_label: "a".to_owned(),
            replacement: "b${1}${2}m".to_owned(),
            ..RelabelConfig::default()
        },
        RelabelConfig {
            source_labels: names(&["c", "a"]),
            regex: re("(b).*b(.*)ba(.*)"),
            target_label: "d".to_owned(),
            replacement: "$1$2$2$3".to_owned(),
            ..RelabelConfig::default()
        },
    ];
    assert_eq!(
        relabeled(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &rules),
        Some(labels(&[
            ("a", "boobam"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "boooom")
        ]))
    );
}

#[test]
fn drop_stops_before_later_rules() {
    let rules = [
        RelabelConfig {
            source_labels: names(&["a"]),
            regex: re(".*o.*"),
            action: Action::Drop,
            ..RelabelConfig::default()
        },
        RelabelConfig {
            source_labels: names(&["a"]),
            regex: re("f(.*)"),
            target_label: "d".to_owned(),
            replacement: "ch$1-ch$1".to_owned(),
            ..RelabelConfig::default()
        },
    ];
    assert_eq!(relabeled(&[("a", "foo")], &rules), None);
    assert_eq!(relabeled(&[("a", "foo"), ("b", "bar")], &rules[..1]), None);
}

#[test]
fn dropping_empties_the_set() {
    let rule = RelabelConfig {
        source_labels: names(&["a"]),
        action: Action::Drop,
        ..RelabelConfig::default()
    };
    let mut set = labels(&[("a", "foo")]);
    assert!(!process(&mut set, &[rule]));
    assert!(set.is_empty());
}

#[test]
fn replace_with_a_group_in_the_middle() {
    let rule = RelabelConfig {
        source_labels: names(&["a"]),
        regex: re(".*(b).*"),
        target_label: "d".to_owned(),
        ..RelabelConfig::default()
    };
    assert_eq!(
        relabeled(&[("a", "abc")], &[rule]),
        Some(labels(&[("a", "abc"), ("d", "b")]))
    );
}

#[test]
fn drop_and_keep_match_the_whole_value() {
    let rule = |action, pattern| RelabelConfig {
        source_labels: names(&["a"]),
        regex: re(pattern),
        action,
        ..RelabelConfig::default()
    };
    let foo = [("a", "foo")];
    assert_eq!(
        relabeled(&foo, &[rule(Action::Drop, "no-match")]),
        Some(labels(&foo))
    );
    // `f|o` is anchored as `^(?:f|o)$`: it matches neither "foo" nor part of it.
    assert_eq!(relabeled(&foo, &[rule(Action::Drop, "f|o")]), Some(labels(&foo)));
    assert_eq!(relabeled(&foo, &[rule(Action::Keep, "no-match")]), None);
    assert_eq!(relabeled(&foo, &[rule(Action::Keep, "f.*")]), Some(labels(&foo)));
}

#[test]
fn replace_without_a_match_changes_nothing() {
    let rule = RelabelConfig {
        source_labels: names(&["a"]),
        regex: re("f"),
        target_label: "b".to_owned(),
        replacement: "bar".to_owned(),
        ..RelabelConfig::default()
    };
    assert_eq!(relabeled(&[("a", "boo")], &[rule]), Some(labels(&[("a", "boo")])));
}

#[test]
fn hashmod_of_known_values() {
    // python3 -c 'import hashlib; d=hashlib.md5(b"baz").digest(); print(int.from_bytes(d[8:],"big") % 1000)'
    let rule = |source: &str, target: &str| RelabelConfig {
        source_labels: names(&[source]),
        target_label: target.to_owned(),
        modulus: 1000,
        action: Action::HashMod,
        ..RelabelConfig::default()
    };
    assert_eq!(
        relabeled(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &[rule("c", "d")]),
        Some(labels(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]))
    );
    assert_eq!(
        relabeled(&[("a", "foo\nbar")], &[rule("a", "b")]),
        Some(labels(&[("a", "foo\nbar"), ("b", "734")]))
    );
    assert_eq!(relabeled(&[("a", "foo")], &[rule("a", "b")]).unwrap()["b"], "696");
    // A missing source hashes "": md5("") mod 7 is 1.
    let empty = RelabelConfig {
        modulus: 7,
        ..rule("missing", "h")
    };
    assert_eq!(relabeled(&[], &[empty]).unwrap()["h"], "1");
}

#[test]
fn labelmap_copies_matching_names() {
    let rule = RelabelConfig {
        regex: re("(b.*)"),
        replacement: "bar_${1}".to_owned(),
        action: Action::LabelMap,
        ..RelabelConfig::default()
    };
    assert_eq!(
        relabeled(&[("a", "foo"), ("b1", "bar"), ("b2", "baz")], &[rule]),
        Some(labels(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]))
    );
}

#[test]
fn labelmap_strips_a_prefix() {
    let rule = RelabelConfig {
        regex: re("__meta_(my.*)"),
        replacement: "${1}".to_owned(),
        action: Action::LabelMap,
        ..RelabelConfig::default()
    };
    let input = [
        ("a", "foo"),
        ("__meta_my_bar", "aaa"),
        ("__meta_my_baz", "bbb"),
        ("__meta_other", "ccc"),
    ];
    let mut expected = labels(&input);
    expected.insert("my_bar".to_owned(), "aaa".to_owned());
    expected.insert("my_baz".to_owned(), "bbb".to_owned());
    assert_eq!(relabeled(&input, &[rule]), Some(expected));
}

#[test]
fn replace_target_label_from_a_group() {
    let rule = |replacement: &str, target: &str| RelabelConfig {
        source_labels: names(&["a"]),
        regex: re("some-([^-]+)-([^,]+)"),
        replacement: replacement.to_owned(),
        target_label: target.to_owned(),
        ..RelabelConfig::default()
    };
    let input = [("a", "some-name-value")];
    assert_eq!(
        relabeled(&input, &[rule("${2}", "${1}")]),
        Some(labels(&[("a", "some-name-value"), ("name", "value")]))
    );
    // An empty value writes nothing.
    assert_eq!(relabeled(&input, &[rule("${3}", "${1}")]), Some(labels(&input)));
    // Target names that expand to invalid label names write nothing.
    let invalid_targets = [rule("${1}", "${3}"), rule("${1}", "0${3}"), rule("${1}", "-${3}")];
    assert_eq!(relabeled(&input, &invalid_targets), Some(labels(&input)));
}

#[test]
fn replace_parses_service_discovery_tags() {
    let rule = |regex: &str, replacement: &str, target: &str| RelabelConfig {
        source_labels: names(&["__meta_sd_tags"]),
        regex: re(regex),
        replacement: replacement.to_owned(),
        target_label: target.to_owned(),
        ..RelabelConfig::default()
    };
    let rules = [
        rule("(?:.+,|^)path:(/[^,]+).*", "${1}", "__metrics_path__"),
        rule("(?:.+,|^)job:([^,]+).*", "${1}", "job"),
        rule("(?:.+,|^)label:([^=]+)=([^,]+).*", "${2}", "${1}"),
    ];
    let tags = "path:/secret,job:some-job,label:foo=bar";
    assert_eq!(
        relabeled(&[("__meta_sd_tags", tags)], &rules),
        Some(labels(&[
            ("__meta_sd_tags", tags),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]))
    );
}

#[test]
fn labelkeep_and_labeldrop_match_names() {
    let rule = |action| RelabelConfig {
        regex: re("(b.*)"),
        action,
        ..RelabelConfig::default()
    };
    let input = [("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    assert_eq!(
        relabeled(&input, &[rule(Action::LabelKeep)]),
        Some(labels(&[("b1", "bar"), ("b2", "baz")]))
    );
    assert_eq!(
        relabeled(&input, &[rule(Action::LabelDrop)]),
        Some(labels(&[("a", "foo")]))
    );
}

#[test]
fn uppercase_and_lowercase() {
    let rule = |action, target: &str| RelabelConfig {
        source_labels: names(&["foo"]),
        target_label: target.to_owned(),
        action,
        ..RelabelConfig::default()
    };
    let rules = [
        rule(Action::Uppercase, "foo_uppercase"),
        rule(Action::Lowercase, "foo_lowercase"),
    ];
    assert_eq!(
        relabeled(&[("foo", "bAr123Foo")], &rules),
        Some(labels(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]))
    );
    // Go maps each character alone: no final sigma, and ß has no one-character capital.
    let greek = [rule(Action::Lowercase, "lower"), rule(Action::Uppercase, "upper")];
    let out = relabeled(&[("foo", "ΣΑΣ straße")], &greek).unwrap();
    assert_eq!(out["lower"], "σασ straße");
    assert_eq!(out["upper"], "ΣΑΣ STRAßE");
    // An empty source value removes the target.
    assert_eq!(
        relabeled(
            &[("foo_lowercase", "x")],
            &[rule(Action::Lowercase, "foo_lowercase")]
        ),
        Some(labels(&[]))
    );
}

#[test]
fn keepequal_and_dropequal_compare_with_the_target_label() {
    let rule = |action, target: &str| RelabelConfig {
        source_labels: names(&["__tmp_port"]),
        target_label: target.to_owned(),
        action,
        ..RelabelConfig::default()
    };
    let input = [("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")];
    assert_eq!(
        relabeled(&input, &[rule(Action::KeepEqual, "__port1")]),
        Some(labels(&input))
    );
    assert_eq!(relabeled(&input, &[rule(Action::DropEqual, "__port1")]), None);
    assert_eq!(
        relabeled(&input, &[rule(Action::DropEqual, "__port2")]),
        Some(labels(&input))
    );
    assert_eq!(relabeled(&input, &[rule(Action::KeepEqual, "__port2")]), None);
    // A missing label equals the empty value.
    assert_eq!(
        relabeled(&[], &[rule(Action::KeepEqual, "absent")]),
        Some(labels(&[]))
    );
}

// ---- beyond relabel_test.go ----

#[test]
fn labelmap_of_kubernetes_pod_labels() {
    let rules = rules_from_yaml(
        r"
- action: labelmap
  regex: __meta_kubernetes_pod_label_(.+)
",
    );
    let input = [
        ("__meta_kubernetes_pod_label_app", "api"),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_version", "1.2"),
        (
            "__meta_kubernetes_pod_label_",
            "empty name part, not matched by (.+)",
        ),
        ("__meta_kubernetes_pod_name", "api-7d9f"),
        ("app", "overwritten"),
    ];
    let out = relabeled(&input, &rules).unwrap();
    assert_eq!(out["app"], "api");
    assert_eq!(out["app_kubernetes_io_version"], "1.2");
    assert_eq!(out.len(), input.len() + 1);
}

#[test]
fn labelmap_to_an_empty_value_deletes_the_target() {
    // Prometheus sets the mapped name to the value, and setting "" deletes.
    let rules = rules_from_yaml("- {action: labelmap, regex: '__meta_(.+)'}");
    let out = relabeled(&[("__meta_a", ""), ("a", "kept?")], &rules).unwrap();
    assert_eq!(out, labels(&[]));
}

#[test]
fn replace_creates_and_deletes_labels() {
    let rules = rules_from_yaml(
        r"
- target_label: cluster
  replacement: dev-us-central-0
- source_labels: [__meta_team]
  regex: (.+)
  target_label: team
- source_labels: [__meta_owner]
  target_label: owner
",
    );
    // No team source: `(.+)` does not match "", so `team` stays. No owner source: `(.*)`
    // matches "", the value is empty, so `owner` is deleted.
    assert_eq!(
        relabeled(&[("team", "a"), ("owner", "b")], &rules),
        Some(labels(&[("cluster", "dev-us-central-0"), ("team", "a")]))
    );
    assert_eq!(
        relabeled(&[("__meta_team", "db"), ("__meta_owner", "ann")], &rules),
        Some(labels(&[
            ("__meta_owner", "ann"),
            ("__meta_team", "db"),
            ("cluster", "dev-us-central-0"),
            ("owner", "ann"),
            ("team", "db"),
        ]))
    );
}

#[test]
fn default_rule_deletes_its_target() {
    // Only target_label set: no source labels join to "", `(.*)` matches it, `$1` is "", and
    // an empty value deletes the target.
    let rules = rules_from_yaml("- target_label: foo");
    assert_eq!(
        rules[0],
        RelabelConfig {
            target_label: "foo".to_owned(),
            ..RelabelConfig::default()
        }
    );
    assert_eq!(
        relabeled(&[("foo", "bar"), ("x", "y")], &rules),
        Some(labels(&[("x", "y")]))
    );
}

#[test]
fn replacement_with_named_groups() {
    let rules = rules_from_yaml(
        r"
- source_labels: [__address__]
  regex: '(?P<host>[^:]+):(?P<port>\d+)'
  target_label: host
  replacement: $host
- source_labels: [__address__]
  regex: '(?P<host>[^:]+):(?P<port>\d+)'
  target_label: __address__
  replacement: ${host}:9${port}
",
    );
    assert_eq!(
        relabeled(&[("__address__", "node1:100")], &rules),
        Some(labels(&[("__address__", "node1:9100"), ("host", "node1")]))
    );
}

#[test]
fn dollar_one_x_names_a_group_that_does_not_exist() {
    // Go's longest-name rule: `$1x` is group "1x", which is empty, so the value is empty and
    // the target is deleted; `${1}x` is group 1 then "x".
    let rule = |replacement: &str| RelabelConfig {
        source_labels: names(&["a"]),
        regex: re("(.*)"),
        target_label: "t".to_owned(),
        replacement: replacement.to_owned(),
        ..RelabelConfig::default()
    };
    assert_eq!(
        relabeled(&[("a", "v"), ("t", "old")], &[rule("$1x")]),
        Some(labels(&[("a", "v")]))
    );
    assert_eq!(relabeled(&[("a", "v")], &[rule("${1}x")]).unwrap()["t"], "vx");
    assert_eq!(relabeled(&[("a", "v")], &[rule("$$1")]).unwrap()["t"], "$1");
    assert_eq!(relabeled(&[("a", "v")], &[rule("$1-x")]).unwrap()["t"], "v-x");
}

#[test]
fn empty_value_with_a_template_target_deletes_nothing_as_in_2_42() {
    // Prometheus 2.42 deletes `target_label` as written, here the label named "$1", which
    // cannot exist; 2.50 deletes the expanded name ("f") instead.
    let rule = RelabelConfig {
        source_labels: names(&["a"]),
        regex: re("(f).*"),
        target_label: "$1".to_owned(),
        replacement: "$2".to_owned(),
        ..RelabelConfig::default()
    };
    let input = [("a", "foo"), ("f", "baz")];
    assert_eq!(relabeled(&input, &[rule]), Some(labels(&input)));
}

#[test]
fn regexes_are_anchored_and_go_flavoured() {
    let rule = |pattern: &str| RelabelConfig {
        source_labels: names(&["a"]),
        regex: re(pattern),
        action: Action::Keep,
        ..RelabelConfig::default()
    };
    assert!(relabeled(&[("a", "xfoox")], &[rule("foo")]).is_none());
    assert!(relabeled(&[("a", "xfoox")], &[rule(".*foo.*")]).is_some());
    // `\w` is ASCII in Go.
    assert!(relabeled(&[("a", "café")], &[rule(r"\w+")]).is_none());
    // `.` does not match a newline unless `(?s)`.
    assert!(relabeled(&[("a", "a\nb")], &[rule("a.b")]).is_none());
    assert!(relabeled(&[("a", "a\nb")], &[rule("(?s)a.b")]).is_some());
}

#[test]
fn empty_values_are_absent() {
    let rules = rules_from_yaml("- {source_labels: [a, b], separator: '', target_label: c}");
    assert_eq!(
        relabeled(&[("a", ""), ("b", "x"), ("d", "")], &rules),
        Some(labels(&[("b", "x"), ("c", "x")]))
    );
}

// ---- YAML ----

#[test]
fn kubernetes_style_relabel_configs() {
    // The "kubernetes" case of relabel_test.go's BenchmarkRelabel.
    let rules = rules_from_yaml(
        r#"
- source_labels:
    - __meta_kubernetes_pod_container_port_name
  regex: .*-metrics
  action: keep
- source_labels:
    - __meta_kubernetes_pod_label_name
  action: drop
  regex: ""
- source_labels:
    - __meta_kubernetes_pod_phase
  regex: Succeeded|Failed
  action: drop
- source_labels:
    - __meta_kubernetes_pod_annotation_prometheus_io_scrape
  regex: "false"
  action: drop
- source_labels:
    - __meta_kubernetes_pod_annotation_prometheus_io_scheme
  target_label: __scheme__
  regex: (https?)
  replacement: $1
  action: replace
- source_labels:
    - __meta_kubernetes_pod_annotation_prometheus_io_path
  target_label: __metrics_path__
  regex: (.+)
  replacement: $1
  action: replace
- source_labels:
    - __address__
    - __meta_kubernetes_pod_annotation_prometheus_io_port
  target_label: __address__
  regex: (.+?)(\:\d+)?;(\d+)
  replacement: $1:$3
  action: replace
- regex: __meta_kubernetes_pod_annotation_prometheus_io_param_(.+)
  replacement: __param_$1
  action: labelmap
- regex: __meta_kubernetes_pod_label_prometheus_io_label_(.+)
  action: labelmap
- regex: __meta_kubernetes_pod_annotation_prometheus_io_label_(.+)
  action: labelmap
- source_labels:
    - __meta_kubernetes_namespace
    - __meta_kubernetes_pod_label_name
  separator: /
  target_label: job
  replacement: $1
  action: replace
- source_labels:
  - __meta_kubernetes_namespace
  target_label: namespace
  action: replace
- source_labels:
    - __meta_kubernetes_pod_name
  target_label: pod
  action: replace
- source_labels:
    - __meta_kubernetes_pod_container_name
  target_label: container
  action: replace
- source_labels:
    - __meta_kubernetes_pod_name
    - __meta_kubernetes_pod_container_name
    - __meta_kubernetes_pod_container_port_name
  separator: ':'
  target_label: instance
  action: replace
- target_label: cluster
  replacement: dev-us-central-0
- source_labels:
    - __meta_kubernetes_namespace
  regex: hosted-grafana
  action: drop
- source_labels:
    - __address__
  target_label: __tmp_hash
  modulus: 3
  action: hashmod
- source_labels:
    - __tmp_hash
  regex: ^0$
  action: keep
- regex: __tmp_hash
  action: labeldrop
"#,
    );
    assert_eq!(rules.len(), 20);
    assert_eq!(rules[0].action, Action::Keep);
    assert_eq!(rules[6].regex.as_str(), r"(.+?)(\:\d+)?;(\d+)");
    assert_eq!(rules[10].separator, "/");
    assert_eq!(rules[17].modulus, 3);
    assert_eq!(rules[19].action, Action::LabelDrop);

    let discovered = [
        ("__address__", "10.132.183.40:80"),
        ("__meta_kubernetes_namespace", "loki-boltdb-shipper"),
        ("__meta_kubernetes_pod_annotation_prometheus_io_port", "3100"),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_param_module",
            "http_2xx",
        ),
        ("__meta_kubernetes_pod_container_name", "promtail"),
        ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
        ("__meta_kubernetes_pod_label_name", "promtail-loki-boltdb-shipper"),
        ("__meta_kubernetes_pod_label_prometheus_io_label_tier", "logs"),
        ("__meta_kubernetes_pod_name", "promtail-loki-boltdb-shipper-jgtr7"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("job", "kubernetes-pods"),
    ];
    // Everything up to the hashmod: the address gets the annotated port, so the hash is of
    // "10.132.183.40:3100".
    let out = relabeled(&discovered, &rules[..18]).unwrap();
    assert_eq!(out["__address__"], "10.132.183.40:3100");
    assert_eq!(out["__param_module"], "http_2xx");
    assert_eq!(out["tier"], "logs");
    assert_eq!(out["job"], "loki-boltdb-shipper/promtail-loki-boltdb-shipper");
    assert_eq!(out["namespace"], "loki-boltdb-shipper");
    assert_eq!(out["pod"], "promtail-loki-boltdb-shipper-jgtr7");
    assert_eq!(out["container"], "promtail");
    assert_eq!(
        out["instance"],
        "promtail-loki-boltdb-shipper-jgtr7:promtail:http-metrics"
    );
    assert_eq!(out["cluster"], "dev-us-central-0");
    // python3: int.from_bytes(hashlib.md5(b"10.132.183.40:3100").digest()[8:], "big") % 3
    assert_eq!(out["__tmp_hash"], "0");
    // Eight new labels; job and __address__ were rewritten.
    assert_eq!(out.len(), discovered.len() + 8);
    // The whole list keeps this shard and drops the hash label.
    let kept = relabeled(&discovered, &rules).unwrap();
    assert!(!kept.contains_key("__tmp_hash"));
    assert_eq!(kept.len(), out.len() - 1);

    // Without the port annotation the address stays "10.132.183.40:80", whose hash is 1:
    // another shard.
    let other_shard: Vec<_> = discovered
        .iter()
        .copied()
        .filter(|(name, _)| *name != "__meta_kubernetes_pod_annotation_prometheus_io_port")
        .collect();
    assert_eq!(relabeled(&other_shard, &rules[..18]).unwrap()["__tmp_hash"], "1");
    assert_eq!(relabeled(&other_shard, &rules), None);
    // A completed pod and a non-metrics port are dropped early.
    let mut completed = discovered.to_vec();
    completed[9] = ("__meta_kubernetes_pod_phase", "Succeeded");
    assert_eq!(relabeled(&completed, &rules), None);
    let mut grpc_port = discovered.to_vec();
    grpc_port[5] = ("__meta_kubernetes_pod_container_port_name", "grpc");
    assert_eq!(relabeled(&grpc_port, &rules), None);
}

#[test]
fn yaml_defaults_and_nulls() {
    let rules = rules_from_yaml(
        r"
- target_label: a
- {target_label: b, regex: ~, separator: ~, replacement: ~}
- source_labels: ~
  action: labeldrop
  regex: tmp_.*
",
    );
    assert_eq!(rules[0].separator, ";");
    assert_eq!(rules[0].regex.as_str(), "(.*)");
    assert_eq!(rules[0].replacement, "$1");
    assert_eq!(rules[0].action, Action::Replace);
    assert_eq!(rules[0].modulus, 0);
    assert!(rules[0].source_labels.is_empty());
    // Prometheus' YAML decoder zeroes null fields: the empty regex matches only "".
    assert_eq!(rules[1].regex.as_str(), "");
    assert!(rules[1].regex.is_match("") && !rules[1].regex.is_match("x"));
    assert_eq!(rules[1].separator, "");
    assert_eq!(rules[1].replacement, "");
    assert_eq!(rules[2].action, Action::LabelDrop);
}

#[test]
fn yaml_scalars_are_read_as_written() {
    // `regex: true` is common in Kubernetes examples; YAML reads it as a boolean.
    let rules = rules_from_yaml(
        r"
- source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
  action: Keep
  regex: true
- {target_label: a, replacement: 1.10, separator: 0x1F}
",
    );
    assert_eq!(rules[0].action, Action::Keep);
    assert_eq!(rules[0].regex.as_str(), "true");
    assert_eq!(rules[1].replacement, "1.10");
    assert_eq!(rules[1].separator, "0x1F");
}

#[test]
fn actions_are_case_insensitive() {
    let rules =
        rules_from_yaml("- {action: LabelDrop, regex: x}\n- {action: HASHMOD, target_label: h, modulus: 2}");
    assert_eq!(rules[0].action, Action::LabelDrop);
    assert_eq!(rules[1].action, Action::HashMod);
    assert_eq!(Action::KeepEqual.to_string(), "keepequal");
}

#[test]
fn yaml_errors_name_what_is_wrong() {
    let cases = [
        ("- regex: abc(def", r#"error parsing regexp "abc(def": "#),
        (
            "- {target_label: a, regex: '[z-a]'}",
            r#"error parsing regexp "[z-a]": "#,
        ),
        ("- action: copy", r#"unknown relabel action "copy""#),
        ("- action: ''", r#"unknown relabel action """#),
        ("- action: null", "relabel action cannot be empty"),
        ("- target_label: a\n  regexp: x", "unknown field `regexp`"),
        ("- ", "empty or null relabeling rule"),
        ("- null", "empty or null relabeling rule"),
        ("- 5", "expected a relabel rule"),
        (
            "- source_labels: [foo-bar]\n  target_label: a",
            r#""foo-bar" is not a valid label name"#,
        ),
        ("- {target_label: a, modulus: -1}", "modulus"),
        (
            "- {source_labels: [], action: labeldrop}",
            "labeldrop action requires only 'regex', and no other fields",
        ),
    ];
    for (yaml, expected) in cases {
        let message = yaml_error(yaml);
        assert!(message.contains(expected), "{yaml:?}: {message}");
    }
}

#[test]
fn yaml_errors_say_where_the_rule_is() {
    let message = yaml_error("- target_label: a\n- action: hashmod\n  target_label: b\n");
    assert_eq!(
        message,
        ".[1]: relabel configuration for hashmod requires non-zero modulus at line 2 column 3"
    );
}

#[test]
fn validation_messages_are_prometheus_messages() {
    // config/testdata/*.bad.yml of Prometheus 2.42, with the messages config_test.go expects.
    let cases = [
        (
            "- {action: hashmod, target_label: a}",
            "relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            "- {source_labels: [abcdef], action: labelkeep}",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "- {modulus: 8, action: labelkeep}",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "- {separator: ',', action: labelkeep}",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "- {replacement: 'yolo-{1}', action: labelkeep}",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "- {target_label: yolo, action: labelkeep}",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "- {target_label: yolo, action: labeldrop}",
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            "- {source_labels: [abcdef], action: dropequal}",
            "relabel configuration for dropequal action requires 'target_label' value",
        ),
        (
            "- {source_labels: [abcdef], action: dropequal, regex: foo, target_label: bar}",
            "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "- {source_labels: [abcdef], action: keepequal}",
            "relabel configuration for keepequal action requires 'target_label' value",
        ),
        (
            "- {source_labels: [a], action: keepequal, separator: ',', target_label: b}",
            "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "- {action: labelmap, replacement: l-$1}",
            r#""l-$1" is invalid 'replacement' for labelmap action"#,
        ),
        (
            "- {action: lowercase, source_labels: [__name__]}",
            "relabel configuration for lowercase action requires 'target_label' value",
        ),
        (
            "- {action: lowercase, source_labels: [__name__], target_label: 42lab}",
            r#""42lab" is invalid 'target_label' for lowercase action"#,
        ),
        (
            "- {action: lowercase, source_labels: [__name__], target_label: __name__, replacement: bar}",
            "'replacement' can not be set for lowercase action",
        ),
        (
            "- {action: uppercase, source_labels: [__name__]}",
            "relabel configuration for uppercase action requires 'target_label' value",
        ),
        (
            "- {action: uppercase, source_labels: [__name__], target_label: 42lab}",
            r#""42lab" is invalid 'target_label' for uppercase action"#,
        ),
        (
            "- {action: uppercase, source_labels: [__name__], target_label: __name__, replacement: bar}",
            "'replacement' can not be set for uppercase action",
        ),
        (
            "- {source_labels: [__address__]}",
            "relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "- {source_labels: [__address__], action: hashmod, modulus: 2}",
            "relabel configuration for hashmod action requires 'target_label' value",
        ),
        (
            "- {action: hashmod, modulus: 2, target_label: '${1}'}",
            r#""${1}" is invalid 'target_label' for hashmod action"#,
        ),
        (
            "- {target_label: '-label'}",
            r#""-label" is invalid 'target_label' for replace action"#,
        ),
        (
            "- {target_label: 'foo${'}",
            r#""foo${" is invalid 'target_label' for replace action"#,
        ),
    ];
    for (yaml, expected) in cases {
        let message = yaml_error(yaml);
        assert!(message.contains(expected), "{yaml:?}: {message}");
    }
}

#[test]
fn valid_rules_pass_validation() {
    let rules = rules_from_yaml(
        r"
- {target_label: 'label${1}'}
- {target_label: '${1}label'}
- {target_label: '$1'}
- {target_label: 'asd$2asd'}
- {target_label: '_${1}_'}
- {target_label: 'foo${bar}foo'}
- {action: keepequal, source_labels: [a], target_label: b}
- {action: labelmap, regex: 'x_(.+)', replacement: 'y_${1}'}
- {action: drop, source_labels: [a, b], separator: '', regex: 'ab'}
# Prometheus 2.42 accepts a template target on lowercase (2.50 refuses it).
- {action: lowercase, source_labels: [a], target_label: '${1}'}
",
    );
    for rule in &rules {
        assert_eq!(rule.validate(), Ok(()), "{rule:?}");
    }
}

#[test]
fn validate_checks_rules_built_in_code() {
    let hashmod = RelabelConfig {
        source_labels: names(&["a"]),
        target_label: "h".to_owned(),
        action: Action::HashMod,
        ..RelabelConfig::default()
    };
    assert_eq!(hashmod.validate(), Err(RelabelError::ModulusRequired));
    // Unvalidated, modulus 0 does nothing rather than divide by zero.
    assert_eq!(relabeled(&[("a", "x")], &[hashmod]), Some(labels(&[("a", "x")])));
    let bad_source = RelabelConfig {
        source_labels: names(&["a-b"]),
        target_label: "c".to_owned(),
        ..RelabelConfig::default()
    };
    assert_eq!(
        bad_source.validate(),
        Err(RelabelError::InvalidSourceLabel("a-b".to_owned()))
    );
    assert_eq!(
        RelabelConfig::default().validate(),
        Err(RelabelError::TargetLabelRequired(Action::Replace))
    );
}

// ---- properties ----

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,12}", "\\PC{0,8}", 0..12)
}

proptest! {
    #[test]
    fn labelkeep_everything_keeps_every_label(input in label_set()) {
        let rule = RelabelConfig { regex: re(".*"), action: Action::LabelKeep, ..RelabelConfig::default() };
        let mut set = input.clone();
        prop_assert!(process(&mut set, &[rule]));
        let expected: BTreeMap<_, _> = input.into_iter().filter(|(_, value)| !value.is_empty()).collect();
        prop_assert_eq!(set, expected);
    }

    #[test]
    fn labeldrop_everything_drops_every_label(input in label_set()) {
        let rule = RelabelConfig { regex: re(".*"), action: Action::LabelDrop, ..RelabelConfig::default() };
        let mut set = input;
        prop_assert!(process(&mut set, &[rule]));
        prop_assert!(set.is_empty());
    }

    #[test]
    fn hashmod_stays_below_the_modulus(input in label_set(), modulus in 1_u64..1000) {
        let rule = RelabelConfig {
            source_labels: input.keys().cloned().collect(),
            target_label: "__tmp_hash".to_owned(),
            modulus,
            action: Action::HashMod,
            ..RelabelConfig::default()
        };
        let mut set = input;
        prop_assert!(process(&mut set, &[rule]));
        let bucket: u64 = set["__tmp_hash"].parse().unwrap();
        prop_assert!(bucket < modulus);
    }
}
