//! `oksa-bench edge`: the edge measured through the local plane's Traefik, against Traefik
//! straight to the same server (see BENCHMARKS.md, "The edge"). Two `oksa edge` processes share
//! one port (the kernel spreads connections across them as a Service spreads them across pods),
//! and an `oksa run` process with a Lease reconciles meanwhile.

mod flood;
mod load;
mod setup;
mod upstream;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use serde::Serialize;

use crate::args::EdgeArgs;
use crate::operator::{OperatorProcess, cpu_seconds_of, peak_rss_mib_of};
use crate::stats::Summary;
use load::{InFlight, Outcome, Target};

#[derive(Debug, Default, Serialize)]
pub struct EdgeReport {
    pub machine: String,
    /// At a moderate, paced load.
    pub latency_direct: Outcome,
    pub latency_through_edge: Outcome,
    /// As fast as the connections go.
    pub throughput_direct: Throughput,
    pub throughput_through_edge: Throughput,
    pub changes_quiet: Summary,
    pub flood: Flood,
    pub kill: Kill,
}

#[derive(Debug, Default, Serialize)]
pub struct Throughput {
    pub outcome: Outcome,
    /// Busy CPU seconds of the whole machine per second of the run (load, Traefik, edge, server
    /// and plane together).
    pub machine_busy_cores: f64,
    /// Requests per second per busy core of the machine.
    pub per_busy_core: f64,
    pub traefik_cpu_seconds: f64,
    pub edge_cpu_seconds: f64,
    /// Requests per second per core of the edge processes alone.
    pub per_edge_core: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Flood {
    pub load: Outcome,
    pub slow: flood::SlowClients,
    pub lease: flood::LeaseWatch,
    pub guard: flood::GuardWatch,
    pub changes: Summary,
    pub edge_rss_before_mib: Vec<f64>,
    pub edge_peak_rss_mib: Vec<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Kill {
    pub load: Outcome,
    /// Requests waiting for their answer when the replica was killed (an upper bound of those
    /// it held).
    pub in_flight_at_kill: usize,
    /// Answers other than 2xx, and broken requests, after the kill.
    pub failed: u64,
    /// CPU seconds the killed replica spent on the load before it was killed: it was serving.
    pub victim_cpu_seconds: f64,
}

pub async fn run(
    client: &Client,
    args: &EdgeArgs,
    binary: &Path,
    run_id: &str,
) -> Result<EdgeReport, String> {
    let plane = setup::Plane::local()?;
    let address = setup::machine_address()?;
    let upstream_port = upstream::start().map_err(|e| format!("the upstream server: {e}"))?;
    let edge_port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let logs = Path::new("target/bench");
    std::fs::create_dir_all(logs).map_err(|e| e.to_string())?;
    let edge_env = [
        ("OKSA_EDGE_LISTEN", format!("0.0.0.0:{edge_port}")),
        // All of the load comes from one address: the per-client limit would answer most of it.
        ("OKSA_EDGE_CLIENT_RATE", "1000000".to_string()),
        ("OKSA_EDGE_CLIENT_BURST", "1000000".to_string()),
    ];
    let mut edges = Vec::new();
    for replica in ["a", "b"] {
        let log = logs.join(format!("edge-{replica}.log"));
        let edge = OperatorProcess::start_command(binary, &["edge"], &edge_env, &log, "info")
            .map_err(|e| format!("starting oksa edge: {e}"))?;
        edge.wait_ready(Duration::from_secs(60)).await?;
        edges.push(edge);
    }
    let namespace = format!("oksa-bench-edge-{run_id}");
    let project = format!("edge-{run_id}");
    let service = setup::edge_service(client, &namespace, &address, edge_port).await?;
    let operator = OperatorProcess::start_command(
        binary,
        &["run"],
        &[
            ("OKSA_EDGE_SERVICE", service),
            ("OKSA_LEADER_ELECTION_NAMESPACE", namespace.clone()),
        ],
        &logs.join("operator-edge.log"),
        "info",
    )
    .map_err(|e| format!("starting oksa run: {e}"))?;
    operator.wait_ready(Duration::from_secs(120)).await?;

    let result = measure(
        client,
        args,
        &plane,
        &project,
        &namespace,
        &address,
        upstream_port,
        edge_port,
        &mut edges,
    )
    .await;
    for edge in edges {
        edge.stop();
    }
    operator.stop();
    setup::clean_up(client, &project, &namespace).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    client: &Client,
    args: &EdgeArgs,
    plane: &setup::Plane,
    project: &str,
    namespace: &str,
    address: &str,
    upstream_port: u16,
    edge_port: u16,
    edges: &mut Vec<OperatorProcess>,
) -> Result<EdgeReport, String> {
    let timeout = Duration::from_secs(180);
    eprintln!("a project with three branches, their Services led to this benchmark's server...");
    let domain = setup::project(client, project, timeout).await?;
    for branch in ["main", "feature", "guarded"] {
        let service = format!("{branch}-web");
        oksa::demo::protected::lead(
            client,
            project,
            &service,
            "port-8080",
            address,
            upstream_port,
        )
        .await
        .map_err(|e| format!("leading {service}: {e}"))?;
    }
    let target = |branch: &str| Target {
        address: plane.traefik,
        host: format!("{branch}.{domain}"),
        post: false,
    };
    let direct = target("main");
    let through_edge = target("feature");
    let guarded = target("guarded");
    for (what, target, code) in [
        ("main straight", &direct, 200),
        ("feature through the edge", &through_edge, 200),
        ("guarded's login", &guarded, 401),
    ] {
        wait_for_code(plane.traefik, &target.host, code, timeout)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let mut report = EdgeReport {
        machine: format!(
            "{} cores",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        ),
        ..Default::default()
    };
    let seconds = Duration::from_secs(args.seconds);
    let in_flight = Arc::new(InFlight::default());

    eprintln!("latency at {} requests a second...", args.rate);
    let per_connection = Some(f64::from(args.rate) / 4.0);
    for target in [&direct, &through_edge] {
        load::run(
            target,
            4,
            Duration::from_secs(2),
            per_connection,
            in_flight.clone(),
        )
        .await;
    }
    report.latency_direct = load::run(&direct, 4, seconds, per_connection, in_flight.clone()).await;
    report.latency_through_edge =
        load::run(&through_edge, 4, seconds, per_connection, in_flight.clone()).await;

    eprintln!("throughput over {} connections...", args.connections);
    let edge_pids: Vec<u32> = edges.iter().map(|e| e.pid()).collect();
    let cpu = Cpu {
        traefik: plane.traefik_pid,
        edges: &edge_pids,
    };
    report.throughput_direct = cpu
        .measure(load::run(
            &direct,
            args.connections,
            seconds,
            None,
            in_flight.clone(),
        ))
        .await;
    report.throughput_through_edge = cpu
        .measure(load::run(
            &through_edge,
            args.connections,
            seconds,
            None,
            in_flight.clone(),
        ))
        .await;

    eprintln!("{} image changes on the quiet plane...", args.changes);
    report.changes_quiet =
        flood::changes(client, project, args.changes, Duration::ZERO, "q", timeout).await?;

    eprintln!(
        "a flood of {} connections and {} slow clients for {} s...",
        args.flood_connections, args.slow_clients, args.flood_seconds
    );
    let flood_for = Duration::from_secs(args.flood_seconds);
    let gap = flood_for / (args.changes as u32 + 2);
    let edge_address = SocketAddr::from(([127, 0, 0, 1], edge_port));
    report.flood.edge_rss_before_mib = edges.iter().map(|e| rss_mib(e.pid())).collect();
    let (load, slow, lease, guard, changes) = tokio::join!(
        load::run(
            &through_edge,
            args.flood_connections,
            flood_for,
            None,
            in_flight.clone()
        ),
        flood::slow_clients(edge_address, args.slow_clients, flood_for),
        flood::watch_lease(client, namespace, flood_for),
        flood::watch_guard(plane.traefik, &guarded.host, flood_for),
        flood::changes(client, project, args.changes, gap, "f", timeout),
    );
    report.flood = Flood {
        load,
        slow,
        lease,
        guard,
        changes: changes?,
        edge_peak_rss_mib: edge_pids.iter().map(|pid| peak_rss_mib_of(*pid)).collect(),
        ..report.flood
    };

    eprintln!("kill -9 of one edge replica under load...");
    // POSTs: Traefik retries a GET whose reused connection broke, which would hide the loss.
    let kill_load = {
        let target = Target {
            post: true,
            ..through_edge.clone()
        };
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            load::run(&target, 32, Duration::from_secs(10), None, in_flight).await
        })
    };
    let victim_before = edges.last().map(|e| cpu_seconds_of(e.pid())).unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    if let Some(victim) = edges.pop() {
        report.kill.victim_cpu_seconds = cpu_seconds_of(victim.pid()) - victim_before;
        report.kill.in_flight_at_kill = in_flight.now();
        victim.kill_hard();
    }
    report.kill.load = kill_load.await.map_err(|e| e.to_string())?;
    report.kill.failed =
        report.kill.load.failed + report.kill.load.other_codes.values().sum::<u64>();
    Ok(report)
}

/// Waits until `host` answers `code` through `traefik`.
async fn wait_for_code(
    traefik: SocketAddr,
    host: &str,
    code: u16,
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < timeout {
        last = oksa::demo::protected::status(traefik, host, None).await;
        if last == Some(code) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "{host} answered {last:?}, not {code}, within {timeout:?}"
    ))
}

/// The CPU that a run costs: the machine's, Traefik's and the edges'.
struct Cpu<'a> {
    traefik: Option<u32>,
    edges: &'a [u32],
}

impl Cpu<'_> {
    async fn measure(&self, run: impl Future<Output = Outcome>) -> Throughput {
        let edges = || {
            self.edges
                .iter()
                .map(|pid| cpu_seconds_of(*pid))
                .sum::<f64>()
        };
        let traefik = || self.traefik.map(cpu_seconds_of).unwrap_or(0.0);
        let (machine_before, traefik_before, edges_before) = (machine_busy(), traefik(), edges());
        let outcome = run.await;
        let machine_busy_cores = (machine_busy() - machine_before) / outcome.seconds;
        let edge_cpu_seconds = edges() - edges_before;
        Throughput {
            per_busy_core: outcome.per_second / machine_busy_cores.max(f64::EPSILON),
            per_edge_core: outcome.ok as f64 / edge_cpu_seconds.max(f64::EPSILON),
            machine_busy_cores,
            traefik_cpu_seconds: traefik() - traefik_before,
            edge_cpu_seconds,
            outcome,
        }
    }
}

/// Busy CPU seconds of the whole machine since boot (all but idle and iowait), from /proc/stat.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (total - idle) / crate::operator::clock_ticks_per_second()
}

fn rss_mib(pid: u32) -> f64 {
    crate::operator::proc_status_mib(pid, "VmRSS:")
}

impl EdgeReport {
    pub fn table(&self) -> String {
        let latency = |name: &str, o: &Outcome| {
            format!(
                "{name:<34} {:>8.2} {:>8.2} {:>8.2} {:>9.0} {:>6}\n",
                o.latency.median_ms,
                o.latency.p99_ms,
                o.latency.max_ms,
                o.per_second,
                o.failed + o.other_codes.values().sum::<u64>()
            )
        };
        let mut out = format!("The edge on {}\n\n", self.machine);
        out += &format!(
            "{:<34} {:>8} {:>8} {:>8} {:>9} {:>6}\n",
            "", "p50 ms", "p99 ms", "max ms", "req/s", "failed"
        );
        out += &latency("moderate load: Traefik → server", &self.latency_direct);
        out += &latency(
            "moderate load: Traefik → edge → server",
            &self.latency_through_edge,
        );
        out += &format!(
            "{:<34} {:>8.2} {:>8.2}\n",
            "  added by the edge",
            self.latency_through_edge.latency.median_ms - self.latency_direct.latency.median_ms,
            self.latency_through_edge.latency.p99_ms - self.latency_direct.latency.p99_ms
        );
        out += &latency(
            "full speed: Traefik → server",
            &self.throughput_direct.outcome,
        );
        out += &latency(
            "full speed: Traefik → edge → server",
            &self.throughput_through_edge.outcome,
        );
        for (name, t) in [
            ("straight", &self.throughput_direct),
            ("through the edge", &self.throughput_through_edge),
        ] {
            let per_edge_core = if t.edge_cpu_seconds > 0.1 {
                format!(" ({:.0} req/s per edge core)", t.per_edge_core)
            } else {
                String::new()
            };
            out += &format!(
                "  {name}: {:.0} req/s per busy core of the machine ({:.2} busy), Traefik {:.1} CPU s, edge {:.1} CPU s{per_edge_core}\n",
                t.per_busy_core, t.machine_busy_cores, t.traefik_cpu_seconds, t.edge_cpu_seconds
            );
        }
        out += &format!(
            "  throughput through the edge / straight: {:.0}%\n\n",
            100.0 * self.throughput_through_edge.outcome.per_second
                / self.throughput_direct.outcome.per_second.max(f64::EPSILON)
        );
        let f = &self.flood;
        out += &latency("flood: Traefik → edge → server", &f.load);
        out += &format!(
            "  slow clients: {} connections of {}, {} cut off before their headers were done\n",
            f.slow.connections, f.slow.clients, f.slow.cut_off
        );
        out += &format!(
            "  the operator's Lease: {} looks, {} changes of holder, longest without renewal {:.1} s\n",
            f.lease.looks, f.lease.holder_changes, f.lease.longest_without_renewal_s
        );
        out += &format!(
            "  a protected host without a login: {} asked, {} asked for a login, {} let through, {} other or no answer\n",
            f.guard.asked, f.guard.login_asked, f.guard.passed, f.guard.other
        );
        out += &format!(
            "  a change to its Deployment: quiet p50 {:.0} ms max {:.0} ms; during the flood p50 {:.0} ms max {:.0} ms\n",
            self.changes_quiet.median_ms,
            self.changes_quiet.max_ms,
            f.changes.median_ms,
            f.changes.max_ms
        );
        out += &format!(
            "  edge memory: {:?} MiB before, peak {:?} MiB\n\n",
            f.edge_rss_before_mib
                .iter()
                .map(|m| m.round())
                .collect::<Vec<_>>(),
            f.edge_peak_rss_mib
                .iter()
                .map(|m| m.round())
                .collect::<Vec<_>>()
        );
        out += &latency("kill -9 of one of two edges (POSTs)", &self.kill.load);
        out += &format!(
            "  {} requests failed; {} were in flight when it was killed, after it had served 4 s ({:.1} CPU s)\n",
            self.kill.failed, self.kill.in_flight_at_kill, self.kill.victim_cpu_seconds
        );
        out
    }
}
