//! The `rotate-secret` function: Secrets Manager's rotation of Dynatrace tokens and the
//! actions of the rotation workflow. Wiring only, the logic is [`bluegreen::rotation`].

use bluegreen::aws::{AwsClients, SdkSfn, sdk_config};
use bluegreen::dynatrace::SdkSecretStore;
use bluegreen::rotation::{MintPolicy, Rotator, admin_from_env, workflow::WorkflowConfig};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let conf = sdk_config().await;
    let fail = |e: &bluegreen::Error| tracing::error!(error = %e, "cannot start: fix the function's environment");
    let admin = admin_from_env(&conf).inspect_err(fail)?;
    let policy = MintPolicy::from_env().inspect_err(fail)?;
    let workflow = WorkflowConfig::from_env().inspect_err(fail)?;
    let aws = AwsClients::from_conf(&conf);
    let secrets = SdkSecretStore::from_conf(&conf);
    let sfn = SdkSfn::from_conf(&conf);
    let rotator = Rotator {
        secrets: &secrets,
        admin: &admin,
        ecs: &aws.ecs,
        elb: &aws.elb,
        sfn: &sfn,
        policy: &policy,
        workflow: &workflow,
    };
    let rotator = &rotator;

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("rotate-secret", event, |input: serde_json::Value| {
                rotator.run(input, bluegreen::lambda::now_millis())
            })
            .await
        },
    ))
    .await
}
