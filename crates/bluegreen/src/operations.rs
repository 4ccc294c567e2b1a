//! What an operator (or a trigger) does to a running deployment: read its status and
//! progress, approve it, promote it, abort it.
//!
//! A deployment waiting for an approval is paused on a Step Functions task token; the token
//! is in the execution's history (the `TaskScheduled` event of the approval state), so
//! approving, promoting or aborting there answers the token with `{"decision": "approve" |
//! "promote" | "abort", "by": …}`. Anywhere else, `promote` and
//! `abort` leave an operator command on the ECS service (see [`crate::ports::OperatorCommands`]),
//! which the deployment reads at its next poll of green: at most `timing.pollIntervalSeconds`
//! later it skips its remaining steps, or rolls back.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::info;

use crate::error::{Error, Result};
use crate::model::DeployRequest;
use crate::ports::{Command, Ecs, OperatorCommands};

/// States in which the deployment waits for an operator.
pub const APPROVAL_STATES: [&str; 2] = ["AwaitTestApproval", "AwaitStepApproval"];

/// An execution as Step Functions describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    pub arn: String,
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// The execution input, as started.
    pub input: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One event of an execution's history, as far as operations need it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryEntry {
    pub id: i64,
    /// The event type, e.g. `TaskStateEntered`, `TaskScheduled`.
    pub kind: String,
    /// The state's name, for state entered/exited events.
    pub state: Option<String>,
    /// The state's output, for state exited events.
    pub output: Option<String>,
    /// The resolved parameters, for `TaskScheduled`.
    pub parameters: Option<String>,
}

/// Step Functions, as far as operations need it.
pub trait Executions {
    /// The execution `arn`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when it does not exist; AWS errors.
    fn execution(&self, arn: &str) -> impl Future<Output = Result<ExecutionState>>;

    /// Every event of the execution's history, oldest first.
    ///
    /// # Errors
    /// As [`Executions::execution`].
    fn history(&self, arn: &str) -> impl Future<Output = Result<Vec<HistoryEntry>>>;

    /// Answers a task token with success and `output`.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] when the token is no longer waited for; AWS errors.
    fn send_task_success(&self, token: &str, output: &Value) -> impl Future<Output = Result<()>>;

    /// Starts execution `name` of `state_machine_arn` with `input`, or finds the execution
    /// of that name a retry of the same start made (Step Functions keeps names for 90 days).
    ///
    /// # Errors
    /// [`Error::Config`] when the state machine does not exist; AWS errors.
    fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Value,
    ) -> impl Future<Output = Result<StartOutcome>>;
}

/// What starting a named execution did.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// A new execution, with this ARN.
    Started(String),
    /// An execution of that name and the same input existed: a repeated start.
    AlreadyStarted(ExecutionState),
    /// An execution of that name exists with another input.
    NameTaken(ExecutionState),
}

impl StartOutcome {
    /// The execution's ARN, whichever it is.
    pub fn arn(&self) -> &str {
        match self {
            StartOutcome::Started(arn) => arn,
            StartOutcome::AlreadyStarted(e) | StartOutcome::NameTaken(e) => &e.arn,
        }
    }

    /// The execution `input` asked for: a new one or a repeat of the same start.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the name is taken by an execution with another input.
    pub fn same_input(self, name: &str) -> Result<String> {
        match self {
            StartOutcome::Started(arn) => Ok(arn),
            StartOutcome::AlreadyStarted(e) => Ok(e.arn),
            StartOutcome::NameTaken(_) => Err(Error::InvalidInput(format!(
                "an execution named {name} exists already with another input"
            ))),
        }
    }
}

/// Where a deployment is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub execution_arn: String,
    pub execution_name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// How far a deployment got.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The state it is in (or ended in).
    pub state: Option<String>,
    /// Waiting for an operator to approve, promote or abort.
    pub awaiting_approval: bool,
    /// The traffic step, 1-based, and how many there are.
    pub step: Option<u32>,
    pub steps: Option<u32>,
    /// Production weights as last confirmed by the deployment.
    pub blue_weight: Option<i32>,
    pub green_weight: Option<i32>,
    /// What the last poll of green said.
    pub last_verification: Option<String>,
}

impl Progress {
    /// One line for people: `VerifyTrafficStep, step 1 of 2, blue 90 / green 10: …`.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.state.clone().unwrap_or_else(|| "not started".into())];
        if let (Some(step), Some(steps)) = (self.step, self.steps) {
            parts.push(format!("step {step} of {steps}"));
        }
        if let (Some(b), Some(g)) = (self.blue_weight, self.green_weight) {
            parts.push(format!("blue {b} / green {g}"));
        }
        if self.awaiting_approval {
            parts.push("waiting for an approval".into());
        }
        let mut line = parts.join(", ");
        if let Some(v) = &self.last_verification {
            line.push_str(": ");
            line.push_str(v);
        }
        line
    }
}

/// A failure cause for people. Step Functions records a Lambda error's cause as the JSON of
/// the error (`{"errorType": …, "errorMessage": …}`), also inside the state machine's own
/// `rolled back to blue: …`; this keeps the text around it and shows only the message.
pub fn readable_cause(cause: &str) -> String {
    let Some(start) = cause.find('{') else {
        return cause.to_string();
    };
    match serde_json::from_str::<Value>(&cause[start..]) {
        Ok(error) => match error["errorMessage"].as_str() {
            Some(message) => format!("{}{message}", &cause[..start]),
            None => cause.to_string(),
        },
        Err(_) => cause.to_string(),
    }
}

/// What [`approve`], [`promote`] and [`abort`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivered {
    /// The paused approval was answered.
    ApprovalAnswered,
    /// A command was left on the service for the next poll of green.
    CommandLeft,
}

/// The status and progress of execution `arn`.
///
/// # Errors
/// [`Error::InvalidInput`] when the execution does not exist; AWS errors.
pub async fn status<X: Executions>(sfn: &X, arn: &str) -> Result<Status> {
    let execution = sfn.execution(arn).await?;
    let history = sfn.history(arn).await?;
    Ok(Status {
        execution_arn: execution.arn.clone(),
        execution_name: execution.name.clone(),
        status: execution.status.clone(),
        progress: progress(&history),
        error: execution.error,
        cause: execution.cause,
    })
}

/// The progress the history shows: the current state, and what the latest state outputs
/// say of the traffic step, the weights and the last poll.
pub fn progress(history: &[HistoryEntry]) -> Progress {
    let mut p = Progress {
        state: current_state(history),
        ..Progress::default()
    };
    p.awaiting_approval = p
        .state
        .as_deref()
        .is_some_and(|s| APPROVAL_STATES.contains(&s))
        && pending_token(history).is_some();
    let outputs = history
        .iter()
        .rev()
        .filter_map(|e| e.output.as_deref())
        .filter_map(|o| serde_json::from_str::<Value>(o).ok());
    for out in outputs {
        if p.step.is_none()
            && let (Some(index), Some(count)) = (
                out["traffic"]["index"].as_u64(),
                out["traffic"]["count"].as_u64(),
            )
        {
            p.step = u32::try_from(index.min(count.saturating_sub(1)) + 1).ok();
            p.steps = u32::try_from(count).ok();
        }
        if p.blue_weight.is_none()
            && let (Some(b), Some(g)) = (
                out["weights"]["blueWeight"].as_i64(),
                out["weights"]["greenWeight"].as_i64(),
            )
        {
            p.blue_weight = i32::try_from(b).ok();
            p.green_weight = i32::try_from(g).ok();
        }
        if p.last_verification.is_none()
            && let Some(reason) = out["poll"]["reason"].as_str()
        {
            p.last_verification = Some(reason.to_string());
        }
    }
    p
}

/// The state the execution is in: the last one entered.
fn current_state(history: &[HistoryEntry]) -> Option<String> {
    history
        .iter()
        .rev()
        .find(|e| e.kind.ends_with("StateEntered"))
        .and_then(|e| e.state.clone())
}

/// The task token of an approval the execution is paused on, if any: the last
/// `TaskScheduled` of a `waitForTaskToken` task that no task event answered since.
fn pending_token(history: &[HistoryEntry]) -> Option<String> {
    let scheduled = history.iter().rposition(|e| e.kind == "TaskScheduled")?;
    let answered = history[scheduled + 1..].iter().any(|e| {
        matches!(
            e.kind.as_str(),
            "TaskSucceeded" | "TaskFailed" | "TaskTimedOut" | "TaskAborted" | "TaskSubmitFailed"
        )
    });
    if answered {
        return None;
    }
    let parameters: Value = serde_json::from_str(history[scheduled].parameters.as_deref()?).ok()?;
    parameters["Payload"]["taskToken"]
        .as_str()
        .map(str::to_string)
}

/// A running execution and, if paused on an approval, its token.
async fn running<X: Executions>(
    sfn: &X,
    arn: &str,
    doing: &str,
) -> Result<(ExecutionState, Option<String>, Option<String>)> {
    let execution = sfn.execution(arn).await?;
    if execution.status != "RUNNING" {
        return Err(Error::PreconditionFailed(format!(
            "execution {} is {}; there is nothing to {doing}",
            execution.name, execution.status
        )));
    }
    let history = sfn.history(arn).await?;
    let state = current_state(&history);
    let token = state
        .as_deref()
        .filter(|s| APPROVAL_STATES.contains(s))
        .and_then(|_| pending_token(&history));
    Ok((execution, state, token))
}

/// Approves a deployment paused on an approval.
///
/// # Errors
/// [`Error::PreconditionFailed`] when the execution is not running or not waiting for an
/// approval; [`Error::InvalidInput`] when it does not exist; AWS errors.
pub async fn approve<X: Executions>(sfn: &X, arn: &str, by: &str) -> Result<Delivered> {
    let (execution, state, token) = running(sfn, arn, "approve").await?;
    let Some(token) = token else {
        return Err(Error::PreconditionFailed(format!(
            "execution {} is not waiting for an approval (it is in {})",
            execution.name,
            state.as_deref().unwrap_or("no state yet")
        )));
    };
    sfn.send_task_success(&token, &json!({"decision": "approve", "by": by}))
        .await?;
    info!(execution = %execution.name, by, "approved");
    Ok(Delivered::ApprovalAnswered)
}

/// Promotes a deployment: skips its remaining steps (or the rest of blue's retention).
///
/// # Errors
/// As [`approve`]; also what reading the service or tagging it fails with.
pub async fn promote<X: Executions, E: Ecs + OperatorCommands>(
    sfn: &X,
    ecs: &E,
    arn: &str,
    by: &str,
) -> Result<Delivered> {
    let (execution, _, token) = running(sfn, arn, "promote").await?;
    if let Some(token) = token {
        sfn.send_task_success(&token, &json!({"decision": "promote", "by": by}))
            .await?;
        info!(execution = %execution.name, by, "promoted at an approval");
        return Ok(Delivered::ApprovalAnswered);
    }
    leave(ecs, &execution, Command::Promote, by).await
}

/// Aborts a deployment: it rolls back to blue.
///
/// # Errors
/// As [`promote`].
pub async fn abort<X: Executions, E: Ecs + OperatorCommands>(
    sfn: &X,
    ecs: &E,
    arn: &str,
    by: &str,
) -> Result<Delivered> {
    let (execution, _, token) = running(sfn, arn, "abort").await?;
    if let Some(token) = token {
        // The state machine turns this answer into the `Aborted` error and rolls back.
        sfn.send_task_success(&token, &json!({"decision": "abort", "by": by}))
            .await?;
        info!(execution = %execution.name, by, "aborted at an approval");
        return Ok(Delivered::ApprovalAnswered);
    }
    leave(ecs, &execution, Command::Abort, by).await
}

/// Leaves `command` on the execution's service.
async fn leave<E: Ecs + OperatorCommands>(
    ecs: &E,
    execution: &ExecutionState,
    command: Command,
    by: &str,
) -> Result<Delivered> {
    let input: Value = execution
        .input
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or(Value::Null);
    let request: DeployRequest = crate::lambda::parse_payload(input).map_err(|e| {
        Error::PreconditionFailed(format!(
            "execution {} was not started with a deployment input ({e})",
            execution.name
        ))
    })?;
    let service = ecs.service(&request.cluster, &request.service).await?;
    ecs.send_command(&service.arn, &execution.name, command, by)
        .await?;
    info!(execution = %execution.name, service = %service.name, command = command.as_str(), by, "left an operator command on the service");
    Ok(Delivered::CommandLeft)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(id: i64, kind: &str, state: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            id,
            kind: kind.into(),
            state: state.map(str::to_string),
            ..HistoryEntry::default()
        }
    }

    #[test]
    fn a_lambda_errors_cause_reads_as_its_message() {
        assert_eq!(
            readable_cause(
                r#"rolled back to blue: {"errorType":"VerificationFailed","errorMessage":"verification failed: 2 targets"}"#
            ),
            "rolled back to blue: verification failed: 2 targets"
        );
        assert_eq!(
            readable_cause("rolled back to blue: no approval within 2 seconds"),
            "rolled back to blue: no approval within 2 seconds"
        );
        assert_eq!(readable_cause("odd {cause"), "odd {cause");
    }

    #[test]
    fn progress_reads_the_state_step_weights_and_last_poll_from_the_history() {
        let mut shifted = entry(5, "TaskStateExited", Some("ShiftTraffic"));
        shifted.output = Some(
            json!({"traffic": {"index": 1, "count": 3}, "weights": {"blueWeight": 60, "greenWeight": 40}})
                .to_string(),
        );
        let mut polled = entry(8, "TaskStateExited", Some("VerifyTrafficStep"));
        polled.output = Some(
            json!({"traffic": {"index": 1, "count": 3}, "weights": {"blueWeight": 60, "greenWeight": 40}, "poll": {"reason": "baking, poll 1 of 3"}})
                .to_string(),
        );
        let history = vec![
            entry(1, "ExecutionStarted", None),
            shifted,
            polled,
            entry(9, "ChoiceStateEntered", Some("StepVerified")),
            entry(10, "WaitStateEntered", Some("WaitForStepPoll")),
        ];
        let p = progress(&history);
        assert_eq!(p.state.as_deref(), Some("WaitForStepPoll"));
        assert_eq!((p.step, p.steps), (Some(2), Some(3)));
        assert_eq!((p.blue_weight, p.green_weight), (Some(60), Some(40)));
        assert_eq!(p.last_verification.as_deref(), Some("baking, poll 1 of 3"));
        assert!(!p.awaiting_approval);
        assert_eq!(
            p.summary(),
            "WaitForStepPoll, step 2 of 3, blue 60 / green 40: baking, poll 1 of 3"
        );
    }

    #[test]
    fn a_pending_approval_is_the_last_scheduled_task_not_yet_answered() {
        let mut scheduled = entry(3, "TaskScheduled", None);
        scheduled.parameters = Some(
            json!({"FunctionName": "verify-health", "Payload": {"phase": "approval", "taskToken": "token-1"}})
                .to_string(),
        );
        let mut history = vec![
            entry(2, "TaskStateEntered", Some("AwaitStepApproval")),
            scheduled,
            entry(4, "TaskStarted", None),
        ];
        assert_eq!(pending_token(&history).as_deref(), Some("token-1"));
        assert!(progress(&history).awaiting_approval);
        history.push(entry(5, "TaskSucceeded", None));
        assert_eq!(pending_token(&history), None);
    }
}
