//! Arbitrary bytes as remote write 1.0 and 2.0 bodies: never a panic; every series the
//! decoders return points inside their tables; label conversion never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_metrics::remote_write::{decode, decode_v2, labels_from_raw};

fuzz_target!(|data: &[u8]| {
    for decoded in [decode(data), decode_v2(data)] {
        if let Ok(request) = decoded {
            for series in &request.series {
                let _ = labels_from_raw(request.labels(series));
                let _ = request.samples(series).len();
            }
        }
    }
});
