//! `VerifyHealth`: one poll of green, in every phase of a deployment.
//!
//! The state machine calls it every `timing.pollIntervalSeconds` and carries the
//! [`Observation`] from one poll to the next. Each poll asks every source that applies —
//! ECS and target health always; CloudWatch alarms and Dynatrace once green takes test or
//! production traffic, unless the step says `verify: false` — and [`judge`]s the answers:
//! wait (poll again), pass (the phase is done), or fail ([`Error::VerificationFailed`], roll
//! back). An operator's `abort` fails it with [`Error::Aborted`]; `promote` answers
//! [`Decision::Promote`] so the state machine skips the remaining steps.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::dynatrace::Dynatrace;
use crate::error::{Error, Result};
use crate::model::{Deployment, PlannedStep};
use crate::ports::{
    AlarmState, Alarms, Command, Ecs, LeftCommand, LoadBalancer, OperatorCommands, StoppedTask,
    TargetHealth, TaskSetState,
};
use crate::steps::{Sides, sides};
use crate::taskdef;
use crate::verification::dynatrace::{release_scope, release_version};
use crate::verification::{Observation, Outcome, PollBounds, Source, SourceResult, Verdict, judge};

/// At most this many stopped tasks, failing targets or alarms are named in a message.
const NAMED_IN_MESSAGE: usize = 3;

/// Which part of the deployment green is observed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Green was created and takes no traffic: ECS and target health until healthy, at most
    /// `timing.maxHealthPolls` polls.
    #[default]
    Launch,
    /// Green takes the test route's traffic: every source, for the test bake.
    Test,
    /// Green takes a production step's weight: every source (health only for
    /// `verify: false`), for the step's bake.
    Step,
    /// Green was promoted and blue is kept: every source, for `blueRetentionSeconds`.
    Retention,
    /// Waiting for an approval: one health check, then the state machine waits for the
    /// operator.
    Approval,
}

/// Input of `VerifyHealth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyHealthInput {
    pub deployment: Deployment,
    #[serde(default)]
    pub phase: Phase,
    /// What the phase's earlier polls left; empty at a phase's first poll.
    #[serde(default)]
    pub observation: Observation,
    /// The traffic step of a `step` phase.
    #[serde(default)]
    pub step: Option<PlannedStep>,
    /// The task token of an `approval` phase (the operator answers it).
    #[serde(default)]
    pub task_token: Option<String>,
}

/// What the state machine does after this poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Poll again after `timing.pollIntervalSeconds`.
    Wait,
    /// The phase is done.
    Pass,
    /// An operator asked to promote: skip the remaining steps.
    Promote,
}

/// Output of `VerifyHealth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyHealthOutput {
    pub decision: Decision,
    /// Why it waits, or what passed.
    pub reason: String,
    /// To pass into the next poll of the phase.
    pub observation: Observation,
    pub green_task_set_id: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub healthy_targets: usize,
    /// Each source's outcome at this poll.
    pub sources: Vec<SourceResult>,
}

/// One poll of green in `input.phase`.
///
/// `now_ms` (milliseconds since the epoch) ends the window of Dynatrace queries.
///
/// # Errors
/// - [`Error::VerificationFailed`]: a source failed more polls in a row than it tolerates,
///   or the phase did not pass within its poll bound; the message names each failure
///   (stopped tasks with stop code, reason and exit codes; failing targets; alarms in
///   `ALARM`; Dynatrace checks over their thresholds).
/// - [`Error::Aborted`]: an operator aborted the deployment.
/// - [`Error::PreconditionFailed`]: there is no green task set for the execution, it was
///   removed, has no target group or a desired count of 0; a `step` phase without its step.
/// - [`Error::Config`]: the deployment verifies with Dynatrace but the function has no
///   Dynatrace configured.
/// - AWS errors of the reads. A Dynatrace that throttles or does not answer makes the
///   Dynatrace source inconclusive instead.
pub async fn verify_health<E, L, A, D>(
    ecs: &E,
    elb: &L,
    alarms: &A,
    dynatrace: Option<&D>,
    input: VerifyHealthInput,
    now_ms: u64,
) -> Result<VerifyHealthOutput>
where
    E: Ecs + OperatorCommands,
    L: LoadBalancer,
    A: Alarms,
    D: Dynatrace,
{
    let d = &input.deployment;
    let found = sides(ecs, d).await?;
    let green = live_green(d, &found)?;
    let desired = green.computed_desired_count;
    let tg = green
        .target_group_arn()
        .ok_or_else(|| {
            Error::PreconditionFailed(format!(
                "green task set {} of service {} has no target group",
                green.id, d.service
            ))
        })?
        .to_string();

    let left = ecs.command(&found.service.arn, &d.execution_name).await?;
    let command = left.as_ref().map(|l| l.command);
    let by = left.as_ref().map_or("an operator", LeftCommand::who);
    if command == Some(Command::Abort) {
        warn!(service = %d.service, execution = %d.execution_name, phase = ?input.phase, by, "an operator aborted the deployment");
        return Err(Error::Aborted(format!(
            "{by} aborted execution {} of service {}; rolling back to blue",
            d.execution_name, d.service
        )));
    }

    let (bounds, every_source) = match input.phase {
        Phase::Launch | Phase::Approval => (
            PollBounds {
                bake_polls: 1,
                max_polls: d.timing.max_health_polls,
            },
            false,
        ),
        Phase::Test => {
            let polls = d.test_route.as_ref().map_or(1, |t| t.polls);
            (bounds_of(d, polls), true)
        }
        Phase::Step => {
            let step = input.step.as_ref().ok_or_else(|| {
                Error::PreconditionFailed("a step phase needs its traffic step".into())
            })?;
            (bounds_of(d, step.polls), step.verify)
        }
        Phase::Retention => (bounds_of(d, d.retention_polls), true),
    };

    let stopped = ecs.stopped_tasks(&d.cluster, &green.id).await?;
    let targets: Vec<TargetHealth> = elb
        .target_health(&tg)
        .await?
        .into_iter()
        .filter(|t| t.state != "draining")
        .collect();
    let healthy = targets.iter().filter(|t| t.state == "healthy").count();
    let mut results = vec![
        SourceResult {
            source: Source::Ecs,
            outcome: ecs_outcome(d, green, &stopped),
        },
        SourceResult {
            source: Source::TargetHealth,
            outcome: target_outcome(d, green, &tg, &targets),
        },
    ];
    if every_source {
        if let Some(spec) = &d.verification.cloud_watch_alarms {
            let states = alarms
                .alarms(&spec.alarm_names, spec.alarm_name_prefix.as_deref())
                .await?;
            results.push(SourceResult {
                source: Source::CloudWatchAlarms,
                outcome: alarm_outcome(&spec.alarm_names, &states),
            });
        }
        if d.verification.dynatrace.is_some() {
            let outcome = dynatrace_outcome(ecs, dynatrace, d, &found, green, now_ms).await?;
            results.push(SourceResult {
                source: Source::Dynatrace,
                outcome,
            });
        }
    }

    let judgement = judge(&d.verification, &results, &input.observation, bounds);
    let output = |decision, reason: String| VerifyHealthOutput {
        decision,
        reason,
        observation: judgement.observation.clone(),
        green_task_set_id: green.id.clone(),
        desired_count: desired,
        running_count: green.running_count,
        healthy_targets: healthy,
        sources: results.clone(),
    };
    let all_pass = results.iter().all(|r| r.outcome == Outcome::Pass);
    if input.phase == Phase::Approval {
        return match judgement.verdict {
            Verdict::Fail { reason } => Err(Error::VerificationFailed(reason)),
            _ if all_pass => {
                info!(service = %d.service, execution = %d.execution_name, task_set = %green.id, "green is healthy; waiting for an operator to approve, promote or abort");
                Ok(output(
                    Decision::Wait,
                    "waiting for an approval".to_string(),
                ))
            }
            _ => Err(Error::VerificationFailed(format!(
                "green is not healthy when its approval is asked for: {}",
                not_passing(&results)
            ))),
        };
    }
    // Promotion takes green to 100 % first; at 100 % it only waits for green to be healthy.
    let at_full_traffic =
        input.phase == Phase::Step && input.step.as_ref().is_some_and(|s| s.green_weight >= 100);
    match judgement.verdict {
        Verdict::Fail { reason } => {
            warn!(service = %d.service, execution = %d.execution_name, phase = ?input.phase, polls = judgement.observation.polls, reason = %reason, "green failed verification");
            Err(Error::VerificationFailed(reason))
        }
        _ if command == Some(Command::Promote)
            && matches!(input.phase, Phase::Test | Phase::Step)
            && !at_full_traffic =>
        {
            info!(service = %d.service, execution = %d.execution_name, phase = ?input.phase, by, "an operator asked to promote; skipping the remaining steps");
            Ok(output(
                Decision::Promote,
                format!("{by} asked to promote green"),
            ))
        }
        _ if command == Some(Command::Promote) && at_full_traffic && all_pass => {
            info!(service = %d.service, execution = %d.execution_name, by, "an operator asked to promote; green takes all traffic and is healthy");
            Ok(output(
                Decision::Pass,
                format!("{by} asked to promote; green takes all traffic and every source passes"),
            ))
        }
        _ if command == Some(Command::Promote) && input.phase == Phase::Retention => {
            info!(service = %d.service, execution = %d.execution_name, by, "an operator asked to promote; ending blue's retention");
            Ok(output(
                Decision::Pass,
                format!("{by} ended blue's retention"),
            ))
        }
        Verdict::Wait { reason } => {
            info!(service = %d.service, execution = %d.execution_name, phase = ?input.phase, polls = judgement.observation.polls, reason = %reason, "green observed; polling again");
            Ok(output(Decision::Wait, reason))
        }
        Verdict::Pass => {
            info!(service = %d.service, execution = %d.execution_name, phase = ?input.phase, polls = judgement.observation.polls, task_set = %green.id, healthy, desired, "green passed verification");
            Ok(output(
                Decision::Pass,
                format!(
                    "green passed after {} poll(s): {}",
                    judgement.observation.polls,
                    results
                        .iter()
                        .map(|r| r.source.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }
}

fn bounds_of(d: &Deployment, bake_polls: u32) -> PollBounds {
    PollBounds {
        bake_polls,
        max_polls: d.timing.max_health_polls,
    }
}

/// The execution's green, which must exist, be live and have something to verify.
fn live_green<'a>(d: &Deployment, found: &'a Sides) -> Result<&'a TaskSetState> {
    let green = found.green.as_ref().ok_or_else(|| {
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
    if green.computed_desired_count <= 0 {
        return Err(Error::PreconditionFailed(format!(
            "green task set {} of service {} has a desired count of 0 (service desired count is {}); nothing to verify, scale the service up and deploy again",
            green.id, d.service, found.service.desired_count
        )));
    }
    Ok(green)
}

fn not_passing(results: &[SourceResult]) -> String {
    results
        .iter()
        .filter_map(|r| r.outcome.reason().map(|why| format!("{}: {why}", r.source)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// ECS: too many stopped tasks fail; fewer running than desired, pending tasks or
/// `STABILIZING` are inconclusive (still coming up).
fn ecs_outcome(d: &Deployment, green: &TaskSetState, stopped: &[StoppedTask]) -> Outcome {
    let max = d.verification.ecs.max_stopped_tasks as usize;
    if stopped.len() > max {
        return Outcome::Fail {
            reason: format!(
                "green task set {} has {} stopped task(s) (at most {max} tolerated): {}",
                green.id,
                stopped.len(),
                named(stopped.iter().map(describe_stopped))
            ),
        };
    }
    let desired = green.computed_desired_count;
    let stability = green.stability_status.as_deref().unwrap_or("UNKNOWN");
    if stability != "STEADY_STATE" || green.running_count < desired || green.pending_count > 0 {
        let pending = if green.pending_count > 0 {
            format!(", {} pending", green.pending_count)
        } else {
            String::new()
        };
        return Outcome::Inconclusive {
            reason: format!(
                "{} running of {desired}{pending}, {stability}",
                green.running_count
            ),
        };
    }
    Outcome::Pass
}

/// Target health: more failing targets than tolerated fail; fewer healthy targets than
/// desired, or any `initial`, are inconclusive. `draining` targets (tasks of an earlier
/// deployment leaving the group) count neither way.
fn target_outcome(
    d: &Deployment,
    green: &TaskSetState,
    tg: &str,
    targets: &[TargetHealth],
) -> Outcome {
    let failing: Vec<&TargetHealth> = targets
        .iter()
        .filter(|t| t.state == "unhealthy" || t.state == "unavailable")
        .collect();
    let max = d.verification.target_health.max_unhealthy_targets as usize;
    if failing.len() > max {
        return Outcome::Fail {
            reason: format!(
                "{} target(s) of green's target group {tg} are failing (at most {max} tolerated): {}",
                failing.len(),
                named(failing.iter().map(|t| describe_target(t)))
            ),
        };
    }
    let desired = green.computed_desired_count;
    let healthy = targets.iter().filter(|t| t.state == "healthy").count();
    let initial = targets.iter().filter(|t| t.state == "initial").count();
    let enough = i64::try_from(healthy).unwrap_or(i64::MAX) >= i64::from(desired);
    if !enough || initial > 0 {
        let others: Vec<String> = targets
            .iter()
            .filter(|t| t.state != "healthy" && t.state != "initial")
            .map(describe_target)
            .collect();
        let mut not_healthy = format!("{initial} initial");
        if !others.is_empty() {
            not_healthy.push_str(&format!(", {}", named(others.into_iter())));
        }
        return Outcome::Inconclusive {
            reason: format!("green has {healthy} of {desired} healthy targets ({not_healthy})"),
        };
    }
    Outcome::Pass
}

/// CloudWatch alarms: any in `ALARM` fails; any in `INSUFFICIENT_DATA`, or a named alarm
/// that does not exist, is inconclusive.
fn alarm_outcome(named_alarms: &[String], states: &[AlarmState]) -> Outcome {
    let in_state =
        |state: &str| -> Vec<&AlarmState> { states.iter().filter(|a| a.state == state).collect() };
    let alarming = in_state("ALARM");
    if !alarming.is_empty() {
        return Outcome::Fail {
            reason: format!(
                "{} alarm(s) in ALARM: {}",
                alarming.len(),
                named(
                    alarming
                        .iter()
                        .map(|a| format!("{} ({})", a.name, a.reason))
                )
            ),
        };
    }
    let missing: Vec<&String> = named_alarms
        .iter()
        .filter(|n| !states.iter().any(|a| &a.name == *n))
        .collect();
    let no_data = in_state("INSUFFICIENT_DATA");
    if !no_data.is_empty() || !missing.is_empty() {
        let mut parts = Vec::new();
        if !no_data.is_empty() {
            parts.push(format!(
                "{} alarm(s) in INSUFFICIENT_DATA: {}",
                no_data.len(),
                named(no_data.iter().map(|a| a.name.clone()))
            ));
        }
        if !missing.is_empty() {
            parts.push(format!(
                "alarm(s) not found: {}",
                named(missing.iter().map(|n| (*n).clone()))
            ));
        }
        return Outcome::Inconclusive {
            reason: parts.join("; "),
        };
    }
    if states.is_empty() {
        return Outcome::Inconclusive {
            reason: "no alarm matches alarmNames or alarmNamePrefix".into(),
        };
    }
    Outcome::Pass
}

/// Dynatrace: the checks of green's release (and blue's, where a check compares to it).
async fn dynatrace_outcome<E: Ecs, D: Dynatrace>(
    ecs: &E,
    dynatrace: Option<&D>,
    d: &Deployment,
    found: &Sides,
    green: &TaskSetState,
    now_ms: u64,
) -> Result<Outcome> {
    let (Some(spec), Some(release)) = (&d.verification.dynatrace, &d.dynatrace) else {
        return Ok(Outcome::Pass);
    };
    let Some(dynatrace) = dynatrace else {
        return Err(Error::Config(format!(
            "the deployment verifies with Dynatrace, but this function has no Dynatrace configured (set {})",
            crate::dynatrace::API_URL_VAR
        )));
    };
    let green_td = ecs.task_definition(&green.task_definition_arn).await?;
    let green_version = release_version(taskdef::image_of(&green_td, &d.container)?)?;
    let green_scope = release_scope(release, green_version);
    let compares = spec.checks.iter().any(|c| c.compare_to_baseline.is_some());
    let blue_scope = match (&found.blue, compares) {
        (Some(blue), true) => {
            let blue_td = ecs.task_definition(&blue.task_definition_arn).await?;
            taskdef::image_of(&blue_td, &d.container)
                .ok()
                .and_then(|image| release_version(image).ok())
                .map(|version| release_scope(release, version))
        }
        _ => None,
    };
    match spec
        .measure(dynatrace, &green_scope, blue_scope.as_ref(), now_ms)
        .await
    {
        Ok(measurements) => Ok(spec.judge(&measurements).0),
        Err(e @ (Error::Throttled { .. } | Error::Transient { .. })) => {
            warn!(service = %d.service, error = %e, "Dynatrace did not answer; this poll of it is inconclusive");
            Ok(Outcome::Inconclusive {
                reason: format!("Dynatrace did not answer: {e}"),
            })
        }
        Err(e) => Err(e),
    }
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
    use crate::model::{DeployRequest, DynatraceRelease, TrafficStep};
    use crate::steps::fakes::{
        DIGEST_V1, DIGEST_V2, EXECUTION, FakeAws, FakeDynatrace, TG_B, target,
    };
    use crate::verification::{AlarmVerification, DynatraceVerification};

    const NO_DYNATRACE: Option<&FakeDynatrace> = None;
    const NOW: u64 = 1_767_225_600_000;

    fn deployment(change: impl FnOnce(&mut DeployRequest)) -> Deployment {
        let mut request = FakeAws::request();
        change(&mut request);
        request.into_deployment(EXECUTION, None).unwrap()
    }

    fn input(d: Deployment, phase: Phase) -> VerifyHealthInput {
        let step = d.plan.first().cloned();
        VerifyHealthInput {
            deployment: d,
            phase,
            observation: Observation::default(),
            step,
            task_token: None,
        }
    }

    /// Blue live, green created and steady with two healthy targets in its group.
    fn healthy_green() -> (FakeAws, String) {
        let fake = FakeAws::blue();
        let green = fake.add_green(EXECUTION);
        fake.set_steady(&green.id);
        fake.set_targets(
            TG_B,
            vec![
                target("10.0.3.30", "healthy", None),
                target("10.0.4.40", "healthy", None),
            ],
        );
        (fake, green.id)
    }

    async fn poll(fake: &FakeAws, input: VerifyHealthInput) -> Result<VerifyHealthOutput> {
        verify_health(fake, fake, fake, NO_DYNATRACE, input, NOW).await
    }

    /// Polls until the phase ends: the decisions so far, and the final answer.
    async fn poll_until_done(
        fake: &FakeAws,
        dynatrace: Option<&FakeDynatrace>,
        mut input: VerifyHealthInput,
    ) -> (Vec<Decision>, Result<VerifyHealthOutput>) {
        let mut decisions = Vec::new();
        for _ in 0..200 {
            match verify_health(fake, fake, fake, dynatrace, input.clone(), NOW).await {
                Ok(out) if out.decision == Decision::Wait => {
                    decisions.push(out.decision);
                    input.observation = out.observation;
                }
                other => return (decisions, other),
            }
        }
        panic!("the phase never ended");
    }

    fn alarms(names: &[&str], failure_limit: u32, inconclusive_limit: u32) -> AlarmVerification {
        AlarmVerification {
            alarm_names: names.iter().map(|n| n.to_string()).collect(),
            alarm_name_prefix: None,
            failure_limit,
            inconclusive_limit,
        }
    }

    #[tokio::test]
    async fn at_launch_green_waits_while_its_tasks_and_targets_come_up_saying_how_far_along() {
        // Given green just created: one task running, one pending, one target still initial
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

        // When polled at launch
        let out = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap();

        // Then it waits, saying what is not there yet, and changes nothing
        assert_eq!(out.decision, Decision::Wait);
        assert_eq!(
            out.reason,
            "ECS: 1 running of 2, 1 pending, STABILIZING; target health: green has 0 of 2 healthy targets (1 initial)"
        );
        assert_eq!(out.observation.polls, 1);
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn at_launch_green_passes_once_ecs_is_steady_and_every_target_is_healthy() {
        let (fake, id) = healthy_green();
        let out = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap();
        assert_eq!(out.decision, Decision::Pass);
        assert_eq!(out.green_task_set_id, id);
        assert_eq!((out.desired_count, out.healthy_targets), (2, 2));
        assert_eq!(out.sources.len(), 2, "only ECS and target health at launch");
    }

    #[tokio::test]
    async fn a_green_that_never_turns_healthy_fails_at_max_health_polls_with_the_last_reason() {
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);
        let d = deployment(|r| r.timing.max_health_polls = 3);
        let (waits, last) = poll_until_done(&fake, None, input(d, Phase::Launch)).await;
        assert_eq!(waits.len(), 2);
        let err = last.unwrap_err();
        assert_eq!(err.error_type(), "VerificationFailed");
        assert!(
            err.to_string()
                .contains("did not pass verification within 3 poll(s)"),
            "{err}"
        );
        assert!(err.to_string().contains("0 running of 2"), "{err}");
    }

    #[tokio::test]
    async fn stopped_tasks_fail_at_once_naming_task_stop_code_reason_and_exit_codes() {
        let (fake, id) = healthy_green();
        fake.add_stopped_task(
            &id,
            StoppedTask {
                task_arn: "arn:aws:ecs:us-east-1:123456789012:task/demo/abc".into(),
                stop_code: Some("EssentialContainerExited".into()),
                stopped_reason: Some("Essential container in task exited".into()),
                exit_codes: vec![("app".into(), Some(137)), ("oneagent".into(), None)],
            },
        );
        let err = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "VerificationFailed");
        assert_eq!(
            err.to_string(),
            format!(
                "verification failed: ECS failed 1 poll(s) in a row (failureLimit 0): green task set {id} has 1 stopped task(s) (at most 0 tolerated): arn:aws:ecs:us-east-1:123456789012:task/demo/abc (EssentialContainerExited: Essential container in task exited; exit codes app=137, oneagent=none)"
            )
        );
    }

    #[tokio::test]
    async fn an_unhealthy_target_fails_unless_tolerated_and_draining_targets_do_not_count() {
        let (fake, _) = healthy_green();
        fake.set_targets(
            TG_B,
            vec![
                target("10.0.3.30", "healthy", None),
                target("10.0.4.40", "healthy", None),
                target("10.0.5.50", "unhealthy", Some("Target.FailedHealthChecks")),
                target(
                    "10.0.9.90",
                    "draining",
                    Some("Target.DeregistrationInProgress"),
                ),
            ],
        );
        let err = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("1 target(s) of green's target group")
                && err
                    .to_string()
                    .contains("10.0.5.50:8080 unhealthy (Target.FailedHealthChecks)"),
            "{err}"
        );
        assert!(!err.to_string().contains("10.0.9.90"), "{err}");

        let tolerant = deployment(|r| r.verification.target_health.max_unhealthy_targets = 1);
        let out = poll(&fake, input(tolerant, Phase::Launch)).await.unwrap();
        assert_eq!(out.decision, Decision::Pass);
    }

    #[tokio::test]
    async fn a_step_bakes_for_its_polls_before_it_passes() {
        let (fake, _) = healthy_green();
        let d = deployment(|r| {
            r.timing.bake_seconds = 30;
            r.timing.poll_interval_seconds = 10;
        });
        assert_eq!(d.plan[0].polls, 3);
        let (waits, last) = poll_until_done(&fake, None, input(d, Phase::Step)).await;
        assert_eq!(waits.len(), 2);
        let out = last.unwrap();
        assert_eq!(out.decision, Decision::Pass);
        assert_eq!(out.observation.polls, 3);
    }

    #[tokio::test]
    async fn an_alarm_in_alarm_fails_a_step_and_insufficient_data_is_retried_up_to_its_limit() {
        let (fake, _) = healthy_green();
        fake.set_alarm("orders-5xx", "INSUFFICIENT_DATA");
        let d = deployment(|r| {
            r.timing.bake_seconds = 0;
            r.verification.cloud_watch_alarms = Some(alarms(&["orders-5xx"], 0, 2));
        });

        // Inconclusive twice is tolerated, the third time fails
        let (waits, last) = poll_until_done(&fake, None, input(d.clone(), Phase::Step)).await;
        assert_eq!(waits.len(), 2);
        let err = last.unwrap_err();
        assert!(
            err.to_string()
                .contains("CloudWatch alarms was inconclusive 3 poll(s) in a row (inconclusiveLimit 2): 1 alarm(s) in INSUFFICIENT_DATA: orders-5xx"),
            "{err}"
        );

        // An alarm in ALARM fails at once, naming it and its reason
        fake.set_alarm("orders-5xx", "ALARM");
        let err = poll(&fake, input(d.clone(), Phase::Step))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "VerificationFailed");
        assert!(
            err.to_string()
                .contains("1 alarm(s) in ALARM: orders-5xx (Threshold Crossed"),
            "{err}"
        );

        // And an OK alarm passes
        fake.set_alarm("orders-5xx", "OK");
        let out = poll(&fake, input(d, Phase::Step)).await.unwrap();
        assert_eq!(out.decision, Decision::Pass);
        assert_eq!(out.sources.len(), 3);
    }

    #[tokio::test]
    async fn a_step_that_does_not_verify_asks_only_ecs_and_target_health() {
        let (fake, _) = healthy_green();
        fake.set_alarm("orders-5xx", "ALARM");
        let d = deployment(|r| {
            r.timing.bake_seconds = 0;
            r.verification.cloud_watch_alarms = Some(alarms(&["orders-5xx"], 0, 2));
            r.strategy = crate::model::Strategy::Steps {
                steps: vec![TrafficStep {
                    verify: false,
                    ..TrafficStep::to(100)
                }],
            };
        });
        let out = poll(&fake, input(d, Phase::Step)).await.unwrap();
        assert_eq!(out.decision, Decision::Pass);
        assert!(!fake.calls().contains(&"DescribeAlarms".to_string()));
    }

    fn with_dynatrace(max_ratio: Option<f64>) -> Deployment {
        deployment(|r| {
            r.timing.bake_seconds = 0;
            r.dynatrace = Some(DynatraceRelease {
                release_product: None,
                release_stage: Some("production".into()),
                events: true,
                entity_selector: None,
            });
            let mut check = serde_json::json!({"name": "error-rate", "metricSelector": "calc:service.errors.rate", "threshold": {"max": 5}});
            if let Some(ratio) = max_ratio {
                check["compareToBaseline"] = serde_json::json!({"maxRatio": ratio});
            }
            r.verification.dynatrace =
                Some(DynatraceVerification::parse(serde_json::json!({"checks": [check]})).unwrap());
        })
    }

    #[tokio::test]
    async fn dynatrace_measures_greens_release_by_digest_and_fails_it_over_the_threshold() {
        let (fake, _) = healthy_green();
        let dt = FakeDynatrace::default();
        dt.set_values(DIGEST_V2, &[7.5]);
        let err = verify_health(
            &fake,
            &fake,
            &fake,
            Some(&dt),
            input(with_dynatrace(None), Phase::Step),
            NOW,
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "VerificationFailed");
        assert!(
            err.to_string().contains("Dynatrace failed 1 poll(s) in a row (failureLimit 0): check error-rate: green's avg of calc:service.errors.rate is 7.5, above the maximum 5"),
            "{err}"
        );
        let q = &dt.queries()[0];
        assert_eq!(q.release.version, DIGEST_V2);
        assert_eq!(q.release.stage.as_deref(), Some("production"));
        assert_eq!(q.release.product.as_deref(), Some("orders"));
        assert_eq!(q.to_ms - q.from_ms, 300_000);
    }

    #[tokio::test]
    async fn dynatrace_compares_green_with_blues_release_by_blues_digest() {
        let (fake, _) = healthy_green();
        let dt = FakeDynatrace::default();
        dt.set_values(DIGEST_V2, &[3.0]);
        dt.set_values(DIGEST_V1, &[1.0]);
        let err = verify_health(
            &fake,
            &fake,
            &fake,
            Some(&dt),
            input(with_dynatrace(Some(1.5)), Phase::Step),
            NOW,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("3× blue's 1), above maxRatio 1.5"),
            "{err}"
        );
        let versions: Vec<String> = dt
            .queries()
            .iter()
            .map(|q| q.release.version.clone())
            .collect();
        assert_eq!(versions, [DIGEST_V2, DIGEST_V1]);
    }

    #[tokio::test]
    async fn a_dynatrace_that_does_not_answer_is_inconclusive_not_a_failure() {
        let (fake, _) = healthy_green();
        let dt = FakeDynatrace::default();
        dt.fail_next(Error::Throttled {
            operation: "GET /api/v2/metrics/query",
            resource: "metrics".into(),
            code: "429".into(),
            message: "too many requests".into(),
        });
        let out = verify_health(
            &fake,
            &fake,
            &fake,
            Some(&dt),
            input(with_dynatrace(None), Phase::Step),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(out.decision, Decision::Wait);
        assert!(
            out.reason.contains("Dynatrace: Dynatrace did not answer"),
            "{}",
            out.reason
        );
        assert_eq!(out.observation.dynatrace.inconclusive, 1);
    }

    #[tokio::test]
    async fn dynatrace_verification_without_a_configured_dynatrace_is_a_config_error() {
        let (fake, _) = healthy_green();
        let err = poll(&fake, input(with_dynatrace(None), Phase::Step))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains("DYNATRACE_API_URL"), "{err}");
    }

    #[tokio::test]
    async fn an_operators_abort_fails_any_phase_with_aborted() {
        let (fake, _) = healthy_green();
        let service = fake.service_now().arn;
        fake.send_command(&service, EXECUTION, Command::Abort, "alice")
            .await
            .unwrap();
        for phase in [Phase::Launch, Phase::Step, Phase::Retention] {
            let err = poll(&fake, input(fake.deployment(), phase))
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "Aborted", "{phase:?}");
            assert!(
                err.to_string()
                    .contains(&format!("alice aborted execution {EXECUTION}")),
                "{err}"
            );
        }
        fake.send_command(&service, EXECUTION, Command::Abort, "")
            .await
            .unwrap();
        let err = poll(&fake, input(fake.deployment(), Phase::Step))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(": an operator aborted execution"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_command_for_another_execution_is_ignored() {
        let (fake, _) = healthy_green();
        let service = fake.service_now().arn;
        fake.send_command(&service, "orders-9999", Command::Abort, "alice")
            .await
            .unwrap();
        let out = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap();
        assert_eq!(out.decision, Decision::Pass);
    }

    #[tokio::test]
    async fn promote_skips_the_steps_ends_retention_and_waits_for_green_at_launch() {
        let (fake, _) = healthy_green();
        let service = fake.service_now().arn;
        fake.send_command(&service, EXECUTION, Command::Promote, "bob")
            .await
            .unwrap();
        let d = deployment(|r| {
            r.timing.bake_seconds = 600;
            r.blue_retention_seconds = 600;
        });
        let mut canary = input(d.clone(), Phase::Step);
        canary.step.as_mut().unwrap().green_weight = 10;
        let step = poll(&fake, canary).await.unwrap();
        assert_eq!(step.decision, Decision::Promote);
        assert_eq!(step.reason, "bob asked to promote green");
        let full = poll(&fake, input(d.clone(), Phase::Step)).await.unwrap();
        assert_eq!(
            full.decision,
            Decision::Pass,
            "at 100 % a healthy green is done"
        );
        let retention = poll(&fake, input(d.clone(), Phase::Retention))
            .await
            .unwrap();
        assert_eq!(retention.decision, Decision::Pass);
        let launch = poll(&fake, input(d, Phase::Launch)).await.unwrap();
        assert_eq!(
            launch.decision,
            Decision::Pass,
            "launch ends when green is healthy, not sooner"
        );
        assert!(
            fake.command_left().is_some(),
            "the command stays for the steps"
        );
    }

    #[tokio::test]
    async fn an_approval_starts_only_for_a_healthy_green() {
        let (fake, _) = healthy_green();
        let out = poll(&fake, input(fake.deployment(), Phase::Approval))
            .await
            .unwrap();
        assert_eq!(out.decision, Decision::Wait);
        assert_eq!(out.reason, "waiting for an approval");

        fake.set_targets(TG_B, vec![target("10.0.3.30", "healthy", None)]);
        let err = poll(&fake, input(fake.deployment(), Phase::Approval))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "VerificationFailed");
        assert!(
            err.to_string().contains("when its approval is asked for"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_a_live_green_there_is_nothing_to_verify() {
        let fake = FakeAws::blue();
        let err = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(EXECUTION), "{err}");

        let (fake, id) = healthy_green();
        fake.update_task_set(&id, |t| t.status = "DRAINING".into());
        let err = poll(&fake, input(fake.deployment(), Phase::Launch))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("DRAINING"), "{err}");
    }
}
