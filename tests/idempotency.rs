//! End-to-end: every step is idempotent (`make e2e`). Each function is invoked directly, the
//! way Step Functions invokes it (the Lambda Invoke API on the gateway, payloads shaped like
//! `events/<step>/`), twice in a row with the same input: the second run answers the same and
//! changes nothing an operator could see. A retry after a lost answer is exactly that.

use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_sdk_ecs::types::TaskDefinitionStatus;
use bluegreen::model::{Deployment, Strategy};
use e2e::{Snapshot, Stack, TestEnv, debug_diff, eventually, fast_timing};
use local_stack::env::{APP_CONTAINER, EnvSpec};
use local_stack::inspect;
use local_stack::sfn::workspace_root;
use serde_json::{Value, json};

/// The sample payload `events/<path>`, the template of every invoke here.
fn sample(path: &str) -> anyhow::Result<Value> {
    let file = workspace_root().join("events").join(path);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the sample payload {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

/// `events/<path>` with this environment's deployment in place of the sample's, and `extra`
/// fields set on top.
fn payload(path: &str, deployment: &Deployment, extra: &[(&str, Value)]) -> anyhow::Result<Value> {
    let mut p = sample(path)?;
    if p.get("deployment").is_none() {
        return Err(anyhow!("sample {path} has no deployment field: {p}"));
    }
    p["deployment"] = serde_json::to_value(deployment)?;
    for (k, v) in extra {
        if p.get(*k).is_none() {
            return Err(anyhow!("sample {path} has no {k} field: {p}"));
        }
        p[*k] = v.clone();
    }
    Ok(p)
}

/// Deregistration delay of the environments here: a removed task set stays listed as
/// `DRAINING` this long, well past both runs of a step.
const SLOW_DRAIN_SECONDS: u32 = 30;

fn slow_draining() -> EnvSpec {
    let mut spec = EnvSpec::new("");
    spec.deregistration_delay_seconds = SLOW_DRAIN_SECONDS;
    spec
}

/// The deployment `Validate` makes of v2 for this environment, with a fixed execution name.
fn deployment(t: &TestEnv, execution_name: &str) -> anyhow::Result<Deployment> {
    let env = &t.env;
    let request = env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    Ok(request.into_deployment(execution_name, None)?)
}

/// What two runs of one step did.
#[derive(Debug)]
struct TwoRuns {
    function: &'static str,
    before: Snapshot,
    output: Value,
    second_output: Value,
    after: Snapshot,
}

impl TwoRuns {
    /// Fails unless the second run answered what the first did. Checked after the state, so
    /// that a wrong answer does not hide what the step did.
    fn expect_same_answer(&self) {
        assert_eq!(
            self.second_output, self.output,
            "{} answered differently the second time (left: second run, right: first)",
            self.function
        );
    }
}

/// Invokes `function` with `payload` twice; fails unless both runs succeed and the second
/// leaves the environment exactly as the first did. Whether they answered the same is
/// [`TwoRuns::expect_same_answer`].
async fn run_twice(
    stack: &Stack,
    t: &TestEnv,
    function: &'static str,
    payload: &Value,
) -> anyhow::Result<TwoRuns> {
    let before = Snapshot::take(&stack.clients, &t.env).await?;
    let first = stack
        .functions
        .invoke(function, payload)
        .await?
        .map_err(|e| anyhow!("the first run of {function} failed: {e}"))?;
    let after_first = Snapshot::take(&stack.clients, &t.env).await?;
    let second = stack
        .functions
        .invoke(function, payload)
        .await?
        .map_err(|e| anyhow!("the second run of {function} failed: {e}"))?;
    let after_second = Snapshot::take(&stack.clients, &t.env).await?;
    assert!(
        after_second == after_first,
        "the second run of {function} changed the environment (- after the first, + after the second):\n{}",
        debug_diff(&after_first, &after_second)
    );
    Ok(TwoRuns {
        function,
        before,
        output: first,
        second_output: second,
        after: after_first,
    })
}

/// Invokes `verify-health` until green is healthy.
async fn wait_until_green_is_healthy(stack: &Stack, payload: &Value) -> anyhow::Result<()> {
    eventually(
        "verify-health passes",
        Duration::from_secs(120),
        move || async move {
            match stack.functions.invoke("verify-health", payload).await? {
                Ok(out) if out["decision"] == "pass" => Ok(Some(())),
                Ok(out) if out["decision"] == "wait" => Ok(None),
                Ok(out) => Err(anyhow!(
                    "verify-health answered neither wait nor pass: {out}"
                )),
                Err(e) => Err(anyhow!("verify-health failed instead of passing: {e}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn every_step_of_a_deploy_run_twice_answers_the_same_and_changes_nothing_more()
-> anyhow::Result<()> {
    // Given blue on v1 and a deployment of v2 by a fixed execution name; a deregistration
    // delay long enough that a removed task set is still listed (DRAINING) at the second run
    let stack = Stack::connect().await?;
    let t = stack.environment("idempotent", slow_draining()).await?;
    let env = &t.env;
    let name = format!("{}-idempotent", env.prefix);
    let d = deployment(&t, &name)?;
    let initial = Snapshot::take(&stack.clients, env).await?;

    // When validate runs twice
    let request = serde_json::to_value(env.deploy_request(
        env.tagged_image("v2"),
        Strategy::AllAtOnce,
        fast_timing(),
    ))?;
    let mut validate_payload = sample("validate/input.json")?;
    validate_payload["request"] = request;
    validate_payload["executionName"] = json!(name);
    validate_payload["executionArn"] = json!(null);
    let run = run_twice(&stack, &t, "validate", &validate_payload).await?;
    // Then, both runs alike: it answers the deployment and changes nothing
    assert_eq!(run.output, json!({ "deployment": d }));
    assert_eq!(run.after, initial);
    run.expect_same_answer();

    // When create-green runs twice
    let step = payload("create-green/input.json", &d, &[])?;
    let run = run_twice(&stack, &t, "create-green", &step).await?;
    // Then, both runs alike: one green task set on B, one new revision
    let green_id = run.output["green"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("create-green answered no green id: {}", run.output))?
        .to_string();
    let green_td = run.output["green"]["taskDefinitionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(run.output["image"], json!(env.pinned_image("v2")?));
    assert_eq!(run.after.task_sets.len(), 2, "{:#?}", run.after);
    let green = run
        .after
        .task_sets
        .iter()
        .find(|s| s.id == green_id)
        .ok_or_else(|| anyhow!("green {green_id} is not a task set of the service"))?;
    assert_eq!(green.external_id.as_deref(), Some(name.as_str()));
    assert_eq!(green.target_group_arns, [env.tg_b().to_string()]);
    assert_eq!(green.app_image, env.pinned_image("v2")?);
    assert_eq!(
        run.after.active_revisions,
        [env.task_definition_arn.clone(), green_td.clone()]
    );
    assert!(run.after.inactive_revisions.is_empty());
    assert_eq!(run.after.route_weights, run.before.route_weights);
    run.expect_same_answer();

    // When verify-health runs twice once green is healthy
    let step = payload("verify-health/launch.json", &d, &[])?;
    wait_until_green_is_healthy(&stack, &step).await?;
    let run = run_twice(&stack, &t, "verify-health", &step).await?;
    // Then, both runs alike: green is healthy and nothing changes
    assert_eq!(run.output["decision"], json!("pass"));
    assert_eq!(run.output["greenTaskSetId"], json!(green_id));
    assert_eq!(run.output["healthyTargets"], json!(env.desired_count));
    assert_eq!(run.after, run.before);
    run.expect_same_answer();

    // When shift-traffic to 100 runs twice
    let step = payload(
        "shift-traffic/input.json",
        &d,
        &[("greenWeight", json!(100))],
    )?;
    let run = run_twice(&stack, &t, "shift-traffic", &step).await?;
    // Then, both runs alike: all traffic on B
    assert_eq!(
        (
            run.output["blueWeight"].clone(),
            run.output["greenWeight"].clone()
        ),
        (json!(0), json!(100))
    );
    assert_eq!(
        (
            run.after.weight_of(env.tg_a()),
            run.after.weight_of(env.tg_b())
        ),
        (0, 100)
    );
    assert_eq!(run.after.task_sets, run.before.task_sets);
    run.expect_same_answer();

    // When drain-blue promote runs twice
    let step = payload("drain-blue/promote.json", &d, &[])?;
    let run = run_twice(&stack, &t, "drain-blue", &step).await?;
    // Then, both runs alike: green is primary, blue still there
    assert_eq!(run.output["primaryTaskSetId"], json!(green_id));
    let status_of = |s: &Snapshot, id: &str| {
        s.task_sets
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.status.clone())
    };
    assert_eq!(status_of(&run.after, &green_id).as_deref(), Some("PRIMARY"));
    assert_eq!(
        status_of(&run.after, &env.blue_task_set_id).as_deref(),
        Some("ACTIVE")
    );
    run.expect_same_answer();

    // When drain-blue removeBlue runs twice
    let step = payload("drain-blue/removeBlue.json", &d, &[])?;
    let run = run_twice(&stack, &t, "drain-blue", &step).await?;
    // Then, both runs alike: blue is removed (DRAINING until its tasks stopped), green is the
    // one live task set and primary
    assert_eq!(run.output["removedTaskSetId"], json!(env.blue_task_set_id));
    assert_eq!(
        status_of(&run.after, &env.blue_task_set_id).as_deref(),
        Some("DRAINING")
    );
    let live = run.after.live_task_sets();
    assert_eq!(live.len(), 1, "{:#?}", run.after);
    assert_eq!(live[0].id, green_id);
    assert_eq!(live[0].status, "PRIMARY");
    assert_eq!(
        (
            run.after.weight_of(env.tg_a()),
            run.after.weight_of(env.tg_b())
        ),
        (0, 100)
    );
    run.expect_same_answer();
    Ok(())
}

#[tokio::test]
async fn every_step_of_a_rollback_run_twice_answers_the_same_and_changes_nothing_more()
-> anyhow::Result<()> {
    // Given green created for v2 and taking 50 % of the traffic; a deregistration delay long
    // enough that a removed task set is still listed (DRAINING) at the second run
    let stack = Stack::connect().await?;
    let t = stack.environment("idem_rollback", slow_draining()).await?;
    let env = &t.env;
    let name = format!("{}-rollback", env.prefix);
    let d = deployment(&t, &name)?;
    let created = stack
        .functions
        .invoke(
            "create-green",
            &payload("create-green/input.json", &d, &[])?,
        )
        .await?
        .map_err(|e| anyhow!("create-green failed: {e}"))?;
    let green_id = created["green"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let green_td = created["green"]["taskDefinitionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    stack
        .functions
        .invoke(
            "shift-traffic",
            &payload(
                "shift-traffic/input.json",
                &d,
                &[("greenWeight", json!(50))],
            )?,
        )
        .await?
        .map_err(|e| anyhow!("shift-traffic 50 failed: {e}"))?;
    let at_50 = Snapshot::take(&stack.clients, env).await?;
    assert_eq!(
        (at_50.weight_of(env.tg_a()), at_50.weight_of(env.tg_b())),
        (50, 50)
    );

    // When shift-traffic to 0 runs twice
    let step = payload("shift-traffic/rollback.json", &d, &[])?;
    assert_eq!(step["greenWeight"], json!(0));
    let run = run_twice(&stack, &t, "shift-traffic", &step).await?;
    // Then, both runs alike: all traffic back on A
    assert_eq!(
        (
            run.output["blueWeight"].clone(),
            run.output["greenWeight"].clone()
        ),
        (json!(100), json!(0))
    );
    assert_eq!(
        (
            run.after.weight_of(env.tg_a()),
            run.after.weight_of(env.tg_b())
        ),
        (100, 0)
    );
    assert_eq!(run.after.task_sets, run.before.task_sets);
    run.expect_same_answer();

    // When drain-blue removeGreen runs twice
    let step = payload("drain-blue/removeGreen.json", &d, &[])?;
    let run = run_twice(&stack, &t, "drain-blue", &step).await?;
    // Then, both runs alike: green is removed (DRAINING until its tasks stopped) and its
    // revision deregistered, blue the one live task set and primary
    assert_eq!(run.output["removedTaskSetId"], json!(green_id));
    assert_eq!(run.output["primaryTaskSetId"], json!(env.blue_task_set_id));
    assert_eq!(run.output["waitSeconds"], json!(SLOW_DRAIN_SECONDS));
    let live = run.after.live_task_sets();
    assert_eq!(live.len(), 1, "{:#?}", run.after);
    assert_eq!(live[0].id, env.blue_task_set_id);
    assert_eq!(live[0].status, "PRIMARY");
    let green_now = run.after.task_sets.iter().find(|t| t.id == green_id);
    assert_eq!(
        green_now.map(|t| t.status.as_str()),
        Some("DRAINING"),
        "{:#?}",
        run.after
    );
    assert_eq!(
        run.after.active_revisions,
        std::slice::from_ref(&env.task_definition_arn)
    );
    assert_eq!(
        run.after.inactive_revisions,
        std::slice::from_ref(&green_td)
    );
    let td = inspect::task_definition(&stack.clients, &green_td).await?;
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Inactive));
    let blue_app =
        inspect::container(&stack.clients, &env.task_definition_arn, APP_CONTAINER).await?;
    assert_eq!(live[0].app_image, blue_app.image().unwrap_or_default());
    run.expect_same_answer();
    Ok(())
}
