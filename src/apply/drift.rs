//! Has someone changed a field Oksa declares? Compares the declared object with the live one.
//!
//! Only drift is looked for here: whether Oksa's own declaration changed is known from the
//! fingerprint (see `fingerprint`), which also sees fields Oksa stopped declaring. So fields the
//! live object has and the declaration does not (defaults, other managers' fields) are ignored.

use serde_json::Value;

use crate::quantity;

/// Keys whose value is a map of resource quantities (`requests: {cpu: 500m}`,
/// `hard: {requests.storage: 10Gi}`). The API server rewrites quantities to their canonical form
/// (`0.5` → `500m`, `1024Mi` → `1Gi`), so inside these maps strings compare by value; everywhere
/// else a string is a string (`1.1` and `1.10` are different environment values).
const QUANTITY_MAPS: &[&str] = &[
    "requests",
    "limits",
    "hard",
    "capacity",
    "default",
    "defaultRequest",
    "max",
    "min",
    "maxLimitRequestRatio",
];

/// The paths of the declared fields whose live value differs (`spec.replicas`,
/// `spec.template.spec.containers[web].image`): what someone else changed; none when every
/// declared field is live with the same value. Arrays must have the same length (a list that
/// changed length is named as a whole) and match element by element. An empty array or object in
/// `declared` matches an absent field, because the API server drops empty fields.
pub fn drifted(declared: &Value, live: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    walk(declared, live, false, String::new(), &mut paths);
    paths
}

fn walk(declared: &Value, live: &Value, quantities: bool, path: String, found: &mut Vec<String>) {
    match (declared, live) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                // The values of a quantity map are quantities.
                let quantities = quantities || QUANTITY_MAPS.contains(&key.as_str());
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match have.get(key) {
                    Some(live_value) => walk(value, live_value, quantities, path, found),
                    None if is_empty(value) => {}
                    None => found.push(path),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                let item = match w.get("name").and_then(Value::as_str) {
                    Some(name) => format!("{path}[{name}]"),
                    None => format!("{path}[{i}]"),
                };
                walk(w, h, false, item, found);
            }
        }
        (want, have) if scalar_matches(want, have, quantities) => {}
        _ => found.push(path),
    }
}

fn scalar_matches(declared: &Value, live: &Value, quantities: bool) -> bool {
    match (declared, live) {
        (Value::String(want), Value::String(have)) if quantities => {
            want == have || quantity::compare(want, have) == Some(std::cmp::Ordering::Equal)
        }
        (Value::Number(want), Value::String(have)) if quantities => {
            quantity::compare(&want.to_string(), have) == Some(std::cmp::Ordering::Equal)
        }
        (Value::Null, _) => true,
        (want, have) => want == have || (is_empty(want) && have.is_null()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(declared: &Value, live: &Value) -> bool {
        drifted(declared, live).is_empty()
    }

    #[test]
    fn defaults_added_by_the_server_are_not_drift() {
        let declared = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web"}]}}}});
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "web", "imagePullPolicy": "Always"}]}}},
            "status": {"readyReplicas": 2}});
        assert!(holds(&declared, &live));
    }

    #[test]
    fn someone_elses_edit_of_a_declared_field_is_drift() {
        let declared = json!({"spec": {"replicas": 2}});
        assert!(!holds(&declared, &json!({"spec": {"replicas": 5}})));
        assert!(!holds(&declared, &json!({"spec": {}})));
    }

    #[test]
    fn lists_must_match_in_length_and_order() {
        let declared = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert!(!holds(&declared, &json!({"ports": [{"port": 80}]})));
        assert!(!holds(
            &declared,
            &json!({"ports": [{"port": 443}, {"port": 80}]})
        ));
        assert!(holds(
            &declared,
            &json!({"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}]})
        ));
    }

    #[test]
    fn quantities_compare_by_value_only_where_the_field_is_a_quantity() {
        let resources = |cpu: &str| json!({"resources": {"requests": {"cpu": cpu}}});
        assert!(holds(&resources("0.5"), &resources("500m")));
        assert!(holds(
            &json!({"hard": {"requests.storage": "1024Mi"}}),
            &json!({"hard": {"requests.storage": "1Gi"}})
        ));
        assert!(!holds(&resources("2"), &resources("1")));
        // Environment values, images, annotations are text, even when they look like numbers.
        let env = |value: &str| json!({"env": [{"name": "VERSION", "value": value}]});
        assert!(!holds(&env("1.10"), &env("1.1")));
        assert!(!holds(&env("08"), &env("8")));
        assert!(!holds(
            &json!({"image": "nginx:1"}),
            &json!({"image": "nginx:2"})
        ));
    }

    #[test]
    fn drift_is_named_by_the_paths_someone_changed() {
        let declared = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        let live = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2", "ports": []}]}}}});
        assert_eq!(
            drifted(&declared, &live),
            [
                "spec.replicas",
                "spec.template.spec.containers[web].image",
                "spec.template.spec.containers[web].ports",
            ]
        );
        assert!(drifted(&declared, &declared).is_empty());
    }

    #[test]
    fn empty_fields_match_absent_ones() {
        assert!(holds(
            &json!({"metadata": {"annotations": {}}, "env": []}),
            &json!({"metadata": {}})
        ));
    }
}
