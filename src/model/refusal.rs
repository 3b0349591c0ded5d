//! Why a child was not written: a value, so a reconcile can put it in status instead of failing.

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
