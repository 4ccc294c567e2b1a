//! Dynatrace deployment events (`CUSTOM_DEPLOYMENT`) for the start, promotion and rollback
//! of a deployment, so Dynatrace's problem analysis sees each release.
//!
//! Events are best effort: a deployment never fails or waits because Dynatrace did not take
//! an event. The failure is logged, with the event's title.

use tracing::{info, warn};

use crate::dynatrace::{DeploymentEvent, Dynatrace, property, quoted};
use crate::model::Deployment;

/// What happened to the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// Green was created.
    Started,
    /// Green became the primary task set with all traffic.
    Promoted,
    /// Traffic went back to blue and green was removed.
    RolledBack,
}

impl Milestone {
    fn as_str(self) -> &'static str {
        match self {
            Milestone::Started => "started",
            Milestone::Promoted => "promoted",
            Milestone::RolledBack => "rolled back",
        }
    }
}

/// The entities a deployment's events are on: the deployment's `entitySelector`, else the
/// process group instances of its release product.
pub fn entity_selector(d: &Deployment) -> Option<String> {
    let release = d.dynatrace.as_ref()?;
    if let Some(selector) = &release.entity_selector {
        return Some(selector.clone());
    }
    let product = release.release_product.as_deref()?;
    Some(format!(
        "type(PROCESS_GROUP_INSTANCE),releasesProduct({})",
        quoted(product)
    ))
}

/// The Step Functions console page of an execution, from its ARN.
pub fn execution_link(execution_arn: &str) -> Option<String> {
    let region = execution_arn.split(':').nth(3).filter(|r| !r.is_empty())?;
    Some(format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    ))
}

/// The event of `milestone` for deployment `d` of `version` (green's image digest).
pub fn event(
    d: &Deployment,
    milestone: Milestone,
    version: &str,
    image: &str,
    reason: Option<&str>,
) -> DeploymentEvent {
    let short = version
        .strip_prefix("sha256:")
        .map_or(version, |hex| &hex[..hex.len().min(12)]);
    let mut e = DeploymentEvent::new(format!(
        "{} {}: deployment {}",
        d.service,
        short,
        milestone.as_str()
    ))
    .property(property::NAME, format!("ecs-bluegreen {}", d.service))
    .property(property::VERSION, version)
    .property(property::PROJECT, d.cluster.clone())
    .property("ecs.cluster", d.cluster.clone())
    .property("ecs.service", d.service.clone())
    .property("ecs.container", d.container.clone())
    .property("image", image)
    .property("deployment.execution", d.execution_name.clone())
    .property("deployment.milestone", milestone.as_str());
    if let Some(release) = &d.dynatrace {
        if let Some(stage) = &release.release_stage {
            e = e.property(property::RELEASE_STAGE, stage.clone());
        }
        if let Some(product) = &release.release_product {
            e = e.property(property::RELEASE_PRODUCT, product.clone());
        }
    }
    if let Some(link) = d.execution_arn.as_deref().and_then(execution_link) {
        e = e.property(property::CI_BACK_LINK, link);
    }
    if let Some(reason) = reason {
        e = e.property("deployment.reason", truncate(reason, 500));
    }
    if let Some(selector) = entity_selector(d) {
        e = e.on(selector);
    }
    e
}

/// Posts the event of `milestone` when the deployment asks for events and Dynatrace is
/// configured; logs instead of failing.
pub async fn announce<D: Dynatrace>(
    dynatrace: Option<&D>,
    d: &Deployment,
    milestone: Milestone,
    version: &str,
    image: &str,
    reason: Option<&str>,
) {
    if !d.dynatrace.as_ref().is_some_and(|r| r.events) {
        return;
    }
    let Some(dynatrace) = dynatrace else {
        warn!(service = %d.service, milestone = milestone.as_str(), "the deployment asks for Dynatrace events, but this function has no Dynatrace configured");
        return;
    };
    let e = event(d, milestone, version, image, reason);
    match dynatrace.post_deployment_event(&e).await {
        Ok(receipt) => {
            info!(service = %d.service, milestone = milestone.as_str(), title = %e.title, reports = receipt.report_count, "posted Dynatrace deployment event")
        }
        Err(err) => {
            warn!(service = %d.service, milestone = milestone.as_str(), title = %e.title, error = %err, "could not post the Dynatrace deployment event; the deployment goes on")
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::DynatraceRelease;
    use crate::steps::fakes::{DIGEST_V2, FakeAws, FakeDynatrace};

    fn with_dynatrace(release: DynatraceRelease) -> Deployment {
        let mut request = FakeAws::request();
        request.dynatrace = Some(release);
        request
            .into_deployment(
                "orders-2222",
                Some("arn:aws:states:eu-west-1:123456789012:execution:deploy:orders-2222"),
            )
            .unwrap()
    }

    fn release() -> DynatraceRelease {
        DynatraceRelease {
            release_product: None,
            release_stage: Some("production".into()),
            events: true,
            entity_selector: None,
        }
    }

    #[test]
    fn an_event_names_the_release_links_the_execution_and_is_on_the_products_processes() {
        let d = with_dynatrace(release());
        let e = event(&d, Milestone::Promoted, DIGEST_V2, "r.io/orders@x", None);
        assert_eq!(e.title, "orders 222222222222: deployment promoted");
        assert_eq!(e.properties[property::VERSION], DIGEST_V2);
        assert_eq!(e.properties[property::RELEASE_PRODUCT], "orders");
        assert_eq!(e.properties[property::RELEASE_STAGE], "production");
        assert_eq!(
            e.properties[property::CI_BACK_LINK],
            "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:123456789012:execution:deploy:orders-2222"
        );
        assert_eq!(
            e.entity_selector.as_deref(),
            Some("type(PROCESS_GROUP_INSTANCE),releasesProduct(\"orders\")")
        );
    }

    #[test]
    fn a_configured_entity_selector_is_used_as_it_is() {
        let mut r = release();
        r.entity_selector = Some("type(SERVICE),entityName.equals(\"orders\")".into());
        let d = with_dynatrace(r);
        let e = event(&d, Milestone::Started, DIGEST_V2, "img", None);
        assert_eq!(
            e.entity_selector.as_deref(),
            Some("type(SERVICE),entityName.equals(\"orders\")")
        );
    }

    #[tokio::test]
    async fn events_are_posted_only_when_asked_for_and_a_failure_does_not_fail_the_step() {
        let dt = FakeDynatrace::default();
        let mut off = release();
        off.events = false;
        announce(
            Some(&dt),
            &with_dynatrace(off),
            Milestone::Started,
            DIGEST_V2,
            "img",
            None,
        )
        .await;
        assert!(dt.events().is_empty());

        let d = with_dynatrace(release());
        dt.fail_next(crate::Error::Transient {
            operation: "POST /api/v2/events/ingest",
            resource: "events".into(),
            message: "503".into(),
        });
        announce(Some(&dt), &d, Milestone::Started, DIGEST_V2, "img", None).await;
        announce(
            Some(&dt),
            &d,
            Milestone::RolledBack,
            DIGEST_V2,
            "img",
            Some("5xx alarm"),
        )
        .await;
        let events = dt.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].properties["deployment.reason"], "5xx alarm");
        announce::<FakeDynatrace>(None, &d, Milestone::Started, DIGEST_V2, "img", None).await;
    }
}
