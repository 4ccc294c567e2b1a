//! `make bench`: measures the functions and whole deploys on the running local stack and
//! writes `bench/report.md` and `bench/deploy-weights.svg`.
//!
//! `BENCH_QUICK=1` takes fewer samples (a smoke run of the benchmark itself).

mod deploys;
mod functions;
mod report;
mod runtime_api;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use local_stack::Endpoint;
use local_stack::gateway::Gateway;
use local_stack::sfn::workspace_root;

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cores} cores of {cpu}")
}

async fn run() -> anyhow::Result<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let (cold_runs, warm_runs, deploy_runs, concurrency): (usize, usize, usize, &[usize]) = if quick
    {
        (2, 5, 1, &[1, 2])
    } else {
        (5, 20, 3, &[1, 2, 4, 8])
    };
    let endpoint = Endpoint::from_env()?;
    let gateway = Gateway::new(&endpoint)?;
    gateway
        .wait_ready(Duration::from_secs(60))
        .await
        .context("the local stack is not up: make bench starts it")?;
    gateway.enable_step_functions_execution().await?;
    gateway.set_healthy_after(1).await?;
    let clients = endpoint.clients().await;
    local_stack::dynatrace::grant_function_access(&clients, &gateway).await?;
    local_stack::sfn::create_stack_state_machines(&clients.sfn).await?;

    println!("bench: functions ({cold_runs} cold starts, {warm_runs} warm invocations each)");
    let env = functions::environment(&clients).await?;
    let payloads = functions::payloads(&clients, &env).await?;
    let mut function_figures = Vec::new();
    for (name, payload) in functions::FUNCTIONS.iter().zip(&payloads) {
        let f = functions::measure(&endpoint, &gateway, name, payload, cold_runs, warm_runs)
            .await
            .with_context(|| format!("measuring {name}"))?;
        println!(
            "  {name:<14} cold {:>6.0} ms   warm {:>6.1} ms   {}",
            f.cold_median(),
            f.warm_median(),
            f.answer
        );
        function_figures.push(f);
    }

    // The first deploy after the stack starts also starts the functions' processes under
    // `cargo lambda watch`: run one that is not counted.
    let warm_up = deploys::target(&clients, "warmup").await?;
    deploys::deploy(
        &clients,
        &gateway,
        &warm_up,
        bluegreen::model::Strategy::AllAtOnce,
        false,
    )
    .await
    .context("the warm-up deploy")?;

    println!("bench: strategies ({deploy_runs} deploys each)");
    let mut strategies = Vec::new();
    let mut chart = None;
    for (name, strategy) in deploys::strategies() {
        let mut runs = Vec::new();
        for i in 0..deploy_runs {
            let t = deploys::target(&clients, &format!("bs{}", runs.len() + i)).await?;
            let sample = chart.is_none() && name.starts_with("canary");
            let (f, timeline) =
                deploys::deploy(&clients, &gateway, &t, strategy.clone(), sample).await?;
            if let Some(timeline) = timeline {
                chart = Some(report::chart(&timeline));
            }
            println!(
                "  {name:<18} {} in {:.1} s, {} transitions, {} AWS calls",
                f.status.as_str(),
                f.wall.as_secs_f64(),
                f.transitions,
                f.aws_calls
            );
            runs.push(f);
        }
        strategies.push((name.to_string(), runs));
    }

    println!("bench: deploys at once");
    let mut concurrent = Vec::new();
    for &n in concurrency {
        let runs = deploys::concurrent(&clients, &gateway, n).await?;
        println!(
            "  N = {n}: {} succeeded",
            runs.iter()
                .filter(|f| f.status == aws_sdk_sfn::types::ExecutionStatus::Succeeded)
                .count()
        );
        concurrent.push((n, runs));
    }

    let dir = workspace_root().canonicalize()?.join("bench");
    std::fs::create_dir_all(&dir)?;
    let chart_file = match &chart {
        Some(svg) => {
            std::fs::write(dir.join("deploy-weights.svg"), svg)?;
            Some("deploy-weights.svg".to_string())
        }
        None => None,
    };
    let report = report::Report {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit: command_output("git", &["rev-parse", "--short", "HEAD"]),
        machine: machine(),
        cold_runs,
        warm_runs,
        deploy_runs,
        functions: function_figures,
        strategies,
        concurrent,
        chart_file,
    };
    let path = dir.join("report.md");
    std::fs::write(&path, report.markdown())?;
    println!("bench: wrote {}", path.display());
    let failed = report
        .strategies
        .iter()
        .map(|(_, runs)| runs)
        .chain(report.concurrent.iter().map(|(_, runs)| runs))
        .flatten()
        .filter(|f| f.status != aws_sdk_sfn::types::ExecutionStatus::Succeeded)
        .count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} measured deploys did not succeed: the figures are not of working deploys"
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
