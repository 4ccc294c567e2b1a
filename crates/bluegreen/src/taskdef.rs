//! Task definition cloning: change one container's image, keep everything else, and prove it.
//!
//! Green's revision is blue's with one container's `image` changed. [`differences`] is the
//! proof: it compares two task definitions field by field, per container by name, and names
//! every field that differs (`containerDefinitions[app].secrets`), so a revision that ECS
//! registered differently than asked (a field dropped or rewritten on the round trip) is
//! caught and reported exactly.

use std::collections::HashMap;

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};

use crate::error::{Error, Result};
use crate::ports::TaskDefinitionDoc;

/// Fields ECS sets itself; they differ between any two revisions and are never compared.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

fn container_names(doc: &TaskDefinitionDoc) -> String {
    let names: Vec<&str> = doc
        .definition
        .container_definitions()
        .iter()
        .map(|c| c.name().unwrap_or("(unnamed)"))
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn revision_name(doc: &TaskDefinitionDoc) -> &str {
    doc.definition
        .task_definition_arn()
        .or(doc.definition.family())
        .unwrap_or("(unnamed task definition)")
}

fn missing_container(doc: &TaskDefinitionDoc, container: &str) -> Error {
    Error::InvalidInput(format!(
        "container {container:?} not found in task definition {}; its containers are: {}",
        revision_name(doc),
        container_names(doc)
    ))
}

/// The image of `container`.
///
/// # Errors
/// [`Error::InvalidInput`] naming the container and the containers that exist, when there
/// is no such container or it has no image.
pub fn image_of<'a>(doc: &'a TaskDefinitionDoc, container: &str) -> Result<&'a str> {
    let found = doc
        .definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .ok_or_else(|| missing_container(doc, container))?;
    found.image().ok_or_else(|| {
        Error::InvalidInput(format!(
            "container {container:?} of task definition {} has no image",
            revision_name(doc)
        ))
    })
}

/// `doc` with the `image` of `container` set to `image` and nothing else changed.
///
/// # Errors
/// [`Error::InvalidInput`] naming the container and the containers that exist, when there
/// is no such container.
pub fn with_image(
    doc: &TaskDefinitionDoc,
    container: &str,
    image: &str,
) -> Result<TaskDefinitionDoc> {
    let mut out = doc.clone();
    let found = out
        .definition
        .container_definitions
        .iter_mut()
        .flatten()
        .find(|c| c.name() == Some(container))
        .ok_or_else(|| missing_container(doc, container))?;
    found.image = Some(image.to_string());
    Ok(out)
}

/// `doc` with `vars` set in the `environment` of `container`: an existing variable keeps its
/// place and gets the new value, a new one is appended. Nothing else changes.
///
/// # Errors
/// [`Error::InvalidInput`] when there is no such container.
pub fn with_environment(
    doc: &TaskDefinitionDoc,
    container: &str,
    vars: &[(&str, String)],
) -> Result<TaskDefinitionDoc> {
    let mut out = doc.clone();
    let found = out
        .definition
        .container_definitions
        .iter_mut()
        .flatten()
        .find(|c| c.name() == Some(container))
        .ok_or_else(|| missing_container(doc, container))?;
    let env = found.environment.get_or_insert_with(Vec::new);
    for (name, value) in vars {
        match env.iter_mut().find(|kv| kv.name() == Some(*name)) {
            Some(kv) => kv.value = Some(value.clone()),
            None => env.push(
                aws_sdk_ecs::types::KeyValuePair::builder()
                    .name(*name)
                    .value(value.clone())
                    .build(),
            ),
        }
    }
    Ok(out)
}

/// The value of environment variable `name` of `container`, if set.
pub fn environment_of<'a>(
    doc: &'a TaskDefinitionDoc,
    container: &str,
    name: &str,
) -> Option<&'a str> {
    doc.definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))?
        .environment()
        .iter()
        .find(|kv| kv.name() == Some(name))
        .and_then(|kv| kv.value())
}

/// Compares the named fields of two values through their accessors (lists read through
/// the SDK's accessors, so an absent list equals an empty one), and builds the function
/// that blanks exactly those fields, so whatever is left can be compared as a whole.
macro_rules! fields {
    ($compare:ident, $blank:ident, $ty:ty; $($name:literal => $field:ident),* $(,)?) => {
        fn $compare(prefix: &str, e: &$ty, a: &$ty, out: &mut Vec<String>) {
            $(
                if e.$field() != a.$field() {
                    out.push(format!("{prefix}{}", $name));
                }
            )*
        }

        fn $blank(value: &$ty) -> $ty {
            let mut v = value.clone();
            $( v.$field = Default::default(); )*
            v
        }
    };
}

fields!(compare_task_fields, blank_task_fields, TaskDefinition;
    "family" => family,
    "taskRoleArn" => task_role_arn,
    "executionRoleArn" => execution_role_arn,
    "networkMode" => network_mode,
    "volumes" => volumes,
    "placementConstraints" => placement_constraints,
    "requiresCompatibilities" => requires_compatibilities,
    "cpu" => cpu,
    "memory" => memory,
    "pidMode" => pid_mode,
    "ipcMode" => ipc_mode,
    "proxyConfiguration" => proxy_configuration,
    "inferenceAccelerators" => inference_accelerators,
    "ephemeralStorage" => ephemeral_storage,
    "runtimePlatform" => runtime_platform,
);

fields!(compare_container_fields, blank_container_fields, ContainerDefinition;
    "image" => image,
    "repositoryCredentials" => repository_credentials,
    "cpu" => cpu,
    "memory" => memory,
    "memoryReservation" => memory_reservation,
    "links" => links,
    "portMappings" => port_mappings,
    "restartPolicy" => restart_policy,
    "entryPoint" => entry_point,
    "command" => command,
    "environmentFiles" => environment_files,
    "mountPoints" => mount_points,
    "volumesFrom" => volumes_from,
    "linuxParameters" => linux_parameters,
    "dependsOn" => depends_on,
    "startTimeout" => start_timeout,
    "stopTimeout" => stop_timeout,
    "versionConsistency" => version_consistency,
    "hostname" => hostname,
    "user" => user,
    "workingDirectory" => working_directory,
    "disableNetworking" => disable_networking,
    "privileged" => privileged,
    "readonlyRootFilesystem" => readonly_root_filesystem,
    "dnsServers" => dns_servers,
    "dnsSearchDomains" => dns_search_domains,
    "extraHosts" => extra_hosts,
    "dockerSecurityOptions" => docker_security_options,
    "interactive" => interactive,
    "pseudoTerminal" => pseudo_terminal,
    "ulimits" => ulimits,
    "logConfiguration" => log_configuration,
    "healthCheck" => health_check,
    "systemControls" => system_controls,
    "resourceRequirements" => resource_requirements,
    "firelensConfiguration" => firelens_configuration,
    "credentialSpecs" => credential_specs,
);

/// Sorted `(key, value)` pairs: for lists whose order carries no meaning.
fn unordered<T>(
    items: &[T],
    key: impl Fn(&T) -> (Option<&str>, Option<&str>),
) -> Vec<(Option<&str>, Option<&str>)> {
    let mut keys: Vec<_> = items.iter().map(key).collect();
    keys.sort_unstable();
    keys
}

fn environment(c: &ContainerDefinition) -> Vec<(Option<&str>, Option<&str>)> {
    unordered(c.environment(), |kv| (kv.name(), kv.value()))
}

fn secrets(c: &ContainerDefinition) -> Vec<(Option<&str>, Option<&str>)> {
    unordered(c.secrets(), |s| (Some(s.name()), Some(s.value_from())))
}

fn labels(c: &ContainerDefinition) -> Option<&HashMap<String, String>> {
    c.docker_labels().filter(|l| !l.is_empty())
}

fn compare_container(e: &ContainerDefinition, a: &ContainerDefinition, out: &mut Vec<String>) {
    let prefix = format!("containerDefinitions[{}].", e.name().unwrap_or("(unnamed)"));
    let before = out.len();
    compare_container_fields(&prefix, e, a, out);
    // ECS reads an absent `essential` as true.
    if e.essential().unwrap_or(true) != a.essential().unwrap_or(true) {
        out.push(format!("{prefix}essential"));
    }
    // Variables and secrets are looked up by name; their order means nothing.
    if environment(e) != environment(a) {
        out.push(format!("{prefix}environment"));
    }
    if secrets(e) != secrets(a) {
        out.push(format!("{prefix}secrets"));
    }
    if labels(e) != labels(a) {
        out.push(format!("{prefix}dockerLabels"));
    }
    if out.len() == before && blank_container(e) != blank_container(a) {
        out.push(format!(
            "{prefix}(a field this version does not compare by name)"
        ));
    }
}

fn blank_container(c: &ContainerDefinition) -> ContainerDefinition {
    let mut c = blank_container_fields(c);
    c.essential = None;
    c.environment = None;
    c.secrets = None;
    c.docker_labels = None;
    c
}

fn compare_containers(e: &TaskDefinition, a: &TaskDefinition, out: &mut Vec<String>) {
    let (ec, ac) = (e.container_definitions(), a.container_definitions());
    for c in ec {
        match ac.iter().find(|x| x.name() == c.name()) {
            Some(other) => compare_container(c, other, out),
            None => out.push(format!(
                "containerDefinitions[{}]",
                c.name().unwrap_or("(unnamed)")
            )),
        }
    }
    for c in ac {
        if !ec.iter().any(|x| x.name() == c.name()) {
            out.push(format!(
                "containerDefinitions[{}]",
                c.name().unwrap_or("(unnamed)")
            ));
        }
    }
    let order = |cs: &[ContainerDefinition]| {
        cs.iter()
            .map(|c| c.name().map(str::to_string))
            .collect::<Vec<_>>()
    };
    if out.is_empty() && order(ec) != order(ac) {
        out.push("containerDefinitions (order)".to_string());
    }
}

fn user_tags(doc: &TaskDefinitionDoc) -> Vec<(Option<&str>, Option<&str>)> {
    let mut tags: Vec<_> = doc
        .tags
        .iter()
        .filter(|t| {
            !t.key()
                .is_some_and(|k| k.to_ascii_lowercase().starts_with("aws:"))
        })
        .map(|t| (t.key(), t.value()))
        .collect();
    tags.sort_unstable();
    tags
}

fn blank_task(d: &TaskDefinition) -> TaskDefinition {
    let mut d = blank_task_fields(d);
    d.container_definitions = None;
    d.enable_fault_injection = None;
    d.task_definition_arn = None;
    d.revision = 0;
    d.status = None;
    d.requires_attributes = None;
    d.compatibilities = None;
    d.registered_at = None;
    d.registered_by = None;
    d.deregistered_at = None;
    d.delete_requested_at = None;
    d
}

/// The names of the fields in which `actual` differs from `expected`, ignoring the
/// [`READ_ONLY_FIELDS`]. Containers are matched by name and compared field by field
/// (`containerDefinitions[app].secrets`); a container only one side has is
/// `containerDefinitions[name]`. An absent list equals an empty one, an absent
/// `essential` is true and an absent `enableFaultInjection` false, as ECS reads them; the
/// order of `environment`, `secrets` and `tags` does not matter, and tags with the
/// reserved `aws:` prefix are not compared (only AWS sets them). Empty: the same task.
pub fn differences(expected: &TaskDefinitionDoc, actual: &TaskDefinitionDoc) -> Vec<String> {
    let (e, a) = (&expected.definition, &actual.definition);
    let mut out = Vec::new();
    compare_task_fields("", e, a, &mut out);
    compare_containers(e, a, &mut out);
    if e.enable_fault_injection().unwrap_or(false) != a.enable_fault_injection().unwrap_or(false) {
        out.push("enableFaultInjection".to_string());
    }
    if user_tags(expected) != user_tags(actual) {
        out.push("tags".to_string());
    }
    if out.is_empty() && blank_task(e) != blank_task(a) {
        out.push("(a task definition field this version does not compare by name)".to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_ecs::types as ecs;

    const SECRET: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynatrace/orders-AbCdEf";
    const V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const V2: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// A task definition using (nearly) everything a Fargate task can have, as described.
    pub(crate) fn maximal() -> TaskDefinitionDoc {
        let app = ecs::ContainerDefinition::builder()
            .name("app")
            .image(V1)
            .repository_credentials(
                ecs::RepositoryCredentials::builder()
                    .credentials_parameter(
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-x",
                    )
                    .build()
                    .unwrap(),
            )
            .cpu(256)
            .memory(512)
            .memory_reservation(256)
            .essential(true)
            .port_mappings(
                ecs::PortMapping::builder()
                    .container_port(8080)
                    .host_port(8080)
                    .protocol(ecs::TransportProtocol::Tcp)
                    .name("http")
                    .app_protocol(ecs::ApplicationProtocol::Http)
                    .build(),
            )
            .restart_policy(
                ecs::ContainerRestartPolicy::builder()
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .entry_point("/app/bin/orders")
            .command("serve")
            .command("--port=8080")
            .environment(
                ecs::KeyValuePair::builder()
                    .name("DT_TENANT")
                    .value("abc12345")
                    .build(),
            )
            .environment(
                ecs::KeyValuePair::builder()
                    .name("LOG_LEVEL")
                    .value("info")
                    .build(),
            )
            .environment_files(
                ecs::EnvironmentFile::builder()
                    .value("arn:aws:s3:::orders-config/app.env")
                    .r#type(ecs::EnvironmentFileType::S3)
                    .build()
                    .unwrap(),
            )
            .mount_points(
                ecs::MountPoint::builder()
                    .source_volume("shared")
                    .container_path("/data")
                    .read_only(false)
                    .build(),
            )
            .linux_parameters(
                ecs::LinuxParameters::builder()
                    .init_process_enabled(true)
                    .capabilities(ecs::KernelCapabilities::builder().drop("NET_RAW").build())
                    .build(),
            )
            .secrets(
                ecs::Secret::builder()
                    .name("DT_API_TOKEN")
                    .value_from(SECRET)
                    .build()
                    .unwrap(),
            )
            .secrets(
                ecs::Secret::builder()
                    .name("DT_PAAS_TOKEN")
                    .value_from(format!("{SECRET}:paasToken::"))
                    .build()
                    .unwrap(),
            )
            .depends_on(
                ecs::ContainerDependency::builder()
                    .container_name("log_router")
                    .condition(ecs::ContainerCondition::Start)
                    .build()
                    .unwrap(),
            )
            .start_timeout(30)
            .stop_timeout(60)
            .version_consistency(ecs::VersionConsistency::Enabled)
            .user("1000:1000")
            .working_directory("/app")
            .readonly_root_filesystem(true)
            .docker_labels("team", "payments")
            .ulimits(
                ecs::Ulimit::builder()
                    .name(ecs::UlimitName::Nofile)
                    .soft_limit(65_536)
                    .hard_limit(65_536)
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                ecs::LogConfiguration::builder()
                    .log_driver(ecs::LogDriver::Awsfirelens)
                    .options("Name", "dynatrace")
                    .secret_options(
                        ecs::Secret::builder()
                            .name("apiToken")
                            .value_from(format!("{SECRET}:logToken::"))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .health_check(
                ecs::HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f http://localhost:8080/health || exit 1")
                    .interval(10)
                    .timeout(5)
                    .retries(3)
                    .start_period(20)
                    .build()
                    .unwrap(),
            )
            .system_controls(
                ecs::SystemControl::builder()
                    .namespace("net.core.somaxconn")
                    .value("1024")
                    .build(),
            )
            .build();
        let log_router = ecs::ContainerDefinition::builder()
            .name("log_router")
            .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable")
            .essential(true)
            .memory_reservation(50)
            .firelens_configuration(
                ecs::FirelensConfiguration::builder()
                    .r#type(ecs::FirelensConfigurationType::Fluentbit)
                    .options("enable-ecs-log-metadata", "true")
                    .build()
                    .unwrap(),
            )
            .build();
        let envoy = ecs::ContainerDefinition::builder()
            .name("envoy")
            .image("public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod")
            .essential(true)
            .memory_reservation(128)
            .user("1337")
            .build();
        let definition = ecs::TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/orders:7")
            .revision(7)
            .status(ecs::TaskDefinitionStatus::Active)
            .family("orders")
            .task_role_arn("arn:aws:iam::123456789012:role/orders-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/orders-execution")
            .network_mode(ecs::NetworkMode::Awsvpc)
            .container_definitions(app)
            .container_definitions(log_router)
            .container_definitions(envoy)
            .volumes(ecs::Volume::builder().name("shared").build())
            .volumes(
                ecs::Volume::builder()
                    .name("efs")
                    .efs_volume_configuration(
                        ecs::EfsVolumeConfiguration::builder()
                            .file_system_id("fs-0123456789abcdef0")
                            .root_directory("/")
                            .transit_encryption(ecs::EfsTransitEncryption::Enabled)
                            .authorization_config(
                                ecs::EfsAuthorizationConfig::builder()
                                    .access_point_id("fsap-0123456789abcdef0")
                                    .iam(ecs::EfsAuthorizationConfigIam::Enabled)
                                    .build(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .placement_constraints(
                ecs::TaskDefinitionPlacementConstraint::builder()
                    .r#type(ecs::TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]")
                    .build(),
            )
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .compatibilities(ecs::Compatibility::Ec2)
            .compatibilities(ecs::Compatibility::Fargate)
            .requires_attributes(
                ecs::Attribute::builder()
                    .name("ecs.capability.secrets.asm.environment-variables")
                    .build()
                    .unwrap(),
            )
            .cpu("1024")
            .memory("2048")
            .pid_mode(ecs::PidMode::Task)
            .proxy_configuration(
                ecs::ProxyConfiguration::builder()
                    .r#type(ecs::ProxyConfigurationType::Appmesh)
                    .container_name("envoy")
                    .properties(
                        ecs::KeyValuePair::builder()
                            .name("IgnoredUID")
                            .value("1337")
                            .build(),
                    )
                    .properties(
                        ecs::KeyValuePair::builder()
                            .name("ProxyIngressPort")
                            .value("15000")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .ephemeral_storage(ecs::EphemeralStorage::builder().size_in_gib(50).build())
            .runtime_platform(
                ecs::RuntimePlatform::builder()
                    .cpu_architecture(ecs::CpuArchitecture::Arm64)
                    .operating_system_family(ecs::OsFamily::Linux)
                    .build(),
            )
            .enable_fault_injection(false)
            .registered_at(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .registered_by("arn:aws:iam::123456789012:role/deployer")
            .build();
        TaskDefinitionDoc {
            definition,
            tags: vec![
                ecs::Tag::builder().key("team").value("payments").build(),
                ecs::Tag::builder().key("cost-center").value("42").build(),
            ],
        }
    }

    fn app(doc: &mut TaskDefinitionDoc) -> &mut ecs::ContainerDefinition {
        doc.definition
            .container_definitions
            .as_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c.name() == Some("app"))
            .unwrap()
    }

    #[test]
    fn changing_the_image_differs_only_in_that_containers_image() {
        let blue = maximal();
        let green = with_image(&blue, "app", V2).unwrap();
        assert_eq!(
            differences(&blue, &green),
            ["containerDefinitions[app].image"]
        );
        assert_eq!(image_of(&green, "app").unwrap(), V2);
        assert_eq!(
            image_of(&green, "log_router").unwrap(),
            blue.definition.container_definitions()[1].image().unwrap()
        );
    }

    #[test]
    fn keeps_the_secrets_block_when_the_image_changes() {
        let green = with_image(&maximal(), "app", V2).unwrap();
        let app = &green.definition.container_definitions()[0];
        assert_eq!(app.secrets().len(), 2);
        assert_eq!(app.secrets()[0].value_from(), SECRET);
        assert_eq!(
            app.secrets()[1].value_from(),
            format!("{SECRET}:paasToken::")
        );
        assert_eq!(app.log_configuration().unwrap().secret_options().len(), 1);
    }

    #[test]
    fn a_clone_differs_in_nothing() {
        assert!(differences(&maximal(), &maximal()).is_empty());
    }

    #[test]
    fn every_other_field_change_is_reported_by_name() {
        type Change = fn(&mut TaskDefinitionDoc);
        let cases: Vec<(&str, Change)> = vec![
            ("family", |d| d.definition.family = Some("other".into())),
            ("taskRoleArn", |d| d.definition.task_role_arn = None),
            ("executionRoleArn", |d| {
                d.definition.execution_role_arn = Some("arn:aws:iam::1:role/x".into())
            }),
            ("networkMode", |d| {
                d.definition.network_mode = Some(ecs::NetworkMode::Bridge)
            }),
            ("volumes", |d| {
                d.definition
                    .volumes
                    .as_mut()
                    .unwrap()
                    .pop()
                    .map(|_| ())
                    .unwrap()
            }),
            ("placementConstraints", |d| {
                d.definition.placement_constraints = None
            }),
            ("requiresCompatibilities", |d| {
                d.definition.requires_compatibilities = Some(vec![ecs::Compatibility::Ec2])
            }),
            ("cpu", |d| d.definition.cpu = Some("2048".into())),
            ("memory", |d| d.definition.memory = Some("4096".into())),
            ("pidMode", |d| d.definition.pid_mode = None),
            ("ipcMode", |d| {
                d.definition.ipc_mode = Some(ecs::IpcMode::Task)
            }),
            ("proxyConfiguration", |d| {
                d.definition.proxy_configuration = None
            }),
            ("ephemeralStorage", |d| {
                d.definition.ephemeral_storage =
                    Some(ecs::EphemeralStorage::builder().size_in_gib(21).build())
            }),
            ("runtimePlatform", |d| d.definition.runtime_platform = None),
            ("enableFaultInjection", |d| {
                d.definition.enable_fault_injection = Some(true)
            }),
            ("tags", |d| d.tags.truncate(1)),
            ("containerDefinitions[envoy]", |d| {
                d.definition.container_definitions.as_mut().unwrap().pop();
            }),
            ("containerDefinitions[app].secrets", |d| {
                app(d).secrets.as_mut().unwrap()[1].value_from = format!("{SECRET}:otherKey::");
            }),
            ("containerDefinitions[app].secrets", |d| {
                app(d).secrets = None
            }),
            ("containerDefinitions[app].environment", |d| {
                app(d).environment.as_mut().unwrap()[0].value = Some("other".into());
            }),
            ("containerDefinitions[app].environmentFiles", |d| {
                app(d).environment_files = None
            }),
            ("containerDefinitions[app].repositoryCredentials", |d| {
                app(d).repository_credentials = None
            }),
            ("containerDefinitions[app].cpu", |d| app(d).cpu = 0),
            ("containerDefinitions[app].memory", |d| app(d).memory = None),
            ("containerDefinitions[app].memoryReservation", |d| {
                app(d).memory_reservation = Some(1)
            }),
            ("containerDefinitions[app].portMappings", |d| {
                app(d).port_mappings = None
            }),
            ("containerDefinitions[app].essential", |d| {
                app(d).essential = Some(false)
            }),
            ("containerDefinitions[app].restartPolicy", |d| {
                app(d).restart_policy = None
            }),
            ("containerDefinitions[app].entryPoint", |d| {
                app(d).entry_point = None
            }),
            ("containerDefinitions[app].command", |d| {
                app(d).command.as_mut().unwrap().reverse()
            }),
            ("containerDefinitions[app].mountPoints", |d| {
                app(d).mount_points = None
            }),
            ("containerDefinitions[app].linuxParameters", |d| {
                app(d).linux_parameters = None
            }),
            ("containerDefinitions[app].dependsOn", |d| {
                app(d).depends_on = None
            }),
            ("containerDefinitions[app].startTimeout", |d| {
                app(d).start_timeout = None
            }),
            ("containerDefinitions[app].stopTimeout", |d| {
                app(d).stop_timeout = Some(2)
            }),
            ("containerDefinitions[app].versionConsistency", |d| {
                app(d).version_consistency = None
            }),
            ("containerDefinitions[app].user", |d| app(d).user = None),
            ("containerDefinitions[app].workingDirectory", |d| {
                app(d).working_directory = None
            }),
            ("containerDefinitions[app].readonlyRootFilesystem", |d| {
                app(d).readonly_root_filesystem = Some(false)
            }),
            ("containerDefinitions[app].dockerLabels", |d| {
                app(d).docker_labels = None
            }),
            ("containerDefinitions[app].ulimits", |d| {
                app(d).ulimits = None
            }),
            ("containerDefinitions[app].logConfiguration", |d| {
                app(d).log_configuration.as_mut().unwrap().secret_options = None;
            }),
            ("containerDefinitions[app].healthCheck", |d| {
                app(d).health_check = None
            }),
            ("containerDefinitions[app].systemControls", |d| {
                app(d).system_controls = None
            }),
            ("containerDefinitions[app].privileged", |d| {
                app(d).privileged = Some(true)
            }),
            ("containerDefinitions[app].hostname", |d| {
                app(d).hostname = Some("x".into())
            }),
            ("containerDefinitions[app].dnsServers", |d| {
                app(d).dns_servers = Some(vec!["10.0.0.2".into()])
            }),
            (
                "containerDefinitions[log_router].firelensConfiguration",
                |d| {
                    d.definition.container_definitions.as_mut().unwrap()[1]
                        .firelens_configuration = None;
                },
            ),
        ];
        for (name, change) in cases {
            let expected = maximal();
            let mut actual = maximal();
            change(&mut actual);
            assert_eq!(
                differences(&expected, &actual),
                [name],
                "after changing {name}"
            );
        }
    }

    #[test]
    fn read_only_fields_and_equivalent_spellings_are_not_differences() {
        let expected = maximal();
        let mut actual = maximal();
        let d = &mut actual.definition;
        d.task_definition_arn =
            Some("arn:aws:ecs:us-east-1:123456789012:task-definition/orders:8".into());
        d.revision = 8;
        d.status = Some(ecs::TaskDefinitionStatus::Inactive);
        d.requires_attributes = None;
        d.compatibilities = None;
        d.registered_at = Some(aws_smithy_types::DateTime::from_secs(1_800_000_000));
        d.registered_by = None;
        d.deregistered_at = Some(aws_smithy_types::DateTime::from_secs(1_800_000_001));
        d.enable_fault_injection = None;
        app(&mut actual).environment.as_mut().unwrap().reverse();
        app(&mut actual).essential = None;
        let sidecar = &mut actual.definition.container_definitions.as_mut().unwrap()[2];
        sidecar.environment = Some(Vec::new());
        sidecar.docker_labels = Some(HashMap::new());
        actual.tags.reverse();
        actual.tags.push(
            ecs::Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("x")
                .build(),
        );
        assert!(
            differences(&expected, &actual).is_empty(),
            "{:?}",
            differences(&expected, &actual)
        );
    }

    #[test]
    fn a_reordered_container_list_is_reported() {
        let expected = maximal();
        let mut actual = maximal();
        actual
            .definition
            .container_definitions
            .as_mut()
            .unwrap()
            .swap(1, 2);
        assert_eq!(
            differences(&expected, &actual),
            ["containerDefinitions (order)"]
        );
    }

    #[test]
    fn an_unknown_container_is_named_with_the_containers_that_exist() {
        let doc = maximal();
        let err = image_of(&doc, "web").unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        let msg = err.to_string();
        assert!(
            msg.contains("\"web\"") && msg.contains("app, log_router, envoy"),
            "{msg}"
        );
        assert!(with_image(&doc, "web", V2).is_err());
    }
}
