//! A forge's webhook, checked and read. It only ever asks for a sync: what to do is decided from
//! the forge's own lists, so a replayed or stale delivery cannot take away a branch that exists.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Whether `signature` (`X-Hub-Signature-256: sha256=<hex>`, as GitHub and Gitea send it) is the
/// HMAC-SHA256 of `body` under `secret`. Compared in constant time.
pub fn signed(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = from_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a (signed) delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A branch deleted, a pull request opened, closed, merged or reopened: sync now.
    Sync { repository: String },
    /// Anything else (a push, a star, the forge's ping).
    Ignored,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    ref_type: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

/// Reads a delivery by its event (`X-GitHub-Event`, which Gitea sends too).
pub fn read(event: &str, body: &[u8]) -> Result<Delivery, serde_json::Error> {
    let payload: Payload = serde_json::from_slice(body)?;
    let repository = payload.repository.map(|r| r.full_name).unwrap_or_default();
    let relevant = match event {
        "delete" => payload.ref_type.as_deref() == Some("branch"),
        "pull_request" => true,
        // GitHub also says a branch was deleted as a push with `deleted: true`.
        "push" => payload.deleted == Some(true),
        _ => false,
    };
    Ok(match relevant && !repository.is_empty() {
        true => Delivery::Sync { repository },
        false => Delivery::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn only_the_right_secret_over_the_same_body_passes() {
        let body = br#"{"ref":"feature/a","ref_type":"branch"}"#;
        let good = sign(b"s3cret", body);
        assert!(signed(b"s3cret", body, &good));
        assert!(!signed(b"other", body, &good));
        assert!(!signed(
            b"s3cret",
            br#"{"ref":"main","ref_type":"branch"}"#,
            &good
        ));
        assert!(!signed(b"s3cret", body, ""));
        assert!(!signed(b"s3cret", body, &good.replace("sha256=", "sha1=")));
        assert!(!signed(b"s3cret", body, "sha256=zz"));
    }

    #[test]
    fn branch_deletions_and_pull_requests_ask_for_a_sync_the_rest_is_ignored() {
        let repo = r#""repository":{"full_name":"acme/shop"}"#;
        let delete = format!(r#"{{"ref":"feature/a","ref_type":"branch",{repo}}}"#);
        assert_eq!(
            read("delete", delete.as_bytes()).unwrap(),
            Delivery::Sync {
                repository: "acme/shop".into()
            }
        );
        let tag = format!(r#"{{"ref":"v1","ref_type":"tag",{repo}}}"#);
        assert_eq!(read("delete", tag.as_bytes()).unwrap(), Delivery::Ignored);
        let closed = format!(r#"{{"action":"closed","number":3,{repo}}}"#);
        assert!(matches!(
            read("pull_request", closed.as_bytes()).unwrap(),
            Delivery::Sync { .. }
        ));
        let push = format!(r#"{{"ref":"refs/heads/a","deleted":false,{repo}}}"#);
        assert_eq!(read("push", push.as_bytes()).unwrap(), Delivery::Ignored);
        assert!(read("delete", b"not json").is_err());
    }
}
