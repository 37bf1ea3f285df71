//! The exposition-format parsers against the documents that define the formats, a realistic
//! node-exporter body, errors with their line numbers, and round trips of generated samples.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Instant;

use obs_core::series::MetricType;
use obs_scrape::parse::{FamilyMetadata, Format, ParseError, ScrapedSample, parse};
use proptest::prelude::*;

/// A sample as the tests write it: name, labels, value, timestamp.
type Expected<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64, Option<i64>);

fn summarize<'a>(samples: &'a [ScrapedSample<'_>]) -> Vec<Expected<'a>> {
    samples
        .iter()
        .map(|sample| {
            let labels = sample
                .labels
                .iter()
                .map(|(name, value)| (*name, value.as_ref()))
                .collect();
            (sample.name, labels, sample.value, sample.timestamp_ms)
        })
        .collect()
}

fn metadata(name: &str, metric_type: MetricType, help: &str, unit: &str) -> FamilyMetadata {
    FamilyMetadata {
        name: name.to_owned(),
        metric_type,
        help: help.to_owned(),
        unit: unit.to_owned(),
    }
}

fn parse_error(body: &str, format: Format) -> ParseError {
    match parse(body, format) {
        Ok(parsed) => panic!("{body:?} parsed: {parsed:?}"),
        Err(error) => error,
    }
}

/// The example of `content/docs/instrumenting/exposition_formats.md`.
const EXPOSITION_FORMATS_EXAMPLE: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP telemetry_requests_metrics_latency_microseconds A summary of the response latency.
# TYPE telemetry_requests_metrics_latency_microseconds summary
telemetry_requests_metrics_latency_microseconds{quantile="0.01"} 3102
telemetry_requests_metrics_latency_microseconds{quantile="0.05"} 3272
telemetry_requests_metrics_latency_microseconds{quantile="0.5"} 4773
telemetry_requests_metrics_latency_microseconds{quantile="0.9"} 9001
telemetry_requests_metrics_latency_microseconds{quantile="0.99"} 76656
telemetry_requests_metrics_latency_microseconds_sum 1.7560473e+07
telemetry_requests_metrics_latency_microseconds_count 2693
"#;

#[test]
fn exposition_formats_example() {
    let parsed = parse(EXPOSITION_FORMATS_EXAMPLE, Format::PrometheusText).unwrap();
    let request_duration = "http_request_duration_seconds_bucket";
    let latency = "telemetry_requests_metrics_latency_microseconds";
    let expected: Vec<Expected<'_>> = vec![
        (
            "http_requests_total",
            vec![("method", "post"), ("code", "200")],
            1027.0,
            Some(1_395_066_363_000),
        ),
        (
            "http_requests_total",
            vec![("method", "post"), ("code", "400")],
            3.0,
            Some(1_395_066_363_000),
        ),
        (
            "msdos_file_access_time_seconds",
            vec![
                ("path", r"C:\DIR\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\""),
            ],
            1.458255915e9,
            None,
        ),
        ("metric_without_timestamp_and_labels", vec![], 12.47, None),
        (
            "something_weird",
            vec![("problem", "division by zero")],
            f64::INFINITY,
            Some(-3_982_045),
        ),
        (request_duration, vec![("le", "0.05")], 24054.0, None),
        (request_duration, vec![("le", "0.1")], 33444.0, None),
        (request_duration, vec![("le", "0.2")], 100_392.0, None),
        (request_duration, vec![("le", "0.5")], 129_389.0, None),
        (request_duration, vec![("le", "1")], 133_988.0, None),
        (request_duration, vec![("le", "+Inf")], 144_320.0, None),
        ("http_request_duration_seconds_sum", vec![], 53423.0, None),
        ("http_request_duration_seconds_count", vec![], 144_320.0, None),
        (latency, vec![("quantile", "0.01")], 3102.0, None),
        (latency, vec![("quantile", "0.05")], 3272.0, None),
        (latency, vec![("quantile", "0.5")], 4773.0, None),
        (latency, vec![("quantile", "0.9")], 9001.0, None),
        (latency, vec![("quantile", "0.99")], 76656.0, None),
        (
            "telemetry_requests_metrics_latency_microseconds_sum",
            vec![],
            1.7560473e+07,
            None,
        ),
        (
            "telemetry_requests_metrics_latency_microseconds_count",
            vec![],
            2693.0,
            None,
        ),
    ];
    assert_eq!(summarize(&parsed.samples), expected);
    assert_eq!(
        parsed.metadata,
        [
            metadata(
                "http_requests_total",
                MetricType::Counter,
                "The total number of HTTP requests.",
                ""
            ),
            metadata(
                "http_request_duration_seconds",
                MetricType::Histogram,
                "A histogram of the request duration.",
                ""
            ),
            metadata(
                "telemetry_requests_metrics_latency_microseconds",
                MetricType::Summary,
                "A summary of the response latency.",
                ""
            ),
        ]
    );
}

/// The complete exposition of the OpenMetrics 1.0 specification ("Overall Structure").
const OPENMETRICS_SPEC_EXAMPLE: &str = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
acme_http_router_request_seconds_sum{path="/api/v2",method="POST"} 479.3
acme_http_router_request_seconds_count{path="/api/v2",method="POST"} 34.0
acme_http_router_request_seconds_created{path="/api/v2",method="POST"} 1605281325.0
# TYPE go_goroutines gauge
# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
process_cpu_seconds_total 4.20072246e+06
# EOF
"#;

#[test]
fn openmetrics_spec_complete_exposition() {
    let parsed = parse(OPENMETRICS_SPEC_EXAMPLE, Format::OpenMetrics).unwrap();
    let v1 = vec![("path", "/api/v1"), ("method", "GET")];
    let v2 = vec![("path", "/api/v2"), ("method", "POST")];
    let expected: Vec<Expected<'_>> = vec![
        ("acme_http_router_request_seconds_sum", v1.clone(), 9036.32, None),
        (
            "acme_http_router_request_seconds_count",
            v1.clone(),
            807_283.0,
            None,
        ),
        (
            "acme_http_router_request_seconds_created",
            v1,
            1_605_281_325.0,
            None,
        ),
        ("acme_http_router_request_seconds_sum", v2.clone(), 479.3, None),
        ("acme_http_router_request_seconds_count", v2.clone(), 34.0, None),
        (
            "acme_http_router_request_seconds_created",
            v2,
            1_605_281_325.0,
            None,
        ),
        ("go_goroutines", vec![], 69.0, None),
        ("process_cpu_seconds_total", vec![], 4.20072246e+06, None),
    ];
    assert_eq!(summarize(&parsed.samples), expected);
    assert_eq!(
        parsed.metadata,
        [
            metadata(
                "acme_http_router_request_seconds",
                MetricType::Summary,
                "Latency though all of ACME's HTTP request router.",
                "seconds"
            ),
            metadata(
                "go_goroutines",
                MetricType::Gauge,
                "Number of goroutines that currently exist.",
                ""
            ),
            metadata(
                "process_cpu_seconds",
                MetricType::Counter,
                "Total user and system CPU time spent in seconds.",
                "seconds"
            ),
        ]
    );
}

/// The per-type examples of the OpenMetrics specification, each with `# EOF` appended.
#[test]
fn openmetrics_spec_type_examples() {
    let with_eof = |body: &str| format!("{body}\n# EOF\n");
    let cases: Vec<(&str, Vec<Expected<'_>>)> = vec![
        (
            "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n\
             # HELP foo_seconds Some text and \\n some \\\" escaping",
            vec![],
        ),
        (
            "# TYPE foo_seconds summary\n# UNIT foo_seconds seconds\n\
             foo_seconds_count{a=\"bb\"} 0 123\nfoo_seconds_sum{a=\"bb\"} 0 123\n\
             foo_seconds_count{a=\"bb\"} 0 456",
            vec![
                ("foo_seconds_count", vec![("a", "bb")], 0.0, Some(123_000)),
                ("foo_seconds_sum", vec![("a", "bb")], 0.0, Some(123_000)),
                ("foo_seconds_count", vec![("a", "bb")], 0.0, Some(456_000)),
            ],
        ),
        (
            "bar_seconds_count{} 0",
            vec![("bar_seconds_count", vec![], 0.0, None)],
        ),
        (
            "bar_seconds_count{a=\"x\",b=\"escaping\\\" example \\n \"} 0",
            vec![(
                "bar_seconds_count",
                vec![("a", "x"), ("b", "escaping\" example \n ")],
                0.0,
                None,
            )],
        ),
        (
            "# TYPE foo gauge\nfoo{a=\"b\"} 17.0 1520879607.789\nfoo 17.0 1520879607.789",
            vec![
                ("foo", vec![("a", "b")], 17.0, Some(1_520_879_607_789)),
                ("foo", vec![], 17.0, Some(1_520_879_607_789)),
            ],
        ),
        (
            "# TYPE foo counter\nfoo_total 17.0 1520879607.789\nfoo_created 1520430000.123 1520879607.789",
            vec![
                ("foo_total", vec![], 17.0, Some(1_520_879_607_789)),
                ("foo_created", vec![], 1_520_430_000.123, Some(1_520_879_607_789)),
            ],
        ),
        (
            "# TYPE foo stateset\nfoo{entity=\"controller\",foo=\"a\"} 1.0\nfoo{entity=\"replica\",foo=\"bb\"} 0.0",
            vec![
                ("foo", vec![("entity", "controller"), ("foo", "a")], 1.0, None),
                ("foo", vec![("entity", "replica"), ("foo", "bb")], 0.0, None),
            ],
        ),
        (
            "# TYPE foo info\nfoo_info{entity=\"controller\",name=\"pretty name\",version=\"8.2.7\"} 1.0",
            vec![(
                "foo_info",
                vec![
                    ("entity", "controller"),
                    ("name", "pretty name"),
                    ("version", "8.2.7"),
                ],
                1.0,
                None,
            )],
        ),
        (
            "# TYPE foo summary\nfoo_count 17.0\nfoo_sum 324789.3\nfoo_created 1520430000.123\n\
             foo{quantile=\"0.95\"} 123.7",
            vec![
                ("foo_count", vec![], 17.0, None),
                ("foo_sum", vec![], 324_789.3, None),
                ("foo_created", vec![], 1_520_430_000.123, None),
                ("foo", vec![("quantile", "0.95")], 123.7, None),
            ],
        ),
        (
            "# TYPE foo histogram\nfoo_bucket{le=\"1e-05\"} 0\nfoo_bucket{le=\"1.1e+23\"} 17\n\
             foo_bucket{le=\"+Inf\"} 17\nfoo_count 17\nfoo_sum 324789.3\nfoo_created 1520430000.123",
            vec![
                ("foo_bucket", vec![("le", "1e-05")], 0.0, None),
                ("foo_bucket", vec![("le", "1.1e+23")], 17.0, None),
                ("foo_bucket", vec![("le", "+Inf")], 17.0, None),
                ("foo_count", vec![], 17.0, None),
                ("foo_sum", vec![], 324_789.3, None),
                ("foo_created", vec![], 1_520_430_000.123, None),
            ],
        ),
        (
            "# TYPE foo histogram\nfoo_bucket{le=\"0.01\"} 0\nfoo_bucket{le=\"0.1\"} 8 # {} 0.054\n\
             foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
             foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789",
            vec![
                ("foo_bucket", vec![("le", "0.01")], 0.0, None),
                ("foo_bucket", vec![("le", "0.1")], 8.0, None),
                ("foo_bucket", vec![("le", "1")], 11.0, None),
                ("foo_bucket", vec![("le", "10")], 17.0, None),
            ],
        ),
        (
            "# TYPE foo gaugehistogram\nfoo_bucket{le=\"+Inf\"} 42.0\nfoo_gcount 42.0\nfoo_gsum 3289.3",
            vec![
                ("foo_bucket", vec![("le", "+Inf")], 42.0, None),
                ("foo_gcount", vec![], 42.0, None),
                ("foo_gsum", vec![], 3289.3, None),
            ],
        ),
        (
            "# TYPE foo unknown\nfoo 42.23",
            vec![("foo", vec![], 42.23, None)],
        ),
    ];
    for (body, expected) in cases {
        let body = with_eof(body);
        let parsed = parse(&body, Format::OpenMetrics).unwrap_or_else(|error| panic!("{body:?}: {error}"));
        assert_eq!(summarize(&parsed.samples), expected, "{body:?}");
    }
    let body =
        with_eof("# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds a \\\" b");
    let parsed = parse(&body, Format::OpenMetrics).unwrap();
    assert_eq!(
        parsed.metadata,
        [metadata("foo_seconds", MetricType::Counter, "a \" b", "seconds")]
    );
}

/// Two examples of the specification have stray blanks (`foo_total 17.0 `, `foo_created  1.0`)
/// that Prometheus refuses; so do we.
#[test]
fn openmetrics_spec_typos_are_refused_as_prometheus_does() {
    let error = parse_error(
        "# TYPE foo counter\nfoo_total 17.0 \nfoo_created 1520430000.123\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!(error.line, 2);
    assert_eq!(error.message, "expected timestamp or # symbol, got \"INVALID\"");
    let error = parse_error(
        "# TYPE foo histogram\nfoo_count 17\nfoo_created  1520430000.123\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!(error.line, 3);
    assert_eq!(error.message, "expected value after metric, got \"INVALID\"");
}

/// What node_exporter 1.5 serves, abridged, with a few additions: escapes, NaN, timestamps.
const NODE_EXPORTER_BODY: &str = r#"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1497e-05
go_gc_duration_seconds{quantile="0.25"} 3.6742e-05
go_gc_duration_seconds{quantile="0.5"} 4.4617e-05
go_gc_duration_seconds{quantile="0.75"} NaN
go_gc_duration_seconds{quantile="1"} 0.000212905
go_gc_duration_seconds_sum 0.034569829
go_gc_duration_seconds_count 702
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 2.18979e+06
node_cpu_seconds_total{cpu="0",mode="iowait"} 1003.25
node_cpu_seconds_total{cpu="0",mode="system"} 5421.84
node_cpu_seconds_total{cpu="1",mode="idle"} 2.19111e+06
node_cpu_seconds_total{cpu="1",mode="user"} 10234.5
# HELP node_disk_io_time_seconds_total Total seconds spent doing I/Os.
# TYPE node_disk_io_time_seconds_total counter
node_disk_io_time_seconds_total{device="nvme0n1"} 1546.204
node_disk_io_time_seconds_total{device="sda"} 0.032
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 4.1359314944e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/1000"} 3.3583104e+08
node_filesystem_avail_bytes{device="C:\\",fstype="ntfs",mountpoint="/mnt/c \"win\""} 1.2e+11
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.52 1676000000000
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 8.7654321e+09 1676000000000
node_network_receive_bytes_total{device="lo"} 1.234567e+06 1676000000000
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="textfile"} 1
node_textfile_mtime_seconds{file="/var/lib/node_exporter/line1\nline2.prom"} 1.676e+09
# HELP node_vmstat_oom_kill /proc/vmstat information field oom_kill.
# TYPE node_vmstat_oom_kill untyped
node_vmstat_oom_kill 0
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 1301
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.2"} 1302
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 1303
prometheus_http_request_duration_seconds_sum{handler="/metrics"} 14.837
prometheus_http_request_duration_seconds_count{handler="/metrics"} 1303
# HELP node_temperature_celsius A value that went wrong, on purpose.
# TYPE node_temperature_celsius gauge
node_temperature_celsius{sensor="cpu"} -Inf
node_temperature_celsius{sensor="gpu"} +Inf
"#;

#[test]
fn node_exporter_body() {
    let parsed = parse(NODE_EXPORTER_BODY, Format::PrometheusText).unwrap();
    assert_eq!(parsed.samples.len(), 31);
    assert_eq!(parsed.metadata.len(), 11);

    let nan = parsed
        .samples
        .iter()
        .find(|sample| sample.labels.first().is_some_and(|(_, value)| value == "0.75"))
        .unwrap();
    assert!(nan.value.is_nan());

    let windows = parsed
        .samples
        .iter()
        .find(|sample| sample.labels.iter().any(|(_, value)| value == "ntfs"))
        .unwrap();
    let labels: Vec<(&str, &str)> = windows
        .labels
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .collect();
    assert_eq!(
        labels,
        [
            ("device", "C:\\"),
            ("fstype", "ntfs"),
            ("mountpoint", "/mnt/c \"win\"")
        ]
    );
    assert!(matches!(windows.labels[1].1, Cow::Borrowed(_)));

    let textfile = parsed
        .samples
        .iter()
        .find(|sample| sample.name == "node_textfile_mtime_seconds")
        .unwrap();
    assert_eq!(textfile.labels[0].1, "/var/lib/node_exporter/line1\nline2.prom");

    let load = parsed
        .samples
        .iter()
        .find(|sample| sample.name == "node_load1")
        .unwrap();
    assert_eq!((load.value, load.timestamp_ms), (0.52, Some(1_676_000_000_000)));

    let inf_bucket = parsed
        .samples
        .iter()
        .find(|sample| {
            sample
                .labels
                .iter()
                .any(|(name, value)| *name == "le" && value == "+Inf")
        })
        .unwrap();
    assert_eq!(inf_bucket.value, 1303.0);

    let temperatures: Vec<f64> = parsed
        .samples
        .iter()
        .filter(|sample| sample.name == "node_temperature_celsius")
        .map(|sample| sample.value)
        .collect();
    assert_eq!(temperatures, [f64::NEG_INFINITY, f64::INFINITY]);

    let types: Vec<(&str, MetricType)> = parsed
        .metadata
        .iter()
        .map(|family| (family.name.as_str(), family.metric_type))
        .collect();
    assert_eq!(types[0], ("go_gc_duration_seconds", MetricType::Summary));
    assert!(types.contains(&("node_vmstat_oom_kill", MetricType::Unknown)));
    assert!(types.contains(&("prometheus_http_request_duration_seconds", MetricType::Histogram)));
    assert_eq!(
        parsed.metadata[7].help,
        "node_exporter: Whether a collector succeeded."
    );
}

#[test]
fn errors_fail_the_whole_body_and_name_the_line() {
    let good = "# HELP a An a.\n# TYPE a gauge\na 1\nb{x=\"y\"} 2\n";
    let text_cases = [
        ("c\n", "expected value after metric, got \"INVALID\""),
        ("c{d=\"e\"}\n", "expected value after metric, got \"INVALID\""),
        ("c one\n", "strconv.ParseFloat: parsing \"one\": invalid syntax"),
        (
            "c 1e309\n",
            "strconv.ParseFloat: parsing \"1e309\": value out of range",
        ),
        ("c{d=\"unterminated} 1\n", "expected label value, got \"INVALID\""),
        (
            "c{d=\"bad escape \\\n\"} 1\n",
            "expected label value, got \"INVALID\"",
        ),
        ("c{d=\"1\",d=\"2\"} 1\n", "label name \"d\" is not unique"),
        ("9c 1\n", "\"INVALID\" is not a valid start token"),
        ("c.d 1\n", "strconv.ParseFloat: parsing \".d\": invalid syntax"),
        ("c{d.e=\"1\"} 1\n", "expected equal, got \"INVALID\""),
        ("c{9=\"1\"} 1\n", "expected label name, got \"INVALID\""),
        (
            "c 1 1.5\n",
            "expected next entry after timestamp, got \"INVALID\"",
        ),
        (
            "# TYPE c gaugehistogram\n",
            "invalid metric type \"gaugehistogram\"",
        ),
    ];
    for (bad_line, message) in text_cases {
        let body = format!("{good}{bad_line}d 4\n");
        let error = parse_error(&body, Format::PrometheusText);
        assert_eq!((error.line, error.message.as_str()), (5, message), "{body:?}");
    }

    let good = "# TYPE a gauge\n# UNIT a_bytes bytes\na 1\nb{x=\"y\"} 2 3.5\n";
    let openmetrics_cases = [
        ("c\n# EOF\n", 5, "expected value after metric, got \"INVALID\""),
        ("c  1\n# EOF\n", 5, "expected value after metric, got \"INVALID\""),
        ("c{d=\"e\",} 1\n# EOF\n", 5, "expected label name, got \"BCLOSE\""),
        (
            "c{d=\"1\",d=\"2\"} 1\n# EOF\n",
            5,
            "label name \"d\" is not unique",
        ),
        ("c 1\n", 6, "data does not end with # EOF"),
        ("c 1", 5, "data does not end with # EOF"),
        ("# EOF\nc 1\n", 6, "unexpected data after # EOF"),
        (
            "\nc 1\n# EOF\n",
            5,
            "\"INVALID\" \"\\n\" is not a valid start token",
        ),
        (
            "# a comment\n# EOF\n",
            5,
            "\"INVALID\" \"a\" is not a valid start token",
        ),
        (
            "c{d=\"raw\nline feed\"} 1\n# EOF\n",
            5,
            "expected label value, got \"INVALID\"",
        ),
        ("c 1 NaN\n# EOF\n", 5, "invalid timestamp"),
        (
            "c 1 # {t=\"x\"} 1\n# EOF\n",
            5,
            "metric name c does not support exemplars",
        ),
        (
            "# UNIT c_seconds bytes\n# EOF\n",
            5,
            "unit not a suffix of metric \"c_seconds\"",
        ),
    ];
    for (bad_lines, line, message) in openmetrics_cases {
        let body = format!("{good}{bad_lines}");
        let error = parse_error(&body, Format::OpenMetrics);
        assert_eq!((error.line, error.message.as_str()), (line, message), "{body:?}");
    }
}

#[test]
fn text_only_features_fail_in_openmetrics() {
    let cases = [
        ("a 1\n\n# EOF\n", "\"INVALID\" \"\\n\" is not a valid start token"),
        ("a\t1\n# EOF\n", "expected value after metric, got \"INVALID\""),
        ("a{b=\"c\",} 1\n# EOF\n", "expected label name, got \"BCLOSE\""),
        (
            "a{ b=\"c\"} 1\n# EOF\n",
            "expected label name or left brace, got \"INVALID\"",
        ),
        ("# TYPE a untyped\n# EOF\n", "invalid metric type \"untyped\""),
        (
            "#\tHELP a b\n# EOF\n",
            "\"INVALID\" \"\\t\" is not a valid start token",
        ),
        (
            "# a comment\n# EOF\n",
            "\"INVALID\" \"a\" is not a valid start token",
        ),
    ];
    for (body, message) in cases {
        let text_body = body.replace("# EOF\n", "");
        let parsed_as_text = parse(&text_body, Format::PrometheusText);
        assert!(parsed_as_text.is_ok(), "{text_body:?}: {parsed_as_text:?}");
        assert_eq!(
            parse_error(body, Format::OpenMetrics).message,
            message,
            "{body:?}"
        );
    }
}

// -------------------------------------------------------------------------------------------
// Round trips.

#[derive(Debug, Clone)]
struct GeneratedSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn sample_strategy(max_timestamp_ms: i64) -> impl Strategy<Value = GeneratedSample> {
    let label = ("[a-zA-Z_][a-zA-Z0-9_]{0,12}", any::<String>());
    let value = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        (-1_000_000i64..1_000_000).prop_map(|integer| integer as f64),
        (0u32..100_000).prop_map(|thousandths| f64::from(thousandths) / 1000.0),
    ];
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,30}",
        prop::collection::vec(label, 0..6),
        value,
        prop::option::of(-max_timestamp_ms..max_timestamp_ms),
    )
        .prop_map(|(name, labels, value, timestamp_ms)| {
            let mut unique: Vec<(String, String)> = Vec::new();
            for (label_name, label_value) in labels {
                if label_name != "__name__" && unique.iter().all(|(existing, _)| *existing != label_name) {
                    unique.push((label_name, label_value));
                }
            }
            GeneratedSample {
                name,
                labels: unique,
                value,
                timestamp_ms,
            }
        })
}

fn render_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value:?}")
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders in the text format, with the given blank runs between tokens and an optional
/// trailing comma in label sets.
fn render_text(samples: &[GeneratedSample], blanks: &[String], trailing_comma: bool) -> String {
    let mut body = String::new();
    let blank = |index: usize| {
        blanks
            .get(index % blanks.len().max(1))
            .map_or(" ", String::as_str)
    };
    for (index, sample) in samples.iter().enumerate() {
        body.push_str(&sample.name);
        if !sample.labels.is_empty() || index % 2 == 1 {
            body.push('{');
            for (label_index, (name, value)) in sample.labels.iter().enumerate() {
                if label_index > 0 {
                    body.push(',');
                    body.push_str(blank(index + label_index));
                }
                write!(body, "{name}=\"{}\"", escape_label_value(value)).unwrap();
            }
            if trailing_comma && !sample.labels.is_empty() {
                body.push(',');
            }
            body.push('}');
        }
        body.push_str(blank(index));
        body.push_str(&render_value(sample.value));
        if let Some(timestamp_ms) = sample.timestamp_ms {
            body.push_str(blank(index + 1));
            write!(body, "{timestamp_ms}").unwrap();
        }
        body.push('\n');
    }
    body
}

fn render_openmetrics(samples: &[GeneratedSample]) -> String {
    let mut body = String::new();
    for sample in samples {
        body.push_str(&sample.name);
        if !sample.labels.is_empty() {
            let pairs: Vec<String> = sample
                .labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
                .collect();
            write!(body, "{{{}}}", pairs.join(",")).unwrap();
        }
        write!(body, " {}", render_value(sample.value)).unwrap();
        if let Some(timestamp_ms) = sample.timestamp_ms {
            // Whole seconds: `int64(seconds * 1000)` is exact for them.
            write!(body, " {}", timestamp_ms / 1000).unwrap();
        }
        if sample.name.ends_with("_total") {
            body.push_str(" # {trace_id=\"abc\"} 1.5 2.25");
        }
        body.push('\n');
    }
    body.push_str("# EOF\n");
    body
}

fn assert_same_samples(parsed: &[ScrapedSample<'_>], generated: &[GeneratedSample], whole_seconds: bool) {
    assert_eq!(parsed.len(), generated.len());
    for (parsed, generated) in parsed.iter().zip(generated) {
        assert_eq!(parsed.name, generated.name);
        let labels: Vec<(&str, &str)> = parsed
            .labels
            .iter()
            .map(|(name, value)| (*name, value.as_ref()))
            .collect();
        let expected_labels: Vec<(&str, &str)> = generated
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(labels, expected_labels);
        if generated.value.is_nan() {
            assert!(parsed.value.is_nan());
        } else {
            assert_eq!(
                parsed.value.to_bits(),
                generated.value.to_bits(),
                "{}",
                generated.value
            );
        }
        let expected_timestamp = generated.timestamp_ms.map(|timestamp_ms| {
            if whole_seconds {
                timestamp_ms / 1000 * 1000
            } else {
                timestamp_ms
            }
        });
        assert_eq!(parsed.timestamp_ms, expected_timestamp);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_format_round_trip(
        samples in prop::collection::vec(sample_strategy(i64::MAX), 0..12),
        blanks in prop::collection::vec("[ \t]{1,3}", 1..4),
        trailing_comma in any::<bool>(),
    ) {
        let body = render_text(&samples, &blanks, trailing_comma);
        let parsed = parse(&body, Format::PrometheusText).map_err(|error| TestCaseError::fail(format!("{body:?}: {error}")))?;
        assert_same_samples(&parsed.samples, &samples, false);
        prop_assert!(parsed.metadata.is_empty());
    }

    #[test]
    fn openmetrics_round_trip(samples in prop::collection::vec(sample_strategy(9_000_000_000_000_000), 0..12)) {
        let body = render_openmetrics(&samples);
        let parsed = parse(&body, Format::OpenMetrics).map_err(|error| TestCaseError::fail(format!("{body:?}: {error}")))?;
        assert_same_samples(&parsed.samples, &samples, true);
    }

    #[test]
    fn metadata_round_trip(
        families in prop::collection::vec(
            (
                "[a-z_][a-z0-9_]{0,8}",
                prop::sample::select(vec!["counter", "gauge", "histogram", "summary", "untyped"]),
                any::<String>(),
            ),
            0..10,
        ),
    ) {
        let mut body = String::new();
        let mut expected: Vec<FamilyMetadata> = Vec::new();
        for (name, metric_type, help) in &families {
            let escaped_help = help.replace('\\', "\\\\").replace('\n', "\\n");
            writeln!(body, "# TYPE {name} {metric_type}\n# HELP {name} {escaped_help}").unwrap();
            let metric_type = match *metric_type {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "summary" => MetricType::Summary,
                _ => MetricType::Unknown,
            };
            // Prometheus reads a help text of blanks only as empty.
            let help = if escaped_help.chars().all(|c| matches!(c, ' ' | '\t' | '\0')) {
                String::new()
            } else {
                help.clone()
            };
            match expected.iter_mut().find(|family| family.name == *name) {
                Some(family) => {
                    family.metric_type = metric_type;
                    family.help = help;
                }
                None => expected.push(metadata(name, metric_type, &help, "")),
            }
        }
        let parsed = parse(&body, Format::PrometheusText).map_err(|error| TestCaseError::fail(format!("{body:?}: {error}")))?;
        prop_assert_eq!(parsed.metadata, expected);
    }
}

// -------------------------------------------------------------------------------------------
// Throughput.

/// A synthetic node-exporter body of about `target_bytes`.
fn synthetic_node_exporter_body(target_bytes: usize) -> String {
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let mut body = String::with_capacity(target_bytes + 4096);
    let mut round = 0u64;
    while body.len() < target_bytes {
        body.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n");
        body.push_str("# TYPE node_cpu_seconds_total counter\n");
        for cpu in 0..16 {
            for mode in modes {
                let value = (round * 7919 + cpu * 104_729) as f64 / 100.0;
                writeln!(
                    body,
                    "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {value}"
                )
                .unwrap();
            }
        }
        body.push_str(
            "# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n",
        );
        body.push_str("# TYPE node_filesystem_avail_bytes gauge\n");
        for device in 0..8 {
            writeln!(
                body,
                "node_filesystem_avail_bytes{{device=\"/dev/sda{device}\",fstype=\"ext4\",mountpoint=\"/mnt/data{device}\"}} {:e}",
                4.1359314944e10 + (round * 4096 + device) as f64
            )
            .unwrap();
        }
        body.push_str("# HELP node_network_receive_bytes_total Network device statistic receive_bytes.\n");
        body.push_str("# TYPE node_network_receive_bytes_total counter\n");
        for device in ["eth0", "eth1", "lo", "docker0"] {
            writeln!(
                body,
                "node_network_receive_bytes_total{{device=\"{device}\"}} {}",
                round * 1_000_003
            )
            .unwrap();
        }
        body.push_str("# HELP http_request_duration_seconds A histogram of the request duration.\n");
        body.push_str("# TYPE http_request_duration_seconds histogram\n");
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            writeln!(
                body,
                "http_request_duration_seconds_bucket{{handler=\"/api/v1/query\",le=\"{le}\"}} {}",
                round * 13
            )
            .unwrap();
        }
        writeln!(
            body,
            "http_request_duration_seconds_sum{{handler=\"/api/v1/query\"}} {}.25",
            round
        )
        .unwrap();
        writeln!(
            body,
            "http_request_duration_seconds_count{{handler=\"/api/v1/query\"}} {}",
            round * 13
        )
        .unwrap();
        writeln!(body, "go_goroutines {round}").unwrap();
        writeln!(body, "node_load1 0.{round} 1676000000000").unwrap();
        round += 1;
    }
    body
}

/// Prints parse throughput; run with
/// `cargo test --release -p obs-scrape --test parse -- --ignored --nocapture`.
#[test]
#[ignore = "measures throughput; run in release mode"]
fn throughput() {
    let body = synthetic_node_exporter_body(2 << 20);
    let samples = parse(&body, Format::PrometheusText).unwrap().samples.len();
    let openmetrics_body = format!("{body}# EOF\n");
    for (format, body) in [
        (Format::PrometheusText, &body),
        (Format::OpenMetrics, &openmetrics_body),
    ] {
        let iterations = 50;
        let started = Instant::now();
        for _ in 0..iterations {
            let parsed = parse(body, format).unwrap();
            assert_eq!(parsed.samples.len(), samples);
        }
        let seconds = started.elapsed().as_secs_f64();
        let megabytes = (body.len() * iterations) as f64 / 1e6;
        println!(
            "{format:?}: {:.2} MB body, {samples} samples: {:.0} MB/s, {:.1} M samples/s",
            body.len() as f64 / 1e6,
            megabytes / seconds,
            (samples * iterations) as f64 / seconds / 1e6
        );
    }
}
