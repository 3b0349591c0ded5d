//! Leader election: of several `oksa run` processes (the chart runs two), only the holder of a
//! Lease reconciles; the others wait, ready to take over when it stops renewing.
//!
//! A leader that loses the Lease (it could not renew it in time: a network partition, a stalled
//! process) stops at once and exits, so two operators never write at the same time for long; its
//! pod is restarted and comes back as a standby.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::info;

/// Name of the Lease the operators compete for.
pub const LEASE_NAME: &str = "oksa-leader";
/// How long a Lease stays held without renewal. A standby takes over at most this long after
/// the leader died (plus the time to list its caches).
const LEASE_SECONDS: u64 = 10;
/// How long before it expires the leader renews the Lease.
const RENEW_BEFORE_SECONDS: u64 = 4;

/// Where and as whom to compete for the Lease.
#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    /// Unique per process: the pod's name in a cluster.
    pub identity: String,
}

/// A held or awaited Lease.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Keeps the renewing task alive; dropping `leading` releases the Lease.
    _task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Starts competing for the Lease (renewing it whenever held).
    pub async fn start(&self, client: Client) -> Result<Leadership, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(RENEW_BEFORE_SECONDS)
            .with_field_manager(lease_field_manager(&self.identity))
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Leadership {
            leading,
            _task: task,
        })
    }
}

/// The field manager of one identity's Lease writes. It must be unique per identity: the Lease
/// is taken with server-side apply, and two replicas applying under one manager name do not
/// conflict, so two that found it free at the same moment would both believe they lead.
pub fn lease_field_manager(identity: &str) -> String {
    let name = format!("oksa-leader-{identity}");
    // Field managers are at most 128 characters; a longer identity keeps a hash of the whole.
    if name.len() <= 128 {
        return name;
    }
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(identity.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let head: String = name.chars().take(100).collect();
    format!("{head}-{hex}")
}

impl Leadership {
    /// Completes once this process holds the Lease.
    pub async fn acquired(&mut self) {
        info!("waiting for the lease {LEASE_NAME}: standby until the leader stops");
        let _ = self.leading.wait_for(|leading| *leading).await;
        info!("holding the lease {LEASE_NAME}: reconciling");
    }

    /// Whether this process holds the Lease now.
    pub fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Completes when this process no longer holds the Lease (it could not renew it in time).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
        // Give a moment for the log line to be written before the process exits.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_has_a_field_manager_of_its_own_within_the_limit() {
        assert_eq!(
            lease_field_manager("oksa-7d9f-x2"),
            "oksa-leader-oksa-7d9f-x2"
        );
        let long_a = format!("{}a", "p".repeat(200));
        let long_b = format!("{}b", "p".repeat(200));
        let (a, b) = (lease_field_manager(&long_a), lease_field_manager(&long_b));
        assert_ne!(a, b);
        assert!(a.len() <= 128, "{}", a.len());
    }
}
