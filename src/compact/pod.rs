//! What the cache keeps of a pod: what explains a component's trouble (`diagnose`) or a deploy
//! job's failure (`jobs::state`), and the labels that say whose it is. A served pod's status is
//! mostly addresses, timestamps and conditions that are all True; at two pods a branch they were
//! a fifth of the cache (issue 23).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

/// Drops from a pod's metadata and top-level fields (`spec` is already gone) what no reader asks.
pub fn slim(metadata: &mut ObjectMeta, fields: &mut Map<String, Value>) {
    // Pods are found by their labels, never by their ReplicaSet or Job.
    metadata.owner_references = None;
    metadata.generate_name = None;
    let Some(Value::Object(status)) = fields.get_mut("status") else {
        return;
    };
    status.retain(|key, _| {
        matches!(
            key.as_str(),
            "phase" | "conditions" | "containerStatuses" | "initContainerStatuses"
        )
    });
    // Only a condition that is not True explains anything (a pod that cannot be scheduled).
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        conditions.retain(|c| c["status"] != "True");
        for condition in conditions.iter_mut() {
            keep(condition, &["type", "status", "reason", "message"]);
        }
        if conditions.is_empty() {
            status.remove("conditions");
        }
    }
    for list in ["containerStatuses", "initContainerStatuses"] {
        let Some(Value::Array(containers)) = status.get_mut(list) else {
            continue;
        };
        for container in containers {
            keep(
                container,
                &[
                    "name",
                    "ready",
                    "restartCount",
                    "image",
                    "state",
                    "lastState",
                ],
            );
            for state in ["state", "lastState"] {
                slim_state(&mut container[state]);
            }
        }
    }
}

/// A container state as read: why it waits, how it ended; that it runs, not since when.
fn slim_state(state: &mut Value) {
    let Value::Object(state) = state else {
        return;
    };
    if let Some(running) = state.get_mut("running") {
        *running = Value::Object(Map::new());
    }
    if let Some(terminated) = state.get_mut("terminated") {
        keep(terminated, &["exitCode", "reason", "message"]);
    }
    if let Some(waiting) = state.get_mut("waiting") {
        keep(waiting, &["reason", "message"]);
    }
}

fn keep(object: &mut Value, keys: &[&str]) {
    if let Value::Object(object) = object {
        object.retain(|key, _| keys.contains(&key.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use crate::compact::Compact;
    use crate::model::branch_release::diagnose;

    fn cached(pod: serde_json::Value) -> Pod {
        let compact = Compact::<Pod>::from_json(pod, &Default::default()).unwrap();
        compact.object().unwrap()
    }

    fn pod(status: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "main-web-1", "namespace": "shop", "generateName": "main-web-",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "main-web", "uid": "1", "controller": true}]},
            "status": status,
        })
    }

    #[test]
    fn a_healthy_pod_keeps_only_what_says_it_is_healthy() {
        let healthy = cached(pod(json!({
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}], "qosClass": "BestEffort",
            "startTime": "2026-11-28T11:45:54Z",
            "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": "2026-11-28T11:45:54Z"}],
            "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "sha256:1",
                "containerID": "containerd://1", "ready": true, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": "2026-11-28T11:45:54Z"}},
                "lastState": {}}],
        })));
        assert!(healthy.metadata.owner_references.is_none());
        let status = serde_json::to_value(healthy.status.unwrap()).unwrap();
        assert_eq!(
            status,
            json!({"phase": "Running", "containerStatuses": [{"name": "web", "image": "nginx",
                "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}},
                "lastState": {}}]})
        );
    }

    #[test]
    fn what_explains_a_failing_pod_stays() {
        let unschedulable = cached(pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available", "lastTransitionTime": "2026-11-28T11:45:54Z"}]})));
        let crashing = cached(pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "web", "image": "shop/web:1", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
             "lastState": {"terminated": {"exitCode": 3, "reason": "Error",
                 "message": "boom", "startedAt": "2026-11-28T11:45:54Z"}}}]})));
        let explained = |pod: &Pod| {
            diagnose::diagnose(&Deployment::default(), &[pod], &[])
                .map(|p| p.message)
                .unwrap_or_default()
        };
        assert!(
            explained(&unschedulable).contains("0/3 nodes are available"),
            "{unschedulable:?}"
        );
        let crash = explained(&crashing);
        assert!(crash.contains("exit code 3, Error"), "{crash}");
        assert!(crash.contains("restarted 4 times"), "{crash}");
    }
}
