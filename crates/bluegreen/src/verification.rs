//! What green must satisfy while it is observed, and the verdict of each poll.
//!
//! Four sources, combined: **ECS** (stopped tasks, running against desired) and **target
//! health** always; **CloudWatch alarms** and **Dynatrace** metrics of green's release when
//! the deployment configures them. At every poll each source that applies says
//! [`Outcome::Pass`], [`Outcome::Fail`] or [`Outcome::Inconclusive`] (still coming up, no
//! data, `INSUFFICIENT_DATA`).
//!
//! [`Observation`] counts, per source, the failed and the inconclusive polls in a row since
//! that source last passed; the state machine carries it from one poll to the next, so the
//! function stays stateless. [`judge`] turns a poll's results into a [`Verdict`]:
//! - a source that failed more times in a row than its `failureLimit`, or was inconclusive
//!   more times in a row than its `inconclusiveLimit`, fails verification;
//! - every source passing, once the phase's bake polls are done, passes it;
//! - anything else waits for the next poll, up to `timing.maxHealthPolls` polls beyond the
//!   bake, after which verification fails naming what did not pass.
//!
//! The poll bound makes every phase end, whatever the sources say.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod dynatrace;

pub use dynatrace::DynatraceVerification;

/// Default inconclusive polls in a row tolerated of CloudWatch alarms and Dynatrace.
pub const DEFAULT_INCONCLUSIVE_LIMIT: u32 = 3;
/// Highest failure or inconclusive limit accepted.
pub const MAX_LIMIT: u32 = 100;
/// Most alarms named in one deployment (one `DescribeAlarms` call).
pub const MAX_ALARM_NAMES: usize = 100;

/// The verification sources of a deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Verification {
    /// Green's tasks, as ECS reports them. Always on.
    pub ecs: EcsVerification,
    /// Green's targets in its target group. Always on.
    pub target_health: TargetHealthVerification,
    /// CloudWatch alarms that must not be in `ALARM`.
    pub cloud_watch_alarms: Option<AlarmVerification>,
    /// Dynatrace metrics of green's release.
    pub dynatrace: Option<DynatraceVerification>,
}

/// Thresholds of the ECS source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EcsVerification {
    /// Stopped tasks of green tolerated (a crash, a failed health check, an exit). 0–100.
    pub max_stopped_tasks: u32,
    /// Failed polls in a row tolerated. 0–100.
    pub failure_limit: u32,
}

/// Thresholds of the target health source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TargetHealthVerification {
    /// `unhealthy` or `unavailable` targets of green tolerated. 0–100.
    pub max_unhealthy_targets: u32,
    /// Failed polls in a row tolerated. 0–100.
    pub failure_limit: u32,
}

/// CloudWatch alarms to watch: by name, by name prefix, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlarmVerification {
    /// Alarms by exact name (metric or composite).
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// Every alarm whose name starts with this.
    #[serde(default)]
    pub alarm_name_prefix: Option<String>,
    /// Polls in a row with an alarm in `ALARM` tolerated. 0–100, default 0.
    #[serde(default)]
    pub failure_limit: u32,
    /// Polls in a row with an alarm in `INSUFFICIENT_DATA` tolerated. 0–100, default 3.
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
}

fn default_inconclusive_limit() -> u32 {
    DEFAULT_INCONCLUSIVE_LIMIT
}

impl Verification {
    /// Checks every threshold and limit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn check(&self) -> Result<()> {
        let limit = |field: &str, value: u32| {
            if value > MAX_LIMIT {
                Err(Error::InvalidInput(format!(
                    "verification.{field} must be 0 to {MAX_LIMIT}, got {value}"
                )))
            } else {
                Ok(())
            }
        };
        limit("ecs.maxStoppedTasks", self.ecs.max_stopped_tasks)?;
        limit("ecs.failureLimit", self.ecs.failure_limit)?;
        limit(
            "targetHealth.maxUnhealthyTargets",
            self.target_health.max_unhealthy_targets,
        )?;
        limit(
            "targetHealth.failureLimit",
            self.target_health.failure_limit,
        )?;
        if let Some(alarms) = &self.cloud_watch_alarms {
            limit("cloudWatchAlarms.failureLimit", alarms.failure_limit)?;
            limit(
                "cloudWatchAlarms.inconclusiveLimit",
                alarms.inconclusive_limit,
            )?;
            if alarms.alarm_names.is_empty() && alarms.alarm_name_prefix.is_none() {
                return Err(Error::InvalidInput(
                    "verification.cloudWatchAlarms needs alarmNames, alarmNamePrefix or both"
                        .into(),
                ));
            }
            if alarms.alarm_names.len() > MAX_ALARM_NAMES {
                return Err(Error::InvalidInput(format!(
                    "verification.cloudWatchAlarms.alarmNames may name at most {MAX_ALARM_NAMES} alarms, got {}",
                    alarms.alarm_names.len()
                )));
            }
            let names = alarms.alarm_names.iter().map(|n| ("alarmNames", n));
            for (field, name) in names.chain(
                alarms
                    .alarm_name_prefix
                    .iter()
                    .map(|p| ("alarmNamePrefix", p)),
            ) {
                if name.trim().is_empty() || name.len() > 255 || name.chars().any(char::is_control)
                {
                    return Err(Error::InvalidInput(format!(
                        "verification.cloudWatchAlarms.{field} must be 1 to 255 printable characters, got {name:?}"
                    )));
                }
            }
        }
        if let Some(dt) = &self.dynatrace {
            dt.check()?;
        }
        Ok(())
    }

    /// The failure limit and, where inconclusive polls are bounded on their own, the
    /// inconclusive limit of `source`.
    fn limits(&self, source: Source) -> (u32, Option<u32>) {
        match source {
            Source::Ecs => (self.ecs.failure_limit, None),
            Source::TargetHealth => (self.target_health.failure_limit, None),
            Source::CloudWatchAlarms => self
                .cloud_watch_alarms
                .as_ref()
                .map_or((0, None), |a| (a.failure_limit, Some(a.inconclusive_limit))),
            Source::Dynatrace => self
                .dynatrace
                .as_ref()
                .map_or((0, None), |d| (d.failure_limit, Some(d.inconclusive_limit))),
        }
    }
}

/// A verification source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    Ecs,
    TargetHealth,
    CloudWatchAlarms,
    Dynatrace,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Ecs => "ECS",
            Source::TargetHealth => "target health",
            Source::CloudWatchAlarms => "CloudWatch alarms",
            Source::Dynatrace => "Dynatrace",
        })
    }
}

/// What a source, a check or a poll says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase", deny_unknown_fields)]
pub enum Outcome {
    Pass,
    Fail { reason: String },
    Inconclusive { reason: String },
}

impl Outcome {
    /// Why it did not pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail { reason } | Outcome::Inconclusive { reason } => Some(reason),
        }
    }

    /// Several outcomes as one: any failure fails (naming every failure), else anything
    /// inconclusive is inconclusive (naming each), else it passes.
    pub fn combine(outcomes: &[Outcome]) -> Outcome {
        let reasons = |pick: fn(&Outcome) -> bool| {
            outcomes
                .iter()
                .filter(|o| pick(o))
                .filter_map(Outcome::reason)
                .collect::<Vec<_>>()
                .join("; ")
        };
        if outcomes.iter().any(|o| matches!(o, Outcome::Fail { .. })) {
            Outcome::Fail {
                reason: reasons(|o| matches!(o, Outcome::Fail { .. })),
            }
        } else if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Inconclusive { .. }))
        {
            Outcome::Inconclusive {
                reason: reasons(|o| matches!(o, Outcome::Inconclusive { .. })),
            }
        } else {
            Outcome::Pass
        }
    }
}

/// One source's outcome at one poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceResult {
    pub source: Source,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Polls in a row a source failed, or was inconclusive, since it last passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Counters {
    pub failures: u32,
    pub inconclusive: u32,
}

/// What the polls of a phase so far left, carried by the state machine to the next poll.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Observation {
    /// Polls of this phase so far.
    pub polls: u32,
    pub ecs: Counters,
    pub target_health: Counters,
    pub cloud_watch_alarms: Counters,
    pub dynatrace: Counters,
}

impl Observation {
    fn counters(&mut self, source: Source) -> &mut Counters {
        match source {
            Source::Ecs => &mut self.ecs,
            Source::TargetHealth => &mut self.target_health,
            Source::CloudWatchAlarms => &mut self.cloud_watch_alarms,
            Source::Dynatrace => &mut self.dynatrace,
        }
    }
}

/// What a poll decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Verdict {
    /// Poll again.
    Wait { reason: String },
    /// Green passed this phase.
    Pass,
    /// Green failed: roll back.
    Fail { reason: String },
}

/// A poll's verdict and the observation to carry to the next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub observation: Observation,
}

/// How many polls a phase takes: at least `bake_polls` (its bake), at most
/// `bake_polls - 1 + max_polls` (`timing.maxHealthPolls` beyond it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBounds {
    pub bake_polls: u32,
    pub max_polls: u32,
}

impl PollBounds {
    /// The poll after which the phase fails unless it passed.
    pub fn last(&self) -> u32 {
        self.bake_polls.max(1).saturating_add(self.max_polls.max(1)) - 1
    }
}

/// Judges one poll's `results` given what the phase's earlier polls left.
pub fn judge(
    spec: &Verification,
    results: &[SourceResult],
    before: &Observation,
    bounds: PollBounds,
) -> Judgement {
    let mut next = before.clone();
    next.polls = next.polls.saturating_add(1);
    let mut over_limit = Vec::new();
    for r in results {
        let (failure_limit, inconclusive_limit) = spec.limits(r.source);
        let counters = next.counters(r.source);
        match &r.outcome {
            Outcome::Pass => *counters = Counters::default(),
            Outcome::Fail { reason } => {
                counters.failures = counters.failures.saturating_add(1);
                if counters.failures > failure_limit {
                    over_limit.push(format!(
                        "{} failed {} poll(s) in a row (failureLimit {failure_limit}): {reason}",
                        r.source, counters.failures
                    ));
                }
            }
            Outcome::Inconclusive { reason } => {
                counters.inconclusive = counters.inconclusive.saturating_add(1);
                if let Some(limit) = inconclusive_limit
                    && counters.inconclusive > limit
                {
                    over_limit.push(format!(
                        "{} was inconclusive {} poll(s) in a row (inconclusiveLimit {limit}): {reason}",
                        r.source, counters.inconclusive
                    ));
                }
            }
        }
    }
    let verdict = if !over_limit.is_empty() {
        Verdict::Fail {
            reason: over_limit.join("; "),
        }
    } else {
        let outcomes: Vec<Outcome> = results.iter().map(|r| r.outcome.clone()).collect();
        let pending =
            |r: &SourceResult| r.outcome.reason().map(|why| format!("{}: {why}", r.source));
        let not_passing: Vec<String> = results.iter().filter_map(pending).collect();
        let all_pass = Outcome::combine(&outcomes) == Outcome::Pass;
        if all_pass && next.polls >= bounds.bake_polls {
            Verdict::Pass
        } else if next.polls >= bounds.last() {
            Verdict::Fail {
                reason: format!(
                    "green did not pass verification within {} poll(s) ({} to bake, {} more allowed): {}",
                    next.polls,
                    bounds.bake_polls,
                    bounds.max_polls,
                    if not_passing.is_empty() {
                        "every source passed only at the last poll".to_string()
                    } else {
                        not_passing.join("; ")
                    }
                ),
            }
        } else if not_passing.is_empty() {
            Verdict::Wait {
                reason: format!(
                    "every source passes; baking, poll {} of {}",
                    next.polls, bounds.bake_polls
                ),
            }
        } else {
            Verdict::Wait {
                reason: not_passing.join("; "),
            }
        }
    };
    Judgement {
        verdict,
        observation: next,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pass(source: Source) -> SourceResult {
        SourceResult {
            source,
            outcome: Outcome::Pass,
        }
    }

    fn fail(source: Source, why: &str) -> SourceResult {
        SourceResult {
            source,
            outcome: Outcome::Fail { reason: why.into() },
        }
    }

    fn unsure(source: Source, why: &str) -> SourceResult {
        SourceResult {
            source,
            outcome: Outcome::Inconclusive { reason: why.into() },
        }
    }

    fn with_alarms(failure_limit: u32, inconclusive_limit: u32) -> Verification {
        Verification {
            cloud_watch_alarms: Some(AlarmVerification {
                alarm_names: vec!["orders-5xx".into()],
                alarm_name_prefix: None,
                failure_limit,
                inconclusive_limit,
            }),
            ..Verification::default()
        }
    }

    const BAKE_3: PollBounds = PollBounds {
        bake_polls: 3,
        max_polls: 5,
    };

    /// Judges `polls` in order from a fresh observation; answers every verdict.
    fn run(spec: &Verification, polls: &[Vec<SourceResult>], bounds: PollBounds) -> Vec<Verdict> {
        let mut observation = Observation::default();
        polls
            .iter()
            .map(|results| {
                let j = judge(spec, results, &observation, bounds);
                observation = j.observation;
                j.verdict
            })
            .collect()
    }

    #[test]
    fn a_phase_passes_only_once_its_bake_polls_are_done_and_every_source_passes() {
        let healthy = vec![pass(Source::Ecs), pass(Source::TargetHealth)];
        let verdicts = run(
            &Verification::default(),
            &[healthy.clone(), healthy.clone(), healthy],
            BAKE_3,
        );
        assert!(matches!(&verdicts[0], Verdict::Wait { reason } if reason.contains("poll 1 of 3")));
        assert!(matches!(verdicts[1], Verdict::Wait { .. }));
        assert_eq!(verdicts[2], Verdict::Pass);
    }

    #[test]
    fn with_the_default_limits_the_first_failure_fails_naming_source_and_reason() {
        let verdicts = run(
            &with_alarms(0, 3),
            &[vec![
                pass(Source::Ecs),
                fail(Source::CloudWatchAlarms, "orders-5xx is in ALARM"),
            ]],
            BAKE_3,
        );
        assert_eq!(
            verdicts[0],
            Verdict::Fail {
                reason: "CloudWatch alarms failed 1 poll(s) in a row (failureLimit 0): orders-5xx is in ALARM".into()
            }
        );
    }

    #[test]
    fn failures_within_the_limit_wait_and_a_pass_resets_that_sources_count() {
        let spec = with_alarms(1, 3);
        let alarm = || fail(Source::CloudWatchAlarms, "in ALARM");
        let ok = || pass(Source::CloudWatchAlarms);
        let verdicts = run(
            &spec,
            &[vec![alarm()], vec![ok()], vec![alarm()], vec![ok()]],
            BAKE_3,
        );
        assert!(matches!(verdicts[0], Verdict::Wait { .. }), "{verdicts:?}");
        assert!(matches!(verdicts[2], Verdict::Wait { .. }), "{verdicts:?}");
        let two_in_a_row = run(&spec, &[vec![alarm()], vec![alarm()]], BAKE_3);
        assert!(
            matches!(&two_in_a_row[1], Verdict::Fail { reason } if reason.contains("failed 2 poll(s) in a row (failureLimit 1)")),
            "{two_in_a_row:?}"
        );
    }

    #[test]
    fn inconclusive_polls_are_retried_up_to_their_limit_then_fail() {
        let spec = with_alarms(0, 2);
        let no_data = || unsure(Source::CloudWatchAlarms, "orders-5xx has INSUFFICIENT_DATA");
        let verdicts = run(
            &spec,
            &[vec![no_data()], vec![no_data()], vec![no_data()]],
            BAKE_3,
        );
        assert!(
            matches!(&verdicts[0], Verdict::Wait { reason } if reason.contains("INSUFFICIENT_DATA"))
        );
        assert!(matches!(verdicts[1], Verdict::Wait { .. }));
        assert!(
            matches!(&verdicts[2], Verdict::Fail { reason } if reason.contains("inconclusive 3 poll(s) in a row (inconclusiveLimit 2)")),
            "{verdicts:?}"
        );
    }

    #[test]
    fn health_that_never_settles_fails_at_the_poll_bound_naming_what_did_not_pass() {
        let coming_up = || vec![unsure(Source::TargetHealth, "1 of 2 healthy")];
        let bounds = PollBounds {
            bake_polls: 1,
            max_polls: 4,
        };
        let verdicts = run(
            &Verification::default(),
            &[coming_up(), coming_up(), coming_up(), coming_up()],
            bounds,
        );
        assert!(
            verdicts[..3]
                .iter()
                .all(|v| matches!(v, Verdict::Wait { .. }))
        );
        assert!(
            matches!(&verdicts[3], Verdict::Fail { reason } if reason.contains("within 4 poll(s)") && reason.contains("target health: 1 of 2 healthy")),
            "{verdicts:?}"
        );
    }

    #[test]
    fn sources_alternating_out_of_phase_still_end_at_the_poll_bound() {
        let spec = with_alarms(1, 3);
        let a = vec![fail(Source::CloudWatchAlarms, "x"), pass(Source::Ecs)];
        let b = vec![pass(Source::CloudWatchAlarms), fail(Source::Ecs, "y")];
        let mut spec_ecs = spec.clone();
        spec_ecs.ecs.failure_limit = 1;
        let polls: Vec<_> = (0..20)
            .map(|i| if i % 2 == 0 { a.clone() } else { b.clone() })
            .collect();
        let verdicts = run(&spec_ecs, &polls, BAKE_3);
        let first_fail = verdicts
            .iter()
            .position(|v| matches!(v, Verdict::Fail { .. }));
        assert_eq!(first_fail, Some(BAKE_3.last() as usize - 1), "{verdicts:?}");
    }

    #[test]
    fn observations_round_trip_through_the_state_machine_and_start_empty() {
        let j = judge(
            &with_alarms(0, 3),
            &[unsure(Source::CloudWatchAlarms, "no data")],
            &Observation::default(),
            BAKE_3,
        );
        let v = serde_json::to_value(&j.observation).unwrap();
        assert_eq!(v["polls"], json!(1));
        assert_eq!(
            v["cloudWatchAlarms"],
            json!({"failures": 0, "inconclusive": 1})
        );
        let back: Observation = crate::lambda::parse_payload(v).unwrap();
        assert_eq!(back, j.observation);
        assert_eq!(
            crate::lambda::parse_payload::<Observation>(json!({})).unwrap(),
            Observation::default()
        );
    }

    #[test]
    fn bad_thresholds_are_rejected_by_name() {
        let mut v = Verification::default();
        v.ecs.failure_limit = 101;
        assert!(
            v.check()
                .unwrap_err()
                .to_string()
                .contains("verification.ecs.failureLimit")
        );
        let mut v = with_alarms(0, 3);
        if let Some(a) = v.cloud_watch_alarms.as_mut() {
            a.alarm_names.clear();
        }
        assert!(
            v.check()
                .unwrap_err()
                .to_string()
                .contains("needs alarmNames")
        );
    }
}
