//! The local stack's single endpoint.
//!
//! Lambda invokes go to `cargo lambda watch` (with Lambda's error contract), everything else
//! to moto, and the ECS control plane moto lacks (tasks of task sets, their targets' health,
//! ECS counts) is simulated here, as is a fake Dynatrace API under `/dynatrace`. CloudWatch
//! calls are translated between the SDK's CBOR protocol and moto's JSON one. See
//! `docs/local-stack.md`.

pub mod calls;
pub mod cloudwatch;
pub mod config;
pub mod control;
pub mod dynatrace;
pub mod ecs;
pub mod elbv2;
pub mod error;
pub mod ids;
pub mod lambda;
pub mod moto;
pub mod proxy;
pub mod secrets;
pub mod server;
pub mod sim;
pub mod xml;

pub use config::Config;
pub use error::Error;

/// Logs to stdout with structured fields; `RUST_LOG` filters (default `info`) and
/// `BG_LOG_FORMAT=json` switches to one JSON object per line.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false);
    if std::env::var("BG_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
