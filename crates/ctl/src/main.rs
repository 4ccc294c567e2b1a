//! `bluegreen-ctl`: what an operator does to a running deployment, from a terminal.
//!
//! ```text
//! bluegreen-ctl status  <execution-arn> [--json]
//! bluegreen-ctl approve <execution-arn> [--by NAME]
//! bluegreen-ctl promote <execution-arn> [--by NAME]
//! bluegreen-ctl abort   <execution-arn> [--by NAME]
//! bluegreen-ctl check-catalogue <file-or-directory>
//! ```
//!
//! AWS credentials, region and endpoint come from the environment, as for the AWS CLI
//! (`AWS_ENDPOINT_URL` points it at the local stack). The logic is
//! [`bluegreen::operations`].

use std::process::ExitCode;

use bluegreen::aws::{AwsClients, SdkSfn, sdk_config};
use bluegreen::operations::{self, Delivered};
use bluegreen::trigger::catalogue::CatalogueSource;

const USAGE: &str =
    "usage: bluegreen-ctl status|approve|promote|abort <execution-arn> [--json] [--by NAME]
       bluegreen-ctl check-catalogue <file-or-directory>";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(command), Some(arn)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if command == "check-catalogue" {
        return check_catalogue(arn);
    }
    let json = args.iter().any(|a| a == "--json");
    let by = args
        .iter()
        .position(|a| a == "--by")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "an operator".into());
    let conf = sdk_config().await;
    let sfn = SdkSfn::from_conf(&conf);
    let aws = AwsClients::from_conf(&conf);
    let outcome = match command.as_str() {
        "status" => operations::status(&sfn, arn).await.map(|s| {
            if json {
                serde_json::to_string_pretty(&s).unwrap_or_default()
            } else {
                let mut line = format!(
                    "{} {}: {}",
                    s.execution_name,
                    s.status,
                    s.progress.summary()
                );
                if let (Some(error), Some(cause)) = (&s.error, &s.cause) {
                    let cause = operations::readable_cause(cause);
                    line.push_str(&format!("\n{error}: {cause}"));
                }
                line
            }
        }),
        "approve" => operations::approve(&sfn, arn, &by).await.map(said),
        "promote" => operations::promote(&sfn, &aws.ecs, arn, &by)
            .await
            .map(said),
        "abort" => operations::abort(&sfn, &aws.ecs, arn, &by).await.map(said),
        _ => {
            eprintln!("unknown command {command:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} ({})", e, e.error_type());
            ExitCode::FAILURE
        }
    }
}

fn said(delivered: Delivered) -> String {
    match delivered {
        Delivered::ApprovalAnswered => "answered the approval the deployment is waiting for".into(),
        Delivered::CommandLeft => {
            "left the command on the service; the deployment acts on it at its next poll of green"
                .into()
        }
    }
}

/// Checks a catalogue file (or directory of them) as the trigger reads it, and lists its
/// deployments.
fn check_catalogue(path: &str) -> ExitCode {
    let loaded = match CatalogueSource::at(path).load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for entry in loaded.catalogue.entries() {
        let (cluster, service) = entry.target();
        println!(
            "{}: pushes of {}:{} deploy service {service} of cluster {cluster}",
            entry.name,
            entry.repository,
            entry.tags.join("|")
        );
    }
    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    if loaded.problems.is_empty() {
        println!(
            "{} deployments, no problem",
            loaded.catalogue.entries().count()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
