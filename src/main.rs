use std::process::ExitCode;

use clap::Parser;
use oksa::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            listen,
            log_format,
            install_crds,
        } => {
            oksa::telemetry::init(log_format);
            oksa::run::run(listen, install_crds)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Demo {
            exit_when_ready,
            timeout,
        } => {
            oksa::telemetry::init_quiet();
            let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            oksa::demo::run(
                repo,
                exit_when_ready,
                std::time::Duration::from_secs(timeout),
            )
            .await
            .map_err(|e| e.to_string())
        }
        Command::Status { project } => oksa::status::run(project.as_deref())
            .await
            .map_err(|e| e.to_string()),
        Command::Crd { write } => {
            oksa::crd::print_or_write(write.as_deref()).map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oksa: {error}");
            ExitCode::FAILURE
        }
    }
}
