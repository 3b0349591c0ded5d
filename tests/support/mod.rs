//! Shared support for the integration tests: a real cluster, a namespace per test, and waiting
//! on conditions with timeouts.
//!
//! The cluster is the one `KUBECONFIG` points at when it is set, so the same suite runs against
//! kind, k3d or a cloud cluster. Otherwise `tests/cluster/up` starts (or reuses) the local control
//! plane once for the whole run.
#![allow(dead_code)] // each test binary uses its own subset

pub mod browser;
pub mod edge;
pub mod fixtures;
pub mod forge;
pub mod identity;
pub mod operator;
pub mod plane_process;
pub mod process;
pub mod web;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client, Config, Resource};
use serde::de::DeserializeOwned;

/// Label on every namespace a test creates, so leftovers of an interrupted run are easy to find.
pub const TEST_LABEL: &str = "oksa.dev/test";

/// The cluster under test: its kubeconfig, and where the local plane keeps kubectl and helm
/// (None for a cluster given by `KUBECONFIG`: then they come from `PATH`).
pub struct Plane {
    pub kubeconfig: PathBuf,
    pub tools: Option<PathBuf>,
    /// The local plane's state folder (its pids/ and logs/); None for a cluster given by
    /// `KUBECONFIG`, whose processes the tests cannot touch.
    pub state: Option<PathBuf>,
}

/// The kubeconfig of the cluster under test, resolved once per test binary.
pub fn kubeconfig_path() -> &'static PathBuf {
    &plane().kubeconfig
}

/// A command for one of the cluster tools (`kubectl`, `helm`), with `KUBECONFIG` set.
pub fn tool(name: &str) -> std::process::Command {
    let plane = plane();
    let program = plane
        .tools
        .as_ref()
        .map(|dir| dir.join(name))
        .unwrap_or_else(|| PathBuf::from(name));
    let mut command = std::process::Command::new(program);
    command.env("KUBECONFIG", &plane.kubeconfig);
    command
}

/// Runs `command`, and fails the test with its stderr unless it succeeds.
pub fn succeed(command: &mut std::process::Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn plane() -> &'static Plane {
    static PLANE: OnceLock<Plane> = OnceLock::new();
    PLANE.get_or_init(|| {
        if let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            return Plane {
                kubeconfig: PathBuf::from(path),
                tools: None,
                state: None,
            };
        }
        let up = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/up");
        // The plane's build and start-up messages go straight to the terminal (stderr inherited).
        let output = std::process::Command::new(up)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("running tests/cluster/up");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "tests/cluster/up failed ({}): {stdout}",
            output.status
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export KUBECONFIG="))
            .expect("tests/cluster/up prints the KUBECONFIG line");
        let tools = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export PATH="))
            .and_then(|l| l.split(':').next())
            .map(PathBuf::from);
        let kubeconfig = PathBuf::from(line.trim());
        Plane {
            state: kubeconfig.parent().map(PathBuf::from),
            kubeconfig,
            tools,
        }
    })
}

/// The folder behind a bound claim of the local plane's provisioner (waits until it is bound);
/// None on a cluster given by `KUBECONFIG`, whose volumes this machine cannot read.
pub async fn claim_folder(client: &Client, namespace: &str, claim: &str) -> Option<PathBuf> {
    plane().state.as_ref()?;
    let claims = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        client.clone(),
        namespace,
    );
    let bound = wait_for(
        &claims,
        claim,
        Duration::from_secs(60),
        "Bound",
        |c: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .is_some_and(|s| s.phase.as_deref() == Some("Bound"))
        },
    )
    .await;
    let volume_name = bound.spec?.volume_name?;
    let volume = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(client.clone())
        .get(&volume_name)
        .await
        .ok()?;
    Some(volume.spec?.host_path?.path.into())
}

/// A client for the cluster under test.
pub async fn client() -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("reading the kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    Client::try_from(config).expect("a client")
}

/// A short random suffix for names that must not collide between tests and runs.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A namespace of one test. Deleted by `cleanup`, which each test calls at its end; a failing
/// test leaves its namespace for inspection (it carries `TEST_LABEL`).
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn create(prefix: &str) -> TestNamespace {
        let client = client().await;
        let name = unique(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("creating the test namespace");
        TestNamespace { client, name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::background())
            .await;
    }
}

/// Waits until `condition` holds for the named object, or panics after `timeout` with the
/// object's last state, so a failure says what was seen instead of hanging.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: impl Condition<K>,
) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => object,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for: {what}"),
        Ok(Err(error)) => panic!("watching {name} while waiting for {what}: {error}"),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("timed out after {timeout:?} waiting for {name}: {what}\nlast seen: {last:#?}")
        }
    }
}

/// Waits until the named object is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let gone = tokio::time::timeout(timeout, async {
        loop {
            match api.get_opt(name).await {
                Ok(None) => return,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "{name} still exists after {timeout:?}");
}

/// Polls `probe` until it returns Some, or panics after `timeout` saying what was awaited.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A free port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (status code, whole response), or code 0 when nothing listens yet.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_from(&format!("127.0.0.1:{port}"), "localhost", path).await
}

/// GET `path` from `address` (host:port) with that Host header: (status code, whole response), or
/// code 0 when nothing listens there.
pub async fn http_get_from(address: &str, host: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).await.is_err()
        || stream.read_to_string(&mut response).await.is_err()
    {
        return (0, String::new());
    }
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}
