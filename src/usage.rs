//! What the pods of each branch use, from `metrics.k8s.io` (metrics-server), where a cluster
//! serves it. Read when asked (`oksa status`), never written to status: it changes all the time.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::labels;
use crate::quantity::Quantity;

const GROUP: &str = "metrics.k8s.io";
const VERSION: &str = "v1beta1";

/// Whether the cluster serves pod metrics.
pub async fn served(client: &Client) -> bool {
    match client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(resources) => resources.resources.iter().any(|r| r.name == "pods"),
        Err(_) => false,
    }
}

/// (CPU millicores, memory millibytes) used, per release name, in `namespace`.
pub async fn by_release(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, (i128, i128)>, kube::Error> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "PodMetrics"),
        "pods",
    );
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    let list = api
        .list(&ListParams::default().labels(labels::MANAGED_SELECTOR))
        .await?;
    let items: Vec<Value> = list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    Ok(sum(&items))
}

/// Sums the containers' usage of PodMetrics objects per `oksa.dev/release` label. Pure.
pub fn sum(pod_metrics: &[Value]) -> BTreeMap<String, (i128, i128)> {
    let mut used = BTreeMap::<String, (i128, i128)>::new();
    for pod in pod_metrics {
        let Some(release) = pod["metadata"]["labels"][labels::RELEASE].as_str() else {
            continue;
        };
        let entry = used.entry(release.to_string()).or_default();
        for container in pod["containers"].as_array().into_iter().flatten() {
            let amount = |name: &str| {
                container["usage"][name]
                    .as_str()
                    .and_then(Quantity::parse)
                    .map_or(0, Quantity::milli)
            };
            entry.0 += amount("cpu");
            entry.1 += amount("memory");
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_is_summed_per_branch() {
        let pod = |release: &str, cpu: &str, memory: &str| {
            json!({"metadata": {"labels": {"oksa.dev/release": release}},
                   "containers": [{"name": "c", "usage": {"cpu": cpu, "memory": memory}}]})
        };
        let used = sum(&[
            pod("main", "12m", "30Mi"),
            pod("main", "3m", "2Mi"),
            pod("feature", "250000n", "1Ki"),
        ]);
        assert_eq!(used["main"], (15, 32 * 1024 * 1024 * 1000));
        assert_eq!(
            used["feature"],
            (0, 1024 * 1000),
            "a quarter of a millicore"
        );
        assert_eq!(sum(&[pod("x", "1500000n", "0")])["x"].0, 1);
    }
}
