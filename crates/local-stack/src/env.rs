//! A realistic blue/green environment, built through the real SDKs: VPC, ALB with two `ip`
//! target groups and a weighted listener, ECR images, Dynatrace secrets, an ECS cluster, a
//! Fargate task definition with a `secrets` block, and a service on the `EXTERNAL`
//! deployment controller whose blue task set serves on target group A.
//!
//! Every name carries the environment's suffix, so many environments share one moto (moto's
//! reset is global and the end-to-end tests run in parallel in one process).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ecs::types::{
    ApplicationProtocol, AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerCondition,
    ContainerDefinition, ContainerDependency, ContainerRestartPolicy, CpuArchitecture,
    DeploymentController, DeploymentControllerType, EfsAuthorizationConfig,
    EfsAuthorizationConfigIam, EfsTransitEncryption, EfsVolumeConfiguration, EnvironmentFile,
    EnvironmentFileType, EphemeralStorage, FirelensConfiguration, FirelensConfigurationType,
    HealthCheck, KernelCapabilities, KeyValuePair, LaunchType, LinuxParameters, LoadBalancer,
    LogConfiguration, LogDriver, MountPoint, NetworkConfiguration, NetworkMode, OsFamily, PidMode,
    PortMapping, ProxyConfiguration, ProxyConfigurationType, RepositoryCredentials,
    ResourceRequirement, ResourceType as EcsResourceType, RuntimePlatform, Scale, ScaleUnit,
    Secret, SystemControl, TaskDefinitionPlacementConstraint,
    TaskDefinitionPlacementConstraintType, TransportProtocol, Ulimit, UlimitName,
    VersionConsistency, Volume, VolumeFrom,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, HttpHeaderConditionConfig, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, Matcher, PathPatternConditionConfig, ProtocolEnum, RuleCondition,
    TargetGroupAttribute, TargetGroupTuple, TargetTypeEnum,
};
use bluegreen::model::{DeployRequest, Strategy, Timing};

use crate::endpoint::{ACCOUNT_ID, REGION};
use crate::inspect::Route;
use crate::{Clients, image, inspect, tokens};

/// The container whose image deploys change.
pub const APP_CONTAINER: &str = "app";
/// The log router sidecar, kept as it is by every deploy.
pub const LOG_ROUTER_CONTAINER: &str = "log_router";
/// The port the app listens on and the target groups forward to.
pub const APP_PORT: i32 = 8080;
/// The service name (unique per cluster, and every environment has its own cluster).
pub const SERVICE_NAME: &str = "orders";
/// Longest suffix [`EnvSpec`] accepts (ALB and target group names have 32 characters).
pub const MAX_SUFFIX_LEN: usize = 12;

/// A listener rule the deploys can shift instead of the listener's default action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSpec {
    /// `path-pattern` condition, e.g. `/api/*`.
    PathPattern(String),
    /// `http-header` condition: the header has one of the values.
    Header { name: String, values: Vec<String> },
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// Makes every name unique: lower-case letters, digits and `-`, at most
    /// [`MAX_SUFFIX_LEN`] characters. Empty gives the bare names (`bg-alb`, …).
    pub suffix: String,
    /// The service's desired count.
    pub desired_count: i32,
    /// `deregistration_delay.timeout_seconds` of both target groups.
    pub deregistration_delay_seconds: u32,
    /// The target groups' health check path.
    pub health_check_path: String,
    /// Image tags pushed to the repository, in order; blue runs the first one.
    pub image_tags: Vec<String>,
    /// A listener rule with its own weighted forward (priority 10).
    pub listener_rule: Option<RuleSpec>,
    /// A test listener (HTTP:8080) with its own weighted forward to the pair, for test
    /// traffic.
    pub test_listener: bool,
    /// How long to wait for blue's targets to turn healthy; `None` does not wait (a bare
    /// moto never registers targets).
    pub wait_for_healthy: Option<Duration>,
    /// How much of RegisterTaskDefinition blue's task definition uses.
    pub task_definition: TaskDefinitionKind,
}

/// The shape of blue's task definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskDefinitionKind {
    /// The orders app and a FireLens log router: image, ports, environment, `secrets`,
    /// health check, dependency, labels and logs.
    #[default]
    Standard,
    /// Every RegisterTaskDefinition field moto keeps, on the task and on three containers
    /// (app, log router, Envoy proxy): EFS and bind volumes, placement constraints, runtime
    /// platform, ephemeral storage, an App Mesh proxy configuration, `pidMode`, inference
    /// accelerators, tags; per container secrets (plain ARN and JSON key), environment and
    /// environment files, FireLens logging with `secretOptions`, `dependsOn`, health checks,
    /// ulimits, Linux parameters, labels, mount points, `volumesFrom`, port mappings, restart
    /// policy, timeouts, system controls and more (see [`MAXIMAL_FIELDS`]). Left out:
    /// `ipcMode` (Fargate does not support it) and `enableFaultInjection` (moto drops it).
    Maximal,
}

/// The task-level fields a [`TaskDefinitionKind::Maximal`] task definition sets, as
/// RegisterTaskDefinition names them.
pub const MAXIMAL_FIELDS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
];

/// The Envoy sidecar of a [`TaskDefinitionKind::Maximal`] task definition.
pub const ENVOY_CONTAINER: &str = "envoy";

impl EnvSpec {
    /// Defaults fit for tests: 2 tasks, deregistration delay 1 s, tags v1 v2 v3, no rule,
    /// wait up to 60 s for blue.
    pub fn new(suffix: impl Into<String>) -> Self {
        EnvSpec {
            suffix: suffix.into(),
            desired_count: 2,
            deregistration_delay_seconds: 1,
            health_check_path: "/health".into(),
            image_tags: vec!["v1".into(), "v2".into(), "v3".into()],
            listener_rule: None,
            test_listener: false,
            wait_for_healthy: Some(Duration::from_secs(60)),
            task_definition: TaskDefinitionKind::Standard,
        }
    }

    /// The prefix of every name: `bg-<suffix>` (or `bg`).
    ///
    /// # Errors
    /// When the suffix is too long or has characters AWS names cannot carry.
    pub fn prefix(&self) -> anyhow::Result<String> {
        let s = &self.suffix;
        if s.len() > MAX_SUFFIX_LEN {
            bail!("environment suffix {s:?} is longer than {MAX_SUFFIX_LEN} characters");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || s.starts_with('-')
            || s.ends_with('-')
        {
            bail!("environment suffix {s:?} must be lower-case letters, digits and inner '-'");
        }
        Ok(if s.is_empty() {
            "bg".into()
        } else {
            format!("bg-{s}")
        })
    }
}

/// A random suffix of `len` lower-case letters and digits (at most [`MAX_SUFFIX_LEN`]).
pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len.min(MAX_SUFFIX_LEN))
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The Dynatrace secrets and their values (so tests can check that no value ever leaks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The plain-string secret.
    pub api_token_name: String,
    pub api_token_arn: String,
    pub api_token: String,
    /// The JSON secret with keys `DT_API_TOKEN` and `DT_PAAS_TOKEN`.
    pub tokens_name: String,
    pub tokens_arn: String,
    pub tokens_api_token: String,
    pub tokens_paas_token: String,
}

impl Secrets {
    /// Every secret value, none of which may appear in logs, outputs or histories.
    pub fn values(&self) -> [&str; 3] {
        [
            &self.api_token,
            &self.tokens_api_token,
            &self.tokens_paas_token,
        ]
    }

    /// The `secrets` block of the app container: the plain secret by ARN, and one key of
    /// the JSON secret (`<arn>:DT_PAAS_TOKEN::`).
    pub fn container_secrets(&self) -> Vec<(String, String)> {
        vec![
            ("DT_API_TOKEN".into(), self.api_token_arn.clone()),
            (
                "DT_PAAS_TOKEN".into(),
                json_key_ref(&self.tokens_arn, "DT_PAAS_TOKEN"),
            ),
        ]
    }
}

/// The `valueFrom` of one JSON key of a secret, current version: `<arn>:<key>::`.
pub fn json_key_ref(secret_arn: &str, key: &str) -> String {
    format!("{secret_arn}:{key}::")
}

/// Everything [`build`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub suffix: String,
    /// The prefix of every name (`bg-<suffix>`).
    pub prefix: String,
    pub vpc_id: String,
    pub subnet_ids: [String; 2],
    pub security_group_id: String,
    pub load_balancer_arn: String,
    pub load_balancer_dns_name: String,
    /// Target group A (blue at first) and B.
    pub target_group_arns: [String; 2],
    pub listener_arn: String,
    pub listener_rule_arn: Option<String>,
    /// The test listener (HTTP:8080), when the spec asked for one.
    pub test_listener_arn: Option<String>,
    pub repository_name: String,
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com/<repository>`.
    pub repository_uri: String,
    /// Image tag → digest (`sha256:…`).
    pub images: BTreeMap<String, String>,
    pub secrets: Secrets,
    pub cluster_name: String,
    pub cluster_arn: String,
    pub service_name: String,
    pub service_arn: String,
    pub task_definition_family: String,
    /// Blue's task definition (revision 1, app pinned to the first tag's digest).
    pub task_definition_arn: String,
    pub execution_role_arn: String,
    pub task_role_arn: String,
    pub log_group: String,
    pub desired_count: i32,
    pub deregistration_delay_seconds: u32,
    pub blue_task_set_id: String,
    pub blue_task_set_arn: String,
    /// The image tag blue runs.
    pub blue_tag: String,
}

impl Environment {
    /// Target group A, where blue starts.
    pub fn tg_a(&self) -> &str {
        &self.target_group_arns[0]
    }

    /// Target group B, where the first green goes.
    pub fn tg_b(&self) -> &str {
        &self.target_group_arns[1]
    }

    /// The digest pushed for `tag`.
    pub fn digest(&self, tag: &str) -> Option<&str> {
        self.images.get(tag).map(String::as_str)
    }

    /// `repository_uri:tag` (a deploy resolves it through ECR).
    pub fn tagged_image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository_uri)
    }

    /// `repository_uri@digest` of `tag`.
    ///
    /// # Errors
    /// When `tag` was not pushed.
    pub fn pinned_image(&self, tag: &str) -> anyhow::Result<String> {
        let digest = self
            .digest(tag)
            .ok_or_else(|| anyhow!("image tag {tag} was not pushed to {}", self.repository_name))?;
        Ok(format!("{}@{digest}", self.repository_uri))
    }

    /// The route deploys shift: the rule when the environment has one, else the default
    /// action.
    pub fn route(&self) -> Route {
        Route {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.listener_rule_arn.clone(),
        }
    }

    /// The test listener's default action, when there is one.
    pub fn test_route(&self) -> Option<Route> {
        self.test_listener_arn.as_ref().map(|arn| Route {
            listener_arn: arn.clone(),
            rule_arn: None,
        })
    }

    /// The listener's default action, whether or not a rule exists.
    pub fn default_route(&self) -> Route {
        Route {
            listener_arn: self.listener_arn.clone(),
            rule_arn: None,
        }
    }

    /// The name of this environment's deploy state machine.
    pub fn state_machine_name(&self) -> String {
        format!("{}-deploy", self.prefix)
    }

    /// An execution input deploying `image` to this environment's service, on its route.
    pub fn deploy_request(
        &self,
        image: impl Into<String>,
        strategy: Strategy,
        timing: Timing,
    ) -> DeployRequest {
        let mut request = DeployRequest::new(
            self.cluster_name.clone(),
            self.service_name.clone(),
            APP_CONTAINER,
            image,
            self.listener_arn.clone(),
            self.target_group_arns.clone(),
        );
        request.listener_rule_arn = self.listener_rule_arn.clone();
        request.strategy = strategy;
        request.timing = timing;
        request
    }
}

/// Builds the environment `spec` describes and waits until blue's targets are healthy.
///
/// # Errors
/// The first AWS call that fails (with the resource it was for), an invalid suffix, or
/// blue's targets not turning healthy within `spec.wait_for_healthy`.
pub async fn build(clients: &Clients, spec: &EnvSpec) -> anyhow::Result<Environment> {
    let prefix = spec.prefix()?;
    let blue_tag = spec
        .image_tags
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("an environment needs at least one image tag"))?;
    if spec.desired_count < 1 {
        bail!(
            "desired count must be at least 1, got {}",
            spec.desired_count
        );
    }

    let net = network(clients, &prefix).await?;
    let lb = load_balancer(clients, &prefix, &net, spec).await?;
    let (repository_name, repository_uri, images) =
        repository(clients, &prefix, &spec.image_tags).await?;
    let secrets = secrets(clients, &prefix).await?;

    let cluster_name = prefix.clone();
    let cluster_arn = clients
        .ecs
        .create_cluster()
        .cluster_name(&cluster_name)
        .send()
        .await
        .with_context(|| format!("creating ECS cluster {cluster_name}"))?
        .cluster
        .and_then(|c| c.cluster_arn)
        .ok_or_else(|| anyhow!("CreateCluster {cluster_name} returned no ARN"))?;

    let family = format!("{prefix}-orders");
    let execution_role_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-orders-execution");
    let task_role_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-orders-task");
    let log_group = format!("/ecs/{family}");
    let blue_digest = &images[&blue_tag];
    let task_definition_arn = register_task_definition(
        clients,
        &TaskDefInput {
            family: &family,
            image: &format!("{repository_uri}@{blue_digest}"),
            execution_role_arn: &execution_role_arn,
            task_role_arn: &task_role_arn,
            log_group: &log_group,
            secrets: &secrets,
            health_check_path: &spec.health_check_path,
            kind: spec.task_definition,
        },
    )
    .await?;

    let service_arn = clients
        .ecs
        .create_service()
        .cluster(&cluster_name)
        .service_name(SERVICE_NAME)
        .desired_count(spec.desired_count)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::External)
                .build()
                .context("building the EXTERNAL deployment controller")?,
        )
        .send()
        .await
        .with_context(|| format!("creating service {SERVICE_NAME} in {cluster_name}"))?
        .service
        .and_then(|s| s.service_arn)
        .ok_or_else(|| anyhow!("CreateService {SERVICE_NAME} returned no ARN"))?;

    let blue = clients
        .ecs
        .create_task_set()
        .cluster(&cluster_name)
        .service(SERVICE_NAME)
        .external_id(format!("{prefix}-initial"))
        .task_definition(&task_definition_arn)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnet_ids.to_vec()))
                        .security_groups(&net.security_group_id)
                        .assign_public_ip(AssignPublicIp::Disabled)
                        .build()
                        .context("building the awsvpc configuration")?,
                )
                .build(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(&lb.target_group_arns[0])
                .container_name(APP_CONTAINER)
                .container_port(APP_PORT)
                .build(),
        )
        .scale(
            Scale::builder()
                .value(100.0)
                .unit(ScaleUnit::Percent)
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("creating blue's task set of {SERVICE_NAME} in {cluster_name}"))?
        .task_set
        .ok_or_else(|| anyhow!("CreateTaskSet returned no task set"))?;
    let blue_task_set_id = blue.id.unwrap_or_default();
    let blue_task_set_arn = blue
        .task_set_arn
        .ok_or_else(|| anyhow!("CreateTaskSet returned no task set ARN"))?;

    // moto never promotes a task set by itself, and matches the primary by full ARN only
    // (an id leaves every task set ACTIVE).
    clients
        .ecs
        .update_service_primary_task_set()
        .cluster(&cluster_name)
        .service(SERVICE_NAME)
        .primary_task_set(&blue_task_set_arn)
        .send()
        .await
        .with_context(|| format!("making task set {blue_task_set_id} primary"))?;

    if let Some(timeout) = spec.wait_for_healthy {
        inspect::wait_until_healthy(
            clients,
            &lb.target_group_arns[0],
            spec.desired_count as usize,
            timeout,
        )
        .await
        .context("waiting for blue's targets")?;
    }

    Ok(Environment {
        suffix: spec.suffix.clone(),
        prefix,
        vpc_id: net.vpc_id,
        subnet_ids: net.subnet_ids,
        security_group_id: net.security_group_id,
        load_balancer_arn: lb.load_balancer_arn,
        load_balancer_dns_name: lb.dns_name,
        target_group_arns: lb.target_group_arns,
        listener_arn: lb.listener_arn,
        listener_rule_arn: lb.rule_arn,
        test_listener_arn: lb.test_listener_arn,
        repository_name,
        repository_uri,
        images,
        secrets,
        cluster_name,
        cluster_arn,
        service_name: SERVICE_NAME.into(),
        service_arn,
        task_definition_family: family,
        task_definition_arn,
        execution_role_arn,
        task_role_arn,
        log_group,
        desired_count: spec.desired_count,
        deregistration_delay_seconds: spec.deregistration_delay_seconds,
        blue_task_set_id,
        blue_task_set_arn,
        blue_tag,
    })
}

struct Network {
    vpc_id: String,
    subnet_ids: [String; 2],
    security_group_id: String,
}

fn name_tag(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

async fn network(clients: &Clients, prefix: &str) -> anyhow::Result<Network> {
    let ec2 = &clients.ec2;
    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .tag_specifications(name_tag(ResourceType::Vpc, &format!("{prefix}-vpc")))
        .send()
        .await
        .context("creating the VPC 10.0.0.0/16")?
        .vpc
        .and_then(|v| v.vpc_id)
        .ok_or_else(|| anyhow!("CreateVpc returned no VPC id"))?;
    // moto's Fargate task sets fail (HTTP 500) in a VPC without DNS hostnames.
    for (what, attr) in [("DNS support", false), ("DNS hostnames", true)] {
        let on = AttributeBooleanValue::builder().value(true).build();
        let req = ec2.modify_vpc_attribute().vpc_id(&vpc_id);
        let req = if attr {
            req.enable_dns_hostnames(on)
        } else {
            req.enable_dns_support(on)
        };
        req.send()
            .await
            .with_context(|| format!("turning on {what} in VPC {vpc_id}"))?;
    }

    let igw = ec2
        .create_internet_gateway()
        .tag_specifications(name_tag(
            ResourceType::InternetGateway,
            &format!("{prefix}-igw"),
        ))
        .send()
        .await
        .context("creating the internet gateway")?
        .internet_gateway
        .and_then(|g| g.internet_gateway_id)
        .ok_or_else(|| anyhow!("CreateInternetGateway returned no id"))?;
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc_id)
        .send()
        .await
        .with_context(|| format!("attaching internet gateway {igw} to {vpc_id}"))?;

    let mut subnet_ids = Vec::with_capacity(2);
    for (i, az) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let cidr = format!("10.0.{}.0/24", i + 1);
        let id = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(&cidr)
            .availability_zone(*az)
            .tag_specifications(name_tag(ResourceType::Subnet, &format!("{prefix}-{az}")))
            .send()
            .await
            .with_context(|| format!("creating subnet {cidr} in {az}"))?
            .subnet
            .and_then(|s| s.subnet_id)
            .ok_or_else(|| anyhow!("CreateSubnet {cidr} returned no id"))?;
        subnet_ids.push(id);
    }
    let subnet_ids: [String; 2] = subnet_ids
        .try_into()
        .map_err(|_| anyhow!("expected two subnets"))?;

    let sg_name = format!("{prefix}-orders");
    let security_group_id = ec2
        .create_security_group()
        .group_name(&sg_name)
        .description("orders service: HTTP from anywhere to the ALB, 8080 inside the VPC")
        .vpc_id(&vpc_id)
        .send()
        .await
        .with_context(|| format!("creating security group {sg_name}"))?
        .group_id
        .ok_or_else(|| anyhow!("CreateSecurityGroup {sg_name} returned no id"))?;
    ec2.authorize_security_group_ingress()
        .group_id(&security_group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(APP_PORT)
                .to_port(APP_PORT)
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("opening ports 80 and {APP_PORT} on {security_group_id}"))?;

    Ok(Network {
        vpc_id,
        subnet_ids,
        security_group_id,
    })
}

struct Lb {
    load_balancer_arn: String,
    dns_name: String,
    target_group_arns: [String; 2],
    listener_arn: String,
    rule_arn: Option<String>,
    test_listener_arn: Option<String>,
}

/// A forward that sends `weights[i]` to `target_group_arns[i]`.
fn weighted_forward(target_group_arns: &[String; 2], weights: [i32; 2]) -> Action {
    let mut config = ForwardActionConfig::builder();
    for (arn, weight) in target_group_arns.iter().zip(weights) {
        config = config.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(weight)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config.build())
        .build()
}

async fn load_balancer(
    clients: &Clients,
    prefix: &str,
    net: &Network,
    spec: &EnvSpec,
) -> anyhow::Result<Lb> {
    let elb = &clients.elb;
    let name = format!("{prefix}-alb");
    let lb = elb
        .create_load_balancer()
        .name(&name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(net.subnet_ids.to_vec()))
        .security_groups(&net.security_group_id)
        .send()
        .await
        .with_context(|| format!("creating load balancer {name}"))?
        .load_balancers
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("CreateLoadBalancer {name} returned no load balancer"))?;
    let load_balancer_arn = lb
        .load_balancer_arn
        .ok_or_else(|| anyhow!("CreateLoadBalancer {name} returned no ARN"))?;

    let mut tgs = Vec::with_capacity(2);
    for side in ["a", "b"] {
        let tg_name = format!("{prefix}-orders-{side}");
        let arn = elb
            .create_target_group()
            .name(&tg_name)
            .protocol(ProtocolEnum::Http)
            .port(APP_PORT)
            .vpc_id(&net.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&spec.health_check_path)
            .health_check_interval_seconds(5)
            .health_check_timeout_seconds(2)
            .healthy_threshold_count(2)
            .unhealthy_threshold_count(2)
            .matcher(Matcher::builder().http_code("200").build())
            .send()
            .await
            .with_context(|| format!("creating target group {tg_name}"))?
            .target_groups
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|t| t.target_group_arn)
            .ok_or_else(|| anyhow!("CreateTargetGroup {tg_name} returned no ARN"))?;
        elb.modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(spec.deregistration_delay_seconds.to_string())
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("setting the deregistration delay of {tg_name}"))?;
        tgs.push(arn);
    }
    let target_group_arns: [String; 2] = tgs
        .try_into()
        .map_err(|_| anyhow!("expected two target groups"))?;

    let listener_arn = elb
        .create_listener()
        .load_balancer_arn(&load_balancer_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(weighted_forward(&target_group_arns, [100, 0]))
        .send()
        .await
        .with_context(|| format!("creating the HTTP:80 listener of {name}"))?
        .listeners
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|l| l.listener_arn)
        .ok_or_else(|| anyhow!("CreateListener on {name} returned no ARN"))?;

    let rule_arn = match &spec.listener_rule {
        None => None,
        Some(rule) => {
            let condition = match rule {
                RuleSpec::PathPattern(p) => RuleCondition::builder()
                    .field("path-pattern")
                    .path_pattern_config(PathPatternConditionConfig::builder().values(p).build())
                    .build(),
                RuleSpec::Header { name, values } => RuleCondition::builder()
                    .field("http-header")
                    .http_header_config(
                        HttpHeaderConditionConfig::builder()
                            .http_header_name(name)
                            .set_values(Some(values.clone()))
                            .build(),
                    )
                    .build(),
            };
            let arn = elb
                .create_rule()
                .listener_arn(&listener_arn)
                .priority(10)
                .conditions(condition)
                .actions(weighted_forward(&target_group_arns, [100, 0]))
                .send()
                .await
                .with_context(|| format!("creating rule {rule:?} on listener {listener_arn}"))?
                .rules
                .unwrap_or_default()
                .into_iter()
                .next()
                .and_then(|r| r.rule_arn)
                .ok_or_else(|| anyhow!("CreateRule on {listener_arn} returned no ARN"))?;
            Some(arn)
        }
    };

    let test_listener_arn = if spec.test_listener {
        let arn = elb
            .create_listener()
            .load_balancer_arn(&load_balancer_arn)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .default_actions(weighted_forward(&target_group_arns, [100, 0]))
            .send()
            .await
            .with_context(|| format!("creating the HTTP:8080 test listener of {name}"))?
            .listeners
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|l| l.listener_arn)
            .ok_or_else(|| anyhow!("CreateListener (test) on {name} returned no ARN"))?;
        Some(arn)
    } else {
        None
    };

    Ok(Lb {
        load_balancer_arn,
        dns_name: lb.dns_name.unwrap_or_default(),
        target_group_arns,
        listener_arn,
        rule_arn,
        test_listener_arn,
    })
}

async fn repository(
    clients: &Clients,
    prefix: &str,
    tags: &[String],
) -> anyhow::Result<(String, String, BTreeMap<String, String>)> {
    let name = format!("{prefix}/orders");
    let uri = clients
        .ecr
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .with_context(|| format!("creating ECR repository {name}"))?
        .repository
        .and_then(|r| r.repository_uri)
        .ok_or_else(|| anyhow!("CreateRepository {name} returned no URI"))?;
    let mut images = BTreeMap::new();
    for tag in tags {
        let manifest = image::manifest(&name, tag);
        let digest = image::sha256_digest(manifest.as_bytes());
        // moto derives a digest from the layer digests unless one is given; real ECR
        // computes it from the manifest bytes, which is what is passed here.
        let pushed = clients
            .ecr
            .put_image()
            .repository_name(&name)
            .image_tag(tag)
            .image_manifest(&manifest)
            .image_manifest_media_type(image::OCI_MANIFEST_MEDIA_TYPE)
            .image_digest(&digest)
            .send()
            .await
            .with_context(|| format!("pushing {name}:{tag}"))?
            .image
            .and_then(|i| i.image_id)
            .and_then(|i| i.image_digest)
            .ok_or_else(|| anyhow!("PutImage {name}:{tag} returned no digest"))?;
        if pushed != digest {
            bail!("ECR stored {name}:{tag} as {pushed}, not as the manifest's digest {digest}");
        }
        images.insert(tag.clone(), digest);
    }
    Ok((name, uri, images))
}

async fn secrets(clients: &Clients, prefix: &str) -> anyhow::Result<Secrets> {
    let create = |name: String, value: String, description: &'static str| async move {
        let arn = clients
            .secrets
            .create_secret()
            .name(&name)
            .description(description)
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("creating secret {name}"))?
            .arn
            .ok_or_else(|| anyhow!("CreateSecret {name} returned no ARN"))?;
        anyhow::Ok(arn)
    };
    let api_token = tokens::random_token();
    let api_token_name = format!("{prefix}/dynatrace/api-token");
    let api_token_arn = create(
        api_token_name.clone(),
        api_token.clone(),
        "Dynatrace API token of the orders service",
    )
    .await?;
    let tokens_api_token = tokens::random_token();
    let tokens_paas_token = tokens::random_token();
    let tokens_name = format!("{prefix}/dynatrace/tokens");
    let body = serde_json::json!({
        "DT_API_TOKEN": tokens_api_token,
        "DT_PAAS_TOKEN": tokens_paas_token,
    })
    .to_string();
    let tokens_arn = create(
        tokens_name.clone(),
        body,
        "Dynatrace API and PaaS tokens (JSON)",
    )
    .await?;
    Ok(Secrets {
        api_token_name,
        api_token_arn,
        api_token,
        tokens_name,
        tokens_arn,
        tokens_api_token,
        tokens_paas_token,
    })
}

struct TaskDefInput<'a> {
    family: &'a str,
    image: &'a str,
    execution_role_arn: &'a str,
    task_role_arn: &'a str,
    log_group: &'a str,
    secrets: &'a Secrets,
    health_check_path: &'a str,
    kind: TaskDefinitionKind,
}

fn awslogs(group: &str, stream_prefix: &str) -> anyhow::Result<LogConfiguration> {
    LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", group)
        .options("awslogs-region", REGION)
        .options("awslogs-stream-prefix", stream_prefix)
        .build()
        .context("building the awslogs configuration")
}

/// The containers of the orders task definition: the app (image, port, environment,
/// secrets, health check, logs) and a FireLens log router. Every container has `memory`
/// (moto's Fargate tasks need it).
fn container_definitions(input: &TaskDefInput<'_>) -> anyhow::Result<Vec<ContainerDefinition>> {
    let mut app = ContainerDefinition::builder()
        .name(APP_CONTAINER)
        .image(input.image)
        .essential(true)
        .cpu(256)
        .memory(768)
        .memory_reservation(512)
        .port_mappings(
            PortMapping::builder()
                .name("http")
                .container_port(APP_PORT)
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("SERVICE_NAME")
                .value(SERVICE_NAME)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("PORT")
                .value(APP_PORT.to_string())
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("DT_TENANT_URL")
                .value("https://abc12345.live.dynatrace.com")
                .build(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command(format!(
                    "wget -qO- http://localhost:{APP_PORT}{} || exit 1",
                    input.health_check_path
                ))
                .interval(10)
                .timeout(5)
                .retries(3)
                .start_period(10)
                .build()
                .context("building the app's health check")?,
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name(LOG_ROUTER_CONTAINER)
                .condition(ContainerCondition::Start)
                .build()
                .context("building the app's dependency on the log router")?,
        )
        .docker_labels("team", "orders")
        .log_configuration(awslogs(input.log_group, APP_CONTAINER)?);
    for (name, value_from) in input.secrets.container_secrets() {
        app = app.secrets(
            Secret::builder()
                .name(&name)
                .value_from(value_from)
                .build()
                .with_context(|| format!("building secret {name}"))?,
        );
    }
    let log_router = ContainerDefinition::builder()
        .name(LOG_ROUTER_CONTAINER)
        .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4")
        .essential(true)
        .cpu(64)
        .memory(128)
        .firelens_configuration(
            FirelensConfiguration::builder()
                .r#type(FirelensConfigurationType::Fluentbit)
                .options("enable-ecs-log-metadata", "true")
                .build()
                .context("building the FireLens configuration")?,
        )
        .log_configuration(awslogs(input.log_group, "firelens")?);
    Ok(vec![app.build(), log_router.build()])
}

async fn register_task_definition(
    clients: &Clients,
    input: &TaskDefInput<'_>,
) -> anyhow::Result<String> {
    let request = clients
        .ecs
        .register_task_definition()
        .family(input.family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::Arm64)
                .operating_system_family(OsFamily::Linux)
                .build(),
        )
        .execution_role_arn(input.execution_role_arn)
        .task_role_arn(input.task_role_arn);
    let request = match input.kind {
        TaskDefinitionKind::Standard => request
            .cpu("512")
            .memory("1024")
            .set_container_definitions(Some(container_definitions(input)?)),
        TaskDefinitionKind::Maximal => maximal_task_fields(request, input)?,
    };
    request
        .send()
        .await
        .with_context(|| format!("registering task definition {}", input.family))?
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .ok_or_else(|| anyhow!("RegisterTaskDefinition {} returned no ARN", input.family))
}

/// The EFS file system and access point the maximal task definition mounts (moto does not
/// check that they exist; nothing mounts them locally).
const EFS_FILE_SYSTEM_ID: &str = "fs-0123456789abcdef0";
const EFS_ACCESS_POINT_ID: &str = "fsap-0123456789abcdef0";
/// The bind volume the app and the log router share.
const SHARED_VOLUME: &str = "shared";
/// The EFS volume.
const EFS_VOLUME: &str = "efs";
/// Envoy's user id, which the proxy configuration exempts from redirection.
const ENVOY_UID: &str = "1337";
/// The inference accelerator device the app asks for.
const ACCELERATOR_DEVICE: &str = "device_1";

type RegisterTaskDefinition =
    aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;

/// Every task-level field of [`TaskDefinitionKind::Maximal`] and its containers.
fn maximal_task_fields(
    request: RegisterTaskDefinition,
    input: &TaskDefInput<'_>,
) -> anyhow::Result<RegisterTaskDefinition> {
    let efs = EfsVolumeConfiguration::builder()
        .file_system_id(EFS_FILE_SYSTEM_ID)
        .root_directory("/orders")
        .transit_encryption(EfsTransitEncryption::Enabled)
        .transit_encryption_port(2049)
        .authorization_config(
            EfsAuthorizationConfig::builder()
                .access_point_id(EFS_ACCESS_POINT_ID)
                .iam(EfsAuthorizationConfigIam::Enabled)
                .build(),
        )
        .build()
        .context("building the EFS volume configuration")?;
    let proxy = ProxyConfiguration::builder()
        .r#type(ProxyConfigurationType::Appmesh)
        .container_name(ENVOY_CONTAINER)
        .properties(kv("IgnoredUID", ENVOY_UID))
        .properties(kv("AppPorts", APP_PORT.to_string()))
        .properties(kv("ProxyIngressPort", "15000"))
        .properties(kv("ProxyEgressPort", "15001"))
        .properties(kv("EgressIgnoredIPs", "169.254.170.2,169.254.169.254"))
        .build()
        .context("building the App Mesh proxy configuration")?;
    // Elastic Inference is retired and its setter deprecated, but RegisterTaskDefinition
    // still takes it and moto keeps it: the clone must carry it like any other field.
    #[allow(deprecated)]
    let request = request
        .cpu("1024")
        .memory("2048")
        .set_container_definitions(Some(maximal_container_definitions(input)?))
        .volumes(Volume::builder().name(SHARED_VOLUME).build())
        .volumes(
            Volume::builder()
                .name(EFS_VOLUME)
                .efs_volume_configuration(efs)
                .build(),
        )
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                .expression("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]")
                .build(),
        )
        .pid_mode(PidMode::Task)
        .proxy_configuration(proxy)
        .inference_accelerators(
            aws_sdk_ecs::types::InferenceAccelerator::builder()
                .device_name(ACCELERATOR_DEVICE)
                .device_type("eia2.medium")
                .build()
                .context("building the inference accelerator")?,
        )
        .ephemeral_storage(EphemeralStorage::builder().size_in_gib(50).build())
        .tags(ecs_tag("team", "orders"))
        .tags(ecs_tag("cost-center", "4711"))
        .tags(ecs_tag("environment", input.family));
    Ok(request)
}

fn kv(name: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair::builder().name(name).value(value).build()
}

fn ecs_tag(key: &str, value: &str) -> aws_sdk_ecs::types::Tag {
    aws_sdk_ecs::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

fn secret(name: &str, value_from: impl Into<String>) -> anyhow::Result<Secret> {
    Secret::builder()
        .name(name)
        .value_from(value_from)
        .build()
        .with_context(|| format!("building secret {name}"))
}

/// The three containers of [`TaskDefinitionKind::Maximal`]: the app with nearly every
/// container field, a FireLens log router and an Envoy proxy.
fn maximal_container_definitions(
    input: &TaskDefInput<'_>,
) -> anyhow::Result<Vec<ContainerDefinition>> {
    let secrets = input.secrets;
    let mut app = ContainerDefinition::builder()
        .name(APP_CONTAINER)
        .image(input.image)
        .repository_credentials(
            RepositoryCredentials::builder()
                .credentials_parameter(&secrets.api_token_arn)
                .build()
                .context("building the repository credentials")?,
        )
        .essential(true)
        .cpu(512)
        .memory(1024)
        .memory_reservation(768)
        .port_mappings(
            PortMapping::builder()
                .name("http")
                .container_port(APP_PORT)
                .host_port(APP_PORT)
                .protocol(TransportProtocol::Tcp)
                .app_protocol(ApplicationProtocol::Http)
                .build(),
        )
        .port_mappings(
            PortMapping::builder()
                .name("metrics")
                .container_port(9090)
                .host_port(9090)
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .restart_policy(
            ContainerRestartPolicy::builder()
                .enabled(true)
                .ignored_exit_codes(0)
                .restart_attempt_period(60)
                .build()
                .context("building the restart policy")?,
        )
        .entry_point("/app/bin/orders")
        .command("serve")
        .command(format!("--port={APP_PORT}"))
        .environment(kv("SERVICE_NAME", SERVICE_NAME))
        .environment(kv("PORT", APP_PORT.to_string()))
        .environment(kv("DT_TENANT_URL", "https://abc12345.live.dynatrace.com"))
        .environment(kv("LOG_LEVEL", "info"))
        .environment_files(
            EnvironmentFile::builder()
                .value("arn:aws:s3:::orders-config/app.env")
                .r#type(EnvironmentFileType::S3)
                .build()
                .context("building the environment file")?,
        )
        .mount_points(
            MountPoint::builder()
                .source_volume(SHARED_VOLUME)
                .container_path("/data")
                .read_only(false)
                .build(),
        )
        .mount_points(
            MountPoint::builder()
                .source_volume(EFS_VOLUME)
                .container_path("/mnt/efs")
                .read_only(true)
                .build(),
        )
        .volumes_from(
            VolumeFrom::builder()
                .source_container(LOG_ROUTER_CONTAINER)
                .read_only(true)
                .build(),
        )
        .linux_parameters(
            LinuxParameters::builder()
                .init_process_enabled(true)
                .capabilities(
                    KernelCapabilities::builder()
                        .add("SYS_PTRACE")
                        .drop("NET_RAW")
                        .build(),
                )
                .build(),
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name(LOG_ROUTER_CONTAINER)
                .condition(ContainerCondition::Start)
                .build()
                .context("building the app's dependency on the log router")?,
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name(ENVOY_CONTAINER)
                .condition(ContainerCondition::Healthy)
                .build()
                .context("building the app's dependency on Envoy")?,
        )
        .start_timeout(30)
        .stop_timeout(60)
        .version_consistency(VersionConsistency::Enabled)
        .user("1000:1000")
        .working_directory("/app")
        .readonly_root_filesystem(true)
        .docker_labels("team", "orders")
        .docker_labels("com.datadoghq.ad.check_names", "[\"orders\"]")
        .ulimits(
            Ulimit::builder()
                .name(UlimitName::Nofile)
                .soft_limit(65_536)
                .hard_limit(65_536)
                .build()
                .context("building the nofile ulimit")?,
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awsfirelens)
                .options("Name", "dynatrace")
                .options("Endpoint", "abc12345.live.dynatrace.com")
                .secret_options(secret(
                    "apiToken",
                    json_key_ref(&secrets.tokens_arn, "DT_API_TOKEN"),
                )?)
                .build()
                .context("building the app's FireLens log configuration")?,
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command(format!(
                    "wget -qO- http://localhost:{APP_PORT}{} || exit 1",
                    input.health_check_path
                ))
                .interval(10)
                .timeout(5)
                .retries(3)
                .start_period(20)
                .build()
                .context("building the app's health check")?,
        )
        .system_controls(
            SystemControl::builder()
                .namespace("net.core.somaxconn")
                .value("1024")
                .build(),
        )
        .resource_requirements(
            ResourceRequirement::builder()
                .r#type(EcsResourceType::InferenceAccelerator)
                .value(ACCELERATOR_DEVICE)
                .build()
                .context("building the accelerator requirement")?,
        );
    for (name, value_from) in secrets.container_secrets() {
        app = app.secrets(secret(&name, value_from)?);
    }
    let log_router = ContainerDefinition::builder()
        .name(LOG_ROUTER_CONTAINER)
        .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4")
        .essential(true)
        .cpu(64)
        .memory(128)
        .user("0")
        .firelens_configuration(
            FirelensConfiguration::builder()
                .r#type(FirelensConfigurationType::Fluentbit)
                .options("enable-ecs-log-metadata", "true")
                .options("config-file-type", "file")
                .options("config-file-value", "/fluent-bit/configs/parse-json.conf")
                .build()
                .context("building the FireLens configuration")?,
        )
        .environment(kv("FLB_LOG_LEVEL", "warn"))
        .log_configuration(awslogs(input.log_group, "firelens")?);
    let envoy = ContainerDefinition::builder()
        .name(ENVOY_CONTAINER)
        .image("public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod")
        .essential(true)
        .cpu(128)
        .memory(256)
        .user(ENVOY_UID)
        .environment(kv(
            "APPMESH_RESOURCE_ARN",
            format!("arn:aws:appmesh:{REGION}:{ACCOUNT_ID}:mesh/orders/virtualNode/orders"),
        ))
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -s http://localhost:9901/server_info | grep state | grep -q LIVE")
                .interval(5)
                .timeout(2)
                .retries(3)
                .start_period(10)
                .build()
                .context("building Envoy's health check")?,
        )
        .ulimits(
            Ulimit::builder()
                .name(UlimitName::Nofile)
                .soft_limit(15_000)
                .hard_limit(15_000)
                .build()
                .context("building Envoy's nofile ulimit")?,
        )
        .log_configuration(awslogs(input.log_group, ENVOY_CONTAINER)?);
    Ok(vec![app.build(), log_router.build(), envoy.build()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample_secrets() -> Secrets {
        Secrets {
            api_token_name: "bg/dynatrace/api-token".into(),
            api_token_arn:
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:bg/dynatrace/api-token-AbCdEf"
                    .into(),
            api_token: tokens::random_token(),
            tokens_name: "bg/dynatrace/tokens".into(),
            tokens_arn:
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:bg/dynatrace/tokens-GhIjKl"
                    .into(),
            tokens_api_token: tokens::random_token(),
            tokens_paas_token: tokens::random_token(),
        }
    }

    #[test]
    fn names_carry_the_suffix_and_bad_suffixes_are_refused() {
        assert_eq!(EnvSpec::new("").prefix().unwrap(), "bg");
        assert_eq!(EnvSpec::new("t1-x").prefix().unwrap(), "bg-t1-x");
        for bad in [
            "UPPER",
            "has_underscore",
            "-lead",
            "trail-",
            "thirteen-char",
        ] {
            assert!(
                EnvSpec::new(bad).prefix().is_err(),
                "{bad:?} should be refused"
            );
        }
        let s = random_suffix(8);
        assert_eq!(s.len(), 8);
        assert!(EnvSpec::new(s).prefix().is_ok());
    }

    #[test]
    fn the_paas_token_is_referenced_by_its_json_key() {
        let s = sample_secrets();
        let block = s.container_secrets();
        assert_eq!(
            block[0],
            ("DT_API_TOKEN".to_string(), s.api_token_arn.clone())
        );
        assert_eq!(
            block[1].1,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:bg/dynatrace/tokens-GhIjKl:DT_PAAS_TOKEN::"
        );
    }

    #[test]
    fn every_container_has_memory_and_the_app_has_the_secrets_block() {
        let secrets = sample_secrets();
        let input = TaskDefInput {
            family: "bg-orders",
            image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/bg/orders@sha256:abc",
            execution_role_arn: "arn:aws:iam::123456789012:role/x",
            task_role_arn: "arn:aws:iam::123456789012:role/y",
            log_group: "/ecs/bg-orders",
            secrets: &secrets,
            health_check_path: "/health",
            kind: TaskDefinitionKind::Standard,
        };
        let defs = container_definitions(&input).unwrap();
        assert!(defs.iter().all(|c| c.memory().is_some()));
        let app = defs
            .iter()
            .find(|c| c.name() == Some(APP_CONTAINER))
            .unwrap();
        let names: Vec<_> = app.secrets().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["DT_API_TOKEN", "DT_PAAS_TOKEN"]);
        assert!(
            app.secrets()
                .iter()
                .all(|s| !secrets.values().contains(&s.value_from()))
        );
        assert!(defs.iter().any(|c| c.firelens_configuration().is_some()));
    }
}
