//! Writing children with server-side apply, but only when they differ from what is declared.
//!
//! Every reconcile builds the full desired state. Sending it all every time would be correct
//! (server-side apply of an unchanged object does not persist anything) but it still costs an API
//! request per child per reconcile. So before applying, the desired object is compared with the live
//! one from the watch cache: when every field Oksa declares already has the declared value, nothing
//! is sent. Fields Oksa does not declare (defaults, other managers' fields) are ignored, so
//! someone's `kubectl scale` is put back while an annotation added by someone else stays theirs.

use serde_json::Value;

use crate::quantity;

/// True when every field of `desired` is present in `live` with the same value.
///
/// Arrays must have the same length and match element by element. Strings that are both
/// quantities compare by value (`1Gi` == `1024Mi`), because the API server rewrites quantities to
/// their canonical form. An empty array or object in `desired` matches an absent field, because
/// the API server drops empty fields.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(live_value) => is_subset(value, live_value),
                None => is_empty(value),
            })
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::String(want), Value::String(have)) => {
            want == have || quantity::compare(want, have) == Some(std::cmp::Ordering::Equal)
        }
        (Value::Number(want), Value::String(have)) | (Value::String(have), Value::Number(want)) => {
            want.to_string() == *have
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
    fn defaults_added_by_the_server_do_not_count_as_a_change() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web"}]}}}});
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "web", "imagePullPolicy": "Always"}]}}},
            "status": {"readyReplicas": 2}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn someone_elses_edit_of_a_declared_field_is_a_change() {
        let desired = json!({"spec": {"replicas": 2}});
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 5}})));
        assert!(!is_subset(&desired, &json!({"spec": {}})));
    }

    #[test]
    fn lists_must_match_in_length_and_order() {
        let desired = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert!(!is_subset(&desired, &json!({"ports": [{"port": 80}]})));
        assert!(!is_subset(
            &desired,
            &json!({"ports": [{"port": 443}, {"port": 80}]})
        ));
        assert!(is_subset(
            &desired,
            &json!({"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}]})
        ));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(is_subset(
            &json!({"storage": "1024Mi"}),
            &json!({"storage": "1Gi"})
        ));
        assert!(is_subset(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"})));
        assert!(!is_subset(
            &json!({"storage": "2Gi"}),
            &json!({"storage": "1Gi"})
        ));
        assert!(!is_subset(
            &json!({"image": "nginx:1"}),
            &json!({"image": "nginx:2"})
        ));
    }

    #[test]
    fn empty_fields_match_absent_ones() {
        assert!(is_subset(
            &json!({"metadata": {"annotations": {}}, "env": []}),
            &json!({"metadata": {}})
        ));
    }
}
