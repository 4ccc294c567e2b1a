//! The gateway's one error type.

use axum::http::StatusCode;

/// Everything that can go wrong in the gateway, each variant saying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An environment variable holds a value the gateway cannot use.
    #[error("invalid {var}={value:?}: {reason}")]
    Config {
        var: &'static str,
        value: String,
        reason: String,
    },
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {source} (is another gateway already running?)")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// No HTTP client could be built.
    #[error("could not build an http client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The HTTP server stopped with an I/O error.
    #[error("gateway server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// moto did not answer at all.
    #[error("could not reach moto for {op}: {source} (is moto running on BG_MOTO_PORT?)")]
    MotoUnreachable { op: String, source: reqwest::Error },
    /// moto answered a lookup the gateway made itself with an error status.
    #[error("moto answered {op} with HTTP {status}: {body}")]
    MotoStatus {
        op: String,
        status: StatusCode,
        body: String,
    },
    /// moto answered, but not in the shape the gateway expected.
    #[error("moto's answer to {op} is not what the gateway expected: {reason}")]
    MotoAnswer { op: String, reason: String },
    /// An XML document could not be parsed.
    #[error("malformed xml: {0}")]
    Xml(String),
}
