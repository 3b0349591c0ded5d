use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oksa::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let result: Result<ExitCode, String> = match Cli::parse().command {
        Command::Run {
            listen,
            log_format,
            install_crds,
        } => {
            oksa::telemetry::init(log_format);
            oksa::run::run(listen, install_crds)
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| e.to_string())
        }
        Command::Deploy(args) => {
            oksa::telemetry::init_quiet();
            oksa::deploy::run(args).await.map(ExitCode::from)
        }
        Command::Demo {
            exit_when_ready,
            timeout,
        } => {
            oksa::telemetry::init_quiet();
            let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            oksa::demo::run(repo, exit_when_ready, Duration::from_secs(timeout))
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| e.to_string())
        }
        Command::Status { project } => oksa::status::run(project.as_deref())
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Crd { write } => oksa::crd::print_or_write(write.as_deref())
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
    };
    // Errors are one clear line (with their cause), never a panic or a debug dump.
    result.unwrap_or_else(|error| {
        eprintln!("oksa: {error}");
        ExitCode::FAILURE
    })
}
