//! A failover: two operators compete for the Lease, the leader is killed without a goodbye
//! (SIGKILL, as a lost node does), and the standby takes over. Measured: from the kill to every
//! branch and project reconciled by the new leader, its CPU, its peak memory and its writes
//! (goal: 0, since nothing changed).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::operator::{OperatorProcess, sum};

/// The namespace of the bench's Lease (the chart uses its own namespace).
const LEASE_NAMESPACE: &str = "default";

#[derive(Debug, Default, Clone, Serialize)]
pub struct FailoverResult {
    /// From the leader's kill to every branch and project reconciled by the standby.
    pub to_all_reconciled_s: f64,
    /// The new leader's CPU until then.
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    /// Writes of the new leader (goal: 0).
    pub writes: f64,
}

/// Runs the failover; returns its figures and the new leader, still running.
pub async fn run(
    binary: &Path,
    branches: usize,
    projects: usize,
    timeout: Duration,
) -> Result<(FailoverResult, OperatorProcess), String> {
    let start = |identity: &str| {
        OperatorProcess::start_command(
            binary,
            &[
                "run",
                "--leader-election-namespace",
                LEASE_NAMESPACE,
                "--identity",
                identity,
            ],
            &[],
            &Path::new("target/bench").join(format!("operator-{identity}.log")),
            "warn,oksa::writes=debug",
        )
        .map_err(|e| e.to_string())
    };
    // The first leader: it takes the Lease and catches up, as after a restart.
    let leader = start("bench-leader")?;
    leader.wait_ready(Duration::from_secs(60)).await?;
    leader.wait_reconciled(branches, projects, timeout).await?;
    let standby = start("bench-standby")?;
    standby.wait_ready(Duration::from_secs(60)).await?;
    let killed = Instant::now();
    leader.kill_hard();
    standby.wait_reconciled(branches, projects, timeout).await?;
    let mut result = FailoverResult {
        to_all_reconciled_s: killed.elapsed().as_secs_f64(),
        cpu_s: standby.cpu_seconds(),
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = standby.metrics().await;
    result.writes = sum(&metrics, "oksa_child_writes_total", &[])
        - sum(&metrics, "oksa_child_writes_total", &["verb=\"skipped\""]);
    result.peak_rss_mib = standby.peak_rss_mib();
    Ok((result, standby))
}
