//! The trigger: the one front door that starts deploys (`functions/trigger`,
//! `docs/triggers.md`).
//!
//! - [`catalogue`]: which deployments exist, what each follows and deploys with.
//! - [`ecr`]: an EventBridge `ECR Image Action` push starts the deploys that follow it.
//! - [`webhook`]: Spinnaker's Webhook stage, over the function's Function URL: start,
//!   status, abort, approve, promote.
//!
//! The function takes either event; [`Trigger::handle`] tells them apart.

pub mod catalogue;
pub mod ecr;
pub mod webhook;

use std::time::Instant;

use serde_json::Value;

use crate::config::setting;
use crate::error::{Error, Result};
use crate::operations::Executions;
use crate::ports::{Ecs, OperatorCommands};
use crate::rotation::SecretVersions;
use crate::rotation::workflow::DEPLOY_STATE_MACHINE_VAR;
use catalogue::CatalogueSource;
use webhook::{PUBLIC_URL_VAR, TOKEN_SECRET_VAR, TokenCheck, Webhook};

/// The trigger's configuration, read once at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    /// The deploy state machine ([`DEPLOY_STATE_MACHINE_VAR`]).
    pub deploy_state_machine_arn: String,
    /// The secret holding the webhook's bearer token ([`TOKEN_SECRET_VAR`]); unset: the
    /// webhook refuses every request.
    pub token_secret: Option<String>,
    /// [`PUBLIC_URL_VAR`], without a trailing `/`.
    pub public_url: Option<String>,
}

impl TriggerConfig {
    /// Reads the configuration from the environment.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is missing or wrong.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`TriggerConfig::from_env`] over any lookup.
    ///
    /// # Errors
    /// As [`TriggerConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| setting(&lookup, name);
        let deploy_state_machine_arn = set(DEPLOY_STATE_MACHINE_VAR).ok_or_else(|| {
            Error::Config(format!(
                "{DEPLOY_STATE_MACHINE_VAR} is not set: the trigger starts deploys of that state machine"
            ))
        })?;
        if !deploy_state_machine_arn.starts_with("arn:")
            || !deploy_state_machine_arn.contains(":stateMachine:")
        {
            return Err(Error::Config(format!(
                "{DEPLOY_STATE_MACHINE_VAR} must be a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME), got {deploy_state_machine_arn:?}"
            )));
        }
        let public_url = set(PUBLIC_URL_VAR).map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(Error::Config(format!(
                "{PUBLIC_URL_VAR} must be an http(s) URL, got {u:?}"
            )));
        }
        Ok(TriggerConfig {
            deploy_state_machine_arn,
            token_secret: set(TOKEN_SECRET_VAR),
            public_url,
        })
    }
}

/// The trigger and what it needs.
#[derive(Debug)]
pub struct Trigger<'a, X, E, S> {
    pub sfn: &'a X,
    pub ecs: &'a E,
    pub tokens: Option<&'a TokenCheck<S>>,
    pub catalogue: &'a CatalogueSource,
    pub config: &'a TriggerConfig,
}

impl<X, E, S> Trigger<'_, X, E, S>
where
    X: Executions,
    E: Ecs + OperatorCommands,
    S: SecretVersions,
{
    /// Handles an EventBridge `ECR Image Action` event or a Function URL request.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for any other event or a malformed one; what starting a deploy
    /// of a push fails with; [`Error::Config`] when the catalogue cannot be read. A webhook
    /// request is always answered, its errors as HTTP statuses.
    pub async fn handle(&self, event: Value) -> Result<Value> {
        let loaded = self.catalogue.load()?;
        if event.pointer("/requestContext/http").is_some() {
            // The catalogue's problems are in the log (`catalogue::CatalogueSource::load`).
            let mut public_url = self.config.public_url.clone();
            if public_url.is_none() {
                public_url = event
                    .pointer("/requestContext/domainName")
                    .and_then(Value::as_str)
                    .map(|d| format!("https://{d}"));
            }
            let webhook = Webhook {
                sfn: self.sfn,
                ecs: self.ecs,
                tokens: self.tokens,
                deploy_state_machine_arn: &self.config.deploy_state_machine_arn,
                public_url: public_url.as_deref(),
            };
            let response = webhook
                .handle(event, &loaded.catalogue, Instant::now())
                .await?;
            return Ok(serde_json::to_value(response).unwrap_or(Value::Null));
        }
        if event.get("detail-type").is_some() {
            let outcome = ecr::on_push(
                self.sfn,
                &self.config.deploy_state_machine_arn,
                &loaded.catalogue,
                event,
            )
            .await?;
            return Ok(serde_json::to_value(outcome).unwrap_or(Value::Null));
        }
        let keys = match &event {
            Value::Object(m) => {
                let keys: Vec<&str> = m.keys().map(String::as_str).take(8).collect();
                format!(
                    "an object with {}",
                    if keys.is_empty() {
                        "no keys".into()
                    } else {
                        keys.join(", ")
                    }
                )
            }
            other => crate::lambda::json_kind(other).to_string(),
        };
        Err(Error::InvalidInput(format!(
            "the trigger takes an EventBridge ECR Image Action event or a Function URL request, not {keys}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::{FakeAws, FakeSecrets, FakeSfn};
    use std::path::{Path, PathBuf};

    fn samples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/trigger")
    }

    fn sample(name: &str) -> Value {
        let path = samples().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every sample of `events/trigger` is an event or request the trigger answers as its
    /// name says, with the sample catalogue.
    #[tokio::test]
    async fn every_trigger_sample_gets_the_answer_its_name_says() {
        let source = CatalogueSource::at(samples().join("catalogue.json"));
        assert_eq!(source.load().unwrap().catalogue.entries().count(), 2);
        let sfn = FakeSfn::default();
        let ecs = FakeAws::new();
        let tokens = TokenCheck::new(
            FakeSecrets::with("webhook/token", "replace-with-the-webhook-token"),
            "webhook/token",
        );
        let config = TriggerConfig::from_lookup(|name| {
            (name == DEPLOY_STATE_MACHINE_VAR).then(|| {
                "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy".to_string()
            })
        })
        .unwrap();
        let trigger = Trigger {
            sfn: &sfn,
            ecs: &ecs,
            tokens: Some(&tokens),
            catalogue: &source,
            config: &config,
        };

        let push = trigger.handle(sample("ecr-push.json")).await.unwrap();
        assert_eq!(push["deploys"][0]["deployment"], "orders", "{push}");
        assert_eq!(push["deploys"][0]["status"], "started");
        for ignored in ["ecr-push-failed.json", "ecr-delete.json"] {
            let out = trigger.handle(sample(ignored)).await.unwrap();
            assert!(out["ignored"].is_string(), "{ignored}: {out}");
        }
        assert_eq!(sfn.started().len(), 1);

        let status = |v: &Value| v["statusCode"].as_i64().unwrap();
        let start = trigger.handle(sample("webhook-start.json")).await.unwrap();
        assert_eq!(status(&start), 202, "{start}");
        let body: Value = serde_json::from_str(start["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body["statusUrl"],
            "https://abcdefghij0123456789klmnop.lambda-url.us-east-1.on.aws/deployments/orders-hook-01JEXAMPLE0SPINNAKER0RUN01"
        );
        let request: Value = sample("start-deployment.json");
        assert_eq!(
            serde_json::from_str::<Value>(sample("webhook-start.json")["body"].as_str().unwrap())
                .unwrap(),
            request
        );
        let got = trigger.handle(sample("webhook-status.json")).await.unwrap();
        assert_eq!(status(&got), 200, "{got}");
        // The fakes have no approval pending and no service prod/orders: well-formed
        // requests for the wrong moment, answered 409 with the reason.
        for action in [
            "webhook-approve.json",
            "webhook-promote.json",
            "webhook-abort.json",
        ] {
            let got = trigger.handle(sample(action)).await.unwrap();
            assert_eq!(status(&got), 409, "{action}: {got}");
        }
        assert_eq!(sfn.started().len(), 2);

        let err = trigger
            .handle(serde_json::json!({"hello": 1}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("hello"), "{err}");
    }

    #[test]
    fn the_configuration_needs_a_state_machine_arn_and_checks_the_public_url() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        let e = TriggerConfig::from_lookup(env(&[])).unwrap_err();
        assert!(e.to_string().contains(DEPLOY_STATE_MACHINE_VAR));
        let e = TriggerConfig::from_lookup(env(&[(DEPLOY_STATE_MACHINE_VAR, "bluegreen")]))
            .unwrap_err();
        assert!(e.to_string().contains("state machine ARN"));
        const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy";
        let c = TriggerConfig::from_lookup(env(&[
            (DEPLOY_STATE_MACHINE_VAR, SM),
            (PUBLIC_URL_VAR, "https://hooks.example.com/"),
            (TOKEN_SECRET_VAR, "webhook/token"),
        ]))
        .unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://hooks.example.com"));
        assert_eq!(c.token_secret.as_deref(), Some("webhook/token"));
        let e = TriggerConfig::from_lookup(env(&[
            (DEPLOY_STATE_MACHINE_VAR, SM),
            (PUBLIC_URL_VAR, "hooks"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains(PUBLIC_URL_VAR));
    }
}
