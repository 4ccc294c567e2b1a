//! The `create-green` step of the deploy state machine: wiring only, the logic is
//! [`bluegreen::steps::create_green`].

use bluegreen::aws::AwsClients;
use bluegreen::steps::create_green::create_green;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = AwsClients::from_env().await;
    let aws = &aws;

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("create-green", event, |input| {
                create_green(&aws.ecs, &aws.elb, &aws.ecr, input)
            })
            .await
        },
    ))
    .await
}
