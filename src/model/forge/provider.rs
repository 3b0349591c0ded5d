//! What differs between forges, as data: where their API is, how it pages, how it reads. Gitea
//! (and Forgejo) took GitHub's shapes for branches, pull requests, commit statuses, comments and
//! webhooks, so one module serves both; a forge with other shapes (GitLab) would be another
//! module behind the same three functions: `urls`, `parse_*`, `auth_header`.

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::gone::PullRequest;
use crate::api::{Forge, ForgeProvider};

const GITHUB_API: &str = "https://api.github.com";

/// The API addresses of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    base: String,
    repository: String,
    page_size: &'static str,
    /// Newest updates first.
    newest_first: &'static str,
}

impl Urls {
    pub fn of(forge: &Forge) -> Urls {
        let (base, page_size, newest_first) = match forge.provider {
            ForgeProvider::Github => (
                forge.url.as_deref().unwrap_or(GITHUB_API).to_string(),
                "per_page=100",
                "sort=updated&direction=desc",
            ),
            // Gitea serves at most 50 a page unless its admin raised MAX_RESPONSE_ITEMS.
            ForgeProvider::Gitea => (
                format!(
                    "{}/api/v1",
                    forge
                        .url
                        .as_deref()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                ),
                "limit=50",
                "sort=recentupdate",
            ),
        };
        Urls {
            repository: format!("{}/repos/{}", base.trim_end_matches('/'), forge.repository),
            base: forge.url.clone().unwrap_or_else(|| GITHUB_API.to_string()),
            page_size,
            newest_first,
        }
    }

    /// The forge's address as the Project gives it (GitHub's API host by default).
    pub fn base(&self) -> String {
        self.base.clone()
    }
    pub fn repository(&self) -> String {
        self.repository.clone()
    }
    pub fn branches(&self) -> String {
        format!("{}/branches?{}", self.repository, self.page_size)
    }
    pub fn open_pull_requests(&self) -> String {
        format!("{}/pulls?state=open&{}", self.repository, self.page_size)
    }
    /// The most recently updated closed ones: one page is enough between two syncs.
    pub fn recently_closed_pull_requests(&self) -> String {
        format!(
            "{}/pulls?state=closed&{}&{}",
            self.repository, self.newest_first, self.page_size
        )
    }
    pub fn commit_status(&self, sha: &str) -> String {
        format!("{}/statuses/{sha}", self.repository)
    }
    pub fn pull_request_comments(&self, number: i64) -> String {
        format!(
            "{}/issues/{number}/comments?{}",
            self.repository, self.page_size
        )
    }
    pub fn new_comment(&self, number: i64) -> String {
        format!("{}/issues/{number}/comments", self.repository)
    }
    pub fn comment(&self, id: i64) -> String {
        format!("{}/issues/comments/{id}", self.repository)
    }
}

/// The `Authorization` header for a token.
pub fn auth_header(provider: ForgeProvider, token: &str) -> String {
    match provider {
        ForgeProvider::Github => format!("Bearer {token}"),
        ForgeProvider::Gitea => format!("token {token}"),
    }
}

/// The next page's address from a `Link` header (both forges page this way).
pub fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[derive(Deserialize)]
struct RepositoryJson {
    default_branch: String,
}

#[derive(Deserialize)]
struct BranchJson {
    name: String,
}

#[derive(Deserialize)]
struct PullJson {
    number: i64,
    state: String,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    closed_at: Option<String>,
    head: HeadJson,
}

#[derive(Deserialize)]
struct HeadJson {
    #[serde(rename = "ref")]
    ref_: String,
}

#[derive(Deserialize)]
pub struct CommentJson {
    pub id: i64,
    #[serde(default)]
    pub body: String,
}

pub fn parse_default_branch(body: &[u8]) -> serde_json::Result<String> {
    serde_json::from_slice::<RepositoryJson>(body).map(|r| r.default_branch)
}

pub fn parse_branches(body: &[u8]) -> serde_json::Result<Vec<String>> {
    serde_json::from_slice::<Vec<BranchJson>>(body).map(|b| b.into_iter().map(|b| b.name).collect())
}

pub fn parse_pull_requests(body: &[u8]) -> serde_json::Result<Vec<PullRequest>> {
    let pulls: Vec<PullJson> = serde_json::from_slice(body)?;
    Ok(pulls
        .into_iter()
        .map(|p| PullRequest {
            number: p.number,
            head: p.head.ref_,
            open: p.state == "open",
            // Gitea says `merged`; GitHub's list says only `merged_at`.
            merged: p.merged.unwrap_or(false) || p.merged_at.is_some(),
            closed_at: p.closed_at.and_then(|t| t.parse::<Timestamp>().ok()),
        })
        .collect())
}

pub fn parse_comments(body: &[u8]) -> serde_json::Result<Vec<CommentJson>> {
    serde_json::from_slice(body)
}

pub fn parse_comment(body: &[u8]) -> serde_json::Result<CommentJson> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge(provider: ForgeProvider, url: Option<&str>) -> Forge {
        Forge {
            provider,
            url: url.map(str::to_string),
            repository: "acme/shop".into(),
            credentials_secret: "forge".into(),
            cleanup: None,
            report: None,
            sync_every: None,
        }
    }

    #[test]
    fn gitea_lives_under_api_v1_and_github_at_its_api_host() {
        let gitea = Urls::of(&forge(
            ForgeProvider::Gitea,
            Some("https://git.example.com/"),
        ));
        assert_eq!(
            gitea.branches(),
            "https://git.example.com/api/v1/repos/acme/shop/branches?limit=50"
        );
        let github = Urls::of(&forge(ForgeProvider::Github, None));
        assert_eq!(
            github.commit_status("abc"),
            "https://api.github.com/repos/acme/shop/statuses/abc"
        );
        assert_eq!(
            github.comment(7),
            "https://api.github.com/repos/acme/shop/issues/comments/7"
        );
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let link = r#"<https://x/y?page=2>; rel="next", <https://x/y?page=9>; rel="last""#;
        assert_eq!(next_page(link).as_deref(), Some("https://x/y?page=2"));
        assert_eq!(next_page(r#"<https://x/y?page=1>; rel="prev""#), None);
    }

    #[test]
    fn pull_requests_read_alike_from_both_forges() {
        let github = br#"[{"number":3,"state":"closed","merged_at":"2026-01-02T00:00:00Z",
            "closed_at":"2026-01-02T00:00:00Z","head":{"ref":"feature/a"}}]"#;
        let gitea = br#"[{"number":3,"state":"closed","merged":true,"merged_at":null,
            "closed_at":"2026-01-02T00:00:00Z","head":{"ref":"feature/a"}}]"#;
        let read = parse_pull_requests(github).unwrap();
        assert_eq!(read, parse_pull_requests(gitea).unwrap());
        assert!(read[0].merged && !read[0].open);
        assert_eq!(read[0].head, "feature/a");
    }
}
