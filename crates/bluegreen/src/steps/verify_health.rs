//! `VerifyHealth`: green is stable per ECS and every target in its target group is healthy.
//!
//! Three outcomes the state machine tells apart: healthy (the output), still coming up
//! ([`Error::NotReady`], poll again) and broken ([`Error::VerificationFailed`], roll back).
//! Broken wins over coming up: a crashed task or a failing target is reported at the first
//! poll that sees it, not after the polls run out.

use tracing::info;

use crate::error::{Error, Result};
use crate::ports::{Ecs, LoadBalancer, StoppedTask, TargetHealth};
use crate::steps::{StepInput, VerifyHealthOutput, sides};

/// At most this many stopped tasks or failing targets are named in a message.
const NAMED_IN_MESSAGE: usize = 3;

/// Checks that green (the task set whose `externalId` is the execution name) runs all its
/// tasks and that each of them is a healthy target of green's target group.
///
/// Targets that are `draining` (tasks of an earlier deployment leaving the group) count
/// neither way.
///
/// # Errors
/// - [`Error::PreconditionFailed`] when there is no green task set for the execution, it was
///   removed (`DRAINING`), it has no target group, or its desired count is 0 (nothing to
///   verify).
/// - [`Error::VerificationFailed`] when green has stopped tasks (naming task, stop code,
///   reason and exit codes) or a target is `unhealthy` or `unavailable` (naming targets and
///   reasons).
/// - [`Error::NotReady`] while ECS is not steady (fewer running than desired, pending tasks,
///   `STABILIZING`) or fewer targets than desired are healthy, or any is `initial`.
/// - AWS errors of the reads.
pub async fn verify_health<E: Ecs, L: LoadBalancer>(
    ecs: &E,
    elb: &L,
    input: StepInput,
) -> Result<VerifyHealthOutput> {
    let d = &input.deployment;
    let sides = sides(ecs, d).await?;
    let green = sides.green.ok_or_else(|| {
        Error::PreconditionFailed(format!(
            "no green task set for execution {} in service {}; CreateGreen must run first",
            d.execution_name, d.service
        ))
    })?;
    if green.is_draining() {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} of execution {} was removed (DRAINING); there is nothing to verify",
            green.id, d.execution_name
        )));
    }
    let desired = green.computed_desired_count;
    if desired <= 0 {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} of service {} has a desired count of 0 (service desired count is {}); nothing to verify, scale the service up and deploy again",
            green.id, d.service, sides.service.desired_count
        )));
    }
    let tg = green.target_group_arn().ok_or_else(|| {
        Error::PreconditionFailed(format!(
            "green task set {} of service {} has no target group",
            green.id, d.service
        ))
    })?;

    let stopped = ecs.stopped_tasks(&d.cluster, &green.id).await?;
    if !stopped.is_empty() {
        return Err(Error::VerificationFailed(format!(
            "green task set {} has {} stopped task(s): {}",
            green.id,
            stopped.len(),
            named(stopped.iter().map(describe_stopped))
        )));
    }

    let targets: Vec<TargetHealth> = elb
        .target_health(tg)
        .await?
        .into_iter()
        .filter(|t| t.state != "draining")
        .collect();
    let failing: Vec<&TargetHealth> = targets
        .iter()
        .filter(|t| t.state == "unhealthy" || t.state == "unavailable")
        .collect();
    if !failing.is_empty() {
        return Err(Error::VerificationFailed(format!(
            "{} target(s) of green's target group {tg} are failing: {}",
            failing.len(),
            named(failing.iter().map(|t| describe_target(t)))
        )));
    }

    let healthy = targets.iter().filter(|t| t.state == "healthy").count();
    let initial = targets.iter().filter(|t| t.state == "initial").count();
    let stability = green.stability_status.as_deref().unwrap_or("UNKNOWN");
    let ecs_steady =
        stability == "STEADY_STATE" && green.running_count >= desired && green.pending_count == 0;
    let enough_healthy = i64::try_from(healthy).unwrap_or(i64::MAX) >= i64::from(desired);
    if !ecs_steady || !enough_healthy || initial > 0 {
        let others: Vec<String> = targets
            .iter()
            .filter(|t| t.state != "healthy" && t.state != "initial")
            .map(describe_target)
            .collect();
        let mut not_healthy = format!("{initial} initial");
        if !others.is_empty() {
            not_healthy.push_str(&format!(", {}", named(others.into_iter())));
        }
        let pending = if green.pending_count > 0 {
            format!(", {} pending", green.pending_count)
        } else {
            String::new()
        };
        return Err(Error::NotReady(format!(
            "green has {healthy} of {desired} healthy targets ({not_healthy}); ECS: {} running of {desired}{pending}, {stability}",
            green.running_count
        )));
    }

    info!(
        service = %d.service,
        task_set = %green.id,
        target_group = %tg,
        healthy,
        desired,
        "green is healthy"
    );
    Ok(VerifyHealthOutput {
        green_task_set_id: green.id,
        desired_count: desired,
        running_count: green.running_count,
        healthy_targets: healthy,
        targets,
    })
}

fn describe_stopped(t: &StoppedTask) -> String {
    let exit_codes = if t.exit_codes.is_empty() {
        "no exit codes".to_string()
    } else {
        let codes: Vec<String> = t
            .exit_codes
            .iter()
            .map(|(container, code)| match code {
                Some(c) => format!("{container}={c}"),
                None => format!("{container}=none"),
            })
            .collect();
        format!("exit codes {}", codes.join(", "))
    };
    format!(
        "{} ({}: {}; {exit_codes})",
        t.task_arn,
        t.stop_code.as_deref().unwrap_or("no stop code"),
        t.stopped_reason.as_deref().unwrap_or("no reason given"),
    )
}

fn describe_target(t: &TargetHealth) -> String {
    let address = match t.port {
        Some(p) => format!("{}:{p}", t.id),
        None => t.id.clone(),
    };
    match &t.reason {
        Some(r) => format!("{address} {} ({r})", t.state),
        None => format!("{address} {}", t.state),
    }
}

/// Joins the first few items and says how many more there are.
fn named(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let mut text = items
        .iter()
        .take(NAMED_IN_MESSAGE)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > NAMED_IN_MESSAGE {
        text.push_str(&format!("; and {} more", items.len() - NAMED_IN_MESSAGE));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{EXECUTION, FakeAws, TG_B, target};

    fn input(fake: &FakeAws) -> StepInput {
        StepInput {
            deployment: fake.deployment(),
        }
    }

    /// Blue live, green created and steady with `targets` registered in its group.
    fn green_with(targets: Vec<TargetHealth>) -> (FakeAws, String) {
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        fake.set_steady(&green.id);
        fake.set_targets(TG_B, targets);
        (fake, green.id)
    }

    #[tokio::test]
    async fn green_is_not_ready_while_its_tasks_and_targets_come_up() {
        // Given green just created: one task running, one pending, one target still initial.
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        fake.update_task_set(&green.id, |t| {
            t.running_count = 1;
            t.pending_count = 1;
        });
        fake.set_targets(
            TG_B,
            vec![target(
                "10.0.3.30",
                "initial",
                Some("Elb.InitialHealthChecking"),
            )],
        );

        // When verified
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();

        // Then it is polled again, with a message that says how far along green is.
        assert_eq!(err.error_type(), "NotReady");
        assert_eq!(
            err.to_string(),
            "not ready: green has 0 of 2 healthy targets (1 initial); ECS: 1 running of 2, 1 pending, STABILIZING"
        );
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn green_is_not_ready_while_one_target_is_still_initial() {
        let (fake, _) = green_with(vec![
            target("10.0.3.30", "healthy", None),
            target("10.0.4.40", "initial", Some("Elb.RegistrationInProgress")),
        ]);
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "NotReady");
        assert!(
            err.to_string().contains(
                "green has 1 of 2 healthy targets (1 initial); ECS: 2 running of 2, STEADY_STATE"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn green_is_not_ready_while_ecs_is_stabilizing_even_with_healthy_targets() {
        let (fake, id) = green_with(vec![
            target("10.0.3.30", "healthy", None),
            target("10.0.4.40", "healthy", None),
        ]);
        fake.update_task_set(&id, |t| t.stability_status = Some("STABILIZING".into()));
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "NotReady");
        assert!(err.to_string().contains("STABILIZING"), "{err}");
    }

    #[tokio::test]
    async fn green_is_healthy_when_ecs_is_steady_and_every_target_is_healthy() {
        // Given green steady with two healthy targets and an old task's target draining
        let (fake, id) = green_with(vec![
            target("10.0.3.30", "healthy", None),
            target("10.0.4.40", "healthy", None),
            target(
                "10.0.9.90",
                "draining",
                Some("Target.DeregistrationInProgress"),
            ),
        ]);

        // When verified
        let out = verify_health(&fake, &fake, input(&fake)).await.unwrap();

        // Then it passes, counting only green's own targets
        assert_eq!(out.green_task_set_id, id);
        assert_eq!(out.desired_count, 2);
        assert_eq!(out.running_count, 2);
        assert_eq!(out.healthy_targets, 2);
        assert_eq!(out.targets.len(), 2);
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_draining_target_does_not_make_up_for_a_missing_healthy_one() {
        let (fake, _) = green_with(vec![
            target("10.0.3.30", "healthy", None),
            target(
                "10.0.9.90",
                "draining",
                Some("Target.DeregistrationInProgress"),
            ),
        ]);
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "NotReady");
        assert!(err.to_string().contains("1 of 2 healthy"), "{err}");
    }

    #[tokio::test]
    async fn verification_fails_on_an_unhealthy_target_and_names_it_with_its_reason() {
        // Given one of green's targets failing its health checks
        let (fake, _) = green_with(vec![
            target("10.0.3.30", "healthy", None),
            target(
                "10.0.4.40",
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
            ),
        ]);

        // When verified
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();

        // Then the execution rolls back, and the message says which target and why
        assert_eq!(err.error_type(), "VerificationFailed");
        let msg = err.to_string();
        assert!(
            msg.contains("10.0.4.40:8080 unhealthy (Target.ResponseCodeMismatch)"),
            "{msg}"
        );
        assert!(msg.contains(TG_B), "{msg}");
        assert!(!msg.contains("10.0.3.30"), "{msg}");
    }

    #[tokio::test]
    async fn verification_fails_on_a_stopped_task_even_while_green_is_still_coming_up() {
        // Given green coming up and one of its tasks already stopped with exit code 1
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        fake.add_stopped_task(
            &green.id,
            StoppedTask {
                task_arn: "arn:aws:ecs:us-east-1:123456789012:task/demo/0f9e8d7c".into(),
                stop_code: Some("EssentialContainerExited".into()),
                stopped_reason: Some("Essential container in task exited".into()),
                exit_codes: vec![("app".into(), Some(1)), ("oneagent".into(), None)],
            },
        );

        // When verified
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();

        // Then it fails with task, stop code, reason and exit codes
        assert_eq!(err.error_type(), "VerificationFailed");
        assert_eq!(
            err.to_string(),
            format!(
                "verification failed: green task set {} has 1 stopped task(s): arn:aws:ecs:us-east-1:123456789012:task/demo/0f9e8d7c (EssentialContainerExited: Essential container in task exited; exit codes app=1, oneagent=none)",
                green.id
            )
        );
    }

    #[tokio::test]
    async fn a_missing_green_is_a_failed_precondition_naming_the_execution() {
        let fake = FakeAws::blue();
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(EXECUTION), "{err}");
    }

    #[tokio::test]
    async fn a_service_scaled_to_zero_has_nothing_to_verify() {
        let (fake, id) = green_with(Vec::new());
        fake.update_task_set(&id, |t| t.computed_desired_count = 0);
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("desired count of 0"), "{err}");
    }

    #[tokio::test]
    async fn a_throttled_read_surfaces_as_the_retryable_error() {
        let (fake, _) = green_with(Vec::new());
        fake.fail_next(
            "DescribeTargetHealth",
            Error::from_code(
                "DescribeTargetHealth",
                TG_B.into(),
                "Throttling".into(),
                "rate exceeded".into(),
            ),
        );
        let err = verify_health(&fake, &fake, input(&fake)).await.unwrap_err();
        assert_eq!(err.error_type(), "AwsThrottled");
    }
}
