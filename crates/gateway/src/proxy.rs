//! Buffered reverse proxying: requests pass to moto (or the Lambda host) with their method,
//! path, query, headers and body unchanged, except hop-by-hop headers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request read in full.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Incoming {
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }
}

/// An answer read in full.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Upstream {
    /// The same answer with another body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The same answer with a JSON body.
    pub fn with_json(self, value: &Value) -> Self {
        self.with_body(value.to_string())
    }
}

impl IntoResponse for Upstream {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = end_to_end(&self.headers);
        response
    }
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers to pass on: all but hop-by-hop ones (including those `Connection` names),
/// `Content-Length` (the body is re-framed) and `Expect` (the body is already read).
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.as_str();
        let drop = HOP_BY_HOP.contains(&lower)
            || named_by_connection.iter().any(|n| n == lower)
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT;
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Sends the request to `base` (for example `http://127.0.0.1:5101`) with the same method,
/// path, query, headers (the `Host` header included: moto never routes by port) and body.
///
/// # Errors
/// The transport error when the upstream cannot be reached or its answer cannot be read.
pub async fn forward(
    http: &reqwest::Client,
    base: &str,
    req: &Incoming,
) -> Result<Upstream, reqwest::Error> {
    send(
        http.request(
            req.method.clone(),
            format!("{base}{}", req.path_and_query()),
        )
        .headers(end_to_end(&req.headers))
        .body(req.body.clone()),
    )
    .await
}

/// Sends a prepared request and reads the answer in full.
///
/// # Errors
/// As [`forward`].
pub async fn send(request: reqwest::RequestBuilder) -> Result<Upstream, reqwest::Error> {
    let answer = request.send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await?;
    Ok(Upstream {
        status,
        headers,
        body,
    })
}

/// A JSON answer the gateway makes itself, with an `x-amzn-RequestId`.
pub fn json_answer(status: StatusCode, content_type: &'static str, value: &Value) -> Upstream {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_request_id(&mut headers);
    Upstream {
        status,
        headers,
        body: Bytes::from(value.to_string()),
    }
}

/// Sets a fresh `x-amzn-RequestId`.
pub fn set_request_id(headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::from_str(&crate::ids::request_id()) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), value);
    }
}

/// 502 when moto cannot be reached.
pub fn moto_unreachable(err: &reqwest::Error) -> Upstream {
    tracing::error!(error = %err, "moto is unreachable");
    json_answer(
        StatusCode::BAD_GATEWAY,
        "application/json",
        &json!({
            "__type": "ServiceUnavailable",
            "message": format!("the local gateway could not reach moto: {err} (is moto running on BG_MOTO_PORT?)"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_headers_and_keeps_aws_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-trace"),
        );
        headers.insert("x-trace", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:5100"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
        );
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonEC2ContainerServiceV20141113.ListTasks"),
        );
        let kept = end_to_end(&headers);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "host", "x-amz-target"]);
    }
}
