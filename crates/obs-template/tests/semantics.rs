//! Go `text/template` semantics construct by construct, the limits that keep hostile templates
//! harmless, the data model for Alertmanager-style data, and a no-panic property over arbitrary
//! input. Outputs were checked against Go (see `go_golden.rs` for the recorded corpus).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use obs_template::{ArgType, Functions, Limits, MissingKey, Object, Record, Template, TemplateError, Value};
use proptest::prelude::*;

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn data() -> Value {
    map(vec![
        ("name", Value::from("world")),
        ("count", Value::Int(3)),
        ("ratio", Value::Float(0.25)),
        ("empty", Value::from("")),
        ("zero", Value::Int(0)),
        (
            "items",
            Value::List(vec![Value::from("a"), Value::from("b"), Value::from("c")]),
        ),
        ("none", Value::List(vec![])),
        (
            "labels",
            Value::StringMap(BTreeMap::from([
                ("job".to_owned(), "api".to_owned()),
                ("env".to_owned(), "prod".to_owned()),
            ])),
        ),
        (
            "nested",
            map(vec![("inner", map(vec![("value", Value::from("deep"))]))]),
        ),
    ])
}

fn render(text: &str) -> Result<String, String> {
    Template::parse("t", text)
        .and_then(|template| template.execute(&data()))
        .map_err(|error| error.to_string())
}

fn ok(text: &str, expected: &str) {
    assert_eq!(render(text), Ok(expected.to_owned()), "template {text:?}");
}

fn fails(text: &str, expected: &str) {
    assert_eq!(render(text), Err(expected.to_owned()), "template {text:?}");
}

#[test]
fn text_actions_and_trim_markers() {
    ok("Hello, {{ .name }}!", "Hello, world!");
    ok("a  {{- .count -}}  b", "a3b");
    ok("a \n\t {{- .count }} \n b", "a3 \n b");
    ok("a {{ .count -}} \n\n b", "a 3b");
    // A dash without a space is a negative number, not a trim marker.
    ok("a {{-1}} b", "a -1 b");
    ok("a {{- /* a comment */ -}} b", "ab");
    ok("a{{/* a comment */}}b", "ab");
    fails("{{/* open", "template: t:1: unclosed comment");
    fails(
        "{{/* c */ .name }}",
        "template: t:1: comment ends before closing delimiter",
    );
}

#[test]
fn fields_and_missing_keys() {
    ok("{{ .nested.inner.value }}", "deep");
    ok("{{ .labels.job }}", "api");
    ok("{{ .nope }}|{{ .nested.nope.deeper }}", "<no value>|<no value>");
    ok("{{ .labels.nope }}", "<no value>");
    let zero = |text: &str| {
        Template::parse("t", text)
            .unwrap()
            .with_missing_key(MissingKey::Zero)
            .execute(&data())
            .unwrap()
    };
    // The zero value of map[string]string's element is "", of map[string]interface{}'s a nil
    // interface, which still prints as <no value>.
    assert_eq!(zero("[{{ .labels.nope }}]"), "[]");
    assert_eq!(zero("[{{ .nope }}]"), "[<no value>]");
    let error = Template::parse("t", "{{ .labels.nope }}")
        .unwrap()
        .with_missing_key(MissingKey::Error)
        .execute(&data())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "template: t:1:10: executing \"t\" at <.labels.nope>: map has no entry for key \"nope\""
    );
    fails(
        "{{ .name.first }}",
        "template: t:1:8: executing \"t\" at <.name.first>: can't evaluate field first in type interface {}",
    );
    fails(
        "{{ .name 1 }}",
        "template: t:1:3: executing \"t\" at <.name>: name is not a method but has arguments",
    );
}

#[test]
fn variables_and_scope() {
    ok("{{ $x := .count }}{{ $x }}", "3");
    ok("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2");
    ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2");
    ok(
        "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}",
        "21",
    );
    ok("{{ with .nested }}{{ $.name }}{{ end }}", "world");
    fails("{{ $nope }}", "template: t:1: undefined variable \"$nope\"");
    fails(
        "{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}",
        "template: t:1: undefined variable \"$x\"",
    );
    fails(
        "{{ $x, $y := 1 }}",
        "template: t:1: too many declarations in command",
    );
}

#[test]
fn if_else_and_truthiness() {
    // False: false, 0, "", empty list/map, nil, missing.
    ok(
        "{{ if false }}1{{ end }}{{ if .zero }}2{{ end }}{{ if .empty }}3{{ end }}{{ if .none }}4{{ end }}{{ if .nope }}5{{ end }}{{ if 0.0 }}6{{ end }}",
        "",
    );
    ok(
        "{{ if true }}1{{ end }}{{ if .count }}2{{ end }}{{ if .name }}3{{ end }}{{ if .items }}4{{ end }}{{ if .labels }}5{{ end }}{{ if .ratio }}6{{ end }}",
        "123456",
    );
    ok(
        "{{ if .zero }}a{{ else if .empty }}b{{ else if .count }}c{{ else }}d{{ end }}",
        "c",
    );
    ok("{{ if .zero }}a{{ else }}b{{ end }}", "b");
    ok("{{ with .nested.inner }}{{ .value }}{{ end }}", "deep");
    ok("{{ with .nope }}x{{ else }}none{{ end }}", "none");
    ok("{{ with $v := .name }}{{ $v }}={{ . }}{{ end }}", "world=world");
    fails("{{ if }}{{ end }}", "template: t:1: missing value for if");
    fails("{{ if 1 }}x", "template: t:1: unexpected EOF");
    fails("{{ end }}", "template: t:1: unexpected {{end}}");
}

#[test]
fn range_over_lists_maps_and_integers() {
    ok("{{ range .items }}[{{ . }}]{{ end }}", "[a][b][c]");
    ok(
        "{{ range $i, $e := .items }}{{ $i }}={{ $e }} {{ end }}",
        "0=a 1=b 2=c ",
    );
    // Maps are visited in key order.
    ok(
        "{{ range $k, $v := .labels }}{{ $k }}={{ $v }} {{ end }}",
        "env=prod job=api ",
    );
    ok("{{ range .none }}x{{ else }}empty{{ end }}", "empty");
    ok("{{ range .nope }}x{{ else }}nothing{{ end }}", "nothing");
    ok(
        "{{ range .items }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
        "a",
    );
    ok(
        "{{ range .items }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        "ac",
    );
    // Go 1.22+: range over an integer.
    ok("{{ range $i := 3 }}{{ $i }}{{ end }}", "012");
    ok("{{ range .count }}.{{ end }}", "...");
    fails(
        "{{ range .name }}{{ end }}",
        "template: t:1:9: executing \"t\" at <.name>: range can't iterate over world",
    );
    fails("{{ break }}", "template: t:1: {{break}} outside {{range}}");
}

#[test]
fn define_template_and_block() {
    ok(
        "{{ define \"item\" }}<{{ . }}>{{ end }}{{ range .items }}{{ template \"item\" . }}{{ end }}",
        "<a><b><c>",
    );
    ok("{{ block \"title\" .name }}Hi {{ . }}{{ end }}", "Hi world");
    let template = Template::parse("page", "{{ define \"header\" }}H:{{ .name }}{{ end }}body").unwrap();
    assert_eq!(template.template_names().collect::<Vec<_>>(), ["header", "page"]);
    assert_eq!(template.execute(&data()).unwrap(), "body");
    assert_eq!(template.execute_template("header", &data()).unwrap(), "H:world");
    assert_eq!(
        template
            .execute_template("nope", &data())
            .unwrap_err()
            .to_string(),
        "template: no template \"nope\" associated with template \"page\""
    );
    fails(
        "{{ template \"nope\" }}",
        "template: t:1:12: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined",
    );
    fails(
        "{{ define \"x\" }}a{{ end }}{{ define \"x\" }}b{{ end }}",
        "template: t:1: template: multiple definition of template \"x\"",
    );
}

#[test]
fn literals() {
    ok(
        "{{ 1 }} {{ 1.0 }} {{ 1e3 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 'a' }} {{ -2.5 }} {{ true }}",
        "1 1 1000 31 15 5 1000 97 -2.5 true",
    );
    ok(
        "{{ \"tab\\there\" }}|{{ `raw\\n` }}|{{ \"\\u00e9\" }}",
        "tab\there|raw\\n|é",
    );
    fails(
        "{{ nil }}",
        "template: t:1:3: executing \"t\" at <nil>: nil is not a command",
    );
    fails("{{ 1x }}", "template: t:1: bad number syntax: \"1x\"");
    fails("{{ \"open }}", "template: t:1: unterminated quoted string");
    fails(
        "{{ 1+2i }}",
        "template: t:1: complex constant \"1+2i\" is not supported",
    );
}

#[test]
fn builtins() {
    ok(
        "{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 3 }} {{ not .empty }}",
        "0 2  3 true",
    );
    // and/or stop evaluating at the first deciding argument, as in Go 1.18+.
    ok("{{ or 1 (index .items 99) }}", "1");
    ok("{{ len .items }} {{ len .labels }} {{ len .name }}", "3 2 5");
    ok(
        "{{ index .items 1 }} {{ index .labels \"job\" }} {{ index .nested \"inner\" \"value\" }}",
        "b api deep",
    );
    ok("{{ slice .items 1 }} {{ slice .name 0 3 }}", "[b c] wor");
    ok(
        "{{ print 1 2 \"a\" \"b\" 3 }}|{{ println \"x\" 1 }}|",
        "1 2ab3|x 1\n|",
    );
    ok(
        "{{ printf \"%s has %d items (%.1f%%) %v %q %5.2f|%-4s|%x\" .name .count 12.345 .items .name .ratio \"ab\" 255 }}",
        "world has 3 items (12.3%) [a b c] \"world\"  0.25|ab  |ff",
    );
    ok(
        "{{ eq .count 3 }} {{ eq .name \"x\" \"world\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}",
        "true true true true true true false",
    );
    ok(
        "{{ html \"<a href='x'>&</a>\" }} {{ js \"it's <b>\" }} {{ urlquery \"a b&c\" }}",
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; it\\'s \\u003Cb\\u003E a+b%26c",
    );
    fails(
        "{{ eq .ratio 1 }}",
        "template: t:1:3: executing \"t\" at <eq .ratio 1>: error calling eq: incompatible types for comparison",
    );
    fails(
        "{{ index .items 5 }}",
        "template: t:1:3: executing \"t\" at <index .items 5>: error calling index: index out of range: 5",
    );
    fails(
        "{{ len }}",
        "template: t:1:3: executing \"t\" at <len>: wrong number of args for len: want 1 got 0",
    );
}

#[test]
fn pipelines_and_parentheses() {
    ok("{{ .count | printf \"%03d\" }}", "003");
    ok("{{ printf \"%s-%s\" .name (printf \"%d\" .count) }}", "world-3");
    ok("{{ .items | len | printf \"%d items\" }}", "3 items");
    fails(
        "{{ .name | 1 }}",
        "template: t:1: non executable command in pipeline stage 2",
    );
    fails(
        "{{ 1 | .name }}",
        "template: t:1:7: executing \"t\" at <.name>: name is not a method but has arguments",
    );
}

#[test]
fn error_messages_say_what_and_where() {
    fails("{{ nope 1 }}", "template: t:1: function \"nope\" not defined");
    fails(
        "line one\n{{ .name\n",
        "template: t:3: unclosed action started at t:2",
    );
    fails(
        "line one\n  {{ printf \"%d\" .count | toUpper }}",
        "template: t:2: function \"toUpper\" not defined",
    );
    fails(
        "line one\n  {{ index .name 1 2 }}",
        "template: t:2:5: executing \"t\" at <index .name 1 2>: error calling index: can't index item of type uint8",
    );
    fails(
        "{{ define \"x\" }}\n  {{ .name.a }}{{ end }}{{ template \"x\" . }}",
        "template: t:2:10: executing \"x\" at <.name.a>: can't evaluate field a in type interface {}",
    );
}

#[test]
fn registered_functions_are_type_checked_like_go() {
    let mut functions = Functions::new();
    functions.insert("double", &[ArgType::Int], None, |args| match args[0] {
        Value::Int(i) => Ok(Value::Int(i * 2)),
        _ => Err("not an int".to_owned()),
    });
    functions.insert("fail", &[], None, |_| Err("it broke".to_owned()));
    let render = |text: &str| {
        Template::parse_with_functions("t", text, functions.clone())
            .and_then(|template| template.execute(&data()))
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        render("{{ double 21 }} {{ .count | double }}"),
        Ok("42 6".to_owned())
    );
    assert_eq!(
        render("{{ double \"x\" }}"),
        Err("template: t:1:10: executing \"t\" at <\"x\">: expected integer; found \"x\"".to_owned())
    );
    assert_eq!(
        render("{{ double .ratio }}"),
        Err(
            "template: t:1:10: executing \"t\" at <.ratio>: wrong type for value; expected int; got float64"
                .to_owned()
        )
    );
    assert_eq!(
        render("{{ double .nope }}"),
        Err("template: t:1:10: executing \"t\" at <.nope>: invalid value; expected int".to_owned())
    );
    assert_eq!(
        render("{{ fail }}"),
        Err("template: t:1:3: executing \"t\" at <fail>: error calling fail: it broke".to_owned())
    );
}

/// Alertmanager's `Alerts`: a list you can range over, with `Firing` and `Resolved` methods.
#[derive(Debug)]
struct Alerts {
    alerts: Value,
}

impl Object for Alerts {
    fn type_name(&self) -> &str {
        "template.Alerts"
    }

    fn has_method(&self, name: &str) -> bool {
        matches!(name, "Firing" | "Resolved")
    }

    fn method(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        let wanted = match name {
            "Firing" => "firing",
            "Resolved" => "resolved",
            _ => return None,
        };
        let Value::List(alerts) = &self.alerts else {
            return Some(Ok(Value::List(vec![])));
        };
        let selected = alerts
            .iter()
            .filter(|alert| match alert {
                Value::Object(alert) => alert.field("Status") == Some(Value::from(wanted)),
                _ => false,
            })
            .cloned()
            .collect();
        Some(Ok(Value::List(selected)))
    }

    fn underlying(&self) -> Option<&Value> {
        Some(&self.alerts)
    }

    fn display(&self) -> String {
        "[alerts]".to_owned()
    }
}

fn alert(status: &str, instance: &str) -> Value {
    Value::object(Record::new(
        "template.Alert",
        vec![
            ("Status".to_owned(), Value::from(status)),
            (
                "Labels".to_owned(),
                Value::StringMap(BTreeMap::from([("instance".to_owned(), instance.to_owned())])),
            ),
        ],
    ))
}

#[test]
fn objects_model_alertmanager_data() {
    let notification = Value::object(Record::new(
        "template.Data",
        vec![
            ("Status".to_owned(), Value::from("firing")),
            (
                "Alerts".to_owned(),
                Value::object(Alerts {
                    alerts: Value::List(vec![
                        alert("firing", "a:1"),
                        alert("resolved", "b:2"),
                        alert("firing", "c:3"),
                    ]),
                }),
            ),
        ],
    ));
    let template = Template::parse(
        "slack",
        "[{{ .Status | printf \"%s\" }}:{{ .Alerts.Firing | len }}/{{ len .Alerts }}]{{ range .Alerts.Firing }} {{ .Labels.instance }}{{ end }}{{ range .Alerts }}{{ if eq .Status \"resolved\" }} fixed:{{ .Labels.instance }}{{ end }}{{ end }}",
    )
    .unwrap();
    assert_eq!(
        template.execute(&notification).unwrap(),
        "[firing:2/3] a:1 c:3 fixed:b:2"
    );
    let error = Template::parse("slack", "{{ .Nope }}")
        .unwrap()
        .execute(&notification)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "template: slack:1:3: executing \"slack\" at <.Nope>: can't evaluate field Nope in type template.Data"
    );
}

fn limited(text: &str, limits: Limits) -> Result<String, TemplateError> {
    Template::parse("t", text)?.with_limits(limits).execute(&data())
}

#[test]
fn output_is_capped() {
    let limits = Limits {
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let error = limited("{{ range 2000 }}x{{ end }}", limits).unwrap_err();
    assert!(matches!(error, TemplateError::LimitExceeded(_)), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("output exceeds the limit of 1000 bytes"),
        "{error}"
    );
    // A function result is capped too, even if never printed.
    let error = limited("{{ $x := printf \"%5000d\" 1 }}", limits).unwrap_err();
    assert!(matches!(error, TemplateError::LimitExceeded(_)), "{error}");
}

#[test]
fn runaway_recursion_and_loops_stop() {
    // Unbounded recursion hits the depth limit.
    let error = limited(
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
        Limits::default(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("exceeded maximum template depth (100)"),
        "{error}"
    );
    // Exponential recursion within the depth limit hits the step budget.
    let error = limited(
        "{{ define \"r\" }}{{ if lt (len .) 25 }}{{ template \"r\" (printf \"%sx\" .) }}{{ template \"r\" (printf \"%sy\" .) }}{{ end }}{{ end }}{{ template \"r\" \"\" }}",
        Limits::default(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("execution exceeds the limit of 1000000 steps"),
        "{error}"
    );
    let error = limited("{{ range 1000000000000 }}{{ end }}", Limits::default()).unwrap_err();
    assert!(matches!(error, TemplateError::LimitExceeded(_)), "{error}");
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(
        render(&parens),
        Err("template: t:1: max expression depth exceeded".to_owned())
    );
    let ifs = format!("{}x{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
    assert_eq!(
        render(&ifs),
        Err("template: t:1: max expression depth exceeded".to_owned())
    );
    // The deepest nesting the parser accepts executes within 1 MiB of stack, even unoptimised
    // (Tokio's and std's threads have 2 MiB).
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let ifs = format!("{}x{}", "{{ if 1 }}".repeat(49), "{{ end }}".repeat(49));
            let parens = format!("{{{{ {}1{} }}}}", "(".repeat(98), ")".repeat(98));
            (render(&ifs), render(&parens))
        })
        .unwrap();
    let (ifs, parens) = handle.join().unwrap();
    assert_eq!(ifs, Ok("x".to_owned()));
    assert_eq!(parens, Ok("1".to_owned()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Arbitrary text, biased towards template syntax, never panics when parsed or executed.
    #[test]
    fn arbitrary_text_never_panics(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just("{{".to_owned()), Just("}}".to_owned()), Just("{{- ".to_owned()),
                Just(" -}}".to_owned()), Just("(".to_owned()), Just(")".to_owned()),
                Just("|".to_owned()), Just("$x".to_owned()), Just(":=".to_owned()),
                Just("=".to_owned()), Just(".items".to_owned()), Just(".labels.job".to_owned()),
                Just(" ".to_owned()), Just("\n".to_owned()), Just("if ".to_owned()),
                Just("else ".to_owned()), Just("end".to_owned()), Just("range ".to_owned()),
                Just("with ".to_owned()), Just("define \"d\"".to_owned()),
                Just("template \"d\" .".to_owned()), Just("break".to_owned()),
                Just("printf \"%5.2f|%x|%v\" ".to_owned()), Just("index ".to_owned()),
                Just("len ".to_owned()), Just("eq ".to_owned()), Just("1".to_owned()),
                Just("-2.5e3".to_owned()), Just("'x'".to_owned()), Just("\"s\"".to_owned()),
                Just("`r`".to_owned()), Just("nil".to_owned()), Just("/*".to_owned()),
                Just("*/".to_owned()), Just(".".to_owned()), Just("$".to_owned()),
                Just(",".to_owned()), Just("humanize ".to_owned()), Just("0x".to_owned()),
                "\\PC{0,3}",
            ],
            0..40,
        )
    ) {
        let text: String = pieces.concat();
        let context = obs_template::PrometheusContext::default();
        if let Ok(template) = Template::parse_with_functions("fuzz", &text, context.functions()) {
            let limits = Limits { max_output_bytes: 64 * 1024, max_depth: 100, max_steps: 100_000 };
            let _ = template.with_limits(limits).execute(&data());
        }
        let _ = obs_template::expand_alert_template(&text, &BTreeMap::new(), &BTreeMap::new(), "", 1.5);
    }

    /// Arbitrary bytes as printf formats never panic.
    #[test]
    fn arbitrary_printf_formats_never_panic(format in "\\PC{0,40}", number in any::<f64>(), int in any::<i64>()) {
        let text = format!("{{{{ printf {} {number:?} {int} \"s\" }}}}", obs_template_quote(&format));
        if let Ok(template) = Template::parse("fmt", &text) {
            let _ = template.execute(&Value::Nil);
        }
    }
}

/// A Go raw-string literal holding `s` (backquotes dropped).
fn obs_template_quote(s: &str) -> String {
    format!("`{}`", s.replace('`', ""))
}
