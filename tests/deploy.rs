//! End-to-end: deploys that succeed, on the local stack (`make e2e`): the starting point,
//! all at once by tag, a step list on a listener rule, and a task definition that uses every
//! field moto keeps.

use std::time::Duration;

use aws_sdk_ecs::types::{TaskDefinition, TaskDefinitionStatus};
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{Strategy, TrafficStep};
use e2e::{
    Stack, TestEnv, eventually, expect_only_image_changed, expect_status, fast_timing,
    succeeded_path, weight_sequence, without_poll_loops,
};
use local_stack::env::{
    APP_CONTAINER, ENVOY_CONTAINER, EnvSpec, LOG_ROUTER_CONTAINER, RuleSpec, TaskDefinitionKind,
};
use local_stack::inspect;
use local_stack::timeline::Sampler;

#[tokio::test]
async fn a_fresh_environment_serves_blue_on_target_group_a_with_healthy_targets()
-> anyhow::Result<()> {
    // Given the local stack
    let stack = Stack::connect().await?;

    // When an environment is built
    let t = stack
        .environment("fresh_environment", EnvSpec::new(""))
        .await?;
    let env = &t.env;

    // Then blue is the one primary task set, on target group A, all its targets healthy
    let sets = inspect::task_sets(&stack.clients, &env.cluster_name, &env.service_name).await?;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].id, env.blue_task_set_id);
    assert_eq!(sets[0].status, "PRIMARY");
    assert_eq!(sets[0].target_group_arns, [env.tg_a().to_string()]);
    let a = inspect::target_counts(&stack.clients, env.tg_a()).await?;
    assert_eq!(
        (a.healthy, a.total()),
        (env.desired_count as usize, env.desired_count as usize),
        "{a}"
    );
    assert_eq!(
        inspect::target_counts(&stack.clients, env.tg_b())
            .await?
            .total(),
        0
    );

    // And all traffic goes to A
    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(
        (
            inspect::weight_of(&w, env.tg_a()),
            inspect::weight_of(&w, env.tg_b())
        ),
        (100, 0)
    );

    // And blue runs v1 pinned by digest, with the secrets block referencing both secrets
    let app = inspect::container(&stack.clients, &env.task_definition_arn, APP_CONTAINER).await?;
    assert_eq!(app.image(), Some(env.pinned_image("v1")?.as_str()));
    let secrets: Vec<(String, String)> = app
        .secrets()
        .iter()
        .map(|s| (s.name().to_string(), s.value_from().to_string()))
        .collect();
    assert_eq!(secrets, env.secrets.container_secrets());

    // And every pushed tag has its own digest
    let digests: std::collections::BTreeSet<_> = env.images.values().collect();
    assert_eq!(digests.len(), env.images.len());

    // And the state machine was created from the workspace's ASL
    assert!(t.state_machine_arn.ends_with(&env.state_machine_name()));
    Ok(())
}

#[tokio::test]
async fn a_listener_rule_gets_its_own_weighted_forward_to_the_pair() -> anyhow::Result<()> {
    // Given the local stack
    let stack = Stack::connect().await?;

    // When an environment with a /api/* rule is built
    let mut spec = EnvSpec::new("");
    spec.listener_rule = Some(RuleSpec::PathPattern("/api/*".into()));
    let t = stack.environment("listener_rule", spec).await?;
    let env = &t.env;

    // Then deploys shift the rule, which forwards like the default action: all on A
    let route = env.route();
    assert_eq!(route.rule_arn, env.listener_rule_arn);
    assert!(route.rule_arn.is_some());
    for r in [route, env.default_route()] {
        let w = inspect::weights(&stack.clients, &r).await?;
        assert_eq!(
            (
                inspect::weight_of(&w, env.tg_a()),
                inspect::weight_of(&w, env.tg_b())
            ),
            (100, 0),
            "{r:?}"
        );
    }
    Ok(())
}

/// The `secrets` block of `container` as (name, valueFrom) pairs.
fn secrets_of(td: &TaskDefinition, container: &str) -> Vec<(String, String)> {
    td.container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .map(|c| {
            c.secrets()
                .iter()
                .map(|s| (s.name().to_string(), s.value_from().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What a successful deploy leaves: one task set, green, `PRIMARY` on target group B with
/// every target healthy, all of the route's traffic on B, blue's targets gone from A.
async fn expect_green_alone_on_b(
    stack: &Stack,
    t: &TestEnv,
    execution_name: &str,
) -> anyhow::Result<inspect::TaskSetView> {
    let env = &t.env;
    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(
        (
            inspect::weight_of(&w, env.tg_a()),
            inspect::weight_of(&w, env.tg_b())
        ),
        (0, 100),
        "all traffic on B: {w:?}"
    );
    // Blue was removed: at most listed as DRAINING while its tasks stop, then gone.
    let now = inspect::task_sets(&stack.clients, &env.cluster_name, &env.service_name).await?;
    let live: Vec<_> = now.iter().filter(|t| t.status != "DRAINING").collect();
    assert_eq!(live.len(), 1, "only green is live: {now:?}");
    let sets = t.task_sets_once_drained(stack).await?;
    assert_eq!(sets.len(), 1, "only green is left: {sets:?}");
    let green = sets[0].clone();
    assert_ne!(green.id, env.blue_task_set_id, "blue's task set is gone");
    assert_eq!(green.status, "PRIMARY");
    assert_eq!(green.external_id.as_deref(), Some(execution_name));
    assert_eq!(green.target_group_arns, [env.tg_b().to_string()]);
    let b = inspect::wait_until_healthy(
        &stack.clients,
        env.tg_b(),
        env.desired_count as usize,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(
        b.total(),
        env.desired_count as usize,
        "green's targets: {b}"
    );
    let clients = &stack.clients;
    let tg_a = env.tg_a();
    eventually(
        "blue's targets leave target group A",
        Duration::from_secs(60),
        move || async move {
            Ok((inspect::target_counts(clients, tg_a).await?.total() == 0).then_some(()))
        },
    )
    .await?;
    Ok(green)
}

fn execution_name_of(execution_arn: &str) -> &str {
    execution_arn.rsplit(':').next().unwrap_or(execution_arn)
}

#[tokio::test]
async fn an_all_at_once_deploy_by_tag_leaves_only_green_running_the_pinned_image_with_blues_task_definition()
-> anyhow::Result<()> {
    // Given blue running v1 on target group A
    let stack = Stack::connect().await?;
    let t = stack.environment("all_at_once", EnvSpec::new("")).await?;
    let env = &t.env;
    let (blue_td, blue_tags) =
        inspect::task_definition_with_tags(&stack.clients, &env.task_definition_arn).await?;

    // When v2 is deployed by tag, all at once
    let request = env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    let timeline = t.deploy(&stack, "v2", &request).await?;
    let outcome = &timeline.outcome;

    // Then the execution succeeded through exactly the states of the all-at-once path
    expect_status(outcome, ExecutionStatus::Succeeded)?;
    let states = outcome.states_entered();
    let (path, launch_polls, step_polls) = without_poll_loops(&states);
    assert_eq!(path, succeeded_path(1), "states entered: {states:?}");
    let max = fast_timing().max_health_polls as usize;
    assert!(launch_polls < max && step_polls < max, "{states:?}");

    // And green is alone, primary on B with all the traffic; blue's task set is gone
    let green =
        expect_green_alone_on_b(&stack, &t, execution_name_of(&outcome.execution_arn)).await?;

    // And green runs v2 pinned by digest
    let pinned = env.pinned_image("v2")?;
    let (green_td, green_tags) =
        inspect::task_definition_with_tags(&stack.clients, &green.task_definition_arn).await?;
    let app = inspect::container(&stack.clients, &green.task_definition_arn, APP_CONTAINER).await?;
    assert_eq!(app.image(), Some(pinned.as_str()));
    assert!(pinned.contains("@sha256:"), "{pinned}");

    // And its task definition is a new revision of blue's family, equal to blue's in every
    // field but the app's image, with the secrets block identical
    assert_ne!(green.task_definition_arn, env.task_definition_arn);
    assert_eq!(green_td.family(), blue_td.family());
    assert_eq!(green_td.revision(), blue_td.revision() + 1);
    assert_eq!(green_td.status(), Some(&TaskDefinitionStatus::Active));
    expect_only_image_changed(&blue_td, &green_td, APP_CONTAINER, &pinned)?;
    assert_eq!(
        secrets_of(&green_td, APP_CONTAINER),
        secrets_of(&blue_td, APP_CONTAINER)
    );
    assert_eq!(
        secrets_of(&green_td, APP_CONTAINER),
        env.secrets.container_secrets()
    );
    assert_eq!(green_tags, blue_tags);

    // And traffic moved once, from 0 straight to 100
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 100],
        "{:#?}",
        timeline.changes()
    );
    Ok(())
}

#[tokio::test]
async fn a_step_list_on_a_listener_rule_moves_only_the_rule_through_each_weight_in_order()
-> anyhow::Result<()> {
    // Given blue on target group A behind a /api/* rule with its own weighted forward
    let stack = Stack::connect().await?;
    let mut spec = EnvSpec::new("");
    spec.listener_rule = Some(RuleSpec::PathPattern("/api/*".into()));
    let t = stack.environment("step_list_rule", spec).await?;
    let env = &t.env;
    let rule_arn = env
        .listener_rule_arn
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the environment has no rule"))?;
    let rule_before = inspect::rule(&stack.clients, &rule_arn).await?;
    let listener_before = inspect::listener(&stack.clients, &env.listener_arn).await?;

    // When v2 is deployed on the rule in two steps, 25 then 100
    let strategy = Strategy::Steps {
        steps: vec![TrafficStep::to(25).baking(2), TrafficStep::to(100)],
    };
    let request = env.deploy_request(env.tagged_image("v2"), strategy, fast_timing());
    assert_eq!(
        request.listener_rule_arn.as_deref(),
        Some(rule_arn.as_str())
    );
    let execution = t.start(&stack, "v2", &request).await?;
    let rule_route = t.sampler();
    let default_route = Sampler {
        route: env.default_route(),
        ..t.sampler()
    };
    let (on_rule, on_default) = tokio::join!(
        rule_route.record(&stack.clients, &execution, |_| {}),
        default_route.record(&stack.clients, &execution, |_| {}),
    );
    let (on_rule, on_default) = (on_rule?, on_default?);

    // Then it succeeded through both steps
    let outcome = &on_rule.outcome;
    expect_status(outcome, ExecutionStatus::Succeeded)?;
    let states = outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        succeeded_path(2),
        "{states:?}"
    );

    // And green's weight on the rule went 0 → 25 → 100, blue's 100 → 75 → 0
    assert_eq!(
        weight_sequence(&on_rule, 1),
        [0, 25, 100],
        "{:#?}",
        on_rule.changes()
    );
    assert_eq!(
        weight_sequence(&on_rule, 0),
        [100, 75, 0],
        "{:#?}",
        on_rule.changes()
    );

    // And the listener's default action never moved: still everything on A
    assert_eq!(
        weight_sequence(&on_default, 0),
        [100],
        "{:#?}",
        on_default.changes()
    );
    assert_eq!(
        weight_sequence(&on_default, 1),
        [0],
        "{:#?}",
        on_default.changes()
    );
    let listener_after = inspect::listener(&stack.clients, &env.listener_arn).await?;
    assert_eq!(
        listener_after.default_actions(),
        listener_before.default_actions()
    );

    // And the rule kept its conditions and priority; only its weights changed
    let rule_after = inspect::rule(&stack.clients, &rule_arn).await?;
    assert_eq!(rule_after.conditions(), rule_before.conditions());
    assert_eq!(rule_after.priority(), rule_before.priority());
    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(
        (
            inspect::weight_of(&w, env.tg_a()),
            inspect::weight_of(&w, env.tg_b())
        ),
        (0, 100)
    );
    expect_green_alone_on_b(&stack, &t, execution_name_of(&outcome.execution_arn)).await?;
    Ok(())
}

/// The fields of a [`TaskDefinitionKind::Maximal`] task definition that are missing from
/// `td`: proof that the environment really has them, so comparing revisions means something.
fn missing_maximal_fields(
    td: &TaskDefinition,
    tags: &[aws_sdk_ecs::types::Tag],
) -> Vec<&'static str> {
    let container = |name: &str| {
        td.container_definitions()
            .iter()
            .find(|c| c.name() == Some(name))
    };
    let mut missing = Vec::new();
    let mut need = |ok: bool, field: &'static str| {
        if !ok {
            missing.push(field);
        }
    };
    need(td.task_role_arn().is_some(), "taskRoleArn");
    need(td.execution_role_arn().is_some(), "executionRoleArn");
    need(td.network_mode().is_some(), "networkMode");
    need(td.volumes().len() == 2, "volumes");
    need(
        td.volumes()
            .iter()
            .filter_map(|v| v.efs_volume_configuration())
            .any(|e| e.authorization_config().is_some() && e.transit_encryption_port().is_some()),
        "volumes[efs].efsVolumeConfiguration",
    );
    need(
        !td.placement_constraints().is_empty(),
        "placementConstraints",
    );
    need(
        !td.requires_compatibilities().is_empty(),
        "requiresCompatibilities",
    );
    need(td.cpu().is_some() && td.memory().is_some(), "cpu/memory");
    need(td.pid_mode().is_some(), "pidMode");
    need(
        td.proxy_configuration()
            .is_some_and(|p| p.properties().len() == 5),
        "proxyConfiguration",
    );
    #[allow(deprecated)]
    need(
        !td.inference_accelerators().is_empty(),
        "inferenceAccelerators",
    );
    need(td.ephemeral_storage().is_some(), "ephemeralStorage");
    need(td.runtime_platform().is_some(), "runtimePlatform");
    need(tags.len() == 3, "tags");
    need(
        td.container_definitions().len() == 3,
        "containerDefinitions",
    );
    match container(APP_CONTAINER) {
        None => need(false, "containerDefinitions[app]"),
        Some(app) => {
            need(
                app.repository_credentials().is_some(),
                "app.repositoryCredentials",
            );
            need(app.memory_reservation().is_some(), "app.memoryReservation");
            need(app.port_mappings().len() == 2, "app.portMappings");
            need(app.restart_policy().is_some(), "app.restartPolicy");
            need(!app.entry_point().is_empty(), "app.entryPoint");
            need(app.command().len() == 2, "app.command");
            need(app.environment().len() == 4, "app.environment");
            need(!app.environment_files().is_empty(), "app.environmentFiles");
            need(app.mount_points().len() == 2, "app.mountPoints");
            need(!app.volumes_from().is_empty(), "app.volumesFrom");
            need(
                app.linux_parameters()
                    .and_then(|l| l.capabilities())
                    .is_some(),
                "app.linuxParameters",
            );
            need(app.secrets().len() == 2, "app.secrets");
            need(app.depends_on().len() == 2, "app.dependsOn");
            need(
                app.start_timeout().is_some() && app.stop_timeout().is_some(),
                "app.start/stopTimeout",
            );
            need(
                app.version_consistency().is_some(),
                "app.versionConsistency",
            );
            need(
                app.user().is_some() && app.working_directory().is_some(),
                "app.user/workingDirectory",
            );
            need(
                app.readonly_root_filesystem().is_some(),
                "app.readonlyRootFilesystem",
            );
            need(
                app.docker_labels().is_some_and(|l| l.len() == 2),
                "app.dockerLabels",
            );
            need(!app.ulimits().is_empty(), "app.ulimits");
            need(
                app.log_configuration()
                    .is_some_and(|l| !l.secret_options().is_empty()),
                "app.logConfiguration.secretOptions",
            );
            need(app.health_check().is_some(), "app.healthCheck");
            need(!app.system_controls().is_empty(), "app.systemControls");
            need(
                !app.resource_requirements().is_empty(),
                "app.resourceRequirements",
            );
        }
    }
    need(
        container(LOG_ROUTER_CONTAINER).is_some_and(|c| c.firelens_configuration().is_some()),
        "log_router.firelensConfiguration",
    );
    need(
        container(ENVOY_CONTAINER)
            .is_some_and(|c| c.health_check().is_some() && c.user().is_some()),
        "envoy.healthCheck/user",
    );
    missing
}

#[tokio::test]
async fn a_task_definition_using_every_field_moto_keeps_round_trips_with_only_the_image_changed()
-> anyhow::Result<()> {
    // Given blue on a task definition with every RegisterTaskDefinition field moto keeps
    let stack = Stack::connect().await?;
    let mut spec = EnvSpec::new("");
    spec.task_definition = TaskDefinitionKind::Maximal;
    let t = stack.environment("maximal_td", spec).await?;
    let env = &t.env;
    let (blue_td, blue_tags) =
        inspect::task_definition_with_tags(&stack.clients, &env.task_definition_arn).await?;
    let missing = missing_maximal_fields(&blue_td, &blue_tags);
    assert!(
        missing.is_empty(),
        "blue's task definition lacks {missing:?}: {blue_td:#?}"
    );

    // When v2 is deployed
    let request = env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    let timeline = t.deploy(&stack, "v2", &request).await?;
    expect_status(&timeline.outcome, ExecutionStatus::Succeeded)?;

    // Then green's revision equals blue's in every field but the app's image
    let green = expect_green_alone_on_b(
        &stack,
        &t,
        execution_name_of(&timeline.outcome.execution_arn),
    )
    .await?;
    let (green_td, green_tags) =
        inspect::task_definition_with_tags(&stack.clients, &green.task_definition_arn).await?;
    assert_ne!(green.task_definition_arn, env.task_definition_arn);
    expect_only_image_changed(&blue_td, &green_td, APP_CONTAINER, &env.pinned_image("v2")?)?;
    assert_eq!(
        missing_maximal_fields(&green_td, &green_tags),
        Vec::<&str>::new()
    );

    // And it carries the same tags
    let sorted = |tags: &[aws_sdk_ecs::types::Tag]| {
        let mut v: Vec<(String, String)> = tags
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&green_tags), sorted(&blue_tags));
    Ok(())
}
