//! The operator under measurement: a separate `oksa run` process, so its CPU time and peak
//! memory are its own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

pub struct OperatorProcess {
    child: Child,
    pub port: u16,
}

impl OperatorProcess {
    /// Starts `oksa run` with `RUST_LOG=rust_log`, its log written to `log`.
    pub fn start(binary: &Path, log: &Path, rust_log: &str) -> std::io::Result<Self> {
        Self::start_command(binary, &["run"], &[], log, rust_log)
    }

    /// Starts `oksa ARGS...` with the environment `env` added, its /metrics, /healthz and
    /// /readyz on a free port of loopback.
    pub fn start_command(
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
        rust_log: &str,
    ) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(log)?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("OKSA_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(OperatorProcess { child, port })
    }

    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if get(self.port, "/readyz")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the operator did not become ready".into())
    }

    /// Waits until this operator has reconciled at least `branches` BranchReleases and
    /// `projects` Projects (a restart's or a failover's catch-up).
    pub async fn wait_reconciled(
        &self,
        branches: usize,
        projects: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics().await;
            let reconciled = |controller: &str| {
                sum(
                    &metrics,
                    "oksa_reconciles_total",
                    &[&format!("controller=\"{controller}\"")],
                )
            };
            let (releases, projects_done) = (reconciled("branchrelease"), reconciled("project"));
            if releases >= branches as f64 && projects_done >= projects as f64 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the operator reconciled {releases} of {branches} branches and \
                     {projects_done} of {projects} projects"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// User + system CPU seconds so far, from /proc (Linux).
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }

    /// Peak resident memory in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> f64 {
        proc_status_mib(self.child.id(), "VmHWM:")
    }

    /// Samples the operator's memory every half second until the returned sampler is finished:
    /// where the peak of resident memory is, and what the allocator counted then.
    pub fn sample_memory(&self) -> MemorySampler {
        let (pid, port) = (self.child.id(), self.port);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut peaks = MemoryPeaks::default();
            loop {
                peaks.record(memory(pid, port).await);
                tokio::select! {
                    _ = &mut stopped => return peaks,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        MemorySampler { stop, task }
    }

    /// The operator's memory now.
    pub async fn memory(&self) -> MemorySample {
        memory(self.child.id(), self.port).await
    }

    pub async fn metrics(&self) -> String {
        get(self.port, "/metrics").await.unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no draining, no goodbye.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

async fn memory(pid: u32, port: u16) -> MemorySample {
    let metrics = get(port, "/metrics").await.unwrap_or_default();
    let mib = |name: &str| sum(&metrics, name, &[]) / (1024.0 * 1024.0);
    MemorySample {
        rss_mib: proc_status_mib(pid, "VmRSS:"),
        heap_allocated_mib: mib("oksa_heap_allocated_bytes"),
        heap_resident_mib: mib("oksa_heap_resident_bytes"),
    }
}

/// Peak resident memory of process `pid` in MiB (VmHWM).
pub fn peak_rss_mib_of(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// A field of /proc/PID/status given in kB, in MiB (0 when unreadable).
pub fn proc_status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// The operator's memory at one moment. The heap figures are the allocator's own (jemalloc):
/// 0 for a build whose allocator keeps none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct MemorySample {
    pub rss_mib: f64,
    /// What the program holds.
    pub heap_allocated_mib: f64,
    /// The allocator's resident pages: what it holds plus what it keeps for reuse.
    pub heap_resident_mib: f64,
}

/// The sample with the most resident memory, and the most the heap held at any sample.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPeaks {
    pub at_peak_rss: MemorySample,
    pub max_heap_allocated_mib: f64,
}

impl MemoryPeaks {
    fn record(&mut self, sample: MemorySample) {
        if sample.rss_mib > self.at_peak_rss.rss_mib {
            self.at_peak_rss = sample;
        }
        self.max_heap_allocated_mib = self.max_heap_allocated_mib.max(sample.heap_allocated_mib);
    }
}

pub struct MemorySampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<MemoryPeaks>,
}

impl MemorySampler {
    pub async fn finish(self) -> MemoryPeaks {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

async fn get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// Sum of the series of `name` whose labels contain every one of `labels`. Pure.
pub fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// User + system CPU seconds of process `pid` so far, from /proc (Linux); 0 when it is gone.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::{MemoryPeaks, MemorySample};

    #[test]
    fn the_peak_keeps_what_the_heap_held_at_that_moment() {
        let sample = |rss_mib, heap_allocated_mib| MemorySample {
            rss_mib,
            heap_allocated_mib,
            heap_resident_mib: 0.0,
        };
        let mut peaks = MemoryPeaks::default();
        for s in [sample(40.0, 20.0), sample(60.0, 25.0), sample(50.0, 30.0)] {
            peaks.record(s);
        }
        assert_eq!(peaks.at_peak_rss, sample(60.0, 25.0));
        assert_eq!(peaks.max_heap_allocated_mib, 30.0);
    }

    #[test]
    fn sums_matching_series() {
        let text = "# HELP x\noksa_child_writes_total{kind=\"Service\",verb=\"apply\"} 3\noksa_child_writes_total{kind=\"Deployment\",verb=\"apply\"} 4\noksa_child_writes_total{kind=\"Deployment\",verb=\"skipped\"} 9\noksa_child_writes_total_other 5\n";
        assert_eq!(
            super::sum(text, "oksa_child_writes_total", &["verb=\"apply\""]),
            7.0
        );
        assert_eq!(super::sum(text, "oksa_child_writes_total", &[]), 16.0);
    }
}
