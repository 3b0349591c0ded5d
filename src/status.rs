//! `oksa status [PROJECT]`: the branches of a project as a table.

use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::api::{BranchRelease, Project};

pub async fn run(project: Option<&str>) -> Result<(), kube::Error> {
    let client = Client::try_default().await?;
    let releases = match project {
        Some(name) => {
            let project = Api::<Project>::all(client.clone()).get(name).await?;
            let namespace = project.namespace_name();
            Api::<BranchRelease>::namespaced(client, &namespace)
                .list(&ListParams::default())
                .await?
                .items
        }
        None => {
            Api::<BranchRelease>::all(client)
                .list(&ListParams::default())
                .await?
                .items
        }
    };
    if releases.is_empty() {
        println!("No branches.");
    } else {
        println!("{}", crate::table::render(&releases, Timestamp::now()));
    }
    Ok(())
}
