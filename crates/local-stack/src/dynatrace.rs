//! The functions' access to the local stack's fake Dynatrace API.
//!
//! `local/stack.sh` starts the functions with `DYNATRACE_API_URL` pointing at the gateway's
//! `/dynatrace`, `DYNATRACE_TOKEN_SECRET` = [`TOKEN_SECRET`] and
//! `DYNATRACE_ADMIN_TOKEN_SECRET` = [`ADMIN_TOKEN_SECRET`]. [`grant_function_access`] mints
//! both tokens in the fake (the deploy functions': `metrics.read`, `events.ingest`;
//! rotate-secret's: `apiTokens.read`, `apiTokens.write`) and stores them in those secrets, as
//! an operator stores real Dynatrace tokens in Secrets Manager.

use anyhow::Context;

use crate::Clients;
use crate::gateway::Gateway;

/// The Secrets Manager secret the local functions read their Dynatrace token from.
pub const TOKEN_SECRET: &str = "local/dynatrace/deployer-token";

/// Scopes the deploy functions' token needs.
pub const DEPLOYER_SCOPES: [&str; 2] = ["metrics.read", "events.ingest"];

/// The Secrets Manager secret `rotate-secret` reads its Dynatrace admin token from.
pub const ADMIN_TOKEN_SECRET: &str = "local/dynatrace/admin-token";

/// Scopes the admin token needs to mint, look up and revoke tokens.
pub const ADMIN_SCOPES: [&str; 2] = ["apiTokens.read", "apiTokens.write"];

/// Mints the functions' tokens in the fake Dynatrace and makes them the current values of
/// [`TOKEN_SECRET`] and [`ADMIN_TOKEN_SECRET`] (creating the secrets the first time). Safe to
/// call again: the functions pick up a new token when the old one is rejected.
///
/// # Errors
/// When the gateway or Secrets Manager does not answer.
pub async fn grant_function_access(clients: &Clients, gateway: &Gateway) -> anyhow::Result<()> {
    for (secret, name, scopes) in [
        (TOKEN_SECRET, "local-deployer", &DEPLOYER_SCOPES),
        (ADMIN_TOKEN_SECRET, "local-token-admin", &ADMIN_SCOPES),
    ] {
        let token = gateway.dynatrace_token(name, scopes).await?;
        store(clients, secret, &token).await?;
    }
    Ok(())
}

/// Makes `value` the current value of `secret`, creating it if needed.
async fn store(clients: &Clients, secret: &str, value: &str) -> anyhow::Result<()> {
    // Tests connect concurrently: whoever creates the secret first, the others update it.
    let put = || {
        clients
            .secrets
            .put_secret_value()
            .secret_id(secret)
            .secret_string(value)
            .send()
    };
    if put().await.is_err() {
        let created = clients
            .secrets
            .create_secret()
            .name(secret)
            .description("Dynatrace token of the local functions")
            .secret_string(value)
            .send()
            .await;
        if created.is_err() {
            put()
                .await
                .with_context(|| format!("storing a token in {secret}"))?;
        }
    }
    Ok(())
}
