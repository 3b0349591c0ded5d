//! A request of the applier that failed. Not a refusal (see `refusal`): another attempt may
//! succeed. It names the step, the kind and the object, so one log line says what Oksa was doing.

use super::describe;

#[derive(Debug, thiserror::Error)]
#[error("{step} {kind} {name}: {cause}")]
pub struct Failed {
    /// What the applier was doing: read, apply, prune.
    pub step: &'static str,
    pub kind: String,
    pub name: String,
    pub cause: Cause,
}

#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The API server, or the way to it.
    #[error("{}", describe(.0))]
    Api(#[source] kube::Error),
    /// An object that does not read as its kind.
    #[error("it does not read as its kind: {0}")]
    Decode(#[source] serde_json::Error),
}

impl Failed {
    /// A short, stable name of the cause, for metric labels.
    pub fn kind_of_cause(&self) -> &'static str {
        match &self.cause {
            Cause::Api(error) => api_error_kind(error),
            Cause::Decode(_) => "decode",
        }
    }
}

/// A short, stable name of a client error: a conflict, another refusal of the API server, a
/// body that did not decode, or the way to the server.
pub fn api_error_kind(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.is_conflict() => "conflict",
        kube::Error::Api(_) => "api_status",
        kube::Error::SerdeError(_) => "decode",
        _ => "api_transport",
    }
}

/// `map_err` helpers: the step and object a failure belongs to.
pub fn on<'a>(
    step: &'static str,
    kind: &'a str,
    name: &'a str,
) -> impl Fn(kube::Error) -> Failed + 'a {
    move |error| Failed {
        step,
        kind: kind.to_string(),
        name: name.to_string(),
        cause: match error {
            kube::Error::SerdeError(error) => Cause::Decode(error),
            error => Cause::Api(error),
        },
    }
}

pub fn decoding<'a>(
    step: &'static str,
    kind: &'a str,
    name: &'a str,
) -> impl Fn(serde_json::Error) -> Failed + 'a {
    move |error| Failed {
        step,
        kind: kind.to_string(),
        name: name.to_string(),
        cause: Cause::Decode(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_its_step_and_object_and_tells_decoding_from_transport() {
        let decode = serde_json::from_str::<u8>("x").unwrap_err();
        let failed = on("read", "Deployment", "main-web")(kube::Error::SerdeError(decode));
        assert_eq!(failed.kind_of_cause(), "decode");
        assert!(
            failed
                .to_string()
                .starts_with("read Deployment main-web: it does not read"),
            "{failed}"
        );
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": 409, "reason": "Conflict",
                "message": "the object has been modified"}))
            .unwrap();
        let conflict = on("apply", "Service", "main-web")(kube::Error::Api(Box::new(status)));
        assert_eq!(conflict.kind_of_cause(), "conflict");
        assert_eq!(
            conflict.to_string(),
            "apply Service main-web: the object has been modified"
        );
    }
}
