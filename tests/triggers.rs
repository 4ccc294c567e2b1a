//! End-to-end: the trigger (`make e2e`). ECR pushes, as EventBridge delivers them, start one
//! deploy per catalogue deployment that follows the repository and tag; the shipped event
//! pattern is checked with EventBridge's `TestEventPattern`; the webhook, over real HTTP
//! (`cargo lambda watch` serves the function's Function URL), starts, reports and aborts
//! deploys, is idempotent, and refuses bad tokens and bad requests precisely.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e::{
    EXECUTION_TIMEOUT, Stack, TestEnv, expect_status, fast_timing, wait_for_weight, weight_sequence,
};
use local_stack::env::EnvSpec;
use local_stack::sfn::{self, STACK_DEPLOY_STATE_MACHINE, state_machine_arn, workspace_root};
use local_stack::trigger::{self, WebhookClient};
use local_stack::{inspect, lambda::Answer};
use serde_json::{Value, json};

/// The sample of `events/trigger/<name>`.
fn sample(name: &str) -> anyhow::Result<Value> {
    let path = workspace_root().join("events/trigger").join(name);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

/// The sample push event, for `tag` and `digest` of the environment's repository.
fn push(t: &TestEnv, tag: &str, digest: &str, action: &str, result: &str) -> anyhow::Result<Value> {
    let mut event = sample("ecr-push.json")?;
    event["id"] = json!(format!("{}-{tag}-{action}-{result}", t.env.prefix));
    let d = &mut event["detail"];
    d["repository-name"] = json!(t.env.repository_name);
    d["image-tag"] = json!(tag);
    d["image-digest"] = json!(digest);
    d["action-type"] = json!(action);
    d["result"] = json!(result);
    Ok(event)
}

/// Writes the test's catalogue: deployment `<prefix>` follows the environment's repository
/// and `tags`, with `options` on top; `<prefix>-x` follows another repository.
fn catalogue(t: &TestEnv, tags: &[&str], options: &Value) -> anyhow::Result<String> {
    let name = t.env.prefix.clone();
    let mut other = trigger::catalogue_entry(&t.env, &["*"], options);
    other["repository"] = json!(format!("{}-elsewhere", t.env.repository_uri));
    other["service"] = json!(format!("{}-elsewhere", t.env.service_name));
    let doc = json!({
        "defaults": {"timing": fast_timing()},
        "deployments": {
            name.clone(): trigger::catalogue_entry(&t.env, tags, options),
            format!("{name}-x"): other,
        }
    });
    trigger::write_catalogue(&t.env.prefix, &doc)?;
    Ok(name)
}

/// Names of the stack deploy state machine's executions that start with `prefix`.
async fn executions_named(stack: &Stack, prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = stack
        .clients
        .sfn
        .list_executions()
        .state_machine_arn(state_machine_arn(STACK_DEPLOY_STATE_MACHINE))
        .max_results(1000)
        .send()
        .await?;
    Ok(out
        .executions()
        .iter()
        .map(|e| e.name().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect())
}

fn output(answer: Answer) -> anyhow::Result<Value> {
    answer.map_err(|e| anyhow::anyhow!("the trigger failed: {e}"))
}

#[tokio::test]
async fn the_shipped_ecr_pattern_matches_a_successful_push_and_nothing_else() -> anyhow::Result<()>
{
    let stack = Stack::connect().await?;
    let events = aws_sdk_eventbridge::Client::new(&stack.endpoint.sdk_config().await);
    // The pattern exactly as Terraform renders it (infra/eventbridge.tf: templatefile with
    // repository_names = jsonencode([...])).
    let template =
        std::fs::read_to_string(workspace_root().join("infra/patterns/ecr-push.json.tftpl"))?;
    let pattern = template.replace(
        "${repository_names}",
        &json!(["orders", "payments"]).to_string(),
    );
    assert!(
        !pattern.contains("${"),
        "a placeholder the test does not render: {pattern}"
    );
    serde_json::from_str::<Value>(&pattern).context("the rendered pattern is not JSON")?;

    let mut other_repository = sample("ecr-push.json")?;
    other_repository["detail"]["repository-name"] = json!("billing");
    let mut untagged = sample("ecr-push.json")?;
    if let Some(d) = untagged["detail"].as_object_mut() {
        d.remove("image-tag");
    }
    let cases = [
        ("a successful push", sample("ecr-push.json")?, true),
        ("a failed push", sample("ecr-push-failed.json")?, false),
        ("a delete", sample("ecr-delete.json")?, false),
        ("a push to another repository", other_repository, false),
        // The trigger ignores it with a log line; EventBridge lets it through.
        ("a push without a tag", untagged, true),
    ];
    for (what, event, expected) in cases {
        let out = events
            .test_event_pattern()
            .event_pattern(&pattern)
            .event(event.to_string())
            .send()
            .await
            .with_context(|| format!("TestEventPattern of {what}"))?;
        assert_eq!(out.result(), expected, "{what}");
    }
    Ok(())
}

#[tokio::test]
async fn a_push_starts_one_deploy_per_following_deployment_and_a_repeat_starts_none()
-> anyhow::Result<()> {
    // Given a catalogue where one deployment follows the environment's repository (v* tags)
    // and another follows another repository
    let stack = Stack::connect().await?;
    let t = stack.environment("trigger_push", EnvSpec::new("")).await?;
    let env = &t.env;
    let deployment = catalogue(&t, &["v*"], &json!({}))?;
    let digest = env.digest("v2").context("v2 pushed")?.to_string();

    // When ECR reports a successful push of v2
    let event = push(&t, "v2", &digest, "PUSH", "SUCCESS")?;
    let out = output(stack.functions.invoke(trigger::FUNCTION, &event).await?)?;

    // Then exactly the following deployment starts, with the image pinned by digest
    let deploys = out["deploys"].as_array().context("deploys")?;
    assert_eq!(deploys.len(), 1, "{out}");
    assert_eq!(deploys[0]["deployment"], deployment.as_str());
    assert_eq!(deploys[0]["status"], "started");
    let execution = deploys[0]["executionArn"]
        .as_str()
        .context("executionArn")?
        .to_string();
    assert_eq!(
        executions_named(&stack, &deployment).await?,
        [format!("{deployment}-ecr-{}", &digest[7..23])]
    );

    // And the same event delivered again, and v2 pushed again under another tag, start none
    let again = output(stack.functions.invoke(trigger::FUNCTION, &event).await?)?;
    assert_eq!(again["deploys"][0]["status"], "alreadyStarted", "{again}");
    assert_eq!(again["deploys"][0]["executionArn"], execution.as_str());
    let retag = push(&t, "v2-final", &digest, "PUSH", "SUCCESS")?;
    let retagged = output(stack.functions.invoke(trigger::FUNCTION, &retag).await?)?;
    assert_eq!(
        retagged["deploys"][0]["status"], "alreadyStarted",
        "{retagged}"
    );

    // And a tag no deployment follows, a failed push and a delete are ignored, with reasons
    for (event, reason) in [
        (
            push(&t, "latest", &digest, "PUSH", "SUCCESS")?,
            "no catalogue deployment follows",
        ),
        (
            push(&t, "v3", &digest, "PUSH", "FAILURE")?,
            "did not succeed",
        ),
        (push(&t, "v2", &digest, "DELETE", "SUCCESS")?, "not a push"),
    ] {
        let out = output(stack.functions.invoke(trigger::FUNCTION, &event).await?)?;
        let ignored = out["ignored"].as_str().unwrap_or_default();
        assert!(ignored.contains(reason), "{out}");
    }
    assert_eq!(executions_named(&stack, &deployment).await?.len(), 1);

    // And the one deploy ends with v2 live on green
    let timeline = t
        .sampler()
        .record(&stack.clients, &execution, |_| {})
        .await?;
    expect_status(&timeline.outcome, ExecutionStatus::Succeeded)?;
    assert_eq!(weight_sequence(&timeline, 1).last(), Some(&100));
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1);
    let app = inspect::container(
        &stack.clients,
        &sets[0].task_definition_arn,
        local_stack::env::APP_CONTAINER,
    )
    .await?;
    assert_eq!(app.image(), Some(env.pinned_image("v2")?.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_malformed_event_is_invalid_input_and_starts_nothing() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let t = stack.environment("trigger_bad", EnvSpec::new("")).await?;
    let deployment = catalogue(&t, &["*"], &json!({}))?;
    let mut no_digest = push(&t, "v2", "sha256:0", "PUSH", "SUCCESS")?;
    if let Some(d) = no_digest["detail"].as_object_mut() {
        d.remove("image-digest");
    }
    let mut bad_digest = push(&t, "v2", "sha256:0", "PUSH", "SUCCESS")?;
    bad_digest["detail"]["image-digest"] = json!("sha256:not-hex");
    for event in [
        json!({"detail-type": "ECR Image Action"}),
        no_digest,
        bad_digest,
        json!({"hello": "world"}),
    ] {
        match stack.functions.invoke(trigger::FUNCTION, &event).await? {
            Ok(out) => anyhow::bail!("{event} was accepted: {out}"),
            Err(e) => assert_eq!(e.error_type, "InvalidInput", "{event}: {e}"),
        }
    }
    assert!(executions_named(&stack, &deployment).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_webhook_starts_reports_and_aborts_a_deploy_over_http() -> anyhow::Result<()> {
    // Given a deployment with a canary that bakes long enough to be aborted
    let stack = Stack::connect().await?;
    let t = stack.environment("trigger_hook", EnvSpec::new("")).await?;
    let env = &t.env;
    let deployment = catalogue(
        &t,
        &["*"],
        &json!({"strategy": {"type": "canary", "percent": 20, "bakeSeconds": 120}}),
    )?;
    let token = trigger::webhook_token(&stack.clients).await?;
    let hook = WebhookClient::from_env()?;
    let run_id = format!("run-{}", env.suffix);
    let start = json!({"deployment": deployment, "image": env.tagged_image("v2"), "spinnakerExecutionId": run_id});

    // When Spinnaker starts it
    let started = hook
        .call(&token, "POST", "/deployments", Some(&start))
        .await?;

    // Then the answer is 202 with the status URL, in Location and in the body
    assert_eq!(started.status, 202, "{}", started.text);
    let name = format!("{deployment}-hook-{run_id}");
    assert_eq!(started.body["executionName"], name.as_str());
    assert_eq!(started.body["status"], "RUNNING");
    let status_url = started.location.clone().context("Location")?;
    assert_eq!(status_url, format!("{}/deployments/{name}", hook.base_url));
    assert_eq!(started.body["statusUrl"], status_url.as_str());
    let execution = started.body["executionArn"]
        .as_str()
        .context("executionArn")?
        .to_string();

    // And a re-sent POST (Spinnaker retries on 5xx and 429) is the same deploy
    let resent = hook
        .call(&token, "POST", "/deployments", Some(&start))
        .await?;
    assert_eq!(
        (resent.status, &resent.body["executionName"]),
        (202, &json!(name)),
        "{}",
        resent.text
    );
    let mut other = start.clone();
    other["image"] = json!(env.tagged_image("v3"));
    let conflict = hook
        .call(&token, "POST", "/deployments", Some(&other))
        .await?;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(
        executions_named(&stack, &deployment).await?,
        std::slice::from_ref(&name)
    );

    // And the status reports the canary's weights once traffic moved
    wait_for_weight(&stack, &execution, &env.route(), env.tg_b(), 20).await?;
    let report = e2e::eventually(
        "the status shows blue 80 / green 20",
        EXECUTION_TIMEOUT,
        || async {
            let r = hook.call(&token, "GET", &status_url, None).await?;
            anyhow::ensure!(r.status == 200, "GET {status_url}: {} {}", r.status, r.text);
            Ok((r.body["progress"]["greenWeight"] == 20).then_some(r))
        },
    )
    .await?;
    assert_eq!(report.body["status"], "RUNNING");
    assert_eq!(report.body["progress"]["blueWeight"], 80);
    let summary = report.body["progress"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(summary.contains("blue 80 / green 20"), "{summary}");

    // When it is aborted through the webhook
    let aborted = hook
        .call(
            &token,
            "POST",
            &format!("{status_url}/abort"),
            Some(&json!({"by": "e2e"})),
        )
        .await?;
    assert_eq!(aborted.status, 202, "{}", aborted.text);
    assert_eq!(aborted.body["delivered"], "commandLeft");

    // Then it rolls back and the status says ABORTED, with the cause
    let done = hook.wait(&token, &status_url, EXECUTION_TIMEOUT).await?;
    assert_eq!(done.body["status"], "ABORTED", "{}", done.text);
    let cause = done.body["cause"].as_str().unwrap_or_default();
    assert!(
        cause.starts_with("rolled back to blue") && cause.contains("e2e aborted execution"),
        "{cause}"
    );
    let outcome = sfn::outcome(
        &stack.clients.sfn,
        sfn::describe(&stack.clients.sfn, &execution).await?,
    )
    .await?;
    expect_status(&outcome, ExecutionStatus::Failed)?;
    let weights = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(inspect::weight_of(&weights, env.tg_a()), 100, "{weights:?}");
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].id, env.blue_task_set_id);

    // And a finished deploy cannot be aborted again: 409
    let late = hook
        .call(&token, "POST", &format!("{status_url}/abort"), None)
        .await?;
    assert_eq!(late.status, 409, "{}", late.text);
    Ok(())
}

#[tokio::test]
async fn bad_tokens_and_bad_requests_get_their_4xx_and_start_nothing() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let t = stack.environment("trigger_4xx", EnvSpec::new("")).await?;
    let env = &t.env;
    let deployment = catalogue(&t, &["*"], &json!({}))?;
    let token = trigger::webhook_token(&stack.clients).await?;
    let hook = WebhookClient::from_env()?;
    let good = json!({"deployment": deployment, "image": env.tagged_image("v2"), "spinnakerExecutionId": "never"});
    let json_type = ("content-type", "application/json");

    // Missing and wrong tokens
    let missing = hook
        .send("POST", "/deployments", &[json_type], Some(good.to_string()))
        .await?;
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert!(missing.headers.contains_key("www-authenticate"));
    let wrong = hook
        .send(
            "POST",
            "/deployments",
            &[json_type, ("authorization", "Bearer not-the-token")],
            Some(good.to_string()),
        )
        .await?;
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    let almost = format!("Bearer {}", &token[..token.len() - 1]);
    let prefix = hook
        .send("GET", "/deployments/x", &[("authorization", &almost)], None)
        .await?;
    assert_eq!(prefix.status, 403, "{}", prefix.text);

    // Every malformed request, authenticated
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b.to_string()
    };
    let auth = format!("Bearer {token}");
    let cases: Vec<(&str, &str, &str, Option<String>, u16)> = vec![
        (
            "malformed JSON",
            "POST",
            "application/json",
            Some("{\"deployment\": ".into()),
            400,
        ),
        (
            "a missing field",
            "POST",
            "application/json",
            Some(json!({"deployment": deployment}).to_string()),
            400,
        ),
        (
            "an unknown field",
            "POST",
            "application/json",
            Some(with("colour", json!("blue"))),
            400,
        ),
        (
            "a bad execution id",
            "POST",
            "application/json",
            Some(with("spinnakerExecutionId", json!("a b"))),
            400,
        ),
        (
            "an invalid image",
            "POST",
            "application/json",
            Some(with("image", json!("not an image"))),
            400,
        ),
        (
            "an unknown deployment",
            "POST",
            "application/json",
            Some(with("deployment", json!("nope"))),
            404,
        ),
        (
            "an image of another repository",
            "POST",
            "application/json",
            Some(with(
                "image",
                json!("123456789012.dkr.ecr.us-east-1.amazonaws.com/evil:v1"),
            )),
            422,
        ),
        (
            "a body over the limit",
            "POST",
            "application/json",
            Some(format!("{{\"pad\": \"{}\"}}", "x".repeat(20_000))),
            413,
        ),
        (
            "a form body",
            "POST",
            "application/x-www-form-urlencoded",
            Some("deployment=x".into()),
            415,
        ),
    ];
    for (what, method, content_type, body, expected) in cases {
        let r = hook
            .send(
                method,
                "/deployments",
                &[("authorization", &auth), ("content-type", content_type)],
                body,
            )
            .await?;
        assert_eq!(r.status, expected, "{what}: {}", r.text);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no message in {}", r.text);
    }
    for (method, path, expected) in [
        ("GET", "/deployments".to_string(), 405),
        (
            "GET",
            format!("/deployments/{deployment}-hook-nothing"),
            404,
        ),
        (
            "POST",
            format!("/deployments/{deployment}-hook-nothing/abort"),
            404,
        ),
        (
            "POST",
            format!("/deployments/{deployment}-hook-nothing/explode"),
            404,
        ),
        ("GET", "/elsewhere".to_string(), 404),
    ] {
        let r = hook
            .send(method, &path, &[("authorization", &auth)], None)
            .await?;
        assert_eq!(r.status, expected, "{method} {path}: {}", r.text);
    }

    // Nothing started, and the token is in no log line of the functions
    assert!(executions_named(&stack, &deployment).await?.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(trigger::catalogue_dir().join("../logs/lambda.log"))
        .unwrap_or_default();
    assert!(
        !log.is_empty(),
        "the functions' log is not where the local stack keeps it"
    );
    assert!(
        !log.contains(&token),
        "the webhook token is in the functions' log"
    );
    Ok(())
}
