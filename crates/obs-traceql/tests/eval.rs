//! The engine against hand-built traces: which spans each construct selects and which series
//! each metrics function produces. Every expectation is worked out by hand in the comments
//! from the trace layout below, independently of the engine.
//!
//! The Jarvis trace (indices into `spans`, start offsets from the trace start, durations):
//!
//! ```text
//! 0 POST /api/ask   librechat  server  unset  +0ms     5s      session_id=s-1 http.status_code=200
//! └─1 agixt.run     agixt      internal ok    +100ms   4s      run_id=r-1 agent=jarvis session_id=s-1
//!   ├─2 tool-call   agixt      client  unset  +200ms   300ms   task_id=t-1 tool=web_search agent=jarvis retries=0 score=0.5
//!   ├─3 tool-call   agixt      client  error  +600ms   1500ms  task_id=t-2 tool=shell retries=2 score=1.0 "timeout"
//!   │ │                                                        event "exception" at +400ms, exception.type=TimeoutError
//!   │ └─5 db.query  agixt      client  unset  +700ms   50ms    db.system=postgres; link to another trace, kind=follows
//!   └─4 llm.completion agixt   client  ok     +2200ms  1800ms  model=gpt-4o tokens=1200 agent=jarvis deployment.environment=canary
//! ```
//!
//! The agixt resource has `deployment.environment=prod`; its scope is `agixt.tracer` 1.2.0
//! with `otel.library=python`, librechat's `librechat` 0.7. Span ids are `0000000000000a0N`
//! with N = index + 1; the trace id is `0000…abcd`.

use std::sync::Arc;

use obs_traceql::model::{Event, Link, Resource, Scope};
use obs_traceql::{
    AttrValue, EvalError, MetricsEval, RootExpr, Series, Span, SpanKind, SpansetMatch, Status, Trace, parse,
    response_attributes, search,
};

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
/// The Jarvis trace's start in the metrics tests: 1000 s after the epoch.
const BASE: u64 = 1_000 * SECOND;

fn string(text: &str) -> AttrValue {
    AttrValue::String(text.to_owned())
}

fn attrs(pairs: &[(&str, AttrValue)]) -> Vec<(String, AttrValue)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn span_id(index: u8) -> [u8; 8] {
    [0, 0, 0, 0, 0, 0, 0x0a, index + 1]
}

struct SpanSpec<'a> {
    name: &'a str,
    resource: &'a Arc<Resource>,
    scope: &'a Arc<Scope>,
    parent: Option<u8>,
    start_ms: u64,
    duration_ms: u64,
    kind: SpanKind,
    status: Status,
    attributes: Vec<(String, AttrValue)>,
}

fn build(base_ns: u64, index: u8, spec: SpanSpec<'_>) -> Span {
    let start_ns = base_ns + spec.start_ms * MS;
    Span {
        span_id: span_id(index),
        parent_span_id: spec.parent.map_or([0; 8], span_id),
        name: spec.name.to_owned(),
        kind: spec.kind,
        status: spec.status,
        status_message: String::new(),
        start_ns,
        end_ns: start_ns + spec.duration_ms * MS,
        attributes: spec.attributes,
        resource: Arc::clone(spec.resource),
        scope: Arc::clone(spec.scope),
        events: Vec::new(),
        links: Vec::new(),
    }
}

fn resource(service: &str, extra: &[(&str, AttrValue)]) -> Arc<Resource> {
    let mut attributes = attrs(&[("service.name", string(service))]);
    attributes.extend(attrs(extra));
    Arc::new(Resource { attributes })
}

fn scope(name: &str, version: &str, extra: &[(&str, AttrValue)]) -> Arc<Scope> {
    Arc::new(Scope {
        name: name.to_owned(),
        version: version.to_owned(),
        attributes: attrs(extra),
    })
}

/// The Jarvis trace described in the module docs, starting at `base_ns`.
fn jarvis(base_ns: u64) -> Trace {
    let librechat = resource("librechat", &[]);
    let agixt = resource("agixt", &[("deployment.environment", string("prod"))]);
    let librechat_scope = scope("librechat", "0.7", &[]);
    let agixt_scope = scope("agixt.tracer", "1.2.0", &[("otel.library", string("python"))]);
    let spec = |name: &'static str,
                parent: Option<u8>,
                start_ms: u64,
                duration_ms: u64,
                kind: SpanKind,
                status: Status,
                attributes: Vec<(String, AttrValue)>| {
        let server = parent.is_none();
        SpanSpec {
            name,
            resource: if server { &librechat } else { &agixt },
            scope: if server { &librechat_scope } else { &agixt_scope },
            parent,
            start_ms,
            duration_ms,
            kind,
            status,
            attributes,
        }
    };
    let mut spans = vec![
        build(
            base_ns,
            0,
            spec(
                "POST /api/ask",
                None,
                0,
                5_000,
                SpanKind::Server,
                Status::Unset,
                attrs(&[
                    ("session_id", string("s-1")),
                    ("http.status_code", AttrValue::Int(200)),
                ]),
            ),
        ),
        build(
            base_ns,
            1,
            spec(
                "agixt.run",
                Some(0),
                100,
                4_000,
                SpanKind::Internal,
                Status::Ok,
                attrs(&[
                    ("run_id", string("r-1")),
                    ("agent", string("jarvis")),
                    ("session_id", string("s-1")),
                ]),
            ),
        ),
        build(
            base_ns,
            2,
            spec(
                "tool-call",
                Some(1),
                200,
                300,
                SpanKind::Client,
                Status::Unset,
                attrs(&[
                    ("task_id", string("t-1")),
                    ("tool", string("web_search")),
                    ("agent", string("jarvis")),
                    ("retries", AttrValue::Int(0)),
                    ("score", AttrValue::Float(0.5)),
                ]),
            ),
        ),
        build(
            base_ns,
            3,
            spec(
                "tool-call",
                Some(1),
                600,
                1_500,
                SpanKind::Client,
                Status::Error,
                attrs(&[
                    ("task_id", string("t-2")),
                    ("tool", string("shell")),
                    ("retries", AttrValue::Int(2)),
                    ("score", AttrValue::Float(1.0)),
                ]),
            ),
        ),
        build(
            base_ns,
            4,
            spec(
                "llm.completion",
                Some(1),
                2_200,
                1_800,
                SpanKind::Client,
                Status::Ok,
                attrs(&[
                    ("model", string("gpt-4o")),
                    ("tokens", AttrValue::Int(1200)),
                    ("agent", string("jarvis")),
                    ("deployment.environment", string("canary")),
                ]),
            ),
        ),
        build(
            base_ns,
            5,
            spec(
                "db.query",
                Some(3),
                700,
                50,
                SpanKind::Client,
                Status::Unset,
                attrs(&[("db.system", string("postgres"))]),
            ),
        ),
    ];
    spans[3].status_message = "timeout".to_owned();
    let exception_ns = spans[3].start_ns + 400 * MS;
    spans[3].events.push(Event {
        name: "exception".to_owned(),
        time_ns: exception_ns,
        attributes: attrs(&[("exception.type", string("TimeoutError"))]),
    });
    spans[5].links.push(Link {
        trace_id: [0x11; 16],
        span_id: [0x22; 8],
        attributes: attrs(&[("kind", string("follows"))]),
    });
    let mut trace_id = [0u8; 16];
    trace_id[14] = 0xab;
    trace_id[15] = 0xcd;
    Trace { trace_id, spans }
}

/// A health check: root `GET /health` (10 ms, ok) and its child `cache.get` (2 ms).
fn health(base_ns: u64) -> Trace {
    let api = resource("api", &[]);
    let api_scope = scope("api", "1", &[]);
    let spec = |name: &'static str,
                parent: Option<u8>,
                start_ms: u64,
                duration_ms: u64,
                kind: SpanKind,
                status: Status| SpanSpec {
        name,
        resource: &api,
        scope: &api_scope,
        parent,
        start_ms,
        duration_ms,
        kind,
        status,
        attributes: Vec::new(),
    };
    Trace {
        trace_id: [2; 16],
        spans: vec![
            build(
                base_ns,
                0,
                spec("GET /health", None, 0, 10, SpanKind::Server, Status::Ok),
            ),
            build(
                base_ns,
                1,
                spec("cache.get", Some(0), 1, 2, SpanKind::Client, Status::Unset),
            ),
        ],
    }
}

/// A trace whose root was never received: `orphan` (parent id 0x99…, absent, error) and
/// its child `orphan-child`.
fn rootless(base_ns: u64) -> Trace {
    let worker = resource("worker", &[]);
    let worker_scope = scope("worker", "1", &[]);
    let mut orphan = build(
        base_ns,
        0,
        SpanSpec {
            name: "orphan",
            resource: &worker,
            scope: &worker_scope,
            parent: None,
            start_ms: 0,
            duration_ms: 50,
            kind: SpanKind::Consumer,
            status: Status::Error,
            attributes: Vec::new(),
        },
    );
    orphan.parent_span_id = [0x99; 8];
    let child = build(
        base_ns,
        1,
        SpanSpec {
            name: "orphan-child",
            resource: &worker,
            scope: &worker_scope,
            parent: Some(0),
            start_ms: 10,
            duration_ms: 5,
            kind: SpanKind::Internal,
            status: Status::Unset,
            attributes: Vec::new(),
        },
    );
    Trace {
        trace_id: [3; 16],
        spans: vec![orphan, child],
    }
}

fn query(text: &str) -> RootExpr {
    parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn run(text: &str, trace: &Trace) -> Vec<SpansetMatch> {
    search(&query(text), trace).unwrap_or_else(|err| panic!("{text}: {err}"))
}

/// The indices of every span the query returns, ascending.
fn spans(text: &str, trace: &Trace) -> Vec<usize> {
    let mut all: Vec<usize> = run(text, trace).into_iter().flat_map(|set| set.spans).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Asserts the spans each query returns from the Jarvis trace.
fn expect_jarvis(cases: &[(&str, &[usize])]) {
    let trace = jarvis(BASE);
    for (text, expected) in cases {
        assert_eq!(spans(text, &trace), *expected, "{text}");
    }
}

#[test]
fn span_intrinsics() {
    expect_jarvis(&[
        ("{}", &[0, 1, 2, 3, 4, 5]),
        ("{ status = error }", &[3]),
        ("{ status != error }", &[0, 1, 2, 4, 5]),
        ("{ span:status = ok }", &[1, 4]),
        // durations above 1s: 5s, 4s, 1.5s, 1.8s
        ("{ duration > 1s }", &[0, 1, 3, 4]),
        ("{ duration >= 300ms && duration < 1s }", &[2]),
        ("{ span:duration <= 50ms }", &[5]),
        ("{ name = \"tool-call\" }", &[2, 3]),
        ("{ kind = server }", &[0]),
        ("{ kind = client }", &[2, 3, 4, 5]),
        ("{ statusMessage = \"timeout\" }", &[3]),
        // children: 0 -> 1; 1 -> 2, 3, 4; 3 -> 5
        ("{ span:childCount = 3 }", &[1]),
        ("{ span:childCount = 0 }", &[2, 4, 5]),
        ("{ span:childCount > 0 }", &[0, 1, 3]),
        ("{ span:id = \"0000000000000a04\" }", &[3]),
        ("{ span:parentID = \"0000000000000a02\" }", &[2, 3, 4]),
        // a root has no parent id
        ("{ span:parentID =~ \".*\" }", &[1, 2, 3, 4, 5]),
    ]);
}

#[test]
fn trace_level_intrinsics() {
    expect_jarvis(&[
        ("{ trace:rootService = \"librechat\" }", &[0, 1, 2, 3, 4, 5]),
        ("{ rootServiceName = \"agixt\" }", &[]),
        ("{ rootName = \"POST /api/ask\" && name = \"db.query\" }", &[5]),
        // the trace spans +0ms .. +5000ms (the root ends last)
        ("{ traceDuration = 5s && kind = server }", &[0]),
        ("{ trace:duration > 5s }", &[]),
        // trace ids lose their leading zeros on both sides
        ("{ trace:id = \"abcd\" && kind = server }", &[0]),
        ("{ trace:id = \"0000abcd\" && kind = server }", &[0]),
        ("{ trace:id = \"abce\" }", &[]),
    ]);
    // Without a root span, Tempo stores empty root names.
    let trace = rootless(BASE);
    assert_eq!(spans("{ rootServiceName = \"\" }", &trace), [0, 1]);
    assert_eq!(spans("{ rootName != \"\" }", &trace), Vec::<usize>::new());
    // the trace lasts from the orphan's start to its end: 50ms
    assert_eq!(spans("{ traceDuration = 50ms }", &trace), [0, 1]);
}

#[test]
fn event_link_and_instrumentation_fields() {
    expect_jarvis(&[
        ("{ event:name = \"exception\" }", &[3]),
        ("{ event.exception.type = \"TimeoutError\" }", &[3]),
        // the event is 400ms after span 3's start
        ("{ event:timeSinceStart > 300ms }", &[3]),
        ("{ event:timeSinceStart > 500ms }", &[]),
        ("{ event:name != \"x\" }", &[3]),
        ("{ link:traceID = \"11111111111111111111111111111111\" }", &[5]),
        ("{ link:spanID = \"2222222222222222\" }", &[5]),
        ("{ link.kind = \"follows\" }", &[5]),
        ("{ instrumentation:name = \"agixt.tracer\" }", &[1, 2, 3, 4, 5]),
        ("{ instrumentation:version = \"0.7\" }", &[0]),
        ("{ instrumentation.otel.library = \"python\" }", &[1, 2, 3, 4, 5]),
    ]);
}

#[test]
fn nested_set_numbers_follow_tempo() {
    // Depth first from the root, children in span order: 0 [1, 12], 1 [2, 11], 2 [3, 4],
    // 3 [5, 8], 5 [6, 7], 4 [9, 10]; a span's parent number is its parent's left.
    expect_jarvis(&[
        ("{ nestedSetParent = -1 }", &[0]),
        ("{ nestedSetLeft = 5 }", &[3]),
        ("{ nestedSetRight = 12 }", &[0]),
        ("{ nestedSetParent = 2 }", &[2, 3, 4]),
        ("{ nestedSetParent = 5 }", &[5]),
    ]);
}

#[test]
fn attribute_scopes() {
    expect_jarvis(&[
        ("{ resource.service.name = \"agixt\" }", &[1, 2, 3, 4, 5]),
        ("{ span.service.name = \"agixt\" }", &[]),
        ("{ .service.name = \"librechat\" }", &[0]),
        // span 4's span-level value shadows its resource's for unscoped lookups
        ("{ .deployment.environment = \"prod\" }", &[1, 2, 3, 5]),
        ("{ .deployment.environment = \"canary\" }", &[4]),
        ("{ resource.deployment.environment = \"prod\" }", &[1, 2, 3, 4, 5]),
        ("{ span.agent = \"jarvis\" }", &[1, 2, 4]),
        ("{ span.session_id = \"s-1\" && span.run_id = \"r-1\" }", &[1]),
    ]);
}

#[test]
fn missing_attributes_never_compare() {
    expect_jarvis(&[
        // only span 2 has a tool other than "shell"; spans without .tool do not match !=
        ("{ .tool != \"shell\" }", &[2]),
        ("{ .tool !~ \"sh.*\" }", &[2]),
        ("{ .tool > \"\" }", &[2, 3]),
        ("{ .tool = nil }", &[0, 1, 4, 5]),
        ("{ .tool != nil }", &[2, 3]),
        // `.tool = "shell"` is false (not nil) without .tool, so its negation is true
        ("{ !(.tool = \"shell\") }", &[0, 1, 2, 4, 5]),
        ("{ .missing + 1 > 0 }", &[]),
    ]);
}

#[test]
fn numeric_and_string_type_rules() {
    expect_jarvis(&[
        // ints and floats compare by value
        ("{ .retries = 2.0 }", &[3]),
        ("{ .score = 1 }", &[3]),
        ("{ .score > 0.4 }", &[2, 3]),
        ("{ .retries > 1 }", &[3]),
        // an int never equals a string
        ("{ .retries = \"2\" }", &[]),
        ("{ .http.status_code >= 200 && .http.status_code < 300 }", &[0]),
        // an int attribute compares with a duration in nanoseconds: 1200 > 1000
        ("{ .tokens > 1us }", &[4]),
        ("{ .tokens < 2us }", &[4]),
        // strings compare bytewise: "web_search" and "shell" are after "s", "shell" before "t"
        ("{ .tool > \"s\" }", &[2, 3]),
        ("{ .tool < \"t\" }", &[3]),
        // arithmetic: 2 * 2 + 1 = 5; 0 + 1 = 1; 5s / 2 and 4s / 2 exceed 1s
        ("{ .retries * 2 + 1 = 5 }", &[3]),
        ("{ .retries + 1 = 1 }", &[2]),
        ("{ duration / 2 > 1s }", &[0, 1]),
        ("{ .retries % 2 = 0 }", &[2, 3]),
        ("{ .retries ^ 3 = 8 }", &[3]),
        ("{ -.retries = -2 }", &[3]),
        ("{ .score * 2 = 1 }", &[2]),
    ]);
}

#[test]
fn regexes_and_boolean_logic() {
    expect_jarvis(&[
        ("{ name =~ \"tool-.*\" }", &[2, 3]),
        // regexes match whole values
        ("{ name =~ \"tool\" }", &[]),
        (
            "{ resource.service.name =~ \"agi.*|lib.*\" }",
            &[0, 1, 2, 3, 4, 5],
        ),
        ("{ name !~ \"tool-.*|db.*\" }", &[0, 1, 4]),
        ("{ status = error || kind = server }", &[0, 3]),
        ("{ name = \"tool-call\" && !(status = error) }", &[2]),
        ("{ (kind = client && status = ok) || .run_id = \"r-1\" }", &[1, 4]),
    ]);
}

#[test]
fn spanset_and_or() {
    expect_jarvis(&[
        // both sides match: the union of their spans
        ("{ status = error } && { kind = server }", &[0, 3]),
        ("{ status = error } && { name = \"nope\" }", &[]),
        ("{ name = \"nope\" } || { kind = server }", &[0]),
        ("{ status = error } || { kind = server }", &[0, 3]),
    ]);
    let trace = health(BASE);
    assert_eq!(
        spans("{ status = error } && { kind = server }", &trace),
        Vec::<usize>::new()
    );
    assert_eq!(spans("{ status = error } || { kind = server }", &trace), [0]);
}

#[test]
fn structural_operators() {
    expect_jarvis(&[
        ("{ name = \"agixt.run\" } > { name = \"tool-call\" }", &[2, 3]),
        // children of the jarvis-agent spans 1, 2 and 4: only 1 has children
        ("{ .agent = \"jarvis\" } > { }", &[2, 3, 4]),
        (
            "{ resource.service.name = \"librechat\" } >> { status = error }",
            &[3],
        ),
        ("{ kind = server } >> { }", &[1, 2, 3, 4, 5]),
        ("{ name = \"db.query\" } < { }", &[3]),
        ("{ name = \"db.query\" } << { }", &[0, 1, 3]),
        // siblings of the tool calls: each other and the llm call
        ("{ name = \"tool-call\" } ~ { }", &[2, 3, 4]),
        // a span is not its own sibling
        ("{ status = error } ~ { name = \"tool-call\" }", &[2]),
        (
            "{ name = \"agixt.run\" } !> { name =~ \"tool-call|db.query\" }",
            &[5],
        ),
        ("{ kind = server } !>> { }", &[0]),
        ("{ name = \"db.query\" } !< { name = \"tool-call\" }", &[2]),
        ("{ status = error } !<< { }", &[2, 3, 4, 5]),
        ("{ name = \"tool-call\" } !~ { }", &[0, 1, 5]),
        // an empty left side: nothing is related to it
        ("{ name = \"nope\" } !> { kind = server }", &[0]),
        ("{ name = \"nope\" } > { }", &[]),
        // union forms return both sides of each related pair
        ("{ name = \"agixt.run\" } &> { status = error }", &[1, 3]),
        ("{ name = \"db.query\" } &< { }", &[3, 5]),
        ("{ kind = server } &>> { status = error }", &[0, 3]),
        ("{ status = error } &<< { }", &[0, 1, 3]),
        ("{ status = error } &~ { name = \"llm.completion\" }", &[3, 4]),
        ("{ name = \"db.query\" } &~ { }", &[]),
        // chains are left-associative: (server > agixt.run) > tool-call
        (
            "{ kind = server } > { name = \"agixt.run\" } > { name = \"tool-call\" }",
            &[2, 3],
        ),
        ("{ kind = server } > { name = \"tool-call\" }", &[]),
    ]);
    // Spans not reachable from a root are related to nothing, as in Tempo's nested sets.
    let trace = rootless(BASE);
    assert_eq!(spans("{ } > { }", &trace), Vec::<usize>::new());
    assert_eq!(spans("{ } !> { }", &trace), [0, 1]);
    // Roots share the parent number -1: the health root has no other root.
    assert_eq!(spans("{ } ~ { }", &health(BASE)), Vec::<usize>::new());
}

#[test]
fn aggregates_and_scalar_filters() {
    let trace = jarvis(BASE);
    let sets = run("{ name = \"tool-call\" } | count() > 1", &trace);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].spans, [2, 3]);
    assert_eq!(sets[0].matched, 2);
    assert_eq!(sets[0].attributes, attrs(&[("count()", AttrValue::Int(2))]));
    assert!(run("{ name = \"tool-call\" } | count() > 2", &trace).is_empty());

    // avg(300ms, 1500ms) = 900ms
    let sets = run("{ name = \"tool-call\" } | avg(duration) > 800ms", &trace);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].attributes, attrs(&[("avg(duration)", string("900ms"))]));
    assert!(run("{ name = \"tool-call\" } | avg(duration) > 1s", &trace).is_empty());

    expect_jarvis(&[
        ("{ } | max(duration) = 5s", &[0, 1, 2, 3, 4, 5]),
        ("{ } | min(duration) < 100ms", &[0, 1, 2, 3, 4, 5]),
        ("{ } | min(duration) < 50ms", &[]),
        // retries 0 + 2; spans without .retries are skipped
        ("{ } | sum(.retries) = 2", &[0, 1, 2, 3, 4, 5]),
        ("{ } | avg(.score) = 0.75", &[0, 1, 2, 3, 4, 5]),
        ("{ } | avg(.missing) > 0", &[]),
        ("{ kind = client } | count() = 4", &[2, 3, 4, 5]),
    ]);
    let sets = run("{ } | sum(.retries) = 2", &trace);
    assert_eq!(sets[0].attributes, attrs(&[("sum(.retries)", AttrValue::Int(2))]));
}

#[test]
fn group_by_coalesce_and_sub_pipelines() {
    let trace = jarvis(BASE);
    let mut sets = run(
        "{ name = \"tool-call\" || name = \"llm.completion\" } | by(name)",
        &trace,
    );
    sets.sort_by_key(|set| set.spans.clone());
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].spans, [2, 3]);
    assert_eq!(sets[0].attributes, attrs(&[("by(name)", string("tool-call"))]));
    assert_eq!(sets[1].spans, [4]);
    assert_eq!(
        sets[1].attributes,
        attrs(&[("by(name)", string("llm.completion"))])
    );

    // librechat has 1 span, agixt 5
    let sets = run("{ } | by(resource.service.name) | count() > 1", &trace);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].spans, [1, 2, 3, 5, 4], "sorted by start time");
    assert_eq!(
        sets[0].attributes,
        attrs(&[
            ("by(resource.service.name)", string("agixt")),
            ("count()", AttrValue::Int(5)),
        ])
    );

    let sets = run("{ } | by(resource.service.name) | coalesce()", &trace);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].spans, [0, 1, 2, 3, 5, 4]);
    assert!(sets[0].attributes.is_empty());

    // a missing by() value groups under nil
    let sets = run("{ kind = client } | by(span.tool)", &trace);
    let nil_group: Vec<&SpansetMatch> = sets
        .iter()
        .filter(|set| set.attributes == attrs(&[("by(span.tool)", string("nil"))]))
        .collect();
    assert_eq!(nil_group.len(), 1);
    assert_eq!(nil_group[0].spans, [5, 4]);

    expect_jarvis(&[
        (
            "({ name = \"tool-call\" } | count() > 1) && ({ kind = server })",
            &[0, 2, 3],
        ),
        (
            "({ name = \"tool-call\" } | count() > 2) && ({ kind = server })",
            &[],
        ),
        (
            "({ name = \"tool-call\" } | count() > 2) || ({ kind = server })",
            &[0],
        ),
        ("{ status = error } | { name = \"tool-call\" }", &[3]),
        ("{ kind = client } | by(name) | count() > 1", &[2, 3]),
    ]);

    // Structural operators refuse several spansets on one side, as Tempo does.
    let err = search(&query("({ } | by(name)) > { }"), &trace).unwrap_err();
    assert_eq!(err, EvalError::SpansetOperationMultiple);
}

#[test]
fn results_are_sorted_by_start_and_count_matches() {
    let trace = jarvis(BASE);
    let sets = run("{ }", &trace);
    assert_eq!(sets.len(), 1);
    // starts: 0 +0, 1 +100, 2 +200, 3 +600, 5 +700, 4 +2200
    assert_eq!(sets[0].spans, [0, 1, 2, 3, 5, 4]);
    assert_eq!(sets[0].matched, 6);
    assert!(run("{ name = \"nope\" }", &trace).is_empty());
    assert!(
        run(
            "{ }",
            &Trace {
                trace_id: [1; 16],
                spans: Vec::new()
            }
        )
        .is_empty()
    );
}

#[test]
fn response_attributes_carry_queried_and_selected_fields() {
    let trace = jarvis(BASE);
    let selected = query("{ status = error } | select(span.tool, resource.service.name, .missing, duration)");
    assert_eq!(spans("{ status = error } | select(span.tool)", &trace), [3]);
    assert_eq!(
        response_attributes(&selected, &trace.spans[3], &trace),
        attrs(&[
            ("status", string("error")),
            ("tool", string("shell")),
            ("service.name", string("agixt")),
        ])
    );
    let filter = query(
        "{ resource.service.name = \"agixt\" && duration > 1s && span:childCount > 0 && kind = internal }",
    );
    assert_eq!(
        response_attributes(&filter, &trace.spans[1], &trace),
        attrs(&[
            ("service.name", string("agixt")),
            ("span:childCount", AttrValue::Int(3)),
            ("kind", string("internal")),
        ])
    );
    let events = query("{ event:name = \"exception\" } | select(event.exception.type)");
    assert_eq!(
        response_attributes(&events, &trace.spans[3], &trace),
        attrs(&[
            ("event:name", string("exception")),
            ("exception.type", string("TimeoutError"))
        ])
    );
}

#[test]
fn search_refuses_what_it_cannot_run() {
    let trace = jarvis(BASE);
    assert!(matches!(
        search(&query("{ } | rate()"), &trace),
        Err(EvalError::WrongQueryKind(_))
    ));
    let err = search(&query("{ parent.agent = \"jarvis\" }"), &trace).unwrap_err();
    assert_eq!(err.to_string(), "the parent. attribute scope is not supported");
    // Hostile input: deep nesting (within the parser's limit) and odd operand types run.
    let deep = format!("{{ {}true{} }}", "(".repeat(60), ")".repeat(60));
    if let Ok(parsed) = parse(&deep) {
        assert_eq!(search(&parsed, &trace).map(|sets| sets.len()).ok(), Some(1));
    }
    assert_eq!(spans("{ .retries / 0 = 1 }", &trace), Vec::<usize>::new());
    assert_eq!(spans("{ !.retries }", &trace), Vec::<usize>::new());
    assert_eq!(spans("{ -.tool = 1 }", &trace), Vec::<usize>::new());
}

// ---- Metrics ------------------------------------------------------------------------------

/// Runs a metrics query over traces.
fn metrics(text: &str, traces: &[Trace], start_ns: u64, end_ns: u64, step_ns: u64) -> Vec<Series> {
    let mut eval = MetricsEval::new(&query(text), start_ns, end_ns, step_ns)
        .unwrap_or_else(|err| panic!("{text}: {err}"));
    for trace in traces {
        eval.observe(trace).unwrap_or_else(|err| panic!("{text}: {err}"));
    }
    eval.finish()
}

/// The samples of the series with exactly `labels`.
fn samples<'a>(series: &'a [Series], labels: &[(&str, AttrValue)]) -> &'a [(i64, f64)] {
    let wanted = attrs(labels);
    let found: Vec<&Series> = series.iter().filter(|series| series.labels == wanted).collect();
    assert_eq!(found.len(), 1, "one series {wanted:?} in {series:#?}");
    &found[0].samples
}

/// Jarvis at 1000 s and 1015 s, the health check at 1005 s, the rootless trace at 1003 s.
fn metric_traces() -> Vec<Trace> {
    vec![
        jarvis(BASE),
        jarvis(BASE + 15 * SECOND),
        health(BASE + 5 * SECOND),
        rootless(BASE + 3 * SECOND),
    ]
}

/// 980 s to 1020 s in 10 s steps: aligned start 980 s, minus one step: 970 s; steps end at
/// 980, 990, 1000, 1010 and 1020 s and hold (t - 10s, t].
const RANGE: (u64, u64, u64) = (980 * SECOND, 1_020 * SECOND, 10 * SECOND);

fn ranged(text: &str) -> Vec<Series> {
    metrics(text, &metric_traces(), RANGE.0, RANGE.1, RANGE.2)
}

#[test]
fn count_over_time_and_rate_per_step() {
    // Step 1000 s: the first Jarvis root (starting exactly at 1000 s).
    // Step 1010 s: its 5 other spans, the 2 health spans and the 2 rootless spans.
    // Step 1020 s: the second Jarvis trace, 6 spans.
    let series = ranged("{ } | count_over_time()");
    assert_eq!(series.len(), 1);
    let expected = [
        (980_000, 0.0),
        (990_000, 0.0),
        (1_000_000, 1.0),
        (1_010_000, 9.0),
        (1_020_000, 6.0),
    ];
    assert_eq!(
        samples(&series, &[("__name__", string("count_over_time"))]),
        expected
    );

    let series = ranged("{ } | rate()");
    let rates: Vec<(i64, f64)> = expected.iter().map(|&(ts, count)| (ts, count / 10.0)).collect();
    assert_eq!(samples(&series, &[("__name__", string("rate"))]), rates);

    // Nothing selected: a series of zeros without by(), none with it.
    let series = ranged("{ name = \"nope\" } | rate()");
    assert_eq!(samples(&series, &[("__name__", string("rate"))]).len(), 5);
    assert!(ranged("{ name = \"nope\" } | rate() by (name)").is_empty());
}

#[test]
fn by_labels_are_written_as_queried() {
    // errors: Jarvis span 3 (agixt) at 1000.6 s and 1015.6 s, the rootless orphan (worker)
    // at 1003 s
    let series = ranged("{ status = error } | count_over_time() by (resource.service.name)");
    assert_eq!(series.len(), 2);
    assert_eq!(
        samples(&series, &[("resource.service.name", string("agixt"))]),
        [
            (980_000, 0.0),
            (990_000, 0.0),
            (1_000_000, 0.0),
            (1_010_000, 1.0),
            (1_020_000, 1.0)
        ]
    );
    assert_eq!(
        samples(&series, &[("resource.service.name", string("worker"))]),
        [
            (980_000, 0.0),
            (990_000, 0.0),
            (1_000_000, 0.0),
            (1_010_000, 1.0),
            (1_020_000, 0.0)
        ]
    );

    // missing values are dropped; all missing: the first label as "nil"
    let series = ranged("{ kind = client } | count_over_time() by (span.tool, .model)");
    // client spans per Jarvis trace: 2 (web_search), 3 (shell), 4 (gpt-4o), 5 (none); cache.get (none)
    assert_eq!(series.len(), 4);
    assert_eq!(
        samples(&series, &[("span.tool", string("web_search"))])[3],
        (1_010_000, 1.0)
    );
    assert_eq!(
        samples(&series, &[(".model", string("gpt-4o"))])[4],
        (1_020_000, 1.0)
    );
    assert_eq!(
        samples(&series, &[("span.tool", string("nil"))])[3],
        (1_010_000, 2.0)
    );
}

#[test]
fn over_time_functions() {
    // tool calls: 0.3 s and 1.5 s in steps 1010 s and 1020 s; other steps have no value
    let series = ranged("{ name = \"tool-call\" } | avg_over_time(duration)");
    assert_eq!(
        samples(&series, &[("__name__", string("avg_over_time"))]),
        [(1_010_000, 0.9), (1_020_000, 0.9)]
    );
    let series = ranged("{ } | max_over_time(duration) by (resource.service.name)");
    // agixt: agixt.run 4 s; librechat: 5 s (root at exactly 1000 s, then at 1015 s)
    assert_eq!(
        samples(&series, &[("resource.service.name", string("agixt"))]),
        [(1_010_000, 4.0), (1_020_000, 4.0)]
    );
    assert_eq!(
        samples(&series, &[("resource.service.name", string("librechat"))]),
        [(1_000_000, 5.0), (1_020_000, 5.0)]
    );
    let series = ranged("{ } | min_over_time(.retries)");
    assert_eq!(
        samples(&series, &[("__name__", string("min_over_time"))]),
        [(1_010_000, 0.0), (1_020_000, 0.0)]
    );
    // only llm.completion has tokens; spans without it are skipped
    let series = ranged("{ } | sum_over_time(.tokens)");
    assert_eq!(
        samples(&series, &[("__name__", string("sum_over_time"))]),
        [(1_010_000, 1200.0), (1_020_000, 1200.0)]
    );
}

#[test]
fn quantiles_and_histograms_use_power_of_two_buckets() {
    // 300 ms = 3e8 ns -> 2^29 ns = 0.536870912 s; 1500 ms -> 2^31 ns = 2.147483648 s.
    // p50 of those two: 1 sample -> the first bucket's bound; p90: 2 samples -> the second's.
    let series = ranged("{ name = \"tool-call\" } | quantile_over_time(duration, .5, .9)");
    assert_eq!(series.len(), 2);
    let low = 0.536_870_912;
    let high = 2.147_483_648;
    assert_eq!(
        samples(&series, &[("p", AttrValue::Float(0.5))]),
        [
            (980_000, 0.0),
            (990_000, 0.0),
            (1_000_000, 0.0),
            (1_010_000, low),
            (1_020_000, low)
        ]
    );
    assert_eq!(
        samples(&series, &[("p", AttrValue::Float(0.9))])[3],
        (1_010_000, high)
    );

    let series = ranged("{ name = \"tool-call\" } | histogram_over_time(duration)");
    assert_eq!(series.len(), 2);
    assert_eq!(
        samples(&series, &[("__bucket", AttrValue::Float(low))]),
        [
            (980_000, 0.0),
            (990_000, 0.0),
            (1_000_000, 0.0),
            (1_010_000, 1.0),
            (1_020_000, 1.0)
        ]
    );
    assert_eq!(
        samples(&series, &[("__bucket", AttrValue::Float(high))])[4],
        (1_020_000, 1.0)
    );

    // by() labels come first; int attributes bucket by value (tokens 1200 -> 2048)
    let series = ranged("{ } | histogram_over_time(.tokens) by (resource.service.name)");
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].labels,
        attrs(&[
            ("resource.service.name", string("agixt")),
            ("__bucket", AttrValue::Float(2048.0))
        ])
    );
}

/// One instant step over [990 s, 1020 s]: both Jarvis traces and the health check.
fn instant(text: &str) -> Vec<Series> {
    let traces = [
        jarvis(BASE),
        jarvis(BASE + 15 * SECOND),
        health(BASE + 5 * SECOND),
    ];
    metrics(text, &traces, 990 * SECOND, 1_020 * SECOND, 30 * SECOND)
}

#[test]
fn second_stages_and_arithmetic() {
    // counts by name: POST 2, agixt.run 2, tool-call 4, db.query 2, llm.completion 2,
    // GET /health 1, cache.get 1; instant samples are stamped with the end
    let series = instant("{ } | count_over_time() by (name) | topk(1)");
    assert_eq!(series.len(), 1);
    assert_eq!(
        samples(&series, &[("name", string("tool-call"))]),
        [(1_020_000, 4.0)]
    );

    let series = instant("{ } | count_over_time() by (name) | bottomk(2)");
    assert_eq!(series.len(), 2);
    assert_eq!(
        samples(&series, &[("name", string("GET /health"))]),
        [(1_020_000, 1.0)]
    );
    assert_eq!(
        samples(&series, &[("name", string("cache.get"))]),
        [(1_020_000, 1.0)]
    );

    let series = instant("{ } | count_over_time() by (name) > 1");
    assert_eq!(series.len(), 5);
    assert!(series.iter().all(|series| series.samples[0].1 >= 2.0));

    // 2 errors out of 14 spans
    let series = instant("({ status = error } | count_over_time()) / ({ } | count_over_time())");
    assert_eq!(
        samples(
            &series,
            &[("__name__", string("(count_over_time / count_over_time)"))]
        ),
        [(1_020_000, 2.0 / 14.0)]
    );
    let series = instant("({ } | count_over_time()) * 2");
    assert_eq!(
        samples(&series, &[("__name__", string("count_over_time"))]),
        [(1_020_000, 28.0)]
    );

    // grouped / ungrouped: each group divided by the total
    let series = instant("({ } | count_over_time() by (resource.service.name)) / ({ } | count_over_time())");
    assert_eq!(
        samples(&series, &[("resource.service.name", string("agixt"))]),
        [(1_020_000, 10.0 / 14.0)]
    );
}

#[test]
fn metrics_refuse_bad_ranges_and_queries() {
    let rate = query("{ } | rate()");
    assert!(matches!(
        MetricsEval::new(&rate, 0, 10, 0),
        Err(EvalError::InvalidRange(_))
    ));
    assert!(matches!(
        MetricsEval::new(&rate, 10, 10, 1),
        Err(EvalError::InvalidRange(_))
    ));
    assert!(matches!(
        MetricsEval::new(&rate, 0, 20_000 * SECOND, SECOND),
        Err(EvalError::InvalidRange(_))
    ));
    assert!(matches!(
        MetricsEval::new(&query("{ status = error }"), 0, 10, 1),
        Err(EvalError::WrongQueryKind(_))
    ));
    assert!(matches!(
        MetricsEval::new(&query("{ } | compare({ status = error })"), 0, 100, 10),
        Err(EvalError::Unsupported(_))
    ));

    // one series per span id: 10 001 spans exceed the 10 000-series cap
    let base = jarvis(BASE);
    let template = base.spans[2].clone();
    let spans = (0..10_001u32)
        .map(|index| {
            let mut span = template.clone();
            let [a, b, c, d] = index.to_be_bytes();
            span.span_id = [0, 0, 0, 0, a, b, c, d];
            span.parent_span_id = [0; 8];
            span
        })
        .collect();
    let big = Trace {
        trace_id: [9; 16],
        spans,
    };
    let mut eval = MetricsEval::new(
        &query("{ } | count_over_time() by (span:id)"),
        RANGE.0,
        RANGE.1,
        RANGE.2,
    )
    .expect("valid query");
    assert_eq!(
        eval.observe(&big),
        Err(EvalError::TooManySeries { limit: 10_000 })
    );
}
