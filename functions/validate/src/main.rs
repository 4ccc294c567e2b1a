//! The `validate` step of the deploy state machine: wiring only, the logic is
//! [`bluegreen::steps::validate`].

use bluegreen::aws::AwsClients;
use bluegreen::config::Config;
use bluegreen::steps::validate::validate;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "cannot start: fix the function's environment");
    })?;
    let aws = AwsClients::from_env().await;
    let (aws, config) = (&aws, &config);

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("validate", event, |input| {
                validate(&aws.ecs, &aws.elb, &aws.ecr, &aws.cloudwatch, config, input)
            })
            .await
        },
    ))
    .await
}
