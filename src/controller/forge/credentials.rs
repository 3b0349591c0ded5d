//! A Project's forge credentials: read from the one Secret it names, in Oksa's own namespace,
//! and only when that Secret lists the Project as allowed. Read again at most once a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::Forges;
use crate::api::{
    FORGE_PROJECTS_ANNOTATION, FORGE_TOKEN_KEY, FORGE_URL_KEY, FORGE_WEBHOOK_SECRET_KEY, Forge,
};
use crate::forge::ForgeClient;
use crate::model::forge::provider;

/// How long credentials read are used before they are read again (a rotated token takes effect
/// within this).
const FRESH_FOR: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Credentials {
    pub client: Arc<ForgeClient>,
    pub webhook_secret: Option<Vec<u8>>,
    /// What they were read for: any change of the Project's forge reads them again.
    read_for: Forge,
    token: String,
    read_at: Instant,
}

/// Why a Project has no usable credentials: the reason and message of its condition.
pub struct Missing {
    pub reason: &'static str,
    pub message: String,
}

impl Forges {
    /// The Project's credentials, read again once stale.
    pub(super) async fn credentials(
        &self,
        project: &str,
        forge: &Forge,
    ) -> Result<Credentials, Missing> {
        let read_for = forge.clone();
        let cached = {
            let state = self.state.lock().expect("forge state");
            state
                .projects
                .get(project)
                .and_then(|p| p.credentials.clone())
        };
        if let Some(cached) = &cached
            && cached.read_for == read_for
            && cached.read_at.elapsed() < FRESH_FOR
        {
            return Ok(cached.clone());
        }
        let secret = self.read_secret(&forge.credentials_secret).await?;
        let allowed = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FORGE_PROJECTS_ANNOTATION))
            .is_some_and(|list| {
                list.split(',')
                    .map(str::trim)
                    .any(|name| name == "*" || name == project)
            });
        if !allowed {
            return Err(Missing {
                reason: "CredentialsNotAllowed",
                message: format!(
                    "Secret {} does not list this Project in its {FORGE_PROJECTS_ANNOTATION} \
                     annotation",
                    forge.credentials_secret
                ),
            });
        }
        let value = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // A Secret that names its forge is used for that forge only: a Project cannot send the
        // token to another address by setting its own `url`.
        if let Some(pinned) = value(FORGE_URL_KEY) {
            let asked = provider::Urls::of(forge).base();
            if pinned.trim_end_matches('/') != asked.trim_end_matches('/') {
                return Err(Missing {
                    reason: "CredentialsNotAllowed",
                    message: format!(
                        "Secret {} is for the forge at {pinned}, not {asked}",
                        forge.credentials_secret
                    ),
                });
            }
        }
        let Some(token) = value(FORGE_TOKEN_KEY) else {
            return Err(Missing {
                reason: "CredentialsMissing",
                message: format!(
                    "Secret {} has no `{FORGE_TOKEN_KEY}`",
                    forge.credentials_secret
                ),
            });
        };
        // The same token keeps its client (and its cache of unchanged lists).
        let client = match cached
            .filter(|c| c.token == token && c.read_for.provider == forge.provider)
        {
            Some(cached) => cached.client,
            None => Arc::new(
                ForgeClient::new(forge.provider, &token).map_err(|e| Missing {
                    reason: "Unreachable",
                    message: e.to_string(),
                })?,
            ),
        };
        let credentials = Credentials {
            client,
            webhook_secret: value(FORGE_WEBHOOK_SECRET_KEY).map(String::into_bytes),
            read_for,
            token,
            read_at: Instant::now(),
        };
        let mut state = self.state.lock().expect("forge state");
        state
            .projects
            .entry(project.to_string())
            .or_default()
            .credentials = Some(credentials.clone());
        Ok(credentials)
    }

    async fn read_secret(&self, name: &str) -> Result<Secret, Missing> {
        let Some(namespace) = &self.secrets_namespace else {
            return Err(Missing {
                reason: "CredentialsMissing",
                message: "Oksa does not know its own namespace (POD_NAMESPACE or \
                          --forge-secrets-namespace), where forge credentials live"
                    .into(),
            });
        };
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(Missing {
                reason: "CredentialsMissing",
                message: format!("Secret {namespace}/{name} does not exist"),
            }),
            Err(kube::Error::Api(status)) if status.code == 403 => Err(Missing {
                reason: "CredentialsMissing",
                message: format!(
                    "Oksa may not read Secret {namespace}/{name} (its Role grants `get` on Secrets \
                     in {namespace} only)"
                ),
            }),
            Err(error) => Err(Missing {
                reason: "CredentialsMissing",
                message: format!("cannot read Secret {namespace}/{name}: {error}"),
            }),
        }
    }
}
