//! The CRD YAML served to the cluster, generated from the Rust types in `api`.

use kube::CustomResourceExt;

use crate::api::{BranchRelease, Project};

/// Every CRD Oksa serves, as (file name in `crds/`, YAML document).
pub fn documents() -> Vec<(&'static str, String)> {
    vec![
        ("projects.oksa.dev.yaml", to_yaml(&Project::crd())),
        (
            "branchreleases.oksa.dev.yaml",
            to_yaml(&BranchRelease::crd()),
        ),
    ]
}

fn to_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    let yaml = serde_yaml_ng::to_string(crd).expect("a CRD always serializes");
    format!("# Generated from src/api by `oksa crd --write crds`; do not edit.\n{yaml}")
}

/// Applies the CRDs (server-side, as Oksa) and waits until the API server serves them.
pub async fn install(client: &kube::Client) -> Result<(), kube::Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};

    let api = kube::Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Project::crd(), BranchRelease::crd()] {
        let name = kube::ResourceExt::name_any(&crd);
        api.patch(
            &name,
            &PatchParams::apply(crate::labels::FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        if tokio::time::timeout(std::time::Duration::from_secs(30), established)
            .await
            .is_err()
        {
            return Err(kube::Error::Service(
                format!("CRD {name} was not established within 30s").into(),
            ));
        }
    }
    Ok(())
}

/// `oksa crd`: prints the CRDs, or writes one file per CRD into `folder`.
pub fn print_or_write(folder: Option<&std::path::Path>) -> std::io::Result<()> {
    for (file, yaml) in documents() {
        match folder {
            Some(folder) => {
                std::fs::create_dir_all(folder)?;
                std::fs::write(folder.join(file), yaml)?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
