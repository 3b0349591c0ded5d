//! `oksa deploy` as CI calls it: exit code 0 and the URL when the branch is Ready; a non-zero exit
//! with the reasons when it is not.

mod support;

use std::process::Output;

use serde_json::json;
use support::fixtures::TestProject;

fn deploy(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .arg("deploy")
        .args(args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("running oksa deploy")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn deploy_waits_for_ready_and_prints_the_url() {
    let project = TestProject::create("ci", json!({})).await;
    let output = deploy(&[
        "--project",
        &project.name,
        "--branch",
        "feature/Pay-Now",
        "--commit",
        "c0ffee",
        "--image",
        "web=shop/web:c0ffee",
        "--port",
        "web=8080",
        "--image",
        "worker=shop/worker:c0ffee",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("feature/Pay-Now is Ready"), "{stdout}");
    assert!(
        stdout.contains(&format!(".{}", project.domain)),
        "the URL: {stdout}"
    );
    assert!(
        stdout.contains("Ready: components 2/2 ready"),
        "progress lines: {stdout}"
    );

    // A second deploy of a new commit updates the same BranchRelease.
    let output = deploy(&[
        "--project",
        &project.name,
        "--branch",
        "feature/Pay-Now",
        "--commit",
        "beef",
        "--image",
        "web=shop/web:beef",
        "--port",
        "web=8080",
        "--image",
        "worker=shop/worker:beef",
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let releases = project.releases().list(&Default::default()).await.unwrap();
    assert_eq!(releases.items.len(), 1);
    assert_eq!(
        releases.items[0]
            .status
            .as_ref()
            .unwrap()
            .deployed_commit
            .as_deref(),
        Some("beef")
    );
    project.cleanup().await;
}

#[tokio::test]
async fn deploy_fails_with_the_reason_when_an_image_cannot_be_pulled() {
    let project = TestProject::create("cifail", json!({})).await;
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.yaml", project.name));
    std::fs::write(
        &file,
        "apiVersion: oksa.dev/v1alpha1\nkind: BranchRelease\nmetadata: {name: broken}\nspec:\n  project: x\n  branch: x\n  components:\n  - name: web\n    containers: [{name: web, image: placeholder, ports: [{containerPort: 80}]}]\n",
    )
    .unwrap();
    let output = deploy(&[
        "--project",
        &project.name,
        "--branch",
        "broken",
        "-f",
        file.to_str().unwrap(),
        "--image",
        "web=fault.oksa.test/pull-error:1",
        "--fail-after",
        "2",
        "--timeout",
        "60",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("failed to roll out"), "{stderr}");
    assert!(
        stderr.contains("ImagePullFailed") && stderr.contains("fault.oksa.test/pull-error:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("recent warnings") && stderr.contains("Failed to pull image"),
        "{stderr}"
    );

    // A host outside the domain: refused by Oksa, exit code 2.
    std::fs::write(
        &file,
        "apiVersion: oksa.dev/v1alpha1\nkind: BranchRelease\nmetadata: {name: refused}\nspec:\n  project: x\n  branch: x\n  hosts: [evil.example.org]\n  components:\n  - name: web\n    containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]\n",
    )
    .unwrap();
    let output = deploy(&[
        "--project",
        &project.name,
        "--branch",
        "refused",
        "-f",
        file.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("HostOutsideDomain"), "{stderr}");

    // Bad arguments: one clear line, exit code 1.
    let output = deploy(&[
        "--project",
        "does-not-exist",
        "--branch",
        "b",
        "--image",
        "web=x",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with("oksa: cannot read Project does-not-exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    project.cleanup().await;
}

#[tokio::test]
async fn status_lists_a_projects_branches() {
    let project = TestProject::create("table", json!({})).await;
    project
        .create_release(
            "main",
            json!({"branch": "feature/Table", "commit": "abc1234",
        "components": [support::fixtures::web_component("web", "nginx")]}),
        )
        .await;
    project
        .wait_release("main", "Ready", |s| {
            s.phase == Some(oksa::api::Phase::Ready)
        })
        .await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(["status", &project.name])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("BRANCH") && lines[0].contains("URL"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("feature/Table")
            && lines[1].contains("Ready")
            && lines[1].contains("1/1"),
        "{stdout}"
    );
    assert!(
        lines[1].contains(&project.domain) && lines[1].ends_with("abc1234"),
        "{stdout}"
    );
    project.cleanup().await;
}

/// Writes a BranchRelease manifest for `--file` and returns its path.
fn manifest(name: &str, yaml: &str) -> String {
    let path = format!("{}/{name}.yaml", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn a_dry_run_shows_each_change_and_writes_nothing() {
    let project = TestProject::create("dry", json!({})).await;
    let deploy_image = |image: &str, dry_run: bool| {
        let image = format!("web={image}");
        let mut args = vec![
            "--project",
            &project.name,
            "--branch",
            "main",
            "--image",
            &image,
            "--port",
            "web=8080",
        ];
        if dry_run {
            args.push("--dry-run");
        }
        deploy(&args)
    };

    // A new branch: everything would be created, and nothing is.
    let output = deploy_image("nginx:1.27", true);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in ["Deployment", "Service", "Ingress"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(line) && l.ends_with("create")),
            "{line} created: {stdout}"
        );
    }
    assert!(
        project.releases().get_opt("main").await.unwrap().is_none(),
        "a dry run created the BranchRelease"
    );

    // An existing branch and a new image: one field of the Deployment changes, nothing else.
    assert_eq!(deploy_image("nginx:1.27", false).status.code(), Some(0));
    let before = project.releases().get("main").await.unwrap();
    let output = deploy_image("nginx:1.28", true);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = |kind: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("Deployment").ends_with("change: spec.template.spec.containers[web].image"),
        "{stdout}"
    );
    assert!(line("Service").ends_with("unchanged"), "{stdout}");
    assert!(line("Ingress").ends_with("unchanged"), "{stdout}");
    let after = project.releases().get("main").await.unwrap();
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec.components[0].containers[0].image, "nginx:1.27");
    project.cleanup().await;
}

#[tokio::test]
async fn a_dry_run_refuses_a_host_outside_the_domain_and_a_volume_shrink() {
    let project = TestProject::create("dry-refused", json!({})).await;
    let release = |hosts: &str, size: &str| {
        format!(
            "apiVersion: oksa.dev/v1alpha1\nkind: BranchRelease\nmetadata: {{name: main}}\n\
             spec:\n  project: {project}\n  branch: main\n  hosts: [{hosts}]\n\
             \x20 volumes: [{{name: data, size: {size}}}]\n\
             \x20 components:\n  - name: web\n    containers:\n    - name: web\n      image: nginx\n\
             \x20     ports: [{{containerPort: 8080}}]\n      volumeMounts: [{{volume: data, mountPath: /data}}]\n",
            project = project.name
        )
    };
    let dry_run = |file: &str| {
        deploy(&[
            "--project",
            &project.name,
            "--branch",
            "main",
            "--file",
            file,
            "--dry-run",
        ])
    };

    let outside = manifest("dry-outside", &release("shop.example.com", "2Gi"));
    let output = dry_run(&outside);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("HostOutsideDomain"), "{stderr}");
    assert!(stderr.contains("shop.example.com"), "{stderr}");

    let deployed = manifest("dry-2gi", &release("", "2Gi"));
    let output = deploy(&[
        "--project",
        &project.name,
        "--branch",
        "main",
        "--file",
        &deployed,
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let smaller = manifest("dry-1gi", &release("", "1Gi"));
    let output = dry_run(&smaller);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("refused: volume data: shrinking from 2Gi to 1Gi was refused"),
        "{stdout}"
    );
    // Growing is fine, and is shown as the claim's change.
    let bigger = manifest("dry-3gi", &release("", "3Gi"));
    let output = dry_run(&bigger);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("change: spec.resources.requests.storage"),
        "{stdout}"
    );
    project.cleanup().await;
}
