//! The forge in the loop, against a real forge: the local plane's Gitea. Branches deleted and pull
//! requests merged there take their environments with them (by webhook, and by the periodic sync
//! when no webhook comes), through expiry's safe path; forged webhooks change nothing; each
//! branch's commit status and pull-request comment follow its state; a forge that is down slows
//! no reconcile, and the reports catch up once it is back.

mod support;

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use oksa::api::Phase;
use oksa::api::conditions::{EXPIRING, FORGE_CONNECTED, GONE_FROM_FORGE};
use serde_json::{Value, json};
use sha2::Sha256;
use support::fixtures::{TIMEOUT, TestProject, condition, release_object, web_branch};
use support::forge::{Gitea, Relay};
use support::{eventually, unique, wait_deleted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where this binary's operator reads forge credentials (its "own namespace").
const SECRETS_NAMESPACE: &str = "oksa-forge-tests";
const WEBHOOK_SECRET: &str = "a-webhook-secret";

/// The forge, or None (said, not passed in silence) on a cluster without one.
fn forge() -> Option<Gitea> {
    support::operator::set_forge_secrets_namespace(SECRETS_NAMESPACE);
    let forge = Gitea::find();
    if forge.is_none() {
        println!("skipped: no forge (the local plane's Gitea, or OKSA_TEST_GITEA_URL and _TOKEN)");
    }
    forge
}

/// A Project connected to `repository` (at `url`, the forge's own address unless a relay's),
/// with its credentials Secret listing it, and the forge's webhook pointing at the operator when
/// `webhook`.
async fn connect(
    gitea: &Gitea,
    repository: &str,
    url: &str,
    forge: Value,
    webhook: bool,
) -> TestProject {
    let name = unique("forge");
    let client = support::client().await;
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(SECRETS_NAMESPACE.into()),
                    labels: Some([(support::TEST_LABEL.to_string(), "true".to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(
                [(
                    oksa::api::FORGE_PROJECTS_ANNOTATION.to_string(),
                    name.clone(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        data: Some(
            [
                (
                    "token".to_string(),
                    ByteString(gitea.token.clone().into_bytes()),
                ),
                (
                    "webhookSecret".to_string(),
                    ByteString(WEBHOOK_SECRET.as_bytes().to_vec()),
                ),
                // Pinned: this token goes to this forge only.
                ("url".to_string(), ByteString(url.as_bytes().to_vec())),
            ]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client, SECRETS_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the credentials Secret");
    let mut spec = json!({"provider": "gitea", "url": url, "repository": repository, "credentialsSecret": name});
    spec.as_object_mut()
        .unwrap()
        .extend(forge.as_object().cloned().unwrap_or_default());
    let project = TestProject::create_named(&name, json!({"forge": spec})).await;
    project
        .wait_status("Ready", |s| s.namespace.is_some())
        .await;
    if webhook {
        let receiver = support::operator::forge_webhook_address();
        gitea
            .add_webhook(
                repository,
                &format!("http://{receiver}/forge/{}", project.name),
                WEBHOOK_SECRET,
            )
            .await;
    }
    project
}

/// The ForgeConnected condition once it is False for a reason other than not being tried yet.
async fn forge_refused(project: &TestProject) -> (String, String) {
    let project = project
        .wait_status("ForgeConnected False", |s| {
            s.conditions.iter().any(|c| {
                c.type_ == FORGE_CONNECTED && c.status == "False" && c.reason != "Connecting"
            })
        })
        .await;
    let said = project
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == FORGE_CONNECTED)
        .unwrap();
    (said.reason, said.message)
}

async fn forge_connected(project: &TestProject) {
    project
        .wait_status("ForgeConnected", |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == FORGE_CONNECTED && c.status == "True")
        })
        .await;
}

/// Waits for the ExpiringSoon warning that the forge says the branch is gone.
async fn warned_gone(project: &TestProject, release: &str, says: &str) {
    let says = says.to_string();
    project
        .wait_release(release, "warned: gone from the forge", move |s| {
            condition(s, EXPIRING).is_some_and(|(status, reason, message)| {
                status == "True" && reason == GONE_FROM_FORGE && message.contains(&says)
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_deleted_in_the_forge_goes_with_a_warning_and_its_siblings_stay() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    gitea.push_branch(&repository, "feature-a").await;
    gitea.push_branch(&repository, "feature-b").await;
    // Listed once an hour: only the webhook can explain a cleanup within the test's minute.
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "1h", "cleanup": {"after": "5s"}}),
        true,
    )
    .await;
    forge_connected(&project).await;
    project
        .create_ready("feature-a", web_branch("feature-a", "nginx"))
        .await;
    project
        .create_ready("feature-b", web_branch("feature-b", "nginx"))
        .await;

    gitea.delete_branch(&repository, "feature-a").await;
    warned_gone(
        &project,
        "feature-a",
        "branch `feature-a` was deleted in the forge",
    )
    .await;
    wait_deleted(&project.releases(), "feature-a", TIMEOUT).await;
    let sibling = project.releases().get("feature-b").await.unwrap();
    let status = sibling.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(condition(&status, EXPIRING).unwrap().0, "False");
    assert!(
        project
            .event_reasons("feature-a")
            .await
            .contains(&"Expired".to_string()),
        "a Warning event said it went"
    );
    if support::operator::metrics_readable("the webhook counted") {
        let metrics = support::operator::metrics_text().unwrap();
        assert!(
            metrics.lines().any(
                |l| l.starts_with("oksa_forge_webhooks_total{result=\"sync\"}")
                    && !l.ends_with(" 0")
            ),
            "{metrics}"
        );
    }
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_webhooks_the_periodic_sync_finds_a_deleted_branch() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    gitea.push_branch(&repository, "feature-a").await;
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "10s", "cleanup": {"after": "1s"}}),
        false,
    )
    .await;
    project
        .create_ready("feature-a", web_branch("feature-a", "nginx"))
        .await;
    gitea.delete_branch(&repository, "feature-a").await;
    wait_deleted(&project.releases(), "feature-a", TIMEOUT).await;
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merged_pull_request_takes_its_environment_and_a_gitops_managed_one_is_kept_expired() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    gitea.push_branch(&repository, "feature-m").await;
    gitea.push_branch(&repository, "feature-g").await;
    let merged = gitea.open_pull_request(&repository, "feature-m").await;
    let kept = gitea.open_pull_request(&repository, "feature-g").await;
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "1h", "cleanup": {"after": "2s"}}),
        true,
    )
    .await;
    project
        .create_ready("feature-m", web_branch("feature-m", "nginx"))
        .await;
    // Flux's mark: expiry (and so the forge) never deletes what a GitOps tool would recreate.
    let mut spec = web_branch("feature-g", "nginx");
    spec["project"] = json!(project.name);
    let mut gitops = release_object("feature-g", spec);
    gitops.metadata.labels = Some(
        [(
            "kustomize.toolkit.fluxcd.io/name".to_string(),
            "branches".to_string(),
        )]
        .into(),
    );
    project
        .releases()
        .patch(
            "feature-g",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&gitops),
        )
        .await
        .unwrap();
    project
        .wait_release("feature-g", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;

    // The forge and Kubernetes both keep whole seconds: a merge in the very second the
    // environment was created cannot be told to come after it (and is not acted on), so the
    // merges wait for the next second.
    let created = project.releases().get("feature-g").await.unwrap();
    let created = created.metadata.creation_timestamp.unwrap().0;
    eventually(
        Duration::from_secs(5),
        "the second after the creation",
        || async {
            (k8s_openapi::jiff::Timestamp::now().as_second() > created.as_second()).then_some(())
        },
    )
    .await;
    gitea.merge(&repository, merged).await;
    gitea.merge(&repository, kept).await;
    wait_deleted(&project.releases(), "feature-m", TIMEOUT).await;
    let expired = project
        .wait_release("feature-g", "kept, asleep, Expired", |s| {
            s.phase == Some(Phase::Expired)
        })
        .await;
    let asleep = condition(expired.status.as_ref().unwrap(), "Asleep").unwrap();
    assert!(
        asleep
            .2
            .contains(&format!("pull request #{kept} of `feature-g` was merged")),
        "{asleep:?}"
    );
    assert_eq!(project.replicas("feature-g-web").await, Some(0));
    project.cleanup().await;
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// POSTs a delivery to the operator's receiver; the HTTP status.
async fn deliver(project: &str, event: &str, signature: Option<&str>, body: &str) -> u16 {
    let address = support::operator::forge_webhook_address();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let signature = signature
        .map(|s| format!("X-Hub-Signature-256: {s}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /forge/{project} HTTP/1.1\r\nHost: oksa\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: {event}\r\n{signature}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn syncs_of(project: &str) -> u64 {
    let text = support::operator::metrics_text().unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("oksa_forge_requests_total{")
                && l.contains(&format!("project=\"{project}\""))
                && l.contains("purpose=\"sync\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_or_unsigned_webhook_changes_nothing() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    gitea.push_branch(&repository, "feature-a").await;
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "1h", "cleanup": {"after": "1s"}}),
        false,
    )
    .await;
    forge_connected(&project).await;
    project
        .create_ready("feature-a", web_branch("feature-a", "nginx"))
        .await;
    let delete =
        json!({"ref": "feature-a", "ref_type": "branch", "repository": {"full_name": repository}})
            .to_string();
    assert_eq!(
        deliver(&project.name, "delete", None, &delete).await,
        401,
        "unsigned"
    );
    assert_eq!(
        deliver(
            &project.name,
            "delete",
            Some(&signature("guessed", delete.as_bytes())),
            &delete
        )
        .await,
        401,
        "signed with another secret"
    );
    let tampered = delete.replace("feature-a", "feature-b");
    assert_eq!(
        deliver(
            &project.name,
            "delete",
            Some(&signature(WEBHOOK_SECRET, delete.as_bytes())),
            &tampered
        )
        .await,
        401,
        "a body changed after signing"
    );
    // Even a signed delivery only asks for a sync: the forge's own list says the branch is there.
    let before = syncs_of(&project.name);
    assert_eq!(
        deliver(
            &project.name,
            "delete",
            Some(&signature(WEBHOOK_SECRET, delete.as_bytes())),
            &delete
        )
        .await,
        202
    );
    if support::operator::metrics_readable("the signed delivery's sync ran") {
        eventually(Duration::from_secs(30), "the sync it asked for", || async {
            (syncs_of(&project.name) > before).then_some(())
        })
        .await;
    }
    let release = project.releases().get("feature-a").await.unwrap();
    let status = release.status.unwrap();
    assert_eq!(
        condition(&status, EXPIRING).unwrap().0,
        "False",
        "{status:?}"
    );
    assert_eq!(status.phase, Some(Phase::Ready));
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commit_status_moves_from_pending_to_success_with_the_url_or_to_failure_with_the_reason()
 {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    let good = gitea.push_branch(&repository, "feature-good").await;
    let broken = gitea.push_branch(&repository, "feature-broken").await;
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "1h"}),
        false,
    )
    .await;
    let mut spec = web_branch("feature-good", "nginx");
    spec["commit"] = json!(good);
    let ready = project.create_ready("feature-good", spec).await;
    let url = ready.status.unwrap().url.unwrap();
    let statuses = eventually(TIMEOUT, "a success status on the commit", || async {
        let statuses = gitea.statuses(&repository, &good).await;
        statuses
            .iter()
            .any(|s| s.state == "success")
            .then_some(statuses)
    })
    .await;
    let ours: Vec<_> = statuses
        .iter()
        .filter(|s| s.context == "oksa/feature-good")
        .collect();
    assert_eq!(
        ours.first().map(|s| s.state.as_str()),
        Some("pending"),
        "{statuses:?}"
    );
    let last = ours.last().unwrap();
    assert_eq!(last.state, "success");
    assert_eq!(last.target_url, url);
    assert!(last.description.contains(&url), "{last:?}");
    // Written per verdict, not per reconcile: one pending, one success.
    assert_eq!(ours.len(), 2, "{statuses:?}");

    let mut spec = web_branch("feature-broken", "fault.oksa.test/pull-error");
    spec["commit"] = json!(broken);
    project.create_release("feature-broken", spec).await;
    let failed = eventually(TIMEOUT, "a failure status on the broken commit", || async {
        gitea
            .statuses(&repository, &broken)
            .await
            .into_iter()
            .find(|s| s.state == "failure")
    })
    .await;
    let stalled = project
        .wait_release("feature-broken", "Stalled", |s| {
            condition(s, "Stalled").is_some_and(|c| c.0 == "True")
        })
        .await;
    let reason = condition(stalled.status.as_ref().unwrap(), "Stalled")
        .unwrap()
        .2;
    assert!(
        failed
            .description
            .starts_with(&reason.chars().take(100).collect::<String>()),
        "{failed:?} vs {reason}"
    );
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pull_request_comment_is_one_comment_kept_up_to_date() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    gitea.push_branch(&repository, "feature-c").await;
    let number = gitea.open_pull_request(&repository, "feature-c").await;
    let project = connect(
        &gitea,
        &repository,
        &gitea.url,
        json!({"syncEvery": "1h"}),
        true,
    )
    .await;
    let ready = project
        .create_ready("feature-c", web_branch("feature-c", "nginx"))
        .await;
    let url = ready.status.unwrap().url.unwrap();
    let ours = |comments: Vec<String>| -> Vec<String> {
        comments
            .into_iter()
            .filter(|c| c.starts_with("<!-- oksa:"))
            .collect()
    };
    eventually(TIMEOUT, "a comment saying Ready with the URL", || async {
        let comments = ours(gitea.comments(&repository, number).await);
        comments
            .iter()
            .any(|c| c.contains("Ready") && c.contains(&url))
            .then_some(())
    })
    .await;
    // Put to sleep by hand: the same comment says so.
    project
        .releases()
        .patch(
            "feature-c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let comments = eventually(TIMEOUT, "the comment saying Asleep", || async {
        let comments = ours(gitea.comments(&repository, number).await);
        comments
            .iter()
            .any(|c| c.contains("Asleep"))
            .then_some(comments)
    })
    .await;
    assert_eq!(comments.len(), 1, "one comment, updated: {comments:?}");
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forge_that_is_down_slows_no_reconcile_and_the_reports_catch_up() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    let commit = gitea.push_branch(&repository, "feature-d").await;
    let relay = Relay::start(&gitea.url).await;
    relay.set_down(true);
    let project = connect(
        &gitea,
        &repository,
        &relay.url,
        json!({"syncEvery": "10s"}),
        false,
    )
    .await;
    let mut spec = web_branch("feature-d", "nginx");
    spec["commit"] = json!(commit);
    // Ready while the forge is unreachable, and the Project says why nothing is reported.
    project.create_ready("feature-d", spec).await;
    let (reason, message) = forge_refused(&project).await;
    assert!(
        matches!(reason.as_str(), "Unreachable" | "ReportFailed"),
        "{reason}: {message}"
    );
    assert!(gitea.statuses(&repository, &commit).await.is_empty());

    relay.set_down(false);
    eventually(
        Duration::from_secs(120),
        "the success status, once the forge is back",
        || async {
            gitea
                .statuses(&repository, &commit)
                .await
                .into_iter()
                .find(|s| s.state == "success")
        },
    )
    .await;
    forge_connected(&project).await;
    eventually(TIMEOUT, "status.forge records the report", || {
        let releases = project.releases();
        async move {
            let release = releases.get("feature-d").await.ok()?;
            let forge = release.status?.forge?;
            (forge.state.as_deref() == Some("success")).then_some(())
        }
    })
    .await;
    project.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_used_only_by_the_projects_and_for_the_forge_their_secret_names() {
    let Some(gitea) = forge() else { return };
    let repository = gitea.create_repository(&unique("shop")).await;
    // The Secret pins the forge's address: a Project pointing elsewhere does not get the token.
    let elsewhere = connect(&gitea, &repository, &gitea.url, json!({}), false).await;
    elsewhere
        .api()
        .patch(
            &elsewhere.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"forge": {"url": "http://127.0.0.1:9"}}})),
        )
        .await
        .unwrap();
    let (reason, message) = forge_refused(&elsewhere).await;
    assert_eq!(reason, "CredentialsNotAllowed", "{message}");
    assert!(message.contains("is for the forge at"), "{message}");
    // Another Project naming that Secret is not listed in it.
    let borrower = TestProject::create(
        "borrower",
        json!({"forge": {"provider": "gitea", "url": gitea.url, "repository": repository, "credentialsSecret": elsewhere.name}}),
    )
    .await;
    let (reason, message) = forge_refused(&borrower).await;
    assert_eq!(reason, "CredentialsNotAllowed", "{message}");
    assert!(
        message.contains(oksa::api::FORGE_PROJECTS_ANNOTATION),
        "{message}"
    );
    borrower.cleanup().await;
    elsewhere.cleanup().await;
}
