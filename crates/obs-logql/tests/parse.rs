//! The parser against a table of queries: Loki's documentation and test suite, the shapes
//! Grafana's Loki datasource and Logs Drilldown send, and edge cases. Each valid query must
//! print its canonical form, and that form must parse back to the same tree; each invalid
//! one must fail with Loki's message at the offending position. No input, truncated or
//! random, may panic.

use obs_logql::{
    BinaryOp, Cardinality, CompareOp, Expr, IpMatcher, JsonPathSegment, LabelFilter, LabelFormatSource,
    LineFilterOp, LineMatch, MatchOp, NamedMatcher, PatternNode, RangeOp, SampleExpr, SignedDuration, Stage,
    UnwrapConversion, VectorOp, parse, parse_selector,
};

/// Valid queries and their canonical form.
const VALID: &[(&str, &str)] = &[
    // Stream selectors.
    (r#"{foo="bar"}"#, r#"{foo="bar"}"#),
    (r#"{ foo = "bar" }"#, r#"{foo="bar"}"#),
    (
        r#"{ namespace="buzz", foo != "bar" }"#,
        r#"{namespace="buzz", foo!="bar"}"#,
    ),
    (r#"{ foo =~ "bar" }"#, r#"{foo=~"bar"}"#),
    (
        r#"{ namespace="buzz", foo !~ "bar" }"#,
        r#"{namespace="buzz", foo!~"bar"}"#,
    ),
    (r#"{app=~".+"}"#, r#"{app=~".+"}"#),
    (r#"{app="baz", foo!="bar"}"#, r#"{app="baz", foo!="bar"}"#),
    (r#"{foo=~"bar|baz"}"#, r#"{foo=~"bar|baz"}"#),
    (
        r#"{app="mysql",name="mysql-backup"}"#,
        r#"{app="mysql", name="mysql-backup"}"#,
    ),
    ("{a=~`\\d+`}", "{a=~`\\d+`}"),
    (r#"{a="b\"c"}"#, r#"{a="b\"c"}"#),
    (r#"{a="é"} |= "日本""#, r#"{a="é"} |= "日本""#),
    (r##"{app="#"}"##, r##"{app="#"}"##),
    ("{foo=`bar`}", r#"{foo="bar"}"#),
    // Comments.
    ("{app=\"foo\"} # |= \"bar\" | json", r#"{app="foo"}"#),
    ("{app=\"foo\"}\n# |~ \"x\"\n| json", r#"{app="foo"} | json"#),
    ("{app=\"foo\"} | json #", r#"{app="foo"} | json"#),
    (
        "count_over_time({job=\"mysql\"}[5m] offset 5m) // good",
        r#"count_over_time({job="mysql"}[5m] offset 5m)"#,
    ),
    ("{app=\"foo\"} /* block */ |= \"x\"", r#"{app="foo"} |= "x""#),
    // Line filters.
    (r#"{foo="bar"} |= "baz""#, r#"{foo="bar"} |= "baz""#),
    (
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap""#,
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap""#,
    ),
    (
        r#"{job="mysql"} |= "error" != "timeout""#,
        r#"{job="mysql"} |= "error" != "timeout""#,
    ),
    (
        r#"{instance=~"kafka-[23]",name="kafka"} != "kafka.server:type=ReplicaManager""#,
        r#"{instance=~"kafka-[23]", name="kafka"} != "kafka.server:type=ReplicaManager""#,
    ),
    (
        r#"{name="kafka"} |~ "tsdb-ops.*io:2003""#,
        r#"{name="kafka"} |~ "tsdb-ops.*io:2003""#,
    ),
    (
        "{name=\"cassandra\"} |~  `error=\\w+`",
        "{name=\"cassandra\"} |~ `error=\\w+`",
    ),
    (r#"{foo="bar"} |~ "\\w+""#, "{foo=\"bar\"} |~ `\\w+`"),
    (r#"{app="foo"} |~ "(?i)\\|""#, "{app=\"foo\"} |~ `(?i)\\|`"),
    (
        r#"{a="b"} |= "a" |~ "(?i)b" != "c" !~ "d" |> "e" !> "f""#,
        r#"{a="b"} |= "a" |~ "(?i)b" != "c" !~ "d" |> "e" !> "f""#,
    ),
    (r#"{foo="bar"} |= """#, r#"{foo="bar"} |= """#),
    (r#"{a="b\"c"} |= "\t""#, r#"{a="b\"c"} |= "\t""#),
    (
        r#"{app="foo"} |= "foo" or "bar""#,
        r#"{app="foo"} |= "foo" or "bar""#,
    ),
    (
        r#"{app="foo"} |= "foo" or "bar" |= "buzz" or "fizz""#,
        r#"{app="foo"} |= "foo" or "bar" |= "buzz" or "fizz""#,
    ),
    (
        r#"{app="foo"} |= "test" |= "foo" or "bar" or "baz" |= "car""#,
        r#"{app="foo"} |= "test" |= "foo" or "bar" or "baz" |= "car""#,
    ),
    (
        r#"{app="foo"} |~ "foo" or "bar" or "baz""#,
        r#"{app="foo"} |~ "foo" or "bar" or "baz""#,
    ),
    (
        r#"{app="foo"} != "foo" or "bar""#,
        r#"{app="foo"} != "foo" or "bar""#,
    ),
    (
        r#"{app="foo"} !~ "test" !~ "foo" or "bar" or "baz" !~ "car""#,
        r#"{app="foo"} !~ "test" !~ "foo" or "bar" or "baz" !~ "car""#,
    ),
    (
        r#"{app="foo"} |> "foo" or "bar" or "baz""#,
        r#"{app="foo"} |> "foo" or "bar" or "baz""#,
    ),
    (
        r#"{app="foo"} !> "<_> foo <_>" or "foo <_>" !> "foo <_> baz""#,
        r#"{app="foo"} !> "<_> foo <_>" or "foo <_>" !> "foo <_> baz""#,
    ),
    (
        r#"{foo="bar", bar!="baz"} |> """#,
        r#"{foo="bar", bar!="baz"} |> """#,
    ),
    (
        r#"{foo="bar", bar!="baz"} |> "<_>" !> "<_> <_>""#,
        r#"{foo="bar", bar!="baz"} |> "<_>" !> "<_> <_>""#,
    ),
    (
        r#"{app="x"} |> "<_> level=error <_>" !> "<_> debug <_>""#,
        r#"{app="x"} |> "<_> level=error <_>" !> "<_> debug <_>""#,
    ),
    // ip() in line filters.
    (
        r#"{foo="bar"} |= ip("123.123.123.123")"#,
        r#"{foo="bar"} |= ip("123.123.123.123")"#,
    ),
    (
        r#"{foo="bar"} |= "baz" |= ip("123.123.123.123")"#,
        r#"{foo="bar"} |= "baz" |= ip("123.123.123.123")"#,
    ),
    (
        r#"{foo="bar"} != ip("123.123.123.123")|= "baz" !=ip("123.123.123.123")"#,
        r#"{foo="bar"} != ip("123.123.123.123") |= "baz" != ip("123.123.123.123")"#,
    ),
    (
        r#"{job_name="myapp"} |= ip("192.168.4.5/16")"#,
        r#"{job_name="myapp"} |= ip("192.168.4.5/16")"#,
    ),
    (
        r#"{job_name="myapp"} != ip("192.168.4.5-192.168.4.20")"#,
        r#"{job_name="myapp"} != ip("192.168.4.5-192.168.4.20")"#,
    ),
    (
        r#"{app="foo"} |= ip("127.0.0.1") or "foo""#,
        r#"{app="foo"} |= ip("127.0.0.1") or "foo""#,
    ),
    (
        r#"{app="foo"} |= "foo" or ip("::1")"#,
        r#"{app="foo"} |= "foo" or ip("::1")"#,
    ),
    (
        r#"{app="foo"} |= ip("10.0.0.0/8") or ip("192.168.0.0/16") or "baz""#,
        r#"{app="foo"} |= ip("10.0.0.0/8") or ip("192.168.0.0/16") or "baz""#,
    ),
    (
        r#"{app="foo"} != ip("127.0.0.1") or "foo""#,
        r#"{app="foo"} != ip("127.0.0.1") or "foo""#,
    ),
    // Parsers.
    (r#"{ foo = "bar" } | decolorize"#, r#"{foo="bar"} | decolorize"#),
    (
        r#"{job="example"} | decolorize"#,
        r#"{job="example"} | decolorize"#,
    ),
    (
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | logfmt --strict --keep-empty"#,
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | logfmt --strict --keep-empty"#,
    ),
    (
        r#"{foo="bar"}|LOGFMT --strict"#,
        r#"{foo="bar"} | logfmt --strict"#,
    ),
    (
        r#"{app="x"} | logfmt --keep-empty"#,
        r#"{app="x"} | logfmt --keep-empty"#,
    ),
    (
        r#"{app="foo"} | logfmt message="msg""#,
        r#"{app="foo"} | logfmt message="msg""#,
    ),
    (r#"{app="foo"} | logfmt msg"#, r#"{app="foo"} | logfmt msg"#),
    (
        r#"{app="foo"} | logfmt --strict msg"#,
        r#"{app="foo"} | logfmt --strict msg"#,
    ),
    (
        r#"{app="foo"} | logfmt --keep-empty msg, err "#,
        r#"{app="foo"} | logfmt --keep-empty msg, err"#,
    ),
    (
        r#"{app="foo"} | logfmt --strict --keep-empty msg="message", apiKey="api_key""#,
        r#"{app="foo"} | logfmt --strict --keep-empty msg="message", apiKey="api_key""#,
    ),
    (
        r#"{app="foo"} | json bob="top.sub[\"index\"]""#,
        r#"{app="foo"} | json bob="top.sub[\"index\"]""#,
    ),
    (
        r#"{app="foo"} | json bob="top.params[0]""#,
        r#"{app="foo"} | json bob="top.params[0]""#,
    ),
    (
        r#"{app="foo"} | json response_code="response.code", api_key="request.headers[\"X-API-KEY\"]""#,
        r#"{app="foo"} | json response_code="response.code", api_key="request.headers[\"X-API-KEY\"]""#,
    ),
    (
        r#"{app="foo"} | json response_code, api_key="request.headers[\"X-API-KEY\"]", layer7_something_specific="layer7_something_specific""#,
        r#"{app="foo"} | json response_code, api_key="request.headers[\"X-API-KEY\"]", layer7_something_specific"#,
    ),
    (
        r#"{a="b"} | json a="b[0][\"c d\"].e""#,
        r#"{a="b"} | json a="b[0][\"c d\"].e""#,
    ),
    (
        r#"{app="x"} | unpack | level="error""#,
        r#"{app="x"} | unpack | level="error""#,
    ),
    (
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | regexp "(?P<foo>foo|bar)""#,
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | regexp "(?P<foo>foo|bar)""#,
    ),
    (
        r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#,
        "{job=\"loki-ops/query-frontend\"} | logfmt | line_format \"{{.msg}}\" | regexp `(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)`",
    ),
    (
        r#"{foo="bar"} |= "baz" | pattern "<foo> bar <buzz>" | foo>5"#,
        r#"{foo="bar"} |= "baz" | pattern "<foo> bar <buzz>" | foo > 5"#,
    ),
    (
        r#"{app="x"} | pattern "<_> - <user> [<_>] \"<method> <path> <_>\" <status> <size>""#,
        r#"{app="x"} | pattern "<_> - <user> [<_>] \"<method> <path> <_>\" <status> <size>""#,
    ),
    (
        r#"{a="b"} | JSON | LOGFMT | Line_Format "x""#,
        r#"{a="b"} | json | logfmt | line_format "x""#,
    ),
    // Label filters: types.
    (
        r#"{app="x"} | json | __error__="""#,
        r#"{app="x"} | json | __error__="""#,
    ),
    (
        r#"{ foo = "bar" } | logfmt | msg =~ "`.`" "#,
        r#"{foo="bar"} | logfmt | msg=~"`.`""#,
    ),
    (
        r#"{foo="bar"} | logfmt | counter>-1 | counter>=-1 | counter<-1 | counter<=-1 | counter!=-1 | counter==-1"#,
        r#"{foo="bar"} | logfmt | counter > -1 | counter >= -1 | counter < -1 | counter <= -1 | counter != -1 | counter == -1"#,
    ),
    (
        r#"{app="foo"} | logfmt | duration > -1s"#,
        r#"{app="foo"} | logfmt | duration > -1s"#,
    ),
    (
        r#"{app="foo"} | logfmt | count > -1"#,
        r#"{app="foo"} | logfmt | count > -1"#,
    ),
    (
        r#"{a="b"} | size > 1KB | size < 1.5MiB | latency > 1.5s | latency > 1h30m | latency > 100us"#,
        r#"{a="b"} | size > 1KB | size < 1536KiB | latency > 1s500ms | latency > 1h30m | latency > 100µs"#,
    ),
    (
        r#"{foo="bar"} |~ "x" | size > 250kB and latency <= 1h15m30s or bar=1"#,
        r#"{foo="bar"} |~ "x" | size > 250KB and latency <= 1h15m30s or bar == 1"#,
    ),
    (
        r#"{foo="bar"} | latency > 1h0.0m0s or foo == 4.00 and bar ="foo""#,
        r#"{foo="bar"} | latency > 1h or foo == 4 and bar="foo""#,
    ),
    (
        r#"{foo="bar"} | logfmt | bytes  < 0B"#,
        r#"{foo="bar"} | logfmt | bytes < 0B"#,
    ),
    (r#"{a="b"} | bytes > 1KB"#, r#"{a="b"} | bytes > 1KB"#),
    (r#"{a="b"} | duration > 1s"#, r#"{a="b"} | duration > 1s"#),
    (r#"{a="b"} | x > -0"#, r#"{a="b"} | x > 0s"#),
    (r#"{a="b"} | status = 200"#, r#"{a="b"} | status == 200"#),
    // ip() label filters; `ip` is also a label name.
    (
        r#"{ foo = "bar" }|logfmt|addr=ip("1.2.3.4")"#,
        r#"{foo="bar"} | logfmt | addr = ip("1.2.3.4")"#,
    ),
    (
        r#"{ foo = "bar" }|logfmt|addr!=ip("1.2.3.4")"#,
        r#"{foo="bar"} | logfmt | addr != ip("1.2.3.4")"#,
    ),
    (
        r#"{ foo = "bar" , ip="foo"}|logfmt|= ip("127.0.0.1")|ip="2.3.4.5"|ip="abc"|ipaddr=ip("4.5.6.7")|ip=ip("6.7.8.9")"#,
        r#"{foo="bar", ip="foo"} | logfmt |= ip("127.0.0.1") | ip="2.3.4.5" | ip="abc" | ipaddr = ip("4.5.6.7") | ip = ip("6.7.8.9")"#,
    ),
    (
        r#"{ foo = "bar" }|logfmt|remote_addr=ip("2.3.4.5")|level="error"|addr!=ip("1.2.3.4")"#,
        r#"{foo="bar"} | logfmt | remote_addr = ip("2.3.4.5") | level="error" | addr != ip("1.2.3.4")"#,
    ),
    (
        r#"{a="b"} | addr = ip("1.2.3.0/24") and status=200"#,
        r#"{a="b"} | addr = ip("1.2.3.0/24") and status == 200"#,
    ),
    // Label filters: and, or, `,`, juxtaposition and parentheses.
    (
        r#"{app="foo"} |= "bar" | json | latency >= 250ms or ( status_code < 500 and status_code > 200)"#,
        r#"{app="foo"} |= "bar" | json | latency >= 250ms or status_code < 500 and status_code > 200"#,
    ),
    (
        r#"{app="foo"} |= "bar" | unpack | json | latency >= 250ms or ( status_code < 500 and status_code > 200)"#,
        r#"{app="foo"} |= "bar" | unpack | json | latency >= 250ms or status_code < 500 and status_code > 200"#,
    ),
    (
        r#"{app="foo"} |= "bar" | json | (duration > 1s or status!= 200) and method!="POST""#,
        r#"{app="foo"} |= "bar" | json | (duration > 1s or status != 200) and method!="POST""#,
    ),
    (
        r#"{app="foo"} |= "bar" | pattern "<foo> bar <buzz>" | (duration > 1s or status!= 200) and method!="POST""#,
        r#"{app="foo"} |= "bar" | pattern "<foo> bar <buzz>" | (duration > 1s or status != 200) and method!="POST""#,
    ),
    (
        r#"{app="foo"} |= "bar" | json | ( status_code < 500 and status_code > 200) or latency >= 250ms "#,
        r#"{app="foo"} |= "bar" | json | status_code < 500 and status_code > 200 or latency >= 250ms"#,
    ),
    (
        r#"{app="foo"} |= "bar" | json | ( status_code < 500 or status_code > 200) and latency >= 250ms "#,
        r#"{app="foo"} |= "bar" | json | (status_code < 500 or status_code > 200) and latency >= 250ms"#,
    ),
    (
        r#"{app="foo"} |= "bar" | json |  status_code < 500 or status_code > 200 and latency >= 250ms "#,
        r#"{app="foo"} |= "bar" | json | status_code < 500 or status_code > 200 and latency >= 250ms"#,
    ),
    (
        r#"{app="foo"} |= "bar" | json | latency >= 250ms or ( status_code < 500 and status_code > 200) | foo="bar" buzz!="blip", blop=~"boop" or fuzz==5"#,
        r#"{app="foo"} |= "bar" | json | latency >= 250ms or status_code < 500 and status_code > 200 | foo="bar" and buzz!="blip" and (blop=~"boop" or fuzz == 5)"#,
    ),
    (
        r#"{app="foo"} |= "bar" | json |  status_code < 500 or status_code > 200 and size >= 2.5KiB "#,
        r#"{app="foo"} |= "bar" | json | status_code < 500 or status_code > 200 and size >= 2560B"#,
    ),
    (
        r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#,
        r#"{container="query-frontend", namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#,
    ),
    (
        r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration > 30s or status_code != "200""#,
        r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration > 30s or status_code!="200""#,
    ),
    (
        r#"{a="b"} | a="b" , c="d" or e="f""#,
        r#"{a="b"} | a="b" and (c="d" or e="f")"#,
    ),
    (
        r#"{a="b"} | a="b" or c="d" , e="f""#,
        r#"{a="b"} | a="b" or c="d" and e="f""#,
    ),
    (
        r#"{a="b"} | a="b" and c="d" , e="f" or g="h""#,
        r#"{a="b"} | a="b" and c="d" and (e="f" or g="h")"#,
    ),
    (
        r#"{a="b"} | (a="b" or c="d") and e="f""#,
        r#"{a="b"} | (a="b" or c="d") and e="f""#,
    ),
    (
        r#"{a="b"} | a="b" c="d" e="f""#,
        r#"{a="b"} | a="b" and c="d" and e="f""#,
    ),
    (
        r#"{a="b"} | x > 1 | y < 2 or z == 3 and w != 4"#,
        r#"{a="b"} | x > 1 | y < 2 or z == 3 and w != 4"#,
    ),
    (
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | regexp "(?P<foo>foo|bar)" | ( ( foo<5.01 , bar>20ms ) or foo="bar" ) | line_format "blip{{.boop}}bap" | label_format foo=bar,bar="blip{{.blop}}""#,
        r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | regexp "(?P<foo>foo|bar)" | foo < 5.01 and bar > 20ms or foo="bar" | line_format "blip{{.boop}}bap" | label_format foo=bar, bar="blip{{.blop}}""#,
    ),
    // Formatting, drop, keep.
    (
        r#"{app="foo"} |= "bar" | line_format "blip{{ .foo }}blop""#,
        r#"{app="foo"} |= "bar" | line_format "blip{{ .foo }}blop""#,
    ),
    (
        r#"{job="mysql"} |= "error" | json | line_format "{{.err}}""#,
        r#"{job="mysql"} |= "error" | json | line_format "{{.err}}""#,
    ),
    (
        r#"{job="mysql"} | json | line_format "{{.message}}" |= "error""#,
        r#"{job="mysql"} | json | line_format "{{.message}}" |= "error""#,
    ),
    (
        r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#,
        r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#,
    ),
    (
        r#"{app="foo"} |= "bar" | json | line_format "blip{{ .foo }}blop {{.status_code}}" | label_format foo=bar,status_code="buzz{{.bar}}""#,
        r#"{app="foo"} |= "bar" | json | line_format "blip{{ .foo }}blop {{.status_code}}" | label_format foo=bar, status_code="buzz{{.bar}}""#,
    ),
    (
        r#"{a="b"} | label_format level=lvl"#,
        r#"{a="b"} | label_format level=lvl"#,
    ),
    (
        r#"{a="b"} | keep level, app="x" | drop __error__, __error_details__"#,
        r#"{a="b"} | keep level, app="x" | drop __error__, __error_details__"#,
    ),
    (
        r#"{a="b"} | drop a, b!="c", d=~"e.*", f!~"g""#,
        r#"{a="b"} | drop a, b!="c", d=~"e.*", f!~"g""#,
    ),
    // Range aggregations.
    (
        "count_over_time({foo=~`bar\\w+`}[12h] |~ `error\\\\`)",
        "count_over_time({foo=~`bar\\w+`} |~ `error\\\\` [12h])",
    ),
    (
        r#"count_over_time({foo="bar"}[12h] |= "error")"#,
        r#"count_over_time({foo="bar"} |= "error" [12h])"#,
    ),
    (
        r#"count_over_time({foo="bar"} |= "error" [12h])"#,
        r#"count_over_time({foo="bar"} |= "error" [12h])"#,
    ),
    (
        r#"count_over_time({ foo = "bar" }[12m])"#,
        r#"count_over_time({foo="bar"}[12m])"#,
    ),
    (
        r#"bytes_over_time({ foo = "bar" }[12m])"#,
        r#"bytes_over_time({foo="bar"}[12m])"#,
    ),
    (
        r#"bytes_rate({ foo = "bar" }[12m])"#,
        r#"bytes_rate({foo="bar"}[12m])"#,
    ),
    (r#"rate({ foo = "bar" }[5h])"#, r#"rate({foo="bar"}[5h])"#),
    (
        r#"absent_over_time({ foo = "bar" }[5h])"#,
        r#"absent_over_time({foo="bar"}[5h])"#,
    ),
    (r#"rate({ foo = "bar" }[5d])"#, r#"rate({foo="bar"}[5d])"#),
    (
        r#"count_over_time({ foo = "bar" }[1w])"#,
        r#"count_over_time({foo="bar"}[1w])"#,
    ),
    (
        r#"count_over_time({ foo = "bar" }[90s])"#,
        r#"count_over_time({foo="bar"}[1m30s])"#,
    ),
    (
        r#"count_over_time({ foo = "bar" }[1h30m])"#,
        r#"count_over_time({foo="bar"}[1h30m])"#,
    ),
    (
        r#"count_over_time(({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap")[5m])"#,
        r#"count_over_time({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" [5m])"#,
    ),
    (
        r#"bytes_over_time(({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | unpack)[5m])"#,
        r#"bytes_over_time({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" | unpack [5m])"#,
    ),
    (
        r#"count_over_time({foo="bar"}[5m] |= "baz" |~ "blip" != "flip" !~ "flap")"#,
        r#"count_over_time({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" [5m])"#,
    ),
    (
        r#"count_over_time({ foo ="bar" } | json layer7_something_specific="layer7_something_specific" [12m])"#,
        r#"count_over_time({foo="bar"} | json layer7_something_specific [12m])"#,
    ),
    (
        r#"count_over_time(({a="b"})[5m])"#,
        r#"count_over_time({a="b"}[5m])"#,
    ),
    (
        r#"count_over_time(({a="b"})[5m] offset 1m)"#,
        r#"count_over_time({a="b"}[5m] offset 1m)"#,
    ),
    (
        r#"count_over_time((({a="b"})[5m]))"#,
        r#"count_over_time({a="b"}[5m])"#,
    ),
    (
        r#"count_over_time(({a="b"}[5m] | json))"#,
        r#"count_over_time({a="b"} | json [5m])"#,
    ),
    (
        r#"absent_over_time( ( {job="mysql"} |="error" !="timeout" ) [10s] offset 10d )"#,
        r#"absent_over_time({job="mysql"} |= "error" != "timeout" [10s] offset 10d)"#,
    ),
    // Unwrap.
    (
        r#"sum_over_time({namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap bytes(foo) [5m])"#,
        r#"sum_over_time({namespace="tns"} |= "level=error" | json | foo >= 5 and bar < 25ms | unwrap bytes(foo) [5m])"#,
    ),
    (
        r#"sum_over_time({namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap bytes(foo) [5m] offset 5m)"#,
        r#"sum_over_time({namespace="tns"} |= "level=error" | json | foo >= 5 and bar < 25ms | unwrap bytes(foo) [5m] offset 5m)"#,
    ),
    (
        r#"sum_over_time({namespace="tns"} |= "level=error" | json |foo==5,bar<25ms| unwrap latency [5m])"#,
        r#"sum_over_time({namespace="tns"} |= "level=error" | json | foo == 5 and bar < 25ms | unwrap latency [5m])"#,
    ),
    (
        r#"stddev_over_time({app="foo"} |= "bar" | unwrap bar [5m])"#,
        r#"stddev_over_time({app="foo"} |= "bar" | unwrap bar [5m])"#,
    ),
    (
        r#"min_over_time({app="foo"} | unwrap bar [5m])"#,
        r#"min_over_time({app="foo"} | unwrap bar [5m])"#,
    ),
    (
        r#"min_over_time({app="foo"} | unwrap bar [5m]) by ()"#,
        r#"min_over_time({app="foo"} | unwrap bar [5m]) by ()"#,
    ),
    (
        r#"max_over_time({app="foo"} | unwrap bar [5m]) without ()"#,
        r#"max_over_time({app="foo"} | unwrap bar [5m]) without ()"#,
    ),
    (
        r#"max_over_time({app="foo"} | unwrap bar [5m]) without (foo,bar)"#,
        r#"max_over_time({app="foo"} | unwrap bar [5m]) without (foo, bar)"#,
    ),
    (
        r#"max_over_time({app="foo"} | unwrap bar [5m] offset 5m) without (foo,bar)"#,
        r#"max_over_time({app="foo"} | unwrap bar [5m] offset 5m) without (foo, bar)"#,
    ),
    (
        r#"max_over_time({app="foo"} | unwrap bar [5m] offset -5m) without (foo,bar)"#,
        r#"max_over_time({app="foo"} | unwrap bar [5m] offset -5m0s) without (foo, bar)"#,
    ),
    (
        r#"stdvar_over_time({app="foo"} |= "bar" | json | latency >= 250ms | unwrap duration(foo) [5m])"#,
        r#"stdvar_over_time({app="foo"} |= "bar" | json | latency >= 250ms | unwrap duration(foo) [5m])"#,
    ),
    (
        r#"sum_over_time({a="b"} | unwrap duration_seconds(x) | y > 1 and z < 2 [1m])"#,
        r#"sum_over_time({a="b"} | unwrap duration_seconds(x) | y > 1 and z < 2 [1m])"#,
    ),
    (
        r#"sum_over_time({namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms | unwrap latency | __error__!~".*" | foo >5[5m])"#,
        r#"sum_over_time({namespace="tns"} |= "level=error" | json | foo >= 5 and bar < 25ms | unwrap latency | __error__!~".*" | foo > 5 [5m])"#,
    ),
    (
        r#"last_over_time({namespace="tns"} | json | unwrap latency | __error__="" [5m])"#,
        r#"last_over_time({namespace="tns"} | json | unwrap latency | __error__="" [5m])"#,
    ),
    (
        r#"first_over_time({namespace="tns"} | json | unwrap latency [5m]) by (pod)"#,
        r#"first_over_time({namespace="tns"} | json | unwrap latency [5m]) by (pod)"#,
    ),
    (
        r#"absent_over_time({namespace="tns"} | unwrap latency [5m])"#,
        r#"absent_over_time({namespace="tns"} | unwrap latency [5m])"#,
    ),
    (
        r#"rate({a="b"} | unwrap x [1m])"#,
        r#"rate({a="b"} | unwrap x [1m])"#,
    ),
    (
        r#"rate_counter({foo="bar"} | unwrap foo[10s])"#,
        r#"rate_counter({foo="bar"} | unwrap foo [10s])"#,
    ),
    (
        r#"sum_over_time({a="b"} | unwrap bytes [1m])"#,
        r#"sum_over_time({a="b"} | unwrap bytes [1m])"#,
    ),
    (
        r#"sum_over_time({a="b"}[5m] | json | unwrap x)"#,
        r#"sum_over_time({a="b"} | json | unwrap x [5m])"#,
    ),
    (
        r#"sum_over_time({a="b"}[5m] offset 1h | json | unwrap x)"#,
        r#"sum_over_time({a="b"} | json | unwrap x [5m] offset 1h)"#,
    ),
    (
        r#"sum_over_time({a="b"}[5m] offset 1h | unwrap x | y > 1)"#,
        r#"sum_over_time({a="b"} | unwrap x | y > 1 [5m] offset 1h)"#,
    ),
    (
        r#"sum_over_time(({a="b"})[5m] | unwrap x)"#,
        r#"sum_over_time({a="b"} | unwrap x [5m])"#,
    ),
    (
        r#"sum_over_time(({a="b"} | unwrap x)[5m])"#,
        r#"sum_over_time({a="b"} | unwrap x [5m])"#,
    ),
    (
        r#"sum_over_time(({a="b"} | json | unwrap x)[5m] offset 5m)"#,
        r#"sum_over_time({a="b"} | json | unwrap x [5m] offset 5m)"#,
    ),
    (
        r#"sum_over_time(({a="b"} | unwrap x [5m]))"#,
        r#"sum_over_time({a="b"} | unwrap x [5m])"#,
    ),
    (
        r#"quantile_over_time(0.99998,{app="foo"} |= "bar" | json | latency >= 250ms | unwrap foo | __error__="" [5m]) by (namespace,instance)"#,
        r#"quantile_over_time(0.99998, {app="foo"} |= "bar" | json | latency >= 250ms | unwrap foo | __error__="" [5m]) by (namespace, instance)"#,
    ),
    (
        r#"quantile_over_time(.99998,{app="foo"} | unwrap foo [5m])"#,
        r#"quantile_over_time(0.99998, {app="foo"} | unwrap foo [5m])"#,
    ),
    (
        r#"quantile_over_time(1e-2, {a="b"} | unwrap x [1m]) without (y)"#,
        r#"quantile_over_time(0.01, {a="b"} | unwrap x [1m]) without (y)"#,
    ),
    // Vector aggregations.
    (
        r#"sum(rate({ foo = "bar" }[5h]))"#,
        r#"sum(rate({foo="bar"}[5h]))"#,
    ),
    (
        r#"avg(count_over_time({ foo = "bar" }[5h])) by (bar,foo)"#,
        r#"avg by (bar, foo) (count_over_time({foo="bar"}[5h]))"#,
    ),
    (
        r#"max without (bar) (count_over_time({ foo = "bar" }[5h]))"#,
        r#"max without (bar) (count_over_time({foo="bar"}[5h]))"#,
    ),
    (
        r#"topk(10,count_over_time({ foo = "bar" }[5h])) without (bar)"#,
        r#"topk without (bar) (10, count_over_time({foo="bar"}[5h]))"#,
    ),
    (
        r#"bottomk(30 ,sum(rate({ foo = "bar" }[5h])) by (foo))"#,
        r#"bottomk(30, sum by (foo) (rate({foo="bar"}[5h])))"#,
    ),
    (
        r#"max( sum(count_over_time({ foo = "bar" }[5h])) without (foo,bar) ) by (foo)"#,
        r#"max by (foo) (sum without (foo, bar) (count_over_time({foo="bar"}[5h])))"#,
    ),
    (
        r#"sum(count_over_time({foo="bar"}[5m])) by (foo)"#,
        r#"sum by (foo) (count_over_time({foo="bar"}[5m]))"#,
    ),
    (
        r#"topk(5,sum(rate({foo="bar"}[5m] |= "baz" |~ "blip" != "flip" !~ "flap")) by (app))"#,
        r#"topk(5, sum by (app) (rate({foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap" [5m])))"#,
    ),
    (
        r#"SUM(Count_Over_Time({foo="bar"}[5m])) BY (foo,bar)"#,
        r#"sum by (foo, bar) (count_over_time({foo="bar"}[5m]))"#,
    ),
    (
        r#"SUM BY (foo, bar) (Count_Over_Time({foo="bar"}[5m]))"#,
        r#"sum by (foo, bar) (count_over_time({foo="bar"}[5m]))"#,
    ),
    (
        r#"BOTTOMK(10,Sum(COUNT_OVER_TIME({foo="bar"}[5m])) By (foo,bar))"#,
        r#"bottomk(10, sum by (foo, bar) (count_over_time({foo="bar"}[5m])))"#,
    ),
    (
        r#"topk by (name)(10,sum(rate({region="us-east1"}[5m])))"#,
        r#"topk by (name) (10, sum(rate({region="us-east1"}[5m])))"#,
    ),
    (
        r#"topk(10,sum(rate({region="us-east1"}[5m])) by (name))"#,
        r#"topk(10, sum by (name) (rate({region="us-east1"}[5m])))"#,
    ),
    (
        r#"approx_topk(5, sum by (a) (rate({b="c"}[1m])))"#,
        r#"approx_topk(5, sum by (a) (rate({b="c"}[1m])))"#,
    ),
    (
        r#"sort_desc(sum by(a) (rate( ( {job="mysql"} |="error" !="timeout" ) [10s] ) ))"#,
        r#"sort_desc(sum by (a) (rate({job="mysql"} |= "error" != "timeout" [10s])))"#,
    ),
    (
        r#"sort(sum by(a) (rate( ( {job="mysql"} |="error" !="timeout" ) [10s] ) ))"#,
        r#"sort(sum by (a) (rate({job="mysql"} |= "error" != "timeout" [10s])))"#,
    ),
    (
        r#"sum without () (rate({a="b"}[1m]))"#,
        r#"sum without () (rate({a="b"}[1m]))"#,
    ),
    (
        r#"count by () (rate({a="b"}[1m]))"#,
        r#"count(rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum by (count) (rate({a="b"}[1m]))"#,
        r#"sum by (count) (rate({a="b"}[1m]))"#,
    ),
    (r#"stddev(rate({a="b"}[1m]))"#, r#"stddev(rate({a="b"}[1m]))"#),
    (
        r#"stdvar(rate({a="b"}[1m])) by (c)"#,
        r#"stdvar by (c) (rate({a="b"}[1m]))"#,
    ),
    (r#"min(rate({a="b"}[1m]))"#, r#"min(rate({a="b"}[1m]))"#),
    (
        r#"avg(rate(({job="nginx"} |= "GET" | json | path="/home")[10s])) by (region)"#,
        r#"avg by (region) (rate({job="nginx"} |= "GET" | json | path="/home" [10s]))"#,
    ),
    (
        r#"sum(count_over_time({job="mysql"} | pattern "<foo> bar <buzz>" | json [5m]))"#,
        r#"sum(count_over_time({job="mysql"} | pattern "<foo> bar <buzz>" | json [5m]))"#,
    ),
    (
        r#"sum(count_over_time({job="mysql"} | regexp "(?P<foo>foo|bar)" [5m] offset 10y))"#,
        r#"sum(count_over_time({job="mysql"} | regexp "(?P<foo>foo|bar)" [5m] offset 10y))"#,
    ),
    (
        r#"avg(min_over_time({job="nginx"} |= "GET" | unwrap foo[10s] offset 10m)) by (region)"#,
        r#"avg by (region) (min_over_time({job="nginx"} |= "GET" | unwrap foo [10s] offset 10m))"#,
    ),
    // label_replace and vector.
    (
        r#"avg(  label_replace(count_over_time({ foo = "bar" }[5h]),"bar","$1$2","foo","(.*).(.*)")) by (bar,foo)"#,
        r#"avg by (bar, foo) (label_replace(count_over_time({foo="bar"}[5h]), "bar", "$1$2", "foo", "(.*).(.*)"))"#,
    ),
    (
        "\n\t\t\tlabel_replace(\n\t\t\t\tbytes_over_time(({foo=\"bar\"} |= \"baz\")[5m]),\n\t\t\t\t\"buzz\",\n\t\t\t\t\"$2\",\n\t\t\t\t\"bar\",\n\t\t\t\t\"(.*):(.*)\"\n\t\t\t)\n\t\t\t",
        r#"label_replace(bytes_over_time({foo="bar"} |= "baz" [5m]), "buzz", "$2", "bar", "(.*):(.*)")"#,
    ),
    (
        r#"label_replace(vector(0), "foo", "bar", "", "")"#,
        r#"label_replace(vector(0), "foo", "bar", "", "")"#,
    ),
    ("vector(1)", "vector(1)"),
    ("vector(123)", "vector(123)"),
    ("vector(1e21)", "vector(1e21)"),
    ("vector(0x1p3)", "vector(8)"),
    ("sum(vector(0))", "sum(vector(0))"),
    ("((vector(1)))", "vector(1)"),
    // Binary operations and literals.
    ("vector(1)+vector(1)", "vector(1) + vector(1)"),
    (
        "sum(count_over_time({foo=\"bar\"}[5m])) by (foo) /\nsum(count_over_time({foo=\"bar\"}[5m])) by (foo) /\nsum(count_over_time({foo=\"bar\"}[5m])) by (foo)",
        r#"sum by (foo) (count_over_time({foo="bar"}[5m])) / sum by (foo) (count_over_time({foo="bar"}[5m])) / sum by (foo) (count_over_time({foo="bar"}[5m]))"#,
    ),
    (
        r#"sum(count_over_time({foo="bar"}[5m])) by (foo) + 1 / 2"#,
        r#"sum by (foo) (count_over_time({foo="bar"}[5m])) + 0.5"#,
    ),
    ("1 + -2 / 1", "-1"),
    ("1 + 1 - -1", "3"),
    ("1 + 1 + 1", "3"),
    ("1 == 1", "1"),
    ("1 != 1", "0"),
    ("1 > 1", "0"),
    ("1 >= 1", "1"),
    ("1 < 1", "0"),
    ("1 <= 1", "1"),
    ("1 >= 1 > 1", "0"),
    ("1 > 1 > bool 1", "0"),
    ("1 > 1 < 1", "1"),
    ("10 / (5/2)", "4"),
    ("2 ^ 3 ^ 2", "512"),
    ("(2 ^ 3) ^ 2", "64"),
    ("7 % 4", "3"),
    ("1.6", "1.6"),
    ("-1", "-1"),
    ("+1", "1"),
    ("(1)", "1"),
    ("0/0", "(0 / 0)"),
    ("1/0", "(0 / 0)"),
    ("1 % 0", "(0 / 0)"),
    ("2^1024", "(2 ^ 1024)"),
    ("-2^1025", "(-2 ^ 1025)"),
    ("0 * -1", "-0.0"),
    ("vector(1) * (0 * -1)", "vector(1) * -0.0"),
    (
        r#"1 > bool 1 > count_over_time({foo="bar"}[1m])"#,
        r#"0 > count_over_time({foo="bar"}[1m])"#,
    ),
    (
        r#"1 > bool 1 > bool count_over_time({foo="bar"}[1m])"#,
        r#"0 > bool count_over_time({foo="bar"}[1m])"#,
    ),
    (
        r#"0 > count_over_time({foo="bar"}[1m])"#,
        r#"0 > count_over_time({foo="bar"}[1m])"#,
    ),
    (
        r#"count_over_time({ foo ="bar" }[12m]) > count_over_time({ foo = "bar" }[12m])"#,
        r#"count_over_time({foo="bar"}[12m]) > count_over_time({foo="bar"}[12m])"#,
    ),
    (
        r#"count_over_time({ foo = "bar" }[12m]) > 1"#,
        r#"count_over_time({foo="bar"}[12m]) > 1"#,
    ),
    (
        r#"count_over_time({ foo = "bar" }[12m]) or count_over_time({ foo = "bar" }[12m]) > 1"#,
        r#"count_over_time({foo="bar"}[12m]) or count_over_time({foo="bar"}[12m]) > 1"#,
    ),
    (
        r#"(count_over_time({job="postgres"}[5m])/2) or vector(2)"#,
        r#"count_over_time({job="postgres"}[5m]) / 2 or vector(2)"#,
    ),
    (
        r#"10 / (count_over_time({job="postgres"}[5m])/2)"#,
        r#"10 / (count_over_time({job="postgres"}[5m]) / 2)"#,
    ),
    (
        r#"rate( ( {job="mysql"} |="error" !="timeout" ) [10s] )>-1"#,
        r#"rate({job="mysql"} |= "error" != "timeout" [10s]) > -1"#,
    ),
    (
        r#"sum(rate({foo="bar"}[5m]))-1 > 30"#,
        r#"sum(rate({foo="bar"}[5m])) - 1 > 30"#,
    ),
    (
        "vector(1) - vector(2) - vector(3)",
        "vector(1) - vector(2) - vector(3)",
    ),
    (
        "vector(1) - (vector(2) - vector(3))",
        "vector(1) - (vector(2) - vector(3))",
    ),
    (
        "(vector(1) ^ vector(2)) ^ vector(3)",
        "(vector(1) ^ vector(2)) ^ vector(3)",
    ),
    (
        "vector(1) ^ vector(2) ^ vector(3)",
        "vector(1) ^ vector(2) ^ vector(3)",
    ),
    ("-2 ^ vector(2)", "-2 ^ vector(2)"),
    (
        "vector(1) / vector(2) * vector(3) + vector(4) % vector(5) ^ vector(6)",
        "vector(1) / vector(2) * vector(3) + vector(4) % vector(5) ^ vector(6)",
    ),
    (
        "(vector(1) + vector(2)) * vector(3)",
        "(vector(1) + vector(2)) * vector(3)",
    ),
    (
        "vector(1) or vector(2) and vector(3) unless vector(4)",
        "vector(1) or vector(2) and vector(3) unless vector(4)",
    ),
    (
        "(vector(1) or vector(2)) and vector(3)",
        "(vector(1) or vector(2)) and vector(3)",
    ),
    ("vector(1) > bool 0", "vector(1) > bool 0"),
    (
        r#"rate({a="b"}[1m]) > 1 and rate({a="b"}[1m]) < 5"#,
        r#"rate({a="b"}[1m]) > 1 and rate({a="b"}[1m]) < 5"#,
    ),
    (
        "sum by (app,machine) (count_over_time({app=\"foo\"}[1m])) > bool on () group_right (app) sum by (app) (count_over_time({app=\"foo\"}[1m]))",
        r#"sum by (app, machine) (count_over_time({app="foo"}[1m])) > bool on () group_right (app) sum by (app) (count_over_time({app="foo"}[1m]))"#,
    ),
    (
        "sum by (app,machine) (count_over_time({app=\"foo\"}[1m])) > bool on () group_right sum by (app) (count_over_time({app=\"foo\"}[1m]))",
        r#"sum by (app, machine) (count_over_time({app="foo"}[1m])) > bool on () group_right sum by (app) (count_over_time({app="foo"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) by (a) * on (a) group_left (b) sum(rate({a="b"}[1m])) by (a, b)"#,
        r#"sum by (a) (rate({a="b"}[1m])) * on (a) group_left (b) sum by (a, b) (rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) * ignoring (a) group_right sum(rate({a="b"}[1m]))"#,
        r#"sum(rate({a="b"}[1m])) * ignoring (a) group_right sum(rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) + ignoring () sum(rate({a="b"}[1m]))"#,
        r#"sum(rate({a="b"}[1m])) + sum(rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) + ignoring () group_left () sum(rate({a="b"}[1m]))"#,
        r#"sum(rate({a="b"}[1m])) + ignoring () group_left sum(rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) and on (a) sum(rate({a="b"}[1m]))"#,
        r#"sum(rate({a="b"}[1m])) and on (a) sum(rate({a="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({a="b"}[1m])) unless ignoring (a, b) sum(rate({a="b"}[1m]))"#,
        r#"sum(rate({a="b"}[1m])) unless ignoring (a, b) sum(rate({a="b"}[1m]))"#,
    ),
    (
        "sum by (cluster) (count_over_time({job=\"mysql\"}[5m] offset 10m)) / sum by (cluster) (count_over_time({job=\"postgres\"}[5m] offset 10m)) ",
        r#"sum by (cluster) (count_over_time({job="mysql"}[5m] offset 10m)) / sum by (cluster) (count_over_time({job="postgres"}[5m] offset 10m))"#,
    ),
    (
        r#"label_replace(sum by (foo,bar) (quantile_over_time(0.99998,{app="foo"} | json | unwrap foo [5m]) by (namespace,instance)) + avg(avg_over_time({app="foo"} | json | unwrap foo [5m]) by (namespace,instance)) by (foo,bar), "foo", "$1", "svc", "(.*)")"#,
        r#"label_replace(sum by (foo, bar) (quantile_over_time(0.99998, {app="foo"} | json | unwrap foo [5m]) by (namespace, instance)) + avg by (foo, bar) (avg_over_time({app="foo"} | json | unwrap foo [5m]) by (namespace, instance)), "foo", "$1", "svc", "(.*)")"#,
    ),
    // Shapes Grafana's Loki datasource and Logs Drilldown send.
    (
        r#"sum by (level, detected_level) (count_over_time({app="x"} | drop __error__[1m]))"#,
        r#"sum by (level, detected_level) (count_over_time({app="x"} | drop __error__ [1m]))"#,
    ),
    (
        r#"sum by (level) (count_over_time({app="x"}[1m]))"#,
        r#"sum by (level) (count_over_time({app="x"}[1m]))"#,
    ),
    (
        r#"{app="x"} |= "err" | json | line_format "{{.msg}}""#,
        r#"{app="x"} |= "err" | json | line_format "{{.msg}}""#,
    ),
    (
        r#"sum(rate({app="x"}[1m])) by (level)"#,
        r#"sum by (level) (rate({app="x"}[1m]))"#,
    ),
    (
        "{app=\"x\"} |= `error` | logfmt | level=`error` | line_format `{{.msg}}`",
        r#"{app="x"} |= "error" | logfmt | level="error" | line_format "{{.msg}}""#,
    ),
    (
        "avg_over_time({app=\"x\"} | logfmt | unwrap duration(latency) | __error__=`` [1m]) by (host)",
        r#"avg_over_time({app="x"} | logfmt | unwrap duration(latency) | __error__="" [1m]) by (host)"#,
    ),
    (
        r#"quantile_over_time(0.95, {app="x"} | json | unwrap latency_ms [5m]) by (route)"#,
        r#"quantile_over_time(0.95, {app="x"} | json | unwrap latency_ms [5m]) by (route)"#,
    ),
    (
        r#"{service_name="x"} | json | logfmt | drop __error__, __error_details__"#,
        r#"{service_name="x"} | json | logfmt | drop __error__, __error_details__"#,
    ),
    (
        "sum by (detected_level) (count_over_time({service_name=`x`} | drop __error__ [1m]))",
        r#"sum by (detected_level) (count_over_time({service_name="x"} | drop __error__ [1m]))"#,
    ),
    (
        "{service_name=\"x\"} |> `<_> error <_>` or `<_> warn <_>`",
        r#"{service_name="x"} |> "<_> error <_>" or "<_> warn <_>""#,
    ),
    (
        "{service_name=`x`} | detected_level != \"\" | logfmt | level=~`error|warn`",
        r#"{service_name="x"} | detected_level!="" | logfmt | level=~"error|warn""#,
    ),
    (
        r#"{cluster="c", namespace="n"} |~ "(?i)timeout|refused" | json | status >= 500 | keep status, path"#,
        r#"{cluster="c", namespace="n"} |~ "(?i)timeout|refused" | json | status >= 500 | keep status, path"#,
    ),
    (
        r#"topk(10, sum by (path) (rate({app="api"} | json | __error__="" [5m])))"#,
        r#"topk(10, sum by (path) (rate({app="api"} | json | __error__="" [5m])))"#,
    ),
    (
        r#"sum(count_over_time({app="api"} |= "error" [1m])) / sum(count_over_time({app="api"} [1m]))"#,
        r#"sum(count_over_time({app="api"} |= "error" [1m])) / sum(count_over_time({app="api"}[1m]))"#,
    ),
];

/// Invalid queries and Loki's error, with the position of the offending token.
const INVALID: &[(&str, &str)] = &[
    (
        "unk({ foo = \"bar\" }[5m])",
        "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
    ),
    (
        r#"absent_over_time({ foo = "bar" }[5h]) by (foo)"#,
        "parse error at line 1, col 1: grouping not allowed for absent_over_time aggregation",
    ),
    (
        r#"approx_topk(2, count_over_time({ foo = "bar" }[5h])) by (foo)"#,
        "parse error at line 1, col 1: grouping not allowed for approx_topk aggregation",
    ),
    (
        r#"rate({ foo = "bar" }[5minutes])"#,
        r#"parse error at line 1, col 21: unknown unit "minutes" in duration "5minutes""#,
    ),
    (
        r#"label_replace(rate({ foo = "bar" }[5m]),"")"#,
        "parse error at line 1, col 43: syntax error: unexpected ), expecting ,",
    ),
    (
        r#"label_replace(rate({ foo = "bar" }[5m]),"foo","$1","bar","^^^^x43\\q")"#,
        r#"parse error at line 1, col 58: invalid regex in label_replace: error parsing regexp "^^^^x43\\q": unrecognized escape sequence"#,
    ),
    (
        r#"rate({ foo = "bar" }[5)"#,
        "parse error at line 1, col 21: missing closing ']' in duration",
    ),
    (
        r#"min({ foo = "bar" }[5m])"#,
        "parse error at line 1, col 20: syntax error: unexpected RANGE",
    ),
    (
        r#"avg(label_replace(count_over_time({ foo = "bar" }[5h]) or 0,"bar","$1$2","foo","(.*).(.*)")) by (bar,foo)"#,
        "parse error at line 1, col 59: unexpected literal for right leg of logical/set binary operation (or): 0.000000",
    ),
    (
        r#"avg(label_replace(count_over_time({ foo = "bar" }[5h]) or sum_over_time({ foo = "bar" }[5h]),"bar","$1$2","foo","(.*).(.*)")) by (bar,foo)"#,
        "parse error at line 1, col 59: invalid aggregation sum_over_time without unwrap",
    ),
    (
        r#"{ foo = "bar" }|logfmt|addr>=ip("1.2.3.4")"#,
        "parse error at line 1, col 30: syntax error: unexpected ip",
    ),
    (
        r#"{ foo = "bar" }|logfmt|addr>ip("1.2.3.4")"#,
        "parse error at line 1, col 29: syntax error: unexpected ip",
    ),
    (
        r#"{ foo = "bar" }|logfmt|addr<=ip("1.2.3.4")"#,
        "parse error at line 1, col 30: syntax error: unexpected ip",
    ),
    (
        r#"{ foo = "bar" }|logfmt|addr<ip("1.2.3.4")"#,
        "parse error at line 1, col 29: syntax error: unexpected ip",
    ),
    (
        r#"sum(3 ,count_over_time({ foo = "bar" }[5h]))"#,
        "parse error at line 1, col 1: unsupported parameter for operation sum(3,",
    ),
    (
        r#"topk(count_over_time({ foo = "bar" }[5h]))"#,
        "parse error at line 1, col 1: parameter required for operation topk",
    ),
    (
        r#"bottomk(he,count_over_time({ foo = "bar" }[5h]))"#,
        "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER",
    ),
    (
        r#"bottomk(1.2,count_over_time({ foo = "bar" }[5h]))"#,
        "parse error at line 1, col 1: invalid parameter bottomk(1.2,",
    ),
    (
        r#"topk(0, sum(rate({region="us-east1"}[5m])) by (name))"#,
        "parse error at line 1, col 1: invalid parameter (must be greater than 0) topk(0",
    ),
    (
        r#"topk(99999999999999999999, rate({a="b"}[1m]))"#,
        "parse error at line 1, col 1: invalid parameter topk(99999999999999999999,",
    ),
    (
        r#"stddev({ foo = "bar" })"#,
        "parse error at line 1, col 23: syntax error: unexpected )",
    ),
    (
        r#"{foo="bar}"#,
        "parse error at line 1, col 6: literal not terminated",
    ),
    (
        r#"{foo="bar""#,
        "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,",
    ),
    (
        r#"{foo="bar"} |~"#,
        "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip",
    ),
    (
        r#"{foo="bar"} "foo""#,
        "parse error at line 1, col 13: syntax error: unexpected STRING",
    ),
    (
        r#"{foo="bar"} foo"#,
        "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER",
    ),
    (
        r#"{app="foo"} | logfmt | status_code > 0x10"#,
        r#"parse error at line 1, col 38: unable to parse literal as a float: strconv.ParseFloat: parsing "0x10": invalid syntax"#,
    ),
    (
        r#"sum_over_time({app="foo"} |= "bar" | json | latency >= 250ms [5m])"#,
        "parse error at line 1, col 1: invalid aggregation sum_over_time without unwrap",
    ),
    (
        r#"count_over_time({app="foo"} |= "foo" | json | unwrap foo [5m])"#,
        "parse error at line 1, col 1: invalid aggregation count_over_time with unwrap",
    ),
    (
        r#"{foo="bar"} + {foo="bar"}"#,
        "parse error at line 1, col 1: unexpected type for left leg of binary operation (+): a log query; wrap it in a range aggregation such as count_over_time",
    ),
    (
        r#"sum(count_over_time({foo="bar"}[5m])) by (foo) - {foo="bar"}"#,
        "parse error at line 1, col 50: unexpected type for right leg of binary operation (-): a log query; wrap it in a range aggregation such as count_over_time",
    ),
    (
        r#"{foo="bar"} / sum(count_over_time({foo="bar"}[5m])) by (foo)"#,
        "parse error at line 1, col 1: unexpected type for left leg of binary operation (/): a log query; wrap it in a range aggregation such as count_over_time",
    ),
    (
        r#"sum(count_over_time({foo="bar"}[5m])) by (foo) or 1"#,
        "parse error at line 1, col 51: unexpected literal for right leg of logical/set binary operation (or): 1.000000",
    ),
    (
        r#"1 unless sum(count_over_time({foo="bar"}[5m])) by (foo)"#,
        "parse error at line 1, col 1: unexpected literal for left leg of logical/set binary operation (unless): 1.000000",
    ),
    (
        r#"sum(count_over_time({foo="bar"}[5m])) by (foo) + 1 or 1"#,
        "parse error at line 1, col 55: unexpected literal for right leg of logical/set binary operation (or): 1.000000",
    ),
    (
        r#"count_over_time({ foo = "bar" }[12m]) > { foo = "bar" }"#,
        "parse error at line 1, col 41: unexpected type for right leg of binary operation (>): a log query; wrap it in a range aggregation such as count_over_time",
    ),
    (
        "bool 1 > 1 > bool 1",
        "parse error at line 1, col 1: syntax error: unexpected bool",
    ),
    (
        r#"sum_over_time({namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap latency [5m]) by (foo)"#,
        "parse error at line 1, col 1: grouping not allowed for sum_over_time aggregation",
    ),
    (
        r#"sum_over_time(50,{namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap latency [5m])"#,
        "parse error at line 1, col 1: parameter 50 not supported for operation sum_over_time",
    ),
    (
        r#"quantile_over_time({namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap latency [5m])"#,
        "parse error at line 1, col 1: parameter required for operation quantile_over_time",
    ),
    (
        r#"quantile_over_time(foo,{namespace="tns"} |= "level=error" | json |foo>=5,bar<25ms| unwrap latency [5m])"#,
        "parse error at line 1, col 20: syntax error: unexpected IDENTIFIER, expecting NUMBER or { or (",
    ),
    (
        "vector(abc)",
        "parse error at line 1, col 8: syntax error: unexpected IDENTIFIER, expecting NUMBER",
    ),
    (
        "vector(-1)",
        "parse error at line 1, col 8: syntax error: unexpected -, expecting NUMBER",
    ),
    (
        "vector(1e400)",
        r#"parse error at line 1, col 8: unable to parse vectorExpr as a float: strconv.ParseFloat: parsing "1e400": value out of range"#,
    ),
    (
        "#{app=\"foo\"} | json",
        "parse error at line 1, col 20: syntax error: unexpected $end",
    ),
    (
        "count without (rate({namespace=\"apps\"}[15s]))",
        "parse error at line 1, col 16: syntax error: unexpected RATE, expecting IDENTIFIER or )",
    ),
    (
        r#"count_over_time({job="mysql"}[5m]) offset 5m"#,
        "parse error at line 1, col 36: syntax error: unexpected offset",
    ),
    (
        r#"sort(sum by(a) (rate( ( {job="mysql"} |="error" !="timeout" ) [10s] ) )) by (app)"#,
        "parse error at line 1, col 1: sort and sort_desc doesn't allow grouping by labels",
    ),
    (
        r#"{app="foo"} | unwrap foo"#,
        "parse error at line 1, col 15: syntax error: unexpected unwrap",
    ),
    (
        r#"sum_over_time({a="b"} | unwrap x | json [1m])"#,
        "parse error at line 1, col 36: syntax error: unexpected json",
    ),
    (
        r#"count_over_time(({a="b"} | json)[5m] | json)"#,
        "parse error at line 1, col 38: syntax error: unexpected |, expecting )",
    ),
    (
        r#"count_over_time({a="b"} | json [5m] | json)"#,
        "parse error at line 1, col 37: syntax error: unexpected |, expecting )",
    ),
    (
        r#"count_over_time((({a="b"}))[5m])"#,
        "parse error at line 1, col 27: syntax error: unexpected )",
    ),
    (
        r#"rate_counter({a="b"} | unwrap x [1m]) by (x)"#,
        "parse error at line 1, col 1: grouping not allowed for rate_counter aggregation",
    ),
    (
        r#"avg_over_time({a="b"}[1m])"#,
        "parse error at line 1, col 1: invalid aggregation avg_over_time without unwrap",
    ),
    (
        r#"bytes_rate({a="b"} | unwrap x [1m])"#,
        "parse error at line 1, col 1: invalid aggregation bytes_rate with unwrap",
    ),
    (
        r#"sum by (a) (rate({b="c"}[1m])) by (b)"#,
        "parse error at line 1, col 32: syntax error: unexpected by",
    ),
    (
        r#"sum(rate({a="b"}[1m])) + group_left sum(rate({a="b"}[1m]))"#,
        "parse error at line 1, col 26: syntax error: unexpected group_left",
    ),
    (
        r#"sum(rate({a="b"}[1m])) * on (a) group_left (sum(rate({a="b"}[1m])))"#,
        "parse error at line 1, col 45: syntax error: unexpected SUM, expecting IDENTIFIER or )",
    ),
    (
        "-vector(1)",
        "parse error at line 1, col 2: syntax error: unexpected VECTOR, expecting NUMBER",
    ),
    (
        "-0",
        "parse error at line 1, col 1: syntax error: unexpected DURATION",
    ),
    (
        r#"count_over_time({a="b"}[1m]) > 10m"#,
        "parse error at line 1, col 32: syntax error: unexpected DURATION",
    ),
    (
        r#"label_replace({a="b"}, "dst", "$1", "src", "(.*)")"#,
        "parse error at line 1, col 22: syntax error: unexpected ,",
    ),
    (
        r#"{by="x"}"#,
        "parse error at line 1, col 2: syntax error: unexpected by, expecting IDENTIFIER",
    ),
    (
        r#"{a="b"} | json | by="x""#,
        "parse error at line 1, col 18: syntax error: unexpected by",
    ),
    (
        r#"{a="b",}"#,
        "parse error at line 1, col 8: syntax error: unexpected }, expecting IDENTIFIER",
    ),
    (
        r#"{a="b"} |= "x" or"#,
        "parse error at line 1, col 18: syntax error: unexpected $end, expecting STRING or ip",
    ),
    (
        r#"{a="b"} | x="y" or"#,
        "parse error at line 1, col 19: syntax error: unexpected $end",
    ),
    (
        r#"{a="b"} | json |"#,
        "parse error at line 1, col 17: syntax error: unexpected $end",
    ),
    (
        "sum(",
        "parse error at line 1, col 5: syntax error: unexpected $end",
    ),
    (
        r#"rate({a="b"}"#,
        "parse error at line 1, col 13: syntax error: unexpected $end",
    ),
    (
        r#"rate({a="b"})"#,
        "parse error at line 1, col 13: syntax error: unexpected )",
    ),
    // `5m0` is no duration: the number 5, then a label filter on `m0` without an operator.
    (
        r#"{a="b"} | x > 5m0"#,
        "parse error at line 1, col 18: syntax error: unexpected $end",
    ),
    (
        "{$label_name=~\"$label_value\"}",
        r#"parse error at line 1, col 2: syntax error: unexpected character "$""#,
    ),
    (
        "{a='b'}",
        r#"parse error at line 1, col 4: syntax error: unexpected character "'""#,
    ),
    (
        "{a=\"b\"}\n  | json\n  | ]",
        "parse error at line 3, col 5: syntax error: unexpected ]",
    ),
    (
        "{a=\"b\" /* open",
        "parse error at line 1, col 8: comment not terminated",
    ),
    (r#"{a="\q"}"#, "parse error at line 1, col 4: invalid char escape"),
    (
        r#"{a="\xff"}"#,
        "parse error at line 1, col 4: invalid UTF-8 in string literal",
    ),
    // Values Loki checks when it builds the pipeline; checked here while parsing.
    (
        "count_over_time({foo=~`bar\\w+`}[12h] |~ `error\\`)",
        r#"parse error at line 1, col 41: error parsing regexp "error\\": incomplete escape sequence, reached end of pattern prematurely"#,
    ),
    (
        r#"{a=~"("}"#,
        r#"parse error at line 1, col 5: error parsing regexp "(": unclosed group"#,
    ),
    (
        r#"{a="b"} |~ "(""#,
        r#"parse error at line 1, col 12: error parsing regexp "(": unclosed group"#,
    ),
    (
        r#"{a="b"} | x=~"(""#,
        r#"parse error at line 1, col 14: error parsing regexp "(": unclosed group"#,
    ),
    (
        r#"{a="b"} | drop x=~"(""#,
        r#"parse error at line 1, col 19: error parsing regexp "(": unclosed group"#,
    ),
    (
        r#"{app="foo"} |~ ip("127.0.0.1") or "foo""#,
        "parse error at line 1, col 16: ip: invalid operation: ip() line filters take |= or !=, not |~",
    ),
    (
        r#"{a="b"} | x = ip("bad")"#,
        r#"parse error at line 1, col 18: ip: invalid pattern: "bad""#,
    ),
    (
        r#"{a="b"} |= ip("1.2.3.4/33")"#,
        r#"parse error at line 1, col 15: ip: invalid pattern: "1.2.3.4/33""#,
    ),
    (
        r#"{app="x"} | regexp "(a)""#,
        "parse error at line 1, col 20: invalid regexp parser: at least one named capture must be supplied",
    ),
    (
        r#"{app="x"} | pattern "<a><b>""#,
        "parse error at line 1, col 21: invalid pattern parser: found consecutive capture '<a><b>': invalid expression",
    ),
    (
        r#"{app="x"} | pattern "<_> x""#,
        "parse error at line 1, col 21: invalid pattern parser: at least one capture is required",
    ),
    (
        r#"{app="x"} | pattern "<a> <a>""#,
        "parse error at line 1, col 21: invalid pattern parser: duplicate capture name (a): invalid expression",
    ),
    (
        r#"{app="x"} |> "<a> x""#,
        r#"parse error at line 1, col 14: invalid line filter pattern "<a> x": named captures are not allowed: found '<a>'"#,
    ),
    (
        r#"{app="x"} | json a="""#,
        "parse error at line 1, col 20: cannot parse expression []: syntax error: unexpected $end, expecting LSB or FIELD",
    ),
    (
        r#"{app="x"} | json a="b..c""#,
        "parse error at line 1, col 20: cannot parse expression [b..c]: syntax error: unexpected DOT, expecting FIELD",
    ),
    (
        r#"{app="x"} | logfmt a="b.c""#,
        "parse error at line 1, col 22: cannot parse expression [b.c]: unexpected char .",
    ),
    (
        r#"{app="x"} | label_format a="x", a="y""#,
        "parse error at line 1, col 33: multiple label name 'a' not allowed in a single format operation",
    ),
    (
        r#"{app="x"} | label_format __error__="x""#,
        "parse error at line 1, col 26: __error__ cannot be formatted",
    ),
    (
        r#"{app="foo"} | logfmt code="response.code", IPAddress="host""#,
        "parse error at line 1, col 27: cannot parse expression [response.code]: unexpected char .",
    ),
];

const EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Queries whose only fault is a selector every matcher of which accepts the empty value,
/// and where that selector starts.
const EMPTY_COMPATIBLE_SELECTORS: &[(&str, usize)] = &[
    (r#"count_over_time({foo!="bar"}[5m])"#, 17),
    (r#"count_over_time({app=~".*"}[5m])"#, 17),
    (r#"count_over_time({app!~"bar|baz"}[5m])"#, 17),
    (r#"1 + count_over_time({app=~".*"}[5m])"#, 21),
    (
        r#"1 + count_over_time({app=~".+"}[5m]) + count_over_time({app=~".*"}[5m])"#,
        56,
    ),
    (
        r#"1 + count_over_time({app=~".+"}[5m]) + count_over_time({app=~".*"}[5m]) + 1"#,
        56,
    ),
    (r#"{foo!="bar"}"#, 1),
    (r#"{app=~".*"}"#, 1),
    (r#"{foo!~"bar|baz"}"#, 1),
    (r#"{app=""}"#, 1),
    ("{}", 1),
    (r#"{} |= "x""#, 1),
];

fn parse_ok(query: &str) -> Expr {
    parse(query).unwrap_or_else(|error| panic!("{query:?} should parse: {error}"))
}

/// Parse, print, parse again: the trees must be equal (compared by their `Debug` form, which
/// tells every field apart and treats NaN literals as equal).
fn assert_round_trip(query: &str, expr: &Expr) {
    let printed = expr.to_string();
    let again = parse(&printed).unwrap_or_else(|error| panic!("{query:?} printed as {printed:?}: {error}"));
    assert_eq!(
        format!("{again:?}"),
        format!("{expr:?}"),
        "{query:?} printed as {printed:?}"
    );
    assert_eq!(again.to_string(), printed, "printing is not stable for {query:?}");
}

#[test]
fn valid_queries_print_their_canonical_form_and_read_back() {
    for (query, canonical) in VALID {
        let expr = parse_ok(query);
        assert_eq!(expr.to_string(), *canonical, "canonical form of {query:?}");
        assert_round_trip(query, &expr);
        let from_str: Expr = query.parse().unwrap();
        assert_eq!(format!("{from_str:?}"), format!("{expr:?}"));
    }
}

#[test]
fn invalid_queries_fail_with_loki_messages_and_positions() {
    for (query, expected) in INVALID {
        match parse(query) {
            Ok(expr) => panic!("{query:?} should not parse, got {expr}"),
            Err(error) => assert_eq!(error.to_string(), *expected, "error for {query:?}"),
        }
    }
}

#[test]
fn selectors_need_a_matcher_that_does_not_match_empty() {
    for (query, column) in EMPTY_COMPATIBLE_SELECTORS {
        let error = parse(query).unwrap_err();
        assert_eq!(error.message, EMPTY_COMPATIBLE, "{query:?}");
        assert_eq!((error.line, error.column), (1, *column), "{query:?}");
    }
    // A syntax error anywhere wins over the selector check, as in Loki.
    let error = parse(r#"{foo!="bar"} |= "#).unwrap_err();
    assert!(error.message.starts_with("syntax error"), "{error}");
}

#[test]
fn queries_longer_than_loki_accepts_are_refused() {
    let long = format!(r#"{{app="x"}} |= "{}""#, "a".repeat(obs_logql::MAX_QUERY_BYTES));
    let error = parse(&long).unwrap_err();
    assert!(
        error.message.starts_with("input size too long ("),
        "{}",
        error.message
    );
    let fits = format!(
        r#"{{app="x"}} |= "{}""#,
        "a".repeat(obs_logql::MAX_QUERY_BYTES - 100)
    );
    assert!(parse(&fits).is_ok());
}

#[test]
fn grafana_health_check_parses_to_a_vector_sum() {
    let Expr::Sample(SampleExpr::Binary(binary)) = parse_ok("vector(1)+vector(1)") else {
        panic!("a binary operation");
    };
    assert_eq!(binary.op, BinaryOp::Add);
    assert_eq!(*binary.lhs, SampleExpr::Vector(1.0));
    assert_eq!(*binary.rhs, SampleExpr::Vector(1.0));
    assert!(binary.matching.is_default());
}

#[test]
fn log_queries_have_typed_stages() {
    let expr = parse_ok(
        r#"{app="api", env=~"prod|dev"} |= "error" or "fail" != ip("10.0.0.0/8") |~ "(?i)timeout"
            |> "<_> GET <_>" | logfmt --strict msg, lvl="level" | json status="response.code", first="items[0]"
            | pattern "<ip> <_>" | regexp "(?P<user>\\w+)" | unpack
            | status >= 500 and latency > 1.5s or size < 2KiB, addr = ip("1.2.3.4")
            | line_format "{{.msg}}" | label_format dst="{{.src}}", renamed=src
            | drop a, b="c" | keep d | decolorize"#,
    );
    let log = expr.as_log().expect("a log query");
    assert_eq!(log.selector.len(), 2);
    assert_eq!(log.selector[1].op(), MatchOp::Regex);
    assert!(log.selector[1].matches("dev"));
    assert!(!log.selector[1].matches("test"));
    let stages = &log.pipeline;
    let Stage::LineFilter(contains) = &stages[0] else {
        panic!("line filter")
    };
    assert_eq!(contains.op, LineFilterOp::Contains);
    assert_eq!(
        contains.alternatives,
        [
            LineMatch::Contains("error".into()),
            LineMatch::Contains("fail".into())
        ]
    );
    assert!(contains.passes(|alternative| *alternative == LineMatch::Contains("fail".into())));
    let Stage::LineFilter(not_ip) = &stages[1] else {
        panic!("line filter")
    };
    assert_eq!(not_ip.op, LineFilterOp::NotContains);
    let LineMatch::Ip(ip) = &not_ip.alternatives[0] else {
        panic!("ip")
    };
    assert!(matches!(ip.matcher(), IpMatcher::Prefix { bits: 8, .. }));
    assert!(!not_ip.passes(|_| true));
    let Stage::LineFilter(regex) = &stages[2] else {
        panic!("line filter")
    };
    let LineMatch::Regex(regex) = &regex.alternatives[0] else {
        panic!("regex")
    };
    assert!(regex.is_match("a TimeOut here"));
    let Stage::LineFilter(pattern) = &stages[3] else {
        panic!("line filter")
    };
    let LineMatch::Pattern(pattern) = &pattern.alternatives[0] else {
        panic!("pattern")
    };
    assert_eq!(
        pattern.nodes(),
        [
            PatternNode::Capture("_".into()),
            PatternNode::Literal(" GET ".into()),
            PatternNode::Capture("_".into())
        ]
    );
    let Stage::Logfmt(logfmt) = &stages[4] else {
        panic!("logfmt")
    };
    assert!(logfmt.strict && !logfmt.keep_empty);
    assert_eq!(logfmt.extractions[0].key, "msg");
    assert_eq!(
        (
            logfmt.extractions[1].label.as_str(),
            logfmt.extractions[1].key.as_str()
        ),
        ("lvl", "level")
    );
    let Stage::Json(json) = &stages[5] else {
        panic!("json")
    };
    assert_eq!(
        json.extractions[0].path,
        [
            JsonPathSegment::Key("response".into()),
            JsonPathSegment::Key("code".into())
        ]
    );
    assert_eq!(
        json.extractions[1].path,
        [JsonPathSegment::Key("items".into()), JsonPathSegment::Index(0)]
    );
    let Stage::Pattern(parser) = &stages[6] else {
        panic!("pattern")
    };
    assert_eq!(parser.capture_names().collect::<Vec<_>>(), ["ip"]);
    let Stage::Regexp(regexp) = &stages[7] else {
        panic!("regexp")
    };
    assert_eq!(
        regexp
            .regex()
            .captures("bob")
            .and_then(|c| c.name("user"))
            .map(|m| m.as_str()),
        Some("bob")
    );
    assert_eq!(stages[8], Stage::Unpack);
    // `a and b or c, d` is `(a and b) or (c and d)`.
    let Stage::LabelFilter(LabelFilter::Or(alternatives)) = &stages[9] else {
        panic!("or")
    };
    let [LabelFilter::And(first), LabelFilter::And(second)] = alternatives.as_slice() else {
        panic!("two conjunctions: {alternatives:?}");
    };
    assert_eq!(
        first[0],
        LabelFilter::Number {
            name: "status".into(),
            op: CompareOp::GreaterOrEqual,
            value: 500.0
        }
    );
    assert_eq!(
        first[1],
        LabelFilter::Duration {
            name: "latency".into(),
            op: CompareOp::Greater,
            value: SignedDuration::from_millis(1_500)
        }
    );
    assert_eq!(
        second[0],
        LabelFilter::Bytes {
            name: "size".into(),
            op: CompareOp::Less,
            value: 2_048
        }
    );
    assert!(matches!(&second[1], LabelFilter::Ip { name, negated: false, .. } if name == "addr"));
    assert_eq!(stages[10], Stage::LineFormat("{{.msg}}".into()));
    let Stage::LabelFormat(formats) = &stages[11] else {
        panic!("label_format")
    };
    assert_eq!(formats[0].source, LabelFormatSource::Template("{{.src}}".into()));
    assert_eq!(formats[1].source, LabelFormatSource::Rename("src".into()));
    let Stage::Drop(dropped) = &stages[12] else {
        panic!("drop")
    };
    assert_eq!(dropped[0], NamedMatcher::Name("a".into()));
    assert!(matches!(&dropped[1], NamedMatcher::Matcher(m) if m.name() == "b" && m.value() == "c"));
    assert!(matches!(&stages[13], Stage::Keep(kept) if kept[0].name() == "d"));
    assert_eq!(stages[14], Stage::Decolorize);
    assert_round_trip("typed stages", &expr);
}

#[test]
fn metric_queries_have_typed_nodes() {
    let expr = parse_ok(
        r#"topk by (route) (5, quantile_over_time(0.99, {app="api"} | json | unwrap duration(latency) | __error__="" [5m] offset -1m) by (route))
           / on (route) group_left (team) sum without (pod) (rate({app="api"}[1m]))"#,
    );
    let Expr::Sample(SampleExpr::Binary(division)) = &expr else {
        panic!("binary")
    };
    assert_eq!(division.op, BinaryOp::Div);
    assert!(division.matching.on);
    assert_eq!(division.matching.labels, ["route"]);
    assert_eq!(division.matching.cardinality, Cardinality::ManyToOne);
    assert_eq!(division.matching.include, ["team"]);
    let SampleExpr::VectorAggregation(topk) = &*division.lhs else {
        panic!("topk")
    };
    assert_eq!((topk.op, topk.k), (VectorOp::Topk, Some(5)));
    assert_eq!(topk.grouping.labels, ["route"]);
    let SampleExpr::RangeAggregation(quantile) = &*topk.expr else {
        panic!("quantile")
    };
    assert_eq!(
        (quantile.op, quantile.quantile),
        (RangeOp::QuantileOverTime, Some(0.99))
    );
    assert_eq!(
        quantile.grouping.as_ref().map(|g| g.labels.clone()),
        Some(vec!["route".to_owned()])
    );
    assert_eq!(quantile.range.interval, std::time::Duration::from_secs(300));
    assert_eq!(quantile.range.offset, SignedDuration::from_millis(-60_000));
    let unwrap = quantile.range.unwrap.as_ref().expect("unwrap");
    assert_eq!(
        (unwrap.label.as_str(), unwrap.conversion),
        ("latency", Some(UnwrapConversion::Duration))
    );
    assert_eq!(unwrap.post_filters.len(), 1);
    let SampleExpr::VectorAggregation(sum) = &*division.rhs else {
        panic!("sum")
    };
    assert!(sum.grouping.without);
    assert_eq!(expr.log_exprs().len(), 2);
    assert_round_trip("typed nodes", &expr);
}

#[test]
fn helpers_answer_what_the_engine_asks() {
    let expr = parse_ok(
        r#"{app="api", env!="dev"} |= "error" |= "a" or "b" |~ "x" |= "" != "debug" | json
            | level="error", service="api" | line_format "{{.msg}}" |= "after""#,
    );
    let log = expr.as_log().unwrap();
    assert!(log.has_parser());
    assert_eq!(log.required_line_substrings(), [vec!["error"], vec!["a", "b"]]);
    let Stage::LabelFilter(filter) = &log.pipeline[6] else {
        panic!("label filter")
    };
    assert_eq!(filter.required_label_names(), ["level", "service"]);
    assert_eq!(
        filter.required_equalities(),
        [("level", "error"), ("service", "api")]
    );
    assert!(log.label_filters_before_parser().is_empty());

    let before = parse_ok(r#"{app="api"} | level="error" or level="warn" | logfmt | x="y""#);
    let before = before.as_log().unwrap();
    assert_eq!(before.label_filters_before_parser().len(), 1);
    assert!(
        before.label_filters_before_parser()[0]
            .required_equalities()
            .is_empty()
    );
    assert_eq!(
        before.label_filters_before_parser()[0].required_label_names(),
        ["level"]
    );

    let unpacked = parse_ok(r#"{app="api"} | unpack |= "x""#);
    assert!(unpacked.as_log().unwrap().required_line_substrings().is_empty());

    let metric = parse_ok(
        r#"sum(rate({app="a"}[1m])) / sum(rate({app="b"} |= "x" [1m])) + label_replace(count_over_time({app="c"}[1m]), "a", "b", "c", "d")"#,
    );
    let apps: Vec<&str> = metric
        .log_exprs()
        .iter()
        .map(|log| log.matchers()[0].value())
        .collect();
    assert_eq!(apps, ["a", "b", "c"]);
    assert!(!metric.is_log());
    assert!(metric.as_sample().is_some());

    let matchers = parse_selector(r#"{app="x", env=~"p.*"}"#).unwrap();
    assert_eq!(matchers.len(), 2);
    let series = matchers[1].to_series_matcher().unwrap();
    assert!(series.matches("prod"));
    assert!(parse_selector("{}").unwrap().is_empty());
    assert_eq!(
        parse_selector(r#"{app="x"} |= "y""#).unwrap_err().to_string(),
        "parse error at line 1, col 11: only label matchers are supported"
    );
}

#[test]
fn line_filter_or_chains_take_the_operator_of_their_first_filter() {
    let expr = parse_ok(r#"{app="foo"} != "test" != "foo" or "bar" or "baz" !~ "a" or "b""#);
    let ops: Vec<(LineFilterOp, usize)> = expr
        .as_log()
        .unwrap()
        .pipeline
        .iter()
        .map(|stage| match stage {
            Stage::LineFilter(filter) => (filter.op, filter.alternatives.len()),
            other => panic!("unexpected stage {other:?}"),
        })
        .collect();
    assert_eq!(
        ops,
        [
            (LineFilterOp::NotContains, 1),
            (LineFilterOp::NotContains, 3),
            (LineFilterOp::NotRegex, 2)
        ]
    );
}

#[test]
fn label_filters_group_as_loki_does() {
    // `,` and juxtaposition take everything to their right; `and` binds tighter than `or`.
    let cases = [
        (r#"a="1" , b="2" or c="3""#, "And[a, Or[b, c]]"),
        (r#"a="1" or b="2" , c="3""#, "Or[a, And[b, c]]"),
        (r#"a="1" or b="2" and c="3""#, "Or[a, And[b, c]]"),
        (r#"a="1" and b="2" or c="3""#, "Or[And[a, b], c]"),
        (r#"a="1" b="2" or c="3" d="4""#, "And[a, Or[b, And[c, d]]]"),
        (r#"(a="1" or b="2") c="3""#, "And[Or[a, b], c]"),
        (r#"a="1" or b="2" or c="3""#, "Or[a, b, c]"),
        (r#"a="1", b="2", c="3""#, "And[a, b, c]"),
    ];
    fn shape(filter: &LabelFilter) -> String {
        match filter {
            LabelFilter::And(children) => {
                format!(
                    "And[{}]",
                    children.iter().map(shape).collect::<Vec<_>>().join(", ")
                )
            }
            LabelFilter::Or(children) => format!(
                "Or[{}]",
                children.iter().map(shape).collect::<Vec<_>>().join(", ")
            ),
            leaf => leaf.leaf_name().unwrap_or_default().to_owned(),
        }
    }
    for (filter, expected) in cases {
        let query = format!(r#"{{app="x"}} | {filter}"#);
        let expr = parse_ok(&query);
        let Stage::LabelFilter(parsed) = &expr.as_log().unwrap().pipeline[0] else {
            panic!("label filter")
        };
        assert_eq!(shape(parsed), expected, "{filter}");
        assert_round_trip(&query, &expr);
    }
}

#[test]
fn binary_operators_follow_loki_precedence() {
    fn shape(expr: &SampleExpr) -> String {
        match expr {
            SampleExpr::Binary(binary) => format!(
                "({} {} {})",
                shape(&binary.lhs),
                binary.op.as_str(),
                shape(&binary.rhs)
            ),
            SampleExpr::Vector(value) => value.to_string(),
            other => other.to_string(),
        }
    }
    let v = |n: u8| format!("vector({n})");
    let cases = [
        (format!("{} or {} and {}", v(1), v(2), v(3)), "(1 or (2 and 3))"),
        (
            format!("{} and {} unless {}", v(1), v(2), v(3)),
            "((1 and 2) unless 3)",
        ),
        (format!("{} > {} + {}", v(1), v(2), v(3)), "(1 > (2 + 3))"),
        (format!("{} + {} * {}", v(1), v(2), v(3)), "(1 + (2 * 3))"),
        (format!("{} * {} ^ {}", v(1), v(2), v(3)), "(1 * (2 ^ 3))"),
        (format!("{} ^ {} ^ {}", v(1), v(2), v(3)), "(1 ^ (2 ^ 3))"),
        (format!("{} - {} - {}", v(1), v(2), v(3)), "((1 - 2) - 3)"),
        (format!("{} / {} % {}", v(1), v(2), v(3)), "((1 / 2) % 3)"),
        (format!("{} == {} != {}", v(1), v(2), v(3)), "((1 == 2) != 3)"),
        (
            format!("{} unless {} or {} > {}", v(1), v(2), v(3), v(4)),
            "((1 unless 2) or (3 > 4))",
        ),
    ];
    for (query, expected) in cases {
        let expr = parse_ok(&query);
        assert_eq!(shape(expr.as_sample().unwrap()), expected, "{query}");
        assert_round_trip(&query, &expr);
    }
}

/// Every prefix of every query in the tables: errors or trees, never a panic.
#[test]
fn truncated_queries_never_panic() {
    let queries = VALID.iter().chain(INVALID).map(|(query, _)| *query);
    for query in queries {
        for (end, _) in query.char_indices().chain([(query.len(), ' ')]) {
            let prefix = &query[..end];
            if let Ok(expr) = parse(prefix) {
                assert_round_trip(prefix, &expr);
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "[5m]",
    "[1h",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    "|=",
    "|~",
    "|>",
    "!>",
    "|",
    "==",
    ">",
    ">=",
    "<",
    "<=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "or",
    "and",
    "unless",
    "by",
    "without",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "json",
    "logfmt",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "unwrap",
    "ip(",
    "bytes(",
    "duration(",
    "rate(",
    "count_over_time(",
    "sum(",
    "topk(",
    "quantile_over_time(",
    "vector(",
    "label_replace(",
    "sum_over_time(",
    "absent_over_time(",
    "app",
    "level",
    "__error__",
    "\"x\"",
    "\"(?P<a>.)\"",
    "\"<a> <_>\"",
    "`re\\d`",
    "\"1.2.3.4\"",
    "5",
    "-1",
    "0.5",
    "1e3",
    "5m",
    "-5m",
    "20MB",
    "1KiB",
    "--strict",
    "--keep-empty",
    "#",
    "\n",
    " ",
    "\"",
    "`",
    "\\",
    "$",
    "é",
    "/*",
    "*/",
    "//",
    "0x1p3",
    "{app=\"x\"}",
    " | json ",
];

#[test]
fn random_fragment_soup_never_panics() {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut query = String::new();
        for _ in 0..random.below(24) + 1 {
            query.push_str(FRAGMENTS[random.below(FRAGMENTS.len())]);
            if random.below(3) == 0 {
                query.push(' ');
            }
        }
        if let Ok(expr) = parse(&query) {
            parsed += 1;
            assert_round_trip(&query, &expr);
        }
    }
    // The soup must reach the parser's deeper states, not only fail at the first token.
    assert!(parsed > 0, "no random query parsed");
}

#[test]
fn random_bytes_never_panic() {
    let mut random = Random(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..random.below(64)).map(|_| random.next() as u8).collect();
        let query = String::from_utf8_lossy(&bytes);
        if let Ok(expr) = parse(&query) {
            assert_round_trip(&query, &expr);
        }
    }
}

#[test]
fn mutated_valid_queries_never_panic() {
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    for (query, _) in VALID {
        let chars: Vec<char> = query.chars().collect();
        for _ in 0..60 {
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
            if let Ok(expr) = parse(&mutated) {
                assert_round_trip(&mutated, &expr);
            }
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Each stays under the input size limit, so the depth limit is what refuses it.
    let huge = 60_000;
    let too_deep = [
        "(".repeat(huge),
        format!("{}vector(1){}", "(".repeat(huge), ")".repeat(huge)),
        format!("{}vector(1){}", "sum(".repeat(huge / 4), ")".repeat(huge / 4)),
        format!("vector(1){}", " ^ vector(1)".repeat(10_000)),
        format!("vector(1){}", " + vector(1)".repeat(10_000)),
        format!("{{a=\"b\"}} | {}x=\"y\"", "(".repeat(huge)),
        format!("{{a=\"b\"}} | x=\"y\"{}", " or a=\"b\", c=\"d\"".repeat(5_000)),
        format!("count_over_time({}{{a=\"b\"}}[1m])", "(".repeat(huge)),
        format!(
            "{}1{}",
            "label_replace(".repeat(3_000),
            ", \"a\", \"b\", \"c\", \"d\")".repeat(3_000)
        ),
    ];
    for query in &too_deep {
        assert!(query.len() < obs_logql::MAX_QUERY_BYTES);
        let error = parse(query).unwrap_err();
        assert!(
            error.message.starts_with("query is nested too deeply")
                || error.message.starts_with("syntax error"),
            "{}",
            error.message
        );
    }
    // Just under the limit: parses, prints, reads back, on a thread with a small stack.
    let depth = obs_logql::MAX_DEPTH - 2;
    let deep_but_allowed = vec![
        format!("{}vector(1){}", "(".repeat(depth), ")".repeat(depth)),
        format!("{}vector(1){}", "sum(".repeat(depth), ")".repeat(depth)),
        format!("vector(1){}", " ^ vector(1)".repeat(depth)),
        format!("vector(1){}", " + vector(1)".repeat(depth)),
        format!("{{a=\"b\"}} | {}x=\"y\"{}", "(".repeat(depth), ")".repeat(depth)),
        format!(
            "count_over_time({}{{a=\"b\"}}[1m]{})",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for query in &deep_but_allowed {
                let expr = parse_ok(query);
                assert_round_trip(query, &expr);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn table_sizes() {
    // Keeps the tables from shrinking unnoticed.
    println!(
        "{} valid, {} invalid, {} empty-compatible selectors",
        VALID.len(),
        INVALID.len(),
        EMPTY_COMPATIBLE_SELECTORS.len()
    );
    assert!(VALID.len() >= 200, "{} valid queries", VALID.len());
    assert!(INVALID.len() >= 90, "{} invalid queries", INVALID.len());
}
