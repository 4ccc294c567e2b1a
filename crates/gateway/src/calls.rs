//! Every AWS call through the gateway, counted by caller and IAM action, and the faults that
//! can be injected into them (`/_local/calls`, `/_local/call-faults`, docs/local-stack.md).
//!
//! The caller is the function that sent the call: the functions' SDK configuration names
//! itself `app/<function>` in the user agent (as on AWS, where CloudTrail records it). A
//! Lambda invoke's caller is the function invoked. The action is the IAM action of the call
//! (`ecs:CreateTaskSet`, `elasticloadbalancing:ModifyListener`, `lambda:InvokeFunction`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::proxy::{self, Incoming};

/// How many recent calls keep their body, for `?match=` queries.
const RECENT_CALLS: usize = 50_000;
/// How long a `timeout` fault holds the answer by default: past the functions' 10 s
/// operation timeout.
pub const DEFAULT_TIMEOUT_DELAY: Duration = Duration::from_secs(12);

/// What an injected fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallFaultKind {
    /// The service answers `400` with its throttling error code; nothing happens.
    Throttle,
    /// The service answers `500 InternalFailure`; nothing happens.
    ServerError,
    /// The call happens, but its answer comes only after the caller gave up.
    Timeout,
    /// A Lambda invoke: the function runs, then its answer is lost to a crash
    /// (`Runtime.ExitError`), as when the process is killed after its work.
    Crash,
}

impl CallFaultKind {
    pub fn name(self) -> &'static str {
        match self {
            CallFaultKind::Throttle => "throttle",
            CallFaultKind::ServerError => "server-error",
            CallFaultKind::Timeout => "timeout",
            CallFaultKind::Crash => "crash",
        }
    }
}

/// A fault for the next `times` calls of `action` by `caller` whose body contains `matching`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallFaultSpec {
    /// The calling function (`create-green`); any caller when absent.
    #[serde(default)]
    pub caller: Option<String>,
    /// The IAM action (`ecs:CreateTaskSet`; `lambda:InvokeFunction` for a crash).
    pub action: String,
    /// Only calls whose request body contains this text (e.g. a cluster's name).
    #[serde(default, rename = "match")]
    pub matching: Option<String>,
    pub kind: CallFaultKind,
    /// How many calls it hits; 1 by default.
    #[serde(default = "one")]
    pub times: u32,
    /// For `timeout`: how long the answer is held, in seconds (default 12).
    #[serde(default)]
    pub delay_seconds: Option<f64>,
}

fn one() -> u32 {
    1
}

impl CallFaultSpec {
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let Some((service, op)) = self.action.split_once(':') else {
            return Err(format!(
                "action must be an IAM action such as ecs:CreateTaskSet, got {:?}",
                self.action
            ));
        };
        if service.is_empty() || op.is_empty() {
            return Err(format!(
                "action {:?} has no service or operation",
                self.action
            ));
        }
        if self.kind == CallFaultKind::Crash && self.action != "lambda:InvokeFunction" {
            return Err("a crash fault is for the action lambda:InvokeFunction".into());
        }
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        if let Some(d) = self.delay_seconds
            && !(d.is_finite() && (0.0..=300.0).contains(&d))
        {
            return Err(format!("delaySeconds must be between 0 and 300, got {d}"));
        }
        Ok(())
    }

    fn applies(&self, call: &Call<'_>) -> bool {
        self.action == call.action
            && self.caller.as_deref().is_none_or(|c| c == call.caller)
            && self
                .matching
                .as_deref()
                .is_none_or(|m| String::from_utf8_lossy(call.body).contains(m))
    }
}

/// An armed fault and how often it hit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallFault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: CallFaultSpec,
    pub hits: u32,
}

/// One call, as the gateway sees it.
#[derive(Debug)]
pub struct Call<'a> {
    pub caller: &'a str,
    pub action: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug)]
struct Recorded {
    caller: String,
    action: String,
    body: String,
}

/// Call counts and armed faults.
#[derive(Debug, Default)]
pub struct Calls {
    counts: BTreeMap<(String, String), u64>,
    recent: VecDeque<Recorded>,
    faults: Vec<CallFault>,
    next_id: u64,
}

/// One row of `GET /_local/calls`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallCount {
    pub caller: String,
    pub action: String,
    pub count: u64,
}

impl Calls {
    /// Counts `call` and returns the fault it hits, if one is armed for it.
    pub fn record(&mut self, call: &Call<'_>) -> Option<(CallFaultKind, Duration)> {
        *self
            .counts
            .entry((call.caller.to_owned(), call.action.to_owned()))
            .or_default() += 1;
        if self.recent.len() == RECENT_CALLS {
            self.recent.pop_front();
        }
        self.recent.push_back(Recorded {
            caller: call.caller.to_owned(),
            action: call.action.to_owned(),
            body: String::from_utf8_lossy(call.body).into_owned(),
        });
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.hits < f.spec.times && f.spec.applies(call))?;
        fault.hits += 1;
        let delay = fault
            .spec
            .delay_seconds
            .map_or(DEFAULT_TIMEOUT_DELAY, Duration::from_secs_f64);
        Some((fault.spec.kind, delay))
    }

    /// Calls by caller and action since the last reset; with `matching`, only the recent
    /// calls whose body contains it.
    pub fn counts(&self, matching: Option<&str>) -> Vec<CallCount> {
        let counts = match matching {
            None => self.counts.clone(),
            Some(m) => {
                let mut counts = BTreeMap::new();
                for r in self.recent.iter().filter(|r| r.body.contains(m)) {
                    *counts
                        .entry((r.caller.clone(), r.action.clone()))
                        .or_default() += 1;
                }
                counts
            }
        };
        counts
            .into_iter()
            .map(|((caller, action), count)| CallCount {
                caller,
                action,
                count,
            })
            .collect()
    }

    pub fn reset_counts(&mut self) {
        self.counts.clear();
        self.recent.clear();
    }

    pub fn add_fault(&mut self, spec: CallFaultSpec) -> CallFault {
        self.next_id += 1;
        let fault = CallFault {
            id: self.next_id,
            spec,
            hits: 0,
        };
        self.faults.push(fault.clone());
        fault
    }

    pub fn faults(&self) -> &[CallFault] {
        &self.faults
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }
}

/// The function that sent a request: `app/<name>` of its user agent.
pub fn caller(headers: &HeaderMap) -> Option<String> {
    ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .flat_map(str::split_whitespace)
        .find_map(|part| part.strip_prefix("app/"))
        .map(str::to_owned)
}

/// The IAM service prefix of a SigV4 signing name.
fn iam_prefix(signing_name: &str) -> &str {
    match signing_name {
        "monitoring" => "cloudwatch",
        other => other,
    }
}

/// How a call's protocol spells its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson 1.0/1.1: `__type` in a JSON body (ECS, Secrets Manager, Step Functions, ECR).
    Json,
    /// awsQuery: an XML `ErrorResponse` (Elastic Load Balancing v2).
    Query,
    /// Smithy RPC v2 CBOR (CloudWatch).
    Cbor,
}

/// The IAM action of an AWS request and its protocol; `None` for what is not an AWS call.
pub fn action(req: &Incoming, signing_name: Option<&str>) -> Option<(String, Protocol)> {
    let service = iam_prefix(signing_name?);
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(target) = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let op = target.rsplit('.').next().unwrap_or(target);
        return Some((format!("{service}:{op}"), Protocol::Json));
    }
    if let Some(op) = req.uri.path().rsplit("/operation/").next()
        && req.uri.path().contains("/operation/")
    {
        return Some((format!("{service}:{op}"), Protocol::Cbor));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let op = form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())?;
        return Some((format!("{service}:{op}"), Protocol::Query));
    }
    None
}

/// The answer of a service that throttles or fails the call.
pub fn service_error(protocol: Protocol, kind: CallFaultKind) -> Response {
    let (status, json_code, query_code, message) = match kind {
        CallFaultKind::Throttle => (
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Throttling",
            "Rate exceeded (injected by the local gateway)",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "InternalFailure",
            "We encountered an internal error. Please try again. (injected by the local gateway)",
        ),
    };
    match protocol {
        Protocol::Json => {
            let mut answer = proxy::json_answer(
                status,
                "application/x-amz-json-1.1",
                &json!({ "__type": json_code, "message": message }),
            );
            answer.headers.insert(
                HeaderName::from_static("x-amzn-errortype"),
                HeaderValue::from_static(json_code),
            );
            answer.into_response()
        }
        Protocol::Query => {
            let kind = if status.is_client_error() {
                "Sender"
            } else {
                "Receiver"
            };
            let body = format!(
                "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>{kind}</Type><Code>{query_code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            );
            (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
        }
        Protocol::Cbor => crate::cloudwatch::cbor_error(status, json_code, message),
    }
}

/// A Lambda invoke answered as a crashed function.
pub fn crashed(function: &str) -> Response {
    let mut answer = proxy::json_answer(
        StatusCode::OK,
        "application/json",
        &json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!("RequestId: local Error: Runtime exited with error: signal: killed (function {function}, crash injected by the local gateway)"),
        }),
    );
    answer.headers.insert(
        HeaderName::from_static("x-amz-function-error"),
        HeaderValue::from_static("Unhandled"),
    );
    answer.into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(action: &str, kind: CallFaultKind) -> CallFaultSpec {
        CallFaultSpec {
            caller: Some("create-green".into()),
            action: action.into(),
            matching: Some("orders-x1".into()),
            kind,
            times: 2,
            delay_seconds: None,
        }
    }

    #[test]
    fn a_fault_hits_only_its_caller_action_and_match_and_only_times_calls() {
        let mut calls = Calls::default();
        calls.add_fault(spec("ecs:CreateTaskSet", CallFaultKind::Throttle));
        let call = |caller, action, body: &'static str| Call {
            caller,
            action,
            body: body.as_bytes(),
        };
        let body = r#"{"cluster":"orders-x1"}"#;
        assert_eq!(
            calls.record(&call("verify-health", "ecs:CreateTaskSet", body)),
            None
        );
        assert_eq!(
            calls.record(&call("create-green", "ecs:DescribeServices", body)),
            None
        );
        assert_eq!(
            calls.record(&call(
                "create-green",
                "ecs:CreateTaskSet",
                r#"{"cluster":"other"}"#
            )),
            None
        );
        for _ in 0..2 {
            let hit = calls.record(&call("create-green", "ecs:CreateTaskSet", body));
            assert_eq!(hit.map(|h| h.0), Some(CallFaultKind::Throttle));
        }
        assert_eq!(
            calls.record(&call("create-green", "ecs:CreateTaskSet", body)),
            None
        );
        assert_eq!(calls.faults()[0].hits, 2);
        let counts = calls.counts(None);
        let create = counts
            .iter()
            .find(|c| c.caller == "create-green" && c.action == "ecs:CreateTaskSet")
            .map(|c| c.count);
        assert_eq!(create, Some(4));
        let matched = calls.counts(Some("orders-x1"));
        assert_eq!(matched.iter().map(|c| c.count).sum::<u64>(), 5);
    }

    #[test]
    fn bad_fault_specs_are_refused_with_the_field() {
        let mut s = spec("CreateTaskSet", CallFaultKind::Throttle);
        assert!(s.validate().unwrap_err().contains("IAM action"));
        s.action = "ecs:CreateTaskSet".into();
        s.kind = CallFaultKind::Crash;
        assert!(s.validate().unwrap_err().contains("lambda:InvokeFunction"));
        s.kind = CallFaultKind::Timeout;
        s.times = 0;
        assert!(s.validate().unwrap_err().contains("times"));
        s.times = 1;
        s.delay_seconds = Some(-1.0);
        assert!(s.validate().unwrap_err().contains("delaySeconds"));
        s.delay_seconds = Some(3.0);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn the_caller_is_the_app_name_of_the_user_agent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-user-agent",
            HeaderValue::from_static(
                "aws-sdk-rust/1.3 ua/2.1 api/ecs/1.0 os/linux lang/rust/1.95 app/create-green",
            ),
        );
        assert_eq!(caller(&headers).as_deref(), Some("create-green"));
        assert_eq!(caller(&HeaderMap::new()), None);
    }
}
