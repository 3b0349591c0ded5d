//! `oksa-bench`: Oksa against `helm upgrade --install --wait` per branch and against the API
//! server's own rate for the same objects, on the same cluster in the same run. See BENCHMARKS.md.
//! A program of its own, not part of the operator's library.

mod args;
mod edge;
mod failover;
mod helm;
mod limit;
mod oksa_phase;
mod operator;
mod readiness;
mod report;
mod stats;
mod wait;
mod watch;
mod workload;

use std::process::ExitCode;

use args::Args;
use clap::Parser;
use report::Report;

#[tokio::main]
async fn main() -> ExitCode {
    oksa::telemetry::init_quiet();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oksa-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let repo = oksa::demo::find_source_tree().map_err(|e| e.to_string())?;
    let tools = oksa::demo::ensure_cluster(&repo).map_err(|e| e.to_string())?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| e.to_string())?;
    oksa::crd::install(&client)
        .await
        .map_err(|e| e.to_string())?;
    let binary = match &args.oksa {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("oksa"),
    };
    if !binary.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release)",
            binary.display()
        ));
    }
    if let Some(args::Mode::Edge(edge_args)) = &args.mode {
        let run_id = run_id();
        eprintln!("The edge, through the local plane's Traefik...");
        let report = edge::run(&client, edge_args, &binary, &run_id).await?;
        println!("{}", report.table());
        return write(&edge_args.output, &report);
    }
    let helm = args.helm.clone().unwrap_or_else(|| {
        tools
            .map(|t| t.join("helm"))
            .unwrap_or_else(|| "helm".into())
    });
    let run_id = run_id();

    if !args.limit_only {
        eprintln!(
            "Oksa: {} projects × {} branches...",
            args.projects, args.branches
        );
    }
    let oksa = if args.limit_only {
        Default::default()
    } else {
        oksa_phase::run(&client, &args, &binary, &run_id).await?
    };
    let total = args.projects * args.branches;
    let (helm, limit) = if args.oksa_only {
        Default::default()
    } else {
        let helm = if args.limit_only {
            Default::default()
        } else {
            eprintln!("helm baseline: {} branches...", args.helm_branches);
            helm::run(&client, &helm, args.helm_branches, &run_id).await?
        };
        eprintln!("limit: {total} branches of objects created directly...");
        let limit = limit::run(
            &client,
            total,
            args.redeploy_branches,
            args.concurrency,
            &run_id,
            std::time::Duration::from_secs(args.timeout),
        )
        .await?;
        (helm, limit)
    };

    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::env::consts::ARCH
    );
    let report = Report::new(machine, args.projects, args.branches, oksa, helm, limit);
    println!("{}", report.table());
    write(&args.output, &report)
}

/// Names this run's objects apart from earlier runs'.
fn run_id() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 0xfffff
    )
}

/// Writes the raw figures as JSON.
fn write(output: &std::path::Path, report: &impl serde::Serialize) -> Result<(), String> {
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(output, serde_json::to_string_pretty(report).unwrap())
        .map_err(|e| e.to_string())?;
    println!("raw figures: {}", output.display());
    Ok(())
}
