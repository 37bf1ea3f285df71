//! Arbitrary text as PromQL: parsing and evaluating it (instant and a short range) over a
//! small in-memory data set never panics; errors are values.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use obs_core::series::{Labels, Matcher, MetricMetadata, MetricsQuerier, SeriesSamples, StorageError};
use obs_promql::{Engine, EngineOptions};

struct Memory(Vec<SeriesSamples>);

impl MetricsQuerier for Memory {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>, StorageError> {
        Ok(self
            .0
            .iter()
            .filter(|series| matchers.iter().all(|m| m.matches_labels(&series.labels)))
            .map(|series| SeriesSamples {
                labels: series.labels.clone(),
                samples: series.samples.iter().copied().filter(|(t, _)| *t >= mint && *t <= maxt).collect(),
            })
            .collect())
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(vec![])
    }
    fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(vec![])
    }
    fn metadata(&self, _: Option<&str>, _: Option<usize>) -> Vec<(String, Vec<MetricMetadata>)> {
        vec![]
    }
}

fn engine() -> Engine {
    let mut series = Vec::new();
    for (name, instance, le) in [("a", "x", ""), ("a", "y", ""), ("b_bucket", "x", "1"), ("b_bucket", "x", "+Inf")] {
        let labels = Labels::from_pairs([("__name__", name), ("instance", instance), ("le", le)]).unwrap();
        let samples = (0..20).map(|i| (i * 15_000, (i % 7) as f64 - 2.0)).collect();
        series.push(SeriesSamples { labels, samples });
    }
    Engine::new(
        Arc::new(Memory(series)),
        EngineOptions {
            max_samples: 100_000,
            timeout: std::time::Duration::from_secs(2),
            ..EngineOptions::default()
        },
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if query.len() > 512 {
        return;
    }
    let engine = engine();
    let _ = engine.instant(query, 150_000);
    let _ = engine.range(query, 0, 300_000, 60_000);
    let _ = obs_promql::format_query(query);
    let _ = obs_promql::selector_matchers(query);
});
