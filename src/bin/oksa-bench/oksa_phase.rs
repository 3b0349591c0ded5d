//! Phase 1: Oksa. P projects × B branches from nothing to Ready, a forced resync, then cleanup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;

use super::operator::{MemoryPeaks, MemorySample, OperatorProcess, sum};
use super::stats::{Summary, summarize};
use super::workload::{self, CHILDREN_PER_BRANCH};
use super::{wait, watch};
use oksa::api::{BranchRelease, Phase, Project};
use oksa::labels;

#[derive(Debug, Default, Serialize)]
pub struct OksaResult {
    /// Branches created one at a time on a quiet cluster, each once the previous one was Ready.
    pub solo_branches: usize,
    pub solo_apply_to_children: Summary,
    pub solo_apply_to_ready: Summary,
    /// Per branch, in order: milliseconds from apply to all children, and to Ready.
    pub solo_ms: Vec<(f64, f64)>,
    /// One branch of another, quiet project, created once the burst's creates are all in:
    /// (apply → children, apply → Ready) in ms. With fair turns across projects it does not wait
    /// for the burst's queue.
    pub fairness_ms: (f64, f64),
    pub branches: usize,
    pub apply_to_children: Summary,
    pub apply_to_ready: Summary,
    pub wall_to_all_children_s: f64,
    pub wall_to_all_ready_s: f64,
    pub operator_cpu_s: f64,
    pub operator_peak_rss_mib: f64,
    /// Sampled through the burst: the moment of most resident memory, and the heap's own peak.
    pub burst_memory: MemoryPeaks,
    /// Requests the operator sent to write children and status, by verb.
    pub writes: BTreeMap<String, f64>,
    /// Status writes per branch (the burst, the solo ones, the quiet project's one), from creation to
    /// Ready: (of BranchReleases, of Projects).
    pub status_writes_per_branch: (f64, f64),
    pub resync_reconciles: f64,
    /// Writes of a restarted operator that found everything as declared (goal: 0).
    pub resync_writes: f64,
    pub resync_peak_rss_mib: f64,
    /// From the restarted operator's start to every branch and project reconciled (a restart's
    /// catch-up), and the CPU it took.
    pub resync_s: f64,
    pub resync_cpu_s: f64,
    /// The resynced operator's memory at rest, every branch reconciled.
    pub at_rest: MemorySample,
    /// The operator's log line for each write of the resync (empty when it met its goal of 0).
    pub resync_write_log: Vec<String>,
    pub redeploy: RedeployResult,
    pub failover: crate::failover::FailoverResult,
    pub cleanup_s: f64,
}

/// A new image for branches that exist: the most common CI action.
#[derive(Debug, Default, Serialize)]
pub struct RedeployResult {
    /// The solo branches again, one at a time: patch → Ready at the new generation.
    pub solo: Summary,
    /// Burst branches patched at once (32 in flight).
    pub branches: usize,
    pub to_ready: Summary,
    pub wall_s: f64,
    pub operator_cpu_s: f64,
    /// The operator's writes for the burst's redeploy, by verb, per branch.
    pub writes_per_branch: BTreeMap<String, f64>,
}

struct Redeploys<'a> {
    solo: (&'a str, usize),
    burst: Vec<Key>,
    concurrency: usize,
    timeout: Duration,
}

/// Applies the workload with the redeployed image to one branch; returns the new generation.
async fn apply_new_image(client: &Client, (namespace, name): &Key) -> Result<i64, String> {
    let spec = workload::branch_spec_with(namespace, name, workload::REDEPLOYED_API_IMAGE);
    let patched = Api::<BranchRelease>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await
        .map_err(|e| format!("redeploying {namespace}/{name}: {e}"))?;
    Ok(patched.metadata.generation.unwrap_or(0))
}

async fn redeploy(
    client: &Client,
    seen: &Arc<Mutex<Seen>>,
    operator: &OperatorProcess,
    plan: Redeploys<'_>,
) -> Result<RedeployResult, String> {
    let ready_at = |key: &(Key, i64)| seen.lock().unwrap().ready.get(key).copied();
    let mut solo = Vec::new();
    let (project, count) = plan.solo;
    for i in 0..count {
        let key = (project.to_string(), format!("solo-{i}"));
        let t0 = Instant::now();
        let generation = apply_new_image(client, &key).await?;
        let written = HashMap::from([((key, generation), t0)]);
        solo.push(wait::all("redeployed", &written, ready_at, t0, plan.timeout).await?);
    }
    let metrics_before = operator.metrics().await;
    let cpu_before = operator.cpu_seconds();
    let written: Arc<Mutex<HashMap<(Key, i64), Instant>>> = Arc::default();
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(plan.burst.iter())
        .map(|key| {
            let written = written.clone();
            async move {
                let t0 = Instant::now();
                let generation = apply_new_image(client, key).await?;
                written
                    .lock()
                    .unwrap()
                    .insert((key.clone(), generation), t0);
                Ok(())
            }
        })
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let written = std::mem::take(&mut *written.lock().unwrap());
    let burst = wait::all("redeployed", &written, ready_at, started, plan.timeout).await?;
    wait_until_quiet(operator, QUIET, QUIET_LIMIT).await;
    let (before, after) = (
        writes_by_verb(&metrics_before),
        writes_by_verb(&operator.metrics().await),
    );
    let branches = plan.burst.len();
    Ok(RedeployResult {
        solo: summarize(solo.iter().map(|t| t.per_branch.max_ms).collect()),
        branches,
        to_ready: burst.per_branch,
        wall_s: burst.wall_s,
        operator_cpu_s: operator.cpu_seconds() - cpu_before,
        writes_per_branch: after
            .iter()
            .map(|(verb, n)| (verb.clone(), (n - before[verb]) / branches.max(1) as f64))
            .collect(),
    })
}

/// How long the operator must have written nothing, with no status update held, to be done; and
/// how long to wait for that at most (a held update waits up to `coalesce::LONGEST_WINDOW`).
const QUIET: Duration = Duration::from_secs(3);
const QUIET_LIMIT: Duration = Duration::from_secs(360);

/// A BranchRelease: (namespace, name).
type Key = (String, String);

/// First time each branch was seen with all children, and as Ready at each generation.
#[derive(Default)]
struct Seen {
    children: HashMap<Key, HashSet<String>>,
    children_complete: HashMap<Key, Instant>,
    ready: HashMap<(Key, i64), Instant>,
}

/// Records the milestones of the branches in `namespace` (every namespace when None).
fn watch_all(client: &Client, namespace: Option<&str>, seen: &Arc<Mutex<Seen>>) {
    fn api<K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>>(
        client: &Client,
        namespace: Option<&str>,
    ) -> Api<K> {
        match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
    watch_children::<Deployment>(api(client, namespace), seen.clone());
    watch_children::<Service>(api(client, namespace), seen.clone());
    watch_children::<Ingress>(api(client, namespace), seen.clone());
    watch_children::<PersistentVolumeClaim>(api(client, namespace), seen.clone());
    watch_releases(api(client, namespace), seen.clone());
}

fn watch_children<K>(api: Api<K>, seen: Arc<Mutex<Seen>>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let config = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    watch::each(api, config, move |object: K| {
        let Some(release) = object.labels().get(labels::RELEASE).cloned() else {
            return;
        };
        let key = (object.namespace().unwrap_or_default(), release);
        let mut seen = seen.lock().unwrap();
        let kinds = seen.children.entry(key.clone()).or_default();
        kinds.insert(format!("{}/{}", K::kind(&()), object.name_any()));
        if kinds.len() >= CHILDREN_PER_BRANCH {
            seen.children_complete
                .entry(key)
                .or_insert_with(Instant::now);
        }
    });
}

fn watch_releases(api: Api<BranchRelease>, seen: Arc<Mutex<Seen>>) {
    watch::each(api, watcher::Config::default(), move |release| {
        let ready = release.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::Ready) && s.observed_generation == release.metadata.generation
        });
        if ready {
            let key = (release.namespace().unwrap_or_default(), release.name_any());
            let generation = release.metadata.generation.unwrap_or(0);
            seen.lock()
                .unwrap()
                .ready
                .entry((key, generation))
                .or_insert_with(Instant::now);
        }
    });
}

fn writes_by_verb(metrics: &str) -> BTreeMap<String, f64> {
    ["apply", "create", "delete", "status", "skipped"]
        .iter()
        .map(|verb| {
            (
                verb.to_string(),
                sum(
                    metrics,
                    "oksa_child_writes_total",
                    &[&format!("verb=\"{verb}\"")],
                ),
            )
        })
        .collect()
}

/// Waits until the operator holds no status update back (see `coalesce`) and has written nothing
/// (apart from skips) for `quiet`, or `limit` passed.
async fn wait_until_quiet(operator: &OperatorProcess, quiet: Duration, limit: Duration) {
    let writes = |metrics: &str| {
        sum(metrics, "oksa_child_writes_total", &[])
            - sum(metrics, "oksa_child_writes_total", &["verb=\"skipped\""])
    };
    let deadline = Instant::now() + limit;
    let mut last = writes(&operator.metrics().await);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let metrics = operator.metrics().await;
        let now = writes(&metrics);
        if now != last {
            last = now;
            since = Instant::now();
        }
        if since.elapsed() >= quiet && sum(&metrics, "oksa_status_updates_held", &[]) == 0.0 {
            return;
        }
    }
}

/// The low-load case: one branch at a time, the next created once the previous is Ready.
/// Returns, per branch, milliseconds from the create call to all children and to Ready.
async fn solo_branches(
    client: &Client,
    seen: &Arc<Mutex<Seen>>,
    project: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<(f64, f64)>, String> {
    let api = Api::<BranchRelease>::namespaced(client.clone(), project);
    let mut timings = Vec::with_capacity(count);
    for i in 0..count {
        let branch = format!("solo-{i}");
        let key = (project.to_string(), branch.clone());
        let release = BranchRelease::new(&branch, workload::branch_spec(project, &branch));
        let t0 = Instant::now();
        api.create(&PostParams::default(), &release)
            .await
            .map_err(|e| e.to_string())?;
        // The watches record when they saw each milestone; polling here only decides when to
        // move on, so its interval does not enter the figures.
        loop {
            let milestones = {
                let seen = seen.lock().unwrap();
                seen.children_complete
                    .get(&key)
                    .copied()
                    .zip(seen.ready.get(&(key.clone(), 1)).copied())
            };
            if let Some((children, ready)) = milestones {
                let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1000.0;
                timings.push((ms(children), ms(ready)));
                break;
            }
            if t0.elapsed() > timeout {
                return Err(format!("branch {branch} was not Ready after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(timings)
}

pub async fn run(
    client: &Client,
    args: &super::Args,
    binary: &Path,
    run_id: &str,
) -> Result<OksaResult, String> {
    let timeout = Duration::from_secs(args.timeout);
    std::fs::create_dir_all("target/bench").map_err(|e| e.to_string())?;
    let operator = OperatorProcess::start(
        binary,
        Path::new("target/bench/operator.log"),
        &std::env::var("OKSA_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    operator.wait_ready(Duration::from_secs(60)).await?;

    let seen = Arc::new(Mutex::new(Seen::default()));
    watch_all(client, None, &seen);

    // Projects first: their namespaces must exist before branches can be created in them.
    let projects: Vec<String> = (0..args.projects)
        .map(|p| format!("bench-{run_id}-p{p}"))
        .collect();
    // A project that takes no part in the burst: its one branch measures fairness.
    let quiet = format!("bench-{run_id}-quiet");
    let all_projects: Vec<String> = projects.iter().cloned().chain([quiet.clone()]).collect();
    // Its own watches, as its team would watch it (`kubectl get -w -n …`): in the cluster-wide
    // ones its events queue behind the burst's thousands, which measured the bench's watch, not
    // the branch (2-3 s of its 5 s to children at 1,000).
    watch_all(client, Some(&quiet), &seen);
    let project_api = Api::<Project>::all(client.clone());
    for name in &all_projects {
        project_api
            .create(&PostParams::default(), &workload::project(name))
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + timeout;
    for name in &all_projects {
        while project_api
            .get(name)
            .await
            .ok()
            .and_then(|p| p.status?.namespace)
            .is_none()
        {
            if Instant::now() > deadline {
                return Err(format!("Project {name} did not become ready"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut result = OksaResult::default();
    let solo = solo_branches(client, &seen, &projects[0], args.solo_branches, timeout).await?;
    result.solo_branches = args.solo_branches;
    result.solo_apply_to_children = summarize(solo.iter().map(|s| s.0).collect());
    result.solo_apply_to_ready = summarize(solo.iter().map(|s| s.1).collect());
    result.solo_ms = solo;

    let total = args.projects * args.branches;
    let applied: Arc<Mutex<HashMap<Key, Instant>>> = Arc::default();
    let memory = operator.sample_memory();
    let jobs = projects
        .iter()
        .flat_map(|p| (0..args.branches).map(move |b| (p.clone(), format!("b-{b}"))));
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(jobs)
        .map(|(project, branch)| {
            let client = client.clone();
            let applied = applied.clone();
            async move {
                let api = Api::<BranchRelease>::namespaced(client, &project);
                let release = BranchRelease::new(&branch, workload::branch_spec(&project, &branch));
                applied
                    .lock()
                    .unwrap()
                    .insert((project.clone(), branch.clone()), Instant::now());
                api.create(&PostParams::default(), &release)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
        return Err(format!("creating a BranchRelease: {error}"));
    }
    eprintln!(
        "  {total} BranchReleases created in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let fairness = solo_branches(client, &seen, &quiet, 1, timeout).await?;
    result.fairness_ms = fairness[0];
    eprintln!(
        "  meanwhile, another project's branch: Ready in {:.0} ms",
        result.fairness_ms.1
    );
    // Only this run's branches count: the cluster may hold others.
    let applied = std::mem::take(&mut *applied.lock().unwrap());
    let ready = wait::all(
        "Ready",
        &applied,
        |key| seen.lock().unwrap().ready.get(&(key.clone(), 1)).copied(),
        started,
        timeout,
    )
    .await?;
    result.branches = total;
    result.apply_to_ready = ready.per_branch;
    result.wall_to_all_ready_s = ready.wall_s;
    let children = wait::timed(
        &applied,
        |key| seen.lock().unwrap().children_complete.get(key).copied(),
        started,
    );
    result.apply_to_children = children.per_branch;
    result.wall_to_all_children_s = children.wall_s;
    // Let the last status writes land before reading the counters (and before the resync, which
    // must find nothing left to do).
    wait_until_quiet(&operator, QUIET, QUIET_LIMIT).await;
    result.burst_memory = memory.finish().await;
    result.operator_cpu_s = operator.cpu_seconds();
    result.operator_peak_rss_mib = operator.peak_rss_mib();
    let metrics = operator.metrics().await;
    result.writes = writes_by_verb(&metrics);
    let status_of = |kind: &str| {
        sum(
            &metrics,
            "oksa_child_writes_total",
            &[&format!("kind=\"{kind}\""), "verb=\"status\""],
        ) / (total + args.solo_branches + 1) as f64
    };
    result.status_writes_per_branch = (status_of("BranchRelease"), status_of("Project"));
    operator.stop();

    // A forced full resync: a new operator lists and reconciles every object, finding nothing to change.
    let resync_log = Path::new("target/bench/operator-resync.log");
    let resync_started = Instant::now();
    let operator = OperatorProcess::start(binary, resync_log, "warn,oksa::writes=debug")
        .map_err(|e| e.to_string())?;
    operator.wait_ready(Duration::from_secs(60)).await?;
    // Every branch (the burst, the solo ones and the quiet project's one) and every project
    // (the quiet one included).
    operator
        .wait_reconciled(total + args.solo_branches + 1, all_projects.len(), timeout)
        .await
        .map_err(|e| format!("the resync: {e}"))?;
    result.resync_s = resync_started.elapsed().as_secs_f64();
    result.resync_cpu_s = operator.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = operator.metrics().await;
    result.resync_reconciles = sum(&metrics, "oksa_reconciles_total", &[]);
    let resync = writes_by_verb(&metrics);
    // Every write, whatever its verb: only "skipped" is not one.
    result.resync_writes = sum(&metrics, "oksa_child_writes_total", &[]) - resync["skipped"];
    result.resync_peak_rss_mib = operator.peak_rss_mib();
    result.at_rest = operator.memory().await;
    // Each write of the resync names its object, so that a failed "goal 0" says what was written.
    result.resync_write_log = std::fs::read_to_string(resync_log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("oksa::writes"))
        .map(str::to_string)
        .collect();

    result.redeploy = redeploy(
        client,
        &seen,
        &operator,
        Redeploys {
            solo: (&projects[0], args.solo_branches),
            burst: applied
                .keys()
                .take(args.redeploy_branches)
                .cloned()
                .collect(),
            concurrency: args.concurrency,
            timeout,
        },
    )
    .await?;

    // A failover to a standby, the operator killed without a goodbye.
    operator.stop();
    let (failover, operator) = crate::failover::run(
        binary,
        total + args.solo_branches + 1,
        all_projects.len(),
        timeout,
    )
    .await?;
    result.failover = failover;

    if args.keep {
        operator.stop();
        eprintln!("  kept: {}", projects.join(" "));
        return Ok(result);
    }
    // Cleanup: deleting the projects deletes their namespaces and everything in them.
    let cleanup = Instant::now();
    for name in &all_projects {
        let _ = project_api.delete(name, &DeleteParams::background()).await;
    }
    let namespaces = Api::<Namespace>::all(client.clone());
    loop {
        let left = namespaces
            .list(&ListParams::default().labels(labels::MANAGED_SELECTOR))
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|n| all_projects.contains(&n.name_any()))
            .count();
        if left == 0 {
            break;
        }
        if cleanup.elapsed() > timeout {
            return Err(format!("{left} namespaces still there after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    result.cleanup_s = cleanup.elapsed().as_secs_f64();
    operator.stop();
    Ok(result)
}
