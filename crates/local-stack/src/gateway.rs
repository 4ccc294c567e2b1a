//! Client of the gateway's control endpoint (`/_local/…`, see `docs/local-stack.md`) and of
//! the two moto endpoints the fixtures need (`/moto-api/config`, `/moto-api/reset`).

use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::Endpoint;
pub use gateway::calls::{CallCount, CallFault, CallFaultKind, CallFaultSpec};

#[derive(Deserialize)]
struct CallFaults {
    faults: Vec<CallFault>,
}

#[derive(Deserialize)]
struct Calls {
    calls: Vec<CallCount>,
}

/// `GET /_local/health`: which backends the gateway reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub moto: bool,
    pub lambda: bool,
}

/// What a fault does to the tasks whose image matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultMode {
    /// Targets go `initial`, then `unhealthy` (`Target.FailedHealthChecks`), never healthy.
    NeverHealthy,
    /// Targets turn healthy, then `unhealthy` `afterSeconds` later.
    UnhealthyAfter,
    /// Tasks stop `afterSeconds` after they start (exit code 1), their targets deregistered.
    CrashAfter,
}

/// `POST /_local/faults` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Substring of a container image (a digest is enough).
    pub image: String,
    pub mode: FaultMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_seconds: Option<u32>,
}

impl Fault {
    /// Tasks of `image` never turn healthy.
    pub fn never_healthy(image: impl Into<String>) -> Self {
        Fault {
            image: image.into(),
            mode: FaultMode::NeverHealthy,
            after_seconds: None,
        }
    }

    /// Tasks of `image` turn unhealthy `seconds` after turning healthy.
    pub fn unhealthy_after(image: impl Into<String>, seconds: u32) -> Self {
        Fault {
            image: image.into(),
            mode: FaultMode::UnhealthyAfter,
            after_seconds: Some(seconds),
        }
    }

    /// Tasks of `image` crash `seconds` after they start.
    pub fn crash_after(image: impl Into<String>, seconds: u32) -> Self {
        Fault {
            image: image.into(),
            mode: FaultMode::CrashAfter,
            after_seconds: Some(seconds),
        }
    }
}

/// The gateway's control endpoint.
#[derive(Debug, Clone)]
pub struct Gateway {
    base: String,
    http: reqwest::Client,
}

impl Gateway {
    /// A client of the gateway at `endpoint`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client for the gateway")?;
        Ok(Gateway {
            base: endpoint.url().to_string(),
            http,
        })
    }

    /// `GET /_local/health`.
    ///
    /// # Errors
    /// When the gateway does not answer (is the stack up? `make local-up`) or answers badly.
    pub async fn health(&self) -> anyhow::Result<Health> {
        let rsp = self.send(self.http.get(self.url("/_local/health"))).await?;
        rsp.json()
            .await
            .context("reading the gateway's health answer")
    }

    /// Waits until the gateway reaches both moto and the Lambda host, up to `timeout`.
    ///
    /// # Errors
    /// The last health answer (or error) when the stack is not ready in time.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.health().await {
                Ok(Health {
                    moto: true,
                    lambda: true,
                }) => return Ok(()),
                Ok(h) => format!(
                    "the gateway is up but reaches moto: {}, lambda: {} (see .local/logs/)",
                    h.moto, h.lambda
                ),
                Err(e) => format!("{e:#}"),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the local stack at {} is not ready after {timeout:?}: {last}",
                    self.base
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /_local/state`: every simulated task set (shape owned by the gateway).
    ///
    /// # Errors
    /// When the gateway does not answer or answers badly.
    pub async fn state(&self) -> anyhow::Result<serde_json::Value> {
        let rsp = self.send(self.http.get(self.url("/_local/state"))).await?;
        rsp.json()
            .await
            .context("reading the gateway's state answer")
    }

    /// `PUT /_local/config`: how long a new target stays `initial`.
    ///
    /// # Errors
    /// When the gateway rejects the config.
    pub async fn set_healthy_after(&self, seconds: u32) -> anyhow::Result<()> {
        let body = serde_json::json!({ "healthyAfterSeconds": seconds });
        self.send(self.http.put(self.url("/_local/config")).json(&body))
            .await?;
        Ok(())
    }

    /// `POST /_local/faults`.
    ///
    /// # Errors
    /// When the gateway rejects the fault.
    pub async fn add_fault(&self, fault: &Fault) -> anyhow::Result<()> {
        self.send(self.http.post(self.url("/_local/faults")).json(fault))
            .await?;
        Ok(())
    }

    /// `DELETE /_local/faults`: removes every fault (of every test sharing the stack).
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url("/_local/faults")))
            .await?;
        Ok(())
    }

    /// `DELETE /_local/faults?image=<image>`: removes the faults on exactly this image
    /// substring; other tests' faults stay.
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn remove_faults(&self, image: &str) -> anyhow::Result<()> {
        // Images and digests are `[a-z0-9:./@_-]`: nothing to escape in a query.
        self.send(
            self.http
                .delete(self.url(&format!("/_local/faults?image={image}"))),
        )
        .await?;
        Ok(())
    }

    /// `GET /_local/dynatrace/tokens`: every token of the fake Dynatrace (never a value).
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn dynatrace_tokens(&self) -> anyhow::Result<serde_json::Value> {
        let rsp = self
            .send(self.http.get(self.url("/_local/dynatrace/tokens")))
            .await?;
        rsp.json().await.context("reading the tokens")
    }

    /// `POST /_local/dynatrace/tokens` with a given value: Dynatrace knows `token` from now on.
    ///
    /// # Errors
    /// When the gateway rejects it.
    pub async fn dynatrace_known_token(
        &self,
        name: &str,
        token: &str,
        scopes: &[&str],
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({ "name": name, "token": token, "scopes": scopes });
        self.send(
            self.http
                .post(self.url("/_local/dynatrace/tokens"))
                .json(&body),
        )
        .await?;
        Ok(())
    }

    /// `POST /_local/reset`: forgets the simulation (task sets, faults, config). moto's
    /// resources stay; see [`Gateway::reset_moto`].
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.send(self.http.post(self.url("/_local/reset"))).await?;
        Ok(())
    }

    /// `POST /moto-api/reset`: deletes every moto resource, of every test sharing the stack.
    ///
    /// # Errors
    /// When moto does not answer.
    pub async fn reset_moto(&self) -> anyhow::Result<()> {
        self.send(self.http.post(self.url("/moto-api/reset")))
            .await?;
        Ok(())
    }

    /// `POST /moto-api/config` `{"stepfunctions":{"execute_state_machine":true}}`: moto then
    /// really executes state machines. Idempotent; moto's `GET` of that endpoint does not
    /// show the key, so there is nothing to read back.
    ///
    /// # Errors
    /// When moto does not answer.
    pub async fn enable_step_functions_execution(&self) -> anyhow::Result<()> {
        let body = serde_json::json!({ "stepfunctions": { "execute_state_machine": true } });
        self.send(self.http.post(self.url("/moto-api/config")).json(&body))
            .await?;
        Ok(())
    }

    /// `POST /_local/dynatrace/tokens`: a new token of the fake Dynatrace with `scopes`;
    /// answers its value.
    ///
    /// # Errors
    /// When the gateway rejects the request.
    pub async fn dynatrace_token(&self, name: &str, scopes: &[&str]) -> anyhow::Result<String> {
        let body = serde_json::json!({ "name": name, "scopes": scopes });
        let rsp = self
            .send(
                self.http
                    .post(self.url("/_local/dynatrace/tokens"))
                    .json(&body),
            )
            .await?;
        let answer: serde_json::Value = rsp.json().await.context("reading the seeded token")?;
        answer["token"]
            .as_str()
            .map(str::to_string)
            .context("the fake Dynatrace answered no token")
    }

    /// `POST /_local/dynatrace/metrics`: from now on, metric queries whose selector contains
    /// `selector_contains` and are scoped to release `release_version` answer `value`.
    ///
    /// # Errors
    /// When the gateway rejects the rule.
    pub async fn dynatrace_metric(
        &self,
        selector_contains: &str,
        release_version: &str,
        value: f64,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "metricSelectorContains": selector_contains,
            "releaseVersion": release_version,
            "value": value,
        });
        self.send(
            self.http
                .post(self.url("/_local/dynatrace/metrics"))
                .json(&body),
        )
        .await?;
        Ok(())
    }

    /// `GET /_local/dynatrace/events`: every event the fake Dynatrace ingested, as received
    /// (`{"receivedAt", "tokenId", "correlationId", "event"}`).
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn dynatrace_events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let rsp = self
            .send(self.http.get(self.url("/_local/dynatrace/events")))
            .await?;
        let answer: serde_json::Value = rsp.json().await.context("reading the events")?;
        Ok(answer["events"].as_array().cloned().unwrap_or_default())
    }

    /// `POST /_local/call-faults`: arms a fault for AWS calls (docs/local-stack.md).
    ///
    /// # Errors
    /// When the gateway rejects the fault.
    pub async fn add_call_fault(&self, fault: &CallFaultSpec) -> anyhow::Result<CallFault> {
        let rsp = self
            .send(self.http.post(self.url("/_local/call-faults")).json(fault))
            .await?;
        rsp.json().await.context("reading the armed call fault")
    }

    /// `GET /_local/call-faults`: every armed call fault, with its hits.
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn call_faults(&self) -> anyhow::Result<Vec<CallFault>> {
        let rsp = self
            .send(self.http.get(self.url("/_local/call-faults")))
            .await?;
        let answer: CallFaults = rsp.json().await.context("reading the call faults")?;
        Ok(answer.faults)
    }

    /// `DELETE /_local/call-faults`: disarms every call fault.
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn clear_call_faults(&self) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url("/_local/call-faults")))
            .await?;
        Ok(())
    }

    /// `GET /_local/calls[?match=<text>]`: AWS calls by caller and IAM action since the last
    /// [`Gateway::reset_calls`]; with `matching`, only recent calls whose body contains it.
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn calls(&self, matching: Option<&str>) -> anyhow::Result<Vec<CallCount>> {
        let mut url =
            reqwest::Url::parse(&self.url("/_local/calls")).context("the gateway's URL")?;
        if let Some(m) = matching {
            url.query_pairs_mut().append_pair("match", m);
        }
        let answer: Calls = self
            .send(self.http.get(url))
            .await?
            .json()
            .await
            .context("reading the call counts")?;
        Ok(answer.calls)
    }

    /// `DELETE /_local/calls`: forgets the call counts.
    ///
    /// # Errors
    /// When the gateway does not answer.
    pub async fn reset_calls(&self) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url("/_local/calls")))
            .await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let req = req.build().context("building a request to the gateway")?;
        let what = format!("{} {}", req.method(), req.url());
        let rsp = self.http.execute(req).await.with_context(|| {
            format!("{what}: no answer (is the local stack up? `make local-up`)")
        })?;
        let status = rsp.status();
        if !status.is_success() {
            let body = rsp.text().await.unwrap_or_default();
            bail!("{what} answered {status}: {}", body.trim());
        }
        Ok(rsp)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn faults_serialize_as_the_control_endpoint_expects() {
        let v = serde_json::to_value(Fault::unhealthy_after("sha256:abc", 3)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"image": "sha256:abc", "mode": "unhealthyAfter", "afterSeconds": 3})
        );
        let v = serde_json::to_value(Fault::never_healthy("sha256:abc")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"image": "sha256:abc", "mode": "neverHealthy"})
        );
        assert_eq!(
            serde_json::to_value(FaultMode::CrashAfter).unwrap(),
            serde_json::json!("crashAfter")
        );
    }
}
