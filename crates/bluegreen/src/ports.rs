//! Narrow traits, in the workflow's own words, over the AWS services the steps use.
//!
//! Steps are generic over these traits; `crate::aws` implements them with the AWS SDKs, and the
//! unit tests with in-memory fakes. Values are the project's own small structs; where a field
//! must survive a round trip untouched (task definitions, network configuration) the SDK's
//! plain value types are carried as they are.

use std::future::Future;

use aws_sdk_ecs::types as ecs;

use crate::error::Result;

/// Where traffic is weighted: a listener's default action, or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRoute {
    pub listener_arn: String,
    pub rule_arn: Option<String>,
}

impl std::fmt::Display for TrafficRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule_arn {
            Some(rule) => write!(f, "rule {rule}"),
            None => write!(f, "the default action of listener {}", self.listener_arn),
        }
    }
}

/// One target group of a weighted forward and its weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroup {
    pub target_group_arn: String,
    pub weight: i32,
}

/// A service as the deploy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    pub arn: String,
    pub name: String,
    pub cluster_arn: String,
    /// `ACTIVE`, `DRAINING`, `INACTIVE`.
    pub status: String,
    pub desired_count: i32,
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL`; only `EXTERNAL` can be deployed.
    pub deployment_controller: Option<String>,
    pub task_sets: Vec<TaskSetState>,
}

impl ServiceState {
    /// The task set ECS serves as primary.
    pub fn primary(&self) -> Option<&TaskSetState> {
        self.task_sets.iter().find(|t| t.status == "PRIMARY")
    }

    /// The task set a deployment execution created (its `externalId`).
    pub fn by_external_id(&self, external_id: &str) -> Option<&TaskSetState> {
        self.task_sets
            .iter()
            .find(|t| t.external_id.as_deref() == Some(external_id))
    }
}

/// One task set of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetState {
    /// `ecs-svc/…`
    pub id: String,
    pub arn: String,
    /// `PRIMARY`, `ACTIVE` or `DRAINING`.
    pub status: String,
    pub external_id: Option<String>,
    pub task_definition_arn: String,
    pub load_balancers: Vec<ecs::LoadBalancer>,
    pub launch: LaunchSpec,
    pub scale_percent: f64,
    pub computed_desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    /// `STEADY_STATE` or `STABILIZING`.
    pub stability_status: Option<String>,
    /// Seconds since the epoch, with fractions; orders racing task sets.
    pub created_at: Option<f64>,
}

impl TaskSetState {
    /// Whether the task set was deleted and its tasks are stopping: ECS lists a deleted task
    /// set as `DRAINING` until they stopped. It takes no part in any deployment any more.
    pub fn is_draining(&self) -> bool {
        self.status == "DRAINING"
    }

    /// The target group this task set's tasks register in.
    pub fn target_group_arn(&self) -> Option<&str> {
        self.load_balancers
            .first()
            .and_then(|lb| lb.target_group_arn())
    }
}

/// How a task set's tasks are placed and networked; copied from blue to green unchanged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchSpec {
    pub launch_type: Option<ecs::LaunchType>,
    pub capacity_provider_strategy: Vec<ecs::CapacityProviderStrategyItem>,
    pub platform_version: Option<String>,
    pub network_configuration: Option<ecs::NetworkConfiguration>,
    pub service_registries: Vec<ecs::ServiceRegistry>,
}

/// A task definition with its tags, as described and as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionDoc {
    pub definition: ecs::TaskDefinition,
    pub tags: Vec<ecs::Tag>,
}

/// What a new task set is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTaskSet {
    pub cluster: String,
    pub service: String,
    pub task_definition_arn: String,
    /// Ties the task set to the deploy execution, so a re-run finds it.
    pub external_id: String,
    pub load_balancers: Vec<ecs::LoadBalancer>,
    pub launch: LaunchSpec,
    pub scale_percent: f64,
    /// Idempotency token for `CreateTaskSet` (at most 36 characters).
    pub client_token: String,
}

/// A stopped task of a task set.
#[derive(Debug, Clone, PartialEq)]
pub struct StoppedTask {
    pub task_arn: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// Container name and exit code, where the container exited.
    pub exit_codes: Vec<(String, Option<i32>)>,
}

/// Health of one target of a target group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    pub id: String,
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Amazon ECS, as far as the deploy needs it.
pub trait Ecs {
    /// The service and all its task sets.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when the cluster or service does not exist.
    fn service(&self, cluster: &str, service: &str) -> impl Future<Output = Result<ServiceState>>;

    /// A task definition (by ARN, or family for its latest ACTIVE revision) with its tags.
    fn task_definition(
        &self,
        task_definition: &str,
    ) -> impl Future<Output = Result<TaskDefinitionDoc>>;

    /// Registers a new revision carrying every field of `doc` the API accepts, and returns it
    /// as ECS describes it afterwards.
    fn register_task_definition(
        &self,
        doc: &TaskDefinitionDoc,
    ) -> impl Future<Output = Result<TaskDefinitionDoc>>;

    /// Deregisters a revision; an already inactive one is not an error.
    fn deregister_task_definition(&self, arn: &str) -> impl Future<Output = Result<()>>;

    /// Creates a task set.
    fn create_task_set(&self, spec: &NewTaskSet) -> impl Future<Output = Result<TaskSetState>>;

    /// Makes a task set (by ARN) the service's primary one.
    fn set_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> impl Future<Output = Result<()>>;

    /// Deletes a task set (by ARN); one that is already gone is not an error.
    fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> impl Future<Output = Result<()>>;

    /// Stopped tasks started by a task set (its id is the tasks' `startedBy`).
    fn stopped_tasks(
        &self,
        cluster: &str,
        task_set_id: &str,
    ) -> impl Future<Output = Result<Vec<StoppedTask>>>;
}

/// Elastic Load Balancing v2, as far as the deploy needs it.
pub trait LoadBalancer {
    /// The target groups and weights of the route's forward action.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when the listener or rule does not exist;
    /// [`crate::Error::PreconditionFailed`] when it has no forward action.
    fn forward_weights(
        &self,
        route: &TrafficRoute,
    ) -> impl Future<Output = Result<Vec<WeightedTargetGroup>>>;

    /// Sets the forward weights of the route, keeping every other action, rule, condition and
    /// forward setting (stickiness) as it is.
    fn set_forward_weights(
        &self,
        route: &TrafficRoute,
        weights: &[WeightedTargetGroup],
    ) -> impl Future<Output = Result<()>>;

    /// Health of every registered target.
    fn target_health(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Vec<TargetHealth>>>;

    /// The target group's `deregistration_delay.timeout_seconds`.
    fn deregistration_delay(&self, target_group_arn: &str) -> impl Future<Output = Result<u32>>;

    /// Every route (a listener's default action, or a rule) of the load balancers of the
    /// target group whose forward action sends to it, with the forward's weights.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when the target group does not exist; AWS errors.
    fn routes_to(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Vec<(TrafficRoute, Vec<WeightedTargetGroup>)>>>;
}

/// Which ECS services exist, to find those that use a secret.
pub trait ServiceDirectory {
    /// Every cluster's ARN.
    ///
    /// # Errors
    /// AWS errors.
    fn clusters(&self) -> impl Future<Output = Result<Vec<String>>>;

    /// Every service ARN of `cluster`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when the cluster does not exist; AWS errors.
    fn services(&self, cluster: &str) -> impl Future<Output = Result<Vec<String>>>;
}

/// A container registry that can resolve a tag to its digest.
pub trait ImageRegistry {
    /// The digest (`sha256:…`) of `repository:tag` in registry `registry_id`, or `None`
    /// when the tag does not exist.
    fn digest_of(
        &self,
        registry_id: &str,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<String>>>;
}

/// One CloudWatch alarm and its state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// CloudWatch's reason for the state.
    pub reason: String,
}

/// CloudWatch alarms, as far as verification needs them.
pub trait Alarms {
    /// The metric and composite alarms named in `names`, and those whose name starts with
    /// `prefix`; an alarm that does not exist is not listed.
    ///
    /// # Errors
    /// AWS errors of the read.
    fn alarms(
        &self,
        names: &[String],
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<AlarmState>>>;
}

/// What an operator asked of a running deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Roll back now.
    Abort,
    /// Skip the remaining steps (or the rest of blue's retention) and promote green.
    Promote,
}

impl Command {
    /// The command's name, as operators type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Abort => "abort",
            Command::Promote => "promote",
        }
    }
}

/// A command left on a service for a deployment, and who left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftCommand {
    /// What was asked.
    pub command: Command,
    /// Who asked, as they named themselves (`--by`, the webhook's `by`); none when the command
    /// was left without a name.
    pub by: Option<String>,
}

impl LeftCommand {
    /// Who asked, or `an operator`.
    pub fn who(&self) -> &str {
        self.by.as_deref().unwrap_or("an operator")
    }
}

/// Operator commands left on a service for the deployment that holds it. The deployment
/// reads them at every poll of green.
pub trait OperatorCommands {
    /// The command left on service `service_arn` for execution `execution_name`; a command
    /// for another execution is none.
    ///
    /// # Errors
    /// AWS errors of the read.
    fn command(
        &self,
        service_arn: &str,
        execution_name: &str,
    ) -> impl Future<Output = Result<Option<LeftCommand>>>;

    /// Leaves `command` for `execution_name` on the service, from `by`, replacing any earlier
    /// one.
    ///
    /// # Errors
    /// AWS errors of the write.
    fn send_command(
        &self,
        service_arn: &str,
        execution_name: &str,
        command: Command,
        by: &str,
    ) -> impl Future<Output = Result<()>>;

    /// Removes the command left for `execution_name`, if any; one for another execution
    /// stays.
    ///
    /// # Errors
    /// AWS errors of the read or the write.
    fn clear_command(
        &self,
        service_arn: &str,
        execution_name: &str,
    ) -> impl Future<Output = Result<()>>;
}
