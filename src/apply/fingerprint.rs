//! What Oksa last applied to a child, kept on the child itself.
//!
//! Every applied object carries an annotation with a hash of the object as Oksa declared it. When
//! the declaration changes in any way (a new value, a field that is no longer declared), the hash
//! changes, and the object is applied: server-side apply then removes the fields Oksa stopped
//! declaring. A comparison of the declared fields with the live object alone cannot see a removal,
//! and it is the live object, not Oksa's memory, that keeps the hash, so it survives restarts.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The annotation that holds the hash of the declared object.
pub const ANNOTATION: &str = "oksa.dev/applied";

/// The hash of a declared object (without the annotation itself).
pub fn of(declared: &Value) -> String {
    let digest = Sha256::digest(declared.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Stamps `declared` with its own hash, and returns the hash.
pub fn stamp(declared: &mut Value) -> String {
    if let Some(annotations) = declared["metadata"]
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(ANNOTATION);
    }
    let hash = of(declared);
    let metadata = declared
        .as_object_mut()
        .expect("a Kubernetes object is a JSON object")
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let annotations = metadata
        .as_object_mut()
        .expect("metadata is an object")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(ANNOTATION.into(), Value::String(hash.clone()));
    }
    hash
}

/// The hash a live object carries, if any.
pub fn on(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][ANNOTATION].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_change_of_the_declaration_changes_the_hash_and_removals_too() {
        let with_env =
            json!({"metadata": {"name": "a"}, "spec": {"env": [{"name": "A", "value": "1"}]}});
        let without = json!({"metadata": {"name": "a"}, "spec": {}});
        let other_value =
            json!({"metadata": {"name": "a"}, "spec": {"env": [{"name": "A", "value": "1.0"}]}});
        assert_ne!(of(&with_env), of(&without));
        assert_ne!(of(&with_env), of(&other_value));
        assert_eq!(of(&with_env), of(&with_env.clone()));
    }

    #[test]
    fn stamping_is_stable_and_readable_back() {
        let mut object = json!({"metadata": {"name": "a", "annotations": {"x": "y"}}});
        let hash = stamp(&mut object);
        assert_eq!(on(&object), Some(hash.as_str()));
        assert_eq!(object["metadata"]["annotations"]["x"], "y");
        let mut again = object.clone();
        assert_eq!(
            stamp(&mut again),
            hash,
            "the annotation is not part of the hash"
        );
        let mut bare = json!({"metadata": {"name": "a"}});
        stamp(&mut bare);
        assert!(on(&bare).is_some());
    }
}
