//! End-to-end: no secret value leaks (`make e2e`). The service's task definition references
//! Dynatrace tokens in Secrets Manager; a deploy copies the references, never the values. After
//! a deploy and a rollback, no value appears in the executions' histories, outputs or causes,
//! in what the functions answered, or in the logs of the Lambda host and the gateway.

use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{DynatraceRelease, Strategy};
use bluegreen::verification::DynatraceVerification;
use e2e::{Stack, expect_status, fast_timing};
use local_stack::env::EnvSpec;
use local_stack::gateway::Fault;
use local_stack::sfn::{self, Outcome};

/// A log of the local stack (`.local/logs/<name>`), which must exist and not be empty: a
/// missing log would make "no secret in the logs" pass without looking.
fn log(name: &str) -> anyhow::Result<String> {
    let path: PathBuf = sfn::workspace_root().join(".local/logs").join(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: the local stack must write its logs there (local/stack.sh up)",
            path.display()
        )
    })?;
    anyhow::ensure!(!text.trim().is_empty(), "{} is empty", path.display());
    Ok(text)
}

/// The needles to look for: each whole secret value and its secret part alone (a token's
/// `dt0c01.PUBLIC` id may be logged, its last part never).
fn needles(values: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        out.push((*v).to_string());
        if let Some(secret_part) = v.rsplit('.').next().filter(|p| p.len() >= 32) {
            out.push(secret_part.to_string());
        }
    }
    out
}

/// Fails naming `what` when `text` contains any needle (never printing the needle itself).
fn expect_no_secret(what: &str, text: &str, needles: &[String]) {
    for (i, n) in needles.iter().enumerate() {
        assert!(
            !text.contains(n.as_str()),
            "{what} contains secret value #{i} of this environment"
        );
    }
}

/// Everything an execution exposes: its history's payloads, its output, error and cause.
fn exposed(outcome: &Outcome) -> String {
    let mut text = sfn::history_text(&outcome.history);
    if let Some(o) = &outcome.output {
        text.push('\n');
        text.push_str(&o.to_string());
    }
    for s in [&outcome.error, &outcome.cause].into_iter().flatten() {
        text.push('\n');
        text.push_str(s);
    }
    text
}

/// What the functions answered in an execution: each Lambda task's output.
fn function_outputs(outcome: &Outcome) -> Vec<String> {
    outcome
        .history
        .iter()
        .filter_map(|e| {
            e.task_succeeded_event_details()
                .and_then(|d| d.output())
                .or_else(|| {
                    e.lambda_function_succeeded_event_details()
                        .and_then(|d| d.output())
                })
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn no_secret_value_appears_in_histories_outputs_or_logs_after_a_deploy_and_a_rollback()
-> anyhow::Result<()> {
    // Given blue on v1 with a secrets block, whose values really are in Secrets Manager
    let stack = Stack::connect().await?;
    let t = stack
        .environment("no_secret_leak", EnvSpec::new(""))
        .await?;
    let env = &t.env;
    let stored = stack
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&env.secrets.api_token_arn)
        .send()
        .await?;
    assert_eq!(stored.secret_string(), Some(env.secrets.api_token.as_str()));
    // And the functions' own Dynatrace token, which they read from Secrets Manager
    let deployer_token = stack
        .clients
        .secrets
        .get_secret_value()
        .secret_id(local_stack::dynatrace::TOKEN_SECRET)
        .send()
        .await?
        .secret_string()
        .unwrap_or_default()
        .to_string();
    let mut values = env.secrets.values().to_vec();
    values.push(deployer_token.as_str());
    let needles = needles(&values);
    assert_eq!(needles.len(), 8);

    // When v2 is deployed, verified by Dynatrace and announced to it, and then v3, which
    // never turns healthy and is rolled back
    let v2 = env.digest("v2").unwrap_or_default().to_string();
    stack
        .gateway
        .dynatrace_metric("errors.rate", &v2, 0.5)
        .await?;
    let mut request =
        env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    request.dynatrace = Some(DynatraceRelease {
        release_product: None,
        release_stage: None,
        events: true,
        entity_selector: None,
    });
    request.verification.dynatrace = Some(DynatraceVerification::parse(serde_json::json!({
        "checks": [{"name": "errors", "metricSelector": "calc:service.orders.errors.rate", "threshold": {"max": 5}}]
    }))?);
    let deployed = t.deploy(&stack, "v2", &request).await?.outcome;
    expect_status(&deployed, ExecutionStatus::Succeeded)?;
    let used = stack.gateway.dynatrace_events().await?;
    assert!(
        used.iter()
            .any(|e| e["event"]["properties"]["ecs.cluster"] == env.cluster_name.as_str()),
        "the deploy did not reach Dynatrace, so its token was not exercised"
    );
    let v3 = env.digest("v3").unwrap_or_default().to_string();
    stack.gateway.add_fault(&Fault::never_healthy(&v3)).await?;
    let request = env.deploy_request(env.tagged_image("v3"), Strategy::AllAtOnce, fast_timing());
    let rolled_back = t.deploy(&stack, "v3", &request).await?.outcome;
    expect_status(&rolled_back, ExecutionStatus::Failed)?;
    assert_eq!(rolled_back.error.as_deref(), Some("VerificationFailed"));

    // Then neither execution's history, output, error or cause has a secret value
    for (what, outcome) in [("the deploy", &deployed), ("the rollback", &rolled_back)] {
        let text = exposed(outcome);
        assert!(
            text.contains(&env.cluster_name),
            "{what}'s history does not even carry the deployment: {text}"
        );
        expect_no_secret(&format!("{what}'s history"), &text, &needles);

        // And neither does anything the functions answered
        let outputs = function_outputs(outcome);
        assert!(
            outputs.len() >= 4,
            "{what}: {} function outputs",
            outputs.len()
        );
        for (i, o) in outputs.iter().enumerate() {
            expect_no_secret(&format!("{what}'s function output #{i}"), o, &needles);
        }
    }

    // And neither do the logs of the Lambda host and the gateway, which logged this run
    let lambda = log("lambda.log")?;
    assert!(
        lambda.contains(&env.cluster_name) && lambda.contains(&env.service_name),
        "lambda.log does not mention cluster {} and service {}: it did not log this run",
        env.cluster_name,
        env.service_name
    );
    expect_no_secret("lambda.log", &lambda, &needles);
    let gateway = log("gateway.log")?;
    expect_no_secret("gateway.log", &gateway, &needles);
    Ok(())
}
