//! Secrets Manager's part of a token rotation, played on the local stack.
//!
//! On AWS, `RotateSecret` creates the new version (labelled `AWSPENDING`, no value yet) and
//! invokes the rotation function four times. moto cannot invoke a function (it would need
//! Docker): its `RotateSecret` with a function ARN creates the `AWSPENDING` version, turns
//! rotation on, and then fails to find the function. [`start_rotation`] makes that call and
//! expects exactly that failure; [`run_steps`] then invokes `rotate-secret` with the four
//! steps through the Lambda Invoke API, as Secrets Manager would.

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::types::RotationRulesType;
use serde_json::{Value, json};

use crate::env::Environment;
use crate::gateway::Gateway;
use crate::lambda::{FunctionError, Functions};
use crate::{Clients, sfn};

/// The rotation function's binary.
pub const FUNCTION: &str = "rotate-secret";
/// The steps Secrets Manager invokes, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// Scopes of the environment's plain token (the OneAgent's API token) in the fake Dynatrace.
pub const API_TOKEN_SCOPES: [&str; 2] = ["metrics.ingest", "entities.read"];
/// Scopes of the environment's PaaS token.
pub const PAAS_TOKEN_SCOPES: [&str; 1] = ["InstallerDownload"];

/// Makes the environment's Dynatrace tokens known to the fake Dynatrace (a real environment's
/// tokens exist in Dynatrace before they are stored in a secret), with realistic scopes.
///
/// # Errors
/// When the gateway rejects a token.
pub async fn register_tokens(gateway: &Gateway, env: &Environment) -> anyhow::Result<()> {
    let s = &env.secrets;
    for (name, token, scopes) in [
        (
            format!("{} api", env.prefix),
            &s.api_token,
            &API_TOKEN_SCOPES[..],
        ),
        (
            format!("{} api (json)", env.prefix),
            &s.tokens_api_token,
            &API_TOKEN_SCOPES[..],
        ),
        (
            format!("{} paas", env.prefix),
            &s.tokens_paas_token,
            &PAAS_TOKEN_SCOPES[..],
        ),
    ] {
        gateway.dynatrace_known_token(&name, token, scopes).await?;
    }
    Ok(())
}

/// A fresh `ClientRequestToken`: a UUID, as Secrets Manager makes them.
pub fn new_version_id() -> String {
    let hex: String = (0..32)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Starts a rotation of `secret_id` as `RotateSecret` does (rotation every 30 days, the local
/// `rotate-secret` as the function); answers the new version's id.
///
/// # Errors
/// When moto fails otherwise than by not finding the function, or leaves no `AWSPENDING`
/// version behind.
pub async fn start_rotation(clients: &Clients, secret_id: &str) -> anyhow::Result<String> {
    let version = new_version_id();
    let result = clients
        .secrets
        .rotate_secret()
        .secret_id(secret_id)
        .client_request_token(&version)
        .rotation_lambda_arn(sfn::lambda_arn(FUNCTION))
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await;
    if let Err(e) = result {
        let not_the_function = e
            .as_service_error()
            .is_none_or(|s| !s.is_resource_not_found_exception());
        if not_the_function {
            return Err(anyhow::Error::new(e).context(format!("RotateSecret of {secret_id}")));
        }
    }
    let stages = clients
        .secrets
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .with_context(|| format!("describing {secret_id}"))?
        .version_ids_to_stages
        .unwrap_or_default();
    if !stages
        .get(&version)
        .is_some_and(|s| s.iter().any(|x| x == "AWSPENDING"))
    {
        bail!("RotateSecret left no AWSPENDING version {version} on {secret_id}: {stages:?}");
    }
    Ok(version)
}

/// What the four steps answered.
#[derive(Debug, Clone)]
pub struct RotationRun {
    pub version_id: String,
    /// Each step's output, in order.
    pub outputs: Vec<Value>,
    /// The rotation workflow `finishSecret` started.
    pub workflow_execution_arn: Option<String>,
}

/// The payload Secrets Manager invokes a rotation function with.
pub fn step_event(secret_id: &str, version_id: &str, step: &str) -> Value {
    json!({"SecretId": secret_id, "ClientRequestToken": version_id, "Step": step})
}

/// Invokes `rotate-secret` with the four steps, stopping at the first that fails.
///
/// # Errors
/// When an invoke fails, or a step answers a function error (named).
pub async fn run_steps(
    functions: &Functions,
    secret_id: &str,
    version_id: &str,
) -> anyhow::Result<RotationRun> {
    let mut outputs = Vec::new();
    for step in STEPS {
        let answer = functions
            .invoke(FUNCTION, &step_event(secret_id, version_id, step))
            .await?;
        let out = answer.map_err(|e: FunctionError| anyhow::anyhow!("{step} failed: {e}"))?;
        outputs.push(out);
    }
    let workflow_execution_arn = outputs
        .last()
        .and_then(|o| o["workflow"].as_str())
        .map(str::to_string);
    Ok(RotationRun {
        version_id: version_id.to_string(),
        outputs,
        workflow_execution_arn,
    })
}

/// `RotateSecret` of `secret_id`, the local way: [`start_rotation`], then [`run_steps`].
///
/// # Errors
/// As those.
pub async fn rotate_now(
    clients: &Clients,
    functions: &Functions,
    secret_id: &str,
) -> anyhow::Result<RotationRun> {
    let version = start_rotation(clients, secret_id).await?;
    run_steps(functions, secret_id, &version).await
}
