//! `ShiftTraffic`: set the blue/green weights on the production route and read them back.
//!
//! The listener is the truth about which side takes traffic, so the step always reads it
//! after writing: ELBv2 applies a `ModifyListener`/`ModifyRule` asynchronously across the
//! load balancer's nodes, and draining blue before the new weights show would cause 503s.

use tracing::info;

use crate::error::{Error, Result};
use crate::model::{Deployment, TestRoute};
use crate::ports::{Ecs, LoadBalancer, TrafficRoute, WeightedTargetGroup};
use crate::steps::{RouteChoice, ShiftTrafficInput, ShiftTrafficOutput, sides};

/// The weight of `tg` in a forward action; a target group the action does not name gets none.
pub(crate) fn weight_of(weights: &[WeightedTargetGroup], tg: &str) -> i32 {
    weights
        .iter()
        .filter(|w| w.target_group_arn == tg)
        .map(|w| w.weight)
        .sum()
}

/// Sends `green_weight` % of the traffic of the routes `input.route` names to green and
/// the rest to blue, and confirms the listener shows it.
///
/// The routes: the production route (`production`, the default), the test route (`test`),
/// or both (`all`, what a rollback uses: production first, then test).
///
/// Green's target group is that of the execution's task set; when green does not exist (a
/// rollback before `CreateGreen` finished) it is the group of the pair blue is not on. Blue's
/// is the other group of the pair. Weights already as wanted are not written again. Every
/// other action, condition and forward setting of the route is kept (the port's contract);
/// a target group outside the pair stays in the forward action with weight 0.
///
/// The output is the production route's weights, or the test route's for `test`.
///
/// # Errors
/// - [`Error::InvalidInput`] when `green_weight` is above 100, or `test` is asked of a
///   deployment without a test route.
/// - [`Error::PreconditionFailed`] when `green_weight` > 0 and green does not exist or was
///   removed (`DRAINING`), a task set is on a target group outside the pair, or the route
///   sends traffic to a target group outside the pair.
/// - [`Error::NotReady`] when the weights read back after the write differ from those set;
///   the state machine retries the step.
/// - AWS errors of the reads and the write.
pub async fn shift_traffic<E: Ecs, L: LoadBalancer>(
    ecs: &E,
    elb: &L,
    input: ShiftTrafficInput,
) -> Result<ShiftTrafficOutput> {
    let d = &input.deployment;
    let green_weight = i32::from(input.green_weight);
    if !(0..=100).contains(&green_weight) {
        return Err(Error::InvalidInput(format!(
            "greenWeight must be 0 to 100, got {green_weight}"
        )));
    }
    let test = d.test_route.as_ref().map(TestRoute::route);
    let routes: Vec<TrafficRoute> = match (input.route, test) {
        (RouteChoice::Production, _) => vec![d.route()],
        (RouteChoice::Test, Some(test)) => vec![test],
        (RouteChoice::Test, None) => {
            return Err(Error::InvalidInput(format!(
                "deployment {} has no test route to shift",
                d.execution_name
            )));
        }
        (RouteChoice::All, Some(test)) => vec![d.route(), test],
        (RouteChoice::All, None) => vec![d.route()],
    };
    let (blue_tg, green_tg) = target_groups(ecs, d, green_weight).await?;
    let mut first = None;
    for route in routes {
        let out = shift_route(elb, d, &route, &blue_tg, &green_tg, green_weight).await?;
        first.get_or_insert(out);
    }
    first.ok_or_else(|| Error::InvalidInput("no route to shift".into()))
}

/// Sets and confirms the weights of one route.
async fn shift_route<L: LoadBalancer>(
    elb: &L,
    d: &Deployment,
    route: &TrafficRoute,
    blue_tg: &str,
    green_tg: &str,
    green_weight: i32,
) -> Result<ShiftTrafficOutput> {
    let blue_weight = 100 - green_weight;
    let current = elb.forward_weights(route).await?;
    if let Some(stray) = current
        .iter()
        .find(|w| w.weight > 0 && w.target_group_arn != blue_tg && w.target_group_arn != green_tg)
    {
        return Err(Error::PreconditionFailed(format!(
            "{route} also forwards to {} (weight {}); the deployment only moves traffic between {blue_tg} and {green_tg}, fix the listener first",
            stray.target_group_arn, stray.weight
        )));
    }

    let applied = |weights: &[WeightedTargetGroup]| {
        weight_of(weights, blue_tg) == blue_weight && weight_of(weights, green_tg) == green_weight
    };
    if applied(&current) {
        info!(
            service = %d.service,
            route = %route,
            blue_weight,
            green_weight,
            "weights already applied; nothing to write"
        );
        return Ok(output(blue_tg, green_tg, current));
    }

    let wanted = with_pair_weights(&current, blue_tg, blue_weight, green_tg, green_weight);
    info!(
        service = %d.service,
        route = %route,
        blue_target_group = %blue_tg,
        green_target_group = %green_tg,
        blue_weight,
        green_weight,
        from_blue_weight = weight_of(&current, blue_tg),
        from_green_weight = weight_of(&current, green_tg),
        "shifting traffic"
    );
    elb.set_forward_weights(route, &wanted).await?;

    let read_back = elb.forward_weights(route).await?;
    if !applied(&read_back) {
        return Err(Error::NotReady(format!(
            "{route} shows blue {} / green {}, expected {blue_weight} / {green_weight}; the listener has not applied the new weights yet",
            weight_of(&read_back, blue_tg),
            weight_of(&read_back, green_tg)
        )));
    }
    info!(service = %d.service, route = %route, blue_weight, green_weight, "weights confirmed");
    Ok(output(blue_tg, green_tg, read_back))
}

/// Blue's and green's target groups, as the service shows them now.
async fn target_groups<E: Ecs>(
    ecs: &E,
    d: &Deployment,
    green_weight: i32,
) -> Result<(String, String)> {
    let sides = sides(ecs, d).await?;
    let green_tg = match &sides.green {
        Some(green) if green.is_draining() && green_weight > 0 => {
            return Err(Error::PreconditionFailed(format!(
                "green task set {} of execution {} was removed (DRAINING); refusing to send {green_weight} % of traffic to it",
                green.id, d.execution_name
            )));
        }
        Some(green) => green
            .target_group_arn()
            .ok_or_else(|| {
                Error::PreconditionFailed(format!(
                    "green task set {} of service {} has no target group",
                    green.id, d.service
                ))
            })?
            .to_string(),
        None if green_weight > 0 => {
            return Err(Error::PreconditionFailed(format!(
                "no green task set for execution {} in service {}; refusing to send {green_weight} % of traffic to a target group nothing runs in",
                d.execution_name, d.service
            )));
        }
        None => {
            let blue = sides.blue.as_ref().ok_or_else(|| {
                Error::PreconditionFailed(format!(
                    "service {} has no task set to send traffic to",
                    d.service
                ))
            })?;
            let blue_tg = blue.target_group_arn().unwrap_or_default();
            d.other_target_group(blue_tg)
                .ok_or_else(|| outside_pair(d, &blue.id, blue_tg))?
                .to_string()
        }
    };
    let blue_tg = d
        .other_target_group(&green_tg)
        .ok_or_else(|| {
            let id = sides.green.as_ref().map_or("?", |g| g.id.as_str());
            outside_pair(d, id, &green_tg)
        })?
        .to_string();
    Ok((blue_tg, green_tg))
}

fn outside_pair(d: &Deployment, task_set: &str, tg: &str) -> Error {
    Error::PreconditionFailed(format!(
        "task set {task_set} of service {} is on target group {tg:?}, which is not one of targetGroupArns {:?}",
        d.service, d.target_group_arns
    ))
}

/// `current` with blue's and green's weights replaced (in place, keeping the order) and any
/// other target group at 0.
fn with_pair_weights(
    current: &[WeightedTargetGroup],
    blue_tg: &str,
    blue_weight: i32,
    green_tg: &str,
    green_weight: i32,
) -> Vec<WeightedTargetGroup> {
    let mut wanted: Vec<WeightedTargetGroup> = current
        .iter()
        .map(|w| WeightedTargetGroup {
            target_group_arn: w.target_group_arn.clone(),
            weight: if w.target_group_arn == blue_tg {
                blue_weight
            } else if w.target_group_arn == green_tg {
                green_weight
            } else {
                0
            },
        })
        .collect();
    for (tg, weight) in [(blue_tg, blue_weight), (green_tg, green_weight)] {
        if !wanted.iter().any(|w| w.target_group_arn == tg) {
            wanted.push(WeightedTargetGroup {
                target_group_arn: tg.to_string(),
                weight,
            });
        }
    }
    wanted
}

fn output(blue_tg: &str, green_tg: &str, weights: Vec<WeightedTargetGroup>) -> ShiftTrafficOutput {
    ShiftTrafficOutput {
        blue_weight: weight_of(&weights, blue_tg),
        green_weight: weight_of(&weights, green_tg),
        blue_target_group_arn: blue_tg.to_string(),
        green_target_group_arn: green_tg.to_string(),
        weights,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{
        EXECUTION, FakeAction, FakeAws, RULE, TG_A, TG_B, default_route, rule_route, weights,
    };

    fn input(fake: &FakeAws, green_weight: u8) -> ShiftTrafficInput {
        ShiftTrafficInput {
            deployment: fake.deployment(),
            green_weight,
            route: RouteChoice::Production,
        }
    }

    /// The deployment with [`RULE`] (a header rule, say) as its test route.
    fn with_test_rule(fake: &FakeAws) -> Deployment {
        let mut request = FakeAws::request();
        request.test_traffic = Some(crate::model::TestTraffic {
            listener_arn: crate::steps::fakes::LISTENER.into(),
            listener_rule_arn: Some(RULE.into()),
            bake_seconds: None,
            approval: false,
        });
        let _ = fake;
        request.into_deployment(EXECUTION, None).unwrap()
    }

    #[tokio::test]
    async fn test_traffic_moves_only_the_test_route_and_a_rollback_moves_both_back() {
        // Given green created, and a test rule beside the production default action
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let d = with_test_rule(&fake);
        let shift = |route, green_weight| ShiftTrafficInput {
            deployment: d.clone(),
            green_weight,
            route,
        };

        // When test traffic goes to green
        let out = shift_traffic(&fake, &fake, shift(RouteChoice::Test, 100))
            .await
            .unwrap();

        // Then only the test rule sends traffic to green; production stays on blue
        assert_eq!((out.blue_weight, out.green_weight), (0, 100));
        assert_eq!(fake.route(&rule_route()).weights(), weights(0, 100));
        assert_eq!(fake.route(&default_route()).weights(), weights(100, 0));

        // When production moves to 30 and then everything is rolled back
        shift_traffic(&fake, &fake, shift(RouteChoice::Production, 30))
            .await
            .unwrap();
        let back = shift_traffic(&fake, &fake, shift(RouteChoice::All, 0))
            .await
            .unwrap();

        // Then both routes send all traffic to blue, production reported
        assert_eq!((back.blue_weight, back.green_weight), (100, 0));
        assert_eq!(fake.route(&default_route()).weights(), weights(100, 0));
        assert_eq!(fake.route(&rule_route()).weights(), weights(100, 0));
    }

    #[tokio::test]
    async fn a_test_shift_without_a_test_route_is_invalid_input_and_changes_nothing() {
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let mut i = input(&fake, 100);
        i.route = RouteChoice::Test;
        let err = shift_traffic(&fake, &fake, i).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn shifting_sets_green_to_the_weight_and_blue_to_the_rest_and_reports_the_read_back() {
        // Given blue on TG_A at 100 % and green created on TG_B
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);

        // When 25 % is shifted to green
        let out = shift_traffic(&fake, &fake, input(&fake, 25)).await.unwrap();

        // Then the listener shows 75 / 25, read back after the write
        assert_eq!(fake.route(&default_route()).weights(), weights(75, 25));
        assert_eq!(out.blue_target_group_arn, TG_A);
        assert_eq!(out.green_target_group_arn, TG_B);
        assert_eq!((out.blue_weight, out.green_weight), (75, 25));
        assert_eq!(out.weights, weights(75, 25));
        assert_eq!(
            fake.calls(),
            [
                "DescribeServices",
                "DescribeListeners",
                "ModifyListener",
                "DescribeListeners"
            ]
        );
    }

    #[tokio::test]
    async fn shifting_a_rule_keeps_its_conditions_other_actions_and_stickiness_and_the_default_action()
     {
        // Given a deployment that moves traffic on a path rule behind authentication
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let mut d = fake.deployment();
        d.listener_rule_arn = Some(RULE.into());
        let default_before = fake.route(&default_route());

        // When all traffic is shifted to green
        shift_traffic(
            &fake,
            &fake,
            ShiftTrafficInput {
                deployment: d,
                green_weight: 100,
                route: RouteChoice::Production,
            },
        )
        .await
        .unwrap();

        // Then only the rule's forward weights changed
        let rule = fake.route(&rule_route());
        assert_eq!(rule.conditions, ["path-pattern=/orders/*"]);
        assert_eq!(
            rule.actions,
            [
                FakeAction::Other("authenticate-oidc".into()),
                FakeAction::Forward {
                    weights: weights(0, 100),
                    stickiness_seconds: Some(300),
                },
            ]
        );
        assert_eq!(fake.route(&default_route()), default_before);
        assert_eq!(fake.mutations(), ["ModifyRule"]);
    }

    #[tokio::test]
    async fn weights_already_applied_are_not_written_again() {
        // Given a shift to 50 % that already happened
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let first = shift_traffic(&fake, &fake, input(&fake, 50)).await.unwrap();
        let before = fake.snapshot();
        fake.clear_calls();

        // When the step runs again with the same input
        let again = shift_traffic(&fake, &fake, input(&fake, 50)).await.unwrap();

        // Then nothing is written, the state is the same and the output too
        assert!(fake.mutations().is_empty(), "{:?}", fake.calls());
        assert_eq!(fake.snapshot(), before);
        assert_eq!(again, first);
    }

    #[tokio::test]
    async fn a_read_back_that_differs_is_not_ready_so_the_state_machine_retries() {
        // Given a listener that accepts the write but does not show it yet
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        fake.lose_next_weight_write();

        // When traffic is shifted
        let err = shift_traffic(&fake, &fake, input(&fake, 100))
            .await
            .unwrap_err();

        // Then the step is not ready, naming what the listener shows and what was expected
        assert_eq!(err.error_type(), "NotReady");
        assert!(
            err.to_string()
                .contains("shows blue 100 / green 0, expected 0 / 100"),
            "{err}"
        );

        // And the retry applies it
        let out = shift_traffic(&fake, &fake, input(&fake, 100))
            .await
            .unwrap();
        assert_eq!((out.blue_weight, out.green_weight), (0, 100));
    }

    #[tokio::test]
    async fn traffic_is_not_sent_to_a_green_that_does_not_exist() {
        let fake = FakeAws::blue();
        let err = shift_traffic(&fake, &fake, input(&fake, 10))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(EXECUTION), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn rolling_back_before_green_exists_sends_everything_to_blue() {
        // Given a listener left half shifted and no green task set (CreateGreen never finished)
        let fake = FakeAws::blue();
        fake.set_weights(&default_route(), weights(60, 40));

        // When the rollback shifts 0 % to green
        let out = shift_traffic(&fake, &fake, input(&fake, 0)).await.unwrap();

        // Then blue's group (the primary task set's) gets everything
        assert_eq!(out.blue_target_group_arn, TG_A);
        assert_eq!(fake.route(&default_route()).weights(), weights(100, 0));
    }

    #[tokio::test]
    async fn rolling_back_after_blue_and_green_swapped_groups_uses_greens_group_as_green() {
        // Given an earlier deploy that left blue on TG_B; this execution's green is on TG_A
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        let blue_id = fake.service_now().primary().unwrap().id.clone();
        fake.update_task_set(&blue_id, |t| {
            t.load_balancers[0].target_group_arn = Some(TG_B.into())
        });
        fake.update_task_set(&green.id, |t| {
            t.load_balancers[0].target_group_arn = Some(TG_A.into())
        });
        fake.set_weights(&default_route(), weights(30, 70));

        // When rolled back
        let out = shift_traffic(&fake, &fake, input(&fake, 0)).await.unwrap();

        // Then TG_B (blue) takes all traffic
        assert_eq!(out.green_target_group_arn, TG_A);
        assert_eq!(fake.route(&default_route()).weights(), weights(0, 100));
    }

    #[tokio::test]
    async fn a_weight_above_100_is_invalid_input() {
        let fake = FakeAws::blue();
        let err = shift_traffic(&fake, &fake, input(&fake, 101))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn traffic_to_a_third_target_group_is_refused_before_any_write() {
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let mut w = weights(90, 0);
        w.push(WeightedTargetGroup {
            target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/legacy/0123456789abcdef".into(),
            weight: 10,
        });
        fake.set_weights(&default_route(), w);
        let err = shift_traffic(&fake, &fake, input(&fake, 50))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("legacy"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_throttled_write_surfaces_as_the_retryable_error() {
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        fake.fail_next(
            "ModifyListener",
            Error::from_code(
                "ModifyListener",
                "l".into(),
                "Throttling".into(),
                "rate exceeded".into(),
            ),
        );
        let err = shift_traffic(&fake, &fake, input(&fake, 100))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "AwsThrottled");
        assert_eq!(fake.route(&default_route()).weights(), weights(100, 0));
    }
}
