//! `oksa deploy`: what CI calls after building images. Creates or updates a BranchRelease, then
//! follows it until it is Ready (exit 0) or clearly is not going to be (non-zero, with reasons).
//! With `--dry-run`, checks it and shows what would change instead (`dry_run.rs`).

mod dry_run;
pub mod preview;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::api::conditions::{self, DEGRADED, READY};
use crate::api::{BranchRelease, BranchReleaseSpec, Component, Container, Phase, Port, Project};
use crate::apply::describe;
use crate::naming;

/// Exit codes of `oksa deploy`, documented in `oksa deploy --help` and the README.
pub mod exit {
    /// The branch is Ready.
    pub const READY: u8 = 0;
    /// Bad arguments, an unreadable file, or the cluster refused the request.
    pub const ERROR: u8 = 1;
    /// Oksa refused the BranchRelease (phase Invalid): the spec must change.
    pub const REFUSED: u8 = 2;
    /// The rollout failed: a component stays Degraded (image pull, crash loop, probe...), or a
    /// deploy job failed.
    pub const FAILED: u8 = 3;
    /// Not Ready before the timeout.
    pub const TIMEOUT: u8 = 4;
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Project the branch belongs to.
    #[arg(long)]
    pub project: String,
    /// Namespace of the project (default: read from the Project; when the Project cannot be read,
    /// as with only an `edit` binding in the namespace, the project's name, Oksa's default).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The git branch (any characters git allows), e.g. "$CI_COMMIT_REF_NAME".
    #[arg(long)]
    pub branch: String,
    /// Commit being deployed, e.g. "$CI_COMMIT_SHA".
    #[arg(long)]
    pub commit: Option<String>,
    /// Image of a component: COMPONENT=IMAGE (repeatable). Without --file, each one becomes a
    /// component with one container; with --file, it replaces that component's first image.
    #[arg(long = "image", value_parser = parse_pair)]
    pub images: Vec<(String, String)>,
    /// Port of a component created from --image: COMPONENT=PORT (repeatable).
    #[arg(long = "port", value_parser = parse_pair)]
    pub ports: Vec<(String, String)>,
    /// A BranchRelease manifest (YAML) to deploy; --branch, --commit and --image override it.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Name of the BranchRelease (default: derived from the branch).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds to wait for Ready.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Seconds a component may stay Degraded before the deploy counts as failed (it may recover,
    /// e.g. an image pushed a moment late).
    #[arg(long, default_value_t = 30)]
    pub fail_after: u64,
    /// Apply and exit without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Write nothing: check the BranchRelease as the API server and Oksa would (schema and
    /// validation rules, domain and hosts, name collisions, volume changes) and print what would
    /// change, object by object and field by field. Exit 0 when the deploy would go ahead, 2 when
    /// Oksa would refuse it (a refused volume change included), 1 when the API server would.
    #[arg(long, conflicts_with = "no_wait")]
    pub dry_run: bool,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!("expected COMPONENT=VALUE, got {text:?}")),
    }
}

/// The spec to apply: from the file or from scratch, with the flags applied on top. Pure.
pub fn desired_spec(
    args: &DeployArgs,
    file: Option<BranchReleaseSpec>,
) -> Result<BranchReleaseSpec, String> {
    let mut spec = match file {
        Some(spec) => spec,
        None => {
            if args.images.is_empty() {
                return Err("give --file or at least one --image COMPONENT=IMAGE".into());
            }
            BranchReleaseSpec {
                project: args.project.clone(),
                branch: args.branch.clone(),
                commit: None,
                components: Vec::new(),
                routes: Vec::new(),
                ..BranchReleaseSpec::default()
            }
        }
    };
    spec.project = args.project.clone();
    spec.branch = args.branch.clone();
    if args.commit.is_some() {
        spec.commit = args.commit.clone();
    }
    let ports: BTreeMap<&str, &str> = args
        .ports
        .iter()
        .map(|(c, p)| (c.as_str(), p.as_str()))
        .collect();
    for (component, image) in &args.images {
        match spec.components.iter_mut().find(|c| &c.name == component) {
            Some(existing) => match existing.containers.first_mut() {
                Some(container) => container.image = image.clone(),
                None => {
                    return Err(format!(
                        "--image {component}=…: component {component} of the file has no containers; \
                         declare at least one (its first container gets the image)"
                    ));
                }
            },
            None if args.file.is_some() => {
                return Err(format!(
                    "--image {component}=…: the file declares no component {component}"
                ));
            }
            None => {
                let ports = match ports.get(component.as_str()) {
                    Some(port) => vec![Port {
                        name: None,
                        container_port: port
                            .parse()
                            .map_err(|_| format!("--port {component}={port}: not a port number"))?,
                    }],
                    None => Vec::new(),
                };
                spec.components.push(Component {
                    name: component.clone(),
                    replicas: None,
                    autoscaling: None,
                    automount_service_account_token: false,
                    containers: vec![Container {
                        name: component.clone(),
                        image: image.clone(),
                        command: None,
                        args: None,
                        ports,
                        env: Vec::new(),
                        resources: None,
                        readiness_probe: None,
                        liveness_probe: None,
                        volume_mounts: Vec::new(),
                    }],
                });
            }
        }
    }
    Ok(spec)
}

/// One line of progress. Pure.
pub fn progress_line(release: &BranchRelease) -> String {
    let Some(status) = release
        .status
        .as_ref()
        .filter(|s| s.observed_generation == release.metadata.generation)
    else {
        return "waiting for Oksa to pick up the change".into();
    };
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    let components = status
        .ready_components
        .clone()
        .unwrap_or_else(|| "-".into());
    let bound = status
        .volumes
        .iter()
        .filter(|v| v.phase.as_deref() == Some("Bound"))
        .count();
    let mut line = format!("{phase}: components {components} ready");
    if !status.volumes.is_empty() {
        line.push_str(&format!(", volumes {bound}/{} bound", status.volumes.len()));
    }
    if let Some(ready) = conditions::find(&status.conditions, READY).filter(|c| c.status != "True")
    {
        line.push_str(&format!(" ({})", ready.message));
    }
    line
}

/// What following the BranchRelease has found so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Waiting,
    Ready,
    Refused,
    Degraded,
    /// Failed for good: a deploy job of this generation failed (it is never retried).
    Failed,
}

/// Pure: the verdict for the current state of a BranchRelease.
pub fn verdict(release: &BranchRelease) -> Verdict {
    let Some(status) = release
        .status
        .as_ref()
        .filter(|s| s.observed_generation == release.metadata.generation)
    else {
        return Verdict::Waiting;
    };
    let stalled_by_a_job = conditions::find(&status.conditions, conditions::STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == conditions::JOB_FAILED);
    match status.phase {
        Some(Phase::Degraded) if stalled_by_a_job => Verdict::Failed,
        Some(Phase::Ready) => Verdict::Ready,
        Some(Phase::Invalid) => Verdict::Refused,
        Some(Phase::Degraded) if !conditions::is_true(&status.conditions, READY) => {
            Verdict::Degraded
        }
        // Degraded but Ready: a refused volume change; the environment runs, report it as Ready.
        Some(Phase::Degraded) => Verdict::Ready,
        _ => Verdict::Waiting,
    }
}

/// The namespace to deploy into. Projects are cluster-scoped, so a team bound to `edit` in its
/// namespace cannot read its own Project: then the namespace is the project's name (Oksa's
/// default), unless `--namespace` says otherwise.
/// The namespace of `project`: as given, else read from the Project; when the Project cannot be
/// read (only an `edit` binding in the namespace), the project's name, Oksa's default.
pub(crate) async fn project_namespace(
    client: &Client,
    project: &str,
    namespace: Option<&String>,
) -> Result<String, String> {
    if let Some(namespace) = namespace {
        return Ok(namespace.clone());
    }
    match Api::<Project>::all(client.clone()).get(project).await {
        Ok(found) => Ok(found.namespace_name()),
        Err(kube::Error::Api(status)) if status.is_forbidden() => Ok(project.to_string()),
        Err(error) => Err(format!(
            "cannot read Project {project}: {}",
            describe(&error)
        )),
    }
}

pub async fn run(args: DeployArgs) -> Result<u8, String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    let namespace = project_namespace(&client, &args.project, args.namespace.as_ref()).await?;
    let from_file = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let release: BranchRelease = serde_yaml_ng::from_str(&text)
                .map_err(|e| format!("{} is not a BranchRelease: {e}", path.display()))?;
            Some(release)
        }
        None => None,
    };
    let name = args
        .name
        .clone()
        .or_else(|| {
            from_file
                .as_ref()
                .map(|r| r.name_any())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| naming::release_name(&args.branch));
    let spec = desired_spec(&args, from_file.map(|r| r.spec))?;
    let release = BranchRelease::new(&name, spec);
    if args.dry_run {
        return dry_run::run(&client, &namespace, &release).await;
    }
    let api = Api::<BranchRelease>::namespaced(client.clone(), &namespace);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply("oksa-deploy").force(),
            &Patch::Apply(&release),
        )
        .await
        .map_err(|e| format!("the cluster refused BranchRelease {name}: {}", describe(&e)))?;
    println!(
        "applied BranchRelease {namespace}/{name} (generation {})",
        applied.metadata.generation.unwrap_or(0)
    );
    if args.no_wait {
        return Ok(exit::READY);
    }
    follow(&client, &api, &name, &args).await
}

async fn follow(
    client: &Client,
    api: &Api<BranchRelease>,
    name: &str,
    args: &DeployArgs,
) -> Result<u8, String> {
    let started = Instant::now();
    let terminal = std::io::stdout().is_terminal();
    let mut last_line = String::new();
    let mut degraded_since: Option<Instant> = None;
    loop {
        let release = api
            .get(name)
            .await
            .map_err(|e| format!("reading BranchRelease {name}: {}", describe(&e)))?;
        let line = progress_line(&release);
        if line != last_line {
            if terminal {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last_line = line;
        }
        let verdict = verdict(&release);
        degraded_since = match verdict {
            Verdict::Degraded => degraded_since.or(Some(Instant::now())),
            _ => None,
        };
        let failed = degraded_since
            .is_some_and(|since| since.elapsed() >= Duration::from_secs(args.fail_after));
        let code = match verdict {
            Verdict::Ready => Some(exit::READY),
            Verdict::Refused => Some(exit::REFUSED),
            Verdict::Failed => Some(exit::FAILED),
            _ if failed => Some(exit::FAILED),
            _ if started.elapsed() >= Duration::from_secs(args.timeout) => Some(exit::TIMEOUT),
            _ => None,
        };
        if let Some(code) = code {
            if terminal {
                println!();
            }
            report(client, &release, code, started.elapsed()).await;
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn report(client: &Client, release: &BranchRelease, code: u8, took: Duration) {
    let status = release.status.clone().unwrap_or_default();
    if code == exit::READY {
        println!(
            "{} is Ready in {:.1}s: {}",
            release.spec.branch,
            took.as_secs_f64(),
            status
                .url
                .unwrap_or_else(|| "(no URL: no component has a port)".into())
        );
        let project = Api::<crate::api::Project>::all(client.clone())
            .get_opt(&release.spec.project)
            .await
            .ok()
            .flatten();
        if let Some(hint) = project
            .as_ref()
            .and_then(|p| crate::routing::protection(release, p))
            .map(protection_hint)
        {
            println!("{hint}");
        }
        return;
    }
    let what = match code {
        exit::REFUSED => "was refused by Oksa",
        exit::FAILED => "failed to roll out",
        _ => "did not become Ready in time",
    };
    eprintln!("{} {what}:", release.spec.branch);
    for type_ in [READY, DEGRADED] {
        if let Some(condition) =
            conditions::find(&status.conditions, type_).filter(|c| !c.message.is_empty())
        {
            eprintln!(
                "  {type_}={} {}: {}",
                condition.status, condition.reason, condition.message
            );
        }
    }
    let namespace = release.namespace().unwrap_or_default();
    let prefix = status.release_name.unwrap_or_default();
    let events = Api::<Event>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let mut recent: Vec<_> = events
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix) || n == release.name_any())
        })
        .collect();
    recent.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .or_else(|| e.metadata.creation_timestamp.clone())
    });
    if !recent.is_empty() {
        eprintln!("  recent warnings:");
        for event in recent.iter().rev().take(8) {
            eprintln!(
                "    {} {}: {}",
                event.involved_object.name.clone().unwrap_or_default(),
                event.reason.clone().unwrap_or_default(),
                event.message.clone().unwrap_or_default().trim()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::release_from_yaml;

    fn args(images: &[(&str, &str)], file: bool) -> DeployArgs {
        DeployArgs {
            project: "shop".into(),
            namespace: None,
            branch: "feature/x".into(),
            commit: Some("abc".into()),
            images: images
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ports: vec![("web".into(), "8080".into())],
            file: file.then(|| "x.yaml".into()),
            name: None,
            timeout: 300,
            fail_after: 30,
            no_wait: false,
            dry_run: false,
        }
    }

    #[test]
    fn flags_alone_make_one_component_per_image() {
        let spec = desired_spec(
            &args(
                &[("web", "shop/web:abc"), ("worker", "shop/worker:abc")],
                false,
            ),
            None,
        )
        .unwrap();
        assert_eq!(spec.branch, "feature/x");
        assert_eq!(spec.commit.as_deref(), Some("abc"));
        assert_eq!(spec.components.len(), 2);
        assert_eq!(
            spec.components[0].containers[0].ports[0].container_port,
            8080
        );
        assert!(spec.components[1].containers[0].ports.is_empty());
        assert!(desired_spec(&args(&[], false), None).is_err());
    }

    #[test]
    fn a_file_gets_its_images_and_commit_replaced() {
        let file = release_from_yaml(
            "spec: {project: other, branch: old, components: [{name: web, containers: [{name: nginx, image: old}, {name: php, image: php}]}]}",
        );
        let spec = desired_spec(
            &args(&[("web", "nginx:new")], true),
            Some(file.spec.clone()),
        )
        .unwrap();
        assert_eq!(
            (spec.project.as_str(), spec.branch.as_str()),
            ("shop", "feature/x")
        );
        assert_eq!(spec.components[0].containers[0].image, "nginx:new");
        assert_eq!(spec.components[0].containers[1].image, "php");
        let unknown = desired_spec(&args(&[("api", "x")], true), Some(file.spec)).unwrap_err();
        assert!(unknown.contains("no component api"));
        let empty = release_from_yaml(
            "spec: {project: p, branch: b, components: [{name: web, containers: []}]}",
        );
        let error = desired_spec(&args(&[("web", "x")], true), Some(empty.spec)).unwrap_err();
        assert!(error.contains("has no containers"), "{error}");
    }

    #[test]
    fn verdicts_follow_the_current_generation_only() {
        let mut release =
            release_from_yaml("generation: 2\nspec: {project: p, branch: b, components: []}");
        assert_eq!(verdict(&release), Verdict::Waiting);
        release.status = Some(crate::api::BranchReleaseStatus {
            observed_generation: Some(1),
            phase: Some(Phase::Ready),
            ..Default::default()
        });
        assert_eq!(
            verdict(&release),
            Verdict::Waiting,
            "Ready for the previous spec is not Ready"
        );
        release.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(verdict(&release), Verdict::Ready);
        release.status.as_mut().unwrap().phase = Some(Phase::Invalid);
        assert_eq!(verdict(&release), Verdict::Refused);
        release.status.as_mut().unwrap().phase = Some(Phase::Degraded);
        assert_eq!(verdict(&release), Verdict::Degraded);
    }
}

/// How CI reaches a protected branch: what the protection accepts, never a secret.
pub fn protection_hint(protection: &crate::api::Protection) -> String {
    format!(
        "  protected: {}",
        crate::routing::ways_in(protection).join("; or ")
    )
}

#[cfg(test)]
mod protection_hint_tests {
    use super::*;
    use crate::api::{Cidr, Protection, TokenHash};

    #[test]
    fn ci_learns_how_to_pass_without_any_secret() {
        let hint = protection_hint(&Protection {
            bypass_token_sha256: vec![TokenHash("ab".repeat(32))],
            allow_cidrs: vec![Cidr("10.0.0.0/8".into())],
            ..Protection::default()
        });
        assert_eq!(
            hint,
            "  protected: send header x-oksa-bypass: <token> (a token whose SHA-256 is in \
             bypassTokenSha256); or come from 10.0.0.0/8"
        );
        assert!(!hint.contains(&"ab".repeat(32)));
    }
}
