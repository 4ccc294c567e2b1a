//! What an execution did over time: the state it was in, the listener weights and the
//! target health of both groups, sampled every few hundred milliseconds while it runs.

use std::time::Duration;

use anyhow::bail;
use aws_sdk_sfn::types::ExecutionStatus;

use crate::inspect::{self, Route, TargetCounts};
use crate::{Clients, sfn};

/// What to sample.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// The route whose weights are read.
    pub route: Route,
    /// The two target groups; [`Sample::weights`] and [`Sample::targets`] follow this order.
    pub target_groups: [String; 2],
    /// Time between two samples.
    pub interval: Duration,
    /// Bound on the whole execution; exceeded, [`Sampler::record`] fails.
    pub timeout: Duration,
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Since sampling started.
    pub elapsed: Duration,
    /// The state the execution was in; its status (`SUCCEEDED`, `FAILED`, …) once it has
    /// ended; `None` before the first state.
    pub state: Option<String>,
    /// Weight of each target group on the route.
    pub weights: [i32; 2],
    /// Target health of each target group.
    pub targets: [TargetCounts; 2],
}

impl Sample {
    /// The same state, weights and target health as `other` (time aside).
    pub fn same_as(&self, other: &Sample) -> bool {
        self.state == other.state && self.weights == other.weights && self.targets == other.targets
    }

    /// One readable line, with `blue` the index of blue's target group:
    /// `[  3.2s] ShiftTraffic        blue 50 / green 50   blue 2 healthy | green 2 healthy`.
    pub fn line(&self, blue: usize) -> String {
        let green = 1 - blue.min(1);
        let blue = 1 - green;
        format_line(
            self.elapsed,
            self.state.as_deref().unwrap_or("(starting)"),
            (self.weights[blue], self.weights[green]),
            (&self.targets[blue], &self.targets[green]),
        )
    }
}

/// `[elapsed] State  blue W / green W   blue <counts> | green <counts>`.
pub fn format_line(
    elapsed: Duration,
    state: &str,
    (blue_weight, green_weight): (i32, i32),
    (blue, green): (&TargetCounts, &TargetCounts),
) -> String {
    let weights = format!("blue {blue_weight:>3} / green {green_weight:>3}");
    format!(
        "[{:>6.1}s] {state:<22} {weights}   blue {blue} | green {green}",
        elapsed.as_secs_f64()
    )
}

/// The samples of one execution and how it ended.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub samples: Vec<Sample>,
    pub outcome: sfn::Outcome,
}

impl Timeline {
    /// The samples that differ from the one before (the first always counts).
    pub fn changes(&self) -> Vec<&Sample> {
        changes(&self.samples)
    }

    /// The highest weight target group `index` had at any sample.
    pub fn max_weight(&self, index: usize) -> i32 {
        self.samples
            .iter()
            .map(|s| s.weights[index.min(1)])
            .max()
            .unwrap_or(0)
    }

    /// Whether any sample saw `state`.
    pub fn saw_state(&self, state: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.state.as_deref() == Some(state))
    }
}

/// The samples that differ from the one before (the first always counts).
pub fn changes(samples: &[Sample]) -> Vec<&Sample> {
    let mut out: Vec<&Sample> = Vec::new();
    for s in samples {
        if out.last().is_none_or(|last| !last.same_as(s)) {
            out.push(s);
        }
    }
    out
}

impl Sampler {
    /// Takes one sample now.
    ///
    /// # Errors
    /// When the execution history, the route or a target group cannot be read.
    pub async fn sample(
        &self,
        clients: &Clients,
        execution_arn: &str,
        started: tokio::time::Instant,
    ) -> anyhow::Result<Sample> {
        let history = sfn::history(&clients.sfn, execution_arn).await?;
        let weights = inspect::weights(clients, &self.route).await?;
        let a = inspect::target_counts(clients, &self.target_groups[0]).await?;
        let b = inspect::target_counts(clients, &self.target_groups[1]).await?;
        Ok(Sample {
            elapsed: started.elapsed(),
            state: sfn::current_state(&history),
            weights: [
                inspect::weight_of(&weights, &self.target_groups[0]),
                inspect::weight_of(&weights, &self.target_groups[1]),
            ],
            targets: [a, b],
        })
    }

    /// Samples `execution_arn` every [`Sampler::interval`] until it ends, calling
    /// `on_sample` with each sample, then takes a last sample and answers the timeline.
    ///
    /// # Errors
    /// When the execution runs past [`Sampler::timeout`], or a sample cannot be taken.
    pub async fn record(
        &self,
        clients: &Clients,
        execution_arn: &str,
        mut on_sample: impl FnMut(&Sample),
    ) -> anyhow::Result<Timeline> {
        let started = tokio::time::Instant::now();
        let mut samples = Vec::new();
        loop {
            let described = sfn::describe(&clients.sfn, execution_arn).await?;
            let mut sample = self.sample(clients, execution_arn, started).await?;
            if described.status != ExecutionStatus::Running {
                sample.state = Some(described.status.as_str().to_string());
            }
            on_sample(&sample);
            samples.push(sample);
            if described.status != ExecutionStatus::Running {
                let outcome = sfn::outcome(&clients.sfn, described).await?;
                return Ok(Timeline { samples, outcome });
            }
            if started.elapsed() >= self.timeout {
                bail!(
                    "execution {execution_arn} is still running after {:?}; states so far: {}",
                    self.timeout,
                    sfn::states_entered(&sfn::history(&clients.sfn, execution_arn).await?)
                        .join(" → ")
                );
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn counts(initial: usize, healthy: usize) -> TargetCounts {
        TargetCounts {
            initial,
            healthy,
            ..Default::default()
        }
    }

    fn sample(ms: u64, state: &str, weights: [i32; 2]) -> Sample {
        Sample {
            elapsed: Duration::from_millis(ms),
            state: Some(state.into()),
            weights,
            targets: [counts(0, 2), counts(0, 2)],
        }
    }

    #[test]
    fn a_line_shows_state_weights_and_health_from_blues_point_of_view() {
        let s = Sample {
            elapsed: Duration::from_millis(3240),
            state: Some("ShiftTraffic".into()),
            weights: [50, 50],
            targets: [counts(0, 2), counts(1, 1)],
        };
        assert_eq!(
            s.line(0),
            "[   3.2s] ShiftTraffic           blue  50 / green  50   blue 2 healthy | green 1 initial, 1 healthy"
        );
        let s = Sample {
            weights: [0, 100],
            ..s
        };
        assert!(s.line(1).contains("blue 100 / green   0"), "{}", s.line(1));
        assert!(
            s.line(1)
                .contains("blue 1 initial, 1 healthy | green 2 healthy"),
            "{}",
            s.line(1)
        );
    }

    #[test]
    fn only_changes_are_kept_and_time_alone_is_no_change() {
        let samples = vec![
            sample(0, "Validate", [100, 0]),
            sample(250, "Validate", [100, 0]),
            sample(500, "ShiftTraffic", [100, 0]),
            sample(750, "ShiftTraffic", [50, 50]),
            sample(1000, "ShiftTraffic", [50, 50]),
        ];
        let kept: Vec<u128> = changes(&samples)
            .iter()
            .map(|s| s.elapsed.as_millis())
            .collect();
        assert_eq!(kept, [0, 500, 750]);
    }
}
