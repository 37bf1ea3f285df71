//! Arbitrary text as alertmanager.yml: parsing and validation never panic; a configuration
//! that parses compiles into a routing tree that routes an alert to at least one route.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_alertmanager::labels::LabelSet;
use obs_alertmanager::route::RouteTree;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() > 16 << 10 {
        return;
    }
    if let Ok(config) = obs_alertmanager::fuzz_config(text) {
        let tree = RouteTree::new(&config.route);
        let labels = LabelSet::from_pairs([("alertname", "Fuzz"), ("severity", "critical")]);
        assert!(!tree.match_labels(&labels).is_empty(), "the root route matches everything");
    }
});
