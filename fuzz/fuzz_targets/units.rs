//! Durations, sizes and budgets: never a panic; what parses prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_core::units::{ByteSize, DiskBudget, PromDuration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(duration) = text.parse::<PromDuration>() {
        let printed = duration.to_string();
        assert_eq!(printed.parse::<PromDuration>().ok(), Some(duration), "{text:?} -> {printed:?}");
    }
    if let Ok(size) = text.parse::<ByteSize>() {
        let printed = size.to_string();
        assert_eq!(printed.parse::<ByteSize>().ok(), Some(size), "{text:?} -> {printed:?}");
    }
    let _ = text.parse::<DiskBudget>().map(|budget| budget.resolve(u64::MAX));
    let _ = text.parse::<obs_core::time::Day>();
});
