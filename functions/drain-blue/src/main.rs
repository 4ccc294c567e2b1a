//! The `drain-blue` step of the deploy state machine: wiring only, the logic is
//! [`bluegreen::steps::drain_blue`].

use bluegreen::aws::AwsClients;
use bluegreen::steps::drain_blue::drain_blue;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = AwsClients::from_env().await;
    let aws = &aws;

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("drain-blue", event, |input| {
                drain_blue(&aws.ecs, &aws.elb, input)
            })
            .await
        },
    ))
    .await
}
