//! `Validate`: parse the execution input and check it against the live environment, changing
//! nothing.
//!
//! Every check fails with a message that says what is wrong and what to do; a failure here
//! is a fast failure of the execution, before anything was created.

use tracing::info;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{DeployRequest, Deployment, ImageRef};
use crate::ports::{
    Alarms, Ecs, ImageRegistry, LoadBalancer, ServiceState, TaskSetState, TrafficRoute,
    WeightedTargetGroup,
};
use crate::steps::{ValidateInput, ValidateOutput};
use crate::taskdef;

/// Parses the execution input into a [`Deployment`] and checks, reading only, that it can
/// start: the service exists, is `ACTIVE`, uses the `EXTERNAL` deployment controller and has
/// a `PRIMARY` task set on one of the two target groups; no other deployment holds the
/// service; the container exists; the image comes from an allowed repository and, when
/// given by tag, resolves to a digest in ECR; the production route (and the test route, if
/// any) forwards to exactly the two target groups with all weight on the primary's; every
/// CloudWatch alarm named exists and a prefix matches at least one; Dynatrace is configured
/// when the deployment uses it.
///
/// # Errors
/// - [`Error::InvalidInput`]: a malformed input, a missing cluster, service, listener, rule,
///   container or alarm, an image outside the allowed repositories, a tag that does not
///   resolve or an image by tag outside ECR (it cannot be pinned).
/// - [`Error::Config`]: the deployment uses Dynatrace, which this installation does not
///   have configured.
/// - [`Error::PreconditionFailed`]: the service is not `ACTIVE` or not `EXTERNAL`, has no
///   primary task set, the primary is not on the pair, or the route's weights are not
///   "everything on the primary's target group".
/// - [`Error::DeploymentInProgress`]: another execution's task set exists.
/// - AWS errors of the reads, as [`Error::aws`] classifies them.
pub async fn validate<E: Ecs, L: LoadBalancer, R: ImageRegistry, A: Alarms>(
    ecs: &E,
    elb: &L,
    registry: &R,
    alarms: &A,
    config: &Config,
    input: ValidateInput,
) -> Result<ValidateOutput> {
    let deployment = DeployRequest::parse(input.request)?
        .into_deployment(&input.execution_name, input.execution_arn.as_deref())?;
    let d = &deployment;
    info!(service = %d.service, cluster = %d.cluster, image = %d.image, execution = %d.execution_name, "validating deployment");
    let image = ImageRef::parse(&d.image)?;
    if d.dynatrace.is_some() && !config.dynatrace_available {
        return Err(Error::Config(format!(
            "the deployment uses Dynatrace (its dynatrace block), but this installation has no Dynatrace configured: set {} and {} on the functions",
            crate::dynatrace::API_URL_VAR,
            crate::dynatrace::TOKEN_SECRET_VAR
        )));
    }

    let service = ecs.service(&d.cluster, &d.service).await?;
    let primary = check_service(d, &service)?;

    let blue_td = ecs.task_definition(&primary.task_definition_arn).await?;
    let current = taskdef::image_of(&blue_td, &d.container)?;
    let current_name = ImageRef::parse(current).map_or_else(|_| current.to_string(), |i| i.name());
    if !config.allows(&image.name(), &current_name) {
        let allowed = if config.allowed_repositories.is_empty() {
            format!(
                "only {current_name}, the repository container {} runs from now",
                d.container
            )
        } else {
            config.allowed_repositories.join(", ")
        };
        return Err(Error::InvalidInput(format!(
            "image {} is outside the allowed repositories (allowed: {allowed}); set {} to allow its repository",
            d.image,
            crate::config::ALLOWED_REPOSITORIES_VAR
        )));
    }
    if image.digest.is_none() {
        let digest = resolve_tag(registry, &image, &d.image).await?;
        info!(service = %d.service, image = %d.image, digest = %digest, "image tag resolves");
    }

    let weights = elb.forward_weights(&d.route()).await?;
    check_weights(d, &d.route(), primary, &weights)?;
    if let Some(test) = &d.test_route {
        let route = test.route();
        let weights = elb.forward_weights(&route).await?;
        check_weights(d, &route, primary, &weights)?;
    }
    if let Some(spec) = &d.verification.cloud_watch_alarms {
        let found = alarms
            .alarms(&spec.alarm_names, spec.alarm_name_prefix.as_deref())
            .await?;
        let missing: Vec<&String> = spec
            .alarm_names
            .iter()
            .filter(|n| !found.iter().any(|a| &a.name == *n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::InvalidInput(format!(
                "verification.cloudWatchAlarms.alarmNames names alarms that do not exist: {}",
                missing
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(prefix) = &spec.alarm_name_prefix
            && !found.iter().any(|a| a.name.starts_with(prefix.as_str()))
        {
            return Err(Error::InvalidInput(format!(
                "verification.cloudWatchAlarms.alarmNamePrefix {prefix:?} matches no alarm"
            )));
        }
    }

    info!(
        service = %d.service,
        cluster = %d.cluster,
        image = %d.image,
        blue_task_set = %primary.id,
        blue_target_group = primary.target_group_arn().unwrap_or_default(),
        "deployment is valid"
    );
    Ok(ValidateOutput { deployment })
}

/// The digest a tag-only image resolves to in ECR.
///
/// # Errors
/// [`Error::InvalidInput`] when the image is not in ECR or the tag does not exist.
pub(crate) async fn resolve_tag<R: ImageRegistry>(
    registry: &R,
    image: &ImageRef,
    requested: &str,
) -> Result<String> {
    let tag = image.tag.as_deref().unwrap_or("latest");
    let Some(registry_id) = image.ecr_registry_id() else {
        return Err(Error::InvalidInput(format!(
            "image {requested} is given by tag but is not an ECR image, so its tag cannot be pinned to a digest; pass it as {}@sha256:…",
            image.name()
        )));
    };
    registry
        .digest_of(registry_id, &image.repository, tag)
        .await?
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "image tag {tag:?} not found in ECR repository {} of registry {registry_id}; push it first or check the tag",
                image.repository
            ))
        })
}

/// The service's primary task set, once the service is fit for a deployment.
fn check_service<'a>(d: &Deployment, service: &'a ServiceState) -> Result<&'a TaskSetState> {
    let name = format!("service {} in cluster {}", d.service, d.cluster);
    match service.status.as_str() {
        "ACTIVE" => {}
        "INACTIVE" => {
            return Err(Error::InvalidInput(format!(
                "{name} was deleted (status INACTIVE)"
            )));
        }
        other => {
            return Err(Error::PreconditionFailed(format!(
                "{name} is {other}, not ACTIVE; only an active service can be deployed"
            )));
        }
    }
    if service.deployment_controller.as_deref() != Some("EXTERNAL") {
        return Err(Error::PreconditionFailed(format!(
            "{name} uses the {} deployment controller; blue/green with task sets needs the EXTERNAL controller (create the service with deploymentController.type = EXTERNAL)",
            service.deployment_controller.as_deref().unwrap_or("ECS")
        )));
    }
    let Some(primary) = service.primary() else {
        return Err(Error::PreconditionFailed(format!(
            "{name} has no PRIMARY task set; create one on one of the target groups and make it primary before the first deployment"
        )));
    };
    let primary_tg = primary.target_group_arn().unwrap_or("none");
    if !d.target_group_arns.iter().any(|tg| tg == primary_tg) {
        return Err(Error::PreconditionFailed(format!(
            "the primary task set {} of {name} is on target group {primary_tg}, which is not one of targetGroupArns ({})",
            primary.id,
            d.target_group_arns.join(", ")
        )));
    }
    // A DRAINING task set (an earlier deployment's, removed) holds nothing: its targets
    // drain and its tasks stop on their own.
    if let Some(other) = service.task_sets.iter().find(|t| {
        t.id != primary.id
            && !t.is_draining()
            && t.external_id.as_deref() != Some(d.execution_name.as_str())
    }) {
        return Err(Error::DeploymentInProgress(format!(
            "{name} already has a second task set {} (status {}, externalId {}); another deployment holds the service: wait for it to finish or roll back",
            other.id,
            other.status,
            other.external_id.as_deref().unwrap_or("none")
        )));
    }
    Ok(primary)
}

/// Weights as `name=weight, …`, target groups by their short name.
pub(crate) fn show_weights(weights: &[WeightedTargetGroup]) -> String {
    if weights.is_empty() {
        return "no target groups".into();
    }
    weights
        .iter()
        .map(|w| format!("{}={}", target_group_name(&w.target_group_arn), w.weight))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `orders-a` of `arn:…:targetgroup/orders-a/73e2d6bc24d8a067`.
pub(crate) fn target_group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(arn)
}

/// `route` forwards to exactly the pair, with all weight on the primary's target group.
fn check_weights(
    d: &Deployment,
    route: &TrafficRoute,
    primary: &TaskSetState,
    weights: &[WeightedTargetGroup],
) -> Result<()> {
    let primary_tg = primary.target_group_arn().unwrap_or_default();
    let exactly_the_pair = weights.len() == 2
        && d.target_group_arns
            .iter()
            .all(|tg| weights.iter().filter(|w| &w.target_group_arn == tg).count() == 1);
    if !exactly_the_pair {
        return Err(Error::PreconditionFailed(format!(
            "the forward action of {route} must target exactly the two target groups {} (the idle one at weight 0), but it has {}",
            d.target_group_arns
                .iter()
                .map(|t| target_group_name(t))
                .collect::<Vec<_>>()
                .join(" and "),
            show_weights(weights)
        )));
    }
    let all_on_primary = weights
        .iter()
        .all(|w| (w.target_group_arn == primary_tg) == (w.weight > 0));
    if !all_on_primary {
        return Err(Error::PreconditionFailed(format!(
            "{route} must send all traffic to {} (the primary task set {}), but its weights are {}; a previous deployment may not have finished",
            target_group_name(primary_tg),
            primary.id,
            show_weights(weights)
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::steps::fakes::*;

    fn request(image: &str) -> serde_json::Value {
        json!({
            "cluster": CLUSTER,
            "service": SERVICE,
            "container": CONTAINER,
            "image": image,
            "listenerArn": LISTENER,
            "targetGroupArns": [TG_A, TG_B],
        })
    }

    fn input(request: serde_json::Value) -> ValidateInput {
        ValidateInput {
            request,
            execution_name: EXECUTION.into(),
            execution_arn: None,
        }
    }

    async fn run(fake: &FakeAws, request: serde_json::Value) -> Result<ValidateOutput> {
        validate(fake, fake, fake, fake, &Config::default(), input(request)).await
    }

    #[tokio::test]
    async fn a_valid_request_becomes_the_deployment_and_changes_nothing() {
        let fake = FakeAws::blue();

        let out = run(&fake, request(IMAGE_V2_TAG)).await.unwrap();

        assert_eq!(out.deployment, fake.deployment());
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn named_alarms_must_exist_and_a_prefix_must_match_one() {
        let fake = FakeAws::blue();
        fake.set_alarm("orders-5xx", "OK");
        let mut r = request(IMAGE_V2_TAG);
        r["verification"] =
            json!({"cloudWatchAlarms": {"alarmNames": ["orders-5xx", "orders-typo"]}});
        let err = run(&fake, r.clone()).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(
            err.to_string().contains("do not exist: orders-typo"),
            "{err}"
        );

        r["verification"] = json!({"cloudWatchAlarms": {"alarmNamePrefix": "payments-"}});
        let err = run(&fake, r.clone()).await.unwrap_err();
        assert!(err.to_string().contains("matches no alarm"), "{err}");

        r["verification"] = json!({"cloudWatchAlarms": {"alarmNamePrefix": "orders-"}});
        run(&fake, r).await.unwrap();
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_deployment_using_dynatrace_needs_an_installation_that_has_it() {
        let fake = FakeAws::blue();
        let mut r = request(IMAGE_V2_TAG);
        r["dynatrace"] = json!({"releaseStage": "production"});
        let err = run(&fake, r.clone()).await.unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains("DYNATRACE_API_URL"), "{err}");
        let config = Config {
            dynatrace_available: true,
            ..Config::default()
        };
        validate(&fake, &fake, &fake, &fake, &config, input(r))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_test_route_must_also_send_everything_to_blue() {
        // Given a test rule that already sends some test traffic to the idle group
        let fake = FakeAws::blue();
        fake.set_weights(&rule_route(), weights(50, 50));
        let mut r = request(IMAGE_V2_TAG);
        r["testTraffic"] = json!({"listenerArn": LISTENER, "listenerRuleArn": RULE});

        let err = run(&fake, r).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(RULE), "{err}");
    }

    #[tokio::test]
    async fn a_tag_is_resolved_in_ecr_and_an_image_by_digest_is_not() {
        let fake = FakeAws::blue();
        run(&fake, request(IMAGE_V2_TAG)).await.unwrap();
        assert!(fake.calls().contains(&"DescribeImages".to_string()));

        let fake = FakeAws::blue();
        let pinned = format!("{REGISTRY}/{REPOSITORY}@{DIGEST_V2}");
        run(&fake, request(&pinned)).await.unwrap();
        assert!(!fake.calls().contains(&"DescribeImages".to_string()));
    }

    #[tokio::test]
    async fn a_missing_tag_is_invalid_input() {
        let fake = FakeAws::blue();

        let err = run(&fake, request(&format!("{REGISTRY}/{REPOSITORY}:v3")))
            .await
            .unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("\"v3\" not found"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_tag_outside_ecr_cannot_be_pinned() {
        let fake = FakeAws::blue();
        let config = Config::new(vec!["docker.io/library/*".into()]);

        let err = validate(
            &fake,
            &fake,
            &fake,
            &fake,
            &config,
            input(request("docker.io/library/nginx:1.27")),
        )
        .await
        .unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("not an ECR image"), "{err}");
    }

    #[tokio::test]
    async fn a_foreign_repository_is_invalid_input() {
        let fake = FakeAws::blue();

        let err = run(&fake, request(&format!("{REGISTRY}/evil:v2")))
            .await
            .unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(
            err.to_string().contains("outside the allowed repositories"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("{REGISTRY}/{REPOSITORY}")),
            "{err}"
        );
        assert!(!fake.calls().contains(&"DescribeImages".to_string()));
    }

    #[tokio::test]
    async fn a_listed_repository_is_allowed() {
        let fake = FakeAws::blue();
        fake.add_image(ACCOUNT, "team/orders", "v2", DIGEST_V2);
        let config = Config::new(vec![format!("{REGISTRY}/team/*")]);

        validate(
            &fake,
            &fake,
            &fake,
            &fake,
            &config,
            input(request(&format!("{REGISTRY}/team/orders:v2"))),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn another_deployment_holding_the_service_is_deployment_in_progress() {
        // Given another execution's green next to blue
        let fake = FakeAws::blue();
        let other = fake.add_green("orders-3333333333333333");
        fake.clear_calls();

        // When this execution validates
        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();

        // Then it names the other task set and execution, and changes nothing
        assert_eq!(err.error_type(), "DeploymentInProgress");
        assert!(err.to_string().contains(&other.id), "{err}");
        assert!(err.to_string().contains("orders-3333333333333333"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn an_earlier_deployments_task_set_still_draining_does_not_hold_the_service() {
        // Given an earlier deployment's task set, removed and still draining its targets
        let fake = FakeAws::blue();
        let earlier = fake.add_green("orders-3333333333333333");
        fake.update_task_set(&earlier.id, |t| t.status = "DRAINING".into());

        // When this execution validates, it may go ahead
        run(&fake, request(IMAGE_V2_TAG)).await.unwrap();
    }

    #[tokio::test]
    async fn this_executions_own_green_is_not_another_deployment() {
        let fake = FakeAws::blue();
        fake.add_green(EXECUTION);

        run(&fake, request(IMAGE_V2_TAG)).await.unwrap();
    }

    #[tokio::test]
    async fn a_service_with_the_ecs_controller_is_a_failed_precondition() {
        let fake = FakeAws::blue();
        fake.update_service(|s| s.deployment_controller = Some("ECS".into()));

        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("EXTERNAL"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_service_is_invalid_input() {
        let fake = FakeAws::blue();
        let mut req = request(IMAGE_V2_TAG);
        req["service"] = json!("payments");

        let err = run(&fake, req).await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
    }

    #[tokio::test]
    async fn a_draining_service_or_one_without_primary_is_a_failed_precondition() {
        let fake = FakeAws::blue();
        fake.update_service(|s| s.status = "DRAINING".into());
        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("DRAINING"), "{err}");

        let fake = FakeAws::blue();
        fake.update_service(|s| s.task_sets[0].status = "ACTIVE".into());
        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("no PRIMARY task set"), "{err}");
    }

    #[tokio::test]
    async fn a_primary_outside_the_pair_is_a_failed_precondition() {
        let fake = FakeAws::blue();
        let mut req = request(IMAGE_V2_TAG);
        let tg_c = TG_A.replace("orders-a", "orders-c");
        req["targetGroupArns"] = json!([TG_B, tg_c]);

        let err = run(&fake, req).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(
            err.to_string().contains("not one of targetGroupArns"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unknown_container_is_invalid_input_listing_the_containers() {
        let fake = FakeAws::blue();
        let mut req = request(IMAGE_V2_TAG);
        req["container"] = json!("web");

        let err = run(&fake, req).await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(
            err.to_string().contains(&format!("{CONTAINER}, {SIDECAR}")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn weight_on_the_idle_target_group_is_a_failed_precondition_showing_the_weights() {
        let fake = FakeAws::blue();
        fake.set_weights(&default_route(), weights(90, 10));

        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(
            err.to_string().contains("orders-a=90, orders-b=10"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_forward_to_only_one_of_the_pair_is_a_failed_precondition() {
        let fake = FakeAws::blue();
        fake.set_weights(&default_route(), weights(1, 0)[..1].to_vec());

        let err = run(&fake, request(IMAGE_V2_TAG)).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(
            err.to_string().contains("exactly the two target groups"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_rule_is_checked_on_its_own_weights() {
        let fake = FakeAws::blue();
        fake.set_weights(&rule_route(), weights(50, 50));
        let mut req = request(IMAGE_V2_TAG);
        req["listenerRuleArn"] = json!(RULE);

        let err = run(&fake, req.clone()).await.unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");

        fake.set_weights(&rule_route(), weights(100, 0));
        let out = run(&fake, req).await.unwrap();
        assert_eq!(out.deployment.listener_rule_arn.as_deref(), Some(RULE));
    }

    #[tokio::test]
    async fn a_rule_of_another_listener_is_invalid_input() {
        let fake = FakeAws::blue();
        let mut req = request(IMAGE_V2_TAG);
        req["listenerRuleArn"] = json!(RULE.replace("f2f7dc8efc522ab2", "0000000000000000"));

        let err = run(&fake, req).await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(
            err.to_string().contains("is not a rule of listener"),
            "{err}"
        );
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_request_fails_before_any_call() {
        let fake = FakeAws::blue();
        let mut req = request(IMAGE_V2_TAG);
        req["targetGroupArns"] = json!([TG_A]);

        let err = run(&fake, req).await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(fake.calls().is_empty());
    }
}
