//! Prometheus remote_write 1.0: the `prometheus.WriteRequest` protobuf.
//!
//! Bodies are decoded by a hand-written reader ([`decode`]) that borrows label bytes from the
//! body instead of allocating a `String` per label: this is the ingest hot path, and the store
//! finds series it already knows by a hash of those bytes. The prost message definitions below
//! (declared here, no code generation step) describe the same wire format and are used to
//! write requests (tests, benchmarks) and to check the reader against prost.
//!
//! A series whose labels break the rules is refused with its reason while the valid series of
//! the same request are kept, as the specification asks.

use obs_core::series::Labels;

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

/// A decoded remote_write request that borrows every label from the request body: series
/// already known are found by a hash of their label bytes and never allocate.
#[derive(Debug, Default)]
pub struct RawRequest<'a> {
    /// The series, in request order.
    pub series: Vec<RawSeries>,
    labels: Vec<(&'a [u8], &'a [u8])>,
    samples: Vec<(i64, f64)>,
}

/// One series of a [`RawRequest`].
#[derive(Debug, Clone)]
pub struct RawSeries {
    labels: std::ops::Range<usize>,
    samples: std::ops::Range<usize>,
    /// Native histogram samples it carried (not supported; reported as refused).
    pub histograms: usize,
    /// Why the series cannot be read (a remote write 2.0 label reference out of range).
    pub error: Option<&'static str>,
}

impl<'a> RawRequest<'a> {
    /// The label pairs of a series, as sent.
    pub fn labels(&self, series: &RawSeries) -> &[(&'a [u8], &'a [u8])] {
        &self.labels[series.labels.clone()]
    }

    /// All samples of the request.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The samples of a series, as sent.
    pub fn samples(&self, series: &RawSeries) -> &[(i64, f64)] {
        &self.samples[series.samples.clone()]
    }
}

/// Why a body is not a `prometheus.WriteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf: {0}")]
pub struct WireError(&'static str);

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or(WireError("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(WireError("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(len).ok_or(WireError("length overflow"))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(WireError("truncated field"))?;
        self.pos = end;
        Ok(slice)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError("length overflow"))?;
        self.take(len)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u64, u8), WireError> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.length_delimited().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(WireError("unsupported wire type")),
        }
    }

    fn expect(&self, wire_type: u8, wanted: u8) -> Result<(), WireError> {
        if wire_type == wanted {
            Ok(())
        } else {
            Err(WireError("field has the wrong wire type"))
        }
    }
}

/// Decodes a decompressed remote_write 1.0 body (`prometheus.WriteRequest`) without copying
/// labels. Structural errors refuse the whole body; label rules are checked by the store.
pub fn decode(body: &[u8]) -> Result<RawRequest<'_>, WireError> {
    let mut request = RawRequest::default();
    let mut reader = Reader { bytes: body, pos: 0 };
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        if field != 1 {
            reader.skip(wire_type)?;
            continue;
        }
        reader.expect(wire_type, 2)?;
        let series_bytes = reader.length_delimited()?;
        let labels_start = request.labels.len();
        let samples_start = request.samples.len();
        let mut histograms = 0;
        let mut series = Reader {
            bytes: series_bytes,
            pos: 0,
        };
        while !series.is_empty() {
            let (field, wire_type) = series.key()?;
            match field {
                1 => {
                    series.expect(wire_type, 2)?;
                    let mut label = Reader {
                        bytes: series.length_delimited()?,
                        pos: 0,
                    };
                    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
                    while !label.is_empty() {
                        let (field, wire_type) = label.key()?;
                        match field {
                            1 => {
                                label.expect(wire_type, 2)?;
                                name = label.length_delimited()?;
                            }
                            2 => {
                                label.expect(wire_type, 2)?;
                                value = label.length_delimited()?;
                            }
                            _ => label.skip(wire_type)?,
                        }
                    }
                    request.labels.push((name, value));
                }
                2 => {
                    series.expect(wire_type, 2)?;
                    let sample = decode_sample(series.length_delimited()?)?;
                    request.samples.push(sample);
                }
                4 => {
                    series.skip(wire_type)?;
                    histograms += 1;
                }
                _ => series.skip(wire_type)?,
            }
        }
        request.series.push(RawSeries {
            labels: labels_start..request.labels.len(),
            samples: samples_start..request.samples.len(),
            histograms,
            error: None,
        });
    }
    Ok(request)
}

/// Reads a `Sample` message (remote write 1.0 and 2.0 share it).
fn decode_sample(bytes: &[u8]) -> Result<(i64, f64), WireError> {
    let mut sample = Reader { bytes, pos: 0 };
    let (mut value, mut timestamp) = (0f64, 0i64);
    while !sample.is_empty() {
        let (field, wire_type) = sample.key()?;
        match field {
            1 => {
                sample.expect(wire_type, 1)?;
                let raw = sample.take(8)?;
                let mut bits = [0u8; 8];
                bits.copy_from_slice(raw);
                value = f64::from_le_bytes(bits);
            }
            2 => {
                sample.expect(wire_type, 0)?;
                timestamp = sample.varint()? as i64;
            }
            _ => sample.skip(wire_type)?,
        }
    }
    Ok((timestamp, value))
}

/// Decodes a decompressed remote write 2.0 body (`io.prometheus.write.v2.Request`: a symbols
/// table and series whose labels are pairs of references into it) into the same borrowed form
/// as [`decode`]. A series with a reference outside the table is marked, not fatal.
pub fn decode_v2(body: &[u8]) -> Result<RawRequest<'_>, WireError> {
    // Symbols may follow the series on the wire, so collect both first.
    let mut symbols: Vec<&[u8]> = Vec::new();
    let mut series_bodies: Vec<&[u8]> = Vec::new();
    let mut reader = Reader { bytes: body, pos: 0 };
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match field {
            4 => {
                reader.expect(wire_type, 2)?;
                symbols.push(reader.length_delimited()?);
            }
            5 => {
                reader.expect(wire_type, 2)?;
                series_bodies.push(reader.length_delimited()?);
            }
            _ => reader.skip(wire_type)?,
        }
    }
    if symbols.first().is_some_and(|first| !first.is_empty()) {
        return Err(WireError("the first symbol must be the empty string"));
    }
    let mut request = RawRequest::default();
    for series_bytes in series_bodies {
        let labels_start = request.labels.len();
        let samples_start = request.samples.len();
        let mut references: Vec<u64> = Vec::new();
        let mut histograms = 0;
        let mut series = Reader {
            bytes: series_bytes,
            pos: 0,
        };
        while !series.is_empty() {
            let (field, wire_type) = series.key()?;
            match (field, wire_type) {
                (1, 2) => {
                    let mut packed = Reader {
                        bytes: series.length_delimited()?,
                        pos: 0,
                    };
                    while !packed.is_empty() {
                        references.push(packed.varint()?);
                    }
                }
                (1, 0) => references.push(series.varint()?),
                (2, _) => {
                    series.expect(wire_type, 2)?;
                    let sample = decode_sample(series.length_delimited()?)?;
                    request.samples.push(sample);
                }
                (3, _) => {
                    series.skip(wire_type)?;
                    histograms += 1;
                }
                _ => series.skip(wire_type)?,
            }
        }
        let mut error = None;
        if !references.len().is_multiple_of(2) {
            error = Some("odd number of label references");
        }
        for pair in references.chunks_exact(2) {
            let symbol = |reference: u64| {
                usize::try_from(reference)
                    .ok()
                    .and_then(|index| symbols.get(index))
                    .copied()
            };
            match (symbol(pair[0]), symbol(pair[1])) {
                (Some(name), Some(value)) => request.labels.push((name, value)),
                _ => error = Some("label reference outside the symbols table"),
            }
        }
        request.series.push(RawSeries {
            labels: labels_start..request.labels.len(),
            samples: samples_start..request.samples.len(),
            histograms,
            error,
        });
    }
    Ok(request)
}

/// `{name="value", ...}` of label pairs as sent, for messages.
pub fn describe(pairs: &[(&[u8], &[u8])]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            )
        })
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Builds the validated label set of raw pairs (the slow path, for series not seen yet).
pub fn labels_from_raw(pairs: &[(&[u8], &[u8])]) -> Result<Labels, String> {
    let mut owned = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = std::str::from_utf8(name).map_err(|_| "label name is not valid UTF-8".to_owned())?;
        let value =
            std::str::from_utf8(value).map_err(|_| format!("value of label {name:?} is not valid UTF-8"))?;
        owned.push((name, value));
    }
    Labels::series(owned).map_err(|err| err.to_string())
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
    fn the_borrowed_decoder_reads_what_prost_writes() {
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "node")],
                    samples: vec![
                        Sample {
                            value: 1.5,
                            timestamp: -1000,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: 2000,
                        },
                    ],
                    histograms: vec![Histogram { timestamp: 5 }],
                },
                TimeSeries {
                    labels: vec![label("__name__", "x"), label("bad-name", "1")],
                    samples: vec![],
                    histograms: vec![],
                },
            ],
            metadata: vec![MetricMetadata {
                r#type: 1,
                metric_family_name: "up".to_owned(),
                help: "h".to_owned(),
                unit: String::new(),
            }],
        };
        let body = request.encode_to_vec();
        let raw = decode(&body).unwrap();
        assert_eq!(raw.series.len(), 2);
        let first = &raw.series[0];
        assert_eq!(
            raw.labels(first),
            &[(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"node"[..])]
        );
        assert_eq!(raw.samples(first)[0], (-1000, 1.5));
        assert!(raw.samples(first)[1].1.is_nan());
        assert_eq!(first.histograms, 1);
        assert_eq!(
            labels_from_raw(raw.labels(first)).unwrap().to_string(),
            "up{job=\"node\"}"
        );
        let error = labels_from_raw(raw.labels(&raw.series[1])).unwrap_err();
        assert!(error.contains("bad-name"), "{error}");
        assert_eq!(
            describe(raw.labels(&raw.series[1])),
            "{__name__=\"x\", bad-name=\"1\"}"
        );
        for cut in 1..body.len() {
            // Truncations never panic; most are errors.
            let _ = decode(&body[..cut]);
        }
        assert!(decode(b"\x0a\xff\xff").is_err());
        assert!(labels_from_raw(&[(b"__name__", b"\xff")]).is_err());
    }
}
