//! The `create-green` step of the deploy state machine: wiring only, the logic is
//! [`bluegreen::steps::create_green`].

use bluegreen::aws::{AwsClients, sdk_config};
use bluegreen::steps::create_green::create_green;
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
            bluegreen::lambda::handle("create-green", event, |input| {
                create_green(&aws.ecs, &aws.elb, &aws.ecr, dynatrace, input)
            })
            .await
        },
    ))
    .await
}
