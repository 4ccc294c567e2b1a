//! The report: Markdown tables and an SVG chart of one deploy's weights and health.

use std::fmt::Write as _;
use std::time::Duration;

use local_stack::timeline::Timeline;

use crate::deploys::DeployFigures;
use crate::functions::{FunctionFigures, MEMORY_MB};
use crate::stats::median;

/// List prices (us-east-1) the cost column uses.
pub const SFN_PER_TRANSITION: f64 = 0.000_025;
pub const LAMBDA_PER_REQUEST: f64 = 0.000_000_2;
pub const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;

pub struct Report {
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub cold_runs: usize,
    pub warm_runs: usize,
    pub deploy_runs: usize,
    pub functions: Vec<FunctionFigures>,
    pub strategies: Vec<(String, Vec<DeployFigures>)>,
    pub concurrent: Vec<(usize, Vec<DeployFigures>)>,
    pub chart_file: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn secs(v: f64) -> String {
    format!("{:.1} s", v / 1000.0)
}

/// Step Functions Standard and Lambda (arm64) cost of one deploy, in dollars.
pub fn cost(f: &DeployFigures) -> f64 {
    let gb_seconds = f.lambda_time.as_secs_f64() * f64::from(MEMORY_MB) / 1024.0;
    f.transitions as f64 * SFN_PER_TRANSITION
        + f.invocations as f64 * LAMBDA_PER_REQUEST
        + gb_seconds * LAMBDA_ARM_PER_GB_SECOND
}

fn med(runs: &[DeployFigures], f: impl Fn(&DeployFigures) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Measured {} at commit `{}` on {}, by `make bench` (`crates/bench`). Every figure is \
             a median of repeated runs; counts are exact. The machine is shared and noisy: \
             compare ratios and counts, not single milliseconds.\n",
            self.date, self.commit, self.machine
        );
        let _ = writeln!(out, "## Functions\n");
        let _ = writeln!(
            out,
            "Each function's release binary (`cargo build --release`, x86_64 here) runs under a \
             local Lambda Runtime API (`crates/bench/src/runtime_api.rs`) with the local stack \
             as its AWS, on a sample payload of `events/` aimed at a fresh environment. **Cold \
             start**: process start until the first invocation is answered, median of {} fresh \
             processes (the first one does the work, e.g. creates green; the others find it \
             done). **Warm**: {} more invocations of the last process. **Peak RSS**: `VmHWM` \
             after them. **Zip**: the release arm64 `bootstrap.zip` of `make package`. AWS \
             calls are counted by the gateway per warm invocation.\n",
            self.cold_runs, self.warm_runs
        );
        let _ = writeln!(
            out,
            "| function | zip (arm64) | cold start | warm median | warm p90 | peak RSS | AWS calls / invocation | answered |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
        for f in &self.functions {
            let _ = writeln!(
                out,
                "| `{}` | {} | {:.0} ms | {:.1} ms | {:.1} ms | {} | {:.1} | {} |",
                f.name,
                f.zip_bytes
                    .map_or("not built".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
                f.cold_median(),
                f.warm_median(),
                f.warm_p90(),
                f.peak_rss_kib
                    .map_or("?".into(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
                f.aws_calls_per_invoke,
                f.answer,
            );
        }
        let _ = writeln!(out, "\n## Per strategy\n");
        let _ = writeln!(
            out,
            "A deploy of a healthy v2 to a two-task service on the local stack (the real ASL run \
             by moto, the functions under `cargo lambda watch`), timing `pollIntervalSeconds` 1, \
             `bakeSeconds` as given, median of {} deploys per strategy. **Transitions**: states \
             entered (what Step Functions Standard bills). **Invocations**: Lambda tasks \
             scheduled. **AWS calls**: the functions' calls counted by the gateway, Lambda \
             invokes not included. **In waits**: time in `Wait` states (bakes, drain delay, \
             poll intervals); **overhead** = wall time − time in waits. **Cost**: transitions × \
             ${SFN_PER_TRANSITION} + invocations × ${LAMBDA_PER_REQUEST} + GB-seconds × \
             ${LAMBDA_ARM_PER_GB_SECOND} (arm64, {MEMORY_MB} MB), with the invocations' \
             durations as recorded locally (debug builds: an upper bound).\n",
            self.deploy_runs
        );
        let _ = writeln!(
            out,
            "| strategy | transitions | invocations | AWS calls | wall | in waits | overhead | cost / deploy | cost / 1,000 deploys |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, runs) in &self.strategies {
            let c = med(runs, cost);
            let _ = writeln!(
                out,
                "| {name} | {:.0} | {:.0} | {:.0} | {} | {} | {} | ${:.5} | ${:.2} |",
                med(runs, |f| f.transitions as f64),
                med(runs, |f| f.invocations as f64),
                med(runs, |f| f.aws_calls as f64),
                secs(med(runs, |f| ms(f.wall))),
                secs(med(runs, |f| ms(f.waits))),
                secs(med(runs, |f| ms(f.overhead()))),
                c,
                c * 1000.0,
            );
        }
        let _ = writeln!(out, "\n## Deploys at once\n");
        let _ = writeln!(
            out,
            "N all-at-once deploys of N different services started together on the one local \
             stack (two cores). Overhead per deploy is each deploy's wall time minus its time \
             in waits, median over the N; the ratio is to N = 1.\n"
        );
        let _ = writeln!(
            out,
            "| N | succeeded | median wall | median overhead per deploy | overhead ratio |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        let base = self
            .concurrent
            .first()
            .map_or(1.0, |(_, runs)| med(runs, |f| ms(f.overhead())).max(1.0));
        for (n, runs) in &self.concurrent {
            let ok = runs
                .iter()
                .filter(|f| f.status == aws_sdk_sfn::types::ExecutionStatus::Succeeded)
                .count();
            let overhead = med(runs, |f| ms(f.overhead()));
            let _ = writeln!(
                out,
                "| {n} | {ok} / {n} | {} | {} | {:.2} |",
                secs(med(runs, |f| ms(f.wall))),
                secs(overhead),
                overhead / base,
            );
        }
        if let Some(chart) = &self.chart_file {
            let _ = writeln!(out, "\n## A canary deploy over time\n");
            let _ = writeln!(
                out,
                "The listener's weights and each target group's healthy targets, sampled every \
                 250 ms during one canary deploy (10 % for 3 s, then 100 %).\n\n![weights and \
                 target health over time]({chart})"
            );
        }
        out
    }
}

/// An SVG line chart of a timeline: blue's and green's weights (left axis, %), and each
/// group's healthy targets (right axis).
pub fn chart(timeline: &Timeline) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 300.0, 50.0, 50.0, 20.0, 40.0);
    let samples = &timeline.samples;
    let end = samples
        .last()
        .map_or(1.0, |s| s.elapsed.as_secs_f64())
        .max(1.0);
    let max_targets = samples
        .iter()
        .flat_map(|s| s.targets.iter().map(|t| t.healthy))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: f64| left + (w - left - right) * t / end;
    let y_weight = |v: f64| top + (h - top - bottom) * (1.0 - v / 100.0);
    let y_targets = |v: f64| top + (h - top - bottom) * (1.0 - v / max_targets);
    let line = |points: Vec<(f64, f64)>, color: &str, dash: &str| {
        let mut d = String::new();
        let mut last_y = None;
        for (px, py) in points {
            // Steps, not slopes: a weight holds until the next sample shows it changed.
            if let Some(ly) = last_y {
                let _ = write!(d, " L{px:.1},{ly:.1}");
            }
            let _ = write!(
                d,
                "{}{px:.1},{py:.1}",
                if last_y.is_none() { "M" } else { " L" }
            );
            last_y = Some(py);
        }
        format!(
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#
        )
    };
    let series = |f: &dyn Fn(&local_stack::timeline::Sample) -> (f64, f64)| {
        samples.iter().map(f).collect::<Vec<_>>()
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let yy = y_weight(v);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0} %</text>"##,
            w - right,
            left - 5.0,
            yy + 4.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{:.1}">{max_targets:.0} healthy</text><text x="{}" y="{:.1}">0</text>"#,
        w - right + 5.0,
        y_targets(max_targets) + 4.0,
        w - right + 5.0,
        y_targets(0.0) + 4.0
    );
    let step = (end / 8.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= end {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.0} s</text>"#,
            x(t),
            h - bottom + 15.0
        );
        t += step;
    }
    svg.push_str(&line(
        series(&|s| {
            (
                x(s.elapsed.as_secs_f64()),
                y_weight(f64::from(s.weights[0])),
            )
        }),
        "#1f77b4",
        "none",
    ));
    svg.push_str(&line(
        series(&|s| {
            (
                x(s.elapsed.as_secs_f64()),
                y_weight(f64::from(s.weights[1])),
            )
        }),
        "#2ca02c",
        "none",
    ));
    svg.push_str(&line(
        series(&|s| {
            (
                x(s.elapsed.as_secs_f64()),
                y_targets(s.targets[0].healthy as f64),
            )
        }),
        "#1f77b4",
        "4 3",
    ));
    svg.push_str(&line(
        series(&|s| {
            (
                x(s.elapsed.as_secs_f64()),
                y_targets(s.targets[1].healthy as f64),
            )
        }),
        "#2ca02c",
        "4 3",
    ));
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{}" fill="#1f77b4">— blue weight   - - blue healthy targets</text><text x="{}" y="{}" fill="#2ca02c">— green weight   - - green healthy targets</text>"##,
        h - 5.0,
        left + 300.0,
        h - 5.0
    );
    svg.push_str("</svg>\n");
    svg
}
