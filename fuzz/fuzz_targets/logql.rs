//! Arbitrary text as LogQL: parsing never panics; errors are values. A query that parses
//! prints a canonical form that parses back to the same tree and prints the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = obs_logql::parse(query) else {
        return;
    };
    let printed = expr.to_string();
    let again = match obs_logql::parse(&printed) {
        Ok(again) => again,
        Err(error) => panic!("{query:?} printed as {printed:?}, which does not parse: {error}"),
    };
    // `Debug` tells every field apart (and NaN literals compare equal there).
    assert_eq!(
        format!("{again:?}"),
        format!("{expr:?}"),
        "{query:?} printed as {printed:?}"
    );
    assert_eq!(again.to_string(), printed, "{query:?}: printing is not stable");
    // The helpers walk the whole tree; they must not panic either.
    for log in expr.log_exprs() {
        let _ = log.required_line_substrings();
        let _ = log.label_filters_before_parser();
        for matcher in log.matchers() {
            let _ = matcher.to_series_matcher();
        }
    }
});
