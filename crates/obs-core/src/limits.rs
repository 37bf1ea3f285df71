//! Capped decompression, used by every decoder of untrusted bytes.
//!
//! A body is decompressed into at most `max_bytes`; one byte more is a [`LimitError::TooLarge`]
//! (HTTP 413), found without ever allocating past the cap. Snappy's block format announces its
//! decompressed length up front, so an oversized snappy body is refused before any work.

use std::io::Read;

use crate::error::{Classify, ErrorKind};

/// Request and decompression limits shared by every ingest path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body accepted, as received on the wire.
    pub max_request_body_bytes: usize,
    /// The largest body accepted after decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_body_bytes: 32 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

/// A compression applied to a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// HTTP `deflate`: zlib-wrapped (RFC 1950) as the RFC says, or raw deflate (RFC 1951) as some
    /// clients send it.
    Deflate,
    /// Snappy block format (remote_write, Loki push), not the framed stream format.
    SnappyBlock,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Parses an HTTP `Content-Encoding` value. An absent header is [`Compression::Identity`].
    pub fn from_content_encoding(value: Option<&str>) -> Result<Compression, LimitError> {
        let Some(value) = value else {
            return Ok(Compression::Identity);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Compression::Identity),
            "gzip" | "x-gzip" => Ok(Compression::Gzip),
            "deflate" => Ok(Compression::Deflate),
            "snappy" => Ok(Compression::SnappyBlock),
            "zstd" => Ok(Compression::Zstd),
            other => Err(LimitError::UnsupportedEncoding(other.to_owned())),
        }
    }

    /// The lowercase name of this compression.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Identity => "identity",
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
            Compression::SnappyBlock => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The body exceeds a limit.
    #[error("{what} exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// Which size was exceeded ("request body", "decompressed body").
        what: &'static str,
        /// The limit.
        limit_bytes: usize,
    },
    /// The body is not valid data of its announced compression.
    #[error("body is not valid {compression} data: {detail}")]
    Corrupt {
        /// The compression the body claimed.
        compression: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The body uses a compression the appliance does not accept.
    #[error("unsupported content encoding {0:?}; use gzip, deflate, snappy, zstd or none")]
    UnsupportedEncoding(String),
}

impl Classify for LimitError {
    fn kind(&self) -> ErrorKind {
        match self {
            LimitError::TooLarge { .. } => ErrorKind::TooLarge,
            LimitError::Corrupt { .. } => ErrorKind::BadInput,
            LimitError::UnsupportedEncoding(_) => ErrorKind::UnsupportedMediaType,
        }
    }
}

/// Decompresses `input` into at most `max_bytes` bytes.
///
/// `Identity` is checked against the cap too, so callers can pass every body through here.
pub fn decompress(compression: Compression, input: &[u8], max_bytes: usize) -> Result<Vec<u8>, LimitError> {
    let too_large = || LimitError::TooLarge {
        what: "decompressed body",
        limit_bytes: max_bytes,
    };
    match compression {
        Compression::Identity => {
            if input.len() > max_bytes {
                return Err(too_large());
            }
            Ok(input.to_vec())
        }
        Compression::SnappyBlock => decompress_snappy_block(input, max_bytes),
        Compression::Gzip => read_capped(flate2::read::GzDecoder::new(input), "gzip", max_bytes),
        Compression::Deflate => {
            // RFC 9110 says zlib; some clients send raw deflate. A zlib stream starts with a
            // header whose first 16 bits are a multiple of 31 and whose method is 8.
            let is_zlib = input.len() >= 2
                && input[0] & 0x0f == 8
                && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
            if is_zlib {
                read_capped(flate2::read::ZlibDecoder::new(input), "deflate", max_bytes)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(input), "deflate", max_bytes)
            }
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|err| LimitError::Corrupt {
                compression: "zstd",
                detail: err.to_string(),
            })?;
            read_capped(decoder, "zstd", max_bytes)
        }
    }
}

/// Decompresses a snappy block, refusing it before allocating if its header announces more
/// than `max_bytes`.
pub fn decompress_snappy_block(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, LimitError> {
    let corrupt = |err: snap::Error| LimitError::Corrupt {
        compression: "snappy",
        detail: err.to_string(),
    };
    let announced = snap::raw::decompress_len(input).map_err(corrupt)?;
    if announced > max_bytes {
        return Err(LimitError::TooLarge {
            what: "decompressed body",
            limit_bytes: max_bytes,
        });
    }
    snap::raw::Decoder::new().decompress_vec(input).map_err(corrupt)
}

fn read_capped(
    reader: impl Read,
    compression: &'static str,
    max_bytes: usize,
) -> Result<Vec<u8>, LimitError> {
    let mut output = Vec::new();
    let cap = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut output)
        .map_err(|err| LimitError::Corrupt {
            compression,
            detail: err.to_string(),
        })?;
    if output.len() > max_bytes {
        return Err(LimitError::TooLarge {
            what: "decompressed body",
            limit_bytes: max_bytes,
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
        match compression {
            Compression::Identity => data.to_vec(),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(data).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Deflate => {
                let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(data).unwrap();
                encoder.finish().unwrap()
            }
            Compression::SnappyBlock => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }

    const ALL: [Compression; 5] = [
        Compression::Identity,
        Compression::Gzip,
        Compression::Deflate,
        Compression::SnappyBlock,
        Compression::Zstd,
    ];

    #[test]
    fn round_trips_within_the_cap() {
        let data = b"node_cpu_seconds_total{cpu=\"0\"} 1\n".repeat(100);
        for compression in ALL {
            let compressed = compress(compression, &data);
            assert_eq!(
                decompress(compression, &compressed, data.len()).unwrap(),
                data,
                "{compression:?}"
            );
        }
    }

    #[test]
    fn a_bomb_is_too_large_not_an_allocation() {
        // 64 MiB of zeros compresses to a few KiB; a 1 MiB cap must refuse it.
        let zeros = vec![0u8; 64 << 20];
        for compression in ALL {
            let compressed = compress(compression, &zeros);
            let err = decompress(compression, &compressed, 1 << 20).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TooLarge, "{compression:?}: {err}");
        }
    }

    #[test]
    fn garbage_is_bad_input() {
        let garbage = b"\xff\xfe this is not compressed at all \x00\x01";
        for compression in [
            Compression::Gzip,
            Compression::Deflate,
            Compression::SnappyBlock,
            Compression::Zstd,
        ] {
            let err = decompress(compression, garbage, 1 << 20).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadInput, "{compression:?}: {err}");
        }
    }

    #[test]
    fn raw_deflate_is_accepted_too() {
        let data = b"hello hello hello hello".to_vec();
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&data).unwrap();
        let raw = encoder.finish().unwrap();
        assert_eq!(decompress(Compression::Deflate, &raw, 1024).unwrap(), data);
    }

    #[test]
    fn content_encoding_header() {
        assert_eq!(
            Compression::from_content_encoding(None).unwrap(),
            Compression::Identity
        );
        assert_eq!(
            Compression::from_content_encoding(Some("GZIP")).unwrap(),
            Compression::Gzip
        );
        let err = Compression::from_content_encoding(Some("br")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedMediaType);
    }
}
