//! Status that kstatus reads right: Helm 4's `--wait` (as Flux's health checks and kpt) computes
//! readiness with kstatus, which knows only `observedGeneration`, `Reconciling` and `Stalled`.
//! Tested with the real helm v4 of the local plane.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use oksa::api::{BranchRelease, Phase};
use serde_json::json;
use support::fixtures::{TestProject, condition};
use support::{TestNamespace, tool};

/// A chart holding one BranchRelease of `project`, with its image from the values.
fn write_chart(folder: &Path, project: &str) {
    std::fs::create_dir_all(folder.join("templates")).unwrap();
    std::fs::write(
        folder.join("Chart.yaml"),
        "apiVersion: v2\nname: branch\nversion: 0.1.0\n",
    )
    .unwrap();
    let release = format!(
        r#"apiVersion: oksa.dev/v1alpha1
kind: BranchRelease
metadata:
  name: {{{{ .Release.Name }}}}
spec:
  project: {project}
  branch: {{{{ .Release.Name }}}}
  components:
  - name: web
    containers:
    - name: web
      image: {{{{ .Values.image }}}}
      ports: [{{containerPort: 8080}}]
  jobs:
  - name: migrate
    image: {{{{ .Values.jobImage | default "shop/migrate:1" }}}}
"#
    );
    std::fs::write(folder.join("templates/branch.yaml"), release).unwrap();
}

/// `helm install --wait` of the chart with these values; (succeeded, output, how long it took).
fn helm_install(
    chart: &Path,
    name: &str,
    namespace: &str,
    values: &str,
) -> (bool, String, Duration) {
    let started = Instant::now();
    let output = tool("helm")
        .args(["install", name])
        .arg(chart)
        .args(["--namespace", namespace, "--wait", "--timeout", "120s"])
        .args(["--set", values])
        .output()
        .expect("running helm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text, started.elapsed())
}

#[tokio::test]
async fn helm_wait_returns_once_the_branch_is_ready_and_fails_fast_with_the_reason() {
    let project = TestProject::create("helm-wait", json!({})).await;
    let chart = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chart-{}", project.name));
    write_chart(&chart, &project.name);

    let (ok, output, _) = helm_install(&chart, "good", &project.namespace, "image=nginx");
    assert!(ok, "{output}");
    // kstatus said Current only once Oksa said Ready.
    let release = project.releases().get("good").await.unwrap();
    let status = release.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Ready), "{status:?}");
    assert_eq!(status.observed_generation, release.metadata.generation);
    assert_eq!(condition(&status, "Reconciling").unwrap().0, "False");
    assert_eq!(condition(&status, "Stalled").unwrap().0, "False");

    // An image that cannot be pulled: Stalled, so helm gives up at once, with Oksa's reason.
    let (ok, output, took) = helm_install(
        &chart,
        "broken",
        &project.namespace,
        "image=fault.oksa.test/pull-error:1",
    );
    assert!(
        !ok,
        "helm install --wait succeeded with an image that cannot be pulled:\n{output}\n{:?}",
        project.releases().get("broken").await.map(|r| r.status)
    );
    assert!(
        output.contains("Failed") && output.contains("cannot pull image"),
        "{output}"
    );
    assert!(
        took < Duration::from_secs(60),
        "helm waited {took:?}: the failure was not reported as Stalled"
    );

    // A deploy job that fails: the same, with the job's exit code.
    let (ok, output, took) = helm_install(
        &chart,
        "failed-migration",
        &project.namespace,
        "image=nginx,jobImage=fault.oksa.test/job-fails",
    );
    assert!(
        !ok,
        "helm install --wait succeeded with a failing job:\n{output}"
    );
    assert!(output.contains("exit code 1"), "{output}");
    assert!(took < Duration::from_secs(60), "helm waited {took:?}");
    project.cleanup().await;
}

/// Before Oksa has written anything, a new object already reads as "not reconciled yet":
/// `observedGeneration` 0 (a CRD default) against generation 1, which kstatus calls InProgress.
#[tokio::test]
async fn a_new_branch_release_reads_as_not_reconciled_before_oksa_sees_it() {
    support::operator::ensure_running();
    let namespace = TestNamespace::create("kstatus-new").await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::erase::<BranchRelease>(&()),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": "fresh"},
        "spec": {"project": "nowhere", "branch": "main",
            "components": [{"name": "web", "containers": [{"name": "web", "image": "nginx"}]}]},
    }))
    .unwrap();
    // The answer to the create is the object as stored, before any controller could act on it.
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(created.data["status"]["observedGeneration"], 0);
    assert_eq!(created.metadata.generation, Some(1));
    namespace.cleanup().await;
}
