//! Dynatrace, in the workflow's words: the metrics of one release, deployment events, and the
//! access tokens the secret rotation mints, looks up and revokes.
//!
//! - [`Dynatrace`] is the port; [`HttpDynatrace`] implements it over the Dynatrace API v2
//!   with a token it holds, [`SecretDynatrace`] with a token it reads from a [`SecretStore`]
//!   on first use (and again once after the token is rejected, so a warm Lambda survives a
//!   rotation).
//! - [`SecretStore`] reads the current value of a secret; [`SdkSecretStore`] is the AWS
//!   Secrets Manager adapter. The Dynatrace token never travels through the state machine.
//! - [`SecretToken`] holds a token value; its `Debug` and `Display` show only the token id
//!   (`dt0c01.PUBLIC`), and no error of this module contains a token value.
//!
//! A release is what Dynatrace's release monitoring calls one: the processes started with
//! `DT_RELEASE_VERSION` (and optionally `DT_RELEASE_STAGE`, `DT_RELEASE_PRODUCT`) in their
//! environment. [`ReleaseScope`] names one and scopes metric queries to it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use crate::error::{Error, Result};

mod http;
mod secrets;

pub use http::{HttpDynatrace, SecretDynatrace};
pub use secrets::SdkSecretStore;

/// Environment variable with the Dynatrace environment URL, e.g.
/// `https://abc12345.live.dynatrace.com` (locally `http://127.0.0.1:5100/dynatrace`).
pub const API_URL_VAR: &str = "DYNATRACE_API_URL";
/// Environment variable with the Secrets Manager secret (name or ARN) holding the token.
pub const TOKEN_SECRET_VAR: &str = "DYNATRACE_TOKEN_SECRET";
/// Environment variable with the key of the token in a JSON secret; unset: a plain secret.
pub const TOKEN_SECRET_KEY_VAR: &str = "DYNATRACE_TOKEN_SECRET_KEY";

/// Token scope of metric queries.
pub const SCOPE_METRICS_READ: &str = "metrics.read";
/// Token scope of event ingestion.
pub const SCOPE_EVENTS_INGEST: &str = "events.ingest";
/// Token scope of reading access tokens.
pub const SCOPE_API_TOKENS_READ: &str = "apiTokens.read";
/// Token scope of creating and revoking access tokens.
pub const SCOPE_API_TOKENS_WRITE: &str = "apiTokens.write";

/// Environment variables Dynatrace's release monitoring reads from a process.
pub const RELEASE_VERSION_VAR: &str = "DT_RELEASE_VERSION";
/// See [`RELEASE_VERSION_VAR`].
pub const RELEASE_STAGE_VAR: &str = "DT_RELEASE_STAGE";
/// See [`RELEASE_VERSION_VAR`].
pub const RELEASE_PRODUCT_VAR: &str = "DT_RELEASE_PRODUCT";

/// The event type of deployment events.
pub const CUSTOM_DEPLOYMENT: &str = "CUSTOM_DEPLOYMENT";

/// Property keys Dynatrace gives meaning to on `CUSTOM_DEPLOYMENT` events.
pub mod property {
    /// The deployment's name.
    pub const NAME: &str = "dt.event.deployment.name";
    /// The version deployed (the image digest).
    pub const VERSION: &str = "dt.event.deployment.version";
    /// The release stage.
    pub const RELEASE_STAGE: &str = "dt.event.deployment.release_stage";
    /// The release product.
    pub const RELEASE_PRODUCT: &str = "dt.event.deployment.release_product";
    /// A link back to what ran the deployment (the Step Functions execution).
    pub const CI_BACK_LINK: &str = "dt.event.deployment.ci_back_link";
    /// A link to undo the deployment.
    pub const REMEDIATION_ACTION_LINK: &str = "dt.event.deployment.remediation_action_link";
    /// The project the deployment belongs to.
    pub const PROJECT: &str = "dt.event.deployment.project";
}

/// A secret value, such as a Dynatrace access token.
///
/// `Debug` and `Display` never show the value: a Dynatrace token shows as its id
/// (`dt0c01.PUBLIC`, which Dynatrace says may be displayed and logged), anything else as
/// `<redacted>`. It is deliberately not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// The value, with surrounding whitespace (a trailing newline from `echo`) removed.
    ///
    /// # Errors
    /// [`Error::Config`] when it is empty or contains whitespace or control characters
    /// inside (it could not be sent in a header); the message does not contain the value.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(Error::Config("the dynatrace token is empty".into()));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config(
                "the dynatrace token contains whitespace or control characters".into(),
            ));
        }
        Ok(SecretToken(trimmed.to_string()))
    }

    /// The value, to send it. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The token id, `dt0c01.PUBLIC`, when the value has Dynatrace's token format
    /// `prefix.public.secret` (a prefix like `dt0c01`, a 24-character public portion and a
    /// 64-character secret portion).
    pub fn id(&self) -> Option<&str> {
        token_id(&self.0)
    }

    /// `id dt0c01.PUBLIC`, or a description that names no part of the value.
    pub(crate) fn described(&self) -> String {
        match self.id() {
            Some(id) => format!("id {id}"),
            None => "not in dynatrace's token format, id unknown".to_string(),
        }
    }

    /// `text` with every occurrence of the value (and of its secret portion) replaced.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.0, "<redacted>");
        if let Some(secret) = self.0.splitn(3, '.').nth(2).filter(|s| s.len() >= 16) {
            text = text.replace(secret, "<redacted>");
        }
        text
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "SecretToken({id})"),
            None => f.write_str("SecretToken(<redacted>)"),
        }
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id().unwrap_or("<redacted>"))
    }
}

/// `dt0c01.PUBLIC` of a value shaped `dt0c01.<24>.<64>`.
fn token_id(value: &str) -> Option<&str> {
    let mut parts = value.splitn(3, '.');
    let (prefix, public, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let portion =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let b = prefix.as_bytes();
    let prefix_ok = b.len() == 6
        && prefix.starts_with("dt0")
        && b[3].is_ascii_lowercase()
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit();
    (prefix_ok && portion(public, 24) && portion(secret, 64))
        .then(|| &value[..prefix.len() + 1 + public.len()])
}

/// One release, as Dynatrace's release monitoring knows it from the environment of its
/// processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseScope {
    /// `DT_RELEASE_VERSION`.
    pub version: String,
    /// `DT_RELEASE_STAGE`, when set.
    pub stage: Option<String>,
    /// `DT_RELEASE_PRODUCT`, when set.
    pub product: Option<String>,
}

impl ReleaseScope {
    /// A release known by its version only.
    pub fn new(version: impl Into<String>) -> Self {
        ReleaseScope {
            version: version.into(),
            stage: None,
            product: None,
        }
    }

    /// The entity selector of this release's processes:
    /// `type(PROCESS_GROUP_INSTANCE),releasesVersion("…")[,releasesStage("…")][,releasesProduct("…")]`.
    pub fn entity_selector(&self) -> String {
        let mut selector = format!(
            "type(PROCESS_GROUP_INSTANCE),releasesVersion({})",
            quoted(&self.version)
        );
        if let Some(stage) = &self.stage {
            selector.push_str(&format!(",releasesStage({})", quoted(stage)));
        }
        if let Some(product) = &self.product {
            selector.push_str(&format!(",releasesProduct({})", quoted(product)));
        }
        selector
    }

    /// The environment variables that make a process part of this release, for the task
    /// definition green is started with.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(RELEASE_VERSION_VAR, self.version.clone())];
        if let Some(stage) = &self.stage {
            env.push((RELEASE_STAGE_VAR, stage.clone()));
        }
        if let Some(product) = &self.product {
            env.push((RELEASE_PRODUCT_VAR, product.clone()));
        }
        env
    }
}

/// A selector string value in quotes. Dynatrace's selectors escape a quote or a tilde inside
/// quotes with a tilde (`~"`, `~~`), not a backslash.
pub(crate) fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('~', "~~").replace('"', "~\""))
}

/// A metric query over a timeframe, scoped to one release's processes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// The metric selector as sent, transformations included.
    pub metric_selector: String,
    /// Start of the timeframe, UTC milliseconds.
    pub from_ms: u64,
    /// End of the timeframe, UTC milliseconds.
    pub to_ms: u64,
    /// `Inf` for one value per series over the whole timeframe; `None`: Dynatrace's default.
    pub resolution: Option<String>,
    /// Sent as the query's `entitySelector`, so only data points the release's processes
    /// delivered count.
    pub release: ReleaseScope,
}

/// One series of a metric answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricSeries {
    /// Dimension key → value (`dimensionMap`).
    pub dimensions: BTreeMap<String, String>,
    /// UTC milliseconds, one per value.
    pub timestamps: Vec<i64>,
    /// `None` where Dynatrace has no value for the slot.
    pub values: Vec<Option<f64>>,
}

/// Dynatrace's answer to a [`MetricQuery`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricData {
    /// The metric id (or selector) Dynatrace answered for.
    pub metric_id: String,
    /// The resolution of the data points.
    pub resolution: Option<String>,
    /// Every series; empty when nothing was measured.
    pub series: Vec<MetricSeries>,
}

impl MetricData {
    /// Every finite value of every series; empty means no data.
    pub fn values(&self) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .filter(|v| v.is_finite())
            .collect()
    }
}

/// A `CUSTOM_DEPLOYMENT` event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentEvent {
    /// What happened, e.g. `orders sha256:ab12…: promoted`.
    pub title: String,
    /// The entities the event is on; `None`: the environment.
    pub entity_selector: Option<String>,
    /// Event properties; see [`property`] for the keys Dynatrace understands.
    pub properties: BTreeMap<String, String>,
    /// Start of the event, UTC milliseconds; `None`: when Dynatrace receives it.
    pub start_ms: Option<u64>,
    /// End of the event, UTC milliseconds.
    pub end_ms: Option<u64>,
}

impl DeploymentEvent {
    /// An event with a title and nothing else.
    pub fn new(title: impl Into<String>) -> Self {
        DeploymentEvent {
            title: title.into(),
            ..DeploymentEvent::default()
        }
    }

    /// The event with one more property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The event on the entities `selector` selects.
    pub fn on(mut self, selector: impl Into<String>) -> Self {
        self.entity_selector = Some(selector.into());
        self
    }
}

/// Dynatrace's receipt of an ingested event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventReceipt {
    /// How many event reports Dynatrace created.
    pub report_count: u32,
    /// One per report: its correlation id and status (`OK` when created).
    pub results: Vec<(Option<String>, String)>,
}

/// A token to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    /// UTC milliseconds; `None`: the token does not expire.
    pub expires_at_ms: Option<u64>,
}

/// A minted token: the only time Dynatrace shows its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedToken {
    /// `dt0c01.PUBLIC`.
    pub id: String,
    pub token: SecretToken,
    pub expires_at_ms: Option<u64>,
}

/// What Dynatrace says about a token (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenMetadata {
    /// `dt0c01.PUBLIC`.
    pub id: String,
    pub name: String,
    /// `false` once revoked.
    pub enabled: bool,
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub created_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
}

impl TokenMetadata {
    /// Whether the token authenticates at `now_ms`: enabled and not expired.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        self.enabled && self.expires_at_ms.is_none_or(|e| e > now_ms)
    }
}

/// Dynatrace, as far as the workflow needs it.
pub trait Dynatrace {
    /// The data points of a metric over a timeframe, from the release's processes only.
    ///
    /// # Errors
    /// [`Error::Config`] when the token is rejected (naming the token id, never the value);
    /// [`Error::InvalidInput`] when Dynatrace rejects the selector; [`Error::Throttled`] and
    /// [`Error::Transient`] for 429, server errors and network failures.
    fn metric(&self, query: &MetricQuery) -> impl Future<Output = Result<MetricData>>;

    /// Posts a `CUSTOM_DEPLOYMENT` event.
    ///
    /// # Errors
    /// As [`Dynatrace::metric`].
    fn post_deployment_event(
        &self,
        event: &DeploymentEvent,
    ) -> impl Future<Output = Result<EventReceipt>>;

    /// Mints a token.
    ///
    /// # Errors
    /// As [`Dynatrace::metric`].
    fn create_token(&self, token: &NewToken) -> impl Future<Output = Result<CreatedToken>>;

    /// What Dynatrace knows about the token with this value, revoked or expired ones
    /// included; `None` when no token has it.
    ///
    /// # Errors
    /// As [`Dynatrace::metric`].
    fn lookup_token(
        &self,
        token: &SecretToken,
    ) -> impl Future<Output = Result<Option<TokenMetadata>>>;

    /// Every token whose name is exactly `name`.
    ///
    /// # Errors
    /// As [`Dynatrace::metric`].
    fn tokens_named(&self, name: &str) -> impl Future<Output = Result<Vec<TokenMetadata>>>;

    /// Revokes the token with this id (`dt0c01.PUBLIC`): it stays listed, disabled, and no
    /// longer authenticates. A token that does not exist is not an error.
    ///
    /// # Errors
    /// As [`Dynatrace::metric`]; [`Error::InvalidInput`] when it is the token making the call.
    fn revoke_token(&self, id: &str) -> impl Future<Output = Result<()>>;
}

/// Which secret holds a value: a secret's name or ARN and, for a JSON secret, the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    pub json_key: Option<String>,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.json_key {
            Some(key) => write!(f, "secret {} (key {key})", self.secret_id),
            None => write!(f, "secret {}", self.secret_id),
        }
    }
}

/// A store of secrets, such as AWS Secrets Manager.
pub trait SecretStore {
    /// The current (`AWSCURRENT`) value of the secret, or of its key.
    ///
    /// # Errors
    /// [`Error::Config`] when the secret, its current version or the key does not exist, or
    /// the value is empty; AWS errors of the read. Never the value.
    fn current_value(&self, secret: &SecretRef) -> impl Future<Output = Result<SecretToken>>;
}

/// The Dynatrace the functions use, read once at init: [`DynatraceConfig::from_env`], the
/// token read from AWS Secrets Manager on first use. `None` when `DYNATRACE_API_URL` is
/// unset.
///
/// # Errors
/// [`Error::Config`] naming the variable that is missing or wrong.
pub fn from_env(conf: &aws_config::SdkConfig) -> Result<Option<SecretDynatrace<SdkSecretStore>>> {
    DynatraceConfig::from_env()?
        .map(|config| SecretDynatrace::new(&config, SdkSecretStore::from_conf(conf)))
        .transpose()
}

/// Where the functions find Dynatrace: read once at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynatraceConfig {
    /// The environment URL, without a trailing `/` or `/api/v2`.
    pub api_url: String,
    /// The secret holding the token.
    pub token_secret: SecretRef,
}

impl DynatraceConfig {
    /// A configuration for the environment at `api_url` (`https://…`, or `http://` on a
    /// loopback address for the local stack).
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is not one, or names a non-loopback host over `http`.
    pub fn new(api_url: &str, token_secret: SecretRef) -> Result<Self> {
        Ok(DynatraceConfig {
            api_url: normalized_api_url(api_url)?,
            token_secret,
        })
    }

    /// Reads `DYNATRACE_API_URL`, `DYNATRACE_TOKEN_SECRET` and `DYNATRACE_TOKEN_SECRET_KEY`.
    /// `None` when `DYNATRACE_API_URL` is unset: Dynatrace is not used.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is missing or wrong.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`DynatraceConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`DynatraceConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let set = |name: &str| crate::config::setting(&lookup, name);
        let Some(url) = set(API_URL_VAR) else {
            return Ok(None);
        };
        let secret_id = set(TOKEN_SECRET_VAR).ok_or_else(|| {
            Error::Config(format!(
                "{API_URL_VAR} is set but {TOKEN_SECRET_VAR} is not: name the Secrets Manager secret that holds the dynatrace token"
            ))
        })?;
        let config = Self::new(
            &url,
            SecretRef {
                secret_id,
                json_key: set(TOKEN_SECRET_KEY_VAR),
            },
        )
        .map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{API_URL_VAR}: {m}")),
            other => other,
        })?;
        Ok(Some(config))
    }
}

fn normalized_api_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    let url = reqwest::Url::parse(raw).map_err(|e| {
        Error::Config(format!(
            "{raw:?} is not a URL ({e}); use the environment URL, e.g. https://abc12345.live.dynatrace.com"
        ))
    })?;
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::Config(format!(
                "{raw:?} must be an https URL (http only on a loopback address, for the local stack)"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(
            "the dynatrace URL must not carry credentials; the token comes from Secrets Manager"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{raw:?} must not have a query or fragment"
        )));
    }
    let mut text = url.as_str().trim_end_matches('/').to_string();
    for suffix in ["/api/v2", "/api"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            text = stripped.to_string();
            break;
        }
    }
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn token_value(public: char, secret: char) -> String {
        format!(
            "dt0c01.{}.{}",
            public.to_string().repeat(24),
            secret.to_string().repeat(64)
        )
    }

    #[test]
    fn a_token_shows_only_its_id_in_debug_display_and_errors() {
        let value = token_value('A', 'S');
        let token = SecretToken::new(format!("{value}\n")).unwrap();
        let id = format!("dt0c01.{}", "A".repeat(24));
        assert_eq!(
            token.expose_secret(),
            value,
            "a trailing newline is trimmed"
        );
        assert_eq!(token.id(), Some(id.as_str()));
        assert_eq!(format!("{token:?}"), format!("SecretToken({id})"));
        assert_eq!(token.to_string(), id);
        let secret = "S".repeat(64);
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{:?}", Some(&token)),
            token.described(),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
        }
        assert_eq!(
            token.scrub(&format!("echo {value} and {secret}")),
            "echo <redacted> and <redacted>"
        );
    }

    #[test]
    fn a_value_not_in_dynatraces_format_is_redacted_entirely() {
        let token = SecretToken::new("hunter2hunter2").unwrap();
        assert_eq!(token.id(), None);
        assert_eq!(format!("{token:?}"), "SecretToken(<redacted>)");
        assert_eq!(token.to_string(), "<redacted>");
        assert!(!token.described().contains("hunter2"));
    }

    #[test]
    fn empty_or_header_breaking_values_are_config_errors_without_the_value() {
        for bad in ["", "  \n", "dt0c01.A B", "abc\u{7}def"] {
            let err = SecretToken::new(bad).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            if !bad.trim().is_empty() {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }

    #[test]
    fn a_release_scopes_to_its_processes_and_sets_their_environment() {
        let release = ReleaseScope {
            version: format!("sha256:{}", "a".repeat(64)),
            stage: Some("production".into()),
            product: Some("or\"ders~".into()),
        };
        assert_eq!(
            release.entity_selector(),
            format!(
                "type(PROCESS_GROUP_INSTANCE),releasesVersion(\"sha256:{}\"),releasesStage(\"production\"),releasesProduct(\"or~\"ders~~\")",
                "a".repeat(64)
            )
        );
        assert_eq!(
            release.environment(),
            vec![
                ("DT_RELEASE_VERSION", release.version.clone()),
                ("DT_RELEASE_STAGE", "production".to_string()),
                ("DT_RELEASE_PRODUCT", "or\"ders~".to_string()),
            ]
        );
        assert_eq!(
            ReleaseScope::new("v2").entity_selector(),
            "type(PROCESS_GROUP_INSTANCE),releasesVersion(\"v2\")"
        );
    }

    #[test]
    fn the_configuration_is_read_from_the_environment_and_names_what_is_missing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(DynatraceConfig::from_lookup(env(&[])).unwrap(), None);
        let c = DynatraceConfig::from_lookup(env(&[
            (API_URL_VAR, "https://abc12345.live.dynatrace.com/api/v2/"),
            (TOKEN_SECRET_VAR, "dynatrace/deploy"),
            (TOKEN_SECRET_KEY_VAR, "apiToken"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url, "https://abc12345.live.dynatrace.com");
        assert_eq!(c.token_secret.json_key.as_deref(), Some("apiToken"));
        let local = DynatraceConfig::from_lookup(env(&[
            (API_URL_VAR, "http://127.0.0.1:5100/dynatrace"),
            (TOKEN_SECRET_VAR, "t"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(local.api_url, "http://127.0.0.1:5100/dynatrace");

        let err =
            DynatraceConfig::from_lookup(env(&[(API_URL_VAR, "https://x.live.dynatrace.com")]))
                .unwrap_err();
        assert!(err.to_string().contains(TOKEN_SECRET_VAR), "{err}");
        for url in [
            "http://abc12345.live.dynatrace.com",
            "not a url",
            "https://user:pw@x.live.dynatrace.com",
        ] {
            let err = DynatraceConfig::new(
                url,
                SecretRef {
                    secret_id: "s".into(),
                    json_key: None,
                },
            )
            .unwrap_err();
            assert_eq!(err.error_type(), "ConfigError", "{url}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[test]
    fn token_metadata_is_usable_while_enabled_and_unexpired() {
        let meta = TokenMetadata {
            enabled: true,
            expires_at_ms: Some(100),
            ..TokenMetadata::default()
        };
        assert!(meta.usable_at(99));
        assert!(!meta.usable_at(100));
        assert!(
            !TokenMetadata {
                enabled: false,
                ..meta
            }
            .usable_at(0)
        );
    }
}

/// The local stack's fake Dynatrace API, served in-process for the adapter tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests_support {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::{HttpDynatrace, SecretToken};

    /// A fresh fake on a free loopback port, with an admin token seeded.
    pub(crate) struct FakeApi {
        pub base: String,
        http: reqwest::Client,
        pub admin: SecretToken,
    }

    impl FakeApi {
        pub(crate) async fn start() -> FakeApi {
            let state =
                Arc::new(gateway::server::AppState::new(gateway::Config::default()).unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(
                async move { axum::serve(listener, gateway::server::router(state)).await },
            );
            let http = reqwest::Client::new();
            let mut fake = FakeApi {
                base: format!("http://{addr}"),
                http,
                admin: SecretToken::new("placeholder").unwrap(),
            };
            fake.admin = fake
                .seed(
                    "admin",
                    &[
                        "apiTokens.read",
                        "apiTokens.write",
                        "metrics.read",
                        "events.ingest",
                    ],
                )
                .await;
            fake
        }

        /// The API URL a function would be configured with.
        pub(crate) fn api_url(&self) -> String {
            format!("{}/dynatrace", self.base)
        }

        pub(crate) async fn seed(&self, name: &str, scopes: &[&str]) -> SecretToken {
            let answer: Value = self
                .http
                .post(format!("{}/_local/dynatrace/tokens", self.base))
                .json(&json!({"name": name, "scopes": scopes}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            SecretToken::new(answer["token"].as_str().unwrap()).unwrap()
        }

        /// An adapter with a token that reads metrics and ingests events.
        pub(crate) async fn reader(&self) -> HttpDynatrace {
            let token = self
                .seed("deploy", &["metrics.read", "events.ingest"])
                .await;
            HttpDynatrace::new(&self.api_url(), token).unwrap()
        }

        pub(crate) async fn rule(&self, rule: Value) {
            let status = self
                .http
                .post(format!("{}/_local/dynatrace/metrics", self.base))
                .json(&rule)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "{rule}");
        }

        pub(crate) async fn control(&self, path: &str) -> Value {
            self.http
                .get(format!("{}/_local/dynatrace/{path}", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        }
    }
}
