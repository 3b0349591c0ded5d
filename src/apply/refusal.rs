//! The API server's refusals of an object as declared, told apart from its failures.

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
