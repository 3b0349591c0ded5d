//! Questions asked of the caches: which branches a change concerns, whose pod this is, what the
//! gauges say. Pure: the runtime feeds them the cached objects.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::api::conditions::{self, READY};
use crate::api::{BranchRelease, Phase, Project};
use crate::naming;
use crate::quantity::Quantity;

/// The key a branch goes by in the runtime's own maps (the expiry budget, the forge's state):
/// `namespace/name`.
pub fn release_key(release: &BranchRelease) -> String {
    format!(
        "{}/{}",
        release.metadata.namespace.as_deref().unwrap_or_default(),
        release.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The part of a Project its branches depend on: its spec, whether it is being deleted, and
/// whether (and why not) it is ready with a namespace. Its status changes all the time besides
/// (branch counts, quota usage): those must not reconcile every branch of the project again.
pub fn what_branches_see(project: &Project) -> u64 {
    let mut hasher = DefaultHasher::new();
    project.metadata.generation.hash(&mut hasher);
    project
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    if let Some(status) = &project.status {
        status.namespace.hash(&mut hasher);
        if let Some(ready) = conditions::find(&status.conditions, READY) {
            (&ready.status, &ready.reason, &ready.message).hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The blocked siblings (Pending or Invalid, in the same namespace) that a change of `release`
/// may unblock: when it is leaving (being deleted, or no longer cached: a branch limit, a name, a
/// host it held) or its spec changed (a renamed component). Other changes, its status above all,
/// free nothing.
pub fn blocked_by<'a>(
    release: &BranchRelease,
    still_cached: bool,
    all: impl IntoIterator<Item = &'a BranchRelease>,
) -> Vec<&'a BranchRelease> {
    if !may_unblock(release, still_cached) {
        return Vec::new();
    }
    all.into_iter()
        .filter(|r| {
            r.metadata.namespace == release.metadata.namespace
                && r.metadata.uid != release.metadata.uid
                && matches!(
                    r.status.as_ref().and_then(|s| s.phase),
                    Some(Phase::Pending | Phase::Invalid)
                )
        })
        .collect()
}

/// Whether a change of `release` may unblock a sibling (see `blocked_by`), asked before the
/// siblings are gathered: most changes (a status write) cannot.
pub fn may_unblock(release: &BranchRelease, still_cached: bool) -> bool {
    let status = release.status.as_ref();
    let spec_changed = status.and_then(|s| s.observed_generation) != release.metadata.generation;
    let leaving = release.metadata.deletion_timestamp.is_some() || !still_cached;
    spec_changed || leaving
}

/// Whether `release` waits for its reference data (see `reference`): a claim of its namespace that
/// appears or is bound may be the source it waits for.
pub fn waits_for_reference(release: &BranchRelease, namespace: &str) -> bool {
    release.metadata.namespace.as_deref() == Some(namespace)
        && release.status.as_ref().is_some_and(|s| {
            conditions::find(&s.conditions, conditions::REFERENCE_DATA)
                .is_some_and(|c| c.status == "False" && c.reason == conditions::WAITING_FOR_SOURCE)
        })
}

/// Whether a pod labelled with `release_label` in `namespace` is one of `release`'s: pods belong
/// to a ReplicaSet, not to the BranchRelease, and name the release by its label only.
pub fn runs_pod_of(release: &BranchRelease, namespace: &str, release_label: &str) -> bool {
    release.metadata.namespace.as_deref() == Some(namespace)
        && naming::release_name(&release.spec.branch) == release_label
}

/// The phases a branch is counted in, every one present so that a phase emptied shows as 0.
const PHASES: [&str; 8] = [
    "Pending",
    "Progressing",
    "Ready",
    "Degraded",
    "Invalid",
    "Sleeping",
    "Expired",
    "Unknown",
];

/// What the branch gauges show, counted from the caches.
#[derive(Debug, Default, PartialEq)]
pub struct BranchGauges {
    /// Branches per phase ("Unknown": no status yet).
    pub by_phase: BTreeMap<&'static str, i64>,
    /// What each project's branches request: (project, "cpu" | "memory", "awake" | "asleep") →
    /// cores or bytes.
    pub requested: BTreeMap<(String, &'static str, &'static str), f64>,
}

pub fn branch_gauges<'a>(
    projects: impl IntoIterator<Item = &'a Project>,
    releases: impl IntoIterator<Item = &'a BranchRelease>,
) -> BranchGauges {
    let mut gauges = BranchGauges {
        by_phase: PHASES.iter().map(|phase| (*phase, 0)).collect(),
        ..Default::default()
    };
    for project in projects {
        let name = project.metadata.name.clone().unwrap_or_default();
        for resource in ["cpu", "memory"] {
            for state in ["awake", "asleep"] {
                gauges
                    .requested
                    .insert((name.clone(), resource, state), 0.0);
            }
        }
    }
    for release in releases {
        let status = release.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        let phase = PHASES
            .iter()
            .find(|name| phase.is_some_and(|p| format!("{p:?}") == **name))
            .unwrap_or(&"Unknown");
        *gauges.by_phase.entry(phase).or_default() += 1;
        let Some(figures) = status.and_then(|s| s.requested.as_ref()) else {
            continue;
        };
        let state = match phase {
            &"Sleeping" | &"Expired" => "asleep",
            _ => "awake",
        };
        let value = |text: &str| Quantity::parse(text).map_or(0.0, |q| q.milli() as f64 / 1000.0);
        for (resource, amount) in [
            ("cpu", value(&figures.cpu)),
            ("memory", value(&figures.memory)),
        ] {
            *gauges
                .requested
                .entry((release.spec.project.clone(), resource, state))
                .or_default() += amount;
        }
    }
    gauges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::project_from_yaml;

    fn release(
        name: &str,
        namespace: &str,
        phase: Option<&str>,
        generations: (i64, i64),
    ) -> BranchRelease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": name, "namespace": namespace,
                "uid": format!("uid-{namespace}-{name}"), "generation": generations.0},
            "spec": {"project": "shop", "branch": name, "components": []},
            "status": {"observedGeneration": generations.1, "phase": phase,
                "requested": {"cpu": "500m", "memory": "1Gi"}},
        }))
        .unwrap()
    }

    #[test]
    fn only_a_leaving_or_changed_branch_unblocks_its_blocked_siblings() {
        let pending = release("pending", "shop", Some("Pending"), (1, 1));
        let invalid = release("invalid", "shop", Some("Invalid"), (1, 1));
        let ready = release("ready", "shop", Some("Ready"), (1, 1));
        let elsewhere = release("pending", "other", Some("Pending"), (1, 1));
        let all = [&pending, &invalid, &ready, &elsewhere];
        let names = |found: Vec<&BranchRelease>| {
            found
                .iter()
                .map(|r| r.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        // A status change of a settled branch frees nothing.
        assert!(blocked_by(&ready, true, all).is_empty());
        // Gone from the cache: both blocked siblings of its namespace are looked at again.
        assert_eq!(
            names(blocked_by(&ready, false, all)),
            ["pending", "invalid"]
        );
        // A new spec (not yet observed) may free a name.
        let changed = release("ready", "shop", Some("Ready"), (2, 1));
        assert_eq!(
            names(blocked_by(&changed, true, all)),
            ["pending", "invalid"]
        );
        // A blocked branch never triggers itself.
        let mut leaving = pending.clone();
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(names(blocked_by(&leaving, true, all)), ["invalid"]);
    }

    #[test]
    fn branches_see_a_projects_spec_and_readiness_not_its_counts() {
        let project = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        let with_counts = |ready: i32| {
            let mut project = project.clone();
            let counts = serde_json::json!({"branches": {"total": 3, "ready": ready,
                "summary": format!("{ready}/3")}});
            project.status = Some(serde_json::from_value(counts).unwrap());
            project
        };
        let counted = with_counts(2);
        assert_eq!(
            what_branches_see(&counted),
            what_branches_see(&with_counts(3))
        );
        let mut ready = counted.clone();
        ready.status.as_mut().unwrap().conditions = conditions::merge(
            &[],
            &[conditions::Desired::new(
                READY,
                true,
                "NamespaceReady",
                "ready",
            )],
            Some(1),
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        assert_ne!(what_branches_see(&counted), what_branches_see(&ready));
        let mut changed = project.clone();
        changed.metadata.generation = Some(2);
        assert_ne!(what_branches_see(&project), what_branches_see(&changed));
    }

    #[test]
    fn a_branch_waiting_for_its_reference_data_hears_of_its_namespaces_claims() {
        let mut waiting = release("feature", "shop", Some("Progressing"), (1, 1));
        waiting.status.as_mut().unwrap().conditions = conditions::merge(
            &[],
            &[conditions::Desired::new(
                conditions::REFERENCE_DATA,
                false,
                conditions::WAITING_FOR_SOURCE,
                "volume db waits for its reference data",
            )],
            Some(1),
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        assert!(waits_for_reference(&waiting, "shop"));
        assert!(!waits_for_reference(&waiting, "other"));
        let ready = release("main", "shop", Some("Ready"), (1, 1));
        assert!(!waits_for_reference(&ready, "shop"));
    }

    #[test]
    fn a_pod_is_its_releases_by_namespace_and_label() {
        let main = release("main", "shop", None, (1, 1));
        assert!(runs_pod_of(&main, "shop", "main"));
        assert!(!runs_pod_of(&main, "other", "main"));
        assert!(!runs_pod_of(&main, "shop", "main-2"));
    }

    #[test]
    fn gauges_count_every_phase_and_split_requests_by_sleep() {
        let project = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        let idle = project_from_yaml("name: idle\nspec: {domain: idle.test}");
        let ready = release("a", "shop", Some("Ready"), (1, 1));
        let asleep = release("b", "shop", Some("Sleeping"), (1, 1));
        let mut new = release("c", "shop", None, (1, 1));
        new.status = None;
        let gauges = branch_gauges([&project, &idle], [&ready, &asleep, &new]);
        assert_eq!(gauges.by_phase["Ready"], 1);
        assert_eq!(gauges.by_phase["Sleeping"], 1);
        assert_eq!(gauges.by_phase["Unknown"], 1);
        assert_eq!(gauges.by_phase["Degraded"], 0);
        let requested = |project: &str, resource, state| {
            gauges.requested[&(project.to_string(), resource, state)]
        };
        assert_eq!(requested("shop", "cpu", "awake"), 0.5);
        assert_eq!(requested("shop", "cpu", "asleep"), 0.5);
        assert_eq!(requested("shop", "memory", "awake"), 1073741824.0);
        assert_eq!(requested("idle", "memory", "asleep"), 0.0);
    }
}
