//! The [`Executions`] port over `aws-sdk-sfn`.

use aws_sdk_sfn::Client;

use super::service_error_is;
use crate::error::{Error, Result};
use crate::operations::{ExecutionState, Executions, HistoryEntry, StartOutcome};

/// AWS Step Functions through the SDK.
#[derive(Debug, Clone)]
pub struct SdkSfn {
    client: Client,
}

impl SdkSfn {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkSfn { client }
    }

    /// An adapter over a client of `conf`.
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        SdkSfn::new(Client::new(conf))
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn missing(arn: &str) -> Error {
    Error::InvalidInput(format!(
        "execution {arn} not found; check the execution ARN and the region"
    ))
}

impl Executions for SdkSfn {
    async fn execution(&self, arn: &str) -> Result<ExecutionState> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| {
                    s.is_execution_does_not_exist() || s.is_invalid_arn()
                }) {
                    missing(arn)
                } else {
                    Error::aws("DescribeExecution", arn, e)
                }
            })?;
        Ok(ExecutionState {
            arn: out.execution_arn().to_string(),
            name: out.name().unwrap_or_default().to_string(),
            status: out.status().as_str().to_string(),
            input: out.input().map(str::to_string),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
        })
    }

    async fn history(&self, arn: &str) -> Result<Vec<HistoryEntry>> {
        let mut entries = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    if service_error_is(&e, |s| {
                        s.is_execution_does_not_exist() || s.is_invalid_arn()
                    }) {
                        missing(arn)
                    } else {
                        Error::aws("GetExecutionHistory", arn, e)
                    }
                })?;
            for e in out.events() {
                entries.push(HistoryEntry {
                    id: e.id(),
                    kind: e.r#type().as_str().to_string(),
                    state: e
                        .state_entered_event_details()
                        .map(|d| d.name().to_string())
                        .or_else(|| e.state_exited_event_details().map(|d| d.name().to_string())),
                    output: e
                        .state_exited_event_details()
                        .and_then(|d| d.output())
                        .map(str::to_string),
                    parameters: e
                        .task_scheduled_event_details()
                        .map(|d| d.parameters().to_string()),
                });
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(entries)
    }

    async fn send_task_success(&self, token: &str, output: &serde_json::Value) -> Result<()> {
        self.client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_task_timed_out() || s.is_task_does_not_exist()) {
                    Error::PreconditionFailed(
                        "the approval is no longer waited for (it timed out or was answered)"
                            .into(),
                    )
                } else {
                    Error::aws("SendTaskSuccess", "approval task token", e)
                }
            })?;
        Ok(())
    }

    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<StartOutcome> {
        let arn = format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        );
        // Step Functions answers a repeated start of a running execution (same name, same
        // input) as if it were new: look first, so that a repeat is reported as one.
        match self.execution(&arn).await {
            Ok(existing) => return Ok(existing_outcome(existing, input)),
            Err(Error::InvalidInput(_)) => {}
            Err(e) => return Err(e),
        }
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match out {
            Ok(out) => Ok(StartOutcome::Started(out.execution_arn().to_string())),
            Err(e) if service_error_is(&e, |s| s.is_execution_already_exists()) => {
                // Another start took the name in between.
                Ok(existing_outcome(self.execution(&arn).await?, input))
            }
            Err(e) if service_error_is(&e, |s| s.is_state_machine_does_not_exist()) => {
                Err(Error::Config(format!(
                    "state machine {state_machine_arn} not found; check the configured ARN"
                )))
            }
            Err(e) => Err(Error::aws("StartExecution", state_machine_arn, e)),
        }
    }
}

/// A start that found execution `existing` of the same name.
fn existing_outcome(existing: ExecutionState, input: &serde_json::Value) -> StartOutcome {
    let same = existing
        .input
        .as_deref()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
        .is_some_and(|i| &i == input);
    if same {
        StartOutcome::AlreadyStarted(existing)
    } else {
        StartOutcome::NameTaken(existing)
    }
}
