//! What every reconcile shares: the client, the watch caches and the event recorder.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;

use crate::watch::Cache;
use kube::Client;

use super::coalesce::Coalescer;
use super::recorder::Recorder;
use crate::api::{BranchRelease, Project};
use crate::compact::Compact;
use crate::gateway_api::HTTPRoute;
use crate::labels::FIELD_MANAGER;
use crate::metrics::{KindLabels, Metrics};
use crate::policy::Policy;
use crate::readiness::Readiness;

/// Caches of everything Oksa reads on every reconcile, kept current by watches. Children are
/// watched only when they carry Oksa's `managed-by` label, and stored compacted (see `Compact`).
#[derive(Clone)]
pub struct Stores {
    pub projects: Store<Project>,
    /// Namespaces with Oksa's label, metadata only.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub releases: Cache<BranchRelease>,
    pub deployments: Cache<Compact<Deployment>>,
    pub services: Cache<Compact<Service>>,
    pub ingresses: Cache<Compact<Ingress>>,
    /// Empty, and never waited for, when the cluster has no Gateway API (see `gateway_api`).
    pub http_routes: Cache<Compact<HTTPRoute>>,
    pub claims: Cache<Compact<PersistentVolumeClaim>>,
    /// Pods of the components, metadata and status only (see `watch::pods`).
    pub pods: Cache<Compact<Pod>>,
    pub role_bindings: Cache<Compact<RoleBinding>>,
    pub quotas: Cache<Compact<ResourceQuota>>,
    pub limit_ranges: Cache<Compact<LimitRange>>,
    pub network_policies: Cache<Compact<NetworkPolicy>>,
    /// The waker's endpoints in each project namespace (see `project::waker_objects`).
    pub endpoint_slices: Cache<Compact<EndpointSlice>>,
    /// The HorizontalPodAutoscalers of autoscaled components.
    pub autoscalers: Cache<Compact<HorizontalPodAutoscaler>>,
    /// The Jobs of the branches' deploy jobs.
    pub jobs: Cache<Compact<Job>>,
}

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// Shared with the tasks that report unreadable objects.
    pub recorder: std::sync::Arc<Recorder>,
    pub metrics: Metrics,
    /// Consecutive failed reconciles per object, for exponential backoff.
    pub failures: Mutex<HashMap<super::object_key::ObjectKey, u32>>,
    /// True once every cache in `stores` has had its first full list.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
    /// What the platform allows Projects to ask for.
    pub policy: Policy,
    /// Whether the cluster serves Gateway API's HTTPRoutes (checked at start-up).
    pub gateway_api: bool,
    /// When each Project's status was last written (see `coalesce`).
    pub project_summaries: Coalescer,
    /// When each BranchRelease's status was last written (see `coalesce`).
    pub release_progress: Coalescer,
    /// Where the edge answers (its ready pods), as the routes of sleeping branches reach it;
    /// None: no edge, or its endpoints not known yet.
    pub edge: tokio::sync::watch::Receiver<Option<crate::model::edge_service::EdgeEndpoints>>,
    /// Whether an edge is deployed (`--edge-service`): then the routes of branches that may
    /// sleep lead through it, which counts their requests as activity.
    pub edge_deployed: bool,
    /// Whether the cluster serves `metrics.k8s.io` (checked at start-up).
    pub metrics_api: bool,
    /// Expiry deletions left per project this hour (`policy.expiry.maxDeletionsPerHour`).
    pub expiry_budget: super::expiry_budget::ExpiryBudget,
    /// What the Projects' forges say, and the reports waiting for them.
    pub forges: Arc<super::forge::Forges>,
    /// New Services go to the API server a few at a time, the least served project first (see
    /// `apply::FairGate`).
    pub service_creations: crate::apply::FairGate,
}

/// New Services at the API server at once: enough to keep its (serial) ClusterIP allocation
/// busy, few enough that a quiet project's Service does not wait behind a burst's.
const SERVICE_CREATIONS_IN_FLIGHT: usize = 8;

impl Stores {
    /// The cached pods of `namespace` whose label `key` is `value` (a release's, a Job's). A pod
    /// that cannot be read is skipped: pods only help to explain, and their owners' status still
    /// counts them.
    pub fn pods_labelled(&self, namespace: &str, key: &str, value: &str) -> Vec<Arc<Pod>> {
        self.pods
            .in_namespace(namespace)
            .into_iter()
            .filter(|p| p.labels().get(key) == Some(value))
            .filter_map(|p| p.object().ok().map(Arc::new))
            .collect()
    }

    /// Waits until every cache has had its first full list, so that no reconcile mistakes
    /// "not listed yet" for "does not exist". Call it from one task only (see `controller::run`).
    /// `releases` is not waited on here: its controller waits on it, and a second waiter could
    /// miss the wakeup; `controller::run` learns of its first list from its watch.
    /// Each cache is reported to `readiness` by name as it fills.
    pub async fn wait_until_ready(&self, readiness: &Readiness) {
        readiness.waiting_for([
            "projects",
            "namespaces",
            "branchreleases",
            "deployments",
            "services",
            "ingresses",
            "httproutes",
            "persistentvolumeclaims",
            "pods",
            "rolebindings",
            "resourcequotas",
            "limitranges",
            "networkpolicies",
            "endpointslices",
            "horizontalpodautoscalers",
            "jobs",
        ]);
        let synced = |name: &'static str| move |()| readiness.synced(name);
        // An error only means the writer was dropped (shutting down): nothing left to wait for.
        let kube_synced = |name| move |_| synced(name)(());
        futures::join!(
            self.projects
                .wait_until_ready()
                .map(kube_synced("projects")),
            self.namespaces
                .wait_until_ready()
                .map(kube_synced("namespaces")),
            self.deployments
                .wait_until_ready()
                .map(synced("deployments")),
            self.services.wait_until_ready().map(synced("services")),
            self.ingresses.wait_until_ready().map(synced("ingresses")),
            // Without Gateway API its writer is dropped, which ends this wait at once.
            self.http_routes
                .wait_until_ready()
                .map(synced("httproutes")),
            self.claims
                .wait_until_ready()
                .map(synced("persistentvolumeclaims")),
            self.pods.wait_until_ready().map(synced("pods")),
            self.role_bindings
                .wait_until_ready()
                .map(synced("rolebindings")),
            self.quotas.wait_until_ready().map(synced("resourcequotas")),
            self.limit_ranges
                .wait_until_ready()
                .map(synced("limitranges")),
            self.network_policies
                .wait_until_ready()
                .map(synced("networkpolicies")),
            self.endpoint_slices
                .wait_until_ready()
                .map(synced("endpointslices")),
            self.autoscalers
                .wait_until_ready()
                .map(synced("horizontalpodautoscalers")),
            self.jobs.wait_until_ready().map(synced("jobs")),
        );
    }
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Metrics,
        caches_ready: tokio::sync::watch::Receiver<bool>,
        policy: Policy,
        gateway_api: bool,
        edge: tokio::sync::watch::Receiver<Option<crate::model::edge_service::EdgeEndpoints>>,
        forges: Arc<super::forge::Forges>,
    ) -> Self {
        let recorder = std::sync::Arc::new(Recorder::new(
            client.clone(),
            FIELD_MANAGER,
            std::env::var("POD_NAME").ok(),
        ));
        let held = |kind| metrics.held.get_or_create(&KindLabels { kind }).clone();
        let (project_summaries, release_progress) = (
            Coalescer::new(held("Project")),
            Coalescer::new(held("BranchRelease")),
        );
        Context {
            client,
            stores,
            recorder,
            metrics,
            failures: Mutex::default(),
            caches_ready,
            expiry_budget: super::expiry_budget::ExpiryBudget::new(
                policy.expiry.max_deletions_per_hour,
            ),
            policy,
            gateway_api,
            project_summaries,
            release_progress,
            edge,
            metrics_api: false,
            edge_deployed: false,
            forges,
            service_creations: crate::apply::FairGate::new(SERVICE_CREATIONS_IN_FLIGHT),
        }
    }
}
