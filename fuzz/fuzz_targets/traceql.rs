//! Arbitrary text as TraceQL: parsing never panics; errors are values with a position inside
//! the input. A query that parses prints a canonical form that parses back to the same tree
//! and prints the same again; the helpers walk the whole tree without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let expr = match obs_traceql::parse(query) {
        Ok(expr) => expr,
        Err(error) => {
            assert!(error.line >= 1 && error.column >= 1 && error.offset <= query.len());
            return;
        }
    };
    let printed = expr.to_string();
    let again = match obs_traceql::parse(&printed) {
        Ok(again) => again,
        Err(error) => panic!("{query:?} printed as {printed:?}, which does not parse: {error}"),
    };
    assert_eq!(again, expr, "{query:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed, "{query:?}: printing is not stable");
    let _ = expr.is_single_filter();
    let _ = expr.selected_fields();
    let _ = expr.referenced_fields();
    for filter in expr.spanset_filters() {
        let _ = filter.conditions_are_exhaustive();
        for condition in filter.required_conditions() {
            let _ = condition.to_string();
        }
    }
    if let Some(metrics) = expr.metrics() {
        let _ = metrics.pipelines();
    }
});
