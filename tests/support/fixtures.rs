//! Projects and BranchReleases for the operator tests, created through the API as a user would.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use oksa::api::{BranchRelease, BranchReleaseStatus, Project, ProjectStatus};
use serde_json::{Value, json};

use super::{client, operator, unique, wait_for};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A Project of one test, with its own namespace. `cleanup` deletes it and so its namespace.
pub struct TestProject {
    pub client: Client,
    pub name: String,
    pub namespace: String,
    pub domain: String,
}

impl TestProject {
    /// Creates a Project named `<prefix>-<random>` with domain `<name>.test` and the given extra
    /// spec fields, and waits until it is Ready.
    pub async fn create(prefix: &str, extra_spec: Value) -> TestProject {
        let project = Self::create_unready(prefix, extra_spec).await;
        project
            .wait_status("Ready", |s| s.namespace.is_some())
            .await;
        project
    }

    /// Creates the Project without waiting for it.
    pub async fn create_unready(prefix: &str, extra_spec: Value) -> TestProject {
        Self::create_named(&unique(prefix), extra_spec).await
    }

    /// Creates the Project `name` (see `unique`) without waiting for it.
    pub async fn create_named(name: &str, extra_spec: Value) -> TestProject {
        operator::ensure_running();
        let client = client().await;
        let name = name.to_string();
        let domain = format!("{name}.test");
        let mut spec = json!({"domain": domain});
        spec.as_object_mut()
            .unwrap()
            .extend(extra_spec.as_object().cloned().unwrap_or_default());
        let namespace = spec["namespace"].as_str().unwrap_or(&name).to_string();
        let project: Project = serde_json::from_value(json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": name, "labels": {super::TEST_LABEL: "true"}},
            "spec": spec,
        }))
        .unwrap();
        Api::<Project>::all(client.clone())
            .create(&PostParams::default(), &project)
            .await
            .expect("creating the Project");
        TestProject {
            client,
            name,
            namespace,
            domain,
        }
    }

    pub fn api(&self) -> Api<Project> {
        Api::all(self.client.clone())
    }

    pub fn releases(&self) -> Api<BranchRelease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The replicas a Deployment of the project's namespace asks for (None: no such Deployment).
    pub async fn replicas(&self, deployment: &str) -> Option<i32> {
        let deployment = self
            .namespaced::<k8s_openapi::api::apps::v1::Deployment>()
            .get(deployment)
            .await
            .ok()?;
        deployment.spec.replicas
    }

    /// What `oksa status <project>` prints.
    pub fn oksa_status(&self) -> String {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
            .args(["status", &self.name])
            .env("KUBECONFIG", super::kubeconfig_path())
            .output()
            .expect("running oksa status");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Someone (not Oksa) scales a Deployment by hand: drift.
    pub async fn scale_by_hand(&self, deployment: &str, replicas: i32) {
        self.namespaced::<k8s_openapi::api::apps::v1::Deployment>()
            .patch(
                deployment,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .expect("scaling by hand");
    }

    pub fn namespaced<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&ProjectStatus) -> bool + Send + 'static,
    ) -> Project {
        wait_for(
            &self.api(),
            &self.name,
            TIMEOUT,
            what,
            move |p: Option<&Project>| p.and_then(|p| p.status.as_ref()).is_some_and(&check),
        )
        .await
    }

    /// Creates a BranchRelease of this project from its spec (project is filled in), with
    /// server-side apply as the same user `apply_release` acts as, so later applies replace lists.
    pub async fn create_release(&self, name: &str, spec: Value) -> BranchRelease {
        self.apply_release(name, spec)
            .await
            .expect("creating the BranchRelease")
    }

    /// Creates a BranchRelease (see `create_release`) and waits until it is Ready.
    pub async fn create_ready(&self, name: &str, spec: Value) -> BranchRelease {
        self.create_release(name, spec).await;
        self.wait_release(name, "Ready", |s| s.phase == Some(oksa::api::Phase::Ready))
            .await
    }

    /// Replaces a BranchRelease's spec with server-side apply, the way `kubectl apply` or a GitOps
    /// tool does.
    pub async fn apply_release(
        &self,
        name: &str,
        mut spec: Value,
    ) -> Result<BranchRelease, kube::Error> {
        spec["project"] = json!(self.name);
        self.releases()
            .patch(
                name,
                &PatchParams::apply("test-user").force(),
                &Patch::Apply(&release_object(name, spec)),
            )
            .await
    }

    /// Waits until the BranchRelease's status satisfies `check` for its current generation.
    pub async fn wait_release(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&BranchReleaseStatus) -> bool + Send + 'static,
    ) -> BranchRelease {
        wait_for(
            &self.releases(),
            name,
            TIMEOUT,
            what,
            move |r: Option<&BranchRelease>| {
                r.is_some_and(|r| {
                    r.status
                        .as_ref()
                        .is_some_and(|s| s.observed_generation == r.metadata.generation && check(s))
                })
            },
        )
        .await
    }

    /// The reasons of the Events about object `name` of the project's namespace.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        self.namespaced::<k8s_openapi::api::core::v1::Event>()
            .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    pub async fn cleanup(self) {
        let _ = self
            .api()
            .delete(&self.name, &DeleteParams::background())
            .await;
    }
}

pub fn release_object(name: &str, spec: Value) -> BranchRelease {
    serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a BranchRelease")
}

/// The phase of a status as text, for readable assertions.
pub fn phase(status: &BranchReleaseStatus) -> String {
    status.phase.map(|p| format!("{p:?}")).unwrap_or_default()
}

/// A condition of a status: (status, reason, message).
pub fn condition(status: &BranchReleaseStatus, type_: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The spec of branch `branch` with one web component running `image` (see `web_component`).
pub fn web_branch(branch: &str, image: &str) -> Value {
    json!({"branch": branch, "components": [web_component("web", image)]})
}

/// A web component with one container and port 8080.
pub fn web_component(name: &str, image: &str) -> Value {
    json!({"name": name, "containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]})
}

/// `oksa keepalive` for a branch of the project, as a CI job would run it.
pub fn keepalive(project: &TestProject, branch: &str) {
    super::succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
            .args(["keepalive", "--project", &project.name, "--branch", branch])
            .env("KUBECONFIG", super::kubeconfig_path()),
    );
}
