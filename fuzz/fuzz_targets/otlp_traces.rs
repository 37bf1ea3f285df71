//! Arbitrary bytes as OTLP trace export requests (protobuf and JSON) and as Zipkin v2 JSON:
//! decoding and the per-span checks never panic; every accepted span has a 16-byte non-zero
//! trace id, an 8-byte non-zero span id and does not end before it starts; its stored payload
//! decodes back to the same span, and its write-ahead log record round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_traces::otlp::{SpanLimits, convert, zipkin_to_otlp};
use obs_traces::record::SpanDoc;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let mut requests = vec![
        ExportTraceServiceRequest::decode(data).ok(),
        serde_json::from_slice::<ExportTraceServiceRequest>(data).ok(),
    ];
    if let Ok((request, _)) = zipkin_to_otlp(data) {
        requests.push(Some(request));
    }
    for request in requests.into_iter().flatten() {
        let converted = convert(&request, &SpanLimits::default());
        for doc in &converted.spans {
            assert_ne!(doc.trace_id, [0; 16]);
            assert_ne!(doc.span_id, [0; 8]);
            assert!(doc.end_ns >= doc.start_ns);
            let again = SpanDoc::from_payload(&doc.payload).expect("a stored span decodes");
            assert_eq!(&again, doc);
        }
        let record = obs_traces::record::encode_record(&converted.spans);
        let decoded = obs_traces::record::decode_record(&record).expect("a record decodes");
        assert_eq!(decoded, converted.spans);
    }
});
