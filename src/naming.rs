//! From a git branch to DNS names. Pure functions: the names users see in URLs and object names.
//!
//! A branch becomes a *release name*: a DNS-1123 label of at most 40 characters that starts with a
//! letter (so that `<release>-<component>` is also a valid Service name). When the branch is already
//! such a name it is used as is (`main` stays `main`); whenever it had to be changed or cut, a short
//! hash of the exact branch is appended, so two branches never share a name
//! (`feature/Login_page` and `feature/login-page` both need changes, and hash differently).

use sha2::{Digest, Sha256};

use crate::api::{BranchRelease, Port, Project};

/// Longest release name. Leaves room for `-<component>` (≤ 20) within the 63 of a DNS label.
pub const MAX_RELEASE_NAME: usize = 40;
const HASH_LEN: usize = 8;

/// The stable release name of a branch.
pub fn release_name(branch: &str) -> String {
    let mut name = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            // Any run of other characters (`/`, `_`, `.`, spaces, unicode) becomes one dash.
            name.push('-');
        }
    }
    let mut name = name.trim_matches('-').to_string();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert(0, 'b');
    }
    if name == branch && name.len() <= MAX_RELEASE_NAME {
        return name;
    }
    let keep = MAX_RELEASE_NAME - HASH_LEN - 1;
    name.truncate(keep);
    let name = name.trim_end_matches('-');
    format!("{name}-{}", short_hash(branch))
}

/// The Service in each project namespace whose endpoints are the edge's pods: the routes of a
/// sleeping branch lead to it. No branch's object may take this name.
pub const EDGE_SERVICE: &str = "oksa-edge";
/// Its name before the edge was a component of its own (the waker ran in the operator); Oksa
/// removes it from the namespaces it manages.
pub const LEGACY_WAKER_SERVICE: &str = "oksa-waker";
/// The edge Service's port.
pub const EDGE_PORT: i32 = 80;

/// The branch's host inside the project's domain.
pub fn host(release_name: &str, domain: &str) -> String {
    format!("{release_name}.{domain}")
}

/// Name of a component's Deployment and Service.
pub fn component_object_name(release_name: &str, component: &str) -> String {
    format!("{release_name}-{component}")
}

/// Name of the Kubernetes Job that runs deploy job `job` of a branch for `run` (its generation,
/// or `c<key>` of a clone): a new one per run, the same one for every retry of it. At most 63
/// characters (the Job controller copies it into a label): a longer one keeps its start and a
/// hash of the whole.
pub fn job_name(release_name: &str, job: &str, run: &str) -> String {
    let name = format!("{release_name}-{job}-{run}");
    if name.len() <= 63 {
        return name;
    }
    let keep = 63 - HASH_LEN - 1;
    format!(
        "{}-{}",
        name[..keep].trim_end_matches('-'),
        short_hash(&name)
    )
}

/// Name of a volume's PersistentVolumeClaim. Stable for the branch, so a retained claim is found
/// again by a BranchRelease re-created for the same branch.
pub fn volume_claim_name(release_name: &str, volume: &str) -> String {
    format!("{release_name}-{volume}")
}

/// Hosts of a branch: its own `<release>.<domain>`, the bare domain for the production branch,
/// then the extra hosts of its spec, without repeats.
pub fn hosts(branch_release: &BranchRelease, project: &Project, release: &str) -> Vec<String> {
    let mut hosts = vec![host(release, &project.spec.domain)];
    if project.spec.production_branch.as_deref() == Some(branch_release.spec.branch.as_str()) {
        hosts.push(project.spec.domain.clone());
    }
    for extra in &branch_release.spec.hosts {
        if !hosts.contains(&extra.0) {
            hosts.push(extra.0.clone());
        }
    }
    hosts
}

/// Name of a container port, and of the Service port in front of it (default `port-<number>`).
pub fn port_name(port: &Port) -> String {
    port.name
        .clone()
        .unwrap_or_else(|| format!("port-{}", port.container_port))
}

/// The names of the objects a BranchRelease's children take, as (kind, name, what declares it).
/// Two BranchReleases of a namespace must not share one: `api` with component `v2-web` and
/// `api-v2` with component `web` would both need Deployment `api-v2-web`.
pub fn child_names(branch_release: &BranchRelease) -> Vec<(&'static str, String, String)> {
    let release = release_name(&branch_release.spec.branch);
    let mut names = Vec::new();
    for component in &branch_release.spec.components {
        let name = component_object_name(&release, &component.name);
        let what = format!("component {}", component.name);
        names.push(("Deployment", name.clone(), what.clone()));
        if component.containers.iter().any(|c| !c.ports.is_empty()) {
            names.push(("Service", name, what));
        }
    }
    for volume in &branch_release.spec.volumes {
        names.push((
            "PersistentVolumeClaim",
            volume_claim_name(&release, &volume.name),
            format!("volume {}", volume.name),
        ));
    }
    names.push(("Ingress", release, "its routes".to_string()));
    names
}

/// True when `host` is `domain` itself or a name under it (`a.b.example.com` is under
/// `example.com`; `badexample.com` is not).
pub fn host_in_domain(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    host == domain
        || host
            .strip_suffix(&domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Eight hex digits of a SHA-256 of `value`.
pub fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label_starting_with_letter(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn a_clean_branch_keeps_its_name() {
        assert_eq!(release_name("main"), "main");
        assert_eq!(release_name("release-2-1"), "release-2-1");
    }

    #[test]
    fn an_altered_branch_gets_a_hash_suffix() {
        let name = release_name("feature/login");
        assert!(name.starts_with("feature-login-"), "{name}");
        assert_eq!(name.len(), "feature-login-".len() + HASH_LEN);
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(
            release_name("feature/Login_page"),
            release_name("feature/Login_page")
        );
    }

    #[test]
    fn branches_that_sanitize_alike_do_not_collide() {
        let a = release_name("feature/Login_page");
        let b = release_name("feature/login-page");
        let c = release_name("feature/login_page");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        // The clean one keeps its name; the others are suffixed.
        assert_eq!(
            b,
            "feature-login-page-".to_string() + &short_hash("feature/login-page")
        );
    }

    #[test]
    fn long_branches_are_cut_and_stay_distinct() {
        let base = "x".repeat(200);
        let a = release_name(&format!("{base}-a"));
        let b = release_name(&format!("{base}-b"));
        assert!(a.len() <= MAX_RELEASE_NAME && b.len() <= MAX_RELEASE_NAME);
        assert_ne!(a, b);
        // A clean but too long name is cut too.
        let long_clean = "a".repeat(41);
        assert_eq!(release_name(&long_clean).len(), MAX_RELEASE_NAME);
    }

    #[test]
    fn every_name_is_a_valid_label_that_starts_with_a_letter() {
        for branch in [
            "main",
            "feature/Login_page",
            "UPPER",
            "123-numbers-first",
            "-dash-",
            "///",
            "ünïcödé/ブランチ",
            "🚀",
            "a.b.c",
            &"x/".repeat(150),
            "release/2024.01",
        ] {
            let name = release_name(branch);
            assert!(
                is_dns_label_starting_with_letter(&name),
                "{branch:?} -> {name:?}"
            );
            assert!(name.len() <= MAX_RELEASE_NAME, "{branch:?} -> {name:?}");
            // Room for the longest component name.
            assert!(is_dns_label_starting_with_letter(&component_object_name(
                &name,
                &"c".repeat(20)
            )));
        }
    }

    #[test]
    fn hosts_must_be_inside_the_domain() {
        assert!(host_in_domain("shop.example.com", "example.com"));
        assert!(host_in_domain("a.b.example.com", "example.com"));
        assert!(host_in_domain("example.com", "example.com"));
        assert!(host_in_domain("Shop.Example.com.", "example.com"));
        assert!(!host_in_domain("badexample.com", "example.com"));
        assert!(!host_in_domain("example.com.evil.org", "example.com"));
        assert!(!host_in_domain("other.org", "example.com"));
    }

    #[test]
    fn a_job_is_named_by_its_generation_and_fits_a_label() {
        assert_eq!(job_name("main", "migrate", "3"), "main-migrate-3");
        let long = job_name(
            &"a".repeat(MAX_RELEASE_NAME),
            "import-configuration",
            "123456",
        );
        assert!(long.len() <= 63, "{long}");
        assert_ne!(
            long,
            job_name(
                &"a".repeat(MAX_RELEASE_NAME),
                "import-configuration",
                "123457"
            )
        );
    }
}
