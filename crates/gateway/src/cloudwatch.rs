//! CloudWatch: the AWS SDK for Rust speaks Smithy RPC v2 CBOR to CloudWatch, moto answers
//! CloudWatch only in its JSON (and Query) protocol. The gateway translates: a CBOR request
//! to `/service/GraniteServiceVersion20100801/operation/<Op>` becomes the same operation in
//! JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`), and moto's JSON answer,
//! error or not, goes back as CBOR with the `smithy-protocol: rpc-v2-cbor` header.
//!
//! JSON carries no types, so two things need the model's knowledge: timestamps (CBOR tag 1
//! around epoch seconds; JSON epoch seconds) are recognised by member name
//! ([`TIMESTAMP_MEMBERS`]), and blobs (CBOR byte strings; JSON base64) by their CBOR type
//! on the way in.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ciborium::value::Value as Cbor;
use serde_json::{Map, Number, Value};

use crate::proxy::{self, Incoming, Upstream};

/// The service id in CloudWatch's RPC v2 paths and JSON targets.
pub const SERVICE: &str = "GraniteServiceVersion20100801";
const PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";
const CBOR: &str = "application/cbor";
const JSON_1_0: &str = "application/x-amz-json-1.0";

/// Members of CloudWatch's output shapes that are timestamps (from the service model).
pub const TIMESTAMP_MEMBERS: &[&str] = &[
    "AlarmConfigurationUpdatedTimestamp",
    "CreatedAt",
    "CreationDate",
    "EndTime",
    "ExpireDate",
    "LastModified",
    "LastUpdateDate",
    "LastUpdatedTimestamp",
    "StartDate",
    "StartTime",
    "StateTransitionedTimestamp",
    "StateUpdatedTimestamp",
    "Timestamp",
    "Timestamps",
    "UpdatedAt",
];

/// The operation of a CloudWatch RPC v2 request path, if it is one.
pub fn operation(path: &str) -> Option<&str> {
    path.strip_prefix(PATH_PREFIX)
        .filter(|op| !op.is_empty() && op.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Translates one CloudWatch call to moto's JSON protocol and the answer back to CBOR.
pub async fn handle(http: &reqwest::Client, moto_url: &str, op: &str, req: &Incoming) -> Response {
    let input = if req.body.is_empty() {
        Value::Object(Map::new())
    } else {
        match ciborium::from_reader::<Cbor, _>(req.body.as_ref()) {
            Ok(cbor) => to_json(cbor),
            Err(err) => {
                return cbor_error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    &format!("the local gateway could not read the CBOR body of {op}: {err}"),
                );
            }
        }
    };
    let mut headers = proxy::end_to_end(&req.headers);
    headers.remove(HeaderName::from_static("smithy-protocol"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_0));
    headers.insert(header::ACCEPT, HeaderValue::from_static(JSON_1_0));
    if let Ok(target) = HeaderValue::from_str(&format!("{SERVICE}.{op}")) {
        headers.insert(HeaderName::from_static("x-amz-target"), target);
    }
    let request = http
        .post(format!("{moto_url}/"))
        .headers(headers)
        .body(input.to_string());
    let upstream = match proxy::send(request).await {
        Ok(upstream) => upstream,
        Err(err) => return proxy::moto_unreachable(&err).into_response(),
    };
    answer(op, upstream)
}

/// moto's JSON answer as a CBOR answer.
fn answer(op: &str, upstream: Upstream) -> Response {
    let json: Value = if upstream.body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice(&upstream.body) {
            Ok(json) => json,
            Err(err) => {
                return cbor_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServiceFault",
                    &format!(
                        "moto answered {op} with {} and a body that is not JSON ({err})",
                        upstream.status
                    ),
                );
            }
        }
    };
    cbor_response(upstream.status, &to_cbor(json, false))
}

fn cbor_response(status: StatusCode, value: &Cbor) -> Response {
    let mut body = Vec::new();
    if let Err(err) = ciborium::into_writer(value, &mut body) {
        tracing::error!(error = %err, "could not encode a CBOR answer");
        body.clear();
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CBOR));
    headers.insert(
        HeaderName::from_static("smithy-protocol"),
        HeaderValue::from_static("rpc-v2-cbor"),
    );
    proxy::set_request_id(&mut headers);
    Upstream {
        status,
        headers,
        body: body.into(),
    }
    .into_response()
}

/// A CloudWatch error answer in CBOR.
pub fn cbor_error(status: StatusCode, code: &str, message: &str) -> Response {
    cbor_response(
        status,
        &Cbor::Map(vec![
            (Cbor::Text("__type".into()), Cbor::Text(code.into())),
            (Cbor::Text("message".into()), Cbor::Text(message.into())),
        ]),
    )
}

/// A CBOR request value as JSON: timestamps (tag 1) as epoch seconds, byte strings as
/// base64, maps with text keys as objects.
pub fn to_json(value: Cbor) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or(Value::Null)
        }
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Text(t) => Value::String(t),
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(key) => Some((key, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Tag(_, inner) => to_json(*inner),
        _ => Value::Null,
    }
}

/// A JSON answer value as CBOR; values of [`TIMESTAMP_MEMBERS`] (epoch seconds, or an ISO
/// 8601 string) become tag 1 around epoch seconds.
pub fn to_cbor(value: Value, timestamp: bool) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(b),
        Value::Number(n) if timestamp => epoch(n.as_f64().unwrap_or(0.0)),
        Value::String(s) if timestamp => match iso_seconds(&s) {
            Some(secs) => epoch(secs),
            None => Cbor::Text(s),
        },
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cbor::Text(s),
        Value::Array(items) => {
            Cbor::Array(items.into_iter().map(|v| to_cbor(v, timestamp)).collect())
        }
        Value::Object(map) => Cbor::Map(
            map.into_iter()
                .map(|(k, v)| {
                    let is_timestamp = TIMESTAMP_MEMBERS.contains(&k.as_str());
                    (Cbor::Text(k), to_cbor(v, is_timestamp))
                })
                .collect(),
        ),
    }
}

fn epoch(seconds: f64) -> Cbor {
    Cbor::Tag(1, Box::new(Cbor::Float(seconds)))
}

/// Epoch seconds of `2026-12-04T15:42:09[.123][Z|+00:00]`.
fn iso_seconds(text: &str) -> Option<f64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time
        .trim_end_matches('Z')
        .trim_end_matches("+00:00")
        .trim_end_matches("+0000");
    let mut t = time.splitn(3, ':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[allow(clippy::cast_precision_loss)]
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_rpc_v2_path_names_the_operation() {
        assert_eq!(
            operation("/service/GraniteServiceVersion20100801/operation/DescribeAlarms"),
            Some("DescribeAlarms")
        );
        assert_eq!(operation("/service/Other/operation/DescribeAlarms"), None);
        assert_eq!(
            operation("/service/GraniteServiceVersion20100801/operation/../x"),
            None
        );
    }

    #[test]
    fn requests_become_json_with_timestamps_as_epoch_seconds_and_bytes_as_base64() {
        let cbor = Cbor::Map(vec![
            (
                Cbor::Text("AlarmNames".into()),
                Cbor::Array(vec![Cbor::Text("orders-5xx".into())]),
            ),
            (
                Cbor::Text("StartTime".into()),
                Cbor::Tag(1, Box::new(Cbor::Float(1_767_225_600.5))),
            ),
            (Cbor::Text("MaxRecords".into()), Cbor::Integer(100.into())),
            (Cbor::Text("Data".into()), Cbor::Bytes(b"hi".to_vec())),
        ]);
        assert_eq!(
            to_json(cbor),
            json!({"AlarmNames": ["orders-5xx"], "StartTime": 1_767_225_600.5, "MaxRecords": 100, "Data": "aGk="})
        );
    }

    #[test]
    fn answers_tag_timestamp_members_whether_moto_wrote_numbers_or_iso_strings() {
        let answer = json!({"MetricAlarms": [{
            "AlarmName": "orders-5xx",
            "StateValue": "ALARM",
            "StateUpdatedTimestamp": 1_767_225_600,
            "AlarmConfigurationUpdatedTimestamp": "2026-01-01T00:00:00.000Z",
            "Threshold": 5.0,
            "EvaluationPeriods": 1
        }]});
        let cbor = to_cbor(answer, false);
        let Cbor::Map(top) = cbor else { panic!() };
        let Cbor::Array(alarms) = &top[0].1 else {
            panic!()
        };
        let Cbor::Map(alarm) = &alarms[0] else {
            panic!()
        };
        let get = |k: &str| {
            alarm
                .iter()
                .find(|(key, _)| key == &Cbor::Text(k.into()))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("StateUpdatedTimestamp"), Some(epoch(1_767_225_600.0)));
        assert_eq!(
            get("AlarmConfigurationUpdatedTimestamp"),
            Some(epoch(1_767_225_600.0))
        );
        assert_eq!(get("EvaluationPeriods"), Some(Cbor::Integer(1.into())));
        assert_eq!(get("StateValue"), Some(Cbor::Text("ALARM".into())));
    }

    #[test]
    fn iso_timestamps_read_as_epoch_seconds() {
        assert_eq!(iso_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            iso_seconds("2026-12-04T15:42:09.250+00:00"),
            Some(1_796_398_929.25)
        );
        assert_eq!(iso_seconds("not a time"), None);
    }
}
