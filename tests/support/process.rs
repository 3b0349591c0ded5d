//! `oksa run` as a process of its own, for tests that kill, restart or compare operators.

use std::process::{Child, Command, Stdio};

use super::{free_port, http_get};

pub struct OksaProcess {
    pub child: Child,
    /// Where its /metrics, /healthz and /readyz answer.
    pub port: u16,
}

impl OksaProcess {
    /// Starts `oksa run ARGS…` against the cluster under test, logging to `<log>.log` in the
    /// test's temporary folder.
    pub fn start(args: &[&str], log: &str) -> OksaProcess {
        let port = free_port();
        let log =
            std::fs::File::create(format!("{}/{log}.log", env!("CARGO_TARGET_TMPDIR"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_oksa"))
            .arg("run")
            .args(args)
            .env("KUBECONFIG", super::kubeconfig_path())
            .env("OKSA_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting oksa run");
        OksaProcess { child, port }
    }

    /// `kill -9`: no chance to clean up or release anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn readiness(&self) -> String {
        http_get(self.port, "/readyz").await.1
    }

    /// Sum of a counter family over its series, without those that contain `except`.
    pub async fn counter(&self, family: &str, except: &str) -> f64 {
        let (_, metrics) = http_get(self.port, "/metrics").await;
        let sum: f64 = metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && !l.contains(except))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        // An empty sum is -0.0.
        sum.abs()
    }

    /// The writes it made: every verb of its write counter but "skipped".
    pub async fn writes(&self) -> f64 {
        self.counter("oksa_child_writes_total", "skipped").await
    }
}

impl Drop for OksaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
