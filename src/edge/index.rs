//! Which BranchRelease the edge answers for at a host. Pure.
//!
//! Only what Oksa validated serves a host: a BranchRelease whose status describes its current
//! spec and is not Invalid, in its own Project's namespace. Between a spec change and Oksa's
//! status of it (usually under a second), a branch keeps the hosts it answered at before, and
//! no new one: a page load during a deploy reaches the branch, not a 404, and a host the new
//! spec adds waits for Oksa to accept it. A tenant's refused object (one naming
//! another project, or listing another project's host) stays in the cache but never in the
//! index. A host belongs to the Project with the most specific domain that contains it, so a
//! project of `example.com` cannot answer inside another's `shop.example.com`. Two branches that
//! still claim one host answer neither: the edge would rather say 404 than guess.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{BranchRelease, Phase, Project};
use crate::naming;

#[derive(Default, Debug)]
pub struct HostIndex {
    hosts: HashMap<String, ObjectRef<BranchRelease>>,
}

/// A host as requests name it: no port, lowercase, no trailing dot.
pub fn normalize(host: &str) -> String {
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

impl HostIndex {
    /// The index of `releases` now; `previous` is the index it replaces (its hosts carry over
    /// for a branch whose new spec Oksa has not described yet).
    pub fn build<'a>(
        releases: impl IntoIterator<Item = &'a Arc<BranchRelease>>,
        projects: &[Arc<Project>],
        previous: &HostIndex,
    ) -> HostIndex {
        let by_name: HashMap<String, &Project> = projects
            .iter()
            .map(|p| (p.name_any(), p.as_ref()))
            .collect();
        // Domain → its projects, so a host's owner is a few lookups, not a scan of every Project
        // for every host of every branch at each rebuild.
        let mut by_domain: HashMap<String, Vec<String>> = HashMap::new();
        for project in projects {
            by_domain
                .entry(normalize(&project.spec.domain))
                .or_default()
                .push(project.name_any());
        }
        // The previous hosts by branch, grouped only if some branch is between a spec change
        // and its status (most rebuilds have none).
        let mut before: Option<HashMap<&ObjectRef<BranchRelease>, Vec<&String>>> = None;
        let mut claims: HashMap<String, Vec<ObjectRef<BranchRelease>>> = HashMap::new();
        for release in releases {
            let Some(project) = by_name.get(&release.spec.project) else {
                continue;
            };
            let key = ObjectRef::from_obj(release.as_ref());
            let hosts: Vec<String> = match acceptance(release, project) {
                Acceptance::Current => {
                    let name = naming::release_name(&release.spec.branch);
                    naming::hosts(release, project, &name)
                        .iter()
                        .map(|host| normalize(host))
                        .collect()
                }
                Acceptance::Earlier => before
                    .get_or_insert_with(|| previous.hosts_by_release())
                    .get(&key)
                    .map(|hosts| hosts.iter().map(|host| host.to_string()).collect())
                    .unwrap_or_default(),
                Acceptance::None => continue,
            };
            for host in hosts {
                if owners_of(&host, &by_domain).contains(&project.name_any()) {
                    claims.entry(host).or_default().push(key.clone());
                }
            }
        }
        let hosts = claims
            .into_iter()
            .filter_map(|(host, mut refs)| (refs.len() == 1).then(|| (host, refs.remove(0))))
            .collect();
        HostIndex { hosts }
    }

    /// The hosts each branch answers at.
    fn hosts_by_release(&self) -> HashMap<&ObjectRef<BranchRelease>, Vec<&String>> {
        let mut by_release: HashMap<_, Vec<_>> = HashMap::new();
        for (host, release) in &self.hosts {
            by_release.entry(release).or_default().push(host);
        }
        by_release
    }

    /// The branch answering at `host` (a Host header: a port and any case are fine).
    pub fn lookup(&self, host: &str) -> Option<&ObjectRef<BranchRelease>> {
        self.hosts.get(&normalize(host))
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// What of a branch Oksa has accepted.
enum Acceptance {
    /// Its current spec: in its Project's namespace, its status about this very spec, and not
    /// refused.
    Current,
    /// An earlier spec, and the current one not refused yet: what it answered before stands.
    Earlier,
    /// Nothing (never described, refused, or out of its Project's namespace).
    None,
}

fn acceptance(release: &BranchRelease, project: &Project) -> Acceptance {
    let Some(status) = release.status.as_ref() else {
        return Acceptance::None;
    };
    if release.namespace().as_deref() != Some(project.namespace_name().as_str())
        || status.observed_generation.is_none()
        || matches!(status.phase, Some(Phase::Invalid) | None)
    {
        return Acceptance::None;
    }
    if status.observed_generation == release.metadata.generation {
        Acceptance::Current
    } else {
        Acceptance::Earlier
    }
}

/// The Projects of the most specific domain containing `host` (normalized): the host itself,
/// then each parent domain in turn.
fn owners_of<'a>(host: &str, by_domain: &'a HashMap<String, Vec<String>>) -> &'a [String] {
    let mut domain = host;
    loop {
        if let Some(owners) = by_domain.get(domain) {
            return owners;
        }
        match domain.split_once('.') {
            Some((_, parent)) => domain = parent,
            None => return &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, domain: &str) -> Arc<Project> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
                "metadata": {"name": name},
                "spec": {"domain": domain, "productionBranch": "main"},
            }))
            .unwrap(),
        )
    }

    fn release(
        namespace: &str,
        project: &str,
        branch: &str,
        hosts: &[&str],
        phase: &str,
    ) -> Arc<BranchRelease> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
                "metadata": {"name": branch, "namespace": namespace, "generation": 2},
                "spec": {"project": project, "branch": branch, "hosts": hosts,
                         "components": [{"name": "web", "containers": [{"name": "web", "image": "nginx"}]}]},
                "status": {"observedGeneration": 2, "phase": phase},
            }))
            .unwrap(),
        )
    }

    fn answering(index: &HostIndex, host: &str) -> Option<(String, String)> {
        index
            .lookup(host)
            .map(|r| (r.namespace.clone().unwrap_or_default(), r.name.clone()))
    }

    #[test]
    fn a_valid_branch_answers_at_its_hosts_in_any_case_and_with_a_port() {
        let projects = [project("shop", "shop.example.com")];
        let releases = [release("shop", "shop", "main", &[], "Sleeping")];
        let index = HostIndex::build(&releases, &projects, &HostIndex::default());
        let main = Some(("shop".to_string(), "main".to_string()));
        assert_eq!(answering(&index, "main.shop.example.com"), main);
        assert_eq!(answering(&index, "Main.Shop.Example.com:8080"), main);
        assert_eq!(answering(&index, "shop.example.com."), main, "production");
        assert_eq!(answering(&index, "other.shop.example.com"), None);
    }

    #[test]
    fn a_refused_or_foreign_or_unobserved_branch_never_answers() {
        let projects = [
            project("shop", "shop.example.com"),
            project("blog", "blog.example.com"),
        ];
        // A tenant of blog names shop from its own namespace, and lists shop's host.
        let foreign = release("blog", "shop", "main", &[], "Sleeping");
        let refused = release("blog", "blog", "x", &["main.shop.example.com"], "Invalid");
        let mut unobserved = release("shop", "shop", "feature", &[], "Ready");
        Arc::make_mut(&mut unobserved).metadata.generation = Some(3);
        let index = HostIndex::build(
            &[foreign, refused, unobserved],
            &projects,
            &HostIndex::default(),
        );
        assert!(index.is_empty(), "{index:?}");
    }

    #[test]
    fn during_a_deploy_a_branch_keeps_the_hosts_it_had_and_gains_none_until_accepted() {
        let projects = [project("shop", "shop.example.com")];
        let before = HostIndex::build(
            &[release("shop", "shop", "main", &[], "Sleeping")],
            &projects,
            &HostIndex::default(),
        );
        // A new spec (a new image, and a host more) that Oksa has not described yet.
        let mut deploying = release(
            "shop",
            "shop",
            "main",
            &["pay.shop.example.com"],
            "Sleeping",
        );
        Arc::make_mut(&mut deploying).metadata.generation = Some(3);
        let during = HostIndex::build(std::slice::from_ref(&deploying), &projects, &before);
        let main = Some(("shop".to_string(), "main".to_string()));
        assert_eq!(answering(&during, "main.shop.example.com"), main);
        assert_eq!(answering(&during, "pay.shop.example.com"), None);
        // Accepted: the new host too.
        let mut accepted = deploying.clone();
        Arc::make_mut(&mut accepted)
            .status
            .as_mut()
            .unwrap()
            .observed_generation = Some(3);
        let after = HostIndex::build(&[accepted], &projects, &during);
        assert_eq!(answering(&after, "pay.shop.example.com"), main);
        // Refused: no host at all, whatever it had.
        let mut refused = deploying.clone();
        Arc::make_mut(&mut refused).status.as_mut().unwrap().phase = Some(Phase::Invalid);
        let after = HostIndex::build(&[refused], &projects, &before);
        assert!(after.is_empty(), "{after:?}");
    }

    #[test]
    fn a_host_belongs_to_the_most_specific_domain_and_two_claims_answer_neither() {
        let projects = [
            project("shop", "shop.example.com"),
            project("all", "example.com"),
        ];
        let intruder = release("all", "all", "x", &["pay.shop.example.com"], "Ready");
        let index = HostIndex::build(&[intruder], &projects, &HostIndex::default());
        assert_eq!(answering(&index, "pay.shop.example.com"), None);
        assert!(answering(&index, "x.example.com").is_some());

        let first = release("shop", "shop", "a", &["pay.shop.example.com"], "Ready");
        let second = release("shop", "shop", "b", &["pay.shop.example.com"], "Ready");
        let index = HostIndex::build(&[first, second], &projects, &HostIndex::default());
        assert_eq!(answering(&index, "pay.shop.example.com"), None);
        assert!(answering(&index, "a.shop.example.com").is_some());

        // Two projects of one domain: each serves its own branches' hosts.
        let projects = [project("one", "example.org"), project("two", "example.org")];
        let index = HostIndex::build(
            &[
                release("one", "one", "a", &[], "Ready"),
                release("two", "two", "b", &[], "Ready"),
            ],
            &projects,
            &HostIndex::default(),
        );
        assert!(answering(&index, "a.example.org").is_some());
        assert!(answering(&index, "b.example.org").is_some());
    }
}
