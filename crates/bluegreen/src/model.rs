//! The execution input (what a trigger or a user passes to the state machine) and the
//! normalized [`Deployment`] every step receives.
//!
//! One serde convention for every ASL-facing payload: `camelCase`, unknown fields rejected.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default seconds between two health polls.
pub const DEFAULT_POLL_INTERVAL_SECONDS: u32 = 10;
/// Default number of polls before a green that never turns healthy is rolled back.
pub const DEFAULT_MAX_HEALTH_POLLS: u32 = 60;
/// Default bake time after each traffic step, before verification.
pub const DEFAULT_BAKE_SECONDS: u32 = 60;
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
    /// How traffic moves to green.
    #[serde(default)]
    pub strategy: Strategy,
    /// Waits and polling bounds.
    #[serde(default)]
    pub timing: Timing,
}

/// How traffic moves from blue to green.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Strategy {
    /// Green gets 100 % in one step, then bakes and is verified.
    #[default]
    AllAtOnce,
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
}

/// Waits and polling bounds. Every wait of the state machine comes from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timing {
    /// Seconds between two health polls of green (1–300).
    pub poll_interval_seconds: u32,
    /// Polls before a green that never turns healthy is rolled back (1–2000).
    pub max_health_polls: u32,
    /// Bake time after each traffic step, before verification (0–86400).
    pub bake_seconds: u32,
    /// Seconds to wait between promoting green and removing blue; defaults to blue's
    /// target group deregistration delay (0–3600).
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

/// One planned traffic step, as the state machine loops over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedStep {
    pub green_weight: u8,
    pub bake_seconds: u32,
}

/// The validated, normalized deployment every step after `Validate` receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// The Step Functions execution name; it is the green task set's `externalId`.
    pub execution_name: String,
    pub cluster: String,
    pub service: String,
    pub container: String,
    /// The image as requested (validation checks it; `CreateGreen` pins it by digest).
    pub image: String,
    pub listener_arn: String,
    pub listener_rule_arn: Option<String>,
    pub target_group_arns: [String; 2],
    pub timing: Timing,
    /// The traffic steps, ascending, the last one 100.
    pub plan: Vec<PlannedStep>,
}

impl Deployment {
    /// The listener route traffic moves on.
    pub fn route(&self) -> crate::ports::TrafficRoute {
        crate::ports::TrafficRoute {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.listener_rule_arn.clone(),
        }
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
        in_range("timing.bakeSeconds", t.bake_seconds, 0, 86_400)?;
        if let Some(d) = t.drain_delay_seconds {
            in_range("timing.drainDelaySeconds", d, 0, 3600)?;
        }
        self.plan().map(|_| ())
    }

    /// The traffic steps this request's strategy makes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a step list is empty, too long, not strictly ascending,
    /// out of 1–100, or does not end at 100.
    pub fn plan(&self) -> Result<Vec<PlannedStep>> {
        let bake = self.timing.bake_seconds;
        match &self.strategy {
            Strategy::AllAtOnce => Ok(vec![PlannedStep {
                green_weight: 100,
                bake_seconds: bake,
            }]),
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
                    let bake_seconds = step.bake_seconds.unwrap_or(bake);
                    in_range(
                        &format!("strategy.steps[{i}].bakeSeconds"),
                        bake_seconds,
                        0,
                        86_400,
                    )?;
                    previous = step.green_weight;
                    plan.push(PlannedStep {
                        green_weight: step.green_weight,
                        bake_seconds,
                    });
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

    /// The normalized deployment for execution `execution_name`.
    ///
    /// # Errors
    /// As [`DeployRequest::check`]; also when `execution_name` is empty.
    pub fn into_deployment(self, execution_name: &str) -> Result<Deployment> {
        self.check()?;
        non_empty("executionName", execution_name)?;
        let plan = self.plan()?;
        let [a, b]: [String; 2] = self.target_group_arns.try_into().map_err(|_| {
            Error::InvalidInput("targetGroupArns must name exactly two target groups".into())
        })?;
        Ok(Deployment {
            execution_name: execution_name.to_string(),
            cluster: self.cluster,
            service: self.service,
            container: self.container,
            image: self.image,
            listener_arn: self.listener_arn,
            listener_rule_arn: self.listener_rule_arn,
            target_group_arns: [a, b],
            timing: self.timing,
            plan,
        })
    }
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
            .into_deployment("orders-abc")
            .unwrap();
        assert_eq!(d.timing, Timing::default());
        assert_eq!(
            d.plan,
            vec![PlannedStep {
                green_weight: 100,
                bake_seconds: DEFAULT_BAKE_SECONDS
            }]
        );
        assert_eq!(d.execution_name, "orders-abc");
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
