//! Whether a BranchRelease may be deployed, and if not, why. Pure.

use std::collections::HashSet;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::conditions::{self, READY};
use crate::api::{BranchRelease, Phase, Project};
use crate::naming::{self, host_in_domain};

/// Why a BranchRelease is not deployed. Nothing is written for it but its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `Pending` (waiting for something else) or `Invalid` (the spec must change).
    pub phase: Phase,
    pub reason: &'static str,
    pub message: String,
}

fn pending(reason: &'static str, message: String) -> Blocked {
    Blocked {
        phase: Phase::Pending,
        reason,
        message,
    }
}

fn invalid(reason: &'static str, message: String) -> Blocked {
    Blocked {
        phase: Phase::Invalid,
        reason,
        message,
    }
}

/// Who came first: older objects win conflicts, ties broken by name so every reconcile agrees.
fn age_key(
    release: &BranchRelease,
) -> (
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    String,
) {
    (release.creation_timestamp(), release.name_any())
}

/// Checks a BranchRelease against its Project and the other BranchReleases of its namespace.
pub fn check<'a>(
    release: &BranchRelease,
    project: Option<&'a Project>,
    siblings: &[Arc<BranchRelease>],
) -> Result<&'a Project, Blocked> {
    let spec = &release.spec;
    let namespace = release.namespace().unwrap_or_default();
    let Some(project) = project else {
        return Err(pending(
            "ProjectNotFound",
            format!(
                "Project {} does not exist (yet); waiting for it",
                spec.project
            ),
        ));
    };
    if project.metadata.deletion_timestamp.is_some() {
        return Err(pending(
            "ProjectDeleting",
            format!(
                "Project {} is being deleted; nothing more is deployed for it",
                spec.project
            ),
        ));
    }
    let Some(project_namespace) = project.status.as_ref().and_then(|s| s.namespace.clone()) else {
        let why = project
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, READY))
            .map(|c| format!(": {}", c.message))
            .unwrap_or_default();
        return Err(pending(
            "ProjectNotReady",
            format!("Project {} is not ready{why}; waiting for it", spec.project),
        ));
    };
    if project_namespace != namespace {
        return Err(invalid(
            "WrongNamespace",
            format!(
                "a BranchRelease in namespace {namespace} cannot deploy Project {}, whose namespace is {project_namespace}",
                spec.project
            ),
        ));
    }
    check_spec(release)?;
    // Awake hours the branch would follow (its own, else its Project's): a time zone CEL cannot
    // check.
    let schedule = spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.awake_schedule.as_ref())
        .or(project
            .spec
            .defaults
            .as_ref()
            .and_then(|d| d.lifecycle.as_ref())
            .and_then(|l| l.awake_schedule.as_ref()));
    if let Some(schedule) = schedule {
        super::schedule::Schedule::parse(schedule)
            .map_err(|message| invalid("ScheduleInvalid", message))?;
    }

    let domain = &project.spec.domain;
    let is_production = project.spec.production_branch.as_deref() == Some(spec.branch.as_str());
    for host in &spec.hosts {
        if !host_in_domain(&host.0, domain) {
            return Err(invalid(
                "HostOutsideDomain",
                format!(
                    "host {} is outside the project's domain {domain}; every host must end in .{domain}",
                    host.0
                ),
            ));
        }
        if host.0 == *domain && !is_production {
            return Err(invalid(
                "HostOutsideDomain",
                format!("host {domain} is reserved for the production branch of the project"),
            ));
        }
    }

    let release_name = naming::release_name(&spec.branch);
    let my_hosts: HashSet<String> = naming::hosts(release, project, &release_name)
        .into_iter()
        .collect();
    let my_children = naming::child_names(release);
    if let Some((kind, _, mine)) = my_children
        .iter()
        .find(|(kind, name, _)| *kind == "Service" && name == naming::EDGE_SERVICE)
    {
        return Err(invalid(
            "NameTaken",
            format!(
                "{kind} {} (for {mine}) is reserved for the waker of sleeping branches; \
                 rename the component",
                naming::EDGE_SERVICE
            ),
        ));
    }
    // Only older siblings count: the one that came first keeps what both ask for, so every
    // reconcile of either agrees on who that is.
    let older: Vec<&Arc<BranchRelease>> = siblings
        .iter()
        .filter(|s| s.uid() != release.uid() && age_key(s) < age_key(release))
        .collect();
    for sibling in &older {
        if sibling.spec.project != spec.project {
            continue;
        }
        if sibling.spec.branch == spec.branch {
            return Err(invalid(
                "BranchAlreadyDeployed",
                format!(
                    "branch {:?} is already deployed by BranchRelease {}",
                    spec.branch,
                    sibling.name_any()
                ),
            ));
        }
        let sibling_name = naming::release_name(&sibling.spec.branch);
        if let Some(host) = naming::hosts(sibling, project, &sibling_name)
            .into_iter()
            .find(|h| my_hosts.contains(h))
        {
            return Err(invalid(
                "HostTaken",
                format!(
                    "host {host} is already served by BranchRelease {}",
                    sibling.name_any()
                ),
            ));
        }
    }
    // Child names are per namespace, whatever project a sibling names.
    for sibling in &older {
        let theirs = naming::child_names(sibling);
        for (kind, name, mine) in &my_children {
            if let Some((_, _, what)) = theirs.iter().find(|(k, n, _)| k == kind && n == name) {
                return Err(invalid(
                    "NameTaken",
                    format!(
                        "{kind} {name} (for {mine}) is already the name of BranchRelease {}'s {what}; \
                         rename the component or volume",
                        sibling.name_any()
                    ),
                ));
            }
        }
    }
    if let Some(limit) = project.spec.quota.as_ref().and_then(|q| q.max_branches) {
        let ahead = older
            .iter()
            .filter(|s| s.spec.project == spec.project && s.metadata.deletion_timestamp.is_none())
            .count();
        if ahead >= limit.max(0) as usize {
            return Err(pending(
                "BranchLimitReached",
                format!(
                    "Project {} allows {limit} branches (spec.quota.maxBranches) and {ahead} older ones are deployed; \
                     this one waits until a branch is deleted or the limit is raised",
                    spec.project
                ),
            ));
        }
    }
    Ok(project)
}

/// Refuses a mount of a volume that `spec.volumes` does not declare; `who` mounts them.
fn declared_mounts(
    spec: &crate::api::BranchReleaseSpec,
    mounts: &[crate::api::VolumeMount],
    who: &str,
) -> Result<(), Blocked> {
    match mounts
        .iter()
        .find(|m| !spec.volumes.iter().any(|v| v.name == m.volume))
    {
        Some(mount) => Err(invalid(
            "InvalidSpec",
            format!(
                "{who} mounts volume {}, which spec.volumes does not declare",
                mount.volume
            ),
        )),
        None => Ok(()),
    }
}

/// What the CRD's schema and CEL rules already enforce at `kubectl apply`, checked again so that a
/// BranchRelease stored before a rule existed gets a clear condition rather than a failing apply.
fn check_spec(release: &BranchRelease) -> Result<(), Blocked> {
    let spec = &release.spec;
    let mut components = HashSet::new();
    for component in &spec.components {
        if !components.insert(component.name.as_str()) {
            return Err(invalid(
                "InvalidSpec",
                format!("component {} is declared twice", component.name),
            ));
        }
        let mut ports = HashSet::new();
        let mut port_names = HashSet::new();
        for container in &component.containers {
            for port in &container.ports {
                // The component's Service gets one port per container port: numbers and names
                // must be unique across its containers.
                if !ports.insert(port.container_port) || !port_names.insert(naming::port_name(port))
                {
                    return Err(invalid(
                        "InvalidSpec",
                        format!(
                            "port {} is declared twice in component {}",
                            port.container_port, component.name
                        ),
                    ));
                }
            }
            declared_mounts(
                spec,
                &container.volume_mounts,
                &format!("container {}", container.name),
            )?;
        }
    }
    let mut jobs = HashSet::new();
    for job in &spec.jobs {
        if !jobs.insert(job.name.as_str()) {
            return Err(invalid(
                "InvalidSpec",
                format!("job {} is declared twice", job.name),
            ));
        }
        declared_mounts(spec, &job.volume_mounts, &format!("job {}", job.name))?;
    }
    let mut volumes = HashSet::new();
    for volume in &spec.volumes {
        if !volumes.insert(volume.name.as_str()) {
            return Err(invalid(
                "InvalidSpec",
                format!("volume {} is declared twice", volume.name),
            ));
        }
        if crate::quantity::Quantity::parse(&volume.size).is_none() {
            return Err(invalid(
                "InvalidSpec",
                format!(
                    "volume {} has size {:?}, which is not a quantity",
                    volume.name, volume.size
                ),
            ));
        }
    }
    for route in &spec.routes {
        let Some(component) = spec.components.iter().find(|c| c.name == route.component) else {
            return Err(invalid(
                "InvalidSpec",
                format!(
                    "route {} names component {}, which is not declared",
                    route.path, route.component
                ),
            ));
        };
        let has_ports = component.containers.iter().any(|c| !c.ports.is_empty());
        if route.port.is_none() && !has_ports {
            return Err(invalid(
                "InvalidSpec",
                format!(
                    "route {} goes to component {}, which has no port",
                    route.path, route.component
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};

    fn ready_project() -> Project {
        project_from_yaml("name: shop\nspec: {domain: example.com}\nstatus: {namespace: shop}")
    }

    fn release(extra: &str) -> BranchRelease {
        release_from_yaml(&format!(
            "namespace: shop\nspec: {{project: shop, branch: main, components: [{{name: web, containers: [{{name: web, image: nginx, ports: [{{containerPort: 80}}]}}]}}]{extra}}}"
        ))
    }

    #[test]
    fn a_missing_or_unready_project_means_waiting() {
        let blocked = check(&release(""), None, &[]).unwrap_err();
        assert_eq!(
            (blocked.phase, blocked.reason),
            (Phase::Pending, "ProjectNotFound")
        );
        let unready = project_from_yaml("name: shop\nspec: {domain: example.com}");
        let blocked = check(&release(""), Some(&unready), &[]).unwrap_err();
        assert_eq!(
            (blocked.phase, blocked.reason),
            (Phase::Pending, "ProjectNotReady")
        );
    }

    #[test]
    fn another_projects_namespace_is_refused() {
        let other = project_from_yaml(
            "name: shop\nspec: {domain: example.com}\nstatus: {namespace: elsewhere}",
        );
        let blocked = check(&release(""), Some(&other), &[]).unwrap_err();
        assert_eq!(
            (blocked.phase, blocked.reason),
            (Phase::Invalid, "WrongNamespace")
        );
    }

    #[test]
    fn hosts_must_be_inside_the_domain_and_the_bare_domain_is_for_production() {
        let project = ready_project();
        assert!(check(&release(", hosts: [shop.example.com]"), Some(&project), &[]).is_ok());
        let outside = check(&release(", hosts: [example.org]"), Some(&project), &[]).unwrap_err();
        assert_eq!(outside.reason, "HostOutsideDomain");
        let bare = check(&release(", hosts: [example.com]"), Some(&project), &[]).unwrap_err();
        assert!(bare.message.contains("production"), "{}", bare.message);
    }

    #[test]
    fn an_older_sibling_keeps_its_branch_and_hosts() {
        let project = ready_project();
        let mut older = release("");
        older.metadata.name = Some("older".into());
        older.metadata.uid = Some("uid-older".into());
        let mut younger = release("");
        younger.metadata.name = Some("younger".into());
        let siblings = vec![Arc::new(older.clone()), Arc::new(younger.clone())];
        assert!(check(&older, Some(&project), &siblings).is_ok());
        assert_eq!(
            check(&younger, Some(&project), &siblings)
                .unwrap_err()
                .reason,
            "BranchAlreadyDeployed"
        );

        let mut host_thief = release(", hosts: [main.example.com]");
        host_thief.spec.branch = "other".into();
        host_thief.metadata.name = Some("zzz".into());
        let siblings = vec![Arc::new(older), Arc::new(host_thief.clone())];
        assert_eq!(
            check(&host_thief, Some(&project), &siblings)
                .unwrap_err()
                .reason,
            "HostTaken"
        );
    }

    fn named(yaml_extra: &str, name: &str, branch: &str, second: i64) -> BranchRelease {
        let mut release = release(yaml_extra);
        release.metadata.name = Some(name.into());
        release.metadata.uid = Some(format!("uid-{name}"));
        release.spec.branch = branch.into();
        release.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
            ));
        release
    }

    #[test]
    fn child_names_of_an_older_sibling_are_taken() {
        let project = ready_project();
        // `api` + component `v2-web` and `api-v2` + component `web`: both `api-v2-web`.
        let mut older = named("", "api", "api", 1);
        older.spec.components[0].name = "v2-web".into();
        let younger = named("", "api-v2", "api-v2", 2);
        let siblings = vec![Arc::new(older.clone()), Arc::new(younger.clone())];
        assert!(check(&older, Some(&project), &siblings).is_ok());
        let blocked = check(&younger, Some(&project), &siblings).unwrap_err();
        assert_eq!(
            (blocked.phase, blocked.reason),
            (Phase::Invalid, "NameTaken")
        );
        assert!(
            blocked.message.contains("Deployment api-v2-web")
                && blocked
                    .message
                    .contains("BranchRelease api's component v2-web"),
            "{}",
            blocked.message
        );
    }

    #[test]
    fn branches_beyond_the_limit_wait_and_the_oldest_are_deployed() {
        let project = project_from_yaml(
            "name: shop\nspec: {domain: example.com, quota: {maxBranches: 2}}\nstatus: {namespace: shop}",
        );
        let releases: Vec<_> = (0..3)
            .map(|i| Arc::new(named("", &format!("b{i}"), &format!("b{i}"), i)))
            .collect();
        assert!(check(&releases[0], Some(&project), &releases).is_ok());
        assert!(check(&releases[1], Some(&project), &releases).is_ok());
        let blocked = check(&releases[2], Some(&project), &releases).unwrap_err();
        assert_eq!(
            (blocked.phase, blocked.reason),
            (Phase::Pending, "BranchLimitReached")
        );
    }

    #[test]
    fn inconsistent_specs_are_explained() {
        let project = ready_project();
        let mut spec = release("");
        spec.spec.components[0].containers[0].volume_mounts = vec![crate::api::VolumeMount {
            volume: "x".into(),
            mount_path: "/x".into(),
            sub_path: None,
            read_only: None,
        }];
        let blocked = check(&spec, Some(&project), &[]).unwrap_err();
        assert!(
            blocked.message.contains("mounts volume x"),
            "{}",
            blocked.message
        );
    }
}
