//! Why a component is not ready, in words a user can act on, from its Deployment, its pods and
//! their Warning events. Pure.

use std::borrow::Borrow;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;

/// A failure that will not fix itself by waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// PascalCase reason for the Degraded condition.
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    /// True when the problem will not go away without a change (an image that cannot be pulled,
    /// a container that keeps crashing, a rollout past its deadline): the rollout is stalled. A
    /// failing probe or a pod not yet scheduled may still resolve by itself.
    pub fn stalls(&self) -> bool {
        !matches!(self.reason, "ProbeFailing" | "Unschedulable")
    }
}

fn problem(reason: &'static str, message: String) -> Option<Problem> {
    Some(Problem { reason, message })
}

/// The most telling problem of a component, if any.
pub fn diagnose<P: Borrow<Pod>>(
    deployment: &Deployment,
    pods: &[P],
    events: &[Event],
) -> Option<Problem> {
    // The ReplicaSet could not even create pods: quota exceeded, admission refused...
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(failure) = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    }) {
        return problem(
            "PodCreationFailed",
            failure.message.clone().unwrap_or_default(),
        );
    }
    if let Some(stuck) = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        let diagnosis = pods
            .iter()
            .find_map(|pod| diagnose_pod(pod.borrow(), events));
        return diagnosis.or_else(|| {
            problem(
                "ProgressDeadlineExceeded",
                stuck.message.clone().unwrap_or_default(),
            )
        });
    }
    pods.iter()
        .find_map(|pod| diagnose_pod(pod.borrow(), events))
}

/// A pod whose containers run but are not all ready: the readiness probe fails, or has not
/// passed yet. Only the kubelet's events can tell which.
pub fn running_unready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|status| {
        status.phase.as_deref() == Some("Running")
            && status.container_statuses.iter().flatten().any(|c| !c.ready)
    })
}

fn diagnose_pod(pod: &Pod, events: &[Event]) -> Option<Problem> {
    let status = pod.status.as_ref()?;
    for container in status.container_statuses.iter().flatten() {
        let name = &container.name;
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting
            .and_then(|w| w.reason.as_deref())
            .unwrap_or_default();
        let detail = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                return problem(
                    "ImagePullFailed",
                    format!(
                        "container {name}: cannot pull image {} ({reason}): {detail}",
                        container.image
                    ),
                );
            }
            "CrashLoopBackOff" => {
                let last = container
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref());
                let exit = last
                    .map(|t| {
                        format!(
                            "exit code {}{}",
                            t.exit_code,
                            t.reason
                                .as_ref()
                                .map(|r| format!(", {r}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "no exit status".into());
                return problem(
                    "CrashLooping",
                    format!(
                        "container {name} keeps crashing ({exit}; restarted {} times)",
                        container.restart_count
                    ),
                );
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                return problem(
                    "ContainerConfigError",
                    format!("container {name}: {reason}: {detail}"),
                );
            }
            _ => {}
        }
    }
    for condition in status.conditions.iter().flatten() {
        let message = condition.message.as_deref().unwrap_or_default();
        // Waiting for a claim that is still being provisioned is progress, not a failure: the
        // volume's own status (VolumesNotBound) already says so.
        let waiting_for_volume = message.contains("unbound immediate PersistentVolumeClaims");
        if condition.type_ == "PodScheduled" && condition.status == "False" && !waiting_for_volume {
            return problem(
                "Unschedulable",
                format!(
                    "pod {} cannot be scheduled: {}",
                    pod.name_any(),
                    condition.message.clone().unwrap_or_default()
                ),
            );
        }
    }
    if running_unready(pod) {
        let probe = events
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod.name_any().as_str()))
            .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
            .max_by_key(|e| {
                e.last_timestamp.clone().or(e
                    .event_time
                    .as_ref()
                    .map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0)))
            })
            .and_then(|e| e.message.clone());
        if let Some(message) = probe {
            return problem("ProbeFailing", format!("pod {}: {message}", pod.name_any()));
        }
    }
    None
}

/// Why a claim is still Pending, from its newest Warning event (a storage class that cannot
/// clone, a provisioner that failed): the volume's status says it instead of only "Pending".
pub fn pending_claim(claim: &str, events: &[Event]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(claim))
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by_key(|e| {
            e.last_timestamp.clone().or(e
                .event_time
                .as_ref()
                .map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0)))
        })
        .and_then(|e| e.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pending_claim_is_explained_by_its_newest_warning() {
        let event = |name: &str, type_: &str, at: &str, message: &str| -> Event {
            serde_json::from_value(json!({"metadata": {"name": format!("{name}.{at}")},
                "involvedObject": {"kind": "PersistentVolumeClaim", "name": name},
                "type": type_, "lastTimestamp": at, "message": message}))
            .unwrap()
        };
        let events = [
            event("feature-db", "Warning", "2026-12-06T10:00:00Z", "older"),
            event(
                "feature-db",
                "Warning",
                "2026-12-06T10:05:00Z",
                "storage class x cannot clone volumes",
            ),
            event(
                "feature-db",
                "Normal",
                "2026-12-06T10:06:00Z",
                "waiting for a volume",
            ),
            event(
                "other-db",
                "Warning",
                "2026-12-06T10:07:00Z",
                "not this one",
            ),
        ];
        assert_eq!(
            pending_claim("feature-db", &events).as_deref(),
            Some("storage class x cannot clone volumes")
        );
        assert_eq!(pending_claim("main-db", &events), None);
    }

    fn deployment() -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "main-web"}, "status": {}})).unwrap()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "main-web-1"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn image_pull_errors_name_the_container_and_image() {
        let pod = pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "web", "image": "shop/web:nope", "ready": false, "restartCount": 0, "imageID": "",
            "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}));
        let found = diagnose(&deployment(), &[pod], &[]).unwrap();
        assert_eq!(found.reason, "ImagePullFailed");
        assert!(
            found.message.contains("container web") && found.message.contains("shop/web:nope"),
            "{}",
            found.message
        );
    }

    #[test]
    fn crash_loops_carry_the_exit_reason() {
        let pod = pod(json!({"phase": "Running", "containerStatuses": [{
            "name": "php", "image": "php", "ready": false, "restartCount": 5, "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        let found = diagnose(&deployment(), &[pod], &[]).unwrap();
        assert_eq!(found.reason, "CrashLooping");
        assert!(
            found.message.contains("exit code 137, OOMKilled"),
            "{}",
            found.message
        );
    }

    #[test]
    fn readiness_probe_failures_come_from_warning_events() {
        let pod = pod(json!({"phase": "Running", "containerStatuses": [{
            "name": "web", "image": "web", "ready": false, "restartCount": 0, "imageID": "",
            "state": {"running": {}}}]}));
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e1"}, "reason": "Unhealthy", "type": "Warning",
            "message": "Readiness probe failed: connection refused",
            "involvedObject": {"kind": "Pod", "name": "main-web-1"}}))
        .unwrap();
        let found = diagnose(&deployment(), std::slice::from_ref(&pod), &[event]).unwrap();
        assert_eq!(found.reason, "ProbeFailing");
        assert!(
            found
                .message
                .contains("Readiness probe failed: connection refused")
        );
        // Without the event, a pod that is merely starting is not a problem.
        assert_eq!(diagnose(&deployment(), &[pod], &[]), None);
    }

    #[test]
    fn waiting_for_a_volume_to_bind_is_not_a_problem() {
        let waiting = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]}),
        );
        assert_eq!(diagnose(&deployment(), &[waiting], &[]), None);
        let full = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        );
        assert_eq!(
            diagnose(&deployment(), &[full], &[]).unwrap().reason,
            "Unschedulable"
        );
    }

    #[test]
    fn quota_refusals_surface_from_the_deployment() {
        let deployment: Deployment = serde_json::from_value(json!({"metadata": {"name": "main-web"}, "status": {
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                            "message": "pods \"main-web-1\" is forbidden: exceeded quota: oksa-quota"}]}})).unwrap();
        let found = diagnose::<Pod>(&deployment, &[], &[]).unwrap();
        assert_eq!(found.reason, "PodCreationFailed");
        assert!(found.message.contains("exceeded quota"));
    }
}
