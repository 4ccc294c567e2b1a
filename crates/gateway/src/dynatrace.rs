//! A fake Dynatrace API for the local stack — a simulation, not Dynatrace.
//!
//! Under `/dynatrace` the gateway answers the parts of the Dynatrace Environment API v2 the
//! workflow uses, with the real request and response shapes: Metrics API v2
//! (`GET /api/v2/metrics/query`), Events API v2 (`POST /api/v2/events/ingest`) and the Access
//! tokens API v2 (`/api/v2/apiTokens`: create, list, get, update, delete, lookup). Every call
//! is authenticated with `Authorization: Api-Token <token>` and checked for the scope the
//! endpoint needs, answering errors in Dynatrace's envelope `{"error": {"code", "message"}}`.
//!
//! Nothing is measured: metric answers come from rules set through the control endpoint
//! `/_local/dynatrace/metrics`, a query no rule matches has no data, and ingested events are
//! only recorded. See `docs/local-stack.md`, "Fake Dynatrace API".

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::info;

use crate::server::AppState;
use crate::sim::{Millis, now_millis};

/// Scope of `GET /api/v2/metrics/query`.
pub const METRICS_READ: &str = "metrics.read";
/// Scope of `POST /api/v2/events/ingest`.
pub const EVENTS_INGEST: &str = "events.ingest";
/// Scope of reading access tokens.
pub const API_TOKENS_READ: &str = "apiTokens.read";
/// Scope of creating, changing and deleting access tokens.
pub const API_TOKENS_WRITE: &str = "apiTokens.write";

/// Owner of the tokens seeded through the control endpoint.
const SEED_OWNER: &str = "local-stack";
/// Event types the Events API v2 accepts.
const EVENT_TYPES: &[&str] = &[
    "AVAILABILITY_EVENT",
    "CUSTOM_ALERT",
    "CUSTOM_ANNOTATION",
    "CUSTOM_CONFIGURATION",
    "CUSTOM_DEPLOYMENT",
    "CUSTOM_INFO",
    "ERROR_EVENT",
    "MARKED_FOR_TERMINATION",
    "PERFORMANCE_EVENT",
    "RESOURCE_CONTENTION_EVENT",
];
/// Token list fields answered when the request names none.
const DEFAULT_TOKEN_FIELDS: &[&str] = &["id", "name", "enabled", "owner", "creationDate"];
/// Every field of the token metadata (`ApiToken`).
const TOKEN_FIELDS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "personalAccessToken",
    "owner",
    "creationDate",
    "expirationDate",
    "lastUsedDate",
    "lastUsedIpAddress",
    "modifiedDate",
    "scopes",
    "additionalMetadata",
];

/// An error answered in Dynatrace's envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `constraintViolations` for a 400 about one parameter: (path, message, location).
    pub violation: Option<(String, String, &'static str)>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            violation: None,
        }
    }

    /// A 400 naming the offending parameter, as Dynatrace's "Constraints violated." answers do.
    fn violated(path: &str, location: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: "Constraints violated.".to_owned(),
            violation: Some((path.to_owned(), message.into(), location)),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The body: `{"error": {"code": 401, "message": "..."}}`.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.status.as_u16(), "message": self.message });
        if let Some((path, message, location)) = &self.violation {
            error["constraintViolations"] = json!([{
                "path": path,
                "message": message,
                "parameterLocation": location,
                "location": null,
            }]);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An access token. Its value never leaves the fake except in the one answer that creates it.
#[derive(Clone)]
struct Token {
    id: String,
    value: String,
    name: String,
    scopes: Vec<String>,
    enabled: bool,
    owner: String,
    created: Millis,
    modified: Millis,
    expires: Option<Millis>,
    last_used: Option<Millis>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("enabled", &self.enabled)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Token {
    fn expired(&self, now: Millis) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The token's `ApiToken` metadata, every field.
    fn metadata(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("enabled".into(), json!(self.enabled));
        m.insert("personalAccessToken".into(), json!(false));
        m.insert("owner".into(), json!(self.owner));
        m.insert("creationDate".into(), json!(format_iso(self.created)));
        if let Some(e) = self.expires {
            m.insert("expirationDate".into(), json!(format_iso(e)));
        }
        if let Some(u) = self.last_used {
            m.insert("lastUsedDate".into(), json!(format_iso(u)));
            m.insert("lastUsedIpAddress".into(), json!("127.0.0.1"));
        }
        m.insert("modifiedDate".into(), json!(format_iso(self.modified)));
        m.insert("scopes".into(), json!(self.scopes));
        m.insert("additionalMetadata".into(), json!({}));
        m
    }
}

/// What a metric rule answers.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAnswer {
    /// One value per query, in order; the last one repeats.
    Values(Vec<f64>),
    /// An answer that gives no usable value.
    Bad(Bad),
}

/// The injectable bad answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// 200 with no series (`data: []`): what Dynatrace answers when nothing was measured.
    NoData,
    /// 200 with one series whose only value is `null`.
    NullValues,
    /// 503 in Dynatrace's error envelope.
    ServerError,
    /// 429 with `Retry-After: 1`.
    Throttled,
}

impl Bad {
    fn name(self) -> &'static str {
        match self {
            Bad::NoData => "noData",
            Bad::NullValues => "nullValues",
            Bad::ServerError => "serverError",
            Bad::Throttled => "throttled",
        }
    }

    fn parse(name: &str) -> Option<Bad> {
        [
            Bad::NoData,
            Bad::NullValues,
            Bad::ServerError,
            Bad::Throttled,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }
}

/// Answers metric queries whose selector contains `selector_contains` (and, when set, that
/// are scoped to release `release_version`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    pub selector_contains: String,
    pub release_version: Option<String>,
    pub answer: RuleAnswer,
    served: usize,
}

impl MetricRule {
    fn json(&self) -> Value {
        let mut v = json!({
            "metricSelectorContains": self.selector_contains,
            "releaseVersion": self.release_version,
            "served": self.served,
        });
        match &self.answer {
            RuleAnswer::Values(values) => v["values"] = json!(values),
            RuleAnswer::Bad(bad) => v["bad"] = json!(bad.name()),
        }
        v
    }
}

/// A metric query as received, and what it was answered.
#[derive(Debug, Clone, PartialEq)]
struct QueryRecord {
    received: Millis,
    token_id: String,
    metric_selector: String,
    entity_selector: Option<String>,
    from: Millis,
    to: Millis,
    resolution: Option<String>,
    release_version: Option<String>,
    answer: String,
}

/// An ingested event as received.
#[derive(Debug, Clone, PartialEq)]
struct IngestedEvent {
    received: Millis,
    token_id: String,
    correlation_id: String,
    event: Value,
}

/// The fake's whole state. Pure: every method takes `now`.
#[derive(Debug, Default)]
pub struct FakeDynatrace {
    tokens: Vec<Token>,
    rules: Vec<MetricRule>,
    events: Vec<IngestedEvent>,
    queries: Vec<QueryRecord>,
}

impl FakeDynatrace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every token, rule, event and query.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Checks `Authorization: Api-Token <token>` and that the token has `scope` (any scope
    /// when `None`), records its use, and returns its id.
    ///
    /// # Errors
    /// 401 for a missing, unknown, disabled or expired token; 403 for a missing scope. The
    /// messages never contain the token.
    pub fn authenticate(
        &mut self,
        authorization: Option<&str>,
        scope: Option<&str>,
        now: Millis,
    ) -> Result<String, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let Some(authorization) = authorization else {
            return Err(unauthorized("Missing authorization parameter."));
        };
        let value = match authorization.trim().split_once(' ') {
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("Api-Token") => value.trim(),
            _ => {
                return Err(unauthorized(
                    "Token Authentication failed: use the header Authorization: Api-Token <token>",
                ));
            }
        };
        let Some(token) = self.tokens.iter_mut().find(|t| t.value == value) else {
            return Err(unauthorized("Token Authentication failed"));
        };
        if !token.enabled {
            return Err(unauthorized(&format!(
                "Token Authentication failed: token {} is revoked",
                token.id
            )));
        }
        if token.expired(now) {
            return Err(unauthorized(&format!(
                "Token Authentication failed: token {} expired",
                token.id
            )));
        }
        if let Some(scope) = scope
            && !token.scopes.iter().any(|s| s == scope)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Token is missing required scope. Use one of: {scope}"),
            ));
        }
        token.last_used = Some(now);
        Ok(token.id.clone())
    }

    // ---- control ----------------------------------------------------------------------

    /// `POST /_local/dynatrace/tokens`: seeds a token; answers its id (and its value, when
    /// the fake generated it).
    ///
    /// # Errors
    /// A message saying what to send instead.
    pub fn seed_token(&mut self, body: &[u8], now: Millis) -> Result<Value, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Seed {
            token: Option<String>,
            name: String,
            scopes: Vec<String>,
            expires_in_seconds: Option<u64>,
            #[serde(default = "enabled_by_default")]
            enabled: bool,
        }
        fn enabled_by_default() -> bool {
            true
        }
        let seed: Seed = serde_json::from_slice(body).map_err(|e| {
            format!("invalid token {{\"name\": <name>, \"scopes\": [<scope>], \"token\": <dt0c01.…, optional>, \"expiresInSeconds\": <n, optional>, \"enabled\": <bool, optional>}}: {e}")
        })?;
        if seed.name.trim().is_empty() || seed.scopes.is_empty() {
            return Err("a seeded token needs a name and at least one scope".to_owned());
        }
        let generated = seed.token.is_none();
        let value = seed.token.unwrap_or_else(generate_token);
        let id = token_id(&value)
            .ok_or_else(|| {
                "token must look like a Dynatrace token: dt0c01.<24 upper-case letters or digits>.<64 upper-case letters or digits>".to_owned()
            })?
            .to_owned();
        if self.tokens.iter().any(|t| t.id == id) {
            return Err(format!("a token with id {id} exists already"));
        }
        let expires = seed
            .expires_in_seconds
            .map(|s| now.saturating_add(s.saturating_mul(1000)));
        self.tokens.push(Token {
            id: id.clone(),
            value: value.clone(),
            name: seed.name.clone(),
            scopes: seed.scopes.clone(),
            enabled: seed.enabled,
            owner: SEED_OWNER.to_owned(),
            created: now,
            modified: now,
            expires,
            last_used: None,
        });
        let mut answer = json!({ "id": id, "name": seed.name, "scopes": seed.scopes });
        if generated {
            answer["token"] = json!(value);
        }
        Ok(answer)
    }

    /// `GET /_local/dynatrace/tokens`: every token's metadata, never a value.
    pub fn token_summaries(&self) -> Value {
        let tokens: Vec<Value> = self
            .tokens
            .iter()
            .map(|t| Value::Object(t.metadata()))
            .collect();
        json!({ "tokens": tokens })
    }

    /// `POST /_local/dynatrace/metrics`: adds a rule; newer rules win over older ones.
    ///
    /// # Errors
    /// A message saying what to send instead.
    pub fn add_rule(&mut self, body: &[u8]) -> Result<Value, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct RuleRequest {
            metric_selector_contains: String,
            release_version: Option<String>,
            values: Option<Vec<f64>>,
            value: Option<f64>,
            bad: Option<String>,
        }
        let r: RuleRequest = serde_json::from_slice(body).map_err(|e| {
            format!("invalid metric rule {{\"metricSelectorContains\": <substring>, \"releaseVersion\": <optional>, and one of \"values\": [..], \"value\": <n>, \"bad\": \"noData\"|\"nullValues\"|\"serverError\"|\"throttled\"}}: {e}")
        })?;
        if r.metric_selector_contains.is_empty() {
            return Err("metricSelectorContains must not be empty".to_owned());
        }
        let answer = match (r.values, r.value, r.bad) {
            (Some(values), None, None) if !values.is_empty() => RuleAnswer::Values(values),
            (None, Some(value), None) => RuleAnswer::Values(vec![value]),
            (None, None, Some(bad)) => RuleAnswer::Bad(Bad::parse(&bad).ok_or_else(|| {
                format!(
                    "unknown bad answer {bad:?}: use noData, nullValues, serverError or throttled"
                )
            })?),
            _ => {
                return Err(
                    "a metric rule needs exactly one of values (non-empty), value or bad"
                        .to_owned(),
                );
            }
        };
        if let RuleAnswer::Values(values) = &answer
            && values.iter().any(|v| !v.is_finite())
        {
            return Err("metric values must be finite numbers".to_owned());
        }
        self.rules.push(MetricRule {
            selector_contains: r.metric_selector_contains,
            release_version: r.release_version,
            answer,
            served: 0,
        });
        Ok(json!({ "rules": self.rules.len() }))
    }

    /// `GET /_local/dynatrace/metrics`: the rules, oldest first, with how often each answered.
    pub fn rules_json(&self) -> Value {
        json!({ "rules": self.rules.iter().map(MetricRule::json).collect::<Vec<_>>() })
    }

    /// `GET /_local/dynatrace/events`: every ingested event as received.
    pub fn events_json(&self) -> Value {
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| {
                json!({
                    "receivedAt": format_iso(e.received),
                    "tokenId": e.token_id,
                    "correlationId": e.correlation_id,
                    "event": e.event,
                })
            })
            .collect();
        json!({ "events": events })
    }

    /// `GET /_local/dynatrace/queries`: every metric query as received and what it got.
    pub fn queries_json(&self) -> Value {
        let queries: Vec<Value> = self
            .queries
            .iter()
            .map(|q| {
                json!({
                    "receivedAt": format_iso(q.received),
                    "tokenId": q.token_id,
                    "metricSelector": q.metric_selector,
                    "entitySelector": q.entity_selector,
                    "from": format_iso(q.from),
                    "to": format_iso(q.to),
                    "resolution": q.resolution,
                    "releaseVersion": q.release_version,
                    "answer": q.answer,
                })
            })
            .collect();
        json!({ "queries": queries })
    }

    // ---- Metrics API v2 ---------------------------------------------------------------

    /// `GET /api/v2/metrics/query`: answers from the newest matching rule.
    ///
    /// # Errors
    /// 400 for a missing selector or a bad timeframe or resolution; 503 or 429 when the
    /// matching rule says so.
    pub fn query_metrics(
        &mut self,
        token_id: &str,
        params: &[(String, String)],
        now: Millis,
    ) -> Result<Value, ApiError> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let selector = param("metricSelector")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::violated("metricSelector", "QUERY", "must not be empty"))?
            .to_owned();
        let time = |name: &str, default: Millis| match param(name) {
            None => Ok(default),
            Some(text) => parse_time(text, now).ok_or_else(|| {
                ApiError::violated(
                    name,
                    "QUERY",
                    format!("{text:?} is not a timestamp (UTC milliseconds, ISO 8601 or now-2h)"),
                )
            }),
        };
        let from = time("from", now.saturating_sub(2 * 3_600_000))?;
        let to = time("to", now)?;
        if from >= to {
            return Err(ApiError::violated(
                "from",
                "QUERY",
                "the start of the timeframe must be before its end",
            ));
        }
        let resolution = param("resolution").map(str::to_owned);
        if let Some(r) = &resolution
            && !valid_resolution(r)
        {
            return Err(ApiError::violated(
                "resolution",
                "QUERY",
                format!("{r:?} is not a resolution (Inf, or a number and a unit like 1m)"),
            ));
        }
        let entity_selector = param("entitySelector").map(str::to_owned);
        let release_version = entity_selector
            .as_deref()
            .and_then(release_version_of)
            .or_else(|| release_version_of(&selector));

        let rule = self.rules.iter_mut().rev().find(|r| {
            selector.contains(&r.selector_contains)
                && r.release_version
                    .as_ref()
                    .is_none_or(|v| release_version.as_ref() == Some(v))
        });
        let (answer, outcome): (Result<Option<Option<f64>>, ApiError>, String) = match rule {
            None => (Ok(None), "noRule".to_owned()),
            Some(rule) => {
                let served = rule.served;
                rule.served += 1;
                match &rule.answer {
                    RuleAnswer::Values(values) => {
                        let v = values[served.min(values.len() - 1)];
                        (Ok(Some(Some(v))), format!("value {v}"))
                    }
                    RuleAnswer::Bad(Bad::NoData) => (Ok(None), "noData".to_owned()),
                    RuleAnswer::Bad(Bad::NullValues) => (Ok(Some(None)), "nullValues".to_owned()),
                    RuleAnswer::Bad(Bad::ServerError) => (
                        Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "Service unavailable (simulated by the local stack)",
                        )),
                        "serverError".to_owned(),
                    ),
                    RuleAnswer::Bad(Bad::Throttled) => (
                        Err(ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "Too many requests (simulated by the local stack)",
                        )),
                        "throttled".to_owned(),
                    ),
                }
            }
        };
        self.queries.push(QueryRecord {
            received: now,
            token_id: token_id.to_owned(),
            metric_selector: selector.clone(),
            entity_selector,
            from,
            to,
            resolution: resolution.clone(),
            release_version,
            answer: outcome,
        });
        let data = match answer? {
            None => json!([]),
            Some(value) => json!([{
                "dimensions": [],
                "dimensionMap": {},
                "timestamps": [to],
                "values": [value],
            }]),
        };
        let count = data.as_array().map_or(0, Vec::len);
        Ok(json!({
            "totalCount": count,
            "nextPageKey": null,
            "resolution": resolution.unwrap_or_else(|| "1m".to_owned()),
            "result": [{
                "metricId": selector,
                "dataPointCountRatio": if count > 0 { 0.0001 } else { 0.0 },
                "dimensionCountRatio": if count > 0 { 0.0001 } else { 0.0 },
                "data": data,
            }],
        }))
    }

    // ---- Events API v2 ----------------------------------------------------------------

    /// `POST /api/v2/events/ingest`: records the event as received.
    ///
    /// # Errors
    /// 400 when the body is not an `EventIngest` object.
    pub fn ingest_event(
        &mut self,
        token_id: &str,
        body: &[u8],
        now: Millis,
    ) -> Result<Value, ApiError> {
        let event: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
        let Some(object) = event.as_object() else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the body must be an EventIngest object",
            ));
        };
        match object.get("eventType").and_then(Value::as_str) {
            Some(t) if EVENT_TYPES.contains(&t) => {}
            Some(t) => {
                return Err(ApiError::violated(
                    "eventType",
                    "PAYLOAD_BODY",
                    format!(
                        "unknown event type {t:?}; use one of {}",
                        EVENT_TYPES.join(", ")
                    ),
                ));
            }
            None => {
                return Err(ApiError::violated(
                    "eventType",
                    "PAYLOAD_BODY",
                    "must not be null",
                ));
            }
        }
        if object
            .get("title")
            .and_then(Value::as_str)
            .is_none_or(|t| t.trim().is_empty())
        {
            return Err(ApiError::violated(
                "title",
                "PAYLOAD_BODY",
                "must not be empty",
            ));
        }
        for field in ["startTime", "endTime", "timeout"] {
            if object
                .get(field)
                .is_some_and(|v| !v.is_i64() && !v.is_u64())
            {
                return Err(ApiError::violated(
                    field,
                    "PAYLOAD_BODY",
                    "must be an integer",
                ));
            }
        }
        if let Some(selector) = object.get("entitySelector")
            && !selector.is_string()
        {
            return Err(ApiError::violated(
                "entitySelector",
                "PAYLOAD_BODY",
                "must be a string",
            ));
        }
        if let Some(properties) = object.get("properties") {
            let ok = properties.as_object().is_some_and(|p| {
                p.values()
                    .all(|v| v.is_string() || v.is_number() || v.is_boolean())
            });
            if !ok {
                return Err(ApiError::violated(
                    "properties",
                    "PAYLOAD_BODY",
                    "must be an object of string, number or boolean values",
                ));
            }
        }
        let correlation_id = format!("{:016x}", rand::random::<u64>());
        self.events.push(IngestedEvent {
            received: now,
            token_id: token_id.to_owned(),
            correlation_id: correlation_id.clone(),
            event,
        });
        Ok(json!({
            "reportCount": 1,
            "eventIngestResults": [{ "correlationId": correlation_id, "status": "OK" }],
        }))
    }

    // ---- Access tokens API v2 -----------------------------------------------------------

    /// `POST /api/v2/apiTokens`: `{name, scopes, expirationDate?}` → `{id, token,
    /// expirationDate}`; the new token is owned by the caller's owner.
    ///
    /// # Errors
    /// 400 when the body is not an `ApiTokenCreate` or the expiration is not in the future.
    pub fn create_token(
        &mut self,
        caller_id: &str,
        body: &[u8],
        now: Millis,
    ) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Create {
            name: Option<String>,
            scopes: Option<Vec<String>>,
            expiration_date: Option<Value>,
        }
        let create: Create = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
        let name = create
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::violated("name", "PAYLOAD_BODY", "must not be empty"))?;
        let scopes = create
            .scopes
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::violated("scopes", "PAYLOAD_BODY", "must not be empty"))?;
        let expires = match create.expiration_date {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
                ApiError::violated("expirationDate", "PAYLOAD_BODY", "must be a timestamp")
            })?),
            Some(Value::String(s)) => Some(parse_time(&s, now).ok_or_else(|| {
                ApiError::violated(
                    "expirationDate",
                    "PAYLOAD_BODY",
                    format!("{s:?} is not a date (UTC milliseconds, ISO 8601 or now+30d)"),
                )
            })?),
            Some(_) => {
                return Err(ApiError::violated(
                    "expirationDate",
                    "PAYLOAD_BODY",
                    "must be a string",
                ));
            }
        };
        if expires.is_some_and(|e| e <= now) {
            return Err(ApiError::violated(
                "expirationDate",
                "PAYLOAD_BODY",
                "must be in the future",
            ));
        }
        let owner = self
            .tokens
            .iter()
            .find(|t| t.id == caller_id)
            .map_or_else(|| SEED_OWNER.to_owned(), |t| t.owner.clone());
        let value = loop {
            let candidate = generate_token();
            let id = token_id(&candidate).unwrap_or_default();
            if !self.tokens.iter().any(|t| t.id == id) {
                break candidate;
            }
        };
        let id = token_id(&value).unwrap_or_default().to_owned();
        self.tokens.push(Token {
            id: id.clone(),
            value: value.clone(),
            name,
            scopes,
            enabled: true,
            owner,
            created: now,
            modified: now,
            expires,
            last_used: None,
        });
        let mut answer = json!({ "id": id, "token": value });
        if let Some(e) = expires {
            answer["expirationDate"] = json!(format_iso(e));
        }
        Ok(answer)
    }

    /// `GET /api/v2/apiTokens`: `apiTokenSelector` (`name("…")`, `owner("…")`,
    /// `tokenScope("…")`) and `fields` (`+scopes,-owner`, or an explicit list) as Dynatrace
    /// reads them; one page holds every token.
    ///
    /// # Errors
    /// 400 for a selector or field the fake does not know.
    pub fn list_tokens(&self, params: &[(String, String)]) -> Result<Value, ApiError> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let criteria = match param("apiTokenSelector") {
            None => Vec::new(),
            Some(s) => parse_token_selector(s)
                .ok_or_else(|| ApiError::violated("apiTokenSelector", "QUERY", format!("{s:?} is not a token selector: use name(\"…\"), owner(\"…\") or tokenScope(\"…\")")))?,
        };
        let fields = token_fields(param("fields"))
            .ok_or_else(|| ApiError::violated("fields", "QUERY", "unknown field"))?;
        let page_size = match param("pageSize") {
            None => 200,
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| (100..=10_000).contains(p))
                .ok_or_else(|| ApiError::violated("pageSize", "QUERY", "must be 100 to 10000"))?,
        };
        let tokens: Vec<Value> = self
            .tokens
            .iter()
            .filter(|t| {
                criteria.iter().all(|(key, value)| match key.as_str() {
                    "name" => t.name.to_lowercase().contains(&value.to_lowercase()),
                    "owner" => t.owner == *value,
                    _ => t.scopes.iter().any(|s| s == value),
                })
            })
            .map(|t| {
                let all = t.metadata();
                Value::Object(
                    all.into_iter()
                        .filter(|(k, _)| fields.contains(k.as_str()))
                        .collect(),
                )
            })
            .collect();
        Ok(json!({
            "totalCount": tokens.len(),
            "pageSize": page_size,
            "nextPageKey": null,
            "apiTokens": tokens,
        }))
    }

    /// `GET /api/v2/apiTokens/{id}`.
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub fn get_token(&self, id: &str) -> Result<Value, ApiError> {
        self.tokens
            .iter()
            .find(|t| t.id == id)
            .map(|t| Value::Object(t.metadata()))
            .ok_or_else(|| ApiError::not_found(format!("Token {id} not found")))
    }

    /// `PUT /api/v2/apiTokens/{id}` `{name?, enabled?, scopes?}`: `enabled: false` revokes.
    ///
    /// # Errors
    /// 404 for an unknown id; 400 for disabling the caller's own token or a bad body.
    pub fn update_token(
        &mut self,
        caller_id: &str,
        id: &str,
        body: &[u8],
        now: Millis,
    ) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Update {
            name: Option<String>,
            enabled: Option<bool>,
            scopes: Option<Vec<String>>,
        }
        let update: Update = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
        if update.enabled == Some(false) && id == caller_id {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "You can't disable the token you're using for authentication of the request",
            ));
        }
        if update.scopes.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::violated(
                "scopes",
                "PAYLOAD_BODY",
                "must not be empty",
            ));
        }
        let token = self
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::not_found(format!("Token {id} not found")))?;
        if let Some(name) = update.name {
            token.name = name;
        }
        if let Some(enabled) = update.enabled {
            token.enabled = enabled;
        }
        if let Some(scopes) = update.scopes {
            token.scopes = scopes;
        }
        token.modified = now;
        Ok(())
    }

    /// `DELETE /api/v2/apiTokens/{id}`.
    ///
    /// # Errors
    /// 404 for an unknown id; 400 for the caller's own token.
    pub fn delete_token(&mut self, caller_id: &str, id: &str) -> Result<(), ApiError> {
        if id == caller_id {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "You can't delete the token you're using for authentication of the request",
            ));
        }
        let before = self.tokens.len();
        self.tokens.retain(|t| t.id != id);
        if self.tokens.len() == before {
            return Err(ApiError::not_found(format!("Token {id} not found")));
        }
        Ok(())
    }

    /// `POST /api/v2/apiTokens/lookup` `{token}`: the metadata of the token with that secret,
    /// revoked or expired ones included.
    ///
    /// # Errors
    /// 404 when no token has that value; 400 for a bad body.
    pub fn lookup_token(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        struct Lookup {
            token: Option<String>,
        }
        let lookup: Lookup = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
        let value = lookup
            .token
            .ok_or_else(|| ApiError::violated("token", "PAYLOAD_BODY", "must not be null"))?;
        self.tokens
            .iter()
            .find(|t| t.value == value)
            .map(|t| Value::Object(t.metadata()))
            .ok_or_else(|| ApiError::not_found("The requested token doesn't exist"))
    }
}

/// The id (`dt0c01.PUBLIC`) of a token shaped `prefix.public.secret`: a six-character prefix
/// like `dt0c01`, 24 and 64 upper-case letters or digits.
pub fn token_id(value: &str) -> Option<&str> {
    let mut parts = value.splitn(3, '.');
    let (prefix, public, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let portion = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    let b = prefix.as_bytes();
    let prefix_ok = b.len() == 6
        && prefix.starts_with("dt0")
        && b[3].is_ascii_lowercase()
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit();
    (prefix_ok && portion(public, 24) && portion(secret, 64))
        .then(|| &value[..prefix.len() + 1 + public.len()])
}

/// A new `dt0c01.<24>.<64>` token of base32 characters.
fn generate_token() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let portion = |len: usize| -> String {
        (0..len)
            // 256 is a multiple of 32, so masking keeps the characters uniform.
            .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>() & 31)]))
            .collect()
    };
    format!("dt0c01.{}.{}", portion(24), portion(64))
}

/// The release version a selector scopes to: the argument of `releasesVersion(…)`, quoted
/// (`"v"`, `~"v~"` inside a metric selector's `entitySelector(…)`) or not.
pub fn release_version_of(selector: &str) -> Option<String> {
    let start = selector.find("releasesVersion(")? + "releasesVersion(".len();
    let rest = &selector[start..];
    let inner = if let Some(quoted) = rest.strip_prefix("~\"") {
        &quoted[..quoted.find("~\"")?]
    } else if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"')?]
    } else {
        &rest[..rest.find(')')?]
    };
    let version = inner.trim().replace("~~", "~");
    (!version.is_empty()).then_some(version)
}

fn valid_resolution(r: &str) -> bool {
    if r == "Inf" {
        return true;
    }
    let digits = r.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&r[digits..], "m" | "h" | "d" | "w" | "M" | "q" | "y")
}

fn parse_token_selector(selector: &str) -> Option<Vec<(String, String)>> {
    let mut criteria = Vec::new();
    let mut rest = selector.trim();
    while !rest.is_empty() {
        let open = rest.find('(')?;
        let key = rest[..open].trim();
        if !matches!(key, "name" | "owner" | "tokenScope") {
            return None;
        }
        let after = &rest[open + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find("\")")?;
            (&quoted[..end], &quoted[end + 2..])
        } else {
            let end = after.find(')')?;
            (&after[..end], &after[end + 1..])
        };
        criteria.push((key.to_owned(), value.to_owned()));
        rest = tail.trim_start_matches(',').trim();
    }
    Some(criteria)
}

fn token_fields(fields: Option<&str>) -> Option<BTreeSet<&'static str>> {
    let known = |f: &str| TOKEN_FIELDS.iter().copied().find(|k| *k == f);
    let mut set: BTreeSet<&'static str> = DEFAULT_TOKEN_FIELDS.iter().copied().collect();
    let Some(fields) = fields else {
        return Some(set);
    };
    let items: Vec<&str> = fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if items
        .iter()
        .all(|f| !f.starts_with('+') && !f.starts_with('-'))
    {
        set = items.iter().map(|f| known(f)).collect::<Option<_>>()?;
    } else {
        for item in items {
            if let Some(f) = item.strip_prefix('+') {
                set.insert(known(f)?);
            } else if let Some(f) = item.strip_prefix('-') {
                set.remove(known(f)?);
            } else {
                set.insert(known(item)?);
            }
        }
    }
    // The id is always answered.
    set.insert("id");
    Some(set)
}

// ---- time ------------------------------------------------------------------------------

/// `2026-01-02T03:04:05.006Z`, as Dynatrace writes dates.
pub fn format_iso(ms: Millis) -> String {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX);
    let rem = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// A Dynatrace timeframe value: UTC milliseconds, `now`, `now-2h` / `now+30d` (units s, m,
/// h, d, w, M, q, y; an alignment `/d` is ignored), or ISO 8601 (`2026-01-02T03:04:05.006Z`,
/// a `+01:00` offset, a space for the `T`; no zone is UTC).
pub fn parse_time(text: &str, now: Millis) -> Option<Millis> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Some(rel) = text.strip_prefix("now") {
        let rel = rel.split('/').next().unwrap_or_default();
        if rel.is_empty() {
            return Some(now);
        }
        let (sign, rest) = rel.split_at(1);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let amount: u64 = rest[..digits].parse().ok()?;
        let unit_ms: u64 = match &rest[digits..] {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "M" => 30 * 86_400_000,
            "q" => 91 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        let delta = amount.checked_mul(unit_ms)?;
        return match sign {
            "-" => now.checked_sub(delta),
            "+" => now.checked_add(delta),
            _ => None,
        };
    }
    parse_iso(text)
}

fn parse_iso(text: &str) -> Option<Millis> {
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da) = (number(d.next()?)?, number(d.next()?)?, number(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (clock, offset_minutes) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(i);
        let (sign, off) = off.split_at(1);
        let (oh, om) = off.split_once(':').unwrap_or((off, "0"));
        let minutes = number(oh)? * 60 + number(om)?;
        (c, if sign == "-" { -minutes } else { minutes })
    } else {
        (time, 0)
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let h = number(t.next()?)?;
    let mi = number(t.next()?)?;
    let s = t.next().map_or(Some(0), number)?;
    if t.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let ms = if fraction.is_empty() {
        0
    } else {
        let padded: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(&padded)?
    };
    let days = days_from_civil(y, mo, da);
    let total = days * 86_400_000 + (h * 3600 + mi * 60 + s) * 1000 + ms - offset_minutes * 60_000;
    u64::try_from(total).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

// ---- HTTP ------------------------------------------------------------------------------

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn logged(route: &'static str, token: Option<&str>, response: Response) -> Response {
    info!(
        route,
        token_id = token.unwrap_or("-"),
        status = response.status().as_u16(),
        "dynatrace request"
    );
    response
}

/// Authenticates, runs `then` on the fake, and answers `ok` with its JSON (or no body).
fn call(
    state: &AppState,
    route: &'static str,
    headers: &HeaderMap,
    scope: Option<&str>,
    ok: StatusCode,
    then: impl FnOnce(&mut FakeDynatrace, &str, Millis) -> Result<Option<Value>, ApiError>,
) -> Response {
    let now = now_millis();
    let mut dt = state.dynatrace();
    let token = match dt.authenticate(authorization(headers), scope, now) {
        Ok(id) => id,
        Err(e) => return logged(route, None, e.into_response()),
    };
    let response = match then(&mut dt, &token, now) {
        Ok(Some(body)) => (ok, Json(body)).into_response(),
        Ok(None) => ok.into_response(),
        Err(e) => e.into_response(),
    };
    logged(route, Some(&token), response)
}

async fn metrics_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_pairs(query.as_deref());
    call(
        &state,
        "dynatrace:metrics.query",
        &headers,
        Some(METRICS_READ),
        StatusCode::OK,
        |dt, token, now| dt.query_metrics(token, &params, now).map(Some),
    )
}

async fn events_ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(
        &state,
        "dynatrace:events.ingest",
        &headers,
        Some(EVENTS_INGEST),
        StatusCode::CREATED,
        |dt, token, now| dt.ingest_event(token, &body, now).map(Some),
    )
}

async fn tokens_create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(
        &state,
        "dynatrace:apiTokens.create",
        &headers,
        Some(API_TOKENS_WRITE),
        StatusCode::CREATED,
        |dt, token, now| dt.create_token(token, &body, now).map(Some),
    )
}

async fn tokens_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_pairs(query.as_deref());
    call(
        &state,
        "dynatrace:apiTokens.list",
        &headers,
        Some(API_TOKENS_READ),
        StatusCode::OK,
        |dt, _, _| dt.list_tokens(&params).map(Some),
    )
}

async fn tokens_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    call(
        &state,
        "dynatrace:apiTokens.get",
        &headers,
        Some(API_TOKENS_READ),
        StatusCode::OK,
        |dt, _, _| dt.get_token(&id).map(Some),
    )
}

async fn tokens_update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    call(
        &state,
        "dynatrace:apiTokens.update",
        &headers,
        Some(API_TOKENS_WRITE),
        StatusCode::NO_CONTENT,
        |dt, token, now| dt.update_token(token, &id, &body, now).map(|()| None),
    )
}

async fn tokens_delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    call(
        &state,
        "dynatrace:apiTokens.delete",
        &headers,
        Some(API_TOKENS_WRITE),
        StatusCode::NO_CONTENT,
        |dt, token, _| dt.delete_token(token, &id).map(|()| None),
    )
}

async fn tokens_lookup(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Dynatrace: "you need an access token with any scope".
    call(
        &state,
        "dynatrace:apiTokens.lookup",
        &headers,
        None,
        StatusCode::OK,
        |dt, _, _| dt.lookup_token(&body).map(Some),
    )
}

async fn api_not_found(uri: Uri) -> Response {
    ApiError::not_found(format!(
        "the local stack's fake Dynatrace API has no endpoint {}: it answers /api/v2/metrics/query, /api/v2/events/ingest and /api/v2/apiTokens",
        uri.path()
    ))
    .into_response()
}

/// A `/dynatrace` path no route takes.
pub fn not_found(path: &str) -> Response {
    ApiError::not_found(format!(
        "the local stack's fake Dynatrace API has no endpoint {path}: it answers /dynatrace/api/v2/metrics/query, /dynatrace/api/v2/events/ingest and /dynatrace/api/v2/apiTokens"
    ))
    .into_response()
}

/// The fake API, to be nested under `/dynatrace`.
pub fn api_router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/metrics/query", get(metrics_query))
        .route("/api/v2/events/ingest", post(events_ingest))
        .route("/api/v2/apiTokens", get(tokens_list).post(tokens_create))
        .route("/api/v2/apiTokens/lookup", post(tokens_lookup))
        .route(
            "/api/v2/apiTokens/{id}",
            get(tokens_get).put(tokens_update).delete(tokens_delete),
        )
        .fallback(api_not_found)
}

fn control_error(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
}

/// `POST /_local/dynatrace/tokens`.
pub async fn control_seed_token(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let seeded = state.dynatrace().seed_token(&body, now_millis());
    match seeded {
        Ok(answer) => {
            info!(token_id = %answer["id"].as_str().unwrap_or_default(), "dynatrace token seeded");
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Err(message) => control_error(message),
    }
}

/// `GET /_local/dynatrace/tokens`.
pub async fn control_tokens(State(state): State<Arc<AppState>>) -> Response {
    Json(state.dynatrace().token_summaries()).into_response()
}

/// `POST /_local/dynatrace/metrics`.
pub async fn control_add_rule(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let added = state.dynatrace().add_rule(&body);
    match added {
        Ok(answer) => {
            info!("dynatrace metric rule added");
            Json(answer).into_response()
        }
        Err(message) => control_error(message),
    }
}

/// `GET /_local/dynatrace/metrics`.
pub async fn control_rules(State(state): State<Arc<AppState>>) -> Response {
    Json(state.dynatrace().rules_json()).into_response()
}

/// `GET /_local/dynatrace/events`.
pub async fn control_events(State(state): State<Arc<AppState>>) -> Response {
    Json(state.dynatrace().events_json()).into_response()
}

/// `GET /_local/dynatrace/queries`.
pub async fn control_queries(State(state): State<Arc<AppState>>) -> Response {
    Json(state.dynatrace().queries_json()).into_response()
}

/// `POST /_local/dynatrace/reset`.
pub async fn control_reset(State(state): State<Arc<AppState>>) -> Response {
    state.dynatrace().reset();
    info!("fake dynatrace reset");
    Json(json!({ "reset": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

    fn token(public: char, secret: char) -> String {
        format!(
            "dt0c01.{}.{}",
            public.to_string().repeat(24),
            secret.to_string().repeat(64)
        )
    }

    fn fake_with(value: &str, scopes: &[&str]) -> FakeDynatrace {
        let mut dt = FakeDynatrace::new();
        dt.seed_token(
            json!({"token": value, "name": "t", "scopes": scopes})
                .to_string()
                .as_bytes(),
            NOW,
        )
        .expect("seeded");
        dt
    }

    fn auth(value: &str) -> String {
        format!("Api-Token {value}")
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_token_id_is_its_prefix_and_public_portion() {
        let t = token('A', 'B');
        assert_eq!(
            token_id(&t),
            Some(format!("dt0c01.{}", "A".repeat(24)).as_str())
        );
        assert_eq!(token_id("dt0c01.SHORT.SECRET"), None);
        assert_eq!(token_id(&t.replace("dt0c01", "xx0c01")), None);
        let generated = generate_token();
        assert!(token_id(&generated).is_some(), "{generated}");
        assert_ne!(generated, generate_token());
    }

    #[test]
    fn calls_without_a_known_enabled_unexpired_token_are_401_and_never_echo_the_token() {
        let good = token('A', 'B');
        let mut dt = fake_with(&good, &[METRICS_READ]);
        let unknown = token('C', 'D');

        for (header, why) in [
            (None, "Missing authorization"),
            (Some(format!("Bearer {good}")), "Api-Token"),
            (Some(auth(&unknown)), "Token Authentication failed"),
        ] {
            let err = dt
                .authenticate(header.as_deref(), Some(METRICS_READ), NOW)
                .expect_err("rejected");
            assert_eq!(err.status, StatusCode::UNAUTHORIZED);
            assert!(err.message.contains(why), "{}", err.message);
            assert!(!err.body().to_string().contains(&"B".repeat(64)));
            assert!(!err.body().to_string().contains(&"D".repeat(64)));
        }
        let id = token_id(&good).expect("an id").to_owned();
        dt.tokens[0].enabled = false;
        let err = dt
            .authenticate(Some(&auth(&good)), Some(METRICS_READ), NOW)
            .expect_err("revoked");
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(err.message.contains("revoked") && err.message.contains(&id));
        dt.tokens[0].enabled = true;
        dt.tokens[0].expires = Some(NOW);
        let err = dt
            .authenticate(Some(&auth(&good)), Some(METRICS_READ), NOW)
            .expect_err("expired");
        assert!(err.message.contains("expired"), "{}", err.message);
        assert_eq!(
            err.body()["error"]["code"],
            json!(401),
            "dynatrace's error envelope"
        );
    }

    #[test]
    fn a_token_without_the_scope_is_403_and_any_scope_does_for_lookup() {
        let value = token('A', 'B');
        let mut dt = fake_with(&value, &[EVENTS_INGEST]);
        let err = dt
            .authenticate(Some(&auth(&value)), Some(METRICS_READ), NOW)
            .expect_err("forbidden");
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains(METRICS_READ), "{}", err.message);
        assert_eq!(
            dt.authenticate(Some(&auth(&value)), None, NOW),
            Ok(token_id(&value).expect("id").to_owned())
        );
        assert_eq!(dt.tokens[0].last_used, Some(NOW));
    }

    #[test]
    fn metric_rules_answer_their_values_in_order_and_repeat_the_last() {
        let mut dt = FakeDynatrace::new();
        dt.add_rule(br#"{"metricSelectorContains": "errors", "values": [1, 7]}"#)
            .expect("a rule");
        let q = pairs(&[
            (
                "metricSelector",
                "builtin:service.errors.total.rate:splitBy():avg",
            ),
            ("resolution", "Inf"),
            ("from", "now-5m"),
        ]);
        let values: Vec<Value> = (0..3)
            .map(|_| dt.query_metrics("id", &q, NOW).expect("an answer")["result"][0]["data"][0]["values"][0].clone())
            .collect();
        assert_eq!(values, vec![json!(1.0), json!(7.0), json!(7.0)]);
        let answer = dt.query_metrics("id", &q, NOW).expect("an answer");
        assert_eq!(answer["totalCount"], json!(1));
        assert_eq!(answer["resolution"], json!("Inf"));
        assert_eq!(answer["nextPageKey"], Value::Null);
        assert_eq!(
            answer["result"][0]["metricId"],
            json!("builtin:service.errors.total.rate:splitBy():avg")
        );
        assert_eq!(answer["result"][0]["data"][0]["timestamps"], json!([NOW]));
        assert_eq!(
            dt.queries[0].from,
            NOW - 300_000,
            "relative timeframes are read"
        );
    }

    #[test]
    fn a_rule_with_a_release_answers_only_queries_scoped_to_that_release() {
        let mut dt = FakeDynatrace::new();
        dt.add_rule(br#"{"metricSelectorContains": "response.time", "releaseVersion": "sha256:green", "value": 900}"#)
            .expect("a rule");
        let scoped = |version: &str| {
            pairs(&[
                (
                    "metricSelector",
                    "builtin:service.response.time:splitBy():percentile(95)",
                ),
                (
                    "entitySelector",
                    &format!("type(PROCESS_GROUP_INSTANCE),releasesVersion(\"{version}\")"),
                ),
            ])
        };
        let green = dt
            .query_metrics("id", &scoped("sha256:green"), NOW)
            .expect("an answer");
        assert_eq!(green["result"][0]["data"][0]["values"], json!([900.0]));
        let blue = dt
            .query_metrics("id", &scoped("sha256:blue"), NOW)
            .expect("an answer");
        assert_eq!(blue["result"][0]["data"], json!([]), "no data for blue");
        assert_eq!(blue["totalCount"], json!(0));
        assert_eq!(
            dt.queries[1].release_version.as_deref(),
            Some("sha256:blue")
        );
    }

    #[test]
    fn bad_rules_give_inconclusive_or_failing_answers() {
        let mut dt = FakeDynatrace::new();
        let q = pairs(&[("metricSelector", "m")]);
        assert_eq!(
            dt.query_metrics("id", &q, NOW).expect("no rule")["result"][0]["data"],
            json!([])
        );
        dt.add_rule(br#"{"metricSelectorContains": "m", "bad": "nullValues"}"#)
            .expect("a rule");
        assert_eq!(
            dt.query_metrics("id", &q, NOW).expect("nulls")["result"][0]["data"][0]["values"],
            json!([null])
        );
        dt.add_rule(br#"{"metricSelectorContains": "m", "bad": "serverError"}"#)
            .expect("a rule");
        assert_eq!(
            dt.query_metrics("id", &q, NOW).expect_err("503").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        dt.add_rule(br#"{"metricSelectorContains": "m", "bad": "throttled"}"#)
            .expect("a rule");
        let throttled = dt.query_metrics("id", &q, NOW).expect_err("429");
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            throttled.into_response().headers()[header::RETRY_AFTER],
            "1"
        );
        for bad in [
            &br#"{"metricSelectorContains": "m"}"#[..],
            br#"{"metricSelectorContains": "m", "value": 1, "bad": "noData"}"#,
            br#"{"metricSelectorContains": "m", "bad": "slow"}"#,
            br#"{"metricSelectorContains": "m", "values": []}"#,
            br#"{"metricSelectorContains": "", "value": 1}"#,
        ] {
            assert!(
                dt.add_rule(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_query_without_a_selector_or_with_a_bad_timeframe_is_a_400_naming_the_parameter() {
        let mut dt = FakeDynatrace::new();
        let err = dt.query_metrics("id", &[], NOW).expect_err("400");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body()["error"]["constraintViolations"][0]["path"],
            json!("metricSelector")
        );
        for (name, value) in [
            ("from", "yesterday"),
            ("resolution", "5x"),
            ("to", "now-3h"),
        ] {
            let err = dt
                .query_metrics("id", &pairs(&[("metricSelector", "m"), (name, value)]), NOW)
                .expect_err("400");
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{name}={value}");
        }
    }

    #[test]
    fn deployment_events_are_recorded_as_received() {
        let mut dt = FakeDynatrace::new();
        let body = json!({
            "eventType": "CUSTOM_DEPLOYMENT",
            "title": "orders sha256:abc: promoted",
            "entitySelector": "type(SERVICE),entityName.equals(\"orders\")",
            "properties": {"dt.event.deployment.version": "sha256:abc", "step": 2},
        });
        let answer = dt
            .ingest_event("dt0c01.X", body.to_string().as_bytes(), NOW)
            .expect("ingested");
        assert_eq!(answer["reportCount"], json!(1));
        assert_eq!(answer["eventIngestResults"][0]["status"], json!("OK"));
        let events = dt.events_json();
        assert_eq!(events["events"][0]["event"], body);
        assert_eq!(
            events["events"][0]["correlationId"],
            answer["eventIngestResults"][0]["correlationId"]
        );
        for bad in [
            json!({"title": "t"}),
            json!({"eventType": "DEPLOYED", "title": "t"}),
            json!({"eventType": "CUSTOM_DEPLOYMENT"}),
            json!({"eventType": "CUSTOM_DEPLOYMENT", "title": "t", "properties": {"a": {}}}),
        ] {
            assert_eq!(
                dt.ingest_event("id", bad.to_string().as_bytes(), NOW)
                    .expect_err("400")
                    .status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert_eq!(dt.events.len(), 1);
    }

    #[test]
    fn created_tokens_work_can_be_looked_up_listed_revoked_and_deleted() {
        let admin = token('A', 'B');
        let admin_id = token_id(&admin).expect("id").to_owned();
        let mut dt = fake_with(&admin, &[API_TOKENS_READ, API_TOKENS_WRITE]);

        // Given a token created through the API
        let created = dt
            .create_token(
                &admin_id,
                br#"{"name": "orders-rotation-abc", "scopes": ["metrics.read"], "expirationDate": "now+30d"}"#,
                NOW,
            )
            .expect("created");
        let value = created["token"].as_str().expect("a value").to_owned();
        let id = created["id"].as_str().expect("an id").to_owned();
        assert_eq!(token_id(&value), Some(id.as_str()));
        assert_eq!(created["expirationDate"], json!("2026-01-31T00:00:00.000Z"));

        // Then it authenticates, and lookup by its value answers its metadata
        assert_eq!(
            dt.authenticate(Some(&auth(&value)), Some(METRICS_READ), NOW),
            Ok(id.clone())
        );
        let meta = dt
            .lookup_token(json!({"token": value}).to_string().as_bytes())
            .expect("found");
        assert_eq!(meta["name"], json!("orders-rotation-abc"));
        assert_eq!(meta["scopes"], json!(["metrics.read"]));
        assert_eq!(meta["enabled"], json!(true));
        assert!(!meta.to_string().contains(&value), "never the value");

        // And the list filters by name and answers the fields asked for
        let listed = dt
            .list_tokens(&pairs(&[
                ("apiTokenSelector", "name(\"rotation\")"),
                ("fields", "+scopes,+expirationDate,-owner"),
            ]))
            .expect("listed");
        assert_eq!(listed["totalCount"], json!(1));
        let entry = &listed["apiTokens"][0];
        assert_eq!(entry["id"], json!(id));
        assert_eq!(entry["scopes"], json!(["metrics.read"]));
        assert!(entry.get("owner").is_none());
        assert!(entry.get("expirationDate").is_some());
        assert!(!listed.to_string().contains(&value));

        // When it is revoked (PUT enabled false), it no longer authenticates
        dt.update_token(&admin_id, &id, br#"{"enabled": false}"#, NOW)
            .expect("revoked");
        assert_eq!(
            dt.authenticate(Some(&auth(&value)), None, NOW)
                .expect_err("revoked")
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            dt.get_token(&id).expect("still there")["enabled"],
            json!(false)
        );

        // And deleted, it is gone
        dt.delete_token(&admin_id, &id).expect("deleted");
        assert_eq!(
            dt.get_token(&id).expect_err("gone").status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            dt.lookup_token(json!({"token": value}).to_string().as_bytes())
                .expect_err("gone")
                .status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_caller_cannot_disable_or_delete_its_own_token() {
        let admin = token('A', 'B');
        let admin_id = token_id(&admin).expect("id").to_owned();
        let mut dt = fake_with(&admin, &[API_TOKENS_WRITE]);
        assert_eq!(
            dt.update_token(&admin_id, &admin_id, br#"{"enabled": false}"#, NOW)
                .expect_err("400")
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            dt.delete_token(&admin_id, &admin_id)
                .expect_err("400")
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_token_is_created_only_with_a_name_scopes_and_a_future_expiry() {
        let mut dt = FakeDynatrace::new();
        for body in [
            &br#"{"scopes": ["metrics.read"]}"#[..],
            br#"{"name": "n", "scopes": []}"#,
            br#"{"name": "n", "scopes": ["metrics.read"], "expirationDate": "now-1d"}"#,
            br#"{"name": "n", "scopes": ["metrics.read"], "expirationDate": "soon"}"#,
        ] {
            assert_eq!(
                dt.create_token("id", body, NOW).expect_err("400").status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_control_list_shows_metadata_but_never_a_token_value() {
        let value = token('A', 'B');
        let mut dt = fake_with(&value, &[METRICS_READ]);
        let generated = dt
            .seed_token(br#"{"name": "gen", "scopes": ["events.ingest"]}"#, NOW)
            .expect("seeded");
        let generated_value = generated["token"].as_str().expect("a generated value");
        let listing = dt.token_summaries().to_string();
        assert!(!listing.contains(&value));
        assert!(!listing.contains(generated_value));
        assert!(listing.contains(token_id(&value).expect("id")));
        assert!(
            !format!("{:?}", dt).contains(&"B".repeat(64)),
            "Debug hides values"
        );
        assert!(
            dt.seed_token(
                json!({"token": value, "name": "again", "scopes": ["x"]})
                    .to_string()
                    .as_bytes(),
                NOW
            )
            .is_err(),
            "ids are unique"
        );
    }

    #[test]
    fn release_versions_are_read_from_entity_and_metric_selectors() {
        assert_eq!(
            release_version_of("type(PROCESS_GROUP_INSTANCE),releasesVersion(\"sha256:ab\")")
                .as_deref(),
            Some("sha256:ab")
        );
        assert_eq!(
            release_version_of(
                "m:filter(in(\"dt.entity.process_group_instance\",entitySelector(\"type(PROCESS_GROUP_INSTANCE),releasesVersion(~\"v2~\")\")))"
            )
            .as_deref(),
            Some("v2")
        );
        assert_eq!(
            release_version_of("releasesVersion(v3),releasesStage(prod)").as_deref(),
            Some("v3")
        );
        assert_eq!(release_version_of("type(SERVICE)"), None);
    }

    #[test]
    fn dates_round_trip_in_dynatrace_formats() {
        assert_eq!(format_iso(NOW), "2026-01-01T00:00:00.000Z");
        assert_eq!(format_iso(951_782_400_123), "2000-02-29T00:00:00.123Z");
        for (text, ms) in [
            ("2026-01-01T00:00:00.000Z", NOW),
            ("2026-01-01T01:00:00+01:00", NOW),
            ("2025-12-31 23:00", NOW - 3_600_000),
            ("2000-02-29T00:00:00.123Z", 951_782_400_123),
            ("1767225600000", NOW),
            ("now", NOW),
            ("now-2h", NOW - 7_200_000),
            ("now+30d/d", NOW + 30 * 86_400_000),
        ] {
            assert_eq!(parse_time(text, NOW), Some(ms), "{text}");
        }
        for bad in ["", "now-2x", "2026-13-01T00:00:00Z", "tomorrow"] {
            assert_eq!(parse_time(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn token_fields_follow_dynatraces_plus_minus_and_explicit_forms() {
        let set =
            |f: Option<&str>| token_fields(f).map(|s| s.into_iter().collect::<Vec<_>>().join(","));
        assert_eq!(
            set(None).as_deref(),
            Some("creationDate,enabled,id,name,owner")
        );
        assert_eq!(
            set(Some("+scopes,-owner")).as_deref(),
            Some("creationDate,enabled,id,name,scopes")
        );
        assert_eq!(set(Some("name,scopes")).as_deref(), Some("id,name,scopes"));
        assert_eq!(set(Some("+secret")), None);
    }
}
