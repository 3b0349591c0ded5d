//! A corpus of bad Projects and BranchReleases (tests/corpus/, one file each, at least 40): each
//! is refused at `kubectl apply` with a message, or explained in status for its generation; none
//! is ever Ready, and the operator (a real `oksa run` process) never panics.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use oksa::api::{BranchRelease, Project};
use serde_json::Value;
use support::fixtures::{TestProject, web_component};
use support::unique;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a file says must happen to it.
enum Expect {
    Rejected(String),
    Explained(String),
}

fn expectation(text: &str) -> Expect {
    let first = text.lines().next().unwrap_or_default();
    let expect = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("a corpus file starts with '# expect: ', not {first:?}"));
    match expect.strip_prefix("rejected: ") {
        Some(text) => Expect::Rejected(text.to_string()),
        None => Expect::Explained(expect.to_string()),
    }
}

/// The Ready condition of an object's status, if its status is for its current generation.
fn ready_for_generation(object: &DynamicObject) -> Option<(String, String, String)> {
    let status = object.data.get("status")?;
    if status["observedGeneration"].as_i64() != object.metadata.generation {
        return None;
    }
    let ready = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let field = |name: &str| ready[name].as_str().unwrap_or_default().to_string();
    Some((field("status"), field("reason"), field("message")))
}

fn api_for(client: &Client, kind: &str, namespace: &str) -> Api<DynamicObject> {
    if kind == "Project" {
        Api::all_with(client.clone(), &ApiResource::erase::<Project>(&()))
    } else {
        Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource::erase::<BranchRelease>(&()),
        )
    }
}

/// RFC 3339 edge cases for `pinnedUntil`, as the API server takes them: each one it stores must be
/// one Oksa reads (the BranchRelease gets a status), and the malformed ones are refused at apply.
/// Returns what went wrong.
async fn pinned_until_corpus(project: &TestProject) -> Vec<String> {
    let stored = [
        "2030-01-01T00:00:00Z",
        "2030-01-01T00:00:00.5Z",
        "2030-01-01T00:00:00.123456789Z",
        "2030-01-01T00:00:00+02:00",
        "2030-06-30T23:59:59-23:59",
    ];
    let refused = [
        "2030-01-01T00:00:00x0Z",
        "2030-01-01t00:00:00z",
        "2030-01-01 00:00:00Z",
        "2030-01-01T00:00:00",
        "2030-01-01T00:00:00+0200",
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:00:60Z",
        "2030-13-01T00:00:00Z",
        "20300101T000000Z",
        "2030-01-01T00:00:00.Z",
        "2030-01-01T00:00:00.1234567890Z",
    ];
    // Valid by the pattern, but no such day: stored or refused, it must never hide the object.
    let either = [
        "2030-02-30T00:00:00Z",
        "2031-02-29T00:00:00Z",
        "2030-04-31T12:00:00Z",
    ];
    let mut failures = Vec::new();
    let api = project.releases();
    for (i, pin) in stored.iter().chain(&refused).chain(&either).enumerate() {
        let name = format!("pin-{i}");
        let mut spec = serde_json::json!({"branch": name, "components": [web_component("web", "nginx")],
            "lifecycle": {"pinnedUntil": pin}});
        spec["project"] = serde_json::json!(project.name);
        let manifest = serde_json::json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": name}, "spec": spec});
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("corpus").force(),
                &Patch::Apply(&manifest),
            )
            .await;
        match applied {
            Err(error) if refused.contains(pin) || either.contains(pin) => {
                println!(
                    "pinnedUntil {pin:<34} refused at apply: {}",
                    oksa::apply::describe(&error)
                );
            }
            Err(error) => failures.push(format!(
                "pinnedUntil {pin}: refused, expected stored: {}",
                oksa::apply::describe(&error)
            )),
            Ok(_) if refused.contains(pin) => {
                failures.push(format!("pinnedUntil {pin}: stored, expected refused"))
            }
            Ok(_) => {
                let read = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        if let Ok(release) = api.get(&name).await
                            && release.status.as_ref().is_some_and(|s| {
                                s.observed_generation == release.metadata.generation
                            })
                        {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
                .await;
                match read {
                    Ok(()) => println!("pinnedUntil {pin:<34} stored and read"),
                    Err(_) => failures.push(format!(
                        "pinnedUntil {pin}: stored, but Oksa wrote no status (unreadable?)"
                    )),
                }
                let _ = api.delete(&name, &Default::default()).await;
            }
        }
    }
    failures
}

#[tokio::test]
async fn every_bad_manifest_is_refused_or_explained_and_none_is_ever_ready() {
    support::operator::use_external();
    let log_path = format!("{}/oksa-bad-input.log", env!("CARGO_TARGET_TMPDIR"));
    let mut operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_oksa"))
            .args([
                "run",
                "--listen",
                &format!("127.0.0.1:{}", support::free_port()),
            ])
            .env("KUBECONFIG", support::kubeconfig_path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("starting oksa run"),
    );

    let project = TestProject::create("corpus", serde_json::json!({})).await;
    let other = TestProject::create("corpus-other", serde_json::json!({})).await;
    // A branch the corpus collides with: branch `main`, Deployment `main-web-x`.
    project
        .create_ready(
            "base",
            serde_json::json!({"branch": "main", "components": [web_component("web-x", "nginx")]}),
        )
        .await;

    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());

    let client = project.client.clone();
    let mut failures = Vec::new();
    let mut stored = Vec::new();
    let mut table = Vec::new();
    for path in &files {
        let file = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let name = unique(&file.chars().take(40).collect::<String>());
        let rendered = text
            .replace("DOMAIN", &project.domain)
            .replace("PROJECT", &project.name)
            .replace("OTHER", &other.name)
            .replace("NAME", &name);
        let manifest: Value = serde_yaml_ng::from_str(&rendered)
            .unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
        let kind = manifest["kind"].as_str().unwrap().to_string();
        let api = api_for(&client, &kind, &project.namespace);
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("corpus").force(),
                &Patch::Apply(&manifest),
            )
            .await;
        match (expectation(&text), applied) {
            (Expect::Rejected(part), Err(error)) => {
                let message = oksa::apply::describe(&error);
                if !message.contains(&part) {
                    failures.push(format!("{file}: refused, but without {part:?}: {message}"));
                }
                table.push(format!("{file:<40} refused at apply: {message}"));
            }
            (Expect::Rejected(_), Ok(_)) => {
                failures.push(format!("{file}: the API server accepted it"));
                stored.push((kind, name));
            }
            (Expect::Explained(reason), Err(error)) => failures.push(format!(
                "{file}: expected {reason} in status, but it was refused: {}",
                oksa::apply::describe(&error)
            )),
            (Expect::Explained(reason), Ok(_)) => {
                let seen = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        if let Ok(object) = api.get(&name).await
                            && let Some(ready) = ready_for_generation(&object)
                            && ready.1 == reason
                        {
                            return ready;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
                .await;
                match seen {
                    Ok((status, _, message)) if status == "False" => {
                        table.push(format!("{file:<40} {reason}: {message}"));
                    }
                    Ok((status, _, _)) => failures.push(format!("{file}: Ready is {status}")),
                    Err(_) => {
                        let last = api.get(&name).await.ok().map(|o| o.data["status"].clone());
                        failures.push(format!("{file}: no {reason} in status; last: {last:?}"));
                    }
                }
                stored.push((kind, name));
            }
        }
    }
    println!("{}", table.join("\n"));

    // None of the stored ones is Ready, even after the operator has had time for all of them.
    for (kind, name) in &stored {
        let api = api_for(&client, kind, &project.namespace);
        let object = api.get(name).await.unwrap();
        if ready_for_generation(&object).is_some_and(|r| r.0 == "True") {
            failures.push(format!("{kind} {name} became Ready"));
        }
        let _ = api.delete(name, &Default::default()).await;
    }
    failures.extend(pinned_until_corpus(&project).await);

    // The operator is still running and never panicked.
    assert!(operator.0.try_wait().unwrap().is_none(), "oksa run exited");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("panicked"), "the operator panicked:\n{log}");
    assert!(
        failures.is_empty(),
        "{} of {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    project.cleanup().await;
    other.cleanup().await;
}
