//! Jobs per deploy: each deployed spec runs its jobs once, after its components are ready, and the
//! branch is Ready only when they succeeded; a re-apply of the same spec runs nothing again; a
//! failed job stalls the branch with its exit code and the end of its log, and `oksa deploy`
//! fails at once with them.

mod support;

use std::process::Output;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::ListParams;
use oksa::api::Phase;
use serde_json::{Value, json};
use support::fixtures::{TestProject, condition, web_component};

fn with_job(image: &str, job_image: &str) -> Value {
    json!({"branch": "main", "components": [web_component("web", image)],
        "volumes": [{"name": "files", "size": "1Gi"}],
        "jobs": [{"name": "migrate", "image": job_image, "command": ["drush", "deploy"],
            "volumeMounts": [{"volume": "files", "mountPath": "/files"}]}]})
}

async fn jobs_of(project: &TestProject) -> Vec<Job> {
    project
        .namespaced::<Job>()
        .list(&ListParams::default().labels("oksa.dev/job=migrate"))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_deploy_job_runs_once_per_deployed_spec_after_the_rollout_and_gates_ready() {
    let project = TestProject::create("jobs", json!({})).await;
    let ready = project
        .create_ready("main", with_job("nginx:1.27", "shop/web:1"))
        .await;
    let status = ready.status.unwrap();
    let job_status = &status.jobs[0];
    assert!(
        job_status.job_name.starts_with("main-migrate-"),
        "{job_status:?}"
    );
    assert_eq!(job_status.phase, "Succeeded");
    let [first] = jobs_of(&project).await.try_into().unwrap();
    assert_eq!(first.owner_references()[0].name, "main");
    // It started once the component was ready: not before its Deployment was available.
    let deployment = project
        .namespaced::<k8s_openapi::api::apps::v1::Deployment>()
        .get("main-web")
        .await
        .unwrap();
    let available = deployment
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap()
        .last_transition_time
        .unwrap();
    assert!(first.creation_timestamp().unwrap().0 >= available.0);

    // The dry run says the job ran for this spec already, and that a new image would run it.
    let line = |output: &Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("Job"))
            .unwrap_or_default()
            .to_string()
    };
    let same = dry_run(&project, with_job("nginx:1.27", "shop/web:1"));
    assert!(
        line(&same).ends_with("unchanged (ran for this spec already)"),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let new_image = dry_run(&project, with_job("nginx:1.27", "shop/web:1c"));
    let stdout = String::from_utf8_lossy(&new_image.stdout);
    assert!(
        stdout.contains("run (once the components are ready)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} ", first.name_any())) && stdout.contains("delete"),
        "the previous deploy's Job goes: {stdout}"
    );

    // The same spec applied again (a GitOps resync): the same generation, nothing runs again.
    let again = project
        .apply_release("main", with_job("nginx:1.27", "shop/web:1"))
        .await
        .unwrap();
    assert_eq!(again.metadata.generation, Some(1));
    let [same] = jobs_of(&project).await.try_into().unwrap();
    assert_eq!(same.uid(), first.uid());

    // Scaled to sleep and back (as `kubectl scale` does): the same deploy, nothing runs again.
    let mut asleep_spec = with_job("nginx:1.27", "shop/web:1");
    asleep_spec["replicas"] = json!(0);
    project.apply_release("main", asleep_spec).await.unwrap();
    project
        .wait_release("main", "asleep", |s| s.phase == Some(Phase::Sleeping))
        .await;
    project
        .apply_release("main", with_job("nginx:1.27", "shop/web:1"))
        .await
        .unwrap();
    project
        .wait_release("main", "awake", |s| s.phase == Some(Phase::Ready))
        .await;
    let [same] = jobs_of(&project).await.try_into().unwrap();
    assert_eq!(same.uid(), first.uid(), "the wake ran the job again");

    // Asleep, a new spec runs nothing; awake, its job runs and the previous one goes.
    let mut asleep_spec = with_job("nginx:1.28", "shop/web:2");
    asleep_spec["replicas"] = json!(0);
    project.apply_release("main", asleep_spec).await.unwrap();
    let asleep = project
        .wait_release("main", "asleep with a new spec", |s| {
            s.phase == Some(Phase::Sleeping) && s.jobs.first().is_some_and(|j| j.phase == "Waiting")
        })
        .await;
    let waiting = asleep.status.unwrap().jobs[0].job_name.clone();
    let names: Vec<String> = jobs_of(&project)
        .await
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert!(!names.contains(&waiting), "{names:?}");
    project
        .apply_release("main", with_job("nginx:1.28", "shop/web:2"))
        .await
        .unwrap();
    project
        .wait_release("main", "Ready after the second job", {
            let waiting = waiting.clone();
            move |s| {
                s.phase == Some(Phase::Ready)
                    && s.jobs
                        .first()
                        .is_some_and(|j| j.job_name == waiting && j.phase == "Succeeded")
            }
        })
        .await;
    support::eventually(
        support::fixtures::TIMEOUT,
        "the first Job pruned",
        || async {
            let names: Vec<String> = jobs_of(&project)
                .await
                .iter()
                .map(|j| j.name_any())
                .collect();
            (names == [waiting.clone()]).then_some(())
        },
    )
    .await;
    project.cleanup().await;
}

/// `oksa deploy --dry-run` of branch `main` with this spec.
fn dry_run(project: &TestProject, spec: Value) -> Output {
    let mut manifest = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": "main"}, "spec": spec});
    manifest["spec"]["project"] = json!(project.name);
    let file = format!(
        "{}/{}-dry-run.yaml",
        env!("CARGO_TARGET_TMPDIR"),
        project.name
    );
    std::fs::write(&file, serde_json::to_string(&manifest).unwrap()).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(["deploy", "--project", &project.name, "--branch", "main"])
        .args(["--file", &file, "--dry-run"])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("running oksa deploy --dry-run")
}

fn deploy_file(project: &TestProject, file: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(["deploy", "--project", &project.name, "--branch", "main"])
        .args(["--file", file, "--timeout", "120"])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("running oksa deploy")
}

#[tokio::test]
async fn a_failed_job_stalls_the_branch_with_its_exit_code_and_log_and_fails_the_deploy() {
    let project = TestProject::create("jobs-fail", json!({})).await;
    let mut manifest = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": "main"}, "spec": with_job("nginx:1.27", "fault.oksa.test/job-fails")});
    manifest["spec"]["project"] = json!(project.name);
    let file = format!("{}/job-fails.yaml", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&file, serde_json::to_string(&manifest).unwrap()).unwrap();

    let started = std::time::Instant::now();
    let output = deploy_file(&project, &file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    // At once, not after the 30 s a Degraded component is given to recover.
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    assert!(
        stderr.contains("job migrate failed (exit code 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("table 'cache' already exists"), "{stderr}");

    let release = project.releases().get("main").await.unwrap();
    let status = release.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (stalled, reason, _) = condition(&status, "Stalled").unwrap();
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "JobFailed"));
    assert_eq!(status.jobs[0].exit_code, Some(1));
    project.cleanup().await;
}

#[tokio::test]
async fn an_after_clone_job_makes_the_cloned_data_ready_before_anything_serves_it() {
    let project = TestProject::create(
        "jobs-clone",
        json!({"referenceData": {"branch": "main", "volumes": ["files"]}}),
    )
    .await;
    let branch = |name: &str, image: &str| {
        let mut spec = with_job(image, "shop/web:1");
        spec["branch"] = json!(name);
        spec["jobs"].as_array_mut().unwrap().push(
            json!({"name": "sanitize", "image": "shop/web:1", "when": "AfterClone",
                "command": ["drush", "sql-sanitize"],
                "volumeMounts": [{"volume": "files", "mountPath": "/files"}]}),
        );
        spec
    };
    // The reference branch clones nothing: its sanitize job has nothing to run for.
    let main = project
        .create_ready("main", branch("main", "nginx:1.27"))
        .await;
    let names: Vec<&str> = main
        .status
        .as_ref()
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(names, ["migrate"]);

    let feature = project
        .create_ready("feature", branch("feature", "nginx:1.27"))
        .await;
    let status = feature.status.unwrap();
    assert_eq!(status.volumes[0].cloned_from.as_deref(), Some("main-files"));
    let sanitize = status.jobs.iter().find(|j| j.name == "sanitize").unwrap();
    assert_eq!(sanitize.phase, "Succeeded");
    assert!(
        sanitize.job_name.starts_with("feature-sanitize-c"),
        "{}",
        sanitize.job_name
    );
    let jobs = project.namespaced::<Job>();
    let sanitized = jobs.get(&sanitize.job_name).await.unwrap();
    let done = sanitized
        .status
        .as_ref()
        .unwrap()
        .completion_time
        .clone()
        .unwrap()
        .0;
    // No pod of the component existed before the clone was sanitised.
    let pods = project
        .namespaced::<k8s_openapi::api::core::v1::Pod>()
        .list(&ListParams::default().labels("oksa.dev/release=feature,oksa.dev/component=web"))
        .await
        .unwrap();
    assert!(!pods.items.is_empty());
    for pod in &pods.items {
        assert!(
            pod.creation_timestamp().unwrap().0 >= done,
            "{} started before",
            pod.name_any()
        );
    }

    // A redeploy runs the rollout's job again, never the clone's.
    project
        .apply_release("feature", branch("feature", "nginx:1.28"))
        .await
        .unwrap();
    let redeployed = project
        .wait_release("feature", "Ready after the redeploy", |s| {
            s.phase == Some(Phase::Ready) && s.observed_generation == Some(2)
        })
        .await;
    let jobs_now = redeployed.status.unwrap().jobs;
    let first_migrate = &status
        .jobs
        .iter()
        .find(|j| j.name == "migrate")
        .unwrap()
        .job_name;
    assert_ne!(
        &jobs_now[0].job_name, first_migrate,
        "the rollout's job ran again"
    );
    assert_eq!(jobs_now[1].job_name, sanitize.job_name);
    assert_eq!(
        jobs.get(&sanitize.job_name).await.unwrap().uid(),
        sanitized.uid()
    );
    project.cleanup().await;
}
