//! What one branch costs in the operator's caches, weighed by the allocator.
//!
//! Memory per branch is what limits how many branches one operator serves (the target: under
//! 150 MiB at 5,000). The objects weighed are one Ready branch of the benchmark's workload (two
//! components, each a Deployment, a Service and a pod; an Ingress; a volume) as the local plane
//! served them, saved in `testdata/branch-as-served.json`, cached a hundred times over in the
//! caches the operator keeps, so that the stores' own tables count at their usual fill.

use kube::Resource;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::heap;
use crate::watch::Keyed;

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
                // What differs from branch to branch (names, UIDs, hashes, times), so that no
                // body packs against its twin (see `compact::packed`).
                let text = object
                    .to_string()
                    .replace("solo-0", &format!("feature-{branch}"))
                    .replace("bench-ac57a-quiet", &format!("bench-1234-p{branch}"))
                    .replace(
                        "2026-11-28T11:45:5",
                        &format!("2026-12-07T1{}:{:02}:5", branch % 10, branch % 60),
                    );
                let mut object: Value = serde_json::from_str(&text).expect("valid JSON");
                let metadata = &mut object["metadata"];
                metadata["uid"] = json!(format!("{branch:08x}-7d3c-4e5f-9a1b-{branch:012x}"));
                metadata["resourceVersion"] = json!(format!("{}", 1_000_000 + branch * 7));
                if let Some(hash) = metadata.pointer_mut("/annotations/oksa.dev~1applied") {
                    *hash = json!(format!("{branch:024x}"));
                }
                object
            })
        })
        .collect()
}

/// Bytes per branch that caching `objects` holds, each made into what the cache keeps by `cached`.
fn weigh<K: Keyed>(objects: &[Value], cached: impl Fn(Value) -> K) -> i64 {
    let (cache, mut writer) = crate::watch::cache::<K>();
    let ((), bytes) = heap::retained_by(|| {
        for object in objects {
            writer.apply_owned(watcher::Event::Apply(cached(object.clone())));
        }
    });
    assert_eq!(cache.len(), objects.len());
    bytes.expect("jemalloc's counters") / BRANCHES as i64
}

#[test]
fn a_branch_costs_the_caches_under_the_budget() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;

    use crate::api::BranchRelease;
    use crate::compact::{Compact, Dictionary};

    fn compact<K: Resource<DynamicType = ()> + 'static>(kind: &str) -> i64 {
        // The cache's dictionary (its first body) is weighed with it.
        let dictionary = Dictionary::default();
        weigh(&served(kind), |object| {
            Compact::<K>::from_json(object, &dictionary).expect("a served object")
        })
    }
    let costs = [
        (
            "BranchRelease",
            weigh(&served("BranchRelease"), |object| {
                let mut release: BranchRelease =
                    serde_json::from_value(object).expect("a served object");
                release.metadata.managed_fields = None;
                release
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

/// Bytes per branch the caches may hold: 10.3 KB measured (`cargo test cache_cost --
/// --nocapture` prints each kind), with room for a field or two more. It was 34.4 KB with the
/// labels as a map, the probes inline and the branch's EndpointSlices cached, and 20.9 KB with
/// the children's typed metadata and their bodies as plain text (issue 23).
const BUDGET: i64 = 12_500;
