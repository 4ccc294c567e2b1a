//! Invoking the deploy functions directly, the way Step Functions does: the Lambda Invoke API
//! on the gateway (`POST /2015-03-31/functions/<name>/invocations`), which forwards to
//! `cargo lambda watch` and keeps Lambda's error contract (HTTP 200, `X-Amz-Function-Error`,
//! body `{"errorType", "errorMessage"}`).

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::Endpoint;

/// The header Lambda sets on a function error.
pub const FUNCTION_ERROR_HEADER: &str = "x-amz-function-error";

/// A function error: what the step reported, as the state machine would see it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    /// The stable error name (`NotReady`, `InvalidInput`, …).
    pub error_type: String,
    pub error_message: String,
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for FunctionError {}

/// What an invocation answered: the function's output, or its error.
pub type Answer = Result<serde_json::Value, FunctionError>;

/// A client of the Lambda Invoke API on the gateway.
#[derive(Debug, Clone)]
pub struct Functions {
    base: String,
    http: reqwest::Client,
}

impl Functions {
    /// A client of the functions behind `endpoint`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // The first invoke of a binary starts it; a loaded machine is slow.
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client for Lambda invokes")?;
        Ok(Functions {
            base: endpoint.url().to_string(),
            http,
        })
    }

    /// Invokes function `name` (a binary: `validate`, `create-green`, …) with `payload` and
    /// answers its output or its function error.
    ///
    /// # Errors
    /// When the invoke itself fails: no answer, a status other than 200, or a body that is
    /// not JSON (a function error is not an error here, it is the [`Answer`]).
    pub async fn invoke(
        &self,
        name: &str,
        payload: &impl serde::Serialize,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}/2015-03-31/functions/{name}/invocations", self.base);
        let rsp = self
            .http
            .post(&url)
            .json(payload)
            .send()
            .await
            .with_context(|| format!("invoking {name}: no answer (is the local stack up?)"))?;
        let status = rsp.status();
        let function_error = rsp.headers().contains_key(FUNCTION_ERROR_HEADER);
        let body = rsp
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {name}"))?;
        if !status.is_success() {
            bail!(
                "invoking {name} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        if function_error {
            let error: FunctionError = serde_json::from_slice(&body).with_context(|| {
                format!(
                    "{name} reported a function error without errorType/errorMessage: {}",
                    String::from_utf8_lossy(&body)
                )
            })?;
            return Ok(Err(error));
        }
        let output = serde_json::from_slice(&body).with_context(|| {
            format!(
                "{name} answered something that is not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        Ok(Ok(output))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_reads_as_its_name_and_message() {
        let e: FunctionError = serde_json::from_str(
            r#"{"errorType":"NotReady","errorMessage":"not ready: green has 0 of 2 healthy targets"}"#,
        )
        .unwrap();
        assert_eq!(e.error_type, "NotReady");
        assert_eq!(
            e.to_string(),
            "NotReady: not ready: green has 0 of 2 healthy targets"
        );
    }
}
