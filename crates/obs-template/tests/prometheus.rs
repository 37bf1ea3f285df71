//! Prometheus' `template/template_test.go` scenarios, rewritten: the same templates, inputs and
//! exact expected outputs and error messages, through [`PrometheusContext::expand`] (Prometheus'
//! `Expander.Expand`). Scenarios for `uint64` inputs, HTML mode and histograms are left out: the
//! data model has no unsigned integers or histograms, and HTML mode is not implemented.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use obs_template::{PrometheusContext, Sample, Value, expand_alert_template};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// The context of Prometheus' test: external URL `http://testhost:9090/path/prefix`, evaluation
/// time 0, and a query function returning `samples`.
fn context(samples: Vec<Sample>) -> PrometheusContext {
    PrometheusContext {
        external_url: "http://testhost:9090/path/prefix".to_owned(),
        timestamp_ms: 0,
        query: Some(Arc::new(move |_query: &str| Ok(samples.clone()))),
    }
}

fn expand_with(text: &str, data: &Value, samples: Vec<Sample>) -> Result<String, String> {
    context(samples)
        .expand("test", text, data)
        .map_err(|error| error.to_string())
}

fn expand(text: &str, data: &Value) -> Result<String, String> {
    expand_with(text, data, Vec::new())
}

fn ok(text: &str, data: &Value, expected: &str) {
    assert_eq!(expand(text, data), Ok(expected.to_owned()), "template {text:?}");
}

fn fails(text: &str, data: &Value, expected: &str) {
    assert_eq!(expand(text, data), Err(expected.to_owned()), "template {text:?}");
}

fn floats(values: &[f64]) -> Value {
    Value::List(values.iter().copied().map(Value::Float).collect())
}

fn ints(values: &[i64]) -> Value {
    Value::List(values.iter().copied().map(Value::Int).collect())
}

fn strings(values: &[&str]) -> Value {
    Value::List(values.iter().map(|value| Value::from(*value)).collect())
}

fn metric(instance: &str, value: f64) -> Sample {
    Sample {
        labels: labels(&[("__name__", "metric"), ("instance", instance)]),
        value,
    }
}

#[test]
fn plain_text_and_constants() {
    ok("plain text", &Value::Nil, "plain text");
    ok("{{ 1 }}", &Value::Nil, "1");
    ok("{{ \"<b>\" }}", &Value::Nil, "<b>");
    fails(
        "{{\u{a0}}}",
        &Value::Nil,
        "error parsing template test: template: test:1: unrecognized character in action: U+00A0",
    );
    fails(
        "{{",
        &Value::Nil,
        "error parsing template test: template: test:1: unclosed action",
    );
}

#[test]
fn missing_values() {
    ok("{{ .Foo }}", &Value::Nil, "<no value>");
}

#[test]
fn args_pass_several_values_to_a_template() {
    ok(
        "{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1 \"2\")}}",
        &Value::Nil,
        "1 2",
    );
}

#[test]
fn query_results() {
    let sample = |labels_: &[(&str, &str)], value| Sample {
        labels: labels(labels_),
        value,
    };
    assert_eq!(
        expand_with(
            "{{ query \"1.5\" | first | value }}",
            &Value::Nil,
            vec![sample(&[], 1.5)]
        ),
        Ok("1.5".to_owned())
    );
    let one = vec![metric("a", 11.0)];
    assert_eq!(
        expand_with(
            "{{ query \"metric{instance='a'}\" | first | value }}",
            &Value::Nil,
            one.clone()
        ),
        Ok("11".to_owned())
    );
    assert_eq!(
        expand_with(
            "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
            &Value::Nil,
            one.clone()
        ),
        Ok("a".to_owned())
    );
    assert_eq!(
        expand_with(
            "{{ query \"metric{__value__='a'}\" | first | strvalue }}",
            &Value::Nil,
            vec![sample(&[("__name__", "metric"), ("__value__", "a")], 11.0)]
        ),
        Ok("a".to_owned())
    );
    assert_eq!(
        expand_with(
            "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}",
            &Value::Nil,
            one.clone()
        ),
        Ok(String::new())
    );
    assert_eq!(
        expand_with(
            "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}",
            &Value::Nil,
            one
        ),
        Ok(String::new())
    );
    assert_eq!(
        expand_with(
            "{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}",
            &Value::Nil,
            vec![metric("b", 21.0), metric("a", 11.0)]
        ),
        Ok("a:11: b:21: ".to_owned())
    );
    assert_eq!(
        expand_with("{{ query \"missing\" | first }}", &Value::Nil, vec![]),
        Err("error executing template test: template: test:1:21: executing \"test\" at <first>: error calling first: first() called on vector with no elements".to_owned())
    );
    assert_eq!(
        expand_with("{{ (query \"missing\").banana }}", &Value::Nil, vec![]),
        Err("error executing template test: template: test:1:10: executing \"test\" at <\"missing\">: can't evaluate field banana in type template.queryResult".to_owned())
    );
}

#[test]
fn strip_port_and_strip_domain() {
    let cases = [
        ("foo.example.com", "foo.example.com", "foo"),
        ("foo.example.com:12345", "foo.example.com", "foo:12345"),
        ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
        ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
        ("[2001:0DB8::1]:12345", "2001:0DB8::1", "[2001:0DB8::1]:12345"),
        (
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
        ),
    ];
    for (input, without_port, without_domain) in cases {
        ok(
            &format!("{{{{ \"{input}\" | stripPort }}}}"),
            &Value::Nil,
            without_port,
        );
        ok(
            &format!("{{{{ \"{input}\" | stripDomain }}}}"),
            &Value::Nil,
            without_domain,
        );
    }
}

#[test]
fn regex_functions_and_case() {
    ok("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", &Value::Nil, "xa");
    ok("{{ \"aa bb CC\" | title }}", &Value::Nil, "Aa Bb CC");
    ok("{{ \"aa bb CC\" | toUpper }}", &Value::Nil, "AA BB CC");
    ok("{{ \"aA bB CC\" | toLower }}", &Value::Nil, "aa bb cc");
    ok(
        "{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}",
        &Value::Nil,
        "true false",
    );
}

#[test]
fn links_and_urls() {
    ok(
        "{{ graphLink \"up\" }}",
        &Value::Nil,
        "/graph?g0.expr=up&g0.tab=0",
    );
    ok(
        "{{ tableLink \"up\" }}",
        &Value::Nil,
        "/graph?g0.expr=up&g0.tab=1",
    );
    ok("{{ pathPrefix }}", &Value::Nil, "/path/prefix");
    ok(
        "{{ externalURL }}",
        &Value::Nil,
        "http://testhost:9090/path/prefix",
    );
    ok(
        "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
        &Value::Nil,
        "3720.01",
    );
}

#[test]
fn humanize() {
    let text = "{{ range . }}{{ humanize . }}:{{ end }}";
    ok(text, &floats(&[0.0, 1.0, 1234567.0, 0.12]), "0:1:1.235M:120m:");
    ok(
        text,
        &strings(&["0.0", "1.0", "1234567.0", ".12"]),
        "0:1:1.235M:120m:",
    );
    ok(
        text,
        &ints(&[0, -1, 1, 1234567, i64::MAX]),
        "0:-1:1:1.235M:9.223E:",
    );
    fails(
        "{{ humanize \"one\" }}",
        &Value::Nil,
        "error executing template test: template: test:1:3: executing \"test\" at <humanize \"one\">: error calling humanize: strconv.ParseFloat: parsing \"one\": invalid syntax",
    );
}

#[test]
fn humanize_1024() {
    let text = "{{ range . }}{{ humanize1024 . }}:{{ end }}";
    ok(text, &floats(&[0.0, 1.0, 1048576.0, 0.12]), "0:1:1Mi:0.12:");
    ok(
        text,
        &strings(&["0.0", "1.0", "1048576.0", ".12"]),
        "0:1:1Mi:0.12:",
    );
    ok(text, &ints(&[0, -1, 1, 1234567, i64::MAX]), "0:-1:1:1.177Mi:8Ei:");
    fails(
        "{{ humanize1024 \"one\" }}",
        &Value::Nil,
        "error executing template test: template: test:1:3: executing \"test\" at <humanize1024 \"one\">: error calling humanize1024: strconv.ParseFloat: parsing \"one\": invalid syntax",
    );
}

#[test]
fn humanize_duration() {
    let text = "{{ range . }}{{ humanizeDuration . }}:{{ end }}";
    ok(
        text,
        &floats(&[
            0.0,
            1.0,
            60.0,
            3600.0,
            86400.0,
            86400.0 + 3600.0,
            -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
            899.99,
        ]),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
    );
    ok(
        text,
        &strings(&["0", "1", "60", "3600", "86400"]),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:",
    );
    ok(
        text,
        &floats(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]),
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
    );
    ok(
        text,
        &strings(&[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]),
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
    );
    ok(text, &ints(&[0, -1, 1, 1234567]), "0s:-1s:1s:14d 6h 56m 7s:");
    fails(
        "{{ humanizeDuration \"one\" }}",
        &Value::Nil,
        "error executing template test: template: test:1:3: executing \"test\" at <humanizeDuration \"one\">: error calling humanizeDuration: strconv.ParseFloat: parsing \"one\": invalid syntax",
    );
}

#[test]
fn humanize_infinities_and_nan() {
    let text = "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}";
    let expected = "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:";
    ok(
        text,
        &floats(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]),
        expected,
    );
    ok(text, &strings(&["+Inf", "-Inf", "NaN"]), expected);
}

#[test]
fn humanize_percentage() {
    ok(
        "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
        &Value::Nil,
        "-22.22%:0%:12.35%:123.5%",
    );
    ok(
        "{{ range . }}{{ humanizePercentage . }}:{{ end }}",
        &ints(&[0, -1, 1, 1234567, i64::MAX]),
        "0%:-100%:100%:1.235e+08%:9.223e+20%:",
    );
    ok(
        "{{ \"-0.22222\" | humanizePercentage }}:{{ \"0.0\" | humanizePercentage }}:{{ \"0.1234567\" | humanizePercentage }}:{{ \"1.23456\" | humanizePercentage }}",
        &Value::Nil,
        "-22.22%:0%:12.35%:123.5%",
    );
    fails(
        "{{ \"one\" | humanizePercentage }}",
        &Value::Nil,
        "error executing template test: template: test:1:11: executing \"test\" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing \"one\": invalid syntax",
    );
}

#[test]
fn humanize_timestamp() {
    ok(
        "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
        &ints(&[0, -1, 1, 1234567, 9223372036]),
        "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
    );
    fails(
        "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
        &ints(&[i64::MIN, i64::MAX]),
        "error executing template test: template: test:1:16: executing \"test\" at <humanizeTimestamp .>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64",
    );
    ok(
        "{{ 1435065584.128 | humanizeTimestamp }}",
        &Value::Nil,
        "2015-06-23 13:19:44.128 +0000 UTC",
    );
    ok(
        "{{ \"1435065584.128\" | humanizeTimestamp }}",
        &Value::Nil,
        "2015-06-23 13:19:44.128 +0000 UTC",
    );
}

#[test]
fn times_and_durations() {
    ok(
        "{{ (1435065584.128 | toTime).Format \"2006\" }}",
        &Value::Nil,
        "2015",
    );
    ok(
        "{{ (\"1435065584.128\" | toTime).Format \"2006\" }}",
        &Value::Nil,
        "2015",
    );
    ok("{{ (1800 | toDuration).String }}", &Value::Nil, "30m0s");
    ok("{{ (\"1800\" | toDuration).String }}", &Value::Nil, "30m0s");
    let at = PrometheusContext {
        timestamp_ms: 1_435_065_584_128,
        ..context(Vec::new())
    };
    let expand_at = |text: &str| at.expand("test", text, &Value::Nil);
    assert_eq!(expand_at("{{ now }}"), Ok("1.435065584128e+09".to_owned()));
    assert_eq!(
        expand_at("{{ (now | toTime).Format \"Mon Jan 2 15:04:05 2006\" }}"),
        Ok("Tue Jun 23 13:19:44 2015".to_owned())
    );
    assert_eq!(
        expand_at("{{ (\"-30m\" | parseDuration | toDuration | (now | toTime).Add).UnixMilli }}"),
        Ok("1435063784128".to_owned())
    );
}

#[test]
fn alert_rule_expansion() {
    let alert_labels = labels(&[
        ("alertname", "HighErrorRate"),
        ("instance", "api-1.example.com:8080"),
        ("job", "api"),
    ]);
    let external = labels(&[("cluster", "eu-1")]);
    let expand = |text: &str| {
        expand_alert_template(
            text,
            &alert_labels,
            &external,
            "http://prometheus.example:9090",
            0.0523,
        )
    };
    assert_eq!(
        expand(
            "{{ $labels.job }}/{{ $labels.instance | stripDomain }} in {{ $externalLabels.cluster }}: {{ $value | humanizePercentage }} errors"
        ),
        Ok("api/api-1:8080 in eu-1: 5.23% errors".to_owned())
    );
    // A missing label is "" in a label set (`map[string]string` under `missingkey=zero`).
    assert_eq!(expand("[{{ $labels.nope }}]"), Ok("[]".to_owned()));
    assert_eq!(expand("{{ $value }}"), Ok("0.0523".to_owned()));
    assert_eq!(
        expand("{{ $externalURL }}/alerts"),
        Ok("http://prometheus.example:9090/alerts".to_owned())
    );
    assert_eq!(
        expand("{{ if gt $value 0.05 }}page{{ else }}ticket{{ end }}"),
        Ok("page".to_owned())
    );
    // Go does not compare float64 with int: Prometheus users meet this error too.
    let error = expand("{{ if gt $value 1 }}x{{ end }}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "error executing template __alert: template: __alert:1:118: executing \"__alert\" at <gt $value 1>: error calling gt: incompatible types for comparison"
    );
    // The alert data is a struct: an unknown field is an error, as in Prometheus.
    assert_eq!(
        expand("{{ .Nope }}").unwrap_err().to_string(),
        "error executing template __alert: template: __alert:1:115: executing \"__alert\" at <.Nope>: can't evaluate field Nope in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }"
    );
    assert_eq!(
        expand("{{ nope }}").unwrap_err().to_string(),
        "error parsing template __alert: template: __alert:1: function \"nope\" not defined"
    );
}

#[test]
fn alert_rule_expansion_is_named_after_the_rule() {
    let error = context(Vec::new())
        .expand_alert(
            "DiskFull",
            "{{ .Labels.x.y }}",
            &labels(&[("x", "1")]),
            &BTreeMap::new(),
            1.0,
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "error executing template __alert_DiskFull: template: __alert_DiskFull:1:122: executing \"__alert_DiskFull\" at <.Labels.x.y>: can't evaluate field y in type string"
    );
}
