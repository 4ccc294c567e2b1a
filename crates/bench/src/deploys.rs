//! Whole deploys on the local stack: per strategy, the state transitions, Lambda invocations
//! and AWS calls one deploy takes, its wall time and the time spent in configured waits; and
//! N deploys of different services at once.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use bluegreen::model::{Strategy, Timing, TrafficStep};
use local_stack::env::{EnvSpec, Environment};
use local_stack::gateway::Gateway;
use local_stack::sfn::{self, Outcome};
use local_stack::timeline::{Sampler, Timeline};
use local_stack::{Clients, env};

const EXECUTION_TIMEOUT: Duration = Duration::from_secs(600);

/// The timing of every deploy here: poll every second, bake one second.
pub fn fast_timing() -> Timing {
    Timing {
        poll_interval_seconds: 1,
        max_health_polls: 30,
        bake_seconds: 1,
        drain_delay_seconds: None,
    }
}

/// The strategies measured, by name.
pub fn strategies() -> Vec<(&'static str, Strategy)> {
    vec![
        ("allAtOnce", Strategy::AllAtOnce),
        (
            "canary 10 %",
            Strategy::Canary {
                percent: 10,
                bake_seconds: Some(3),
            },
        ),
        (
            "linear 25 %",
            Strategy::Linear {
                step_percent: 25,
                interval_seconds: Some(2),
            },
        ),
        (
            "steps 5/25/50/100",
            Strategy::Steps {
                steps: [5, 25, 50, 100]
                    .into_iter()
                    .map(|w| TrafficStep::to(w).baking(2))
                    .collect(),
            },
        ),
    ]
}

/// What one deploy took.
#[derive(Debug, Clone)]
pub struct DeployFigures {
    pub status: ExecutionStatus,
    pub wall: Duration,
    /// Time in `Wait` states (the configured bakes, drain delays and poll intervals).
    pub waits: Duration,
    pub transitions: usize,
    pub invocations: usize,
    /// Summed duration of the Lambda invocations, as Step Functions saw them.
    pub lambda_time: Duration,
    /// AWS calls by the functions (Lambda invokes not counted).
    pub aws_calls: u64,
}

impl DeployFigures {
    pub fn overhead(&self) -> Duration {
        self.wall.saturating_sub(self.waits)
    }
}

/// An environment with its own deploy state machine.
pub struct Target {
    pub env: Environment,
    pub state_machine_arn: String,
}

pub async fn target(clients: &Clients, stem: &str) -> anyhow::Result<Target> {
    let spec = EnvSpec::new(format!("{stem}-{}", env::random_suffix(5)));
    let env = env::build(clients, &spec)
        .await
        .with_context(|| format!("building environment {stem}"))?;
    let state_machine_arn =
        sfn::create_deploy_state_machine(&clients.sfn, &env.state_machine_name()).await?;
    Ok(Target {
        env,
        state_machine_arn,
    })
}

fn seconds_between(a: &HistoryEvent, b: &HistoryEvent) -> Duration {
    let (a, b) = (a.timestamp(), b.timestamp());
    let ms = (b.secs() * 1000 + i64::from(b.subsec_nanos() / 1_000_000))
        - (a.secs() * 1000 + i64::from(a.subsec_nanos() / 1_000_000));
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Counts and times from an execution's history.
fn from_history(history: &[HistoryEvent]) -> (usize, usize, Duration, Duration) {
    use HistoryEventType as T;
    let transitions = history
        .iter()
        .filter(|e| e.r#type().as_str().ends_with("StateEntered"))
        .count();
    let mut invocations = 0;
    let mut lambda_time = Duration::ZERO;
    let mut waits = Duration::ZERO;
    let mut scheduled: Option<&HistoryEvent> = None;
    let mut waiting: Option<&HistoryEvent> = None;
    for e in history {
        match e.r#type() {
            T::TaskScheduled | T::LambdaFunctionScheduled => {
                invocations += 1;
                scheduled = Some(e);
            }
            T::TaskSucceeded
            | T::TaskFailed
            | T::TaskTimedOut
            | T::LambdaFunctionSucceeded
            | T::LambdaFunctionFailed
            | T::LambdaFunctionTimedOut => {
                if let Some(s) = scheduled.take() {
                    lambda_time += seconds_between(s, e);
                }
            }
            T::WaitStateEntered => waiting = Some(e),
            T::WaitStateExited => {
                if let Some(w) = waiting.take() {
                    waits += seconds_between(w, e);
                }
            }
            _ => {}
        }
    }
    (transitions, invocations, lambda_time, waits)
}

/// Deploys v2 to `t` with `strategy`; with `sample`, records the timeline too.
pub async fn deploy(
    clients: &Clients,
    gateway: &Gateway,
    t: &Target,
    strategy: Strategy,
    sample: bool,
) -> anyhow::Result<(DeployFigures, Option<Timeline>)> {
    let env = &t.env;
    let request = env.deploy_request(env.tagged_image("v2"), strategy, fast_timing());
    let name = sfn::execution_name(&[&env.prefix, "v2"]);
    let started = Instant::now();
    let arn = sfn::start(&clients.sfn, &t.state_machine_arn, &name, &request).await?;
    let (outcome, timeline): (Outcome, Option<Timeline>) = if sample {
        let sampler = Sampler {
            route: env.route(),
            target_groups: env.target_group_arns.clone(),
            interval: Duration::from_millis(250),
            timeout: EXECUTION_TIMEOUT,
        };
        let timeline = sampler.record(clients, &arn, |_| {}).await?;
        (timeline.outcome.clone(), Some(timeline))
    } else {
        let o = sfn::wait(
            &clients.sfn,
            &arn,
            Duration::from_millis(250),
            EXECUTION_TIMEOUT,
        )
        .await?;
        (o, None)
    };
    let wall = started.elapsed();
    let (transitions, invocations, lambda_time, waits) = from_history(&outcome.history);
    let aws_calls = gateway
        .calls(Some(&env.prefix))
        .await?
        .iter()
        .filter(|c| c.caller != "-" && c.action != "lambda:InvokeFunction")
        .map(|c| c.count)
        .sum();
    Ok((
        DeployFigures {
            status: outcome.status,
            wall,
            waits,
            transitions,
            invocations,
            lambda_time,
            aws_calls,
        },
        timeline,
    ))
}

/// `n` deploys of different services started at once; each one's figures.
pub async fn concurrent(
    clients: &Clients,
    gateway: &Gateway,
    n: usize,
) -> anyhow::Result<Vec<DeployFigures>> {
    let mut targets = Vec::new();
    for i in 0..n {
        targets.push(target(clients, &format!("n{n}x{i}")).await?);
    }
    let mut running = tokio::task::JoinSet::new();
    for t in targets {
        let (clients, gateway) = (clients.clone(), gateway.clone());
        running.spawn(async move {
            deploy(&clients, &gateway, &t, Strategy::AllAtOnce, false)
                .await
                .map(|(f, _)| f)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = running.join_next().await {
        out.push(done.context("a deploy task panicked")??);
    }
    if out.len() != n {
        bail!("{} of {n} deploys reported", out.len());
    }
    Ok(out)
}
