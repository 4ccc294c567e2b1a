use std::process::ExitCode;

const USAGE: &str = "\
gateway: the local stack's single endpoint (docs/local-stack.md)

Configured by environment variables:
  BG_GATEWAY_PORT  port to listen on (default 5100)
  BG_MOTO_PORT     moto server port (default 5101)
  BG_LAMBDA_PORT   cargo lambda watch port (default 5102)
  BG_HOST          loopback address of all three (default 127.0.0.1)
  RUST_LOG         log filter (default info); BG_LOG_FORMAT=json for JSON lines";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        let asked = args.iter().all(|a| a == "-h" || a == "--help");
        println!("{USAGE}");
        return if asked {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    gateway::init_tracing();
    let config = match gateway::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "gateway not started");
            return ExitCode::FAILURE;
        }
    };
    match gateway::server::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "gateway stopped");
            ExitCode::FAILURE
        }
    }
}
