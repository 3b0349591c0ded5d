//! BranchRelease → Deployments, Services, Ingress and claims. Pure: no API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container as PodContainer, ContainerPort, LocalObjectReference,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume as PodVolume, VolumeMount as PodVolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::{
    AccessMode, BranchRelease, Component, Container, PodSecurityLevel, Project, ProjectGateway,
    Volume,
};
use crate::gateway_api::{
    self, BackendRef, HTTPRoute, HttpRouteMatch, HttpRouteRule, HttpRouteSpec, ParentReference,
    PathMatch,
};
use crate::labels;
use crate::naming;

/// What a branch is built from.
pub struct Release<'a> {
    pub branch_release: &'a BranchRelease,
    pub project: &'a Project,
    /// From `naming::release_name`.
    pub name: String,
    pub owner: OwnerReference,
    /// Awake, or asleep (see `lifecycle`).
    pub rendering: Rendering,
}

/// How a branch's lifecycle and protection shape its objects: asleep, its workloads are at zero;
/// held (its cloned data not yet through its `AfterClone` jobs), likewise; through the edge (see
/// `routing::through_edge`), every route leads to the edge. Nothing else changes (claims,
/// Services, the URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendering {
    pub asleep: bool,
    pub routes_to_edge: bool,
    /// Reference data is cloned and not yet made ready by the `AfterClone` jobs: nothing may
    /// serve it yet.
    pub held: bool,
}

impl Rendering {
    /// The pods a component's Deployment asks for: none while asleep; awake, its `replicas`, or
    /// None when its autoscaler decides (then Oksa does not declare the field at all).
    pub fn replicas(&self, component: &Component) -> Option<i32> {
        if self.at_zero() {
            Some(0)
        } else if component.autoscaling.is_some() {
            None
        } else {
            Some(component.replicas.unwrap_or(1))
        }
    }

    /// Asleep or held: no workload runs.
    pub fn at_zero(&self) -> bool {
        self.asleep || self.held
    }

    /// The rendering the BranchRelease's status last reported (for previews). Whether an
    /// awake branch that may sleep goes through the edge depends on the operator's flags, not
    /// known here: the preview shows its protection's part only.
    pub fn reported(release: &BranchRelease, project: &Project) -> Rendering {
        use crate::api::LifecycleState;
        let state = release
            .status
            .as_ref()
            .and_then(|s| s.lifecycle.as_ref())
            .map(|l| l.state);
        Rendering {
            asleep: matches!(
                state,
                Some(LifecycleState::Sleeping | LifecycleState::Expired)
            ),
            routes_to_edge: crate::routing::through_edge(
                state.is_none_or(|s| s == LifecycleState::Awake),
                crate::routing::protection(release, project).is_some(),
                false,
                false,
            ),
            held: false,
        }
    }
}

/// Everything a BranchRelease declares in Kubernetes.
#[derive(Debug, Clone)]
pub struct ReleaseObjects {
    pub deployments: Vec<Deployment>,
    /// One per autoscaled component, while awake.
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
    pub services: Vec<Service>,
    pub ingress: Option<Ingress>,
    /// Instead of the Ingress, when the Project routes through a Gateway.
    pub http_route: Option<HTTPRoute>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub url: Option<String>,
}

impl Release<'_> {
    fn namespace(&self) -> String {
        self.branch_release.namespace().unwrap_or_default()
    }

    pub(super) fn labels(&self) -> BTreeMap<String, String> {
        labels::release_labels(&self.branch_release.spec.project, &self.name)
    }

    pub(super) fn meta(
        &self,
        name: String,
        labels: BTreeMap<String, String>,
        owned: bool,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                labels::BRANCH_ANNOTATION.to_string(),
                self.branch_release.spec.branch.clone(),
            )])),
            owner_references: owned.then(|| vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn tls_enabled(&self) -> bool {
        self.project.spec.ingress.as_ref().is_some_and(|i| {
            i.tls_secret_name.is_some() || i.cluster_issuer.is_some() || i.issuer.is_some()
        }) || self.project.spec.gateway.as_ref().is_some_and(|g| g.https)
    }
}

pub fn build(release: &Release) -> ReleaseObjects {
    let spec = &release.branch_release.spec;
    let deployments = spec
        .components
        .iter()
        .map(|c| deployment(release, c))
        .collect();
    let services = spec
        .components
        .iter()
        .filter_map(|c| service(release, c))
        .collect();
    let autoscalers = if release.rendering.at_zero() {
        // An autoscaler cannot go below one pod: asleep or held, there is none.
        Vec::new()
    } else {
        spec.components
            .iter()
            .filter_map(|c| autoscaler(release, c))
            .collect()
    };
    let (ingress, http_route) = match &release.project.spec.gateway {
        Some(gateway) => (None, http_route(release, gateway)),
        None => (ingress(release), None),
    };
    let routed = ingress.is_some() || http_route.is_some();
    let url = routed.then(|| {
        let scheme = if release.tls_enabled() {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}",
            naming::host(&release.name, &release.project.spec.domain)
        )
    });
    let claims = spec.volumes.iter().map(|v| claim(release, v)).collect();
    ReleaseObjects {
        deployments,
        autoscalers,
        services,
        ingress,
        http_route,
        claims,
        url,
    }
}

/// The HorizontalPodAutoscaler of an autoscaled component, on its Deployment's CPU use.
fn autoscaler(release: &Release, component: &Component) -> Option<HorizontalPodAutoscaler> {
    let settings = component.autoscaling.as_ref()?;
    let name = naming::component_object_name(&release.name, &component.name);
    Some(HorizontalPodAutoscaler {
        metadata: release.meta(
            name.clone(),
            component_labels(release, &component.name),
            true,
        ),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(settings.min_replicas),
            max_replicas: settings.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(settings.target_cpu_utilization.unwrap_or(80)),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        },
        status: None,
    })
}

fn component_labels(release: &Release, component: &str) -> BTreeMap<String, String> {
    let mut labels = release.labels();
    labels.extend(labels::component_selector(&release.name, component));
    labels.insert("app.kubernetes.io/name".into(), component.to_string());
    labels
}

fn deployment(release: &Release, component: &Component) -> Deployment {
    let name = naming::component_object_name(&release.name, &component.name);
    let labels = component_labels(release, &component.name);
    let spec = &release.branch_release.spec;

    // The component's pods mount the volumes any of its containers mounts.
    let mut mounted: Vec<&Volume> = spec
        .volumes
        .iter()
        .filter(|v| {
            component
                .containers
                .iter()
                .any(|c| c.volume_mounts.iter().any(|m| m.volume == v.name))
        })
        .collect();
    mounted.sort_by(|a, b| a.name.cmp(&b.name));
    // A ReadWriteOnce volume can be attached to one node at a time: a rolling update would start
    // the new pod before the old one lets go of it and wait forever on a real cluster.
    let exclusive_volume = mounted.iter().any(|v| {
        matches!(
            v.access_mode.unwrap_or(AccessMode::ReadWriteOnce),
            AccessMode::ReadWriteOnce | AccessMode::ReadWriteOncePod
        )
    });

    let mut meta = release.meta(name, labels.clone(), true);
    if let Some(commit) = &spec.commit {
        meta.annotations
            .get_or_insert_default()
            .insert("oksa.dev/commit".into(), commit.clone());
    }
    Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: release.rendering.replicas(component),
            selector: LabelSelector {
                match_labels: Some(labels::component_selector(&release.name, &component.name)),
                ..LabelSelector::default()
            },
            strategy: Some(strategy(exclusive_volume)),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(
                    release,
                    &component.containers,
                    &mounted,
                    component.automount_service_account_token,
                )),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// A pod of the branch (a component's, a deploy job's): its containers and the claims they
/// mount, with what every pod of the project gets: its image pull secrets and default resources,
/// no service links, and in a `restricted` namespace the security context it admits.
pub(super) fn pod_spec(
    release: &Release,
    containers: &[Container],
    mounted: &[&Volume],
    automount_service_account_token: bool,
) -> PodSpec {
    let defaults = release.project.spec.defaults.clone().unwrap_or_default();
    // A `restricted` namespace admits only pods that say they run as non-root, without
    // privilege escalation or extra capabilities, under the runtime's seccomp profile.
    let restricted = release.project.spec.pod_security == Some(PodSecurityLevel::Restricted);
    PodSpec {
        containers: containers
            .iter()
            .map(|c| container(c, &defaults, restricted))
            .collect(),
        volumes: claim_volumes(&release.name, mounted),
        image_pull_secrets: (!defaults.image_pull_secrets.is_empty()).then(|| {
            defaults
                .image_pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        // A namespace with many branches has many Services; injecting each as environment
        // variables into every pod only slows pods down.
        enable_service_links: Some(false),
        automount_service_account_token: Some(automount_service_account_token),
        security_context: restricted.then(|| PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// The pod volumes of the branch's volumes a pod mounts (None: none).
fn claim_volumes(release_name: &str, mounted: &[&Volume]) -> Option<Vec<PodVolume>> {
    (!mounted.is_empty()).then(|| {
        mounted
            .iter()
            .map(|v| PodVolume {
                name: v.name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: naming::volume_claim_name(release_name, &v.name),
                    read_only: None,
                }),
                ..PodVolume::default()
            })
            .collect()
    })
}

/// Declared in full either way: a Deployment moving from rolling updates to Recreate (a volume
/// added) must lose its `rollingUpdate` settings, or the API server refuses it, and server-side
/// apply removes only what Oksa itself declared before.
fn strategy(exclusive_volume: bool) -> DeploymentStrategy {
    if exclusive_volume {
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".into())),
                max_unavailable: Some(IntOrString::String("25%".into())),
            }),
        }
    }
}

fn container(
    container: &Container,
    defaults: &crate::api::BranchDefaults,
    restricted: bool,
) -> PodContainer {
    let readiness_probe = container.readiness_probe.as_deref().cloned().or_else(|| {
        container.ports.first().map(|port| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port.container_port),
                host: None,
            }),
            period_seconds: Some(5),
            ..Probe::default()
        })
    });
    PodContainer {
        name: container.name.clone(),
        image: Some(container.image.clone()),
        command: container.command.clone(),
        args: container.args.clone(),
        ports: (!container.ports.is_empty()).then(|| {
            container
                .ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: p.container_port,
                    name: Some(naming::port_name(p)),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        env: (!container.env.is_empty()).then(|| container.env.clone()),
        resources: container
            .resources
            .as_deref()
            .cloned()
            .or_else(|| defaults.resources.clone()),
        readiness_probe,
        liveness_probe: container.liveness_probe.as_deref().cloned(),
        security_context: restricted.then(|| SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: (!container.volume_mounts.is_empty()).then(|| {
            container
                .volume_mounts
                .iter()
                .map(|m| PodVolumeMount {
                    name: m.volume.clone(),
                    mount_path: m.mount_path.clone(),
                    sub_path: m.sub_path.clone(),
                    read_only: m.read_only,
                    ..PodVolumeMount::default()
                })
                .collect()
        }),
        ..PodContainer::default()
    }
}

fn service(release: &Release, component: &Component) -> Option<Service> {
    let ports: Vec<ServicePort> = component
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .map(|p| ServicePort {
            name: Some(naming::port_name(p)),
            port: p.container_port,
            target_port: Some(IntOrString::Int(p.container_port)),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        })
        .collect();
    if ports.is_empty() {
        return None;
    }
    let name = naming::component_object_name(&release.name, &component.name);
    Some(Service {
        metadata: release.meta(name, component_labels(release, &component.name), true),
        spec: Some(ServiceSpec {
            selector: Some(labels::component_selector(&release.name, &component.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// (path, Service, port) of each route (see `routing::routes`). Through the edge (see
/// `routing::through_edge`), each path leads to the edge instead.
fn routes(release: &Release) -> Vec<(String, String, i32)> {
    crate::routing::routes(release.branch_release)
        .into_iter()
        .map(|route| {
            if release.rendering.routes_to_edge {
                (
                    route.path,
                    naming::EDGE_SERVICE.to_string(),
                    naming::EDGE_PORT,
                )
            } else {
                let service = naming::component_object_name(&release.name, &route.component);
                (route.path, service, route.port)
            }
        })
        .collect()
}

fn ingress(release: &Release) -> Option<Ingress> {
    let routes = routes(release);
    if routes.is_empty() {
        return None;
    }
    let settings = release.project.spec.ingress.clone().unwrap_or_default();
    let hosts = naming::hosts(release.branch_release, release.project, &release.name);
    let paths: Vec<HTTPIngressPath> = routes
        .iter()
        .map(|(path, service, port)| HTTPIngressPath {
            path: Some(path.clone()),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: service.clone(),
                    port: Some(ServiceBackendPort {
                        number: Some(*port),
                        name: None,
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    let rules = hosts
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: paths.clone(),
            }),
        })
        .collect();

    let mut meta = release.meta(release.name.clone(), release.labels(), true);
    let annotations = meta.annotations.get_or_insert_default();
    annotations.extend(settings.annotations.clone());
    if let Some(issuer) = &settings.cluster_issuer {
        annotations.insert("cert-manager.io/cluster-issuer".into(), issuer.clone());
    }
    if let Some(issuer) = &settings.issuer {
        annotations.insert("cert-manager.io/issuer".into(), issuer.clone());
    }
    let tls_secret = settings.tls_secret_name.clone().or_else(|| {
        (settings.cluster_issuer.is_some() || settings.issuer.is_some())
            .then(|| format!("{}-tls", release.name))
    });
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: settings.class_name.clone(),
            rules: Some(rules),
            tls: tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(hosts.clone()),
                    secret_name: Some(secret),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}

/// The branch's HTTPRoute: the same hosts and paths as its Ingress would have, attached to the
/// project's Gateway, which terminates TLS.
fn http_route(release: &Release, gateway: &ProjectGateway) -> Option<HTTPRoute> {
    let routes = routes(release);
    if routes.is_empty() {
        return None;
    }
    let rules = routes
        .iter()
        .map(|(path, service, port)| HttpRouteRule {
            matches: vec![HttpRouteMatch {
                path: Some(PathMatch {
                    type_: Some("PathPrefix".into()),
                    value: Some(path.clone()),
                }),
            }],
            backend_refs: vec![BackendRef {
                name: service.clone(),
                port: Some(*port),
            }],
        })
        .collect();
    Some(HTTPRoute {
        metadata: release.meta(release.name.clone(), release.labels(), true),
        spec: HttpRouteSpec {
            parent_refs: vec![ParentReference {
                group: Some(gateway_api::GROUP.into()),
                kind: Some("Gateway".into()),
                name: gateway.name.clone(),
                namespace: Some(
                    gateway
                        .namespace
                        .clone()
                        .unwrap_or_else(|| release.namespace()),
                ),
                section_name: gateway.section_name.clone(),
            }],
            hostnames: naming::hosts(release.branch_release, release.project, &release.name),
            rules,
        },
        status: None,
    })
}

fn claim(release: &Release, volume: &Volume) -> PersistentVolumeClaim {
    let name = naming::volume_claim_name(&release.name, &volume.name);
    let mut labels = release.labels();
    labels.insert(labels::VOLUME.into(), volume.name.clone());
    if volume.retain {
        labels.insert(labels::RETAIN.into(), "true".into());
    }
    let storage_class = volume.storage_class_name.clone().or_else(|| {
        release
            .project
            .spec
            .defaults
            .as_ref()
            .and_then(|d| d.storage_class_name.clone())
    });
    PersistentVolumeClaim {
        // A retained claim has no owner reference at all: no way of deleting the BranchRelease
        // (foreground, background, orphan, with Oksa running or not) lets the garbage collector
        // reach it. Its labels say whose it is (see `apply::Owner`).
        metadata: release.meta(name, labels, !volume.retain),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![
                volume
                    .access_mode
                    .unwrap_or(AccessMode::ReadWriteOnce)
                    .as_str()
                    .into(),
            ]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(volume.size.clone()),
                )])),
                limits: None,
            }),
            storage_class_name: storage_class,
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};

    fn owner() -> OwnerReference {
        OwnerReference {
            kind: "BranchRelease".into(),
            name: "main".into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    fn drupal() -> BranchRelease {
        release_from_yaml(
            r#"
name: feature-login
namespace: shop
spec:
  project: shop
  branch: feature/login
  commit: abc123
  components:
  - name: web
    replicas: 2
    containers:
    - name: nginx
      image: nginx:1.27
      ports: [{containerPort: 80}]
      volumeMounts: [{volume: files, mountPath: /var/www/files}]
    - name: php
      image: php:8.3-fpm
      volumeMounts: [{volume: files, mountPath: /var/www/files, readOnly: true}]
  - name: worker
    containers: [{name: worker, image: shop/worker:1}]
  volumes:
  - {name: files, size: 2Gi}
  - {name: cache, size: 1Gi, retain: true, accessMode: ReadWriteMany}
  hosts: [shop.example.com]
"#,
        )
    }

    fn shop() -> Project {
        project_from_yaml(
            r#"
name: shop
spec:
  domain: example.com
  productionBranch: main
  ingress: {className: nginx, clusterIssuer: letsencrypt, annotations: {a: b}}
  defaults:
    storageClassName: fast
    imagePullSecrets: [registry]
    resources: {requests: {cpu: 100m}}
"#,
        )
    }

    fn asleep_objects(release: &BranchRelease, project: &Project) -> ReleaseObjects {
        build(&Release {
            branch_release: release,
            project,
            name: naming::release_name(&release.spec.branch),
            owner: owner(),
            rendering: Rendering {
                asleep: true,
                routes_to_edge: true,
                held: false,
            },
        })
    }

    fn objects(release: &BranchRelease, project: &Project) -> ReleaseObjects {
        let name = naming::release_name(&release.spec.branch);
        build(&Release {
            branch_release: release,
            project,
            name,
            owner: owner(),
            rendering: Rendering::default(),
        })
    }

    #[test]
    fn each_component_is_a_deployment_and_a_service_when_it_has_ports() {
        let release = drupal();
        let objects = objects(&release, &shop());
        let name = naming::release_name("feature/login");
        assert_eq!(objects.deployments.len(), 2);
        assert_eq!(
            objects.services.len(),
            1,
            "the worker has no port, so no Service"
        );
        let web = &objects.deployments[0];
        assert_eq!(
            web.metadata.name.as_deref(),
            Some(format!("{name}-web").as_str())
        );
        assert_eq!(web.metadata.owner_references.as_ref().unwrap()[0].uid, "u");
        assert_eq!(
            web.metadata.annotations.as_ref().unwrap()[labels::BRANCH_ANNOTATION],
            "feature/login"
        );
        let pod = web.spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers.len(), 2);
        assert_eq!(pod.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
        assert_eq!(
            pod.volumes.as_ref().unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            format!("{name}-files")
        );
        // Defaults from the project; a TCP readiness probe on the first port.
        let nginx = &pod.containers[0];
        assert_eq!(
            nginx.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
            "100m"
        );
        assert_eq!(
            nginx
                .readiness_probe
                .as_ref()
                .unwrap()
                .tcp_socket
                .as_ref()
                .unwrap()
                .port,
            IntOrString::Int(80)
        );
        assert!(
            pod.containers[1].readiness_probe.is_none(),
            "no port, no default probe"
        );
        assert_eq!(
            web.spec.strategy.as_ref().unwrap().type_.as_deref(),
            Some("Recreate")
        );
        assert_eq!(
            objects.deployments[1]
                .spec
                .strategy
                .as_ref()
                .unwrap()
                .type_
                .as_deref(),
            Some("RollingUpdate"),
            "no exclusive volume: rolling updates"
        );
    }

    #[test]
    fn pods_mount_no_token_unless_asked_and_fit_a_restricted_namespace() {
        let release = drupal();
        let pod = |project: &Project| {
            objects(&release, project).deployments[0]
                .spec
                .template
                .spec
                .clone()
                .unwrap()
        };
        let baseline = pod(&shop());
        assert_eq!(baseline.automount_service_account_token, Some(false));
        assert!(baseline.security_context.is_none());

        let mut restricted_project = shop();
        restricted_project.spec.pod_security = Some(PodSecurityLevel::Restricted);
        let restricted = pod(&restricted_project);
        let context = restricted.security_context.unwrap();
        assert_eq!(context.run_as_non_root, Some(true));
        assert_eq!(context.seccomp_profile.unwrap().type_, "RuntimeDefault");
        for container in &restricted.containers {
            let context = container.security_context.as_ref().unwrap();
            assert_eq!(context.allow_privilege_escalation, Some(false));
            assert_eq!(
                context.capabilities.as_ref().unwrap().drop,
                Some(vec!["ALL".to_string()])
            );
        }

        let mut asking = drupal();
        asking.spec.components[0].automount_service_account_token = true;
        let pod = objects(&asking, &shop()).deployments[0]
            .spec
            .template
            .spec
            .clone()
            .unwrap();
        assert_eq!(pod.automount_service_account_token, Some(true));
    }

    #[test]
    fn asleep_the_workloads_are_at_zero_and_every_route_leads_to_the_waker() {
        let release = drupal();
        let project = shop();
        let awake = objects(&release, &project);
        let asleep = asleep_objects(&release, &project);
        assert!(
            asleep
                .deployments
                .iter()
                .all(|d| d.spec.replicas == Some(0))
        );
        let backends: Vec<(String, i32)> = asleep
            .ingress
            .unwrap()
            .spec
            .unwrap()
            .rules
            .unwrap()
            .iter()
            .flat_map(|r| r.http.clone().unwrap().paths)
            .map(|p| {
                let service = p.backend.service.unwrap();
                (service.name, service.port.unwrap().number.unwrap())
            })
            .collect();
        assert!(!backends.is_empty());
        assert!(
            backends
                .iter()
                .all(|b| *b == (naming::EDGE_SERVICE.to_string(), naming::EDGE_PORT))
        );
        // What holds data or names stays exactly as it was.
        assert_eq!(asleep.claims, awake.claims);
        assert_eq!(asleep.services, awake.services);
        assert_eq!(asleep.url, awake.url);
    }

    #[test]
    fn an_autoscaled_component_leaves_replicas_to_its_autoscaler_except_asleep() {
        let mut release = drupal();
        release.spec.components[0].replicas = None;
        release.spec.components[0].autoscaling = Some(crate::api::Autoscaling {
            min_replicas: 2,
            max_replicas: 5,
            target_cpu_utilization: None,
        });
        let project = shop();
        let awake = objects(&release, &project);
        let deployment = &awake.deployments[0];
        assert_eq!(deployment.spec.replicas, None, "not declared at all");
        let hpa = &awake.autoscalers[0];
        assert_eq!(hpa.metadata.name, deployment.metadata.name);
        assert_eq!(
            hpa.spec.scale_target_ref.name,
            deployment.metadata.name.clone().unwrap()
        );
        assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 5));
        let target = &hpa.spec.metrics.as_ref().unwrap()[0];
        assert_eq!(
            target.resource.as_ref().unwrap().target.average_utilization,
            Some(80)
        );

        let asleep = asleep_objects(&release, &project);
        assert!(asleep.autoscalers.is_empty());
        assert_eq!(asleep.deployments[0].spec.replicas, Some(0));
    }

    #[test]
    fn the_ingress_serves_the_branch_host_and_extra_hosts_with_tls() {
        let release = drupal();
        let objects = objects(&release, &shop());
        let name = naming::release_name("feature/login");
        let ingress = objects.ingress.unwrap();
        let spec = ingress.spec.unwrap();
        let hosts: Vec<_> = spec
            .rules
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.host.clone().unwrap())
            .collect();
        assert_eq!(
            hosts,
            [
                format!("{name}.example.com"),
                "shop.example.com".to_string()
            ]
        );
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(
            tls.secret_name.as_deref(),
            Some(format!("{name}-tls").as_str())
        );
        let annotations = ingress.metadata.annotations.unwrap();
        assert_eq!(annotations["cert-manager.io/cluster-issuer"], "letsencrypt");
        assert_eq!(annotations["a"], "b");
        assert_eq!(objects.url, Some(format!("https://{name}.example.com")));
    }

    #[test]
    fn through_a_gateway_the_branch_gets_an_http_route_with_the_same_hosts_and_no_ingress() {
        let release = drupal();
        let mut project = shop();
        project.spec.ingress = None;
        project.spec.gateway = Some(ProjectGateway {
            name: "shared".into(),
            namespace: Some("gateway-system".into()),
            section_name: Some("https".into()),
            https: true,
            controller_namespace: None,
        });
        let name = naming::release_name("feature/login");
        let routed = objects(&release, &project);
        assert!(routed.ingress.is_none());
        let route = routed.http_route.unwrap();
        assert_eq!(route.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(
            route.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u"
        );
        assert_eq!(
            route.spec.hostnames,
            [
                format!("{name}.example.com"),
                "shop.example.com".to_string()
            ]
        );
        let parent = &route.spec.parent_refs[0];
        assert_eq!(
            (
                parent.kind.as_deref(),
                parent.name.as_str(),
                parent.namespace.as_deref(),
                parent.section_name.as_deref()
            ),
            (
                Some("Gateway"),
                "shared",
                Some("gateway-system"),
                Some("https")
            )
        );
        let rule = &route.spec.rules[0];
        assert_eq!(
            rule.matches[0].path.as_ref().unwrap().value.as_deref(),
            Some("/")
        );
        assert_eq!(rule.backend_refs[0].name, format!("{name}-web"));
        assert_eq!(rule.backend_refs[0].port, Some(80));
        assert_eq!(routed.url, Some(format!("https://{name}.example.com")));

        // The Gateway in the project's own namespace by default; plain HTTP unless it says so.
        let gateway = project.spec.gateway.as_mut().unwrap();
        gateway.namespace = None;
        gateway.https = false;
        let plain = objects(&release, &project);
        let route = plain.http_route.unwrap();
        assert_eq!(route.spec.parent_refs[0].namespace.as_deref(), Some("shop"));
        assert_eq!(plain.url, Some(format!("http://{name}.example.com")));
    }

    #[test]
    fn the_production_branch_also_gets_the_bare_domain() {
        let mut release = drupal();
        release.spec.branch = "main".into();
        release.spec.hosts.clear();
        let hosts = naming::hosts(&release, &shop(), "main");
        assert_eq!(hosts, ["main.example.com", "example.com"]);
    }

    #[test]
    fn claims_follow_volumes_and_retained_ones_are_labelled() {
        let release = drupal();
        let objects = objects(&release, &shop());
        let [files, cache] = objects.claims.as_slice() else {
            panic!("two claims")
        };
        assert!(files.metadata.owner_references.is_some());
        assert!(
            cache.metadata.owner_references.is_none(),
            "no garbage collection can reach a retained claim"
        );
        assert!(!files.labels().contains_key(labels::RETAIN));
        assert_eq!(
            cache.metadata.labels.as_ref().unwrap()[labels::RETAIN],
            "true"
        );
        let spec = files.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "2Gi"
        );
        assert_eq!(
            cache.spec.as_ref().unwrap().access_modes.as_ref().unwrap()[0],
            "ReadWriteMany"
        );
    }

    #[test]
    fn without_ports_there_is_no_ingress_and_no_url() {
        let release = release_from_yaml(
            "spec: {project: shop, branch: main, components: [{name: worker, containers: [{name: w, image: w}]}]}",
        );
        let objects = objects(&release, &shop());
        assert!(objects.ingress.is_none());
        assert!(objects.url.is_none());
    }
}
