//! Kubernetes Events for the milestones a user follows with `kubectl describe`.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use super::context::Context;
use super::recorder::Recorder;

/// Records an event on `object`. An event that cannot be written is logged, never fatal: it
/// is a courtesy to the user, not part of the declared state.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    publish_to(
        &ctx.recorder,
        &object.object_ref(&()),
        warning,
        reason,
        note,
    )
    .await;
}

/// Records an event on the object `reference` names (one Oksa may hold no typed copy of).
pub async fn publish_to(
    recorder: &Recorder,
    reference: &ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    if let Err(error) = recorder
        .publish(reference, warning, reason, truncate(note, 1000))
        .await
    {
        tracing::warn!(
            error = %crate::apply::describe(&error),
            reason,
            kind = reference.kind.as_deref().unwrap_or_default(),
            namespace = reference.namespace.as_deref().unwrap_or_default(),
            name = reference.name.as_deref().unwrap_or_default(),
            "could not record an event"
        );
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}
