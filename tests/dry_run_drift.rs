//! `oksa deploy --dry-run` says what the controller would do, because both ask the applier's one
//! `plan`: a field someone changed by hand shows as put back in the dry run, and the controller,
//! once running, puts it back. The operator (a real `oksa run`) is stopped while the hand edit
//! is looked at; running, it would undo the edit before the dry run could see it.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::json;
use support::eventually;
use support::fixtures::TestProject;
use support::process::OksaProcess;

fn deploy(project: &str, dry_run: bool) -> Output {
    let mut args = vec![
        "deploy",
        "--project",
        project,
        "--branch",
        "main",
        "--image",
        "web=nginx:1.27",
        "--port",
        "web=8080",
    ];
    if dry_run {
        args.push("--dry-run");
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(&args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("running oksa deploy")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_hand_edit_shows_in_the_dry_run_as_the_change_the_controller_then_makes() {
    let mut operator = OksaProcess::start(&[], "oksa-dry-run-drift");
    let project = TestProject::create("drift", json!({})).await;
    let deployed = deploy(&project.name, false);
    assert_eq!(deployed.status.code(), Some(0), "{}", text(&deployed));

    // Nothing changed: the dry run says so.
    let unchanged = deploy(&project.name, true);
    assert_eq!(unchanged.status.code(), Some(0), "{}", text(&unchanged));
    let line = |output: &Output, kind: &str| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line(&unchanged, "Deployment").ends_with("unchanged"),
        "{}",
        text(&unchanged)
    );

    // The operator stopped, someone scales the Deployment by hand.
    operator.kill();
    project.scale_by_hand("main-web", 3).await;
    let drifted = deploy(&project.name, true);
    assert_eq!(drifted.status.code(), Some(0), "{}", text(&drifted));
    assert!(
        line(&drifted, "Deployment").ends_with("put back: spec.replicas (changed outside Oksa)"),
        "{}",
        text(&drifted)
    );
    assert!(
        line(&drifted, "Service").ends_with("unchanged"),
        "{}",
        text(&drifted)
    );
    assert_eq!(
        project.replicas("main-web").await,
        Some(3),
        "a dry run wrote"
    );

    // The operator back: it does what the dry run said.
    let _operator = OksaProcess::start(&[], "oksa-dry-run-drift-again");
    eventually(
        Duration::from_secs(60),
        "the hand edit put back",
        || async { (project.replicas("main-web").await == Some(1)).then_some(()) },
    )
    .await;
    project.cleanup().await;
}
