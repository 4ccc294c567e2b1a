//! `DrainBlue`: promote green, remove blue after the drain delay; on rollback, restore blue
//! and remove green.
//!
//! No action removes a task set whose target group a route (production or test) still sends
//! traffic to, as read back from the listener at the time of the action; and the state
//! machine waits `timing.drainDelaySeconds` between confirming the weights and removing a
//! side: that is how a deploy avoids the 503s of draining a side before every load balancer
//! node stopped using it.

use tracing::{info, warn};

use crate::dynatrace::Dynatrace;
use crate::error::{Error, Result};
use crate::model::Deployment;
use crate::ports::{Ecs, LoadBalancer, OperatorCommands, TaskSetState};
use crate::steps::events::{Milestone, announce};
use crate::steps::shift_traffic::weight_of;
use crate::steps::{DrainAction, DrainBlueInput, DrainBlueOutput, Sides, sides};
use crate::taskdef;
use crate::verification::dynatrace::release_version;

/// Runs one drain action; each is idempotent.
///
/// - [`DrainAction::Promote`]: green must take 100 % of the production route's traffic;
///   makes it the primary task set (unless it is already) and posts the `promoted`
///   deployment event. `wait_seconds` is the drain delay (`timing.drainDelaySeconds`, else
///   blue's target group deregistration delay) less `blueRetentionSeconds`, at least 0.
/// - [`DrainAction::RemoveBlue`]: green must be primary and blue's target group must get no
///   traffic on any route; deletes blue's task set (already gone, or `DRAINING`, is fine)
///   and clears an operator command left for the execution. `wait_seconds` is 0.
/// - [`DrainAction::RestoreBlue`] (rollback): green's target group must get no traffic on any
///   route; makes blue primary again if green is. `wait_seconds` is the drain delay
///   (`timing.drainDelaySeconds`, else green's target group deregistration delay), 0
///   without a green.
/// - [`DrainAction::RemoveGreen`] (rollback): without a green task set, nothing to do; a
///   `DRAINING` green was removed already. Otherwise green's target group must get no
///   traffic; makes blue primary again if green is, deregisters green's task definition
///   revision unless a remaining task set runs it, deletes green, posts the `rolled back`
///   deployment event with `input.reason` and clears an operator command left for the
///   execution. `wait_seconds` is green's drain delay.
///
/// A removed task set stays listed as `DRAINING` until its tasks stopped, so a second run
/// answers what the first did. Events and command clean-up are best effort.
///
/// # Errors
/// - [`Error::PreconditionFailed`] when the action would be unsafe: promoting a green that
///   is missing or does not take 100 %; removing blue while green is missing or not primary,
///   or while blue's target group takes traffic; restoring or removing a green that takes
///   traffic, or that is primary with no other task set to restore.
/// - AWS errors of the reads and writes.
pub async fn drain_blue<E, L, D>(
    ecs: &E,
    elb: &L,
    dynatrace: Option<&D>,
    input: DrainBlueInput,
) -> Result<DrainBlueOutput>
where
    E: Ecs + OperatorCommands,
    L: LoadBalancer,
    D: Dynatrace,
{
    let d = &input.deployment;
    let sides = sides(ecs, d).await?;
    match input.action {
        DrainAction::Promote => promote(ecs, elb, dynatrace, d, sides).await,
        DrainAction::RemoveBlue => remove_blue(ecs, elb, d, sides).await,
        DrainAction::RestoreBlue => restore_blue(ecs, elb, d, sides).await,
        DrainAction::RemoveGreen => {
            remove_green(ecs, elb, dynatrace, d, sides, input.reason.as_deref()).await
        }
    }
}

async fn promote<E: Ecs, L: LoadBalancer, D: Dynatrace>(
    ecs: &E,
    elb: &L,
    dynatrace: Option<&D>,
    d: &Deployment,
    sides: Sides,
) -> Result<DrainBlueOutput> {
    let green = require_green(d, sides.green, "promote")?;
    if green.is_draining() {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} of execution {} was removed (DRAINING); it cannot be promoted",
            green.id, d.execution_name
        )));
    }
    let green_tg = target_group_of(d, &green)?;
    let blue_tg = other_group(d, &green, green_tg)?;
    let weights = elb.forward_weights(&d.route()).await?;
    let green_weight = weight_of(&weights, green_tg);
    let total: i32 = weights.iter().map(|w| w.weight).sum();
    if green_weight <= 0 || green_weight != total {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} does not take 100 % of the traffic of {} (green {green_weight} of {total}); shift traffic to green before promoting it",
            green.id,
            d.route()
        )));
    }
    if green.status == "PRIMARY" {
        info!(service = %d.service, task_set = %green.id, "green is already primary");
    } else {
        info!(
            service = %d.service,
            task_set = %green.id,
            previous_primary = sides.service.primary().map_or("none", |p| p.id.as_str()),
            "making green the primary task set"
        );
        ecs.set_primary_task_set(&d.cluster, &d.service, &green.arn)
            .await?;
        if let Some((version, image)) = release_of(ecs, d, &green).await {
            announce(dynatrace, d, Milestone::Promoted, &version, &image, None).await;
        }
    }
    let drain = drain_delay(elb, d, blue_tg).await?;
    Ok(DrainBlueOutput {
        action: DrainAction::Promote,
        primary_task_set_id: Some(green.id),
        removed_task_set_id: None,
        wait_seconds: drain.saturating_sub(d.blue_retention_seconds),
    })
}

async fn remove_blue<E: Ecs + OperatorCommands, L: LoadBalancer>(
    ecs: &E,
    elb: &L,
    d: &Deployment,
    sides: Sides,
) -> Result<DrainBlueOutput> {
    let green = require_green(d, sides.green, "remove blue for")?;
    if green.status != "PRIMARY" {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} is {}, not PRIMARY; promote it before removing blue",
            green.id, green.status
        )));
    }
    let done = |removed: Option<String>| DrainBlueOutput {
        action: DrainAction::RemoveBlue,
        primary_task_set_id: Some(green.id.clone()),
        removed_task_set_id: removed,
        wait_seconds: 0,
    };
    let Some(blue) = sides.blue else {
        info!(service = %d.service, "blue is already gone");
        forget_command(ecs, d, &sides.service.arn).await;
        return Ok(done(None));
    };
    if blue.is_draining() {
        info!(service = %d.service, task_set = %blue.id, "blue was removed already and is draining");
        forget_command(ecs, d, &sides.service.arn).await;
        return Ok(done(Some(blue.id)));
    }
    let green_tg = target_group_of(d, &green)?;
    let pair_blue_tg = other_group(d, &green, green_tg)?;
    // Blue's own group normally is the pair's other one; check both so a task set that
    // moved groups is never removed while it takes traffic.
    let blue_groups: Vec<&str> = [Some(pair_blue_tg), blue.target_group_arn()]
        .into_iter()
        .flatten()
        .collect();
    refuse_while_taking_traffic(elb, d, &blue_groups, || {
        format!(
            "refusing to remove blue task set {} while it takes traffic",
            blue.id
        )
    })
    .await?;
    let others = sides
        .service
        .task_sets
        .iter()
        .filter(|t| !t.is_draining() && t.id != blue.id && t.id != green.id)
        .count();
    if others > 0 {
        warn!(
            service = %d.service,
            others,
            "the service has task sets besides blue and green; only blue is removed"
        );
    }
    info!(service = %d.service, task_set = %blue.id, target_group = %pair_blue_tg, "removing blue");
    ecs.delete_task_set(&d.cluster, &d.service, &blue.arn)
        .await?;
    forget_command(ecs, d, &sides.service.arn).await;
    Ok(done(Some(blue.id)))
}

async fn restore_blue<E: Ecs, L: LoadBalancer>(
    ecs: &E,
    elb: &L,
    d: &Deployment,
    sides: Sides,
) -> Result<DrainBlueOutput> {
    let primary_now = sides.service.primary().map(|p| p.id.clone());
    let Some(green) = sides.green.filter(|g| !g.is_draining()) else {
        info!(service = %d.service, execution = %d.execution_name, "no live green task set; blue stays as it is");
        return Ok(DrainBlueOutput {
            action: DrainAction::RestoreBlue,
            primary_task_set_id: primary_now,
            removed_task_set_id: None,
            wait_seconds: 0,
        });
    };
    let green_tg = target_group_of(d, &green)?;
    refuse_while_taking_traffic(elb, d, &[green_tg], || {
        format!(
            "shift traffic back to blue before restoring it; green task set {} still takes traffic",
            green.id
        )
    })
    .await?;
    let primary = restore_primary(ecs, d, &sides.blue, &green).await?;
    Ok(DrainBlueOutput {
        action: DrainAction::RestoreBlue,
        primary_task_set_id: primary.or(primary_now),
        removed_task_set_id: None,
        wait_seconds: drain_delay(elb, d, green_tg).await?,
    })
}

async fn remove_green<E: Ecs + OperatorCommands, L: LoadBalancer, D: Dynatrace>(
    ecs: &E,
    elb: &L,
    dynatrace: Option<&D>,
    d: &Deployment,
    sides: Sides,
    reason: Option<&str>,
) -> Result<DrainBlueOutput> {
    let Some(green) = sides.green else {
        info!(service = %d.service, execution = %d.execution_name, "no green task set; nothing to remove");
        forget_command(ecs, d, &sides.service.arn).await;
        return Ok(DrainBlueOutput {
            action: DrainAction::RemoveGreen,
            primary_task_set_id: sides.service.primary().map(|p| p.id.clone()),
            removed_task_set_id: None,
            wait_seconds: 0,
        });
    };
    // Check everything before changing anything.
    let green_tg = target_group_of(d, &green)?;
    if green.is_draining() {
        info!(service = %d.service, task_set = %green.id, "green was removed already and is draining");
        forget_command(ecs, d, &sides.service.arn).await;
        let wait_seconds = drain_delay(elb, d, green_tg).await?;
        return Ok(DrainBlueOutput {
            action: DrainAction::RemoveGreen,
            primary_task_set_id: sides.service.primary().map(|p| p.id.clone()),
            removed_task_set_id: Some(green.id.clone()),
            wait_seconds,
        });
    }
    refuse_while_taking_traffic(elb, d, &[green_tg], || {
        format!(
            "shift traffic back to blue before removing green task set {}",
            green.id
        )
    })
    .await?;
    if green.status == "PRIMARY" && sides.blue.is_none() {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} is primary and service {} has no other task set to make primary; refusing to remove the only side",
            green.id, d.service
        )));
    }
    let wait_seconds = drain_delay(elb, d, green_tg).await?;
    let released = release_of(ecs, d, &green).await;
    let primary = restore_primary(ecs, d, &sides.blue, &green)
        .await?
        .or_else(|| sides.service.primary().map(|p| p.id.clone()));
    // Deregister before deleting: once green is gone nothing says which revision it ran, so a
    // retry after a failed delete must still find the revision through green.
    let shared = sides
        .service
        .task_sets
        .iter()
        .any(|t| t.id != green.id && t.task_definition_arn == green.task_definition_arn);
    if shared {
        info!(
            service = %d.service,
            task_definition = %green.task_definition_arn,
            "keeping green's task definition revision; another task set runs it"
        );
    } else {
        info!(service = %d.service, task_definition = %green.task_definition_arn, "deregistering green's task definition revision");
        ecs.deregister_task_definition(&green.task_definition_arn)
            .await?;
    }
    info!(service = %d.service, task_set = %green.id, target_group = %green_tg, "removing green");
    ecs.delete_task_set(&d.cluster, &d.service, &green.arn)
        .await?;
    if let Some((version, image)) = released {
        announce(
            dynatrace,
            d,
            Milestone::RolledBack,
            &version,
            &image,
            reason,
        )
        .await;
    }
    forget_command(ecs, d, &sides.service.arn).await;
    Ok(DrainBlueOutput {
        action: DrainAction::RemoveGreen,
        primary_task_set_id: primary,
        removed_task_set_id: Some(green.id),
        wait_seconds,
    })
}

/// Makes blue the primary task set again when green is; answers the primary it set.
async fn restore_primary<E: Ecs>(
    ecs: &E,
    d: &Deployment,
    blue: &Option<TaskSetState>,
    green: &TaskSetState,
) -> Result<Option<String>> {
    if green.status != "PRIMARY" {
        return Ok(None);
    }
    let Some(blue) = blue.as_ref().filter(|b| !b.is_draining()) else {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} is primary and service {} has no other task set to make primary; refusing to remove the only side",
            green.id, d.service
        )));
    };
    info!(service = %d.service, task_set = %blue.id, "making blue the primary task set again");
    ecs.set_primary_task_set(&d.cluster, &d.service, &blue.arn)
        .await?;
    Ok(Some(blue.id.clone()))
}

/// Fails when any route of the deployment sends traffic to one of `groups`.
async fn refuse_while_taking_traffic<L: LoadBalancer>(
    elb: &L,
    d: &Deployment,
    groups: &[&str],
    what: impl Fn() -> String,
) -> Result<()> {
    for route in d.routes() {
        let weights = elb.forward_weights(&route).await?;
        for tg in groups {
            let weight = weight_of(&weights, tg);
            if weight != 0 {
                return Err(Error::PreconditionFailed(format!(
                    "target group {tg} still has weight {weight} on {route}; {}",
                    what()
                )));
            }
        }
    }
    Ok(())
}

/// Seconds between confirming that `tg` takes no traffic and removing its task set.
async fn drain_delay<L: LoadBalancer>(elb: &L, d: &Deployment, tg: &str) -> Result<u32> {
    match d.timing.drain_delay_seconds {
        Some(s) => Ok(s),
        None => elb.deregistration_delay(tg).await,
    }
}

/// Green's release version (image digest) and image, for deployment events; `None` when
/// there are no events to post or the task definition cannot be read.
async fn release_of<E: Ecs>(
    ecs: &E,
    d: &Deployment,
    green: &TaskSetState,
) -> Option<(String, String)> {
    if !d.dynatrace.as_ref().is_some_and(|r| r.events) {
        return None;
    }
    let td = ecs.task_definition(&green.task_definition_arn).await.ok()?;
    let image = taskdef::image_of(&td, &d.container).ok()?.to_string();
    Some((release_version(&image).ok()?, image))
}

/// Removes an operator command left for the execution; a failure is logged, not fatal.
async fn forget_command<E: OperatorCommands>(ecs: &E, d: &Deployment, service_arn: &str) {
    if let Err(e) = ecs.clear_command(service_arn, &d.execution_name).await {
        warn!(service = %d.service, execution = %d.execution_name, error = %e, "could not clear the operator command left on the service");
    }
}

fn require_green(d: &Deployment, green: Option<TaskSetState>, doing: &str) -> Result<TaskSetState> {
    green.ok_or_else(|| {
        Error::PreconditionFailed(format!(
            "no green task set for execution {} in service {}; nothing to {doing}",
            d.execution_name, d.service
        ))
    })
}

fn target_group_of<'a>(d: &Deployment, task_set: &'a TaskSetState) -> Result<&'a str> {
    task_set.target_group_arn().ok_or_else(|| {
        Error::PreconditionFailed(format!(
            "task set {} of service {} has no target group",
            task_set.id, d.service
        ))
    })
}

fn other_group<'a>(d: &'a Deployment, task_set: &TaskSetState, tg: &str) -> Result<&'a str> {
    d.other_target_group(tg).ok_or_else(|| {
        Error::PreconditionFailed(format!(
            "task set {} of service {} is on target group {tg}, which is not one of targetGroupArns {:?}",
            task_set.id, d.service, d.target_group_arns
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Deployment;
    use crate::steps::fakes::{
        BLUE_TASK_DEFINITION, EXECUTION, FakeAws, FakeDynatrace, TG_A_DELAY, TG_B_DELAY,
        default_route, weights,
    };

    const NO_DYNATRACE: Option<&FakeDynatrace> = None;

    fn input(d: &Deployment, action: DrainAction) -> DrainBlueInput {
        DrainBlueInput {
            deployment: d.clone(),
            action,
            reason: None,
        }
    }

    /// Blue primary on TG_A, green on TG_B (steady) and the listener at `blue`/`green`.
    fn deployed(blue: i32, green: i32) -> (FakeAws, String, String) {
        let fake = FakeAws::blue();
        let blue_id = fake.service_now().primary().unwrap().id.clone();
        let g = fake.add_green(EXECUTION);
        fake.set_steady(&g.id);
        fake.set_weights(&default_route(), weights(blue, green));
        (fake, blue_id, g.id)
    }

    /// Runs `action` again and asserts the state did not change.
    async fn rerun_changes_nothing(
        fake: &FakeAws,
        d: &Deployment,
        action: DrainAction,
    ) -> DrainBlueOutput {
        let before = fake.snapshot();
        let out = drain_blue(fake, fake, NO_DYNATRACE, input(d, action))
            .await
            .unwrap();
        assert_eq!(
            fake.snapshot(),
            before,
            "re-running {action:?} changed the state"
        );
        out
    }

    #[tokio::test]
    async fn promote_makes_green_primary_and_waits_for_blues_deregistration_delay() {
        // Given green taking all traffic
        let (fake, _, green) = deployed(0, 100);
        let d = fake.deployment();

        // When promoted
        let out = drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();

        // Then green is primary and the wait is blue's (TG_A's) delay
        assert_eq!(fake.service_now().primary().unwrap().id, green);
        assert_eq!(out.primary_task_set_id.as_deref(), Some(green.as_str()));
        assert_eq!(out.removed_task_set_id, None);
        assert_eq!(out.wait_seconds, TG_A_DELAY);

        // And a re-run leaves the same state and answers the same
        fake.clear_calls();
        assert_eq!(
            rerun_changes_nothing(&fake, &d, DrainAction::Promote).await,
            out
        );
        assert!(fake.mutations().is_empty(), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn promote_waits_the_configured_drain_delay_when_there_is_one() {
        let (fake, _, _) = deployed(0, 100);
        let mut d = fake.deployment();
        d.timing.drain_delay_seconds = Some(5);
        let out = drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();
        assert_eq!(out.wait_seconds, 5);
    }

    #[tokio::test]
    async fn promote_refuses_while_green_lacks_100_percent_of_traffic() {
        // Given green at 90 %
        let (fake, blue, _) = deployed(10, 90);

        // When promoted
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&fake.deployment(), DrainAction::Promote),
        )
        .await
        .unwrap_err();

        // Then it refuses and blue stays primary
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("green 90 of 100"), "{err}");
        assert!(fake.mutations().is_empty());
        assert_eq!(fake.service_now().primary().unwrap().id, blue);
    }

    #[tokio::test]
    async fn promote_refuses_without_green() {
        let fake = FakeAws::blue();
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&fake.deployment(), DrainAction::Promote),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(EXECUTION), "{err}");
    }

    #[tokio::test]
    async fn remove_blue_deletes_blue_once_green_is_primary_and_blue_takes_no_traffic() {
        // Given green promoted with all traffic
        let (fake, blue, green) = deployed(0, 100);
        let d = fake.deployment();
        drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();

        // When blue is removed
        let out = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveBlue),
        )
        .await
        .unwrap();

        // Then only green is left, and blue's revision stays registered for a later rollback
        assert_eq!(out.removed_task_set_id.as_deref(), Some(blue.as_str()));
        assert_eq!(out.primary_task_set_id.as_deref(), Some(green.as_str()));
        assert_eq!(out.wait_seconds, 0);
        assert!(fake.removed(&blue));
        assert_eq!(
            fake.task_definition_status(BLUE_TASK_DEFINITION).as_deref(),
            Some("ACTIVE")
        );

        // And a re-run while blue drains answers the same and changes nothing
        let again = rerun_changes_nothing(&fake, &d, DrainAction::RemoveBlue).await;
        assert_eq!(again, out);

        // And once blue's tasks stopped, only green is listed and a re-run is still a no-op
        fake.finish_draining();
        assert_eq!(fake.service_now().task_sets.len(), 1);
        let after = rerun_changes_nothing(&fake, &d, DrainAction::RemoveBlue).await;
        assert_eq!(after.removed_task_set_id, None);
        assert_eq!(after.primary_task_set_id.as_deref(), Some(green.as_str()));
    }

    #[tokio::test]
    async fn remove_blue_tells_this_deployments_blue_from_an_earlier_one_still_draining() {
        // Given an earlier deployment's task set still draining on green's target group, and
        // this deployment's blue removed and draining on the other one
        let (fake, blue, green) = deployed(0, 100);
        let earlier = fake.add_green("orders-0000000000000000");
        fake.update_task_set(&earlier.id, |t| {
            t.status = "DRAINING".into();
            t.created_at = Some(1.0);
        });
        let d = fake.deployment();
        drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();
        let out = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveBlue),
        )
        .await
        .unwrap();
        assert_eq!(out.removed_task_set_id.as_deref(), Some(blue.as_str()));

        // When the step runs again, it reports this deployment's blue, not the earlier one
        let again = rerun_changes_nothing(&fake, &d, DrainAction::RemoveBlue).await;
        assert_eq!(again, out);
        assert_eq!(again.primary_task_set_id.as_deref(), Some(green.as_str()));
    }

    #[tokio::test]
    async fn remove_blue_refuses_while_blue_takes_traffic_and_deletes_nothing() {
        // Given green primary but the listener still sending 1 % to blue
        let (fake, blue, green) = deployed(0, 100);
        let d = fake.deployment();
        drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();
        fake.set_weights(&default_route(), weights(1, 99));
        fake.clear_calls();

        // When blue is removed
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveBlue),
        )
        .await
        .unwrap_err();

        // Then it refuses, naming the weight, and nothing is deleted
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("still has weight 1"), "{err}");
        assert!(fake.mutations().is_empty(), "{:?}", fake.calls());
        assert!(fake.task_set(&blue).is_some());
        assert!(fake.task_set(&green).is_some());
    }

    #[tokio::test]
    async fn remove_blue_refuses_before_green_is_primary() {
        let (fake, blue, _) = deployed(0, 100);
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&fake.deployment(), DrainAction::RemoveBlue),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("not PRIMARY"), "{err}");
        assert!(fake.task_set(&blue).is_some());
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn remove_green_restores_blue_as_primary_deletes_green_and_deregisters_its_revision() {
        // Given green promoted, then traffic shifted back to blue by the rollback
        let (fake, blue, green) = deployed(0, 100);
        let d = fake.deployment();
        drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();
        fake.set_weights(&default_route(), weights(100, 0));
        let green_revision = fake.task_set(&green).unwrap().task_definition_arn;

        // When green is removed
        let out = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveGreen),
        )
        .await
        .unwrap();

        // Then blue is primary again, green is gone, its revision inactive, blue's kept
        assert_eq!(fake.service_now().primary().unwrap().id, blue);
        assert!(fake.removed(&green));
        assert_eq!(
            fake.task_definition_status(&green_revision).as_deref(),
            Some("INACTIVE")
        );
        assert_eq!(
            fake.task_definition_status(BLUE_TASK_DEFINITION).as_deref(),
            Some("ACTIVE")
        );
        assert_eq!(out.primary_task_set_id.as_deref(), Some(blue.as_str()));
        assert_eq!(out.removed_task_set_id.as_deref(), Some(green.as_str()));
        assert_eq!(out.wait_seconds, TG_B_DELAY);

        // And a re-run while green drains answers the same and changes nothing
        let again = rerun_changes_nothing(&fake, &d, DrainAction::RemoveGreen).await;
        assert_eq!(again, out);

        // And once green's tasks stopped, a re-run is a no-op that finds nothing to remove
        fake.finish_draining();
        let after = rerun_changes_nothing(&fake, &d, DrainAction::RemoveGreen).await;
        assert_eq!(after.removed_task_set_id, None);
        assert_eq!(after.primary_task_set_id.as_deref(), Some(blue.as_str()));
    }

    #[tokio::test]
    async fn remove_green_keeps_a_revision_blue_still_runs() {
        // Given a green that runs blue's own revision (a redeploy of the same image)
        let (fake, blue, green) = deployed(100, 0);
        fake.update_task_set(&green, |t| {
            t.task_definition_arn = BLUE_TASK_DEFINITION.into()
        });

        // When green is removed
        drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&fake.deployment(), DrainAction::RemoveGreen),
        )
        .await
        .unwrap();

        // Then the revision stays active for blue
        assert!(fake.removed(&green));
        assert_eq!(fake.service_now().primary().unwrap().id, blue);
        assert_eq!(
            fake.task_definition_status(BLUE_TASK_DEFINITION).as_deref(),
            Some("ACTIVE")
        );
        assert!(
            !fake
                .mutations()
                .contains(&"DeregisterTaskDefinition".to_string())
        );
    }

    #[tokio::test]
    async fn restore_blue_makes_blue_primary_again_and_answers_greens_drain_delay() {
        // Given green promoted, then all traffic shifted back to blue by a rollback
        let (fake, blue, green) = deployed(0, 100);
        let d = fake.deployment();
        drain_blue(&fake, &fake, NO_DYNATRACE, input(&d, DrainAction::Promote))
            .await
            .unwrap();
        fake.set_weights(&default_route(), weights(100, 0));

        // When blue is restored
        let out = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RestoreBlue),
        )
        .await
        .unwrap();

        // Then blue is primary, green still exists (it is removed after the wait)
        assert_eq!(fake.service_now().primary().unwrap().id, blue);
        assert!(!fake.removed(&green));
        assert_eq!(out.primary_task_set_id.as_deref(), Some(blue.as_str()));
        assert_eq!(out.wait_seconds, TG_B_DELAY);
        let again = rerun_changes_nothing(&fake, &d, DrainAction::RestoreBlue).await;
        assert_eq!(again, out);
    }

    #[tokio::test]
    async fn restore_blue_refuses_while_green_takes_traffic() {
        let (fake, _, _) = deployed(60, 40);
        let d = fake.deployment();
        let before = fake.snapshot();
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RestoreBlue),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("still has weight 40"), "{err}");
        assert_eq!(fake.snapshot(), before);
    }

    fn with_events(fake: &FakeAws, retention: u32) -> Deployment {
        let mut request = FakeAws::request();
        request.dynatrace = Some(crate::model::DynatraceRelease {
            release_product: None,
            release_stage: None,
            events: true,
            entity_selector: None,
        });
        request.blue_retention_seconds = retention;
        let _ = fake;
        request.into_deployment(EXECUTION, None).unwrap()
    }

    #[tokio::test]
    async fn promotion_posts_one_event_and_blues_retention_counts_towards_the_drain_delay() {
        let (fake, _, _) = deployed(0, 100);
        let dt = FakeDynatrace::default();
        let d = with_events(&fake, 10);
        let out = drain_blue(&fake, &fake, Some(&dt), input(&d, DrainAction::Promote))
            .await
            .unwrap();
        assert_eq!(out.wait_seconds, TG_A_DELAY - 10);
        drain_blue(&fake, &fake, Some(&dt), input(&d, DrainAction::Promote))
            .await
            .unwrap();
        let events = dt.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].properties["deployment.milestone"], "promoted");

        let long = with_events(&fake, TG_A_DELAY + 100);
        let out = drain_blue(&fake, &fake, Some(&dt), input(&long, DrainAction::Promote))
            .await
            .unwrap();
        assert_eq!(out.wait_seconds, 0);
    }

    #[tokio::test]
    async fn removing_green_posts_the_rollback_with_its_reason_and_clears_the_operators_command() {
        let (fake, _, green) = deployed(100, 0);
        let dt = FakeDynatrace::default();
        let d = with_events(&fake, 0);
        let service = fake.service_now().arn;
        fake.send_command(&service, EXECUTION, crate::ports::Command::Abort, "alice")
            .await
            .unwrap();
        let mut i = input(&d, DrainAction::RemoveGreen);
        i.reason = Some("aborted: an operator aborted".into());
        drain_blue(&fake, &fake, Some(&dt), i).await.unwrap();
        assert!(fake.removed(&green));
        let events = dt.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].properties["deployment.milestone"], "rolled back");
        assert_eq!(
            events[0].properties["deployment.reason"],
            "aborted: an operator aborted"
        );
        assert_eq!(fake.command_left(), None);
    }

    #[tokio::test]
    async fn remove_green_refuses_while_green_takes_traffic_and_changes_nothing() {
        let (fake, blue, green) = deployed(50, 50);
        let d = fake.deployment();
        let before = fake.snapshot();
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveGreen),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("still has weight 50"), "{err}");
        assert_eq!(fake.snapshot(), before);
        assert!(fake.task_set(&green).is_some());
        assert_eq!(fake.service_now().primary().unwrap().id, blue);
    }

    #[tokio::test]
    async fn remove_green_without_green_is_a_no_op() {
        let fake = FakeAws::blue();
        let blue = fake.service_now().primary().unwrap().id.clone();
        let out = rerun_changes_nothing(&fake, &fake.deployment(), DrainAction::RemoveGreen).await;
        assert_eq!(out.primary_task_set_id.as_deref(), Some(blue.as_str()));
        assert_eq!(out.removed_task_set_id, None);
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn remove_green_retried_after_a_failed_delete_finishes_the_job() {
        // Given a rollback whose delete was throttled after the revision was deregistered
        let (fake, _, green) = deployed(100, 0);
        let d = fake.deployment();
        let revision = fake.task_set(&green).unwrap().task_definition_arn;
        fake.fail_next(
            "DeleteTaskSet",
            Error::from_code(
                "DeleteTaskSet",
                green.clone(),
                "ThrottlingException".into(),
                "rate".into(),
            ),
        );
        let err = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveGreen),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "AwsThrottled");
        assert!(fake.task_set(&green).is_some());

        // When the state machine retries
        let out = drain_blue(
            &fake,
            &fake,
            NO_DYNATRACE,
            input(&d, DrainAction::RemoveGreen),
        )
        .await
        .unwrap();

        // Then green is gone and its revision inactive
        assert_eq!(out.removed_task_set_id.as_deref(), Some(green.as_str()));
        assert!(fake.removed(&green));
        assert_eq!(
            fake.task_definition_status(&revision).as_deref(),
            Some("INACTIVE")
        );
    }
}
