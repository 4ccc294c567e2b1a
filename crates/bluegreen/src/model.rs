//! The execution input (what a trigger or a user passes to the state machine) and the
//! normalized [`Deployment`] every step receives.
//!
//! One serde convention for every ASL-facing payload: `camelCase`, unknown fields rejected.
//! Every field and its default is documented in `docs/execution-input.md`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::verification::Verification;

/// Default seconds between two polls of green.
pub const DEFAULT_POLL_INTERVAL_SECONDS: u32 = 10;
/// Default number of polls a phase may take beyond its bake before green is rolled back.
pub const DEFAULT_MAX_HEALTH_POLLS: u32 = 60;
/// Default bake time of each traffic step, during which green is observed.
pub const DEFAULT_BAKE_SECONDS: u32 = 60;
/// Default time an approval may stay pending.
pub const DEFAULT_APPROVAL_TIMEOUT_SECONDS: u32 = 3600;
/// Longest approval timeout: a week.
pub const MAX_APPROVAL_TIMEOUT_SECONDS: u32 = 7 * 86_400;
/// Longest bake, interval or retention window: a day.
pub const MAX_WAIT_SECONDS: u32 = 86_400;
/// Most traffic steps a plan may have.
pub const MAX_TRAFFIC_STEPS: usize = 20;

/// The execution input of the deploy state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    /// ECS cluster name or ARN.
    pub cluster: String,
    /// ECS service name or ARN; it must use the `EXTERNAL` deployment controller.
    pub service: String,
    /// The container whose image changes. Every other container is kept as it is.
    pub container: String,
    /// The new image: `registry/repository:tag` (resolved to its digest through ECR) or
    /// `registry/repository@sha256:…`.
    pub image: String,
    /// The production listener whose weighted forward moves traffic.
    pub listener_arn: String,
    /// A rule of that listener to shift instead of its default action.
    #[serde(default)]
    pub listener_rule_arn: Option<String>,
    /// The two target groups blue and green alternate between.
    pub target_group_arns: Vec<String>,
    /// How production traffic moves to green.
    #[serde(default)]
    pub strategy: Strategy,
    /// A test listener (or rule) that sends only test traffic to green before any production
    /// weight moves.
    #[serde(default)]
    pub test_traffic: Option<TestTraffic>,
    /// What green must satisfy at every step.
    #[serde(default)]
    pub verification: Verification,
    /// Dynatrace release identity of green and deployment events.
    #[serde(default)]
    pub dynatrace: Option<DynatraceRelease>,
    /// How approval pauses behave.
    #[serde(default)]
    pub approval: Approval,
    /// Seconds blue keeps running after green was promoted, during which a rollback is
    /// instant (0–86400, default 0).
    #[serde(default)]
    pub blue_retention_seconds: u32,
    /// Waits and polling bounds.
    #[serde(default)]
    pub timing: Timing,
}

/// How production traffic moves from blue to green.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Strategy {
    /// Green gets 100 % in one step, then bakes and is verified.
    #[default]
    AllAtOnce,
    /// Green gets `percent` % for `bakeSeconds`, then 100 %.
    #[serde(rename_all = "camelCase")]
    Canary {
        /// 1–99.
        percent: u8,
        /// Bake of the canary step; defaults to `timing.bakeSeconds`.
        #[serde(default)]
        bake_seconds: Option<u32>,
    },
    /// Green gets `stepPercent` % more every `intervalSeconds` until 100 %.
    #[serde(rename_all = "camelCase")]
    Linear {
        /// 5–99: at most [`MAX_TRAFFIC_STEPS`] steps.
        step_percent: u8,
        /// Bake of each step; defaults to `timing.bakeSeconds`.
        #[serde(default)]
        interval_seconds: Option<u32>,
    },
    /// An explicit list of green weights, each baked and verified before the next.
    #[serde(rename_all = "camelCase")]
    Steps { steps: Vec<TrafficStep> },
}

/// One step of an explicit step list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficStep {
    /// Percentage of production traffic on green after this step (1–100).
    pub green_weight: u8,
    /// Bake time for this step; defaults to `timing.bakeSeconds`.
    #[serde(default)]
    pub bake_seconds: Option<u32>,
    /// Pause for an approval once the step's verification passed.
    #[serde(default)]
    pub approval: bool,
    /// Verify the step with every source; `false` checks only ECS and target health.
    #[serde(default = "yes")]
    pub verify: bool,
}

impl TrafficStep {
    /// A verified step to `green_weight` % with the default bake, no approval.
    pub fn to(green_weight: u8) -> Self {
        TrafficStep {
            green_weight,
            bake_seconds: None,
            approval: false,
            verify: true,
        }
    }

    /// This step with its own bake time.
    #[must_use]
    pub fn baking(mut self, seconds: u32) -> Self {
        self.bake_seconds = Some(seconds);
        self
    }

    /// This step, pausing for an approval once verified.
    #[must_use]
    pub fn with_approval(mut self) -> Self {
        self.approval = true;
        self
    }
}

fn yes() -> bool {
    true
}

/// A route for test traffic only, shifted to green before production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestTraffic {
    /// The test listener (e.g. a second port of the load balancer).
    pub listener_arn: String,
    /// A rule of that listener (e.g. on a header) to shift instead of its default action.
    #[serde(default)]
    pub listener_rule_arn: Option<String>,
    /// How long green is observed on test traffic; defaults to `timing.bakeSeconds`.
    #[serde(default)]
    pub bake_seconds: Option<u32>,
    /// Pause for an approval once green passed on test traffic.
    #[serde(default)]
    pub approval: bool,
}

/// How approval pauses behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Approval {
    /// Seconds an approval may stay pending (1–604800).
    pub timeout_seconds: u32,
    /// What a timed-out approval does.
    pub on_timeout: OnTimeout,
}

impl Default for Approval {
    fn default() -> Self {
        Approval {
            timeout_seconds: DEFAULT_APPROVAL_TIMEOUT_SECONDS,
            on_timeout: OnTimeout::Rollback,
        }
    }
}

/// What a timed-out approval does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    /// Roll back (the default: nobody said yes).
    #[default]
    Rollback,
    /// Go on as if approved.
    Approve,
}

/// Green's Dynatrace release identity and the deployment events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynatraceRelease {
    /// `DT_RELEASE_PRODUCT` of green; defaults to the service's name.
    #[serde(default)]
    pub release_product: Option<String>,
    /// `DT_RELEASE_STAGE` of green.
    #[serde(default)]
    pub release_stage: Option<String>,
    /// Post `CUSTOM_DEPLOYMENT` events for start, promotion and rollback.
    #[serde(default = "yes")]
    pub events: bool,
    /// The entities the events are attached to; defaults to the process group instances of
    /// the release product (`type(PROCESS_GROUP_INSTANCE),releasesProduct("…")`).
    #[serde(default)]
    pub entity_selector: Option<String>,
}

/// Waits and polling bounds. Every wait of the state machine comes from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timing {
    /// Seconds between two polls of green (1–300).
    pub poll_interval_seconds: u32,
    /// Polls a phase may take beyond its bake before green is rolled back (1–2000).
    pub max_health_polls: u32,
    /// Bake time of each traffic step (0–86400).
    pub bake_seconds: u32,
    /// Seconds between confirming that a side takes no traffic and removing its task set:
    /// blue after promotion, green on rollback. Defaults to that side's target group
    /// deregistration delay (0–3600).
    pub drain_delay_seconds: Option<u32>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval_seconds: DEFAULT_POLL_INTERVAL_SECONDS,
            max_health_polls: DEFAULT_MAX_HEALTH_POLLS,
            bake_seconds: DEFAULT_BAKE_SECONDS,
            drain_delay_seconds: None,
        }
    }
}

impl Timing {
    /// Polls that cover `seconds` of observation: at least one.
    pub fn polls_for(&self, seconds: u32) -> u32 {
        seconds.div_ceil(self.poll_interval_seconds.max(1)).max(1)
    }
}

/// One planned traffic step, as the state machine loops over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedStep {
    pub green_weight: u8,
    pub bake_seconds: u32,
    /// Polls of green the bake takes: `ceil(bakeSeconds / pollIntervalSeconds)`, at least 1.
    pub polls: u32,
    /// Pause for an approval once verified.
    pub approval: bool,
    /// Verify with every source; `false`: ECS and target health only.
    pub verify: bool,
}

/// The test route, normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRoute {
    pub listener_arn: String,
    pub listener_rule_arn: Option<String>,
    pub bake_seconds: u32,
    /// Polls of green on test traffic.
    pub polls: u32,
    pub approval: bool,
}

impl TestRoute {
    /// The route test traffic moves on.
    pub fn route(&self) -> crate::ports::TrafficRoute {
        crate::ports::TrafficRoute {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.listener_rule_arn.clone(),
        }
    }
}

/// The validated, normalized deployment every step after `Validate` receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// The Step Functions execution name; it is the green task set's `externalId`.
    pub execution_name: String,
    /// The execution's ARN, for links in deployment events.
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub cluster: String,
    pub service: String,
    pub container: String,
    /// The image as requested (validation checks it; `CreateGreen` pins it by digest).
    pub image: String,
    pub listener_arn: String,
    pub listener_rule_arn: Option<String>,
    pub target_group_arns: [String; 2],
    pub test_route: Option<TestRoute>,
    pub verification: Verification,
    /// With the release product filled in.
    pub dynatrace: Option<DynatraceRelease>,
    pub approval: Approval,
    pub blue_retention_seconds: u32,
    /// Polls of green while blue is retained (0: no retention).
    pub retention_polls: u32,
    pub timing: Timing,
    /// The traffic steps, ascending, the last one 100.
    pub plan: Vec<PlannedStep>,
}

impl Deployment {
    /// The listener route production traffic moves on.
    pub fn route(&self) -> crate::ports::TrafficRoute {
        crate::ports::TrafficRoute {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.listener_rule_arn.clone(),
        }
    }

    /// Every route the deployment moves: production, then test if there is one.
    pub fn routes(&self) -> Vec<crate::ports::TrafficRoute> {
        let mut routes = vec![self.route()];
        routes.extend(self.test_route.as_ref().map(TestRoute::route));
        routes
    }

    /// The target group of the pair that is not `tg`.
    pub fn other_target_group(&self, tg: &str) -> Option<&str> {
        match &self.target_group_arns {
            [a, b] if a == tg => Some(b),
            [a, b] if b == tg => Some(a),
            _ => None,
        }
    }
}

impl DeployRequest {
    /// A request with every optional field at its default.
    pub fn new(
        cluster: impl Into<String>,
        service: impl Into<String>,
        container: impl Into<String>,
        image: impl Into<String>,
        listener_arn: impl Into<String>,
        target_group_arns: [String; 2],
    ) -> Self {
        DeployRequest {
            cluster: cluster.into(),
            service: service.into(),
            container: container.into(),
            image: image.into(),
            listener_arn: listener_arn.into(),
            listener_rule_arn: None,
            target_group_arns: target_group_arns.to_vec(),
            strategy: Strategy::default(),
            test_traffic: None,
            verification: Verification::default(),
            dynatrace: None,
            approval: Approval::default(),
            blue_retention_seconds: 0,
            timing: Timing::default(),
        }
    }

    /// Parses and checks the shape of an execution input. It makes no AWS call; the live
    /// checks are the `Validate` step's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn parse(value: serde_json::Value) -> Result<Self> {
        let request: DeployRequest = crate::lambda::parse_payload(value)?;
        request.check()?;
        Ok(request)
    }

    /// Checks every field's value and the plan the strategy makes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn check(&self) -> Result<()> {
        non_empty("cluster", &self.cluster)?;
        non_empty("service", &self.service)?;
        non_empty("container", &self.container)?;
        ImageRef::parse(&self.image)?;
        arn_of(
            "listenerArn",
            &self.listener_arn,
            "elasticloadbalancing",
            "listener/",
        )?;
        if let Some(rule) = &self.listener_rule_arn {
            arn_of(
                "listenerRuleArn",
                rule,
                "elasticloadbalancing",
                "listener-rule/",
            )?;
            rule_of_listener("listenerRuleArn", rule, &self.listener_arn)?;
        }
        if self.target_group_arns.len() != 2 {
            return Err(Error::InvalidInput(format!(
                "targetGroupArns must name exactly two target groups, got {}",
                self.target_group_arns.len()
            )));
        }
        for tg in &self.target_group_arns {
            arn_of(
                "targetGroupArns",
                tg,
                "elasticloadbalancing",
                "targetgroup/",
            )?;
        }
        if self.target_group_arns[0] == self.target_group_arns[1] {
            return Err(Error::InvalidInput(
                "targetGroupArns must name two different target groups".into(),
            ));
        }
        let t = &self.timing;
        in_range(
            "timing.pollIntervalSeconds",
            t.poll_interval_seconds,
            1,
            300,
        )?;
        in_range("timing.maxHealthPolls", t.max_health_polls, 1, 2000)?;
        in_range("timing.bakeSeconds", t.bake_seconds, 0, MAX_WAIT_SECONDS)?;
        if let Some(d) = t.drain_delay_seconds {
            in_range("timing.drainDelaySeconds", d, 0, 3600)?;
        }
        if let Some(test) = &self.test_traffic {
            arn_of(
                "testTraffic.listenerArn",
                &test.listener_arn,
                "elasticloadbalancing",
                "listener/",
            )?;
            if let Some(rule) = &test.listener_rule_arn {
                arn_of(
                    "testTraffic.listenerRuleArn",
                    rule,
                    "elasticloadbalancing",
                    "listener-rule/",
                )?;
                rule_of_listener("testTraffic.listenerRuleArn", rule, &test.listener_arn)?;
            }
            if test.listener_arn == self.listener_arn
                && test.listener_rule_arn == self.listener_rule_arn
            {
                return Err(Error::InvalidInput(
                    "testTraffic must name another route than the production one (another listener, or a rule)".into(),
                ));
            }
            if let Some(b) = test.bake_seconds {
                in_range("testTraffic.bakeSeconds", b, 0, MAX_WAIT_SECONDS)?;
            }
        }
        self.verification.check()?;
        if let Some(dt) = &self.dynatrace {
            for (field, value) in [
                ("dynatrace.releaseProduct", &dt.release_product),
                ("dynatrace.releaseStage", &dt.release_stage),
                ("dynatrace.entitySelector", &dt.entity_selector),
            ] {
                if let Some(v) = value
                    && (v.trim().is_empty() || v.len() > 1000 || v.chars().any(char::is_control))
                {
                    return Err(Error::InvalidInput(format!(
                        "{field} must be 1 to 1000 printable characters, got {v:?}"
                    )));
                }
            }
        }
        if self.verification.dynatrace.is_some() && self.dynatrace.is_none() {
            // Verification is scoped to green's release, which needs its release variables.
            return Err(Error::InvalidInput(
                "verification.dynatrace needs the dynatrace block (at least {}), which gives green its release variables".into(),
            ));
        }
        in_range(
            "approval.timeoutSeconds",
            self.approval.timeout_seconds,
            1,
            MAX_APPROVAL_TIMEOUT_SECONDS,
        )?;
        in_range(
            "blueRetentionSeconds",
            self.blue_retention_seconds,
            0,
            MAX_WAIT_SECONDS,
        )?;
        self.plan().map(|_| ())
    }

    /// The traffic steps this request's strategy makes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a strategy parameter is out of range, or a step list is
    /// empty, too long, not strictly ascending, out of 1–100, or does not end at 100.
    pub fn plan(&self) -> Result<Vec<PlannedStep>> {
        let t = &self.timing;
        let planned =
            |green_weight: u8, bake_seconds: u32, approval: bool, verify: bool| PlannedStep {
                green_weight,
                bake_seconds,
                polls: t.polls_for(bake_seconds),
                approval,
                verify,
            };
        match &self.strategy {
            Strategy::AllAtOnce => Ok(vec![planned(100, t.bake_seconds, false, true)]),
            Strategy::Canary {
                percent,
                bake_seconds,
            } => {
                in_range("strategy.percent", u32::from(*percent), 1, 99)?;
                let bake = bake_seconds.unwrap_or(t.bake_seconds);
                in_range("strategy.bakeSeconds", bake, 0, MAX_WAIT_SECONDS)?;
                Ok(vec![
                    planned(*percent, bake, false, true),
                    planned(100, t.bake_seconds, false, true),
                ])
            }
            Strategy::Linear {
                step_percent,
                interval_seconds,
            } => {
                let min = u32::try_from(100usize.div_ceil(MAX_TRAFFIC_STEPS)).unwrap_or(5);
                in_range("strategy.stepPercent", u32::from(*step_percent), min, 99)?;
                let bake = interval_seconds.unwrap_or(t.bake_seconds);
                in_range("strategy.intervalSeconds", bake, 0, MAX_WAIT_SECONDS)?;
                let mut plan = Vec::new();
                let mut weight = 0u8;
                while weight < 100 {
                    weight = weight.saturating_add(*step_percent).min(100);
                    plan.push(planned(weight, bake, false, true));
                }
                Ok(plan)
            }
            Strategy::Steps { steps } => {
                if steps.is_empty() || steps.len() > MAX_TRAFFIC_STEPS {
                    return Err(Error::InvalidInput(format!(
                        "strategy.steps must have 1 to {MAX_TRAFFIC_STEPS} steps, got {}",
                        steps.len()
                    )));
                }
                let mut previous = 0u8;
                let mut plan = Vec::with_capacity(steps.len());
                for (i, step) in steps.iter().enumerate() {
                    if step.green_weight == 0 || step.green_weight > 100 {
                        return Err(Error::InvalidInput(format!(
                            "strategy.steps[{i}].greenWeight must be 1 to 100, got {}",
                            step.green_weight
                        )));
                    }
                    if step.green_weight <= previous {
                        return Err(Error::InvalidInput(format!(
                            "strategy.steps[{i}].greenWeight must be greater than the step before ({previous}), got {}",
                            step.green_weight
                        )));
                    }
                    let bake_seconds = step.bake_seconds.unwrap_or(t.bake_seconds);
                    in_range(
                        &format!("strategy.steps[{i}].bakeSeconds"),
                        bake_seconds,
                        0,
                        MAX_WAIT_SECONDS,
                    )?;
                    previous = step.green_weight;
                    plan.push(planned(
                        step.green_weight,
                        bake_seconds,
                        step.approval,
                        step.verify,
                    ));
                }
                if previous != 100 {
                    return Err(Error::InvalidInput(format!(
                        "the last of strategy.steps must send 100 % to green, got {previous}"
                    )));
                }
                Ok(plan)
            }
        }
    }

    /// The normalized deployment for execution `execution_name` (ARN `execution_arn`).
    ///
    /// # Errors
    /// As [`DeployRequest::check`]; also when `execution_name` is empty.
    pub fn into_deployment(
        self,
        execution_name: &str,
        execution_arn: Option<&str>,
    ) -> Result<Deployment> {
        self.check()?;
        non_empty("executionName", execution_name)?;
        let plan = self.plan()?;
        let [a, b]: [String; 2] = self.target_group_arns.try_into().map_err(|_| {
            Error::InvalidInput("targetGroupArns must name exactly two target groups".into())
        })?;
        let timing = self.timing;
        let test_route = self.test_traffic.map(|t| {
            let bake_seconds = t.bake_seconds.unwrap_or(timing.bake_seconds);
            TestRoute {
                listener_arn: t.listener_arn,
                listener_rule_arn: t.listener_rule_arn,
                bake_seconds,
                polls: timing.polls_for(bake_seconds),
                approval: t.approval,
            }
        });
        let service_name = self
            .service
            .rsplit('/')
            .next()
            .unwrap_or(&self.service)
            .to_string();
        let dynatrace = self.dynatrace.map(|mut dt| {
            dt.release_product.get_or_insert(service_name);
            dt
        });
        let retention_polls = if self.blue_retention_seconds == 0 {
            0
        } else {
            timing.polls_for(self.blue_retention_seconds)
        };
        Ok(Deployment {
            execution_name: execution_name.to_string(),
            execution_arn: execution_arn.map(str::to_string),
            cluster: self.cluster,
            service: self.service,
            container: self.container,
            image: self.image,
            listener_arn: self.listener_arn,
            listener_rule_arn: self.listener_rule_arn,
            target_group_arns: [a, b],
            test_route,
            verification: self.verification,
            dynatrace,
            approval: self.approval,
            blue_retention_seconds: self.blue_retention_seconds,
            retention_polls,
            timing,
            plan,
        })
    }
}

/// A rule ARN (`…:listener-rule/app/lb/id/listener-id/rule-id`) names its listener.
fn rule_of_listener(field: &str, rule: &str, listener: &str) -> Result<()> {
    let listener_of_rule = rule
        .replacen(":listener-rule/", ":listener/", 1)
        .rsplit_once('/')
        .map(|(l, _)| l.to_string());
    if listener_of_rule.as_deref() != Some(listener) {
        return Err(Error::InvalidInput(format!(
            "{field} {rule} is not a rule of listener {listener}"
        )));
    }
    Ok(())
}

fn non_empty(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{field} must not be empty")));
    }
    Ok(())
}

fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<()> {
    if value < min || value > max {
        return Err(Error::InvalidInput(format!(
            "{field} must be {min} to {max}, got {value}"
        )));
    }
    Ok(())
}

fn arn_of(field: &str, value: &str, service: &str, resource_prefix: &str) -> Result<()> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == service
        && parts[5].starts_with(resource_prefix);
    if !ok {
        return Err(Error::InvalidInput(format!(
            "{field} must be an {service} ARN of a {} (arn:aws:{service}:REGION:ACCOUNT:{resource_prefix}…), got {value:?}",
            resource_prefix.trim_end_matches('/')
        )));
    }
    Ok(())
}

/// A container image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses an image reference.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when it is empty, has whitespace, an empty repository, or a
    /// digest that is not `sha256:` and 64 hex digits.
    pub fn parse(image: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "image {image:?} is not a valid image reference: {why}"
            ))
        };
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(bad("it is empty or contains whitespace"));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("the digest must start with sha256:"))?;
                if hex.len() != 64
                    || !hex
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                {
                    return Err(bad(
                        "the digest must be sha256: and 64 lower-case hex digits",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (image, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, tail))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), tail)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) => (repo, Some(tag.to_string())),
            None => (path, None),
        };
        if repository.is_empty() {
            return Err(bad("the repository is empty"));
        }
        if tag.as_deref() == Some("") {
            return Err(bad("the tag is empty"));
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `registry/repository` (or just `repository`), without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The ECR registry (account) id when the registry is an ECR host.
    pub fn ecr_registry_id(&self) -> Option<&str> {
        let host = self.registry.as_deref()?;
        let (account, rest) = host.split_once('.')?;
        (rest.starts_with("dkr.ecr.") && account.chars().all(|c| c.is_ascii_digit()))
            .then_some(account)
    }

    /// The reference pinned by `digest`: `registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const TG_A: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/73e2d6bc24d8a067";
    const TG_B: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-b/6d0ecf831eec9f09";

    fn minimal() -> serde_json::Value {
        json!({
            "cluster": "demo",
            "service": "orders",
            "container": "app",
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:v2",
            "listenerArn": LISTENER,
            "targetGroupArns": [TG_A, TG_B]
        })
    }

    #[test]
    fn a_minimal_request_gets_every_default() {
        let d = DeployRequest::parse(minimal())
            .unwrap()
            .into_deployment("orders-abc", None)
            .unwrap();
        assert_eq!(d.timing, Timing::default());
        assert_eq!(
            d.plan,
            vec![PlannedStep {
                green_weight: 100,
                bake_seconds: DEFAULT_BAKE_SECONDS,
                polls: DEFAULT_BAKE_SECONDS / DEFAULT_POLL_INTERVAL_SECONDS,
                approval: false,
                verify: true,
            }]
        );
        assert_eq!(d.test_route, None);
        assert_eq!(d.verification, Verification::default());
        assert_eq!(d.dynatrace, None);
        assert_eq!(d.approval.timeout_seconds, DEFAULT_APPROVAL_TIMEOUT_SECONDS);
        assert_eq!(d.approval.on_timeout, OnTimeout::Rollback);
        assert_eq!((d.blue_retention_seconds, d.retention_polls), (0, 0));
        assert_eq!(d.execution_name, "orders-abc");
    }

    fn weights_of(plan: &[PlannedStep]) -> Vec<u8> {
        plan.iter().map(|p| p.green_weight).collect()
    }

    #[test]
    fn a_canary_sends_its_percent_for_its_bake_then_everything() {
        let mut v = minimal();
        v["strategy"] = json!({"type": "canary", "percent": 10, "bakeSeconds": 300});
        v["timing"] = json!({"bakeSeconds": 60, "pollIntervalSeconds": 20});
        let plan = DeployRequest::parse(v).unwrap().plan().unwrap();
        assert_eq!(weights_of(&plan), [10, 100]);
        assert_eq!((plan[0].bake_seconds, plan[0].polls), (300, 15));
        assert_eq!((plan[1].bake_seconds, plan[1].polls), (60, 3));
    }

    #[test]
    fn linear_steps_up_by_its_percent_every_interval_and_ends_at_100() {
        let mut v = minimal();
        v["strategy"] = json!({"type": "linear", "stepPercent": 30, "intervalSeconds": 45});
        let plan = DeployRequest::parse(v.clone()).unwrap().plan().unwrap();
        assert_eq!(weights_of(&plan), [30, 60, 90, 100]);
        assert!(plan.iter().all(|p| p.bake_seconds == 45 && p.polls == 5));
        v["strategy"] = json!({"type": "linear", "stepPercent": 4});
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(
            err.to_string()
                .contains("strategy.stepPercent must be 5 to 99"),
            "{err}"
        );
    }

    #[test]
    fn strategy_parameters_out_of_range_are_rejected_by_name() {
        for (strategy, expected) in [
            (
                json!({"type": "canary", "percent": 0}),
                "strategy.percent must be 1 to 99",
            ),
            (
                json!({"type": "canary", "percent": 100}),
                "strategy.percent must be 1 to 99",
            ),
            (json!({"type": "canary"}), "percent"),
            (json!({"type": "bluegreen"}), "unknown variant"),
            (
                json!({"type": "steps", "steps": [{"greenWeight": 100, "approval": "yes"}]}),
                "strategy: invalid type: string \"yes\", expected a boolean",
            ),
        ] {
            let mut v = minimal();
            v["strategy"] = strategy.clone();
            let err = DeployRequest::parse(v).unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput");
            assert!(err.to_string().contains(expected), "{strategy}: {err}");
        }
    }

    #[test]
    fn step_approvals_and_verification_flags_reach_the_plan() {
        let mut v = minimal();
        v["strategy"] = json!({"type": "steps", "steps": [
            {"greenWeight": 20, "approval": true, "verify": false},
            {"greenWeight": 100}
        ]});
        let plan = DeployRequest::parse(v).unwrap().plan().unwrap();
        assert!(plan[0].approval && !plan[0].verify);
        assert!(!plan[1].approval && plan[1].verify);
    }

    #[test]
    fn test_traffic_needs_its_own_route_on_a_listener_of_the_load_balancer() {
        let mut v = minimal();
        v["testTraffic"] = json!({"listenerArn": LISTENER});
        let err = DeployRequest::parse(v.clone()).unwrap_err();
        assert!(err.to_string().contains("another route"), "{err}");

        let rule = format!(
            "{}/9683b2d02a6cabee",
            LISTENER.replace(":listener/", ":listener-rule/")
        );
        v["testTraffic"] = json!({"listenerArn": LISTENER, "listenerRuleArn": rule, "bakeSeconds": 30, "approval": true});
        let d = DeployRequest::parse(v.clone())
            .unwrap()
            .into_deployment("x", None)
            .unwrap();
        let test = d.test_route.clone().unwrap();
        assert_eq!(
            (test.bake_seconds, test.polls, test.approval),
            (30, 3, true)
        );
        assert_eq!(d.routes().len(), 2);

        v["testTraffic"] = json!({"listenerArn": LISTENER, "listenerRuleArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/other/1/2/3"});
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(
            err.to_string().contains("is not a rule of listener"),
            "{err}"
        );
    }

    #[test]
    fn dynatrace_verification_needs_the_dynatrace_block_which_defaults_its_product_to_the_service()
    {
        let mut v = minimal();
        v["verification"] = json!({"dynatrace": {"checks": [{"name": "e", "metricSelector": "m", "threshold": {"max": 1}}]}});
        let err = DeployRequest::parse(v.clone()).unwrap_err();
        assert!(
            err.to_string().contains("needs the dynatrace block"),
            "{err}"
        );
        v["dynatrace"] = json!({});
        let d = DeployRequest::parse(v)
            .unwrap()
            .into_deployment("x", None)
            .unwrap();
        let release = d.dynatrace.unwrap();
        assert_eq!(release.release_product.as_deref(), Some("orders"));
        assert!(release.events);
    }

    #[test]
    fn approvals_retention_and_their_bounds() {
        let mut v = minimal();
        v["approval"] = json!({"timeoutSeconds": 0});
        let err = DeployRequest::parse(v.clone()).unwrap_err();
        assert!(
            err.to_string()
                .contains("approval.timeoutSeconds must be 1 to 604800"),
            "{err}"
        );
        v["approval"] = json!({"onTimeout": "approve"});
        v["blueRetentionSeconds"] = json!(95);
        v["timing"] = json!({"pollIntervalSeconds": 10});
        let d = DeployRequest::parse(v.clone())
            .unwrap()
            .into_deployment("x", None)
            .unwrap();
        assert_eq!(d.approval.on_timeout, OnTimeout::Approve);
        assert_eq!(d.retention_polls, 10);
        v["blueRetentionSeconds"] = json!(86_401);
        assert!(
            DeployRequest::parse(v)
                .unwrap_err()
                .to_string()
                .contains("blueRetentionSeconds")
        );
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let mut v = minimal();
        v["imagee"] = json!("x");
        let err = DeployRequest::parse(v).unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("imagee"), "{err}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("container");
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(err.to_string().contains("container"), "{err}");
    }

    #[test]
    fn the_same_target_group_twice_is_rejected() {
        let mut v = minimal();
        v["targetGroupArns"] = json!([TG_A, TG_A]);
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(err.to_string().contains("two different"), "{err}");
    }

    #[test]
    fn a_step_list_must_ascend_and_end_at_100() {
        let mut v = minimal();
        v["strategy"] =
            json!({"type": "steps", "steps": [{"greenWeight": 50}, {"greenWeight": 20}]});
        let err = DeployRequest::parse(v.clone()).unwrap_err();
        assert!(err.to_string().contains("steps[1].greenWeight"), "{err}");
        v["strategy"] = json!({"type": "steps", "steps": [{"greenWeight": 50}]});
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(err.to_string().contains("100"), "{err}");
    }

    #[test]
    fn a_step_list_takes_the_default_bake_where_a_step_has_none() {
        let mut v = minimal();
        v["timing"] = json!({"bakeSeconds": 7});
        v["strategy"] = json!({"type": "steps", "steps": [{"greenWeight": 10, "bakeSeconds": 1}, {"greenWeight": 100}]});
        let plan = DeployRequest::parse(v).unwrap().plan().unwrap();
        assert_eq!(plan[0].bake_seconds, 1);
        assert_eq!(plan[1].bake_seconds, 7);
    }

    #[test]
    fn timing_out_of_range_is_rejected_by_name() {
        let mut v = minimal();
        v["timing"] = json!({"pollIntervalSeconds": 0});
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(
            err.to_string().contains("timing.pollIntervalSeconds"),
            "{err}"
        );
    }

    #[test]
    fn a_listener_arn_must_be_a_listener() {
        let mut v = minimal();
        v["listenerArn"] = json!(TG_A);
        let err = DeployRequest::parse(v).unwrap_err();
        assert!(err.to_string().contains("listenerArn"), "{err}");
    }

    #[test]
    fn image_references_parse_into_registry_repository_tag_and_digest() {
        let i =
            ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/orders:v2").unwrap();
        assert_eq!(
            i.registry.as_deref(),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(i.repository, "team/orders");
        assert_eq!(i.tag.as_deref(), Some("v2"));
        assert_eq!(i.ecr_registry_id(), Some("123456789012"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = i.pinned(&digest);
        let p = ImageRef::parse(&pinned).unwrap();
        assert_eq!(p.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(p.tag, None);
        assert_eq!(
            ImageRef::parse("localhost:5000/x:1")
                .unwrap()
                .registry
                .as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(ImageRef::parse("nginx").unwrap().ecr_registry_id(), None);
    }

    #[test]
    fn malformed_images_are_rejected() {
        for bad in ["", "a b", "repo@sha256:xyz", "repo:", "reg.io/:tag"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
