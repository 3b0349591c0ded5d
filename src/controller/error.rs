use thiserror::Error;

/// What can fail in a reconcile. Each variant names itself in logs and metrics (`kind()`), so a
/// failure rate can be broken down by cause.
#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {}", crate::apply::describe(.0))]
    Api(#[source] kube::Error),

    /// A request of the applier, naming its step and object.
    #[error("{0}")]
    Child(Box<crate::apply::Failed>),

    #[error("{0} has no {1}")]
    MissingField(&'static str, &'static str),

    #[error("could not serialize {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// A short, stable name of the error's kind, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Api(error) => crate::apply::failed::api_error_kind(error),
            Error::Child(failed) => failed.kind_of_cause(),
            Error::MissingField(..) => "missing_field",
            Error::Serialize(..) => "serialize",
        }
    }
}

impl From<crate::apply::Failed> for Error {
    fn from(failed: crate::apply::Failed) -> Self {
        Error::Child(Box::new(failed))
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Api(error)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
