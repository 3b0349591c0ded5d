//! Which object a per-object record (a failure count, a status write) belongs to.
//!
//! kube's erased `ObjectRef` would do, but it holds eight strings (the kind's group, version,
//! plural…) and these records are kept for every branch: one string is enough.

use std::fmt;

use kube::Resource;

/// The kind, namespace and name of an object, as `Kind/namespace/name`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(Box<str>);

impl ObjectKey {
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        let meta = object.meta();
        Self::named::<K>(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or(""),
        )
    }

    pub fn named<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Self {
        let kind = K::kind(&());
        ObjectKey(format!("{kind}/{}/{name}", namespace.unwrap_or("")).into_boxed_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BranchRelease, Project};

    #[test]
    fn kinds_and_namespaces_keep_objects_apart() {
        let project = ObjectKey::named::<Project>(None, "shop");
        let release = ObjectKey::named::<BranchRelease>(Some("shop"), "main");
        assert_ne!(project, ObjectKey::named::<BranchRelease>(None, "shop"));
        assert_ne!(
            release,
            ObjectKey::named::<BranchRelease>(Some("other"), "main")
        );
        assert_eq!(
            release,
            ObjectKey::named::<BranchRelease>(Some("shop"), "main")
        );
        assert_eq!(format!("{release:?}"), "BranchRelease/shop/main");
    }
}
