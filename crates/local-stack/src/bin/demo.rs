//! `make demo`: a complete blue/green deployment and an automatic rollback on the local stack.
//!
//! 1. Builds an environment (VPC, ALB, two target groups, ECR images v1–v3, Dynatrace
//!    secrets, a Fargate service on the EXTERNAL controller with blue on v1).
//! 2. ECR reports a push of v2: the trigger starts a deploy of the catalogue's deployment (two
//!    traffic steps), and a repeated event starts none; checks the result.
//! 3. Makes v3's tasks turn unhealthy a little after they turned healthy, deploys v3 through
//!    the webhook Spinnaker calls, and checks that the workflow rolled back after traffic had
//!    moved and that the webhook reports it.
//! 4. Deploys v4 as a 10 % canary verified by Dynatrace (the local stack's fake Dynatrace
//!    API), which reports v4's error rate over the threshold: the canary is rolled back, and
//!    Dynatrace received the deployment's start and rollback events.
//! 5. Rotates the Dynatrace API token the service reads from Secrets Manager (playing
//!    Secrets Manager's part, which moto cannot): a new token is minted, the service is
//!    redeployed onto it by the rotation workflow, and only then the old token is revoked.
//! 6. Prints one line per claim and exits non-zero when any claim does not hold.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::{DynatraceRelease, Strategy, Timing, TrafficStep};
use bluegreen::verification::DynatraceVerification;
use local_stack::env::{APP_CONTAINER, EnvSpec, Environment};
use local_stack::gateway::{Fault, Gateway};
use local_stack::inspect::{self, TaskSetView};
use local_stack::lambda::Functions;
use local_stack::timeline::{Sampler, Timeline};
use local_stack::trigger::{self, WebhookClient};
use local_stack::{Clients, Endpoint, sfn, tokens};
use serde_json::json;

/// Seconds a fresh target stays `initial` in the gateway's simulation.
const HEALTHY_AFTER_SECONDS: u32 = 1;
/// v3's targets turn unhealthy this long after turning healthy: after the first traffic
/// step has been applied, before its bake ends.
const V3_UNHEALTHY_AFTER_SECONDS: u32 = 2;
const EXECUTION_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(claims) => {
            print_summary(&claims);
            if claims.iter().all(|c| c.holds) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("\ndemo stopped: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One thing the demo promises, and whether it held.
struct Claim {
    text: String,
    holds: bool,
    detail: String,
}

fn claim(claims: &mut Vec<Claim>, text: impl Into<String>, holds: bool, detail: impl Into<String>) {
    let c = Claim {
        text: text.into(),
        holds,
        detail: detail.into(),
    };
    println!(
        "   {} {}{}",
        mark(c.holds),
        c.text,
        detail_suffix(&c.detail)
    );
    claims.push(c);
}

fn mark(holds: bool) -> &'static str {
    if holds { "✓" } else { "✗" }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!("  ({detail})")
    }
}

async fn run() -> anyhow::Result<Vec<Claim>> {
    let endpoint = Endpoint::from_env()?;
    let gateway = Gateway::new(&endpoint)?;
    println!(
        "Blue/green deploys of an ECS service, on the local stack at {}",
        endpoint.url()
    );
    println!(
        "(moto answers the AWS APIs and runs the real state machine; the gateway simulates ECS tasks and target health)\n"
    );
    gateway.wait_ready(Duration::from_secs(60)).await?;
    gateway.enable_step_functions_execution().await?;
    gateway.set_healthy_after(HEALTHY_AFTER_SECONDS).await?;

    let clients = endpoint.clients().await;
    local_stack::dynatrace::grant_function_access(&clients, &gateway).await?;
    let suffix = local_stack::env::random_suffix(5);
    let started = Instant::now();
    let mut spec = EnvSpec::new(&suffix);
    spec.image_tags.push("v4".into());
    let env = local_stack::env::build(&clients, &spec).await?;
    print_environment(&clients, &env, started.elapsed()).await?;

    let state_machine =
        sfn::create_deploy_state_machine(&clients.sfn, &env.state_machine_name()).await?;
    println!("   state machine  {}\n", short_arn(&state_machine));

    // The front door: the catalogue's deployment of this service, the trigger that starts
    // its deploys from ECR pushes, and the webhook Spinnaker calls.
    sfn::create_stack_state_machines(&clients.sfn).await?;
    let front = FrontDoor {
        deployment: format!("orders-{suffix}"),
        functions: Functions::new(&endpoint)?,
        hook: WebhookClient::from_env()?,
        token: trigger::webhook_token(&clients).await?,
    };
    let catalogue = json!({"deployments": {front.deployment.clone(): trigger::catalogue_entry(
        &env,
        &["v*"],
        &json!({
            "strategy": Strategy::Steps {
                steps: vec![TrafficStep::to(25).baking(4), TrafficStep::to(100)],
            },
            "timing": timing(),
        }),
    )}});
    trigger::write_catalogue("demo", &catalogue)?;
    println!(
        "   catalogue      {} follows {}:v* (traffic 25 % for 4 s, then 100 %)",
        front.deployment, env.repository_name
    );
    println!("   webhook        {}\n", front.hook.base_url);

    let mut claims = Vec::new();
    let v2_task_set = deploy_v2(&clients, &front, &env, &mut claims).await?;
    deploy_v3(
        &clients,
        &gateway,
        &front,
        &env,
        v2_task_set.clone(),
        &mut claims,
    )
    .await?;
    gateway.clear_faults().await?;
    deploy_v4_canary(
        &clients,
        &gateway,
        &env,
        &state_machine,
        v2_task_set,
        &mut claims,
    )
    .await?;
    rotate_token(&endpoint, &clients, &gateway, &env, &mut claims).await?;
    Ok(claims)
}

/// What the running tasks of the service hold for `DT_API_TOKEN` (token ids).
async fn held_api_tokens(gateway: &Gateway, env: &Environment) -> anyhow::Result<Vec<String>> {
    let state = gateway.state().await?;
    Ok(state["taskSets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ts| ts["cluster"] == env.cluster_name.as_str())
        .flat_map(|ts| ts["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|task| task["lastStatus"] == "RUNNING")
        .flat_map(|task| task["secrets"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["name"] == "DT_API_TOKEN")
        .filter_map(|s| s["holds"].as_str().map(str::to_string))
        .collect())
}

/// Rotates the plain Dynatrace token secret and follows the rotation workflow.
async fn rotate_token(
    endpoint: &Endpoint,
    clients: &Clients,
    gateway: &Gateway,
    env: &Environment,
    claims: &mut Vec<Claim>,
) -> anyhow::Result<()> {
    let secret = &env.secrets.api_token_arn;
    let old_id = tokens::token_id(&env.secrets.api_token)
        .unwrap_or_default()
        .to_string();
    println!(
        "4. Rotate the Dynatrace API token {} (tasks hold {old_id})",
        env.secrets.api_token_name
    );
    local_stack::rotation::register_tokens(gateway, env).await?;
    sfn::create_stack_state_machines(&clients.sfn).await?;
    let functions = local_stack::lambda::Functions::new(endpoint)?;
    let run = local_stack::rotation::rotate_now(clients, &functions, secret).await?;
    for (step, out) in local_stack::rotation::STEPS.iter().zip(&run.outputs) {
        let said = out["minted"]
            .as_array()
            .map(|ids| {
                format!(
                    "minted {}",
                    ids.iter()
                        .filter_map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .or_else(|| {
                out["tested"]
                    .as_array()
                    .map(|ids| format!("{} token(s) authenticate with their scopes", ids.len()))
            })
            .or_else(|| {
                out["workflow"]
                    .as_str()
                    .map(|w| format!("AWSCURRENT moved; workflow {}", short_arn(w)))
            })
            .or_else(|| out["done"].as_str().map(str::to_string))
            .unwrap_or_default();
        println!("   {step:<13} {said}");
    }
    let workflow = run.workflow_execution_arn.clone().unwrap_or_default();
    let outcome = sfn::wait(
        &clients.sfn,
        &workflow,
        Duration::from_millis(500),
        EXECUTION_TIMEOUT,
    )
    .await?;
    let states = outcome.states_entered();
    let checks = states.iter().filter(|s| *s == "CheckRedeploys").count();
    let steps: Vec<String> = states
        .iter()
        .filter(|s| {
            [
                "FindConsumers",
                "StartRedeploys",
                "RevokePrevious",
                "Rotated",
            ]
            .contains(&s.as_str())
                || s.ends_with("Failed")
                || s.ends_with("Unreachable")
        })
        .cloned()
        .collect();
    println!(
        "   workflow: {} (the redeploys checked {checks} times)",
        steps.join(" → ")
    );
    println!("   {}", outcome.status);
    println!();

    let current = clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await?;
    let new_id = current
        .secret_string()
        .and_then(tokens::token_id)
        .unwrap_or_default()
        .to_string();
    claim(
        claims,
        "rotation: a new token is the secret's AWSCURRENT version",
        current.version_id() == Some(run.version_id.as_str())
            && !new_id.is_empty()
            && new_id != old_id,
        format!("{old_id} → {new_id}"),
    );
    claim(
        claims,
        "rotation: the workflow redeployed the service and revoked the old token",
        outcome.succeeded(),
        outcome.status.as_str(),
    );
    let held = held_api_tokens(gateway, env).await?;
    claim(
        claims,
        "rotation: every running task holds the new token",
        !held.is_empty() && held.iter().all(|h| *h == new_id),
        format!("{} task(s): {}", held.len(), held.join(", ")),
    );
    let all = gateway.dynatrace_tokens().await?;
    let enabled = |id: &str| {
        all["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["id"] == id)
            .and_then(|t| t["enabled"].as_bool())
    };
    claim(
        claims,
        "rotation: the old token is revoked in Dynatrace, the new one is not",
        enabled(&old_id) == Some(false) && enabled(&new_id) == Some(true),
        format!(
            "{old_id} enabled: {:?}, {new_id} enabled: {:?}",
            enabled(&old_id),
            enabled(&new_id)
        ),
    );
    let mut text = sfn::history_text(&outcome.history);
    for o in &run.outputs {
        text.push_str(&o.to_string());
    }
    let new_value = current.secret_string().unwrap_or_default();
    claim(
        claims,
        "rotation: no token value in the workflow's history or rotate-secret's answers",
        !text.contains(&env.secrets.api_token) && !text.contains(new_value),
        "",
    );
    println!();
    Ok(())
}

/// Deploys v4 as a 10 % canary that Dynatrace finds failing.
async fn deploy_v4_canary(
    clients: &Clients,
    gateway: &Gateway,
    env: &Environment,
    state_machine: &str,
    v2_set: Option<TaskSetView>,
    claims: &mut Vec<Claim>,
) -> anyhow::Result<()> {
    let v2 = env.digest("v2").unwrap_or_default().to_string();
    let v4 = env.digest("v4").unwrap_or_default().to_string();
    println!(
        "3. Canary of v4 at 10 %, verified by Dynatrace: error rate of v4's release at most 2 %"
    );
    gateway.dynatrace_metric("errors.rate", &v2, 0.3).await?;
    gateway.dynatrace_metric("errors.rate", &v4, 7.5).await?;
    println!(
        "   Dynatrace (local fake) reports 0.3 % for v2's release, 7.5 % for v4's ({})",
        short_digest(&v4)
    );
    let mut request = env.deploy_request(
        env.pinned_image("v4")?,
        Strategy::Canary {
            percent: 10,
            bake_seconds: Some(6),
        },
        timing(),
    );
    request.dynatrace = Some(DynatraceRelease {
        release_product: None,
        release_stage: Some("demo".into()),
        events: true,
        entity_selector: None,
    });
    request.verification.dynatrace = Some(DynatraceVerification::parse(serde_json::json!({
        "windowSeconds": 300,
        "checks": [{
            "name": "error-rate",
            "metricSelector": "calc:service.orders.errors.rate",
            "threshold": {"max": 2}
        }]
    }))?);
    let name = sfn::execution_name(&[&env.prefix, "orders-v4"]);
    let (timeline, blue) = deploy(clients, env, state_machine, &name, &request).await?;
    let o = &timeline.outcome;
    let green = 1 - blue;
    println!();

    let cause = bluegreen::operations::readable_cause(o.cause.as_deref().unwrap_or_default());
    claim(
        claims,
        "v4: Dynatrace stopped the canary",
        o.status == ExecutionStatus::Failed
            && o.error.as_deref() == Some("VerificationFailed")
            && cause.contains("check error-rate"),
        truncate(&cause, 110),
    );
    claim(
        claims,
        "v4: green had 10 % of the traffic, then none",
        seen_weights(&timeline, green) == "0 → 10 → 0",
        format!("green weights seen: {}", seen_weights(&timeline, green)),
    );
    let sets = settled_task_sets(clients, env).await?;
    let v2_primary = v2_set
        .as_ref()
        .is_some_and(|v2| sets.iter().any(|t| t.id == v2.id && t.status == "PRIMARY"));
    claim(
        claims,
        "v4: v2 is alone again, primary, with all traffic",
        sets.len() == 1 && v2_primary,
        task_set_list(&sets),
    );
    let events: Vec<String> = gateway
        .dynatrace_events()
        .await?
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["properties"]["deployment.execution"] == name.as_str())
        .filter_map(|e| e["properties"]["deployment.milestone"].as_str())
        .map(str::to_string)
        .collect();
    claim(
        claims,
        "v4: Dynatrace received the deployment's start and rollback events",
        events == ["started", "rolled back"],
        events.join(", "),
    );
    let leaked = leaked_secrets(env, &timeline);
    claim(
        claims,
        "v4: no secret value in the execution history",
        leaked == 0,
        format!("{leaked} leaked"),
    );
    println!();
    Ok(())
}

async fn print_environment(
    clients: &Clients,
    env: &Environment,
    took: Duration,
) -> anyhow::Result<()> {
    println!(
        "Environment {} (built in {:.1}s)",
        env.prefix,
        took.as_secs_f64()
    );
    println!(
        "   service        {} in cluster {}, EXTERNAL deployment controller, {} tasks on Fargate",
        env.service_name, env.cluster_name, env.desired_count
    );
    println!(
        "   load balancer  {} HTTP:80 → weighted forward {} 100 / {} 0 (deregistration delay {}s)",
        short_arn(&env.load_balancer_arn),
        tg_name(env.tg_a()),
        tg_name(env.tg_b()),
        env.deregistration_delay_seconds
    );
    for (tag, digest) in &env.images {
        println!(
            "   image          {}:{tag} = {}",
            env.repository_name,
            short_digest(digest)
        );
    }
    for (name, value_from) in env.secrets.container_secrets() {
        println!(
            "   secret         {name} ← {}",
            value_from.rsplit(":secret:").next().unwrap_or(&value_from)
        );
    }
    println!(
        "                  tokens {} … (ids only; values never printed)",
        [&env.secrets.api_token, &env.secrets.tokens_paas_token]
            .iter()
            .filter_map(|t| tokens::token_id(t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let counts = inspect::target_counts(clients, env.tg_a()).await?;
    println!(
        "   blue           task set {} on {} running {} ({counts})",
        env.blue_task_set_id,
        tg_name(env.tg_a()),
        env.blue_tag
    );
    Ok(())
}

fn timing() -> Timing {
    Timing {
        poll_interval_seconds: 1,
        max_health_polls: 15,
        bake_seconds: 2,
        drain_delay_seconds: None,
    }
}

/// The index of blue's target group (the one with more traffic), printed.
async fn blue_index(clients: &Clients, env: &Environment) -> anyhow::Result<usize> {
    let weights = inspect::weights(clients, &env.route()).await?;
    let blue = usize::from(
        inspect::weight_of(&weights, env.tg_a()) < inspect::weight_of(&weights, env.tg_b()),
    );
    println!(
        "   blue is {} and green goes to {}",
        tg_name(&env.target_group_arns[blue]),
        tg_name(&env.target_group_arns[1 - blue])
    );
    Ok(blue)
}

/// Runs `request` as execution `name`, printing a line whenever the state, the weights or
/// the target health changes.
async fn deploy(
    clients: &Clients,
    env: &Environment,
    state_machine: &str,
    name: &str,
    request: &bluegreen::model::DeployRequest,
) -> anyhow::Result<(Timeline, usize)> {
    let blue = blue_index(clients, env).await?;
    let execution = sfn::start(&clients.sfn, state_machine, name, request).await?;
    follow(clients, env, name, &execution, blue).await
}

/// Follows execution `execution` (named `name`), printing a line whenever the state, the
/// weights or the target health changes; `blue` is the index of blue's target group.
async fn follow(
    clients: &Clients,
    env: &Environment,
    name: &str,
    execution: &str,
    blue: usize,
) -> anyhow::Result<(Timeline, usize)> {
    let sampler = Sampler {
        route: env.route(),
        target_groups: env.target_group_arns.clone(),
        interval: Duration::from_millis(250),
        timeout: EXECUTION_TIMEOUT,
    };
    let mut last: Option<local_stack::timeline::Sample> = None;
    let timeline = sampler
        .record(clients, execution, |s| {
            if last.as_ref().is_none_or(|l| !l.same_as(s)) {
                println!("   {}", s.line(blue));
                last = Some(s.clone());
            }
        })
        .await
        .with_context(|| format!("running execution {name}"))?;
    let o = &timeline.outcome;
    println!(
        "   {} after {:.1}s",
        o.status,
        timeline
            .samples
            .last()
            .map_or(0.0, |s| s.elapsed.as_secs_f64())
    );
    println!("   states: {}", o.states_entered().join(" → "));
    if let Some(error) = &o.error {
        println!("   error: {error}");
    }
    if let Some(cause) = &o.cause {
        println!("   cause: {}", bluegreen::operations::readable_cause(cause));
    }
    Ok((timeline, blue))
}

/// The trigger, its catalogue deployment, and the webhook.
struct FrontDoor {
    deployment: String,
    functions: Functions,
    hook: WebhookClient,
    token: String,
}

/// ECR reports a push of v2 and the trigger deploys it in two steps; answers the task set v2
/// runs in.
async fn deploy_v2(
    clients: &Clients,
    front: &FrontDoor,
    env: &Environment,
    claims: &mut Vec<Claim>,
) -> anyhow::Result<Option<TaskSetView>> {
    println!(
        "1. ECR reports a push of v2; the trigger deploys it: 25 % for 4 s, then 100 %, poll 1 s"
    );
    let digest = env.digest("v2").unwrap_or_default().to_string();
    let event = trigger::push_event(env, "v2", &digest, "PUSH", "SUCCESS");
    let pushed = front
        .functions
        .invoke(trigger::FUNCTION, &event)
        .await?
        .map_err(|e| anyhow::anyhow!("the trigger refused the push: {e}"))?;
    let deploys = pushed["deploys"].as_array().cloned().unwrap_or_default();
    let execution = deploys
        .first()
        .and_then(|d| d["executionArn"].as_str())
        .context("the push started no deploy")?
        .to_string();
    let name = deploys[0]["executionName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "   trigger: {} → {name}",
        short_image(pushed["image"].as_str().unwrap_or_default())
    );
    let again = front
        .functions
        .invoke(trigger::FUNCTION, &event)
        .await?
        .map_err(|e| anyhow::anyhow!("the trigger refused the repeated push: {e}"))?;
    println!(
        "   the same event again (EventBridge delivers at least once): {}",
        again["deploys"][0]["status"].as_str().unwrap_or("?")
    );
    claim(
        claims,
        "v2: the push started one deploy, pinned by digest; the repeated event none",
        deploys.len() == 1
            && deploys[0]["status"] == "started"
            && pushed["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(&digest))
            && again["deploys"][0]["status"] == "alreadyStarted"
            && again["deploys"][0]["executionArn"] == execution.as_str(),
        format!("{} then {}", deploys.len(), again["deploys"][0]["status"]),
    );
    let blue = blue_index(clients, env).await?;
    let (timeline, blue) = follow(clients, env, &name, &execution, blue).await?;
    let green = 1 - blue;
    let o = &timeline.outcome;
    println!();

    claim(
        claims,
        "v2: the execution succeeded",
        o.succeeded(),
        o.status.as_str(),
    );

    let weights = inspect::weights(clients, &env.route()).await?;
    let (a, b) = (
        inspect::weight_of(&weights, env.tg_a()),
        inspect::weight_of(&weights, env.tg_b()),
    );
    claim(
        claims,
        format!(
            "v2: all traffic on {} (weights {a} / {b})",
            tg_name(env.tg_b())
        ),
        a == 0 && b == 100,
        "",
    );
    claim(
        claims,
        "v2: green took part of the traffic before all of it",
        timeline
            .samples
            .iter()
            .any(|s| s.weights[green] > 0 && s.weights[green] < 100),
        format!("green weights seen: {}", seen_weights(&timeline, green)),
    );

    let sets = settled_task_sets(clients, env).await?;
    claim(
        claims,
        "v2: blue's task set is gone",
        sets.iter().all(|t| t.id != env.blue_task_set_id),
        task_set_list(&sets),
    );
    let v2_digest = env.digest("v2").unwrap_or_default();
    let mut v2_set = None;
    let mut images = Vec::new();
    for t in &sets {
        let app = inspect::container(clients, &t.task_definition_arn, APP_CONTAINER).await?;
        let image = app.image().unwrap_or_default().to_string();
        if image.ends_with(&format!("@{v2_digest}")) {
            v2_set = Some(t.clone());
        }
        images.push(short_image(&image));
    }
    claim(
        claims,
        "v2: one task set left, running v2 pinned by digest, primary",
        sets.len() == 1 && v2_set.as_ref().is_some_and(|t| t.status == "PRIMARY"),
        images.join(", "),
    );

    match &v2_set {
        Some(t) => compare_task_definitions(clients, env, &t.task_definition_arn, claims).await?,
        None => claim(
            claims,
            "v2: the task definition kept its secrets block",
            false,
            "no v2 task set",
        ),
    }

    let leaked = leaked_secrets(env, &timeline);
    claim(
        claims,
        "v2: no secret value in the execution history",
        leaked == 0,
        format!("{leaked} leaked"),
    );
    println!();
    Ok(v2_set)
}

async fn compare_task_definitions(
    clients: &Clients,
    env: &Environment,
    green_task_definition: &str,
    claims: &mut Vec<Claim>,
) -> anyhow::Result<()> {
    let blue = inspect::task_definition(clients, &env.task_definition_arn).await?;
    let green = inspect::task_definition(clients, green_task_definition).await?;
    let secrets = |td: &aws_sdk_ecs::types::TaskDefinition| -> Vec<(String, String)> {
        td.container_definitions()
            .iter()
            .find(|c| c.name() == Some(APP_CONTAINER))
            .map(|c| {
                c.secrets()
                    .iter()
                    .map(|s| (s.name().to_string(), s.value_from().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (blue_secrets, green_secrets) = (secrets(&blue), secrets(&green));
    claim(
        claims,
        "v2: the task definition's secrets block is identical to v1's",
        !blue_secrets.is_empty() && blue_secrets == green_secrets,
        format!(
            "{} entries: {}",
            green_secrets.len(),
            green_secrets
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // Everything but the app's image must survive the clone.
    let without_image = |td: &aws_sdk_ecs::types::TaskDefinition| {
        let containers: Vec<_> = td
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.name() == Some(APP_CONTAINER) {
                    c.image = None;
                }
                c
            })
            .collect();
        (
            containers,
            td.family().map(str::to_string),
            td.cpu().map(str::to_string),
            td.memory().map(str::to_string),
            td.network_mode().cloned(),
            td.requires_compatibilities().to_vec(),
            td.execution_role_arn().map(str::to_string),
            td.task_role_arn().map(str::to_string),
            td.runtime_platform().cloned(),
        )
    };
    claim(
        claims,
        "v2: every other field of the task definition is kept (only the image changed)",
        without_image(&blue) == without_image(&green),
        format!(
            "{} → {}",
            short_arn(&env.task_definition_arn),
            short_arn(green_task_definition)
        ),
    );
    Ok(())
}

async fn deploy_v3(
    clients: &Clients,
    gateway: &Gateway,
    front: &FrontDoor,
    env: &Environment,
    v2_set: Option<TaskSetView>,
    claims: &mut Vec<Claim>,
) -> anyhow::Result<()> {
    let v3_digest = env.digest("v3").unwrap_or_default().to_string();
    println!(
        "2. Spinnaker's webhook deploys v3, whose tasks turn unhealthy {V3_UNHEALTHY_AFTER_SECONDS} s after turning healthy"
    );
    gateway
        .add_fault(&Fault::unhealthy_after(
            &v3_digest,
            V3_UNHEALTHY_AFTER_SECONDS,
        ))
        .await?;
    println!("   fault injected for image {}", short_digest(&v3_digest));
    let body = json!({
        "deployment": front.deployment,
        "image": env.tagged_image("v3"),
        "spinnakerExecutionId": format!("01JDEMO{}", env.suffix.to_uppercase()),
    });
    let started = front
        .hook
        .call(&front.token, "POST", "/deployments", Some(&body))
        .await?;
    let status_url = started.location.clone().unwrap_or_default();
    println!(
        "   POST /deployments → {} Location: {}",
        started.status,
        status_url
            .strip_prefix(&front.hook.base_url)
            .unwrap_or(&status_url)
    );
    claim(
        claims,
        "v3: the webhook answered 202 with the status URL",
        started.status == 202 && !status_url.is_empty(),
        truncate(&started.text, 90),
    );
    let execution = started.body["executionArn"]
        .as_str()
        .with_context(|| format!("the webhook started nothing: {}", started.text))?
        .to_string();
    let name = started.body["executionName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let blue = blue_index(clients, env).await?;
    let (timeline, blue) = follow(clients, env, &name, &execution, blue).await?;
    let reported = front
        .hook
        .call(&front.token, "GET", &status_url, None)
        .await?;
    let summary = reported.body["progress"]["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "   GET {} → {}: {}",
        status_url
            .strip_prefix(&front.hook.base_url)
            .unwrap_or(&status_url),
        reported.body["status"].as_str().unwrap_or("?"),
        truncate(&summary, 80)
    );
    claim(
        claims,
        "v3: the webhook reports FAILED with the rollback's reason",
        reported.body["status"] == "FAILED" && summary.contains("rolled back"),
        truncate(&summary, 90),
    );
    let o = &timeline.outcome;
    let green = 1 - blue;
    println!();

    claim(
        claims,
        "v3: the execution failed",
        o.status == ExecutionStatus::Failed,
        o.status.as_str(),
    );
    let cause = bluegreen::operations::readable_cause(o.cause.as_deref().unwrap_or_default());
    claim(
        claims,
        "v3: it failed with the rollback's reason",
        o.error.as_deref().is_some_and(|e| !e.is_empty()) && cause.contains("rolled back"),
        format!(
            "{}: {}",
            o.error.as_deref().unwrap_or("no error"),
            truncate(&cause, 90)
        ),
    );
    let max_green = timeline.max_weight(green);
    claim(
        claims,
        "v3: green had taken traffic before the rollback",
        max_green > 0,
        format!("green weights seen: {}", seen_weights(&timeline, green)),
    );

    let weights = inspect::weights(clients, &env.route()).await?;
    let (a, b) = (
        inspect::weight_of(&weights, env.tg_a()),
        inspect::weight_of(&weights, env.tg_b()),
    );
    claim(
        claims,
        format!(
            "v3: all traffic back on v2's {} (weights {a} / {b})",
            tg_name(env.tg_b())
        ),
        a == 0 && b == 100,
        "",
    );

    let sets = settled_task_sets(clients, env).await?;
    let mut v3_sets = 0;
    for t in &sets {
        let app = inspect::container(clients, &t.task_definition_arn, APP_CONTAINER).await?;
        if app.image().unwrap_or_default().contains(&v3_digest) {
            v3_sets += 1;
        }
    }
    claim(
        claims,
        "v3: v3's task set is gone",
        v3_sets == 0,
        task_set_list(&sets),
    );
    let v2_primary = v2_set
        .as_ref()
        .is_some_and(|v2| sets.iter().any(|t| t.id == v2.id && t.status == "PRIMARY"));
    claim(
        claims,
        "v3: v2's task set is still primary",
        v2_primary,
        v2_set
            .map(|t| t.id)
            .unwrap_or_else(|| "no v2 task set".into()),
    );
    let leaked = leaked_secrets(env, &timeline);
    claim(
        claims,
        "v3: no secret value in the execution history",
        leaked == 0,
        format!("{leaked} leaked"),
    );
    println!();
    Ok(())
}

/// The service's task sets once the removed one finished draining (ECS lists it as
/// `DRAINING` until its targets drained and its tasks stopped).
async fn settled_task_sets(
    clients: &Clients,
    env: &Environment,
) -> anyhow::Result<Vec<TaskSetView>> {
    let now = inspect::task_sets(clients, &env.cluster_name, &env.service_name).await?;
    if let Some(draining) = now.iter().find(|t| t.status == "DRAINING") {
        println!(
            "   task set {} is DRAINING (deregistration delay {}s); waiting until its tasks stopped",
            draining.id, env.deregistration_delay_seconds
        );
    }
    inspect::task_sets_once_drained(
        clients,
        &env.cluster_name,
        &env.service_name,
        Duration::from_secs(u64::from(env.deregistration_delay_seconds) + 60),
    )
    .await
}

fn leaked_secrets(env: &Environment, timeline: &Timeline) -> usize {
    let o = &timeline.outcome;
    let mut text = sfn::history_text(&o.history);
    text.push_str(o.cause.as_deref().unwrap_or_default());
    if let Some(out) = &o.output {
        text.push_str(&out.to_string());
    }
    env.secrets
        .values()
        .iter()
        .filter(|v| text.contains(**v))
        .count()
}

fn seen_weights(timeline: &Timeline, index: usize) -> String {
    let mut seen: Vec<i32> = Vec::new();
    for s in &timeline.samples {
        if seen.last() != Some(&s.weights[index]) {
            seen.push(s.weights[index]);
        }
    }
    seen.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

fn task_set_list(sets: &[TaskSetView]) -> String {
    if sets.is_empty() {
        return "no task sets".into();
    }
    sets.iter()
        .map(|t| format!("{} {}", t.id, t.status))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_summary(claims: &[Claim]) {
    println!("Summary");
    for c in claims {
        println!("   {} {}", mark(c.holds), c.text);
    }
    let held = claims.iter().filter(|c| c.holds).count();
    println!("{held} of {} claims hold.", claims.len());
    if held < claims.len() {
        println!("Logs of the local stack: .local/logs/ (gateway.log, moto.log, lambda.log)");
    }
}

/// The name part of a target group ARN (`…:targetgroup/<name>/<id>`).
fn tg_name(arn: &str) -> &str {
    arn.split('/').nth(1).unwrap_or(arn)
}

/// The resource part of an ARN.
fn short_arn(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(digest: &str) -> String {
    truncate(digest, 19)
}

/// `repo@sha256:0123456789ab…` without the registry host.
fn short_image(image: &str) -> String {
    let no_host = image.split_once('/').map_or(image, |(_, rest)| rest);
    match no_host.split_once('@') {
        Some((repo, digest)) => format!("{repo}@{}", short_digest(digest)),
        None => no_host.to_string(),
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

    #[test]
    fn arns_and_images_are_shortened_for_reading() {
        assert_eq!(
            tg_name(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bg-x-orders-a/73e2d6bc24d8a067"
            ),
            "bg-x-orders-a"
        );
        assert_eq!(
            short_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/bg-x-orders:2"),
            "task-definition/bg-x-orders:2"
        );
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            short_image(&format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/bg-x/orders@{digest}"
            )),
            "bg-x/orders@sha256:abababababab…"
        );
    }
}
