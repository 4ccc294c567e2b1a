//! `make rotate SECRET=<name or ARN>`: rotate a Dynatrace token secret now, on the local
//! stack. Plays Secrets Manager's part (see `local_stack::rotation`), then follows the
//! rotation workflow until the consumers were redeployed and the previous tokens revoked.
//! On AWS the same is `aws secretsmanager rotate-secret --secret-id <ARN>`.

use std::process::ExitCode;
use std::time::Duration;

use local_stack::gateway::Gateway;
use local_stack::lambda::Functions;
use local_stack::{Endpoint, rotation, sfn};

#[tokio::main]
async fn main() -> ExitCode {
    let Some(secret) = std::env::args().nth(1) else {
        eprintln!("usage: rotate <secret name or ARN>   (make rotate SECRET=…)");
        return ExitCode::from(2);
    };
    match run(&secret).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rotation of {secret} stopped: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(secret: &str) -> anyhow::Result<bool> {
    let endpoint = Endpoint::from_env()?;
    let gateway = Gateway::new(&endpoint)?;
    gateway.wait_ready(Duration::from_secs(30)).await?;
    gateway.enable_step_functions_execution().await?;
    let clients = endpoint.clients().await;
    local_stack::dynatrace::grant_function_access(&clients, &gateway).await?;
    sfn::create_stack_state_machines(&clients.sfn).await?;
    let functions = Functions::new(&endpoint)?;

    let run = rotation::rotate_now(&clients, &functions, secret).await?;
    println!("rotated {secret} to version {}", run.version_id);
    for (step, out) in rotation::STEPS.iter().zip(&run.outputs) {
        println!("  {step:<13} {out}");
    }
    let Some(workflow) = run.workflow_execution_arn else {
        println!("no rotation workflow was started: the previous tokens stay valid");
        return Ok(false);
    };
    println!("rotation workflow {workflow}");
    let outcome = sfn::wait(
        &clients.sfn,
        &workflow,
        Duration::from_secs(1),
        Duration::from_secs(1800),
    )
    .await?;
    println!("  states: {}", outcome.states_entered().join(" → "));
    println!("  {}", outcome.status);
    if let (Some(error), Some(cause)) = (&outcome.error, &outcome.cause) {
        println!(
            "  {error}: {}",
            bluegreen::operations::readable_cause(cause)
        );
    }
    Ok(outcome.succeeded())
}
