//! End-to-end: progressive delivery (`make e2e`). For each strategy, the exact weights the
//! listener went through; test traffic before any production weight; Dynatrace's release
//! variables on green and the deployment events Dynatrace received.

use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{DynatraceRelease, Strategy, TestTraffic};
use e2e::{
    PROMOTION, Stack, TO_LAUNCH_CHECK, TRAFFIC_STEP, dynatrace_events, expect_status, fast_timing,
    milestones, path, succeeded_path, weight_sequence, without_poll_loops,
};
use local_stack::env::{APP_CONTAINER, EnvSpec};
use local_stack::inspect;
use local_stack::timeline::Sampler;

fn release() -> DynatraceRelease {
    DynatraceRelease {
        release_product: None,
        release_stage: Some("production".into()),
        events: true,
        entity_selector: None,
    }
}

#[tokio::test]
async fn a_canary_sends_its_percent_then_everything_and_dynatrace_hears_start_and_promotion()
-> anyhow::Result<()> {
    // Given blue on v1, and a canary of v2 at 10 % with Dynatrace release identity and events
    let stack = Stack::connect().await?;
    let t = stack.environment("canary", EnvSpec::new("")).await?;
    let env = &t.env;
    let mut request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Canary {
            percent: 10,
            bake_seconds: Some(2),
        },
        fast_timing(),
    );
    request.dynatrace = Some(release());

    // When it is deployed
    let timeline = t.deploy(&stack, "canary", &request).await?;
    let outcome = &timeline.outcome;

    // Then it succeeded through two traffic steps, green going 0 → 10 → 100
    expect_status(outcome, ExecutionStatus::Succeeded)?;
    let states = outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        succeeded_path(2),
        "{states:?}"
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 10, 100],
        "{:#?}",
        timeline.changes()
    );
    assert_eq!(weight_sequence(&timeline, 0), [100, 90, 0]);

    // And green runs with Dynatrace's release variables: its digest, product and stage
    let green = t
        .task_sets_once_drained(&stack)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no task set left"))?;
    let app = inspect::container(&stack.clients, &green.task_definition_arn, APP_CONTAINER).await?;
    let env_var = |name: &str| {
        app.environment()
            .iter()
            .find(|kv| kv.name() == Some(name))
            .and_then(|kv| kv.value().map(str::to_string))
    };
    let digest = env.digest("v2").unwrap_or_default().to_string();
    assert_eq!(env_var("DT_RELEASE_VERSION"), Some(digest.clone()));
    assert_eq!(env_var("DT_RELEASE_PRODUCT").as_deref(), Some("orders"));
    assert_eq!(env_var("DT_RELEASE_STAGE").as_deref(), Some("production"));

    // And Dynatrace received the start and the promotion, on the release product's
    // processes, with the digest and a link back to the execution
    let events = dynatrace_events(&stack, env).await?;
    assert_eq!(milestones(&events), ["started", "promoted"], "{events:#?}");
    for e in &events {
        assert_eq!(e["eventType"], "CUSTOM_DEPLOYMENT");
        assert_eq!(
            e["entitySelector"],
            "type(PROCESS_GROUP_INSTANCE),releasesProduct(\"orders\")"
        );
        assert_eq!(
            e["properties"]["dt.event.deployment.version"],
            digest.as_str()
        );
        let link = e["properties"]["dt.event.deployment.ci_back_link"]
            .as_str()
            .unwrap_or_default();
        assert!(link.ends_with(&outcome.execution_arn), "{link}");
    }
    Ok(())
}

#[tokio::test]
async fn linear_moves_green_up_by_its_step_every_interval_until_everything() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let t = stack.environment("linear", EnvSpec::new("")).await?;
    let env = &t.env;
    let request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Linear {
            step_percent: 40,
            interval_seconds: Some(1),
        },
        fast_timing(),
    );

    let timeline = t.deploy(&stack, "linear", &request).await?;

    expect_status(&timeline.outcome, ExecutionStatus::Succeeded)?;
    let states = timeline.outcome.states_entered();
    assert_eq!(
        without_poll_loops(&states).0,
        succeeded_path(3),
        "{states:?}"
    );
    assert_eq!(
        weight_sequence(&timeline, 1),
        [0, 40, 80, 100],
        "{:#?}",
        timeline.changes()
    );
    Ok(())
}

#[tokio::test]
async fn test_traffic_reaches_green_and_is_verified_before_any_production_weight_moves()
-> anyhow::Result<()> {
    // Given blue on v1 behind a production listener and a test listener
    let stack = Stack::connect().await?;
    let mut spec = EnvSpec::new("");
    spec.test_listener = true;
    let t = stack.environment("test_traffic", spec).await?;
    let env = &t.env;
    let test_route = env
        .test_route()
        .ok_or_else(|| anyhow::anyhow!("the environment has no test listener"))?;

    // When v2 is deployed as a 20 % canary after a test-traffic bake
    let mut request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::Canary {
            percent: 20,
            bake_seconds: Some(1),
        },
        fast_timing(),
    );
    request.test_traffic = Some(TestTraffic {
        listener_arn: test_route.listener_arn.clone(),
        listener_rule_arn: None,
        bake_seconds: Some(2),
        approval: false,
    });
    let execution = t.start(&stack, "test-traffic", &request).await?;
    let on_test = Sampler {
        route: test_route,
        ..t.sampler()
    };
    let on_production = t.sampler();
    let (production, test) = tokio::join!(
        on_production.record(&stack.clients, &execution, |_| {}),
        on_test.record(&stack.clients, &execution, |_| {}),
    );
    let (production, test) = (production?, test?);

    // Then it succeeded through the test phase, then both steps
    let outcome = &production.outcome;
    expect_status(outcome, ExecutionStatus::Succeeded)?;
    let states = outcome.states_entered();
    let expected = path(&[
        &TO_LAUNCH_CHECK,
        &[
            "GreenLaunched",
            "ShiftTestTraffic",
            "StartTestObservation",
            "WaitForTestPoll",
            "VerifyTestTraffic",
            "TestTrafficVerified",
            "StartTrafficSteps",
        ],
        &TRAFFIC_STEP,
        &TRAFFIC_STEP,
        &PROMOTION,
    ]);
    assert_eq!(without_poll_loops(&states).0, expected, "{states:?}");

    // And the test listener sent everything to green while production still sent nothing
    assert_eq!(weight_sequence(&test, 1), [0, 100], "{:#?}", test.changes());
    assert_eq!(weight_sequence(&production, 1), [0, 20, 100]);
    let first_move = |samples: &[local_stack::timeline::Sample]| {
        samples.iter().find(|s| s.weights[1] > 0).map(|s| s.elapsed)
    };
    let (test_at, production_at) = (first_move(&test.samples), first_move(&production.samples));
    assert!(
        test_at.is_some() && production_at.is_some() && test_at < production_at,
        "test traffic moved at {test_at:?}, production at {production_at:?}"
    );
    let test_polls = e2e::entered(outcome, "VerifyTestTraffic");
    assert!(test_polls >= 2, "the test bake is two polls: {test_polls}");
    Ok(())
}
