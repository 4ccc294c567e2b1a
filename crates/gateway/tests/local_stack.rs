//! The gateway as a process in front of a real moto server (and a fake Lambda host).
//!
//! The moto test is skipped, saying why, when `moto_server` cannot be found: set
//! `BG_MOTO_SERVER`, or run `make local-up`'s install step so `.tools/venv/bin/moto_server`
//! exists.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::elbv2::{TargetHealthDescription, parse_describe_target_health};
use serde_json::{Value, json};

/// Upper bound for anything polled; generous so a loaded machine does not fail the test.
const PATIENCE: Duration = Duration::from_secs(60);
const ECS_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0";
const ELB_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=0";
const EC2_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

/// Kills the process when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn log_file(name: &str) -> std::fs::File {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::File::create(&path).expect("a log file in the cargo target tmpdir")
}

fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BG_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    })
}

fn start_gateway(port: u16, moto_port: u16, lambda_port: u16, log: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("BG_GATEWAY_PORT", port.to_string())
        .env("BG_MOTO_PORT", moto_port.to_string())
        .env("BG_LAMBDA_PORT", lambda_port.to_string())
        .env("BG_HOST", "127.0.0.1")
        .stdout(log_file(log))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the gateway binary starts");
    Running(child)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client")
}

async fn wait_until_answering(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + PATIENCE;
    while http.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `probe` until it returns `Some`, failing after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Aws {
    http: reqwest::Client,
    url: String,
}

impl Aws {
    async fn ecs(&self, op: &str, body: Value) -> Value {
        let answer = self
            .http
            .post(format!("{}/", self.url))
            .header("Authorization", ECS_AUTH)
            .header(
                "X-Amz-Target",
                format!("AmazonEC2ContainerServiceV20141113.{op}"),
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .expect("ecs answers");
        let status = answer.status();
        let text = answer.text().await.expect("an ecs body");
        assert_eq!(status, 200, "ecs {op}: {text}");
        serde_json::from_str(&text).expect("ecs answers json")
    }

    async fn query(&self, auth: &str, version: &str, params: &[(&str, &str)]) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", version);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let answer = self
            .http
            .post(format!("{}/", self.url))
            .header("Authorization", auth)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the query api answers");
        let status = answer.status();
        let text = answer.text().await.expect("a query body");
        assert_eq!(status, 200, "{params:?}: {text}");
        text
    }

    async fn elb(&self, params: &[(&str, &str)]) -> String {
        self.query(ELB_AUTH, "2015-12-01", params).await
    }

    async fn target_health(&self, tg: &str) -> Vec<TargetHealthDescription> {
        let xml = self
            .elb(&[("Action", "DescribeTargetHealth"), ("TargetGroupArn", tg)])
            .await;
        parse_describe_target_health(&xml)
            .expect("a DescribeTargetHealth answer")
            .0
    }

    async fn task_set(&self, service: &str, id: &str) -> Value {
        let answer = self
            .ecs(
                "DescribeTaskSets",
                json!({"cluster": "demo", "service": service, "taskSets": [id]}),
            )
            .await;
        answer["taskSets"][0].clone()
    }
}

fn xml_text(xml: &str, element: &str) -> String {
    let open = format!("<{element}>");
    let start = xml.find(&open).expect("the element is in the answer") + open.len();
    let end = xml[start..].find('<').expect("the element closes") + start;
    xml[start..end].to_owned()
}

fn states(targets: &[TargetHealthDescription]) -> Vec<&str> {
    targets.iter().map(|t| t.state.as_str()).collect()
}

#[tokio::test]
async fn simulates_task_set_tasks_and_target_health_in_front_of_moto() {
    let Some(moto_bin) = moto_server() else {
        println!(
            "skipped: moto_server not found (set BG_MOTO_SERVER or install .tools/venv via the Makefile)"
        );
        return;
    };
    let http = http();
    let (moto_port, gateway_port, lambda_port) = (free_port(), free_port(), free_port());
    let _moto = Running(
        Command::new(&moto_bin)
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .env("MOTO_PORT", gateway_port.to_string())
            .stdout(log_file("moto.log"))
            .stderr(log_file("moto.err.log"))
            .spawn()
            .expect("moto_server starts"),
    );
    let _gateway = start_gateway(gateway_port, moto_port, lambda_port, "gateway.log");
    let aws = Aws {
        http: http.clone(),
        url: format!("http://127.0.0.1:{gateway_port}"),
    };
    wait_until_answering(&http, &format!("{}/_local/health", aws.url)).await;
    wait_until_answering(
        &http,
        &format!("http://127.0.0.1:{moto_port}/moto-api/config"),
    )
    .await;
    let health: Value = http
        .get(format!("{}/_local/health", aws.url))
        .send()
        .await
        .expect("health answers")
        .json()
        .await
        .expect("health is json");
    assert_eq!(health, json!({"moto": true, "lambda": false}));

    // Given a cluster, an ip target group with a 1 s deregistration delay, a task definition
    // and an EXTERNAL service of 2 tasks.
    let config = http
        .put(format!("{}/_local/config", aws.url))
        .body(r#"{"healthyAfterSeconds": 3}"#)
        .send()
        .await
        .expect("config answers");
    assert_eq!(config.status(), 200);
    let vpcs = aws
        .query(EC2_AUTH, "2016-11-15", &[("Action", "DescribeVpcs")])
        .await;
    let vpc = xml_text(&vpcs, "vpcId");
    let created = aws
        .elb(&[
            ("Action", "CreateTargetGroup"),
            ("Name", "demo-green"),
            ("Protocol", "HTTP"),
            ("Port", "80"),
            ("VpcId", &vpc),
            ("TargetType", "ip"),
        ])
        .await;
    let tg = xml_text(&created, "TargetGroupArn");
    aws.elb(&[
        ("Action", "ModifyTargetGroupAttributes"),
        ("TargetGroupArn", &tg),
        (
            "Attributes.member.1.Key",
            "deregistration_delay.timeout_seconds",
        ),
        ("Attributes.member.1.Value", "1"),
    ])
    .await;
    aws.ecs("CreateCluster", json!({"clusterName": "demo"}))
        .await;
    for version in ["v1", "v2"] {
        aws.ecs(
            "RegisterTaskDefinition",
            json!({
                "family": "web",
                "containerDefinitions": [{
                    "name": "web",
                    "image": format!("registry.local/web:{version}"),
                    "memory": 512,
                    "portMappings": [{"containerPort": 8080}],
                }],
            }),
        )
        .await;
    }
    aws.ecs(
        "CreateService",
        json!({
            "cluster": "demo",
            "serviceName": "web",
            "desiredCount": 2,
            "deploymentController": {"type": "EXTERNAL"},
        }),
    )
    .await;

    // When a task set at 100 % is created (FARGATE with a bridge-mode task definition: moto
    // starts its own tasks without needing container instances or an ENI).
    let create_task_set = |task_definition: &str| {
        json!({
            "cluster": "demo",
            "service": "web",
            "taskDefinition": task_definition,
            "launchType": "FARGATE",
            "loadBalancers": [{"targetGroupArn": tg, "containerName": "web", "containerPort": 8080}],
            "scale": {"value": 100.0, "unit": "PERCENT"},
        })
    };
    let created = aws.ecs("CreateTaskSet", create_task_set("web:1")).await;
    let blue_id = created["taskSet"]["id"]
        .as_str()
        .expect("a task set id")
        .to_owned();
    assert_eq!(created["taskSet"]["computedDesiredCount"], 2);
    assert_eq!(created["taskSet"]["stabilityStatus"], "STABILIZING");

    // Then its targets are registered `initial`, turn `healthy`, and ECS reports it stable.
    let first = aws.target_health(&tg).await;
    assert_eq!(states(&first), ["initial", "initial"]);
    assert!(first.iter().all(|t| t.port == Some(8080)));
    assert_eq!(
        first[0].reason.as_deref(),
        Some("Elb.RegistrationInProgress")
    );
    eventually("targets turn healthy", || async {
        let targets = aws.target_health(&tg).await;
        (states(&targets) == ["healthy", "healthy"]).then_some(())
    })
    .await;
    let services = aws
        .ecs(
            "DescribeServices",
            json!({"cluster": "demo", "services": ["web"]}),
        )
        .await;
    let service = &services["services"][0];
    assert_eq!(service["runningCount"], 2);
    assert_eq!(service["taskSets"][0]["runningCount"], 2);
    assert_eq!(service["taskSets"][0]["computedDesiredCount"], 2);
    assert_eq!(service["taskSets"][0]["stabilityStatus"], "STEADY_STATE");

    let listed = aws
        .ecs(
            "ListTasks",
            json!({"cluster": "demo", "startedBy": blue_id}),
        )
        .await;
    let arns = listed["taskArns"].clone();
    assert_eq!(arns.as_array().map(Vec::len), Some(2));
    let described = aws
        .ecs("DescribeTasks", json!({"cluster": "demo", "tasks": arns}))
        .await;
    let target_ips: Vec<String> = first.iter().map(|t| t.id.clone()).collect();
    for task in described["tasks"].as_array().expect("tasks") {
        assert_eq!(task["lastStatus"], "RUNNING");
        assert_eq!(task["group"], "service:web");
        let ip = task["attachments"][0]["details"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == "privateIPv4Address"))
            .and_then(|d| d["value"].as_str())
            .expect("an ip");
        assert!(target_ips.iter().any(|t| t == ip), "{ip} is a target");
    }

    // When the task set is deleted, its targets drain, then leave the group, in moto too.
    aws.ecs(
        "DeleteTaskSet",
        json!({"cluster": "demo", "service": "web", "taskSet": blue_id}),
    )
    .await;
    assert_eq!(
        states(&aws.target_health(&tg).await),
        ["draining", "draining"]
    );
    eventually("drained targets leave the group", || async {
        aws.target_health(&tg).await.is_empty().then_some(())
    })
    .await;
    let moto_direct = Aws {
        http: http.clone(),
        url: format!("http://127.0.0.1:{moto_port}"),
    };
    eventually("moto no longer lists the targets", || async {
        moto_direct
            .target_health(&tg)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let stopped = aws
        .ecs(
            "ListTasks",
            json!({"cluster": "demo", "startedBy": blue_id, "desiredStatus": "STOPPED"}),
        )
        .await;
    let described = aws
        .ecs(
            "DescribeTasks",
            json!({"cluster": "demo", "tasks": stopped["taskArns"]}),
        )
        .await;
    let tasks = described["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2);
    for task in tasks {
        assert_eq!(task["lastStatus"], "STOPPED");
        assert_eq!(task["stopCode"], "ServiceSchedulerInitiated");
        assert_eq!(task["containers"][0]["exitCode"], 0);
    }

    // When a neverHealthy fault matches the next image, its targets go unhealthy, never healthy.
    let fault = http
        .post(format!("{}/_local/faults", aws.url))
        .body(r#"{"image": "web:v2", "mode": "neverHealthy"}"#)
        .send()
        .await
        .expect("faults answer");
    assert_eq!(fault.status(), 201);
    let bad = http
        .post(format!("{}/_local/faults", aws.url))
        .body(r#"{"image": "web:v2", "mode": "sometimes"}"#)
        .send()
        .await
        .expect("faults answer");
    assert_eq!(bad.status(), 400);
    let created = aws.ecs("CreateTaskSet", create_task_set("web:2")).await;
    let green_id = created["taskSet"]["id"]
        .as_str()
        .expect("a task set id")
        .to_owned();
    let unhealthy = eventually("faulty targets turn unhealthy", || async {
        let targets = aws.target_health(&tg).await;
        assert!(
            !states(&targets).contains(&"healthy"),
            "a neverHealthy target was healthy: {targets:?}"
        );
        (states(&targets) == ["unhealthy", "unhealthy"]).then_some(targets)
    })
    .await;
    assert_eq!(
        unhealthy[0].reason.as_deref(),
        Some("Target.FailedHealthChecks")
    );
    let green = aws.task_set("web", &green_id).await;
    assert_eq!(green["stabilityStatus"], "STABILIZING");
    assert_eq!(green["runningCount"], 2);

    let state: Value = http
        .get(format!("{}/_local/state", aws.url))
        .send()
        .await
        .expect("state answers")
        .json()
        .await
        .expect("state is json");
    let task_sets = state["taskSets"].as_array().expect("task sets");
    assert_eq!(task_sets.len(), 2);
    assert!(
        task_sets
            .iter()
            .any(|ts| ts["id"] == green_id.as_str() && ts["images"][0] == "registry.local/web:v2")
    );
}

#[tokio::test]
async fn lambda_invokes_keep_lambdas_error_contract() {
    use axum::Router;
    use axum::http::{StatusCode, Uri};
    use axum::routing::post;

    // Given a Lambda host that answers like `cargo lambda watch`: HTTP 500 on a function error.
    let lambda = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the fake lambda host");
    let lambda_port = lambda.local_addr().expect("an address").port();
    let host = Router::new().route(
        "/2015-03-31/functions/{name}/invocations",
        post(|uri: Uri, body: String| async move {
            if uri.path().contains("/fails/") {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"errorType":"GreenUnhealthy","errorMessage":"1 of 2 targets unhealthy"}"#
                        .to_owned(),
                )
            } else {
                (
                    StatusCode::OK,
                    format!(r#"{{"path":"{}","echo":{body}}}"#, uri.path()),
                )
            }
        }),
    );
    let (stop_host, host_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        axum::serve(lambda, host)
            .with_graceful_shutdown(async {
                let _ = host_stopped.await;
            })
            .await
    });
    let http = http();
    let gateway_port = free_port();
    let _gateway = start_gateway(gateway_port, free_port(), lambda_port, "gateway-lambda.log");
    let url = format!("http://127.0.0.1:{gateway_port}");
    wait_until_answering(&http, &format!("{url}/_local/health")).await;
    let invoke = |function: &str| {
        http.post(format!("{url}/2015-03-31/functions/{function}/invocations"))
            .body(r#"{"service":"web"}"#)
            .send()
    };

    // When a function fails, invoked by URL-encoded ARN (as moto's Step Functions do).
    let failed = invoke("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afails")
        .await
        .expect("the gateway answers");
    // Then Lambda's contract holds: 200, X-Amz-Function-Error, a request id, the same body.
    assert_eq!(failed.status(), 200);
    assert_eq!(failed.headers()["x-amz-function-error"], "Unhandled");
    assert_eq!(failed.headers()["x-amz-executed-version"], "$LATEST");
    assert!(failed.headers().contains_key("x-amzn-requestid"));
    let body: Value = failed.json().await.expect("json");
    assert_eq!(body["errorType"], "GreenUnhealthy");

    // And a successful one reaches the binary by name, qualifier dropped, body intact.
    let ok = invoke("validate:live").await.expect("the gateway answers");
    assert_eq!(ok.status(), 200);
    assert!(!ok.headers().contains_key("x-amz-function-error"));
    assert!(ok.headers().contains_key("x-amzn-requestid"));
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["path"], "/2015-03-31/functions/validate/invocations");
    assert_eq!(body["echo"], json!({"service": "web"}));

    // When the Lambda host is gone, the gateway says so as a Lambda service error.
    let _ = stop_host.send(());
    let _ = served.await;
    let unreachable = invoke("validate").await.expect("the gateway answers");
    assert_eq!(unreachable.status(), 502);
    assert!(unreachable.headers().contains_key("x-amzn-requestid"));
    let body: Value = unreachable.json().await.expect("json");
    assert_eq!(body["errorType"], "ServiceException");
}
