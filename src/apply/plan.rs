//! The applier's decisions, pure: what happens to each declared child (create, skip, apply,
//! refuse) and to each child no longer declared (prune, detach). The controller's `Applier`
//! carries them out; `oksa deploy --dry-run` prints them. One function for both, so the dry run
//! says what the controller would do.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde_json::Value;

use super::{drift, fingerprint};
use crate::compact::Labels;
use crate::labels;

/// The owner of a set of children.
#[derive(Clone, Debug)]
pub struct Owner {
    /// The controller reference every child carries.
    pub reference: OwnerReference,
    /// Labels every child of this owner carries. A child with these labels and no controller
    /// reference at all was the owner's before (a retained or detached volume, an object of an
    /// older Oksa) and is taken back; anything else without the reference is refused.
    pub labels: BTreeMap<String, String>,
    /// The namespace of its namespaced children.
    pub namespace: String,
}

/// Who a live object belongs to, as far as this owner is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Belonging {
    Ours,
    /// No controller reference, but the owner's labels: it was ours and is taken back.
    Adoptable,
    /// Someone else's: names who, when known.
    Foreign(String),
}

impl Owner {
    pub fn belonging(&self, meta: &ObjectMeta) -> Belonging {
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            Some(owner) if owner.uid == self.reference.uid => Belonging::Ours,
            Some(owner) => Belonging::Foreign(format!("{} {}", owner.kind, owner.name)),
            None => {
                let labels = meta.labels.as_ref();
                let carries =
                    |key: &String, value: &String| labels.and_then(|l| l.get(key)) == Some(value);
                if !self.labels.is_empty() && self.labels.iter().all(|(k, v)| carries(k, v)) {
                    Belonging::Adoptable
                } else {
                    Belonging::Foreign("nobody Oksa knows (it was not created by Oksa)".into())
                }
            }
        }
    }

    /// `belonging` of an object as JSON; metadata that cannot be read is no proof of anything.
    pub fn belonging_of_json(&self, live: &Value) -> Belonging {
        match serde_json::from_value::<ObjectMeta>(live["metadata"].clone()) {
            Ok(meta) => self.belonging(&meta),
            Err(_) => Belonging::Foreign("an unreadable owner".into()),
        }
    }

    /// Whether a namespaced object is among this owner's children as the prune sees them: in
    /// its namespace, with all its labels. Only those are ever pruned or detached (and only the
    /// ones that are `Ours` or adoptable, see `leftover`).
    pub fn scopes(&self, namespace: Option<&str>, object_labels: &Labels) -> bool {
        namespace == Some(self.namespace.as_str())
            && self
                .labels
                .iter()
                .all(|(key, value)| object_labels.get(key) == Some(value.as_str()))
    }

    /// The label selector of `scopes`, for a list from the API server.
    pub fn selector(&self) -> String {
        self.labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A declared child as the applier sends it: its JSON, stamped with its fingerprint.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub body: Value,
    pub hash: String,
    /// Declared without an owner reference (a retained claim): the owner's by its labels alone.
    pub unowned: bool,
}

impl Stamped {
    pub fn of<K: Serialize + kube::Resource>(declared: &K) -> serde_json::Result<Stamped> {
        let mut body = serde_json::to_value(declared)?;
        let hash = fingerprint::stamp(&mut body);
        Ok(Stamped {
            body,
            hash,
            unowned: declared.meta().owner_references.is_none(),
        })
    }
}

/// What happens to one declared child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing has its name: it is created.
    Create,
    /// The owner's, as last applied, and nobody changed a declared field: nothing is sent.
    Skip,
    /// Applied again, for this reason.
    Apply(Reason),
    /// Someone else's (named): never written over.
    Refuse(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The declaration is not the one last applied (a new spec, a new Oksa).
    Declared,
    /// Someone else changed these declared fields: they are put back.
    Drift(Vec<String>),
    /// The owner's by its labels, without the owner's reference: taken back.
    TakeBack,
}

/// Decides what happens to `declared`, given the live object of its name.
pub fn step(owner: &Owner, declared: &Stamped, live: Option<&Value>) -> Step {
    let Some(live) = live else {
        return Step::Create;
    };
    match owner.belonging_of_json(live) {
        Belonging::Foreign(whose) => Step::Refuse(whose),
        Belonging::Adoptable if !declared.unowned => Step::Apply(Reason::TakeBack),
        Belonging::Ours | Belonging::Adoptable => {
            if fingerprint::on(live) != Some(declared.hash.as_str()) {
                return Step::Apply(Reason::Declared);
            }
            let drifted = drift::drifted(&declared.body, live);
            if drifted.is_empty() {
                Step::Skip
            } else {
                Step::Apply(Reason::Drift(drifted))
            }
        }
    }
}

/// What happens to a child in the owner's scope that is no longer declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Deleted.
    Prune,
    /// A claim: kept with its data, detached from the owner (labelled `oksa.dev/detached`).
    Detach,
    /// A claim detached before: left as it is, and reported as kept.
    Detached,
}

/// Decides what happens to a live child of `kind` that is no longer declared; None when it is
/// not the owner's to touch. Claims are never deleted: data goes only by a person's hand.
pub fn leftover(owner: &Owner, kind: &str, meta: &ObjectMeta) -> Option<Leftover> {
    let belonging = owner.belonging(meta);
    if kind != "PersistentVolumeClaim" {
        return (belonging == Belonging::Ours).then_some(Leftover::Prune);
    }
    let detached = meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(labels::DETACHED));
    match belonging {
        Belonging::Ours => Some(Leftover::Detach),
        Belonging::Adoptable if detached => Some(Leftover::Detached),
        // A retained claim (no owner reference) whose volume left the spec.
        Belonging::Adoptable => Some(Leftover::Detach),
        Belonging::Foreign(_) => None,
    }
}

/// The owner of branch `main` of project `shop`, for tests.
#[cfg(test)]
pub fn test_owner() -> Owner {
    Owner {
        reference: OwnerReference {
            api_version: "oksa.dev/v1alpha1".into(),
            kind: "BranchRelease".into(),
            name: "main".into(),
            uid: "uid-main".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        labels: labels::release_labels("shop", "main"),
        namespace: "shop".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        test_owner()
    }

    fn meta(value: Value) -> ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    fn owned_by(uid: &str) -> Value {
        json!([{"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease", "name": "x",
            "uid": uid, "controller": true}])
    }

    #[test]
    fn only_the_controller_reference_of_this_owner_makes_a_child_ours() {
        let owner = owner();
        let ours = meta(json!({"ownerReferences": owned_by("uid-main")}));
        assert_eq!(owner.belonging(&ours), Belonging::Ours);
        let sibling = meta(json!({"ownerReferences": owned_by("uid-api"),
            "labels": labels::release_labels("shop", "main")}));
        assert_eq!(
            owner.belonging(&sibling),
            Belonging::Foreign("BranchRelease x".into())
        );
        let hand_made = meta(json!({"labels": {"app": "web"}}));
        assert!(matches!(owner.belonging(&hand_made), Belonging::Foreign(_)));
        let detached = meta(json!({"labels": labels::release_labels("shop", "main")}));
        assert_eq!(owner.belonging(&detached), Belonging::Adoptable);
    }

    /// A Deployment as declared, and as the API server would hold it after Oksa applied it.
    fn declared_and_applied(owner: &Owner) -> (Stamped, Value) {
        let declared = k8s_openapi::api::apps::v1::Deployment {
            metadata: ObjectMeta {
                name: Some("main-web".into()),
                namespace: Some("shop".into()),
                labels: Some(owner.labels.clone()),
                owner_references: Some(vec![owner.reference.clone()]),
                ..Default::default()
            },
            spec: serde_json::from_value(json!({"replicas": 2, "selector": {},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}))
            .unwrap(),
            ..Default::default()
        };
        let stamped = Stamped::of(&declared).unwrap();
        let mut live = stamped.body.clone();
        live["metadata"]["uid"] = json!("uid-deployment");
        live["spec"]["revisionHistoryLimit"] = json!(10);
        (stamped, live)
    }

    #[test]
    fn a_child_as_last_applied_is_skipped_and_any_other_is_applied_created_or_refused() {
        let owner = owner();
        let (declared, live) = declared_and_applied(&owner);
        assert_eq!(step(&owner, &declared, None), Step::Create);
        assert_eq!(step(&owner, &declared, Some(&live)), Step::Skip);

        // Someone scaled it by hand: the fingerprint still matches, the field does not.
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert_eq!(
            step(&owner, &declared, Some(&scaled)),
            Step::Apply(Reason::Drift(vec!["spec.replicas".into()]))
        );

        // A new declaration (another image) is applied whatever the live object holds.
        let mut older = live.clone();
        older["metadata"]["annotations"][fingerprint::ANNOTATION] = json!("an older hash");
        assert_eq!(
            step(&owner, &declared, Some(&older)),
            Step::Apply(Reason::Declared)
        );

        // The owner's labels without its reference: taken back, even when nothing else changed.
        let mut orphan = live.clone();
        orphan["metadata"]["ownerReferences"] = Value::Null;
        assert_eq!(
            step(&owner, &declared, Some(&orphan)),
            Step::Apply(Reason::TakeBack)
        );

        // Another owner's object of that name is never written over.
        let mut taken = live;
        taken["metadata"]["ownerReferences"] = owned_by("uid-other");
        assert_eq!(
            step(&owner, &declared, Some(&taken)),
            Step::Refuse("BranchRelease x".into())
        );
    }

    #[test]
    fn leftovers_are_pruned_only_when_ours_and_claims_are_never_pruned() {
        let owner = owner();
        let ours = meta(json!({"ownerReferences": owned_by("uid-main")}));
        let orphan = meta(json!({"labels": labels::release_labels("shop", "main")}));
        let mut detached_labels = labels::release_labels("shop", "main");
        detached_labels.insert(labels::DETACHED.into(), "true".into());
        let detached = meta(json!({"labels": detached_labels}));
        let foreign = meta(json!({"ownerReferences": owned_by("uid-other")}));

        assert_eq!(leftover(&owner, "Service", &ours), Some(Leftover::Prune));
        assert_eq!(leftover(&owner, "Service", &orphan), None);
        assert_eq!(leftover(&owner, "Service", &foreign), None);
        let claim = "PersistentVolumeClaim";
        assert_eq!(leftover(&owner, claim, &ours), Some(Leftover::Detach));
        assert_eq!(leftover(&owner, claim, &orphan), Some(Leftover::Detach));
        assert_eq!(leftover(&owner, claim, &detached), Some(Leftover::Detached));
        assert_eq!(leftover(&owner, claim, &foreign), None);
    }

    #[test]
    fn the_scope_is_the_owners_namespace_and_labels() {
        let owner = owner();
        let all = Labels::from_map(&owner.labels);
        assert!(owner.scopes(Some("shop"), &all));
        assert!(!owner.scopes(Some("other"), &all));
        let project_only = Labels::from_map(&labels::project_labels("shop"));
        assert!(!owner.scopes(Some("shop"), &project_only));
        assert!(owner.selector().contains("oksa.dev/release=main"));
    }
}
