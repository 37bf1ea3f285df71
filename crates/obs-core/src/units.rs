//! Durations and byte sizes written the way Prometheus users write them.
//!
//! - [`PromDuration`]: `15d`, `1h30m`, `500ms`, `2w`, `1y` (units `y`=365d, `w`, `d`, `h`, `m`,
//!   `s`, `ms`, largest first, each at most once), or `0`. This is Prometheus'
//!   `model.ParseDuration` grammar.
//! - [`ByteSize`]: `512MiB`, `1GB`, `100KiB`, `4096`, `1.5GiB`. As in Prometheus'
//!   `--storage.tsdb.retention.size` (`units.Base2Bytes`), `KB`/`MB`/`GB`/... are powers of 1024,
//!   exactly like `KiB`/`MiB`/`GiB`.
//! - [`DiskBudget`]: a [`ByteSize`] or a percentage of the filesystem, `80%`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The error for a duration or size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a Prometheus duration.
    #[error(
        "{0:?} is not a valid duration: use a number with units y, w, d, h, m, s or ms, largest first, such as 15d, 1h30m or 500ms"
    )]
    Duration(String),
    /// Not a byte size.
    #[error(
        "{0:?} is not a valid size: use bytes or a number with B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB), such as 512MiB"
    )]
    Size(String),
    /// Not a byte size or percentage.
    #[error(
        "{0:?} is not a valid disk budget: use a size such as 200GiB or a percentage of the filesystem such as 80%"
    )]
    Budget(String),
}

/// A duration in Prometheus notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(Duration);

const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl PromDuration {
    /// Wraps a standard duration (sub-millisecond parts are kept but not printed).
    pub const fn new(duration: Duration) -> PromDuration {
        PromDuration(duration)
    }

    /// Whole seconds.
    pub const fn from_secs(secs: u64) -> PromDuration {
        PromDuration(Duration::from_secs(secs))
    }

    /// Milliseconds.
    pub const fn from_millis(ms: u64) -> PromDuration {
        PromDuration(Duration::from_millis(ms))
    }

    /// Whole days.
    pub const fn from_days(days: u64) -> PromDuration {
        PromDuration(Duration::from_secs(days * 86_400))
    }

    /// The standard duration.
    pub const fn as_std(self) -> Duration {
        self.0
    }
}

impl FromStr for PromDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<PromDuration, UnitError> {
        let err = || UnitError::Duration(text.to_owned());
        if text == "0" {
            return Ok(PromDuration(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(err());
        }
        let mut rest = text;
        let mut total_ms: u64 = 0;
        // Index of the next unit allowed: units must appear largest first, each at most once.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits_len == 0 {
                return Err(err());
            }
            let number: u64 = rest[..digits_len].parse().map_err(|_| err())?;
            rest = &rest[digits_len..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let position = DURATION_UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(err)?;
            let (_, unit_ms) = DURATION_UNITS[next_unit + position];
            next_unit += position + 1;
            let part_ms = number.checked_mul(unit_ms).ok_or_else(err)?;
            total_ms = total_ms.checked_add(part_ms).ok_or_else(err)?;
        }
        Ok(PromDuration(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, unit_ms) in DURATION_UNITS {
            // Prometheus prints weeks only when the whole value is weeks, like model.Duration.
            if name == "w" && ms % unit_ms != 0 {
                continue;
            }
            if ms >= unit_ms {
                write!(f, "{}{name}", ms / unit_ms)?;
                ms %= unit_ms;
            }
        }
        Ok(())
    }
}

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: [(&str, u64); 13] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("KB", 1 << 10),
    ("MB", 1 << 20),
    ("GB", 1 << 30),
    ("TB", 1 << 40),
    ("PB", 1 << 50),
    ("K", 1 << 10),
    ("M", 1 << 20),
];

impl ByteSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The size in bytes, as `usize` (saturating on 32-bit targets).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Kibibytes.
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n << 10)
    }

    /// Mebibytes.
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }

    /// Gibibytes.
    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n << 30)
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<ByteSize, UnitError> {
        let err = || UnitError::Size(text.to_owned());
        let trimmed = text.trim();
        let number_len = trimmed
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if number_len == 0 {
            return Err(err());
        }
        let (number, unit) = trimmed.split_at(number_len);
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, multiplier)| *multiplier)
                .ok_or_else(err)?
        };
        if let Ok(whole) = number.parse::<u64>() {
            return whole.checked_mul(multiplier).map(ByteSize).ok_or_else(err);
        }
        let fractional: f64 = number.parse().map_err(|_| err())?;
        let bytes = fractional * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
            return Err(err());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, multiplier) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= multiplier && self.0.is_multiple_of(multiplier) {
                return write!(f, "{}{name}", self.0 / multiplier);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// How much disk the data directory may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskBudget {
    /// An absolute size.
    Size(ByteSize),
    /// A percentage (0 < p <= 100) of the size of the filesystem holding the data directory.
    PercentOfFilesystem(f64),
}

impl DiskBudget {
    /// The budget in bytes on a filesystem of `filesystem_size_bytes`.
    pub fn resolve(self, filesystem_size_bytes: u64) -> u64 {
        match self {
            DiskBudget::Size(size) => size.bytes(),
            DiskBudget::PercentOfFilesystem(percent) => {
                (filesystem_size_bytes as f64 * percent / 100.0) as u64
            }
        }
    }
}

impl FromStr for DiskBudget {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<DiskBudget, UnitError> {
        let err = || UnitError::Budget(text.to_owned());
        if let Some(percent) = text.trim().strip_suffix('%') {
            let percent: f64 = percent.trim().parse().map_err(|_| err())?;
            if !(percent > 0.0 && percent <= 100.0) {
                return Err(err());
            }
            return Ok(DiskBudget::PercentOfFilesystem(percent));
        }
        text.parse().map(DiskBudget::Size).map_err(|_| err())
    }
}

impl fmt::Display for DiskBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskBudget::Size(size) => size.fmt(f),
            DiskBudget::PercentOfFilesystem(percent) => write!(f, "{percent}%"),
        }
    }
}

/// Deserializes any `FromStr` type from a YAML/JSON string or a plain number, so that errors
/// carry the parser's location (line and column).
struct FromStrVisitor<T>(std::marker::PhantomData<T>, &'static str);

impl<T> Visitor<'_> for FromStrVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        value.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

/// Deserializes a `FromStr` type from a string or a number, so that its parse errors carry
/// the deserializer's location (serde_yaml: key path, line and column).
pub fn deserialize_from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    deserializer.deserialize_any(FromStrVisitor(std::marker::PhantomData, "a string"))
}

macro_rules! deserialize_from_str {
    ($type:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                deserializer.deserialize_any(FromStrVisitor(std::marker::PhantomData, $expecting))
            }
        }
    };
}

deserialize_from_str!(PromDuration, "a duration such as 15d or 30s");
deserialize_from_str!(ByteSize, "a size such as 512MiB");
deserialize_from_str!(DiskBudget, "a size such as 200GiB or a percentage such as 80%");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        let cases = [
            ("0", 0u64),
            ("15d", 15 * 86_400_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1y2w", 365 * 86_400_000 + 14 * 86_400_000),
            ("90s", 90_000),
        ];
        for (text, ms) in cases {
            let parsed: PromDuration = text.parse().unwrap();
            assert_eq!(parsed.as_std().as_millis(), ms as u128, "{text}");
        }
        for bad in [
            "",
            "15",
            "1.5h",
            "15D",
            "30m1h",
            "1h1h",
            "h",
            "-1s",
            "1h 30m",
            "99999999999999999999y",
        ] {
            assert!(bad.parse::<PromDuration>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_print_like_prometheus() {
        for (text, printed) in [
            ("15d", "15d"),
            ("90s", "1m30s"),
            ("0", "0s"),
            ("2w", "2w"),
            ("8d", "8d"),
            ("1500ms", "1s500ms"),
        ] {
            assert_eq!(text.parse::<PromDuration>().unwrap().to_string(), printed);
        }
    }

    #[test]
    fn sizes_parse_base_two() {
        assert_eq!("512MiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 20));
        assert_eq!("512MB".parse::<ByteSize>().unwrap(), ByteSize(512 << 20));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert_eq!("1.5GiB".parse::<ByteSize>().unwrap(), ByteSize(3 << 29));
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        for bad in ["", "MiB", "12 parsecs", "-1", "1e3", "99999999999PiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn budgets_take_sizes_and_percentages() {
        assert_eq!("80%".parse::<DiskBudget>().unwrap().resolve(1000), 800);
        assert_eq!("1KiB".parse::<DiskBudget>().unwrap().resolve(1), 1024);
        for bad in ["0%", "101%", "x%", "lots"] {
            assert!(bad.parse::<DiskBudget>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn deserialize_reports_location() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            #[allow(dead_code)]
            retention: PromDuration,
        }
        let error = serde_yaml::from_str::<Config>("retention: 15 days\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("not a valid duration"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        let ok: Config = serde_yaml::from_str("retention: 15d\n").unwrap();
        assert_eq!(ok.retention, PromDuration::from_days(15));
    }
}
