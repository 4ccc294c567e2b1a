//! The one error type of the workflow and its stable names.
//!
//! Each variant maps to a fixed `error_type` that the state machine matches on in `Retry`
//! and `Catch` (`statemachine/deploy.asl.json`). The names are a contract: renaming one is a
//! breaking change for the ASL and for anyone reading execution histories.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::Diagnostic;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a step can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names something that does not exist. Nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The live environment is not in a state a deployment can safely start or continue from.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// Another deployment holds the service.
    #[error("deployment in progress: {0}")]
    DeploymentInProgress(String),
    /// The thing being waited for is not there yet; the state machine polls again.
    #[error("not ready: {0}")]
    NotReady(String),
    /// Green is unhealthy: the state machine rolls back.
    #[error("verification failed: {0}")]
    VerificationFailed(String),
    /// An operator aborted the deployment: the state machine rolls back.
    #[error("aborted: {0}")]
    Aborted(String),
    /// AWS throttled the call; the state machine retries with backoff and jitter.
    #[error("{operation} on {resource} was throttled ({code}): {message}")]
    Throttled {
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    },
    /// AWS answered with a server error or could not be reached; retried like throttling.
    #[error("{operation} on {resource} failed transiently: {message}")]
    Transient {
        operation: &'static str,
        resource: String,
        message: String,
    },
    /// AWS rejected the call for a reason retrying will not fix.
    #[error("{operation} on {resource} failed ({code}): {message}")]
    Aws {
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    },
    /// The function's own configuration (environment) is wrong.
    #[error("configuration error: {0}")]
    Config(String),
}

/// AWS error codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// AWS error codes that mean "try again, it was not you".
const TRANSIENT_CODES: &[&str] = &[
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServiceError",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
];

impl Error {
    /// What went wrong, without the kind's prefix (`invalid input: …`), to quote inside
    /// another message.
    pub fn reason(&self) -> String {
        match self {
            Error::InvalidInput(m)
            | Error::PreconditionFailed(m)
            | Error::DeploymentInProgress(m)
            | Error::NotReady(m)
            | Error::VerificationFailed(m)
            | Error::Aborted(m)
            | Error::Config(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// The stable name the state machine matches on.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "InvalidInput",
            Error::PreconditionFailed(_) => "PreconditionFailed",
            Error::DeploymentInProgress(_) => "DeploymentInProgress",
            Error::NotReady(_) => "NotReady",
            Error::VerificationFailed(_) => "VerificationFailed",
            Error::Aborted(_) => "Aborted",
            Error::Throttled { .. } => "AwsThrottled",
            Error::Transient { .. } => "AwsTransient",
            Error::Aws { .. } => "AwsError",
            Error::Config(_) => "ConfigError",
        }
    }

    /// Classifies an SDK error of `operation` on `resource` as throttling, transient or final.
    pub fn aws<E, R>(
        operation: &'static str,
        resource: impl Into<String>,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let resource = resource.into();
        match &err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                let code = e.code().unwrap_or("Unknown").to_string();
                let message = e.message().unwrap_or("no message").to_string();
                Self::from_code(operation, resource, code, message)
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => Error::Transient {
                operation,
                resource,
                message: describe_sdk_error(&err),
            },
            _ => {
                let code = err.code().unwrap_or("Unknown").to_string();
                let message = describe_sdk_error(&err);
                Self::from_code(operation, resource, code, message)
            }
        }
    }

    /// Classifies a service error by its AWS error code.
    pub fn from_code(
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    ) -> Self {
        if THROTTLING_CODES.contains(&code.as_str()) {
            Error::Throttled {
                operation,
                resource,
                code,
                message,
            }
        } else if TRANSIENT_CODES.contains(&code.as_str()) {
            Error::Transient {
                operation,
                resource,
                message: format!("{code}: {message}"),
            }
        } else {
            Error::Aws {
                operation,
                resource,
                code,
                message,
            }
        }
    }
}

fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_retryable_throttles() {
        let err = Error::from_code(
            "DescribeServices",
            "svc".into(),
            "ThrottlingException".into(),
            "rate".into(),
        );
        assert_eq!(err.error_type(), "AwsThrottled");
    }

    #[test]
    fn server_errors_are_transient() {
        let err = Error::from_code(
            "ModifyListener",
            "l".into(),
            "ServiceUnavailable".into(),
            "down".into(),
        );
        assert_eq!(err.error_type(), "AwsTransient");
    }

    #[test]
    fn other_codes_are_final_and_keep_the_code_in_the_message() {
        let err = Error::from_code(
            "CreateTaskSet",
            "cluster/svc".into(),
            "InvalidParameterException".into(),
            "bad subnet".into(),
        );
        assert_eq!(err.error_type(), "AwsError");
        assert_eq!(
            err.to_string(),
            "CreateTaskSet on cluster/svc failed (InvalidParameterException): bad subnet"
        );
    }

    #[test]
    fn diagnostics_carry_the_stable_name_not_a_rust_type() {
        let d: Diagnostic = Error::NotReady("green has 1 of 2 healthy targets".into()).into();
        assert_eq!(d.error_type, "NotReady");
        assert_eq!(
            d.error_message,
            "not ready: green has 1 of 2 healthy targets"
        );
    }
}
