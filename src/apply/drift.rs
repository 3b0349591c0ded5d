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

/// True when every field of `declared` is present in `live` with the same value.
///
/// Arrays must have the same length and match element by element. An empty array or object in
/// `declared` matches an absent field, because the API server drops empty fields.
pub fn holds(declared: &Value, live: &Value) -> bool {
    matches(declared, live, false)
}

fn matches(declared: &Value, live: &Value, quantities: bool) -> bool {
    match (declared, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            // The values of a quantity map are quantities.
            let quantities = quantities || QUANTITY_MAPS.contains(&key.as_str());
            match have.get(key) {
                Some(live_value) => matches(value, live_value, quantities),
                None => is_empty(value),
            }
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| matches(w, h, false))
        }
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
    fn empty_fields_match_absent_ones() {
        assert!(holds(
            &json!({"metadata": {"annotations": {}}, "env": []}),
            &json!({"metadata": {}})
        ));
    }
}
