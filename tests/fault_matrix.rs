//! End-to-end: the fault matrix (`make e2e`). Through the gateway's call faults
//! (`docs/local-stack.md`), every AWS call that a deploy's steps make is hit, one cell at a
//! time, by AWS throttling, a 5xx, and a timeout (the call happens, its answer comes after
//! the function gave up); every step's Lambda invoke is hit by a crash after the function did
//! its work. Each cell is a deploy of its own environment, and each must end consistent:
//!
//! - all production traffic on one side, whose task set is the only one left, primary, with
//!   every target healthy;
//! - never more than two task sets at once;
//! - no orphaned task definition revision: besides blue's, the only active one is the live
//!   side's;
//! - the verdict matches: a succeeded execution has green live, a failed one blue;
//! - one fault never decides the outcome: the deploy still goes live, or still rolls back.
//!
//! Two matrices: a deploy that goes live (v2), and one that rolls back (v3, whose tasks never
//! turn healthy), so that the rollback's own calls are hit too. The rows are not written down:
//! a fault-free run of each first records which calls each step makes (the gateway counts them
//! by caller and IAM action), so a call added to a step is in the matrix the next run. The
//! tests print the matrices (also to the stack's logs, `.local/logs/fault-matrix-*.txt`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::Strategy;
use e2e::{Stack, TestEnv, fast_timing};
use local_stack::env::{APP_CONTAINER, EnvSpec};
use local_stack::gateway::{CallFaultKind, CallFaultSpec, Fault};
use local_stack::inspect;
use local_stack::sfn::Outcome;
use tokio::sync::Semaphore;

/// The deploy steps, in the order of the flow.
const STEPS: [&str; 5] = [
    "validate",
    "create-green",
    "verify-health",
    "shift-traffic",
    "drain-blue",
];
/// The faults every AWS call gets.
const CALL_KINDS: [CallFaultKind; 3] = [
    CallFaultKind::Throttle,
    CallFaultKind::ServerError,
    CallFaultKind::Timeout,
];
const INVOKE: &str = "lambda:InvokeFunction";
/// Cells run at once, across both matrices; each has its own environment, and its fault
/// matches only calls that name that environment.
static SLOTS: Semaphore = Semaphore::const_new(4);
/// How long a `timeout` fault holds an answer: past the functions' 10 s operation timeout.
const TIMEOUT_DELAY_SECONDS: f64 = 11.0;

#[derive(Debug, Clone)]
struct Cell {
    step: &'static str,
    action: String,
    kind: CallFaultKind,
}

/// How a cell ended.
#[derive(Debug, Clone)]
enum Verdict {
    /// Consistent; the fault hit; the execution's status.
    Consistent(ExecutionStatus),
    /// Consistent, but the fault never hit (the call was not made this time).
    NotReached,
    /// Inconsistent: why.
    Broken(String),
}

impl Verdict {
    fn short(&self) -> String {
        match self {
            Verdict::Consistent(ExecutionStatus::Succeeded) => "ok: deployed".into(),
            Verdict::Consistent(_) => "ok: rolled back".into(),
            Verdict::NotReached => "not reached".into(),
            Verdict::Broken(_) => "BROKEN".into(),
        }
    }
}

/// What a matrix deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// v2, healthy: without faults it goes live.
    GoesLive,
    /// v3, whose tasks never turn healthy: without faults it rolls back.
    RollsBack,
}

impl Scenario {
    fn tag(self) -> &'static str {
        match self {
            Scenario::GoesLive => "v2",
            Scenario::RollsBack => "v3",
        }
    }

    fn expected(self) -> ExecutionStatus {
        match self {
            Scenario::GoesLive => ExecutionStatus::Succeeded,
            Scenario::RollsBack => ExecutionStatus::Failed,
        }
    }

    /// A new environment for it, its health fault armed.
    async fn environment(self, stack: &Stack, name: &str) -> anyhow::Result<TestEnv> {
        let t = stack.environment(name, EnvSpec::new("")).await?;
        if self == Scenario::RollsBack {
            let digest = t.env.digest(self.tag()).unwrap_or_default().to_string();
            stack
                .gateway
                .add_fault(&Fault::never_healthy(&digest))
                .await?;
        }
        Ok(t)
    }
}

/// Starts the scenario's deploy on `t`, watches the task set count while it runs, and waits
/// for the end. Answers the outcome and the most task sets seen at once.
async fn deploy(
    stack: &Stack,
    t: &TestEnv,
    scenario: Scenario,
) -> anyhow::Result<(Outcome, usize)> {
    let env = &t.env;
    let tag = scenario.tag();
    let request = env.deploy_request(env.tagged_image(tag), Strategy::AllAtOnce, fast_timing());
    let execution = t.start(stack, tag, &request).await?;
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (clients, cluster, service, most) = (
            stack.clients.clone(),
            env.cluster_name.clone(),
            env.service_name.clone(),
            most.clone(),
        );
        tokio::spawn(async move {
            loop {
                if let Ok(sets) = inspect::task_sets(&clients, &cluster, &service).await {
                    most.fetch_max(sets.len(), Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let outcome = t.wait(stack, &execution).await;
    watcher.abort();
    Ok((outcome?, most.load(Ordering::SeqCst)))
}

/// What an operator must find after any deploy, whatever went wrong in it; `Err` says what is
/// inconsistent.
async fn consistency(
    stack: &Stack,
    t: &TestEnv,
    scenario: Scenario,
    outcome: &Outcome,
    most_task_sets: usize,
) -> anyhow::Result<Result<(), String>> {
    let env = &t.env;
    let clients = &stack.clients;
    let mut problems = Vec::new();
    if !matches!(
        outcome.status,
        ExecutionStatus::Succeeded | ExecutionStatus::Failed
    ) {
        problems.push(format!("the execution ended {}", outcome.status.as_str()));
    }
    if most_task_sets > 2 {
        problems.push(format!("{most_task_sets} task sets at once"));
    }
    let w = inspect::weights(clients, &env.route()).await?;
    let (a, b) = (
        inspect::weight_of(&w, env.tg_a()),
        inspect::weight_of(&w, env.tg_b()),
    );
    let live_tg = match (a, b) {
        (100, 0) => env.tg_a(),
        (0, 100) => env.tg_b(),
        _ => {
            problems.push(format!("traffic split {a}/{b}"));
            return Ok(Err(problems.join("; ")));
        }
    };
    let sets = t.task_sets_once_drained(stack).await?;
    let live = match sets.as_slice() {
        [one] => one,
        _ => {
            let ids: Vec<_> = sets
                .iter()
                .map(|s| format!("{} {}", s.id, s.status))
                .collect();
            problems.push(format!("task sets left: {ids:?}"));
            return Ok(Err(problems.join("; ")));
        }
    };
    if live.status != "PRIMARY" {
        problems.push(format!("the one task set is {}", live.status));
    }
    if live.target_group_arns.iter().all(|tg| tg != live_tg) {
        problems.push("traffic goes to a target group no task set serves".into());
    }
    let targets = inspect::target_counts(clients, live_tg).await?;
    if targets.healthy != env.desired_count as usize || targets.total() != targets.healthy {
        problems.push(format!("the live side's targets: {targets}"));
    }
    let active = inspect::task_definition_arns(
        clients,
        &env.task_definition_family,
        TaskDefinitionStatus::Active,
    )
    .await?;
    // Blue's revision stays active (a later rollback target); any other active one must be
    // what runs.
    let created: Vec<_> = active
        .iter()
        .filter(|arn| **arn != env.task_definition_arn)
        .collect();
    let orphaned = created.iter().any(|arn| **arn != live.task_definition_arn);
    if orphaned || !active.contains(&live.task_definition_arn) {
        problems.push(format!(
            "active revisions {active:?}, the live task set runs {}",
            live.task_definition_arn
        ));
    }
    let image = inspect::container(clients, &live.task_definition_arn, APP_CONTAINER)
        .await?
        .image()
        .unwrap_or_default()
        .to_string();
    let deployed = env.digest(scenario.tag()).unwrap_or("(not pushed)");
    match outcome.status {
        ExecutionStatus::Succeeded if !image.ends_with(deployed) => {
            problems.push(format!("succeeded, but the live side runs {image}"));
        }
        ExecutionStatus::Failed if live.id != env.blue_task_set_id => {
            problems.push(format!(
                "failed, but blue ({}) is not live",
                env.blue_task_set_id
            ));
        }
        _ => {}
    }
    Ok(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    })
}

async fn run_cell(
    stack: &Stack,
    scenario: Scenario,
    index: usize,
    cell: &Cell,
) -> anyhow::Result<Verdict> {
    let prefix = match scenario {
        Scenario::GoesLive => "fm",
        Scenario::RollsBack => "fr",
    };
    let t = scenario
        .environment(stack, &format!("{prefix}{index}"))
        .await?;
    let fault = stack
        .gateway
        .add_call_fault(&CallFaultSpec {
            caller: Some(cell.step.to_owned()),
            action: cell.action.clone(),
            matching: Some(t.env.prefix.clone()),
            kind: cell.kind,
            times: 1,
            delay_seconds: (cell.kind == CallFaultKind::Timeout).then_some(TIMEOUT_DELAY_SECONDS),
        })
        .await?;
    let (outcome, most) = deploy(stack, &t, scenario).await?;
    let hits = stack
        .gateway
        .call_faults()
        .await?
        .into_iter()
        .find(|f| f.id == fault.id)
        .map_or(0, |f| f.hits);
    let verdict = consistency(stack, &t, scenario, &outcome, most)
        .await?
        .and_then(|()| {
            // One transient fault is absorbed by the retries: it never decides the outcome.
            if outcome.status == scenario.expected() {
                Ok(())
            } else {
                Err(format!(
                    "one {} fault turned a deploy that {} into {}",
                    cell.kind.name(),
                    scenario.expected().as_str(),
                    outcome.status.as_str()
                ))
            }
        });
    Ok(match verdict {
        Err(why) => Verdict::Broken(format!(
            "{why} (execution {} {}: {} {})",
            outcome.execution_arn,
            outcome.status.as_str(),
            outcome.error.as_deref().unwrap_or("-"),
            outcome.cause.as_deref().unwrap_or("-"),
        )),
        Ok(()) if hits == 0 => Verdict::NotReached,
        Ok(()) => Verdict::Consistent(outcome.status),
    })
}

/// The matrix as text: one row per step and call, one column per fault.
fn render(cells: &[(Cell, Verdict)]) -> String {
    let mut rows: BTreeMap<(usize, String), BTreeMap<&'static str, String>> = BTreeMap::new();
    for (cell, verdict) in cells {
        let order = STEPS.iter().position(|s| *s == cell.step).unwrap_or(99);
        rows.entry((order, format!("{} {}", cell.step, cell.action)))
            .or_default()
            .insert(cell.kind.name(), verdict.short());
    }
    let columns = ["throttle", "server-error", "timeout", "crash"];
    let mut out = format!("{:<64}", "step / AWS call");
    for c in columns {
        let _ = write!(out, " {c:<16}");
    }
    out.push('\n');
    for ((_, row), verdicts) in rows {
        let _ = write!(out, "{row:<64}");
        for c in columns {
            let _ = write!(out, " {:<16}", verdicts.get(c).map_or("", String::as_str));
        }
        out.push('\n');
    }
    out
}

/// Runs the matrix of `scenario`: a fault-free run to find the calls, then every cell.
async fn matrix(scenario: Scenario) -> anyhow::Result<()> {
    let stack = Stack::connect().await?;

    // Given the calls a fault-free run makes, by step
    let base = scenario.environment(&stack, "fmbase").await?;
    let (outcome, most) = deploy(&stack, &base, scenario).await?;
    assert_eq!(outcome.status, scenario.expected(), "{outcome:?}");
    if let Err(why) = consistency(&stack, &base, scenario, &outcome, most).await? {
        bail!("the fault-free run is inconsistent: {why}");
    }
    let calls = stack.gateway.calls(Some(&base.env.prefix)).await?;
    let mut cells = Vec::new();
    for step in STEPS {
        let actions: Vec<_> = calls
            .iter()
            .filter(|c| c.caller == step && c.action != INVOKE)
            .map(|c| c.action.clone())
            .collect();
        if actions.is_empty() {
            continue; // a rollback before traffic moved calls no shift-traffic
        }
        for action in actions {
            for kind in CALL_KINDS {
                cells.push(Cell {
                    step,
                    action: action.clone(),
                    kind,
                });
            }
        }
        cells.push(Cell {
            step,
            action: INVOKE.into(),
            kind: CallFaultKind::Crash,
        });
    }
    let steps: std::collections::BTreeSet<_> = cells.iter().map(|c| c.step).collect();
    assert!(
        steps.len() >= 4,
        "the fault-free run reached only {steps:?}: {calls:?}"
    );

    // When each cell's fault hits a run of its own
    let mut running = tokio::task::JoinSet::new();
    for (index, cell) in cells.into_iter().enumerate() {
        let stack = stack.clone();
        running.spawn(async move {
            let _slot = SLOTS.acquire().await.context("the semaphore closed")?;
            let verdict = run_cell(&stack, scenario, index, &cell)
                .await
                .with_context(|| {
                    format!("cell {} {} {}", cell.step, cell.action, cell.kind.name())
                })?;
            anyhow::Ok((cell, verdict))
        });
    }
    let mut results = Vec::new();
    while let Some(done) = running.join_next().await {
        results.push(done.context("a cell panicked")??);
    }

    // Then every cell ends consistent, and every fault hit the call it was armed for
    let matrix = render(&results);
    let text = format!(
        "fault matrix, {scenario:?} ({} cells):\n{matrix}",
        results.len()
    );
    // Straight to the terminal (the test harness captures `println!` of passing tests), and
    // to the stack's logs.
    let _ = std::io::stderr().write_all(text.as_bytes());
    let _ = std::fs::write(
        local_stack::sfn::local_dir().join(format!("logs/fault-matrix-{scenario:?}.txt")),
        &text,
    );
    let broken: Vec<_> = results
        .iter()
        .filter_map(|(c, v)| match v {
            Verdict::Broken(why) => {
                Some(format!("{} {} {}: {why}", c.step, c.action, c.kind.name()))
            }
            _ => None,
        })
        .collect();
    assert!(
        broken.is_empty(),
        "inconsistent cells:\n{}\n{matrix}",
        broken.join("\n")
    );
    let missed: Vec<_> = results
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::NotReached))
        .map(|(c, _)| format!("{} {} {}", c.step, c.action, c.kind.name()))
        .collect();
    assert!(
        missed.is_empty(),
        "faults that never hit their call: {missed:?}\n{matrix}"
    );
    Ok(())
}

#[tokio::test]
async fn every_aws_call_of_a_deploy_survives_throttling_server_errors_timeouts_and_crashes()
-> anyhow::Result<()> {
    matrix(Scenario::GoesLive).await
}

#[tokio::test]
async fn every_aws_call_of_a_rollback_survives_throttling_server_errors_timeouts_and_crashes()
-> anyhow::Result<()> {
    matrix(Scenario::RollsBack).await
}
