//! End-to-end: the Spinnaker side (`make e2e`). The test reads the shipped
//! `integrations/spinnaker/orca-local.yml` and `pipeline.json` and plays orca's Webhook stage
//! with them against the real webhook, as orca's `CreateWebhookTask`, `MonitorWebhookTask`
//! and cancellation do: it renders the stage's expressions, POSTs the payload, takes the
//! status URL from the `Location` header, polls it, evaluates `statusJsonPath` and
//! `progressJsonPath`, maps the status through the success, canceled and terminal lists,
//! and on cancel calls the cancel endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use e2e::{EXECUTION_TIMEOUT, Stack, TestEnv, fast_timing, wait_for_weight};
use local_stack::env::EnvSpec;
use local_stack::gateway::Fault;
use local_stack::inspect;
use local_stack::sfn::workspace_root;
use local_stack::trigger::{self, WebhookClient};
use serde_json::{Value, json};
use serde_json_path::JsonPath;

/// The shipped files.
struct Shipped {
    /// The preconfigured webhook the pipeline's stage uses.
    webhook: Value,
    /// The pipeline's stage.
    stage: Value,
}

fn shipped() -> anyhow::Result<Shipped> {
    let dir = workspace_root().join("integrations/spinnaker");
    let orca: Value = serde_norway::from_str(&std::fs::read_to_string(dir.join("orca-local.yml"))?)
        .context("orca-local.yml is not YAML")?;
    let pipeline: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pipeline.json"))?)
            .context("pipeline.json is not JSON")?;
    let stage = pipeline["stages"]
        .as_array()
        .and_then(|s| s.first())
        .cloned()
        .context("the pipeline has no stage")?;
    let webhook = orca["webhook"]["preconfigured"]
        .as_array()
        .context("webhook.preconfigured is not a list")?
        .iter()
        .find(|w| w["type"] == stage["type"])
        .cloned()
        .with_context(|| format!("no preconfigured webhook of type {}", stage["type"]))?;
    Ok(Shipped { webhook, stage })
}

/// What orca has at hand when it evaluates the stage's expressions.
struct Context_ {
    /// Spring placeholders, resolved from orca's environment at start.
    environment: BTreeMap<&'static str, String>,
    /// `${parameterValues['…']}`.
    parameter_values: BTreeMap<String, String>,
    execution_id: String,
}

impl Context_ {
    /// `template` with every `${…}` it knows replaced; an expression it does not know is an
    /// error, so the test cannot pass on an expression orca would not resolve.
    fn render(&self, template: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').context("an unclosed ${")? + start;
            let expr = &rest[start + 2..end];
            let value = if let Some(v) = self.environment.get(expr) {
                v.clone()
            } else if expr == "execution.id" {
                self.execution_id.clone()
            } else if let Some(name) = expr
                .strip_prefix("parameterValues['")
                .and_then(|e| e.strip_suffix("']"))
            {
                self.parameter_values
                    .get(name)
                    .cloned()
                    .with_context(|| format!("no parameter value {name}"))?
            } else {
                bail!("an expression the test does not know how orca resolves: ${{{expr}}}");
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// orca's `ExecutionStatus` of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrcaStatus {
    Running,
    Succeeded,
    Canceled,
    Terminal,
}

/// One run of the stage, as orca drives it.
struct Run<'a> {
    hook: &'a WebhookClient,
    webhook: &'a Value,
    ctx: Context_,
    status_url: Option<String>,
    progress: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(
        hook: &'a WebhookClient,
        shipped: &'a Shipped,
        token: &str,
        image: &str,
    ) -> anyhow::Result<Self> {
        // The pipeline's parameterValues, rendered with the pipeline's own parameters.
        let mut parameter_values = BTreeMap::new();
        for (k, v) in shipped.stage["parameterValues"]
            .as_object()
            .context("parameterValues")?
        {
            let v = v.as_str().context("a parameter value is not a string")?;
            parameter_values.insert(k.clone(), v.replace("${parameters['image']}", image));
        }
        let declared: Vec<&str> = shipped.webhook["parameters"]
            .as_array()
            .context("parameters")?
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let given: Vec<&str> = parameter_values.keys().map(String::as_str).collect();
        ensure!(
            declared == given,
            "the stage sets {given:?}, the webhook declares {declared:?}"
        );
        let environment = BTreeMap::from([
            ("ECS_BLUEGREEN_WEBHOOK_URL", hook.base_url.clone()),
            ("ECS_BLUEGREEN_WEBHOOK_TOKEN", token.to_string()),
        ]);
        Ok(Run {
            hook,
            webhook: &shipped.webhook,
            ctx: Context_ {
                environment,
                parameter_values,
                // Spinnaker's execution ids are ULIDs.
                execution_id: format!("01J{}", local_stack::env::random_suffix(12).to_uppercase()),
            },
            status_url: None,
            progress: Vec::new(),
        })
    }

    fn field(&self, name: &str) -> anyhow::Result<String> {
        let raw = self.webhook[name]
            .as_str()
            .with_context(|| format!("the preconfigured webhook has no {name}"))?;
        self.ctx.render(raw)
    }

    /// The custom and the sensitive headers, rendered.
    fn headers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut headers = Vec::new();
        for group in ["customHeaders", "sensitiveHeaders"] {
            for (name, values) in self.webhook[group].as_object().into_iter().flatten() {
                for v in values
                    .as_array()
                    .context("a header's values are not a list")?
                {
                    headers.push((
                        name.clone(),
                        self.ctx.render(v.as_str().unwrap_or_default())?,
                    ));
                }
            }
        }
        Ok(headers)
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<String>,
    ) -> anyhow::Result<local_stack::trigger::Reply> {
        let headers = self.headers()?;
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.hook.send(method, url, &pairs, body).await
    }

    /// `CreateWebhookTask`: the POST, then the status URL from the answer.
    async fn create(&mut self) -> anyhow::Result<()> {
        let url = self.field("url")?;
        let method = self.field("method")?;
        let payload = self.field("payload")?;
        serde_json::from_str::<Value>(&payload).context("the rendered payload is not JSON")?;
        let reply = self.send(&method, &url, Some(payload)).await?;
        ensure!(
            (200..300).contains(&reply.status),
            "the webhook answered {}: {}",
            reply.status,
            reply.text
        );
        let resolution = self.field("statusUrlResolution")?;
        let status_url = match resolution.as_str() {
            "locationHeader" => reply.location.clone().context("no Location header")?,
            "getMethod" => url.clone(),
            "webhookResponse" => {
                let path = JsonPath::parse(&self.field("statusUrlJsonPath")?)?;
                path.query(&reply.body)
                    .exactly_one()?
                    .as_str()
                    .context("not a string")?
                    .to_string()
            }
            other => bail!("statusUrlResolution {other} is not one orca has"),
        };
        // orca resolves a relative status URL against the webhook's URL.
        let status_url = reqwest::Url::parse(&url)?.join(&status_url)?.to_string();
        self.status_url = Some(status_url);
        Ok(())
    }

    /// One `MonitorWebhookTask` poll.
    async fn monitor(&mut self) -> anyhow::Result<OrcaStatus> {
        let url = self.status_url.clone().context("no status URL")?;
        let reply = self.send("GET", &url, None).await?;
        if reply.status >= 500 || reply.status == 429 {
            return Ok(OrcaStatus::Running);
        }
        ensure!(
            reply.status == 200,
            "GET {url} answered {}: {}",
            reply.status,
            reply.text
        );
        let status = JsonPath::parse(&self.field("statusJsonPath")?)?;
        let status = status
            .query(&reply.body)
            .exactly_one()
            .context("statusJsonPath does not resolve to a single value")?;
        let status = match status {
            Value::String(s) => s.clone(),
            Value::Number(n) => {
                return Ok(if n.as_f64() == Some(100.0) {
                    OrcaStatus::Succeeded
                } else {
                    OrcaStatus::Running
                });
            }
            Value::Bool(b) => b.to_string(),
            other => bail!("statusJsonPath resolved to {other}, not a single value"),
        };
        let progress = JsonPath::parse(&self.field("progressJsonPath")?)?;
        let progress = progress
            .query(&reply.body)
            .exactly_one()
            .context("progressJsonPath does not resolve")?;
        let message = progress
            .as_str()
            .context("progressJsonPath must resolve to a String")?;
        if !message.is_empty() && self.progress.last().map(String::as_str) != Some(message) {
            self.progress.push(message.to_string());
        }
        let upper = status.to_uppercase();
        let listed = |field: &str| -> anyhow::Result<bool> {
            Ok(self
                .field(field)?
                .split(',')
                .any(|s| s.trim().to_uppercase() == upper))
        };
        Ok(if listed("successStatuses")? {
            OrcaStatus::Succeeded
        } else if listed("canceledStatuses")? {
            OrcaStatus::Canceled
        } else if listed("terminalStatuses")? {
            OrcaStatus::Terminal
        } else {
            OrcaStatus::Running
        })
    }

    /// Polls until the stage is not running any more.
    async fn monitor_until_done(&mut self) -> anyhow::Result<OrcaStatus> {
        let deadline = tokio::time::Instant::now() + EXECUTION_TIMEOUT;
        loop {
            let s = self.monitor().await?;
            if s != OrcaStatus::Running {
                return Ok(s);
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "still running: {:?}",
                self.progress
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `MonitorWebhookTask.onCancel`: the cancel endpoint, when signalCancellation is on.
    async fn cancel(&self) -> anyhow::Result<u16> {
        ensure!(
            self.webhook["signalCancellation"] == true,
            "signalCancellation is off"
        );
        let url = self.field("cancelEndpoint")?;
        let method = self.field("cancelMethod")?;
        let payload = self.field("cancelPayload")?;
        Ok(self.send(&method, &url, Some(payload)).await?.status)
    }
}

async fn setup(test: &str, options: Value) -> anyhow::Result<(Stack, TestEnv, String)> {
    let stack = Stack::connect().await?;
    let t = stack.environment(test, EnvSpec::new("")).await?;
    // The pipeline deploys deployment "orders"; each test has its own catalogue, so each
    // names its deployment after its environment and the stage's parameter is replaced.
    let doc = json!({
        "defaults": {"timing": fast_timing()},
        "deployments": {t.env.prefix.clone(): trigger::catalogue_entry(&t.env, &["*"], &options)}
    });
    trigger::write_catalogue(&t.env.prefix, &doc)?;
    let token = trigger::webhook_token(&stack.clients).await?;
    Ok((stack, t, token))
}

fn shipped_for(t: &TestEnv) -> anyhow::Result<Shipped> {
    let mut s = shipped()?;
    s.stage["parameterValues"]["deployment"] = json!(t.env.prefix);
    Ok(s)
}

#[test]
fn the_shipped_stage_keeps_the_token_out_of_the_pipeline_and_matches_the_endpoint()
-> anyhow::Result<()> {
    let s = shipped()?;
    let w = &s.webhook;
    // The token is only a sensitive header: never a custom header (copied into the stage
    // context), never in the pipeline.
    assert!(w["sensitiveHeaders"]["Authorization"].is_array(), "{w}");
    assert!(
        w["customHeaders"]
            .as_object()
            .is_none_or(|h| h.keys().all(|k| !k.eq_ignore_ascii_case("authorization"))),
        "{w}"
    );
    let pipeline =
        std::fs::read_to_string(workspace_root().join("integrations/spinnaker/pipeline.json"))?;
    assert!(!pipeline.to_lowercase().contains("authorization") && !pipeline.contains("TOKEN"));
    // What the endpoint answers (bluegreen::trigger::webhook).
    assert_eq!(w["method"], "POST");
    assert_eq!(w["statusUrlResolution"], "locationHeader");
    assert_eq!(w["waitForCompletion"], true);
    let statuses = |f: &str| -> Vec<String> {
        w[f].as_str()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    };
    let mut all: Vec<String> = ["successStatuses", "canceledStatuses", "terminalStatuses"]
        .iter()
        .flat_map(|f| statuses(f))
        .collect();
    all.sort();
    assert_eq!(
        all,
        ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"],
        "every final status, once"
    );
    Ok(())
}

#[tokio::test]
async fn the_spinnaker_stage_deploys_and_follows_progress_to_succeeded() -> anyhow::Result<()> {
    let (stack, t, token) = setup("spin_ok", json!({})).await?;
    let hook = WebhookClient::from_env()?;
    let shipped = shipped_for(&t)?;
    let mut run = Run::new(&hook, &shipped, &token, &t.env.tagged_image("v2"))?;

    run.create().await?;
    let status = run.monitor_until_done().await?;

    assert_eq!(
        status,
        OrcaStatus::Succeeded,
        "progress: {:?}",
        run.progress
    );
    assert!(
        run.progress.len() >= 2,
        "orca saw the progress: {:?}",
        run.progress
    );
    let last = run.progress.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("deployed: ") && last.contains("green 100"),
        "{last}"
    );
    let w = inspect::weights(&stack.clients, &t.env.route()).await?;
    assert_eq!(inspect::weight_of(&w, t.env.tg_b()), 100);

    // orca re-sending the POST (it retries on 429 and 5xx) is the same deploy.
    let again_url = run.status_url.clone();
    run.create().await?;
    assert_eq!(run.status_url, again_url);
    assert_eq!(run.monitor().await?, OrcaStatus::Succeeded);
    Ok(())
}

#[tokio::test]
async fn a_broken_image_makes_the_stage_terminal_with_the_cause_as_progress() -> anyhow::Result<()>
{
    let (stack, t, token) = setup("spin_bad", json!({})).await?;
    let v3 = t.env.digest("v3").unwrap_or_default().to_string();
    stack.gateway.add_fault(&Fault::never_healthy(&v3)).await?;
    let hook = WebhookClient::from_env()?;
    let shipped = shipped_for(&t)?;
    let mut run = Run::new(&hook, &shipped, &token, &t.env.tagged_image("v3"))?;

    run.create().await?;
    let status = run.monitor_until_done().await?;

    assert_eq!(status, OrcaStatus::Terminal, "progress: {:?}", run.progress);
    let last = run.progress.last().cloned().unwrap_or_default();
    assert!(last.starts_with("FAILED: rolled back to blue"), "{last}");
    Ok(())
}

#[tokio::test]
async fn canceling_the_stage_aborts_the_deploy_and_orca_sees_it_canceled() -> anyhow::Result<()> {
    let (stack, t, token) = setup(
        "spin_cancel",
        json!({"strategy": {"type": "canary", "percent": 25, "bakeSeconds": 120}}),
    )
    .await?;
    let hook = WebhookClient::from_env()?;
    let shipped = shipped_for(&t)?;
    let mut run = Run::new(&hook, &shipped, &token, &t.env.tagged_image("v2"))?;
    run.create().await?;
    let reply = hook
        .call(
            &token,
            "GET",
            run.status_url.as_deref().unwrap_or_default(),
            None,
        )
        .await?;
    let execution = reply.body["executionArn"]
        .as_str()
        .context("executionArn")?
        .to_string();
    wait_for_weight(&stack, &execution, &t.env.route(), t.env.tg_b(), 25).await?;
    assert_eq!(run.monitor().await?, OrcaStatus::Running);

    // The pipeline is canceled: orca calls the cancel endpoint.
    let canceled = run.cancel().await?;
    assert_eq!(canceled, 202);

    assert_eq!(
        run.monitor_until_done().await?,
        OrcaStatus::Canceled,
        "{:?}",
        run.progress
    );
    let w = inspect::weights(&stack.clients, &t.env.route()).await?;
    assert_eq!(
        inspect::weight_of(&w, t.env.tg_a()),
        100,
        "back on blue: {w:?}"
    );
    Ok(())
}
