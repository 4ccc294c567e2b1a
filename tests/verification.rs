//! End-to-end: each verification source, failing alone, rolls the deploy back
//! (`make e2e`): a CloudWatch alarm going to `ALARM` (through the gateway's CBOR translation
//! to moto), Dynatrace metrics of green's release over a threshold, and Dynatrace without
//! data, retried up to its inconclusive limit. (ECS and target health failing alone:
//! `rollback.rs`.)

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{DynatraceRelease, Strategy};
use bluegreen::verification::{AlarmVerification, DynatraceVerification};
use e2e::{
    Stack, TestEnv, dynatrace_events, entered, expect_status, fast_timing, milestones,
    wait_for_weight, weight_sequence,
};
use local_stack::env::EnvSpec;

/// A canary of v3 at 50 %, baking long enough for a source to fail during the bake.
fn canary(t: &TestEnv) -> bluegreen::model::DeployRequest {
    let env = &t.env;
    env.deploy_request(
        env.tagged_image("v3"),
        Strategy::Canary {
            percent: 50,
            bake_seconds: Some(20),
        },
        fast_timing(),
    )
}

/// What every rollback here ends with: failed with `error`, green went 0 → 50 → 0 and blue
/// is alone again.
async fn expect_rolled_back_from_50(
    stack: &Stack,
    t: &TestEnv,
    timeline: &local_stack::timeline::Timeline,
    error: &str,
) -> anyhow::Result<String> {
    let outcome = &timeline.outcome;
    expect_status(outcome, ExecutionStatus::Failed)?;
    assert_eq!(outcome.error.as_deref(), Some(error), "{:?}", outcome.cause);
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(cause.starts_with("rolled back to blue:"), "{cause}");
    assert_eq!(
        weight_sequence(timeline, 1),
        [0, 50, 0],
        "{:#?}",
        timeline.changes()
    );
    let sets = t.task_sets_once_drained(stack).await?;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].id, t.env.blue_task_set_id);
    assert_eq!(sets[0].status, "PRIMARY");
    Ok(cause)
}

#[tokio::test]
async fn a_cloudwatch_alarm_going_to_alarm_during_the_canary_rolls_it_back() -> anyhow::Result<()> {
    // Given blue on v1 and an alarm on the service's 5xx count, OK
    let stack = Stack::connect().await?;
    let t = stack.environment("alarm", EnvSpec::new("")).await?;
    let env = &t.env;
    let alarm = format!("{}-orders-5xx", env.prefix);
    let cw = &stack.clients.cloudwatch;
    cw.put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await?;
    cw.set_alarm_state()
        .alarm_name(&alarm)
        .state_value(StateValue::Ok)
        .state_reason("no 5xx")
        .send()
        .await?;
    let mut request = canary(&t);
    request.verification.cloud_watch_alarms = Some(AlarmVerification {
        alarm_names: vec![alarm.clone()],
        alarm_name_prefix: None,
        failure_limit: 0,
        inconclusive_limit: 3,
    });

    // When the canary takes 50 % and the alarm fires
    let execution = t.start(&stack, "alarm", &request).await?;
    let breaker = async {
        wait_for_weight(&stack, &execution, &env.route(), env.tg_b(), 50).await?;
        cw.set_alarm_state()
            .alarm_name(&alarm)
            .state_value(StateValue::Alarm)
            .state_reason("Threshold Crossed: 1 datapoint [42.0] was greater than 10.0")
            .send()
            .await?;
        anyhow::Ok(())
    };
    let sampler = t.sampler();
    let (timeline, broke) =
        tokio::join!(sampler.record(&stack.clients, &execution, |_| {}), breaker);
    broke?;
    let timeline = timeline?;

    // Then it rolled back, naming the alarm and its reason
    let cause = expect_rolled_back_from_50(&stack, &t, &timeline, "VerificationFailed").await?;
    assert!(
        cause.contains(&format!("in ALARM: {alarm} (Threshold Crossed")),
        "{cause}"
    );
    assert!(
        cause.contains("CloudWatch alarms failed 1 poll(s) in a row"),
        "{cause}"
    );
    Ok(())
}

fn with_dynatrace(request: &mut bluegreen::model::DeployRequest, inconclusive_limit: u32) {
    request.dynatrace = Some(DynatraceRelease {
        release_product: None,
        release_stage: None,
        events: true,
        entity_selector: None,
    });
    request.verification.dynatrace = Some(
        DynatraceVerification::parse(serde_json::json!({
            "windowSeconds": 60,
            "inconclusiveLimit": inconclusive_limit,
            "checks": [{
                "name": "error-rate",
                "metricSelector": "calc:service.orders.errors.rate",
                "threshold": {"max": 5}
            }]
        }))
        .unwrap_or_else(|e| panic!("{e}")),
    );
}

#[tokio::test]
async fn dynatrace_seeing_greens_error_rate_over_its_threshold_rolls_the_canary_back()
-> anyhow::Result<()> {
    // Given blue on v1 at 0.2 % errors and v3's release at 9 %
    let stack = Stack::connect().await?;
    let t = stack.environment("dt_fail", EnvSpec::new("")).await?;
    let env = &t.env;
    let (v1, v3) = (
        env.digest("v1").unwrap_or_default().to_string(),
        env.digest("v3").unwrap_or_default().to_string(),
    );
    stack
        .gateway
        .dynatrace_metric("errors.rate", &v1, 0.2)
        .await?;
    stack
        .gateway
        .dynatrace_metric("errors.rate", &v3, 9.0)
        .await?;
    let mut request = canary(&t);
    with_dynatrace(&mut request, 3);

    // When the canary runs
    let timeline = t.deploy(&stack, "dt-fail", &request).await?;

    // Then Dynatrace's verdict on green's release rolled it back at the first poll at 50 %
    let cause = expect_rolled_back_from_50(&stack, &t, &timeline, "VerificationFailed").await?;
    assert!(
        cause.contains("check error-rate: green's avg of calc:service.orders.errors.rate is 9, above the maximum 5"),
        "{cause}"
    );
    assert_eq!(entered(&timeline.outcome, "VerifyTrafficStep"), 1);

    // And Dynatrace heard the start and the rollback, with its reason
    let events = dynatrace_events(&stack, env).await?;
    assert_eq!(
        milestones(&events),
        ["started", "rolled back"],
        "{events:#?}"
    );
    let reason = events[1]["properties"]["deployment.reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("error-rate"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn dynatrace_without_data_for_green_is_retried_up_to_its_inconclusive_limit_then_rolls_back()
-> anyhow::Result<()> {
    // Given v3's release has no data in Dynatrace, and two inconclusive polls are tolerated
    let stack = Stack::connect().await?;
    let t = stack.environment("dt_nodata", EnvSpec::new("")).await?;
    let mut request = canary(&t);
    if let Strategy::Canary { bake_seconds, .. } = &mut request.strategy {
        *bake_seconds = Some(1);
    }
    with_dynatrace(&mut request, 2);

    // When the canary runs
    let timeline = t.deploy(&stack, "dt-nodata", &request).await?;

    // Then the step was polled three times: two inconclusive polls waited, the third failed
    let cause = expect_rolled_back_from_50(&stack, &t, &timeline, "VerificationFailed").await?;
    assert!(
        cause.contains("Dynatrace was inconclusive 3 poll(s) in a row (inconclusiveLimit 2)"),
        "{cause}"
    );
    assert!(cause.contains("no data for green's release"), "{cause}");
    assert_eq!(entered(&timeline.outcome, "VerifyTrafficStep"), 3);
    Ok(())
}
