//! Blue/green deployments of Amazon ECS services behind an Application Load Balancer.
//!
//! The service uses the `EXTERNAL` deployment controller; a deployment is a second task set
//! (green) on the idle target group of a pair, and traffic moves by the weighted forward of the
//! production listener (or one of its rules). Each step of [`steps`] is one Lambda function of
//! the Step Functions workflow in `statemachine/deploy.asl.json`, which owns waiting, polling,
//! retries and rollback.
//!
//! - [`model`]: the execution input and the normalized [`model::Deployment`].
//! - [`ports`]: narrow traits over ECS, ELBv2 and ECR; [`aws`] implements them with the SDKs.
//! - [`error`]: the one error type and its stable ASL names.

pub mod aws;
pub mod config;
pub mod dynatrace;
pub mod error;
pub mod lambda;
pub mod model;
pub mod operations;
pub mod ports;
pub mod rotation;
pub mod steps;
pub mod taskdef;
pub mod trigger;
pub mod verification;

pub use error::{Error, Result};
