//! DNS-rebinding defence: `Origin` and `Host` allow-lists.
//!
//! A browser page on a foreign site can reach a server on 127.0.0.1 through a DNS name
//! that it controls; the spec requires answering such a request with 403. The `Host`
//! check catches the rebinding itself, the `Origin` check catches cross-site pages.

/// One allowed browser origin: `scheme://host[:port]`, where the port may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    /// `*`: any origin (for a deliberately open server; not the default).
    Any,
    /// The literal `null` origin (sandboxed frames, `file://` pages).
    Null,
    Exact {
        scheme: String,
        host: String,
        /// `None` means any port (`:*`).
        port: Option<u16>,
    },
}

impl OriginRule {
    /// Parses a rule; the error says what a valid rule looks like.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let rule = rule.trim();
        match rule {
            "*" => return Ok(Self::Any),
            "null" => return Ok(Self::Null),
            _ => {}
        }
        let invalid = || {
            format!(
                "invalid allowed origin {rule:?}: expected scheme://host[:port] (port may be *), e.g. https://app.example.com or http://localhost:*"
            )
        };
        let (scheme, rest) = rule.split_once("://").ok_or_else(invalid)?;
        if rest.contains('/') || rest.is_empty() {
            return Err(invalid());
        }
        if let Some(host) = rest.strip_suffix(":*") {
            return Ok(Self::Exact {
                scheme: scheme.to_ascii_lowercase(),
                host: host.to_ascii_lowercase(),
                port: None,
            });
        }
        let (host, port) = split_authority(rest, scheme).ok_or_else(invalid)?;
        Ok(Self::Exact {
            scheme: scheme.to_ascii_lowercase(),
            host,
            port: Some(port),
        })
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Null => origin == "null",
            Self::Exact { scheme, host, port } => {
                let Some((o_scheme, rest)) = origin.split_once("://") else {
                    return false;
                };
                let Some((o_host, o_port)) = split_authority(rest, o_scheme) else {
                    return false;
                };
                o_scheme.eq_ignore_ascii_case(scheme)
                    && o_host == *host
                    && port.is_none_or(|p| p == o_port)
            }
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-cased host and a port, using the
/// scheme's default port when none is written.
fn split_authority(authority: &str, scheme: &str) -> Option<(String, u16)> {
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => 443,
        "http" | "ws" => 80,
        _ => 0,
    };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let host = format!("[{inside}]");
        match after.strip_prefix(':') {
            Some(p) => (host, p.parse().ok()?),
            None if after.is_empty() => (host, default_port),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// The host name of `host[:port]` (IPv6 in brackets), borrowed; `None` when malformed.
fn host_name(authority: &str) -> Option<&str> {
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        (&authority[..=end], authority[end + 1..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        Some(port) if port.parse::<u16>().is_err() => None,
        _ if name.is_empty() => None,
        _ => Some(name),
    }
}

/// The allow-lists the MCP endpoint enforces.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    pub origins: Vec<OriginRule>,
    /// Allowed `Host` header values: a host name (any port) or `host:port`. Empty = any.
    pub hosts: Vec<String>,
}

impl OriginPolicy {
    /// `None` when the request may go on; otherwise the reason, for the 403 body.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Option<String> {
        if !self.hosts.is_empty() {
            match host {
                Some(h) if self.host_allowed(h) => {}
                Some(h) => {
                    return Some(format!(
                        "Host {h:?} is not allowed (DNS rebinding protection); add it to --allowed-hosts (PORTCULLIS_ALLOWED_HOSTS) or set --public-url to the URL clients use"
                    ));
                }
                None => return Some("a Host header is required".to_owned()),
            }
        }
        if let Some(origin) = origin
            && !self.origins.iter().any(|rule| rule.matches(origin))
        {
            return Some(format!(
                "Origin {origin:?} is not allowed; if this browser client is trusted, add it to --allowed-origins (PORTCULLIS_ALLOWED_ORIGINS)"
            ));
        }
        None
    }

    /// Whether a browser origin is on the allow-list (for CORS).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|rule| rule.matches(origin))
    }

    fn host_allowed(&self, host: &str) -> bool {
        // Called on every request: compare in place, without allocating.
        let name = host_name(host);
        self.hosts.iter().any(|allowed| {
            allowed.eq_ignore_ascii_case(host)
                || name.is_some_and(|n| allowed.eq_ignore_ascii_case(n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], hosts: &[&str]) -> OriginPolicy {
        OriginPolicy {
            origins: origins
                .iter()
                .map(|o| OriginRule::parse(o).unwrap())
                .collect(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn no_origin_header_passes_and_foreign_origin_is_refused() {
        let p = policy(&["http://localhost:*"], &["localhost"]);
        assert_eq!(p.check(None, Some("localhost:8080")), None);
        assert_eq!(
            p.check(Some("http://localhost:6274"), Some("localhost:8080")),
            None
        );
        let why = p
            .check(Some("https://evil.example"), Some("localhost:8080"))
            .unwrap();
        assert!(why.contains("--allowed-origins"), "{why}");
    }

    #[test]
    fn explicit_and_default_ports() {
        let p = policy(&["https://app.example.com"], &[]);
        assert_eq!(p.check(Some("https://app.example.com"), None), None);
        assert_eq!(p.check(Some("https://app.example.com:443"), None), None);
        assert!(
            p.check(Some("https://app.example.com:8443"), None)
                .is_some()
        );
        assert!(p.check(Some("http://app.example.com"), None).is_some());
        assert!(
            p.check(Some("https://app.example.com.evil"), None)
                .is_some()
        );
    }

    #[test]
    fn ipv6_and_null_origins() {
        let p = policy(&["http://[::1]:*", "null"], &["[::1]"]);
        assert_eq!(p.check(Some("http://[::1]:3000"), Some("[::1]:8080")), None);
        assert_eq!(p.check(Some("null"), Some("[::1]")), None);
    }

    #[test]
    fn foreign_host_is_refused() {
        let p = policy(&[], &["localhost", "127.0.0.1", "mcp.example.com:443"]);
        assert_eq!(p.check(None, Some("127.0.0.1:8080")), None);
        assert_eq!(p.check(None, Some("mcp.example.com:443")), None);
        assert!(p.check(None, Some("mcp.example.com:80")).is_some());
        assert!(p.check(None, Some("attacker.example:8080")).is_some());
        assert!(p.check(None, None).is_some());
    }

    #[test]
    fn bad_rules_are_explained() {
        for bad in [
            "localhost",
            "https://",
            "https://a.example/path",
            "http://h:x",
        ] {
            let err = OriginRule::parse(bad).unwrap_err();
            assert!(err.contains("scheme://host"), "{bad}: {err}");
        }
        assert_eq!(OriginRule::parse("*").unwrap(), OriginRule::Any);
    }
}
