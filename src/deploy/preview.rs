//! What a deploy would change in the cluster, object by object and field by field. Pure: the
//! dry run (`dry_run.rs`) gathers the declarations and the live objects; what happens to each is
//! the applier's own `plan`, so the dry run says what the controller would do.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::api::JobWhen;
use crate::apply::plan::{self, Leftover, Owner, Reason, Stamped, Step};
use crate::model::branch_release::build::{Release, ReleaseObjects};
use crate::model::branch_release::jobs;

/// One object a BranchRelease declares, as JSON (the form the applier hashes and sends).
#[derive(Debug, Clone)]
pub struct Declared {
    pub kind: &'static str,
    pub name: String,
    pub body: Value,
    /// Declared without an owner reference (a retained claim).
    pub unowned: bool,
}

/// A live child: what the cluster has under a name, as JSON.
#[derive(Debug, Clone)]
pub struct Live {
    pub kind: String,
    pub name: String,
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    /// The fields that change (paths like `spec.template.spec.containers[web].image`); empty
    /// when the previous declaration is not known.
    Change(Vec<String>),
    Unchanged,
    /// Someone else changed these declared fields: they are put back.
    PutBack(Vec<String>),
    /// The owner's by its labels, without its owner reference: taken back.
    TakeBack,
    /// No longer declared: deleted (claims are never deleted: they are detached and kept).
    Prune,
    /// A claim no longer declared: kept, detached from the branch.
    Detach,
    /// The object exists and is not this BranchRelease's: the deploy would be refused for it.
    Taken,
    /// Refused by Oksa's own rules (a volume change Kubernetes cannot make); the message says why.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: String,
    pub name: String,
    pub action: Action,
}

/// The Jobs a deploy of `release` runs after its rollout (`AfterRollout`), as declared. The
/// `AfterClone` ones depend on the clone a new volume will get, which no dry run can know.
pub fn rollout_jobs(release: &Release) -> Vec<Declared> {
    let run = jobs::deploy_key(release.branch_release);
    release
        .branch_release
        .spec
        .jobs
        .iter()
        .filter(|job| job.when == JobWhen::AfterRollout)
        .map(|job| {
            let rendered = jobs::render(release, job, &run);
            Declared {
                kind: "Job",
                name: rendered.metadata.name.clone().unwrap_or_default(),
                body: serde_json::to_value(&rendered).unwrap_or(Value::Null),
                unowned: false,
            }
        })
        .collect()
}

/// The objects of a rendering, in the order they are shown.
pub fn declared(objects: &ReleaseObjects) -> Vec<Declared> {
    fn each<K: Serialize + kube::Resource<DynamicType = ()>>(
        objects: &[K],
        kind: &'static str,
    ) -> Vec<Declared> {
        objects
            .iter()
            .map(|object| Declared {
                kind,
                name: object.meta().name.clone().unwrap_or_default(),
                body: serde_json::to_value(object).unwrap_or(Value::Null),
                unowned: object.meta().owner_references.is_none(),
            })
            .collect()
    }
    let mut all = each(&objects.deployments, "Deployment");
    all.extend(each(&objects.autoscalers, "HorizontalPodAutoscaler"));
    all.extend(each(&objects.services, "Service"));
    all.extend(each(objects.ingress.as_slice(), "Ingress"));
    all.extend(each(objects.http_route.as_slice(), "HTTPRoute"));
    all.extend(each(&objects.claims, "PersistentVolumeClaim"));
    all
}

/// Decides the action for every declared object and every live child that is no longer
/// declared, by the applier's `plan`. `previous` is the rendering of the spec the cluster has now
/// (None for a new BranchRelease), to name the fields a new declaration changes; `refused` names
/// claims whose change Oksa refuses, with the reason.
pub fn changes(
    owner: &Owner,
    previous: Option<&[Declared]>,
    next: &[Declared],
    live: &[Live],
    refused: &[(String, String)],
) -> Vec<Change> {
    let find_live = |kind: &str, name: &str| live.iter().find(|l| l.kind == kind && l.name == name);
    let mut changes: Vec<Change> = next
        .iter()
        .map(|declared| {
            let refusal = refused.iter().find(|(name, _)| {
                declared.kind == "PersistentVolumeClaim" && *name == declared.name
            });
            let action = match refusal {
                Some((_, why)) => Action::Refused(why.clone()),
                None => {
                    let live = find_live(declared.kind, &declared.name).map(|l| &l.object);
                    let before = previous.and_then(|p| {
                        p.iter()
                            .find(|o| o.kind == declared.kind && o.name == declared.name)
                    });
                    action(owner, declared, before, live)
                }
            };
            Change {
                kind: declared.kind.to_string(),
                name: declared.name.clone(),
                action,
            }
        })
        .collect();
    for child in live {
        let declared = next
            .iter()
            .any(|d| d.kind == child.kind && d.name == child.name);
        let meta = serde_json::from_value(child.object["metadata"].clone()).unwrap_or_default();
        let action = match plan::leftover(owner, &child.kind, &meta) {
            _ if declared => continue,
            Some(Leftover::Prune) => Action::Prune,
            Some(Leftover::Detach) => Action::Detach,
            Some(Leftover::Detached) | None => continue,
        };
        changes.push(Change {
            kind: child.kind.clone(),
            name: child.name.clone(),
            action,
        });
    }
    changes
}

/// The plan's step for one declared object, as the dry run shows it.
fn action(
    owner: &Owner,
    declared: &Declared,
    before: Option<&Declared>,
    live: Option<&Value>,
) -> Action {
    let mut body = declared.body.clone();
    let hash = crate::apply::fingerprint::stamp(&mut body);
    let stamped = Stamped {
        body,
        hash,
        unowned: declared.unowned,
    };
    match plan::step(owner, &stamped, live) {
        Step::Create => Action::Create,
        Step::Skip => Action::Unchanged,
        Step::Refuse(_) => Action::Taken,
        Step::Apply(Reason::TakeBack) => Action::TakeBack,
        Step::Apply(Reason::Drift(fields)) => Action::PutBack(fields),
        Step::Apply(Reason::Declared) => Action::Change(
            before
                .map(|b| differing_fields(&b.body, &declared.body))
                .unwrap_or_default(),
        ),
    }
}

/// The paths of the fields that differ between two declarations, removals included. List items
/// with a `name` are matched by name (`containers[web]`), others by position.
pub fn differing_fields(before: &Value, after: &Value) -> Vec<String> {
    let mut paths = BTreeSet::new();
    walk(before, after, String::new(), &mut paths);
    paths.into_iter().collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(before: &Value, after: &Value, path: String, paths: &mut BTreeSet<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for key in keys {
                walk(
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    join(&path, key),
                    paths,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) if named(b) && named(a) => {
            let names: BTreeSet<&str> = b.iter().chain(a).filter_map(item_name).collect();
            for name in names {
                let pick =
                    |list: &Vec<Value>| list.iter().find(|v| item_name(v) == Some(name)).cloned();
                walk(
                    &pick(b).unwrap_or(Value::Null),
                    &pick(a).unwrap_or(Value::Null),
                    format!("{path}[{name}]"),
                    paths,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for i in 0..b.len().max(a.len()) {
                walk(
                    b.get(i).unwrap_or(&Value::Null),
                    a.get(i).unwrap_or(&Value::Null),
                    format!("{path}[{i}]"),
                    paths,
                );
            }
        }
        (b, a) if b != a => {
            paths.insert(path);
        }
        _ => {}
    }
}

fn item_name(value: &Value) -> Option<&str> {
    value.get("name").and_then(Value::as_str)
}

fn named(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|v| item_name(v).is_some())
}

/// One line per change, for the terminal.
pub fn describe(change: &Change) -> String {
    let what = match &change.action {
        Action::Create if change.kind == "Job" => "run (once the components are ready)".into(),
        Action::Unchanged if change.kind == "Job" => "unchanged (ran for this spec already)".into(),
        Action::Create => "create".to_string(),
        Action::Change(fields) if fields.is_empty() => "change".to_string(),
        Action::Change(fields) => format!("change: {}", fields.join(", ")),
        Action::Unchanged => "unchanged".to_string(),
        Action::PutBack(fields) => {
            format!("put back: {} (changed outside Oksa)", fields.join(", "))
        }
        Action::TakeBack => "take back (it lost its owner reference)".to_string(),
        Action::Prune => "delete (no longer declared)".to_string(),
        Action::Detach => "detach (no longer declared; the claim and its data are kept)".into(),
        Action::Taken => "refused: the name is taken by an object Oksa did not create for this \
                          BranchRelease"
            .into(),
        Action::Refused(why) => format!("refused: {why}"),
    };
    format!("{:<22} {:<40} {what}", change.kind, change.name)
}

/// Whether the deploy would be refused for some object.
pub fn refused(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| matches!(c.action, Action::Refused(_) | Action::Taken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        crate::apply::plan::test_owner()
    }

    fn declared(kind: &'static str, name: &str, spec: Value) -> Declared {
        Declared {
            kind,
            name: name.into(),
            body: json!({"metadata": {"name": name,
                "ownerReferences": [serde_json::to_value(owner().reference).unwrap()]},
                "spec": spec}),
            unowned: false,
        }
    }

    fn deployment(image: &str, env: Value) -> Declared {
        declared(
            "Deployment",
            "main-web",
            json!({"template": {"spec": {"containers": [{"name": "web", "image": image, "env": env}]}}}),
        )
    }

    /// The object as the cluster holds it once Oksa applied `declared`; `owner_uid` None: made
    /// by hand, with no owner.
    fn live(declared: &Declared, owner_uid: Option<&str>) -> Live {
        let mut object = declared.body.clone();
        crate::apply::fingerprint::stamp(&mut object);
        match owner_uid {
            // As declared: the owner's reference.
            Some("uid-main") => {}
            Some(uid) => {
                object["metadata"]["ownerReferences"] = json!([{"apiVersion": "oksa.dev/v1alpha1",
                    "kind": "BranchRelease", "name": "x", "uid": uid, "controller": true}])
            }
            None => object["metadata"]["ownerReferences"] = Value::Null,
        }
        Live {
            kind: declared.kind.into(),
            name: declared.name.clone(),
            object,
        }
    }

    #[test]
    fn fields_are_named_by_path_with_list_items_by_name_and_removals_included() {
        let before = deployment("nginx:1", json!([{"name": "A", "value": "1"}]));
        let after = deployment("nginx:2", json!([]));
        assert_eq!(
            differing_fields(&before.body, &after.body),
            vec![
                "spec.template.spec.containers[web].env[0]",
                "spec.template.spec.containers[web].image",
            ]
        );
        assert!(differing_fields(&before.body, &before.body).is_empty());
    }

    #[test]
    fn each_object_is_created_changed_unchanged_pruned_or_refused() {
        let old = deployment("nginx:1", json!([]));
        let new = deployment("nginx:2", json!([]));
        let service = declared("Service", "main-web", json!({"ports": [{"port": 80}]}));
        let claim = declared("PersistentVolumeClaim", "main-data", json!({}));
        let gone = live(
            &declared("Service", "main-api", json!({})),
            Some("uid-main"),
        );
        let old_claim = live(
            &declared("PersistentVolumeClaim", "main-cache", json!({})),
            Some("uid-main"),
        );
        let changes = changes(
            &owner(),
            Some(&[old.clone(), service.clone()]),
            &[new, service.clone(), claim],
            &[
                live(&old, Some("uid-main")),
                live(&service, Some("uid-main")),
                gone,
                old_claim,
            ],
            &[("main-data".into(), "shrinking was refused".into())],
        );
        let actions: Vec<(&str, &Action)> = changes
            .iter()
            .map(|c| (c.name.as_str(), &c.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                (
                    "main-web",
                    &Action::Change(vec!["spec.template.spec.containers[web].image".into()])
                ),
                ("main-web", &Action::Unchanged),
                (
                    "main-data",
                    &Action::Refused("shrinking was refused".into())
                ),
                ("main-api", &Action::Prune),
                ("main-cache", &Action::Detach),
            ]
        );
        assert!(refused(&changes));
    }

    #[test]
    fn a_new_object_is_created_and_a_foreign_one_is_refused() {
        let web = deployment("nginx:1", json!([]));
        let created = changes(&owner(), None, std::slice::from_ref(&web), &[], &[]);
        assert_eq!(created[0].action, Action::Create);
        assert!(!refused(&created));
        let foreign = [live(&web, Some("uid-other"))];
        let taken = changes(&owner(), None, std::slice::from_ref(&web), &foreign, &[]);
        assert_eq!(taken[0].action, Action::Taken);
        assert!(refused(&taken));
        // Made by hand, with none of the owner's labels: someone else's too.
        let hand_made = [live(&web, None)];
        let taken = changes(&owner(), None, std::slice::from_ref(&web), &hand_made, &[]);
        assert_eq!(taken[0].action, Action::Taken);
    }

    #[test]
    fn a_hand_edit_of_a_declared_field_shows_as_put_back_as_the_controller_would() {
        let web = deployment("nginx:1", json!([]));
        let mut edited = live(&web, Some("uid-main"));
        edited.object["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:evil");
        let changes = changes(
            &owner(),
            Some(std::slice::from_ref(&web)),
            std::slice::from_ref(&web),
            &[edited],
            &[],
        );
        assert_eq!(
            changes[0].action,
            Action::PutBack(vec!["spec.template.spec.containers[web].image".into()])
        );
        assert!(describe(&changes[0]).ends_with(
            "put back: spec.template.spec.containers[web].image (changed outside Oksa)"
        ));
    }

    #[test]
    fn an_object_of_another_owner_is_never_pruned_by_this_one() {
        let sibling = live(&declared("Service", "main-api", json!({})), Some("uid-api"));
        assert!(changes(&owner(), None, &[], &[sibling], &[]).is_empty());
    }
}
