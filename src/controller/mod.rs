//! The two controllers and their wiring: one watch per kind, shared caches, and the triggers that
//! connect them (a child's change reconciles its owner; a Project's change reconciles its
//! BranchReleases; a BranchRelease's change updates its Project's counts).

pub mod branch_release;
#[cfg(all(test, feature = "jemalloc"))]
mod cache_cost;
pub mod coalesce;
mod context;
pub mod edge_endpoints;
mod error;
mod events;
pub mod expiry_budget;
mod finalizer;
pub mod forge;
pub mod object_key;
pub mod project;
mod queue;
mod recorder;
pub mod runner;
mod status_writer;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

pub use context::{Context, Stores};
pub use error::Error;
pub use runner::Action;

use crate::api::{BranchRelease, Project};
use crate::labels::{self, MANAGED_SELECTOR};
use crate::metrics::Metrics;
use crate::model::index;
use crate::watch;

/// Runs both controllers until `shutdown` completes, then lets running reconciles finish.
/// `ready` turns true once every cache has its first full list.
///
/// The caches are waited on by one task here, which reports each to `ready` as it fills, and
/// reconciles wait on a `watch` channel that this task sets. (The two kube `Store`s among them,
/// Projects and Namespaces, must have one waiter only: kube-runtime's `Store::wait_until_ready`
/// wakes only the most recent of several concurrent waiters.)
pub async fn run(
    client: Client,
    metrics: Metrics,
    ready: Arc<crate::readiness::Readiness>,
    setup: Setup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let Setup {
        policy,
        edge,
        forge: forge_setup,
        release_workers,
    } = setup;
    let (projects, projects_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let (releases, releases_writer) = watch::cache();
    let (deployments, deployments_writer) = watch::cache();
    let (services, services_writer) = watch::cache();
    let (ingresses, ingresses_writer) = watch::cache();
    let (http_routes, http_routes_writer) = watch::cache();
    let (claims, claims_writer) = watch::cache();
    let (pods, pods_writer) = watch::cache();
    let (role_bindings, role_bindings_writer) = watch::cache();
    let (quotas, quotas_writer) = watch::cache();
    let (limit_ranges, limit_ranges_writer) = watch::cache();
    let (network_policies, network_policies_writer) = watch::cache();
    let (endpoint_slices, endpoint_slices_writer) = watch::cache();
    let (autoscalers, autoscalers_writer) = watch::cache();
    let (jobs, jobs_writer) = watch::cache();
    let stores = Stores {
        projects,
        namespaces,
        releases,
        deployments,
        services,
        ingresses,
        http_routes,
        claims,
        pods,
        role_bindings,
        quotas,
        limit_ranges,
        network_policies,
        endpoint_slices,
        autoscalers,
        jobs,
    };
    let (caches_ready_tx, caches_ready) = tokio::sync::watch::channel(false);
    // Expiry judges time by the API server's clock, not this machine's.
    let clock = tokio::spawn(crate::clock::run(client.clone()));
    let gateway_api = gateway_api_installed(&client).await;
    let metrics_api = crate::usage::served(&client).await;
    let (edge_tx, edge_rx) = tokio::sync::watch::channel(None);
    let (project_triggers, project_triggers_rx) = futures::channel::mpsc::unbounded();
    let (forge_triggers, forge_triggers_rx) = futures::channel::mpsc::unbounded();
    let (forges, forge_requests) = forge::Forges::new(
        client.clone(),
        stores.projects.clone(),
        stores.releases.clone(),
        metrics.clone(),
        forge_setup.secrets_namespace,
        forge_triggers,
        project_triggers.clone(),
    );
    let mut ctx = Context::new(
        client.clone(),
        stores.clone(),
        metrics,
        caches_ready,
        policy,
        gateway_api,
        edge_rx,
        forges.clone(),
    );
    ctx.metrics_api = metrics_api;
    ctx.edge_deployed = edge.is_some();
    let ctx = Arc::new(ctx);
    let shutdown = shutdown.shared();

    // A project's namespaced children carry the project's name as a label; the owner reference
    // alone would not do, because the Project is cluster-scoped and they are not.
    let by_project_label =
        |labels: &BTreeMap<String, String>| labels.get(labels::PROJECT).map(|p| ObjectRef::new(p));
    let namespace_project = |ns: PartialObjectMeta<Namespace>| {
        ns.labels()
            .get(labels::PROJECT)
            .map(|name| ObjectRef::<Project>::new(name))
    };
    let managed_namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watch::config().labels(MANAGED_SELECTOR),
    )
    .default_backoff()
    .modify(|ns| ns.metadata.managed_fields = None)
    .reflect(namespaces_writer)
    .touched_objects();
    // The edge's pods changed: every project namespace's edge Service follows.
    let edge = edge.map(|service| {
        let projects = stores.projects.clone();
        let project_triggers = project_triggers.clone();
        tokio::spawn(edge_endpoints::follow(
            client.clone(),
            service,
            edge_tx,
            move || {
                for project in projects.state() {
                    let _ = project_triggers.unbounded_send(ObjectRef::from_obj(project.as_ref()));
                }
            },
        ))
    });
    let (sibling_triggers, sibling_triggers_rx) = futures::channel::mpsc::unbounded();
    let (releases_listed_tx, mut releases_listed) = tokio::sync::watch::channel(false);
    let projects_of_namespace = {
        let projects = stores.projects.clone();
        move |namespace: &str| -> Vec<ObjectRef<Project>> {
            projects
                .state_filter(|p| p.namespace_name() == namespace)
                .iter()
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect()
        }
    };
    // The project controller's own copy of Projects, stripped like the other caches (see
    // `watch::all`); the one in `stores` is filled by the branches' watch of Projects below.
    let (own_projects, own_projects_writer) = reflector::store();
    const PROJECTS: &str = project::reconcile::CONTROLLER;
    let project_controller_triggers: runner::Triggers<Project> = vec![
        runner::on_self(
            PROJECTS,
            watch::all(
                &client,
                own_projects_writer,
                unreadable_reporter::<Project>(&ctx),
            ),
        ),
        runner::on_map(PROJECTS, managed_namespaces, namespace_project),
        runner::on_map(
            PROJECTS,
            watch::managed(&client, role_bindings_writer),
            move |o| by_project_label(o.labels()),
        ),
        runner::on_map(PROJECTS, watch::managed(&client, quotas_writer), move |o| {
            by_project_label(o.labels())
        }),
        runner::on_map(
            PROJECTS,
            watch::managed(&client, limit_ranges_writer),
            move |o| by_project_label(o.labels()),
        ),
        runner::on_map(
            PROJECTS,
            watch::managed(&client, network_policies_writer),
            move |o| by_project_label(o.labels()),
        ),
        // Only the waker's: the EndpointSlice controller copies a Service's labels onto the
        // slices it makes, so a selector on `managed-by` alone would cache two per branch and
        // recount a project at every pod's readiness.
        runner::on_map(
            PROJECTS,
            watch::selected(
                &client,
                endpoint_slices_writer,
                labels::OWN_ENDPOINT_SLICES_SELECTOR,
            ),
            move |o| by_project_label(o.labels()),
        ),
        // Branch counts: any BranchRelease change recounts the project of its namespace (sent
        // by the BranchRelease watch below).
        project_triggers_rx.boxed(),
    ];
    let project_controller = runner::run(
        PROJECTS,
        move |key: &ObjectRef<Project>| own_projects.get(key),
        project_controller_triggers,
        runner::Settings {
            workers: PROJECT_WORKERS,
            // A burst of branch changes recounts a project once.
            debounce: Duration::from_millis(500),
            after_panic: AFTER_PANIC,
            depth: ctx.metrics.queue_depth(PROJECTS),
        },
        forgetting_failures(project::reconcile::reconcile),
        error_policy,
        ctx.clone(),
        until_caches_ready(&ctx),
        shutdown.clone(),
    );

    let releases_of_project = {
        let releases = stores.releases.clone();
        move |project: Project| -> Vec<ObjectRef<BranchRelease>> {
            let project = project.name_any();
            releases
                .state_filter(|r| r.spec.project == project)
                .iter()
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect()
        }
    };
    // Pods belong to a ReplicaSet, not to the BranchRelease: their labels name the release.
    // Usually the BranchRelease has the release's name (a lookup); else its namespace's are
    // searched (pod events are the most frequent of all).
    let release_of_pod = {
        let releases = stores.releases.clone();
        move |pod: PartialObjectMeta<Pod>| -> Option<ObjectRef<BranchRelease>> {
            let namespace = pod.namespace()?;
            let release_name = pod.labels().get(labels::RELEASE)?;
            let is_its = |r: &BranchRelease| index::runs_pod_of(r, &namespace, release_name);
            let named_alike = ObjectRef::new(release_name).within(&namespace);
            releases
                .get(&named_alike)
                .filter(|r| is_its(r))
                .or_else(|| {
                    releases
                        .in_namespace(&namespace)
                        .into_iter()
                        .find(|r| is_its(r))
                })
                .map(|r| ObjectRef::from_obj(r.as_ref()))
        }
    };
    // One watch and one cache of BranchReleases serve both controllers and every reconcile.
    // Only the controller waits for the cache (see above); the readiness task learns of its
    // first list from the watch itself.
    let releases_stream = watch::all_observed(
        &client,
        releases_writer,
        move || {
            let _ = releases_listed_tx.send(true);
        },
        {
            let releases = stores.releases.clone();
            let ctx = ctx.clone();
            move |release: &BranchRelease| {
                let still_cached = releases.get(&ObjectRef::from_obj(release)).is_some();
                if forget_if_gone(&ctx, still_cached, release, &ctx.release_progress) {
                    ctx.forges.forget(&forge::key_of(release));
                }
                let namespace = release.namespace().unwrap_or_default();
                for project in projects_of_namespace(&namespace) {
                    let _ = project_triggers.unbounded_send(project);
                }
                for sibling in blocked_by(&releases, release) {
                    let _ = sibling_triggers.unbounded_send(sibling);
                }
            }
        },
        unreadable_reporter::<BranchRelease>(&ctx),
    );
    const BRANCHES: &str = branch_release::reconcile::CONTROLLER;
    let mut release_triggers: runner::Triggers<BranchRelease> = vec![
        runner::on_self(BRANCHES, releases_stream),
        runner::on_owner(BRANCHES, watch::managed(&client, deployments_writer)),
        runner::on_owner(BRANCHES, watch::managed(&client, services_writer)),
        runner::on_owner(BRANCHES, watch::managed(&client, ingresses_writer)),
        // A claim's change concerns its owner, and the branches of its namespace that wait for
        // their reference data (the source they clone may just have appeared or been bound).
        runner::on_map(BRANCHES, watch::managed(&client, claims_writer), {
            let releases = stores.releases.clone();
            move |claim: PartialObjectMeta<PersistentVolumeClaim>| {
                let namespace = claim.namespace().unwrap_or_default();
                let owner = runner::controller_owner::<BranchRelease>(claim.meta());
                let waiting = releases
                    .in_namespace(&namespace)
                    .into_iter()
                    .filter(|r| index::waits_for_reference(r, &namespace))
                    .map(|r| ObjectRef::from_obj(r.as_ref()));
                owner.into_iter().chain(waiting).collect::<Vec<_>>()
            }
        }),
        runner::on_owner(BRANCHES, watch::managed(&client, autoscalers_writer)),
        runner::on_owner(BRANCHES, watch::managed(&client, jobs_writer)),
        // A pod's change (pulled, crashed, ready) is how a component's progress or failure
        // shows. Cached with their labels and status only (`Compact` drops a pod's spec).
        runner::on_map(
            BRANCHES,
            watch::managed(&client, pods_writer),
            release_of_pod,
        ),
        // A Project's change reconciles its branches. This watch also fills the Project cache.
        runner::on_map(
            BRANCHES,
            {
                let projects = stores.projects.clone();
                let ctx = ctx.clone();
                watch::all_observed(
                    &client,
                    projects_writer,
                    || {},
                    move |project: &Project| {
                        let still_cached = projects.get(&ObjectRef::from_obj(project)).is_some();
                        if forget_if_gone(&ctx, still_cached, project, &ctx.project_summaries) {
                            ctx.forges.forget_project(&project.name_any());
                        }
                    },
                    |_: &ObjectMeta, _: &str| {},
                )
                .predicate_filter(what_branches_see, Default::default())
            },
            releases_of_project,
        ),
        // A branch that goes away or changes its spec may free what a blocked sibling waits for.
        sibling_triggers_rx.boxed(),
        // The forge said something new of a branch (gone, a pull request, a report written).
        forge_triggers_rx.boxed(),
    ];
    // HTTPRoutes only where Gateway API is installed; elsewhere their cache stays empty (its
    // writer dropped here) and a Project that asks for a Gateway is told why it gets none.
    if gateway_api {
        release_triggers.push(runner::on_owner(
            BRANCHES,
            watch::managed(&client, http_routes_writer),
        ));
    } else {
        drop(http_routes_writer);
    }
    let release_controller = runner::run(
        BRANCHES,
        {
            let releases = stores.releases.clone();
            move |key: &ObjectRef<BranchRelease>| releases.get(key)
        },
        release_triggers,
        runner::Settings {
            workers: release_workers,
            debounce: Duration::ZERO,
            after_panic: AFTER_PANIC,
            depth: ctx.metrics.queue_depth(BRANCHES),
        },
        forgetting_failures(branch_release::reconcile::reconcile),
        error_policy,
        ctx.clone(),
        until_caches_ready(&ctx),
        shutdown.clone(),
    );

    // The forge runtime starts with the caches: before, every branch would look unknown to it.
    let forge_runtime = {
        let forges = forges.clone();
        let mut caches_ready = ctx.caches_ready.clone();
        let shutdown = shutdown.clone();
        async move {
            if caches_ready.wait_for(|ready| *ready).await.is_err() {
                return;
            }
            if let Some(publish) = forge_setup.publish {
                let _ = publish.send(Some(forges.clone()));
            }
            tokio::select! {
                () = forges.run(forge_requests) => {}
                () = shutdown => {}
            }
        }
    };
    let gauges_ctx = ctx.clone();
    let readiness = async move {
        // The one waiter of every cache (see above).
        let releases_listed = async {
            let _ = releases_listed.wait_for(|listed| *listed).await;
            ready.synced("branchreleases");
        };
        futures::join!(stores.wait_until_ready(&ready), releases_listed);
        let _ = caches_ready_tx.send(true);
        info!("caches synced; reconciling");
        // The gauges are counted from the caches, a few times a minute: cheap, and always true.
        let mut every = tokio::time::interval(Duration::from_secs(5));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = every.tick() => update_gauges(&gauges_ctx),
            }
        }
    };
    info!("controllers started");
    let project_controller = project_controller.inspect(|()| info!("project controller stopped"));
    let release_controller =
        release_controller.inspect(|()| info!("branchrelease controller stopped"));
    futures::join!(
        project_controller,
        release_controller,
        readiness,
        forge_runtime
    );
    if let Some(edge) = edge {
        edge.abort();
    }
    clock.abort();
    info!("controllers stopped");
}

/// Whether the API server serves Gateway API's HTTPRoutes. Asked once, at start-up: Oksa must be
/// restarted to use a Gateway API installed after it (its chart's rollout does that).
async fn gateway_api_installed(client: &Client) -> bool {
    let version = format!("{}/v1", crate::gateway_api::GROUP);
    match client.list_api_group_resources(&version).await {
        Ok(resources) => resources.resources.iter().any(|r| r.name == "httproutes"),
        Err(kube::Error::Api(status)) if status.is_not_found() => false,
        Err(error) => {
            warn!(%error, "cannot tell whether Gateway API is installed; assuming it is not");
            false
        }
    }
}

/// Forgets the failure count and the last status write of an object that is gone, so that
/// neither map grows with every object that ever existed.
fn forget_if_gone<K: Resource<DynamicType = ()> + Clone>(
    ctx: &Context,
    still_cached: bool,
    object: &K,
    status_writes: &coalesce::Coalescer,
) -> bool {
    if still_cached {
        return false;
    }
    let key = object_key::ObjectKey::of(object);
    ctx.failures.lock().expect("failure counts").remove(&key);
    status_writes.forget(&key);
    true
}

/// A Project as its branches see it (see `index::what_branches_see`), as a watch predicate.
fn what_branches_see(project: &Project) -> Option<u64> {
    Some(index::what_branches_see(project))
}

/// The blocked siblings that a change of `release` may unblock (see `index::blocked_by`).
fn blocked_by(
    releases: &watch::Cache<BranchRelease>,
    release: &BranchRelease,
) -> Vec<ObjectRef<BranchRelease>> {
    let still_cached = releases.get(&ObjectRef::from_obj(release)).is_some();
    if !index::may_unblock(release, still_cached) {
        return Vec::new();
    }
    let siblings = releases.in_namespace(&release.namespace().unwrap_or_default());
    index::blocked_by(release, still_cached, siblings.iter().map(Arc::as_ref))
        .into_iter()
        .map(ObjectRef::from_obj)
        .collect()
}

/// Reports an object of Oksa's own kinds that cannot be read (see `lenient`): a warning in the
/// log and an Event on the object, so its owner finds out why nothing happens to it, while every
/// other object is reconciled as usual.
fn unreadable_reporter<K: Resource<DynamicType = ()>>(
    ctx: &Arc<Context>,
) -> impl Fn(&ObjectMeta, &str) + Send + 'static {
    let ctx = ctx.clone();
    move |metadata, reason| {
        let name = metadata.name.clone().unwrap_or_default();
        let namespace = metadata.namespace.clone();
        warn!(kind = %K::kind(&()), %name, namespace = namespace.as_deref().unwrap_or(""), %reason,
            "cannot read this object; it is left out until it is fixed");
        ctx.metrics
            .failed(controller_of::<K>(), "unreadable_object");
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name),
            namespace,
            uid: metadata.uid.clone(),
            ..Default::default()
        };
        let recorder = ctx.recorder.clone();
        let note = format!(
            "Oksa cannot read this object, so it is not reconciled: {reason}. Fix or re-apply it \
             (the CRD now refuses such values)"
        );
        tokio::spawn(async move {
            events::publish_to(&recorder, &reference, true, "Unreadable", note).await;
        });
    }
}

fn update_gauges(ctx: &Context) {
    let stores = &ctx.stores;
    let metrics = &ctx.metrics;
    let projects = stores.projects.state();
    let releases = stores.releases.state();
    let gauges = index::branch_gauges(
        projects.iter().map(Arc::as_ref),
        releases.iter().map(Arc::as_ref),
    );
    // Series of deleted projects go with them.
    metrics.requested.clear();
    for ((project, resource, state), amount) in gauges.requested {
        metrics
            .requested
            .get_or_create(&crate::metrics::RequestedLabels {
                project,
                resource,
                state,
            })
            .set(amount);
    }
    for (phase, count) in gauges.by_phase {
        metrics
            .branches
            .get_or_create(&crate::metrics::PhaseLabels {
                phase: phase.to_string(),
            })
            .set(count);
    }
    let sizes = [
        ("Project", stores.projects.len()),
        ("Namespace", stores.namespaces.len()),
        ("BranchRelease", stores.releases.len()),
        ("Deployment", stores.deployments.len()),
        ("Service", stores.services.len()),
        ("Ingress", stores.ingresses.len()),
        ("HTTPRoute", stores.http_routes.len()),
        ("PersistentVolumeClaim", stores.claims.len()),
        ("Pod", stores.pods.len()),
        ("RoleBinding", stores.role_bindings.len()),
        ("ResourceQuota", stores.quotas.len()),
        ("LimitRange", stores.limit_ranges.len()),
        ("NetworkPolicy", stores.network_policies.len()),
        ("EndpointSlice", stores.endpoint_slices.len()),
        ("HorizontalPodAutoscaler", stores.autoscalers.len()),
        ("Job", stores.jobs.len()),
    ];
    for (kind, size) in sizes {
        let kind_labels = crate::metrics::KindLabels { kind };
        metrics.managed.get_or_create(&kind_labels).set(size as i64);
    }
}

/// What the controllers are set up with, besides their client (`oksa run`'s options).
pub struct Setup {
    pub policy: crate::policy::Policy,
    /// The edge's Service, when it runs.
    pub edge: Option<crate::model::edge_service::EdgeService>,
    pub forge: forge::Setup,
    /// How many BranchRelease reconciles run at once (`--release-workers`).
    pub release_workers: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            policy: Default::default(),
            edge: None,
            forge: Default::default(),
            release_workers: RELEASE_WORKERS,
        }
    }
}

/// How many reconciles of each kind run at once: for branches, enough to keep the API server busy.
pub const RELEASE_WORKERS: usize = 32;
const PROJECT_WORKERS: usize = 4;
/// How long an object whose reconcile panicked (a bug) waits before it is tried again.
const AFTER_PANIC: Duration = Duration::from_secs(30);

/// Completes once every cache has its first full list: until then, "not cached" could mean "not
/// listed yet", so nothing is reconciled.
fn until_caches_ready(ctx: &Arc<Context>) -> impl Future<Output = ()> + Send + 'static {
    let mut ready = ctx.caches_ready.clone();
    async move {
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

/// Wraps a reconcile so that a success forgets the object's count of consecutive failures (see
/// `error_policy`'s backoff).
fn forgetting_failures<K, F, Fut>(
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, Error>>
+ Send
+ Sync
+ Clone
+ 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object, ctx| {
        let key = object_key::ObjectKey::of(object.as_ref());
        let result = reconcile(object, ctx.clone());
        async move {
            let result = result.await;
            if result.is_ok() {
                ctx.failures.lock().expect("failure counts").remove(&key);
            }
            result
        }
        .boxed()
    }
}

/// The controller that reconciles kind K, as metrics name it.
fn controller_of<K: Resource<DynamicType = ()>>() -> &'static str {
    if K::kind(&()) == "Project" {
        project::reconcile::CONTROLLER
    } else {
        branch_release::reconcile::CONTROLLER
    }
}

/// Per-object exponential backoff: 0.5 s, 1 s, 2 s… up to 5 minutes, reset by a success.
fn error_policy<K: Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = object_key::ObjectKey::of(object.as_ref());
    let failures = {
        let mut counts = ctx.failures.lock().expect("failure counts");
        let count = counts.entry(key.clone()).or_insert(0);
        *count += 1;
        *count
    };
    ctx.metrics.failed(controller_of::<K>(), error.kind());
    let delay = Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(failures.min(10) - 1))
        .min(Duration::from_secs(300));
    warn!(object = %key, error = %error, error_kind = error.kind(), failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
