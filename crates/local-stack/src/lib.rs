//! Fixtures for the local stack (moto + the project's gateway + `cargo lambda watch`, see
//! `docs/local-stack.md`) and the pieces the demo and the end-to-end tests share.
//!
//! - [`Endpoint`] / [`Clients`]: the gateway's URL and SDK clients that talk only to it.
//! - [`env`]: builds a realistic ECS/ALB/ECR/Secrets Manager environment with a blue task set.
//! - [`sfn`]: creates the deploy state machine from the real ASL and runs executions.
//! - [`timeline`]: samples state, weights and target health while an execution runs.
//! - [`gateway`]: the gateway's `/_local` control endpoint (faults, health delay, reset).
//! - [`inspect`]: reads listener weights, target health, task sets and task definitions.
//! - [`lambda`]: invokes the deploy functions directly through the Lambda Invoke API.
//! - [`dynatrace`]: the functions' tokens for the fake Dynatrace API.
//! - [`rotation`]: Secrets Manager's part of a token rotation, which moto cannot play.
//! - [`trigger`]: the trigger's catalogue directory, webhook token and client, ECR push events.

pub mod dynatrace;
pub mod endpoint;
pub mod env;
pub mod gateway;
pub mod image;
pub mod inspect;
pub mod lambda;
pub mod rotation;
pub mod sfn;
pub mod timeline;
pub mod tokens;
pub mod trigger;

pub use endpoint::{Clients, Endpoint};
