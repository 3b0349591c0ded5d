//! Phase 2: the helm baseline. The same six objects as a chart, deployed one branch at a time with
//! `helm upgrade --install --wait`, the way a CI job per branch does it today.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::DeleteParams;
use serde::Serialize;

use super::stats::{Summary, summarize};
use super::workload;

#[derive(Debug, Default, Serialize)]
pub struct HelmResult {
    pub branches: usize,
    pub per_branch: Summary,
    pub wall_s: f64,
    /// The same releases upgraded one by one with a new image (`helm upgrade --wait`).
    pub redeploy_per_branch: Summary,
    pub redeploy_wall_s: f64,
}

const RELEASE: &str = "zzreleasezz";
const NAMESPACE: &str = "zznamespacezz";

/// Writes a chart whose templates are the workload's objects, with the release name and
/// namespace as template values.
pub fn write_chart(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder.join("templates"))?;
    std::fs::write(
        folder.join("Chart.yaml"),
        "apiVersion: v2\nname: branch\nversion: 0.1.0\n",
    )?;
    std::fs::write(
        folder.join("values.yaml"),
        format!("apiImage: {}\n", workload::API_IMAGE),
    )?;
    let objects = workload::children(NAMESPACE, RELEASE);
    let mut documents = Vec::new();
    let mut push =
        |value: serde_json::Value| documents.push(serde_yaml_ng::to_string(&value).expect("YAML"));
    objects
        .deployments
        .iter()
        .for_each(|o| push(serde_json::to_value(o).unwrap()));
    objects
        .services
        .iter()
        .for_each(|o| push(serde_json::to_value(o).unwrap()));
    objects
        .ingress
        .iter()
        .for_each(|o| push(serde_json::to_value(o).unwrap()));
    objects
        .claims
        .iter()
        .for_each(|o| push(serde_json::to_value(o).unwrap()));
    let text = documents
        .join("---\n")
        .replace(RELEASE, "{{ .Values.release }}")
        .replace(NAMESPACE, "{{ .Release.Namespace }}")
        .replace(workload::API_IMAGE, "{{ .Values.apiImage }}")
        // Not Oksa's: keep the operator's watches (if one runs) out of it.
        .replace(
            "app.kubernetes.io/managed-by: oksa",
            "app.kubernetes.io/managed-by: Helm",
        );
    std::fs::write(folder.join("templates/branch.yaml"), text)
}

pub async fn run(
    client: &Client,
    helm: &Path,
    branches: usize,
    run_id: &str,
) -> Result<HelmResult, String> {
    let chart = std::path::PathBuf::from("target/bench/helm-chart");
    write_chart(&chart).map_err(|e| e.to_string())?;
    let namespace = format!("bench-{run_id}-helm");
    let namespaces = workload::create_namespace(client, &namespace).await?;

    let install = |i: usize, api_image: &str| -> Result<f64, String> {
        let t0 = Instant::now();
        let output = Command::new(helm)
            .args([
                "upgrade",
                "--install",
                &format!("h{i}"),
                chart.to_str().unwrap(),
                "--namespace",
                &namespace,
            ])
            .args(["--set", &format!("release=hb-{i}")])
            .args(["--set", &format!("apiImage={api_image}")])
            .args(["--wait", "--timeout", "5m"])
            .env(
                "KUBECONFIG",
                std::env::var("KUBECONFIG").unwrap_or_default(),
            )
            .output()
            .map_err(|e| format!("running {}: {e}", helm.display()))?;
        if !output.status.success() {
            return Err(format!(
                "helm upgrade --install failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    };
    // One release after the other, as a CI job per branch runs them.
    let sequentially = |api_image: &str| -> Result<(Summary, f64), String> {
        let started = Instant::now();
        let durations = (0..branches)
            .map(|i| install(i, api_image))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((summarize(durations), started.elapsed().as_secs_f64()))
    };
    let (per_branch, wall_s) = sequentially(workload::API_IMAGE)?;
    let (redeploy_per_branch, redeploy_wall_s) = sequentially(workload::REDEPLOYED_API_IMAGE)?;
    let _ = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(HelmResult {
        branches,
        per_branch,
        wall_s,
        redeploy_per_branch,
        redeploy_wall_s,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chart_templates_the_release_and_namespace() {
        let folder = std::env::temp_dir().join(format!("oksa-bench-chart-{}", std::process::id()));
        super::write_chart(&folder).unwrap();
        let text = std::fs::read_to_string(folder.join("templates/branch.yaml")).unwrap();
        assert_eq!(text.matches("kind: Deployment").count(), 2);
        assert!(text.contains("name: {{ .Values.release }}-web"), "{text}");
        assert!(!text.contains(super::NAMESPACE) && !text.contains(super::RELEASE));
        assert!(text.contains("image: {{ .Values.apiImage }}"), "{text}");
        std::fs::remove_dir_all(folder).unwrap();
    }
}
