//! `oksa run` as a process of its own, for tests that kill, restart or compare operators.

use std::process::{Child, Command, Stdio};

use super::http_get;

pub struct OksaProcess {
    pub child: Child,
    /// Where its /metrics, /healthz and /readyz answer.
    pub port: u16,
}

impl OksaProcess {
    /// Starts `oksa run ARGS…` against the cluster under test, logging to `<log>.log` in the
    /// test's temporary folder. The operator takes a free port itself (`127.0.0.1:0`) and this
    /// reads the one it got from its log: a port picked here and handed over could be taken by
    /// another process in between (the plane starting, another test).
    ///
    /// A test that runs `oksa run` runs no operator in-process, and the CRDs must be there before
    /// it starts: on a fresh plane nothing else has installed them yet, and an operator without
    /// them never becomes ready.
    pub fn start(args: &[&str], log: &str) -> OksaProcess {
        super::operator::use_external();
        super::operator::ensure_running();
        let kubeconfig = super::kubeconfig_path();
        let path = format!("{}/{log}.log", env!("CARGO_TARGET_TMPDIR"));
        let log_file = std::fs::File::create(&path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_oksa"))
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("OKSA_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting oksa run");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let port = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .filter(|l| l.contains("serving /metrics"))
                .find_map(|l| l.rsplit_once("address=127.0.0.1:")?.1.trim().parse().ok())
            {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("oksa run exited ({status}) before serving; its log:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "oksa run did not say where it serves; its log:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
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
