//! Prometheus remote_write 1.0: the `prometheus.WriteRequest` protobuf, decoded with prost from
//! message definitions declared here (no code generation step), and its conversion to
//! validated label sets and samples.
//!
//! A series whose labels break the rules is refused with its reason while the valid series of
//! the same request are kept, as the specification asks.

use obs_core::series::{Labels, SeriesSamples};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (HELP, TYPE, UNIT).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name by well-behaved senders.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms (field 4); not stored yet, counted as refused.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Histogram`, only its timestamp is read (to report it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// The metric type (enum).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// UNIT.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// A series the decoder refused, with a message for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSeries {
    /// The series as sent, for the message.
    pub description: String,
    /// Why.
    pub reason: String,
    /// Samples it carried.
    pub samples: usize,
}

/// Decodes a decompressed remote_write 1.0 body into valid series and refused ones.
pub fn decode(body: &[u8]) -> Result<(Vec<SeriesSamples>, Vec<InvalidSeries>), prost::DecodeError> {
    let request = <WriteRequest as prost::Message>::decode(body)?;
    let mut valid = Vec::with_capacity(request.timeseries.len());
    let mut invalid = Vec::new();
    for series in request.timeseries {
        if !series.histograms.is_empty() {
            invalid.push(InvalidSeries {
                description: describe(&series.labels),
                reason: "native histograms are not supported; send classic histograms".to_owned(),
                samples: series.histograms.len(),
            });
        }
        if series.samples.is_empty() {
            continue;
        }
        let pairs = series
            .labels
            .iter()
            .map(|label| (label.name.as_str(), label.value.as_str()));
        match Labels::series(pairs) {
            Ok(labels) => valid.push(SeriesSamples {
                labels,
                samples: series.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            }),
            Err(err) => invalid.push(InvalidSeries {
                description: describe(&series.labels),
                reason: err.to_string(),
                samples: series.samples.len(),
            }),
        }
    }
    Ok((valid, invalid))
}

fn describe(labels: &[Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|label| format!("{}={:?}", label.name, label.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn valid_series_are_kept_beside_invalid_ones() {
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("job", "node"), label("__name__", "up")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    histograms: vec![],
                },
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("bad-name", "x")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    histograms: vec![],
                },
            ],
            metadata: vec![],
        };
        let (valid, invalid) = decode(&request.encode_to_vec()).unwrap();
        assert_eq!(valid.len(), 1);
        assert_eq!(valid[0].labels.to_string(), "up{job=\"node\"}");
        assert_eq!(invalid.len(), 1);
        assert!(invalid[0].reason.contains("bad-name"), "{:?}", invalid[0]);
        assert!(decode(b"\x0a\xff\xff").is_err());
    }
}
