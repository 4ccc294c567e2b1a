//! The [`Dynatrace`] port over the Dynatrace API v2 with reqwest.
//!
//! Every call sends `Authorization: Api-Token <token>` and makes one attempt: the state
//! machine owns retries, as for AWS calls. Answers map to the crate's errors: 401/403 →
//! [`Error::Config`] naming the token id, 429 → [`Error::Throttled`], 5xx and network
//! failures → [`Error::Transient`], 400 (and a 404 in Dynatrace's error envelope) →
//! [`Error::InvalidInput`], anything else → [`Error::Aws`]-shaped "rejected for a reason
//! retrying will not fix". No message contains the token value: Dynatrace's own messages are
//! scrubbed of it before they are quoted.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::info;

use super::{
    CUSTOM_DEPLOYMENT, CreatedToken, DeploymentEvent, Dynatrace, DynatraceConfig, EventReceipt,
    MetricData, MetricQuery, MetricSeries, NewToken, SCOPE_API_TOKENS_READ, SCOPE_API_TOKENS_WRITE,
    SCOPE_EVENTS_INGEST, SCOPE_METRICS_READ, SecretRef, SecretStore, SecretToken, TokenMetadata,
    normalized_api_url,
};
use crate::aws::OPERATION_TIMEOUT;
use crate::error::{Error, Result};

/// How long connecting may take, within [`OPERATION_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many characters of a non-JSON error body are quoted.
const QUOTED_BODY: usize = 200;
/// Token list pages followed at most (Dynatrace pages hold up to 10 000 tokens).
const MAX_TOKEN_PAGES: usize = 20;

/// One kind of call: its name in messages and the token scope it needs.
#[derive(Debug, Clone, Copy)]
struct Op {
    name: &'static str,
    scope: &'static str,
}

const METRICS_QUERY: Op = Op {
    name: "dynatrace metrics query",
    scope: SCOPE_METRICS_READ,
};
const EVENT_INGEST: Op = Op {
    name: "dynatrace event ingest",
    scope: SCOPE_EVENTS_INGEST,
};
const TOKEN_CREATE: Op = Op {
    name: "dynatrace token create",
    scope: SCOPE_API_TOKENS_WRITE,
};
const TOKEN_LOOKUP: Op = Op {
    name: "dynatrace token lookup",
    scope: "any scope",
};
const TOKEN_LIST: Op = Op {
    name: "dynatrace token list",
    scope: SCOPE_API_TOKENS_READ,
};
const TOKEN_REVOKE: Op = Op {
    name: "dynatrace token revoke",
    scope: SCOPE_API_TOKENS_WRITE,
};

/// Why a call failed; `Rejected` (HTTP 401) is the one a fresh token may fix.
#[derive(Debug)]
enum Failure {
    Rejected(Error),
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Rejected(e) | Failure::Other(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// One request of an [`Op`].
struct Call<'a> {
    op: Op,
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<Value>,
    /// A 404 in Dynatrace's error envelope means "no such thing", not a failure.
    not_found_is_none: bool,
}

/// The HTTP side both adapters share: base URL and client, the token passed per call.
#[derive(Debug, Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(api_url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(OPERATION_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // An API that redirects is the wrong URL; following would re-send the token.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ecs-bluegreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build an http client: {e}")))?;
        Ok(Api {
            base: normalized_api_url(api_url)?,
            http,
        })
    }

    /// Sends one request and answers the body of a 2xx, or `None` for a 404 when
    /// `not_found_is_none`.
    async fn send(&self, token: &SecretToken, call: Call<'_>) -> Result<Option<Vec<u8>>, Failure> {
        let Call {
            op,
            method,
            path,
            query,
            body,
            not_found_is_none,
        } = call;
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| Error::Config(format!("{}{path} is not a URL: {e}", self.base)))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Api-Token {}", token.expose_secret()),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transient = |e: reqwest::Error| Error::Transient {
            operation: op.name,
            resource: self.base.clone(),
            message: token.scrub(&error_chain(&e)),
        };
        let answer = request.send().await.map_err(transient)?;
        let status = answer.status();
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = answer.bytes().await.map_err(transient)?.to_vec();
        if status.is_success() {
            return Ok(Some(bytes));
        }
        let envelope = error_envelope(&bytes);
        let quoted = token.scrub(&envelope.clone().unwrap_or_else(|| quote_body(&bytes)));
        let http = format!("HTTP {}", status.as_u16());
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::Rejected(Error::Config(format!(
                "dynatrace rejected the token ({}): {} answered {http}: {quoted}; put a valid token in the secret the function reads",
                token.described(),
                op.name
            ))),
            StatusCode::FORBIDDEN => Failure::Other(Error::Config(format!(
                "dynatrace rejected the token ({}): {} answered {http}, the token needs scope {}: {quoted}",
                token.described(),
                op.name,
                op.scope
            ))),
            StatusCode::NOT_FOUND if not_found_is_none && envelope.is_some() => {
                return Ok(None);
            }
            StatusCode::NOT_FOUND if envelope.is_none() => Failure::Other(Error::Config(format!(
                "no dynatrace API at {} ({} answered {http}: {quoted}); set the environment URL, e.g. https://abc12345.live.dynatrace.com",
                self.base, op.name
            ))),
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => {
                Failure::Other(Error::InvalidInput(format!(
                    "dynatrace rejected the {}: {quoted}",
                    op.name.trim_start_matches("dynatrace ")
                )))
            }
            StatusCode::TOO_MANY_REQUESTS => Failure::Other(Error::Throttled {
                operation: op.name,
                resource: self.base.clone(),
                code: http,
                message: quoted,
            }),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Failure::Other(Error::Transient {
                    operation: op.name,
                    resource: self.base.clone(),
                    message: format!("{http}: {quoted}"),
                })
            }
            s if s.is_redirection() => Failure::Other(Error::Config(format!(
                "the dynatrace API at {} redirected {} ({http}) to {}; set the environment URL it redirects to",
                self.base,
                op.name,
                location.as_deref().unwrap_or("nowhere")
            ))),
            _ => Failure::Other(Error::Aws {
                operation: op.name,
                resource: self.base.clone(),
                code: http,
                message: quoted,
            }),
        })
    }

    fn decode<T: DeserializeOwned>(&self, op: Op, bytes: &[u8]) -> Result<T, Failure> {
        // serde's message can quote the offending value (a token, in token answers): only
        // its position is reported.
        serde_json::from_slice(bytes).map_err(|e| {
            Failure::Other(Error::Config(format!(
                "the dynatrace API at {} answered {} with unexpected JSON (line {}, column {}); is it a Dynatrace environment URL?",
                self.base,
                op.name,
                e.line(),
                e.column()
            )))
        })
    }

    async fn metric(
        &self,
        token: &SecretToken,
        query: &MetricQuery,
    ) -> Result<MetricData, Failure> {
        let from = query.from_ms.to_string();
        let to = query.to_ms.to_string();
        let entity_selector = query.release.entity_selector();
        let mut params = vec![
            ("metricSelector", query.metric_selector.as_str()),
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("entitySelector", entity_selector.as_str()),
        ];
        if let Some(resolution) = &query.resolution {
            params.push(("resolution", resolution.as_str()));
        }
        let bytes = self
            .send(
                token,
                Call {
                    op: METRICS_QUERY,
                    method: Method::GET,
                    path: "/api/v2/metrics/query",
                    query: &params,
                    body: None,
                    not_found_is_none: false,
                },
            )
            .await?
            .unwrap_or_default();
        let data: MetricDataDto = self.decode(METRICS_QUERY, &bytes)?;
        Ok(MetricData {
            metric_id: data
                .result
                .first()
                .map(|r| r.metric_id.clone())
                .unwrap_or_default(),
            resolution: data.resolution,
            series: data
                .result
                .into_iter()
                .flat_map(|r| r.data)
                .map(|s| MetricSeries {
                    dimensions: s.dimension_map,
                    timestamps: s.timestamps,
                    values: s.values,
                })
                .collect(),
        })
    }

    async fn ingest(
        &self,
        token: &SecretToken,
        event: &DeploymentEvent,
    ) -> Result<EventReceipt, Failure> {
        let mut body = json!({
            "eventType": CUSTOM_DEPLOYMENT,
            "title": event.title,
            "properties": event.properties,
        });
        if let Some(selector) = &event.entity_selector {
            body["entitySelector"] = json!(selector);
        }
        if let Some(start) = event.start_ms {
            body["startTime"] = json!(start);
        }
        if let Some(end) = event.end_ms {
            body["endTime"] = json!(end);
        }
        let bytes = self
            .send(
                token,
                Call {
                    op: EVENT_INGEST,
                    method: Method::POST,
                    path: "/api/v2/events/ingest",
                    query: &[],
                    body: Some(body),
                    not_found_is_none: false,
                },
            )
            .await?
            .unwrap_or_default();
        let receipt: EventIngestResultsDto = self.decode(EVENT_INGEST, &bytes)?;
        Ok(EventReceipt {
            report_count: receipt.report_count,
            results: receipt
                .event_ingest_results
                .into_iter()
                .map(|r| (r.correlation_id, r.status))
                .collect(),
        })
    }

    async fn create_token(
        &self,
        token: &SecretToken,
        new: &NewToken,
    ) -> Result<CreatedToken, Failure> {
        let mut body = json!({ "name": new.name, "scopes": new.scopes });
        if let Some(expires) = new.expires_at_ms {
            body["expirationDate"] = json!(iso_date(expires)?);
        }
        let bytes = self
            .send(
                token,
                Call {
                    op: TOKEN_CREATE,
                    method: Method::POST,
                    path: "/api/v2/apiTokens",
                    query: &[],
                    body: Some(body),
                    not_found_is_none: false,
                },
            )
            .await?
            .unwrap_or_default();
        let created: ApiTokenCreatedDto = self.decode(TOKEN_CREATE, &bytes)?;
        let value = SecretToken::new(created.token).map_err(|_| {
            Error::Config(format!(
                "dynatrace answered {} without a token value",
                TOKEN_CREATE.name
            ))
        })?;
        Ok(CreatedToken {
            id: created.id,
            token: value,
            expires_at_ms: created.expiration_date.as_deref().and_then(millis_of),
        })
    }

    async fn lookup(
        &self,
        token: &SecretToken,
        wanted: &SecretToken,
    ) -> Result<Option<TokenMetadata>, Failure> {
        let Some(bytes) = self
            .send(
                token,
                Call {
                    op: TOKEN_LOOKUP,
                    method: Method::POST,
                    path: "/api/v2/apiTokens/lookup",
                    query: &[],
                    body: Some(json!({ "token": wanted.expose_secret() })),
                    not_found_is_none: true,
                },
            )
            .await?
        else {
            return Ok(None);
        };
        let meta: ApiTokenDto = self.decode(TOKEN_LOOKUP, &bytes)?;
        Ok(Some(meta.into()))
    }

    async fn tokens_named(
        &self,
        token: &SecretToken,
        name: &str,
    ) -> Result<Vec<TokenMetadata>, Failure> {
        // `name(…)` matches names that contain the text; the exact match is made here.
        let selector = format!("name({})", super::quoted(name));
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_TOKEN_PAGES {
            // With `nextPageKey`, Dynatrace wants every other parameter left out.
            let params: Vec<(&str, &str)> = match &next {
                Some(key) => vec![("nextPageKey", key.as_str())],
                None => vec![
                    ("apiTokenSelector", selector.as_str()),
                    ("fields", "+scopes,+expirationDate"),
                    ("pageSize", "1000"),
                ],
            };
            let bytes = self
                .send(
                    token,
                    Call {
                        op: TOKEN_LIST,
                        method: Method::GET,
                        path: "/api/v2/apiTokens",
                        query: &params,
                        body: None,
                        not_found_is_none: false,
                    },
                )
                .await?
                .unwrap_or_default();
            let page: ApiTokenListDto = self.decode(TOKEN_LIST, &bytes)?;
            found.extend(
                page.api_tokens
                    .into_iter()
                    .filter(|t| t.name.as_deref() == Some(name))
                    .map(TokenMetadata::from),
            );
            match page.next_page_key {
                Some(key) if !key.is_empty() => next = Some(key),
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    async fn revoke(&self, token: &SecretToken, id: &str) -> Result<(), Failure> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            return Err(Error::InvalidInput(format!(
                "{id:?} is not a dynatrace token id (dt0c01.PUBLIC)"
            ))
            .into());
        }
        // `PUT {"enabled": false}` is what Dynatrace calls revoking: the token stays listed
        // (and could be re-enabled by an operator), but no longer authenticates.
        self.send(
            token,
            Call {
                op: TOKEN_REVOKE,
                method: Method::PUT,
                path: &format!("/api/v2/apiTokens/{id}"),
                query: &[],
                body: Some(json!({ "enabled": false })),
                not_found_is_none: true,
            },
        )
        .await?;
        Ok(())
    }
}

/// The message of Dynatrace's error envelope `{"error": {"code", "message",
/// "constraintViolations": [{"path", "message"}]}}`.
fn error_envelope(bytes: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let error = value.get("error")?;
    let mut message = error.get("message")?.as_str()?.to_string();
    let violations: Vec<String> = error
        .get("constraintViolations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let text = v.get("message")?.as_str()?;
            Some(match v.get("path").and_then(Value::as_str) {
                Some(path) => format!("{path}: {text}"),
                None => text.to_string(),
            })
        })
        .collect();
    if !violations.is_empty() {
        message.push_str(&format!(" ({})", violations.join("; ")));
    }
    Some(message)
}

fn quote_body(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "no body".to_string();
    }
    let mut quoted: String = one_line.chars().take(QUOTED_BODY).collect();
    if one_line.chars().count() > QUOTED_BODY {
        quoted.push('…');
    }
    quoted
}

fn error_chain(err: &reqwest::Error) -> String {
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

fn iso_date(ms: u64) -> Result<String> {
    let ms = i64::try_from(ms)
        .map_err(|_| Error::InvalidInput(format!("{ms} ms is not a representable date")))?;
    DateTime::from_millis(ms)
        .fmt(Format::DateTime)
        .map_err(|e| Error::InvalidInput(format!("{ms} ms is not a representable date: {e}")))
}

fn millis_of(iso: &str) -> Option<u64> {
    let date = DateTime::from_str(iso, Format::DateTimeWithOffset).ok()?;
    u64::try_from(date.to_millis().ok()?).ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricDataDto {
    resolution: Option<String>,
    #[serde(default)]
    result: Vec<MetricSeriesCollectionDto>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSeriesCollectionDto {
    #[serde(default)]
    metric_id: String,
    #[serde(default)]
    data: Vec<MetricSeriesDto>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSeriesDto {
    #[serde(default)]
    dimension_map: BTreeMap<String, String>,
    #[serde(default)]
    timestamps: Vec<i64>,
    #[serde(default)]
    values: Vec<Option<f64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIngestResultsDto {
    #[serde(default)]
    report_count: u32,
    #[serde(default)]
    event_ingest_results: Vec<EventIngestResultDto>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIngestResultDto {
    correlation_id: Option<String>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTokenCreatedDto {
    id: String,
    token: String,
    expiration_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTokenDto {
    id: String,
    name: Option<String>,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    scopes: Vec<String>,
    owner: Option<String>,
    creation_date: Option<String>,
    expiration_date: Option<String>,
}

impl From<ApiTokenDto> for TokenMetadata {
    fn from(t: ApiTokenDto) -> Self {
        TokenMetadata {
            id: t.id,
            name: t.name.unwrap_or_default(),
            enabled: t.enabled,
            scopes: t.scopes,
            owner: t.owner,
            created_at_ms: t.creation_date.as_deref().and_then(millis_of),
            expires_at_ms: t.expiration_date.as_deref().and_then(millis_of),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTokenListDto {
    #[serde(default)]
    api_tokens: Vec<ApiTokenDto>,
    next_page_key: Option<String>,
}

/// Dynatrace with a token the caller holds.
#[derive(Debug, Clone)]
pub struct HttpDynatrace {
    api: Api,
    token: SecretToken,
}

impl HttpDynatrace {
    /// An adapter for the environment at `api_url`, authenticating with `token`.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is not an environment URL (see
    /// [`DynatraceConfig::new`]).
    pub fn new(api_url: &str, token: SecretToken) -> Result<Self> {
        Ok(HttpDynatrace {
            api: Api::new(api_url)?,
            token,
        })
    }

    /// The id of the token it authenticates with, for logs.
    pub fn token_id(&self) -> Option<&str> {
        self.token.id()
    }
}

impl Dynatrace for HttpDynatrace {
    /// `GET /api/v2/metrics/query` with `metricSelector`, `from`, `to`, `resolution` and the
    /// release's `entitySelector`.
    async fn metric(&self, query: &MetricQuery) -> Result<MetricData> {
        self.api
            .metric(&self.token, query)
            .await
            .map_err(Failure::into_error)
    }

    /// `POST /api/v2/events/ingest` with `eventType: CUSTOM_DEPLOYMENT`.
    async fn post_deployment_event(&self, event: &DeploymentEvent) -> Result<EventReceipt> {
        self.api
            .ingest(&self.token, event)
            .await
            .map_err(Failure::into_error)
    }

    /// `POST /api/v2/apiTokens`.
    async fn create_token(&self, token: &NewToken) -> Result<CreatedToken> {
        self.api
            .create_token(&self.token, token)
            .await
            .map_err(Failure::into_error)
    }

    /// `POST /api/v2/apiTokens/lookup`.
    async fn lookup_token(&self, token: &SecretToken) -> Result<Option<TokenMetadata>> {
        self.api
            .lookup(&self.token, token)
            .await
            .map_err(Failure::into_error)
    }

    /// `GET /api/v2/apiTokens?apiTokenSelector=name("…")`, every page.
    async fn tokens_named(&self, name: &str) -> Result<Vec<TokenMetadata>> {
        self.api
            .tokens_named(&self.token, name)
            .await
            .map_err(Failure::into_error)
    }

    /// `PUT /api/v2/apiTokens/{id}` with `{"enabled": false}`.
    async fn revoke_token(&self, id: &str) -> Result<()> {
        self.api
            .revoke(&self.token, id)
            .await
            .map_err(Failure::into_error)
    }
}

/// Dynatrace with the token a [`SecretStore`] holds: read on first use, and read again once
/// when Dynatrace rejects it (401), so a warm function picks up a rotated token.
#[derive(Debug)]
pub struct SecretDynatrace<S> {
    api: Api,
    store: S,
    secret: SecretRef,
    token: Mutex<Option<SecretToken>>,
}

impl<S: SecretStore> SecretDynatrace<S> {
    /// An adapter for `config`, reading the token through `store` when first needed.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is not an environment URL.
    pub fn new(config: &DynatraceConfig, store: S) -> Result<Self> {
        Ok(SecretDynatrace {
            api: Api::new(&config.api_url)?,
            store,
            secret: config.token_secret.clone(),
            token: Mutex::new(None),
        })
    }

    /// The token, read from the store when there is none yet or `reread`.
    async fn token(&self, reread: bool) -> Result<SecretToken> {
        let mut held = self.token.lock().await;
        match held.as_ref() {
            Some(token) if !reread => Ok(token.clone()),
            _ => {
                let token = self.store.current_value(&self.secret).await?;
                info!(secret = %self.secret, token_id = token.id().unwrap_or("unknown"), "dynatrace token read");
                *held = Some(token.clone());
                Ok(token)
            }
        }
    }

    async fn with_token<T>(
        &self,
        call: impl AsyncFn(&SecretToken) -> Result<T, Failure>,
    ) -> Result<T> {
        let token = self.token(false).await?;
        match call(&token).await {
            Err(Failure::Rejected(rejected)) => {
                let fresh = self.token(true).await?;
                if fresh == token {
                    return Err(rejected);
                }
                info!(
                    old_token_id = token.id().unwrap_or("unknown"),
                    token_id = fresh.id().unwrap_or("unknown"),
                    "dynatrace rejected the token; retrying once with the secret's current one"
                );
                call(&fresh).await.map_err(Failure::into_error)
            }
            other => other.map_err(Failure::into_error),
        }
    }
}

impl<S: SecretStore> Dynatrace for SecretDynatrace<S> {
    async fn metric(&self, query: &MetricQuery) -> Result<MetricData> {
        self.with_token(async |t: &SecretToken| self.api.metric(t, query).await)
            .await
    }

    async fn post_deployment_event(&self, event: &DeploymentEvent) -> Result<EventReceipt> {
        self.with_token(async |t: &SecretToken| self.api.ingest(t, event).await)
            .await
    }

    async fn create_token(&self, token: &NewToken) -> Result<CreatedToken> {
        self.with_token(async |t: &SecretToken| self.api.create_token(t, token).await)
            .await
    }

    async fn lookup_token(&self, token: &SecretToken) -> Result<Option<TokenMetadata>> {
        self.with_token(async |t: &SecretToken| self.api.lookup(t, token).await)
            .await
    }

    async fn tokens_named(&self, name: &str) -> Result<Vec<TokenMetadata>> {
        self.with_token(async |t: &SecretToken| self.api.tokens_named(t, name).await)
            .await
    }

    async fn revoke_token(&self, id: &str) -> Result<()> {
        self.with_token(async |t: &SecretToken| self.api.revoke(t, id).await)
            .await
    }
}
