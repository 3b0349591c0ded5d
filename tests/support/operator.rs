//! The operator under test, running in-process.
//!
//! Each test binary installs the CRDs and starts one operator on a thread of its own (with its own
//! runtime, so it outlives any single test's runtime), logging to
//! `target/tmp/oksa-operator-<test binary>.log`. Set `OKSA_TEST_EXTERNAL_OPERATOR=1` when the
//! cluster already runs Oksa (installed with Helm); then only the CRDs' presence is awaited.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static EXTERNAL: AtomicBool = AtomicBool::new(false);
/// The in-process operator's metrics (not set when the operator is external).
static METRICS: OnceLock<oksa::metrics::Metrics> = OnceLock::new();

/// The in-process operator's metrics in the text format, None when the operator is external.
pub fn metrics_text() -> Option<String> {
    METRICS.get().map(|m| m.encode())
}

/// Whether the in-process operator's metrics can be checked; when the operator is external they
/// cannot, and the check is said to be skipped (in the test's output), not passed in silence.
pub fn metrics_readable(check: &str) -> bool {
    let readable = METRICS.get().is_some();
    if !readable {
        println!("skipped, the operator is external and its metrics are not read here: {check}");
    }
    readable
}

/// This test binary runs the operator itself (e.g. as a separate `oksa run`): only install CRDs.
pub fn use_external() {
    EXTERNAL.store(true, Ordering::SeqCst);
}

pub fn ensure_running() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        super::kubeconfig_path();
        let external = std::env::var_os("OKSA_TEST_EXTERNAL_OPERATOR").is_some()
            || EXTERNAL.load(Ordering::SeqCst);
        let (installed_tx, installed_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = super::client().await;
                oksa::crd::install(&client)
                    .await
                    .expect("installing the CRDs");
                installed_tx.send(()).unwrap();
                if external {
                    return;
                }
                let binary = std::env::current_exe().unwrap();
                let binary = binary.file_stem().unwrap().to_string_lossy();
                let log = format!("{}/oksa-operator-{binary}.log", env!("CARGO_TARGET_TMPDIR"));
                oksa::telemetry::init_to_file(&log).expect("creating the operator log");
                let ready = std::sync::Arc::new(oksa::readiness::Readiness::default());
                let metrics = METRICS.get_or_init(oksa::metrics::Metrics::default).clone();
                let edge = super::edge::ensure_running(WAKE_CAP.load(Ordering::SeqCst)).await;
                let mut forge = oksa::controller::forge::Setup::default();
                if let Some(namespace) = FORGE_NAMESPACE.get() {
                    let (publish, published) = tokio::sync::watch::channel(None);
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    FORGE_WEBHOOK.set(listener.local_addr().unwrap()).unwrap();
                    tokio::spawn(oksa::controller::forge::webhook::serve(
                        listener,
                        published,
                        metrics.clone(),
                        std::future::pending(),
                    ));
                    forge = oksa::controller::forge::Setup {
                        secrets_namespace: Some(namespace.clone()),
                        publish: Some(publish),
                    };
                }
                let setup = oksa::controller::Setup {
                    policy: POLICY.get().cloned().unwrap_or_default(),
                    edge,
                    forge,
                    ..Default::default()
                };
                oksa::controller::run(client, metrics, ready, setup, std::future::pending()).await;
            });
        });
        installed_rx.recv().expect("the CRDs were installed");
    });
}

/// Where the in-process operator reads forge credentials Secrets; set before it starts.
static FORGE_NAMESPACE: OnceLock<String> = OnceLock::new();
/// Where the in-process operator receives forge webhooks, once it runs with a forge namespace.
static FORGE_WEBHOOK: OnceLock<std::net::SocketAddr> = OnceLock::new();

/// Runs the in-process operator with the forge runtime reading Secrets in `namespace` and a
/// webhook receiver (call before `ensure_running`).
pub fn set_forge_secrets_namespace(namespace: &str) {
    let _ = FORGE_NAMESPACE.set(namespace.to_string());
}

/// The address of the in-process operator's webhook receiver (waits until it is bound).
pub fn forge_webhook_address() -> std::net::SocketAddr {
    for _ in 0..600 {
        if let Some(address) = FORGE_WEBHOOK.get() {
            return *address;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the operator's webhook receiver did not start within 30 s");
}

/// The in-process operator's policy, when a test binary needs another than the default.
static POLICY: OnceLock<oksa::policy::Policy> = OnceLock::new();

/// Sets the in-process operator's policy (call before the first Project of the binary is created;
/// every test of the binary must set the same one).
pub fn set_policy(policy: oksa::policy::Policy) {
    let _ = POLICY.set(policy);
}

/// Anonymous wakes per project per hour of the test's edge; set before the operator starts.
static WAKE_CAP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);

/// Sets the test edge's cap (call before the first Project of the binary is created).
pub fn set_wake_cap(per_hour: u32) {
    WAKE_CAP.store(per_hour, Ordering::SeqCst);
}
