//! The deploy state machine on the local stack: created from the real ASL
//! (`statemachine/deploy.asl.json`), executed by moto, observed through its history.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};

use crate::endpoint::{ACCOUNT_ID, REGION};

/// ASL placeholder → Lambda binary name, for every Task of the state machines.
pub const FUNCTIONS: [(&str, &str); 6] = [
    ("validate_function_arn", "validate"),
    ("create_green_function_arn", "create-green"),
    ("verify_health_function_arn", "verify-health"),
    ("shift_traffic_function_arn", "shift-traffic"),
    ("drain_blue_function_arn", "drain-blue"),
    ("rotate_secret_function_arn", "rotate-secret"),
];

/// The deploy state machine the local functions are configured with (`local/stack.sh`): the
/// one rotations redeploy with, and the trigger starts.
pub const STACK_DEPLOY_STATE_MACHINE: &str = "bluegreen-deploy";
/// The rotation workflow the local `rotate-secret` starts.
pub const STACK_ROTATION_STATE_MACHINE: &str = "bluegreen-rotate";

/// The role the local state machine claims (moto does not check it).
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/bluegreen-deploy";

/// How long [`wait`] waits for an execution when the caller has no better idea.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The workspace root (`crates/local-stack/../..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The local stack's own directory (`.local`, or `BG_LOCAL_DIR`): its logs, pid files and the
/// trigger's catalogue.
pub fn local_dir() -> PathBuf {
    std::env::var("BG_LOCAL_DIR")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(|| workspace_root().join(".local"), PathBuf::from)
}

/// `statemachine/deploy.asl.json` of the workspace.
pub fn asl_path() -> PathBuf {
    workspace_root().join("statemachine/deploy.asl.json")
}

/// The ARN of state machine `name` on the local stack.
pub fn state_machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}")
}

/// The local ARN of Lambda binary `binary` (the gateway maps it back to the binary).
pub fn lambda_arn(binary: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{binary}")
}

/// `template` with every `${…_function_arn}` placeholder replaced by its local Lambda ARN.
///
/// # Errors
/// When a `${` is left afterwards (a placeholder this crate does not know), naming it.
pub fn render_definition(template: &str) -> anyhow::Result<String> {
    let mut out = template.to_string();
    for (placeholder, binary) in FUNCTIONS {
        out = out.replace(&format!("${{{placeholder}}}"), &lambda_arn(binary));
    }
    if let Some(at) = out.find("${") {
        let rest = &out[at..];
        let end = rest.find('}').map_or(rest.len().min(40), |i| i + 1);
        bail!(
            "the state machine definition has an unknown placeholder {} (known: {})",
            &rest[..end],
            FUNCTIONS.map(|(p, _)| format!("${{{p}}}")).join(", ")
        );
    }
    Ok(out)
}

/// Reads and renders the workspace's deploy ASL.
///
/// # Errors
/// When the file cannot be read, is not JSON, or has an unknown placeholder.
pub fn deploy_definition() -> anyhow::Result<String> {
    definition(&asl_path())
}

/// Reads and renders the workspace's rotation ASL (`statemachine/rotate.asl.json`).
///
/// # Errors
/// As [`deploy_definition`].
pub fn rotation_definition() -> anyhow::Result<String> {
    definition(&workspace_root().join("statemachine/rotate.asl.json"))
}

/// Creates (or updates) the stack's own deploy and rotation state machines, those the local
/// functions are configured with; answers their ARNs.
///
/// # Errors
/// As [`create_state_machine`].
pub async fn create_stack_state_machines(
    sfn: &aws_sdk_sfn::Client,
) -> anyhow::Result<(String, String)> {
    let deploy =
        create_state_machine(sfn, STACK_DEPLOY_STATE_MACHINE, &deploy_definition()?).await?;
    let rotate =
        create_state_machine(sfn, STACK_ROTATION_STATE_MACHINE, &rotation_definition()?).await?;
    Ok((deploy, rotate))
}

fn definition(path: &Path) -> anyhow::Result<String> {
    let template =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rendered =
        render_definition(&template).with_context(|| format!("rendering {}", path.display()))?;
    serde_json::from_str::<serde_json::Value>(&rendered)
        .with_context(|| format!("{} is not valid JSON once rendered", path.display()))?;
    Ok(rendered)
}

/// Creates state machine `name` from `definition` and answers its ARN. When one of that
/// name exists already, it is updated to `definition` and its ARN answered.
///
/// # Errors
/// When Step Functions rejects the definition.
pub async fn create_state_machine(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
    definition: &str,
) -> anyhow::Result<String> {
    let created = sfn
        .create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn(ROLE_ARN)
        .send()
        .await;
    match created {
        Ok(out) => Ok(out.state_machine_arn),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_state_machine_already_exists()) =>
        {
            let arn = format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}");
            sfn.update_state_machine()
                .state_machine_arn(&arn)
                .definition(definition)
                .role_arn(ROLE_ARN)
                .send()
                .await
                .with_context(|| format!("updating state machine {name}"))?;
            Ok(arn)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating state machine {name}"))),
    }
}

/// Creates state machine `name` from the workspace's deploy ASL.
///
/// # Errors
/// As [`deploy_definition`] and [`create_state_machine`].
pub async fn create_deploy_state_machine(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
) -> anyhow::Result<String> {
    create_state_machine(sfn, name, &deploy_definition()?).await
}

/// Starts execution `name` (moto names unnamed executions `None`, so a name is required)
/// with `input` and answers its ARN.
///
/// # Errors
/// When the input does not serialize or Step Functions refuses the start (for example
/// `ExecutionAlreadyExists`).
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &impl serde::Serialize,
) -> anyhow::Result<String> {
    let input = serde_json::to_string(input).context("serializing the execution input")?;
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await
        .with_context(|| format!("starting execution {name} of {state_machine_arn}"))?;
    Ok(out.execution_arn)
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    /// The output of a succeeded execution.
    pub output: Option<serde_json::Value>,
    /// The error name of a failed execution.
    pub error: Option<String>,
    /// The cause of a failed execution.
    pub cause: Option<String>,
    /// Every history event, oldest first.
    pub history: Vec<HistoryEvent>,
}

impl Outcome {
    /// Names of the states entered, in order.
    pub fn states_entered(&self) -> Vec<String> {
        states_entered(&self.history)
    }

    /// The execution succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }
}

/// The execution's status now, with error and cause when it has ended badly.
///
/// # Errors
/// When the execution does not exist.
pub async fn describe(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> anyhow::Result<aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput> {
    sfn.describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .with_context(|| format!("describing execution {execution_arn}"))
}

/// Polls the execution every `poll` until it is no longer `RUNNING`, then reads its
/// history.
///
/// # Errors
/// When it is still running after `timeout` (the states entered so far are in the
/// message), or Step Functions cannot be read.
pub async fn wait(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let d = describe(sfn, execution_arn).await?;
        if d.status != ExecutionStatus::Running {
            return outcome(sfn, d).await;
        }
        if tokio::time::Instant::now() >= deadline {
            let so_far = history(sfn, execution_arn)
                .await
                .map(|h| states_entered(&h).join(" → "))
                .unwrap_or_else(|e| format!("(history unreadable: {e:#})"));
            bail!(
                "execution {execution_arn} is still running after {timeout:?}; states so far: {so_far}"
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// The [`Outcome`] of an execution that has ended, as `described`.
///
/// # Errors
/// When the history cannot be read.
pub async fn outcome(
    sfn: &aws_sdk_sfn::Client,
    described: aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput,
) -> anyhow::Result<Outcome> {
    let history = history(sfn, &described.execution_arn).await?;
    let failed = history
        .iter()
        .rev()
        .find_map(|e| e.execution_failed_event_details());
    let error = described
        .error
        .clone()
        .or_else(|| failed.and_then(|f| f.error().map(str::to_string)));
    let cause = described
        .cause
        .clone()
        .or_else(|| failed.and_then(|f| f.cause().map(str::to_string)));
    let output = described.output.as_deref().map(|o| {
        serde_json::from_str(o).unwrap_or_else(|_| serde_json::Value::String(o.to_string()))
    });
    Ok(Outcome {
        execution_arn: described.execution_arn,
        status: described.status,
        output,
        error,
        cause,
        history,
    })
}

/// Every history event of the execution, oldest first (all pages).
///
/// # Errors
/// When the execution does not exist.
pub async fn history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> anyhow::Result<Vec<HistoryEvent>> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token.take())
            .send()
            .await
            .with_context(|| format!("reading the history of execution {execution_arn}"))?;
        events.extend(page.events);
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    events.sort_by_key(|e| e.id);
    Ok(events)
}

/// Names of the states entered, in order.
pub fn states_entered(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_string())
        .collect()
}

/// The state the execution is in: the last state entered, or `None` before the first one
/// and after the execution ended.
pub fn current_state(history: &[HistoryEvent]) -> Option<String> {
    for e in history.iter().rev() {
        match e.r#type() {
            HistoryEventType::ExecutionSucceeded
            | HistoryEventType::ExecutionFailed
            | HistoryEventType::ExecutionAborted
            | HistoryEventType::ExecutionTimedOut => return None,
            _ => {}
        }
        if let Some(d) = e.state_entered_event_details() {
            return Some(d.name().to_string());
        }
    }
    None
}

/// The input a state was entered with, for each entry of `state`, parsed as JSON.
pub fn inputs_of(history: &[HistoryEvent], state: &str) -> Vec<serde_json::Value> {
    history
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .filter(|d| d.name() == state)
        .filter_map(|d| d.input())
        .filter_map(|i| serde_json::from_str(i).ok())
        .collect()
}

/// Every payload string of the history (inputs, outputs, task parameters, errors and
/// causes), one per line: what to search for a leaked secret.
pub fn history_text(history: &[HistoryEvent]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for e in history {
        if let Some(d) = e.execution_started_event_details() {
            parts.extend(d.input());
        }
        if let Some(d) = e.execution_succeeded_event_details() {
            parts.extend(d.output());
        }
        if let Some(d) = e.execution_failed_event_details() {
            parts.extend(d.error());
            parts.extend(d.cause());
        }
        if let Some(d) = e.state_entered_event_details() {
            parts.extend(d.input());
        }
        if let Some(d) = e.state_exited_event_details() {
            parts.extend(d.output());
        }
        if let Some(d) = e.task_scheduled_event_details() {
            parts.push(d.parameters());
        }
        if let Some(d) = e.task_succeeded_event_details() {
            parts.extend(d.output());
        }
        if let Some(d) = e.task_failed_event_details() {
            parts.extend(d.error());
            parts.extend(d.cause());
        }
        if let Some(d) = e.lambda_function_scheduled_event_details() {
            parts.extend(d.input());
        }
        if let Some(d) = e.lambda_function_succeeded_event_details() {
            parts.extend(d.output());
        }
        if let Some(d) = e.lambda_function_failed_event_details() {
            parts.extend(d.error());
            parts.extend(d.cause());
        }
    }
    parts.join("\n")
}

/// An execution name no longer than Step Functions' 80 characters, made of `parts` joined
/// by `-`, with every character Step Functions refuses replaced by `-`.
pub fn execution_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let cleaned: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned.chars().take(80).collect()
}

/// Answers an error naming the execution when `outcome` is not `expected`.
///
/// # Errors
/// When the status differs; the error, cause and states entered are in the message.
pub fn expect_status(outcome: &Outcome, expected: ExecutionStatus) -> anyhow::Result<()> {
    if outcome.status == expected {
        return Ok(());
    }
    Err(anyhow!(
        "execution {} ended {} instead of {}: error {:?}, cause {:?}; states: {}",
        outcome.execution_arn,
        outcome.status,
        expected,
        outcome.error,
        outcome.cause,
        outcome.states_entered().join(" → ")
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{ExecutionFailedEventDetails, StateEnteredEventDetails};

    #[test]
    fn every_placeholder_becomes_a_local_lambda_arn() {
        let template = r#"{"A":"${validate_function_arn}","B":"${create_green_function_arn}",
            "C":"${verify_health_function_arn}","D":"${shift_traffic_function_arn}",
            "E":"${drain_blue_function_arn}","F":"${drain_blue_function_arn}"}"#;
        let out = render_definition(template).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["A"],
            "arn:aws:lambda:us-east-1:123456789012:function:validate"
        );
        assert_eq!(
            v["B"],
            "arn:aws:lambda:us-east-1:123456789012:function:create-green"
        );
        assert_eq!(
            v["C"],
            "arn:aws:lambda:us-east-1:123456789012:function:verify-health"
        );
        assert_eq!(
            v["D"],
            "arn:aws:lambda:us-east-1:123456789012:function:shift-traffic"
        );
        assert_eq!(
            v["F"],
            "arn:aws:lambda:us-east-1:123456789012:function:drain-blue"
        );
        assert!(!out.contains("${"));
    }

    #[test]
    fn an_unknown_placeholder_is_named_in_the_error() {
        let err = render_definition(r#"{"A":"${nonexistent_function_arn}"}"#).unwrap_err();
        assert!(
            err.to_string().contains("${nonexistent_function_arn}"),
            "{err}"
        );
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(asl_path().ends_with("statemachine/deploy.asl.json"));
    }

    fn entered(id: i64, name: &str) -> HistoryEvent {
        HistoryEvent::builder()
            .id(id)
            .r#type(HistoryEventType::TaskStateEntered)
            .timestamp(aws_sdk_sfn::primitives::DateTime::from_secs(id))
            .state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name(name)
                    .input(format!(r#"{{"n":{id}}}"#))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn states_are_listed_in_the_order_they_were_entered() {
        let h = vec![
            entered(2, "Validate"),
            entered(5, "CreateGreen"),
            entered(9, "ShiftTraffic"),
        ];
        assert_eq!(
            states_entered(&h),
            ["Validate", "CreateGreen", "ShiftTraffic"]
        );
        assert_eq!(current_state(&h).as_deref(), Some("ShiftTraffic"));
        assert_eq!(
            inputs_of(&h, "CreateGreen"),
            vec![serde_json::json!({"n": 5})]
        );
    }

    #[test]
    fn an_ended_execution_has_no_current_state() {
        let mut h = vec![entered(2, "Validate")];
        h.push(
            HistoryEvent::builder()
                .id(3)
                .r#type(HistoryEventType::ExecutionFailed)
                .timestamp(aws_sdk_sfn::primitives::DateTime::from_secs(3))
                .execution_failed_event_details(
                    ExecutionFailedEventDetails::builder().error("X").build(),
                )
                .build()
                .unwrap(),
        );
        assert_eq!(current_state(&h), None);
        assert_eq!(current_state(&[]), None);
    }

    #[test]
    fn execution_names_are_cleaned_and_bounded() {
        assert_eq!(
            execution_name(&["orders", "sha256:ab/c"]),
            "orders-sha256-ab-c"
        );
        assert_eq!(execution_name(&[&"x".repeat(100)]).len(), 80);
    }
}
