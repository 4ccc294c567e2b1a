//! Harness of the end-to-end tests: the real state machine, executed by moto, calling the real
//! Lambda binaries through the gateway (`docs/local-stack.md`). `make e2e` starts the stack.
//!
//! Tests run in parallel in one process against one moto, so:
//! - every test builds its own [`TestEnv`] (names carry a unique suffix; never reset moto);
//! - faults are keyed on an image digest, which is unique per environment and tag, so a
//!   fault never touches another test; never clear faults while other tests run;
//! - the gateway's `healthyAfterSeconds` is global: [`Stack::connect`] sets it to
//!   [`HEALTHY_AFTER_SECONDS`] and no test changes it.
//!
//! Each `#[tokio::test]` has its own runtime, and SDK clients must not outlive theirs: build
//! the [`Stack`] inside the test.

use std::time::Duration;

use anyhow::Context;
use bluegreen::model::{DeployRequest, Timing};
use local_stack::env::{EnvSpec, Environment};
use local_stack::gateway::Gateway;
use local_stack::timeline::{Sampler, Timeline};
use local_stack::{Clients, Endpoint, sfn};

/// Seconds a new simulated target stays `initial`.
pub const HEALTHY_AFTER_SECONDS: u32 = 1;
/// Bound on one execution; generous, nothing asserts on wall-clock time.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection to the running local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub endpoint: Endpoint,
    pub clients: Clients,
    pub gateway: Gateway,
}

impl Stack {
    /// Connects to the stack at `BG_GATEWAY_PORT`, waits until the gateway reaches moto and
    /// the Lambda host, turns on moto's state machine execution and sets the simulation's
    /// health delay.
    ///
    /// # Errors
    /// When the stack is not up (start it with `make local-up`, or run `make e2e`).
    pub async fn connect() -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_env()?;
        let gateway = Gateway::new(&endpoint)?;
        gateway.wait_ready(Duration::from_secs(30)).await?;
        gateway.enable_step_functions_execution().await?;
        gateway.set_healthy_after(HEALTHY_AFTER_SECONDS).await?;
        let clients = endpoint.clients().await;
        Ok(Stack {
            endpoint,
            clients,
            gateway,
        })
    }

    /// Builds an environment for test `test` from `spec` (its suffix is replaced by a unique
    /// one) and creates its deploy state machine from the workspace's ASL.
    ///
    /// # Errors
    /// When building the environment or the state machine fails.
    pub async fn environment(&self, test: &str, mut spec: EnvSpec) -> anyhow::Result<TestEnv> {
        spec.suffix = unique_suffix(test);
        let env = local_stack::env::build(&self.clients, &spec)
            .await
            .with_context(|| format!("building the environment of {test}"))?;
        let state_machine_arn =
            sfn::create_deploy_state_machine(&self.clients.sfn, &env.state_machine_name())
                .await
                .with_context(|| format!("creating the state machine of {test}"))?;
        Ok(TestEnv {
            env,
            state_machine_arn,
        })
    }
}

/// A suffix unique to this run of `test`: up to 6 characters of its name and 5 random ones.
pub fn unique_suffix(test: &str) -> String {
    let stem: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(6)
        .collect();
    let random = local_stack::env::random_suffix(5);
    if stem.is_empty() {
        random
    } else {
        format!("{stem}-{random}")
    }
}

/// Timing for tests: poll every second, bake one second, drain after the (1 s)
/// deregistration delay.
pub fn fast_timing() -> Timing {
    Timing {
        poll_interval_seconds: 1,
        max_health_polls: 15,
        bake_seconds: 1,
        drain_delay_seconds: None,
    }
}

/// One test's environment and its deploy state machine.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub env: Environment,
    pub state_machine_arn: String,
}

impl TestEnv {
    /// Starts execution `name` of `request` and samples it every 250 ms until it ends.
    ///
    /// # Errors
    /// When the execution cannot be started, runs past [`EXECUTION_TIMEOUT`], or cannot be
    /// observed.
    pub async fn deploy(
        &self,
        stack: &Stack,
        name: &str,
        request: &DeployRequest,
    ) -> anyhow::Result<Timeline> {
        let name = sfn::execution_name(&[&self.env.prefix, name]);
        let execution =
            sfn::start(&stack.clients.sfn, &self.state_machine_arn, &name, request).await?;
        self.sampler()
            .record(&stack.clients, &execution, |_| {})
            .await
    }

    /// A sampler of this environment's route and target groups.
    pub fn sampler(&self) -> Sampler {
        Sampler {
            route: self.env.route(),
            target_groups: self.env.target_group_arns.clone(),
            interval: Duration::from_millis(250),
            timeout: EXECUTION_TIMEOUT,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_valid_names_and_differ_between_runs() {
        let a = unique_suffix("blue_is_drained_after_the_shift");
        let b = unique_suffix("blue_is_drained_after_the_shift");
        assert_ne!(a, b);
        assert!(a.starts_with("blueis-"), "{a}");
        assert!(EnvSpec::new(a).prefix().is_ok());
        assert!(EnvSpec::new(unique_suffix("")).prefix().is_ok());
    }
}
