//! The HTTP server: control routes, Lambda routing, the ECS/ELBv2 simulation, moto for the rest.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::calls::{self, Call, CallFaultKind, Calls};
use crate::cloudwatch;
use crate::config::Config;
use crate::control;
use crate::dynatrace::{self, FakeDynatrace};
use crate::ecs;
use crate::elbv2;
use crate::error::Error;
use crate::lambda;
use crate::moto::{Credential, MotoClient, display_targets, http_client};
use crate::proxy::{self, Incoming};
use crate::secrets;
use crate::sim::{Changes, Sim, now_millis};

/// Requests are buffered; nothing the AWS SDKs send here comes near this.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How often draining targets that have run out their delay are removed from moto.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// How long open connections may keep the gateway alive after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub moto_url: String,
    pub lambda_url: String,
    /// For moto; generous, as Step Functions calls can take a while.
    pub http: reqwest::Client,
    /// For the Lambda host; no timeout, as `cargo lambda watch` compiles on first invoke.
    pub lambda_http: reqwest::Client,
    pub moto: MotoClient,
    sim: Mutex<Sim>,
    dynatrace: Mutex<FakeDynatrace>,
    calls: Mutex<Calls>,
}

impl AppState {
    /// # Errors
    /// [`Error::HttpClient`] when no HTTP client can be built.
    pub fn new(config: Config) -> Result<Self, Error> {
        let http = http_client(Some(Duration::from_secs(300))).map_err(Error::HttpClient)?;
        let lambda_http = http_client(None).map_err(Error::HttpClient)?;
        let moto_url = config.moto_url();
        Ok(Self {
            moto: MotoClient::new(http.clone(), moto_url.clone()),
            lambda_url: config.lambda_url(),
            moto_url,
            config,
            http,
            lambda_http,
            sim: Mutex::new(Sim::new()),
            dynatrace: Mutex::new(FakeDynatrace::new()),
            calls: Mutex::new(Calls::default()),
        })
    }

    /// The simulation; never hold the guard across an `.await`.
    pub fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fake Dynatrace API; never hold the guard across an `.await`.
    pub fn dynatrace(&self) -> MutexGuard<'_, FakeDynatrace> {
        self.dynatrace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The AWS call counts and injected call faults; never hold the guard across an `.await`.
    pub fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the simulation's target (de)registrations in moto. Failures are logged: the
    /// simulation stays the source of the answers either way.
    pub async fn apply(&self, changes: Changes) {
        for change in &changes.register {
            let targets = display_targets(&change.targets);
            match self.moto.register_targets(change).await {
                Ok(()) => {
                    info!(target_group = %change.target_group_arn, %targets, "registered simulated targets")
                }
                Err(err) => {
                    warn!(target_group = %change.target_group_arn, %targets, error = %err, "could not register simulated targets in moto")
                }
            }
        }
        for change in &changes.deregister {
            let targets = display_targets(&change.targets);
            match self.moto.deregister_targets(change).await {
                Ok(()) => {
                    info!(target_group = %change.target_group_arn, %targets, "deregistered drained targets")
                }
                Err(err) => {
                    warn!(target_group = %change.target_group_arn, %targets, error = %err, "could not deregister drained targets from moto")
                }
            }
        }
    }

    /// Brings the simulation (and moto's target lists) up to now.
    pub async fn sweep(&self) {
        let changes = self.sim().sweep(now_millis());
        self.apply(changes).await;
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Lambda(String),
    Ecs(String),
    Elbv2 {
        action: String,
        params: Vec<(String, String)>,
    },
    MotoReset,
    Control,
    Dynatrace,
    CloudWatch(String),
    Moto(Option<String>),
}

impl Route {
    fn of(req: &Incoming) -> Route {
        let path = req.uri.path();
        if path.starts_with("/_local/") || path == "/_local" {
            return Route::Control;
        }
        if path.starts_with("/dynatrace/") || path == "/dynatrace" {
            return Route::Dynatrace;
        }
        if let Some(function) = lambda::invoked_function(&req.method, path) {
            return Route::Lambda(function);
        }
        if let Some(op) = ecs::operation(&req.headers) {
            return Route::Ecs(op);
        }
        if let Some(op) = cloudwatch::operation(path) {
            return Route::CloudWatch(op.to_owned());
        }
        if req.method == Method::POST && path == "/moto-api/reset" {
            return Route::MotoReset;
        }
        let service = Credential::from_headers(&req.headers).map(|c| c.service);
        if service.as_deref() == Some("elasticloadbalancing") {
            let params = elbv2::query_params(req);
            if elbv2::param(&params, "Version") == Some(elbv2::VERSION) {
                let action = elbv2::param(&params, "Action")
                    .unwrap_or_default()
                    .to_owned();
                return Route::Elbv2 { action, params };
            }
        }
        Route::Moto(service)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Lambda(function) => write!(f, "lambda:{function}"),
            Route::Ecs(op) => write!(f, "ecs:{op}"),
            Route::Elbv2 { action, .. } => write!(f, "elbv2:{action}"),
            Route::MotoReset => f.write_str("moto:reset"),
            Route::Control => f.write_str("control"),
            Route::Dynatrace => f.write_str("dynatrace"),
            Route::CloudWatch(op) => write!(f, "cloudwatch:{op}"),
            Route::Moto(Some(service)) => write!(f, "moto:{service}"),
            Route::Moto(None) => f.write_str("moto"),
        }
    }
}

/// Every route of the gateway.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_local/health", get(control::health))
        .route("/_local/state", get(control::state))
        .route(
            "/_local/config",
            get(control::get_config).put(control::put_config),
        )
        .route(
            "/_local/faults",
            get(control::list_faults)
                .post(control::add_fault)
                .delete(control::clear_faults),
        )
        .route("/_local/reset", post(control::reset))
        .route(
            "/_local/calls",
            get(control::get_calls).delete(control::reset_calls),
        )
        .route(
            "/_local/call-faults",
            get(control::get_call_faults)
                .post(control::add_call_fault)
                .delete(control::clear_call_faults),
        )
        .route(
            "/_local/dynatrace/tokens",
            get(dynatrace::control_tokens).post(dynatrace::control_seed_token),
        )
        .route(
            "/_local/dynatrace/metrics",
            get(dynatrace::control_rules).post(dynatrace::control_add_rule),
        )
        .route("/_local/dynatrace/events", get(dynatrace::control_events))
        .route("/_local/dynatrace/queries", get(dynatrace::control_queries))
        .route("/_local/dynatrace/reset", post(dynatrace::control_reset))
        .nest("/dynatrace", dynatrace::api_router())
        .fallback(dispatch)
        .with_state(state)
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(err) => {
            warn!(error = %err, "could not read the request body");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"message": format!("could not read the request body: {err}")})),
            )
                .into_response();
        }
    };
    let req = Incoming {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let route = Route::of(&req);
    let (caller, action) = match &route {
        Route::Lambda(function) => (
            Some(function.clone()),
            Some(("lambda:InvokeFunction".to_owned(), None)),
        ),
        Route::Control | Route::Dynatrace | Route::MotoReset => (None, None),
        _ => {
            let signing = Credential::from_headers(&req.headers).map(|c| c.service);
            (
                calls::caller(&req.headers),
                calls::action(&req, signing.as_deref()).map(|(a, p)| (a, Some(p))),
            )
        }
    };
    let fault = action.as_ref().and_then(|(action, _)| {
        state.calls().record(&Call {
            caller: caller.as_deref().unwrap_or("-"),
            action,
            body: &req.body,
        })
    });
    if let (Some((kind, delay)), Some((action, protocol))) = (fault, &action) {
        warn!(
            caller = caller.as_deref().unwrap_or("-"),
            action,
            fault = kind.name(),
            "injected call fault"
        );
        match (kind, protocol) {
            (CallFaultKind::Throttle | CallFaultKind::ServerError, Some(protocol)) => {
                return calls::service_error(*protocol, kind);
            }
            (CallFaultKind::Throttle | CallFaultKind::ServerError, None) => {
                // A Lambda invoke: Lambda's own service error.
                return calls::service_error(calls::Protocol::Json, kind);
            }
            (CallFaultKind::Timeout, _) => {
                // The call happens; its answer comes after the caller gave up.
                let response = Box::pin(dispatch_route(&state, &route, req)).await;
                tokio::time::sleep(delay).await;
                return response;
            }
            (CallFaultKind::Crash, _) => {
                let _ = Box::pin(dispatch_route(&state, &route, req)).await;
                return calls::crashed(caller.as_deref().unwrap_or("-"));
            }
        }
    }
    let response = dispatch_route(&state, &route, req.clone()).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    info!(
        method = %req.method,
        path = req.uri.path(),
        route = %route,
        status = response.status().as_u16(),
        elapsed_ms,
        "request"
    );
    response
}

async fn dispatch_route(state: &Arc<AppState>, route: &Route, req: Incoming) -> Response {
    let state = state.clone();
    match route {
        Route::Control => control::not_found(req.uri.path()),
        Route::Dynatrace => dynatrace::not_found(req.uri.path()),
        Route::Lambda(function) => {
            lambda::invoke(&state.lambda_http, &state.lambda_url, function, &req).await
        }
        Route::Ecs(op) => ecs::handle(&state, op, &req).await,
        Route::CloudWatch(op) => cloudwatch::handle(&state.http, &state.moto_url, op, &req).await,
        Route::Elbv2 { action, params } if action == "DescribeTargetHealth" => {
            elbv2::describe_target_health(&state, &req, params).await
        }
        Route::MotoReset => {
            let response = forward(&state, &req).await;
            if response.status() == StatusCode::OK {
                // moto's resources are gone; so are the simulated tasks behind them.
                state.sim().forget_task_sets();
                info!("moto reset: simulated task sets forgotten");
            }
            response
        }
        Route::Moto(Some(service)) if service == "secretsmanager" => {
            forward(&state, &secrets::current_by_default(req.clone())).await
        }
        Route::Elbv2 { .. } | Route::Moto(_) => forward(&state, &req).await,
    }
}

async fn forward(state: &AppState, req: &Incoming) -> Response {
    match proxy::forward(&state.http, &state.moto_url, req).await {
        Ok(upstream) => upstream.into_response(),
        Err(err) => proxy::moto_unreachable(&err).into_response(),
    }
}

async fn sweep_forever(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        state.sweep().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            warn!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Listens on the configured loopback port until ctrl-c or SIGTERM.
///
/// # Errors
/// [`Error::Bind`] when the port is taken, [`Error::Serve`] when serving fails.
pub async fn serve(config: Config) -> Result<(), Error> {
    let addr = config.listen_addr();
    let state = Arc::new(AppState::new(config)?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    info!(
        %addr,
        moto = %state.moto_url,
        lambda = %state.lambda_url,
        "gateway listening"
    );
    let sweeper = tokio::spawn(sweep_forever(Arc::clone(&state)));
    let (stopping, mut stop_seen) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stopping.send(true);
    });
    let result = tokio::select! {
        result = server.into_future() => result.map_err(Error::Serve),
        () = async {
            let _ = stop_seen.changed().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            warn!("closing connections still open after the shutdown grace");
            Ok(())
        }
    };
    sweeper.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, Uri};

    fn incoming(method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Incoming {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        Incoming {
            method,
            uri: uri.parse::<Uri>().expect("a uri"),
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    const ELB_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=0";

    #[test]
    fn routes_each_kind_of_request() {
        let route = |req: Incoming| Route::of(&req).to_string();
        assert_eq!(
            route(incoming(
                Method::POST,
                "/2015-03-31/functions/validate/invocations",
                &[],
                "{}"
            )),
            "lambda:validate"
        );
        assert_eq!(
            route(incoming(
                Method::POST,
                "/",
                &[(
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.ListTasks"
                )],
                "{}"
            )),
            "ecs:ListTasks"
        );
        assert_eq!(
            route(incoming(
                Method::POST,
                "/",
                &[("authorization", ELB_AUTH)],
                "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=x"
            )),
            "elbv2:DescribeTargetHealth"
        );
        assert_eq!(
            route(incoming(
                Method::POST,
                "/",
                &[("authorization", ELB_AUTH)],
                "Action=DescribeLoadBalancers&Version=2012-06-01"
            )),
            "moto:elasticloadbalancing",
            "classic ELB shares the signing name"
        );
        assert_eq!(
            route(incoming(Method::POST, "/moto-api/reset", &[], "")),
            "moto:reset"
        );
        assert_eq!(
            route(incoming(Method::GET, "/_local/nope", &[], "")),
            "control"
        );
        assert_eq!(
            route(incoming(Method::GET, "/dynatrace/api/v1/nope", &[], "")),
            "dynatrace"
        );
        assert_eq!(route(incoming(Method::GET, "/", &[], "")), "moto");
    }
}
