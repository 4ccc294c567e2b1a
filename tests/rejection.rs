//! End-to-end: deploys `Validate` refuses (`make e2e`). A malformed input, or one that names
//! something that does not exist, fails with `InvalidInput`; a service another deployment
//! holds fails with `DeploymentInProgress`. Either way the execution goes straight from
//! `Validate` to `Rejected` and the environment is exactly as it was.

use anyhow::anyhow;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, LaunchType, LoadBalancer, NetworkConfiguration, Scale,
    ScaleUnit,
};
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::Strategy;
use e2e::{Snapshot, Stack, TestEnv, debug_diff, expect_status, fast_timing, rejected_path};
use local_stack::env::{APP_CONTAINER, APP_PORT, EnvSpec, RuleSpec};
use local_stack::sfn::Outcome;
use serde_json::{Value, json};

/// An execution input that `Validate` must refuse, and what its cause must name.
struct Case {
    name: &'static str,
    input: Value,
    /// Every one of these appears in the cause.
    names: Vec<String>,
}

fn cases(t: &TestEnv) -> anyhow::Result<Vec<Case>> {
    let env = &t.env;
    let valid = serde_json::to_value(env.deploy_request(
        env.tagged_image("v2"),
        Strategy::AllAtOnce,
        fast_timing(),
    ))?;
    let with = |field: &str, value: Value| {
        let mut v = valid.clone();
        v[field] = value;
        v
    };
    let mut missing_container = valid.clone();
    missing_container
        .as_object_mut()
        .ok_or_else(|| anyhow!("a deploy request is a JSON object"))?
        .remove("container");
    let other_repository = env
        .repository_uri
        .replace(&env.repository_name, &format!("{}/payments", env.prefix));
    Ok(vec![
        Case {
            name: "unknown-field",
            input: with("imageTag", json!("v2")),
            names: vec!["imageTag".into()],
        },
        Case {
            name: "missing-field",
            input: missing_container,
            names: vec!["container".into()],
        },
        Case {
            name: "other-repository",
            input: with("image", json!(format!("{other_repository}:v2"))),
            names: vec![other_repository.clone(), "allowed repositories".into()],
        },
        Case {
            name: "unknown-service",
            input: with("service", json!("invoices")),
            names: vec!["invoices".into(), "not found".into()],
        },
        Case {
            name: "unknown-tag",
            input: with("image", json!(env.tagged_image("v9"))),
            names: vec![
                "v9".into(),
                env.repository_name.clone(),
                "not found in ECR".into(),
            ],
        },
        Case {
            name: "target-group-as-listener",
            input: with("listenerArn", json!(env.tg_a())),
            names: vec!["listenerArn".into(), env.tg_a().to_string()],
        },
    ])
}

/// Fails unless `outcome` went from `Validate` straight to `Rejected` with `error`, and
/// its cause names each of `names`.
fn expect_rejected(outcome: &Outcome, error: &str, names: &[String]) -> anyhow::Result<()> {
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(
        outcome.error.as_deref(),
        Some(error),
        "cause: {:?}",
        outcome.cause
    );
    assert_eq!(outcome.states_entered(), rejected_path());
    let cause = outcome.cause.as_deref().unwrap_or_default();
    for name in names {
        assert!(
            cause.contains(name.as_str()),
            "the cause does not name {name}: {cause}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn invalid_inputs_are_rejected_with_invalid_input_naming_the_problem_and_change_nothing()
-> anyhow::Result<()> {
    // Given blue on v1 behind a listener rule
    let stack = Stack::connect().await?;
    let mut spec = EnvSpec::new("");
    spec.listener_rule = Some(RuleSpec::PathPattern("/orders/*".into()));
    let t = stack.environment("invalid_input", spec).await?;
    let before = Snapshot::take(&stack.clients, &t.env).await?;

    // When deploys with each kind of invalid input run
    let cases = cases(&t)?;
    let mut executions = Vec::new();
    for case in &cases {
        executions.push(t.start(&stack, case.name, &case.input).await?);
    }

    // Then each went from Validate to Rejected with InvalidInput naming the problem
    for (case, execution) in cases.iter().zip(&executions) {
        let outcome = t.wait(&stack, execution).await?;
        expect_rejected(&outcome, "InvalidInput", &case.names)
            .map_err(|e| e.context(format!("case {}", case.name)))?;
    }

    // And no task set, task definition revision, weight or rule changed
    let after = Snapshot::take(&stack.clients, &t.env).await?;
    assert!(
        after == before,
        "the environment changed (- before, + after):\n{}",
        debug_diff(&before, &after)
    );
    assert_eq!(after.task_sets.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_service_held_by_another_deployment_is_rejected_with_deployment_in_progress_and_nothing_changes()
-> anyhow::Result<()> {
    // Given blue on v1, and another deployment's task set on target group B
    let stack = Stack::connect().await?;
    let t = stack.environment("held_service", EnvSpec::new("")).await?;
    let env = &t.env;
    let rival_external_id = format!("{}-someone-else", env.prefix);
    let rival = stack
        .clients
        .ecs
        .create_task_set()
        .cluster(&env.cluster_name)
        .service(&env.service_name)
        .external_id(&rival_external_id)
        .task_definition(&env.task_definition_arn)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(env.subnet_ids.to_vec()))
                        .security_groups(&env.security_group_id)
                        .assign_public_ip(AssignPublicIp::Disabled)
                        .build()?,
                )
                .build(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(env.tg_b())
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
        .await?
        .task_set
        .and_then(|s| s.id)
        .ok_or_else(|| anyhow!("CreateTaskSet returned no id"))?;
    let before = Snapshot::take(&stack.clients, env).await?;
    assert_eq!(before.task_sets.len(), 2, "{before:#?}");

    // When v2 is deployed
    let request = env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    let execution = t.start(&stack, "v2", &request).await?;
    let outcome = t.wait(&stack, &execution).await?;

    // Then it went from Validate to Rejected with DeploymentInProgress naming the rival
    expect_rejected(
        &outcome,
        "DeploymentInProgress",
        &[rival.clone(), rival_external_id.clone()],
    )?;

    // And nothing changed: both task sets, the revisions, the weights
    let after = Snapshot::take(&stack.clients, env).await?;
    assert!(
        after == before,
        "the environment changed (- before, + after):\n{}",
        debug_diff(&before, &after)
    );
    Ok(())
}
