//! SDK adapters implementing [`crate::ports`].
//!
//! Each adapter is a thin `impl` of one port trait over one SDK client: it makes the calls,
//! turns the modelled "not found" errors into [`crate::Error::InvalidInput`] (or into success
//! where the port says so), and wraps every other SDK error with [`crate::Error::aws`], which
//! keeps the operation, the resource and the service's code and message.
//!
//! The clients make exactly one attempt per call: the state machine owns retries, with
//! backoff and jitter, and a Lambda that retried inside would hide throttling from it and
//! burn its own timeout.

use std::time::Duration;

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

pub mod cloudwatch;
pub mod ecr;
pub mod ecs;
pub mod elb;
pub mod secrets;
pub mod sfn;

pub use cloudwatch::SdkCloudWatch;
pub use ecr::SdkEcr;
pub use ecs::SdkEcs;
pub use elb::SdkElb;
pub use sfn::SdkSfn;

/// How long one AWS call may take, connection and response included, before it fails as
/// [`crate::Error::Transient`].
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK clients every step function builds once at init.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// Amazon ECS: services, task sets, task definitions.
    pub ecs: SdkEcs,
    /// Elastic Load Balancing v2: listener weights, target health.
    pub elb: SdkElb,
    /// Amazon ECR: tag to digest.
    pub ecr: SdkEcr,
    /// Amazon CloudWatch: alarm states.
    pub cloudwatch: SdkCloudWatch,
}

impl AwsClients {
    /// Clients from the environment's configuration (region, credentials, and the endpoint
    /// from `AWS_ENDPOINT_URL`, which points them at the local AWS server), with SDK retries
    /// off and an [`OPERATION_TIMEOUT`].
    pub async fn from_env() -> Self {
        Self::from_conf(&sdk_config().await)
    }

    /// Clients from an already loaded configuration.
    pub fn from_conf(conf: &SdkConfig) -> Self {
        AwsClients {
            ecs: SdkEcs::new(aws_sdk_ecs::Client::new(conf)),
            elb: SdkElb::new(aws_sdk_elasticloadbalancingv2::Client::new(conf)),
            ecr: SdkEcr::new(aws_sdk_ecr::Client::new(conf)),
            cloudwatch: SdkCloudWatch::new(aws_sdk_cloudwatch::Client::new(conf)),
        }
    }
}

/// The shared SDK configuration: [`aws_config::load_from_env`]'s sources, one attempt per
/// call, and an [`OPERATION_TIMEOUT`].
pub async fn sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// [`sdk_config`]'s loader, to override a source (region, credentials) before loading.
///
/// Inside a Lambda function the calls carry `app/<function name>` in their user agent, so
/// CloudTrail (and the local stack's call counts) tell which function made each call.
pub fn config_loader() -> ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    match std::env::var(FUNCTION_NAME_VAR)
        .ok()
        .and_then(|name| aws_config::AppName::new(name).ok())
    {
        Some(app) => loader.app_name(app),
        None => loader,
    }
}

/// The function's name, set by Lambda (and by `cargo lambda watch` locally).
pub const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Whether the SDK error is a modelled service error for which `is` holds.
pub(crate) fn service_error_is<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    is: impl FnOnce(&E) -> bool,
) -> bool {
    err.as_service_error().is_some_and(is)
}

/// The service's message of an SDK error, for messages that quote AWS.
pub(crate) fn aws_message<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(aws_smithy_types::error::metadata::ProvideErrorMetadata::message)
        .unwrap_or("no message")
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_make_one_attempt_and_give_up_after_the_operation_timeout() {
        let conf = config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::for_tests())
            .load()
            .await;

        assert_eq!(conf.retry_config().unwrap().max_attempts(), 1);
        assert_eq!(
            conf.timeout_config().unwrap().operation_timeout(),
            Some(OPERATION_TIMEOUT)
        );
        let clients = AwsClients::from_conf(&conf);
        assert_eq!(
            clients
                .ecs
                .client()
                .config()
                .retry_config()
                .unwrap()
                .max_attempts(),
            1
        );
    }

    /// The adapters against the local AWS server (moto): run with
    /// `AWS_ENDPOINT_URL=http://127.0.0.1:PORT cargo test -p bluegreen -- --ignored local_aws`.
    mod local_aws {
        use aws_sdk_ec2::types::{AttributeBooleanValue, Filter};
        use aws_sdk_ecs::types as ecs;
        use aws_sdk_elasticloadbalancingv2::types as elb;

        use super::*;
        use crate::ports::{
            Ecs, ImageRegistry, LaunchSpec, LoadBalancer, NewTaskSet, TrafficRoute,
            WeightedTargetGroup,
        };
        use crate::taskdef;

        async fn conf() -> SdkConfig {
            assert!(
                std::env::var("AWS_ENDPOINT_URL")
                    .is_ok_and(|u| u.contains("127.0.0.1") || u.contains("localhost")),
                "set AWS_ENDPOINT_URL to the local AWS server"
            );
            config_loader()
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_ecs::config::Credentials::for_tests())
                .load()
                .await
        }

        fn unique(prefix: &str) -> String {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            format!("{prefix}-{nanos:x}")
        }

        fn w(tg: &str, weight: i32) -> WeightedTargetGroup {
            WeightedTargetGroup {
                target_group_arn: tg.into(),
                weight,
            }
        }

        struct Net {
            subnet_ids: Vec<String>,
            sg: String,
            listener: String,
            rule: String,
            tg_a: String,
            tg_b: String,
        }

        /// The default VPC (DNS hostnames on), a security group, an ALB with two ip target
        /// groups, an HTTP listener forwarding plainly to A and a path rule doing the same.
        async fn network(conf: &SdkConfig) -> Net {
            let sdk_elb = aws_sdk_elasticloadbalancingv2::Client::new(conf);
            let ec2 = aws_sdk_ec2::Client::new(conf);

            // Network: the default VPC, DNS hostnames on, a security group.
            let subnets = ec2
                .describe_subnets()
                .filters(
                    Filter::builder()
                        .name("default-for-az")
                        .values("true")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            let subnet_ids: Vec<String> = subnets
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_id().map(str::to_string))
                .take(2)
                .collect();
            let vpc = subnets.subnets()[0].vpc_id().unwrap().to_string();
            ec2.modify_vpc_attribute()
                .vpc_id(&vpc)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .unwrap();
            let sg = ec2
                .create_security_group()
                .group_name(unique("orders"))
                .description("orders")
                .vpc_id(&vpc)
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_string();

            // Load balancer: two ip target groups, a listener forwarding plainly to A, a rule.
            let lb = sdk_elb
                .create_load_balancer()
                .name(unique("demo"))
                .set_subnets(Some(subnet_ids.clone()))
                .security_groups(&sg)
                .send()
                .await
                .unwrap();
            let lb_arn = lb.load_balancers()[0]
                .load_balancer_arn()
                .unwrap()
                .to_string();
            let mut tgs = Vec::new();
            for name in ["a", "b"] {
                let tg = sdk_elb
                    .create_target_group()
                    .name(unique(&format!("orders-{name}")))
                    .protocol(elb::ProtocolEnum::Http)
                    .port(8080)
                    .vpc_id(&vpc)
                    .target_type(elb::TargetTypeEnum::Ip)
                    .send()
                    .await
                    .unwrap();
                tgs.push(
                    tg.target_groups()[0]
                        .target_group_arn()
                        .unwrap()
                        .to_string(),
                );
            }
            let (tg_a, tg_b) = (tgs[0].clone(), tgs[1].clone());
            let listener = sdk_elb
                .create_listener()
                .load_balancer_arn(&lb_arn)
                .protocol(elb::ProtocolEnum::Http)
                .port(80)
                .default_actions(
                    elb::Action::builder()
                        .r#type(elb::ActionTypeEnum::Forward)
                        .target_group_arn(&tg_a)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .listeners()[0]
                .listener_arn()
                .unwrap()
                .to_string();
            let rule = sdk_elb
                .create_rule()
                .listener_arn(&listener)
                .priority(10)
                .conditions(
                    elb::RuleCondition::builder()
                        .field("path-pattern")
                        .values("/orders/*")
                        .build(),
                )
                .actions(
                    elb::Action::builder()
                        .r#type(elb::ActionTypeEnum::Forward)
                        .target_group_arn(&tg_a)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .rules()[0]
                .rule_arn()
                .unwrap()
                .to_string();

            Net {
                subnet_ids,
                sg,
                listener,
                rule,
                tg_a,
                tg_b,
            }
        }

        #[tokio::test]
        #[ignore = "needs the local AWS server (AWS_ENDPOINT_URL)"]
        async fn local_aws_keeps_a_maximal_task_definition_through_register_and_describe() {
            let conf = conf().await;
            let clients = AwsClients::from_conf(&conf);
            let mut doc = crate::taskdef::tests::maximal();
            doc.definition.family = Some(unique("orders"));

            let registered = clients.ecs.register_task_definition(&doc).await.unwrap();
            let latest = clients
                .ecs
                .task_definition(doc.definition.family().unwrap())
                .await
                .unwrap();

            assert_eq!(
                taskdef::differences(&doc, &registered),
                Vec::<String>::new()
            );
            assert_eq!(
                taskdef::differences(&registered, &latest),
                Vec::<String>::new()
            );
            let arn = registered
                .definition
                .task_definition_arn()
                .unwrap()
                .to_string();
            clients.ecs.deregister_task_definition(&arn).await.unwrap();
            clients.ecs.deregister_task_definition(&arn).await.unwrap();
        }

        #[tokio::test]
        #[ignore = "needs the local AWS server (AWS_ENDPOINT_URL)"]
        async fn local_aws_drops_enable_fault_injection_and_the_comparison_catches_it() {
            let conf = conf().await;
            let clients = AwsClients::from_conf(&conf);
            let mut doc = crate::taskdef::tests::maximal();
            doc.definition.family = Some(unique("orders"));
            doc.definition.enable_fault_injection = Some(true);

            let registered = clients.ecs.register_task_definition(&doc).await.unwrap();

            // moto does not store enableFaultInjection; the comparison catches the loss.
            assert_eq!(
                taskdef::differences(&doc, &registered),
                ["enableFaultInjection"]
            );
        }

        #[tokio::test]
        #[ignore = "needs the local AWS server (AWS_ENDPOINT_URL)"]
        async fn local_aws_task_sets_listeners_and_images_round_trip() {
            let conf = conf().await;
            let clients = AwsClients::from_conf(&conf);
            let (sdk_ecs, sdk_ecr) = (clients.ecs.client(), clients.ecr.client());
            let sdk_elb = clients.elb.client();
            let Net {
                subnet_ids,
                sg,
                listener,
                rule,
                tg_a,
                tg_b,
            } = network(&conf).await;

            // Weights on the default action and on the rule.
            let default_route = TrafficRoute {
                listener_arn: listener.clone(),
                rule_arn: None,
            };
            assert_eq!(
                clients.elb.forward_weights(&default_route).await.unwrap(),
                [w(&tg_a, 1)]
            );
            clients
                .elb
                .set_forward_weights(&default_route, &[w(&tg_a, 90), w(&tg_b, 10)])
                .await
                .unwrap();
            assert_eq!(
                clients.elb.forward_weights(&default_route).await.unwrap(),
                [w(&tg_a, 90), w(&tg_b, 10)]
            );
            let rule_route = TrafficRoute {
                listener_arn: listener.clone(),
                rule_arn: Some(rule.clone()),
            };
            clients
                .elb
                .set_forward_weights(&rule_route, &[w(&tg_a, 0), w(&tg_b, 100)])
                .await
                .unwrap();
            assert_eq!(
                clients.elb.forward_weights(&rule_route).await.unwrap(),
                [w(&tg_a, 0), w(&tg_b, 100)]
            );
            let described = sdk_elb
                .describe_rules()
                .rule_arns(&rule)
                .send()
                .await
                .unwrap();
            assert_eq!(
                described.rules()[0].conditions().len(),
                1,
                "the rule keeps its condition"
            );
            assert_eq!(
                clients.elb.forward_weights(&default_route).await.unwrap(),
                [w(&tg_a, 90), w(&tg_b, 10)]
            );
            assert_eq!(clients.elb.deregistration_delay(&tg_a).await.unwrap(), 300);
            assert!(clients.elb.target_health(&tg_b).await.unwrap().is_empty());
            let missing =
                listener.replace(listener.rsplit('/').next().unwrap(), "0000000000000000");
            let err = clients
                .elb
                .forward_weights(&TrafficRoute {
                    listener_arn: missing,
                    rule_arn: None,
                })
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{err}");

            // ECS: an EXTERNAL service, a task set on B with blue's network settings.
            let cluster = unique("demo");
            sdk_ecs
                .create_cluster()
                .cluster_name(&cluster)
                .send()
                .await
                .unwrap();
            let family = unique("orders");
            let td = sdk_ecs
                .register_task_definition()
                .family(&family)
                .network_mode(ecs::NetworkMode::Awsvpc)
                .requires_compatibilities(ecs::Compatibility::Fargate)
                .cpu("256")
                .memory("512")
                .container_definitions(
                    ecs::ContainerDefinition::builder()
                        .name("app")
                        .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:v1")
                        .memory(512)
                        .port_mappings(ecs::PortMapping::builder().container_port(8080).build())
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap()
                .to_string();
            let err = clients.ecs.service(&cluster, "orders").await.unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{err}");
            let err = clients
                .ecs
                .service("no-such-cluster", "orders")
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{err}");
            sdk_ecs
                .create_service()
                .cluster(&cluster)
                .service_name("orders")
                .desired_count(2)
                .deployment_controller(
                    ecs::DeploymentController::builder()
                        .r#type(ecs::DeploymentControllerType::External)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            let launch = LaunchSpec {
                launch_type: Some(ecs::LaunchType::Fargate),
                capacity_provider_strategy: Vec::new(),
                platform_version: Some("1.4.0".into()),
                network_configuration: Some(
                    ecs::NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            ecs::AwsVpcConfiguration::builder()
                                .set_subnets(Some(subnet_ids.clone()))
                                .security_groups(&sg)
                                .assign_public_ip(ecs::AssignPublicIp::Disabled)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                ),
                service_registries: Vec::new(),
            };
            let spec = NewTaskSet {
                cluster: cluster.clone(),
                service: "orders".into(),
                task_definition_arn: td.clone(),
                external_id: "orders-2222".into(),
                load_balancers: vec![
                    ecs::LoadBalancer::builder()
                        .target_group_arn(&tg_b)
                        .container_name("app")
                        .container_port(8080)
                        .build(),
                ],
                launch: launch.clone(),
                scale_percent: 100.0,
                client_token: crate::steps::create_green::client_token("orders-2222"),
            };
            let created = clients.ecs.create_task_set(&spec).await.unwrap();
            let svc = clients.ecs.service(&cluster, "orders").await.unwrap();
            assert_eq!(svc.deployment_controller.as_deref(), Some("EXTERNAL"));
            let ts = svc.by_external_id("orders-2222").unwrap();
            assert_eq!(ts.id, created.id);
            assert_eq!(ts.launch, launch);
            assert_eq!(ts.target_group_arn(), Some(tg_b.as_str()));
            assert_eq!(ts.scale_percent, 100.0);
            assert!(ts.created_at.is_some());
            clients
                .ecs
                .set_primary_task_set(&cluster, "orders", &created.id)
                .await
                .unwrap();
            assert_eq!(
                clients
                    .ecs
                    .service(&cluster, "orders")
                    .await
                    .unwrap()
                    .primary()
                    .unwrap()
                    .id,
                created.id
            );
            assert!(
                clients
                    .ecs
                    .stopped_tasks(&cluster, &created.id)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let second = clients
                .ecs
                .create_task_set(&NewTaskSet {
                    external_id: "orders-3333".into(),
                    client_token: "bg-other".into(),
                    ..spec.clone()
                })
                .await
                .unwrap();
            clients
                .ecs
                .delete_task_set(&cluster, "orders", &second.id)
                .await
                .unwrap();
            clients
                .ecs
                .delete_task_set(&cluster, "orders", &second.id)
                .await
                .unwrap();
            // The deleted one is listed DRAINING until its tasks stopped, as in ECS.
            let listed = clients
                .ecs
                .service(&cluster, "orders")
                .await
                .unwrap()
                .task_sets;
            let live: Vec<_> = listed.iter().filter(|t| !t.is_draining()).collect();
            assert_eq!(live.len(), 1, "{listed:?}");
            assert_eq!(live[0].id, created.id);

            // ECR: a pushed tag resolves to its digest.
            let repository = unique("orders");
            sdk_ecr
                .create_repository()
                .repository_name(&repository)
                .send()
                .await
                .unwrap();
            let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
            let pushed = sdk_ecr
                .put_image()
                .repository_name(&repository)
                .image_manifest(manifest)
                .image_tag("v2")
                .send()
                .await
                .unwrap();
            let digest = pushed
                .image()
                .unwrap()
                .image_id()
                .unwrap()
                .image_digest()
                .unwrap()
                .to_string();
            let registry = pushed.image().unwrap().registry_id().unwrap().to_string();
            assert_eq!(
                clients
                    .ecr
                    .digest_of(&registry, &repository, "v2")
                    .await
                    .unwrap(),
                Some(digest)
            );
            assert_eq!(
                clients
                    .ecr
                    .digest_of(&registry, &repository, "v3")
                    .await
                    .unwrap(),
                None
            );
            let err = clients
                .ecr
                .digest_of(&registry, "no-such-repository", "v2")
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{err}");
        }

        #[tokio::test]
        #[ignore = "needs the local AWS server (AWS_ENDPOINT_URL)"]
        async fn local_aws_validate_and_create_green_end_to_end() {
            // Given an EXTERNAL service whose primary task set runs orders:v1 on A
            let conf = conf().await;
            let clients = AwsClients::from_conf(&conf);
            let (sdk_ecs, sdk_ecr) = (clients.ecs.client(), clients.ecr.client());
            let Net {
                subnet_ids,
                sg,
                listener,
                tg_a,
                tg_b,
                ..
            } = network(&conf).await;
            let default_route = TrafficRoute {
                listener_arn: listener.clone(),
                rule_arn: None,
            };
            clients
                .elb
                .set_forward_weights(&default_route, &[w(&tg_a, 100), w(&tg_b, 0)])
                .await
                .unwrap();
            let repository = unique("orders");
            sdk_ecr
                .create_repository()
                .repository_name(&repository)
                .send()
                .await
                .unwrap();
            let mut digests = Vec::new();
            // moto's digest is the sha256 of the layer digests, so the layers must differ.
            for (tag, layer) in [("v1", "1"), ("v2", "2")] {
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"sha256:{}"}}]}}"#,
                    "0".repeat(64),
                    layer.repeat(64)
                );
                let pushed = sdk_ecr
                    .put_image()
                    .repository_name(&repository)
                    .image_manifest(manifest)
                    .image_tag(tag)
                    .send()
                    .await
                    .unwrap();
                digests.push(
                    pushed
                        .image()
                        .unwrap()
                        .image_id()
                        .unwrap()
                        .image_digest()
                        .unwrap()
                        .to_string(),
                );
            }
            let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
            let mut blue_doc = crate::taskdef::tests::maximal();
            blue_doc.definition.family = Some(unique("orders"));
            for c in blue_doc
                .definition
                .container_definitions
                .iter_mut()
                .flatten()
            {
                // moto starts FARGATE tasks only when every container has a memory limit.
                c.memory = Some(c.memory.unwrap_or(256));
                if c.name() == Some("app") {
                    c.image = Some(format!("{registry}/{repository}@{}", digests[0]));
                }
            }
            let blue_td = clients
                .ecs
                .register_task_definition(&blue_doc)
                .await
                .unwrap();
            let cluster = unique("demo");
            sdk_ecs
                .create_cluster()
                .cluster_name(&cluster)
                .send()
                .await
                .unwrap();
            sdk_ecs
                .create_service()
                .cluster(&cluster)
                .service_name("orders")
                .desired_count(2)
                .deployment_controller(
                    ecs::DeploymentController::builder()
                        .r#type(ecs::DeploymentControllerType::External)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            let launch = LaunchSpec {
                launch_type: Some(ecs::LaunchType::Fargate),
                capacity_provider_strategy: Vec::new(),
                platform_version: Some("1.4.0".into()),
                network_configuration: Some(
                    ecs::NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            ecs::AwsVpcConfiguration::builder()
                                .set_subnets(Some(subnet_ids))
                                .security_groups(&sg)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                ),
                service_registries: Vec::new(),
            };
            let blue = clients
                .ecs
                .create_task_set(&NewTaskSet {
                    cluster: cluster.clone(),
                    service: "orders".into(),
                    task_definition_arn: blue_td.definition.task_definition_arn().unwrap().into(),
                    external_id: "orders-1111".into(),
                    load_balancers: vec![
                        ecs::LoadBalancer::builder()
                            .target_group_arn(&tg_a)
                            .container_name("app")
                            .container_port(8080)
                            .build(),
                    ],
                    launch: launch.clone(),
                    scale_percent: 100.0,
                    client_token: "bg-blue".into(),
                })
                .await
                .unwrap();
            clients
                .ecs
                .set_primary_task_set(&cluster, "orders", &blue.id)
                .await
                .unwrap();

            // When the deployment of orders:v2 is validated and green is created (twice)
            let request = serde_json::json!({
                "cluster": cluster,
                "service": "orders",
                "container": "app",
                "image": format!("{registry}/{repository}:v2"),
                "listenerArn": listener,
                "targetGroupArns": [tg_a, tg_b],
            });
            let input = crate::steps::ValidateInput {
                request,
                execution_name: "orders-2222".into(),
                execution_arn: None,
            };
            let (e, l, r, a) = (
                &clients.ecs,
                &clients.elb,
                &clients.ecr,
                &clients.cloudwatch,
            );
            let config = crate::config::Config::default();
            let validated = crate::steps::validate::validate(e, l, r, a, &config, input)
                .await
                .unwrap();
            let step = crate::steps::StepInput {
                deployment: validated.deployment,
            };
            let none = None::<&crate::dynatrace::HttpDynatrace>;
            let out = crate::steps::create_green::create_green(e, l, r, none, step.clone())
                .await
                .unwrap();
            let again = crate::steps::create_green::create_green(e, l, r, none, step)
                .await
                .unwrap();

            // Then green runs v2 by digest on B, cloned from blue, and the re-run changes nothing
            assert_eq!(again, out);
            assert_eq!(out.image, format!("{registry}/{repository}@{}", digests[1]));
            assert_eq!(out.blue.id, blue.id);
            assert_eq!(out.green.target_group_arn, tg_b);
            let green_td = clients
                .ecs
                .task_definition(&out.green.task_definition_arn)
                .await
                .unwrap();
            assert_eq!(
                taskdef::differences(&blue_td, &green_td),
                ["containerDefinitions[app].image"]
            );
            let svc = clients.ecs.service(&cluster, "orders").await.unwrap();
            assert_eq!(svc.task_sets.len(), 2);
            let green = svc.by_external_id("orders-2222").unwrap();
            assert_eq!(
                green.launch.network_configuration,
                launch.network_configuration
            );
            assert_eq!(svc.primary().unwrap().id, blue.id);
        }
    }
}
