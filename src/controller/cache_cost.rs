//! What one branch costs in the operator's caches, weighed by the allocator.
//!
//! Memory per branch is what limits how many branches one operator serves (the target: under
//! 150 MiB at 5,000). The objects weighed are one Ready branch of the benchmark's workload (two
//! components, each a Deployment, a Service and a pod; an Ingress; a volume) as the local plane
//! served them, saved in `testdata/branch-as-served.json`, cached a hundred times over in the
//! caches the operator keeps, so that the stores' own tables count at their usual fill.

use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::heap;

const BRANCHES: usize = 100;

/// The objects of `kind` in the saved branch, once per branch, each branch in its own namespace.
fn served(kind: &str) -> Vec<Value> {
    let saved: Value =
        serde_json::from_str(include_str!("testdata/branch-as-served.json")).expect("valid JSON");
    let objects = match &saved[kind] {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    (0..BRANCHES)
        .flat_map(|branch| {
            objects.iter().map(move |object| {
                let mut object = object.clone();
                object["metadata"]["namespace"] = json!(format!("bench-1234-p{branch}"));
                object
            })
        })
        .collect()
}

/// Bytes per branch that caching `objects` as K holds, as the watch would cache them (`strip`
/// is what the watch does to each object first).
fn weigh<K>(objects: &[Value], strip: impl Fn(&mut K)) -> i64
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + 'static,
{
    let mut writer = Writer::<K>::default();
    let ((), bytes) = heap::retained_by(|| {
        for object in objects {
            let mut object: K = serde_json::from_value(object.clone()).expect("a served object");
            strip(&mut object);
            writer.apply_watcher_event(&watcher::Event::Apply(object));
        }
    });
    assert_eq!(writer.as_reader().len(), objects.len());
    bytes.expect("jemalloc's counters") / BRANCHES as i64
}

#[test]
fn a_branch_costs_the_caches_under_the_budget() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;

    use crate::api::BranchRelease;
    use crate::compact::Compact;

    fn compact<K: Resource<DynamicType = ()> + 'static>(kind: &str) -> i64
    where
        Compact<K>: DeserializeOwned + Clone,
    {
        weigh::<Compact<K>>(&served(kind), |_| {})
    }
    let costs = [
        (
            "BranchRelease",
            weigh::<BranchRelease>(&served("BranchRelease"), |release| {
                release.metadata.managed_fields = None
            }),
        ),
        ("Deployment", compact::<Deployment>("Deployment")),
        ("Service", compact::<Service>("Service")),
        ("Ingress", compact::<Ingress>("Ingress")),
        (
            "PersistentVolumeClaim",
            compact::<PersistentVolumeClaim>("PersistentVolumeClaim"),
        ),
        ("Pod", compact::<Pod>("Pod")),
    ];
    let total: i64 = costs.iter().map(|(_, bytes)| bytes).sum();
    for (kind, bytes) in &costs {
        eprintln!("{kind:>21}: {bytes:>6} bytes per branch");
    }
    eprintln!("{:>21}: {total:>6} bytes per branch", "all");
    // Not cached at all: the EndpointSlices of a branch's Services (see `controller::run`).
    let slices = compact::<EndpointSlice>("EndpointSlice");
    eprintln!(
        "{:>21}: {slices:>6} bytes per branch (not cached)",
        "EndpointSlice"
    );
    assert!(total < BUDGET, "{total} bytes per branch, budget {BUDGET}");
}

/// Bytes per branch the caches may hold: 22.3 KB measured (`cargo test cache_cost --
/// --nocapture` prints each kind), with room for a field or two more. It was 34.4 KB with the
/// labels as a map, the probes inline and the branch's EndpointSlices cached.
const BUDGET: i64 = 25_000;
