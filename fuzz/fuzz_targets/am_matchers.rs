//! Arbitrary text as Alertmanager matchers: parsing never panics, and what parses prints in
//! canonical form that parses back to the same matchers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_alertmanager::matchers::{Matchers, parse_matchers};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() > 4096 {
        return;
    }
    if let Ok(parsed) = obs_alertmanager::fuzz_matchers(text) {
        let printed = Matchers(parsed.clone()).to_string();
        let reparsed = parse_matchers(&printed).unwrap_or_else(|err| panic!("{text:?} -> {printed:?}: {err}"));
        assert_eq!(reparsed, parsed, "{text:?} -> {printed:?}");
    }
});
