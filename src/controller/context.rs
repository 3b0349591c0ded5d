//! What every reconcile shares: the client, the watch caches and the event recorder.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, PersistentVolumeClaim, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::runtime::events::{Recorder, Reporter};
use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{BranchRelease, Project};
use crate::labels::FIELD_MANAGER;
use crate::metrics::Metrics;

/// Caches of everything Oksa reads on every reconcile, kept current by watches. Children are
/// watched only when they carry Oksa's `managed-by` label, and stored without `managedFields`.
#[derive(Clone)]
pub struct Stores {
    pub projects: Store<Project>,
    pub releases: Store<BranchRelease>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    pub claims: Store<PersistentVolumeClaim>,
    pub role_bindings: Store<RoleBinding>,
    pub quotas: Store<ResourceQuota>,
    pub limit_ranges: Store<LimitRange>,
    pub network_policies: Store<NetworkPolicy>,
}

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Consecutive failed reconciles per object, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
    /// True once every cache in `stores` has had its first full list.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
}

impl Stores {
    /// Waits until every cache has had its first full list, so that no reconcile mistakes
    /// "not listed yet" for "does not exist". Call it from one task only (see `controller::run`).
    pub async fn wait_until_ready(&self) {
        // Errors only mean the writer was dropped (shutting down); then there is nothing to wait for.
        let _ = futures::join!(
            self.projects.wait_until_ready(),
            self.releases.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.claims.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
            self.quotas.wait_until_ready(),
            self.limit_ranges.wait_until_ready(),
            self.network_policies.wait_until_ready(),
        );
    }
}

impl Context {
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Metrics,
        caches_ready: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            stores,
            recorder,
            metrics,
            failures: Mutex::default(),
            caches_ready,
        }
    }
}
