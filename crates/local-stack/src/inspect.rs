//! Reading the live state of an environment: listener weights, target health, task sets,
//! container definitions. What the demo and the end-to-end tests assert on.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, TargetHealthStateEnum};

use crate::Clients;

/// Where traffic is weighted: the default action of a listener, or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub listener_arn: String,
    pub rule_arn: Option<String>,
}

/// One target group of a forward action and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    pub target_group_arn: String,
    pub weight: i32,
}

/// The weights of `route`'s forward action, in the order the ALB lists them.
///
/// A plain forward (one target group, no `ForwardConfig`) reads as weight 100.
///
/// # Errors
/// When the listener or rule does not exist or has no forward action.
pub async fn weights(clients: &Clients, route: &Route) -> anyhow::Result<Vec<Weight>> {
    let actions: Vec<Action> = match &route.rule_arn {
        Some(rule) => {
            let out = clients
                .elb
                .describe_rules()
                .rule_arns(rule)
                .send()
                .await
                .with_context(|| format!("describing listener rule {rule}"))?;
            out.rules
                .unwrap_or_default()
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("listener rule {rule} does not exist"))?
                .actions
                .unwrap_or_default()
        }
        None => {
            let arn = &route.listener_arn;
            let out = clients
                .elb
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .with_context(|| format!("describing listener {arn}"))?;
            out.listeners
                .unwrap_or_default()
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("listener {arn} does not exist"))?
                .default_actions
                .unwrap_or_default()
        }
    };
    forward_weights(&actions).ok_or_else(|| anyhow!("{route:?} has no forward action"))
}

/// The weights of the forward action among `actions`.
pub fn forward_weights(actions: &[Action]) -> Option<Vec<Weight>> {
    let forward = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))?;
    if let Some(groups) = forward
        .forward_config()
        .map(|f| f.target_groups())
        .filter(|g| !g.is_empty())
    {
        return Some(
            groups
                .iter()
                .map(|g| Weight {
                    target_group_arn: g.target_group_arn().unwrap_or_default().to_string(),
                    weight: g.weight().unwrap_or(1),
                })
                .collect(),
        );
    }
    forward.target_group_arn().map(|arn| {
        vec![Weight {
            target_group_arn: arn.to_string(),
            weight: 100,
        }]
    })
}

/// The weight of `target_group_arn` among `weights` (0 when it is not listed).
pub fn weight_of(weights: &[Weight], target_group_arn: &str) -> i32 {
    weights
        .iter()
        .filter(|w| w.target_group_arn == target_group_arn)
        .map(|w| w.weight)
        .sum()
}

/// How many targets of a target group are in each health state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounts {
    pub initial: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    pub draining: usize,
    /// `unused`, `unavailable` and any state this crate does not know.
    pub other: usize,
}

impl TargetCounts {
    /// Every target registered.
    pub fn total(&self) -> usize {
        self.initial + self.healthy + self.unhealthy + self.draining + self.other
    }

    /// Targets that are not draining out.
    pub fn serving(&self) -> usize {
        self.total() - self.draining
    }
}

impl fmt::Display for TargetCounts {
    /// `2 healthy`, `1 initial, 1 healthy`, `no targets`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.initial, "initial"),
            (self.healthy, "healthy"),
            (self.unhealthy, "unhealthy"),
            (self.draining, "draining"),
            (self.other, "other"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            f.write_str("no targets")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The health of every target of `target_group_arn`, counted by state.
///
/// # Errors
/// When the target group does not exist.
pub async fn target_counts(
    clients: &Clients,
    target_group_arn: &str,
) -> anyhow::Result<TargetCounts> {
    let out = clients
        .elb
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .with_context(|| format!("describing the target health of {target_group_arn}"))?;
    let mut counts = TargetCounts::default();
    for d in out.target_health_descriptions() {
        match d.target_health().and_then(|h| h.state()) {
            Some(TargetHealthStateEnum::Initial) => counts.initial += 1,
            Some(TargetHealthStateEnum::Healthy) => counts.healthy += 1,
            Some(TargetHealthStateEnum::Unhealthy) => counts.unhealthy += 1,
            Some(TargetHealthStateEnum::Draining) => counts.draining += 1,
            _ => counts.other += 1,
        }
    }
    Ok(counts)
}

/// Waits until `target_group_arn` has at least `expected` targets and every one is healthy.
///
/// # Errors
/// When that does not happen within `timeout` (the last counts are in the message), or the
/// target group cannot be read.
pub async fn wait_until_healthy(
    clients: &Clients,
    target_group_arn: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<TargetCounts> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let counts = target_counts(clients, target_group_arn).await?;
        if counts.healthy >= expected && counts.healthy == counts.total() {
            return Ok(counts);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{target_group_arn} did not get {expected} healthy targets within {timeout:?}: {counts} \
                 (is the gateway's ECS simulation running? moto alone never registers tasks)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no task set of the service is `DRAINING` (a removed task set is listed so
/// until its targets drained and its tasks stopped, as in ECS), and answers the task sets.
///
/// # Errors
/// When a task set is still draining after `timeout`, or the service cannot be read.
pub async fn task_sets_once_drained(
    clients: &Clients,
    cluster: &str,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<TaskSetView>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let sets = task_sets(clients, cluster, service).await?;
        if sets.iter().all(|t| t.status != "DRAINING") {
            return Ok(sets);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("service {service} still has a DRAINING task set after {timeout:?}: {sets:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One task set of a service, as the assertions need it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetView {
    pub id: String,
    pub arn: String,
    /// `PRIMARY`, `ACTIVE` or `DRAINING`.
    pub status: String,
    pub external_id: Option<String>,
    pub task_definition_arn: String,
    pub target_group_arns: Vec<String>,
    pub scale_percent: Option<f64>,
    pub stability_status: Option<String>,
    pub computed_desired_count: i32,
    pub running_count: i32,
}

/// Every task set of a service.
///
/// # Errors
/// When the service does not exist.
pub async fn task_sets(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Vec<TaskSetView>> {
    let out = clients
        .ecs
        .describe_task_sets()
        .cluster(cluster)
        .service(service)
        .send()
        .await
        .with_context(|| format!("describing the task sets of service {service} in {cluster}"))?;
    Ok(out
        .task_sets()
        .iter()
        .map(|t| TaskSetView {
            id: t.id().unwrap_or_default().to_string(),
            arn: t.task_set_arn().unwrap_or_default().to_string(),
            status: t.status().unwrap_or_default().to_string(),
            external_id: t.external_id().map(str::to_string),
            task_definition_arn: t.task_definition().unwrap_or_default().to_string(),
            target_group_arns: t
                .load_balancers()
                .iter()
                .filter_map(|lb| lb.target_group_arn().map(str::to_string))
                .collect(),
            scale_percent: t.scale().map(|s| s.value()),
            stability_status: t.stability_status().map(|s| s.as_str().to_string()),
            computed_desired_count: t.computed_desired_count(),
            running_count: t.running_count(),
        })
        .collect())
}

/// A registered task definition (by ARN or `family:revision`).
///
/// # Errors
/// When it does not exist.
pub async fn task_definition(
    clients: &Clients,
    task_definition: &str,
) -> anyhow::Result<TaskDefinition> {
    clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .with_context(|| format!("describing task definition {task_definition}"))?
        .task_definition
        .ok_or_else(|| anyhow!("task definition {task_definition} came back empty"))
}

/// The container `name` of `task_definition`.
///
/// # Errors
/// When the task definition does not exist or has no such container.
pub async fn container(
    clients: &Clients,
    task_definition: &str,
    name: &str,
) -> anyhow::Result<ContainerDefinition> {
    let td = self::task_definition(clients, task_definition).await?;
    td.container_definitions()
        .iter()
        .find(|c| c.name() == Some(name))
        .cloned()
        .ok_or_else(|| anyhow!("task definition {task_definition} has no container {name}"))
}

/// A registered task definition with its tags (`DescribeTaskDefinition` with
/// `include=TAGS`).
///
/// # Errors
/// When it does not exist.
pub async fn task_definition_with_tags(
    clients: &Clients,
    task_definition: &str,
) -> anyhow::Result<(TaskDefinition, Vec<aws_sdk_ecs::types::Tag>)> {
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .with_context(|| format!("describing task definition {task_definition} with its tags"))?;
    let tags = out.tags().to_vec();
    let td = out
        .task_definition
        .ok_or_else(|| anyhow!("task definition {task_definition} came back empty"))?;
    Ok((td, tags))
}

/// The ARNs of the revisions of `family` in `status` (`ACTIVE` or `INACTIVE`), oldest
/// first, every page.
///
/// # Errors
/// When ECS cannot be read.
pub async fn task_definition_arns(
    clients: &Clients,
    family: &str,
    status: aws_sdk_ecs::types::TaskDefinitionStatus,
) -> anyhow::Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(status.clone())
            .sort(aws_sdk_ecs::types::SortOrder::Asc)
            .set_next_token(token.take())
            .send()
            .await
            .with_context(|| format!("listing the {status} revisions of family {family}"))?;
        arns.extend(page.task_definition_arns().iter().cloned());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    // A family prefix also matches longer family names; keep this family's own.
    let own = format!(":task-definition/{family}:");
    arns.retain(|a| a.contains(&own));
    Ok(arns)
}

/// A listener as ELBv2 describes it.
///
/// # Errors
/// When it does not exist.
pub async fn listener(
    clients: &Clients,
    listener_arn: &str,
) -> anyhow::Result<aws_sdk_elasticloadbalancingv2::types::Listener> {
    clients
        .elb
        .describe_listeners()
        .listener_arns(listener_arn)
        .send()
        .await
        .with_context(|| format!("describing listener {listener_arn}"))?
        .listeners
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("listener {listener_arn} does not exist"))
}

/// A listener rule as ELBv2 describes it.
///
/// # Errors
/// When it does not exist.
pub async fn rule(
    clients: &Clients,
    rule_arn: &str,
) -> anyhow::Result<aws_sdk_elasticloadbalancingv2::types::Rule> {
    clients
        .elb
        .describe_rules()
        .rule_arns(rule_arn)
        .send()
        .await
        .with_context(|| format!("describing listener rule {rule_arn}"))?
        .rules
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("listener rule {rule_arn} does not exist"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{ForwardActionConfig, TargetGroupTuple};

    #[test]
    fn counts_read_like_a_sentence() {
        assert_eq!(TargetCounts::default().to_string(), "no targets");
        let c = TargetCounts {
            initial: 1,
            healthy: 2,
            draining: 2,
            ..Default::default()
        };
        assert_eq!(c.to_string(), "1 initial, 2 healthy, 2 draining");
        assert_eq!(c.total(), 5);
        assert_eq!(c.serving(), 3);
    }

    #[test]
    fn a_weighted_forward_reads_as_its_weights_and_a_plain_forward_as_100() {
        let weighted = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("a")
                            .weight(30)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("b")
                            .weight(70)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let w = forward_weights(&[weighted]).unwrap();
        assert_eq!(weight_of(&w, "a"), 30);
        assert_eq!(weight_of(&w, "b"), 70);
        assert_eq!(weight_of(&w, "c"), 0);

        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("a")
            .build();
        assert_eq!(weight_of(&forward_weights(&[plain]).unwrap(), "a"), 100);

        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .build();
        assert!(forward_weights(&[fixed]).is_none());
    }
}
