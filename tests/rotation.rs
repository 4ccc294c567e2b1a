//! End-to-end: rotation of the Dynatrace tokens a service reads from Secrets Manager
//! (`make e2e`). The test plays Secrets Manager's part (`local_stack::rotation`): moto makes
//! the `AWSPENDING` version, the test invokes `rotate-secret`'s four steps, and
//! `finishSecret` starts the real rotation workflow, which redeploys the service through the
//! real deploy state machine and only then revokes the previous token in the fake Dynatrace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e::{EXECUTION_TIMEOUT, Stack, TestEnv, expect_status};
use local_stack::env::EnvSpec;
use local_stack::rotation::{self, FUNCTION, STEPS, step_event};
use local_stack::sfn::{self, Outcome, STACK_ROTATION_STATE_MACHINE};
use local_stack::tokens::token_id;
use serde_json::{Value, json};

/// Version id → stage labels of `secret`.
async fn stages(stack: &Stack, secret: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    Ok(stack
        .clients
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await?
        .version_ids_to_stages
        .unwrap_or_default()
        .into_iter()
        .collect())
}

async fn current_value(stack: &Stack, secret: &str) -> anyhow::Result<String> {
    Ok(stack
        .clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await?
        .secret_string()
        .unwrap_or_default()
        .to_string())
}

/// The fake Dynatrace's tokens by id: (name, enabled).
async fn tokens(stack: &Stack) -> anyhow::Result<BTreeMap<String, (String, bool)>> {
    let all = stack.gateway.dynatrace_tokens().await?;
    Ok(all["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["id"].as_str().unwrap_or_default().to_string(),
                (
                    t["name"].as_str().unwrap_or_default().to_string(),
                    t["enabled"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect())
}

/// What the tasks of the service's live task sets hold for `name`: (task set status, token id).
async fn held_by_tasks(
    stack: &Stack,
    t: &TestEnv,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let state = stack.gateway.state().await?;
    let mut held = Vec::new();
    for ts in state["taskSets"].as_array().into_iter().flatten() {
        if ts["service"] != t.env.service_name.as_str()
            || ts["cluster"] != t.env.cluster_name.as_str()
        {
            continue;
        }
        for task in ts["tasks"].as_array().into_iter().flatten() {
            if task["lastStatus"] != "RUNNING" {
                continue;
            }
            for s in task["secrets"].as_array().into_iter().flatten() {
                if s["name"] == name {
                    held.push((
                        ts["status"].as_str().unwrap_or_default().to_string(),
                        s["holds"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    Ok(held)
}

async fn workflow_outcome(stack: &Stack, arn: &str) -> anyhow::Result<Outcome> {
    sfn::wait(
        &stack.clients.sfn,
        arn,
        Duration::from_millis(500),
        EXECUTION_TIMEOUT,
    )
    .await
}

fn log(name: &str) -> anyhow::Result<String> {
    let path: PathBuf = sfn::workspace_root().join(".local/logs").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[tokio::test]
async fn a_rotation_redeploys_the_service_onto_the_new_token_and_revokes_the_old_one_last()
-> anyhow::Result<()> {
    // Given a service whose tasks hold the plain secret's token, which Dynatrace knows
    let stack = Stack::connect().await?;
    let t = stack.environment("rotate", EnvSpec::new("")).await?;
    let env = &t.env;
    rotation::register_tokens(&stack.gateway, env).await?;
    let secret = env.secrets.api_token_arn.clone();
    let old_value = env.secrets.api_token.clone();
    let old_id = token_id(&old_value).unwrap_or_default().to_string();
    let before = held_by_tasks(&stack, &t, "DT_API_TOKEN").await?;
    assert!(
        !before.is_empty() && before.iter().all(|(_, id)| *id == old_id),
        "{before:?}"
    );

    // When Secrets Manager rotates the secret
    let run = rotation::rotate_now(&stack.clients, &stack.functions, &secret).await?;

    // Then the new version is AWSCURRENT, the old one AWSPREVIOUS, and no AWSPENDING is left
    let labels = stages(&stack, &secret).await?;
    assert_eq!(labels[&run.version_id], ["AWSCURRENT"], "{labels:?}");
    assert_eq!(
        labels
            .values()
            .filter(|s| s.contains(&"AWSPREVIOUS".to_string()))
            .count(),
        1
    );
    assert!(
        labels
            .values()
            .all(|s| !s.contains(&"AWSPENDING".to_string())),
        "{labels:?}"
    );
    let new_value = current_value(&stack, &secret).await?;
    let new_id = token_id(&new_value).unwrap_or_default().to_string();
    assert_ne!(new_id, old_id);

    // And the workflow redeployed the service and then revoked the old token
    let workflow = run
        .workflow_execution_arn
        .clone()
        .context("finishSecret started no workflow")?;
    let outcome = workflow_outcome(&stack, &workflow).await?;
    expect_status(&outcome, ExecutionStatus::Succeeded)?;
    let states = outcome.states_entered();
    let (redeployed_at, revoked_at) = (
        states.iter().position(|s| s == "CheckRedeploys"),
        states.iter().position(|s| s == "RevokePrevious"),
    );
    assert!(
        redeployed_at.is_some() && redeployed_at < revoked_at,
        "{states:?}"
    );
    let all = tokens(&stack).await?;
    assert_eq!(
        all.get(&old_id).map(|t| t.1),
        Some(false),
        "the old token is revoked"
    );
    assert_eq!(
        all.get(&new_id).map(|t| t.1),
        Some(true),
        "the new token works"
    );
    let minted: Vec<_> = all
        .values()
        .filter(|(name, _)| name.contains(&run.version_id))
        .collect();
    assert_eq!(minted.len(), 1, "{minted:?}");

    // And every task the service runs now holds the new token
    let after = t.task_sets_once_drained(&stack).await?;
    assert_eq!(after.len(), 1);
    assert_ne!(
        after[0].id, env.blue_task_set_id,
        "the service was redeployed"
    );
    let held = held_by_tasks(&stack, &t, "DT_API_TOKEN").await?;
    assert!(
        !held.is_empty() && held.iter().all(|(_, id)| *id == new_id),
        "{held:?}"
    );

    // And no token value is in the workflow's history, rotate-secret's answers or the logs
    let mut exposed = sfn::history_text(&outcome.history);
    for o in &run.outputs {
        exposed.push_str(&o.to_string());
    }
    exposed.push_str(&log("lambda.log")?);
    exposed.push_str(&log("gateway.log")?);
    for (which, value) in [("old", &old_value), ("new", &new_value)] {
        let secret_part = value.rsplit('.').next().unwrap_or_default();
        assert!(
            !exposed.contains(value.as_str()),
            "the {which} token's value leaked"
        );
        assert!(
            !exposed.contains(secret_part),
            "the {which} token's secret part leaked"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_rotation_step_run_twice_leaves_the_same_state_and_mints_one_token_per_key()
-> anyhow::Result<()> {
    // Given the JSON secret with two tokens, and Secrets Manager's pending version
    let stack = Stack::connect().await?;
    let t = stack.environment("rotate_twice", EnvSpec::new("")).await?;
    let env = &t.env;
    rotation::register_tokens(&stack.gateway, env).await?;
    let secret = env.secrets.tokens_arn.clone();
    let version = rotation::start_rotation(&stack.clients, &secret).await?;

    // When every step is invoked twice, as a retrying Secrets Manager would
    let mut workflows = Vec::new();
    for step in STEPS {
        let mut states = Vec::new();
        for _ in 0..2 {
            let out = stack
                .functions
                .invoke(FUNCTION, &step_event(&secret, &version, step))
                .await?
                .map_err(|e| anyhow::anyhow!("{step}: {e}"))?;
            workflows.extend(out["workflow"].as_str().map(str::to_string));
            let pending = stack
                .clients
                .secrets
                .get_secret_value()
                .secret_id(&secret)
                .version_id(&version)
                .send()
                .await
                .ok()
                .and_then(|v| v.secret_string().map(str::to_string));
            // Only this environment's tokens: other tests mint theirs meanwhile.
            let ours: BTreeMap<_, _> = tokens(&stack)
                .await?
                .into_iter()
                .filter(|(_, (name, _))| name.contains(&env.prefix))
                .collect();
            states.push((stages(&stack, &secret).await?, pending, ours));
        }
        // Then the second run left the state as the first did
        assert!(
            states[0] == states[1],
            "{step} changed something when run again"
        );
    }

    // And one token was minted per token key, the other key kept
    let minted = tokens(&stack)
        .await?
        .into_values()
        .filter(|(name, _)| name.contains(&version))
        .count();
    assert_eq!(minted, 2);
    let new: Value = serde_json::from_str(&current_value(&stack, &secret).await?)?;
    assert_ne!(new["DT_API_TOKEN"], json!(env.secrets.tokens_api_token));
    assert_ne!(new["DT_PAAS_TOKEN"], json!(env.secrets.tokens_paas_token));

    // And the workflow was started once, both finishSecret runs answering the same execution
    assert_eq!(workflows.len(), 2);
    assert_eq!(workflows[0], workflows[1]);
    let outcome = workflow_outcome(&stack, &workflows[0]).await?;
    expect_status(&outcome, ExecutionStatus::Succeeded)?;
    Ok(())
}

#[tokio::test]
async fn a_failed_redeploy_leaves_the_old_token_valid_and_a_later_run_finishes_the_job()
-> anyhow::Result<()> {
    // Given a service another deployment holds (a rival task set), so a redeploy is refused
    let stack = Stack::connect().await?;
    let t = stack.environment("rotate_fail", EnvSpec::new("")).await?;
    let env = &t.env;
    rotation::register_tokens(&stack.gateway, env).await?;
    let secret = env.secrets.api_token_arn.clone();
    let old_id = token_id(&env.secrets.api_token)
        .unwrap_or_default()
        .to_string();
    let blue = stack
        .clients
        .ecs
        .describe_task_sets()
        .cluster(&env.cluster_name)
        .service(&env.service_name)
        .send()
        .await?
        .task_sets
        .unwrap_or_default()
        .into_iter()
        .next()
        .context("blue")?;
    let rival = stack
        .clients
        .ecs
        .create_task_set()
        .cluster(&env.cluster_name)
        .service(&env.service_name)
        .task_definition(&env.task_definition_arn)
        .external_id("someone-else")
        .set_network_configuration(blue.network_configuration().cloned())
        .set_launch_type(blue.launch_type().cloned())
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(env.tg_b())
                .container_name(local_stack::env::APP_CONTAINER)
                .container_port(8080)
                .build(),
        )
        .send()
        .await?
        .task_set
        .context("the rival task set")?;

    // When the secret is rotated
    let run = rotation::rotate_now(&stack.clients, &stack.functions, &secret).await?;
    let workflow = run.workflow_execution_arn.clone().context("no workflow")?;
    let failed = workflow_outcome(&stack, &workflow).await?;

    // Then the workflow failed loudly, naming the service and why, and the old token is valid
    expect_status(&failed, ExecutionStatus::Failed)?;
    assert_eq!(
        failed.error.as_deref(),
        Some("RedeployFailed"),
        "{:?}",
        failed.cause
    );
    let cause = failed.cause.clone().unwrap_or_default();
    assert!(cause.contains("previous tokens stay valid"), "{cause}");
    assert!(
        cause.contains(&format!("{}/{}", env.cluster_name, env.service_name)),
        "{cause}"
    );
    assert!(cause.contains("DeploymentInProgress"), "{cause}");
    assert_eq!(tokens(&stack).await?.get(&old_id).map(|t| t.1), Some(true));
    assert!(
        !failed
            .states_entered()
            .contains(&"RevokePrevious".to_string())
    );

    // When the rival is gone and the workflow is run again with the same input
    stack
        .clients
        .ecs
        .delete_task_set()
        .cluster(&env.cluster_name)
        .service(&env.service_name)
        .task_set(rival.task_set_arn().unwrap_or_default())
        .send()
        .await?;
    let input: Value = serde_json::from_str(
        &stack
            .clients
            .sfn
            .describe_execution()
            .execution_arn(&workflow)
            .send()
            .await?
            .input
            .unwrap_or_default(),
    )?;
    let again = sfn::start(
        &stack.clients.sfn,
        &sfn::state_machine_arn(STACK_ROTATION_STATE_MACHINE),
        &sfn::execution_name(&[&env.prefix, "rotation-again"]),
        &input,
    )
    .await?;
    let finished = workflow_outcome(&stack, &again).await?;

    // Then it redeployed the service and revoked the old token
    expect_status(&finished, ExecutionStatus::Succeeded)?;
    assert_eq!(tokens(&stack).await?.get(&old_id).map(|t| t.1), Some(false));
    let new_id = token_id(&current_value(&stack, &secret).await?)
        .unwrap_or_default()
        .to_string();
    assert_ne!(new_id, old_id);
    let held = held_by_tasks(&stack, &t, "DT_API_TOKEN").await?;
    assert!(
        !held.is_empty() && held.iter().all(|(_, id)| *id == new_id),
        "{held:?}"
    );
    Ok(())
}
