//! ECS (JSON 1.1): task set calls drive the simulation, and answers carry its counts.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::moto::{Credential, Scope};
use crate::proxy::{self, Incoming};
use crate::server::AppState;
use crate::sim::{
    Counts, HeldSecret, Millis, Sim, TargetGroup, TaskQuery, TaskSetSpec, TaskSetUpdate, TaskView,
    now_millis,
};

const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The ECS operation named by `X-Amz-Target`.
pub fn operation(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(TARGET_PREFIX))
        .map(str::to_owned)
}

/// Epoch seconds, as JSON 1.1 timestamps are written.
fn seconds(at: Millis) -> Value {
    // f64 holds epoch milliseconds exactly, so millisecond precision survives.
    json!(at as f64 / 1000.0)
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Handles one ECS call.
pub async fn handle(state: &AppState, op: &str, req: &Incoming) -> Response {
    state.sweep().await;
    let request: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let simulated = simulated_answer(&state.sim(), op, &request, now_millis());
    if let Some(answer) = simulated {
        return proxy::json_answer(StatusCode::OK, CONTENT_TYPE, &answer).into_response();
    }
    let upstream = match proxy::forward(&state.http, &state.moto_url, req).await {
        Ok(upstream) => upstream,
        Err(err) => return proxy::moto_unreachable(&err).into_response(),
    };
    let intercepted = matches!(
        op,
        "CreateTaskSet"
            | "UpdateTaskSet"
            | "DeleteTaskSet"
            | "UpdateService"
            | "DeleteService"
            | "DescribeServices"
            | "DescribeTaskSets"
    );
    if upstream.status != StatusCode::OK || !intercepted {
        return upstream.into_response();
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&upstream.body) else {
        return upstream.into_response();
    };
    let scope = Credential::from_headers(&req.headers)
        .map(|c| c.scope)
        .unwrap_or_default();
    if let Err(err) = follow(state, op, &scope, &request, &answer).await {
        tracing::error!(op, error = %err, "could not simulate the ecs control plane");
        return proxy::json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            CONTENT_TYPE,
            &json!({
                "__type": "ServerException",
                "message": format!("moto accepted {op}, but the local gateway could not simulate its tasks: {err}"),
            }),
        )
        .into_response();
    }
    patch_answer(&state.sim(), op, &request, &mut answer, now_millis());
    upstream.with_json(&answer).into_response()
}

/// What ECS would do after moto accepted `op`.
async fn follow(
    state: &AppState,
    op: &str,
    scope: &Scope,
    request: &Value,
    answer: &Value,
) -> Result<(), Error> {
    let now = now_millis();
    let changes = match op {
        "CreateTaskSet" | "UpdateTaskSet" => {
            return sync_task_set(state, scope, request, &answer["taskSet"]).await;
        }
        "DeleteTaskSet" => match str_field(&answer["taskSet"], "taskSetArn") {
            Some(arn) => state
                .sim()
                .delete_task_set(arn, Some(answer["taskSet"].clone()), now),
            None => return Ok(()),
        },
        "UpdateService" if request.get("desiredCount").is_some() => {
            let service = &answer["service"];
            let (Some(arn), Some(desired)) = (
                str_field(service, "serviceArn"),
                service["desiredCount"].as_u64(),
            ) else {
                return Ok(());
            };
            let desired = u32::try_from(desired).unwrap_or(u32::MAX);
            state.sim().rescale_service(arn, desired, now)
        }
        "DeleteService" => match str_field(&answer["service"], "serviceArn") {
            Some(arn) => state.sim().delete_service(arn, now),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    state.apply(changes).await;
    Ok(())
}

fn missing(field: &str) -> Error {
    Error::MotoAnswer {
        op: "ecs task set".to_owned(),
        reason: format!("the task set has no {field}"),
    }
}

/// Creates or rescales the simulated tasks of the task set moto just answered with.
async fn sync_task_set(
    state: &AppState,
    scope: &Scope,
    request: &Value,
    task_set: &Value,
) -> Result<(), Error> {
    let field = |key: &str| str_field(task_set, key).ok_or_else(|| missing(key));
    let arn = field("taskSetArn")?;
    let cluster_arn = field("clusterArn")?;
    let service_arn = field("serviceArn")?;
    let scale_percent = task_set["scale"]["value"].as_f64().unwrap_or(100.0);
    let service_desired = state
        .moto
        .service_desired_count(scope, cluster_arn, service_arn)
        .await?;
    let rescaled = state
        .sim()
        .rescale_task_set(arn, scale_percent, service_desired, now_millis());
    if let Some(changes) = rescaled {
        state.apply(changes).await;
        return Ok(());
    }

    let task_definition_arn = field("taskDefinition")?;
    let containers = state
        .moto
        .task_definition_containers(scope, task_definition_arn)
        .await?;
    let load_balancers = task_set
        .get("loadBalancers")
        .or_else(|| request.get("loadBalancers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut target_groups: Vec<TargetGroup> = Vec::new();
    for lb in &load_balancers {
        let Some(tg_arn) = str_field(lb, "targetGroupArn") else {
            continue;
        };
        if target_groups.iter().any(|tg| tg.arn == tg_arn) {
            continue;
        }
        let deregistration_delay_ms = state.moto.deregistration_delay_ms(scope, tg_arn).await?;
        target_groups.push(TargetGroup {
            arn: tg_arn.to_owned(),
            port: lb["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok()),
            deregistration_delay_ms,
        });
    }
    let subnet_id = [task_set, request]
        .iter()
        .find_map(|v| v["networkConfiguration"]["awsvpcConfiguration"]["subnets"][0].as_str())
        .map(str::to_owned);
    let subnet = match &subnet_id {
        Some(id) => state.moto.subnet_cidr(scope, id).await.unwrap_or_else(|err| {
            tracing::warn!(subnet = id, error = %err, "could not read the subnet; task IPs come from 10.200.0.0/16");
            None
        }),
        None => None,
    };
    // ECS resolves `secrets` when a task starts; the tasks of this task set hold these.
    let mut held = Vec::new();
    for c in &containers {
        for (name, value_from) in &c.secrets {
            held.push(HeldSecret {
                container: c.name.clone(),
                name: name.clone(),
                holds: state.moto.secret_holds(scope, value_from).await,
            });
        }
    }
    let spec = TaskSetSpec {
        id: field("id")?.to_owned(),
        arn: arn.to_owned(),
        cluster_arn: cluster_arn.to_owned(),
        service_arn: service_arn.to_owned(),
        task_definition_arn: task_definition_arn.to_owned(),
        launch_type: str_field(task_set, "launchType")
            .unwrap_or("FARGATE")
            .to_owned(),
        containers,
        target_groups,
        subnet_id,
        held,
    };
    tracing::info!(
        task_set = %spec.id,
        service = spec.service_name(),
        images = ?spec.containers.iter().map(|c| c.image.as_str()).collect::<Vec<_>>(),
        scale_percent,
        service_desired,
        "simulating task set"
    );
    let changes = state.sim().apply_task_set(
        TaskSetUpdate {
            spec,
            scope: scope.clone(),
            subnet,
            scale_percent,
            service_desired,
        },
        now_millis(),
    );
    state.apply(changes).await;
    Ok(())
}

/// `ListTasks` and `DescribeTasks` of simulated tasks, answered without moto.
pub fn simulated_answer(sim: &Sim, op: &str, request: &Value, now: Millis) -> Option<Value> {
    match op {
        "ListTasks" => {
            let query = TaskQuery {
                cluster: str_field(request, "cluster")
                    .unwrap_or("default")
                    .to_owned(),
                started_by: str_field(request, "startedBy")?.to_owned(),
                desired_status: str_field(request, "desiredStatus").map(str::to_owned),
                service_name: str_field(request, "serviceName").map(str::to_owned),
                family: str_field(request, "family").map(str::to_owned),
            };
            let arns = sim.list_tasks(&query)?;
            Some(json!({ "taskArns": arns }))
        }
        "DescribeTasks" => {
            let references: Vec<String> = request["tasks"]
                .as_array()?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            let tasks = sim.describe_tasks(&references, now)?;
            Some(json!({
                "tasks": tasks.iter().map(task_json).collect::<Vec<_>>(),
                "failures": [],
            }))
        }
        _ => None,
    }
}

/// A task in the shape of `DescribeTasks`.
pub fn task_json(task: &TaskView) -> Value {
    let task_id = crate::sim::last_segment(&task.arn);
    let attachment_id = uuid_from_hex(task_id);
    let containers: Vec<Value> = task
        .containers
        .iter()
        .map(|c| {
            let mut container = json!({
                "containerArn": format!("{}/{}", task.arn.replacen(":task/", ":container/", 1), c.name),
                "taskArn": task.arn,
                "name": c.name,
                "image": c.image,
                "lastStatus": c.last_status,
                "healthStatus": "UNKNOWN",
                "networkInterfaces": [{
                    "attachmentId": attachment_id,
                    "privateIpv4Address": task.ip.to_string(),
                }],
            });
            if let Some(code) = c.exit_code {
                container["exitCode"] = json!(code);
            }
            container
        })
        .collect();
    let mut details = Vec::new();
    if let Some(subnet) = &task.subnet_id {
        details.push(json!({"name": "subnetId", "value": subnet}));
    }
    details.push(json!({"name": "privateIPv4Address", "value": task.ip.to_string()}));
    let mut out = json!({
        "taskArn": task.arn,
        "clusterArn": task.cluster_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "startedBy": task.started_by,
        "group": format!("service:{}", task.service_name),
        "launchType": task.launch_type,
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "healthStatus": "UNKNOWN",
        "connectivity": "CONNECTED",
        "createdAt": seconds(task.created_at),
        "startedAt": seconds(task.created_at),
        "connectivityAt": seconds(task.created_at),
        "containers": containers,
        "attachments": [{
            "id": attachment_id,
            "type": "ElasticNetworkInterface",
            "status": if task.last_status == "STOPPED" { "DELETED" } else { "ATTACHED" },
            "details": details,
        }],
        "tags": [],
        "version": 1,
    });
    let fields = [
        ("stoppingAt", task.stopping_at.map(seconds)),
        ("stoppedAt", task.stopped_at.map(seconds)),
        ("executionStoppedAt", task.stopped_at.map(seconds)),
        ("stopCode", task.stop_code.map(|c| json!(c))),
        (
            "stoppedReason",
            task.stopped_reason.as_ref().map(|r| json!(r)),
        ),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out[key] = value;
        }
    }
    out
}

fn uuid_from_hex(hex: &str) -> String {
    if hex.len() == 32 && hex.is_ascii() {
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    } else {
        hex.to_owned()
    }
}

fn patch_task_set(task_set: &mut Map<String, Value>, counts: &Counts, deleted: bool) {
    task_set.insert(
        "computedDesiredCount".into(),
        json!(counts.computed_desired),
    );
    task_set.insert("runningCount".into(), json!(counts.running));
    task_set.insert("pendingCount".into(), json!(counts.pending));
    task_set.insert("stabilityStatus".into(), json!(counts.stability_status()));
    task_set.insert("stabilityStatusAt".into(), seconds(counts.stability_at));
    if deleted {
        task_set.insert("status".into(), json!("DRAINING"));
    }
}

fn patch_task_sets(sim: &Sim, task_sets: Option<&mut Value>, now: Millis) {
    let Some(task_sets) = task_sets.and_then(Value::as_array_mut) else {
        return;
    };
    for task_set in task_sets {
        patch_one(sim, Some(task_set), now);
    }
}

fn patch_one(sim: &Sim, task_set: Option<&mut Value>, now: Millis) {
    let Some(object) = task_set.and_then(Value::as_object_mut) else {
        return;
    };
    let simulated = object
        .get("taskSetArn")
        .and_then(Value::as_str)
        .and_then(|arn| sim.task_set(arn));
    if let Some(ts) = simulated {
        patch_task_set(object, &sim.counts(ts, now), ts.deleted_at.is_some());
    }
}

/// Lays the simulated counts over moto's answer to `op` (whose request was `request`), and
/// lists deleted task sets as `DRAINING` until their tasks stopped, as ECS does.
pub fn patch_answer(sim: &Sim, op: &str, request: &Value, answer: &mut Value, now: Millis) {
    match op {
        "DescribeServices" => {
            let Some(services) = answer.get_mut("services").and_then(Value::as_array_mut) else {
                return;
            };
            for service in services {
                if let (Some(cluster), Some(arn)) = (
                    str_field(service, "clusterArn").map(str::to_owned),
                    str_field(service, "serviceArn").map(str::to_owned),
                ) {
                    let draining = draining_task_sets(sim, &cluster, &arn, None, now);
                    if let Some(list) = service.get_mut("taskSets").and_then(Value::as_array_mut) {
                        list.extend(draining);
                    }
                }
                patch_task_sets(sim, service.get_mut("taskSets"), now);
                patch_service(sim, service, now);
            }
        }
        "DescribeTaskSets" => {
            let cluster = str_field(request, "cluster").unwrap_or("default");
            let filter: Option<Vec<&str>> = request["taskSets"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect());
            if let Some(service) = str_field(request, "service") {
                let draining = draining_task_sets(sim, cluster, service, filter.as_deref(), now);
                if let Some(list) = answer.get_mut("taskSets").and_then(Value::as_array_mut) {
                    list.extend(draining);
                }
            }
            patch_task_sets(sim, answer.get_mut("taskSets"), now);
        }
        "UpdateService" | "DeleteService" => {
            if let Some(service) = answer.get_mut("service") {
                patch_task_sets(sim, service.get_mut("taskSets"), now);
                patch_service(sim, service, now);
            }
        }
        "CreateTaskSet" | "UpdateTaskSet" | "DeleteTaskSet" => {
            patch_one(sim, answer.get_mut("taskSet"), now);
        }
        _ => {}
    }
}

/// moto's descriptions of the service's task sets that are still draining, those named in
/// `filter` (ids or ARNs) when given; `patch_task_sets` marks them `DRAINING`.
fn draining_task_sets(
    sim: &Sim,
    cluster: &str,
    service: &str,
    filter: Option<&[&str]>,
    now: Millis,
) -> Vec<Value> {
    sim.draining_task_sets(cluster, service, now)
        .into_iter()
        .filter(|ts| {
            filter.is_none_or(|names| {
                names.iter().any(|n| {
                    *n == ts.spec.arn || *n == ts.spec.id || ts.spec.arn.ends_with(&format!("/{n}"))
                })
            })
        })
        .filter_map(|ts| ts.removed.clone())
        .collect()
}

fn patch_service(sim: &Sim, service: &mut Value, now: Millis) {
    let counts = str_field(service, "serviceArn").and_then(|arn| sim.service_counts(arn, now));
    if let (Some((running, pending)), Some(object)) = (counts, service.as_object_mut()) {
        object.insert("runningCount".into(), json!(running));
        object.insert("pendingCount".into(), json!(pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Container, Sim};

    const TS_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-set/c1/svc/ecs-svc/42";
    const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/c1/svc";
    const T0: Millis = 1_800_000_000_000;

    fn simulated_sim() -> Sim {
        simulated_sim_behind(vec![])
    }

    fn simulated_sim_behind(target_groups: Vec<TargetGroup>) -> Sim {
        let mut sim = Sim::new();
        sim.apply_task_set(
            TaskSetUpdate {
                spec: TaskSetSpec {
                    id: "ecs-svc/42".into(),
                    arn: TS_ARN.into(),
                    cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/c1".into(),
                    service_arn: SERVICE_ARN.into(),
                    task_definition_arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/app:1"
                        .into(),
                    launch_type: "FARGATE".into(),
                    containers: vec![Container {
                        name: "web".into(),
                        image: "repo/app:v1".into(),
                        secrets: Vec::new(),
                    }],
                    target_groups,
                    subnet_id: Some("subnet-1".into()),
                    held: Vec::new(),
                },
                scope: Scope::default(),
                subnet: None,
                scale_percent: 100.0,
                service_desired: 2,
            },
            T0,
        );
        sim
    }

    #[test]
    fn describe_services_carries_the_simulated_counts() {
        let sim = simulated_sim();
        let mut answer = json!({"services": [{
            "serviceArn": SERVICE_ARN,
            "runningCount": 0,
            "pendingCount": 2,
            "taskSets": [
                {"taskSetArn": TS_ARN, "stabilityStatus": "STEADY_STATE"},
                {"taskSetArn": "arn:other", "stabilityStatus": "STEADY_STATE"}
            ]
        }]});
        patch_answer(&sim, "DescribeServices", &json!({}), &mut answer, T0);
        let service = &answer["services"][0];
        assert_eq!(service["runningCount"], 2);
        assert_eq!(service["pendingCount"], 0);
        assert_eq!(service["taskSets"][0]["computedDesiredCount"], 2);
        assert_eq!(service["taskSets"][0]["runningCount"], 2);
        assert_eq!(service["taskSets"][0]["stabilityStatus"], "STEADY_STATE");
        assert_eq!(
            service["taskSets"][1].get("runningCount"),
            None,
            "not simulated"
        );
    }

    #[test]
    fn a_deleted_task_set_is_listed_as_draining_until_its_tasks_stopped() {
        let mut sim = simulated_sim_behind(vec![TargetGroup {
            arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/1".into(),
            port: Some(8080),
            deregistration_delay_ms: 5000,
        }]);
        let described = json!({"taskSetArn": TS_ARN, "id": "ecs-svc/42", "status": "ACTIVE"});
        sim.delete_task_set(TS_ARN, Some(described), T0 + 1000);
        let service = |at| {
            let mut answer = json!({"services": [{
                "serviceArn": SERVICE_ARN,
                "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c1",
                "taskSets": [{"taskSetArn": "arn:other", "status": "PRIMARY"}]
            }]});
            patch_answer(&sim, "DescribeServices", &json!({}), &mut answer, at);
            answer["services"][0]["taskSets"].clone()
        };
        let during = service(T0 + 1000);
        assert_eq!(during.as_array().map(Vec::len), Some(2), "{during}");
        assert_eq!(during[1]["taskSetArn"], TS_ARN);
        assert_eq!(during[1]["status"], "DRAINING");
        assert_eq!(during[1]["computedDesiredCount"], 0);

        let by_id = |id: &str| {
            let mut answer = json!({"taskSets": []});
            let request = json!({"cluster": "c1", "service": "svc", "taskSets": [id]});
            patch_answer(&sim, "DescribeTaskSets", &request, &mut answer, T0 + 1000);
            answer["taskSets"].as_array().map_or(0, Vec::len)
        };
        assert_eq!(by_id("ecs-svc/42"), 1);
        assert_eq!(by_id(TS_ARN), 1);
        assert_eq!(by_id("ecs-svc/7"), 0);

        // Once its targets drained and its tasks stopped, the task set is gone, as in ECS.
        let after = service(T0 + 6000);
        assert_eq!(after.as_array().map(Vec::len), Some(1), "{after}");
    }

    #[test]
    fn ecs_operation_comes_from_the_target_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.CreateTaskSet"
                .parse()
                .expect("a header value"),
        );
        assert_eq!(operation(&headers).as_deref(), Some("CreateTaskSet"));
        headers.insert(
            "x-amz-target",
            "AWSStepFunctions.StartExecution"
                .parse()
                .expect("a header value"),
        );
        assert_eq!(operation(&headers), None);
    }

    #[test]
    fn list_and_describe_tasks_answer_from_the_simulation() {
        let sim = simulated_sim();
        let listed = simulated_answer(
            &sim,
            "ListTasks",
            &json!({"cluster": "c1", "startedBy": "ecs-svc/42"}),
            T0,
        )
        .expect("simulated");
        let arns = listed["taskArns"].as_array().expect("a list").clone();
        assert_eq!(arns.len(), 2);
        let described = simulated_answer(&sim, "DescribeTasks", &json!({"tasks": arns}), T0)
            .expect("simulated");
        let task = &described["tasks"][0];
        assert_eq!(task["lastStatus"], "RUNNING");
        assert_eq!(task["group"], "service:svc");
        assert_eq!(task["startedBy"], "ecs-svc/42");
        assert_eq!(task["containers"][0]["image"], "repo/app:v1");
        assert_eq!(task["containers"][0].get("exitCode"), None);
        let details = task["attachments"][0]["details"]
            .as_array()
            .expect("details");
        assert!(details.iter().any(|d| d["name"] == "privateIPv4Address"));
        assert!(
            simulated_answer(&sim, "ListTasks", &json!({"cluster": "c1"}), T0).is_none(),
            "without startedBy, moto answers"
        );
    }
}
