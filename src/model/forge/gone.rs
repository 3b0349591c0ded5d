//! Which branches the forge says are gone: deleted, or their pull request merged or closed after
//! their environment was created. Only what the forge's lists prove: a list that cannot be
//! trusted (no default branch in it) or that would take away most of a project at once decides
//! nothing, and says why.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

/// A pull request as the forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: i64,
    /// The branch it merges from (in the same repository).
    pub head: String,
    pub open: bool,
    pub merged: bool,
    pub closed_at: Option<Timestamp>,
}

/// What the forge said in one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub default_branch: String,
    pub branches: BTreeSet<String>,
    /// The open pull requests, and the most recently closed ones.
    pub pull_requests: Vec<PullRequest>,
}

impl Listing {
    /// The open pull request of `branch`, if any (the newest when there are several).
    pub fn open_pull_request(&self, branch: &str) -> Option<i64> {
        self.pull_requests
            .iter()
            .filter(|p| p.open && p.head == branch)
            .map(|p| p.number)
            .max()
    }
}

/// A branch environment the forge may take away.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Its key (namespace/name).
    pub key: String,
    pub branch: &'a str,
    pub created: Timestamp,
}

/// The Project's rules.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    pub production_branch: Option<&'a str>,
    /// Exact names, or prefixes ending in `*`.
    pub keep: &'a [String],
}

/// How many at once is "most of a project": more than this many, and more than half.
const BULK_FLOOR: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Key → why it is gone ("branch feature/x was deleted", "pull request #4 was merged").
    pub gone: BTreeMap<String, String>,
    /// Set when the listing decided nothing, and why.
    pub held: Option<String>,
}

pub fn judge(listing: &Listing, candidates: &[Candidate], rules: &Rules) -> Judgement {
    if listing.default_branch.is_empty() || !listing.branches.contains(&listing.default_branch) {
        return Judgement {
            gone: BTreeMap::new(),
            held: Some(format!(
                "the forge's branch list does not contain the default branch `{}`: it cannot be \
                 trusted (does the token still read the repository?); nothing is cleaned up",
                listing.default_branch
            )),
        };
    }
    let kept = |branch: &str| {
        Some(branch) == rules.production_branch
            || branch == listing.default_branch
            || rules.keep.iter().any(|pattern| matches(pattern, branch))
    };
    let considered: Vec<&Candidate> = candidates.iter().filter(|c| !kept(c.branch)).collect();
    let mut gone = BTreeMap::new();
    for candidate in &considered {
        if let Some(why) = why_gone(listing, candidate) {
            gone.insert(candidate.key.clone(), why);
        }
    }
    if gone.len() > BULK_FLOOR && gone.len() * 2 > considered.len() {
        return Judgement {
            held: Some(format!(
                "the forge says {} of {} branches are gone at once: too many to trust in one step \
                 (a repository renamed, a token with less access?); nothing is cleaned up. Delete \
                 the BranchReleases by hand if this is right",
                gone.len(),
                considered.len()
            )),
            gone: BTreeMap::new(),
        };
    }
    Judgement { gone, held: None }
}

fn why_gone(listing: &Listing, candidate: &Candidate) -> Option<String> {
    if !listing.branches.contains(candidate.branch) {
        return Some(format!(
            "branch `{}` was deleted in the forge",
            candidate.branch
        ));
    }
    if listing.open_pull_request(candidate.branch).is_some() {
        return None;
    }
    // Closed after the environment was made: it was made for that pull request (or before it).
    // One created after the close is a new deploy of the branch and stays.
    listing
        .pull_requests
        .iter()
        .filter(|p| !p.open && p.head == candidate.branch)
        .filter(|p| p.closed_at.is_some_and(|at| at > candidate.created))
        .max_by_key(|p| p.closed_at)
        .map(|p| {
            format!(
                "pull request #{} of `{}` was {} in the forge",
                p.number,
                candidate.branch,
                if p.merged { "merged" } else { "closed" }
            )
        })
}

/// `release/*` matches by prefix; anything else exactly.
fn matches(pattern: &str, branch: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => branch.starts_with(prefix),
        None => pattern == branch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn listing(branches: &[&str], pulls: Vec<PullRequest>) -> Listing {
        Listing {
            default_branch: "main".into(),
            branches: branches.iter().map(|b| b.to_string()).collect(),
            pull_requests: pulls,
        }
    }

    fn candidate<'a>(branch: &'a str, created: &str) -> Candidate<'a> {
        Candidate {
            key: format!("shop/{branch}"),
            branch,
            created: at(created),
        }
    }

    fn closed(number: i64, head: &str, merged: bool, when: &str) -> PullRequest {
        PullRequest {
            number,
            head: head.into(),
            open: false,
            merged,
            closed_at: Some(at(when)),
        }
    }

    #[test]
    fn a_deleted_branch_is_gone_and_a_listed_one_stays() {
        let judged = judge(
            &listing(&["main", "feature/a"], vec![]),
            &[
                candidate("feature/a", "2026-01-01T00:00:00Z"),
                candidate("feature/b", "2026-01-01T00:00:00Z"),
            ],
            &Rules::default(),
        );
        assert_eq!(judged.held, None);
        assert_eq!(
            judged.gone.get("shop/feature/b").map(String::as_str),
            Some("branch `feature/b` was deleted in the forge")
        );
        assert!(!judged.gone.contains_key("shop/feature/a"));
    }

    #[test]
    fn a_pull_request_closed_after_the_environment_was_made_takes_it_unless_another_is_open() {
        let candidates = [
            candidate("merged", "2026-01-01T00:00:00Z"),
            candidate("redeployed", "2026-01-03T00:00:00Z"),
            candidate("reopened", "2026-01-01T00:00:00Z"),
        ];
        let mut pulls = vec![
            closed(1, "merged", true, "2026-01-02T00:00:00Z"),
            closed(2, "redeployed", false, "2026-01-02T00:00:00Z"),
            closed(3, "reopened", false, "2026-01-02T00:00:00Z"),
        ];
        pulls.push(PullRequest {
            number: 4,
            head: "reopened".into(),
            open: true,
            merged: false,
            closed_at: None,
        });
        let judged = judge(
            &listing(&["main", "merged", "redeployed", "reopened"], pulls),
            &candidates,
            &Rules::default(),
        );
        assert_eq!(
            judged.gone.keys().collect::<Vec<_>>(),
            vec!["shop/merged"],
            "{judged:?}"
        );
        assert!(judged.gone["shop/merged"].contains("#1 of `merged` was merged"));
    }

    #[test]
    fn production_the_default_branch_and_kept_patterns_never_go() {
        let candidates = [
            candidate("prod", "2026-01-01T00:00:00Z"),
            candidate("main", "2026-01-01T00:00:00Z"),
            candidate("release/1", "2026-01-01T00:00:00Z"),
            candidate("develop", "2026-01-01T00:00:00Z"),
        ];
        let keep = vec!["release/*".to_string(), "develop".to_string()];
        let judged = judge(
            &listing(
                &["main", "develop"],
                vec![closed(9, "develop", true, "2026-02-01T00:00:00Z")],
            ),
            &candidates,
            &Rules {
                production_branch: Some("prod"),
                keep: &keep,
            },
        );
        assert_eq!(judged, Judgement::default());
    }

    #[test]
    fn a_list_without_the_default_branch_decides_nothing() {
        let judged = judge(
            &listing(&[], vec![]),
            &[candidate("feature/a", "2026-01-01T00:00:00Z")],
            &Rules::default(),
        );
        assert!(judged.gone.is_empty());
        assert!(judged.held.unwrap().contains("default branch `main`"));
    }

    #[test]
    fn most_of_a_project_gone_at_once_is_held_a_few_are_not() {
        let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
        let candidates: Vec<Candidate> = names
            .iter()
            .map(|n| candidate(n, "2026-01-01T00:00:00Z"))
            .collect();
        let judged = judge(
            &listing(&["main", "f0"], vec![]),
            &candidates,
            &Rules::default(),
        );
        assert!(judged.gone.is_empty());
        assert!(judged.held.unwrap().contains("7 of 8 branches"));
        // Five of eight is not "most at once" by the floor.
        let judged = judge(
            &listing(&["main", "f0", "f1", "f2"], vec![]),
            &candidates,
            &Rules::default(),
        );
        assert_eq!(judged.gone.len(), 5);
        assert_eq!(judged.held, None);
    }
}
