//! `WWW-Authenticate` parsing (RFC 9110 section 11.6.1): one header value may hold several
//! challenges, each a scheme followed by comma-separated `name=value` parameters whose
//! values are tokens or quoted strings.

/// One challenge: its scheme and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every challenge in `header` (the values of all `WWW-Authenticate` headers joined by ", ").
pub fn parse(header: &str) -> Vec<Challenge> {
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip = |i: &mut usize, also_commas: bool| {
        while *i < chars.len() && (chars[*i].is_whitespace() || (also_commas && chars[*i] == ',')) {
            *i += 1;
        }
    };
    loop {
        skip(&mut i, true);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' && chars[i] != '=' {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        let mut j = i;
        skip(&mut j, false);
        let is_param = j < chars.len() && chars[j] == '=' && !token.is_empty();
        if !is_param {
            if token.is_empty() {
                // A stray character (e.g. '=' of a token68): step over it.
                i += 1;
                continue;
            }
            out.push(Challenge {
                scheme: token,
                params: Vec::new(),
            });
            continue;
        }
        // A parameter: name = token | quoted-string.
        i = j + 1;
        skip(&mut i, false);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
        match out.last_mut() {
            Some(challenge) => challenge.params.push((token.to_ascii_lowercase(), value)),
            None => out.push(Challenge {
                scheme: String::new(),
                params: vec![(token.to_ascii_lowercase(), value)],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parameters_quoted_and_bare() {
        let c = parse(
            r#"Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="a b", error=invalid_token"#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "Bearer");
        assert_eq!(
            c[0].param("resource_metadata"),
            Some("https://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c[0].param("scope"), Some("a b"));
        assert_eq!(c[0].param("error"), Some("invalid_token"));
    }

    #[test]
    fn several_challenges_and_escapes() {
        let c =
            parse(r#"Basic realm="x\"y", Bearer RESOURCE_METADATA = "/rel", DPoP algs="ES256""#);
        let schemes: Vec<&str> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "DPoP"]);
        assert_eq!(c[0].param("realm"), Some("x\"y"));
        assert_eq!(c[1].param("resource_metadata"), Some("/rel"));
        assert_eq!(c[2].param("algs"), Some("ES256"));
    }

    #[test]
    fn empty_and_bare_scheme() {
        assert!(parse("").is_empty());
        let c = parse("Bearer");
        assert_eq!(c.len(), 1);
        assert!(c[0].params.is_empty());
    }
}
