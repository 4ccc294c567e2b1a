//! The `trigger` function: ECR push events and the Spinnaker webhook (its Function URL)
//! start deploys of the catalogue's deployments. Wiring only, the logic is
//! [`bluegreen::trigger`].

use bluegreen::aws::{AwsClients, SdkSfn, sdk_config};
use bluegreen::dynatrace::SdkSecretStore;
use bluegreen::trigger::catalogue::CatalogueSource;
use bluegreen::trigger::webhook::TokenCheck;
use bluegreen::trigger::{Trigger, TriggerConfig};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let fail = |e: &bluegreen::Error| tracing::error!(error = %e, "cannot start: fix the function's environment");
    let config = TriggerConfig::from_env().inspect_err(fail)?;
    let catalogue = CatalogueSource::from_env().inspect_err(fail)?;
    // Read it once now, so that a broken catalogue shows in the log at start.
    catalogue.load().inspect_err(fail)?;
    let conf = sdk_config().await;
    let aws = AwsClients::from_conf(&conf);
    let sfn = SdkSfn::from_conf(&conf);
    let tokens = config
        .token_secret
        .as_deref()
        .map(|secret| TokenCheck::new(SdkSecretStore::from_conf(&conf), secret));
    if tokens.is_none() {
        tracing::warn!("WEBHOOK_TOKEN_SECRET is not set: the webhook refuses every request");
    }
    let trigger = Trigger {
        sfn: &sfn,
        ecs: &aws.ecs,
        tokens: tokens.as_ref(),
        catalogue: &catalogue,
        config: &config,
    };
    let trigger = &trigger;

    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            bluegreen::lambda::handle("trigger", event, |input: serde_json::Value| {
                Box::pin(trigger.handle(input))
            })
            .await
        },
    ))
    .await
}
