//! The [`Ecs`] port over `aws-sdk-ecs`.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    DesiredStatus, Scale, ScaleUnit, Service, TaskDefinitionField, TaskDefinitionStatus, TaskSet,
};

use super::{aws_message, service_error_is};
use crate::error::{Error, Result};
use crate::ports::{
    Command, Ecs, LaunchSpec, LeftCommand, NewTaskSet, OperatorCommands, ServiceDirectory,
    ServiceState, StoppedTask, TaskDefinitionDoc, TaskSetState,
};

/// The service tag an operator command is left in: value `<command>:<execution name>:<by>`.
pub const COMMAND_TAG: &str = "ecs-bluegreen:command";

/// Most stopped tasks [`SdkEcs::stopped_tasks`] reports: one `ListTasks` page, which is also
/// what one `DescribeTasks` call takes.
pub const MAX_STOPPED_TASKS: i32 = 100;

/// Amazon ECS through the SDK.
#[derive(Debug, Clone)]
pub struct SdkEcs {
    client: Client,
}

impl SdkEcs {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkEcs { client }
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn describe_task_definition(
        &self,
        operation: &'static str,
        task_definition: &str,
    ) -> Result<TaskDefinitionDoc> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| {
                // ECS answers an unknown family or revision with a plain ClientException.
                if service_error_is(&e, |s| s.is_client_exception()) {
                    Error::InvalidInput(format!(
                        "task definition {task_definition} not found ({}); check the family or revision ARN",
                        aws_message(&e)
                    ))
                } else {
                    Error::aws(operation, task_definition, e)
                }
            })?;
        let tags = out.tags().to_vec();
        let definition = out
            .task_definition
            .ok_or_else(|| empty_answer(operation, task_definition, "taskDefinition"))?;
        Ok(TaskDefinitionDoc { definition, tags })
    }

    /// The task set with this id or ARN, if the service has it.
    async fn find_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<Option<TaskSet>> {
        let out = self
            .client
            .describe_task_sets()
            .cluster(cluster)
            .service(service)
            .task_sets(task_set)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                    cluster_not_found(cluster)
                } else if service_error_is(&e, |s| s.is_service_not_found_exception()) {
                    service_not_found(cluster, service)
                } else {
                    Error::aws(
                        "DescribeTaskSets",
                        format!("{cluster}/{service}/{task_set}"),
                        e,
                    )
                }
            })?;
        Ok(out
            .task_sets
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.id() == Some(task_set) || t.task_set_arn() == Some(task_set)))
    }
}

fn empty_answer(operation: &'static str, resource: &str, field: &str) -> Error {
    Error::Aws {
        operation,
        resource: resource.to_string(),
        code: "EmptyResponse".into(),
        message: format!("the answer has no {field}"),
    }
}

fn service_not_found(cluster: &str, service: &str) -> Error {
    Error::InvalidInput(format!(
        "service {service} not found in cluster {cluster}; check the cluster and service names (or ARNs) and the region"
    ))
}

fn cluster_not_found(cluster: &str) -> Error {
    Error::InvalidInput(format!(
        "cluster {cluster} not found; check the cluster name (or ARN) and the region"
    ))
}

/// Maps ECS's task set to the port's view.
pub(crate) fn task_set_state(t: &TaskSet) -> TaskSetState {
    TaskSetState {
        id: t.id().unwrap_or_default().to_string(),
        arn: t.task_set_arn().unwrap_or_default().to_string(),
        status: t.status().unwrap_or_default().to_string(),
        // moto answers a task set created without one with an empty externalId.
        external_id: t
            .external_id()
            .filter(|x| !x.is_empty())
            .map(str::to_string),
        task_definition_arn: t.task_definition().unwrap_or_default().to_string(),
        load_balancers: t.load_balancers().to_vec(),
        launch: LaunchSpec {
            launch_type: t.launch_type().cloned(),
            capacity_provider_strategy: t.capacity_provider_strategy().to_vec(),
            platform_version: t.platform_version().map(str::to_string),
            network_configuration: t.network_configuration().cloned(),
            service_registries: t.service_registries().to_vec(),
        },
        scale_percent: t
            .scale()
            .filter(|s| s.unit().is_none_or(|u| *u == ScaleUnit::Percent))
            .map_or(0.0, Scale::value),
        computed_desired_count: t.computed_desired_count(),
        running_count: t.running_count(),
        pending_count: t.pending_count(),
        stability_status: t.stability_status().map(|s| s.as_str().to_string()),
        created_at: t.created_at().map(aws_smithy_types::DateTime::as_secs_f64),
    }
}

/// Maps ECS's service to the port's view.
pub(crate) fn service_state(s: &Service) -> ServiceState {
    ServiceState {
        arn: s.service_arn().unwrap_or_default().to_string(),
        name: s.service_name().unwrap_or_default().to_string(),
        cluster_arn: s.cluster_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        desired_count: s.desired_count(),
        deployment_controller: s
            .deployment_controller()
            .map(|d| d.r#type().as_str().to_string()),
        task_sets: s.task_sets().iter().map(task_set_state).collect(),
    }
}

/// Tags RegisterTaskDefinition accepts: the `aws:` prefix is reserved for AWS's own.
fn user_tags(tags: &[aws_sdk_ecs::types::Tag]) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter()
        .filter(|t| {
            !t.key()
                .is_some_and(|k| k.to_ascii_lowercase().starts_with("aws:"))
        })
        .cloned()
        .collect()
}

impl Ecs for SdkEcs {
    /// # Errors
    /// [`Error::InvalidInput`] when the cluster or the service does not exist (ECS reports a
    /// missing service in `failures` with reason `MISSING`, not as an error); otherwise
    /// [`Error::aws`] of `DescribeServices`.
    async fn service(&self, cluster: &str, service: &str) -> Result<ServiceState> {
        let resource = format!("{cluster}/{service}");
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                    cluster_not_found(cluster)
                } else {
                    Error::aws("DescribeServices", resource.clone(), e)
                }
            })?;
        if let Some(found) = out.services().first() {
            return Ok(service_state(found));
        }
        match out.failures().first() {
            Some(f) if f.reason() == Some("MISSING") => Err(service_not_found(cluster, service)),
            Some(f) => Err(Error::from_code(
                "DescribeServices",
                resource,
                f.reason().unwrap_or("Unknown").to_string(),
                f.detail().unwrap_or("no detail").to_string(),
            )),
            None => Err(service_not_found(cluster, service)),
        }
    }

    /// # Errors
    /// [`Error::InvalidInput`] when no such revision or family exists; otherwise
    /// [`Error::aws`] of `DescribeTaskDefinition`.
    async fn task_definition(&self, task_definition: &str) -> Result<TaskDefinitionDoc> {
        self.describe_task_definition("DescribeTaskDefinition", task_definition)
            .await
    }

    /// Registers every field RegisterTaskDefinition accepts, copied from `doc`, and describes
    /// the new revision (RegisterTaskDefinition's own answer omits the tags on some
    /// implementations, moto among them).
    ///
    /// # Errors
    /// [`Error::aws`] of `RegisterTaskDefinition` or of the `DescribeTaskDefinition` after it.
    async fn register_task_definition(&self, doc: &TaskDefinitionDoc) -> Result<TaskDefinitionDoc> {
        let d = &doc.definition;
        let family = d.family().unwrap_or_default();
        let tags = user_tags(&doc.tags);
        // Every input field of RegisterTaskDefinition, in the order of the API reference.
        // Elastic Inference is retired (the setter is deprecated); a revision that still has
        // accelerators fails to register loudly rather than losing them.
        #[allow(deprecated)]
        let out = self
            .client
            .register_task_definition()
            .set_family(d.family.clone())
            .set_task_role_arn(d.task_role_arn.clone())
            .set_execution_role_arn(d.execution_role_arn.clone())
            .set_network_mode(d.network_mode.clone())
            .set_container_definitions(d.container_definitions.clone())
            .set_volumes(d.volumes.clone())
            .set_placement_constraints(d.placement_constraints.clone())
            .set_requires_compatibilities(d.requires_compatibilities.clone())
            .set_cpu(d.cpu.clone())
            .set_memory(d.memory.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_pid_mode(d.pid_mode.clone())
            .set_ipc_mode(d.ipc_mode.clone())
            .set_proxy_configuration(d.proxy_configuration.clone())
            .set_inference_accelerators(d.inference_accelerators.clone().filter(|a| !a.is_empty()))
            .set_ephemeral_storage(d.ephemeral_storage.clone())
            .set_runtime_platform(d.runtime_platform.clone())
            .set_enable_fault_injection(d.enable_fault_injection)
            .send()
            .await
            .map_err(|e| Error::aws("RegisterTaskDefinition", format!("family {family}"), e))?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| {
                empty_answer(
                    "RegisterTaskDefinition",
                    family,
                    "taskDefinition.taskDefinitionArn",
                )
            })?
            .to_string();
        self.describe_task_definition("DescribeTaskDefinition", &arn)
            .await
    }

    /// # Errors
    /// [`Error::aws`] of `DeregisterTaskDefinition`, unless the revision is inactive already.
    async fn deregister_task_definition(&self, arn: &str) -> Result<()> {
        let result = self
            .client
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if service_error_is(&e, |s| s.is_client_exception()) => {
                // Not modelled as its own error: look whether it is inactive (or gone) already.
                match self
                    .describe_task_definition("DescribeTaskDefinition", arn)
                    .await
                {
                    Ok(doc) if doc.definition.status() == Some(&TaskDefinitionStatus::Inactive) => {
                        Ok(())
                    }
                    Ok(_) => Err(Error::aws("DeregisterTaskDefinition", arn, e)),
                    Err(Error::InvalidInput(_)) => Ok(()),
                    Err(other) => Err(other),
                }
            }
            Err(e) => Err(Error::aws("DeregisterTaskDefinition", arn, e)),
        }
    }

    /// # Errors
    /// [`Error::InvalidInput`] when the cluster or service does not exist;
    /// [`Error::PreconditionFailed`] when the service is not active; otherwise
    /// [`Error::aws`] of `CreateTaskSet`.
    async fn create_task_set(&self, spec: &NewTaskSet) -> Result<TaskSetState> {
        let resource = format!("{}/{}", spec.cluster, spec.service);
        let launch = &spec.launch;
        // ECS rejects a launch type together with a capacity provider strategy; describe
        // answers may carry both (moto fills in a default launch type).
        let launch_type = if launch.capacity_provider_strategy.is_empty() {
            launch.launch_type.clone()
        } else {
            None
        };
        let out = self
            .client
            .create_task_set()
            .cluster(&spec.cluster)
            .service(&spec.service)
            .task_definition(&spec.task_definition_arn)
            .external_id(&spec.external_id)
            .set_load_balancers(Some(spec.load_balancers.clone()))
            .set_network_configuration(launch.network_configuration.clone())
            .set_service_registries(
                (!launch.service_registries.is_empty()).then(|| launch.service_registries.clone()),
            )
            .set_launch_type(launch_type)
            .set_capacity_provider_strategy(
                (!launch.capacity_provider_strategy.is_empty())
                    .then(|| launch.capacity_provider_strategy.clone()),
            )
            .set_platform_version(launch.platform_version.clone())
            .scale(
                Scale::builder()
                    .value(spec.scale_percent)
                    .unit(ScaleUnit::Percent)
                    .build(),
            )
            .client_token(&spec.client_token)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                    cluster_not_found(&spec.cluster)
                } else if service_error_is(&e, |s| s.is_service_not_found_exception()) {
                    service_not_found(&spec.cluster, &spec.service)
                } else if service_error_is(&e, |s| s.is_service_not_active_exception()) {
                    Error::PreconditionFailed(format!(
                        "service {} in cluster {} is not active, so no task set can be created",
                        spec.service, spec.cluster
                    ))
                } else {
                    Error::aws("CreateTaskSet", resource.clone(), e)
                }
            })?;
        out.task_set()
            .map(task_set_state)
            .ok_or_else(|| empty_answer("CreateTaskSet", &resource, "taskSet"))
    }

    /// Accepts the task set's id or ARN; an id is resolved to the ARN first, because moto
    /// marks a task set `PRIMARY` only when `primaryTaskSet` is its exact ARN (given the id,
    /// it leaves the service with no primary task set at all).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the cluster or service does not exist;
    /// [`Error::PreconditionFailed`] when the task set does not exist (any more); otherwise
    /// [`Error::aws`] of `DescribeTaskSets` or `UpdateServicePrimaryTaskSet`.
    async fn set_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> Result<()> {
        let gone = || {
            Error::PreconditionFailed(format!(
                "task set {task_set} of service {service} in cluster {cluster} does not exist, so it cannot become primary"
            ))
        };
        let arn = if task_set.starts_with("arn:") {
            task_set.to_string()
        } else {
            self.find_task_set(cluster, service, task_set)
                .await?
                .and_then(|t| t.task_set_arn)
                .ok_or_else(gone)?
        };
        self.client
            .update_service_primary_task_set()
            .cluster(cluster)
            .service(service)
            .primary_task_set(&arn)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                    cluster_not_found(cluster)
                } else if service_error_is(&e, |s| s.is_service_not_found_exception()) {
                    service_not_found(cluster, service)
                } else if service_error_is(&e, |s| s.is_task_set_not_found_exception()) {
                    gone()
                } else {
                    Error::aws(
                        "UpdateServicePrimaryTaskSet",
                        format!("{cluster}/{service}/{task_set}"),
                        e,
                    )
                }
            })?;
        Ok(())
    }

    /// Deletes with `force`: the workflow only deletes a task set once it takes no traffic,
    /// and ECS otherwise refuses one that has not been scaled down to zero first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the cluster or service does not exist; otherwise
    /// [`Error::aws`] of `DeleteTaskSet`. A task set that is gone already is success.
    async fn delete_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<()> {
        let resource = format!("{cluster}/{service}/{task_set}");
        let result = self
            .client
            .delete_task_set()
            .cluster(cluster)
            .service(service)
            .task_set(task_set)
            .force(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if service_error_is(&e, |s| s.is_task_set_not_found_exception()) => Ok(()),
            Err(e) if service_error_is(&e, |s| s.is_cluster_not_found_exception()) => {
                Err(cluster_not_found(cluster))
            }
            Err(e) if service_error_is(&e, |s| s.is_service_not_found_exception()) => {
                Err(service_not_found(cluster, service))
            }
            // moto (and older ECS) report a missing task set as a plain ClientException:
            // read the service instead of matching the message. One still listed as
            // DRAINING was deleted already.
            Err(e) if service_error_is(&e, |s| s.is_client_exception()) => {
                match self.find_task_set(cluster, service, task_set).await? {
                    None => Ok(()),
                    Some(t) if t.status() == Some("DRAINING") => Ok(()),
                    Some(_) => Err(Error::aws("DeleteTaskSet", resource, e)),
                }
            }
            Err(e) => Err(Error::aws("DeleteTaskSet", resource, e)),
        }
    }

    /// The most recent [`MAX_STOPPED_TASKS`] stopped tasks whose `startedBy` is the task set.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the cluster does not exist; otherwise [`Error::aws`] of
    /// `ListTasks` or `DescribeTasks`.
    async fn stopped_tasks(&self, cluster: &str, task_set_id: &str) -> Result<Vec<StoppedTask>> {
        let resource = format!("{cluster}/{task_set_id}");
        let listed = self
            .client
            .list_tasks()
            .cluster(cluster)
            .started_by(task_set_id)
            .desired_status(DesiredStatus::Stopped)
            .max_results(MAX_STOPPED_TASKS)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                    cluster_not_found(cluster)
                } else {
                    Error::aws("ListTasks", resource.clone(), e)
                }
            })?;
        let arns = listed.task_arns().to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .map_err(|e| Error::aws("DescribeTasks", resource.clone(), e))?;
        Ok(described
            .tasks()
            .iter()
            .map(|t| StoppedTask {
                task_arn: t.task_arn().unwrap_or_default().to_string(),
                stop_code: t.stop_code().map(|c| c.as_str().to_string()),
                stopped_reason: t.stopped_reason().map(str::to_string),
                exit_codes: t
                    .containers()
                    .iter()
                    .map(|c| (c.name().unwrap_or_default().to_string(), c.exit_code()))
                    .collect(),
            })
            .collect())
    }
}

impl SdkEcs {
    async fn command_tag(&self, service_arn: &str) -> Result<Option<String>> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(service_arn)
            .send()
            .await
            .map_err(|e| Error::aws("ListTagsForResource", service_arn, e))?;
        Ok(out
            .tags()
            .iter()
            .find(|t| t.key() == Some(COMMAND_TAG))
            .and_then(|t| t.value().map(str::to_string)))
    }
}

/// The longest tag value ECS accepts.
const TAG_VALUE_MAX: usize = 256;

/// `command` for `execution_name`, from `by`, as the tag's value:
/// `<command>:<execution name>[:<by>]`. Execution names never hold `:`. `by` keeps only the
/// characters ECS allows in a tag value (letters, digits, spaces, `_ . : / = + - @`; others
/// become `_`) and is cut to fit.
fn command_value(command: Command, execution_name: &str, by: &str) -> String {
    let head = format!("{}:{execution_name}", command.as_str());
    let room = TAG_VALUE_MAX.saturating_sub(head.chars().count() + 1);
    let by: String = by
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    if by.is_empty() {
        head
    } else {
        format!("{head}:{by}")
    }
}

/// The command a tag value holds for `execution_name`, if it is for that execution.
fn command_for(value: &str, execution_name: &str) -> Option<LeftCommand> {
    let mut parts = value.splitn(3, ':');
    let (command, execution) = (parts.next()?, parts.next()?);
    if execution != execution_name {
        return None;
    }
    let command = match command {
        "abort" => Command::Abort,
        "promote" => Command::Promote,
        _ => return None,
    };
    let by = parts
        .next()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    Some(LeftCommand { command, by })
}

impl OperatorCommands for SdkEcs {
    /// Reads the service's [`COMMAND_TAG`] (`ListTagsForResource`).
    ///
    /// # Errors
    /// [`Error::aws`] of `ListTagsForResource`.
    async fn command(
        &self,
        service_arn: &str,
        execution_name: &str,
    ) -> Result<Option<LeftCommand>> {
        Ok(self
            .command_tag(service_arn)
            .await?
            .and_then(|v| command_for(&v, execution_name)))
    }

    /// Sets the service's [`COMMAND_TAG`] (`TagResource`).
    ///
    /// # Errors
    /// [`Error::aws`] of `TagResource`.
    async fn send_command(
        &self,
        service_arn: &str,
        execution_name: &str,
        command: Command,
        by: &str,
    ) -> Result<()> {
        let tag = aws_sdk_ecs::types::Tag::builder()
            .key(COMMAND_TAG)
            .value(command_value(command, execution_name, by))
            .build();
        self.client
            .tag_resource()
            .resource_arn(service_arn)
            .tags(tag)
            .send()
            .await
            .map_err(|e| Error::aws("TagResource", service_arn, e))?;
        Ok(())
    }

    /// Removes the service's [`COMMAND_TAG`] when it is for `execution_name`
    /// (`ListTagsForResource`, then `UntagResource`).
    ///
    /// # Errors
    /// [`Error::aws`] of either call.
    async fn clear_command(&self, service_arn: &str, execution_name: &str) -> Result<()> {
        let ours = self
            .command_tag(service_arn)
            .await?
            .is_some_and(|v| v.split(':').nth(1) == Some(execution_name));
        if ours {
            self.client
                .untag_resource()
                .resource_arn(service_arn)
                .tag_keys(COMMAND_TAG)
                .send()
                .await
                .map_err(|e| Error::aws("UntagResource", service_arn, e))?;
        }
        Ok(())
    }
}

impl ServiceDirectory for SdkEcs {
    /// `ListClusters`, every page.
    ///
    /// # Errors
    /// [`Error::aws`] of `ListClusters`.
    async fn clusters(&self) -> Result<Vec<String>> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_clusters()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| Error::aws("ListClusters", "clusters", e))?;
            arns.extend(out.cluster_arns().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(arns),
            }
        }
    }

    /// `ListServices` of the cluster, every page.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the cluster does not exist; otherwise [`Error::aws`].
    async fn services(&self, cluster: &str) -> Result<Vec<String>> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_services()
                .cluster(cluster)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    if service_error_is(&e, |s| s.is_cluster_not_found_exception()) {
                        cluster_not_found(cluster)
                    } else {
                        Error::aws("ListServices", cluster, e)
                    }
                })?;
            arns.extend(out.service_arns().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(arns),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_ecs::operation::create_task_set::CreateTaskSetOutput;
    use aws_sdk_ecs::operation::delete_task_set::DeleteTaskSetError;
    use aws_sdk_ecs::operation::deregister_task_definition::{
        DeregisterTaskDefinitionError, DeregisterTaskDefinitionOutput,
    };
    use aws_sdk_ecs::operation::describe_services::{
        DescribeServicesError, DescribeServicesOutput,
    };
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::describe_task_sets::DescribeTaskSetsOutput;
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::operation::register_task_definition::{
        RegisterTaskDefinitionInput, RegisterTaskDefinitionOutput,
    };
    use aws_sdk_ecs::operation::update_service_primary_task_set::UpdateServicePrimaryTaskSetOutput;
    use aws_sdk_ecs::types::error::{
        ClientException, ClusterNotFoundException, TaskSetNotFoundException,
    };
    use aws_sdk_ecs::types::{self as ecs, TaskDefinition};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::taskdef;

    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/orders:8";

    fn adapter(client: Client) -> SdkEcs {
        SdkEcs::new(client)
    }

    #[tokio::test]
    async fn a_missing_service_reported_in_failures_is_invalid_input() {
        let rule = mock!(Client::describe_services).then_output(|| {
            DescribeServicesOutput::builder()
                .failures(
                    ecs::Failure::builder()
                        .arn("arn:aws:ecs:us-east-1:123456789012:service/demo/orders")
                        .reason("MISSING")
                        .build(),
                )
                .build()
        });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&rule]));

        let err = ecs.service("demo", "orders").await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(
            err.to_string()
                .contains("service orders not found in cluster demo"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_cluster_is_invalid_input() {
        let rule = mock!(Client::describe_services).then_error(|| {
            DescribeServicesError::ClusterNotFoundException(
                ClusterNotFoundException::builder()
                    .message("Cluster not found.")
                    .build(),
            )
        });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&rule]));

        let err = ecs.service("demo", "orders").await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("cluster demo not found"), "{err}");
    }

    #[tokio::test]
    async fn a_service_maps_its_task_sets() {
        let rule = mock!(Client::describe_services).then_output(|| {
            let task_set = ecs::TaskSet::builder()
                .id("ecs-svc/1")
                .task_set_arn("arn:aws:ecs:us-east-1:123456789012:task-set/demo/orders/ecs-svc/1")
                .status("PRIMARY")
                .external_id("")
                .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/orders:1")
                .launch_type(ecs::LaunchType::Fargate)
                .platform_version("1.4.0")
                .scale(Scale::builder().value(100.0).unit(ScaleUnit::Percent).build())
                .computed_desired_count(2)
                .running_count(1)
                .pending_count(1)
                .stability_status(ecs::StabilityStatus::Stabilizing)
                .created_at(aws_smithy_types::DateTime::from_secs_f64(1_700_000_000.5))
                .load_balancers(
                    ecs::LoadBalancer::builder()
                        .target_group_arn("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/1")
                        .container_name("app")
                        .container_port(8080)
                        .build(),
                )
                .build();
            DescribeServicesOutput::builder()
                .services(
                    ecs::Service::builder()
                        .service_arn("arn:aws:ecs:us-east-1:123456789012:service/demo/orders")
                        .service_name("orders")
                        .status("ACTIVE")
                        .desired_count(2)
                        .deployment_controller(
                            ecs::DeploymentController::builder()
                                .r#type(ecs::DeploymentControllerType::External)
                                .build()
                                .unwrap(),
                        )
                        .task_sets(task_set)
                        .build(),
                )
                .build()
        });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&rule]));

        let svc = ecs.service("demo", "orders").await.unwrap();

        assert_eq!(svc.deployment_controller.as_deref(), Some("EXTERNAL"));
        let p = svc.primary().unwrap();
        assert_eq!(p.external_id, None, "moto's empty externalId means none");
        assert_eq!(p.launch.launch_type, Some(ecs::LaunchType::Fargate));
        assert_eq!(p.launch.platform_version.as_deref(), Some("1.4.0"));
        assert_eq!(p.scale_percent, 100.0);
        assert_eq!(
            (p.computed_desired_count, p.running_count, p.pending_count),
            (2, 1, 1)
        );
        assert_eq!(p.stability_status.as_deref(), Some("STABILIZING"));
        assert_eq!(p.created_at, Some(1_700_000_000.5));
        assert!(p.target_group_arn().unwrap().contains("orders-a"));
    }

    fn registered_doc(doc: &TaskDefinitionDoc) -> DescribeTaskDefinitionOutput {
        let mut d = doc.definition.clone();
        d.task_definition_arn = Some(ARN.into());
        d.revision = 8;
        DescribeTaskDefinitionOutput::builder()
            .task_definition(d)
            .set_tags(Some(doc.tags.clone()))
            .build()
    }

    /// The task definition a RegisterTaskDefinition input describes.
    fn from_input(i: &RegisterTaskDefinitionInput, tags_out: &mut Vec<ecs::Tag>) -> TaskDefinition {
        *tags_out = i.tags().to_vec();
        #[allow(deprecated)]
        let accelerators = i.inference_accelerators.clone();
        TaskDefinition::builder()
            .set_family(i.family.clone())
            .set_task_role_arn(i.task_role_arn.clone())
            .set_execution_role_arn(i.execution_role_arn.clone())
            .set_network_mode(i.network_mode.clone())
            .set_container_definitions(i.container_definitions.clone())
            .set_volumes(i.volumes.clone())
            .set_placement_constraints(i.placement_constraints.clone())
            .set_requires_compatibilities(i.requires_compatibilities.clone())
            .set_cpu(i.cpu.clone())
            .set_memory(i.memory.clone())
            .set_pid_mode(i.pid_mode.clone())
            .set_ipc_mode(i.ipc_mode.clone())
            .set_proxy_configuration(i.proxy_configuration.clone())
            .set_inference_accelerators(accelerators)
            .set_ephemeral_storage(i.ephemeral_storage.clone())
            .set_runtime_platform(i.runtime_platform.clone())
            .set_enable_fault_injection(i.enable_fault_injection)
            .build()
    }

    #[tokio::test]
    async fn registering_sends_every_field_of_the_task_definition_and_describes_the_result() {
        // Given a maximal task definition with a reserved aws: tag
        let mut doc = crate::taskdef::tests::maximal();
        doc.definition.enable_fault_injection = Some(true);
        doc.definition.ipc_mode = Some(ecs::IpcMode::None);
        doc.tags.push(
            ecs::Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("x")
                .build(),
        );
        let sent: Arc<Mutex<Option<RegisterTaskDefinitionInput>>> = Arc::default();
        let seen = sent.clone();
        let register = mock!(Client::register_task_definition)
            .match_requests(move |i| {
                *seen.lock().unwrap() = Some(i.clone());
                true
            })
            .then_output(|| {
                RegisterTaskDefinitionOutput::builder()
                    .task_definition(TaskDefinition::builder().task_definition_arn(ARN).build())
                    .build()
            });
        let answer = registered_doc(&doc);
        let describe = mock!(Client::describe_task_definition)
            .match_requests(|i| {
                i.task_definition() == Some(ARN) && i.include() == [TaskDefinitionField::Tags]
            })
            .then_output(move || answer.clone());
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&register, &describe]));

        // When it is registered
        let registered = ecs.register_task_definition(&doc).await.unwrap();

        // Then the request carries every field, and the answer is the described revision
        let input = sent.lock().unwrap().clone().unwrap();
        let mut tags = Vec::new();
        let rebuilt = TaskDefinitionDoc {
            definition: from_input(&input, &mut tags),
            tags,
        };
        let mut expected = doc.clone();
        expected.tags.pop();
        assert!(
            taskdef::differences(&expected, &rebuilt).is_empty(),
            "{:?}",
            taskdef::differences(&expected, &rebuilt)
        );
        assert_eq!(rebuilt.tags, expected.tags, "the aws: tag is not sent");
        assert_eq!(registered.definition.task_definition_arn(), Some(ARN));
        assert_eq!(registered.tags.len(), 3);
        assert_eq!(describe.num_calls(), 1);
    }

    #[tokio::test]
    async fn deregistering_an_inactive_revision_is_not_an_error() {
        let deregister = mock!(Client::deregister_task_definition).then_error(|| {
            DeregisterTaskDefinitionError::ClientException(
                ClientException::builder()
                    .message("already inactive")
                    .build(),
            )
        });
        let describe = mock!(Client::describe_task_definition).then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(ARN)
                        .status(TaskDefinitionStatus::Inactive)
                        .build(),
                )
                .build()
        });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&deregister, &describe]));

        ecs.deregister_task_definition(ARN).await.unwrap();
    }

    #[tokio::test]
    async fn deregistering_an_active_revision_that_fails_is_an_error() {
        let deregister = mock!(Client::deregister_task_definition).then_error(|| {
            DeregisterTaskDefinitionError::ClientException(
                ClientException::builder().message("denied").build(),
            )
        });
        let describe = mock!(Client::describe_task_definition).then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .status(TaskDefinitionStatus::Active)
                        .build(),
                )
                .build()
        });
        let ok = mock!(Client::deregister_task_definition)
            .then_output(|| DeregisterTaskDefinitionOutput::builder().build());
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&deregister, &describe, &ok]));

        assert_eq!(
            ecs.deregister_task_definition(ARN)
                .await
                .unwrap_err()
                .error_type(),
            "AwsError"
        );
        ecs.deregister_task_definition(ARN).await.unwrap();
    }

    #[tokio::test]
    async fn deleting_a_task_set_that_is_gone_is_not_an_error() {
        // Real ECS: a modelled TaskSetNotFoundException
        let gone = mock!(Client::delete_task_set).then_error(|| {
            DeleteTaskSetError::TaskSetNotFoundException(
                TaskSetNotFoundException::builder().message("gone").build(),
            )
        });
        // moto: a plain ClientException, and the service no longer lists it
        let client_error = mock!(Client::delete_task_set).then_error(|| {
            DeleteTaskSetError::ClientException(
                ClientException::builder()
                    .message("The specified task set does not exist.")
                    .build(),
            )
        });
        let described = mock!(Client::describe_task_sets)
            .then_output(|| DescribeTaskSetsOutput::builder().build());
        let ecs = adapter(mock_client!(
            aws_sdk_ecs,
            [&gone, &client_error, &described]
        ));

        ecs.delete_task_set("demo", "orders", "ecs-svc/1")
            .await
            .unwrap();
        ecs.delete_task_set("demo", "orders", "ecs-svc/1")
            .await
            .unwrap();
        assert_eq!(described.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_delete_of_a_task_set_that_still_exists_is_an_error() {
        let delete = mock!(Client::delete_task_set)
            .match_requests(|i| i.force() == Some(true))
            .then_error(|| {
                let meta = aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ClientException")
                    .message("busy")
                    .build();
                DeleteTaskSetError::ClientException(
                    ClientException::builder()
                        .message("busy")
                        .meta(meta)
                        .build(),
                )
            });
        let described = mock!(Client::describe_task_sets).then_output(|| {
            DescribeTaskSetsOutput::builder()
                .task_sets(ecs::TaskSet::builder().id("ecs-svc/1").build())
                .build()
        });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&delete, &described]));

        let err = ecs
            .delete_task_set("demo", "orders", "ecs-svc/1")
            .await
            .unwrap_err();

        assert_eq!(err.error_type(), "AwsError");
        assert!(err.to_string().contains("busy"), "{err}");
    }

    #[tokio::test]
    async fn a_task_set_id_is_made_primary_by_its_arn() {
        const TS_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-set/demo/orders/ecs-svc/2";
        let describe = mock!(Client::describe_task_sets)
            .match_requests(|i| i.task_sets() == ["ecs-svc/2"])
            .then_output(|| {
                DescribeTaskSetsOutput::builder()
                    .task_sets(
                        ecs::TaskSet::builder()
                            .id("ecs-svc/2")
                            .task_set_arn(TS_ARN)
                            .build(),
                    )
                    .build()
            });
        let update = mock!(Client::update_service_primary_task_set)
            .match_requests(|i| i.primary_task_set() == Some(TS_ARN))
            .then_output(|| UpdateServicePrimaryTaskSetOutput::builder().build());
        let missing = mock!(Client::describe_task_sets)
            .then_output(|| DescribeTaskSetsOutput::builder().build());
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&describe, &update, &missing]));

        ecs.set_primary_task_set("demo", "orders", "ecs-svc/2")
            .await
            .unwrap();
        let err = ecs
            .set_primary_task_set("demo", "orders", "ecs-svc/3")
            .await
            .unwrap_err();

        assert_eq!(update.num_calls(), 1);
        assert_eq!(err.error_type(), "PreconditionFailed");
    }

    #[tokio::test]
    async fn a_task_set_on_capacity_providers_is_created_without_a_launch_type() {
        let create = mock!(Client::create_task_set)
            .match_requests(|i| {
                i.launch_type().is_none()
                    && i.capacity_provider_strategy().len() == 1
                    && i.external_id() == Some("orders-2")
                    && i.client_token() == Some("bg-1")
                    && i.scale().map(Scale::value) == Some(100.0)
                    && i.network_configuration().is_some()
                    && i.load_balancers()[0].target_group_arn() == Some("tg-b")
            })
            .then_output(|| {
                CreateTaskSetOutput::builder()
                    .task_set(
                        ecs::TaskSet::builder()
                            .id("ecs-svc/2")
                            .external_id("orders-2")
                            .build(),
                    )
                    .build()
            });
        let ecs = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&create]));
        let spec = NewTaskSet {
            cluster: "demo".into(),
            service: "orders".into(),
            task_definition_arn: ARN.into(),
            external_id: "orders-2".into(),
            load_balancers: vec![
                ecs::LoadBalancer::builder()
                    .target_group_arn("tg-b")
                    .container_name("app")
                    .container_port(8080)
                    .build(),
            ],
            launch: LaunchSpec {
                launch_type: Some(ecs::LaunchType::Ec2),
                capacity_provider_strategy: vec![
                    ecs::CapacityProviderStrategyItem::builder()
                        .capacity_provider("FARGATE_SPOT")
                        .weight(1)
                        .build()
                        .unwrap(),
                ],
                platform_version: None,
                network_configuration: Some(
                    ecs::NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            ecs::AwsVpcConfiguration::builder()
                                .subnets("subnet-1")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                ),
                service_registries: Vec::new(),
            },
            scale_percent: 100.0,
            client_token: "bg-1".into(),
        };

        let created = ecs.create_task_set(&spec).await.unwrap();

        assert_eq!(created.id, "ecs-svc/2");
        assert_eq!(create.num_calls(), 1);
    }

    #[tokio::test]
    async fn stopped_tasks_are_listed_by_the_task_set_and_described() {
        let list = mock!(Client::list_tasks)
            .match_requests(|i| {
                i.started_by() == Some("ecs-svc/2")
                    && i.desired_status() == Some(&DesiredStatus::Stopped)
            })
            .then_output(|| ListTasksOutput::builder().task_arns("arn:task/1").build());
        let describe = mock!(Client::describe_tasks)
            .match_requests(|i| i.tasks() == ["arn:task/1"])
            .then_output(|| {
                DescribeTasksOutput::builder()
                    .tasks(
                        ecs::Task::builder()
                            .task_arn("arn:task/1")
                            .stop_code(ecs::TaskStopCode::EssentialContainerExited)
                            .stopped_reason("Essential container in task exited")
                            .containers(
                                ecs::Container::builder().name("app").exit_code(137).build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&list, &describe]));

        let stopped = ecs.stopped_tasks("demo", "ecs-svc/2").await.unwrap();

        assert_eq!(
            stopped,
            [StoppedTask {
                task_arn: "arn:task/1".into(),
                stop_code: Some("EssentialContainerExited".into()),
                stopped_reason: Some("Essential container in task exited".into()),
                exit_codes: vec![("app".into(), Some(137))],
            }]
        );
    }

    #[tokio::test]
    async fn no_stopped_tasks_means_no_describe_call() {
        let list = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
        let ecs = adapter(mock_client!(aws_sdk_ecs, [&list]));

        assert!(
            ecs.stopped_tasks("demo", "ecs-svc/2")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_command_tag_names_who_left_it_and_reads_back() {
        let value = command_value(Command::Abort, "orders-7", "alice@example.com");
        assert_eq!(value, "abort:orders-7:alice@example.com");
        assert_eq!(
            command_for(&value, "orders-7"),
            Some(LeftCommand {
                command: Command::Abort,
                by: Some("alice@example.com".into())
            })
        );
        assert_eq!(command_for(&value, "orders-8"), None);
    }

    #[test]
    fn a_command_tag_keeps_only_what_ecs_accepts_and_fits_its_limit() {
        let value = command_value(Command::Promote, "orders-7", "ops <on-call>; #1");
        assert_eq!(value, "promote:orders-7:ops _on-call__ _1");
        let long = command_value(Command::Promote, "orders-7", &"x".repeat(400));
        assert_eq!(long.chars().count(), TAG_VALUE_MAX);
        assert_eq!(
            command_value(Command::Abort, "orders-7", "  "),
            "abort:orders-7"
        );
    }

    #[test]
    fn a_command_tag_without_a_name_or_with_a_colon_in_the_name_reads_back() {
        assert_eq!(
            command_for("promote:orders-7", "orders-7"),
            Some(LeftCommand {
                command: Command::Promote,
                by: None
            })
        );
        let value = command_value(Command::Abort, "orders-7", "spinnaker:pipeline/42");
        assert_eq!(
            command_for(&value, "orders-7").and_then(|c| c.by),
            Some("spinnaker:pipeline/42".into())
        );
        assert_eq!(command_for("rollback:orders-7:bob", "orders-7"), None);
    }
}
