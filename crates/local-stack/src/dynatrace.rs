//! The functions' access to the local stack's fake Dynatrace API.
//!
//! `local/stack.sh` starts the functions with `DYNATRACE_API_URL` pointing at the gateway's
//! `/dynatrace` and `DYNATRACE_TOKEN_SECRET` = [`TOKEN_SECRET`]. [`grant_function_access`]
//! mints the token (scopes `metrics.read`, `events.ingest`) in the fake and stores it in
//! that secret, as an operator stores a real Dynatrace token in Secrets Manager.

use anyhow::Context;

use crate::Clients;
use crate::gateway::Gateway;

/// The Secrets Manager secret the local functions read their Dynatrace token from.
pub const TOKEN_SECRET: &str = "local/dynatrace/deployer-token";

/// Scopes the deploy functions' token needs.
pub const DEPLOYER_SCOPES: [&str; 2] = ["metrics.read", "events.ingest"];

/// Mints a deployer token in the fake Dynatrace and makes it the current value of
/// [`TOKEN_SECRET`] (creating the secret the first time). Safe to call again: the functions
/// pick up the new token when the old one is rejected.
///
/// # Errors
/// When the gateway or Secrets Manager does not answer.
pub async fn grant_function_access(clients: &Clients, gateway: &Gateway) -> anyhow::Result<()> {
    let token = gateway
        .dynatrace_token("local-deployer", &DEPLOYER_SCOPES)
        .await?;
    // Tests connect concurrently: whoever creates the secret first, the others update it.
    let put = || {
        clients
            .secrets
            .put_secret_value()
            .secret_id(TOKEN_SECRET)
            .secret_string(token.clone())
            .send()
    };
    if put().await.is_err() {
        let created = clients
            .secrets
            .create_secret()
            .name(TOKEN_SECRET)
            .description("Dynatrace token of the deploy functions (local stack)")
            .secret_string(token.clone())
            .send()
            .await;
        if created.is_err() {
            put()
                .await
                .with_context(|| format!("storing the deployer token in {TOKEN_SECRET}"))?;
        }
    }
    Ok(())
}
