//! Redirect URIs: what a client may register, and when a requested URI matches.
//!
//! Matching is exact string comparison (OAuth 2.1 section 4.1.1), with one exception:
//! a loopback `http` redirect matches on any port (RFC 8252 section 7.3), because native
//! clients listen on whatever port is free. `localhost` and `127.0.0.1` stay different
//! hosts: a client that registered one must use that one.

use url::{Host, Url};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationType {
    /// Desktop, CLI or mobile: loopback, private-use scheme or https redirects.
    Native,
    /// A web application: https redirects on public hosts only.
    Web,
}

impl ApplicationType {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "native" => Some(Self::Native),
            "web" => Some(Self::Web),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Web => "web",
        }
    }
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn loopback_http(url: &Url) -> bool {
    url.scheme() == "http" && url.host().is_some_and(|h| is_loopback_host(&h))
}

/// Checks a redirect URI a client wants to register.
pub fn validate_registration(uri: &str, app: ApplicationType) -> Result<Url, String> {
    let url = Url::parse(uri)
        .map_err(|e| format!("redirect URI {uri:?} is not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!("redirect URI {uri:?} must not contain a fragment"));
    }
    match url.scheme() {
        "https" => {
            if app == ApplicationType::Web && url.host().is_some_and(|h| is_loopback_host(&h)) {
                return Err(format!(
                    "redirect URI {uri:?} is a loopback address; register it with application_type \"native\""
                ));
            }
            Ok(url)
        }
        "http" if loopback_http(&url) => match app {
            ApplicationType::Native => Ok(url),
            ApplicationType::Web => Err(format!(
                "redirect URI {uri:?} is a loopback address; register it with application_type \"native\""
            )),
        },
        "http" => Err(format!(
            "redirect URI {uri:?} uses http on a non-loopback host; use https"
        )),
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ws" | "wss" | "ftp" => {
            Err(format!(
                "redirect URI {uri:?} uses a scheme that cannot be a redirect target"
            ))
        }
        _ => match app {
            // A private-use scheme (RFC 8252 section 7.1), e.g. cursor://anysphere.cursor-mcp/...
            ApplicationType::Native => Ok(url),
            ApplicationType::Web => Err(format!(
                "redirect URI {uri:?} uses a private-use scheme; register it with application_type \"native\""
            )),
        },
    }
}

/// The application type to assume when a registration does not say: `native` when any
/// redirect is loopback or a private-use scheme (what such clients are), else `web`.
pub fn infer_application_type<'a>(uris: impl IntoIterator<Item = &'a str>) -> ApplicationType {
    let native = uris.into_iter().any(|u| {
        Url::parse(u).is_ok_and(|url| {
            url.scheme() != "https" || url.host().is_some_and(|h| is_loopback_host(&h))
        })
    });
    if native {
        ApplicationType::Native
    } else {
        ApplicationType::Web
    }
}

/// Does `requested` match the registered URI `registered`?
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    loopback_http(&reg)
        && loopback_http(&req)
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
}

/// True when every redirect URI is a loopback address: a client metadata document with
/// only such redirects can be presented by anyone, so consent warns about it.
pub fn all_loopback<'a>(uris: impl IntoIterator<Item = &'a str>) -> bool {
    let mut any = false;
    for u in uris {
        any = true;
        let Ok(url) = Url::parse(u) else { return false };
        if !loopback_http(&url) {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationType::*;

    #[test]
    fn loopback_matches_any_port_but_not_another_host_or_path() {
        assert!(matches("http://127.0.0.1/", "http://127.0.0.1:33418/"));
        assert!(matches("http://127.0.0.1:33418/", "http://127.0.0.1:5000/"));
        assert!(matches(
            "http://localhost:1/callback",
            "http://localhost:9999/callback"
        ));
        assert!(matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(!matches(
            "http://localhost:1/callback",
            "http://127.0.0.1:1/callback"
        ));
        assert!(!matches(
            "http://localhost:1/callback",
            "http://localhost:1/other"
        ));
        assert!(!matches(
            "http://localhost:1/cb",
            "http://localhost:1/cb?x=1"
        ));
        assert!(!matches(
            "http://localhost:1/cb",
            "http://user@localhost:1/cb"
        ));
    }

    #[test]
    fn non_loopback_is_exact() {
        assert!(matches(
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.ai/api/mcp/auth_callback"
        ));
        assert!(!matches(
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.ai:444/api/mcp/auth_callback"
        ));
        assert!(!matches("https://claude.ai/cb", "https://claude.ai/cb/"));
        assert!(!matches("https://claude.ai/cb", "https://CLAUDE.ai/cb"));
        assert!(!matches(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "cursor://anysphere.cursor-mcp/oauth/other"
        ));
    }

    #[test]
    fn registration_rules_follow_the_application_type() {
        assert!(validate_registration("http://127.0.0.1:33418/", Native).is_ok());
        assert!(validate_registration("http://127.0.0.1:33418/", Web).is_err());
        assert!(validate_registration("https://vscode.dev/redirect", Web).is_ok());
        assert!(validate_registration("https://vscode.dev/redirect", Native).is_ok());
        assert!(
            validate_registration("cursor://anysphere.cursor-mcp/oauth/callback", Native).is_ok()
        );
        assert!(
            validate_registration("cursor://anysphere.cursor-mcp/oauth/callback", Web).is_err()
        );
        assert!(validate_registration("http://example.com/cb", Native).is_err());
        assert!(validate_registration("https://example.com/cb#frag", Web).is_err());
        assert!(validate_registration("javascript:alert(1)", Native).is_err());
        assert!(validate_registration("/relative", Native).is_err());
    }

    #[test]
    fn inference_and_localhost_only() {
        assert_eq!(
            infer_application_type(["https://a.example/cb", "http://localhost:3/cb"]),
            Native
        );
        assert_eq!(infer_application_type(["https://a.example/cb"]), Web);
        assert!(all_loopback([
            "http://localhost:3/cb",
            "http://127.0.0.1/cb"
        ]));
        assert!(!all_loopback([
            "http://localhost:3/cb",
            "https://a.example/cb"
        ]));
        assert!(!all_loopback([]));
    }
}
