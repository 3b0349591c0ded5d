//! `oksa data reset`: a branch's reference data cloned again, on a person's explicit request.
//!
//! A clone is made once, when its claim is created, and Oksa never makes another by itself.
//! Resetting stops the branch's pods (scaled to zero, as `kubectl scale` would), deletes the
//! chosen claims (only those, by their UIDs) once nothing uses them, and restores the branch's
//! replicas: Oksa then creates each claim again as a fresh clone, runs its `AfterClone` jobs, and
//! starts the branch. The branch's own changes to that data are lost, which is what was asked:
//! `--yes` says so.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::api::{BranchRelease, Project};
use crate::apply::describe;
use crate::labels;
use crate::model::branch_release::reference::{self, Source};
use crate::naming;

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Clone a branch's reference data again, from its source branch (its own changes to that
    /// data are lost).
    Reset(ResetArgs),
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// Project the branch belongs to.
    #[arg(long)]
    pub project: String,
    /// The git branch.
    #[arg(long)]
    pub branch: String,
    /// A volume to reset (repeatable; default: every volume of the branch that is reference
    /// data).
    #[arg(long = "volume")]
    pub volumes: Vec<String>,
    /// Yes, delete the branch's copy of that data.
    #[arg(long)]
    pub yes: bool,
    /// Seconds to wait for the branch's pods to stop and its claims to go.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub async fn run(args: DataArgs) -> Result<(), String> {
    let DataCommand::Reset(args) = args.command;
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    let project = Api::<Project>::all(client.clone())
        .get(&args.project)
        .await
        .map_err(|e| format!("reading Project {}: {}", args.project, describe(&e)))?;
    let namespace = project.namespace_name();
    let name = naming::release_name(&args.branch);
    let releases = Api::<BranchRelease>::namespaced(client.clone(), &namespace);
    let release = releases
        .get(&name)
        .await
        .map_err(|e| format!("reading BranchRelease {namespace}/{name}: {}", describe(&e)))?;
    let chosen = chosen_claims(&release, &project, &args.volumes)?;
    let listed = chosen
        .iter()
        .map(|(claim, source)| format!("{claim} (from {source})"))
        .collect::<Vec<_>>()
        .join(", ");
    if !args.yes {
        return Err(format!(
            "this deletes {listed} with branch {}'s own changes to that data, and clones it \
             again; run again with --yes",
            args.branch
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    // 1. Nothing may use the data while it is replaced.
    let replicas_before = release.spec.replicas;
    set_replicas(&releases, &name, Some(0)).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let selector = format!("{}={name}", labels::RELEASE);
    until(deadline, "the branch's pods to stop", || async {
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| describe(&e))?;
        // Finished pods (a deploy job's) hold no claim.
        Ok(listed.items.iter().all(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        }))
    })
    .await?;

    // 2. The claims go, only these very ones.
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    for (claim, _) in &chosen {
        let Some(live) = claims.get_opt(claim).await.map_err(|e| describe(&e))? else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        claims
            .delete(claim, &params)
            .await
            .map_err(|e| format!("deleting claim {claim}: {}", describe(&e)))?;
        // Gone, or already created again by Oksa (a new clone, another UID).
        until(deadline, &format!("claim {claim} to go"), || async {
            let now = claims.get_opt(claim).await.map_err(|e| describe(&e))?;
            Ok(now.is_none_or(|c| c.uid() != live.uid()))
        })
        .await?;
    }

    // 3. The branch as it was: Oksa clones the claims again and starts it.
    set_replicas(&releases, &name, replicas_before).await?;
    println!(
        "BranchRelease {namespace}/{name}: deleted {listed}; Oksa clones it again and starts the \
         branch (`oksa status {}` shows it)",
        args.project
    );
    Ok(())
}

/// The claims to reset, each with the claim it is cloned from.
fn chosen_claims(
    release: &BranchRelease,
    project: &Project,
    volumes: &[String],
) -> Result<Vec<(String, String)>, String> {
    let release_name = naming::release_name(&release.spec.branch);
    let reference: Vec<(&str, String)> = release
        .spec
        .volumes
        .iter()
        .filter_map(|v| match reference::source(release, project, &v.name) {
            Source::Clone { claim, .. } => Some((v.name.as_str(), claim)),
            Source::Own => None,
        })
        .collect();
    if let Some(unknown) = volumes
        .iter()
        .find(|v| !reference.iter().any(|(name, _)| name == v))
    {
        return Err(format!(
            "volume {unknown} of branch {} is not reference data (see the Project's \
             referenceData): there is nothing to clone it from",
            release.spec.branch
        ));
    }
    let chosen: Vec<(String, String)> = reference
        .into_iter()
        .filter(|(name, _)| volumes.is_empty() || volumes.iter().any(|v| v == name))
        .map(|(name, source)| (naming::volume_claim_name(&release_name, name), source))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "branch {} has no reference data (see the Project's referenceData)",
            release.spec.branch
        ));
    }
    Ok(chosen)
}

/// Sets `spec.replicas` (None: removes it), as `kubectl scale` does for a number.
async fn set_replicas(
    releases: &Api<BranchRelease>,
    name: &str,
    replicas: Option<i32>,
) -> Result<(), String> {
    releases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("scaling BranchRelease {name}: {}", describe(&e)))
}

/// Polls `done` every half second until it holds or `deadline` passes.
async fn until<F, Fut>(deadline: Instant, what: &str, mut done: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    loop {
        if done().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};

    #[test]
    fn only_reference_volumes_can_be_reset() {
        let project = project_from_yaml(
            "name: shop\nspec: {domain: shop.test, referenceData: {branch: main, volumes: [db]}}",
        );
        let release = release_from_yaml(
            "name: feature\nspec: {project: shop, branch: feature, components: [], \
             volumes: [{name: db, size: 1Gi}, {name: cache, size: 1Gi}]}",
        );
        assert_eq!(
            chosen_claims(&release, &project, &[]).unwrap(),
            [("feature-db".to_string(), "main-db".to_string())]
        );
        let error = chosen_claims(&release, &project, &["cache".into()]).unwrap_err();
        assert!(
            error.contains("volume cache of branch feature is not reference data"),
            "{error}"
        );
        let main = release_from_yaml(
            "name: main\nspec: {project: shop, branch: main, components: [], \
             volumes: [{name: db, size: 1Gi}]}",
        );
        assert!(
            chosen_claims(&main, &project, &[]).is_err(),
            "the source itself"
        );
    }
}
