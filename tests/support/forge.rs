//! The forge of the forge tests: the local plane's Gitea (or any Gitea given by
//! `OKSA_TEST_GITEA_URL` and `OKSA_TEST_GITEA_TOKEN`), driven through its API the way a developer's
//! pushes, merges and deletions would change it, and a relay in front of it that a test can take
//! down to play a forge outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Method;
use oksa::api::ForgeProvider;
use oksa::forge::{ForgeClient, Spent};
use serde_json::{Value, json};

pub struct Gitea {
    pub url: String,
    pub token: String,
    client: ForgeClient,
}

impl Gitea {
    /// The forge under test; None on a cluster given by `KUBECONFIG` without one.
    pub fn find() -> Option<Gitea> {
        let (url, token) = match (
            std::env::var("OKSA_TEST_GITEA_URL"),
            std::env::var("OKSA_TEST_GITEA_TOKEN"),
        ) {
            (Ok(url), Ok(token)) => (url, token),
            _ => {
                // The local plane's, also when KUBECONFIG names its kubeconfig.
                let state = super::plane()
                    .state
                    .clone()
                    .or_else(|| super::plane().kubeconfig.parent().map(Into::into))?;
                (
                    std::fs::read_to_string(state.join("gitea-url")).ok()?,
                    std::fs::read_to_string(state.join("gitea/token")).ok()?,
                )
            }
        };
        let (url, token) = (url.trim().to_string(), token.trim().to_string());
        let client = ForgeClient::new(ForgeProvider::Gitea, &token).expect("a forge client");
        Some(Gitea { url, token, client })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (body, _) = self
            .client
            .get(&self.api(path), &mut Spent::default())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        serde_json::from_slice(&body).unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> Value {
        let answer = self
            .client
            .write(
                method.clone(),
                &self.api(path),
                &body,
                &mut Spent::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        serde_json::from_slice(&answer).unwrap_or(Value::Null)
    }

    /// A new repository `oksa/<name>` with a first commit on `main`.
    pub async fn create_repository(&self, name: &str) -> String {
        self.send(
            Method::POST,
            "/user/repos",
            json!({"name": name, "auto_init": true, "default_branch": "main"}),
        )
        .await;
        format!("oksa/{name}")
    }

    /// A branch from `main` with a commit of its own; the commit's SHA.
    pub async fn push_branch(&self, repository: &str, branch: &str) -> String {
        self.send(
            Method::POST,
            &format!("/repos/{repository}/branches"),
            json!({"new_branch_name": branch, "old_branch_name": "main"}),
        )
        .await;
        self.commit(repository, branch, &format!("{branch}.txt"))
            .await
    }

    /// A commit adding `file` to `branch`; its SHA.
    pub async fn commit(&self, repository: &str, branch: &str, file: &str) -> String {
        use base64::Engine;
        let created = self
            .send(
                Method::POST,
                &format!("/repos/{repository}/contents/{file}"),
                json!({
                    "branch": branch,
                    "message": format!("add {file}"),
                    "content": base64::engine::general_purpose::STANDARD.encode(file),
                }),
            )
            .await;
        created["commit"]["sha"].as_str().unwrap().to_string()
    }

    pub async fn delete_branch(&self, repository: &str, branch: &str) {
        self.send(
            Method::DELETE,
            &format!("/repos/{repository}/branches/{branch}"),
            Value::Null,
        )
        .await;
    }

    pub async fn open_pull_request(&self, repository: &str, branch: &str) -> i64 {
        let pull = self
            .send(
                Method::POST,
                &format!("/repos/{repository}/pulls"),
                json!({"head": branch, "base": "main", "title": format!("Add {branch}")}),
            )
            .await;
        pull["number"].as_i64().unwrap()
    }

    pub async fn merge(&self, repository: &str, number: i64) {
        // Gitea checks a pull request's mergeability in the background (again after each change
        // of its base), and refuses a merge meanwhile: 405, "try again later".
        let path = format!("/repos/{repository}/pulls/{number}/merge");
        super::eventually(std::time::Duration::from_secs(30), "the merge", || async {
            let merged = self
                .client
                .write(
                    Method::POST,
                    &self.api(&path),
                    &json!({"Do": "merge"}),
                    &mut Spent::default(),
                )
                .await;
            match merged {
                Ok(_) => Some(()),
                Err(oksa::forge::ForgeError::Refused { status: 405, .. }) => None,
                Err(error) => panic!("POST {path}: {error}"),
            }
        })
        .await;
    }

    /// Signed webhooks of branch deletions and pull requests to `url`.
    pub async fn add_webhook(&self, repository: &str, url: &str, secret: &str) {
        self.send(
            Method::POST,
            &format!("/repos/{repository}/hooks"),
            json!({
                "type": "gitea",
                "active": true,
                "events": ["create", "delete", "push", "pull_request"],
                "config": {"url": url, "content_type": "json", "secret": secret},
            }),
        )
        .await;
    }

    /// Every status of `commit`, oldest first.
    pub async fn statuses(&self, repository: &str, commit: &str) -> Vec<CommitStatus> {
        let statuses = self
            .get(&format!("/repos/{repository}/statuses/{commit}?limit=50"))
            .await;
        let mut statuses: Vec<(i64, CommitStatus)> = statuses
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let text = |key: &str| s[key].as_str().unwrap_or_default().to_string();
                (
                    s["id"].as_i64().unwrap_or_default(),
                    CommitStatus {
                        context: text("context"),
                        // Gitea says `status`, GitHub `state`.
                        state: s["status"]
                            .as_str()
                            .or(s["state"].as_str())
                            .unwrap_or_default()
                            .to_string(),
                        description: text("description"),
                        target_url: text("target_url"),
                    },
                )
            })
            .collect();
        statuses.sort_by_key(|(id, _)| *id);
        statuses.into_iter().map(|(_, s)| s).collect()
    }

    /// The bodies of a pull request's comments.
    pub async fn comments(&self, repository: &str, number: i64) -> Vec<String> {
        let comments = self
            .get(&format!("/repos/{repository}/issues/{number}/comments"))
            .await;
        comments
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub context: String,
    pub state: String,
    pub description: String,
    pub target_url: String,
}

/// A TCP relay to the forge on a loopback port of its own: `set_down(true)` cuts every open
/// connection and refuses new ones, as an unreachable forge would.
pub struct Relay {
    pub url: String,
    down: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    pub async fn start(target: &str) -> Relay {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let is_down = down.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                // Only a cut after this connection opened closes it.
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay { url, down, cut }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}
