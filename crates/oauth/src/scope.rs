//! OAuth scopes (RFC 6749 section 3.3): space-separated tokens of printable ASCII
//! without `"` or `\`. A set keeps them sorted and unique, so two grants compare and
//! print the same way however a client ordered them.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "scope {0:?} is not a valid scope token: use printable ASCII without spaces, '\"' or '\\'"
    )]
    InvalidToken(String),
}

/// One scope token, validated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn new(token: &str) -> Result<Self, ScopeError> {
        let valid = !token.is_empty()
            && token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if valid {
            Ok(Self(token.to_owned()))
        } else {
            Err(ScopeError::InvalidToken(token.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of scopes, as carried by a token or asked for by a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses a `scope` parameter. Runs of spaces are tolerated; an empty string is the empty set.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        value
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(Scope::new)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// True when every scope of `required` is in this set.
    pub fn satisfies(&self, required: &ScopeSet) -> bool {
        required.0.is_subset(&self.0)
    }

    /// The scopes of `required` that this set lacks, for an `insufficient_scope` challenge.
    pub fn missing(&self, required: &ScopeSet) -> ScopeSet {
        Self(required.0.difference(&self.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Scope::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sorts_dedups_and_prints_canonically() {
        let set = ScopeSet::parse("notes:write  notes:read notes:write").unwrap();
        assert_eq!(set.to_string(), "notes:read notes:write");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn invalid_tokens_are_refused() {
        assert!(matches!(
            ScopeSet::parse("ok bad\"quote"),
            Err(ScopeError::InvalidToken(t)) if t == "bad\"quote"
        ));
        assert!(ScopeSet::parse("back\\slash").is_err());
        assert!(ScopeSet::parse("tab\there").is_err());
        assert!(ScopeSet::parse("caf\u{e9}").is_err());
    }

    #[test]
    fn satisfies_and_missing() {
        let held = ScopeSet::parse("notes:read").unwrap();
        let needed = ScopeSet::parse("notes:read notes:write").unwrap();
        assert!(!held.satisfies(&needed));
        assert_eq!(held.missing(&needed).to_string(), "notes:write");
        assert!(needed.satisfies(&held));
        assert!(held.contains("notes:read"));
    }
}
