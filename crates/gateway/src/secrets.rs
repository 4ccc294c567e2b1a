//! Secrets Manager: forwarded to moto, with one correction. AWS answers `GetSecretValue`
//! without `VersionId` and `VersionStage` with the version labelled `AWSCURRENT`; moto answers
//! the version it last made its default, which `UpdateSecretVersionStage` does not change, so
//! after a rotation moved `AWSCURRENT` it would answer the previous value. The gateway asks
//! moto for `AWSCURRENT` explicitly.

use serde_json::Value;

use crate::proxy::Incoming;

const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";

/// `req`, with `"VersionStage": "AWSCURRENT"` added to a `GetSecretValue` that names neither
/// a version nor a stage; any other request as it is.
pub fn current_by_default(req: Incoming) -> Incoming {
    let is_get = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        == Some(GET_SECRET_VALUE);
    if !is_get {
        return req;
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&req.body) else {
        return req;
    };
    if body.contains_key("VersionId") || body.contains_key("VersionStage") {
        return req;
    }
    body.insert("VersionStage".into(), Value::String("AWSCURRENT".into()));
    Incoming {
        body: Value::Object(body).to_string().into(),
        ..req
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method};

    use super::*;

    fn get(body: &str) -> Incoming {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", HeaderValue::from_static(GET_SECRET_VALUE));
        Incoming {
            method: Method::POST,
            uri: "/".parse().unwrap(),
            headers,
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn a_get_without_version_or_stage_asks_for_awscurrent_and_others_pass_unchanged() {
        let out = current_by_default(get(r#"{"SecretId": "s"}"#));
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["VersionStage"], "AWSCURRENT");
        for kept in [
            r#"{"SecretId": "s", "VersionStage": "AWSPREVIOUS"}"#,
            r#"{"SecretId": "s", "VersionId": "v"}"#,
        ] {
            assert_eq!(current_by_default(get(kept)).body, kept.as_bytes());
        }
    }
}
