//! The `verify-health` step of the deploy state machine: wiring only, the logic is
//! [`bluegreen::steps::verify_health`].

use bluegreen::aws::{AwsClients, sdk_config};
use bluegreen::steps::verify_health::verify_health;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let conf = sdk_config().await;
    let dynatrace = bluegreen::dynatrace::from_env(&conf).inspect_err(|e| {
        tracing::error!(error = %e, "cannot start: fix the function's environment");
    })?;
    let aws = AwsClients::from_conf(&conf);
    let (aws, dynatrace) = (&aws, dynatrace.as_ref());

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("verify-health", event, |input| {
                let now_ms = bluegreen::lambda::now_millis();
                verify_health(
                    &aws.ecs,
                    &aws.elb,
                    &aws.cloudwatch,
                    dynatrace,
                    input,
                    now_ms,
                )
            })
            .await
        },
    ))
    .await
}
