//! The argument of `ip("...")`: one address, a CIDR prefix or an address range, IPv4 or IPv6,
//! as Loki's `ip()` line and label filters read it (Go's `netip.ParseAddr`,
//! `netip.ParsePrefix`, `netipx.ParseIPRange`).

use std::net::IpAddr;

/// What addresses an `ip()` filter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMatcher {
    /// One address: `192.168.0.1`, `::1`.
    Addr(IpAddr),
    /// A CIDR prefix: `192.168.0.0/16` (host bits may be set, as Go allows).
    Prefix {
        /// The address as written.
        addr: IpAddr,
        /// The prefix length in bits.
        bits: u8,
    },
    /// An inclusive range of one family: `192.168.0.1-192.168.0.23`.
    Range {
        /// The first address.
        from: IpAddr,
        /// The last address.
        to: IpAddr,
    },
}

impl IpMatcher {
    /// Whether `addr` is accepted. Addresses of the other family never are.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match *self {
            IpMatcher::Addr(own) => own == addr,
            IpMatcher::Prefix { addr: own, bits } => match (own, addr) {
                (IpAddr::V4(own), IpAddr::V4(addr)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                    u32::from(own) & mask == u32::from(addr) & mask
                }
                (IpAddr::V6(own), IpAddr::V6(addr)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                    u128::from(own) & mask == u128::from(addr) & mask
                }
                _ => false,
            },
            IpMatcher::Range { from, to } => match (from, to, addr) {
                (IpAddr::V4(from), IpAddr::V4(to), IpAddr::V4(addr)) => from <= addr && addr <= to,
                (IpAddr::V6(from), IpAddr::V6(to), IpAddr::V6(addr)) => from <= addr && addr <= to,
                _ => false,
            },
        }
    }
}

/// The argument of `ip("...")`, as written and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPattern {
    source: String,
    matcher: IpMatcher,
}

impl IpPattern {
    /// Parses a single address, a prefix or a range; the error is Loki's message.
    pub(crate) fn parse(source: &str) -> Result<IpPattern, String> {
        let matcher = parse_matcher(source)
            .ok_or_else(|| format!("ip: invalid pattern: {}", crate::units::go_quote(source)))?;
        Ok(IpPattern {
            source: source.to_owned(),
            matcher,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the pattern accepts.
    pub fn matcher(&self) -> IpMatcher {
        self.matcher
    }
}

fn parse_matcher(text: &str) -> Option<IpMatcher> {
    if let Some(addr) = parse_addr(text) {
        return Some(IpMatcher::Addr(addr));
    }
    if let Some((addr, bits)) = text.split_once('/') {
        let addr = parse_addr(addr)?;
        // Go refuses signs, spaces and leading zeros in the length.
        let valid_digits = !bits.is_empty()
            && bits.len() <= 3
            && bits.bytes().all(|b| b.is_ascii_digit())
            && !(bits.len() > 1 && bits.starts_with('0'));
        if !valid_digits {
            return None;
        }
        let bits: u8 = bits.parse().ok()?;
        let max_bits = if addr.is_ipv4() { 32 } else { 128 };
        return (bits <= max_bits).then_some(IpMatcher::Prefix { addr, bits });
    }
    let (from, to) = text.split_once('-')?;
    let from = parse_addr(from)?;
    let to = parse_addr(to)?;
    let ordered = match (from, to) {
        (IpAddr::V4(from), IpAddr::V4(to)) => from <= to,
        (IpAddr::V6(from), IpAddr::V6(to)) => from <= to,
        _ => false,
    };
    ordered.then_some(IpMatcher::Range { from, to })
}

/// An address as `netip.ParseAddr` reads it, without IPv6 zones (which no prefix or range
/// accepts either).
fn parse_addr(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_parse_as_addresses_prefixes_and_ranges() {
        assert_eq!(
            IpPattern::parse("192.168.0.1").unwrap().matcher(),
            IpMatcher::Addr(addr("192.168.0.1"))
        );
        let prefix = IpPattern::parse("192.168.4.5/16").unwrap().matcher();
        assert!(prefix.contains(addr("192.168.200.1")));
        assert!(!prefix.contains(addr("192.169.0.1")));
        assert!(!prefix.contains(addr("::1")));
        let range = IpPattern::parse("192.168.4.5-192.168.4.20").unwrap().matcher();
        assert!(range.contains(addr("192.168.4.20")));
        assert!(!range.contains(addr("192.168.4.21")));
        let v6 = IpPattern::parse("2001:db8::/32").unwrap().matcher();
        assert!(v6.contains(addr("2001:db8:1::1")));
        assert!(IpPattern::parse("::1").is_ok());
        assert!(
            IpPattern::parse("0.0.0.0/0")
                .unwrap()
                .matcher()
                .contains(addr("1.2.3.4"))
        );
    }

    #[test]
    fn invalid_patterns_are_refused_with_loki_message() {
        for bad in [
            "",
            "abc",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4/33",
            "1.2.3.4/016",
            "1.2.3.4/-1",
            "1.2.3.9-1.2.3.4",
            "1.2.3.4-::1",
            "1.2.3.4 ",
        ] {
            assert!(IpPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            IpPattern::parse("abc").unwrap_err(),
            r#"ip: invalid pattern: "abc""#
        );
    }
}
