//! Harness of the end-to-end tests: the real state machine, executed by moto, calling the real
//! Lambda binaries through the gateway (`docs/local-stack.md`). `make e2e` starts the stack.
//!
//! Tests run in parallel in one process against one moto, so:
//! - every test builds its own [`TestEnv`] (names carry a unique suffix; never reset moto);
//! - faults are keyed on an image digest, which is unique per environment and tag, so a
//!   fault never touches another test; never clear faults while other tests run;
//! - the gateway's `healthyAfterSeconds` is global: [`Stack::connect`] sets it to
//!   [`HEALTHY_AFTER_SECONDS`] and no test changes it.
//!
//! Each `#[tokio::test]` has its own runtime, and SDK clients must not outlive theirs: build
//! the [`Stack`] inside the test.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_ecs::types::{TaskDefinition, TaskDefinitionStatus};
use aws_sdk_elasticloadbalancingv2::types::{Action, Rule};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use bluegreen::model::{DeployRequest, Timing};
use local_stack::env::{APP_CONTAINER, EnvSpec, Environment};
use local_stack::gateway::Gateway;
use local_stack::inspect::{self, Weight};
use local_stack::lambda::Functions;
use local_stack::timeline::{Sampler, Timeline};
use local_stack::{Clients, Endpoint, sfn};

/// Seconds a new simulated target stays `initial`.
pub const HEALTHY_AFTER_SECONDS: u32 = 1;
/// Bound on one execution; generous, nothing asserts on wall-clock time.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection to the running local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub endpoint: Endpoint,
    pub clients: Clients,
    pub gateway: Gateway,
    /// The deploy functions, invoked directly.
    pub functions: Functions,
}

impl Stack {
    /// Connects to the stack at `BG_GATEWAY_PORT`, waits until the gateway reaches moto and
    /// the Lambda host, turns on moto's state machine execution and sets the simulation's
    /// health delay.
    ///
    /// # Errors
    /// When the stack is not up (start it with `make local-up`, or run `make e2e`).
    pub async fn connect() -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_env()?;
        let gateway = Gateway::new(&endpoint)?;
        gateway.wait_ready(Duration::from_secs(30)).await?;
        gateway.enable_step_functions_execution().await?;
        gateway.set_healthy_after(HEALTHY_AFTER_SECONDS).await?;
        let clients = endpoint.clients().await;
        local_stack::dynatrace::grant_function_access(&clients, &gateway).await?;
        sfn::create_stack_state_machines(&clients.sfn).await?;
        let functions = Functions::new(&endpoint)?;
        Ok(Stack {
            endpoint,
            clients,
            gateway,
            functions,
        })
    }

    /// Builds an environment for test `test` from `spec` (its suffix is replaced by a unique
    /// one) and creates its deploy state machine from the workspace's ASL.
    ///
    /// # Errors
    /// When building the environment or the state machine fails.
    pub async fn environment(&self, test: &str, mut spec: EnvSpec) -> anyhow::Result<TestEnv> {
        spec.suffix = unique_suffix(test);
        let env = local_stack::env::build(&self.clients, &spec)
            .await
            .with_context(|| format!("building the environment of {test}"))?;
        let state_machine_arn =
            sfn::create_deploy_state_machine(&self.clients.sfn, &env.state_machine_name())
                .await
                .with_context(|| format!("creating the state machine of {test}"))?;
        Ok(TestEnv {
            env,
            state_machine_arn,
        })
    }
}

/// A suffix unique to this run of `test`: up to 6 characters of its name and 5 random ones.
pub fn unique_suffix(test: &str) -> String {
    let stem: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(6)
        .collect();
    let random = local_stack::env::random_suffix(5);
    if stem.is_empty() {
        random
    } else {
        format!("{stem}-{random}")
    }
}

/// Timing for tests: poll every second, bake one second, drain after the (1 s)
/// deregistration delay.
pub fn fast_timing() -> Timing {
    Timing {
        poll_interval_seconds: 1,
        max_health_polls: 15,
        bake_seconds: 1,
        drain_delay_seconds: None,
    }
}

/// One test's environment and its deploy state machine.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub env: Environment,
    pub state_machine_arn: String,
}

impl TestEnv {
    /// The service's task sets once none is `DRAINING` any more (a removed task set is listed
    /// so until its tasks stopped, as in ECS).
    ///
    /// # Errors
    /// When one still drains after a minute, or the service cannot be read.
    pub async fn task_sets_once_drained(
        &self,
        stack: &Stack,
    ) -> anyhow::Result<Vec<inspect::TaskSetView>> {
        inspect::task_sets_once_drained(
            &stack.clients,
            &self.env.cluster_name,
            &self.env.service_name,
            Duration::from_secs(60),
        )
        .await
    }

    /// Starts execution `name` of `request` and samples it every 250 ms until it ends.
    ///
    /// # Errors
    /// When the execution cannot be started, runs past [`EXECUTION_TIMEOUT`], or cannot be
    /// observed.
    pub async fn deploy(
        &self,
        stack: &Stack,
        name: &str,
        request: &DeployRequest,
    ) -> anyhow::Result<Timeline> {
        let execution = self.start(stack, name, request).await?;
        self.sampler()
            .record(&stack.clients, &execution, |_| {})
            .await
    }

    /// Starts execution `name` (prefixed with the environment's) of any input, also one
    /// that is not a valid [`DeployRequest`], and answers its ARN.
    ///
    /// # Errors
    /// When Step Functions refuses the start.
    pub async fn start(
        &self,
        stack: &Stack,
        name: &str,
        input: &impl serde::Serialize,
    ) -> anyhow::Result<String> {
        let name = sfn::execution_name(&[&self.env.prefix, name]);
        sfn::start(&stack.clients.sfn, &self.state_machine_arn, &name, input).await
    }

    /// Waits until execution `execution_arn` ends, up to [`EXECUTION_TIMEOUT`].
    ///
    /// # Errors
    /// When it runs longer or cannot be read.
    pub async fn wait(&self, stack: &Stack, execution_arn: &str) -> anyhow::Result<sfn::Outcome> {
        sfn::wait(
            &stack.clients.sfn,
            execution_arn,
            Duration::from_millis(500),
            EXECUTION_TIMEOUT,
        )
        .await
    }

    /// A sampler of this environment's route and target groups.
    pub fn sampler(&self) -> Sampler {
        Sampler {
            route: self.env.route(),
            target_groups: self.env.target_group_arns.clone(),
            interval: Duration::from_millis(250),
            timeout: EXECUTION_TIMEOUT,
        }
    }
}

/// What an operator sees of an environment, without what changes by itself over time
/// (target health, task counts): the service's task sets, the family's revisions by status and
/// the listener's routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Sorted by id.
    pub task_sets: Vec<TaskSetSnapshot>,
    /// ARNs of the family's `ACTIVE` revisions, oldest first.
    pub active_revisions: Vec<String>,
    /// ARNs of its `INACTIVE` (deregistered) revisions, oldest first.
    pub inactive_revisions: Vec<String>,
    /// Weights of the route deploys shift.
    pub route_weights: Vec<Weight>,
    /// The listener's default actions, complete.
    pub default_actions: Vec<Action>,
    /// The listener rule, complete, when the environment has one.
    pub rule: Option<Rule>,
}

/// One task set as [`Snapshot`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetSnapshot {
    pub id: String,
    pub status: String,
    pub external_id: Option<String>,
    pub task_definition_arn: String,
    /// The app container's image.
    pub app_image: String,
    pub target_group_arns: Vec<String>,
    pub scale_percent: Option<f64>,
}

impl Snapshot {
    /// The task sets that are not `DRAINING` (removed ones are, until their tasks stopped).
    pub fn live_task_sets(&self) -> Vec<&TaskSetSnapshot> {
        self.task_sets
            .iter()
            .filter(|t| t.status != "DRAINING")
            .collect()
    }

    /// Reads the snapshot of `env` now.
    ///
    /// # Errors
    /// When something cannot be read.
    pub async fn take(clients: &Clients, env: &Environment) -> anyhow::Result<Self> {
        let mut task_sets = Vec::new();
        for t in inspect::task_sets(clients, &env.cluster_name, &env.service_name).await? {
            let app = inspect::container(clients, &t.task_definition_arn, APP_CONTAINER).await?;
            task_sets.push(TaskSetSnapshot {
                id: t.id,
                status: t.status,
                external_id: t.external_id.filter(|x| !x.is_empty()),
                task_definition_arn: t.task_definition_arn,
                app_image: app.image().unwrap_or_default().to_string(),
                target_group_arns: t.target_group_arns,
                scale_percent: t.scale_percent,
            });
        }
        task_sets.sort_by(|a, b| a.id.cmp(&b.id));
        let active_revisions = inspect::task_definition_arns(
            clients,
            &env.task_definition_family,
            TaskDefinitionStatus::Active,
        )
        .await?;
        let inactive_revisions = inspect::task_definition_arns(
            clients,
            &env.task_definition_family,
            TaskDefinitionStatus::Inactive,
        )
        .await?;
        let route_weights = inspect::weights(clients, &env.route()).await?;
        let default_actions = inspect::listener(clients, &env.listener_arn)
            .await?
            .default_actions
            .unwrap_or_default();
        let rule = match &env.listener_rule_arn {
            Some(arn) => Some(inspect::rule(clients, arn).await?),
            None => None,
        };
        Ok(Snapshot {
            task_sets,
            active_revisions,
            inactive_revisions,
            route_weights,
            default_actions,
            rule,
        })
    }

    /// The weight of `target_group_arn` on the deploy route.
    pub fn weight_of(&self, target_group_arn: &str) -> i32 {
        inspect::weight_of(&self.route_weights, target_group_arn)
    }
}

/// The lines in which the pretty `Debug` forms of `a` and `b` differ, `-` for `a`'s and `+`
/// for `b`'s: a readable field-level account of why two values are not equal.
pub fn debug_diff(a: &impl Debug, b: &impl Debug) -> String {
    let (a, b) = (format!("{a:#?}"), format!("{b:#?}"));
    let count = |text: &str| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for l in text.lines() {
            *m.entry(l.trim_end().to_string()).or_default() += 1;
        }
        m
    };
    let (ca, cb) = (count(&a), count(&b));
    let mut out = Vec::new();
    for (line, n) in &ca {
        if cb.get(line).copied().unwrap_or(0) < *n {
            out.push(format!("- {}", line.trim()));
        }
    }
    for (line, n) in &cb {
        if ca.get(line).copied().unwrap_or(0) < *n {
            out.push(format!("+ {}", line.trim()));
        }
    }
    out.join("\n")
}

/// `td` without what ECS sets per revision (ARN, revision number, registration and
/// deregistration times and principals): what two revisions that are "the same task
/// definition" have in common. Everything else is kept, status and compatibilities too.
pub fn revision_independent(td: &TaskDefinition) -> TaskDefinition {
    let mut td = td.clone();
    td.task_definition_arn = None;
    td.revision = 0;
    td.registered_at = None;
    td.registered_by = None;
    td.deregistered_at = None;
    td.delete_requested_at = None;
    td
}

/// `td` with the image of container `container` replaced by `image`.
///
/// # Errors
/// When there is no such container.
pub fn with_image(
    td: &TaskDefinition,
    container: &str,
    image: &str,
) -> anyhow::Result<TaskDefinition> {
    let name = td_name(td).unwrap_or_default().to_string();
    let mut td = td.clone();
    let c = td
        .container_definitions
        .iter_mut()
        .flatten()
        .find(|c| c.name() == Some(container))
        .ok_or_else(|| anyhow!("no container {container} in task definition {name}"))?;
    c.image = Some(image.to_string());
    Ok(td)
}

fn td_name(td: &TaskDefinition) -> Option<&str> {
    td.task_definition_arn().or(td.family())
}

/// Fails unless `green` is `blue` with only the image of `container` changed to `image`,
/// comparing every field (per-revision ones aside, see [`revision_independent`]).
///
/// # Errors
/// Naming every line in which they differ.
pub fn expect_only_image_changed(
    blue: &TaskDefinition,
    green: &TaskDefinition,
    container: &str,
    image: &str,
) -> anyhow::Result<()> {
    let expected = revision_independent(&with_image(blue, container, image)?);
    let actual = revision_independent(green);
    if expected != actual {
        let mut diff = debug_diff(&expected, &actual);
        for field in redacted_differences(&expected, &actual) {
            diff.push_str(&format!("\n~ {field} (its Debug form is redacted)"));
        }
        bail!(
            "{:?} is not {:?} with only {container}'s image changed to {image}; differences (- expected, + actual):\n{diff}",
            td_name(green),
            td_name(blue),
        );
    }
    Ok(())
}

/// The container fields the SDK redacts in `Debug` (they may hold secrets), named where
/// `a` and `b` differ, so that [`debug_diff`] is not silent about them.
fn redacted_differences(a: &TaskDefinition, b: &TaskDefinition) -> Vec<String> {
    let mut out = Vec::new();
    for ca in a.container_definitions() {
        let name = ca.name().unwrap_or("(unnamed)");
        let Some(cb) = b
            .container_definitions()
            .iter()
            .find(|c| c.name() == ca.name())
        else {
            continue;
        };
        if ca.environment() != cb.environment() {
            out.push(format!("containerDefinitions[{name}].environment"));
        }
        if ca.repository_credentials() != cb.repository_credentials() {
            out.push(format!(
                "containerDefinitions[{name}].repositoryCredentials"
            ));
        }
    }
    out
}

/// The loop bodies of the state machine's poll loops: the choice after a poll that answered
/// `wait`, the wait, and the next poll. Launch first; then test traffic, traffic steps and
/// blue's retention.
pub const LAUNCH_POLL_LOOP: [&str; 3] = ["GreenLaunched", "WaitForGreen", "VerifyGreen"];
pub const OTHER_POLL_LOOPS: [[&str; 3]; 3] = [
    [
        "TestTrafficVerified",
        "WaitForTestPoll",
        "VerifyTestTraffic",
    ],
    ["StepVerified", "WaitForStepPoll", "VerifyTrafficStep"],
    [
        "RetentionVerified",
        "WaitForRetentionPoll",
        "VerifyRetention",
    ],
];

/// `states` with every repetition of a poll loop taken out, and how many repetitions of the
/// launch loop and of the others there were: what is left is the path through the state
/// machine, the same however many polls green took.
pub fn without_poll_loops(states: &[String]) -> (Vec<String>, usize, usize) {
    let mut out = Vec::with_capacity(states.len());
    let (mut launch, mut other) = (0, 0);
    let mut i = 0;
    let starts = |i: usize, body: &[&str]| {
        states.len() >= i + body.len()
            && states[i..i + body.len()]
                .iter()
                .zip(body)
                .all(|(s, b)| s == b)
    };
    while i < states.len() {
        if starts(i, &LAUNCH_POLL_LOOP) {
            launch += 1;
            i += LAUNCH_POLL_LOOP.len();
        } else if let Some(body) = OTHER_POLL_LOOPS.iter().find(|b| starts(i, &b[..])) {
            other += 1;
            i += body.len();
        } else {
            out.push(states[i].clone());
            i += 1;
        }
    }
    (out, launch, other)
}

/// The path from the start to the first poll of green at launch.
pub const TO_LAUNCH_CHECK: [&str; 5] = [
    "Validate",
    "CreateGreen",
    "StartLaunch",
    "WaitForGreen",
    "VerifyGreen",
];

/// The path through one traffic step that passes, poll loops taken out.
pub const TRAFFIC_STEP: [&str; 8] = [
    "NextTrafficStep",
    "ShiftTraffic",
    "StartStepObservation",
    "WaitForStepPoll",
    "VerifyTrafficStep",
    "StepVerified",
    "AdvanceTrafficStep",
    "MoreTrafficSteps",
];

/// From green passing at launch to the first poll of the first traffic step.
pub const TO_FIRST_STEP_CHECK: [&str; 7] = [
    "GreenLaunched",
    "StartTrafficSteps",
    "NextTrafficStep",
    "ShiftTraffic",
    "StartStepObservation",
    "WaitForStepPoll",
    "VerifyTrafficStep",
];

/// From promotion to the end of a deploy that keeps no blue.
pub const PROMOTION: [&str; 5] = [
    "PromoteGreen",
    "BlueRetained",
    "WaitForDeregistration",
    "DrainBlue",
    "Deployed",
];

/// `parts` joined into one path.
pub fn path(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|s| s.to_string())
        .collect()
}

/// The path of a deploy that succeeds with `steps` traffic steps, poll loops taken out
/// (see [`without_poll_loops`]), as `statemachine/deploy.asl.json` wires it.
pub fn succeeded_path(steps: usize) -> Vec<String> {
    let mut parts: Vec<&[&str]> = vec![&TO_LAUNCH_CHECK, &["GreenLaunched", "StartTrafficSteps"]];
    for _ in 0..steps {
        parts.push(&TRAFFIC_STEP);
    }
    parts.push(&PROMOTION);
    path(&parts)
}

/// The states after the failing state of a rollback.
pub const ROLLBACK_TAIL: [&str; 5] = [
    "RollBackTraffic",
    "RestoreBlue",
    "WaitBeforeRemovingGreen",
    "RemoveGreen",
    "RolledBack",
];

/// The path of a deploy rejected by `Validate`.
pub fn rejected_path() -> Vec<String> {
    vec!["Validate".into(), "Rejected".into()]
}

/// The output of the last exit from `state`, parsed as JSON.
pub fn state_output(history: &[HistoryEvent], state: &str) -> Option<serde_json::Value> {
    history
        .iter()
        .rev()
        .filter_map(|e| e.state_exited_event_details())
        .find(|d| d.name() == state)
        .and_then(|d| d.output())
        .and_then(|o| serde_json::from_str(o).ok())
}

/// Green's task set id and task definition ARN, as `CreateGreen` reported them.
///
/// # Errors
/// When the execution has no successful `CreateGreen`.
pub fn green_of(outcome: &sfn::Outcome) -> anyhow::Result<(String, String)> {
    let out = state_output(&outcome.history, "CreateGreen").ok_or_else(|| {
        anyhow!(
            "execution {} has no CreateGreen output; states: {}",
            outcome.execution_arn,
            outcome.states_entered().join(" → ")
        )
    })?;
    let green = &out["taskSets"]["green"];
    match (green["id"].as_str(), green["taskDefinitionArn"].as_str()) {
        (Some(id), Some(td)) => Ok((id.to_string(), td.to_string())),
        _ => bail!("CreateGreen's output has no taskSets.green id and task definition: {out}"),
    }
}

/// The weights target group `index` had over the timeline, each change once:
/// `[0, 25, 100]`.
pub fn weight_sequence(timeline: &Timeline, index: usize) -> Vec<i32> {
    let mut seq: Vec<i32> = Vec::new();
    for s in &timeline.samples {
        let w = s.weights[index.min(1)];
        if seq.last() != Some(&w) {
            seq.push(w);
        }
    }
    seq
}

/// Polls `check` every 250 ms until it answers `Some`, up to `timeout`.
///
/// # Errors
/// What `check` fails with, or a timeout naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The operator side of the local stack: Step Functions and ECS through the project's own
/// adapters, as `bluegreen-ctl` and the webhook use them.
pub fn operators(stack: &Stack) -> (bluegreen::aws::SdkSfn, bluegreen::aws::SdkEcs) {
    (
        bluegreen::aws::SdkSfn::new(stack.clients.sfn.clone()),
        bluegreen::aws::SdkEcs::new(stack.clients.ecs.clone()),
    )
}

/// Waits until the execution is in state `state`.
///
/// # Errors
/// When it ends or does not get there within [`EXECUTION_TIMEOUT`].
pub async fn wait_for_state(stack: &Stack, execution_arn: &str, state: &str) -> anyhow::Result<()> {
    let (sfn_ops, _) = operators(stack);
    let sfn_ops = &sfn_ops;
    eventually(
        &format!("execution reaches {state}"),
        EXECUTION_TIMEOUT,
        move || async move {
            let status = bluegreen::operations::status(sfn_ops, execution_arn).await?;
            if status.progress.state.as_deref() == Some(state) {
                return Ok(Some(()));
            }
            if status.status != "RUNNING" {
                bail!(
                    "the execution ended {} in {:?} before reaching {state}: {:?}",
                    status.status,
                    status.progress.state,
                    status.cause
                );
            }
            Ok(None)
        },
    )
    .await
}

/// Waits until the route gives `tg` the weight `weight`.
///
/// # Errors
/// When the execution ends first, or it does not happen within [`EXECUTION_TIMEOUT`].
pub async fn wait_for_weight(
    stack: &Stack,
    execution_arn: &str,
    route: &inspect::Route,
    tg: &str,
    weight: i32,
) -> anyhow::Result<()> {
    eventually(
        &format!("{tg} at {weight} %"),
        EXECUTION_TIMEOUT,
        move || async move {
            let w = inspect::weights(&stack.clients, route).await?;
            if inspect::weight_of(&w, tg) == weight {
                return Ok(Some(()));
            }
            if !running(stack, execution_arn).await? {
                bail!("the execution ended before {tg} got {weight} %: {w:?}");
            }
            Ok(None)
        },
    )
    .await
}

/// The Dynatrace deployment events the fake received for environment `env`, oldest first:
/// each event's `properties` and `entitySelector` (as posted).
///
/// # Errors
/// When the gateway does not answer.
pub async fn dynatrace_events(
    stack: &Stack,
    env: &Environment,
) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(stack
        .gateway
        .dynatrace_events()
        .await?
        .into_iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["properties"]["ecs.cluster"] == env.cluster_name.as_str())
        .collect())
}

/// The milestones (`started`, `promoted`, `rolled back`) of `events`, in order.
pub fn milestones(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["properties"]["deployment.milestone"].as_str())
        .map(str::to_string)
        .collect()
}

/// How many times the execution entered `state`.
pub fn entered(outcome: &sfn::Outcome, state: &str) -> usize {
    outcome
        .states_entered()
        .iter()
        .filter(|s| s.as_str() == state)
        .count()
}

/// Whether the execution is still running.
///
/// # Errors
/// When it cannot be described.
pub async fn running(stack: &Stack, execution_arn: &str) -> anyhow::Result<bool> {
    Ok(sfn::describe(&stack.clients.sfn, execution_arn)
        .await?
        .status
        == ExecutionStatus::Running)
}

/// Fails with the execution's error, cause and states unless it ended `expected`.
///
/// # Errors
/// When the status differs.
pub fn expect_status(outcome: &sfn::Outcome, expected: ExecutionStatus) -> anyhow::Result<()> {
    sfn::expect_status(outcome, expected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_valid_names_and_differ_between_runs() {
        let a = unique_suffix("blue_is_drained_after_the_shift");
        let b = unique_suffix("blue_is_drained_after_the_shift");
        assert_ne!(a, b);
        assert!(a.starts_with("blueis-"), "{a}");
        assert!(EnvSpec::new(a).prefix().is_ok());
        assert!(EnvSpec::new(unique_suffix("")).prefix().is_ok());
    }

    fn td(image: &str, secret_from: &str) -> TaskDefinition {
        use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, Secret};
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/orders:1")
            .revision(1)
            .family("orders")
            .container_definitions(
                ContainerDefinition::builder()
                    .name(APP_CONTAINER)
                    .image(image)
                    .environment(KeyValuePair::builder().name("A").value("1").build())
                    .secrets(
                        Secret::builder()
                            .name("DT_API_TOKEN")
                            .value_from(secret_from)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .container_definitions(
                ContainerDefinition::builder()
                    .name("log_router")
                    .image("fluent-bit")
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_new_revision_with_only_the_image_changed_passes_the_comparison() {
        let blue = td("orders@sha256:1", "arn:secret:a");
        let mut green = td("orders@sha256:2", "arn:secret:a");
        green.task_definition_arn =
            Some("arn:aws:ecs:us-east-1:123456789012:task-definition/orders:2".into());
        green.revision = 2;
        expect_only_image_changed(&blue, &green, APP_CONTAINER, "orders@sha256:2").unwrap();
    }

    #[test]
    fn any_other_difference_fails_the_comparison_naming_the_field() {
        let blue = td("orders@sha256:1", "arn:secret:a");
        let green = td("orders@sha256:2", "arn:secret:b");
        let err = expect_only_image_changed(&blue, &green, APP_CONTAINER, "orders@sha256:2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("arn:secret:a") && err.contains("arn:secret:b"),
            "{err}"
        );

        let mut green = td("orders@sha256:2", "arn:secret:a");
        green.container_definitions.as_mut().unwrap()[0].environment = None;
        let err = expect_only_image_changed(&blue, &green, APP_CONTAINER, "orders@sha256:2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment"), "{err}");

        let green = td("orders@sha256:3", "arn:secret:a");
        assert!(
            expect_only_image_changed(&blue, &green, APP_CONTAINER, "orders@sha256:2").is_err()
        );
        let mut green = td("orders@sha256:2", "arn:secret:a");
        green.container_definitions.as_mut().unwrap()[1].image = Some("other".into());
        assert!(
            expect_only_image_changed(&blue, &green, APP_CONTAINER, "orders@sha256:2").is_err()
        );
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn poll_loops_are_taken_out_and_counted_but_nothing_else_is() {
        let full = succeeded_path(1);
        let mut states: Vec<String> = full[..5].to_vec();
        states.extend(strings(&LAUNCH_POLL_LOOP));
        states.extend(strings(&LAUNCH_POLL_LOOP));
        states.extend(full[5..12].iter().cloned());
        states.extend(strings(&OTHER_POLL_LOOPS[1]));
        states.extend(full[12..].iter().cloned());
        let (path, launch, other) = without_poll_loops(&states);
        assert_eq!(path, full);
        assert_eq!((launch, other), (2, 1));

        // A poll that failed is a different path.
        let mut failed: Vec<String> = strings(&TO_LAUNCH_CHECK);
        failed.extend(strings(&LAUNCH_POLL_LOOP));
        failed.extend(strings(&ROLLBACK_TAIL));
        let (path, launch, _) = without_poll_loops(&failed);
        assert_eq!(launch, 1);
        assert_eq!(path, super::path(&[&TO_LAUNCH_CHECK, &ROLLBACK_TAIL]));
    }

    #[test]
    fn the_succeeded_path_repeats_the_step_states_once_per_step() {
        let one = succeeded_path(1);
        let two = succeeded_path(2);
        assert_eq!(two.len(), one.len() + TRAFFIC_STEP.len());
        assert_eq!(one.first().map(String::as_str), Some("Validate"));
        assert_eq!(two.last().map(String::as_str), Some("Deployed"));
        assert_eq!(two.iter().filter(|s| *s == "ShiftTraffic").count(), 2);
    }

    #[test]
    fn a_debug_diff_shows_only_the_lines_that_differ() {
        let d = debug_diff(&vec![("a", 1), ("b", 2)], &vec![("a", 1), ("b", 3)]);
        assert!(d.contains("- 2") && d.contains("+ 3"), "{d}");
        assert!(!d.contains("\"a\""), "{d}");
        assert_eq!(debug_diff(&1, &1), "");
    }
}
