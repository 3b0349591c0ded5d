use thiserror::Error;

/// What can fail in a reconcile. Each variant names itself in logs and metrics (`kind()`), so a
/// failure rate can be broken down by cause.
#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {}", crate::apply::describe(.0))]
    Api(#[source] kube::Error),

    #[error("{0} has no {1}")]
    MissingField(&'static str, &'static str),

    #[error("could not serialize {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// A short, stable name of the error's kind, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Api(kube::Error::Api(status)) if status.is_conflict() => "conflict",
            Error::Api(kube::Error::Api(_)) => "api_status",
            Error::Api(_) => "api_transport",
            Error::MissingField(..) => "missing_field",
            Error::Serialize(..) => "serialize",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Api(error)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
