//! Glue between `lambda_runtime` and the steps: payload parsing with precise errors and the
//! one handler shape every function uses.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Deserializes a step payload, naming the offending field on failure.
///
/// Lambda functions take `serde_json::Value` and parse here, so that a malformed payload is
/// an [`Error::InvalidInput`] the state machine can match instead of a runtime error name.
///
/// # Errors
/// [`Error::InvalidInput`] with the JSON path and serde's reason.
pub fn parse_payload<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    let kind = json_kind(&value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            if kind == "an object" {
                Error::InvalidInput(inner.to_string())
            } else {
                // serde's words for an array in place of a struct ("invalid length 0,
                // expected struct …") say nothing to a caller.
                Error::InvalidInput(format!("expected a JSON object, got {kind}"))
            }
        } else {
            Error::InvalidInput(format!("{path}: {inner}"))
        }
    })
}

/// What kind of JSON value `v` is, for messages: "an object", "an array", "a string", …
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `step` as a Lambda handler: parses the payload into `I`, runs it, logs the outcome
/// with its stable error name, and converts errors into [`Diagnostic`]s.
///
/// # Errors
/// Whatever the step returns, as a [`Diagnostic`] carrying [`Error::error_type`].
pub async fn handle<I, O, F, Fut>(
    step_name: &'static str,
    event: LambdaEvent<serde_json::Value>,
    step: F,
) -> std::result::Result<O, Diagnostic>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<O>>,
{
    let request_id = event.context.request_id.clone();
    let outcome = match parse_payload::<I>(event.payload) {
        Ok(input) => step(input).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(output) => {
            tracing::info!(step = step_name, request_id = %request_id, "step succeeded");
            Ok(output)
        }
        Err(e) => {
            let error_type = e.error_type();
            match &e {
                Error::NotReady(_) => {
                    tracing::info!(step = step_name, request_id = %request_id, error_type, error = %e, "step not ready")
                }
                _ => {
                    tracing::warn!(step = step_name, request_id = %request_id, error_type, error = %e, "step failed")
                }
            }
            Err(e.into())
        }
    }
}
