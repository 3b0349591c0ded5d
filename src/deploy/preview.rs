//! What a deploy would change in the cluster, object by object and field by field. Pure: the
//! dry run (`dry_run.rs`) gathers the declarations and the live objects, this decides.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::apply::fingerprint;
use crate::controller::branch_release::build::ReleaseObjects;

/// One object a BranchRelease declares, as JSON (the form the applier hashes and sends).
#[derive(Debug, Clone)]
pub struct Declared {
    pub kind: &'static str,
    pub name: String,
    pub body: Value,
}

/// A live child: what the cluster has under a name.
#[derive(Debug, Clone)]
pub struct Live {
    pub kind: String,
    pub name: String,
    /// The hash of what Oksa last applied to it (`fingerprint::ANNOTATION`), if any.
    pub applied: Option<String>,
    /// False when the object is not this BranchRelease's (another one's, or made by hand).
    pub ours: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    /// The fields that change (paths like `spec.template.spec.containers[web].image`); empty
    /// when the previous declaration is not known.
    Change(Vec<String>),
    Unchanged,
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
/// declared. `previous` is the rendering of the spec the cluster has now (None for a new
/// BranchRelease); `refused` names claims whose change Oksa refuses, with the reason.
pub fn changes(
    previous: Option<&[Declared]>,
    next: &[Declared],
    live: &[Live],
    refused: &[(String, String)],
) -> Vec<Change> {
    let find_live = |kind: &str, name: &str| live.iter().find(|l| l.kind == kind && l.name == name);
    let mut changes: Vec<Change> = next
        .iter()
        .map(|declared| {
            let action = if let Some((_, why)) = refused.iter().find(|(name, _)| {
                declared.kind == "PersistentVolumeClaim" && *name == declared.name
            }) {
                Action::Refused(why.clone())
            } else {
                match find_live(declared.kind, &declared.name) {
                    None => Action::Create,
                    Some(live) if !live.ours => Action::Taken,
                    Some(live) => {
                        let mut body = declared.body.clone();
                        let hash = fingerprint::stamp(&mut body);
                        if live.applied.as_deref() == Some(hash.as_str()) {
                            Action::Unchanged
                        } else {
                            let before = previous.and_then(|p| {
                                p.iter()
                                    .find(|o| o.kind == declared.kind && o.name == declared.name)
                            });
                            Action::Change(
                                before
                                    .map(|b| differing_fields(&b.body, &declared.body))
                                    .unwrap_or_default(),
                            )
                        }
                    }
                }
            };
            Change {
                kind: declared.kind.to_string(),
                name: declared.name.clone(),
                action,
            }
        })
        .collect();
    for child in live.iter().filter(|l| l.ours) {
        let declared = next
            .iter()
            .any(|d| d.kind == child.kind && d.name == child.name);
        if !declared {
            changes.push(Change {
                kind: child.kind.clone(),
                name: child.name.clone(),
                action: if child.kind == "PersistentVolumeClaim" {
                    Action::Detach
                } else {
                    Action::Prune
                },
            });
        }
    }
    changes
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
        Action::Create => "create".to_string(),
        Action::Change(fields) if fields.is_empty() => "change".to_string(),
        Action::Change(fields) => format!("change: {}", fields.join(", ")),
        Action::Unchanged => "unchanged".to_string(),
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

    fn deployment(image: &str, env: Value) -> Declared {
        Declared {
            kind: "Deployment",
            name: "main-web".into(),
            body: json!({"metadata": {"name": "main-web"}, "spec": {"template": {"spec": {
                "containers": [{"name": "web", "image": image, "env": env}]}}}}),
        }
    }

    fn live(declared: &Declared, ours: bool) -> Live {
        let mut body = declared.body.clone();
        Live {
            kind: declared.kind.into(),
            name: declared.name.clone(),
            applied: Some(fingerprint::stamp(&mut body)),
            ours,
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
        let service = Declared {
            kind: "Service",
            name: "main-web".into(),
            body: json!({"metadata": {"name": "main-web"}, "spec": {"ports": [{"port": 80}]}}),
        };
        let claim = Declared {
            kind: "PersistentVolumeClaim",
            name: "main-data".into(),
            body: json!({"metadata": {"name": "main-data"}}),
        };
        let gone = Live {
            kind: "Service".into(),
            name: "main-api".into(),
            applied: None,
            ours: true,
        };
        let old_claim = Live {
            kind: "PersistentVolumeClaim".into(),
            name: "main-cache".into(),
            applied: None,
            ours: true,
        };
        let changes = changes(
            Some(&[old.clone(), service.clone()]),
            &[new, service.clone(), claim],
            &[live(&old, true), live(&service, true), gone, old_claim],
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
        let created = changes(None, std::slice::from_ref(&web), &[], &[]);
        assert_eq!(created[0].action, Action::Create);
        assert!(!refused(&created));
        let taken = changes(None, std::slice::from_ref(&web), &[live(&web, false)], &[]);
        assert_eq!(taken[0].action, Action::Taken);
        assert!(refused(&taken));
    }
}
