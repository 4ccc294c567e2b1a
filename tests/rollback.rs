//! End-to-end: deploys that roll back (`make e2e`). Green never turns healthy, or turns bad
//! while it takes part of the traffic (unhealthy targets, crashed tasks): every time all
//! traffic ends on blue, blue is primary and healthy, and green's task set and task
//! definition revision are gone.

use std::time::Duration;

use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{Strategy, TrafficStep};
use e2e::{
    EXECUTION_TIMEOUT, ROLLBACK_TAIL, Stack, TO_FIRST_STEP_CHECK, TO_LAUNCH_CHECK, TestEnv,
    eventually, expect_status, fast_timing, green_of, path, running, weight_sequence,
    without_poll_loops,
};
use local_stack::env::EnvSpec;
use local_stack::gateway::Fault;
use local_stack::inspect;
use local_stack::sfn::Outcome;
use local_stack::timeline::Timeline;

/// What every rollback leaves: the execution failed with `error` and a cause that starts
/// "rolled back to blue:", all traffic on blue (target group A), blue the one task set,
/// primary, every target healthy; green's task set gone and its revision `INACTIVE`, so the
/// family's only active revision is blue's.
async fn expect_rolled_back(
    stack: &Stack,
    t: &TestEnv,
    outcome: &Outcome,
    error: &str,
) -> anyhow::Result<String> {
    let env = &t.env;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(outcome.error.as_deref(), Some(error), "{outcome:?}");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(cause.starts_with("rolled back to blue:"), "{cause}");

    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(
        (
            inspect::weight_of(&w, env.tg_a()),
            inspect::weight_of(&w, env.tg_b())
        ),
        (100, 0),
        "all traffic back on blue: {w:?}"
    );

    // Green was removed: at most listed as DRAINING while its tasks stop, then gone.
    let now = inspect::task_sets(&stack.clients, &env.cluster_name, &env.service_name).await?;
    let live: Vec<_> = now.iter().filter(|t| t.status != "DRAINING").collect();
    assert_eq!(live.len(), 1, "only blue is live: {now:?}");
    assert_eq!(live[0].id, env.blue_task_set_id);
    let sets = t.task_sets_once_drained(stack).await?;
    assert_eq!(sets.len(), 1, "only blue is left: {sets:?}");
    assert_eq!(sets[0].id, env.blue_task_set_id);
    assert_eq!(sets[0].status, "PRIMARY");
    assert_eq!(sets[0].task_definition_arn, env.task_definition_arn);
    let a = inspect::target_counts(&stack.clients, env.tg_a()).await?;
    assert_eq!(
        (a.healthy, a.total()),
        (env.desired_count as usize, env.desired_count as usize),
        "blue's targets: {a}"
    );

    let (green_id, green_td) = green_of(outcome)?;
    assert_ne!(green_id, env.blue_task_set_id);
    assert_ne!(green_td, env.task_definition_arn);
    let td = inspect::task_definition(&stack.clients, &green_td).await?;
    assert_eq!(
        td.status(),
        Some(&TaskDefinitionStatus::Inactive),
        "{green_td}"
    );
    let active = inspect::task_definition_arns(
        &stack.clients,
        &env.task_definition_family,
        TaskDefinitionStatus::Active,
    )
    .await?;
    assert_eq!(active, std::slice::from_ref(&env.task_definition_arn));

    let clients = &stack.clients;
    let tg_b = env.tg_b();
    eventually(
        "green's targets leave target group B",
        Duration::from_secs(60),
        move || async move {
            Ok((inspect::target_counts(clients, tg_b).await?.total() == 0).then_some(()))
        },
    )
    .await?;
    Ok(cause)
}

#[tokio::test]
async fn a_green_that_never_turns_healthy_is_rolled_back_before_it_gets_any_traffic()
-> anyhow::Result<()> {
    // Given blue on v1, and v3's tasks never pass their health checks
    let stack = Stack::connect().await?;
    let t = stack.environment("never_healthy", EnvSpec::new("")).await?;
    let env = &t.env;
    let v3 = env.digest("v3").unwrap_or_default().to_string();
    stack.gateway.add_fault(&Fault::never_healthy(&v3)).await?;

    // When v3 is deployed
    let request = env.deploy_request(env.tagged_image("v3"), Strategy::AllAtOnce, fast_timing());
    let timeline = t.deploy(&stack, "v3", &request).await?;
    let outcome = &timeline.outcome;

    // Then it was rolled back from the launch check, naming the failing targets
    let cause = expect_rolled_back(&stack, &t, outcome, "VerificationFailed").await?;
    assert!(cause.contains("unhealthy"), "{cause}");
    let states = outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        path(&[&TO_LAUNCH_CHECK, &ROLLBACK_TAIL]),
        "{states:?}"
    );

    // And production traffic never left blue
    let moved: Vec<_> = timeline
        .samples
        .iter()
        .filter(|s| s.weights != [100, 0])
        .collect();
    assert!(moved.is_empty(), "traffic moved: {moved:#?}");
    assert!(!timeline.samples.is_empty());
    Ok(())
}

/// Deploys v3 in two steps, 50 (baking 10 s) then 100, and injects `fault(v3's digest)` as
/// soon as the listener shows green at 50 %: green turns bad while it takes traffic, before
/// its first bake ends.
async fn deploy_v3_and_break_it_at_50(
    stack: &Stack,
    t: &TestEnv,
    fault: fn(&str) -> Fault,
) -> anyhow::Result<Timeline> {
    let env = &t.env;
    let v3 = env.digest("v3").unwrap_or_default().to_string();
    let strategy = Strategy::Steps {
        steps: vec![TrafficStep::to(50).baking(10), TrafficStep::to(100)],
    };
    let request = env.deploy_request(env.tagged_image("v3"), strategy, fast_timing());
    let execution = t.start(stack, "v3", &request).await?;
    let sampler = t.sampler();
    let breaker = async {
        let (exec, route, tg_b) = (&execution, &env.route(), env.tg_b());
        let at_50 = eventually("green at 50 %", EXECUTION_TIMEOUT, move || async move {
            let w = inspect::weights(&stack.clients, route).await?;
            if inspect::weight_of(&w, tg_b) == 50 {
                return Ok(Some(true));
            }
            Ok((!running(stack, exec).await?).then_some(false))
        })
        .await?;
        if at_50 {
            stack.gateway.add_fault(&fault(&v3)).await?;
        }
        anyhow::Ok(at_50)
    };
    let (timeline, broke) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), breaker);
    let timeline = timeline?;
    assert!(
        broke?,
        "green never reached 50 %: {:?}, states {:?}",
        timeline.outcome.cause,
        timeline.outcome.states_entered()
    );
    Ok(timeline)
}

#[tokio::test]
async fn a_green_that_turns_unhealthy_at_the_first_step_is_rolled_back_to_all_traffic_on_blue()
-> anyhow::Result<()> {
    // Given blue on v1
    let stack = Stack::connect().await?;
    let t = stack
        .environment("unhealthy_at_50", EnvSpec::new(""))
        .await?;

    // When v3 is deployed 50 → 100 and its targets fail health checks once it takes 50 %
    let timeline =
        deploy_v3_and_break_it_at_50(&stack, &t, |digest| Fault::unhealthy_after(digest, 0))
            .await?;
    let outcome = &timeline.outcome;

    // Then it was rolled back from the first step's verification, naming the failing targets
    let cause = expect_rolled_back(&stack, &t, outcome, "VerificationFailed").await?;
    assert!(cause.contains("unhealthy"), "{cause}");
    let states = outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        path(&[&TO_LAUNCH_CHECK, &TO_FIRST_STEP_CHECK, &ROLLBACK_TAIL]),
        "{states:?}"
    );

    // And green got 50 % and then none again, never more
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 50, 0],
        "{:#?}",
        timeline.changes()
    );
    assert_eq!(
        weight_sequence(&timeline, 0),
        [100, 50, 100],
        "{:#?}",
        timeline.changes()
    );
    Ok(())
}

#[tokio::test]
async fn a_green_whose_tasks_crash_at_the_first_step_is_rolled_back_naming_the_stopped_tasks()
-> anyhow::Result<()> {
    // Given blue on v1
    let stack = Stack::connect().await?;
    let t = stack.environment("crash_at_50", EnvSpec::new("")).await?;
    let env = &t.env;

    // When v3 is deployed 50 → 100 and its tasks crash once it takes 50 %
    let timeline =
        deploy_v3_and_break_it_at_50(&stack, &t, |digest| Fault::crash_after(digest, 0)).await?;
    let outcome = &timeline.outcome;

    // Then it was rolled back from the first step's verification
    let cause = expect_rolled_back(&stack, &t, outcome, "VerificationFailed").await?;
    let states = outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        path(&[&TO_LAUNCH_CHECK, &TO_FIRST_STEP_CHECK, &ROLLBACK_TAIL]),
        "{states:?}"
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 50, 0],
        "{:#?}",
        timeline.changes()
    );

    // And the cause names green's task set, each crashed task, its stop code and the app
    // container's exit code
    let (green_id, _) = green_of(outcome)?;
    assert!(
        cause.contains(&format!("green task set {green_id}")),
        "{cause}"
    );
    assert!(cause.contains("stopped task"), "{cause}");
    assert!(cause.contains("EssentialContainerExited"), "{cause}");
    assert!(cause.contains("app=1"), "{cause}");
    let state = stack.gateway.state().await?;
    let crashed: Vec<String> = state["taskSets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ts| ts["id"] == green_id.as_str())
        .flat_map(|ts| ts["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|task| task["stopCode"] == "EssentialContainerExited")
        .filter_map(|task| task["taskArn"].as_str().map(str::to_string))
        .collect();
    assert_eq!(crashed.len(), env.desired_count as usize, "{state:#}");
    for task in &crashed {
        assert!(
            cause.contains(task.as_str()),
            "{task} is not named in: {cause}"
        );
    }
    Ok(())
}
