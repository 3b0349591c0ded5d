//! `oksa keepalive`: records activity on a branch without touching its spec, so it does not fall
//! asleep or expire (for a CI job running tests against it, or someone working on it through an
//! API the waker never sees). No new generation, nothing for a GitOps tool to see as drift.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::api::{BranchRelease, activity, activity_source};
use crate::apply::describe;
use crate::naming;

#[derive(clap::Args, Debug)]
pub struct KeepaliveArgs {
    /// Project the branch belongs to.
    #[arg(long)]
    pub project: String,
    /// Namespace of the project (default: read from the Project, else the project's name).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The git branch.
    #[arg(long)]
    pub branch: String,
    /// Name of the BranchRelease (default: derived from the branch).
    #[arg(long)]
    pub name: Option<String>,
}

pub async fn run(args: KeepaliveArgs) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    let namespace =
        crate::deploy::project_namespace(&client, &args.project, args.namespace.as_ref()).await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| naming::release_name(&args.branch));
    // Whole seconds, as status keeps it.
    let now = activity::whole_seconds(Timestamp::now());
    let patch = activity::patch(now, activity_source::KEEP_ALIVE);
    Api::<BranchRelease>::namespaced(client, &namespace)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            format!(
                "cannot keep BranchRelease {namespace}/{name} alive: {}",
                describe(&e)
            )
        })?;
    println!("BranchRelease {namespace}/{name}: activity recorded at {now}");
    Ok(())
}
