//! Lambda invokes, routed to `cargo lambda watch` with Lambda's error contract restored.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::proxy::{self, Incoming};

const PREFIX: &str = "/2015-03-31/functions/";
const SUFFIX: &str = "/invocations";

/// The function a `POST /2015-03-31/functions/<name or ARN>/invocations` invokes.
pub fn invoked_function(method: &Method, path: &str) -> Option<String> {
    if method != Method::POST {
        return None;
    }
    let reference = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if reference.is_empty() || reference.contains('/') {
        return None;
    }
    function_name(&percent_decode_str(reference).decode_utf8().ok()?)
}

/// The binary name behind a function reference: `NAME`, `NAME:QUALIFIER`,
/// `ACCOUNT:function:NAME[:QUALIFIER]` or `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
pub fn function_name(reference: &str) -> Option<String> {
    let name = match reference.split_once(":function:") {
        Some((_, rest)) => rest,
        None => reference,
    };
    let name = name.split(':').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// How Lambda would answer what `cargo lambda watch` answered: a function error (HTTP 500 with
/// an `errorType` in the JSON body) is HTTP 200 with `X-Amz-Function-Error: Unhandled`.
pub fn lambda_contract(status: StatusCode, body: &[u8]) -> (StatusCode, Option<&'static str>) {
    if status != StatusCode::INTERNAL_SERVER_ERROR {
        return (status, None);
    }
    let is_function_error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("errorType").is_some_and(serde_json::Value::is_string));
    if is_function_error {
        (StatusCode::OK, Some("Unhandled"))
    } else {
        (status, None)
    }
}

/// Invokes `function` on the Lambda host and answers as Lambda does.
pub async fn invoke(
    http: &reqwest::Client,
    lambda_url: &str,
    function: &str,
    req: &Incoming,
) -> Response {
    let mut headers = proxy::end_to_end(&req.headers);
    headers.remove(header::HOST);
    let request = http
        .post(format!("{lambda_url}{PREFIX}{function}{SUFFIX}"))
        .headers(headers)
        .body(req.body.clone());
    let mut answer = match proxy::send(request).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::error!(function, error = %err, "lambda host is unreachable");
            return proxy::json_answer(
                StatusCode::BAD_GATEWAY,
                "application/json",
                &json!({
                    "errorType": "ServiceException",
                    "errorMessage": format!(
                        "the local gateway could not reach the lambda host at {lambda_url} for function {function}: {err} (is `cargo lambda watch` running on BG_LAMBDA_PORT?)"
                    ),
                }),
            )
            .into_response();
        }
    };
    let (status, function_error) = lambda_contract(answer.status, &answer.body);
    if let Some(kind) = function_error {
        tracing::info!(
            function,
            "function error, answered as X-Amz-Function-Error: Unhandled"
        );
        answer.headers.insert(
            HeaderName::from_static("x-amz-function-error"),
            HeaderValue::from_static(kind),
        );
    }
    answer.status = status;
    proxy::set_request_id(&mut answer.headers);
    answer.headers.insert(
        HeaderName::from_static("x-amz-executed-version"),
        HeaderValue::from_static("$LATEST"),
    );
    answer.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_function_reference_to_the_binary_name() {
        let cases = [
            ("verify-health", "verify-health"),
            ("verify-health:live", "verify-health"),
            ("123456789012:function:verify-health", "verify-health"),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:verify-health",
                "verify-health",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:verify-health:$LATEST",
                "verify-health",
            ),
        ];
        for (reference, name) in cases {
            assert_eq!(
                function_name(reference).as_deref(),
                Some(name),
                "{reference}"
            );
        }
        assert_eq!(function_name(""), None);
    }

    #[test]
    fn routes_url_encoded_arns_from_the_invoke_path() {
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Acreate-green/invocations";
        assert_eq!(
            invoked_function(&Method::POST, path).as_deref(),
            Some("create-green")
        );
        assert_eq!(
            invoked_function(&Method::POST, "/2015-03-31/functions/validate/invocations")
                .as_deref(),
            Some("validate")
        );
    }

    #[test]
    fn leaves_other_lambda_calls_to_moto() {
        assert_eq!(
            invoked_function(&Method::GET, "/2015-03-31/functions/validate/invocations"),
            None
        );
        assert_eq!(
            invoked_function(&Method::POST, "/2015-03-31/functions/validate"),
            None
        );
        assert_eq!(invoked_function(&Method::POST, "/"), None);
    }

    #[test]
    fn a_function_error_becomes_200_with_the_unhandled_header() {
        let body = br#"{"errorType":"GreenUnhealthy","errorMessage":"2 of 3 targets unhealthy"}"#;
        assert_eq!(
            lambda_contract(StatusCode::INTERNAL_SERVER_ERROR, body),
            (StatusCode::OK, Some("Unhandled"))
        );
    }

    #[test]
    fn other_answers_keep_their_status() {
        assert_eq!(
            lambda_contract(StatusCode::OK, br#"{"ok":true}"#),
            (StatusCode::OK, None)
        );
        assert_eq!(
            lambda_contract(StatusCode::INTERNAL_SERVER_ERROR, b"build failed"),
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        );
        assert_eq!(
            lambda_contract(StatusCode::NOT_FOUND, br#"{"errorType":"x"}"#),
            (StatusCode::NOT_FOUND, None)
        );
    }
}
