//! In-memory fakes of the ports for the step unit tests.
//!
//! [`FakeAws`] implements [`Ecs`], [`LoadBalancer`] and [`ImageRegistry`] over one
//! `Mutex`-guarded state. It enforces the AWS rules a step could trip over (an `EXTERNAL`
//! controller for task sets, no deleting the primary task set, no task set from an inactive
//! revision, `CreateTaskSet` idempotent per client token) and nothing more.
//!
//! - **Set up**: [`FakeAws::blue`] is a live blue deployment (see its doc) and
//!   [`FakeAws::deployment`] the matching [`Deployment`] of execution [`EXECUTION`];
//!   [`FakeAws::add_green`] creates green as `CreateGreen` would (coming up, no targets yet).
//!   Adjust with `set_steady`, `update_task_set`, `set_targets` (+ [`target`]),
//!   `add_stopped_task`, `set_weights`, `set_deregistration_delay`, `add_image`,
//!   `register_revision`. Set-up helpers are not logged.
//! - **Break**: `fail_next("CreateTaskSet", err)` makes the next call of that operation fail
//!   with `err`; `lose_next_weight_write()` makes the next `set_forward_weights` succeed
//!   without taking effect (a listener read-back that disagrees).
//! - **Inspect**: `calls()` logs every port call by its AWS operation name (a failed one with
//!   ` (failed)` appended); `mutations()` keeps the successful calls of [`MUTATING`], so
//!   "nothing was changed" is `assert!(fake.mutations().is_empty())`. `service_now`,
//!   `task_set`, `task_definition_status`, `route` and `snapshot` (comparable whole state,
//!   for "a re-run leaves the same state") read the state back.
//!
//! Operation names: `DescribeServices`, `DescribeTaskDefinition`, `RegisterTaskDefinition`,
//! `DeregisterTaskDefinition`, `CreateTaskSet`, `UpdateServicePrimaryTaskSet`,
//! `DeleteTaskSet`, `ListTasks` (stopped tasks), `DescribeListeners` / `DescribeRules` (read
//! a default action / a rule), `ModifyListener` / `ModifyRule`, `DescribeTargetHealth`,
//! `DescribeTargetGroupAttributes`, `DescribeImages`.
//!
//! Deleted task sets stay listed as `DRAINING` (as in ECS) until `finish_draining()`.
//!
//! [`FakeAws`] also implements [`Alarms`] (`set_alarm`, operation `DescribeAlarms`) and
//! [`OperatorCommands`] (`ListTagsForResource`, `TagResource`, `UntagResource` on the
//! service); [`FakeDynatrace`] implements [`Dynatrace`] with metric values per release.

#![allow(clippy::unwrap_used)]
// Shared by the test modules of several steps; not every one uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use aws_sdk_ecs::types as ecs;

use crate::dynatrace::{
    CreatedToken, DeploymentEvent, Dynatrace, EventReceipt, MetricData, MetricQuery, MetricSeries,
    NewToken, SecretToken, TokenMetadata,
};
use crate::error::{Error, Result};
use crate::model::{DeployRequest, Deployment};
use crate::ports::{
    AlarmState, Alarms, Command, Ecs, ImageRegistry, LaunchSpec, LeftCommand, LoadBalancer,
    NewTaskSet, OperatorCommands, ServiceState, StoppedTask, TargetHealth, TaskDefinitionDoc,
    TaskSetState, TrafficRoute, WeightedTargetGroup,
};

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const CLUSTER: &str = "demo";
pub(crate) const SERVICE: &str = "orders";
pub(crate) const CONTAINER: &str = "app";
pub(crate) const SIDECAR: &str = "oneagent";
pub(crate) const FAMILY: &str = "orders";
pub(crate) const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2";
pub(crate) const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
pub(crate) const TG_A: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/73e2d6bc24d8a067";
pub(crate) const TG_B: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-b/6d0ecf831eec9f09";
/// Deregistration delays of the two groups differ so a test can tell which one a step read.
pub(crate) const TG_A_DELAY: u32 = 30;
pub(crate) const TG_B_DELAY: u32 = 45;
pub(crate) const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
pub(crate) const REPOSITORY: &str = "orders";
pub(crate) const DIGEST_V1: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const DIGEST_V2: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// The image blue runs, pinned by digest.
pub(crate) const IMAGE_V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// The image a deployment asks for, by tag (ECR resolves `v2` to [`DIGEST_V2`]).
pub(crate) const IMAGE_V2_TAG: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:v2";
pub(crate) const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynatrace/orders-AbCdEf";
pub(crate) const EXECUTION_ROLE: &str = "arn:aws:iam::123456789012:role/orders-execution";
pub(crate) const TASK_ROLE: &str = "arn:aws:iam::123456789012:role/orders-task";
/// Blue's task definition revision.
pub(crate) const BLUE_TASK_DEFINITION: &str =
    "arn:aws:ecs:us-east-1:123456789012:task-definition/orders:1";
/// The execution [`FakeAws::deployment`] belongs to (green's `externalId`).
pub(crate) const EXECUTION: &str = "orders-2222222222222222";
/// The execution that created blue.
pub(crate) const BLUE_EXECUTION: &str = "orders-1111111111111111";

/// The operations that change something.
pub(crate) const MUTATING: &[&str] = &[
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "CreateTaskSet",
    "UpdateServicePrimaryTaskSet",
    "DeleteTaskSet",
    "ModifyListener",
    "ModifyRule",
    "TagResource",
    "UntagResource",
];

/// One action of a listener's default actions or of a rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FakeAction {
    /// The weighted forward the deploy moves; `stickiness_seconds` must survive every write.
    Forward {
        weights: Vec<WeightedTargetGroup>,
        stickiness_seconds: Option<u32>,
    },
    /// Any other action (`authenticate-oidc`, `fixed-response`…), by description.
    Other(String),
}

/// A listener's default action list or one rule, with its conditions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FakeRoute {
    pub route: TrafficRoute,
    pub conditions: Vec<String>,
    pub actions: Vec<FakeAction>,
}

impl FakeRoute {
    /// The forward weights of this route.
    pub fn weights(&self) -> Vec<WeightedTargetGroup> {
        self.actions
            .iter()
            .find_map(|a| match a {
                FakeAction::Forward { weights, .. } => Some(weights.clone()),
                FakeAction::Other(_) => None,
            })
            .unwrap_or_default()
    }
}

/// Everything a test may compare before and after a re-run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub services: Vec<ServiceState>,
    /// `(arn, status)` of every revision.
    pub task_definitions: Vec<(String, String)>,
    pub routes: Vec<FakeRoute>,
}

#[derive(Debug, Default)]
struct State {
    services: Vec<ServiceState>,
    /// Family → revisions, revision `n` at index `n - 1`.
    task_definitions: BTreeMap<String, Vec<TaskDefinitionDoc>>,
    /// Task set id → its stopped tasks.
    stopped: HashMap<String, Vec<StoppedTask>>,
    routes: Vec<FakeRoute>,
    target_health: HashMap<String, Vec<TargetHealth>>,
    deregistration_delays: HashMap<String, u32>,
    /// `registry_id/repository:tag` → digest.
    images: HashMap<String, String>,
    /// `CreateTaskSet` client token → task set id.
    client_tokens: HashMap<String, String>,
    calls: Vec<String>,
    failures: HashMap<String, VecDeque<Error>>,
    lost_weight_writes: u32,
    next_task_set: u32,
    clock: f64,
    alarms: Vec<AlarmState>,
    /// Service ARN → (execution, command) left on it.
    commands: HashMap<String, (String, LeftCommand)>,
}

/// An in-memory AWS account: ECS services, task definitions, listeners, target groups, ECR.
#[derive(Debug, Default)]
pub(crate) struct FakeAws {
    state: Mutex<State>,
}

/// A target of a target group in `state` (`healthy`, `initial`, `unhealthy`, `draining`…).
pub(crate) fn target(id: &str, state: &str, reason: Option<&str>) -> TargetHealth {
    TargetHealth {
        id: id.to_string(),
        port: Some(8080),
        state: state.to_string(),
        reason: reason.map(str::to_string),
    }
}

/// The route of a listener's default action.
pub(crate) fn default_route() -> TrafficRoute {
    TrafficRoute {
        listener_arn: LISTENER.to_string(),
        rule_arn: None,
    }
}

/// The route of [`RULE`].
pub(crate) fn rule_route() -> TrafficRoute {
    TrafficRoute {
        listener_arn: LISTENER.to_string(),
        rule_arn: Some(RULE.to_string()),
    }
}

/// `[(TG_A, a), (TG_B, b)]` as weights.
pub(crate) fn weights(a: i32, b: i32) -> Vec<WeightedTargetGroup> {
    vec![
        WeightedTargetGroup {
            target_group_arn: TG_A.to_string(),
            weight: a,
        },
        WeightedTargetGroup {
            target_group_arn: TG_B.to_string(),
            weight: b,
        },
    ]
}

fn cluster_arn(cluster: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}")
}

fn task_definition_arn(family: &str, revision: i32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

fn load_balancer(tg: &str) -> ecs::LoadBalancer {
    ecs::LoadBalancer::builder()
        .target_group_arn(tg)
        .container_name(CONTAINER)
        .container_port(8080)
        .build()
}

fn launch() -> LaunchSpec {
    LaunchSpec {
        launch_type: Some(ecs::LaunchType::Fargate),
        capacity_provider_strategy: Vec::new(),
        platform_version: Some("LATEST".into()),
        network_configuration: Some(
            ecs::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    ecs::AwsVpcConfiguration::builder()
                        .subnets("subnet-0a1b2c3d")
                        .subnets("subnet-4e5f6a7b")
                        .security_groups("sg-0123456789abcdef0")
                        .assign_public_ip(ecs::AssignPublicIp::Disabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        ),
        service_registries: Vec::new(),
    }
}

/// Blue's task definition as a user registered it: two containers, the app's Dynatrace token
/// from Secrets Manager, both roles, Fargate sizing, tags.
fn blue_task_definition() -> TaskDefinitionDoc {
    let app = ecs::ContainerDefinition::builder()
        .name(CONTAINER)
        .image(IMAGE_V1)
        .essential(true)
        .port_mappings(ecs::PortMapping::builder().container_port(8080).build())
        .environment(
            ecs::KeyValuePair::builder()
                .name("DT_TENANT")
                .value("abc12345")
                .build(),
        )
        .secrets(
            ecs::Secret::builder()
                .name("DT_API_TOKEN")
                .value_from(format!("{SECRET_ARN}:token::"))
                .build()
                .unwrap(),
        )
        .build();
    let sidecar = ecs::ContainerDefinition::builder()
        .name(SIDECAR)
        .image("public.ecr.aws/dynatrace/oneagent:1.301")
        .essential(false)
        .build();
    let definition = ecs::TaskDefinition::builder()
        .family(FAMILY)
        .container_definitions(app)
        .container_definitions(sidecar)
        .execution_role_arn(EXECUTION_ROLE)
        .task_role_arn(TASK_ROLE)
        .network_mode(ecs::NetworkMode::Awsvpc)
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .build();
    TaskDefinitionDoc {
        definition,
        tags: vec![ecs::Tag::builder().key("team").value("payments").build()],
    }
}

fn not_found(operation: &'static str, resource: &str, code: &str, message: &str) -> Error {
    Error::Aws {
        operation,
        resource: resource.to_string(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

impl State {
    /// Logs a call and returns the injected failure, if any.
    fn enter(&mut self, op: &str) -> Result<()> {
        if let Some(err) = self.failures.get_mut(op).and_then(VecDeque::pop_front) {
            self.calls.push(format!("{op} (failed)"));
            return Err(err);
        }
        self.calls.push(op.to_string());
        Ok(())
    }

    fn service_mut(&mut self, cluster: &str, service: &str) -> Result<&mut ServiceState> {
        self.services
            .iter_mut()
            .find(|s| {
                (s.name == service || s.arn == service)
                    && (cluster_arn(cluster) == s.cluster_arn || cluster == s.cluster_arn)
            })
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "service {service} does not exist in cluster {cluster}"
                ))
            })
    }

    fn task_set_mut(&mut self, id: &str) -> Option<&mut TaskSetState> {
        self.services
            .iter_mut()
            .flat_map(|s| s.task_sets.iter_mut())
            .find(|t| t.id == id || t.arn == id)
    }

    /// A revision by ARN, `family:revision`, or family (latest ACTIVE).
    fn revision(&self, reference: &str) -> Option<&TaskDefinitionDoc> {
        let short = reference
            .rsplit_once("task-definition/")
            .map_or(reference, |(_, s)| s);
        match short.split_once(':') {
            Some((family, rev)) => {
                let rev: usize = rev.parse().ok()?;
                self.task_definitions.get(family)?.get(rev.checked_sub(1)?)
            }
            None => self
                .task_definitions
                .get(short)?
                .iter()
                .rev()
                .find(|d| d.definition.status == Some(ecs::TaskDefinitionStatus::Active)),
        }
    }

    fn register(&mut self, doc: &TaskDefinitionDoc) -> TaskDefinitionDoc {
        let family = doc.definition.family.clone().unwrap_or_default();
        let revisions = self.task_definitions.entry(family.clone()).or_default();
        let revision = i32::try_from(revisions.len()).unwrap() + 1;
        let mut registered = doc.clone();
        registered.definition.task_definition_arn = Some(task_definition_arn(&family, revision));
        registered.definition.revision = revision;
        registered.definition.status = Some(ecs::TaskDefinitionStatus::Active);
        revisions.push(registered.clone());
        registered
    }

    fn create_task_set(&mut self, spec: &NewTaskSet) -> Result<TaskSetState> {
        if let Some(id) = self.client_tokens.get(&spec.client_token).cloned()
            && let Some(existing) = self.task_set_mut(&id)
        {
            return Ok(existing.clone());
        }
        let resource = format!("{}/{}", spec.cluster, spec.service);
        match self.revision(&spec.task_definition_arn) {
            Some(d) if d.definition.status == Some(ecs::TaskDefinitionStatus::Active) => {}
            _ => {
                return Err(not_found(
                    "CreateTaskSet",
                    &resource,
                    "ClientException",
                    &format!(
                        "task definition {} is not an ACTIVE revision",
                        spec.task_definition_arn
                    ),
                ));
            }
        }
        self.next_task_set += 1;
        self.clock += 60.0;
        let id = format!("ecs-svc/{}", self.next_task_set);
        let created_at = self.clock;
        let service = self.service_mut(&spec.cluster, &spec.service)?;
        if service.deployment_controller.as_deref() != Some("EXTERNAL") {
            return Err(not_found(
                "CreateTaskSet",
                &resource,
                "InvalidParameterException",
                "task sets are only supported for services with the EXTERNAL deployment controller",
            ));
        }
        // ECS rounds the scale up to whole tasks.
        let computed =
            (f64::from(service.desired_count) * spec.scale_percent / 100.0).ceil() as i32;
        let task_set = TaskSetState {
            arn: format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task-set/{}/{}/{id}",
                spec.cluster, spec.service
            ),
            id: id.clone(),
            status: "ACTIVE".into(),
            external_id: Some(spec.external_id.clone()),
            task_definition_arn: spec.task_definition_arn.clone(),
            load_balancers: spec.load_balancers.clone(),
            launch: spec.launch.clone(),
            scale_percent: spec.scale_percent,
            computed_desired_count: computed,
            running_count: 0,
            pending_count: computed,
            stability_status: Some("STABILIZING".into()),
            created_at: Some(created_at),
        };
        service.task_sets.push(task_set.clone());
        self.client_tokens.insert(spec.client_token.clone(), id);
        Ok(task_set)
    }

    fn route_mut(&mut self, route: &TrafficRoute) -> Result<&mut FakeRoute> {
        self.routes
            .iter_mut()
            .find(|r| &r.route == route)
            .ok_or_else(|| Error::InvalidInput(format!("{route} does not exist")))
    }
}

impl FakeAws {
    /// An empty account.
    pub fn new() -> Self {
        Self::default()
    }

    /// A live blue deployment, nothing of green yet:
    /// - cluster [`CLUSTER`], service [`SERVICE`] (`EXTERNAL`, desired count 2);
    /// - task definition `orders:1` ([`BLUE_TASK_DEFINITION`]): container [`CONTAINER`]
    ///   running [`IMAGE_V1`] with a `secrets` block, a [`SIDECAR`], roles, tags;
    /// - primary task set `ecs-svc/1` (externalId [`BLUE_EXECUTION`]) on [`TG_A`] at 100 %,
    ///   2 of 2 running, steady, with two healthy targets; [`TG_B`] empty;
    /// - listener [`LISTENER`]: default action forward `TG_A` 100 / `TG_B` 0; rule [`RULE`]:
    ///   condition `path-pattern=/orders/*`, actions `authenticate-oidc` then forward 100 / 0
    ///   with stickiness 300 s;
    /// - deregistration delays [`TG_A_DELAY`] and [`TG_B_DELAY`];
    /// - ECR `orders:v1` → [`DIGEST_V1`], `orders:v2` → [`DIGEST_V2`].
    pub fn blue() -> Self {
        let fake = Self::new();
        {
            let mut s = fake.lock();
            s.clock = 1_700_000_000.0;
            s.services.push(ServiceState {
                arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/{SERVICE}"),
                name: SERVICE.into(),
                cluster_arn: cluster_arn(CLUSTER),
                status: "ACTIVE".into(),
                desired_count: 2,
                deployment_controller: Some("EXTERNAL".into()),
                task_sets: Vec::new(),
            });
            let td = s.register(&blue_task_definition());
            let blue = s
                .create_task_set(&NewTaskSet {
                    cluster: CLUSTER.into(),
                    service: SERVICE.into(),
                    task_definition_arn: td.definition.task_definition_arn.clone().unwrap(),
                    external_id: BLUE_EXECUTION.into(),
                    load_balancers: vec![load_balancer(TG_A)],
                    launch: launch(),
                    scale_percent: 100.0,
                    client_token: BLUE_EXECUTION.into(),
                })
                .unwrap();
            let ts = s.task_set_mut(&blue.id).unwrap();
            ts.status = "PRIMARY".into();
            steady(ts);
            s.target_health.insert(
                TG_A.into(),
                vec![
                    target("10.0.1.10", "healthy", None),
                    target("10.0.2.20", "healthy", None),
                ],
            );
            s.target_health.insert(TG_B.into(), Vec::new());
            s.deregistration_delays.insert(TG_A.into(), TG_A_DELAY);
            s.deregistration_delays.insert(TG_B.into(), TG_B_DELAY);
            s.routes.push(FakeRoute {
                route: default_route(),
                conditions: Vec::new(),
                actions: vec![FakeAction::Forward {
                    weights: weights(100, 0),
                    stickiness_seconds: None,
                }],
            });
            s.routes.push(FakeRoute {
                route: rule_route(),
                conditions: vec!["path-pattern=/orders/*".into()],
                actions: vec![
                    FakeAction::Other("authenticate-oidc".into()),
                    FakeAction::Forward {
                        weights: weights(100, 0),
                        stickiness_seconds: Some(300),
                    },
                ],
            });
            s.images
                .insert(format!("{ACCOUNT}/{REPOSITORY}:v1"), DIGEST_V1.into());
            s.images
                .insert(format!("{ACCOUNT}/{REPOSITORY}:v2"), DIGEST_V2.into());
        }
        fake
    }

    /// The deployment of execution [`EXECUTION`] on [`FakeAws::blue`]: image [`IMAGE_V2_TAG`],
    /// the listener's default action, `[TG_A, TG_B]`, default timing, all at once.
    pub fn deployment(&self) -> Deployment {
        Self::request().into_deployment(EXECUTION, None).unwrap()
    }

    /// The request [`FakeAws::deployment`] is made of, to change before normalizing it.
    pub fn request() -> DeployRequest {
        DeployRequest::new(
            CLUSTER,
            SERVICE,
            CONTAINER,
            IMAGE_V2_TAG,
            LISTENER,
            [TG_A.into(), TG_B.into()],
        )
    }

    /// Sets (or adds) a CloudWatch alarm and its state.
    pub fn set_alarm(&self, name: &str, state: &str) {
        let mut s = self.lock();
        s.alarms.retain(|a| a.name != name);
        s.alarms.push(AlarmState {
            name: name.into(),
            state: state.into(),
            reason: format!("Threshold Crossed: {name} is {state}"),
        });
    }

    /// The command an operator left on the service, if any: (execution, command).
    pub fn command_left(&self) -> Option<(String, LeftCommand)> {
        let s = self.lock();
        s.commands.values().next().cloned()
    }

    /// Creates green for `execution` as `CreateGreen` would: revision `orders:N+1` of blue's
    /// latest with the app image pinned to [`DIGEST_V2`], a task set on [`TG_B`] at 100 %,
    /// still coming up (0 running, all pending, `STABILIZING`), no targets registered.
    pub fn add_green(&self, execution: &str) -> TaskSetState {
        let mut s = self.lock();
        let mut doc = s.revision(FAMILY).unwrap().clone();
        for c in doc.definition.container_definitions.iter_mut().flatten() {
            if c.name.as_deref() == Some(CONTAINER) {
                c.image = Some(format!("{REGISTRY}/{REPOSITORY}@{DIGEST_V2}"));
            }
        }
        let td = s.register(&doc);
        s.create_task_set(&NewTaskSet {
            cluster: CLUSTER.into(),
            service: SERVICE.into(),
            task_definition_arn: td.definition.task_definition_arn.unwrap(),
            external_id: execution.into(),
            load_balancers: vec![load_balancer(TG_B)],
            launch: launch(),
            scale_percent: 100.0,
            client_token: execution.chars().take(36).collect(),
        })
        .unwrap()
    }

    /// Registers `doc` as the next revision of its family, unlogged.
    pub fn register_revision(&self, doc: &TaskDefinitionDoc) -> TaskDefinitionDoc {
        self.lock().register(doc)
    }

    /// Makes a task set steady: all its tasks running, none pending, `STEADY_STATE`.
    pub fn set_steady(&self, task_set_id: &str) {
        steady(self.lock().task_set_mut(task_set_id).unwrap());
    }

    /// Changes a task set in place.
    pub fn update_task_set(&self, task_set_id: &str, change: impl FnOnce(&mut TaskSetState)) {
        change(self.lock().task_set_mut(task_set_id).unwrap());
    }

    /// Changes the service in place (desired count, controller, task sets…).
    /// Whether the task set was removed: `DRAINING`, or no longer listed.
    pub fn removed(&self, id: &str) -> bool {
        self.task_set(id).is_none_or(|t| t.is_draining())
    }

    /// The `DRAINING` task sets' tasks stopped: ECS stops listing them.
    pub fn finish_draining(&self) {
        self.update_service(|s| s.task_sets.retain(|t| !t.is_draining()));
    }

    pub fn update_service(&self, change: impl FnOnce(&mut ServiceState)) {
        change(self.lock().service_mut(CLUSTER, SERVICE).unwrap());
    }

    /// Replaces the registered targets of a target group.
    pub fn set_targets(&self, target_group_arn: &str, targets: Vec<TargetHealth>) {
        self.lock()
            .target_health
            .insert(target_group_arn.into(), targets);
    }

    /// Adds a stopped task to a task set.
    pub fn add_stopped_task(&self, task_set_id: &str, task: StoppedTask) {
        self.lock()
            .stopped
            .entry(task_set_id.into())
            .or_default()
            .push(task);
    }

    /// Sets a route's forward weights, unlogged.
    pub fn set_weights(&self, route: &TrafficRoute, weights: Vec<WeightedTargetGroup>) {
        set_forward(self.lock().route_mut(route).unwrap(), weights);
    }

    /// Sets a target group's deregistration delay.
    pub fn set_deregistration_delay(&self, target_group_arn: &str, seconds: u32) {
        self.lock()
            .deregistration_delays
            .insert(target_group_arn.into(), seconds);
    }

    /// Adds an ECR image tag.
    pub fn add_image(&self, registry_id: &str, repository: &str, tag: &str, digest: &str) {
        self.lock()
            .images
            .insert(format!("{registry_id}/{repository}:{tag}"), digest.into());
    }

    /// The next call of `operation` fails with `err` (several calls queue up).
    pub fn fail_next(&self, operation: &str, err: Error) {
        self.lock()
            .failures
            .entry(operation.into())
            .or_default()
            .push_back(err);
    }

    /// The next `set_forward_weights` succeeds without changing the listener.
    pub fn lose_next_weight_write(&self) {
        self.lock().lost_weight_writes += 1;
    }

    /// Every port call so far, by operation name.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The successful calls that change something.
    pub fn mutations(&self) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|c| MUTATING.contains(&c.as_str()))
            .cloned()
            .collect()
    }

    /// Forgets the call log (e.g. between the first run of a step and its re-run).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The service [`SERVICE`] as it is now.
    pub fn service_now(&self) -> ServiceState {
        self.lock().service_mut(CLUSTER, SERVICE).unwrap().clone()
    }

    /// A task set by id or ARN, if it exists.
    pub fn task_set(&self, id: &str) -> Option<TaskSetState> {
        self.lock().task_set_mut(id).map(|t| t.clone())
    }

    /// `ACTIVE` or `INACTIVE`, or `None` when no such revision was registered.
    pub fn task_definition_status(&self, reference: &str) -> Option<String> {
        let s = self.lock();
        let doc = s.revision(reference)?;
        doc.definition
            .status
            .as_ref()
            .map(|st| st.as_str().to_string())
    }

    /// A route (default action or rule) with its conditions and actions.
    pub fn route(&self, route: &TrafficRoute) -> FakeRoute {
        self.lock().route_mut(route).unwrap().clone()
    }

    /// The whole comparable state.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            services: s.services.clone(),
            task_definitions: s
                .task_definitions
                .values()
                .flatten()
                .map(|d| {
                    (
                        d.definition.task_definition_arn.clone().unwrap_or_default(),
                        d.definition
                            .status
                            .as_ref()
                            .map(|st| st.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            routes: s.routes.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn steady(ts: &mut TaskSetState) {
    ts.running_count = ts.computed_desired_count;
    ts.pending_count = 0;
    ts.stability_status = Some("STEADY_STATE".into());
}

fn set_forward(route: &mut FakeRoute, new: Vec<WeightedTargetGroup>) {
    for action in &mut route.actions {
        if let FakeAction::Forward { weights, .. } = action {
            *weights = new;
            return;
        }
    }
}

impl Ecs for FakeAws {
    async fn service(&self, cluster: &str, service: &str) -> Result<ServiceState> {
        let mut s = self.lock();
        s.enter("DescribeServices")?;
        s.service_mut(cluster, service).map(|svc| svc.clone())
    }

    async fn task_definition(&self, task_definition: &str) -> Result<TaskDefinitionDoc> {
        let mut s = self.lock();
        s.enter("DescribeTaskDefinition")?;
        s.revision(task_definition).cloned().ok_or_else(|| {
            Error::InvalidInput(format!("task definition {task_definition} does not exist"))
        })
    }

    async fn register_task_definition(&self, doc: &TaskDefinitionDoc) -> Result<TaskDefinitionDoc> {
        let mut s = self.lock();
        s.enter("RegisterTaskDefinition")?;
        if doc.definition.family.as_deref().is_none_or(str::is_empty) {
            return Err(not_found(
                "RegisterTaskDefinition",
                "task definition",
                "ClientException",
                "family is required",
            ));
        }
        Ok(s.register(doc))
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<()> {
        let mut s = self.lock();
        s.enter("DeregisterTaskDefinition")?;
        let short = arn.rsplit_once("task-definition/").map_or(arn, |(_, r)| r);
        let found = short.split_once(':').and_then(|(family, rev)| {
            let rev: usize = rev.parse().ok()?;
            s.task_definitions
                .get_mut(family)?
                .get_mut(rev.checked_sub(1)?)
        });
        match found {
            Some(doc) => {
                doc.definition.status = Some(ecs::TaskDefinitionStatus::Inactive);
                Ok(())
            }
            None => Err(not_found(
                "DeregisterTaskDefinition",
                arn,
                "ClientException",
                "the specified task definition does not exist",
            )),
        }
    }

    async fn create_task_set(&self, spec: &NewTaskSet) -> Result<TaskSetState> {
        let mut s = self.lock();
        s.enter("CreateTaskSet")?;
        s.create_task_set(spec)
    }

    async fn set_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<()> {
        let mut s = self.lock();
        s.enter("UpdateServicePrimaryTaskSet")?;
        let svc = s.service_mut(cluster, service)?;
        // Like the ports contract (and moto, which silently demotes every task set when given
        // an id), only a full task set ARN is accepted here.
        if !svc.task_sets.iter().any(|t| t.arn == task_set) {
            return Err(not_found(
                "UpdateServicePrimaryTaskSet",
                task_set,
                "TaskSetNotFoundException",
                "the specified task set does not exist",
            ));
        }
        for t in svc.task_sets.iter_mut().filter(|t| !t.is_draining()) {
            t.status = if t.arn == task_set {
                "PRIMARY".into()
            } else {
                "ACTIVE".into()
            };
        }
        Ok(())
    }

    async fn delete_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<()> {
        let mut s = self.lock();
        s.enter("DeleteTaskSet")?;
        let svc = s.service_mut(cluster, service)?;
        let Some(i) = svc
            .task_sets
            .iter()
            .position(|t| t.id == task_set || t.arn == task_set)
        else {
            return Ok(());
        };
        if svc.task_sets[i].status == "PRIMARY" {
            return Err(not_found(
                "DeleteTaskSet",
                task_set,
                "InvalidParameterException",
                "the primary task set of a service cannot be deleted",
            ));
        }
        // Like ECS: a deleted task set is listed as DRAINING until its tasks stopped.
        svc.task_sets[i].status = "DRAINING".into();
        Ok(())
    }

    async fn stopped_tasks(&self, _cluster: &str, task_set_id: &str) -> Result<Vec<StoppedTask>> {
        let mut s = self.lock();
        s.enter("ListTasks")?;
        Ok(s.stopped.get(task_set_id).cloned().unwrap_or_default())
    }
}

impl LoadBalancer for FakeAws {
    async fn forward_weights(&self, route: &TrafficRoute) -> Result<Vec<WeightedTargetGroup>> {
        let mut s = self.lock();
        s.enter(if route.rule_arn.is_some() {
            "DescribeRules"
        } else {
            "DescribeListeners"
        })?;
        let r = s.route_mut(route)?;
        if !r
            .actions
            .iter()
            .any(|a| matches!(a, FakeAction::Forward { .. }))
        {
            return Err(Error::PreconditionFailed(format!(
                "{route} has no forward action"
            )));
        }
        Ok(r.weights())
    }

    async fn set_forward_weights(
        &self,
        route: &TrafficRoute,
        weights: &[WeightedTargetGroup],
    ) -> Result<()> {
        let mut s = self.lock();
        s.enter(if route.rule_arn.is_some() {
            "ModifyRule"
        } else {
            "ModifyListener"
        })?;
        let r = s.route_mut(route)?;
        if !r
            .actions
            .iter()
            .any(|a| matches!(a, FakeAction::Forward { .. }))
        {
            return Err(Error::PreconditionFailed(format!(
                "{route} has no forward action"
            )));
        }
        if s.lost_weight_writes > 0 {
            s.lost_weight_writes -= 1;
        } else {
            set_forward(s.route_mut(route)?, weights.to_vec());
        }
        Ok(())
    }

    async fn target_health(&self, target_group_arn: &str) -> Result<Vec<TargetHealth>> {
        let mut s = self.lock();
        s.enter("DescribeTargetHealth")?;
        s.target_health
            .get(target_group_arn)
            .cloned()
            .ok_or_else(|| {
                not_found(
                    "DescribeTargetHealth",
                    target_group_arn,
                    "TargetGroupNotFound",
                    "one or more target groups not found",
                )
            })
    }

    async fn deregistration_delay(&self, target_group_arn: &str) -> Result<u32> {
        let mut s = self.lock();
        s.enter("DescribeTargetGroupAttributes")?;
        s.deregistration_delays
            .get(target_group_arn)
            .copied()
            .ok_or_else(|| {
                not_found(
                    "DescribeTargetGroupAttributes",
                    target_group_arn,
                    "TargetGroupNotFound",
                    "one or more target groups not found",
                )
            })
    }

    async fn routes_to(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<(TrafficRoute, Vec<WeightedTargetGroup>)>> {
        let mut s = self.lock();
        s.enter("DescribeTargetGroups")?;
        Ok(s.routes
            .iter()
            .map(|r| (r.route.clone(), r.weights()))
            .filter(|(_, w)| w.iter().any(|w| w.target_group_arn == target_group_arn))
            .collect())
    }
}

impl ImageRegistry for FakeAws {
    async fn digest_of(
        &self,
        registry_id: &str,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>> {
        let mut s = self.lock();
        s.enter("DescribeImages")?;
        Ok(s.images
            .get(&format!("{registry_id}/{repository}:{tag}"))
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_blue_fixture_is_a_steady_external_service_on_tg_a_with_secrets() {
        let fake = FakeAws::blue();
        let svc = fake.service(CLUSTER, SERVICE).await.unwrap();
        assert_eq!(svc.deployment_controller.as_deref(), Some("EXTERNAL"));
        let blue = svc.primary().unwrap();
        assert_eq!(blue.target_group_arn(), Some(TG_A));
        assert_eq!(blue.running_count, 2);
        let td = fake.task_definition(FAMILY).await.unwrap();
        assert_eq!(
            td.definition.task_definition_arn.as_deref(),
            Some(BLUE_TASK_DEFINITION)
        );
        let app = &td.definition.container_definitions()[0];
        assert_eq!(app.secrets()[0].name(), "DT_API_TOKEN");
        assert_eq!(
            fake.forward_weights(&default_route()).await.unwrap(),
            weights(100, 0)
        );
        assert_eq!(
            fake.calls(),
            [
                "DescribeServices",
                "DescribeTaskDefinition",
                "DescribeListeners"
            ]
        );
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn an_injected_failure_hits_only_the_next_call_of_that_operation() {
        let fake = FakeAws::blue();
        fake.fail_next("DescribeServices", Error::NotReady("x".into()));
        assert!(fake.service(CLUSTER, SERVICE).await.is_err());
        assert!(fake.service(CLUSTER, SERVICE).await.is_ok());
        assert_eq!(
            fake.calls(),
            ["DescribeServices (failed)", "DescribeServices"]
        );
    }

    #[tokio::test]
    async fn revisions_resolve_by_arn_and_family_skips_inactive_ones() {
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        fake.deregister_task_definition(&green.task_definition_arn)
            .await
            .unwrap();
        let latest = fake.task_definition(FAMILY).await.unwrap();
        assert_eq!(latest.definition.revision, 1);
        let by_arn = fake
            .task_definition(&green.task_definition_arn)
            .await
            .unwrap();
        assert_eq!(
            by_arn.definition.status,
            Some(ecs::TaskDefinitionStatus::Inactive)
        );
    }

    #[tokio::test]
    async fn the_primary_task_set_cannot_be_deleted_and_a_gone_one_deletes_quietly() {
        let fake = FakeAws::blue();
        let blue = fake.service_now().primary().unwrap().id.clone();
        assert!(fake.delete_task_set(CLUSTER, SERVICE, &blue).await.is_err());
        fake.delete_task_set(CLUSTER, SERVICE, "ecs-svc/99")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_weight_write_keeps_the_other_actions_and_can_be_lost_on_purpose() {
        let fake = FakeAws::blue();
        fake.set_forward_weights(&rule_route(), &weights(50, 50))
            .await
            .unwrap();
        let rule = fake.route(&rule_route());
        assert_eq!(rule.weights(), weights(50, 50));
        assert_eq!(
            rule.actions[0],
            FakeAction::Other("authenticate-oidc".into())
        );
        fake.lose_next_weight_write();
        fake.set_forward_weights(&rule_route(), &weights(0, 100))
            .await
            .unwrap();
        assert_eq!(fake.route(&rule_route()).weights(), weights(50, 50));
    }
}

impl Alarms for FakeAws {
    async fn alarms(&self, names: &[String], prefix: Option<&str>) -> Result<Vec<AlarmState>> {
        let mut s = self.lock();
        s.enter("DescribeAlarms")?;
        Ok(s.alarms
            .iter()
            .filter(|a| names.contains(&a.name) || prefix.is_some_and(|p| a.name.starts_with(p)))
            .cloned()
            .collect())
    }
}

impl OperatorCommands for FakeAws {
    async fn command(
        &self,
        service_arn: &str,
        execution_name: &str,
    ) -> Result<Option<LeftCommand>> {
        let mut s = self.lock();
        s.enter("ListTagsForResource")?;
        Ok(s.commands
            .get(service_arn)
            .filter(|(execution, _)| execution == execution_name)
            .map(|(_, left)| left.clone()))
    }

    async fn send_command(
        &self,
        service_arn: &str,
        execution_name: &str,
        command: Command,
        by: &str,
    ) -> Result<()> {
        let mut s = self.lock();
        s.enter("TagResource")?;
        let left = LeftCommand {
            command,
            by: Some(by.to_string()).filter(|b| !b.is_empty()),
        };
        s.commands
            .insert(service_arn.into(), (execution_name.into(), left));
        Ok(())
    }

    async fn clear_command(&self, service_arn: &str, execution_name: &str) -> Result<()> {
        let mut s = self.lock();
        s.enter("ListTagsForResource")?;
        if s.commands
            .get(service_arn)
            .is_some_and(|(execution, _)| execution == execution_name)
        {
            s.enter("UntagResource")?;
            s.commands.remove(service_arn);
        }
        Ok(())
    }
}

/// Dynatrace with metric values per release version, access tokens, and a record of what
/// was asked.
#[derive(Debug, Default)]
pub(crate) struct FakeDynatrace {
    state: Mutex<DynatraceState>,
}

#[derive(Debug, Default)]
struct DynatraceState {
    /// Release version → the values every query of it answers.
    values: HashMap<String, Vec<f64>>,
    queries: Vec<MetricQuery>,
    events: Vec<DeploymentEvent>,
    failures: VecDeque<Error>,
    /// Token value → its metadata.
    tokens: Vec<(String, TokenMetadata)>,
    minted: u32,
    seeded: u32,
}

impl FakeDynatrace {
    /// Metric queries of release `version` answer `values` (empty: no data).
    pub fn set_values(&self, version: &str, values: &[f64]) {
        self.state
            .lock()
            .unwrap()
            .values
            .insert(version.into(), values.to_vec());
    }

    /// The next call fails with `err`.
    pub fn fail_next(&self, err: Error) {
        self.state.lock().unwrap().failures.push_back(err);
    }

    pub fn queries(&self) -> Vec<MetricQuery> {
        self.state.lock().unwrap().queries.clone()
    }

    pub fn events(&self) -> Vec<DeploymentEvent> {
        self.state.lock().unwrap().events.clone()
    }

    /// A token Dynatrace knows, with `scopes`; answers its value.
    pub fn add_token(&self, name: &str, scopes: &[&str]) -> String {
        let mut s = self.state.lock().unwrap();
        s.seeded += 1;
        let value = fake_token(s.seeded);
        let id = value[..31].to_string();
        s.tokens.push((
            value.clone(),
            TokenMetadata {
                id,
                name: name.into(),
                enabled: true,
                scopes: scopes.iter().map(|x| x.to_string()).collect(),
                ..TokenMetadata::default()
            },
        ));
        value
    }

    /// Every token's metadata, oldest first.
    pub fn tokens(&self) -> Vec<TokenMetadata> {
        self.state
            .lock()
            .unwrap()
            .tokens
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// How many tokens `create_token` minted.
    pub fn minted(&self) -> u32 {
        self.state.lock().unwrap().minted
    }

    /// The metadata of the token with this value.
    pub fn token(&self, value: &str) -> Option<TokenMetadata> {
        self.state
            .lock()
            .unwrap()
            .tokens
            .iter()
            .find(|(v, _)| v == value)
            .map(|(_, m)| m.clone())
    }

    fn enter(&self) -> Result<std::sync::MutexGuard<'_, DynatraceState>> {
        let mut s = self.state.lock().unwrap();
        if let Some(err) = s.failures.pop_front() {
            return Err(err);
        }
        Ok(s)
    }
}

/// A Dynatrace-shaped token value, distinct per `n`.
fn fake_token(n: u32) -> String {
    format!("dt0c01.{:0>24}.{:0>64}", format!("T{n}"), format!("S{n}"))
}

impl Dynatrace for FakeDynatrace {
    async fn metric(&self, query: &MetricQuery) -> Result<MetricData> {
        let mut s = self.enter()?;
        s.queries.push(query.clone());
        let values = s
            .values
            .get(&query.release.version)
            .cloned()
            .unwrap_or_default();
        Ok(MetricData {
            series: vec![MetricSeries {
                values: values.into_iter().map(Some).collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    async fn post_deployment_event(&self, event: &DeploymentEvent) -> Result<EventReceipt> {
        let mut s = self.enter()?;
        s.events.push(event.clone());
        Ok(EventReceipt::default())
    }

    async fn create_token(&self, token: &NewToken) -> Result<CreatedToken> {
        let mut s = self.enter()?;
        s.minted += 1;
        let value = fake_token(1000 + s.minted);
        let id = value[..31].to_string();
        s.tokens.push((
            value.clone(),
            TokenMetadata {
                id: id.clone(),
                name: token.name.clone(),
                enabled: true,
                scopes: token.scopes.clone(),
                expires_at_ms: token.expires_at_ms,
                ..TokenMetadata::default()
            },
        ));
        Ok(CreatedToken {
            id,
            token: SecretToken::new(value)?,
            expires_at_ms: token.expires_at_ms,
        })
    }

    async fn lookup_token(&self, token: &SecretToken) -> Result<Option<TokenMetadata>> {
        let s = self.enter()?;
        Ok(s.tokens
            .iter()
            .find(|(v, _)| v == token.expose_secret())
            .map(|(_, m)| m.clone()))
    }

    async fn tokens_named(&self, name: &str) -> Result<Vec<TokenMetadata>> {
        let s = self.enter()?;
        Ok(s.tokens
            .iter()
            .filter(|(_, m)| m.name == name)
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn revoke_token(&self, id: &str) -> Result<()> {
        let mut s = self.enter()?;
        for (_, m) in s.tokens.iter_mut().filter(|(_, m)| m.id == id) {
            m.enabled = false;
        }
        Ok(())
    }
}

/// Secrets Manager: versions with values and stage labels.
#[derive(Debug, Default)]
pub(crate) struct FakeSecrets {
    state: Mutex<SecretsState>,
}

#[derive(Debug, Default)]
struct SecretsState {
    arn: String,
    name: String,
    rotation_enabled: bool,
    /// Version id → (value, stages), in creation order.
    versions: Vec<(String, Option<String>, Vec<String>)>,
    calls: Vec<String>,
    failures: HashMap<String, VecDeque<Error>>,
}

impl FakeSecrets {
    /// Secret `name` with `value` as its one (`AWSCURRENT`) version `v1`, rotation enabled.
    pub fn with(name: &str, value: &str) -> Self {
        let fake = FakeSecrets::default();
        {
            let mut s = fake.state.lock().unwrap();
            s.arn = format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf");
            s.name = name.into();
            s.rotation_enabled = true;
            s.versions
                .push(("v1".into(), Some(value.into()), vec!["AWSCURRENT".into()]));
        }
        fake
    }

    pub fn arn(&self) -> String {
        self.state.lock().unwrap().arn.clone()
    }

    pub fn set_rotation_enabled(&self, on: bool) {
        self.state.lock().unwrap().rotation_enabled = on;
    }

    /// What Secrets Manager does before `createSecret`: a version `id` without a value,
    /// labelled `AWSPENDING`.
    pub fn start_rotation(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        for v in &mut s.versions {
            v.2.retain(|st| st != "AWSPENDING");
        }
        s.versions
            .push((id.into(), None, vec!["AWSPENDING".into()]));
    }

    /// Version id → stages, as `describe` answers.
    pub fn stages(&self) -> BTreeMap<String, Vec<String>> {
        self.state
            .lock()
            .unwrap()
            .versions
            .iter()
            .map(|(id, _, st)| (id.clone(), st.clone()))
            .collect()
    }

    /// The value of version `id`.
    pub fn value_of(&self, id: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .versions
            .iter()
            .find(|(v, _, _)| v == id)
            .and_then(|(_, value, _)| value.clone())
    }

    /// The next call of `operation` fails with `err`.
    pub fn fail_next(&self, operation: &str, err: Error) {
        self.state
            .lock()
            .unwrap()
            .failures
            .entry(operation.into())
            .or_default()
            .push_back(err);
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn enter(&self, op: &str) -> Result<MutexGuard<'_, SecretsState>> {
        let mut s = self.state.lock().unwrap();
        if let Some(err) = s.failures.get_mut(op).and_then(VecDeque::pop_front) {
            return Err(err);
        }
        s.calls.push(op.into());
        Ok(s)
    }
}

impl crate::rotation::SecretVersions for FakeSecrets {
    async fn describe(&self, _secret_id: &str) -> Result<crate::rotation::SecretDescription> {
        let s = self.enter("DescribeSecret")?;
        Ok(crate::rotation::SecretDescription {
            arn: s.arn.clone(),
            name: s.name.clone(),
            rotation_enabled: s.rotation_enabled,
            versions: s
                .versions
                .iter()
                .map(|(id, _, st)| (id.clone(), st.clone()))
                .collect(),
        })
    }

    async fn value(
        &self,
        _secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<crate::rotation::SecretValue>> {
        let s = self.enter("GetSecretValue")?;
        let found = s.versions.iter().find(|(id, _, st)| {
            version_id.is_none_or(|v| v == id) && stage.is_none_or(|x| st.iter().any(|y| y == x))
        });
        Ok(found
            .and_then(|(_, value, _)| value.clone())
            .map(crate::rotation::SecretValue::new))
    }

    async fn put_pending(
        &self,
        _secret_id: &str,
        version_id: &str,
        value: &crate::rotation::SecretValue,
    ) -> Result<()> {
        let mut s = self.enter("PutSecretValue")?;
        match s.versions.iter_mut().find(|(id, _, _)| id == version_id) {
            Some(v) => v.1 = Some(value.expose_secret().to_string()),
            None => s.versions.push((
                version_id.into(),
                Some(value.expose_secret().to_string()),
                vec!["AWSPENDING".into()],
            )),
        }
        Ok(())
    }

    async fn move_stage(
        &self,
        _secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<()> {
        let mut s = self.enter("UpdateSecretVersionStage")?;
        for v in &mut s.versions {
            if from == Some(v.0.as_str()) {
                v.2.retain(|st| st != stage);
                if stage == "AWSCURRENT" {
                    v.2.retain(|st| st != "AWSPREVIOUS");
                }
            }
        }
        if let Some(to) = to {
            if stage == "AWSCURRENT" {
                for v in &mut s.versions {
                    v.2.retain(|st| st != "AWSPREVIOUS");
                }
                if let Some(from) = from
                    && let Some(v) = s.versions.iter_mut().find(|v| v.0 == from)
                {
                    v.2.push("AWSPREVIOUS".into());
                }
            }
            if let Some(v) = s.versions.iter_mut().find(|v| v.0 == to) {
                v.2.push(stage.into());
            }
        }
        Ok(())
    }
}

/// Step Functions: executions by name, with status and input.
#[derive(Debug, Default)]
pub(crate) struct FakeSfn {
    executions: Mutex<Vec<crate::operations::ExecutionState>>,
}

impl FakeSfn {
    /// Every execution started, oldest first.
    pub fn started(&self) -> Vec<crate::operations::ExecutionState> {
        self.executions.lock().unwrap().clone()
    }

    /// Sets the status (and error) of execution `arn`.
    pub fn finish(&self, arn: &str, status: &str, error: Option<&str>) {
        for e in self
            .executions
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|e| e.arn == arn)
        {
            e.status = status.into();
            e.error = error.map(str::to_string);
            e.cause = error.map(|e| format!("it failed with {e}"));
        }
    }
}

impl crate::operations::Executions for FakeSfn {
    async fn execution(&self, arn: &str) -> Result<crate::operations::ExecutionState> {
        self.executions
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.arn == arn)
            .cloned()
            .ok_or_else(|| Error::InvalidInput(format!("execution {arn} not found")))
    }

    async fn history(&self, _arn: &str) -> Result<Vec<crate::operations::HistoryEntry>> {
        Ok(Vec::new())
    }

    async fn send_task_success(&self, _token: &str, _output: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<crate::operations::StartOutcome> {
        use crate::operations::StartOutcome;
        let arn = format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        );
        let mut executions = self.executions.lock().unwrap();
        if let Some(e) = executions.iter().find(|e| e.arn == arn) {
            let same = e.input.as_deref() == Some(input.to_string().as_str());
            return Ok(if same {
                StartOutcome::AlreadyStarted(e.clone())
            } else {
                StartOutcome::NameTaken(e.clone())
            });
        }
        executions.push(crate::operations::ExecutionState {
            arn: arn.clone(),
            name: name.into(),
            status: "RUNNING".into(),
            input: Some(input.to_string()),
            error: None,
            cause: None,
        });
        Ok(StartOutcome::Started(arn))
    }
}

impl crate::ports::ServiceDirectory for FakeAws {
    async fn clusters(&self) -> Result<Vec<String>> {
        let mut s = self.lock();
        s.enter("ListClusters")?;
        let mut clusters: Vec<String> = s
            .services
            .iter()
            .map(|svc| svc.cluster_arn.clone())
            .collect();
        clusters.dedup();
        Ok(clusters)
    }

    async fn services(&self, cluster: &str) -> Result<Vec<String>> {
        let mut s = self.lock();
        s.enter("ListServices")?;
        Ok(s.services
            .iter()
            .filter(|svc| svc.cluster_arn == cluster || svc.cluster_arn == cluster_arn(cluster))
            .map(|svc| svc.arn.clone())
            .collect())
    }
}
