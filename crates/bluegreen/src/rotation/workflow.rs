//! The rotation workflow's actions: find the services that use a rotated secret, redeploy
//! them blue/green with the images they run, watch the redeploys, and only then revoke the
//! previous tokens (`statemachine/rotate.asl.json` owns the order and the waiting).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::model::DeployRequest;
use crate::operations::Executions;
use crate::ports::{Ecs, LoadBalancer, ServiceDirectory, ServiceState, TaskDefinitionDoc};
use crate::rotation::{Rotation, SecretDescription};

/// Environment variable: the deploy state machine redeploys run on.
pub const DEPLOY_STATE_MACHINE_VAR: &str = "DEPLOY_STATE_MACHINE_ARN";
/// Environment variable: the rotation workflow `finishSecret` starts.
pub const ROTATION_STATE_MACHINE_VAR: &str = "ROTATION_STATE_MACHINE_ARN";
/// Environment variable: comma-separated clusters (names or ARNs) searched for services
/// that use the secret; unset: every cluster of the account and region.
pub const CONSUMER_CLUSTERS_VAR: &str = "CONSUMER_CLUSTERS";
/// Environment variable: a JSON object of execution input fields every redeploy gets
/// (`strategy`, `timing`, `verification`, …); unset: the defaults (all at once).
pub const REDEPLOY_OPTIONS_VAR: &str = "REDEPLOY_OPTIONS";
/// Environment variable: seconds between two checks of the redeploys (1–3600, default 30).
pub const REDEPLOY_POLL_SECONDS_VAR: &str = "REDEPLOY_POLL_SECONDS";
/// Environment variable: checks before the workflow gives up on the redeploys (default
/// 240: two hours at the default interval).
pub const REDEPLOY_MAX_POLLS_VAR: &str = "REDEPLOY_MAX_POLLS";

/// Where the workflow runs redeploys, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowConfig {
    pub deploy_state_machine_arn: Option<String>,
    pub rotation_state_machine_arn: Option<String>,
    /// Empty: every cluster.
    pub clusters: Vec<String>,
    /// Fields merged into every redeploy's execution input.
    pub redeploy_options: serde_json::Map<String, Value>,
    pub poll_seconds: u32,
    pub max_polls: u32,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        WorkflowConfig {
            deploy_state_machine_arn: None,
            rotation_state_machine_arn: None,
            clusters: Vec::new(),
            redeploy_options: serde_json::Map::new(),
            poll_seconds: 30,
            max_polls: 240,
        }
    }
}

impl WorkflowConfig {
    /// Reads the `*_VAR` variables of this module.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is wrong.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`WorkflowConfig::from_env`] over any lookup.
    ///
    /// # Errors
    /// As [`WorkflowConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| crate::config::setting(&lookup, name);
        let number = |name: &str, default: u32, max: u32| -> Result<u32> {
            match set(name) {
                None => Ok(default),
                Some(raw) => raw
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        Error::Config(format!("{name} must be a number in 1–{max}, got {raw:?}"))
                    }),
            }
        };
        let redeploy_options = match set(REDEPLOY_OPTIONS_VAR) {
            None => serde_json::Map::new(),
            Some(raw) => match serde_json::from_str::<Value>(&raw) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(Error::Config(format!(
                        "{REDEPLOY_OPTIONS_VAR} must be a JSON object of execution input fields"
                    )));
                }
            },
        };
        Ok(WorkflowConfig {
            deploy_state_machine_arn: set(DEPLOY_STATE_MACHINE_VAR),
            rotation_state_machine_arn: set(ROTATION_STATE_MACHINE_VAR),
            clusters: set(CONSUMER_CLUSTERS_VAR)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            redeploy_options,
            poll_seconds: number(REDEPLOY_POLL_SECONDS_VAR, 30, 3600)?,
            max_polls: number(REDEPLOY_MAX_POLLS_VAR, 240, 100_000)?,
        })
    }
}

/// A service that uses the rotated secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consumer {
    pub cluster: String,
    pub service: String,
    /// The execution input of its redeploy: the same image, on its route and pair.
    pub request: Value,
    /// The prefix of its redeploy executions' names for this version.
    pub execution_prefix: String,
    /// Its primary task set was started by a redeploy for this version already.
    pub up_to_date: bool,
}

/// A service that uses the secret but cannot be redeployed by the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Unreachable {
    pub cluster: String,
    pub service: String,
    pub reason: String,
}

/// A started redeploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redeploy {
    pub cluster: String,
    pub service: String,
    pub execution_arn: String,
}

/// The rotation workflow's execution name for `version` of secret `secret_name`.
pub fn rotation_execution_name(secret_name: &str, version: &str) -> String {
    name_of(&["rotation", &short(version, 8), &clean(secret_name)])
}

/// Whether `value_from` (a container's `secrets[].valueFrom`) refers to `secret`: its full
/// ARN, its partial ARN (without the six random characters), or its name, each alone or
/// followed by `:<json key>:<stage>:<version>`.
pub fn refers_to(value_from: &str, secret: &SecretDescription) -> bool {
    let partial = secret
        .arn
        .rsplit_once('-')
        .map(|(head, tail)| {
            if tail.len() == 6 {
                head
            } else {
                secret.arn.as_str()
            }
        })
        .unwrap_or(&secret.arn);
    [secret.arn.as_str(), partial, secret.name.as_str()]
        .iter()
        .any(|form| {
            value_from == *form
                || value_from
                    .strip_prefix(form)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// Every service in the configured clusters whose primary task definition takes the secret
/// into a container's `secrets`, with the redeploy of each (or why there can be none).
///
/// # Errors
/// AWS errors listing and describing clusters, services and task definitions.
pub async fn find_consumers<E, L>(
    ecs: &E,
    elb: &L,
    config: &WorkflowConfig,
    secret: &SecretDescription,
    rotation: &Rotation,
) -> Result<(Vec<Consumer>, Vec<Unreachable>)>
where
    E: Ecs + ServiceDirectory,
    L: LoadBalancer,
{
    let clusters = if config.clusters.is_empty() {
        ecs.clusters().await?
    } else {
        config.clusters.clone()
    };
    let mut consumers = Vec::new();
    let mut unreachable = Vec::new();
    for cluster in &clusters {
        for service_arn in ecs.services(cluster).await? {
            let service = ecs.service(cluster, &service_arn).await?;
            if service.status != "ACTIVE" {
                continue;
            }
            let Some(primary) = service.primary() else {
                continue;
            };
            let td = ecs.task_definition(&primary.task_definition_arn).await?;
            let Some(container) = consuming_container(&td, secret) else {
                continue;
            };
            let cluster_name = short_name(&service.cluster_arn).to_string();
            let prefix = name_of(&[
                "rotate",
                &short(&rotation.rotated_version_id, 8),
                &short(&hash_hex(&service.arn), 8),
            ]);
            match redeploy_request(elb, config, &service, &td, &container).await {
                Ok(request) => {
                    let up_to_date = primary
                        .external_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with(&format!("{prefix}-")));
                    info!(cluster = %cluster_name, service = %service.name, container = %container, up_to_date, "the service uses the rotated secret");
                    consumers.push(Consumer {
                        cluster: cluster_name,
                        service: service.name.clone(),
                        request,
                        execution_prefix: prefix,
                        up_to_date,
                    });
                }
                Err(reason) => {
                    warn!(cluster = %cluster_name, service = %service.name, reason = %reason, "the service uses the rotated secret but cannot be redeployed");
                    unreachable.push(Unreachable {
                        cluster: cluster_name,
                        service: service.name.clone(),
                        reason,
                    });
                }
            }
        }
    }
    Ok((consumers, unreachable))
}

/// The first container whose `secrets` refer to the secret.
fn consuming_container(td: &TaskDefinitionDoc, secret: &SecretDescription) -> Option<String> {
    td.definition
        .container_definitions()
        .iter()
        .find(|c| {
            c.secrets()
                .iter()
                .any(|s| refers_to(s.value_from(), secret))
        })
        .and_then(|c| c.name().map(str::to_string))
}

/// The execution input that redeploys `service` with the image `container` runs now: on the
/// route whose forward has the primary's target group and one other (with a second such
/// route as test traffic).
async fn redeploy_request<L: LoadBalancer>(
    elb: &L,
    config: &WorkflowConfig,
    service: &ServiceState,
    td: &TaskDefinitionDoc,
    container: &str,
) -> std::result::Result<Value, String> {
    if service.deployment_controller.as_deref() != Some("EXTERNAL") {
        return Err(format!(
            "it uses the {} deployment controller; redeploy it yourself (e.g. update-service --force-new-deployment) before revoking the previous token",
            service.deployment_controller.as_deref().unwrap_or("ECS")
        ));
    }
    let primary = service.primary().ok_or("it has no primary task set")?;
    let tg = primary
        .target_group_arn()
        .ok_or("its primary task set has no target group")?;
    let image = crate::taskdef::image_of(td, container).map_err(|e| e.to_string())?;
    let routes = elb.routes_to(tg).await.map_err(|e| e.to_string())?;
    let mut pairs: Vec<_> = routes
        .into_iter()
        .filter(|(_, weights)| weights.len() == 2)
        .collect();
    // Production is a listener's default action before a rule; a second route (a test
    // listener or rule) is moved with it as test traffic, so neither is left on blue.
    pairs.sort_by(|(a, _), (b, _)| {
        (a.rule_arn.is_some(), &a.listener_arn, &a.rule_arn).cmp(&(
            b.rule_arn.is_some(),
            &b.listener_arn,
            &b.rule_arn,
        ))
    });
    let (route, weights) = match pairs.as_slice() {
        [first] | [first, _] => first.clone(),
        _ => {
            return Err(format!(
                "{} routes forward to its target group {tg} with a pair; a redeploy can move one, or two (production and test)",
                pairs.len()
            ));
        }
    };
    let pair: Vec<String> = weights.iter().map(|w| w.target_group_arn.clone()).collect();
    let mut request = DeployRequest::new(
        short_name(&service.cluster_arn),
        service.name.clone(),
        container,
        image,
        route.listener_arn.clone(),
        [pair[0].clone(), pair[1].clone()],
    );
    request.listener_rule_arn = route.rule_arn.clone();
    if let [_, (test, _)] = pairs.as_slice() {
        request.test_traffic = Some(crate::model::TestTraffic {
            listener_arn: test.listener_arn.clone(),
            listener_rule_arn: test.rule_arn.clone(),
            bake_seconds: Some(0),
            approval: false,
        });
    }
    let mut value = serde_json::to_value(&request).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        for (k, v) in &config.redeploy_options {
            object.insert(k.clone(), v.clone());
        }
    }
    DeployRequest::parse(value.clone())
        .map_err(|e| format!("its redeploy input is invalid with {REDEPLOY_OPTIONS_VAR}: {e}"))?;
    Ok(value)
}

/// Starts the redeploy of every consumer that is not up to date, named
/// `<executionPrefix>-<attempt>` so that each attempt of the workflow redeploys anew.
///
/// # Errors
/// [`Error::Config`] without a deploy state machine; errors starting an execution.
pub async fn start_redeploys<X: Executions>(
    sfn: &X,
    config: &WorkflowConfig,
    consumers: &[Consumer],
    attempt: &str,
) -> Result<Vec<Redeploy>> {
    let state_machine = config.deploy_state_machine_arn.as_deref().ok_or_else(|| {
        Error::Config(format!(
            "{DEPLOY_STATE_MACHINE_VAR} is not set: the rotation cannot redeploy the services that use the secret"
        ))
    })?;
    let mut started = Vec::new();
    for c in consumers.iter().filter(|c| !c.up_to_date) {
        let name = name_of(&[
            &c.execution_prefix,
            &short(&hash_hex(attempt), 6),
            &clean(&c.service),
        ]);
        let arn = sfn
            .start_execution(state_machine, &name, &c.request)
            .await?
            .same_input(&name)?;
        info!(cluster = %c.cluster, service = %c.service, execution = %arn, "started a redeploy");
        started.push(Redeploy {
            cluster: c.cluster.clone(),
            service: c.service.clone(),
            execution_arn: arn,
        });
    }
    Ok(started)
}

/// How the redeploys are doing: counts, and each failure with its error and cause.
///
/// # Errors
/// Errors describing an execution.
pub async fn check_redeploys<X: Executions>(sfn: &X, redeploys: &[Redeploy]) -> Result<Value> {
    let (mut running, mut succeeded) = (0, 0);
    let mut failures = Vec::new();
    for r in redeploys {
        let e = sfn.execution(&r.execution_arn).await?;
        match e.status.as_str() {
            "RUNNING" => running += 1,
            "SUCCEEDED" => succeeded += 1,
            other => failures.push(json!({
                "cluster": r.cluster,
                "service": r.service,
                "executionArn": r.execution_arn,
                "status": other,
                "error": e.error,
                "cause": e.cause.as_deref().map(crate::operations::readable_cause),
            })),
        }
    }
    let summary = failures
        .iter()
        .map(|f| {
            format!(
                "{}/{} {} ({}: {})",
                f["cluster"].as_str().unwrap_or_default(),
                f["service"].as_str().unwrap_or_default(),
                f["status"].as_str().unwrap_or_default(),
                f["error"].as_str().unwrap_or("no error"),
                f["cause"].as_str().unwrap_or("no cause")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(json!({
        "running": running,
        "succeeded": succeeded,
        "failed": failures.len(),
        "failures": failures,
        "summary": if summary.is_empty() { "no redeploy failed".to_string() } else {
            format!("the previous tokens stay valid; failed redeploys: {summary}")
        },
    }))
}

fn short_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn short(s: &str, n: usize) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(n)
        .collect()
}

/// Keeps what an execution name allows (`A-Z a-z 0-9 - _`).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `parts` joined with `-`, at most 80 characters (Step Functions' limit).
fn name_of(parts: &[&str]) -> String {
    parts.join("-").chars().take(80).collect()
}

/// FNV-1a, 64 bits, as hex: short, stable names.
fn hash_hex(s: &str) -> String {
    let hash = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{FakeAws, FakeSfn, LISTENER, SECRET_ARN, TG_A, TG_B};

    const DEPLOY_SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy";

    /// The secret blue's task definition takes `DT_API_TOKEN` from (`<arn>:token::`).
    fn secret() -> SecretDescription {
        SecretDescription {
            arn: SECRET_ARN.into(),
            name: "dynatrace/orders".into(),
            rotation_enabled: true,
            versions: Default::default(),
        }
    }

    fn rotation() -> Rotation {
        Rotation {
            secret_arn: SECRET_ARN.into(),
            rotated_version_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            previous_version_id: Some("v1".into()),
        }
    }

    fn config() -> WorkflowConfig {
        WorkflowConfig {
            deploy_state_machine_arn: Some(DEPLOY_SM.into()),
            redeploy_options: serde_json::from_value(json!({"timing": {"pollIntervalSeconds": 1}}))
                .unwrap(),
            ..WorkflowConfig::default()
        }
    }

    #[test]
    fn a_secret_is_referred_to_by_arn_partial_arn_name_and_json_key_forms() {
        let s = secret();
        let partial = SECRET_ARN.trim_end_matches("-AbCdEf");
        for yes in [
            SECRET_ARN.to_string(),
            format!("{SECRET_ARN}:token::"),
            format!("{SECRET_ARN}:token:AWSCURRENT:"),
            partial.to_string(),
            format!("{partial}:token::"),
            "dynatrace/orders".to_string(),
        ] {
            assert!(refers_to(&yes, &s), "{yes}");
        }
        for no in [
            format!("{partial}-2-AbCdEf"),
            format!("{partial}2"),
            "dynatrace/orders-2".to_string(),
            "arn:aws:ssm:us-east-1:123456789012:parameter/dynatrace/orders".to_string(),
        ] {
            assert!(!refers_to(&no, &s), "{no}");
        }
    }

    #[tokio::test]
    async fn a_service_using_the_secret_is_found_with_a_redeploy_of_its_image_on_its_route() {
        let fake = FakeAws::blue();
        let (consumers, unreachable) =
            find_consumers(&fake, &fake, &config(), &secret(), &rotation())
                .await
                .unwrap();
        assert!(unreachable.is_empty(), "{unreachable:?}");
        assert_eq!(consumers.len(), 1);
        let c = &consumers[0];
        assert_eq!((c.cluster.as_str(), c.service.as_str()), ("demo", "orders"));
        assert!(!c.up_to_date);
        let request = DeployRequest::parse(c.request.clone()).unwrap();
        assert_eq!(
            request.image,
            crate::steps::fakes::IMAGE_V1,
            "the image it runs now"
        );
        assert_eq!(request.container, "app");
        assert_eq!(request.listener_arn, LISTENER);
        assert_eq!(
            request.listener_rule_arn, None,
            "the default action is production"
        );
        assert_eq!(request.target_group_arns, [TG_A, TG_B]);
        let test = request
            .test_traffic
            .expect("the rule forwarding to the pair moves too");
        assert_eq!(
            test.listener_rule_arn.as_deref(),
            Some(crate::steps::fakes::RULE)
        );
        assert_eq!(
            request.timing.poll_interval_seconds, 1,
            "REDEPLOY_OPTIONS apply"
        );
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_consumer_on_the_ecs_controller_cannot_be_redeployed_and_says_why() {
        let fake = FakeAws::blue();
        fake.update_service(|s| s.deployment_controller = Some("ECS".into()));
        let (consumers, unreachable) =
            find_consumers(&fake, &fake, &config(), &secret(), &rotation())
                .await
                .unwrap();
        assert!(consumers.is_empty());
        assert_eq!(unreachable.len(), 1);
        assert!(
            unreachable[0].reason.contains("ECS deployment controller"),
            "{unreachable:?}"
        );
    }

    #[tokio::test]
    async fn redeploys_start_once_per_attempt_and_skip_services_already_redeployed() {
        let fake = FakeAws::blue();
        let sfn = FakeSfn::default();
        let (mut consumers, _) = find_consumers(&fake, &fake, &config(), &secret(), &rotation())
            .await
            .unwrap();
        let first = start_redeploys(&sfn, &config(), &consumers, "attempt-1")
            .await
            .unwrap();
        let again = start_redeploys(&sfn, &config(), &consumers, "attempt-1")
            .await
            .unwrap();
        assert_eq!(first, again, "a retried action starts nothing new");
        let second = start_redeploys(&sfn, &config(), &consumers, "attempt-2")
            .await
            .unwrap();
        assert_ne!(first[0].execution_arn, second[0].execution_arn);
        assert_eq!(sfn.started().len(), 2);
        assert!(
            sfn.started()[0]
                .name
                .starts_with(&consumers[0].execution_prefix)
        );

        consumers[0].up_to_date = true;
        let none = start_redeploys(&sfn, &config(), &consumers, "attempt-3")
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn checking_redeploys_counts_them_and_names_each_failure() {
        let sfn = FakeSfn::default();
        let a = sfn
            .start_execution(DEPLOY_SM, "a", &json!({}))
            .await
            .unwrap()
            .arn()
            .to_string();
        let b = sfn
            .start_execution(DEPLOY_SM, "b", &json!({}))
            .await
            .unwrap()
            .arn()
            .to_string();
        let c = sfn
            .start_execution(DEPLOY_SM, "c", &json!({}))
            .await
            .unwrap()
            .arn()
            .to_string();
        sfn.finish(&a, "SUCCEEDED", None);
        sfn.finish(&b, "FAILED", Some("VerificationFailed"));
        let redeploy = |arn: &str, service: &str| Redeploy {
            cluster: "demo".into(),
            service: service.into(),
            execution_arn: arn.into(),
        };
        let out = check_redeploys(
            &sfn,
            &[redeploy(&a, "a"), redeploy(&b, "b"), redeploy(&c, "c")],
        )
        .await
        .unwrap();
        assert_eq!(
            (
                out["running"].clone(),
                out["succeeded"].clone(),
                out["failed"].clone()
            ),
            (json!(1), json!(1), json!(1))
        );
        let summary = out["summary"].as_str().unwrap();
        assert!(
            summary.contains("previous tokens stay valid")
                && summary.contains("demo/b FAILED (VerificationFailed"),
            "{summary}"
        );
    }

    #[test]
    fn the_configuration_names_the_variable_that_is_wrong() {
        let err =
            WorkflowConfig::from_lookup(|n| (n == REDEPLOY_OPTIONS_VAR).then(|| "[1]".into()))
                .unwrap_err();
        assert!(err.to_string().contains(REDEPLOY_OPTIONS_VAR), "{err}");
        let err =
            WorkflowConfig::from_lookup(|n| (n == REDEPLOY_POLL_SECONDS_VAR).then(|| "0".into()))
                .unwrap_err();
        assert!(err.to_string().contains(REDEPLOY_POLL_SECONDS_VAR), "{err}");
        let c =
            WorkflowConfig::from_lookup(|n| (n == CONSUMER_CLUSTERS_VAR).then(|| "a, b".into()))
                .unwrap();
        assert_eq!(c.clusters, ["a", "b"]);
    }
}
