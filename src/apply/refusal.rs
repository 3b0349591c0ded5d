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
}

impl RefusalReason {
    /// The PascalCase reason of the condition that reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotOwned => "ObjectNotOwned",
            RefusalReason::Rejected => "SpecRejected",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// True for the API server's answers that mean "this object, as declared, is refused":
/// retrying the same request gets the same answer.
pub fn is_refusal(status: &kube::core::Status) -> bool {
    matches!(status.code, 400 | 403 | 422)
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
