//! A Project's status from what the reconcile found. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::jiff::Timestamp;

use super::validate::Refusal;
use crate::api::conditions::{self, Desired, READY, RECONCILING, STALLED};
use crate::api::{BranchCounts, Project, ProjectStatus, QuotaUsage};

/// How far the reconcile got.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The namespace and everything in it were applied.
    Ready,
    /// Oksa will not act for this Project until its spec (or the conflicting object) changes.
    Refused(Refusal),
    /// The namespace of an earlier Project with this name is still being deleted.
    Terminating,
    /// The namespace is in place, but some of its objects could not be written as declared.
    ChildrenRefused(Vec<crate::model::refusal::Refusal>),
    /// The Project is being deleted, and its namespace holds volumes kept on purpose: it is not
    /// deleted (nor anything in it) until a person deletes those claims.
    DeletionBlocked(Vec<String>),
}

/// True when `new` differs from `old` in its summaries only (branch counts, quota usage), which
/// may wait (see `coalesce`).
pub fn only_summaries_changed(old: &ProjectStatus, new: &ProjectStatus) -> bool {
    let without = |status: &ProjectStatus| ProjectStatus {
        branches: None,
        quota: None,
        ..status.clone()
    };
    old != new && without(old) == without(new)
}

pub fn branch_counts(total: i32, ready: i32) -> BranchCounts {
    BranchCounts {
        total,
        ready,
        summary: format!("{ready}/{total}"),
        ..BranchCounts::default()
    }
}

/// The counts of a project's branches, and the CPU and memory they request, all and awake.
pub fn count(releases: &[std::sync::Arc<crate::api::BranchRelease>]) -> BranchCounts {
    use crate::api::Phase;
    use crate::quantity::{Quantity, format_cpu, format_memory};
    let phase = |r: &crate::api::BranchRelease| r.status.as_ref().and_then(|s| s.phase);
    let asleep =
        |r: &crate::api::BranchRelease| matches!(phase(r), Some(Phase::Sleeping | Phase::Expired));
    let ready = releases
        .iter()
        .filter(|r| matches!(phase(r), Some(Phase::Ready)) || asleep(r))
        .count() as i32;
    let sleeping = releases.iter().filter(|r| asleep(r)).count() as i32;
    let sum = |only_awake: bool| {
        let (mut cpu, mut memory) = (0i128, 0i128);
        for release in releases.iter().filter(|r| !(only_awake && asleep(r))) {
            if let Some(requested) = release.status.as_ref().and_then(|s| s.requested.as_ref()) {
                cpu += Quantity::parse(&requested.cpu).map_or(0, Quantity::milli);
                memory += Quantity::parse(&requested.memory).map_or(0, Quantity::milli);
            }
        }
        crate::api::Requested {
            cpu: format_cpu(cpu),
            memory: format_memory(memory),
        }
    };
    let mut counts = branch_counts(releases.len() as i32, ready);
    if sleeping > 0 {
        counts.asleep = sleeping;
        counts.summary = format!("{ready}/{} ({sleeping} asleep)", releases.len());
    }
    counts.requested = Some(sum(false));
    counts.running = Some(sum(true));
    counts
}

/// Ready and the kstatus pair: a refusal needs a change (Stalled), the rest is waited out
/// (Reconciling).
fn kstatus(outcome: &Outcome, ready: Desired) -> [Desired; 3] {
    let (reconciling, stalled) = match outcome {
        Outcome::Ready => (false, false),
        Outcome::Refused(_) | Outcome::ChildrenRefused(_) => (false, true),
        Outcome::Terminating | Outcome::DeletionBlocked(_) => (true, false),
    };
    let (reason, message) = (ready.reason.clone(), ready.message.clone());
    let quiet = |type_| Desired::new(type_, false, "AsExpected", "");
    [
        ready,
        if reconciling {
            Desired::new(RECONCILING, true, &reason, message.clone())
        } else {
            quiet(RECONCILING)
        },
        if stalled {
            Desired::new(STALLED, true, &reason, message)
        } else {
            quiet(STALLED)
        },
    ]
}

/// Whether what the branches use can be known (`oksa status` shows it, read from
/// `metrics.k8s.io`): said once per Project, since it is the cluster's property.
pub fn usage_condition(metrics_api: bool) -> Desired {
    if metrics_api {
        Desired::new(
            USAGE_MEASURED,
            true,
            "MetricsAPIServed",
            "used CPU and memory come from metrics.k8s.io (oksa status shows them)",
        )
    } else {
        Desired::new(
            USAGE_MEASURED,
            false,
            "MetricsAPIUnavailable",
            "this cluster does not serve metrics.k8s.io (install metrics-server): only requested \
             CPU and memory are known",
        )
    }
}

/// The condition of `usage_condition`.
pub const USAGE_MEASURED: &str = "UsageMeasured";

/// The condition of `expiry_condition`.
pub const EXPIRY_LIMITED: &str = "ExpiryLimited";

/// Whether expired branches wait because the project used its hourly budget of expiry
/// deletions (`policy.expiry.maxDeletionsPerHour`), naming them.
pub fn expiry_condition(waiting: &[String], per_hour: u32) -> Desired {
    if waiting.is_empty() {
        Desired::new(EXPIRY_LIMITED, false, "WithinBudget", "")
    } else {
        Desired::new(
            EXPIRY_LIMITED,
            true,
            "DeletionBudgetSpent",
            format!(
                "{} expired branches wait, asleep: at most {per_hour} expiry deletions per project \
                 per hour (policy.expiry.maxDeletionsPerHour): {}",
                waiting.len(),
                waiting.join(", ")
            ),
        )
    }
}

/// The `ForgeConnected` condition of a Project with a forge: from how its last sync or report
/// went (`connected`, reason, message), or waiting for its first.
pub fn forge_condition(
    project: &Project,
    health: Option<(bool, &'static str, String)>,
) -> Option<Desired> {
    project.spec.forge.as_ref()?;
    Some(match health {
        Some((connected, reason, message)) => Desired::new(
            crate::api::conditions::FORGE_CONNECTED,
            connected,
            reason,
            message,
        ),
        None => Desired::new(
            crate::api::conditions::FORGE_CONNECTED,
            false,
            "Connecting",
            "the forge has not been listed yet",
        ),
    })
}

pub fn compute(
    project: &Project,
    outcome: &Outcome,
    branches: BranchCounts,
    quota: Option<&ResourceQuota>,
    now: Timestamp,
) -> ProjectStatus {
    let namespace = project.namespace_name();
    let condition = match outcome {
        Outcome::Ready => Desired::new(
            READY,
            true,
            "NamespaceReady",
            format!("namespace {namespace} is ready"),
        ),
        Outcome::Refused(refusal) => {
            Desired::new(READY, false, refusal.reason, refusal.message.clone())
        }
        Outcome::ChildrenRefused(refusals) => Desired::new(
            READY,
            false,
            refusals[0].reason.as_str(),
            refusals
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Outcome::DeletionBlocked(claims) => Desired::new(
            READY,
            false,
            "DeletionBlocked",
            format!(
                "the Project is being deleted, but namespace {namespace} holds volumes kept on purpose \
                 (retained or detached): {}; their data would go with the namespace, so it waits \
                 until they are deleted (kubectl delete pvc -n {namespace} {})",
                claims.join(", "),
                claims.join(" ")
            ),
        ),
        Outcome::Terminating => Desired::new(
            READY,
            false,
            "NamespaceTerminating",
            format!(
                "namespace {namespace} of an earlier Project with this name is still being deleted; waiting"
            ),
        ),
    };
    let previous = project
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = project.metadata.generation;
    ProjectStatus {
        observed_generation: generation,
        namespace: matches!(outcome, Outcome::Ready | Outcome::ChildrenRefused(_))
            .then_some(namespace),
        conditions: conditions::merge(previous, &kstatus(outcome, condition), generation, now),
        branches: Some(branches),
        quota: quota.and_then(|q| q.status.as_ref()).map(|status| {
            let strings = |map: Option<
                &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >| {
                map.into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect()
            };
            QuotaUsage {
                hard: strings(status.hard.as_ref()),
                used: strings(status.used.as_ref()),
            }
        }),
    }
}

/// When a Project is looked at again, by its outcome: a ready one rarely, a refused one slowly
/// (nothing changes until its spec or the world does; the recheck notices a conflicting object
/// that went away), one waiting for its namespace or its kept claims soon.
pub fn recheck(outcome: &Outcome) -> std::time::Duration {
    let seconds = match outcome {
        Outcome::Ready => 600,
        Outcome::Terminating => 2,
        Outcome::Refused(_) | Outcome::ChildrenRefused(_) => 300,
        Outcome::DeletionBlocked(_) => 10,
    };
    std::time::Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::project_from_yaml;

    #[test]
    fn branch_counts_and_quota_usage_alone_are_summaries() {
        let project = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        let now = Timestamp::now();
        let old = compute(&project, &Outcome::Ready, branch_counts(3, 1), None, now);
        let counted = compute(&project, &Outcome::Ready, branch_counts(3, 2), None, now);
        assert!(only_summaries_changed(&old, &counted));
        assert!(!only_summaries_changed(&old, &old), "nothing changed");
        let mut refused = counted.clone();
        refused.namespace = None;
        assert!(!only_summaries_changed(&old, &refused));
    }

    #[test]
    fn a_refused_project_says_why_and_claims_no_namespace() {
        let project =
            project_from_yaml("name: evil\nspec: {domain: e.com, namespace: kube-system}");
        let refusal = Refusal {
            reason: "NamespaceReserved",
            message: "namespace kube-system is reserved".into(),
        };
        let status = compute(
            &project,
            &Outcome::Refused(refusal),
            branch_counts(0, 0),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.namespace, None);
        assert_eq!(status.conditions[0].reason, "NamespaceReserved");
        assert_eq!(status.conditions[0].status, "False");
    }

    #[test]
    fn a_ready_project_reports_namespace_and_branches() {
        let project = project_from_yaml("name: shop\nspec: {domain: e.com}");
        let status = compute(
            &project,
            &Outcome::Ready,
            branch_counts(3, 2),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.namespace.as_deref(), Some("shop"));
        assert_eq!(status.branches.unwrap().summary, "2/3");
        assert!(conditions::is_true(&status.conditions, READY));
    }

    #[test]
    fn a_ready_project_is_looked_at_rarely_and_one_waiting_soon() {
        let ready = recheck(&Outcome::Ready);
        let blocked = recheck(&Outcome::DeletionBlocked(vec!["main-keep".into()]));
        let terminating = recheck(&Outcome::Terminating);
        assert!(
            terminating < blocked && blocked < ready,
            "{terminating:?} {blocked:?} {ready:?}"
        );
    }
}
