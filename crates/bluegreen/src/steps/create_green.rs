//! `CreateGreen`: clone blue's task definition with only the image changed (pinned by digest)
//! and create the green task set on the idle target group.
//!
//! Idempotent: a re-run finds green by its `externalId` (the execution name) and returns it.
//! Race-safe: two executions that both got past `Validate` may both create a task set; each
//! re-reads the service afterwards, the one whose task set is younger lost, removes what it
//! created and fails with `DeploymentInProgress`, and the older one proceeds.

use std::cmp::Ordering;

use tracing::{info, warn};

use crate::dynatrace::{Dynatrace, RELEASE_VERSION_VAR};
use crate::error::{Error, Result};
use crate::model::{Deployment, ImageRef};
use crate::ports::{Ecs, ImageRegistry, LoadBalancer, NewTaskSet, TaskDefinitionDoc, TaskSetState};
use crate::steps::events::{Milestone, announce};
use crate::steps::validate::{resolve_tag, show_weights, target_group_name};
use crate::steps::{CreateGreenOutput, StepInput, TaskSetRef, sides};
use crate::taskdef;
use crate::verification::dynatrace::{release_scope, release_version};

/// Creates green, or returns it when this execution created it already.
///
/// Green runs blue's task definition with the deployment's container image pinned by
/// digest: the family's latest `ACTIVE` revision when it is exactly that, otherwise a new
/// revision, proven equal to the desired one field by field. With a `dynatrace` block the
/// container also gets Dynatrace's release variables (`DT_RELEASE_VERSION` = the image
/// digest, `DT_RELEASE_PRODUCT`, `DT_RELEASE_STAGE`); without one, a `DT_RELEASE_VERSION`
/// blue already has is set to green's digest, so it never names the wrong release.
/// Creating green posts the `started` deployment event (best effort). Green's task set is on the
/// pair's other target group with blue's launch settings (network configuration, launch
/// type or capacity provider strategy, platform version, service registries) and blue's load
/// balancer entry, at 100 %, `externalId` = execution name.
///
/// # Errors
/// - [`Error::DeploymentInProgress`]: another execution's task set exists (nothing is
///   created), or one appeared at the same time and is older (ours is removed again).
/// - [`Error::InvalidInput`]: the tag does not resolve in ECR, or the image is by tag but
///   not in ECR; the container does not exist.
/// - [`Error::PreconditionFailed`]: no blue task set, blue not on the pair or on several
///   target groups, green's target group takes production traffic, or ECS registered a
///   revision that differs from the one asked for (it is deregistered again; the message
///   names the fields).
/// - AWS errors, as [`Error::aws`] classifies them.
pub async fn create_green<E: Ecs, L: LoadBalancer, R: ImageRegistry, D: Dynatrace>(
    ecs: &E,
    elb: &L,
    registry: &R,
    dynatrace: Option<&D>,
    input: StepInput,
) -> Result<CreateGreenOutput> {
    let d = &input.deployment;
    let found = sides(ecs, d).await?;
    let name = format!("service {} in cluster {}", d.service, d.cluster);
    let Some(blue) = found.blue else {
        return Err(Error::PreconditionFailed(format!(
            "{name} has no blue task set to clone green from"
        )));
    };
    let blue_tg = blue.target_group_arn().unwrap_or_default().to_string();
    let Some(green_tg) = d.other_target_group(&blue_tg).map(str::to_string) else {
        return Err(Error::PreconditionFailed(format!(
            "blue task set {} of {name} is on target group {}, which is not one of targetGroupArns ({})",
            blue.id,
            if blue_tg.is_empty() { "none" } else { &blue_tg },
            d.target_group_arns.join(", ")
        )));
    };

    if let Some(green) = found.green {
        if green.is_draining() {
            return Err(Error::PreconditionFailed(format!(
                "green task set {} of execution {} was removed (DRAINING); a removed green is not brought back, start a new deployment",
                green.id, d.execution_name
            )));
        }
        // A re-run: this execution created green already.
        let green_td = ecs.task_definition(&green.task_definition_arn).await?;
        let image = taskdef::image_of(&green_td, &d.container)?.to_string();
        lose_to_an_older_rival(ecs, d, &green, None).await?;
        info!(service = %d.service, green_task_set = %green.id, image = %image, task_definition = %green.task_definition_arn, "green exists already");
        return Ok(output(&blue, &blue_tg, &green, &green_tg, image));
    }

    if blue.status != "PRIMARY" {
        return Err(Error::PreconditionFailed(format!(
            "{name} has no PRIMARY task set to clone green from (task set {} is {})",
            blue.id, blue.status
        )));
    }
    if let Some(other) = found.service.task_sets.iter().find(|t| {
        t.id != blue.id
            && !t.is_draining()
            && t.external_id.as_deref() != Some(d.execution_name.as_str())
    }) {
        return Err(Error::DeploymentInProgress(format!(
            "{name} already has a second task set {} (externalId {}); another deployment holds the service",
            other.id,
            other.external_id.as_deref().unwrap_or("none")
        )));
    }
    if blue.load_balancers.len() != 1 {
        return Err(Error::PreconditionFailed(format!(
            "blue task set {} of {name} has {} load balancer entries; blue/green needs exactly one, on one of the two target groups",
            blue.id,
            blue.load_balancers.len()
        )));
    }
    let weights = elb.forward_weights(&d.route()).await?;
    if weights
        .iter()
        .any(|w| w.target_group_arn == green_tg && w.weight > 0)
    {
        return Err(Error::PreconditionFailed(format!(
            "green's target group {} takes traffic on {} ({}); it must be at weight 0 before green is created",
            target_group_name(&green_tg),
            d.route(),
            show_weights(&weights)
        )));
    }

    let image = pin(registry, d).await?;
    let blue_td = ecs.task_definition(&blue.task_definition_arn).await?;
    let desired = desired_revision(d, &blue_td, &image)?;
    let (green_td_arn, registered_here) = green_revision(ecs, &desired).await?;

    let mut load_balancer = blue.load_balancers[0].clone();
    load_balancer.target_group_arn = Some(green_tg.clone());
    let spec = NewTaskSet {
        cluster: d.cluster.clone(),
        service: d.service.clone(),
        task_definition_arn: green_td_arn.clone(),
        external_id: d.execution_name.clone(),
        load_balancers: vec![load_balancer],
        launch: blue.launch.clone(),
        scale_percent: 100.0,
        client_token: client_token(&d.execution_name),
    };
    let green = ecs.create_task_set(&spec).await?;
    info!(service = %d.service, green_task_set = %green.id, image = %image, task_definition = %green_td_arn, target_group = %green_tg, "created green task set");

    lose_to_an_older_rival(
        ecs,
        d,
        &green,
        registered_here.then_some(green_td_arn.as_str()),
    )
    .await?;
    let version = release_version(&image)?;
    announce(dynatrace, d, Milestone::Started, &version, &image, None).await;
    Ok(output(&blue, &blue_tg, &green, &green_tg, image))
}

/// Blue's task definition with the container's image, and where the deployment (or blue)
/// carries them, Dynatrace's release variables for green.
fn desired_revision(
    d: &Deployment,
    blue_td: &TaskDefinitionDoc,
    image: &str,
) -> Result<TaskDefinitionDoc> {
    let desired = taskdef::with_image(blue_td, &d.container, image)?;
    let version = release_version(image)?;
    let vars = match &d.dynatrace {
        Some(release) => release_scope(release, version).environment(),
        None if taskdef::environment_of(blue_td, &d.container, RELEASE_VERSION_VAR).is_some() => {
            vec![(RELEASE_VERSION_VAR, version)]
        }
        None => return Ok(desired),
    };
    taskdef::with_environment(&desired, &d.container, &vars)
}

/// The deployment's image pinned by digest.
async fn pin<R: ImageRegistry>(registry: &R, d: &Deployment) -> Result<String> {
    let image = ImageRef::parse(&d.image)?;
    if image.digest.is_some() {
        return Ok(d.image.clone());
    }
    let digest = resolve_tag(registry, &image, &d.image).await?;
    Ok(image.pinned(&digest))
}

/// Green's revision: the family's latest when it is exactly `desired`, else a new one.
/// Returns its ARN and whether this call registered it.
async fn green_revision<E: Ecs>(ecs: &E, desired: &TaskDefinitionDoc) -> Result<(String, bool)> {
    let family = desired.definition.family().unwrap_or_default();
    let latest = ecs.task_definition(family).await?;
    let latest_is_active = latest.definition.status().map(|s| s.as_str()) == Some("ACTIVE");
    if latest_is_active
        && taskdef::differences(desired, &latest).is_empty()
        && let Some(arn) = latest.definition.task_definition_arn()
    {
        info!(task_definition = %arn, "reusing the family's latest revision");
        return Ok((arn.to_string(), false));
    }
    let registered = ecs.register_task_definition(desired).await?;
    let arn = registered
        .definition
        .task_definition_arn()
        .unwrap_or_default()
        .to_string();
    let changed = taskdef::differences(desired, &registered);
    if !changed.is_empty() {
        warn!(task_definition = %arn, fields = ?changed, "ECS registered a different revision than asked for");
        ecs.deregister_task_definition(&arn).await?;
        return Err(Error::PreconditionFailed(format!(
            "ECS registered {arn} with these fields different from blue's task definition: {}; the revision was deregistered and nothing else was created (ECS or this tool may not support one of those fields)",
            changed.join(", ")
        )));
    }
    info!(task_definition = %arn, "registered green's revision");
    Ok((arn, true))
}

/// Who of two racing task sets came first: the older one, a tie to the smaller id.
fn first_come(a: &TaskSetState, b: &TaskSetState) -> Ordering {
    let at = |t: &TaskSetState| t.created_at.unwrap_or(f64::INFINITY);
    at(a).total_cmp(&at(b)).then_with(|| a.id.cmp(&b.id))
}

/// Re-reads the service; when another execution's non-primary, live task set is older than
/// `green` (a `DRAINING` one lost already), removes `green` (and `revision`, when this call registered it and nothing else
/// uses it) and fails.
async fn lose_to_an_older_rival<E: Ecs>(
    ecs: &E,
    d: &Deployment,
    green: &TaskSetState,
    revision: Option<&str>,
) -> Result<()> {
    let service = ecs.service(&d.cluster, &d.service).await?;
    let winner = service
        .task_sets
        .iter()
        .filter(|t| t.status != "PRIMARY" && !t.is_draining() && t.id != green.id)
        .filter(|t| t.external_id.as_deref() != Some(d.execution_name.as_str()))
        .filter(|t| first_come(t, green) == Ordering::Less)
        .min_by(|a, b| first_come(a, b));
    let Some(winner) = winner else {
        return Ok(());
    };
    warn!(service = %d.service, green_task_set = %green.id, winner = %winner.id, "another deployment created its task set first; removing ours");
    ecs.delete_task_set(&d.cluster, &d.service, &green.arn)
        .await?;
    if let Some(arn) = revision {
        let in_use = service
            .task_sets
            .iter()
            .any(|t| t.id != green.id && t.task_definition_arn == arn);
        if !in_use {
            ecs.deregister_task_definition(arn).await?;
        }
    }
    Err(Error::DeploymentInProgress(format!(
        "another deployment (execution {}) created task set {} on service {} first; this execution removed its own task set {} and stops",
        winner.external_id.as_deref().unwrap_or("unknown"),
        winner.id,
        d.service,
        green.id
    )))
}

/// A `CreateTaskSet` client token for the execution: at most 36 characters, the same for
/// every run of the same execution, different between executions.
pub fn client_token(execution_name: &str) -> String {
    // FNV-1a, 128 bits: stable across Rust versions, unlike `DefaultHasher`.
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = execution_name
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("bg-{hash:032x}")
}

fn task_set_ref(t: &TaskSetState, target_group: &str) -> TaskSetRef {
    TaskSetRef {
        id: t.id.clone(),
        arn: t.arn.clone(),
        target_group_arn: t.target_group_arn().unwrap_or(target_group).to_string(),
        task_definition_arn: t.task_definition_arn.clone(),
    }
}

fn output(
    blue: &TaskSetState,
    blue_tg: &str,
    green: &TaskSetState,
    green_tg: &str,
    image: String,
) -> CreateGreenOutput {
    CreateGreenOutput {
        blue: task_set_ref(blue, blue_tg),
        green: task_set_ref(green, green_tg),
        image,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_ecs::types as ecs;

    use super::*;
    use crate::ports::{ServiceState, StoppedTask};
    use crate::steps::fakes::*;

    const RIVAL: &str = "orders-3333333333333333";

    fn input(fake: &FakeAws) -> StepInput {
        StepInput {
            deployment: fake.deployment(),
        }
    }

    fn pinned_v2() -> String {
        format!("{REGISTRY}/{REPOSITORY}@{DIGEST_V2}")
    }

    async fn run(fake: &FakeAws) -> Result<CreateGreenOutput> {
        create_green(fake, fake, fake, None::<&FakeDynatrace>, input(fake)).await
    }

    /// ECS, but something else happens inside one of the calls.
    struct Meddling<'a> {
        fake: &'a FakeAws,
        /// Registered revisions come back with this change (a field lost on the round trip).
        registered: fn(&mut TaskDefinitionDoc),
        /// Runs just before our `CreateTaskSet` (a rival creating its own task set).
        before_create: fn(&FakeAws),
    }

    impl<'a> Meddling<'a> {
        fn new(fake: &'a FakeAws) -> Self {
            Meddling {
                fake,
                registered: |_| {},
                before_create: |_| {},
            }
        }
    }

    impl Ecs for Meddling<'_> {
        async fn service(&self, cluster: &str, service: &str) -> Result<ServiceState> {
            self.fake.service(cluster, service).await
        }
        async fn task_definition(&self, task_definition: &str) -> Result<TaskDefinitionDoc> {
            self.fake.task_definition(task_definition).await
        }
        async fn register_task_definition(
            &self,
            doc: &TaskDefinitionDoc,
        ) -> Result<TaskDefinitionDoc> {
            let mut registered = self.fake.register_task_definition(doc).await?;
            (self.registered)(&mut registered);
            Ok(registered)
        }
        async fn deregister_task_definition(&self, arn: &str) -> Result<()> {
            self.fake.deregister_task_definition(arn).await
        }
        async fn create_task_set(&self, spec: &NewTaskSet) -> Result<TaskSetState> {
            (self.before_create)(self.fake);
            self.fake.create_task_set(spec).await
        }
        async fn set_primary_task_set(
            &self,
            cluster: &str,
            service: &str,
            task_set: &str,
        ) -> Result<()> {
            self.fake
                .set_primary_task_set(cluster, service, task_set)
                .await
        }
        async fn delete_task_set(
            &self,
            cluster: &str,
            service: &str,
            task_set: &str,
        ) -> Result<()> {
            self.fake.delete_task_set(cluster, service, task_set).await
        }
        async fn stopped_tasks(
            &self,
            cluster: &str,
            task_set_id: &str,
        ) -> Result<Vec<StoppedTask>> {
            self.fake.stopped_tasks(cluster, task_set_id).await
        }
    }

    #[tokio::test]
    async fn creates_green_on_the_idle_target_group_with_the_image_pinned() {
        // Given blue on TG_A running v1, and a deployment of orders:v2
        let fake = FakeAws::blue();

        // When green is created
        let out = run(&fake).await.unwrap();

        // Then green runs a new revision with only the image changed, pinned to v2's digest
        assert_eq!(out.image, pinned_v2());
        assert_eq!(out.blue.target_group_arn, TG_A);
        assert_eq!(out.blue.task_definition_arn, BLUE_TASK_DEFINITION);
        assert_eq!(out.green.target_group_arn, TG_B);
        let green_td = fake
            .task_definition(&out.green.task_definition_arn)
            .await
            .unwrap();
        assert_eq!(green_td.definition.revision, 2);
        let blue_td = fake.task_definition(BLUE_TASK_DEFINITION).await.unwrap();
        assert_eq!(
            taskdef::differences(&blue_td, &green_td),
            ["containerDefinitions[app].image"]
        );
        assert_eq!(
            taskdef::image_of(&green_td, CONTAINER).unwrap(),
            pinned_v2()
        );
        assert_eq!(
            green_td.definition.container_definitions()[0].secrets(),
            blue_td.definition.container_definitions()[0].secrets()
        );
        assert_eq!(green_td.tags, blue_td.tags);
        // And its task set belongs to this execution, at 100 %
        let green = fake.task_set(&out.green.id).unwrap();
        assert_eq!(green.external_id.as_deref(), Some(EXECUTION));
        assert_eq!(green.scale_percent, 100.0);
        assert_eq!(
            fake.mutations(),
            ["RegisterTaskDefinition", "CreateTaskSet"]
        );
    }

    #[tokio::test]
    async fn green_gets_the_other_target_group_and_blues_network_configuration() {
        let fake = FakeAws::blue();
        fake.update_service(|s| {
            let blue = &mut s.task_sets[0];
            blue.launch.platform_version = Some("1.4.0".into());
            blue.launch.service_registries = vec![
                ecs::ServiceRegistry::builder()
                    .registry_arn("arn:aws:servicediscovery:us-east-1:123456789012:service/srv-x")
                    .build(),
            ];
        });
        let blue = fake.service_now().primary().unwrap().clone();

        let out = run(&fake).await.unwrap();

        let green = fake.task_set(&out.green.id).unwrap();
        assert_eq!(green.launch, blue.launch);
        assert!(green.launch.network_configuration.is_some());
        assert_eq!(green.target_group_arn(), Some(TG_B));
        let (b, g) = (&blue.load_balancers[0], &green.load_balancers[0]);
        assert_eq!(
            (g.container_name(), g.container_port()),
            (b.container_name(), b.container_port())
        );
    }

    #[tokio::test]
    async fn after_a_promotion_green_goes_to_the_first_target_group() {
        // Given a service whose primary is on TG_B (the previous deployment's green)
        let fake = FakeAws::blue();
        fake.update_service(|s| {
            s.task_sets[0].load_balancers[0].target_group_arn = Some(TG_B.into());
        });
        fake.set_weights(&default_route(), weights(0, 100));

        let out = run(&fake).await.unwrap();

        assert_eq!(out.green.target_group_arn, TG_A);
        assert_eq!(
            fake.task_set(&out.green.id).unwrap().target_group_arn(),
            Some(TG_A)
        );
    }

    #[tokio::test]
    async fn a_rerun_returns_the_same_green_and_registers_nothing_new() {
        // Given green created by a first run
        let fake = FakeAws::blue();
        let first = run(&fake).await.unwrap();
        let before = fake.snapshot();
        fake.clear_calls();

        // When the step runs again with the same input
        let again = run(&fake).await.unwrap();

        // Then it answers the same and changes nothing
        assert_eq!(again, first);
        assert!(fake.mutations().is_empty(), "{:?}", fake.mutations());
        assert_eq!(fake.snapshot(), before);
    }

    #[tokio::test]
    async fn the_latest_revision_is_reused_when_it_is_exactly_the_one_wanted() {
        // Given the family's latest revision is blue's with v2 already (an earlier attempt)
        let fake = FakeAws::blue();
        let blue_td = fake.task_definition(BLUE_TASK_DEFINITION).await.unwrap();
        let wanted = fake
            .register_revision(&taskdef::with_image(&blue_td, CONTAINER, &pinned_v2()).unwrap());

        let out = run(&fake).await.unwrap();

        assert_eq!(
            Some(out.green.task_definition_arn.as_str()),
            wanted.definition.task_definition_arn()
        );
        assert_eq!(fake.mutations(), ["CreateTaskSet"]);
    }

    #[tokio::test]
    async fn an_inactive_latest_revision_is_not_reused() {
        let fake = FakeAws::blue();
        let blue_td = fake.task_definition(BLUE_TASK_DEFINITION).await.unwrap();
        let wanted = fake
            .register_revision(&taskdef::with_image(&blue_td, CONTAINER, &pinned_v2()).unwrap());
        let wanted_arn = wanted.definition.task_definition_arn().unwrap().to_string();
        fake.deregister_task_definition(&wanted_arn).await.unwrap();
        fake.clear_calls();

        let out = run(&fake).await.unwrap();

        assert_ne!(out.green.task_definition_arn, wanted_arn);
        assert_eq!(
            fake.mutations(),
            ["RegisterTaskDefinition", "CreateTaskSet"]
        );
    }

    #[tokio::test]
    async fn an_image_given_by_digest_is_used_as_it_is() {
        let fake = FakeAws::blue();
        let mut input = input(&fake);
        input.deployment.image = pinned_v2();

        let out = create_green(&fake, &fake, &fake, None::<&FakeDynatrace>, input)
            .await
            .unwrap();

        assert_eq!(out.image, pinned_v2());
        assert!(!fake.calls().contains(&"DescribeImages".to_string()));
    }

    #[tokio::test]
    async fn a_tag_resolves_to_its_digest() {
        // Given a tag `release` that ECR resolves to a third digest
        let fake = FakeAws::blue();
        let digest = format!("sha256:{}", "3".repeat(64));
        fake.add_image(ACCOUNT, REPOSITORY, "release", &digest);
        let mut input = input(&fake);
        input.deployment.image = format!("{REGISTRY}/{REPOSITORY}:release");

        // When green is created
        let out = create_green(&fake, &fake, &fake, None::<&FakeDynatrace>, input)
            .await
            .unwrap();

        // Then green runs that digest, not the moving tag
        let pinned = format!("{REGISTRY}/{REPOSITORY}@{digest}");
        assert_eq!(out.image, pinned);
        let green_td = fake
            .task_definition(&out.green.task_definition_arn)
            .await
            .unwrap();
        assert_eq!(taskdef::image_of(&green_td, CONTAINER).unwrap(), pinned);
    }

    #[tokio::test]
    async fn a_missing_tag_is_invalid_input_with_nothing_created() {
        let fake = FakeAws::blue();
        let mut input = input(&fake);
        input.deployment.image = format!("{REGISTRY}/{REPOSITORY}:v3");

        let err = create_green(&fake, &fake, &fake, None::<&FakeDynatrace>, input)
            .await
            .unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("\"v3\" not found"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn another_deployment_holding_the_service_is_deployment_in_progress_with_nothing_created()
    {
        // Given another execution's green next to blue
        let fake = FakeAws::blue();
        let rival = fake.add_green(RIVAL);
        let before = fake.snapshot();

        // When this execution tries to create its green
        let err = run(&fake).await.unwrap_err();

        // Then it names the rival and creates nothing
        assert_eq!(err.error_type(), "DeploymentInProgress");
        assert!(
            err.to_string().contains(&rival.id) && err.to_string().contains(RIVAL),
            "{err}"
        );
        assert!(fake.mutations().is_empty());
        assert_eq!(fake.snapshot(), before);
    }

    #[tokio::test]
    async fn a_racing_loser_cleans_up_after_itself_and_the_winner_proceeds() {
        // Given a rival whose task set lands just before ours (both passed the check first)
        let fake = FakeAws::blue();
        let mut racing = Meddling::new(&fake);
        racing.before_create = |f| {
            f.add_green(RIVAL);
        };

        // When this execution creates its green
        let err = create_green(&racing, &fake, &fake, None::<&FakeDynatrace>, input(&fake))
            .await
            .unwrap_err();

        // Then it lost: it removed its task set and its revision, and names the winner
        assert_eq!(err.error_type(), "DeploymentInProgress");
        assert!(err.to_string().contains(RIVAL), "{err}");
        let service = fake.service_now();
        assert!(
            service
                .by_external_id(EXECUTION)
                .is_some_and(|t| t.is_draining())
        );
        let winner = service.by_external_id(RIVAL).unwrap().clone();
        assert_eq!(
            service
                .task_sets
                .iter()
                .filter(|t| !t.is_draining())
                .count(),
            2
        );
        assert_eq!(
            fake.task_definition_status("orders:2").as_deref(),
            Some("INACTIVE")
        );
        assert_eq!(
            fake.task_definition_status(&winner.task_definition_arn)
                .as_deref(),
            Some("ACTIVE")
        );
        assert_eq!(
            fake.task_definition_status(BLUE_TASK_DEFINITION).as_deref(),
            Some("ACTIVE")
        );

        // And the winner's own CreateGreen finds its green and proceeds
        let mut winner_input = input(&fake);
        winner_input.deployment.execution_name = RIVAL.into();
        let out = create_green(&fake, &fake, &fake, None::<&FakeDynatrace>, winner_input)
            .await
            .unwrap();
        assert_eq!(out.green.id, winner.id);
    }

    #[tokio::test]
    async fn an_older_task_set_still_draining_neither_blocks_green_nor_wins_the_race() {
        // Given an earlier deployment's task set on green's target group, removed and still
        // draining (older than anything this execution creates)
        let fake = FakeAws::blue();
        let earlier = fake.add_green(RIVAL);
        fake.update_task_set(&earlier.id, |t| t.status = "DRAINING".into());

        // When this execution creates its green
        let out = run(&fake).await.unwrap();

        // Then green exists, on the idle target group, and is not removed again
        assert_ne!(out.green.id, earlier.id);
        assert_eq!(out.green.target_group_arn, TG_B);
        assert!(!fake.removed(&out.green.id));
        assert_eq!(run(&fake).await.unwrap(), out);
    }

    fn release() -> crate::model::DynatraceRelease {
        crate::model::DynatraceRelease {
            release_product: None,
            release_stage: Some("production".into()),
            events: true,
            entity_selector: None,
        }
    }

    #[tokio::test]
    async fn with_a_dynatrace_block_green_gets_its_release_variables_and_a_started_event() {
        // Given a deployment that names a Dynatrace release stage
        let fake = FakeAws::blue();
        let dt = FakeDynatrace::default();
        let mut request = FakeAws::request();
        request.dynatrace = Some(release());
        let d = request.into_deployment(EXECUTION, None).unwrap();

        // When green is created
        let out = create_green(&fake, &fake, &fake, Some(&dt), StepInput { deployment: d })
            .await
            .unwrap();

        // Then green's app container carries the release variables, and nothing else changed
        let green = fake
            .task_definition(&out.green.task_definition_arn)
            .await
            .unwrap();
        let blue = fake.task_definition(BLUE_TASK_DEFINITION).await.unwrap();
        let env = |name| taskdef::environment_of(&green, CONTAINER, name).map(str::to_string);
        assert_eq!(env("DT_RELEASE_VERSION").as_deref(), Some(DIGEST_V2));
        assert_eq!(env("DT_RELEASE_PRODUCT").as_deref(), Some(SERVICE));
        assert_eq!(env("DT_RELEASE_STAGE").as_deref(), Some("production"));
        assert_eq!(
            env("DT_TENANT").as_deref(),
            Some("abc12345"),
            "blue's variables stay"
        );
        let changed = taskdef::differences(&blue, &green);
        assert_eq!(
            changed,
            [
                "containerDefinitions[app].image",
                "containerDefinitions[app].environment"
            ]
        );

        // And Dynatrace heard that the deployment started, once
        let events = dt.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].properties["deployment.milestone"], "started");
        create_green(&fake, &fake, &fake, Some(&dt), input(&fake))
            .await
            .unwrap();
        assert_eq!(dt.events().len(), 1, "a re-run posts nothing more");
    }

    #[tokio::test]
    async fn a_release_version_blue_carries_is_moved_to_greens_digest_even_without_dynatrace() {
        // Given blue started with DT_RELEASE_VERSION of v1 by an earlier deployment
        let fake = FakeAws::blue();
        let blue = fake.task_definition(BLUE_TASK_DEFINITION).await.unwrap();
        let tagged = taskdef::with_environment(
            &blue,
            CONTAINER,
            &[("DT_RELEASE_VERSION", DIGEST_V1.to_string())],
        )
        .unwrap();
        let revision = fake.register_revision(&tagged);
        let primary = fake.service_now().primary().unwrap().id.clone();
        fake.update_task_set(&primary, |t| {
            t.task_definition_arn = revision.definition.task_definition_arn.clone().unwrap();
        });

        // When green is created without a dynatrace block
        let out = run(&fake).await.unwrap();

        // Then green names its own release, never blue's
        let green = fake
            .task_definition(&out.green.task_definition_arn)
            .await
            .unwrap();
        assert_eq!(
            taskdef::environment_of(&green, CONTAINER, "DT_RELEASE_VERSION"),
            Some(DIGEST_V2)
        );
        assert_eq!(
            taskdef::environment_of(&green, CONTAINER, "DT_RELEASE_STAGE"),
            None
        );
    }

    #[tokio::test]
    async fn a_removed_green_is_not_brought_back_by_a_rerun() {
        let fake = FakeAws::blue();
        let first = run(&fake).await.unwrap();
        fake.update_task_set(&first.green.id, |t| t.status = "DRAINING".into());
        fake.clear_calls();

        let err = run(&fake).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("DRAINING"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_younger_rival_found_on_a_rerun_loses_and_removes_its_own_task_set() {
        // Given our green, and a rival's green created after it
        let fake = FakeAws::blue();
        let ours = run(&fake).await.unwrap();
        let rival = fake.add_green(RIVAL);

        // When both steps run (again)
        let again = run(&fake).await.unwrap();
        let mut rival_input = input(&fake);
        rival_input.deployment.execution_name = RIVAL.into();
        let err = create_green(&fake, &fake, &fake, None::<&FakeDynatrace>, rival_input)
            .await
            .unwrap_err();

        // Then ours stays and the rival removed its own task set
        assert_eq!(again.green.id, ours.green.id);
        assert_eq!(err.error_type(), "DeploymentInProgress");
        assert!(err.to_string().contains(EXECUTION), "{err}");
        assert!(fake.task_set(&ours.green.id).is_some());
        assert!(fake.removed(&rival.id));
    }

    #[tokio::test]
    async fn a_tie_goes_to_the_smaller_task_set_id() {
        let fake = FakeAws::blue();
        let a = fake.add_green(RIVAL);
        let mut b = a.clone();
        b.id = "ecs-svc/9".into();
        assert_eq!(first_come(&a, &b), Ordering::Less);
        b.created_at = a.created_at.map(|t| t - 1.0);
        assert_eq!(first_come(&a, &b), Ordering::Greater);
    }

    #[tokio::test]
    async fn a_registered_revision_that_differs_is_deregistered_and_reported() {
        // Given an ECS that drops the secrets of the app container on registration
        let fake = FakeAws::blue();
        let mut lossy = Meddling::new(&fake);
        lossy.registered = |doc| {
            for c in doc.definition.container_definitions.iter_mut().flatten() {
                if c.name() == Some(CONTAINER) {
                    c.secrets = None;
                }
            }
        };

        // When green is created
        let err = create_green(&lossy, &fake, &fake, None::<&FakeDynatrace>, input(&fake))
            .await
            .unwrap_err();

        // Then the new revision is deregistered, no task set exists, and the field is named
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(
            err.to_string()
                .contains("containerDefinitions[app].secrets"),
            "{err}"
        );
        assert_eq!(
            fake.mutations(),
            ["RegisterTaskDefinition", "DeregisterTaskDefinition"]
        );
        assert_eq!(
            fake.task_definition_status("orders:2").as_deref(),
            Some("INACTIVE")
        );
        assert_eq!(fake.service_now().task_sets.len(), 1);
    }

    #[tokio::test]
    async fn green_is_not_created_while_its_target_group_takes_traffic() {
        let fake = FakeAws::blue();
        fake.set_weights(&default_route(), weights(90, 10));

        let err = run(&fake).await.unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains("orders-b=10"), "{err}");
        assert!(fake.mutations().is_empty());
    }

    #[tokio::test]
    async fn the_client_token_is_short_stable_and_per_execution() {
        let a = client_token(EXECUTION);
        assert!(a.len() <= 36, "{a}");
        assert_eq!(a, client_token(EXECUTION));
        assert_ne!(a, client_token(RIVAL));
        assert_eq!(client_token(&"x".repeat(80)).len(), a.len());
    }
}
