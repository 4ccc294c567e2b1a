//! End-to-end: people in the loop (`make e2e`). Approvals (Step Functions task tokens) that
//! are answered or time out, promote and abort at any point — through
//! `bluegreen::operations` and through the `bluegreen-ctl` binary — and blue's retention
//! window, inside which a rollback is instant.

use std::process::Command;

use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{Approval, OnTimeout, Strategy, TrafficStep};
use bluegreen::operations::{self, Delivered};
use e2e::{
    Stack, entered, expect_status, fast_timing, operators, wait_for_state, wait_for_weight,
    weight_sequence,
};
use local_stack::env::EnvSpec;
use local_stack::inspect;
use local_stack::sfn::workspace_root;

#[tokio::test]
async fn an_approval_nobody_answers_times_out_and_rolls_back() -> anyhow::Result<()> {
    // Given a deploy that asks for an approval at 50 % and waits two seconds for it
    let stack = Stack::connect().await?;
    let t = stack
        .environment("approval_timeout", EnvSpec::new(""))
        .await?;
    let env = &t.env;
    let mut request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Steps {
            steps: vec![TrafficStep::to(50).with_approval(), TrafficStep::to(100)],
        },
        fast_timing(),
    );
    request.approval = Approval {
        timeout_seconds: 2,
        on_timeout: OnTimeout::Rollback,
    };

    // When nobody answers
    let timeline = t.deploy(&stack, "nobody", &request).await?;

    // Then the approval timed out and the deploy rolled back from 50 %
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(outcome.error.as_deref(), Some("ApprovalTimedOut"));
    assert_eq!(
        outcome.cause.as_deref(),
        Some("rolled back to blue: no approval within 2 seconds")
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 50, 0],
        "{:#?}",
        timeline.changes()
    );
    assert!(
        outcome
            .states_entered()
            .contains(&"AwaitStepApproval".to_string())
    );
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].id, env.blue_task_set_id);
    Ok(())
}

#[tokio::test]
async fn an_abort_at_an_approval_answers_it_and_rolls_back() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let t = stack
        .environment("abort_approval", EnvSpec::new(""))
        .await?;
    let env = &t.env;
    let request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Steps {
            steps: vec![TrafficStep::to(30).with_approval(), TrafficStep::to(100)],
        },
        fast_timing(),
    );
    let execution = t.start(&stack, "abort-approval", &request).await?;
    let (sfn_ops, ecs_ops) = operators(&stack);
    let operator = async {
        wait_for_state(&stack, &execution, "AwaitStepApproval").await?;
        anyhow::Ok(operations::abort(&sfn_ops, &ecs_ops, &execution, "e2e").await?)
    };
    let sampler = t.sampler();
    let (timeline, delivered) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), operator);
    assert_eq!(delivered?, Delivered::ApprovalAnswered);
    let timeline = timeline?;
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(outcome.error.as_deref(), Some("Aborted"));
    let cause = outcome.cause.as_deref().unwrap_or_default();
    assert!(
        cause.contains("e2e aborted execution") && cause.contains("at its approval"),
        "{cause}"
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 30, 0],
        "{:#?}",
        timeline.changes()
    );
    Ok(())
}

#[tokio::test]
async fn an_approved_step_goes_on_and_promote_at_the_next_approval_skips_the_rest()
-> anyhow::Result<()> {
    // Given a deploy with approvals at 20 % and at 60 %
    let stack = Stack::connect().await?;
    let t = stack
        .environment("approve_promote", EnvSpec::new(""))
        .await?;
    let env = &t.env;
    let request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Steps {
            steps: vec![
                TrafficStep::to(20).with_approval(),
                TrafficStep::to(60).with_approval(),
                TrafficStep::to(80),
                TrafficStep::to(100),
            ],
        },
        fast_timing(),
    );
    let execution = t.start(&stack, "approve", &request).await?;
    let (sfn_ops, ecs_ops) = operators(&stack);
    let operator = async {
        // When an operator approves at 20 %
        wait_for_state(&stack, &execution, "AwaitStepApproval").await?;
        let status = operations::status(&sfn_ops, &execution).await?;
        assert!(status.progress.awaiting_approval, "{status:?}");
        assert_eq!(
            (status.progress.step, status.progress.steps),
            (Some(1), Some(4))
        );
        assert_eq!(status.progress.green_weight, Some(20));
        let approved = operations::approve(&sfn_ops, &execution, "e2e").await?;
        assert_eq!(approved, Delivered::ApprovalAnswered);

        // And promotes at 60 %
        wait_for_weight(&stack, &execution, &env.route(), env.tg_b(), 60).await?;
        wait_for_state(&stack, &execution, "AwaitStepApproval").await?;
        let promoted = operations::promote(&sfn_ops, &ecs_ops, &execution, "e2e").await?;
        assert_eq!(promoted, Delivered::ApprovalAnswered);
        anyhow::Ok(())
    };
    let sampler = t.sampler();
    let (timeline, operated) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), operator);
    operated?;
    let timeline = timeline?;

    // Then green went 20 → 60 → 100, skipping 80, and was promoted
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Succeeded)?;
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 20, 60, 100],
        "{:#?}",
        timeline.changes()
    );
    assert_eq!(entered(outcome, "PromoteNow"), 1);
    assert_eq!(entered(outcome, "AwaitStepApproval"), 2);

    // And approving a finished deployment is refused, changing nothing
    let err = operations::approve(&sfn_ops, &execution, "e2e")
        .await
        .expect_err("the execution is over");
    assert_eq!(err.error_type(), "PreconditionFailed");
    assert!(err.to_string().contains("SUCCEEDED"), "{err}");
    Ok(())
}

/// Runs the built `bluegreen-ctl` against the local stack.
fn ctl(stack: &Stack, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let binary = workspace_root().join("target/debug/bluegreen-ctl");
    Command::new(&binary)
        .args(args)
        .env("AWS_ENDPOINT_URL", stack.endpoint.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .map_err(|e| anyhow::anyhow!("running {} (make build): {e}", binary.display()))
}

#[tokio::test]
async fn an_abort_in_the_middle_of_a_canary_rolls_back_before_the_bake_ends() -> anyhow::Result<()>
{
    // Given a 30 % canary that bakes for 60 polls
    let stack = Stack::connect().await?;
    let t = stack.environment("abort_canary", EnvSpec::new("")).await?;
    let env = &t.env;
    let request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Canary {
            percent: 30,
            bake_seconds: Some(60),
        },
        fast_timing(),
    );
    let execution = t.start(&stack, "abort", &request).await?;
    let operator = async {
        // When an operator aborts with bluegreen-ctl while the canary bakes
        wait_for_weight(&stack, &execution, &env.route(), env.tg_b(), 30).await?;
        let status = ctl(&stack, &["status", &execution])?;
        let shown = String::from_utf8_lossy(&status.stdout).to_string();
        assert!(status.status.success(), "{shown}");
        assert!(
            shown.contains("RUNNING") && shown.contains("step 1 of 2"),
            "{shown}"
        );
        let aborted = ctl(&stack, &["abort", &execution, "--by", "e2e"])?;
        let said = String::from_utf8_lossy(&aborted.stdout).to_string();
        assert!(
            aborted.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&aborted.stderr)
        );
        assert!(said.contains("left the command on the service"), "{said}");
        anyhow::Ok(())
    };
    let sampler = t.sampler();
    let (timeline, operated) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), operator);
    operated?;
    let timeline = timeline?;

    // Then it rolled back from 30 %, failing with Aborted, long before its 60 bake polls
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(
        outcome.error.as_deref(),
        Some("Aborted"),
        "{:?}",
        outcome.cause
    );
    let cause = outcome.cause.as_deref().unwrap_or_default();
    assert!(
        cause.starts_with("rolled back to blue:") && cause.contains("e2e aborted execution"),
        "the cause names who aborted: {cause}"
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 30, 0],
        "{:#?}",
        timeline.changes()
    );
    let polls = entered(outcome, "VerifyTrafficStep");
    assert!(polls < 60, "the abort cut the bake short: {polls} polls");
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].id, env.blue_task_set_id);

    // And the command left on the service was cleared, and a second abort is refused
    let tags = stack
        .clients
        .ecs
        .list_tags_for_resource()
        .resource_arn(&env.service_arn)
        .send()
        .await?;
    assert!(
        tags.tags()
            .iter()
            .all(|t| t.key() != Some("ecs-bluegreen:command")),
        "{tags:?}"
    );
    let again = ctl(&stack, &["abort", &execution])?;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("FAILED"));
    Ok(())
}

#[tokio::test]
async fn blue_keeps_running_during_its_retention_and_an_abort_there_rolls_back_at_once()
-> anyhow::Result<()> {
    // Given an all-at-once deploy that keeps blue for 60 polls after promotion
    let stack = Stack::connect().await?;
    let t = stack.environment("retention", EnvSpec::new("")).await?;
    let env = &t.env;
    let mut request =
        env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    request.blue_retention_seconds = 60;
    let execution = t.start(&stack, "retention", &request).await?;
    let (sfn_ops, ecs_ops) = operators(&stack);
    let operator = async {
        // When green is promoted and blue is retained
        wait_for_state(&stack, &execution, "WaitForRetentionPoll").await?;
        let sets = inspect::task_sets(&stack.clients, &env.cluster_name, &env.service_name).await?;
        let blue = sets.iter().find(|s| s.id == env.blue_task_set_id).cloned();
        let blue_targets = inspect::target_counts(&stack.clients, env.tg_a()).await?;
        // And an operator aborts inside the window
        let delivered = operations::abort(&sfn_ops, &ecs_ops, &execution, "e2e").await?;
        anyhow::Ok((blue, blue_targets, delivered))
    };
    let sampler = t.sampler();
    let (timeline, operated) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), operator);
    let (blue_during, blue_targets_during, delivered) = operated?;
    let timeline = timeline?;

    // Then during retention blue was still there, healthy, taking no traffic
    let blue_during =
        blue_during.ok_or_else(|| anyhow::anyhow!("blue was gone during retention"))?;
    assert_eq!(blue_during.status, "ACTIVE", "green was primary");
    assert_eq!(
        blue_targets_during.healthy, env.desired_count as usize,
        "{blue_targets_during}"
    );
    assert_eq!(delivered, Delivered::CommandLeft);

    // And the abort put all traffic back on blue, primary again, green removed
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(outcome.error.as_deref(), Some("Aborted"));
    assert!(
        outcome
            .cause
            .as_deref()
            .is_some_and(|c| c.contains("e2e aborted execution")),
        "the cause names who aborted: {:?}",
        outcome.cause
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 100, 0],
        "{:#?}",
        timeline.changes()
    );
    assert!(entered(outcome, "VerifyRetention") < 60);
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].id, env.blue_task_set_id);
    assert_eq!(sets[0].status, "PRIMARY");
    Ok(())
}
