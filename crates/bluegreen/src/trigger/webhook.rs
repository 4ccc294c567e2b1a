//! The webhook a Spinnaker Webhook stage (or anyone with the token) calls over the trigger's
//! Lambda Function URL (`docs/triggers.md`):
//!
//! | request | answer |
//! |---|---|
//! | `POST /deployments` `{deployment, image, spinnakerExecutionId}` | `202`, `Location`, `{executionName, executionArn, statusUrl, status}` |
//! | `GET /deployments/{executionName}` | `200` `{executionName, status, progress, error?, cause?}` |
//! | `POST /deployments/{executionName}/abort` (`approve`, `promote`) | `202` `{executionName, action, delivered, status}` |
//!
//! Every request carries `Authorization: Bearer <token>`, compared in constant time with the
//! `AWSCURRENT` and `AWSPENDING` values of the secret [`TOKEN_SECRET_VAR`] names (so the
//! token can be rotated without a window where Spinnaker is refused). A start is idempotent:
//! its execution is named `<deployment>-hook-<spinnakerExecutionId>`, and Spinnaker's re-sent
//! POST finds it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::catalogue::{Catalogue, MAX_NAME_LEN};
use crate::error::{Error, Result};
use crate::operations::{self, Delivered, Executions, StartOutcome};
use crate::ports::{Ecs, OperatorCommands};
use crate::rotation::SecretVersions;

/// Environment variable: the Secrets Manager secret (name or ARN) holding the bearer token.
pub const TOKEN_SECRET_VAR: &str = "WEBHOOK_TOKEN_SECRET";
/// Environment variable: the webhook's public base URL, for `Location` and `statusUrl`
/// (default `https://<Function URL domain>`).
pub const PUBLIC_URL_VAR: &str = "WEBHOOK_PUBLIC_URL";
/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `spinnakerExecutionId`: the execution name is at most 80 characters.
pub const MAX_REQUEST_ID_LEN: usize = 80 - MAX_NAME_LEN - "-hook-".len();
/// How long the token's values are kept between reads of the secret.
const TOKEN_CACHE: Duration = Duration::from_secs(60);
/// A refused token re-reads the secret (it may have just rotated) at most this often.
const TOKEN_REREAD: Duration = Duration::from_secs(5);

/// The execution name of a webhook start of `deployment` for request `request_id`.
pub fn execution_name(deployment: &str, request_id: &str) -> String {
    format!("{deployment}-hook-{request_id}")
}

/// The bearer token check: the secret's `AWSCURRENT` and `AWSPENDING` values, cached.
#[derive(Debug)]
pub struct TokenCheck<S> {
    secrets: S,
    secret_id: String,
    /// When read, and the SHA-256 of each value.
    cache: Mutex<Option<(Instant, Vec<[u8; 32]>)>>,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header: 401.
    Missing,
    /// A token that is not the secret's: 403.
    Wrong,
}

impl<S: SecretVersions> TokenCheck<S> {
    /// Checks tokens against secret `secret_id`.
    pub fn new(secrets: S, secret_id: impl Into<String>) -> Self {
        TokenCheck {
            secrets,
            secret_id: secret_id.into(),
            cache: Mutex::new(None),
        }
    }

    /// Whether `authorization` (the header's value) carries the token.
    ///
    /// # Errors
    /// [`Error::Config`] when the secret does not exist or has no current value; AWS errors.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<std::result::Result<(), Refusal>> {
        let Some(token) = authorization.and_then(bearer) else {
            return Ok(Err(Refusal::Missing));
        };
        let offered: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.cached(now, TOKEN_CACHE);
        let known = match cached {
            Some(k) => k,
            None => self.read(now).await?,
        };
        if matches(&known, &offered) {
            return Ok(Ok(()));
        }
        // Maybe the secret rotated since it was read: read it again, but not on every try.
        if self.cached(now, TOKEN_REREAD).is_some() {
            return Ok(Err(Refusal::Wrong));
        }
        let known = self.read(now).await?;
        Ok(if matches(&known, &offered) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        })
    }

    fn cached(&self, now: Instant, max_age: Duration) -> Option<Vec<[u8; 32]>> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < max_age)
            .map(|(_, v)| v.clone())
    }

    async fn read(&self, now: Instant) -> Result<Vec<[u8; 32]>> {
        let missing = |what: &str| {
            Error::Config(format!(
                "the webhook token secret {} {what}; store the token as its current value",
                self.secret_id
            ))
        };
        let current = self
            .secrets
            .value(&self.secret_id, None, Some("AWSCURRENT"))
            .await
            .map_err(|e| match e {
                Error::InvalidInput(_) => missing("does not exist"),
                other => other,
            })?
            .ok_or_else(|| missing("has no current value"))?;
        let pending = self
            .secrets
            .value(&self.secret_id, None, Some("AWSPENDING"))
            .await?;
        let digests: Vec<[u8; 32]> = [Some(current), pending]
            .into_iter()
            .flatten()
            .map(|v| v.expose_secret().trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| Sha256::digest(v.as_bytes()).into())
            .collect();
        if digests.is_empty() {
            return Err(missing("is empty"));
        }
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, digests.clone()));
        Ok(digests)
    }
}

/// The token of a `Bearer` authorization, if that is what it is.
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares digests in constant time, each one (no early exit on a match).
fn matches(known: &[[u8; 32]], offered: &[u8; 32]) -> bool {
    known
        .iter()
        .fold(subtle::Choice::from(0), |any, k| any | k.ct_eq(offered))
        .into()
}

/// The body of `POST /deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    /// A deployment of the catalogue.
    pub deployment: String,
    /// An image of the repository the deployment follows, by tag or digest.
    pub image: String,
    /// Spinnaker's `${execution.id}`, or any id unique to the caller's run: a repeated
    /// start with it is the same deploy.
    pub spinnaker_execution_id: String,
}

/// The optional body of the operator actions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRequest {
    /// Who asks, for the logs and the deployment's history (default `webhook`).
    #[serde(default)]
    pub by: Option<String>,
}

/// What `GET /deployments/{executionName}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub execution_name: String,
    pub execution_arn: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED` (an operator aborted it
    /// and it rolled back, or the execution was stopped).
    pub status: String,
    pub progress: WebhookProgress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Progress, with a one-line summary (Spinnaker's `progressJsonPath` must name a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookProgress {
    pub summary: String,
    #[serde(flatten)]
    pub detail: operations::Progress,
}

/// An HTTP answer, before it becomes a Function URL response.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Answer::json(status, json!({"error": code, "message": message.into()}))
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The Function URL response.
    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        let mut response = LambdaFunctionUrlResponse::default();
        response.status_code = i64::from(self.status);
        response.headers = headers;
        response.body = Some(self.body.to_string());
        response.is_base64_encoded = false;
        response
    }
}

/// The webhook and what it needs.
#[derive(Debug)]
pub struct Webhook<'a, X, E, S> {
    pub sfn: &'a X,
    pub ecs: &'a E,
    /// `None`: no token secret is configured and every request is refused.
    pub tokens: Option<&'a TokenCheck<S>>,
    pub deploy_state_machine_arn: &'a str,
    /// [`PUBLIC_URL_VAR`], without a trailing `/`.
    pub public_url: Option<&'a str>,
}

impl<X, E, S> Webhook<'_, X, E, S>
where
    X: Executions,
    E: Ecs + OperatorCommands,
    S: SecretVersions,
{
    /// Answers one request. Only a request that is not a Function URL request at all is an
    /// error; everything else is an HTTP answer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `event` is not a Function URL request.
    pub async fn handle(
        &self,
        event: Value,
        catalogue: &Catalogue,
        now: Instant,
    ) -> Result<LambdaFunctionUrlResponse> {
        let request = function_url_request(event)?;
        let (method, path) = method_and_path(&request);
        let answer = self.answer(&request, &method, &path, catalogue, now).await;
        let level_warn = answer.status >= 500;
        if level_warn {
            warn!(method = %method, path = %path, status = answer.status, message = %answer.body["message"].as_str().unwrap_or_default(), "webhook request failed");
        } else {
            info!(method = %method, path = %path, status = answer.status, message = %answer.body["message"].as_str().unwrap_or_default(), "webhook request");
        }
        Ok(answer.into_response())
    }

    async fn answer(
        &self,
        request: &LambdaFunctionUrlRequest,
        method: &str,
        path: &str,
        catalogue: &Catalogue,
        now: Instant,
    ) -> Answer {
        let Some(tokens) = self.tokens else {
            return Answer::error(
                503,
                "NotConfigured",
                format!("the webhook has no token secret: set {TOKEN_SECRET_VAR}"),
            );
        };
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match tokens.check(authorization, now).await {
            Ok(Ok(())) => {}
            Ok(Err(Refusal::Missing)) => {
                return Answer::error(
                    401,
                    "Unauthorized",
                    "send the webhook token as Authorization: Bearer <token>",
                )
                .with("www-authenticate", "Bearer realm=\"ecs-bluegreen\"");
            }
            Ok(Err(Refusal::Wrong)) => {
                return Answer::error(403, "Forbidden", "the bearer token is not the webhook's");
            }
            Err(e) => return failure(&e),
        }
        match read(request, method, path) {
            Ok(WebhookRequest::Start(start)) => self.start(&start, catalogue).await,
            Ok(WebhookRequest::Status { name }) => self.status(&name).await,
            Ok(WebhookRequest::Act { name, action, by }) => self.act(&name, action, &by).await,
            Err(answer) => answer,
        }
    }

    async fn start(&self, request: &StartRequest, catalogue: &Catalogue) -> Answer {
        let id = &request.spinnaker_execution_id;
        let Some(entry) = catalogue.get(&request.deployment) else {
            return Answer::error(
                404,
                "UnknownDeployment",
                format!(
                    "no deployment {:?} in the catalogue; {}",
                    request.deployment,
                    catalogue.names()
                ),
            );
        };
        let image = match crate::model::ImageRef::parse(&request.image) {
            Ok(i) => i,
            Err(e) => return Answer::error(400, "InvalidRequest", message(&e)),
        };
        if !entry.admits(&image) {
            return Answer::error(
                422,
                "ImageNotAllowed",
                format!(
                    "image {} is not from {}, the repository deployment {} follows",
                    request.image, entry.repository, entry.name
                ),
            );
        }
        let input = match entry.request(&request.image) {
            Ok(i) => i,
            Err(e) => return Answer::error(422, "InvalidDeployment", message(&e)),
        };
        let name = execution_name(&entry.name, id);
        let outcome = match self
            .sfn
            .start_execution(self.deploy_state_machine_arn, &name, &input)
            .await
        {
            Ok(o) => o,
            Err(e) => return failure(&e),
        };
        let (arn, status, code) = match outcome {
            StartOutcome::Started(arn) => {
                info!(deployment = %entry.name, execution = %name, image = %request.image, "webhook started a deploy");
                (arn, "RUNNING".to_string(), 202)
            }
            StartOutcome::AlreadyStarted(e) => {
                info!(deployment = %entry.name, execution = %name, status = %e.status, "a repeated start: the deploy was started before");
                (e.arn, public_status(&e.status, e.error.as_deref()), 202)
            }
            StartOutcome::NameTaken(e) => {
                return Answer::error(
                    409,
                    "Conflict",
                    format!(
                        "spinnakerExecutionId {id} already started execution {} of deployment {} with another image; use a new id for another deploy",
                        e.name, entry.name
                    ),
                );
            }
        };
        let status_url = self.url(&format!("/deployments/{name}"));
        Answer::json(
            code,
            json!({
                "executionName": name,
                "executionArn": arn,
                "statusUrl": status_url,
                "status": status,
            }),
        )
        .with("location", status_url)
    }

    async fn status(&self, name: &str) -> Answer {
        let Some(arn) = self.execution_arn(name) else {
            return not_found(name);
        };
        match operations::status(self.sfn, &arn).await {
            Ok(s) => {
                let status = public_status(&s.status, s.error.as_deref());
                let cause = s.cause.as_deref().map(operations::readable_cause);
                let summary = match status.as_str() {
                    "RUNNING" => s.progress.summary(),
                    "SUCCEEDED" => format!("deployed: {}", s.progress.summary()),
                    other => format!(
                        "{other}: {}",
                        cause
                            .as_deref()
                            .or(s.error.as_deref())
                            .unwrap_or("no cause recorded")
                    ),
                };
                let body = DeploymentStatus {
                    execution_name: s.execution_name,
                    execution_arn: s.execution_arn,
                    status,
                    progress: WebhookProgress {
                        summary,
                        detail: s.progress,
                    },
                    error: s.error,
                    cause,
                };
                Answer::json(200, serde_json::to_value(body).unwrap_or(Value::Null))
            }
            Err(Error::InvalidInput(_)) => not_found(name),
            Err(e) => failure(&e),
        }
    }

    async fn act(&self, name: &str, action: Action, by: &str) -> Answer {
        let Some(arn) = self.execution_arn(name) else {
            return not_found(name);
        };
        match self.sfn.execution(&arn).await {
            Ok(_) => {}
            Err(Error::InvalidInput(_)) => return not_found(name),
            Err(e) => return failure(&e),
        }
        let done = match action {
            Action::Abort => operations::abort(self.sfn, self.ecs, &arn, by).await,
            Action::Approve => operations::approve(self.sfn, &arn, by).await,
            Action::Promote => operations::promote(self.sfn, self.ecs, &arn, by).await,
        };
        match done {
            Ok(delivered) => {
                info!(execution = %name, action = action.as_str(), by = %by, "operator action delivered");
                Answer::json(
                    202,
                    json!({
                        "executionName": name,
                        "action": action.as_str(),
                        "delivered": match delivered {
                            Delivered::ApprovalAnswered => "approvalAnswered",
                            Delivered::CommandLeft => "commandLeft",
                        },
                        "status": "RUNNING",
                    }),
                )
            }
            Err(Error::PreconditionFailed(m) | Error::InvalidInput(m)) => {
                Answer::error(409, "Conflict", m)
            }
            Err(e) => failure(&e),
        }
    }

    /// The ARN of execution `name` of the deploy state machine, if `name` can be one.
    fn execution_arn(&self, name: &str) -> Option<String> {
        let valid = !name.is_empty()
            && name.len() <= 80
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| {
            format!(
                "{}:{name}",
                self.deploy_state_machine_arn
                    .replacen(":stateMachine:", ":execution:", 1)
            )
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy)]
enum Route<'p> {
    Start,
    Status(&'p str),
    Act(&'p str, Action),
}

/// An operator action of the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Abort,
    Approve,
    Promote,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "abort" => Some(Action::Abort),
            "approve" => Some(Action::Approve),
            "promote" => Some(Action::Promote),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Abort => "abort",
            Action::Approve => "approve",
            Action::Promote => "promote",
        }
    }
}

/// The status a caller sees: Step Functions' own, except that a deploy an operator aborted
/// (it rolled back) is `ABORTED`, as a stopped execution is.
pub fn public_status(status: &str, error: Option<&str>) -> String {
    if status == "FAILED" && error == Some("Aborted") {
        "ABORTED".into()
    } else {
        status.to_string()
    }
}

/// A webhook request, read and checked; what remains needs the catalogue and AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRequest {
    /// `POST /deployments`.
    Start(StartRequest),
    /// `GET /deployments/{executionName}`.
    Status { name: String },
    /// `POST /deployments/{executionName}/{abort|approve|promote}`.
    Act {
        name: String,
        action: Action,
        /// Who asks (`webhook` when the body does not say).
        by: String,
    },
}

/// `event` as a Function URL request.
///
/// # Errors
/// [`Error::InvalidInput`] when it is not one.
pub fn function_url_request(event: Value) -> Result<LambdaFunctionUrlRequest> {
    crate::lambda::parse_payload(event)
        .map_err(|e| Error::InvalidInput(format!("not a Function URL request: {}", e.reason())))
}

/// The request's method (upper case) and path.
pub fn method_and_path(request: &LambdaFunctionUrlRequest) -> (String, String) {
    let method = request
        .request_context
        .http
        .method
        .clone()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let path = request
        .raw_path
        .clone()
        .or_else(|| request.request_context.http.path.clone())
        .unwrap_or_default();
    (method, path)
}

/// Reads an authenticated request: its route, method, body and fields, without I/O. Every
/// refusal is the HTTP answer the caller gets.
///
/// # Errors
/// The 4xx [`Answer`] of a request that is not one of the webhook's.
pub fn read(
    request: &LambdaFunctionUrlRequest,
    method: &str,
    path: &str,
) -> std::result::Result<WebhookRequest, Answer> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match segments.as_slice() {
        ["deployments"] => Route::Start,
        ["deployments", name] => Route::Status(name),
        ["deployments", name, action] if Action::parse(action).is_some() => {
            Route::Act(name, Action::parse(action).unwrap_or(Action::Abort))
        }
        _ => {
            return Err(Answer::error(
                404,
                "NotFound",
                format!(
                    "no route {path}: POST /deployments, GET /deployments/{{executionName}}, POST /deployments/{{executionName}}/abort|approve|promote"
                ),
            ));
        }
    };
    let allowed = match route {
        Route::Status(_) => "GET",
        Route::Start | Route::Act(..) => "POST",
    };
    if method != allowed {
        return Err(Answer::error(
            405,
            "MethodNotAllowed",
            format!("{path} takes {allowed}, not {method}"),
        )
        .with("allow", allowed));
    }
    let body = body(request)?;
    match route {
        Route::Start => {
            let Some(start) = parse_json::<StartRequest>(&body, true)? else {
                return Err(Answer::error(
                    400,
                    "InvalidRequest",
                    "the body must be {\"deployment\", \"image\", \"spinnakerExecutionId\"}",
                ));
            };
            let id = &start.spinnaker_execution_id;
            if id.is_empty()
                || id.len() > MAX_REQUEST_ID_LEN
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Answer::error(
                    400,
                    "InvalidRequest",
                    format!(
                        "spinnakerExecutionId must be 1–{MAX_REQUEST_ID_LEN} of A-Z a-z 0-9 - _ (Spinnaker's ${{execution.id}})"
                    ),
                ));
            }
            Ok(WebhookRequest::Start(start))
        }
        Route::Status(name) => Ok(WebhookRequest::Status {
            name: name.to_string(),
        }),
        Route::Act(name, action) => {
            let request: ActionRequest = parse_json(&body, false)?.unwrap_or_default();
            let by = request.by.unwrap_or_else(|| "webhook".into());
            if by.len() > 128 || by.chars().any(char::is_control) {
                return Err(Answer::error(
                    400,
                    "InvalidRequest",
                    "by must be at most 128 characters, without control characters",
                ));
            }
            Ok(WebhookRequest::Act {
                name: name.to_string(),
                action,
                by,
            })
        }
    }
}

/// [`read`] of a Function URL event, as the fuzz targets and the bad-input suite drive it.
///
/// # Errors
/// [`Error::InvalidInput`] when `event` is not a Function URL request; the request's 4xx
/// [`Answer`] inside `Ok(Err(…))`.
pub fn read_event(event: Value) -> Result<std::result::Result<WebhookRequest, Answer>> {
    let request = function_url_request(event)?;
    let (method, path) = method_and_path(&request);
    Ok(read(&request, &method, &path))
}

/// The request's body, decoded, within [`MAX_BODY_BYTES`] and of a JSON content type.
fn body(request: &LambdaFunctionUrlRequest) -> std::result::Result<Vec<u8>, Answer> {
    let raw = request.body.as_deref().unwrap_or_default();
    // Base64 is a third longer than the bytes it carries: refuse early, before decoding.
    if raw.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(too_large());
    }
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| Answer::error(400, "InvalidRequest", "the body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if !bytes.is_empty() {
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(Answer::error(
                415,
                "UnsupportedMediaType",
                format!("the body must be application/json, not {content_type}"),
            ));
        }
    }
    Ok(bytes)
}

fn too_large() -> Answer {
    Answer::error(
        413,
        "PayloadTooLarge",
        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Parses a JSON body: `None` when it is empty and `required` is false.
fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    required: bool,
) -> std::result::Result<Option<T>, Answer> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if required {
            Err(Answer::error(400, "InvalidRequest", "the body is empty"))
        } else {
            Ok(None)
        };
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Answer::error(400, "InvalidRequest", format!("the body is not JSON: {e}")))?;
    crate::lambda::parse_payload::<T>(value)
        .map(Some)
        .map_err(|e| Answer::error(400, "InvalidRequest", message(&e)))
}

fn not_found(name: &str) -> Answer {
    Answer::error(
        404,
        "NotFound",
        format!("no deployment execution named {name:?}"),
    )
}

fn message(e: &Error) -> String {
    match e {
        Error::InvalidInput(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The answer to an error of the AWS side or of the function's configuration.
fn failure(e: &Error) -> Answer {
    match e {
        Error::Throttled { .. } | Error::Transient { .. } => {
            Answer::error(503, "Unavailable", e.to_string()).with("retry-after", "5")
        }
        Error::Config(_) => Answer::error(500, "NotConfigured", e.to_string()),
        _ => Answer::error(502, e.error_type(), e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{FakeAws, FakeSecrets, FakeSfn};

    const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy";
    const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders";
    const TOKEN: &str = "s3cr3t-webhook-token";

    fn catalogue() -> Catalogue {
        let doc = json!({"deployments": {"orders": {
            "repository": REPO,
            "cluster": "prod", "service": "orders", "container": "app",
            "listenerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2",
            "targetGroupArns": [
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/73e2d6bc24d8a067",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-b/83e2d6bc24d8a067"
            ]
        }}});
        Catalogue::parse(&doc.to_string(), "test").unwrap()
    }

    struct World {
        sfn: FakeSfn,
        ecs: FakeAws,
        tokens: TokenCheck<FakeSecrets>,
    }

    impl World {
        fn new() -> Self {
            World {
                sfn: FakeSfn::default(),
                ecs: FakeAws::default(),
                tokens: TokenCheck::new(FakeSecrets::with("webhook/token", TOKEN), "webhook/token"),
            }
        }

        async fn call(
            &self,
            method: &str,
            path: &str,
            auth: Option<&str>,
            body: &str,
        ) -> (u16, Value, HeaderMap) {
            let mut headers = json!({"content-type": "application/json"});
            if let Some(a) = auth {
                headers["authorization"] = json!(a);
            }
            let event = json!({
                "version": "2.0", "rawPath": path, "rawQueryString": "",
                "headers": headers,
                "requestContext": {"http": {"method": method, "path": path}, "timeEpoch": 0, "domainName": "abc.lambda-url.us-east-1.on.aws"},
                "body": body, "isBase64Encoded": false
            });
            let webhook = Webhook {
                sfn: &self.sfn,
                ecs: &self.ecs,
                tokens: Some(&self.tokens),
                deploy_state_machine_arn: SM,
                public_url: Some("https://hooks.example.com"),
            };
            let r = webhook
                .handle(event, &catalogue(), Instant::now())
                .await
                .unwrap();
            let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            (u16::try_from(r.status_code).unwrap(), body, r.headers)
        }
    }

    fn start_body(image: &str, id: &str) -> String {
        json!({"deployment": "orders", "image": image, "spinnakerExecutionId": id}).to_string()
    }

    const AUTH: &str = "Bearer s3cr3t-webhook-token";

    #[tokio::test]
    async fn a_start_answers_202_with_location_and_a_repeat_finds_the_same_execution() {
        let w = World::new();
        let body = start_body(&format!("{REPO}:v2"), "01HZX3Y6J9M0T5");
        let (status, answer, headers) = w.call("POST", "/deployments", Some(AUTH), &body).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["executionName"], "orders-hook-01HZX3Y6J9M0T5");
        assert_eq!(answer["status"], "RUNNING");
        assert_eq!(
            headers["location"],
            "https://hooks.example.com/deployments/orders-hook-01HZX3Y6J9M0T5"
        );
        assert_eq!(answer["statusUrl"], headers["location"].to_str().unwrap());
        let (status, again, _) = w.call("POST", "/deployments", Some(AUTH), &body).await;
        assert_eq!(
            (status, &again["executionName"]),
            (202, &answer["executionName"])
        );
        assert_eq!(w.sfn.started().len(), 1);
        // The same id for another image is a conflict, not a second deploy.
        let other = start_body(&format!("{REPO}:v3"), "01HZX3Y6J9M0T5");
        let (status, conflict, _) = w.call("POST", "/deployments", Some(AUTH), &other).await;
        assert_eq!(status, 409, "{conflict}");
        assert_eq!(w.sfn.started().len(), 1);
    }

    #[tokio::test]
    async fn missing_and_wrong_tokens_are_401_and_403_and_start_nothing() {
        let w = World::new();
        let body = start_body(&format!("{REPO}:v2"), "run-1");
        let (status, _, headers) = w.call("POST", "/deployments", None, &body).await;
        assert_eq!(status, 401);
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(
            w.call("POST", "/deployments", Some("Basic dTpw"), &body)
                .await
                .0,
            401
        );
        assert_eq!(
            w.call("POST", "/deployments", Some("Bearer nope"), &body)
                .await
                .0,
            403
        );
        assert_eq!(
            w.call("GET", "/deployments/x", Some("Bearer s3cr3t"), "")
                .await
                .0,
            403
        );
        assert!(w.sfn.started().is_empty());
    }

    #[tokio::test]
    async fn the_pending_token_is_accepted_during_a_rotation() {
        let w = World::new();
        w.tokens.secrets.start_rotation("v2");
        w.tokens
            .secrets
            .put_pending(
                "webhook/token",
                "v2",
                &crate::rotation::SecretValue::new("next-token"),
            )
            .await
            .unwrap();
        let body = start_body(&format!("{REPO}:v2"), "run-2");
        assert_eq!(
            w.call("POST", "/deployments", Some("Bearer next-token"), &body)
                .await
                .0,
            202
        );
        assert_eq!(
            w.call("POST", "/deployments", Some(AUTH), &body).await.0,
            202
        );
    }

    #[tokio::test]
    async fn every_malformed_request_gets_its_4xx_and_starts_nothing() {
        let w = World::new();
        let ok_image = format!("{REPO}:v2");
        let cases: Vec<(&str, &str, String, u16)> = vec![
            ("POST", "/deployments", "{".into(), 400),
            ("POST", "/deployments", "".into(), 400),
            ("POST", "/deployments", "[1]".into(), 400),
            ("POST", "/deployments", json!({"deployment": "orders", "image": ok_image}).to_string(), 400),
            ("POST", "/deployments", json!({"deployment": "orders", "image": ok_image, "spinnakerExecutionId": "a", "x": 1}).to_string(), 400),
            ("POST", "/deployments", start_body(&ok_image, "has space"), 400),
            ("POST", "/deployments", start_body(&ok_image, &"x".repeat(MAX_REQUEST_ID_LEN + 1)), 400),
            ("POST", "/deployments", start_body("not an image", "run-3"), 400),
            ("POST", "/deployments", json!({"deployment": "payments", "image": ok_image, "spinnakerExecutionId": "run-3"}).to_string(), 404),
            ("POST", "/deployments", start_body("123456789012.dkr.ecr.us-east-1.amazonaws.com/evil:v1", "run-3"), 422),
            ("POST", "/deployments", format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES)), 413),
            ("GET", "/deployments", String::new(), 405),
            ("DELETE", "/deployments/orders-hook-1", String::new(), 405),
            ("POST", "/deployments/orders-hook-1/explode", String::new(), 404),
            ("GET", "/elsewhere", String::new(), 404),
            ("GET", "/deployments/no%20such", String::new(), 404),
            ("GET", "/deployments/orders-hook-unknown", String::new(), 404),
            ("POST", "/deployments/orders-hook-unknown/abort", String::new(), 404),
            ("POST", "/deployments/orders-hook-unknown/abort", "{\"by\": 5}".into(), 400),
        ];
        for (method, path, body, want) in cases {
            let (status, answer, _) = w.call(method, path, Some(AUTH), &body).await;
            assert_eq!(status, want, "{method} {path} {body:.80}: {answer}");
            assert!(
                answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{answer}"
            );
            assert!(!answer.to_string().contains(TOKEN));
        }
        assert!(w.sfn.started().is_empty());
    }

    #[tokio::test]
    async fn a_non_json_body_is_415() {
        let w = World::new();
        let event = json!({
            "rawPath": "/deployments", "headers": {"authorization": AUTH, "content-type": "text/plain"},
            "requestContext": {"http": {"method": "POST"}, "timeEpoch": 0},
            "body": "deployment=orders", "isBase64Encoded": false
        });
        let webhook = Webhook {
            sfn: &w.sfn,
            ecs: &w.ecs,
            tokens: Some(&w.tokens),
            deploy_state_machine_arn: SM,
            public_url: None,
        };
        let r = webhook
            .handle(event, &catalogue(), Instant::now())
            .await
            .unwrap();
        assert_eq!(r.status_code, 415);
    }

    #[tokio::test]
    async fn status_maps_an_operator_abort_to_aborted_and_reads_the_cause() {
        let w = World::new();
        let body = start_body(&format!("{REPO}:v2"), "run-4");
        let (_, started, _) = w.call("POST", "/deployments", Some(AUTH), &body).await;
        let arn = started["executionArn"].as_str().unwrap();
        let (status, s, _) = w
            .call("GET", "/deployments/orders-hook-run-4", Some(AUTH), "")
            .await;
        assert_eq!((status, s["status"].as_str()), (200, Some("RUNNING")));
        assert!(s["progress"]["summary"].is_string());
        w.sfn.finish(arn, "FAILED", Some("Aborted"));
        let (_, s, _) = w
            .call("GET", "/deployments/orders-hook-run-4", Some(AUTH), "")
            .await;
        assert_eq!(s["status"], "ABORTED");
        assert!(
            s["progress"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("ABORTED: "),
            "{s}"
        );
        // A finished deploy cannot be aborted: 409.
        let (status, _, _) = w
            .call(
                "POST",
                "/deployments/orders-hook-run-4/abort",
                Some(AUTH),
                "",
            )
            .await;
        assert_eq!(status, 409);
    }

    #[tokio::test]
    async fn without_a_token_secret_everything_is_refused() {
        let w = World::new();
        let webhook: Webhook<'_, _, _, FakeSecrets> = Webhook {
            sfn: &w.sfn,
            ecs: &w.ecs,
            tokens: None,
            deploy_state_machine_arn: SM,
            public_url: None,
        };
        let event = json!({
            "rawPath": "/deployments", "headers": {"authorization": AUTH},
            "requestContext": {"http": {"method": "POST"}, "timeEpoch": 0},
            "body": start_body(&format!("{REPO}:v2"), "run-5"), "isBase64Encoded": false
        });
        let r = webhook
            .handle(event, &catalogue(), Instant::now())
            .await
            .unwrap();
        assert_eq!(r.status_code, 503);
        assert!(w.sfn.started().is_empty());
    }

    #[test]
    fn bearer_tokens_are_recognized_whatever_the_scheme_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        let d: [u8; 32] = Sha256::digest(b"abc").into();
        assert!(matches(&[[0; 32], d], &d));
        assert!(!matches(&[[0; 32]], &d));
    }
}
