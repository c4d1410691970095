//! Who a request came from, for rate limits and logs: the TCP peer, unless the peer is a
//! proxy the operator trusts (`--trusted-proxies`, addresses or CIDR ranges), in which case
//! `X-Forwarded-For` names the client. Forwarded headers from anyone else are ignored: a
//! client could write anything there.
//!
//! Only the client address is taken from forwarded headers. The public URL (scheme, host,
//! port) is configured, never derived from `X-Forwarded-Host` or `X-Forwarded-Proto`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;

/// One `--trusted-proxies` entry: an address (`10.0.0.7`, `::1`) or a CIDR range
/// (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

impl ProxyRange {
    /// Whether `ip` is in this range (an IPv4-mapped IPv6 address counts as its IPv4 form,
    /// as a dual-stack listener reports IPv4 peers).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let bad = |why: &str| {
            format!(
                "{raw:?} {why}: give an IP address (10.0.0.7, ::1) or a CIDR range (10.0.0.0/8, fd00::/8)"
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| bad("is not an IP address or range"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(bad(&format!(
                        "has a bad prefix length (0 to {max} for this address)"
                    )));
                }
            },
        };
        let range = Self { network, prefix };
        // The network address must be the range's first address: 10.1.2.3/8 is almost
        // certainly a typo for something else.
        if range.masked() != network {
            return Err(bad(&format!(
                "has host bits set (did you mean {}/{prefix}?)",
                range.masked()
            )));
        }
        Ok(range)
    }
}

impl ProxyRange {
    fn masked(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(net) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(net) & mask).to_be_bytes())
            }
            IpAddr::V6(net) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(net) & mask).to_be_bytes())
            }
        }
    }
}

impl fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

impl TryFrom<String> for ProxyRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ProxyRange> for String {
    fn from(r: ProxyRange) -> String {
        r.to_string()
    }
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(trusted: &[ProxyRange], ip: IpAddr) -> bool {
    trusted.iter().any(|r| r.contains(ip))
}

/// The client's address. `peer` is the TCP peer (none for in-process requests, counted as
/// 0.0.0.0). When the peer is a trusted proxy, `X-Forwarded-For` is read from the right
/// (each proxy appends the address it saw), skipping entries that are trusted proxies
/// themselves: the first one that is not is the client. Entries left of it are whatever the
/// client chose to send, and are never used. An entry that is not an address stops the walk
/// at the last trusted hop.
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[ProxyRange]) -> IpAddr {
    let mut ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip().to_canonical());
    if trusted.is_empty() || !is_trusted(trusted, ip) {
        return ip;
    }
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Some(hop) = parse_hop(entry) else {
            return ip;
        };
        ip = hop;
        if !is_trusted(trusted, hop) {
            return hop;
        }
    }
    ip
}

/// One `X-Forwarded-For` entry: an address, possibly bracketed (`[::1]`) or with a port.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<ProxyRange> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: ProxyRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains("10.200.3.4".parse().unwrap()));
        assert!(r.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let r: ProxyRange = "fd00::/8".parse().unwrap();
        assert!(r.contains("fd12:3456::1".parse().unwrap()));
        assert!(!r.contains("fe80::1".parse().unwrap()));
        let one: ProxyRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: ProxyRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        let all6: ProxyRange = "::/0".parse().unwrap();
        assert!(all6.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(one.to_string(), "127.0.0.1");
        assert_eq!(
            "fd00::/8".parse::<ProxyRange>().unwrap().to_string(),
            "fd00::/8"
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (bad, says) in [
            ("proxy.example", "is not an IP address or range"),
            ("10.0.0.0/33", "bad prefix length (0 to 32"),
            ("fd00::/129", "bad prefix length (0 to 128"),
            ("10.0.0.0/x", "bad prefix length"),
            ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
            ("", "is not an IP address"),
        ] {
            let e = bad.parse::<ProxyRange>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("CIDR range"), "{bad}: {e}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_peers() {
        let trusted = ranges(&["10.0.0.0/8", "127.0.0.1"]);
        let xff = headers(&["198.51.100.7, 203.0.113.9"]);
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(peer("192.0.2.1"), &xff, &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        // From a trusted one, the last entry is the client.
        assert_eq!(
            client_ip(peer("10.1.1.1"), &xff, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Chained proxies: trusted hops are skipped, spoofed entries left of the client unused.
        let chained = headers(&["6.6.6.6, 203.0.113.9", "10.2.2.2"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &chained, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Without the header, or with garbage in it, the peer (or last trusted hop) it is.
        assert_eq!(
            client_ip(peer("10.1.1.1"), &HeaderMap::new(), &trusted),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(peer("10.1.1.1"), &headers(&["unknown, 10.3.3.3"]), &trusted),
            "10.3.3.3".parse::<IpAddr>().unwrap()
        );
        // Bracketed and ported forms, and a mapped peer address.
        assert_eq!(
            client_ip(
                peer("::ffff:127.0.0.1"),
                &headers(&["[2001:db8::5]:443"]),
                &trusted
            ),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        // Nobody trusted: never read.
        assert_eq!(
            client_ip(peer("127.0.0.1"), &xff, &[]),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(None, &xff, &[]),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
    }
}
