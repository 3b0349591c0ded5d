//! When is an environment made without Oksa Ready? The same test Oksa's status uses: every
//! Deployment runs exactly its replicas, up to date and ready (`component_ready`), at least at the
//! generation the benchmark last wrote, and every claim is Bound. Watched, per namespace, for the
//! limit's direct creates and redeploys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::watch;
use oksa::labels;
use oksa::model::branch_release::status::component_ready;

/// What one branch needs to count as Ready.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub deployments: usize,
    pub claims: usize,
}

#[derive(Debug, Default)]
struct DeploymentState {
    release: String,
    generation: i64,
    ready: bool,
}

#[derive(Debug, Default)]
struct State {
    deployments: HashMap<String, DeploymentState>,
    /// Claim name → (release, bound).
    claims: HashMap<String, (String, bool)>,
    /// Deployment name → the generation the benchmark wrote last (1 when created).
    min_generation: HashMap<String, i64>,
    /// Release → first time it was seen Ready since the benchmark last wrote it.
    ready_at: HashMap<String, Instant>,
}

impl State {
    fn release_ready(&self, release: &str, expect: Expect) -> bool {
        let mut ready_deployments = 0;
        for (name, d) in self
            .deployments
            .iter()
            .filter(|(_, d)| d.release == release)
        {
            let wanted = self.min_generation.get(name).copied().unwrap_or(1);
            if !d.ready || d.generation < wanted {
                return false;
            }
            ready_deployments += 1;
        }
        let bound = self
            .claims
            .values()
            .filter(|(r, bound)| r == release && *bound)
            .count();
        ready_deployments >= expect.deployments && bound >= expect.claims
    }

    fn update(&mut self, release: &str, expect: Expect) {
        if !self.ready_at.contains_key(release) && self.release_ready(release, expect) {
            self.ready_at.insert(release.to_string(), Instant::now());
        }
    }
}

/// Watches the Deployments and claims of one namespace and records when each release is Ready.
#[derive(Clone)]
pub struct Readiness {
    state: Arc<Mutex<State>>,
}

impl Readiness {
    pub fn watch(client: &Client, namespace: &str, expect: Expect) -> Self {
        let readiness = Readiness {
            state: Arc::default(),
        };
        let config = || watcher::Config::default().labels(labels::MANAGED_SELECTOR);
        let state = readiness.state.clone();
        let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
        watch::each(deployments, config(), move |deployment: Deployment| {
            let Some(release) = deployment.labels().get(labels::RELEASE).cloned() else {
                return;
            };
            let replicas = deployment.spec.replicas.unwrap_or(1);
            let mut state = state.lock().unwrap();
            state.deployments.insert(
                deployment.name_any(),
                DeploymentState {
                    release: release.clone(),
                    generation: deployment.metadata.generation.unwrap_or(0),
                    ready: component_ready(&deployment, replicas),
                },
            );
            state.update(&release, expect);
        });
        let state = readiness.state.clone();
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace);
        watch::each(claims, config(), move |claim: PersistentVolumeClaim| {
            let Some(release) = claim.labels().get(labels::RELEASE).cloned() else {
                return;
            };
            let bound = claim
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Bound");
            let mut state = state.lock().unwrap();
            state
                .claims
                .insert(claim.name_any(), (release.clone(), bound));
            state.update(&release, expect);
        });
        readiness
    }

    /// The benchmark wrote `deployment` of `release` at `generation`: the release is Ready again
    /// only once that generation has rolled out.
    pub fn rewritten(&self, release: &str, deployment: &str, generation: i64) {
        let mut state = self.state.lock().unwrap();
        state
            .min_generation
            .insert(deployment.to_string(), generation);
        state.ready_at.remove(release);
    }

    pub fn ready_at(&self, release: &str) -> Option<Instant> {
        self.state.lock().unwrap().ready_at.get(release).copied()
    }
}
