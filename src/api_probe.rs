//! Whether the API server can be used: a small read every few seconds, its outcome fed to
//! `/readyz`. Watches cannot tell: a stalled API server leaves them open and silent.

use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::api::Project;
use crate::readiness::Readiness;

/// How often the API server is probed.
const EVERY: Duration = Duration::from_secs(3);
/// How long a probe may take before the API server counts as not answering.
const TIMEOUT: Duration = Duration::from_secs(4);

/// Probes until the process stops. The probe is a quorum read of one Project (a list with
/// `limit=1` and no resourceVersion), so it needs etcd as much as the operator's own writes do,
/// and only the rights the operator has anyway.
pub async fn run(client: Client, ready: Arc<Readiness>) {
    let projects = Api::<Project>::all(client);
    let mut was_reachable = true;
    loop {
        let outcome = match tokio::time::timeout(
            TIMEOUT,
            projects.list_metadata(&ListParams::default().limit(1)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(why_unusable(&error)),
            Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        };
        match (&outcome, was_reachable) {
            (Err(why), true) => warn!(%why, "the API server cannot be used; not ready"),
            (Ok(()), false) => info!("the API server answers again; ready"),
            _ => {}
        }
        was_reachable = outcome.is_ok();
        ready.api_probed(outcome);
        tokio::time::sleep(EVERY).await;
    }
}

/// Why a failed probe means the operator cannot work. A 404 is not the server failing: the
/// CRDs are missing (installed after the operator, or removed), and saying so ends the search.
fn why_unusable(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => format!(
            "the CRD projects.{} is not installed (kubectl apply -f the chart's crds/)",
            crate::api::GROUP
        ),
        other => crate::apply::describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_crd_is_named_as_such() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": 404, "message": "the server could not find the requested resource"
        }))
        .unwrap();
        let why = why_unusable(&kube::Error::Api(Box::new(status)));
        assert!(
            why.contains("CRD projects.oksa.dev is not installed"),
            "{why}"
        );
    }
}
