//! `oksa demo`: the whole product on one machine. Brings up the local control plane when no
//! cluster is given, installs the CRDs, runs the operator, applies `examples/`, and shows the
//! branches until every one is Ready.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::api::{BranchRelease, Phase, Project};

pub mod protected;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the local control plane failed: {0}")]
    ControlPlane(String),
    #[error("cannot connect to Kubernetes: {}", crate::apply::describe(.0))]
    Connect(#[source] kube::Error),
    #[error("reading {0}: {1}")]
    Example(PathBuf, String),
    #[error("Kubernetes refused a request: {}", crate::apply::describe(.0))]
    Api(#[from] kube::Error),
    #[error("not every branch became Ready within {0:?}:\n{1}")]
    Timeout(Duration, String),
}

/// The examples, as typed objects: applying them typed means a broken example fails here, not
/// half-applied.
pub fn load_examples(folder: &Path) -> Result<(Vec<Project>, Vec<BranchRelease>), DemoError> {
    let mut projects = Vec::new();
    let mut releases = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| DemoError::Example(folder.into(), e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| DemoError::Example(path.clone(), e.to_string()))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_json::Value =
                serde::Deserialize::deserialize(document).map_err(|e: serde_yaml_ng::Error| {
                    DemoError::Example(path.clone(), e.to_string())
                })?;
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("Project") => projects.push(
                    serde_json::from_value(value)
                        .map_err(|e| DemoError::Example(path.clone(), e.to_string()))?,
                ),
                Some("BranchRelease") => releases.push(
                    serde_json::from_value(value)
                        .map_err(|e| DemoError::Example(path.clone(), e.to_string()))?,
                ),
                _ => {}
            }
        }
    }
    Ok((projects, releases))
}

/// The Oksa source tree the demo runs from (its `examples/` and the local plane's scripts in
/// `tests/cluster/`): the current folder or one above it, else the folder the binary was built
/// in (`target/<profile>/oksa` sits two levels below it). Looked up at run time, so a binary
/// moved elsewhere says what it needs instead of running a path of the machine it was built on.
pub fn find_source_tree() -> Result<PathBuf, DemoError> {
    let is_tree =
        |dir: &Path| dir.join("tests/cluster/up").is_file() && dir.join("examples").is_dir();
    let from_cwd = std::env::current_dir().ok();
    let from_exe = std::env::current_exe().ok();
    from_cwd
        .iter()
        .chain(from_exe.iter())
        .flat_map(|start| start.ancestors())
        .find(|dir| is_tree(dir))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            DemoError::ControlPlane(
                "the demo runs from Oksa's source tree (it needs examples/ and tests/cluster/): \
                 run it inside the repository"
                    .into(),
            )
        })
}

/// Uses `KUBECONFIG` when set; otherwise starts (or reuses) the local control plane and points
/// `KUBECONFIG` at it. Returns the folder with the local plane's kubectl and helm, if it started one.
pub fn ensure_cluster(repo: &Path) -> Result<Option<PathBuf>, DemoError> {
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    eprintln!(
        "No KUBECONFIG given: starting the local control plane (the first start builds it, which takes a while)..."
    );
    let output = std::process::Command::new(repo.join("tests/cluster/up"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| DemoError::ControlPlane(e.to_string()))?;
    if !output.status.success() {
        return Err(DemoError::ControlPlane(format!(
            "tests/cluster/up exited with {}",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout
        .lines()
        .find_map(|line| line.strip_prefix("export KUBECONFIG="))
        .ok_or_else(|| DemoError::ControlPlane("tests/cluster/up printed no KUBECONFIG".into()))?;
    // SAFETY: set before any other thread of this process reads the environment.
    unsafe { std::env::set_var("KUBECONFIG", path.trim()) };
    eprintln!("{}", stdout.trim());
    let tools = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export PATH="))
        .and_then(|l| l.split(':').next());
    Ok(tools.map(PathBuf::from))
}

/// Scales a branch to zero and back, as `kubectl scale branchrelease NAME --replicas=0` does, and
/// shows it asleep (workloads at zero, routes on the waker, volumes kept) and awake again.
async fn sleep_and_wake(
    client: &Client,
    branch: &BranchRelease,
    timeout: Duration,
) -> Result<(), DemoError> {
    let namespace = branch.namespace().unwrap_or_default();
    let name = branch.name_any();
    let api = Api::<BranchRelease>::namespaced(client.clone(), &namespace);
    let show = |release: &BranchRelease| {
        println!(
            "{}
",
            crate::table::render(std::slice::from_ref(release), Timestamp::now())
        )
    };
    let until = |wanted: Phase, state: crate::api::LifecycleState| {
        let api = api.clone();
        let name = name.clone();
        async move {
            let started = Instant::now();
            loop {
                let release = api.get(&name).await?;
                let reached = release.status.as_ref().is_some_and(|s| {
                    s.phase == Some(wanted)
                        && s.observed_generation == release.metadata.generation
                        && s.lifecycle.as_ref().map(|l| l.state) == Some(state)
                });
                if reached {
                    return Ok::<_, DemoError>((release, started.elapsed()));
                }
                if started.elapsed() > timeout {
                    return Err(DemoError::Timeout(
                        timeout,
                        crate::table::reasons(&[release]).join("\n"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let scale = |replicas: i32| {
        let api = api.clone();
        let name = name.clone();
        async move {
            let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}}));
            api.patch_scale(&name, &PatchParams::default(), &patch)
                .await
        }
    };
    println!(
        "\nSleep: kubectl scale branchrelease -n {namespace} {name} --replicas=0 \
         (workloads to zero, routes to the waker, volumes kept)"
    );
    scale(0).await?;
    let (asleep, took) = until(Phase::Sleeping, crate::api::LifecycleState::Sleeping).await?;
    println!("asleep after {:.1}s:", took.as_secs_f64());
    show(&asleep);
    println!("Wake: kubectl scale branchrelease -n {namespace} {name} --replicas=1");
    scale(1).await?;
    let (awake, took) = until(Phase::Ready, crate::api::LifecycleState::Awake).await?;
    println!("awake and Ready again after {:.1}s:", took.as_secs_f64());
    show(&awake);
    Ok(())
}

pub async fn run(repo: &Path, exit_when_ready: bool, timeout: Duration) -> Result<(), DemoError> {
    ensure_cluster(repo)?;
    let client = Client::try_default().await.map_err(DemoError::Connect)?;
    crate::crd::install(&client).await?;
    // On the local plane the edge runs too, so a protected branch can be shown for real.
    let traefik = protected::local_traefik();
    let edge_service = match traefik {
        Some(_) => protected::start_edge(&client).await?,
        None => None,
    };
    let operator_client = client.clone();
    tokio::spawn(async move {
        let ready = Arc::new(crate::readiness::Readiness::default());
        crate::controller::run(
            operator_client,
            crate::metrics::Metrics::default(),
            ready,
            crate::controller::Setup {
                edge: edge_service,
                ..Default::default()
            },
            std::future::pending(),
        )
        .await;
    });

    let (projects, releases) = load_examples(&repo.join("examples"))?;
    let params = PatchParams::apply("oksa-demo").force();
    for project in &projects {
        Api::<Project>::all(client.clone())
            .patch(&project.name_any(), &params, &Patch::Apply(project))
            .await?;
    }
    let started = Instant::now();
    // The namespace of a project appears once Oksa created it; like a GitOps tool, retry.
    for release in &releases {
        let api = Api::<BranchRelease>::namespaced(
            client.clone(),
            &release.namespace().unwrap_or_default(),
        );
        loop {
            match api
                .patch(&release.name_any(), &params, &Patch::Apply(release))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(status))
                    if status.is_not_found() && started.elapsed() < timeout =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    let namespaces: Vec<String> = releases
        .iter()
        .filter_map(|r| r.namespace())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let mut current = Vec::new();
        for namespace in &namespaces {
            current.extend(
                Api::<BranchRelease>::namespaced(client.clone(), namespace)
                    .list(&ListParams::default())
                    .await?
                    .items,
            );
        }
        let table = crate::table::render(&current, Timestamp::now());
        if table != last {
            if terminal {
                // Redraw in place: clear the screen and go home.
                print!("\x1b[2J\x1b[H");
            }
            println!("{table}\n");
            last = table;
        }
        let all_ready = !current.is_empty()
            && current.iter().all(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Ready) && s.observed_generation == r.metadata.generation
                })
            });
        if all_ready {
            println!(
                "Every branch is Ready after {:.1}s:",
                started.elapsed().as_secs_f64()
            );
            for release in &current {
                let url = release
                    .status
                    .as_ref()
                    .and_then(|s| s.url.clone())
                    .unwrap_or_default();
                println!("  {:<24} {url}", release.spec.branch);
            }
            // Where their data came from (reference data) and their deploy jobs.
            for line in crate::table::data_lines(&current, Timestamp::now()) {
                println!("  {line}");
            }
            for release in &current {
                let status = release.status.as_ref();
                for job in status.iter().flat_map(|s| &s.jobs) {
                    println!(
                        "  {}: job {} {} ({})",
                        release.spec.branch, job.name, job.phase, job.job_name
                    );
                }
            }
            // Sleep and wake one branch, as a person would with kubectl.
            if let Some(branch) = current.last() {
                sleep_and_wake(&client, branch, timeout).await?;
            }
            let guarded = current.iter().find_map(|release| {
                let project = projects
                    .iter()
                    .find(|p| p.name_any() == release.spec.project)?;
                crate::routing::protection(release, project).map(|_| (release, project))
            });
            if let (Some(traefik), Some((release, project))) = (traefik, guarded) {
                protected::show(&client, traefik, release, project).await?;
            }
            break;
        }
        if started.elapsed() > timeout {
            return Err(DemoError::Timeout(
                timeout,
                crate::table::reasons(&current).join("\n"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if exit_when_ready {
        return Ok(());
    }
    println!(
        "\nThe operator keeps running; try `kubectl get branchreleases -A` in another terminal (with the KUBECONFIG above). Ctrl-C stops it."
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
