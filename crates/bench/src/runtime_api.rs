//! A local Lambda Runtime API (the interface a `provided.al2023` bootstrap polls), enough to
//! run one release binary the way Lambda does and time it: `next` hands out queued events,
//! `response` and `error` answer them, `init/error` reports a failed start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

/// What the function answered.
#[derive(Debug)]
pub enum Answer {
    Response,
    /// `errorType`.
    Error(String),
}

struct Invocation {
    id: String,
    payload: serde_json::Value,
}

#[derive(Default)]
struct Shared {
    waiting: HashMap<String, oneshot::Sender<Answer>>,
    init_error: Option<String>,
}

struct ApiState {
    events: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    shared: Mutex<Shared>,
    function_arn: String,
}

/// One Runtime API, serving one function process at a time.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    queue: mpsc::Sender<Invocation>,
    state: Arc<ApiState>,
    next_id: u64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(function_arn: &str) -> anyhow::Result<Self> {
        let (queue, events) = mpsc::channel(16);
        let state = Arc::new(ApiState {
            events: tokio::sync::Mutex::new(events),
            shared: Mutex::new(Shared::default()),
            function_arn: function_arn.to_owned(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the runtime API")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            queue,
            state,
            next_id: 0,
            server,
        })
    }

    /// Queues `payload` and waits for the function's answer, up to `timeout`.
    ///
    /// # Errors
    /// When the function reported an init error, or did not answer in time.
    pub async fn invoke(
        &mut self,
        payload: serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<Answer> {
        self.next_id += 1;
        let id = format!("bench-{:08}", self.next_id);
        let (tx, rx) = oneshot::channel();
        self.shared().waiting.insert(id.clone(), tx);
        self.queue
            .send(Invocation { id, payload })
            .await
            .context("the runtime API stopped")?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => match self.shared().init_error.clone() {
                Some(e) => bail!("the function failed to start: {e}"),
                None => bail!("the function did not answer within {timeout:?}"),
            },
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let Some(inv) = state.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    let deadline = bluegreen::lambda::now_millis() + 900_000;
    set(&mut headers, "lambda-runtime-aws-request-id", &inv.id);
    set(
        &mut headers,
        "lambda-runtime-deadline-ms",
        &deadline.to_string(),
    );
    set(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        &state.function_arn,
    );
    set(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0",
    );
    set(&mut headers, "content-type", "application/json");
    (StatusCode::OK, headers, inv.payload.to_string()).into_response()
}

fn answer(state: &ApiState, id: &str, answer: Answer) -> Response {
    let tx = state
        .shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .waiting
        .remove(id);
    match tx {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn response(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    answer(&state, &id, Answer::Response)
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let kind = value["errorType"].as_str().unwrap_or("Unknown").to_owned();
    answer(&state, &id, Answer::Error(kind))
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    state
        .shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .init_error = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED.into_response()
}
