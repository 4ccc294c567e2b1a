//! The control endpoint under `/_local/`: JSON in, JSON out.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::calls::CallFaultSpec;
use crate::server::AppState;
use crate::sim::{Fault, FaultMode, Millis, Sim, SimConfig, now_millis};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

/// A `/_local/` path the table does not list.
pub fn not_found(path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no control call {path}: use /_local/health, /_local/state, /_local/config, /_local/faults, /_local/reset, /_local/calls, /_local/call-faults or /_local/dynatrace/{{tokens,metrics,events,queries,reset}}"
        ),
    )
}

fn seconds_to_ms(seconds: f64) -> Millis {
    // Validated finite and non-negative; a day at most fits easily.
    (seconds * 1000.0).round() as Millis
}

fn ms_to_seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

fn valid_seconds(field: &str, seconds: f64) -> Result<Millis, String> {
    if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) {
        Ok(seconds_to_ms(seconds))
    } else {
        Err(format!(
            "{field} must be between 0 and 86400 seconds, got {seconds}"
        ))
    }
}

/// `GET /_local/health`: whether moto and the Lambda host answer at all.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let probe = |url: String| {
        let http = state.http.clone();
        async move { http.get(url).timeout(PROBE_TIMEOUT).send().await.is_ok() }
    };
    let (moto, lambda) = tokio::join!(
        probe(format!("{}/moto-api/config", state.moto_url)),
        probe(format!("{}/", state.lambda_url)),
    );
    Json(json!({ "moto": moto, "lambda": lambda })).into_response()
}

fn config_json(config: SimConfig) -> Value {
    json!({ "healthyAfterSeconds": ms_to_seconds(config.healthy_after_ms) })
}

fn fault_json(fault: &Fault) -> Value {
    let mut value = json!({ "image": fault.image, "mode": fault.mode.name() });
    if let Some(after) = fault.mode.after_ms() {
        value["afterSeconds"] = json!(ms_to_seconds(after));
    }
    value
}

fn faults_json(sim: &Sim) -> Value {
    json!({ "faults": sim.faults().iter().map(fault_json).collect::<Vec<_>>() })
}

/// `GET /_local/state`: every simulated task set with its tasks and targets.
pub async fn state(State(state): State<Arc<AppState>>) -> Response {
    state.sweep().await;
    let now = now_millis();
    let sim = state.sim();
    let task_sets: Vec<Value> = sim
        .task_sets()
        .map(|ts| {
            let counts = sim.counts(ts, now);
            let tasks: Vec<Value> = sim
                .task_views(ts, now)
                .iter()
                .map(|task| {
                    let targets: Vec<Value> = task
                        .targets
                        .iter()
                        .map(|(tg, s)| json!({ "targetGroupArn": tg, "state": s.as_str() }))
                        .collect();
                    json!({
                        "taskArn": task.arn,
                        "ip": task.ip.to_string(),
                        "lastStatus": task.last_status,
                        "desiredStatus": task.desired_status,
                        "stopCode": task.stop_code,
                        "stoppedReason": task.stopped_reason,
                        "exitCodes": task.containers.iter().map(|c| c.exit_code).collect::<Vec<_>>(),
                        "targetState": task.targets.first().map(|(_, s)| s.as_str()),
                        "targets": targets,
                        "secrets": task.held.iter().map(|h| json!({
                            "container": h.container,
                            "name": h.name,
                            "holds": h.holds,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "id": ts.spec.id,
                "taskSetArn": ts.spec.arn,
                "cluster": ts.spec.cluster_name(),
                "service": ts.spec.service_name(),
                "status": if ts.deleted_at.is_some() { "DRAINING" } else { "ACTIVE" },
                "taskDefinition": ts.spec.task_definition_arn,
                "images": ts.spec.containers.iter().map(|c| c.image.as_str()).collect::<Vec<_>>(),
                "targetGroups": ts.spec.target_groups.iter().map(|tg| tg.arn.as_str()).collect::<Vec<_>>(),
                "scalePercent": ts.scale_percent,
                "computedDesiredCount": counts.computed_desired,
                "runningCount": counts.running,
                "pendingCount": counts.pending,
                "stabilityStatus": counts.stability_status(),
                "tasks": tasks,
            })
        })
        .collect();
    Json(json!({
        "config": config_json(sim.config()),
        "faults": faults_json(&sim)["faults"],
        "taskSets": task_sets,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigRequest {
    healthy_after_seconds: f64,
}

/// `GET /_local/config`.
pub async fn get_config(State(state): State<Arc<AppState>>) -> Response {
    Json(config_json(state.sim().config())).into_response()
}

/// `PUT /_local/config {"healthyAfterSeconds": 1}`: applies to targets registered from now on.
pub async fn put_config(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: ConfigRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid config {{\"healthyAfterSeconds\": <seconds>}}: {err}"),
            );
        }
    };
    let healthy_after_ms = match valid_seconds("healthyAfterSeconds", request.healthy_after_seconds)
    {
        Ok(ms) => ms,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let config = SimConfig { healthy_after_ms };
    state.sim().set_config(config);
    tracing::info!(healthy_after_ms, "config changed");
    Json(config_json(config)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FaultRequest {
    image: String,
    mode: String,
    after_seconds: Option<f64>,
}

/// Checks a fault request; the message says what to send instead.
fn parse_fault(body: &[u8], now: Millis) -> Result<Fault, String> {
    let request: FaultRequest = serde_json::from_slice(body).map_err(|err| {
        format!("invalid fault {{\"image\": <substring>, \"mode\": <mode>, \"afterSeconds\": <seconds>}}: {err}")
    })?;
    if request.image.is_empty() {
        return Err("image must be a non-empty substring of a container image".to_owned());
    }
    let after = |mode: &str| -> Result<Millis, String> {
        let seconds = request
            .after_seconds
            .ok_or_else(|| format!("mode {mode} needs afterSeconds"))?;
        valid_seconds("afterSeconds", seconds)
    };
    let mode = match request.mode.as_str() {
        "neverHealthy" => {
            if request.after_seconds.is_some() {
                return Err("mode neverHealthy takes no afterSeconds".to_owned());
            }
            FaultMode::NeverHealthy
        }
        "unhealthyAfter" => FaultMode::UnhealthyAfter {
            after_ms: after("unhealthyAfter")?,
        },
        "crashAfter" => FaultMode::CrashAfter {
            after_ms: after("crashAfter")?,
        },
        other => {
            return Err(format!(
                "unknown fault mode {other:?}: use neverHealthy, unhealthyAfter or crashAfter"
            ));
        }
    };
    Ok(Fault {
        image: request.image,
        mode,
        added_at: now,
    })
}

/// `GET /_local/faults`.
pub async fn list_faults(State(state): State<Arc<AppState>>) -> Response {
    Json(faults_json(&state.sim())).into_response()
}

/// `POST /_local/faults {"image": "<substring>", "mode": "...", "afterSeconds": n}`.
pub async fn add_fault(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let fault = match parse_fault(&body, now_millis()) {
        Ok(fault) => fault,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    tracing::info!(image = %fault.image, mode = fault.mode.name(), after_ms = ?fault.mode.after_ms(), "fault injected");
    let faults = {
        let mut sim = state.sim();
        sim.add_fault(fault);
        faults_json(&sim)
    };
    (StatusCode::CREATED, Json(faults)).into_response()
}

/// `DELETE /_local/faults`: every fault; `?image=<substring>`: the faults on that image only.
pub async fn clear_faults(
    State(state): State<Arc<AppState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let image = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "image")
        .map(|(_, v)| v.into_owned());
    let faults = {
        let mut sim = state.sim();
        match &image {
            Some(image) => sim.remove_faults(image),
            None => sim.clear_faults(),
        }
        faults_json(&sim)
    };
    tracing::info!(
        image = image.as_deref().unwrap_or("every image"),
        "faults cleared"
    );
    Json(faults).into_response()
}

/// `POST /_local/reset`: forgets the simulation, after taking its targets out of moto.
pub async fn reset(State(state): State<Arc<AppState>>) -> Response {
    let changes = state.sim().deregister_all();
    state.apply(changes).await;
    state.sim().reset();
    tracing::info!("simulation reset");
    Json(json!({ "reset": true })).into_response()
}

/// `GET /_local/calls[?match=<text>]`: AWS calls by caller and IAM action since the last
/// reset; with `match`, only recent calls whose request body contains the text.
pub async fn get_calls(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let counts = state.calls().counts(query.get("match").map(String::as_str));
    Json(json!({ "calls": counts })).into_response()
}

/// `DELETE /_local/calls`: forgets the counts.
pub async fn reset_calls(State(state): State<Arc<AppState>>) -> Response {
    state.calls().reset_counts();
    Json(json!({ "reset": true })).into_response()
}

/// `GET /_local/call-faults`: the armed call faults and how often each hit.
pub async fn get_call_faults(State(state): State<Arc<AppState>>) -> Response {
    let faults = state.calls().faults().to_vec();
    Json(json!({ "faults": faults })).into_response()
}

/// `POST /_local/call-faults`: arms a call fault (`crate::calls::CallFaultSpec`).
pub async fn add_call_fault(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let spec: CallFaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid call fault: {e}")),
    };
    if let Err(message) = spec.validate() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid call fault: {message}"),
        );
    }
    let fault = state.calls().add_fault(spec);
    tracing::info!(id = fault.id, action = %fault.spec.action, kind = fault.spec.kind.name(), "call fault armed");
    (StatusCode::CREATED, Json(json!(fault))).into_response()
}

/// `DELETE /_local/call-faults`: disarms every call fault.
pub async fn clear_call_faults(State(state): State<Arc<AppState>>) -> Response {
    state.calls().clear_faults();
    Json(json!({ "cleared": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_documented_fault_mode() {
        let never =
            parse_fault(br#"{"image": "app:v2", "mode": "neverHealthy"}"#, 7).expect("valid");
        assert_eq!(never.mode, FaultMode::NeverHealthy);
        assert_eq!(never.added_at, 7);
        let later = parse_fault(
            br#"{"image": "sha256:ab", "mode": "unhealthyAfter", "afterSeconds": 1.5}"#,
            0,
        )
        .expect("valid");
        assert_eq!(later.mode, FaultMode::UnhealthyAfter { after_ms: 1500 });
        let crash = parse_fault(
            br#"{"image": "v3", "mode": "crashAfter", "afterSeconds": 2}"#,
            0,
        )
        .expect("valid");
        assert_eq!(crash.mode, FaultMode::CrashAfter { after_ms: 2000 });
    }

    #[test]
    fn rejects_an_unknown_mode_naming_the_valid_ones() {
        let err = parse_fault(br#"{"image": "v2", "mode": "slow"}"#, 0).expect_err("invalid");
        assert!(err.contains("unknown fault mode \"slow\""), "{err}");
        assert!(err.contains("neverHealthy"), "{err}");
    }

    #[test]
    fn rejects_incomplete_or_contradictory_faults() {
        for body in [
            &br#"{"image": "v2", "mode": "crashAfter"}"#[..],
            br#"{"image": "v2", "mode": "neverHealthy", "afterSeconds": 1}"#,
            br#"{"image": "", "mode": "neverHealthy"}"#,
            br#"{"image": "v2", "mode": "crashAfter", "afterSeconds": -1}"#,
            br#"{"image": "v2", "mode": "neverHealthy", "extra": 1}"#,
            b"not json",
        ] {
            assert!(
                parse_fault(body, 0).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
