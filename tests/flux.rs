//! Oksa under a real GitOps controller: Flux's kustomize-controller (in the local plane) applies
//! Projects and BranchReleases from a "repository" and health-checks them with kstatus.
//!
//! The repository is what source-controller would make of a git commit: a tarball of manifests at
//! a URL with its digest, published here as an ExternalArtifact (served by this test), so no git
//! server is needed. The layout is the one recommended in the README: one Kustomization for the
//! platform's Project, one for the branches that depends on it (the Project's namespace must exist
//! before its branches can be applied into it).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, ResourceExt};
use oksa::api::{BranchRelease, Phase};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::eventually;
use support::fixtures::TIMEOUT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FLUX_NAMESPACE: &str = "flux-system";

fn kind(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Serves the files of `dir` over HTTP on a free loopback port; returns the port.
async fn serve_dir(dir: PathBuf) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let file = dir.join(path.trim_start_matches('/'));
                let response = match std::fs::read(&file) {
                    Ok(body) => [
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes(),
                        body,
                    ]
                    .concat(),
                    Err(_) => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response).await;
            });
        }
    });
    port
}

/// A repository of manifests, published to Flux as an ExternalArtifact, one revision at a time.
struct Repo {
    name: String,
    served: PathBuf,
    port: u16,
    revision: u32,
    artifacts: Api<DynamicObject>,
    kustomizations: Api<DynamicObject>,
}

impl Repo {
    async fn new(prefix: &str) -> Repo {
        let name = support::unique(prefix);
        let served = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-served"));
        std::fs::create_dir_all(&served).unwrap();
        let client = support::client().await;
        let artifacts = Api::namespaced_with(
            client.clone(),
            FLUX_NAMESPACE,
            &kind("source.toolkit.fluxcd.io", "v1", "ExternalArtifact"),
        );
        let kustomizations = Api::namespaced_with(
            client,
            FLUX_NAMESPACE,
            &kind("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        );
        let port = serve_dir(served.clone()).await;
        Repo {
            name,
            served,
            port,
            revision: 0,
            artifacts,
            kustomizations,
        }
    }

    /// Publishes a new revision holding `files` (path → YAML), as a commit would.
    async fn publish(&mut self, files: &[(&str, String)]) {
        self.revision += 1;
        let tree = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-r{}", self.name, self.revision));
        for (path, text) in files {
            let file = tree.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let artifact = format!("r{}.tar.gz", self.revision);
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(self.served.join(&artifact))
            .arg("-C")
            .arg(&tree)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar");
        let bytes = std::fs::read(self.served.join(&artifact)).unwrap();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let object = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "metadata": {"name": self.name, "namespace": FLUX_NAMESPACE},
            "spec": {"sourceRef": {"kind": "Repository", "name": self.name}},
        });
        let params = PatchParams::apply("oksa-tests").force();
        self.artifacts
            .patch(&self.name, &params, &Patch::Apply(&object))
            .await
            .unwrap();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "status": {
                "artifact": {
                    "path": artifact,
                    "url": format!("http://127.0.0.1:{}/{artifact}", self.port),
                    "revision": format!("main@sha1:{:040x}", self.revision),
                    "digest": format!("sha256:{digest}"),
                    "size": bytes.len(),
                    "lastUpdateTime": now,
                },
                "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                    "message": "published", "lastTransitionTime": now}],
            },
        });
        self.artifacts
            .patch_status(&self.name, &params, &Patch::Apply(&status))
            .await
            .unwrap();
    }

    /// A Kustomization of `path` in this repository: pruning, waiting for health (kstatus),
    /// re-applied every 5 s (so drift is reverted quickly).
    async fn kustomization(&self, suffix: &str, path: &str, depends_on: Option<&str>) -> String {
        let name = format!("{}-{suffix}", self.name);
        let mut spec = json!({
            "interval": "5s", "retryInterval": "5s", "timeout": "3m",
            "sourceRef": {"kind": "ExternalArtifact", "name": self.name},
            "path": path, "prune": true, "wait": true,
        });
        if let Some(other) = depends_on {
            spec["dependsOn"] = json!([{"name": format!("{}-{other}", self.name)}]);
        }
        let object = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": FLUX_NAMESPACE}, "spec": spec,
        });
        self.kustomizations
            .patch(
                &name,
                &PatchParams::apply("oksa-tests").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap();
        name
    }

    /// Waits until the Kustomization's Ready condition has `status` for the latest revision;
    /// returns its message.
    async fn kustomization_ready(&self, name: &str, status: &str, timeout: Duration) -> String {
        let revision = format!("main@sha1:{:040x}", self.revision);
        eventually(
            timeout,
            &format!("Kustomization {name} Ready={status} at {revision}"),
            || async {
                let object = self.kustomizations.get(name).await.ok()?;
                let ready = object.data["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Ready")?
                    .clone();
                let attempted = object.data["status"]["lastAttemptedRevision"].as_str()?;
                (ready["status"] == status && attempted == revision)
                    .then(|| ready["message"].as_str().unwrap_or_default().to_string())
            },
        )
        .await
    }

    /// Publishes the first revision and the two Kustomizations (the branches' depending on the
    /// platform's), and waits until the branches' is Ready; returns (platform, branches).
    async fn start(&mut self, files: &[(&str, String)]) -> (String, String) {
        self.publish(files).await;
        let platform = self.kustomization("platform", "./platform", None).await;
        let apps = self
            .kustomization("branches", "./branches", Some("platform"))
            .await;
        self.kustomization_ready(&apps, "True", Duration::from_secs(120))
            .await;
        (platform, apps)
    }

    /// Deletes the Kustomizations in order, each gone (its objects pruned) before the next: the
    /// branches before the Project whose namespace they live in.
    async fn cleanup(&self, kustomizations: &[&str]) {
        for name in kustomizations {
            let _ = self.kustomizations.delete(name, &Default::default()).await;
            eventually(TIMEOUT, &format!("Kustomization {name} gone"), || async {
                self.kustomizations
                    .get_opt(name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            })
            .await;
        }
        let _ = self.artifacts.delete(&self.name, &Default::default()).await;
    }
}

fn project_yaml(name: &str) -> String {
    format!(
        "apiVersion: oksa.dev/v1alpha1\nkind: Project\nmetadata: {{name: {name}}}\n\
         spec: {{domain: {name}.test}}\n"
    )
}

fn branch_yaml(project: &str, branch: &str, image: &str, retained_volume: bool) -> String {
    let volume = if retained_volume {
        "  volumes: [{name: data, size: 1Gi, retain: true}]\n"
    } else {
        ""
    };
    let mount = if retained_volume {
        "\n      volumeMounts: [{volume: data, mountPath: /data}]"
    } else {
        ""
    };
    format!(
        "apiVersion: oksa.dev/v1alpha1\nkind: BranchRelease\n\
         metadata: {{name: {branch}, namespace: {project}}}\n\
         spec:\n  project: {project}\n  branch: {branch}\n{volume}  components:\n  - name: web\n    \
         containers:\n    - name: web\n      image: {image}\n      ports: [{{containerPort: 8080}}]{mount}\n"
    )
}

/// The repository's files: the Project under platform/, each (branch, image, retained volume)
/// under branches/.
fn files(project: &str, branches: &[(&str, &str, bool)]) -> Vec<(&'static str, String)> {
    let mut files = vec![("platform/project.yaml", project_yaml(project))];
    let mut all = String::new();
    for (branch, image, volume) in branches {
        all.push_str("---\n");
        all.push_str(&branch_yaml(project, branch, image, *volume));
    }
    files.push(("branches/branches.yaml", all));
    files
}

/// Skips (with a word) when the cluster is not the local plane, which runs kustomize-controller.
fn local_plane() -> bool {
    if support::plane().state.is_none() {
        eprintln!("not run: it needs the local plane's Flux (KUBECONFIG names another cluster)");
        return false;
    }
    support::operator::ensure_running();
    true
}

/// The field managers of an object's `spec`, and whether Oksa manages anything outside status.
fn managers(release: &BranchRelease) -> (Vec<String>, bool) {
    let mut spec_managers = Vec::new();
    let mut oksa_outside_status = false;
    for entry in release.metadata.managed_fields.iter().flatten() {
        let fields = entry
            .fields_v1
            .as_ref()
            .map(|f| f.0.clone())
            .unwrap_or(Value::Null);
        let manager = entry.manager.clone().unwrap_or_default();
        if fields.get("f:spec").is_some() {
            spec_managers.push(manager.clone());
        }
        if manager == "oksa" && entry.subresource.as_deref() != Some("status") {
            oksa_outside_status = true;
        }
    }
    (spec_managers, oksa_outside_status)
}

#[tokio::test]
async fn three_branches_from_git_become_ready_and_only_then_the_kustomization() {
    if !local_plane() {
        return;
    }
    let mut repo = Repo::new("flux-three").await;
    let project = repo.name.clone();
    let branches = [
        ("main", "nginx:1.27", false),
        ("feature-a", "nginx:1.27", false),
        ("feature-b", "nginx:1.27", false),
    ];
    let started = Instant::now();
    let (platform, apps) = repo.start(&files(&project, &branches)).await;
    let took = started.elapsed();
    // Health is kstatus's: the Kustomization is Ready only when every branch is.
    let releases: Api<BranchRelease> = Api::namespaced(support::client().await, &project);
    let list = releases.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    for release in &list.items {
        let status = release.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(Phase::Ready), "{}", release.name_any());
        assert_eq!(status.observed_generation, release.metadata.generation);
        // Flux owns the spec; Oksa writes nothing but status.
        let (spec_managers, oksa_outside_status) = managers(release);
        assert_eq!(spec_managers, ["kustomize-controller"], "{spec_managers:?}");
        assert!(!oksa_outside_status, "Oksa wrote outside status");
    }
    eprintln!(
        "a Project and 3 branches from git: Kustomization Ready {:.1}s after it was created",
        took.as_secs_f64()
    );
    repo.cleanup(&[&apps, &platform]).await;
}

#[tokio::test]
async fn a_branch_that_cannot_run_fails_its_kustomization_fast_and_says_why_itself() {
    if !local_plane() {
        return;
    }
    let mut repo = Repo::new("flux-failing").await;
    let project = repo.name.clone();
    repo.publish(&files(
        &project,
        &[
            ("main", "nginx:1.27", false),
            ("broken", "fault.oksa.test/pull-error:1", false),
        ],
    ))
    .await;
    let platform = repo.kustomization("platform", "./platform", None).await;
    repo.kustomization_ready(&platform, "True", Duration::from_secs(60))
        .await;
    let started = Instant::now();
    let apps = repo
        .kustomization("branches", "./branches", Some("platform"))
        .await;
    // The Kustomization's timeout is 3 minutes: kstatus sees Stalled and Flux stops at once.
    let message = repo
        .kustomization_ready(&apps, "False", Duration::from_secs(90))
        .await;
    let took = started.elapsed();
    assert!(
        message.contains("failed early due to stalled resources")
            && message.contains(&format!("BranchRelease/{project}/broken status: 'Failed'")),
        "{message}"
    );
    assert!(took < Duration::from_secs(60), "failed after {took:?}");
    // Flux's message names the object and kstatus's verdict only (fluxcd/pkg/ssa drops kstatus's
    // message); Oksa's reason is on the BranchRelease, as kstatus read it: Stalled.
    let releases: Api<BranchRelease> = Api::namespaced(support::client().await, &project);
    let broken = releases.get("broken").await.unwrap();
    let stalled = broken
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ImagePullFailed")
    );
    assert!(
        stalled.message.contains("fault.oksa.test/pull-error:1"),
        "{stalled:?}"
    );
    eprintln!(
        "a branch that cannot pull its image: Kustomization failed after {:.1}s (timeout 180s): {message}",
        took.as_secs_f64()
    );
    repo.cleanup(&[&apps, &platform]).await;
}

#[tokio::test]
async fn a_change_in_git_rolls_out_and_an_edit_of_the_cluster_is_reverted_without_a_fight() {
    if !local_plane() {
        return;
    }
    let mut repo = Repo::new("flux-change").await;
    let project = repo.name.clone();
    let (platform, apps) = repo
        .start(&files(&project, &[("main", "nginx:1.27", false)]))
        .await;
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &project);
    let releases: Api<BranchRelease> = Api::namespaced(client, &project);
    let image_of = |deployment: &Deployment| {
        deployment.spec.template.spec.as_ref()?.containers[0]
            .image
            .clone()
    };

    // A commit with a new image rolls out.
    repo.publish(&files(&project, &[("main", "nginx:1.28", false)]))
        .await;
    repo.kustomization_ready(&apps, "True", Duration::from_secs(120))
        .await;
    let deployment = deployments.get("main-web").await.unwrap();
    assert_eq!(image_of(&deployment).as_deref(), Some("nginx:1.28"));

    // Someone edits the BranchRelease in the cluster: Flux puts git's spec back, and Oksa
    // follows it to the Deployment.
    let edit = json!({"spec": {"components": [{"name": "web", "containers": [
        {"name": "web", "image": "nginx:edited", "ports": [{"containerPort": 8080}]}]}]}});
    releases
        .patch(
            "main",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    let edited_at = Instant::now();
    eventually(
        Duration::from_secs(60),
        "Flux to revert the edit",
        || async {
            let release = releases.get("main").await.ok()?;
            let image = release.spec.components[0].containers[0].image.clone();
            (image == "nginx:1.28").then_some(())
        },
    )
    .await;
    let reverted = edited_at.elapsed();
    eventually(
        Duration::from_secs(60),
        "main-web back on nginx:1.28",
        || async {
            let deployment = deployments.get("main-web").await.ok()?;
            (image_of(&deployment).as_deref() == Some("nginx:1.28")).then_some(())
        },
    )
    .await;
    let release = releases.get("main").await.unwrap();
    let (_, oksa_outside_status) = managers(&release);
    assert!(!oksa_outside_status, "Oksa wrote outside status");
    eprintln!(
        "an edit of the BranchRelease was reverted by Flux {:.1}s later, and Oksa followed",
        reverted.as_secs_f64()
    );
    repo.cleanup(&[&apps, &platform]).await;
}

#[tokio::test]
async fn a_branch_deleted_from_git_is_pruned_and_its_retained_volume_stays() {
    if !local_plane() {
        return;
    }
    let mut repo = Repo::new("flux-prune").await;
    let project = repo.name.clone();
    let (platform, apps) = repo
        .start(&files(
            &project,
            &[("main", "nginx:1.27", false), ("old", "nginx:1.27", true)],
        ))
        .await;
    let client = support::client().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &project);
    let claim_uid = claims.get("old-data").await.unwrap().uid();

    repo.publish(&files(&project, &[("main", "nginx:1.27", false)]))
        .await;
    repo.kustomization_ready(&apps, "True", Duration::from_secs(120))
        .await;
    let releases: Api<BranchRelease> = Api::namespaced(client.clone(), &project);
    support::wait_deleted(&releases, "old", TIMEOUT).await;
    let deployments: Api<Deployment> = Api::namespaced(client, &project);
    support::wait_deleted(&deployments, "old-web", TIMEOUT).await;
    let claim = claims.get("old-data").await.unwrap();
    assert_eq!(claim.uid(), claim_uid, "the retained claim is the same one");
    assert!(claim.metadata.deletion_timestamp.is_none());
    assert!(deployments.get_opt("main-web").await.unwrap().is_some());

    // Clean up: the retained claim would (rightly) hold the Project's deletion.
    repo.cleanup(&[&apps]).await;
    claims
        .delete("old-data", &Default::default())
        .await
        .unwrap();
    repo.cleanup(&[&platform]).await;
}

#[tokio::test]
async fn a_branch_flux_applies_expires_into_sleep_and_is_never_deleted() {
    if !local_plane() {
        return;
    }
    let mut repo = Repo::new("flux-expiry").await;
    let project = repo.name.clone();
    let mut files = files(&project, &[("idle", "nginx:1.27", false)]);
    // The Project's branches expire after 6 s without activity.
    files[0].1 = format!(
        "apiVersion: oksa.dev/v1alpha1\nkind: Project\nmetadata: {{name: {project}}}\n\
         spec: {{domain: {project}.test, defaults: {{lifecycle: {{expireAfter: 6s}}}}}}\n"
    );
    let (platform, apps) = repo.start(&files).await;
    let releases: Api<BranchRelease> = Api::namespaced(support::client().await, &project);
    let expired = support::eventually(TIMEOUT, "the Flux branch Expired", || async {
        let release = releases.get_opt("idle").await.ok()??;
        (release.status.as_ref()?.phase == Some(Phase::Expired)).then_some(release)
    })
    .await;
    // Flux applied it (its label and field manager), so expiry put it to sleep instead.
    assert!(expired.metadata.deletion_timestamp.is_none());
    assert_eq!(managers(&expired).0, ["kustomize-controller"]);
    repo.cleanup(&[&apps, &platform]).await;
}
