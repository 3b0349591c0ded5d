//! Why a child was not written: typed, so a reconcile can put it in status instead of failing.

use std::fmt;

/// A child Oksa declared but could not bring to its declared state, for a reason that another
/// attempt will not fix: only a change of the spec (or of the object in the way) will.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: String,
    pub name: String,
    pub reason: RefusalReason,
    /// One line a person can act on.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// An object of that name exists and is not Oksa's for this owner.
    NotOwned,
    /// The API server refused the object as declared (validation, admission, quota).
    Rejected,
    /// The object was written, but the controller it is for refuses it (a Gateway that does not
    /// accept a branch's HTTPRoute).
    NotAccepted,
}

impl RefusalReason {
    /// The PascalCase reason of the condition that reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotOwned => "ObjectNotOwned",
            RefusalReason::Rejected => "SpecRejected",
            RefusalReason::NotAccepted => "RouteNotAccepted",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// True for the API server's answers that mean "this object, as declared, is refused":
/// retrying the same request gets the same answer. Server-side apply answers 500 when the object
/// does not fit its kind's merge keys (two env entries of one name, two mounts at one path):
/// that too is the object's fault, not the server's.
pub fn is_refusal(status: &kube::core::Status) -> bool {
    matches!(status.code, 400 | 403 | 422)
        || (status.code == 500
            && status
                .message
                .starts_with("failed to create typed patch object"))
}

/// The API server's error as one readable line: its message, and its reason when the message
/// does not already say it.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            if message.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                message.to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::core::Status {
        serde_json::from_value(serde_json::json!({"code": code, "message": message})).unwrap()
    }

    #[test]
    fn what_the_object_causes_is_a_refusal_and_what_the_server_suffers_is_not() {
        assert!(is_refusal(&status(422, "spec.template: Invalid value")));
        assert!(is_refusal(&status(403, "exceeded quota")));
        assert!(is_refusal(&status(
            500,
            "failed to create typed patch object (ns/x; apps/v1, Kind=Deployment): duplicate entries"
        )));
        assert!(!is_refusal(&status(500, "etcdserver: request timed out")));
        assert!(!is_refusal(&status(409, "the object has been modified")));
        assert!(!is_refusal(&status(503, "the server is shutting down")));
    }
}
