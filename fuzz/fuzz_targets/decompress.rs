//! Arbitrary bytes under every compression: never a panic, never more than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_core::limits::{Compression, decompress};

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let compression = match selector % 5 {
        0 => Compression::Identity,
        1 => Compression::Gzip,
        2 => Compression::Deflate,
        3 => Compression::SnappyBlock,
        _ => Compression::Zstd,
    };
    if let Ok(output) = decompress(compression, body, CAP) {
        assert!(output.len() <= CAP);
    }
});
