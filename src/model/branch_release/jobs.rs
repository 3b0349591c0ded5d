//! Jobs per deploy, pure: the Kubernetes Job of each of a BranchRelease's `jobs` for its current
//! run, when it may start, and how it went.
//!
//! An `AfterRollout` job runs once per deployed spec, named by it (`naming::job_name` with
//! `deploy_key`): a retry, a resync or a GitOps re-apply of the same spec finds the same Job and
//! runs nothing again, and so does scaling the branch to sleep and back (its `replicas` and
//! lifecycle settings are not what is deployed); a new spec gets a new Job, and the older ones are
//! pruned. It starts only once the components are ready and the branch is awake. An `AfterClone` job runs once
//! per clone of the branch's reference data (named by the cloned claims), while the components
//! are held at zero (see `held`), so nothing serves the data before it is made ready. A Job that
//! exists stays declared, so sleeping, waking and expiry leave a finished Job alone.

use std::borrow::Borrow;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::build::{Release, pod_spec};
use crate::api::{BranchRelease, Container, DeployJob, JobStatus, JobWhen, Volume};
use crate::naming;

/// How long a job may run when it does not say (`timeoutSeconds`).
const DEFAULT_TIMEOUT_SECONDS: i64 = 1800;

/// The label of a deploy job's pods naming the job (besides the branch's labels).
pub const JOB_LABEL: &str = "oksa.dev/job";

/// The run of `job` now: the deployed spec (`deploy_key`), or the clone of the branch's data
/// (`clone`, see `clone_key`); None for an `AfterClone` job of a branch with nothing cloned.
pub fn run_of(release: &BranchRelease, job: &DeployJob, clone: Option<&str>) -> Option<String> {
    match job.when {
        JobWhen::AfterRollout => Some(deploy_key(release)),
        JobWhen::AfterClone => clone.map(|key| format!("c{key}")),
    }
}

/// What is deployed, as a key: a hash of the spec without what only switches or guards it
/// (`replicas`, that `kubectl scale` sets to sleep and wake; `lifecycle`; `protection`).
pub fn deploy_key(release: &BranchRelease) -> String {
    let mut spec = serde_json::to_value(&release.spec).unwrap_or_default();
    if let Some(fields) = spec.as_object_mut() {
        for field in ["replicas", "lifecycle", "protection"] {
            fields.remove(field);
        }
    }
    naming::short_hash(&spec.to_string())
}

/// The key of a branch's clones: a hash of its cloned claims' UIDs (None: none cloned). A volume
/// cloned again (its claim deleted and created anew) makes a new key, and its `AfterClone` jobs
/// run again.
pub fn clone_key<'a>(cloned_claim_uids: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut uids: Vec<&str> = cloned_claim_uids.into_iter().collect();
    if uids.is_empty() {
        return None;
    }
    uids.sort_unstable();
    Some(naming::short_hash(&uids.join(",")))
}

/// Whether the branch's components are held at zero for their data: a claim of its reference
/// data is not created yet (`claims_missing`: its source is awaited, or this is the branch's first
/// reconcile), so a pod would only fail to find it; or the data is cloned (`clone`) and not yet
/// through all of its `AfterClone` jobs. A branch whose reference volumes started empty has
/// nothing to hold for.
pub fn held(
    release: &BranchRelease,
    release_name: &str,
    claims_missing: bool,
    clone: Option<&str>,
    succeeded: impl Fn(&str) -> bool,
) -> bool {
    if claims_missing {
        return true;
    }
    let mut after_clone = release
        .spec
        .jobs
        .iter()
        .filter(|j| j.when == JobWhen::AfterClone)
        .peekable();
    if after_clone.peek().is_none() {
        return false;
    }
    let Some(key) = clone else {
        return false;
    };
    !after_clone.all(|job| {
        succeeded(&naming::job_name(
            release_name,
            &job.name,
            &format!("c{key}"),
        ))
    })
}

/// The Job of `job` for its run `run` (see `run_of`).
pub fn render(release: &Release, job: &DeployJob, run: &str) -> Job {
    let name = naming::job_name(&release.name, &job.name, run);
    let mut labels = release.labels();
    labels.insert(JOB_LABEL.into(), job.name.clone());
    let spec = &release.branch_release.spec;
    let mounted: Vec<&Volume> = spec
        .volumes
        .iter()
        .filter(|v| job.volume_mounts.iter().any(|m| m.volume == v.name))
        .collect();
    let as_container = Container {
        name: job.name.clone(),
        image: job.image.clone(),
        command: job.command.clone(),
        args: job.args.clone(),
        ports: Vec::new(),
        env: job.env.clone(),
        resources: job.resources.clone(),
        readiness_probe: None,
        liveness_probe: None,
        volume_mounts: job.volume_mounts.clone(),
    };
    let mut pod = pod_spec(
        release,
        std::slice::from_ref(&as_container),
        &mounted,
        false,
    );
    pod.restart_policy = Some("Never".into());
    // A kubelet copies the end of the log of a container that failed into its status: that is how
    // the branch's status shows why a migration failed, without reading logs.
    for container in &mut pod.containers {
        container.termination_message_policy = Some("FallbackToLogsOnError".into());
    }
    Job {
        metadata: release.meta(name, labels.clone(), true),
        spec: Some(JobSpec {
            // A migration that failed halfway is looked at, not run again; a new deploy runs it.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(job.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The Jobs to declare now: those of the current runs that exist already; `AfterClone` ones as
/// soon as there is a clone; `AfterRollout` ones once the components are ready, the branch awake
/// and not held (`rolled_out`).
pub fn declared(
    release: &Release,
    rolled_out: bool,
    clone: Option<&str>,
    exists: impl Fn(&str) -> bool,
) -> Vec<Job> {
    release
        .branch_release
        .spec
        .jobs
        .iter()
        .filter_map(|job| {
            let run = run_of(release.branch_release, job, clone)?;
            let rendered = render(release, job, &run);
            let may_start = job.when == JobWhen::AfterClone || rolled_out;
            (may_start || exists(rendered.metadata.name.as_deref().unwrap_or_default()))
                .then_some(rendered)
        })
        .collect()
}

/// How a job of its current run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not started: the components are not ready yet (or the branch is held for its data).
    Waiting,
    /// Not started because the branch sleeps: it runs once the branch wakes, and keeps nothing
    /// from being Ready (asleep) until then.
    Deferred,
    Running,
    Succeeded,
    Failed {
        exit_code: Option<i32>,
        message: String,
    },
}

/// The state of a Job, from it and its pods (for a failure's exit code and log lines).
pub fn state<P: Borrow<Pod>>(job: Option<&Job>, pods: &[P]) -> JobState {
    let Some(job) = job else {
        return JobState::Waiting;
    };
    let condition = |type_: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    if condition("Complete").is_some() {
        return JobState::Succeeded;
    }
    let Some(failed) = condition("Failed") else {
        return JobState::Running;
    };
    let terminated = pods
        .iter()
        .filter_map(|p| p.borrow().status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .find(|t| t.exit_code != 0);
    let log = terminated
        .and_then(|t| t.message.as_deref())
        .map(|m| last_lines(m, 5))
        .filter(|m| !m.is_empty());
    let why = failed
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| failed.reason.clone().unwrap_or_default());
    JobState::Failed {
        exit_code: terminated.map(|t| t.exit_code),
        message: match log {
            Some(log) => format!("{why}: {log}"),
            None => why,
        },
    }
}

/// The last `count` non-empty lines of a log, on one line.
fn last_lines(log: &str, count: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

/// The status of one job.
pub fn status(name: &str, job_name: &str, state: &JobState) -> JobStatus {
    let (phase, exit_code, message) = match state {
        JobState::Waiting | JobState::Deferred => ("Waiting", None, None),
        JobState::Running => ("Running", None, None),
        JobState::Succeeded => ("Succeeded", None, None),
        JobState::Failed { exit_code, message } => ("Failed", *exit_code, Some(message.clone())),
    };
    JobStatus {
        name: name.to_string(),
        job_name: job_name.to_string(),
        phase: phase.to_string(),
        exit_code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::branch_release::build::Rendering;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};
    use serde_json::json;

    fn branch() -> crate::api::BranchRelease {
        release_from_yaml(
            "name: main\ngeneration: 4\nspec:\n  project: shop\n  branch: main\n  components: []\n  \
             volumes: [{name: files, size: 1Gi}]\n  jobs:\n  - name: migrate\n    image: shop/web:4\n    \
             command: [drush, deploy]\n    volumeMounts: [{volume: files, mountPath: /files}]\n",
        )
    }

    /// Branch `main`, awake, as rendered.
    fn awake<'a>(
        branch: &'a crate::api::BranchRelease,
        project: &'a crate::api::Project,
    ) -> Release<'a> {
        Release {
            branch_release: branch,
            project,
            name: "main".into(),
            owner: Default::default(),
            rendering: Rendering::default(),
        }
    }

    #[test]
    fn a_job_runs_once_per_deployed_spec_mounting_the_branchs_volumes_and_is_not_retried() {
        let branch = branch();
        let project = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        let release = awake(&branch, &project);
        let name = format!("main-migrate-{}", deploy_key(&branch));
        assert!(
            declared(&release, false, None, |_| false).is_empty(),
            "waits for the rollout"
        );
        let kept = declared(&release, false, None, |n| n == name);
        assert_eq!(kept.len(), 1, "an existing Job stays declared");
        let [job] = declared(&release, true, None, |_| false)
            .try_into()
            .unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some(name.as_str()));
        // Scaled to sleep and back, the same run; another image, another.
        let mut scaled = branch.clone();
        scaled.spec.replicas = Some(0);
        assert_eq!(deploy_key(&scaled), deploy_key(&branch));
        let mut changed = branch.clone();
        changed.spec.jobs[0].image = "shop/web:5".into();
        assert_ne!(deploy_key(&changed), deploy_key(&branch));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "main-files"
        );
        assert_eq!(
            pod.containers[0].termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()[JOB_LABEL],
            "migrate"
        );
    }

    #[test]
    fn a_job_pod_is_one_the_project_admits_and_can_pull() {
        let branch = branch();
        let project = project_from_yaml(
            "name: shop\nspec: {domain: shop.test, podSecurity: restricted, \
             defaults: {imagePullSecrets: [registry], resources: {requests: {cpu: 100m}}}}",
        );
        let release = awake(&branch, &project);
        let [job] = declared(&release, true, None, |_| false)
            .try_into()
            .unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        let container = &pod.containers[0];
        assert_eq!(
            container
                .security_context
                .as_ref()
                .unwrap()
                .allow_privilege_escalation,
            Some(false)
        );
        assert!(container.resources.as_ref().unwrap().requests.is_some());
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn a_failed_job_says_its_exit_code_and_the_end_of_its_log() {
        let job = |condition: &str, message: &str| -> Job {
            serde_json::from_value(json!({"status": {"conditions": [
                {"type": condition, "status": "True", "reason": "BackoffLimitExceeded",
                 "message": message}]}}))
            .unwrap()
        };
        assert_eq!(state::<Pod>(None, &[]), JobState::Waiting);
        let running: Job = serde_json::from_value(json!({"status": {"active": 1}})).unwrap();
        assert_eq!(state::<Pod>(Some(&running), &[]), JobState::Running);
        assert_eq!(
            state::<Pod>(Some(&job("Complete", "")), &[]),
            JobState::Succeeded
        );
        let pod: Pod = serde_json::from_value(json!({"status": {"containerStatuses": [{
            "name": "migrate", "image": "x", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error",
                "message": "applying 0041\napplying 0042\n\nSQLSTATE[42S01]: table exists\n"}}}]}}))
        .unwrap();
        let failed = state(
            Some(&job(
                "Failed",
                "Job has reached the specified backoff limit",
            )),
            &[pod],
        );
        assert_eq!(
            failed,
            JobState::Failed {
                exit_code: Some(1),
                message: "Job has reached the specified backoff limit: applying 0041 | \
                          applying 0042 | SQLSTATE[42S01]: table exists"
                    .into()
            }
        );
        let status = status("migrate", "main-migrate-4", &failed);
        assert_eq!(
            (status.phase.as_str(), status.exit_code),
            ("Failed", Some(1))
        );
    }

    #[test]
    fn an_after_clone_job_runs_once_per_clone_and_holds_the_components_until_it_succeeded() {
        let mut branch = branch();
        branch.spec.jobs.push(
            serde_json::from_value(json!({"name": "sanitize", "image": "shop/web:4",
                "when": "AfterClone"}))
            .unwrap(),
        );
        let key = clone_key(["uid-db", "uid-files"]).unwrap();
        assert_eq!(
            clone_key(["uid-files", "uid-db"]).as_deref(),
            Some(key.as_str())
        );
        assert_eq!(clone_key([]), None);
        let sanitize = &branch.spec.jobs[1];
        assert_eq!(run_of(&branch, sanitize, None), None);
        assert_eq!(
            run_of(&branch, sanitize, Some(&key)),
            Some(format!("c{key}"))
        );
        let name = format!("main-sanitize-c{key}");

        // Not cloned yet: held (with or without jobs). Cloned: held until the job succeeded.
        // Started empty: not held.
        assert!(held(&branch, "main", true, None, |_| false));
        assert!(held(&self::branch(), "main", true, None, |_| false));
        assert!(!held(&self::branch(), "main", false, Some(&key), |_| false));
        assert!(held(&branch, "main", false, Some(&key), |_| false));
        assert!(!held(&branch, "main", false, Some(&key), |n| n == name));
        assert!(!held(&branch, "main", false, None, |_| false));

        let project = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        let release = awake(&branch, &project);
        // The clone's job starts at once; the rollout's waits for the rollout.
        let names: Vec<String> = declared(&release, false, Some(key.as_str()), |_| false)
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, [name]);
    }
}
