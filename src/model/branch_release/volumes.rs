//! What to do with a volume's claim. Pure. The rule users rely on: a volume is never deleted or
//! recreated by an update; growing is applied in place; anything Kubernetes forbids is refused
//! here, before it is tried, and the running environment is left alone.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use crate::api::Volume;
use crate::quantity::Quantity;

#[derive(Debug, PartialEq, Eq)]
pub enum ClaimPlan {
    /// No claim yet: create it.
    Create,
    /// Apply the desired claim (a no-op when unchanged; a resize when it grew).
    Apply,
    /// Leave the live claim as it is; the message says what was refused and why.
    Refuse(String),
}

fn requested_size(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// Decides how to bring `live` to `desired`, adjusting `desired` where the live claim's value is
/// the one to keep (a storage class that came from a default).
pub fn plan(
    volume: &Volume,
    desired: &mut PersistentVolumeClaim,
    live: Option<&PersistentVolumeClaim>,
) -> ClaimPlan {
    let Some(live) = live else {
        return ClaimPlan::Create;
    };
    let name = &volume.name;
    let live_spec = live.spec.clone().unwrap_or_default();
    let desired_spec = desired.spec.get_or_insert_default();
    // What a claim was created from (reference data) never changes, and cannot: it is declared
    // as it is.
    desired_spec.data_source = live_spec.data_source.clone();
    desired_spec.data_source_ref = live_spec.data_source_ref.clone();
    match (&volume.storage_class_name, &live_spec.storage_class_name) {
        (Some(wanted), Some(has)) if wanted != has => {
            return ClaimPlan::Refuse(format!(
                "volume {name}: changing the storage class from {has} to {wanted} was refused: \
                 the storage class of a PersistentVolumeClaim cannot change; the volume stays on {has}"
            ));
        }
        // No explicit class: keep whatever the claim got when it was created (a project default
        // or the cluster's), even if that default changed since.
        (None, _) => desired_spec.storage_class_name = live_spec.storage_class_name.clone(),
        _ => {}
    }
    if live_spec.access_modes != desired_spec.access_modes {
        let has = live_spec.access_modes.unwrap_or_default().join(",");
        let wanted = desired_spec
            .access_modes
            .clone()
            .unwrap_or_default()
            .join(",");
        return ClaimPlan::Refuse(format!(
            "volume {name}: changing the access mode from {has} to {wanted} was refused: \
             the access mode of a PersistentVolumeClaim cannot change; the volume stays {has}"
        ));
    }
    if let (Some(has), Some(wanted)) = (requested_size(live), requested_size(desired))
        && let (Some(has_q), Some(wanted_q)) = (Quantity::parse(&has), Quantity::parse(&wanted))
        && wanted_q < has_q
    {
        return ClaimPlan::Refuse(format!(
            "volume {name}: shrinking from {has} to {wanted} was refused: Kubernetes cannot shrink a \
             PersistentVolumeClaim and Oksa never recreates a volume; it keeps {has} and its data"
        ));
    }
    ClaimPlan::Apply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(size: &str, class: Option<&str>, mode: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "main-files"},
            "spec": {"accessModes": [mode], "storageClassName": class,
                     "resources": {"requests": {"storage": size}}}
        }))
        .unwrap()
    }

    fn volume(size: &str, class: Option<&str>) -> Volume {
        Volume {
            name: "files".into(),
            size: size.into(),
            storage_class_name: class.map(Into::into),
            access_mode: None,
            retain: false,
        }
    }

    #[test]
    fn a_missing_claim_is_created() {
        let mut desired = claim("1Gi", None, "ReadWriteOnce");
        assert_eq!(
            plan(&volume("1Gi", None), &mut desired, None),
            ClaimPlan::Create
        );
    }

    #[test]
    fn growing_is_applied_and_the_same_size_in_other_units_is_no_change() {
        let live = claim("1Gi", Some("standard"), "ReadWriteOnce");
        let mut desired = claim("2Gi", None, "ReadWriteOnce");
        assert_eq!(
            plan(&volume("2Gi", None), &mut desired, Some(&live)),
            ClaimPlan::Apply
        );
        // The class that came from a default is kept.
        assert_eq!(
            desired.spec.unwrap().storage_class_name.as_deref(),
            Some("standard")
        );
        let mut same = claim("1024Mi", None, "ReadWriteOnce");
        assert_eq!(
            plan(&volume("1024Mi", None), &mut same, Some(&live)),
            ClaimPlan::Apply
        );
    }

    #[test]
    fn shrinking_is_refused_with_both_sizes_in_the_message() {
        let live = claim("2Gi", Some("standard"), "ReadWriteOnce");
        let mut desired = claim("1Gi", None, "ReadWriteOnce");
        let ClaimPlan::Refuse(message) = plan(&volume("1Gi", None), &mut desired, Some(&live))
        else {
            panic!()
        };
        assert!(message.contains("shrinking from 2Gi to 1Gi"), "{message}");
    }

    #[test]
    fn changing_class_or_access_mode_is_refused() {
        let live = claim("1Gi", Some("standard"), "ReadWriteOnce");
        let mut desired = claim("1Gi", Some("fast"), "ReadWriteOnce");
        let ClaimPlan::Refuse(message) =
            plan(&volume("1Gi", Some("fast")), &mut desired, Some(&live))
        else {
            panic!()
        };
        assert!(message.contains("from standard to fast"), "{message}");
        let mut desired = claim("1Gi", None, "ReadWriteMany");
        let ClaimPlan::Refuse(message) = plan(&volume("1Gi", None), &mut desired, Some(&live))
        else {
            panic!()
        };
        assert!(message.contains("access mode"), "{message}");
    }
}
