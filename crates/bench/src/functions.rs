//! Per function: cold start, warm latency, peak memory and AWS calls per invocation of the
//! release binary (`target/release/<function>`), run by a local Runtime API with the local
//! stack as its AWS, and the size of its release arm64 zip.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bluegreen::model::Strategy;
use local_stack::env::{EnvSpec, Environment};
use local_stack::gateway::Gateway;
use local_stack::sfn::workspace_root;
use local_stack::{Clients, Endpoint};
use serde_json::{Value, json};

use crate::runtime_api::{Answer, RuntimeApi};
use crate::stats::{median, percentile};

/// The functions, in the order they are measured (create-green makes the green that
/// verify-health checks and drain-blue removes).
pub const FUNCTIONS: [&str; 7] = [
    "validate",
    "create-green",
    "verify-health",
    "shift-traffic",
    "drain-blue",
    "rotate-secret",
    "trigger",
];
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The module's default `lambda_memory_size`, set as the functions' memory.
pub const MEMORY_MB: u32 = 256;

#[derive(Debug, Clone)]
pub struct FunctionFigures {
    pub name: &'static str,
    /// Process start until the first invocation is answered, each run.
    pub cold_ms: Vec<f64>,
    /// Each warm invocation.
    pub warm_ms: Vec<f64>,
    /// `VmHWM` after the warm invocations.
    pub peak_rss_kib: Option<u64>,
    pub zip_bytes: Option<u64>,
    /// AWS calls per warm invocation, from the gateway's counts.
    pub aws_calls_per_invoke: f64,
    /// What the invocations answered (`ok`, or the error type).
    pub answer: String,
}

impl FunctionFigures {
    pub fn cold_median(&self) -> f64 {
        median(&self.cold_ms)
    }
    pub fn warm_median(&self) -> f64 {
        median(&self.warm_ms)
    }
    pub fn warm_p90(&self) -> f64 {
        percentile(&self.warm_ms, 0.9)
    }
}

/// The environment of the local stack's functions (`local/stack.sh`), for a release binary.
fn function_env(endpoint: &Endpoint, name: &str, runtime_api: &str) -> Vec<(String, String)> {
    let gateway = endpoint.url().trim_end_matches('/').to_string();
    let lambda_port = std::env::var("BG_LAMBDA_PORT").unwrap_or_else(|_| "5102".into());
    let catalogue = workspace_root().join(".local/catalogue");
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("AWS_ENDPOINT_URL", gateway.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("RUST_LOG", "warn".into()),
        ("DYNATRACE_API_URL", format!("{gateway}/dynatrace")),
        (
            "DYNATRACE_TOKEN_SECRET",
            "local/dynatrace/deployer-token".into(),
        ),
        (
            "DYNATRACE_ADMIN_TOKEN_SECRET",
            "local/dynatrace/admin-token".into(),
        ),
        (
            "DEPLOY_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy".into(),
        ),
        (
            "ROTATION_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-rotate".into(),
        ),
        ("CATALOGUE_PATH", catalogue.display().to_string()),
        ("WEBHOOK_TOKEN_SECRET", "local/webhook/token".into()),
        (
            "WEBHOOK_PUBLIC_URL",
            format!("http://127.0.0.1:{lambda_port}/lambda-url/trigger"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn sample(path: &str) -> anyhow::Result<Value> {
    let file = workspace_root().join("events").join(path);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

/// Each function's payload: the samples of `events/`, aimed at `env`.
pub async fn payloads(clients: &Clients, env: &Environment) -> anyhow::Result<Vec<Value>> {
    let execution = "bench-functions";
    let request = env.deploy_request(
        env.tagged_image("v2"),
        Strategy::AllAtOnce,
        crate::deploys::fast_timing(),
    );
    let deployment = serde_json::to_value(request.clone().into_deployment(execution, None)?)?;
    let with = |path: &str, fields: &[(&str, Value)]| -> anyhow::Result<Value> {
        let mut p = sample(path)?;
        for (k, v) in fields {
            p[*k] = v.clone();
        }
        Ok(p)
    };
    let token = local_stack::trigger::webhook_token(clients).await?;
    let mut status = sample("trigger/webhook-status.json")?;
    status["headers"]["authorization"] = json!(format!("Bearer {token}"));
    status["rawPath"] = json!("/deployments/bench-hook-none");
    status["requestContext"]["http"]["path"] = json!("/deployments/bench-hook-none");
    let mut find = sample("rotate-secret/findConsumers.json")?;
    find["rotation"]["secretArn"] = json!(env.secrets.api_token_arn);
    Ok(vec![
        json!({
            "request": serde_json::to_value(&request)?,
            "executionName": execution,
            "executionArn": format!("arn:aws:states:us-east-1:123456789012:execution:bench:{execution}"),
        }),
        with(
            "create-green/input.json",
            &[("deployment", deployment.clone())],
        )?,
        with(
            "verify-health/launch.json",
            &[("deployment", deployment.clone())],
        )?,
        with(
            "shift-traffic/input.json",
            &[
                ("deployment", deployment.clone()),
                ("greenWeight", json!(0)),
            ],
        )?,
        with("drain-blue/removeGreen.json", &[("deployment", deployment)])?,
        find,
        status,
    ])
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn answer_name(answer: &Answer) -> String {
    match answer {
        Answer::Response => "ok".into(),
        Answer::Error(kind) => kind.clone(),
    }
}

async fn calls_by(gateway: &Gateway, name: &str) -> anyhow::Result<u64> {
    Ok(gateway
        .calls(None)
        .await?
        .iter()
        .filter(|c| c.caller == name)
        .map(|c| c.count)
        .sum())
}

/// Measures `name`: `cold_runs` fresh processes, each timed to its first answer; the last
/// then answers `warm_runs` more invocations.
pub async fn measure(
    endpoint: &Endpoint,
    gateway: &Gateway,
    name: &'static str,
    payload: &Value,
    cold_runs: usize,
    warm_runs: usize,
) -> anyhow::Result<FunctionFigures> {
    let binary = workspace_root().join("target/release").join(name);
    if !binary.exists() {
        return Err(anyhow!(
            "{} is missing: make bench builds it (cargo build --release)",
            binary.display()
        ));
    }
    let log = workspace_root().join(format!(".local/logs/bench-{name}.log"));
    let mut cold_ms = Vec::new();
    let mut warm_ms = Vec::new();
    let mut peak = None;
    let mut calls = 0.0;
    let mut last_answer = String::new();
    for run in 0..cold_runs {
        let mut api = RuntimeApi::start(&format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{name}"
        ))
        .await?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&binary)
            .envs(function_env(endpoint, name, &api.addr.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let first = api.invoke(payload.clone(), INVOKE_TIMEOUT).await;
        cold_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let first = first.with_context(|| format!("{name}: first invocation"))?;
        last_answer = answer_name(&first);
        if run + 1 == cold_runs {
            let before = calls_by(gateway, name).await?;
            for _ in 0..warm_runs {
                let t = Instant::now();
                let a = api.invoke(payload.clone(), INVOKE_TIMEOUT).await?;
                warm_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                last_answer = answer_name(&a);
            }
            let after = calls_by(gateway, name).await?;
            calls = (after - before) as f64 / warm_runs.max(1) as f64;
            peak = child.id().and_then(peak_rss_kib);
        }
        let _ = child.kill().await;
    }
    Ok(FunctionFigures {
        name,
        cold_ms,
        warm_ms,
        peak_rss_kib: peak,
        zip_bytes: zip_size(&workspace_root(), name),
        aws_calls_per_invoke: calls,
        answer: last_answer,
    })
}

fn zip_size(root: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(root.join("target/lambda").join(name).join("bootstrap.zip"))
        .ok()
        .map(|m| m.len())
}

/// A fresh environment for the function runs.
pub async fn environment(clients: &Clients) -> anyhow::Result<Environment> {
    let spec = EnvSpec::new(format!("bfn-{}", local_stack::env::random_suffix(5)));
    local_stack::env::build(clients, &spec).await
}
