//! Configuration validation and routing compared with upstream amtool 0.25 on the files in
//! `tests/fixtures` (outputs recorded in `tests/fixtures/AMTOOL.md`).

use std::path::PathBuf;

use obs_alertmanager::config::Config;
use obs_alertmanager::labels::LabelSet;
use obs_alertmanager::route::RouteTree;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Result<Config, String> {
    Config::load_file(&fixture(name)).map_err(|err| err.to_string())
}

#[test]
fn valid_files_are_accepted() {
    let full = load("good_full.yml").unwrap();
    assert_eq!(full.receivers.len(), 1);
    assert_eq!(load("routing.yml").unwrap().receivers.len(), 8);
    // Secrets are not in Debug output.
    let debug = format!("{full:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("p4ss") && !debug.contains("hook.example"));
}

#[test]
fn invalid_files_fail_with_upstream_messages() {
    let cases = [
        (
            "bad_receiver.yml",
            "route.routes[0].receiver: undefined receiver \"missing\" used in route",
        ),
        (
            "bad_root_matchers.yml",
            "route: root route must not have any matchers",
        ),
        (
            "dup_receiver.yml",
            "receivers[1].name: notification config name \"default\" is not unique",
        ),
        ("no_route.yml", "route: no routes provided"),
        (
            "undefined_interval.yml",
            "route.routes[0].mute_time_intervals[0]: undefined time interval \"weekends\" used in route",
        ),
        (
            "zero_interval.yml",
            "route.group_interval: group_interval cannot be zero",
        ),
        (
            "webhook_both.yml",
            "receivers[0].webhook_configs[0]: at most one of url & url_file must be configured",
        ),
    ];
    for (file, expected) in cases {
        assert_eq!(load(file).unwrap_err(), expected, "{file}");
    }
    // Same failures, our wording (the YAML path and a usage hint instead of Go's).
    let duration = load("bad_duration.yml").unwrap_err();
    assert!(
        duration.starts_with("route.group_wait: \"30 seconds\" is not a valid duration"),
        "{duration}"
    );
    let unknown = load("unknown_key.yml").unwrap_err();
    assert!(
        unknown.starts_with("route: unknown field `group_wiat`"),
        "{unknown}"
    );
}

#[test]
fn routing_tree_matches_amtool() {
    let config = load("routing.yml").unwrap();
    let tree = RouteTree::new(&config.route);
    let keys: Vec<&str> = tree.routes().map(|(_, route)| route.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "{}",
            r#"{}/{severity="critical"}"#,
            r#"{}/{env!="dev",team=~"db|storage"}"#,
            r#"{}/{env!="dev",team=~"db|storage"}/{service="mysql"}"#,
            r#"{}/{env!="dev",team=~"db|storage"}/{service=~"^(?:pg.*)$"}"#,
            r#"{}/{env!="dev",team=~"db|storage"}/{service="pgbouncer"}"#,
            r#"{}/{severity=~"warning|critical",team!~"ops.*"}"#,
            "{}/{}",
        ]
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("severity", "critical")], "pager,warnings"),
        (&[("severity", "critical"), ("team", "db")], "pager,db"),
        (&[("team", "db"), ("service", "mysql")], "mysql"),
        (&[("team", "db"), ("service", "pgsql")], "postgres"),
        (&[("team", "db"), ("service", "pgbouncer")], "postgres,bouncer"),
        (&[("team", "storage"), ("env", "dev")], "catchall-child"),
        (&[("team", "db"), ("service", "pgx"), ("env", "prod")], "postgres"),
        (&[("severity", "warning"), ("team", "opsx")], "catchall-child"),
        (&[("severity", "warning"), ("team", "web")], "warnings"),
        (&[("alertname", "x")], "catchall-child"),
        (&[("team", "db"), ("service", "redis")], "db"),
    ];
    for (pairs, expected) in cases {
        let labels = LabelSet::from_pairs(pairs.iter().copied());
        let receivers: Vec<String> = tree
            .match_labels(&labels)
            .into_iter()
            .map(|id| tree.route(id).opts.receiver.clone())
            .collect();
        assert_eq!(receivers.join(","), *expected, "{pairs:?}");
    }
}
