//! Arbitrary bytes as scrape bodies in both formats: never a panic; every sample has a valid
//! metric name and unique, valid label names; errors name a line of the body; and what parses,
//! rendered back in the text format, parses to the same samples. Given the series order of an
//! earlier body (the bytes before a 0xff, which no UTF-8 text holds), a parse gives what a full
//! parse gives, but for the labels of series it skipped, which are exactly the expected ones.
#![no_main]

use std::fmt::Write as _;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use obs_scrape::parse::{
    Format, ScrapedSample, SeriesOrder, is_valid_label_name, is_valid_metric_name, parse, parse_each,
    parse_each_ordered,
};

fn render_text(samples: &[ScrapedSample<'_>]) -> String {
    let mut body = String::new();
    for sample in samples {
        body.push_str(sample.name);
        body.push('{');
        for (name, value) in &sample.labels {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(body, "{name}=\"{escaped}\",");
        }
        body.push_str("} ");
        if sample.value.is_nan() {
            body.push_str("NaN");
        } else if sample.value.is_infinite() {
            body.push_str(if sample.value > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(body, "{:?}", sample.value);
        }
        if let Some(timestamp_ms) = sample.timestamp_ms {
            let _ = write!(body, " {timestamp_ms}");
        }
        body.push('\n');
    }
    body
}

/// Parses `body` with the order of `earlier` and checks it against the full parse.
fn check_ordered(earlier: &str, body: &str, format: Format) {
    let mut order = SeriesOrder::new();
    order.clear(format);
    if parse_each(earlier, format, |sample| order.push(Arc::from(sample.series))).is_err() {
        return;
    }
    let full = parse(body, format);
    let mut samples = Vec::new();
    let ordered = parse_each_ordered(body, format, &order, |sample| {
        samples.push(sample.clone());
        None
    });
    let full = match (full, ordered) {
        (Err(full), Err(ordered)) => {
            assert_eq!(full, ordered, "{format:?} {earlier:?} then {body:?}");
            return;
        }
        (Ok(full), Ok(metadata)) => {
            assert_eq!(full.metadata, metadata, "{format:?} {earlier:?} then {body:?}");
            full
        }
        (full, ordered) => panic!("{format:?} {earlier:?} then {body:?}: {full:?} but {ordered:?}"),
    };
    assert_eq!(full.samples.len(), samples.len(), "{format:?} {earlier:?} then {body:?}");
    for (sample, expected) in samples.iter().zip(&full.samples) {
        let same_value = sample.value.to_bits() == expected.value.to_bits()
            || (sample.value.is_nan() && expected.value.is_nan());
        let labels_agree = match sample.position {
            Some(position) => {
                order.get(position).map(|series| &**series) == Some(sample.series) && sample.labels.is_empty()
            }
            None => sample.labels == expected.labels,
        };
        assert!(
            sample.series == expected.series
                && sample.name == expected.name
                && labels_agree
                && same_value
                && sample.timestamp_ms == expected.timestamp_ms,
            "{format:?} {earlier:?} then {body:?}: {expected:?} became {sample:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (earlier, data) = match data.iter().position(|&byte| byte == 0xff) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, data),
    };
    let (Ok(earlier), Ok(body)) = (std::str::from_utf8(earlier), std::str::from_utf8(data)) else {
        return;
    };
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        check_ordered(earlier, body, format);
    }
    let lines = body.split('\n').count();
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let parsed = match parse(body, format) {
            Ok(parsed) => parsed,
            Err(error) => {
                assert!((1..=lines).contains(&error.line), "{format:?} {body:?}: {error}");
                continue;
            }
        };
        for sample in &parsed.samples {
            assert!(
                is_valid_metric_name(sample.name),
                "{format:?} {body:?}: {sample:?}"
            );
            for (index, (name, _)) in sample.labels.iter().enumerate() {
                assert!(is_valid_label_name(name), "{format:?} {body:?}: {sample:?}");
                assert_ne!(*name, "__name__", "{format:?} {body:?}: {sample:?}");
                assert!(
                    sample
                        .labels
                        .iter()
                        .take(index)
                        .all(|(earlier, _)| earlier != name),
                    "{format:?} {body:?}: {sample:?}"
                );
            }
        }
        for family in &parsed.metadata {
            assert!(
                is_valid_metric_name(&family.name),
                "{format:?} {body:?}: {family:?}"
            );
        }
        let rendered = render_text(&parsed.samples);
        let reparsed = parse(&rendered, Format::PrometheusText)
            .unwrap_or_else(|error| panic!("{format:?} {body:?} rendered as {rendered:?}: {error}"));
        assert_eq!(
            reparsed.samples.len(),
            parsed.samples.len(),
            "{format:?} {body:?}"
        );
        for (again, sample) in reparsed.samples.iter().zip(&parsed.samples) {
            let same_value = again.value.to_bits() == sample.value.to_bits()
                || (again.value.is_nan() && sample.value.is_nan());
            assert!(
                again.name == sample.name
                    && again.labels == sample.labels
                    && same_value
                    && again.timestamp_ms == sample.timestamp_ms,
                "{format:?} {body:?} rendered as {rendered:?}: {sample:?} became {again:?}"
            );
        }
    }
});
