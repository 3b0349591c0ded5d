//! `oksa status [PROJECT]`: the branches of a project as a table.

use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::api::{BranchRelease, Project};

pub async fn run(project: Option<&str>) -> Result<(), kube::Error> {
    let client = Client::try_default().await?;
    let releases = match project {
        Some(name) => {
            let project = Api::<Project>::all(client.clone()).get(name).await?;
            let namespace = project.namespace_name();
            Api::<BranchRelease>::namespaced(client.clone(), &namespace)
                .list(&ListParams::default())
                .await?
                .items
        }
        None => {
            Api::<BranchRelease>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items
        }
    };
    if releases.is_empty() {
        println!("No branches.");
        return Ok(());
    }
    let usage = if crate::usage::served(&client).await {
        let mut usage = crate::table::Usage::new();
        let namespaces: std::collections::BTreeSet<String> =
            releases.iter().filter_map(|r| r.namespace()).collect();
        for namespace in namespaces {
            for (release, used) in crate::usage::by_release(&client, &namespace).await? {
                usage.insert((namespace.clone(), release), used);
            }
        }
        Some(usage)
    } else {
        None
    };
    println!(
        "{}",
        crate::table::render_with_usage(&releases, Timestamp::now(), usage.as_ref())
    );
    for line in crate::table::data_lines(&releases, Timestamp::now()) {
        println!("{line}");
    }
    for line in crate::table::forge_lines(&releases) {
        println!("{line}");
    }
    if usage.is_none() {
        println!("(USED: this cluster does not serve metrics.k8s.io; install metrics-server)");
    }
    Ok(())
}
