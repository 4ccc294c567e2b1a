//! The trigger on the local stack: its catalogue directory, its webhook token, ECR push
//! events as EventBridge sends them, and an HTTP client of its webhook.
//!
//! `local/stack.sh` starts the trigger with `CATALOGUE_PATH=.local/catalogue` (every
//! `*.json` there is a catalogue document; each test and the demo write their own file),
//! `WEBHOOK_TOKEN_SECRET=local/webhook/token` and the webhook at
//! `http://127.0.0.1:$BG_LAMBDA_PORT/lambda-url/trigger` (`cargo lambda watch` serves Function
//! URLs there).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::env::{APP_CONTAINER, Environment};
use crate::{Clients, sfn};

/// The trigger's binary.
pub const FUNCTION: &str = "trigger";
/// The secret holding the webhook's bearer token.
pub const TOKEN_SECRET: &str = "local/webhook/token";
/// `cargo lambda watch`'s port when `BG_LAMBDA_PORT` is not set.
pub const DEFAULT_LAMBDA_PORT: u16 = 5102;

/// The directory the local trigger reads the catalogue from.
pub fn catalogue_dir() -> PathBuf {
    sfn::local_dir().join("catalogue")
}

/// Writes catalogue document `doc` as `<stem>.json` in [`catalogue_dir`], whole at once (the
/// trigger never reads half a file).
///
/// # Errors
/// When the file cannot be written.
pub fn write_catalogue(stem: &str, doc: &Value) -> anyhow::Result<PathBuf> {
    let dir = catalogue_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{stem}.json"));
    let tmp = dir.join(format!(".{stem}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A catalogue entry deploying the environment's service from its repository, with
/// `options` (execution input fields: strategy, timing, …) on top.
pub fn catalogue_entry(env: &Environment, tags: &[&str], options: &Value) -> Value {
    let mut entry = json!({
        "repository": env.repository_uri,
        "tags": tags,
        "cluster": env.cluster_name,
        "service": env.service_name,
        "container": APP_CONTAINER,
        "listenerArn": env.listener_arn,
        "targetGroupArns": env.target_group_arns,
    });
    if let Some(rule) = &env.listener_rule_arn {
        entry["listenerRuleArn"] = json!(rule);
    }
    if let (Some(e), Some(o)) = (entry.as_object_mut(), options.as_object()) {
        e.extend(o.clone());
    }
    entry
}

/// The webhook's bearer token: the current value of [`TOKEN_SECRET`], created with a random
/// value when it does not exist yet.
///
/// # Errors
/// When Secrets Manager cannot be reached.
pub async fn webhook_token(clients: &Clients) -> anyhow::Result<String> {
    let read = clients
        .secrets
        .get_secret_value()
        .secret_id(TOKEN_SECRET)
        .send()
        .await;
    if let Ok(out) = read
        && let Some(v) = out.secret_string()
    {
        return Ok(v.to_string());
    }
    let token: String = (0..3).map(|_| crate::env::random_suffix(12)).collect();
    let token = format!("whk_{token}");
    let created = clients
        .secrets
        .create_secret()
        .name(TOKEN_SECRET)
        .description("Bearer token of the local trigger's webhook")
        .secret_string(&token)
        .send()
        .await;
    match created {
        Ok(_) => Ok(token),
        // Another test created it first: use that one.
        Err(_) => {
            let out = clients
                .secrets
                .get_secret_value()
                .secret_id(TOKEN_SECRET)
                .send()
                .await
                .context("reading the webhook token secret")?;
            out.secret_string()
                .map(str::to_string)
                .context("the webhook token secret has no string value")
        }
    }
}

/// An EventBridge `ECR Image Action` event for `tag` of the environment's repository, as
/// ECR sends it (`action`: `PUSH` or `DELETE`, `result`: `SUCCESS` or `FAILURE`).
pub fn push_event(env: &Environment, tag: &str, digest: &str, action: &str, result: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("{}-{}", crate::env::random_suffix(8), crate::env::random_suffix(12)),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": crate::endpoint::ACCOUNT_ID,
        "time": "2026-12-04T10:00:00Z",
        "region": crate::endpoint::REGION,
        "resources": [],
        "detail": {
            "result": result,
            "repository-name": env.repository_name,
            "image-digest": digest,
            "action-type": action,
            "image-tag": tag
        }
    })
}

/// What the webhook answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    /// The body, as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    pub text: String,
}

/// An HTTP client of the local trigger's webhook.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    pub base_url: String,
    http: reqwest::Client,
}

impl WebhookClient {
    /// The webhook at `http://127.0.0.1:$BG_LAMBDA_PORT/lambda-url/trigger`.
    ///
    /// # Errors
    /// When `BG_LAMBDA_PORT` is not a port, or the HTTP client cannot be built.
    pub fn from_env() -> anyhow::Result<Self> {
        let port = match std::env::var("BG_LAMBDA_PORT") {
            Ok(p) if !p.trim().is_empty() => p
                .trim()
                .parse::<u16>()
                .with_context(|| format!("BG_LAMBDA_PORT={p:?} is not a port"))?,
            _ => DEFAULT_LAMBDA_PORT,
        };
        let http = reqwest::Client::builder()
            // The first request starts the function; a loaded machine is slow.
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the webhook's HTTP client")?;
        Ok(WebhookClient {
            base_url: format!("http://127.0.0.1:{port}/lambda-url/{FUNCTION}"),
            http,
        })
    }

    /// `method` on `url` (absolute, or a path under the webhook) with `headers` and `body`.
    ///
    /// # Errors
    /// When no answer comes.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> anyhow::Result<Reply> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base_url)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self.http.request(method.clone(), &url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        let rsp = request
            .send()
            .await
            .with_context(|| format!("{method} {url}: no answer (is the local stack up?)"))?;
        let status = rsp.status().as_u16();
        let headers = rsp.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = rsp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            location,
            headers,
            body,
            text,
        })
    }

    /// An authenticated JSON request.
    ///
    /// # Errors
    /// When no answer comes.
    pub async fn call(
        &self,
        token: &str,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let auth = format!("Bearer {token}");
        self.send(
            method,
            url,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.map(Value::to_string),
        )
        .await
    }

    /// Polls `status_url` until the deployment's status is not `RUNNING`; answers the last
    /// reply.
    ///
    /// # Errors
    /// When it is still running after `timeout`, or an answer is not 200.
    pub async fn wait(
        &self,
        token: &str,
        status_url: &str,
        timeout: Duration,
    ) -> anyhow::Result<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply = self.call(token, "GET", status_url, None).await?;
            if reply.status != 200 {
                bail!("GET {status_url} answered {}: {}", reply.status, reply.text);
            }
            if reply.body["status"] != "RUNNING" {
                return Ok(reply);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{status_url} still RUNNING after {timeout:?}: {}",
                    reply.text
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
