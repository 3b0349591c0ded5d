use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oksa::cli::{Cli, Command};

fn main() -> ExitCode {
    tune_malloc();
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(run())
}

/// glibc gives threads that contend for the heap arenas of their own (up to eight per core),
/// and memory freed into one arena is not reused by another: with two, the operator's peak at
/// 1,000 branches fell by a tenth at no measurable CPU cost (see BENCHMARKS.md). A fixed mmap
/// threshold keeps large buffers (list responses) out of the heap, so freeing them returns the
/// memory instead of leaving holes; glibc otherwise raises the threshold after the first one.
/// Called before any thread starts. Only for a build without jemalloc (the default allocator,
/// see lib.rs), with `--no-default-features`; other C libraries (musl) have neither setting.
fn tune_malloc() {
    #[cfg(all(target_env = "gnu", not(feature = "jemalloc")))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn run() -> ExitCode {
    let result: Result<ExitCode, String> = match Cli::parse().command {
        Command::Run {
            listen,
            log_format,
            install_crds,
            policy,
            leader_election_namespace,
            identity,
            edge_service,
            forge_webhook_listen,
            forge_secrets_namespace,
            release_workers,
        } => {
            oksa::telemetry::init(log_format);
            let election = leader_election_namespace.map(|namespace| oksa::leader::Election {
                namespace,
                identity: identity.unwrap_or_else(|| {
                    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "oksa".into());
                    format!("{host}-{}", std::process::id())
                }),
            });
            oksa::run::run(oksa::run::Options {
                listen,
                install_crds,
                policy: policy.as_deref(),
                election,
                edge_service,
                forge_webhook_listen,
                forge_secrets_namespace,
                release_workers: release_workers.into(),
            })
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string())
        }
        Command::Edge(args) => {
            oksa::telemetry::init(args.log_format);
            oksa::run::edge(args)
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| e.to_string())
        }
        Command::Keepalive(args) => {
            oksa::telemetry::init_quiet();
            oksa::keepalive::run(args).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Data(args) => {
            oksa::telemetry::init_quiet();
            oksa::data_reset::run(args)
                .await
                .map(|()| ExitCode::SUCCESS)
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
            async {
                let repo = oksa::demo::find_source_tree()?;
                oksa::demo::run(&repo, exit_when_ready, Duration::from_secs(timeout)).await
            }
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string())
        }
        Command::Status { project } => oksa::status::run(project.as_deref())
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| oksa::apply::describe(&e)),
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
