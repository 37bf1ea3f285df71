//! The parser against tables of queries: Tempo's test suites and documentation, the shapes
//! Grafana's search builder, Explore and Traces Drilldown send, and edge cases. Each valid
//! query must print its canonical form, and that form must parse back to the same tree; each
//! invalid one must fail with Tempo's message at the offending position. No input,
//! truncated, mutated or random, may panic.

use obs_traceql::{
    AggregateOp, ArithmeticOp, Attribute, AttributeScope, BinaryOp, CompareOp, ConditionTest, Field,
    FieldExpr, Intrinsic, MetricsExpr, MetricsFunction, MetricsOp, PipelineElement, Query, RootExpr,
    ScalarExpr, SecondStage, SpanKind, SpansetExpr, SpansetOp, Static, Status, UnaryOp, parse,
};

/// Valid queries and their canonical form.
const VALID: &[(&str, &str)] = &[
    (r#"{}"#, r#"{}"#),
    (r#"{ }"#, r#"{}"#),
    (r#"{                    }"#, r#"{}"#),
    (r#"{ true }"#, r#"{}"#),
    (r#"{ false }"#, r#"{ false }"#),
    (
        r#"{resource.service.name="agixt" && name="tool-call" && status=error && duration>100ms}"#,
        r#"{ resource.service.name = "agixt" && name = "tool-call" && status = error && duration > 100ms }"#,
    ),
    (
        r#"{resource.service.name=~"a|b"}"#,
        r#"{ resource.service.name =~ "a|b" }"#,
    ),
    (r#"{span.run_id="r-123"}"#, r#"{ span.run_id = "r-123" }"#),
    (
        r#"{resource.service.name="agixt"}"#,
        r#"{ resource.service.name = "agixt" }"#,
    ),
    (r#"{name="tool-call"}"#, r#"{ name = "tool-call" }"#),
    (r#"{status=error}"#, r#"{ status = error }"#),
    (r#"{duration>100ms}"#, r#"{ duration > 100ms }"#),
    (r#"{traceDuration>1s}"#, r#"{ traceDuration > 1s }"#),
    (r#"{duration<5s}"#, r#"{ duration < 5s }"#),
    (r#"{duration>=1.5s}"#, r#"{ duration >= 1s500ms }"#),
    (r#"{duration<=2m}"#, r#"{ duration <= 2m }"#),
    (r#"{kind=server}"#, r#"{ kind = server }"#),
    (
        r#"{resource.service.name="agixt" && span.http.method="GET"}"#,
        r#"{ resource.service.name = "agixt" && span.http.method = "GET" }"#,
    ),
    (
        r#"{resource.service.name=~"agixt|api" && name=~"tool-.*"}"#,
        r#"{ resource.service.name =~ "agixt|api" && name =~ "tool-.*" }"#,
    ),
    (r#"{.foo="bar"}"#, r#"{ .foo = "bar" }"#),
    (r#"{.http.status_code=500}"#, r#"{ .http.status_code = 500 }"#),
    (
        r#"{span.http.status_code>=400}"#,
        r#"{ span.http.status_code >= 400 }"#,
    ),
    (
        r#"{resource.service.name!="agixt"}"#,
        r#"{ resource.service.name != "agixt" }"#,
    ),
    (r#"{name!~"health.*"}"#, r#"{ name !~ "health.*" }"#),
    (r#"{statusMessage="boom"}"#, r#"{ statusMessage = "boom" }"#),
    (r#"{ rootServiceName = "foo" }"#, r#"{ rootServiceName = "foo" }"#),
    (r#"{ rootName != "foo" }"#, r#"{ rootName != "foo" }"#),
    (r#"{ rootService = "foo" }"#, r#"{ rootServiceName = "foo" }"#),
    (r#"{ childCount > 2 }"#, r#"{ span:childCount > 2 }"#),
    (r#"{ span:childCount > 2 }"#, r#"{ span:childCount > 2 }"#),
    (r#"{ span.a != 3 }"#, r#"{ span.a != 3 }"#),
    (r#"{ resource.a != 3 }"#, r#"{ resource.a != 3 }"#),
    (r#"{ .a }"#, r#"{ .a }"#),
    (r#"{ !.a }"#, r#"{ !.a }"#),
    (r#"{ .a && false }"#, r#"{ .a && false }"#),
    (r#"{ .a || true }"#, r#"{ .a || true }"#),
    (r#"{ .a = 2 }"#, r#"{ .a = 2 }"#),
    (r#"{ .a != 2 }"#, r#"{ .a != 2 }"#),
    (r#"{ .a > 2 }"#, r#"{ .a > 2 }"#),
    (r#"{ .a >= 2 }"#, r#"{ .a >= 2 }"#),
    (r#"{ .a < 2 }"#, r#"{ .a < 2 }"#),
    (r#"{ .a <= 2 }"#, r#"{ .a <= 2 }"#),
    (r#"{ -.a = 2 }"#, r#"{ -.a = 2 }"#),
    (r#"{ .a =~ "test" }"#, r#"{ .a =~ "test" }"#),
    (r#"{ .a !~ "test" }"#, r#"{ .a !~ "test" }"#),
    (r#"{ .a = "test" }"#, r#"{ .a = "test" }"#),
    (r#"{ .a != "test" }"#, r#"{ .a != "test" }"#),
    (
        r#"{ !("test" != .c || ((true && .b) || 3 < .a)) }"#,
        r#"{ !("test" != .c || (true && .b) || 3 < .a) }"#,
    ),
    (r#"{ status = ok }"#, r#"{ status = ok }"#),
    (r#"{ status = unset }"#, r#"{ status = unset }"#),
    (r#"{ status != error }"#, r#"{ status != error }"#),
    (
        r#"{ statusMessage = "status message" }"#,
        r#"{ statusMessage = "status message" }"#,
    ),
    (r#"{ statusMessage = "" }"#, r#"{ statusMessage = "" }"#),
    (r#"{ statusMessage =~ ".*" }"#, r#"{ statusMessage =~ ".*" }"#),
    (r#"{ kind = internal }"#, r#"{ kind = internal }"#),
    (r#"{ kind = client }"#, r#"{ kind = client }"#),
    (r#"{ kind = consumer }"#, r#"{ kind = consumer }"#),
    (r#"{ kind = producer }"#, r#"{ kind = producer }"#),
    (r#"{ kind = unspecified }"#, r#"{ kind = unspecified }"#),
    (r#"{ 1 < 1h }"#, r#"{ 1 < 1h }"#),
    (r#"{ 1 <= 1.1 }"#, r#"{ 1 <= 1.1 }"#),
    (r#"{ event.foo = "bar" }"#, r#"{ event.foo = "bar" }"#),
    (r#"{ link.foo = "bar" }"#, r#"{ link.foo = "bar" }"#),
    (
        r#"{ instrumentation.foo = "bar" }"#,
        r#"{ instrumentation.foo = "bar" }"#,
    ),
    (r#"{ span.foo != 3.0 }"#, r#"{ span.foo != 3.0 }"#),
    (r#"{ ."foo bar" = "v" }"#, r#"{ ."foo bar" = "v" }"#),
    (r#"{ span."foo bar" = "v" }"#, r#"{ span."foo bar" = "v" }"#),
    (
        r#"{ resource."foo bar" = "v" }"#,
        r#"{ resource."foo bar" = "v" }"#,
    ),
    (r#"{ ."foo\" = \"bar" = "v" }"#, r#"{ ."foo\" = \"bar" = "v" }"#),
    (r#"{ ."a\\b" = "v" }"#, r#"{ .a\b = "v" }"#),
    (r#"{ ."a\"b" = "v" }"#, r#"{ ."a\"b" = "v" }"#),
    (r#"{ trace:duration > 2s }"#, r#"{ traceDuration > 2s }"#),
    (r#"{ trace:rootName = "a" }"#, r#"{ rootName = "a" }"#),
    (r#"{ trace:rootService = "a" }"#, r#"{ rootServiceName = "a" }"#),
    (r#"{ trace:id = "aasdf4ergf" }"#, r#"{ trace:id = "aasdf4ergf" }"#),
    (r#"{ span:duration > 2s }"#, r#"{ duration > 2s }"#),
    (r#"{ span:status = error }"#, r#"{ status = error }"#),
    (r#"{ span:kind = client }"#, r#"{ kind = client }"#),
    (r#"{ span:name = "GET /" }"#, r#"{ name = "GET /" }"#),
    (
        r#"{ span:statusMessage = "status message" }"#,
        r#"{ statusMessage = "status message" }"#,
    ),
    (
        r#"{ span:id = "61626364656667" }"#,
        r#"{ span:id = "61626364656667" }"#,
    ),
    (
        r#"{ span:parentID = "84737586494" }"#,
        r#"{ span:parentID = "84737586494" }"#,
    ),
    (
        r#"{ event:name = "exception" }"#,
        r#"{ event:name = "exception" }"#,
    ),
    (
        r#"{ event:timeSinceStart > 1s }"#,
        r#"{ event:timeSinceStart > 1s }"#,
    ),
    (
        r#"{ link:traceID = "f1f1f1f1f1f1ff1f1f1f1f1f1f1f1f1" }"#,
        r#"{ link:traceID = "f1f1f1f1f1f1ff1f1f1f1f1f1f1f1f1" }"#,
    ),
    (
        r#"{ link:spanID = "f1f1f1f1f1f1f1f1" }"#,
        r#"{ link:spanID = "f1f1f1f1f1f1f1f1" }"#,
    ),
    (
        r#"{ instrumentation:name = "grpc" }"#,
        r#"{ instrumentation:name = "grpc" }"#,
    ),
    (
        r#"{ instrumentation:version = "v3.34" }"#,
        r#"{ instrumentation:version = "v3.34" }"#,
    ),
    (r#"{ span: name = "x" }"#, r#"{ name = "x" }"#),
    (r#"{ 1 + 1 = 2 }"#, r#"{ 1 + 1 = 2 }"#),
    (r#"{ 1 - 1 = 2 }"#, r#"{ 1 - 1 = 2 }"#),
    (r#"{ 1 * 1 = 2 }"#, r#"{ 1 * 1 = 2 }"#),
    (r#"{ 1 / 1 = 2 }"#, r#"{ 1 / 1 = 2 }"#),
    (r#"{ 1 ^ 1 = 2 }"#, r#"{ 1 ^ 1 = 2 }"#),
    (r#"{ .a + 1 = 2 }"#, r#"{ .a + 1 = 2 }"#),
    (r#"{ .a - 1 = 2 }"#, r#"{ .a - 1 = 2 }"#),
    (r#"{ .a * 1 = 2 }"#, r#"{ .a * 1 = 2 }"#),
    (r#"{ .a / 1 = 2 }"#, r#"{ .a / 1 = 2 }"#),
    (r#"{ .a % 2 = 1 }"#, r#"{ .a % 2 = 1 }"#),
    (r#"{ .a ^ 1 = 2 }"#, r#"{ .a ^ 1 = 2 }"#),
    (r#"{ duration > 1s * 2s }"#, r#"{ duration > 1s * 2s }"#),
    (r#"{ duration < (10s * 20s) }"#, r#"{ duration < 10s * 20s }"#),
    (r#"{ 1 * 1h = 1 }"#, r#"{ 1 * 1h = 1 }"#),
    (r#"{ 1 / 1.1 = 1 }"#, r#"{ 1 / 1.1 = 1 }"#),
    (r#"{ .http.status >= "200" }"#, r#"{ .http.status >= "200" }"#),
    (r#"{ .a * .b + .c > 1 }"#, r#"{ .a * .b + .c > 1 }"#),
    (r#"{ .a + .b * .c > 1 }"#, r#"{ .a + .b * .c > 1 }"#),
    (r#"{ ( .a + .b ) * .c > 1 }"#, r#"{ (.a + .b) * .c > 1 }"#),
    (r#"{ .a + .b ^ .c > 1 }"#, r#"{ .a + .b ^ .c > 1 }"#),
    (r#"{ .a ^ .b ^ .c > 1 }"#, r#"{ .a ^ .b ^ .c > 1 }"#),
    (r#"{ (.a ^ .b) ^ .c > 1 }"#, r#"{ (.a ^ .b) ^ .c > 1 }"#),
    (r#"{ .a = .b + .c }"#, r#"{ .a = .b + .c }"#),
    (r#"{ .a + .b = .c }"#, r#"{ .a + .b = .c }"#),
    (r#"{ .c - -.a + .b > 0 }"#, r#"{ .c - -.a + .b > 0 }"#),
    (r#"{ .c - -( .a + .b ) > 0 }"#, r#"{ .c - -(.a + .b) > 0 }"#),
    (r#"{ .a && .b = .c }"#, r#"{ .a && .b = .c }"#),
    (r#"{ .a = .b && .c }"#, r#"{ .a = .b && .c }"#),
    (r#"{ .a = !.b && .c }"#, r#"{ .a = !.b && .c }"#),
    (r#"{ .a = !( .b && .c ) }"#, r#"{ .a = !(.b && .c) }"#),
    (r#"{ .a = .b || .c = .d}"#, r#"{ .a = .b || .c = .d }"#),
    (r#"{ !.a = .b }"#, r#"{ !.a = .b }"#),
    (r#"{ !(.a = .b) }"#, r#"{ !(.a = .b) }"#),
    (r#"{ -.a = .b }"#, r#"{ -.a = .b }"#),
    (r#"{ .a || .b && .c }"#, r#"{ (.a || .b) && .c }"#),
    (r#"{ .a && .b || .c }"#, r#"{ (.a && .b) || .c }"#),
    (r#"{ .a && (.b || .c) }"#, r#"{ .a && (.b || .c) }"#),
    (r#"{ (.a || .b) && .c }"#, r#"{ (.a || .b) && .c }"#),
    (r#"{ .a && .b && .c && .d }"#, r#"{ .a && .b && .c && .d }"#),
    (r#"{ .a || .b || .c }"#, r#"{ .a || .b || .c }"#),
    (r#"{ .a && (.b && .c) }"#, r#"{ .a && .b && .c }"#),
    (r#"{ .a = -1 }"#, r#"{ .a = -1 }"#),
    (r#"{ .a = -1.5 }"#, r#"{ .a = -1.5 }"#),
    (r#"{ duration > -1s }"#, r#"{ duration > -1s }"#),
    (r#"{ .a * -1 = 2 }"#, r#"{ .a * (-1) = 2 }"#),
    (r#"{ -1 * .a = 2 }"#, r#"{ -(1 * .a) = 2 }"#),
    (r#"{ .a = maxInt }"#, r#"{ .a = 9223372036854775807 }"#),
    (r#"{ .a = minInt }"#, r#"{ .a = minInt }"#),
    (r#"{ .a = 3h }"#, r#"{ .a = 3h }"#),
    (r#"{ .a = 1.5m }"#, r#"{ .a = 1m30s }"#),
    (r#"{ .a = 1h30m }"#, r#"{ .a = 1h30m }"#),
    (
        r#"{ .a = 1h15m30.918273645s }"#,
        r#"{ .a = 1h15m30s918ms273us645ns }"#,
    ),
    (r#"{ .a = 2d }"#, r#"{ .a = 48h }"#),
    (r#"{ .a = 1w }"#, r#"{ .a = 168h }"#),
    (r#"{ .a = 100us }"#, r#"{ .a = 100us }"#),
    (r#"{ .a = 100µs }"#, r#"{ .a = 100us }"#),
    (r#"{ .a = 10ns }"#, r#"{ .a = 10ns }"#),
    (r#"{ .a = 0s }"#, r#"{ .a = 0s }"#),
    (r#"{ .a = .5 }"#, r#"{ .a = 0.5 }"#),
    (r#"{ .a = 1e3 }"#, r#"{ .a = 1000.0 }"#),
    (r#"{ .a = 1.5e-7 }"#, r#"{ .a = 1.5e-7 }"#),
    (r#"{ .a = 3.0 }"#, r#"{ .a = 3.0 }"#),
    (r#"{ .a = `raw\d+` }"#, r#"{ .a = `raw\d+` }"#),
    (r#"{ .a =~ `\d+` }"#, r#"{ .a =~ `\d+` }"#),
    (r#"{ .a =~ "\\d+" }"#, r#"{ .a =~ `\d+` }"#),
    (r#"{ .a = "tab\there" }"#, r#"{ .a = "tab\there" }"#),
    (r#"{ .a = "quote\"here" }"#, r#"{ .a = "quote\"here" }"#),
    (r#"{ .a = "日本" }"#, r#"{ .a = "日本" }"#),
    (r#"{ .a = "\u00e9" }"#, r#"{ .a = "é" }"#),
    (r#"{ .a = true }"#, r#"{ .a = true }"#),
    (r#"{ .a = false }"#, r#"{ .a = false }"#),
    (r#"{ .a != nil }"#, r#"{ .a != nil }"#),
    (r#"{ .a = nil }"#, r#"{ .a = nil }"#),
    (r#"{ nil != .a }"#, r#"{ .a != nil }"#),
    (r#"{ nil = .a }"#, r#"{ .a = nil }"#),
    (r#"{ nil != nil }"#, r#"{ false }"#),
    (r#"{ nil = nil }"#, r#"{ false }"#),
    (r#"{ name != nil }"#, r#"{ name != nil }"#),
    (
        r#"{ .foo != nil && .bar = nil }"#,
        r#"{ .foo != nil && .bar = nil }"#,
    ),
    (r#"{ nestedSetLeft > 3 }"#, r#"{ nestedSetLeft > 3 }"#),
    (r#"{ nestedSetRight < 3 }"#, r#"{ nestedSetRight < 3 }"#),
    (r#"{ nestedSetParent = -1 }"#, r#"{ nestedSetParent = -1 }"#),
    (r#"{ .foo.bar = 1 }"#, r#"{ .foo.bar = 1 }"#),
    (r#"{ .foo.3 = 1 }"#, r#"{ .foo.3 = 1 }"#),
    (r#"{ .http-status = 1 }"#, r#"{ .http-status = 1 }"#),
    (r#"{ .http+ = 1 }"#, r#"{ .http+ = 1 }"#),
    (r#"{ .😝 = 1 }"#, r#"{ .😝 = 1 }"#),
    (r#"{ parent.duration = 1h }"#, r#"{ parent.duration = 1h }"#),
    (r#"{ parent.foo.bar.baz = 1 }"#, r#"{ parent.foo.bar.baz = 1 }"#),
    (r#"{ parent.resource.foo = 1 }"#, r#"{ parent.resource.foo = 1 }"#),
    (r#"{ parent.span.foo = 1 }"#, r#"{ parent.span.foo = 1 }"#),
    (r#"{ parent.span.foo.bar = 1 }"#, r#"{ parent.span.foo.bar = 1 }"#),
    (r#"{ ."bar z".foo = 1 }"#, r#"{ ."bar z.foo" = 1 }"#),
    (r#"{ span."bar z".foo = 1 }"#, r#"{ span."bar z.foo" = 1 }"#),
    (r#"{ .foo."bar baz".bar = 1 }"#, r#"{ ."foo.bar baz.bar" = 1 }"#),
    (r#"{ ."foo.bar" = 1 }"#, r#"{ .foo.bar = 1 }"#),
    (r#"{ ."🤘" = 1 }"#, r#"{ .🤘 = 1 }"#),
    (r#"{ .count = 1 }"#, r#"{ .count = 1 }"#),
    (r#"{ .max = 1 }"#, r#"{ .max = 1 }"#),
    (r#"{ .status = 1 }"#, r#"{ .status = 1 }"#),
    (r#"{ .kind = 1 }"#, r#"{ .kind = 1 }"#),
    (r#"{ span.status = 1 }"#, r#"{ span.status = 1 }"#),
    (r#"{ resource.duration = 1 }"#, r#"{ resource.duration = 1 }"#),
    (r#"{ span.resource.foo = 1 }"#, r#"{ span.resource.foo = 1 }"#),
    (
        r#"{ .attr="a" || .attr="b" }"#,
        r#"{ .attr = "a" || .attr = "b" }"#,
    ),
    (r#"{ .attr=1 || .attr=2 }"#, r#"{ .attr = 1 || .attr = 2 }"#),
    (
        r#"{ .attr!="a" && .attr!="b" }"#,
        r#"{ .attr != "a" && .attr != "b" }"#,
    ),
    (
        r#"{ .attr=~"a.*" || .attr=~"b.*" }"#,
        r#"{ .attr =~ "a.*" || .attr =~ "b.*" }"#,
    ),
    (
        r#"{ .attr!~"a.*" && .attr!~"b.*" }"#,
        r#"{ .attr !~ "a.*" && .attr !~ "b.*" }"#,
    ),
    (r#"{.a=1&&.b=2}"#, r#"{ .a = 1 && .b = 2 }"#),
    (r#"{.a!=nil||.b=~"x"}"#, r#"{ .a != nil || .b =~ "x" }"#),
    (r#"{ .a = "a" } // comment"#, r#"{ .a = "a" }"#),
    (r#"/* c */ { .a = "a" }"#, r#"{ .a = "a" }"#),
    (r#"{ true } && { true }"#, r#"{} && {}"#),
    (r#"{ true } || { true }"#, r#"{} || {}"#),
    (r#"{ true } >> { true }"#, r#"{} >> {}"#),
    (r#"{ true } << { true }"#, r#"{} << {}"#),
    (r#"{ true } > { true }"#, r#"{} > {}"#),
    (r#"{ true } < { true }"#, r#"{} < {}"#),
    (r#"{ true } ~ { true }"#, r#"{} ~ {}"#),
    (r#"{ true } !> { true }"#, r#"{} !> {}"#),
    (r#"{ true } !< { true }"#, r#"{} !< {}"#),
    (r#"{ true } !~ { true }"#, r#"{} !~ {}"#),
    (r#"{ true } !>> { true }"#, r#"{} !>> {}"#),
    (r#"{ true } !<< { true }"#, r#"{} !<< {}"#),
    (r#"{ true } &> { true }"#, r#"{} &> {}"#),
    (r#"{ true } &< { true }"#, r#"{} &< {}"#),
    (r#"{ true } &~ { true }"#, r#"{} &~ {}"#),
    (r#"{ true } &>> { true }"#, r#"{} &>> {}"#),
    (r#"{ true } &<< { true }"#, r#"{} &<< {}"#),
    (r#"{ .a } && { .b } >> { .c }"#, r#"{ .a } && { .b } >> { .c }"#),
    (r#"{ .a } >> { .b } && { .c }"#, r#"{ .a } >> { .b } && { .c }"#),
    (r#"({ .a } >> { .b }) && { .c }"#, r#"{ .a } >> { .b } && { .c }"#),
    (
        r#"{ .a } >> ({ .b } && { .c })"#,
        r#"{ .a } >> ({ .b } && { .c })"#,
    ),
    (r#"{ .a } >> { .b } ~ { .c }"#, r#"{ .a } >> { .b } ~ { .c }"#),
    (r#"{ .a } ~ { .b } >> { .c }"#, r#"{ .a } ~ { .b } >> { .c }"#),
    (r#"{ .a } || { .b } && { .c }"#, r#"{ .a } || { .b } && { .c }"#),
    (r#"({ .a }) && ({ .b })"#, r#"{ .a } && { .b }"#),
    (r#"(({ .a }))"#, r#"{ .a }"#),
    (
        r#"{ resource.service.name = "a" } >> { status = error }"#,
        r#"{ resource.service.name = "a" } >> { status = error }"#,
    ),
    (
        r#"{ span.http.method = "GET" } > { name = "db" } > { status = error }"#,
        r#"{ span.http.method = "GET" } > { name = "db" } > { status = error }"#,
    ),
    (
        r#"({ true } | count() > 1 | { false }) >> ({ true } | count() > 1 | { false })"#,
        r#"({} | count() > 1 | { false }) >> ({} | count() > 1 | { false })"#,
    ),
    (
        r#"({ true } | count() > 1 | { false }) > ({ true } | count() > 1 | { false })"#,
        r#"({} | count() > 1 | { false }) > ({} | count() > 1 | { false })"#,
    ),
    (
        r#"({ true } | count() > 1 | { false }) ~ ({ true } | count() > 1 | { false })"#,
        r#"({} | count() > 1 | { false }) ~ ({} | count() > 1 | { false })"#,
    ),
    (
        r#"({ true } | count() > 1 | { false }) && ({ true } | count() > 1 | { false })"#,
        r#"({} | count() > 1 | { false }) && ({} | count() > 1 | { false })"#,
    ),
    (
        r#"({ true } | count() > 1 | { false }) || ({ true } | count() > 1 | { false })"#,
        r#"({} | count() > 1 | { false }) || ({} | count() > 1 | { false })"#,
    ),
    (
        r#"({ .a } | { .b }) > ({ .a } | { .b }) && ({ .a } | { .b })"#,
        r#"({ .a } | { .b }) > ({ .a } | { .b }) && ({ .a } | { .b })"#,
    ),
    (
        r#"({ .a } | { .b }) > (({ .a } | { .b }) && ({ .a } | { .b }))"#,
        r#"({ .a } | { .b }) > (({ .a } | { .b }) && ({ .a } | { .b }))"#,
    ),
    (r#"({ .a } | { .b })"#, r#"{ .a } | { .b }"#),
    (r#"(by(.a)) && ({ .b })"#, r#"(by(.a)) && { .b }"#),
    (r#"{ .a } | { .b }"#, r#"{ .a } | { .b }"#),
    (r#"{ .a } | count() > 1"#, r#"{ .a } | count() > 1"#),
    (
        r#"{ .a } | by(.namespace) | coalesce() | avg(duration) = 1s"#,
        r#"{ .a } | by(.namespace) | coalesce() | avg(duration) = 1s"#,
    ),
    (r#"avg(.field) > 1"#, r#"avg(.field) > 1"#),
    (r#"max(duration) >= 1s"#, r#"max(duration) >= 1s"#),
    (r#"max(duration) > 1"#, r#"max(duration) > 1"#),
    (r#"{ true } | max(duration) = 1h"#, r#"{} | max(duration) = 1h"#),
    (r#"{ true } | min(duration) = 1h"#, r#"{} | min(duration) = 1h"#),
    (r#"{ true } | sum(duration) = 1h"#, r#"{} | sum(duration) = 1h"#),
    (r#"{ true } | max(.a) = 1"#, r#"{} | max(.a) = 1"#),
    (r#"{ true } | max(span.a) = 1"#, r#"{} | max(span.a) = 1"#),
    (r#"{ true } | max(resource.a) = 1"#, r#"{} | max(resource.a) = 1"#),
    (r#"{ true } | max(1 + .a) = 1"#, r#"{} | max(1 + .a) = 1"#),
    (
        r#"{ true } | max((1 + .a) * 2) = 1"#,
        r#"{} | max((1 + .a) * 2) = 1"#,
    ),
    (
        r#"max(duration) > 3s | { status = error || .http.status = 500 }"#,
        r#"max(duration) > 3s | { status = error || .http.status = 500 }"#,
    ),
    (r#"select(.a)"#, r#"select(.a)"#),
    (r#"{} | select(.a,.b,.c)"#, r#"{} | select(.a, .b, .c)"#),
    (
        r#"{} | select(span.http.method, resource.service.name, duration, span:id)"#,
        r#"{} | select(span.http.method, resource.service.name, duration, span:id)"#,
    ),
    (
        r#"{ } >> { kind = server } | select(nestedSetLeft, nestedSetRight, nestedSetParent)"#,
        r#"{} >> { kind = server } | select(nestedSetLeft, nestedSetRight, nestedSetParent)"#,
    ),
    (r#"{ true } | { .a }"#, r#"{} | { .a }"#),
    (r#"{ true } | count() = 1"#, r#"{} | count() = 1"#),
    (r#"{ true } | avg(duration) = 1h"#, r#"{} | avg(duration) = 1h"#),
    (r#"count() = 1 | { true }"#, r#"count() = 1 | {}"#),
    (r#"{ true } | count() = 1 | { true }"#, r#"{} | count() = 1 | {}"#),
    (r#"{ true } | coalesce()"#, r#"{} | coalesce()"#),
    (
        r#"{ true } | by(1 + .a) | coalesce()"#,
        r#"{} | by(1 + .a) | coalesce()"#,
    ),
    (r#"{ true } | by(.a)"#, r#"{} | by(.a)"#),
    (r#"{ true } | by(1 + .a)"#, r#"{} | by(1 + .a)"#),
    (r#"by(.a) | { true }"#, r#"by(.a) | {}"#),
    (
        r#"{ true } | by(name) | count() > 2"#,
        r#"{} | by(name) | count() > 2"#,
    ),
    (
        r#"{ true } | by(.field) | avg(.b) = 2"#,
        r#"{} | by(.field) | avg(.b) = 2"#,
    ),
    (
        r#"{ true } | by(3 * .field - 2) | max(duration) < 1s"#,
        r#"{} | by(3 * .field - 2) | max(duration) < 1s"#,
    ),
    (
        r#"{ status = error } | by(resource.service.name) | count() > 3"#,
        r#"{ status = error } | by(resource.service.name) | count() > 3"#,
    ),
    (
        r#"{ .a } | count() + count() > 3"#,
        r#"{ .a } | count() + count() > 3"#,
    ),
    (r#"{ .a } | count() > 1 + 2"#, r#"{ .a } | count() > 3"#),
    (r#"{ .a } | count() > -1"#, r#"{ .a } | count() > -1"#),
    (r#"{ .a } | 5 < count()"#, r#"{ .a } | 5 < count()"#),
    (r#"{ .a } | count() * 2 > 3"#, r#"{ .a } | count() * 2 > 3"#),
    (
        r#"{ .a } | (count() + 1) * 2 > 3"#,
        r#"{ .a } | (count() + 1) * 2 > 3"#,
    ),
    (r#"{ .a } | count() ^ 2 > 3"#, r#"{ .a } | count() ^ 2 > 3"#),
    (r#"min(.field) < max(duration)"#, r#"min(.field) < max(duration)"#),
    (r#"sum(.field) = min(.field)"#, r#"sum(.field) = min(.field)"#),
    (
        r#"min(.field) + max(.field) > 1"#,
        r#"min(.field) + max(.field) > 1"#,
    ),
    (
        r#"max(1 - (2 + .field)) < avg(3 * duration ^ 2)"#,
        r#"max(1 - (2 + .field)) < avg(3 * duration ^ 2)"#,
    ),
    (
        r#"({ true } | count()) + ({ true } | count()) = 1"#,
        r#"({} | count()) + ({} | count()) = 1"#,
    ),
    (
        r#"({ true } | count()) > ({ true } | count())"#,
        r#"({} | count()) > ({} | count())"#,
    ),
    (
        r#"({ .a } | count()) = ({ .a } | count())"#,
        r#"({ .a } | count()) = ({ .a } | count())"#,
    ),
    (r#"({ .a } | count()) > 3"#, r#"({ .a } | count()) > 3"#),
    (
        r#"({ .http.status = 200 } | count()) + ({ name = `foo` } | avg(duration)) = 2"#,
        r#"({ .http.status = 200 } | count()) + ({ name = "foo" } | avg(duration)) = 2"#,
    ),
    (
        r#"avg(.foo) > count() + sum(.bar)"#,
        r#"avg(.foo) > count() + sum(.bar)"#,
    ),
    (
        r#"avg(.foo) + count() > sum(.bar)"#,
        r#"avg(.foo) + count() > sum(.bar)"#,
    ),
    (r#"min(span:childCount) < 2 / 6"#, r#"min(span:childCount) < 0"#),
    (r#"avg(.field) > 1 - 3"#, r#"avg(.field) > -2"#),
    (
        r#"{ .a } with(most_recent=true)"#,
        r#"{ .a } with(most_recent=true)"#,
    ),
    (
        r#"{ } | rate() with(foo="bar")"#,
        r#"{} | rate() with(foo="bar")"#,
    ),
    (r#"{ } | rate() with(foo=0.5)"#, r#"{} | rate() with(foo=0.5)"#),
    (
        r#"{ } | rate() with(sample=0.1, exemplars=true)"#,
        r#"{} | rate() with(sample=0.1, exemplars=true)"#,
    ),
    (r#"{ } with(a=1) with(b=2)"#, r#"{} with(b=2)"#),
    (r#"{} | rate()"#, r#"{} | rate()"#),
    (r#"{} | count_over_time()"#, r#"{} | count_over_time()"#),
    (
        r#"{} | count_over_time() by (name)"#,
        r#"{} | count_over_time() by (name)"#,
    ),
    (
        r#"{} | count_over_time() by(name, span.http.status_code)"#,
        r#"{} | count_over_time() by (name, span.http.status_code)"#,
    ),
    (
        r#"{} | min_over_time(duration) by (span.http.path)"#,
        r#"{} | min_over_time(duration) by (span.http.path)"#,
    ),
    (
        r#"{} | max_over_time(duration) by (span.http.path)"#,
        r#"{} | max_over_time(duration) by (span.http.path)"#,
    ),
    (
        r#"{} | avg_over_time(duration) by (span.http.path)"#,
        r#"{} | avg_over_time(duration) by (span.http.path)"#,
    ),
    (
        r#"{} | sum_over_time(duration) by (span.http.path)"#,
        r#"{} | sum_over_time(duration) by (span.http.path)"#,
    ),
    (
        r#"{} | quantile_over_time(duration, 0, 0.9, 1) by (span.http.path)"#,
        r#"{} | quantile_over_time(duration, 0, 0.9, 1) by (span.http.path)"#,
    ),
    (
        r#"{} | quantile_over_time(duration, .5, .99)"#,
        r#"{} | quantile_over_time(duration, 0.5, 0.99)"#,
    ),
    (
        r#"{} | histogram_over_time(duration)"#,
        r#"{} | histogram_over_time(duration)"#,
    ),
    (
        r#"{} | histogram_over_time(duration) by (resource.service.name)"#,
        r#"{} | histogram_over_time(duration) by (resource.service.name)"#,
    ),
    (
        r#"{ status = error } | rate() by (resource.service.name)"#,
        r#"{ status = error } | rate() by (resource.service.name)"#,
    ),
    (
        r#"{ resource.service.name = "agixt" } | count_over_time() by (span.run_id)"#,
        r#"{ resource.service.name = "agixt" } | count_over_time() by (span.run_id)"#,
    ),
    (
        r#"{} | count_over_time() by (name) with(sample=0.1)"#,
        r#"{} | count_over_time() by (name) with(sample=0.1)"#,
    ),
    (r#"{} | rate() | topk(10)"#, r#"{} | rate() | topk(10)"#),
    (
        r#"{} | rate() by (span.client_ip) | topk(10)"#,
        r#"{} | rate() by (span.client_ip) | topk(10)"#,
    ),
    (
        r#"{} | count_over_time() by (name) | topk(10) with(sample=0.1)"#,
        r#"{} | count_over_time() by (name) | topk(10) with(sample=0.1)"#,
    ),
    (
        r#"{} | avg_over_time(duration) by (span:name) | topk(10)"#,
        r#"{} | avg_over_time(duration) by (name) | topk(10)"#,
    ),
    (
        r#"{} | rate() by (span.client_ip) | bottomk(10)"#,
        r#"{} | rate() by (span.client_ip) | bottomk(10)"#,
    ),
    (r#"{} | rate() | bottomk(10)"#, r#"{} | rate() | bottomk(10)"#),
    (r#"{} | rate() > 10"#, r#"{} | rate() > 10"#),
    (
        r#"{} | rate() by (span.client_ip) >= 5.5"#,
        r#"{} | rate() by (span.client_ip) >= 5.5"#,
    ),
    (
        r#"{} | count_over_time() by (name) < 100"#,
        r#"{} | count_over_time() by (name) < 100"#,
    ),
    (r#"{} | rate() = 42"#, r#"{} | rate() = 42"#),
    (r#"{} | rate() != 0"#, r#"{} | rate() != 0"#),
    (r#"{} | rate() > -3"#, r#"{} | rate() > -3"#),
    (r#"{} | rate() > -2.5"#, r#"{} | rate() > -2.5"#),
    (r#"{} | rate() > 10s"#, r#"{} | rate() > 10"#),
    (r#"{} | rate() > 1 / 2"#, r#"{} | rate() > 0"#),
    (r#"{} | rate() > 1 / 2.0"#, r#"{} | rate() > 0.5"#),
    (r#"{} | rate() > 10 | topk(5)"#, r#"{} | rate() > 10 | topk(5)"#),
    (r#"{} | rate() | topk(5) > 10"#, r#"{} | rate() | topk(5) > 10"#),
    (
        r#"{} | rate() | topk(5) | bottomk (10) <= 10"#,
        r#"{} | rate() | topk(5) | bottomk(10) <= 10"#,
    ),
    (
        r#"{} | rate() | topk(5) > 20 | bottomk (10) <= 10"#,
        r#"{} | rate() | topk(5) > 20 | bottomk(10) <= 10"#,
    ),
    (
        r#"{} | count_over_time() | topk(1) != 0 | topk(10)"#,
        r#"{} | count_over_time() | topk(1) != 0 | topk(10)"#,
    ),
    (r#"{} | rate() > 0 < 5"#, r#"{} | rate() > 0 < 5"#),
    (r#"({} | rate()) > 10"#, r#"{} | rate() > 10"#),
    (
        r#"({} | max_over_time(duration)) > 30"#,
        r#"{} | max_over_time(duration) > 30"#,
    ),
    (
        r#"({} | max_over_time(duration)) > 10s"#,
        r#"{} | max_over_time(duration) > 10"#,
    ),
    (
        r#"({} | rate()) + ({} | rate())"#,
        r#"({} | rate()) + ({} | rate())"#,
    ),
    (
        r#"({} | rate()) + ({} | count_over_time())"#,
        r#"({} | rate()) + ({} | count_over_time())"#,
    ),
    (
        r#"({} | rate()) - ({} | count_over_time())"#,
        r#"({} | rate()) - ({} | count_over_time())"#,
    ),
    (
        r#"({} | rate()) / ({} | count_over_time())"#,
        r#"({} | rate()) / ({} | count_over_time())"#,
    ),
    (
        r#"({} | rate()) * ({} | count_over_time())"#,
        r#"({} | rate()) * ({} | count_over_time())"#,
    ),
    (
        r#"(({} | rate()) * ({} | count_over_time())) + ({} | rate())"#,
        r#"({} | rate()) * ({} | count_over_time()) + ({} | rate())"#,
    ),
    (
        r#"({} | rate()) * (({} | count_over_time()) + ({} | rate()))"#,
        r#"({} | rate()) * (({} | count_over_time()) + ({} | rate()))"#,
    ),
    (
        r#"({} | rate()) + ({} | rate()) | topk(5)"#,
        r#"({} | rate()) + ({} | rate()) | topk(5)"#,
    ),
    (
        r#"({} | rate()) + ({} | rate()) > 10"#,
        r#"({} | rate()) + ({} | rate()) > 10"#,
    ),
    (
        r#"({} | rate()) + ({} | rate()) | topk(5) > 10"#,
        r#"({} | rate()) + ({} | rate()) | topk(5) > 10"#,
    ),
    (
        r#"({status=error} | count_over_time()) / ({} | count_over_time())"#,
        r#"({ status = error } | count_over_time()) / ({} | count_over_time())"#,
    ),
    (
        r#"({} | count_over_time() by(resource.service.name)) / ({} | count_over_time())"#,
        r#"({} | count_over_time() by (resource.service.name)) / ({} | count_over_time())"#,
    ),
    (
        r#"({} | rate() | topk(10)) / ({} | rate())"#,
        r#"({} | rate() | topk(10)) / ({} | rate())"#,
    ),
    (r#"({} | rate()) * 100"#, r#"({} | rate()) * 100"#),
    (r#"({} | rate()) / 1000"#, r#"({} | rate()) / 1000"#),
    (r#"({} | rate()) + 5"#, r#"({} | rate()) + 5"#),
    (r#"({} | rate()) - 5"#, r#"({} | rate()) - 5"#),
    (r#"100 * ({} | rate())"#, r#"100 * ({} | rate())"#),
    (r#"1 / ({} | rate())"#, r#"1 / ({} | rate())"#),
    (r#"5 + ({} | rate())"#, r#"5 + ({} | rate())"#),
    (r#"1 - ({} | rate())"#, r#"1 - ({} | rate())"#),
    (r#"1 + 2 + ({} | rate())"#, r#"3 + ({} | rate())"#),
    (r#"3 * 2 + ({} | rate())"#, r#"6 + ({} | rate())"#),
    (r#"3 / 2 + ({} | rate())"#, r#"1 + ({} | rate())"#),
    (r#"3 * 2 * ({} | rate())"#, r#"6 * ({} | rate())"#),
    (r#"({} | rate()) + 1 + 2"#, r#"({} | rate()) + 1 + 2"#),
    (r#"({} | rate()) + 3 * 2"#, r#"({} | rate()) + 6"#),
    (r#"({} | rate()) / 3 * 2"#, r#"({} | rate()) / 3 * 2"#),
    (r#"(1 + 2) + ({} | rate())"#, r#"3 + ({} | rate())"#),
    (r#"(1 / 2) + ({} | rate())"#, r#"0 + ({} | rate())"#),
    (r#"({} | rate()) * -100"#, r#"({} | rate()) * -100"#),
    (r#"({} | rate()) - -5"#, r#"({} | rate()) - -5"#),
    (r#"-100 * ({} | rate())"#, r#"-100 * ({} | rate())"#),
    (r#"-1.5 * ({} | rate())"#, r#"-1.5 * ({} | rate())"#),
    (r#"({} | rate()) * 1.5"#, r#"({} | rate()) * 1.5"#),
    (
        r#"(60 * ({} | rate())) / ({} | count_over_time())"#,
        r#"60 * ({} | rate()) / ({} | count_over_time())"#,
    ),
    (r#"({} | rate()) * 100 > 5"#, r#"({} | rate()) * 100 > 5"#),
    (r#"({} | rate() > 6) * 100 > 5"#, r#"({} | rate() > 6) * 100 > 5"#),
    (
        r#"({} | rate()) * 10 + 5 > 50 | topk(1)"#,
        r#"({} | rate()) * 10 + 5 > 50 | topk(1)"#,
    ),
    (r#"({} | rate()) > 1 / 2"#, r#"{} | rate() > 0"#),
    (r#"({} | rate()) - 2 * 20"#, r#"({} | rate()) - 40"#),
    (r#"-2 - 20 / ({} | rate())"#, r#"-2 - 20 / ({} | rate())"#),
    (r#"5 + ({} | rate()) * 10"#, r#"5 + ({} | rate()) * 10"#),
    (
        r#"(100 * ({} | rate())) - (200 * ({} | rate()))"#,
        r#"100 * ({} | rate()) - 200 * ({} | rate())"#,
    ),
    (
        r#"{} | compare({status=error})"#,
        r#"{} | compare({ status = error })"#,
    ),
    (
        r#"{} | compare({status=error}, 5)"#,
        r#"{} | compare({ status = error }, 5)"#,
    ),
    (
        r#"{} | compare({status=error}, 5, 1700000000000000000, 1700000100000000000)"#,
        r#"{} | compare({ status = error }, 5, 1700000000000000000, 1700000100000000000)"#,
    ),
    (
        r#"{ resource.service.name = "a" } | compare({ duration > 1s }, 10)"#,
        r#"{ resource.service.name = "a" } | compare({ duration > 1s })"#,
    ),
    (r#"{ .a } | by(.b) | rate()"#, r#"{ .a } | by(.b) | rate()"#),
    (r#"({ .a } | { .b }) | rate()"#, r#"({ .a } | { .b }) | rate()"#),
    (
        r#"{ .a } | select(.b) | count_over_time() by (.b)"#,
        r#"{ .a } | select(.b) | count_over_time() by (.b)"#,
    ),
];

/// Invalid queries: the query, the line and column of the error, and its message.
const INVALID: &[(&str, usize, usize, &str)] = &[
    (r#""#, 1, 1, r#"syntax error: unexpected $end"#),
    (r#"{ .a } | { .b"#, 1, 14, r#"syntax error: unexpected $end"#),
    (r#"{ .a | .b }"#, 1, 6, r#"syntax error: unexpected |"#),
    (
        r#"({ .a } | { .b }"#,
        1,
        17,
        r#"syntax error: unexpected $end, expecting )"#,
    ),
    (
        r#"({ .a } | { .b }) + ({ .a } | { .b })"#,
        1,
        19,
        r#"syntax error: unexpected +"#,
    ),
    (r#"by(.a) && { .b }"#, 1, 8, r#"syntax error: unexpected &&"#),
    (r#"by()"#, 1, 4, r#"syntax error: unexpected )"#),
    (r#"coalesce()"#, 1, 1, r#"syntax error: unexpected coalesce"#),
    (r#"select(.a) && { .b }"#, 1, 12, r#"syntax error: unexpected &&"#),
    (r#"select()"#, 1, 8, r#"syntax error: unexpected )"#),
    (
        r#"{ true } &&"#,
        1,
        12,
        r#"syntax error: unexpected $end, expecting { or ("#,
    ),
    (
        r#"(avg(.foo) > count()) + sum(.bar)"#,
        1,
        34,
        r#"syntax error: unexpected $end"#,
    ),
    (r#"count("#, 1, 7, r#"syntax error: unexpected $end, expecting )"#),
    (
        r#"count(avg)"#,
        1,
        7,
        r#"syntax error: unexpected avg, expecting )"#,
    ),
    (
        r#"count(.thing)"#,
        1,
        7,
        r#"syntax error: unexpected ., expecting )"#,
    ),
    (r#"wharblgarbl"#, 1, 1, r#"syntax error: unexpected IDENTIFIER"#),
    (r#"{ 2 <> 3}"#, 1, 6, r#"syntax error: unexpected >"#),
    (r#"{ 2 = .b "#, 1, 10, r#"syntax error: unexpected $end"#),
    (r#"{ + }"#, 1, 3, r#"syntax error: unexpected +"#),
    (
        r#"{ . foo }"#,
        1,
        3,
        r#"syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER"#,
    ),
    (
        r#"{ . "foo" }"#,
        1,
        3,
        r#"syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER"#,
    ),
    (r#"{ .foo .bar }"#, 1, 8, r#"syntax error: unexpected ."#),
    (
        r#"{ parent. }"#,
        1,
        3,
        r#"syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER or resource. or span."#,
    ),
    (r#".3foo"#, 1, 3, r#"syntax error: unexpected IDENTIFIER"#),
    (r#"{ ."foo }"#, 1, 3, r#"unexpected EOF, expecting ""#),
    (r#"{} | topk(10)"#, 1, 6, r#"syntax error: unexpected topk"#),
    (
        r#"{} | topk(10) with(sample=0.1)"#,
        1,
        6,
        r#"syntax error: unexpected topk"#,
    ),
    (
        r#"{} | rate() | topk(-1)"#,
        1,
        20,
        r#"syntax error: unexpected -, expecting INTEGER"#,
    ),
    (r#"{} | bottomk(10)"#, 1, 6, r#"syntax error: unexpected bottomk"#),
    (
        r#"{} | rate() | bottomk(-1)"#,
        1,
        23,
        r#"syntax error: unexpected -, expecting INTEGER"#,
    ),
    (
        r#"{} > 10"#,
        1,
        6,
        r#"syntax error: unexpected INTEGER, expecting { or ("#,
    ),
    (r#"{} = 10"#, 1, 4, r#"syntax error: unexpected ="#),
    (r#"true"#, 1, 1, r#"syntax error: unexpected true"#),
    (r#"[ true ]"#, 1, 1, r#"syntax error: unexpected IDENTIFIER"#),
    (r#"( true )"#, 1, 3, r#"syntax error: unexpected true"#),
    (
        r#"{ . }"#,
        1,
        3,
        r#"syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER"#,
    ),
    (r#"{ < }"#, 1, 3, r#"syntax error: unexpected <"#),
    (r#"{ .a < }"#, 1, 8, r#"syntax error: unexpected }"#),
    (r#"{ .a < 3"#, 1, 9, r#"syntax error: unexpected $end"#),
    (r#"{ (.a < 3 }"#, 1, 11, r#"syntax error: unexpected }"#),
    (r#"{ attribute = 4 }"#, 1, 3, r#"unknown identifier: attribute"#),
    (r#"{ .attribute == 4 }"#, 1, 15, r#"syntax error: unexpected ="#),
    (r#"{} | rate() == 42"#, 1, 14, r#"syntax error: unexpected ="#),
    (
        r#"{ span. }"#,
        1,
        3,
        r#"syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER"#,
    ),
    (r#"{ true } + { true }"#, 1, 10, r#"syntax error: unexpected +"#),
    (r#"{ true } - { true }"#, 1, 10, r#"syntax error: unexpected -"#),
    (r#"{ true } * { true }"#, 1, 10, r#"syntax error: unexpected *"#),
    (r#"{ true } / { true }"#, 1, 10, r#"syntax error: unexpected /"#),
    (r#"{ true } ^ { true }"#, 1, 10, r#"syntax error: unexpected ^"#),
    (r#"{ true } = { true }"#, 1, 10, r#"syntax error: unexpected ="#),
    (r#"{ true } <= { true }"#, 1, 10, r#"syntax error: unexpected <="#),
    (r#"{ true } >= { true }"#, 1, 10, r#"syntax error: unexpected >="#),
    (r#"avg(.field) + 1"#, 1, 16, r#"syntax error: unexpected $end"#),
    (r#"sum(3) - 2"#, 1, 11, r#"syntax error: unexpected $end"#),
    (
        r#"min(span:childCount) && 2"#,
        1,
        22,
        r#"syntax error: unexpected &&"#,
    ),
    (
        r#"select(.a"#,
        1,
        10,
        r#"syntax error: unexpected $end, expecting )"#,
    ),
    (
        r#"select(1 + "string")"#,
        1,
        8,
        r#"syntax error: unexpected INTEGER"#,
    ),
    (
        r#"coalesce() | { true }"#,
        1,
        1,
        r#"syntax error: unexpected coalesce"#,
    ),
    (
        r#"count() > 3 && { true }"#,
        1,
        13,
        r#"syntax error: unexpected &&"#,
    ),
    (r#"{ true } | count()"#, 1, 19, r#"syntax error: unexpected $end"#),
    (
        r#"{ true } | notAnAggregate() = 1"#,
        1,
        12,
        r#"syntax error: unexpected IDENTIFIER"#,
    ),
    (
        r#"{ true } | count = 1"#,
        1,
        18,
        r#"syntax error: unexpected =, expecting ("#,
    ),
    (r#"{ true } | max() = 1"#, 1, 16, r#"syntax error: unexpected )"#),
    (r#"{ true } | by()"#, 1, 15, r#"syntax error: unexpected )"#),
    (
        r#"({ true }) + (count()) = 1"#,
        1,
        12,
        r#"syntax error: unexpected +"#,
    ),
    (
        r#"({ true }) && (count())"#,
        1,
        16,
        r#"syntax error: unexpected count, expecting { or ("#,
    ),
    (
        r#"({ true } | count()) && ({ true } | count()) = 1"#,
        1,
        22,
        r#"syntax error: unexpected &&"#,
    ),
    (
        r#"({ true }) + ({ true }) = 1"#,
        1,
        12,
        r#"syntax error: unexpected +"#,
    ),
    (
        r#"({ true } | count()) + ({ true } | count())"#,
        1,
        44,
        r#"syntax error: unexpected $end"#,
    ),
    (r#"5 + {} | rate()"#, 1, 3, r#"syntax error: unexpected +"#),
    (r#"{} | rate() + 5"#, 1, 13, r#"syntax error: unexpected +"#),
    (r#"2 * 3"#, 1, 6, r#"syntax error: unexpected $end"#),
    (r#"2 + 3"#, 1, 6, r#"syntax error: unexpected $end"#),
    (r#"3 = 2"#, 1, 3, r#"syntax error: unexpected ="#),
    (r#"({} | rate()) % 10"#, 1, 15, r#"syntax error: unexpected %"#),
    (
        r#"{ .foo = "a" } | 3 > 2"#,
        1,
        20,
        r#"syntax error: unexpected >"#,
    ),
    (
        r#"({} | rate()) + 5 100"#,
        1,
        19,
        r#"syntax error: unexpected INTEGER"#,
    ),
    (
        r#"{ trace:status = error }"#,
        1,
        9,
        r#"syntax error: unexpected status, expecting duration or rootName or rootService or id"#,
    ),
    (
        r#"{ trace:kind = server }"#,
        1,
        9,
        r#"syntax error: unexpected kind, expecting duration or rootName or rootService or id"#,
    ),
    (
        r#"{ trace:name = "a" }"#,
        1,
        9,
        r#"syntax error: unexpected name, expecting duration or rootName or rootService or id"#,
    ),
    (
        r#"{ trace:rootServiceName = "a" }"#,
        1,
        9,
        r#"syntax error: unexpected rootServiceName, expecting duration or rootName or rootService or id"#,
    ),
    (
        r#"{ span:rootName = "bar" }"#,
        1,
        8,
        r#"syntax error: unexpected rootName"#,
    ),
    (r#"{ :duration }"#, 1, 3, r#"unknown identifier: :"#),
    (
        r#"{ parent:id = "a" }"#,
        1,
        9,
        r#"syntax error: unexpected IDENTIFIER"#,
    ),
    (r#"{} == 10"#, 1, 4, r#"syntax error: unexpected ="#),
    (r#"({}) + ({})"#, 1, 6, r#"syntax error: unexpected +"#),
    (
        r#"{} | rate() + {} | count_over_time()"#,
        1,
        13,
        r#"syntax error: unexpected +"#,
    ),
    (
        r#"({} | rate()) % ({} | count_over_time())"#,
        1,
        15,
        r#"syntax error: unexpected %"#,
    ),
    (
        r#"({} | rate()) ^ ({} | count_over_time())"#,
        1,
        15,
        r#"syntax error: unexpected ^"#,
    ),
    (
        r#"({} | rate()) ** ({} | count_over_time())"#,
        1,
        16,
        r#"syntax error: unexpected *"#,
    ),
    (
        r#"({} | rate()) >> ({} | count_over_time())"#,
        1,
        15,
        r#"syntax error: unexpected >>"#,
    ),
    (
        r#"({} | rate()) << ({} | count_over_time())"#,
        1,
        15,
        r#"syntax error: unexpected <<"#,
    ),
    (
        r#"({} | rate()) * 100000000000000000000000000000"#,
        1,
        17,
        r#"strconv.Atoi: parsing "100000000000000000000000000000": value out of range"#,
    ),
    (
        r#"({} | rate()) > (10s * 2)"#,
        1,
        22,
        r#"duration cannot be used in scalar arithmetic"#,
    ),
    (
        r#"({} | rate()) > (10s + 5s)"#,
        1,
        22,
        r#"duration cannot be used in scalar arithmetic"#,
    ),
    (
        r#"({} | rate()) * 10s"#,
        1,
        17,
        r#"duration cannot be used as a scalar operand in metric arithmetic"#,
    ),
    (
        r#"100s + ({} | rate())"#,
        1,
        1,
        r#"duration cannot be used as a scalar operand in metric arithmetic"#,
    ),
    (
        r#"({} | rate()) - 50ms"#,
        1,
        17,
        r#"duration cannot be used as a scalar operand in metric arithmetic"#,
    ),
    (
        r#"{ .a } | count() > 3 && count() < 10"#,
        1,
        22,
        r#"syntax error: unexpected &&"#,
    ),
    (
        r#"{ .a } | avg(duration) > 2 * 1s"#,
        1,
        28,
        r#"duration cannot be used in scalar arithmetic"#,
    ),
    (
        r#"{ status }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { status }"#,
    ),
    (
        r#"{ kind }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { kind }"#,
    ),
    (
        r#"{ ok }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { ok }"#,
    ),
    (
        r#"{ 1.1 }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { 1.1 }"#,
    ),
    (
        r#"{ 1h }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { 1h }"#,
    ),
    (
        r#"{ "foo" }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { "foo" }"#,
    ),
    (
        r#"{ 1 + 1 }"#,
        1,
        1,
        r#"span filter field expressions must resolve to a boolean: { 1 + 1 }"#,
    ),
    (
        r#"{ 1 + "foo" = 1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 + "foo""#,
    ),
    (
        r#"{ 1 - true = 1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 - true"#,
    ),
    (
        r#"{ 1 / ok = 1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 / ok"#,
    ),
    (
        r#"{ 1 ^ name = 1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 ^ name"#,
    ),
    (
        r#"{ 1 = "foo" }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 = "foo""#,
    ),
    (
        r#"{ 1 != true }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 != true"#,
    ),
    (
        r#"{ 1 > ok }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 > ok"#,
    ),
    (
        r#"{ 1 = name }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 = name"#,
    ),
    (
        r#"{ 1 =~ 2}"#,
        1,
        3,
        r#"illegal operation for the given types: 1 =~ 2"#,
    ),
    (
        r#"{ 1 !~ 2}"#,
        1,
        3,
        r#"illegal operation for the given types: 1 !~ 2"#,
    ),
    (
        r#"{ 1 && "foo" }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 && "foo""#,
    ),
    (
        r#"{ 1 || ok }"#,
        1,
        3,
        r#"binary operations must operate on the same type: 1 || ok"#,
    ),
    (
        r#"{ true || 1.1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: true || 1.1"#,
    ),
    (
        r#"{ status > ok }"#,
        1,
        3,
        r#"illegal operation for the given types: status > ok"#,
    ),
    (
        r#"{ kind < consumer }"#,
        1,
        3,
        r#"illegal operation for the given types: kind < consumer"#,
    ),
    (
        r#"{ traceDuration > "test" }"#,
        1,
        3,
        r#"binary operations must operate on the same type: traceDuration > "test""#,
    ),
    (
        r#"{ duration = "slow" }"#,
        1,
        3,
        r#"binary operations must operate on the same type: duration = "slow""#,
    ),
    (
        r#"{ rootServiceName = 1 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: rootServiceName = 1"#,
    ),
    (
        r#"{ rootName != 3.2 }"#,
        1,
        3,
        r#"binary operations must operate on the same type: rootName != 3.2"#,
    ),
    (
        r#"{ "foo" = span:childCount }"#,
        1,
        3,
        r#"binary operations must operate on the same type: "foo" = span:childCount"#,
    ),
    (
        r#"{ span:status = nil }"#,
        1,
        3,
        r#"status=nil is not valid because intrinsics cannot be nil"#,
    ),
    (
        r#"{ nil = span:status }"#,
        1,
        3,
        r#"status=nil is not valid because intrinsics cannot be nil"#,
    ),
    (
        r#"{ resource.service.name = nil }"#,
        1,
        3,
        r#"resource.service.name=nil is not valid because resource.service.name cannot be nil"#,
    ),
    (
        r#"{ nil = resource.service.name }"#,
        1,
        3,
        r#"resource.service.name=nil is not valid because resource.service.name cannot be nil"#,
    ),
    (
        r#"{ span.foo =~ "[" }"#,
        1,
        15,
        r#"invalid regex: "[": unclosed character class"#,
    ),
    (
        r#"{ span.foo !~ "(" }"#,
        1,
        15,
        r#"invalid regex: "(": unclosed group"#,
    ),
    (r#"{ .a =~ .b }"#, 1, 9, r#"invalid type for =~ or !~: .b"#),
    (
        r#"{ -true }"#,
        1,
        3,
        r#"illegal operation for the given type: -true"#,
    ),
    (
        r#"{ -"foo" = "bar" }"#,
        1,
        3,
        r#"illegal operation for the given type: -"foo""#,
    ),
    (
        r#"{ -ok = status }"#,
        1,
        3,
        r#"illegal operation for the given type: -ok"#,
    ),
    (
        r#"{ !"foo" = "bar" }"#,
        1,
        3,
        r#"illegal operation for the given type: !"foo""#,
    ),
    (
        r#"{ !ok = status }"#,
        1,
        3,
        r#"illegal operation for the given type: !ok"#,
    ),
    (
        r#"{ !1 = 1 }"#,
        1,
        3,
        r#"illegal operation for the given type: !1"#,
    ),
    (
        r#"{ !1h = 1 }"#,
        1,
        3,
        r#"illegal operation for the given type: !1h"#,
    ),
    (
        r#"min(1 = 3) = 1"#,
        1,
        1,
        r#"aggregate field expressions must resolve to a number type: min(1 = 3)"#,
    ),
    (
        r#"sum(3) = 2"#,
        1,
        1,
        r#"aggregate field expressions must reference the span: sum(3)"#,
    ),
    (
        r#"sum(3) = min(14)"#,
        1,
        1,
        r#"aggregate field expressions must reference the span: sum(3)"#,
    ),
    (
        r#"min(2h) < max(duration)"#,
        1,
        1,
        r#"aggregate field expressions must reference the span: min(2h)"#,
    ),
    (
        r#"max(name) = "foo""#,
        1,
        13,
        r#"syntax error: unexpected STRING"#,
    ),
    (
        r#"avg("foo") = "bar""#,
        1,
        14,
        r#"syntax error: unexpected STRING"#,
    ),
    (r#"max(status) = ok"#, 1, 15, r#"syntax error: unexpected ok"#),
    (r#"max(duration) < ok"#, 1, 17, r#"syntax error: unexpected ok"#),
    (
        r#"{ true } | by(1)"#,
        1,
        12,
        r#"grouping field expressions must reference the span: by(1)"#,
    ),
    (
        r#"{ true } | by("foo")"#,
        1,
        12,
        r#"grouping field expressions must reference the span: by("foo")"#,
    ),
    (
        r#"{ nestedSetLeft = "foo" }"#,
        1,
        3,
        r#"binary operations must operate on the same type: nestedSetLeft = "foo""#,
    ),
    (
        r#"{ nestedSetRight = false }"#,
        1,
        3,
        r#"binary operations must operate on the same type: nestedSetRight = false"#,
    ),
    (
        r#"{} | rate() | topk(0)"#,
        1,
        15,
        r#"limit must be greater than 0"#,
    ),
    (
        r#"{} | rate() | bottomk(0)"#,
        1,
        15,
        r#"limit must be greater than 0"#,
    ),
    (
        r#"{} | compare({status=error}) | topk(10)"#,
        1,
        6,
        r#"`compare()` cannot be used with second stage functions"#,
    ),
    (
        r#"{} | compare({status=error}) > 10"#,
        1,
        6,
        r#"`compare()` cannot be used with second stage functions"#,
    ),
    (
        r#"({} | compare({status=error})) + ({} | compare({status=error}))"#,
        1,
        32,
        r#"`compare()` cannot be used with second stage functions"#,
    ),
    (
        r#"{} | compare({status=error}, 0)"#,
        1,
        6,
        r#"compare() top number of values must be an integer between 1 and 1000"#,
    ),
    (
        r#"{} | compare({status=error}, 5, 10, 5)"#,
        1,
        6,
        r#"compare() end timestamp must be greater than start timestamp"#,
    ),
    (
        r#"{} | compare({status=error}, 5, 10)"#,
        1,
        35,
        r#"syntax error: unexpected ), expecting ,"#,
    ),
    (
        r#"{} | compare(status=error)"#,
        1,
        14,
        r#"syntax error: unexpected status, expecting {"#,
    ),
    (
        r#"{} | quantile_over_time(duration, 1.5)"#,
        1,
        35,
        r#"quantile must be between 0 and 1: 1.5"#,
    ),
    (
        r#"{} | quantile_over_time(duration)"#,
        1,
        33,
        r#"syntax error: unexpected ), expecting ,"#,
    ),
    (
        r#"{} | quantile_over_time(duration, -1)"#,
        1,
        35,
        r#"syntax error: unexpected -, expecting FLOAT or INTEGER"#,
    ),
    (
        r#"{} | rate(duration)"#,
        1,
        11,
        r#"syntax error: unexpected duration, expecting )"#,
    ),
    (r#"{} | min_over_time()"#, 1, 20, r#"syntax error: unexpected )"#),
    (
        r#"{ parent = nil }"#,
        1,
        3,
        r#"intrinsic (parent) not yet supported"#,
    ),
    (r#"{ .a = "unterminated }"#, 1, 8, r#"literal not terminated"#),
    (r#"{ .a = "bad \q escape" }"#, 1, 8, r#"invalid char escape"#),
    (
        r#"{ .a = 1_000 }"#,
        1,
        8,
        r#"strconv.Atoi: parsing "1_000": invalid syntax"#,
    ),
    (
        r#"{ .a = 0x10 }"#,
        1,
        8,
        r#"strconv.Atoi: parsing "0x10": invalid syntax"#,
    ),
    (
        r#"{ .a = 99999999999999999999 }"#,
        1,
        8,
        r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#,
    ),
    (
        r#"{ .a = 1e999 }"#,
        1,
        8,
        r#"strconv.ParseFloat: parsing "1e999": value out of range"#,
    ),
    (r#"/* never closed"#, 1, 1, r#"comment not terminated"#),
    (
        r#"{ .a } with(a)"#,
        1,
        14,
        r#"syntax error: unexpected ), expecting ="#,
    ),
    (r#"{ .a } with(a=)"#, 1, 15, r#"syntax error: unexpected )"#),
    (
        r#"{ .a } with(name=1)"#,
        1,
        13,
        r#"syntax error: unexpected name, expecting IDENTIFIER"#,
    ),
    (r#"{ .a } with(a=-1)"#, 1, 15, r#"syntax error: unexpected -"#),
    (
        r#"{ .a } && rate()"#,
        1,
        11,
        r#"syntax error: unexpected rate, expecting { or ("#,
    ),
    (r#"rate()"#, 1, 1, r#"syntax error: unexpected rate"#),
    (
        r#"{ .a } | rate() | { .b }"#,
        1,
        19,
        r#"syntax error: unexpected {"#,
    ),
    (r#"{ .a = foo }"#, 1, 8, r#"unknown identifier: foo"#),
    (r#"{ .a & .b }"#, 1, 6, r#"syntax error: unexpected IDENTIFIER"#),
];

/// Pieces of TraceQL the random tests assemble queries from.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    " ",
    ".a",
    "span.x",
    "resource.service.name",
    "parent.span.y",
    "span.\"a b\"",
    "name",
    "status",
    "duration",
    "span:id",
    "trace:",
    "event:name",
    "=",
    "!=",
    "=~",
    "!~",
    ">",
    ">=",
    "<",
    "<=",
    "&&",
    "||",
    "!",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    ">>",
    "<<",
    "~",
    "!>",
    "&>>",
    "|",
    ",",
    "1",
    "1.5",
    "10ms",
    "1h30m",
    "\"x\"",
    "`y`",
    "true",
    "nil",
    "error",
    "server",
    "count()",
    "avg(",
    "by(",
    "select(",
    "coalesce()",
    "rate()",
    "quantile_over_time(duration, .9)",
    "topk(",
    "compare(",
    "with(",
    "sample=0.1",
    "minInt",
    "\"",
    "`",
    "/*",
    "//",
    "\n",
    "é",
    "by (",
];

fn parse_ok(query: &str) -> RootExpr {
    match parse(query) {
        Ok(expr) => expr,
        Err(error) => panic!("{query:?} does not parse: {error}"),
    }
}

fn assert_round_trip(query: &str, expr: &RootExpr) {
    let printed = expr.to_string();
    let again = match parse(&printed) {
        Ok(again) => again,
        Err(error) => panic!("{query:?} printed as {printed:?}, which does not parse: {error}"),
    };
    assert_eq!(
        &again, expr,
        "{query:?} printed as {printed:?}, which parses differently"
    );
    assert_eq!(again.to_string(), printed, "{query:?}: printing is not stable");
}

#[test]
fn valid_queries_print_their_canonical_form_and_read_back() {
    for (query, canonical) in VALID {
        let expr = parse_ok(query);
        assert_eq!(expr.to_string(), *canonical, "canonical form of {query:?}");
        assert_round_trip(query, &expr);
        assert_eq!(query.parse::<RootExpr>().as_ref(), Ok(&expr));
    }
}

#[test]
fn invalid_queries_fail_with_tempo_messages_and_positions() {
    for (query, line, column, message) in INVALID {
        let error = match parse(query) {
            Ok(expr) => panic!("{query:?} parses as {expr}"),
            Err(error) => error,
        };
        assert_eq!(
            (error.line, error.column, error.message.as_str()),
            (*line, *column, *message),
            "{query:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("parse error at line {line}, col {column}: {message}")
        );
    }
}

#[test]
fn errors_count_lines_and_characters() {
    let error = parse("{ .a = \"é\" &&\n  .b = }").unwrap_err();
    assert_eq!((error.line, error.column), (2, 8));
    assert_eq!(
        error.to_string(),
        "parse error at line 2, col 8: syntax error: unexpected }"
    );
}

#[test]
fn grafana_search_builder_queries_answer_the_store_helpers() {
    let query = parse_ok(
        r#"{resource.service.name="agixt" && name="tool-call" && status=error && duration>100ms && span.run_id=~"r-1|r-2" && .tenant != nil}"#,
    );
    assert!(query.is_single_filter());
    assert!(!query.is_metrics());
    let filter = query.single_filter().unwrap();
    let conditions = filter.required_conditions();
    let printed: Vec<String> = conditions.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            r#"resource.service.name = "agixt""#,
            r#"name = "tool-call""#,
            "status = error",
            "duration > 100ms",
            r#"span.run_id =~ "r-1|r-2""#,
            ".tenant != nil",
        ]
    );
    assert!(filter.conditions_are_exhaustive());
    assert_eq!(
        conditions[0].field,
        &Field::Attribute(Attribute::new(AttributeScope::Resource, "service.name"))
    );
    assert_eq!(
        conditions[0].test,
        ConditionTest::Compare(CompareOp::Eq, &Static::String("agixt".to_owned()))
    );
    assert_eq!(
        conditions[3].test,
        ConditionTest::Compare(CompareOp::Gt, &Static::Duration { nanos: 100_000_000 })
    );
    let ConditionTest::Matches(regex) = conditions[4].test else {
        panic!("a regex condition");
    };
    assert_eq!(
        regex.literal_alternatives(),
        Some(vec!["r-1".to_owned(), "r-2".to_owned()])
    );
    assert!(regex.is_match("r-2") && !regex.is_match("r-12"));
    assert_eq!(conditions[5].test, ConditionTest::Exists);

    // `1s < duration` is `duration > 1s`; `||` is not pushable, so the list is partial.
    let filter = parse_ok("{ 1s < duration && (.a = 1 || .b = 2) }");
    let filter = filter.single_filter().unwrap();
    let conditions = filter.required_conditions();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].to_string(), "duration > 1s");
    assert!(!filter.conditions_are_exhaustive());

    let all = parse_ok("{}");
    assert!(all.single_filter().unwrap().is_match_all());
    assert!(all.single_filter().unwrap().required_conditions().is_empty());
    assert!(all.single_filter().unwrap().conditions_are_exhaustive());

    for query in [
        "{ .a } | count() > 1",
        "{ .a } && { .b }",
        "{ .a } | select(.b)",
        "{} | rate()",
    ] {
        assert!(!parse_ok(query).is_single_filter(), "{query}");
    }
    assert!(parse_ok("{ .a } with(most_recent=true)").is_single_filter());
}

#[test]
fn helpers_list_selected_and_referenced_fields_and_hints() {
    let query = parse_ok(
        "{ span.a = 1 } >> { status = error } | by(resource.service.name) | select(span.http.url, duration, span.http.url) with(most_recent=true, sample=0.5)",
    );
    let selected: Vec<String> = query.selected_fields().iter().map(ToString::to_string).collect();
    assert_eq!(selected, ["span.http.url", "duration"]);
    let referenced: Vec<String> = query
        .referenced_fields()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        referenced,
        [
            "span.a",
            "status",
            "resource.service.name",
            "span.http.url",
            "duration"
        ]
    );
    assert_eq!(query.spanset_filters().len(), 2);
    assert_eq!(query.hint("most_recent"), Some(&Static::Bool(true)));
    assert_eq!(query.hint("sample"), Some(&Static::Float(0.5)));
    assert_eq!(query.hint("other"), None);
    assert!(query.pipeline().unwrap().needs_whole_traces());

    let metrics = parse_ok("{ .x = 1 } | quantile_over_time(duration, .5, .99) by (resource.service.name)");
    let referenced: Vec<String> = metrics
        .referenced_fields()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(referenced, [".x", "duration", "resource.service.name"]);
}

#[test]
fn metrics_queries_have_typed_nodes() {
    let query = parse_ok("{ status = error } | rate() by (resource.service.name, span:name) | topk(5) > 1s");
    assert!(query.is_metrics());
    let Some(MetricsExpr::Pipeline(pipeline)) = query.metrics() else {
        panic!("a metrics pipeline");
    };
    assert_eq!(
        pipeline.pipeline.single_filter().unwrap().to_string(),
        "{ status = error }"
    );
    let MetricsFunction::Aggregate(aggregate) = &pipeline.function else {
        panic!("an aggregate");
    };
    assert_eq!(aggregate.op, MetricsOp::Rate);
    assert_eq!(aggregate.field, None);
    assert_eq!(
        aggregate.by,
        [
            Field::Attribute(Attribute::new(AttributeScope::Resource, "service.name")),
            Field::Intrinsic(Intrinsic::Name)
        ]
    );
    assert_eq!(
        pipeline.second_stages,
        [SecondStage::TopK(5), SecondStage::Filter(CompareOp::Gt, 1.0)]
    );

    let quantiles = parse_ok("{} | quantile_over_time(duration, 0, .5, 1)");
    let MetricsFunction::Aggregate(aggregate) =
        &quantiles.metrics().unwrap().single_pipeline().unwrap().function
    else {
        panic!("an aggregate");
    };
    assert_eq!(aggregate.field, Some(Field::Intrinsic(Intrinsic::Duration)));
    assert_eq!(aggregate.quantiles, [0.0, 0.5, 1.0]);

    let math = parse_ok("({ status = error } | count_over_time()) / ({} | count_over_time()) * 100 > 5");
    let Some(MetricsExpr::Staged(staged)) = math.metrics() else {
        panic!("stages over arithmetic");
    };
    assert_eq!(staged.stages, [SecondStage::Filter(CompareOp::Gt, 5.0)]);
    let MetricsExpr::Binary(product) = &staged.expr else {
        panic!("a product");
    };
    assert_eq!(product.op, ArithmeticOp::Mul);
    assert_eq!(product.rhs, MetricsExpr::Scalar(100.0));
    assert!(matches!(&product.lhs, MetricsExpr::Binary(ratio) if ratio.op == ArithmeticOp::Div));
    assert_eq!(math.metrics().unwrap().pipelines().len(), 2);

    let compare = parse_ok("{ .a } | compare({ status = error }, 20)");
    let MetricsFunction::Compare(compare) = &compare.metrics().unwrap().single_pipeline().unwrap().function
    else {
        panic!("compare");
    };
    assert_eq!(compare.top_n, 20);
    assert_eq!(compare.time_range_ns, None);
    assert_eq!(compare.selection.to_string(), "{ status = error }");
}

#[test]
fn field_expressions_follow_tempo_precedence() {
    fn filter_expr(query: &str) -> FieldExpr {
        match parse_ok(query).query {
            Query::Spansets(mut pipeline) => match pipeline.elements.pop() {
                Some(PipelineElement::Spansets(SpansetExpr::Filter(filter))) => filter.expr,
                other => panic!("{query}: {other:?}"),
            },
            other => panic!("{query}: {other:?}"),
        }
    }
    fn attr(name: &str) -> FieldExpr {
        FieldExpr::Field(Field::Attribute(Attribute::new(AttributeScope::None, name)))
    }
    fn binary(op: BinaryOp, lhs: FieldExpr, rhs: FieldExpr) -> FieldExpr {
        FieldExpr::Binary(Box::new(obs_traceql::BinaryExpr { op, lhs, rhs }))
    }
    fn unary(op: UnaryOp, expr: FieldExpr) -> FieldExpr {
        FieldExpr::Unary(Box::new(obs_traceql::UnaryExpr { op, expr }))
    }
    let add = BinaryOp::Arithmetic(ArithmeticOp::Add);
    let mul = BinaryOp::Arithmetic(ArithmeticOp::Mul);
    let pow = BinaryOp::Arithmetic(ArithmeticOp::Pow);
    let eq = BinaryOp::Compare(CompareOp::Eq);

    assert_eq!(
        filter_expr("{ .a * .b + .c }"),
        binary(add, binary(mul, attr("a"), attr("b")), attr("c"))
    );
    assert_eq!(
        filter_expr("{ .a + .b * .c }"),
        binary(add, attr("a"), binary(mul, attr("b"), attr("c")))
    );
    assert_eq!(
        filter_expr("{ .a ^ .b ^ .c }"),
        binary(pow, attr("a"), binary(pow, attr("b"), attr("c")))
    );
    // `&&` and `||` share one level, left-associative.
    assert_eq!(
        filter_expr("{ .a || .b && .c }"),
        FieldExpr::And(vec![FieldExpr::Or(vec![attr("a"), attr("b")]), attr("c")])
    );
    assert_eq!(
        filter_expr("{ .a && .b = .c }"),
        FieldExpr::And(vec![attr("a"), binary(eq, attr("b"), attr("c"))])
    );
    // `!` binds tighter than comparisons, looser than `*`.
    assert_eq!(
        filter_expr("{ !.a = .b }"),
        binary(eq, unary(UnaryOp::Not, attr("a")), attr("b"))
    );
    assert_eq!(
        filter_expr("{ !.a * .b }"),
        unary(UnaryOp::Not, binary(mul, attr("a"), attr("b")))
    );
    // Unary minus has the precedence of `+ -`.
    assert_eq!(
        filter_expr("{ -.a * .b = 1 }"),
        binary(
            eq,
            unary(UnaryOp::Negate, binary(mul, attr("a"), attr("b"))),
            FieldExpr::Static(Static::Int(1))
        )
    );
    assert_eq!(
        filter_expr("{ .c - -.a + .b }"),
        binary(
            add,
            binary(
                BinaryOp::Arithmetic(ArithmeticOp::Sub),
                attr("c"),
                unary(UnaryOp::Negate, attr("a"))
            ),
            attr("b")
        )
    );
    assert_eq!(
        filter_expr("{ .a = -1 }"),
        binary(eq, attr("a"), FieldExpr::Static(Static::Int(-1)))
    );
    assert_eq!(filter_expr("{ .a != nil }"), unary(UnaryOp::Exists, attr("a")));
    assert_eq!(filter_expr("{ nil = .a }"), unary(UnaryOp::NotExists, attr("a")));
    assert_eq!(
        filter_expr("{ kind = server }"),
        binary(
            eq,
            FieldExpr::Field(Field::Intrinsic(Intrinsic::Kind)),
            FieldExpr::Static(Static::Kind(SpanKind::Server))
        )
    );
    assert_eq!(
        filter_expr("{ span:status = ok }"),
        filter_expr("{ status = ok }"),
        "scoped and legacy intrinsics are one"
    );
    assert_eq!(
        filter_expr("{ status = ok }"),
        binary(
            eq,
            FieldExpr::Field(Field::Intrinsic(Intrinsic::Status)),
            FieldExpr::Static(Static::Status(Status::Ok))
        )
    );
}

#[test]
fn spanset_operators_follow_tempo_precedence() {
    fn ops(expr: &SpansetExpr) -> String {
        match expr {
            SpansetExpr::Filter(filter) => filter.to_string(),
            SpansetExpr::Pipeline(pipeline) => format!("[{pipeline}]"),
            SpansetExpr::Operation(operation) => {
                format!(
                    "({} {} {})",
                    ops(&operation.lhs),
                    operation.op.as_str(),
                    ops(&operation.rhs)
                )
            }
        }
    }
    let tree = |query: &str| match parse_ok(query).query {
        Query::Spansets(pipeline) => match pipeline.elements.as_slice() {
            [PipelineElement::Spansets(expr)] => ops(expr),
            other => panic!("{query}: {other:?}"),
        },
        other => panic!("{query}: {other:?}"),
    };
    assert_eq!(
        tree("{ .a } && { .b } >> { .c }"),
        "({ .a } && ({ .b } >> { .c }))"
    );
    assert_eq!(
        tree("{ .a } >> { .b } && { .c }"),
        "(({ .a } >> { .b }) && { .c })"
    );
    assert_eq!(tree("{ .a } >> { .b } ~ { .c }"), "(({ .a } >> { .b }) ~ { .c })");
    assert_eq!(
        tree("{ .a } || { .b } && { .c }"),
        "(({ .a } || { .b }) && { .c })"
    );
    assert_eq!(
        tree("{ .a } !~ { .b } &>> { .c }"),
        "(({ .a } !~ { .b }) &>> { .c })"
    );
    assert_eq!(
        tree("({ .a } | { .b }) > ({ .a } | { .b }) && ({ .c })"),
        "(([{ .a } | { .b }] > [{ .a } | { .b }]) && { .c })"
    );
    let Query::Spansets(pipeline) = parse_ok("{ .a } &> { .b }").query else {
        panic!("a search");
    };
    let [PipelineElement::Spansets(SpansetExpr::Operation(operation))] = pipeline.elements.as_slice() else {
        panic!("an operation");
    };
    assert_eq!(operation.op, SpansetOp::UnionChild);
    assert!(operation.op.is_structural());
}

#[test]
fn scalar_filters_hold_aggregates() {
    let Query::Spansets(pipeline) = parse_ok("{ .a } | avg(duration) * 2 > 1s").query else {
        panic!("a search");
    };
    let [_, PipelineElement::ScalarFilter(filter)] = pipeline.elements.as_slice() else {
        panic!("a scalar filter");
    };
    assert_eq!(filter.op, CompareOp::Gt);
    let ScalarExpr::Binary(product) = &filter.lhs else {
        panic!("a product");
    };
    assert_eq!(product.op, ArithmeticOp::Mul);
    assert!(matches!(&product.lhs, ScalarExpr::Aggregate(aggregate) if aggregate.op == AggregateOp::Avg));
    assert_eq!(product.rhs, ScalarExpr::Static(Static::Int(2)));
    // Constant arithmetic is folded as Tempo folds its `scalar` rule, durations aside.
    assert!(parse("{ .a } | avg(duration) > 1s + 500ms").is_err());
    let Query::Spansets(pipeline) = parse_ok("{ .a } | count() > 2 * 3 - 1").query else {
        panic!("a search");
    };
    let [_, PipelineElement::ScalarFilter(filter)] = pipeline.elements.as_slice() else {
        panic!("a scalar filter");
    };
    assert_eq!(filter.rhs, ScalarExpr::Static(Static::Int(5)));

    let Query::Spansets(pipeline) = parse_ok("({ .a } | by(.b) | count()) > ({ .c } | count())").query else {
        panic!("a search");
    };
    let [PipelineElement::ScalarFilter(filter)] = pipeline.elements.as_slice() else {
        panic!("a scalar filter");
    };
    let ScalarExpr::Pipeline(scalar) = &filter.lhs else {
        panic!("a scalar pipeline");
    };
    assert_eq!(scalar.pipeline.elements.len(), 2);
    assert_eq!(scalar.aggregate.op, AggregateOp::Count);
}

#[test]
fn queries_longer_than_the_limit_are_refused() {
    let long_value = "a".repeat(obs_traceql::MAX_QUERY_BYTES);
    let query = format!("{{ .a = \"{long_value}\" }}");
    let error = parse(&query).unwrap_err();
    assert_eq!((error.line, error.column), (1, 1));
    assert!(
        error.message.starts_with("query is too long"),
        "{}",
        error.message
    );
    // Long but within the limit.
    let value = "a".repeat(100_000);
    let expr = parse_ok(&format!("{{ .a = `{value}` }}"));
    assert_round_trip("long", &expr);
}

#[test]
fn long_flat_conjunctions_are_not_deep() {
    let conditions: Vec<String> = (0..5_000)
        .map(|index| format!("span.a{index} = {index}"))
        .collect();
    let query = format!("{{ {} }}", conditions.join(" && "));
    let expr = parse_ok(&query);
    assert_eq!(expr.single_filter().unwrap().required_conditions().len(), 5_000);
    assert_round_trip("conjunction", &expr);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let huge = 50_000;
    let too_deep = [
        "(".repeat(huge),
        format!("{}{{}}{}", "(".repeat(huge), ")".repeat(huge)),
        format!("{{ {}.a{} }}", "(".repeat(huge), ")".repeat(huge)),
        format!("{{ {}.a }}", "!".repeat(huge)),
        format!("{{ {}.a }}", "-".repeat(huge)),
        format!("{}1", "-".repeat(huge)),
        format!("{{ .a{} }}", " + 1".repeat(10_000)),
        format!("{{ .a{} = 1 }}", " ^ .b".repeat(10_000)),
        format!("{{}}{}", " >> {}".repeat(10_000)),
        format!("{}{{}} | rate(){}", "(".repeat(huge), ")".repeat(huge)),
        format!("({{}} | rate()){}", " + ({} | rate())".repeat(3_000)),
        format!("{{}} | count() > {}1", "(".repeat(huge)),
        format!("{{ .a = {} }}", "(".repeat(huge)),
    ];
    for query in &too_deep {
        assert!(query.len() <= obs_traceql::MAX_QUERY_BYTES);
        let error = parse(query).unwrap_err();
        assert!(
            error.message.starts_with("query is nested too deeply")
                || error.message.starts_with("syntax error"),
            "{}",
            error.message
        );
    }
    // Just under the limit: parses, prints, reads back and drops on a thread with a small
    // stack.
    let depth = obs_traceql::MAX_DEPTH - 5;
    let deep_but_allowed = vec![
        format!("{}{{ .a }}{}", "(".repeat(depth), ")".repeat(depth)),
        format!("{{ {}.a{} }}", "(".repeat(depth), ")".repeat(depth)),
        format!("{{ {}.a }}", "!".repeat(depth)),
        format!("{{ .a{} = 1 }}", " + 1".repeat(depth)),
        format!("{{ .a{} = 1 }}", " ^ .b".repeat(depth)),
        format!("{{}}{}", " >> {}".repeat(depth)),
        format!("({{}} | rate()){}", " + ({} | rate())".repeat(depth - 2)),
        format!("{}{{}} | rate(){}", "(".repeat(depth), ")".repeat(depth)),
    ];
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for query in &deep_but_allowed {
                let expr = parse_ok(query);
                assert_round_trip(query, &expr);
                let _ = expr.referenced_fields();
                drop(expr);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Runs `check` on `query`, which must not panic; a query that parses must round-trip.
fn check_never_panics(query: &str) -> bool {
    match parse(query) {
        Ok(expr) => {
            assert_round_trip(query, &expr);
            let _ = expr.referenced_fields();
            let _ = expr.selected_fields();
            for filter in expr.spanset_filters() {
                for condition in filter.required_conditions() {
                    let _ = condition.to_string();
                }
            }
            true
        }
        Err(error) => {
            assert!(error.line >= 1 && error.column >= 1);
            assert!(error.offset <= query.len());
            false
        }
    }
}

#[test]
fn truncated_queries_never_panic() {
    for (query, _) in VALID {
        for (end, _) in query.char_indices() {
            check_never_panics(&query[..end]);
        }
    }
    for (query, ..) in INVALID {
        for (end, _) in query.char_indices() {
            check_never_panics(&query[..end]);
        }
    }
}

#[test]
fn random_fragment_soup_never_panics() {
    const OPERANDS: &[&str] = &[
        ".a",
        "span.x",
        "resource.service.name",
        "name",
        "status",
        "duration",
        "span:id",
        "1",
        "-2.5",
        "10ms",
        "\"x\"",
        "error",
        "server",
        "true",
        "nil",
        "(.b + 1)",
    ];
    const OPERATORS: &[&str] = &[
        "=", "!=", "=~", "!~", ">", ">=", "<", "<=", "&&", "||", "+", "*", "^",
    ];
    const TAILS: &[&str] = &[
        "",
        " | count() > 2",
        " | rate() by (name)",
        " >> { .b }",
        " | select(.c)",
        " with(sample=0.1)",
        " | quantile_over_time(duration, .9) | topk(3)",
        " && ({} | count() > 1)",
    ];
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for round in 0..30_000 {
        let query: String = if round % 2 == 0 {
            (0..random.below(12) + 1)
                .map(|_| FRAGMENTS[random.below(FRAGMENTS.len())])
                .collect()
        } else {
            let mut query = String::from("{ ");
            for index in 0..random.below(4) + 1 {
                if index > 0 {
                    query.push_str(OPERATORS[random.below(OPERATORS.len())]);
                }
                query.push_str(OPERANDS[random.below(OPERANDS.len())]);
                query.push(' ');
                query.push_str(OPERATORS[random.below(OPERATORS.len())]);
                query.push(' ');
                query.push_str(OPERANDS[random.below(OPERANDS.len())]);
            }
            query.push_str(" }");
            query.push_str(TAILS[random.below(TAILS.len())]);
            query
        };
        if check_never_panics(&query) {
            parsed += 1;
        }
    }
    // The soup must reach the parser's deeper states, not only fail at the first token.
    assert!(parsed > 500, "only {parsed} random queries parsed");
}

#[test]
fn random_bytes_never_panic() {
    let mut random = Random(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..random.below(48)).map(|_| random.next() as u8).collect();
        check_never_panics(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn mutated_valid_queries_never_panic() {
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    for (query, _) in VALID {
        let chars: Vec<char> = query.chars().collect();
        for _ in 0..40 {
            let mut mutated = chars.clone();
            for _ in 0..random.below(3) + 1 {
                let at = random.below(mutated.len() + 1);
                match random.below(3) {
                    0 if at < mutated.len() => {
                        mutated.remove(at);
                    }
                    1 => {
                        let fragment = FRAGMENTS[random.below(FRAGMENTS.len())];
                        for (offset, c) in fragment.chars().enumerate() {
                            mutated.insert(at + offset, c);
                        }
                    }
                    _ if at < mutated.len() => mutated[at] = chars[random.below(chars.len())],
                    _ => {}
                }
            }
            let mutated: String = mutated.into_iter().collect();
            check_never_panics(&mutated);
        }
    }
}

#[test]
fn table_sizes() {
    // Keeps the tables from shrinking unnoticed.
    println!("{} valid, {} invalid", VALID.len(), INVALID.len());
    assert!(VALID.len() >= 350, "{} valid queries", VALID.len());
    assert!(INVALID.len() >= 150, "{} invalid queries", INVALID.len());
}
