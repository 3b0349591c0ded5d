//! Reference data, decided: which claim a branch's volume is cloned from, whether it can be now,
//! and what its status says of where its data came from. Pure; `claims` does the I/O.
//!
//! A claim is cloned once, when it is created (a PersistentVolumeClaim's `dataSource` counts only
//! then and can never change): a redeploy, a wake or a restart keep the data the branch has.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, TypedLocalObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{BranchRelease, Project, Volume, WhenMissing};
use crate::naming;
use crate::quantity::Quantity;

/// Where a volume's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its own: not reference data, the reference branch itself, or opted out.
    Own,
    /// A clone of this claim of `branch`.
    Clone { branch: String, claim: String },
}

/// The source of `volume` of `release`, by its Project's `referenceData` and its own override.
pub fn source(release: &BranchRelease, project: &Project, volume: &str) -> Source {
    let Some(reference) = &project.spec.reference_data else {
        return Source::Own;
    };
    let own = release.spec.reference_data.as_ref();
    if own.is_some_and(|r| r.disabled) || !reference.volumes.iter().any(|v| v == volume) {
        return Source::Own;
    }
    let branch = own
        .and_then(|r| r.branch.clone())
        .unwrap_or_else(|| reference.branch.clone());
    if branch == release.spec.branch {
        return Source::Own;
    }
    let claim = naming::volume_claim_name(&naming::release_name(&branch), volume);
    Source::Clone { branch, claim }
}

/// What a volume's claim is created as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Empty: it has no reference data.
    Empty,
    /// A clone of this claim.
    Clone(String),
    /// Not created yet: its source cannot be cloned now (why), and the project waits.
    Wait(String),
    /// Empty although it is reference data: its source cannot be cloned (why), and the project
    /// chose to start empty.
    EmptyInstead(String),
}

/// How a new claim for `volume` starts, given its source claim as it is now (None: absent).
pub fn start(
    volume: &Volume,
    source: &Source,
    when_missing: WhenMissing,
    source_claim: Option<&PersistentVolumeClaim>,
) -> Start {
    let Source::Clone { branch, claim } = source else {
        return Start::Empty;
    };
    let why = match source_claim {
        None => Some(format!(
            "claim {claim} of branch {branch} does not exist yet"
        )),
        Some(found) if found.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") => {
            Some(format!("claim {claim} of branch {branch} is not bound yet"))
        }
        Some(found) => {
            let capacity = found
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone());
            match (
                capacity.as_deref().and_then(Quantity::parse),
                Quantity::parse(&volume.size),
            ) {
                (Some(has), Some(wanted)) if wanted < has => Some(format!(
                    "claim {claim} of branch {branch} holds {}, more than this volume's {}: give \
                     it at least that size",
                    capacity.unwrap_or_default(),
                    volume.size
                )),
                _ => None,
            }
        }
    };
    match (why, when_missing) {
        (None, _) => Start::Clone(claim.clone()),
        (Some(why), WhenMissing::Wait) => Start::Wait(format!(
            "volume {} waits for its reference data: {why}",
            volume.name
        )),
        (Some(why), WhenMissing::Empty) => {
            Start::EmptyInstead(format!("volume {} started empty: {why}", volume.name))
        }
    }
}

/// The `dataSource` of a clone of `claim`.
pub fn data_source(claim: &str) -> TypedLocalObjectReference {
    TypedLocalObjectReference {
        api_group: None,
        kind: "PersistentVolumeClaim".into(),
        name: claim.into(),
    }
}

/// Where a volume's data came from, as its status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Cloned from this claim, when its claim was created.
    Cloned { from: String, at: Option<Time> },
    /// Not created yet: it waits for its source (why).
    Waiting(String),
    /// Reference data that started empty (why).
    StartedEmpty(String),
}

/// The origin of a live claim's data; None for a volume that has no reference data.
pub fn origin(volume: &str, source: &Source, live: &PersistentVolumeClaim) -> Option<Origin> {
    let cloned = live
        .spec
        .as_ref()
        .and_then(|s| s.data_source.as_ref())
        .filter(|d| d.kind == "PersistentVolumeClaim");
    match (cloned, source) {
        (Some(from), _) => Some(Origin::Cloned {
            from: from.name.clone(),
            at: live.metadata.creation_timestamp.clone(),
        }),
        (None, Source::Clone { claim, .. }) => Some(Origin::StartedEmpty(format!(
            "volume {volume} started empty, without the data of {claim}; delete its claim (or run \
             oksa data reset) to clone it again"
        ))),
        (None, Source::Own) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};
    use serde_json::json;

    fn project() -> Project {
        project_from_yaml(
            "name: shop\nspec: {domain: shop.test, referenceData: {branch: main, volumes: [db]}}",
        )
    }

    fn release(branch: &str, reference: &str) -> BranchRelease {
        release_from_yaml(&format!(
            "name: x\nspec: {{project: shop, branch: {branch}, components: [], {reference}}}"
        ))
    }

    fn volume(size: &str) -> Volume {
        serde_json::from_value(json!({"name": "db", "size": size})).unwrap()
    }

    fn claim(phase: &str, capacity: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "main-db"},
            "status": {"phase": phase, "capacity": {"storage": capacity}}}))
        .unwrap()
    }

    #[test]
    fn a_branchs_reference_volume_clones_the_reference_branchs_claim_of_its_name() {
        let main_db = Source::Clone {
            branch: "main".into(),
            claim: "main-db".into(),
        };
        assert_eq!(source(&release("feature/a", ""), &project(), "db"), main_db);
        assert_eq!(
            source(&release("feature/a", ""), &project(), "cache"),
            Source::Own
        );
        // The reference branch itself, and a branch that opts out, keep their own data.
        assert_eq!(source(&release("main", ""), &project(), "db"), Source::Own);
        let opted_out = release("feature/a", "referenceData: {disabled: true}");
        assert_eq!(source(&opted_out, &project(), "db"), Source::Own);
        let staging = release("feature/a", "referenceData: {branch: staging}");
        assert_eq!(
            source(&staging, &project(), "db"),
            Source::Clone {
                branch: "staging".into(),
                claim: "staging-db".into()
            }
        );
        let plain = project_from_yaml("name: shop\nspec: {domain: shop.test}");
        assert_eq!(source(&release("feature/a", ""), &plain, "db"), Source::Own);
    }

    #[test]
    fn a_clone_waits_or_starts_empty_when_its_source_cannot_be_cloned_and_says_why() {
        let source = Source::Clone {
            branch: "main".into(),
            claim: "main-db".into(),
        };
        let bound = claim("Bound", "1Gi");
        assert_eq!(
            start(&volume("1Gi"), &source, WhenMissing::Wait, Some(&bound)),
            Start::Clone("main-db".into())
        );
        assert_eq!(
            start(&volume("1Gi"), &Source::Own, WhenMissing::Wait, None),
            Start::Empty
        );
        let Start::Wait(why) = start(&volume("1Gi"), &source, WhenMissing::Wait, None) else {
            panic!("waits");
        };
        assert!(
            why.contains("main-db of branch main does not exist yet"),
            "{why}"
        );
        let pending = claim("Pending", "1Gi");
        let Start::EmptyInstead(why) =
            start(&volume("1Gi"), &source, WhenMissing::Empty, Some(&pending))
        else {
            panic!("starts empty");
        };
        assert!(why.starts_with("volume db started empty: "), "{why}");
        let bigger = claim("Bound", "5Gi");
        let Start::Wait(why) = start(&volume("1Gi"), &source, WhenMissing::Wait, Some(&bigger))
        else {
            panic!("waits for a size that fits");
        };
        assert!(
            why.contains("holds 5Gi, more than this volume's 1Gi"),
            "{why}"
        );
    }

    #[test]
    fn status_names_the_source_of_a_clone_and_a_reference_volume_that_started_empty() {
        let source = Source::Clone {
            branch: "main".into(),
            claim: "main-db".into(),
        };
        let cloned: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "feature-db", "creationTimestamp": "2026-12-06T10:00:00Z"},
            "spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "main-db"}}}))
        .unwrap();
        assert!(matches!(
            origin("db", &source, &cloned),
            Some(Origin::Cloned { from, at: Some(_) }) if from == "main-db"
        ));
        let empty: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "feature-db"}, "spec": {}}))
                .unwrap();
        assert!(matches!(
            origin("db", &source, &empty),
            Some(Origin::StartedEmpty(_))
        ));
        assert_eq!(origin("db", &Source::Own, &empty), None);
    }
}
