//! Image pushes: an EventBridge `ECR Image Action` event starts a deploy of every catalogue
//! entry that follows the pushed repository and tag, with the image pinned by its digest.
//!
//! Each deploy's execution is named `<deployment>-ecr-<first 16 hex digits of the digest>`:
//! EventBridge delivers at least once, and a repeated event (or a second tag pushed for the
//! same image) finds that execution instead of starting another.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::catalogue::{Catalogue, Entry};
use crate::error::{Error, Result};
use crate::operations::{Executions, StartOutcome};

/// The `source` of ECR's events.
pub const SOURCE: &str = "aws.ecr";
/// The `detail-type` of a push or delete.
pub const DETAIL_TYPE: &str = "ECR Image Action";

/// The `detail` of an `ECR Image Action` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageAction {
    /// `PUSH` or `DELETE`.
    pub action_type: String,
    /// `SUCCESS` or `FAILURE`.
    pub result: String,
    pub repository_name: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
}

/// What became of one deployment a push concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushDeploy {
    pub deployment: String,
    pub execution_name: String,
    pub execution_arn: String,
    /// `started`, or `alreadyStarted` for a repeated event or an image deployed before.
    pub status: String,
}

/// The outcome of one event, also the function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcome {
    /// The EventBridge event id.
    pub event_id: Option<String>,
    /// `registry/repository@digest`, when the event is a successful push.
    pub image: Option<String>,
    pub tag: Option<String>,
    pub deploys: Vec<PushDeploy>,
    /// Why nothing was started, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// The execution name of deployment `deployment` of the image with `digest`.
pub fn execution_name(deployment: &str, digest: &str) -> String {
    let hex: String = digest
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect();
    format!("{deployment}-ecr-{hex}")
}

/// What an `ECR Image Action` event asks for, read without I/O.
#[derive(Debug)]
pub enum PushPlan<'c> {
    /// Nothing to start; the outcome says why.
    Ignored(PushOutcome),
    /// Deploy `image` (`registry/repository@digest`) with each of `entries`.
    Deploy {
        outcome: PushOutcome,
        image: String,
        digest: String,
        tag: String,
        entries: Vec<&'c Entry>,
    },
}

/// Reads an `ECR Image Action` event against the catalogue: a successful, tagged push to a
/// repository that catalogue deployments follow is a [`PushPlan::Deploy`]; any other action,
/// a failed or untagged push, or a repository or tag nothing follows is ignored.
///
/// # Errors
/// [`Error::InvalidInput`] for an event that is not an `ECR Image Action` or lacks what one
/// has.
pub fn read_push(catalogue: &Catalogue, event: Value) -> Result<PushPlan<'_>> {
    let event: EventBridgeEvent<ImageAction> =
        crate::lambda::parse_payload(event).map_err(|e| {
            Error::InvalidInput(format!("not an ECR Image Action event: {}", e.reason()))
        })?;
    let mut outcome = PushOutcome {
        event_id: event.id.clone(),
        image: None,
        tag: event.detail.image_tag.clone(),
        deploys: Vec::new(),
        ignored: None,
    };
    if event.source != SOURCE || event.detail_type != DETAIL_TYPE {
        return Err(Error::InvalidInput(format!(
            "the trigger takes ECR Image Action events (source {SOURCE}), not {} from {}",
            event.detail_type, event.source
        )));
    }
    let d = &event.detail;
    let ignore = |mut outcome: PushOutcome, why: String| {
        info!(event = ?outcome.event_id, repository = %d.repository_name, reason = %why, "push ignored");
        outcome.ignored = Some(why);
        Ok(PushPlan::Ignored(outcome))
    };
    if d.action_type != "PUSH" {
        return ignore(outcome, format!("action {} is not a push", d.action_type));
    }
    if d.result != "SUCCESS" {
        return ignore(
            outcome,
            format!("the push did not succeed (result {})", d.result),
        );
    }
    let Some(tag) = d.image_tag.as_deref().filter(|t| !t.is_empty()) else {
        return ignore(outcome, "the image was pushed without a tag".into());
    };
    let digest = d.image_digest.as_deref().unwrap_or_default();
    if digest.is_empty() {
        return Err(Error::InvalidInput(
            "a successful push has an image-digest; this event has none".into(),
        ));
    }
    let (Some(account), Some(region)) = (event.account.as_deref(), event.region.as_deref()) else {
        return Err(Error::InvalidInput(
            "an ECR event names its account and region; this one does not".into(),
        ));
    };
    let repository = format!(
        "{account}.dkr.ecr.{region}.amazonaws.com/{}",
        d.repository_name
    );
    let image = format!("{repository}@{digest}");
    crate::model::ImageRef::parse(&image)?;
    outcome.image = Some(image.clone());
    let entries = catalogue.following(&repository, tag);
    if entries.is_empty() {
        return ignore(
            outcome,
            format!("no catalogue deployment follows {repository}:{tag}"),
        );
    }
    Ok(PushPlan::Deploy {
        outcome,
        image,
        digest: digest.to_string(),
        tag: tag.to_string(),
        entries,
    })
}

/// Starts the deploys an `ECR Image Action` event asks for ([`read_push`]).
///
/// # Errors
/// As [`read_push`]; when a start fails, that error after the others were started (a retried
/// event finds those already started).
pub async fn on_push<X: Executions>(
    sfn: &X,
    state_machine_arn: &str,
    catalogue: &Catalogue,
    event: Value,
) -> Result<PushOutcome> {
    let (mut outcome, image, digest, tag, entries) = match read_push(catalogue, event)? {
        PushPlan::Ignored(outcome) => return Ok(outcome),
        PushPlan::Deploy {
            outcome,
            image,
            digest,
            tag,
            entries,
        } => (outcome, image, digest, tag, entries),
    };
    let (digest, tag) = (digest.as_str(), tag.as_str());
    let mut failures = Vec::new();
    for entry in entries {
        let name = execution_name(&entry.name, digest);
        let started = match entry.request(&image) {
            Ok(input) => sfn.start_execution(state_machine_arn, &name, &input).await,
            Err(e) => Err(e),
        };
        let (arn, status) = match started {
            Ok(StartOutcome::Started(arn)) => {
                info!(deployment = %entry.name, execution = %name, image = %image, tag, "push started a deploy");
                (arn, "started")
            }
            Ok(StartOutcome::AlreadyStarted(e) | StartOutcome::NameTaken(e)) => {
                info!(deployment = %entry.name, execution = %name, image = %image, status = %e.status, "this image was deployed for this push or an earlier one: nothing started");
                (e.arn, "alreadyStarted")
            }
            Err(e) => {
                warn!(deployment = %entry.name, execution = %name, error_type = e.error_type(), error = %e, "could not start the deploy");
                failures.push((entry.name.clone(), e));
                continue;
            }
        };
        outcome.deploys.push(PushDeploy {
            deployment: entry.name.clone(),
            execution_name: name,
            execution_arn: arn,
            status: status.into(),
        });
    }
    match failures.into_iter().next() {
        None => Ok(outcome),
        Some((deployment, e)) => Err(retry_whole_event(&deployment, e)),
    }
}

/// The error that makes EventBridge retry the event, naming the deployment.
fn retry_whole_event(deployment: &str, e: Error) -> Error {
    match e {
        Error::Throttled { .. } | Error::Transient { .. } => e,
        Error::Config(m) => Error::Config(format!("deployment {deployment}: {m}")),
        other => Error::PreconditionFailed(format!(
            "deployment {deployment} could not be started: {other}"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::fakes::FakeSfn;
    use serde_json::json;

    const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy";
    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn catalogue() -> Catalogue {
        let entry = |service: &str, tags: Value| {
            json!({
                "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders",
                "tags": tags,
                "cluster": "prod", "service": service, "container": "app",
                "listenerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2",
                "targetGroupArns": [
                    format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{service}-a/73e2d6bc24d8a067"),
                    format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{service}-b/83e2d6bc24d8a067")
                ]
            })
        };
        let doc = json!({"deployments": {
            "orders-eu": entry("orders-eu", json!(["v*"])),
            "orders-us": entry("orders-us", json!(["v*", "release-*"])),
        }});
        Catalogue::parse(&doc.to_string(), "test").unwrap()
    }

    fn push(tag: Option<&str>, action: &str, result: &str) -> Value {
        let mut detail = json!({
            "result": result, "repository-name": "orders", "image-digest": DIGEST,
            "action-type": action
        });
        if let Some(tag) = tag {
            detail["image-tag"] = json!(tag);
        }
        json!({
            "version": "0", "id": "13cde686-328b-6117-af20-0e5566167482",
            "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-12-04T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail
        })
    }

    #[tokio::test]
    async fn a_push_starts_one_deploy_per_following_entry_pinned_by_digest() {
        let sfn = FakeSfn::default();
        let out = on_push(&sfn, SM, &catalogue(), push(Some("v2"), "PUSH", "SUCCESS"))
            .await
            .unwrap();
        assert_eq!(out.ignored, None);
        let names: Vec<_> = out
            .deploys
            .iter()
            .map(|d| d.execution_name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "orders-eu-ecr-2c26b46b68ffc68f",
                "orders-us-ecr-2c26b46b68ffc68f"
            ]
        );
        assert!(out.deploys.iter().all(|d| d.status == "started"));
        let started = sfn.started();
        let input: Value = serde_json::from_str(started[0].input.as_deref().unwrap()).unwrap();
        assert_eq!(
            input["image"],
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@{DIGEST}")
        );

        // Only orders-us follows release-* tags.
        let sfn = FakeSfn::default();
        let out = on_push(
            &sfn,
            SM,
            &catalogue(),
            push(Some("release-7"), "PUSH", "SUCCESS"),
        )
        .await
        .unwrap();
        assert_eq!(out.deploys.len(), 1);
        assert_eq!(out.deploys[0].deployment, "orders-us");
    }

    #[tokio::test]
    async fn a_repeated_event_starts_nothing_and_reports_the_executions() {
        let sfn = FakeSfn::default();
        let event = push(Some("v2"), "PUSH", "SUCCESS");
        on_push(&sfn, SM, &catalogue(), event.clone())
            .await
            .unwrap();
        let again = on_push(&sfn, SM, &catalogue(), event).await.unwrap();
        assert!(again.deploys.iter().all(|d| d.status == "alreadyStarted"));
        // The same image pushed under another tag is the same deploy.
        let other_tag = on_push(
            &sfn,
            SM,
            &catalogue(),
            push(Some("v2-final"), "PUSH", "SUCCESS"),
        )
        .await
        .unwrap();
        assert!(
            other_tag
                .deploys
                .iter()
                .all(|d| d.status == "alreadyStarted")
        );
        assert_eq!(sfn.started().len(), 2);
    }

    #[tokio::test]
    async fn failed_pushes_deletes_untagged_and_unfollowed_pushes_are_ignored_with_the_reason() {
        let sfn = FakeSfn::default();
        for (event, reason) in [
            (push(Some("v2"), "PUSH", "FAILURE"), "did not succeed"),
            (push(Some("v2"), "DELETE", "SUCCESS"), "not a push"),
            (push(None, "PUSH", "SUCCESS"), "without a tag"),
            (
                push(Some("latest"), "PUSH", "SUCCESS"),
                "no catalogue deployment follows",
            ),
        ] {
            let out = on_push(&sfn, SM, &catalogue(), event).await.unwrap();
            assert!(out.ignored.as_deref().unwrap().contains(reason), "{out:?}");
            assert!(out.deploys.is_empty());
        }
        assert!(sfn.started().is_empty());
    }

    #[tokio::test]
    async fn malformed_events_are_invalid_input_and_start_nothing() {
        let sfn = FakeSfn::default();
        let mut no_detail = push(Some("v2"), "PUSH", "SUCCESS");
        no_detail.as_object_mut().unwrap().remove("detail");
        let mut other_source = push(Some("v2"), "PUSH", "SUCCESS");
        other_source["source"] = json!("aws.s3");
        let mut bad_digest = push(Some("v2"), "PUSH", "SUCCESS");
        bad_digest["detail"]["image-digest"] = json!("sha256:xyz");
        let mut no_account = push(Some("v2"), "PUSH", "SUCCESS");
        no_account.as_object_mut().unwrap().remove("account");
        for event in [
            json!({}),
            json!([1]),
            no_detail,
            other_source,
            bad_digest,
            no_account,
        ] {
            let err = on_push(&sfn, SM, &catalogue(), event.clone())
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{event}: {err}");
        }
        assert!(sfn.started().is_empty());
    }
}
