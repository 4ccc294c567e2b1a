//! The deploy steps, one module per Lambda function, and their ASL-facing payloads.
//!
//! Every step is idempotent: run twice with the same input it leaves the same state. Every
//! step reads live state (the listener, the service's task sets) instead of trusting what an
//! earlier step returned; blue is the task set that is not the execution's own, green the one
//! whose `externalId` is the execution name.

use serde::{Deserialize, Serialize};

use crate::model::Deployment;
use crate::ports::WeightedTargetGroup;

pub mod create_green;
pub mod drain_blue;
pub mod events;
pub mod shift_traffic;
pub mod validate;
pub mod verify_health;

#[cfg(test)]
pub(crate) mod fakes;

/// Input of `Validate`: the raw execution input and the execution's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateInput {
    pub request: serde_json::Value,
    pub execution_name: String,
    /// The execution's ARN (`$$.Execution.Id`), for links in deployment events.
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// Output of `Validate`: the normalized deployment the rest of the execution works from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateOutput {
    pub deployment: Deployment,
}

/// Input of every step after `Validate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepInput {
    pub deployment: Deployment,
}

/// A task set as reported to the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSetRef {
    pub id: String,
    pub arn: String,
    pub target_group_arn: String,
    pub task_definition_arn: String,
}

/// Output of `CreateGreen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGreenOutput {
    pub blue: TaskSetRef,
    pub green: TaskSetRef,
    /// The image green runs, pinned by digest.
    pub image: String,
}

/// Which routes `ShiftTraffic` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteChoice {
    /// The production listener (or rule).
    #[default]
    Production,
    /// The test listener (or rule).
    Test,
    /// Both: production, then test (a rollback).
    All,
}

/// Input of `ShiftTraffic`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShiftTrafficInput {
    pub deployment: Deployment,
    /// Percentage of the routes' traffic green gets (0 sends everything back to blue).
    pub green_weight: u8,
    #[serde(default)]
    pub route: RouteChoice,
}

/// Output of `ShiftTraffic`: the weights as read back from the listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShiftTrafficOutput {
    pub blue_target_group_arn: String,
    pub green_target_group_arn: String,
    pub blue_weight: i32,
    pub green_weight: i32,
    pub weights: Vec<WeightedTargetGroup>,
}

/// What `DrainBlue` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DrainAction {
    /// Make green the primary task set; answer how long to wait before removing blue.
    Promote,
    /// Remove blue, once green is primary and blue takes no traffic.
    RemoveBlue,
    /// Rollback: green takes no traffic; make blue primary again. Answers how long to wait
    /// before removing green.
    RestoreBlue,
    /// Rollback: make blue primary again if needed, remove green once it takes no traffic,
    /// and deregister the task definition revision green was created with.
    RemoveGreen,
}

/// Input of `DrainBlue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainBlueInput {
    pub deployment: Deployment,
    pub action: DrainAction,
    /// Why the deployment is rolled back (`restoreBlue`, `removeGreen`), for the rollback's
    /// deployment event.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Output of `DrainBlue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainBlueOutput {
    pub action: DrainAction,
    /// The primary task set after the step.
    pub primary_task_set_id: Option<String>,
    /// The task set removed (or already gone) by this step.
    pub removed_task_set_id: Option<String>,
    /// Seconds the state machine waits before the next drain step (deregistration delay).
    pub wait_seconds: u32,
}

/// Blue and green of a deployment, as the service shows them now.
#[derive(Debug, Clone)]
pub(crate) struct Sides {
    pub service: crate::ports::ServiceState,
    /// The task set whose `externalId` is the execution name.
    pub green: Option<crate::ports::TaskSetState>,
    /// The primary task set when green is not primary; after promotion, the other task set.
    pub blue: Option<crate::ports::TaskSetState>,
}

/// Reads the service and tells blue from green.
///
/// Green is the execution's task set, also once it is `DRAINING` (removed). Blue is the
/// primary when green is not; after promotion, the other live task set, or once that was
/// removed, the `DRAINING` one on the pair's other target group (an earlier deployment's
/// blue may still be draining on green's).
///
/// # Errors
/// Whatever [`crate::ports::Ecs::service`] returns.
pub(crate) async fn sides<E: crate::ports::Ecs>(ecs: &E, d: &Deployment) -> crate::Result<Sides> {
    let service = ecs.service(&d.cluster, &d.service).await?;
    let green = service.by_external_id(&d.execution_name).cloned();
    let theirs = |t: &&crate::ports::TaskSetState| {
        t.external_id.as_deref() != Some(d.execution_name.as_str())
    };
    let blue = match service.primary() {
        Some(p) if theirs(&p) => Some(p.clone()),
        _ => {
            let blue_tg = green
                .as_ref()
                .and_then(|g| g.target_group_arn())
                .and_then(|tg| d.other_target_group(tg));
            let mut others = service.task_sets.iter().filter(theirs);
            others
                .clone()
                .find(|t| !t.is_draining())
                .or_else(|| others.find(|t| blue_tg.is_some() && t.target_group_arn() == blue_tg))
                .cloned()
        }
    };
    Ok(Sides {
        service,
        green,
        blue,
    })
}
