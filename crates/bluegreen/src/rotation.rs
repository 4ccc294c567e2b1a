//! Rotation of the Dynatrace tokens services read from AWS Secrets Manager.
//!
//! The `rotate-secret` function answers two callers:
//!
//! - **Secrets Manager**, with the four steps of its rotation protocol ([`RotationEvent`]):
//!   `createSecret` mints a new token for every token the secret holds (a plain secret is
//!   one token; a JSON secret may hold several, one per key), through the Dynatrace API with
//!   the admin token, with the same scopes, an expiry and a name derived from the
//!   `ClientRequestToken`, and stores them as the `AWSPENDING` version; `setSecret` has
//!   nothing to set (Dynatrace made the token when it was minted); `testSecret` proves each
//!   pending token exists, is enabled, not expired and has the scopes of the token it
//!   replaces; `finishSecret` moves `AWSCURRENT` to the new version, removes `AWSPENDING`
//!   and starts the rotation workflow (`statemachine/rotate.asl.json`).
//! - **The rotation workflow**, with [`WorkflowAction`]s: ECS reads a secret only when a task
//!   starts, so the workflow redeploys every service that uses the secret (blue/green, the
//!   same image) and revokes the previous tokens only after all of them succeeded. If one
//!   fails, the previous tokens stay valid and the workflow fails loudly; running it again
//!   finishes the job (services already redeployed for this version are not redeployed).
//!
//! Every step checks what AWS's rotation templates check first: rotation is enabled, the
//! token is a version of the secret, a version already `AWSCURRENT` is done (success), a
//! version not `AWSPENDING` is an error. Every step may run twice: a second `createSecret`
//! finds the pending value and mints nothing.
//!
//! No token value is ever logged, returned or put in an error: [`SecretValue`] shows none.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::dynatrace::{Dynatrace, NewToken, SecretToken};
use crate::error::{Error, Result};

pub mod workflow;

/// The stage label of a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The stage label of the version a rotation is creating.
pub const AWSPENDING: &str = "AWSPENDING";
/// The stage label of the version before the current one.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Environment variable: the secret (name or ARN) with the Dynatrace token allowed to manage
/// tokens (`apiTokens.read`, `apiTokens.write`).
pub const ADMIN_TOKEN_SECRET_VAR: &str = "DYNATRACE_ADMIN_TOKEN_SECRET";
/// Environment variable: the key of the admin token in a JSON secret; unset: a plain secret.
pub const ADMIN_TOKEN_SECRET_KEY_VAR: &str = "DYNATRACE_ADMIN_TOKEN_SECRET_KEY";
/// Environment variable: days a minted token lives (1–3650, default 90); keep it longer than
/// the rotation schedule.
pub const TOKEN_LIFETIME_DAYS_VAR: &str = "TOKEN_LIFETIME_DAYS";
/// Default lifetime of a minted token.
pub const DEFAULT_TOKEN_LIFETIME_DAYS: u32 = 90;

/// A secret's whole value (a token, or a JSON object of tokens). `Debug` and `Display` show
/// nothing of it; it is deliberately not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The value, to store it. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A secret as Secrets Manager describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    /// Version id → its stage labels.
    pub versions: BTreeMap<String, Vec<String>>,
}

impl SecretDescription {
    /// The version carrying `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    fn has(&self, version: &str, stage: &str) -> bool {
        self.versions
            .get(version)
            .is_some_and(|stages| stages.iter().any(|s| s == stage))
    }
}

/// AWS Secrets Manager, as far as rotation needs it.
pub trait SecretVersions {
    /// The secret's ARN, name, rotation setting and versions.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the secret does not exist; AWS errors.
    fn describe(&self, secret_id: &str) -> impl Future<Output = Result<SecretDescription>>;

    /// The value of version `version_id` and/or the version carrying `stage`; `None` when that
    /// version has no value yet (a rotation's `AWSPENDING` stub).
    ///
    /// # Errors
    /// [`Error::Config`] for a binary secret; AWS errors. Never the value.
    fn value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> impl Future<Output = Result<Option<SecretValue>>>;

    /// Stores `value` as version `version_id`, labelled `AWSPENDING`.
    ///
    /// # Errors
    /// AWS errors.
    fn put_pending(
        &self,
        secret_id: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> impl Future<Output = Result<()>>;

    /// Moves `stage` to version `to` (from version `from`), or removes it from `from` when
    /// `to` is `None`.
    ///
    /// # Errors
    /// AWS errors.
    fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<()>>;
}

/// The step Secrets Manager asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    Create,
    #[serde(rename = "setSecret")]
    Set,
    #[serde(rename = "testSecret")]
    Test,
    #[serde(rename = "finishSecret")]
    Finish,
}

/// Secrets Manager's invocation of a rotation function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// The secret's ARN (or name).
    pub secret_id: String,
    /// The version being created: also the idempotency key of the rotation.
    pub client_request_token: String,
    pub step: Step,
}

/// What the rotation workflow asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", deny_unknown_fields)]
pub enum WorkflowAction {
    /// The services that use the secret, and the redeploy of each.
    FindConsumers { rotation: Rotation },
    /// Starts the redeploys of the consumers not yet redeployed for this version.
    #[serde(rename_all = "camelCase")]
    StartRedeploys {
        consumers: Vec<workflow::Consumer>,
        /// The workflow execution's name: each attempt starts its own redeploys.
        attempt: String,
    },
    /// How the redeploys are doing.
    CheckRedeploys { executions: Vec<workflow::Redeploy> },
    /// Revokes the tokens of the previous version that the current one no longer holds.
    RevokePrevious { rotation: Rotation },
}

/// One rotation: the input of the rotation workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotation {
    pub secret_arn: String,
    /// The new `AWSCURRENT` version.
    pub rotated_version_id: String,
    /// The version it replaced, whose tokens are revoked at the end.
    pub previous_version_id: Option<String>,
}

/// Either caller's input.
#[derive(Debug, Clone, PartialEq)]
pub enum RotateInput {
    Step(RotationEvent),
    Workflow(WorkflowAction),
}

impl RotateInput {
    /// Tells Secrets Manager's events (`Step`) from the workflow's (`action`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming what is wrong.
    pub fn parse(value: Value) -> Result<Self> {
        if value.get("Step").is_some() {
            crate::lambda::parse_payload(value).map(RotateInput::Step)
        } else if value.get("action").is_some() {
            crate::lambda::parse_payload(value).map(RotateInput::Workflow)
        } else {
            Err(Error::InvalidInput(
                "expected Secrets Manager's rotation event ({\"SecretId\", \"ClientRequestToken\", \"Step\"}) or a rotation workflow action ({\"action\": …})".into(),
            ))
        }
    }
}

/// The tokens a secret value holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTokens {
    /// `None`: the whole value is the token. `Some`: the JSON object, other keys kept.
    object: Option<Map<String, Value>>,
    /// Key (`None` for a plain secret) → token.
    pub tokens: Vec<(Option<String>, SecretToken)>,
}

impl HeldTokens {
    /// The tokens of `value`: the whole value when it is one Dynatrace token, else every
    /// key of a JSON object whose value is one.
    ///
    /// # Errors
    /// [`Error::Config`] when it holds no Dynatrace token. The message shows no value.
    pub fn of(value: &SecretValue) -> Result<Self> {
        let text = value.expose_secret().trim();
        if text.starts_with('{') {
            let object: Map<String, Value> = serde_json::from_str(text).map_err(|_| {
                Error::Config("the secret looks like JSON but is not a JSON object".into())
            })?;
            let tokens: Vec<(Option<String>, SecretToken)> = object
                .iter()
                .filter_map(|(k, v)| {
                    let v = v.as_str()?;
                    let token = SecretToken::new(v).ok()?;
                    token.id()?;
                    Some((Some(k.clone()), token))
                })
                .collect();
            if tokens.is_empty() {
                return Err(Error::Config(format!(
                    "the secret is a JSON object without any Dynatrace token (keys: {})",
                    object.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            return Ok(HeldTokens {
                object: Some(object),
                tokens,
            });
        }
        let token = SecretToken::new(text)?;
        if token.id().is_none() {
            return Err(Error::Config(
                "the secret's value is not a Dynatrace token (dt0c01.<24>.<64>) nor a JSON object of them".into(),
            ));
        }
        Ok(HeldTokens {
            object: None,
            tokens: vec![(None, token)],
        })
    }

    /// The same layout with each key's token replaced by `new`'s.
    ///
    /// # Errors
    /// [`Error::Config`] when `new` misses a key.
    pub fn replaced(&self, new: &[(Option<String>, SecretToken)]) -> Result<SecretValue> {
        let token_for = |key: &Option<String>| {
            new.iter()
                .find(|(k, _)| k == key)
                .map(|(_, t)| t.expose_secret().to_string())
                .ok_or_else(|| Error::Config(format!("no new token for key {key:?}")))
        };
        match &self.object {
            None => Ok(SecretValue::new(token_for(&None)?)),
            Some(object) => {
                let mut object = object.clone();
                for (key, _) in &self.tokens {
                    if let Some(k) = key {
                        object.insert(k.clone(), Value::String(token_for(key)?));
                    }
                }
                Ok(SecretValue::new(Value::Object(object).to_string()))
            }
        }
    }

    /// `key`'s token.
    pub fn token(&self, key: &Option<String>) -> Option<&SecretToken> {
        self.tokens.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }
}

/// The admin Dynatrace of `rotate-secret`, read once at init: `DYNATRACE_API_URL` and
/// [`ADMIN_TOKEN_SECRET_VAR`] (with [`ADMIN_TOKEN_SECRET_KEY_VAR`] for a JSON secret).
///
/// # Errors
/// [`Error::Config`] naming the variable that is missing or wrong.
pub fn admin_from_env(
    conf: &aws_config::SdkConfig,
) -> Result<crate::dynatrace::SecretDynatrace<crate::dynatrace::SdkSecretStore>> {
    let env = |name: &str| std::env::var(name).ok();
    let var = |name: &str| crate::config::setting(&env, name);
    let url = var(crate::dynatrace::API_URL_VAR).ok_or_else(|| {
        Error::Config(format!(
            "{} is not set: rotate-secret mints tokens through the Dynatrace API",
            crate::dynatrace::API_URL_VAR
        ))
    })?;
    let secret_id = var(ADMIN_TOKEN_SECRET_VAR).ok_or_else(|| {
        Error::Config(format!(
            "{ADMIN_TOKEN_SECRET_VAR} is not set: name the secret with the Dynatrace token allowed to manage tokens (apiTokens.read, apiTokens.write)"
        ))
    })?;
    let config = crate::dynatrace::DynatraceConfig::new(
        &url,
        crate::dynatrace::SecretRef {
            secret_id,
            json_key: var(ADMIN_TOKEN_SECRET_KEY_VAR),
        },
    )?;
    crate::dynatrace::SecretDynatrace::new(
        &config,
        crate::dynatrace::SdkSecretStore::from_conf(conf),
    )
}

/// How `rotate-secret` mints tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintPolicy {
    pub token_lifetime_days: u32,
}

impl Default for MintPolicy {
    fn default() -> Self {
        MintPolicy {
            token_lifetime_days: DEFAULT_TOKEN_LIFETIME_DAYS,
        }
    }
}

impl MintPolicy {
    /// Reads [`TOKEN_LIFETIME_DAYS_VAR`].
    ///
    /// # Errors
    /// [`Error::Config`] when it is not a number of days in 1–3650.
    pub fn from_env() -> Result<Self> {
        match std::env::var(TOKEN_LIFETIME_DAYS_VAR) {
            Err(_) => Ok(MintPolicy::default()),
            Ok(raw) => {
                let days: u32 = raw.trim().parse().map_err(|_| {
                    Error::Config(format!(
                        "{TOKEN_LIFETIME_DAYS_VAR} {raw:?} is not a number of days"
                    ))
                })?;
                if !(1..=3650).contains(&days) {
                    return Err(Error::Config(format!(
                        "{TOKEN_LIFETIME_DAYS_VAR} must be 1 to 3650 days, got {days}"
                    )));
                }
                Ok(MintPolicy {
                    token_lifetime_days: days,
                })
            }
        }
    }
}

/// The name of the token minted for `key` of secret `secret_name` in rotation `request`: a
/// retry finds it by this name.
pub fn token_name(secret_name: &str, key: &Option<String>, request: &str) -> String {
    let secret: String = secret_name.chars().take(80).collect();
    match key {
        Some(k) => format!("{secret}/{k} rotation {request}"),
        None => format!("{secret} rotation {request}"),
    }
}

/// Runs one step of Secrets Manager's rotation protocol; answers what it did.
///
/// `workflow`: where `finishSecret` starts the redeploy-then-revoke workflow (`None`: it is
/// not configured; the previous tokens then stay valid until revoked by hand).
///
/// # Errors
/// - [`Error::PreconditionFailed`]: rotation is not enabled, the token is no version of the
///   secret, or not `AWSPENDING` (and not `AWSCURRENT` either); the pending tokens fail their
///   test.
/// - [`Error::Config`]: a value holds no Dynatrace token, a current token is unknown to
///   Dynatrace (its scopes cannot be copied).
/// - Dynatrace and AWS errors.
pub async fn rotation_step<S, D, X>(
    secrets: &S,
    admin: &D,
    sfn: &X,
    workflow: Option<&str>,
    policy: &MintPolicy,
    event: &RotationEvent,
    now_ms: u64,
) -> Result<Value>
where
    S: SecretVersions,
    D: Dynatrace,
    X: crate::operations::Executions,
{
    let desc = secrets.describe(&event.secret_id).await?;
    let token = event.client_request_token.as_str();
    if !desc.rotation_enabled {
        return Err(Error::PreconditionFailed(format!(
            "rotation is not enabled for secret {}",
            desc.name
        )));
    }
    if !desc.versions.contains_key(token) {
        return Err(Error::PreconditionFailed(format!(
            "secret {} has no version {token} to rotate to",
            desc.name
        )));
    }
    let step = serde_json::to_value(event.step).unwrap_or(Value::Null);
    if desc.has(token, AWSCURRENT) && event.step != Step::Finish {
        info!(secret = %desc.name, version = token, step = %step, "the version is AWSCURRENT already; nothing to do");
        return Ok(
            json!({"step": step, "secret": desc.name, "version": token, "done": "already current"}),
        );
    }
    if !desc.has(token, AWSPENDING) && !desc.has(token, AWSCURRENT) {
        return Err(Error::PreconditionFailed(format!(
            "version {token} of secret {} is not AWSPENDING; it is not being rotated to",
            desc.name
        )));
    }
    match event.step {
        Step::Create => create(secrets, admin, policy, &desc, token, now_ms).await,
        Step::Set => {
            info!(secret = %desc.name, version = token, "setSecret: the tokens were minted by createSecret; nothing to set");
            Ok(
                json!({"step": "setSecret", "secret": desc.name, "version": token, "done": "nothing to set"}),
            )
        }
        Step::Test => test(secrets, admin, &desc, token, now_ms).await,
        Step::Finish => finish(secrets, sfn, workflow, &desc, token).await,
    }
}

async fn create<S: SecretVersions, D: Dynatrace>(
    secrets: &S,
    admin: &D,
    policy: &MintPolicy,
    desc: &SecretDescription,
    token: &str,
    now_ms: u64,
) -> Result<Value> {
    if secrets
        .value(&desc.arn, Some(token), Some(AWSPENDING))
        .await?
        .is_some()
    {
        info!(secret = %desc.name, version = token, "createSecret: the pending version has its value already; nothing minted");
        return Ok(
            json!({"step": "createSecret", "secret": desc.name, "version": token, "done": "already created"}),
        );
    }
    let current = secrets
        .value(&desc.arn, None, Some(AWSCURRENT))
        .await?
        .ok_or_else(|| Error::Config(format!("secret {} has no AWSCURRENT value", desc.name)))?;
    let held = HeldTokens::of(&current)
        .map_err(|e| Error::Config(format!("secret {}: {}", desc.name, strip_config(e))))?;
    let lifetime_ms = u64::from(policy.token_lifetime_days) * 86_400_000;
    let mut minted = Vec::with_capacity(held.tokens.len());
    let mut ids = Vec::new();
    for (key, old) in &held.tokens {
        let meta = admin.lookup_token(old).await?.ok_or_else(|| {
            Error::Config(format!(
                "the current token {} of secret {}{} is unknown to Dynatrace, so its scopes cannot be copied",
                old,
                desc.name,
                key_suffix(key)
            ))
        })?;
        let name = token_name(&desc.name, key, token);
        // A token of this name exists only if an earlier attempt minted it and failed to
        // store it: its value is lost, so it is revoked and minted again.
        for orphan in admin.tokens_named(&name).await? {
            if orphan.enabled {
                warn!(secret = %desc.name, token_id = %orphan.id, "revoking a token an interrupted createSecret minted but did not store");
                admin.revoke_token(&orphan.id).await?;
            }
        }
        let created = admin
            .create_token(&NewToken {
                name,
                scopes: meta.scopes.clone(),
                expires_at_ms: Some(now_ms.saturating_add(lifetime_ms)),
            })
            .await?;
        info!(secret = %desc.name, version = token, key = key.as_deref().unwrap_or("-"), replaces = %old, token_id = %created.id, scopes = ?meta.scopes, "minted a token");
        ids.push(created.id.clone());
        minted.push((key.clone(), created.token));
    }
    let value = held.replaced(&minted)?;
    secrets.put_pending(&desc.arn, token, &value).await?;
    Ok(json!({"step": "createSecret", "secret": desc.name, "version": token, "minted": ids}))
}

async fn test<S: SecretVersions, D: Dynatrace>(
    secrets: &S,
    admin: &D,
    desc: &SecretDescription,
    token: &str,
    now_ms: u64,
) -> Result<Value> {
    let pending = secrets
        .value(&desc.arn, Some(token), Some(AWSPENDING))
        .await?
        .ok_or_else(|| {
            Error::PreconditionFailed(format!(
                "version {token} of secret {} has no value yet; createSecret must run first",
                desc.name
            ))
        })?;
    let current = secrets.value(&desc.arn, None, Some(AWSCURRENT)).await?;
    let pending = HeldTokens::of(&pending)?;
    let current = match &current {
        Some(v) => Some(HeldTokens::of(v)?),
        None => None,
    };
    let mut tested = Vec::new();
    for (key, new) in &pending.tokens {
        let meta = admin.lookup_token(new).await?.ok_or_else(|| {
            Error::PreconditionFailed(format!(
                "the pending token {new} of secret {}{} does not exist in Dynatrace",
                desc.name,
                key_suffix(key)
            ))
        })?;
        if !meta.usable_at(now_ms) {
            return Err(Error::PreconditionFailed(format!(
                "the pending token {new} of secret {}{} does not authenticate (revoked or expired)",
                desc.name,
                key_suffix(key)
            )));
        }
        if let Some(old) = current.as_ref().and_then(|c| c.token(key)) {
            if old == new {
                return Err(Error::PreconditionFailed(format!(
                    "the pending token of secret {}{} is the current one; nothing was rotated",
                    desc.name,
                    key_suffix(key)
                )));
            }
            if let Some(old_meta) = admin.lookup_token(old).await? {
                let missing: Vec<&String> = old_meta
                    .scopes
                    .iter()
                    .filter(|s| !meta.scopes.contains(s))
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::PreconditionFailed(format!(
                        "the pending token {new} of secret {}{} lacks scopes of the token it replaces: {}",
                        desc.name,
                        key_suffix(key),
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        tested.push(meta.id);
    }
    info!(secret = %desc.name, version = token, tokens = ?tested, "the pending tokens authenticate and have their scopes");
    Ok(json!({"step": "testSecret", "secret": desc.name, "version": token, "tested": tested}))
}

async fn finish<S: SecretVersions, X: crate::operations::Executions>(
    secrets: &S,
    sfn: &X,
    workflow: Option<&str>,
    desc: &SecretDescription,
    token: &str,
) -> Result<Value> {
    let current = desc.version_with(AWSCURRENT).map(str::to_string);
    let previous = if current.as_deref() == Some(token) {
        info!(secret = %desc.name, version = token, "the version is AWSCURRENT already");
        desc.version_with(AWSPREVIOUS).map(str::to_string)
    } else {
        secrets
            .move_stage(&desc.arn, AWSCURRENT, Some(token), current.as_deref())
            .await?;
        info!(secret = %desc.name, version = token, previous = current.as_deref().unwrap_or("none"), "moved AWSCURRENT to the new version");
        current
    };
    if desc.has(token, AWSPENDING) {
        secrets
            .move_stage(&desc.arn, AWSPENDING, None, Some(token))
            .await?;
    }
    let rotation = Rotation {
        secret_arn: desc.arn.clone(),
        rotated_version_id: token.to_string(),
        previous_version_id: previous,
    };
    let started = match workflow {
        Some(state_machine) => {
            let name = workflow::rotation_execution_name(&desc.name, token);
            let arn = sfn
                .start_execution(
                    state_machine,
                    &name,
                    &serde_json::to_value(&rotation).unwrap_or(Value::Null),
                )
                .await?
                .same_input(&name)?;
            info!(secret = %desc.name, execution = %arn, "started the rotation workflow: redeploy the consumers, then revoke the previous tokens");
            Some(arn)
        }
        None => {
            warn!(secret = %desc.name, "no rotation workflow configured: running tasks keep the previous tokens, which stay valid until revoked by hand");
            None
        }
    };
    Ok(
        json!({"step": "finishSecret", "secret": desc.name, "version": token, "previousVersion": rotation.previous_version_id, "workflow": started}),
    )
}

/// Revokes the tokens the previous version holds and the rotated one does not.
///
/// # Errors
/// AWS and Dynatrace errors.
pub async fn revoke_previous<S: SecretVersions, D: Dynatrace>(
    secrets: &S,
    admin: &D,
    rotation: &Rotation,
) -> Result<Value> {
    let Some(previous) = &rotation.previous_version_id else {
        return Ok(json!({"revoked": []}));
    };
    let desc = secrets.describe(&rotation.secret_arn).await?;
    let old = secrets.value(&desc.arn, Some(previous), None).await?;
    let new = secrets
        .value(&desc.arn, Some(&rotation.rotated_version_id), None)
        .await?;
    let (Some(old), Some(new)) = (old, new) else {
        warn!(secret = %desc.name, "a version of the rotation has no value any more; nothing to revoke");
        return Ok(json!({"revoked": []}));
    };
    let (old, new) = (HeldTokens::of(&old)?, HeldTokens::of(&new)?);
    let mut revoked = Vec::new();
    for (key, token) in &old.tokens {
        if new.tokens.iter().any(|(_, t)| t == token) {
            continue;
        }
        match admin.lookup_token(token).await? {
            Some(meta) if meta.enabled => {
                admin.revoke_token(&meta.id).await?;
                info!(secret = %desc.name, key = key.as_deref().unwrap_or("-"), token_id = %meta.id, "revoked the previous token");
                revoked.push(meta.id);
            }
            Some(meta) => revoked.push(meta.id),
            None => {
                warn!(secret = %desc.name, token = %token, "the previous token is unknown to Dynatrace")
            }
        }
    }
    Ok(json!({"revoked": revoked}))
}

fn key_suffix(key: &Option<String>) -> String {
    key.as_ref()
        .map_or_else(String::new, |k| format!(" (key {k})"))
}

fn strip_config(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// Everything `rotate-secret` talks to, and how it is configured.
#[derive(Debug)]
pub struct Rotator<'a, S, D, E, L, X> {
    pub secrets: &'a S,
    /// Dynatrace with the admin token.
    pub admin: &'a D,
    pub ecs: &'a E,
    pub elb: &'a L,
    pub sfn: &'a X,
    pub policy: &'a MintPolicy,
    pub workflow: &'a workflow::WorkflowConfig,
}

impl<S, D, E, L, X> Rotator<'_, S, D, E, L, X>
where
    S: SecretVersions,
    D: Dynatrace,
    E: crate::ports::Ecs + crate::ports::ServiceDirectory,
    L: crate::ports::LoadBalancer,
    X: crate::operations::Executions,
{
    /// Runs what `input` asks for: a rotation step of Secrets Manager, or an action of the
    /// rotation workflow. `now_ms` dates the expiry of minted tokens.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an input that is neither; otherwise as
    /// [`rotation_step`] and the workflow's actions.
    pub async fn run(&self, input: Value, now_ms: u64) -> Result<Value> {
        match RotateInput::parse(input)? {
            RotateInput::Step(event) => {
                rotation_step(
                    self.secrets,
                    self.admin,
                    self.sfn,
                    self.workflow.rotation_state_machine_arn.as_deref(),
                    self.policy,
                    &event,
                    now_ms,
                )
                .await
            }
            RotateInput::Workflow(WorkflowAction::FindConsumers { rotation }) => {
                let secret = self.secrets.describe(&rotation.secret_arn).await?;
                let (consumers, unreachable) =
                    workflow::find_consumers(self.ecs, self.elb, self.workflow, &secret, &rotation)
                        .await?;
                let summary = unreachable
                    .iter()
                    .map(|u| format!("{}/{}: {}", u.cluster, u.service, u.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                Ok(json!({
                    "consumers": consumers,
                    "unreachable": unreachable,
                    "unreachableCount": unreachable.len(),
                    "unreachableSummary": format!("the previous tokens stay valid; services that use secret {} and cannot be redeployed: {summary}", secret.name),
                    "pollSeconds": self.workflow.poll_seconds,
                    "maxPolls": self.workflow.max_polls,
                }))
            }
            RotateInput::Workflow(WorkflowAction::StartRedeploys { consumers, attempt }) => {
                let executions =
                    workflow::start_redeploys(self.sfn, self.workflow, &consumers, &attempt)
                        .await?;
                Ok(json!({ "executions": executions }))
            }
            RotateInput::Workflow(WorkflowAction::CheckRedeploys { executions }) => {
                workflow::check_redeploys(self.sfn, &executions).await
            }
            RotateInput::Workflow(WorkflowAction::RevokePrevious { rotation }) => {
                revoke_previous(self.secrets, self.admin, &rotation).await
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{FakeDynatrace, FakeSecrets, FakeSfn};

    const NOW: u64 = 1_767_225_600_000;
    const ROTATION_SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-rotate";
    const REQUEST: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    struct World {
        secrets: FakeSecrets,
        dt: FakeDynatrace,
        sfn: FakeSfn,
        old: Vec<String>,
    }

    /// A plain secret holding one token Dynatrace knows with two scopes.
    fn plain() -> World {
        let dt = FakeDynatrace::default();
        let old = dt.add_token("orders api", &["metrics.ingest", "entities.read"]);
        World {
            secrets: FakeSecrets::with("dynatrace/api-token", &old),
            dt,
            sfn: FakeSfn::default(),
            old: vec![old],
        }
    }

    /// A JSON secret with two tokens and a key that is no token.
    fn json_secret() -> World {
        let dt = FakeDynatrace::default();
        let api = dt.add_token("api", &["metrics.ingest"]);
        let paas = dt.add_token("paas", &["InstallerDownload"]);
        let value = serde_json::json!({"DT_API_TOKEN": api, "DT_PAAS_TOKEN": paas, "DT_TENANT": "abc12345"});
        World {
            secrets: FakeSecrets::with("dynatrace/tokens", &value.to_string()),
            dt,
            sfn: FakeSfn::default(),
            old: vec![api, paas],
        }
    }

    fn event(w: &World, step: Step) -> RotationEvent {
        RotationEvent {
            secret_id: w.secrets.arn(),
            client_request_token: REQUEST.into(),
            step,
        }
    }

    async fn step(w: &World, step: Step) -> Result<Value> {
        rotation_step(
            &w.secrets,
            &w.dt,
            &w.sfn,
            Some(ROTATION_SM),
            &MintPolicy::default(),
            &event(w, step),
            NOW,
        )
        .await
    }

    async fn rotate(w: &World) {
        w.secrets.start_rotation(REQUEST);
        for s in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            step(w, s).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_rotation_mints_a_token_with_the_same_scopes_and_an_expiry_and_makes_it_current() {
        // Given a plain secret whose token has two scopes
        let w = plain();

        // When Secrets Manager runs the four steps
        rotate(&w).await;

        // Then one token was minted, named after the request, with the same scopes and the
        // default lifetime, and it is the secret's current value; the old one is previous
        assert_eq!(w.dt.minted(), 1);
        let new_value = w.secrets.value_of(REQUEST).unwrap();
        assert_ne!(new_value, w.old[0]);
        let meta = w.dt.token(&new_value).unwrap();
        assert_eq!(meta.scopes, ["metrics.ingest", "entities.read"]);
        assert_eq!(meta.name, format!("dynatrace/api-token rotation {REQUEST}"));
        assert_eq!(meta.expires_at_ms, Some(NOW + 90 * 86_400_000));
        let stages = w.secrets.stages();
        assert_eq!(
            stages[REQUEST],
            ["AWSCURRENT"],
            "no stale AWSPENDING: {stages:?}"
        );
        assert_eq!(stages["v1"], ["AWSPREVIOUS"]);

        // And the old token stays valid until the workflow revokes it
        assert!(w.dt.token(&w.old[0]).unwrap().enabled);

        // And the rotation workflow was started with the rotation
        let started = w.sfn.started();
        assert_eq!(started.len(), 1);
        let input: Value = serde_json::from_str(started[0].input.as_deref().unwrap()).unwrap();
        assert_eq!(
            input,
            json!({"secretArn": w.secrets.arn(), "rotatedVersionId": REQUEST, "previousVersionId": "v1"})
        );
        assert!(
            started[0]
                .name
                .starts_with("rotation-0f8fad5b-dynatrace-api-token"),
            "{}",
            started[0].name
        );
    }

    #[tokio::test]
    async fn every_step_run_twice_leaves_the_same_state_and_mints_one_token() {
        let w = plain();
        w.secrets.start_rotation(REQUEST);
        for s in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            step(&w, s).await.unwrap();
            let after_first = (
                w.secrets.stages(),
                w.secrets.value_of(REQUEST),
                w.dt.tokens(),
            );
            step(&w, s).await.unwrap();
            let after_second = (
                w.secrets.stages(),
                w.secrets.value_of(REQUEST),
                w.dt.tokens(),
            );
            assert_eq!(
                after_first, after_second,
                "{s:?} changed something the second time"
            );
        }
        assert_eq!(w.dt.minted(), 1);
        assert_eq!(w.sfn.started().len(), 1, "the workflow is started once");
    }

    #[tokio::test]
    async fn a_json_secret_gets_a_new_token_for_each_token_key_and_keeps_its_other_keys() {
        let w = json_secret();
        rotate(&w).await;
        let new: Value = serde_json::from_str(&w.secrets.value_of(REQUEST).unwrap()).unwrap();
        assert_eq!(new["DT_TENANT"], "abc12345");
        for (key, old, scope) in [
            ("DT_API_TOKEN", &w.old[0], "metrics.ingest"),
            ("DT_PAAS_TOKEN", &w.old[1], "InstallerDownload"),
        ] {
            let value = new[key].as_str().unwrap();
            assert_ne!(value, old.as_str(), "{key}");
            let meta = w.dt.token(value).unwrap();
            assert_eq!(meta.scopes, [scope]);
            assert!(
                meta.name.contains(&format!("/{key} rotation")),
                "{}",
                meta.name
            );
        }
        assert_eq!(w.dt.minted(), 2);
    }

    #[tokio::test]
    async fn the_checks_of_aws_rotation_templates_come_first() {
        // Rotation not enabled
        let w = plain();
        w.secrets.start_rotation(REQUEST);
        w.secrets.set_rotation_enabled(false);
        let err = step(&w, Step::Create).await.unwrap_err();
        assert!(err.to_string().contains("rotation is not enabled"), "{err}");

        // A token that is no version of the secret
        let w = plain();
        let err = step(&w, Step::Create).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("has no version"), "{err}");

        // A version already current: success, nothing done
        let w = plain();
        rotate(&w).await;
        let again = step(&w, Step::Create).await.unwrap();
        assert_eq!(again["done"], "already current");
        assert_eq!(w.dt.minted(), 1);

        // A version that is neither pending nor current
        let w = plain();
        w.secrets.start_rotation(REQUEST);
        w.secrets.start_rotation("another-request");
        let err = step(&w, Step::Create).await.unwrap_err();
        assert!(err.to_string().contains("is not AWSPENDING"), "{err}");
        assert_eq!(w.dt.minted(), 0);
    }

    #[tokio::test]
    async fn a_token_minted_by_an_interrupted_create_is_revoked_and_minted_again() {
        // Given createSecret minted its token but failed to store it
        let w = plain();
        w.secrets.start_rotation(REQUEST);
        w.secrets.fail_next(
            "PutSecretValue",
            Error::Transient {
                operation: "PutSecretValue",
                resource: "secret".into(),
                message: "timeout".into(),
            },
        );
        step(&w, Step::Create).await.unwrap_err();
        let orphan = w.dt.tokens().last().cloned().unwrap();

        // When Secrets Manager retries
        step(&w, Step::Create).await.unwrap();

        // Then the orphan is revoked and the stored token is a fresh, enabled one
        let stored = w.dt.token(&w.secrets.value_of(REQUEST).unwrap()).unwrap();
        assert_ne!(stored.id, orphan.id);
        assert!(stored.enabled);
        let orphan_now =
            w.dt.tokens()
                .into_iter()
                .find(|t| t.id == orphan.id)
                .unwrap();
        assert!(
            !orphan_now.enabled,
            "the value of the orphan is lost: it must not stay valid"
        );
    }

    #[tokio::test]
    async fn test_secret_refuses_a_pending_token_that_is_revoked_or_lacks_a_scope() {
        let w = plain();
        w.secrets.start_rotation(REQUEST);
        step(&w, Step::Create).await.unwrap();
        let pending = w.secrets.value_of(REQUEST).unwrap();
        let id = w.dt.token(&pending).unwrap().id;
        w.dt.revoke_token(&id).await.unwrap();
        let err = step(&w, Step::Test).await.unwrap_err();
        assert!(err.to_string().contains("does not authenticate"), "{err}");
        assert!(
            !err.to_string().contains(&pending),
            "no token value in errors"
        );

        // And finishSecret is never reached with AWSCURRENT moved by a failed test
        assert_eq!(w.secrets.stages()["v1"], ["AWSCURRENT"]);
    }

    #[tokio::test]
    async fn revoking_the_previous_version_revokes_only_tokens_the_new_one_does_not_hold() {
        let w = json_secret();
        rotate(&w).await;
        let rotation = Rotation {
            secret_arn: w.secrets.arn(),
            rotated_version_id: REQUEST.into(),
            previous_version_id: Some("v1".into()),
        };
        let out = revoke_previous(&w.secrets, &w.dt, &rotation).await.unwrap();
        assert_eq!(out["revoked"].as_array().unwrap().len(), 2);
        for old in &w.old {
            assert!(!w.dt.token(old).unwrap().enabled);
        }
        let new: Value = serde_json::from_str(&w.secrets.value_of(REQUEST).unwrap()).unwrap();
        assert!(
            w.dt.token(new["DT_API_TOKEN"].as_str().unwrap())
                .unwrap()
                .enabled
        );
        // Again: nothing more to do
        let again = revoke_previous(&w.secrets, &w.dt, &rotation).await.unwrap();
        assert_eq!(again["revoked"], out["revoked"]);
    }

    #[test]
    fn values_show_nothing_and_inputs_tell_their_caller() {
        let v = SecretValue::new("dt0c01.ABC.DEF");
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted>)");
        let sm = RotateInput::parse(
            json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "testSecret"}),
        )
        .unwrap();
        assert!(matches!(
            sm,
            RotateInput::Step(RotationEvent {
                step: Step::Test,
                ..
            })
        ));
        let wf = RotateInput::parse(json!({"action": "checkRedeploys", "executions": []})).unwrap();
        assert!(matches!(
            wf,
            RotateInput::Workflow(WorkflowAction::CheckRedeploys { .. })
        ));
        let err = RotateInput::parse(json!({"hello": 1})).unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        let err = RotateInput::parse(
            json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "rotateSecret"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Step"), "{err}");
    }
}
