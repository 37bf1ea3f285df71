//! Arbitrary bytes as OTLP metrics export requests, protobuf and JSON: decoding and the
//! conversion to Prometheus series never panic, every series has a metric name and one sample,
//! and the point index maps every series.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_metrics::otlp::{OtlpOptions, convert};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let decoded = [
        ExportMetricsServiceRequest::decode(data).ok(),
        serde_json::from_slice::<ExportMetricsServiceRequest>(data).ok(),
    ];
    for request in decoded.into_iter().flatten() {
        for scope_labels in [false, true] {
            let mut converted = convert(&request, &OtlpOptions { scope_labels });
            assert_eq!(converted.series.len(), converted.series_points.len());
            for series in &converted.series {
                assert!(series.labels.metric_name().is_some());
                assert_eq!(series.samples.len(), 1);
            }
            let (series, index) = converted.take_series();
            assert_eq!(index.rejected_points(&[]), 0);
            drop(series);
        }
    }
});
