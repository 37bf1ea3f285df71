//! The command line: configuration errors, start-up failures and their exit codes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Appliance, BINARY, run};

const MISCONFIGURED: i32 = 2;

fn config_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_unknown_key_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        "storage:\n  retention:\n    metrics: 15d\n  retension: 1d\n",
    );
    for command in ["serve", "check-config"] {
        let (code, _, stderr) = run(&[command, "--config", &path]);
        assert_eq!(code, MISCONFIGURED, "{command}: {stderr}");
        assert!(stderr.contains(&path), "{command}: {stderr}");
        assert!(stderr.contains("retension"), "{command}: {stderr}");
        assert!(stderr.contains("line 4"), "{command}: {stderr}");
    }
}

#[test]
fn a_bad_duration_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), "storage:\n  retention:\n    logs: 2 weeks\n");
    let (code, _, stderr) = run(&["check-config", "--config", &path]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(stderr.contains("storage.retention.logs"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("not a valid duration"), "{stderr}");
}

#[test]
fn check_config_accepts_the_default_and_a_valid_file() {
    let (code, stdout, stderr) = run(&["check-config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let (code, default_text, _) = run(&["config", "default"]);
    assert_eq!(code, 0);
    let path = config_file(dir.path(), &default_text);
    let (code, stdout, stderr) = run(&["check-config", "--config", &path]);
    assert_eq!(code, 0, "the printed default must be a valid file: {stderr}");
    assert!(stdout.contains(&path), "{stdout}");

    let (code, stdout, _) = run(&["version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("obs-appliance "), "{stdout}");
}

#[test]
fn a_port_in_use_is_named_with_its_config_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (server.listen)")),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
}

#[test]
fn an_unusable_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where a directory must be: no user, root included, can create it.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let data_dir = blocker.join("data");
    let (code, _, stderr) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot use data directory {}", data_dir.display())),
        "{stderr}"
    );
    assert!(stderr.contains("storage.path or --data-dir"), "{stderr}");
}

#[test]
fn a_read_only_data_dir_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(data_dir.join("probe"), b"").is_ok() {
        // Root ignores permission bits; the not-a-directory test covers this path for root.
        eprintln!("SKIPPED: running as root, permission bits do not stop writes");
        return;
    }
    let (code, _, stderr) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(stderr.to_lowercase().contains("permission denied"), "{stderr}");
}

#[test]
fn a_data_dir_in_use_by_another_instance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Appliance::start(dir.path(), &[]);
    let (code, _, stderr) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(
        stderr.contains("in use by another obs-appliance process"),
        "{stderr}"
    );
}

#[test]
fn a_bad_command_line_is_a_usage_error() {
    let (code, _, stderr) = run(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    let (code, _, _) = run(&["no-such-command"]);
    assert_eq!(code, MISCONFIGURED);
    assert!(std::path::Path::new(BINARY).exists());
}

#[test]
fn check_config_reads_a_whole_prometheus_yml_and_warns_about_what_has_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers: []\nscrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['192.168.1.52:9100']}]\n  - job_name: pods\n    kubernetes_sd_configs: [{role: pod}]\n",
    )
    .unwrap();
    let path = config_file(dir.path(), "scrape_config_files: [prometheus.yml]\n");
    let (code, stdout, stderr) = run(&["check-config", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 scrape jobs"), "{stdout}");
    for expected in ["rule_files", "alerting", "kubernetes_sd_configs is not supported"] {
        assert!(
            stderr.contains(expected),
            "warning about {expected} missing: {stderr}"
        );
    }
    // A broken scrape job is an error that names the job.
    let path = config_file(
        dir.path(),
        "scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 10s}]\n",
    );
    let (code, _, stderr) = run(&["check-config", "--config", &path]);
    assert_eq!(code, MISCONFIGURED, "{stderr}");
    assert!(
        stderr.contains("job \"a\": scrape timeout greater than scrape interval"),
        "{stderr}"
    );
}

#[test]
fn the_deploy_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config.yaml");
    let (code, stdout, stderr) = run(&["check-config", "--config", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 scrape jobs"), "{stdout}");
}
