//! Function configuration, read once at init.

use crate::error::{Error, Result};

/// Environment variable listing the image repositories deployments may use.
pub const ALLOWED_REPOSITORIES_VAR: &str = "ALLOWED_IMAGE_REPOSITORIES";

/// Variable `name` through `lookup` (the environment, or a test's map), trimmed; unset or
/// blank is none. Every function's configuration reads its variables through this.
pub fn setting(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Configuration shared by the deploy functions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `registry/repository` names (or `registry/prefix*`) a deployment's image may come
    /// from. Empty: only the repository the container already runs from.
    pub allowed_repositories: Vec<String>,
    /// Whether the functions have Dynatrace configured (`DYNATRACE_API_URL`), so that a
    /// deployment may use it.
    pub dynatrace_available: bool,
}

impl Config {
    /// A configuration with the given allowed repositories, without Dynatrace.
    pub fn new(allowed_repositories: Vec<String>) -> Self {
        Config {
            allowed_repositories,
            dynatrace_available: false,
        }
    }

    /// Reads `ALLOWED_IMAGE_REPOSITORIES` (comma-separated, optional) and whether
    /// `DYNATRACE_API_URL` is set.
    ///
    /// # Errors
    /// [`Error::Config`] when an entry is empty or has whitespace inside.
    pub fn from_env() -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let raw = setting(&env, ALLOWED_REPOSITORIES_VAR).unwrap_or_default();
        let mut allowed = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.chars().any(char::is_whitespace) || entry.contains('@') {
                return Err(Error::Config(format!(
                    "{ALLOWED_REPOSITORIES_VAR} entry {entry:?} is not a repository name (registry/repository or registry/prefix*)"
                )));
            }
            allowed.push(entry.to_string());
        }
        Ok(Config {
            allowed_repositories: allowed,
            dynatrace_available: setting(&env, crate::dynatrace::API_URL_VAR).is_some(),
        })
    }

    /// Whether an image named `name` (`registry/repository`) may be deployed to a container
    /// currently running `current` (`registry/repository`).
    pub fn allows(&self, name: &str, current: &str) -> bool {
        if self.allowed_repositories.is_empty() {
            return name == current;
        }
        self.allowed_repositories
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_the_current_repository_is_allowed() {
        let c = Config::default();
        assert!(c.allows("r.io/orders", "r.io/orders"));
        assert!(!c.allows("r.io/other", "r.io/orders"));
    }

    #[test]
    fn listed_repositories_and_prefixes_are_allowed() {
        let c = Config::new(vec!["r.io/orders".into(), "r.io/team/*".into()]);
        assert!(c.allows("r.io/orders", "r.io/x"));
        assert!(c.allows("r.io/team/api", "r.io/x"));
        assert!(!c.allows("r.io/evil", "r.io/orders"));
    }
}
