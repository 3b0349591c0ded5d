//! The Helm chart, tested with the real helm: it lints, renders, installs, and its RBAC is enough
//! for a full reconcile by `oksa run` acting as the chart's ServiceAccount — and no more than that.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use support::fixtures::{TestProject, web_component};
use support::{TestNamespace, tool, unique};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/oksa");

#[test]
fn the_charts_crds_are_the_generated_ones() {
    for (file, generated) in oksa::crd::documents() {
        let path = format!("{CHART}/crds/{file}");
        let in_chart = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            in_chart == generated,
            "{path} differs from crds/{file}: copy crds/*.yaml into charts/oksa/crds/"
        );
    }
}

/// The chart's default policy is the operator's own default: installing the chart changes
/// nothing that `oksa run` without `--policy` would do.
#[test]
fn the_charts_policy_is_the_operators_default() {
    let values: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{CHART}/values.yaml")).unwrap())
            .unwrap();
    let policy: oksa::policy::Policy = serde_json::from_value(values["policy"].clone()).unwrap();
    assert_eq!(policy, oksa::policy::Policy::default());
}

/// The policy file the chart's ConfigMap holds, as the operator's pod would find it.
fn rendered_policy(folder: &std::path::Path) -> std::path::PathBuf {
    let rendered = run(tool("helm").args([
        "template",
        "oksa",
        CHART,
        "--show-only",
        "templates/policy.yaml",
    ]));
    let config_map: serde_json::Value = serde_yaml_ng::from_str(&rendered).unwrap();
    let path = folder.join("policy.yaml");
    std::fs::write(&path, config_map["data"]["policy.yaml"].as_str().unwrap()).unwrap();
    path
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("running a tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

async fn allowed(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap().allowed
}

/// The chart's admission policy: the operator's own token, which RBAC lets write Deployments,
/// RoleBindings, Events and namespaces anywhere, is refused by the API server outside Oksa's
/// namespaces, at Pod Security levels the policy does not allow, and for bindings to subjects the
/// policy forbids or to itself. Every attempt is a server-side dry run (admission runs, nothing
/// is stored), repeated for a few seconds because a new policy takes a moment to be enforced.
/// `managed` is a project namespace, `unmanaged` a namespace Oksa did not create, `itself` the
/// operator's ServiceAccount (namespace, name).
async fn confined_to_its_namespaces(
    operator: &Client,
    managed: &str,
    unmanaged: &str,
    itself: (&str, &str),
) {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "intruder"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    let binding = |subject: serde_json::Value| -> k8s_openapi::api::rbac::v1::RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": "intruder"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [subject],
        }))
        .unwrap()
    };
    let mallory = binding(
        json!({"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}),
    );
    let everyone = binding(
        json!({"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}),
    );
    let operator_itself =
        binding(json!({"kind": "ServiceAccount", "name": itself.1, "namespace": itself.0}));
    let unlabelled: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": unique("monitoring")}})).unwrap();
    let privileged_managed: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": unique("loose"), "labels": {
            "app.kubernetes.io/managed-by": "oksa",
            "pod-security.kubernetes.io/enforce": "privileged"}}}))
        .unwrap();
    let privileged =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}});
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": unique("forged")},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "oksa", "reportingInstance": "oksa", "action": "Forged",
        "reason": "Forged", "type": "Normal", "note": "forged",
        "regarding": {"kind": "Pod", "name": "x", "namespace": "kube-system"},
    }))
    .unwrap();
    let dry_patch = kube::api::PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let cases = [
        (
            "a Deployment in kube-system",
            "Oksa may write only in namespaces it manages",
        ),
        (
            "a RoleBinding to admin in kube-system",
            "Oksa may write only in namespaces it manages",
        ),
        (
            "a namespace without Oksa's label",
            "Oksa may create, change or delete only namespaces",
        ),
        (
            "relabelling kube-system",
            "Oksa may create, change or delete only namespaces",
        ),
        (
            "deleting a namespace it does not manage",
            "Oksa may create, change or delete only namespaces",
        ),
        (
            "a privileged namespace of its own",
            "Pod Security levels the platform allows",
        ),
        (
            "binding admin to system:authenticated",
            "Oksa may bind only",
        ),
        ("binding admin to itself", "Oksa may bind only"),
        ("an Event in kube-system", "Oksa may write Events only"),
    ];
    for (what, expected) in cases {
        let message = support::eventually(Duration::from_secs(15), what, || async {
            let attempt = match what {
                "a Deployment in kube-system" => Api::namespaced(operator.clone(), "kube-system")
                    .create(&dry_run, &deployment)
                    .await
                    .map(|_| ()),
                "a RoleBinding to admin in kube-system" => {
                    Api::namespaced(operator.clone(), "kube-system")
                        .create(&dry_run, &mallory)
                        .await
                        .map(|_| ())
                }
                "a namespace without Oksa's label" => Api::all(operator.clone())
                    .create(&dry_run, &unlabelled)
                    .await
                    .map(|_| ()),
                "relabelling kube-system" => {
                    Api::<k8s_openapi::api::core::v1::Namespace>::all(operator.clone())
                        .patch(
                            "kube-system",
                            &dry_patch,
                            &kube::api::Patch::Merge(&privileged),
                        )
                        .await
                        .map(|_| ())
                }
                "deleting a namespace it does not manage" => {
                    Api::<k8s_openapi::api::core::v1::Namespace>::all(operator.clone())
                        .delete(
                            unmanaged,
                            &kube::api::DeleteParams {
                                dry_run: true,
                                ..Default::default()
                            },
                        )
                        .await
                        .map(|_| ())
                }
                "a privileged namespace of its own" => Api::all(operator.clone())
                    .create(&dry_run, &privileged_managed)
                    .await
                    .map(|_| ()),
                "binding admin to system:authenticated" => {
                    Api::namespaced(operator.clone(), managed)
                        .create(&dry_run, &everyone)
                        .await
                        .map(|_| ())
                }
                "binding admin to itself" => Api::namespaced(operator.clone(), managed)
                    .create(&dry_run, &operator_itself)
                    .await
                    .map(|_| ()),
                _ => Api::namespaced(operator.clone(), "kube-system")
                    .create(&dry_run, &event)
                    .await
                    .map(|_| ()),
            };
            attempt.err().map(|e| oksa::apply::describe(&e))
        })
        .await;
        assert!(message.contains(expected), "{what}: {message}");
    }
    // What it must still do passes: a binding of the project's own access in its namespace.
    let allowed_binding = Api::namespaced(operator.clone(), managed)
        .create(&dry_run, &mallory)
        .await;
    assert!(allowed_binding.is_ok(), "{allowed_binding:?}");
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn the_chart_installs_and_its_rbac_is_enough_and_no_more() {
    // The operator under test is `oksa run` with the chart's credentials, not the in-process one.
    support::operator::use_external();
    let namespace = TestNamespace::create("oksa-system").await;
    run(tool("helm").args(["lint", CHART]));
    let rendered =
        run(tool("helm").args(["template", "oksa", CHART, "--namespace", &namespace.name]));
    assert!(
        rendered.contains("kind: ClusterRole") && rendered.contains("readOnlyRootFilesystem: true")
    );
    let release = unique("oksa");
    let installed = run(tool("helm").args([
        "install",
        &release,
        CHART,
        "--namespace",
        &namespace.name,
        "--wait",
        "--timeout",
        "2m",
        "--set",
        "metrics.serviceMonitor.enabled=false",
    ]));
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert!(
        installed.contains("oksa deploy"),
        "NOTES.txt tells the next step: {installed}"
    );

    // The operator, run here as the chart's ServiceAccount (kwok only pretends to run its pod).
    // The chart's full name is the release name when it contains "oksa".
    let kubeconfig =
        support::identity::service_account_kubeconfig(&namespace.client, &namespace.name, &release)
            .await;
    let port = support::free_port();
    let policy = rendered_policy(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_oksa"))
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        // As the chart runs it: leading through a Lease of its namespace (the chart's Role).
        .args(["--leader-election-namespace", &namespace.name])
        .args([
            "--edge-service",
            &format!("{}/{release}-edge", namespace.name),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("OKSA_LISTEN", format!("127.0.0.1:{port}"))
        .env("OKSA_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting oksa run");
    let logs = BufReader::new(child.stderr.take().unwrap());
    let log_lines =
        std::thread::spawn(move || logs.lines().map_while(Result::ok).collect::<Vec<_>>());
    let mut operator = Operator(child);

    support::eventually(Duration::from_secs(30), "/readyz answers 200", || async {
        (support::http_get(port, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    // A full reconcile with those rights: a Project with every kind of child, a branch with a volume.
    let project = TestProject::create(
        "rbac",
        json!({"access": [{"kind": "User", "name": "alice", "role": "admin"}], "quota": {"maxBranches": 5}}),
    )
    .await;
    let mut web = web_component("web", "nginx");
    web["containers"][0]["volumeMounts"] = json!([{"volume": "files", "mountPath": "/data"}]);
    project.create_ready("main", json!({"branch": "main", "components": [web], "volumes": [{"name": "files", "size": "1Gi"}]})).await;

    let (code, metrics) = support::http_get(port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("oksa_reconciles_total{controller=\"branchrelease\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("oksa_child_writes_total"), "{metrics}");
    support::eventually(
        Duration::from_secs(15),
        "branch and object gauges",
        || async {
            let (_, metrics) = support::http_get(port, "/metrics").await;
            // Other tests' objects may be in the cluster too: at least ours is counted.
            let nonzero = |series: &str| {
                metrics
                    .lines()
                    .any(|l| l.starts_with(series) && !l.ends_with(" 0"))
            };
            (nonzero("oksa_branches{phase=\"Ready\"}")
                && nonzero("oksa_managed_objects{kind=\"Deployment\"}"))
            .then_some(())
        },
    )
    .await;

    // No more than needed.
    let operator_client = support::identity::client_from(&kubeconfig).await;
    confined_to_its_namespaces(
        &operator_client,
        &project.namespace,
        &namespace.name,
        (&namespace.name, &release),
    )
    .await;
    assert!(
        !allowed(&operator_client, "get", "", "secrets", Some("kube-system")).await,
        "reads Secrets"
    );
    assert!(
        !allowed(&operator_client, "list", "", "secrets", None).await,
        "lists Secrets"
    );
    // The forge credentials: one Secret at a time, read by name in its own namespace only.
    assert!(
        allowed(
            &operator_client,
            "get",
            "",
            "secrets",
            Some(&namespace.name)
        )
        .await,
        "reads the forge credentials Secrets of its namespace"
    );
    assert!(
        !allowed(
            &operator_client,
            "list",
            "",
            "secrets",
            Some(&namespace.name)
        )
        .await,
        "lists Secrets of its namespace"
    );
    assert!(
        !allowed(
            &operator_client,
            "get",
            "",
            "secrets",
            Some(&project.namespace)
        )
        .await,
        "reads a project's Secrets"
    );
    assert!(
        !allowed(
            &operator_client,
            "update",
            "oksa.dev",
            "branchreleases",
            Some(&project.namespace)
        )
        .await,
        "writes specs"
    );
    assert!(
        !allowed(
            &operator_client,
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None
        )
        .await
    );
    assert!(
        allowed(
            &operator_client,
            "patch",
            "oksa.dev",
            "branchreleases/status",
            Some(&project.namespace)
        )
        .await
    );

    edge_is_followed_and_confined(&namespace, &release, &project.namespace).await;

    // SIGTERM: a clean, prompt exit.
    let pid = operator.0.id();
    run(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = support::eventually(
        Duration::from_secs(15),
        "oksa run exits after SIGTERM",
        || {
            let exited = operator.0.try_wait().ok().flatten();
            async move { exited }
        },
    )
    .await;
    assert!(status.success(), "exit status {status}");
    let lines = log_lines.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with('{')),
        "JSON logs: {:?}",
        lines.first()
    );

    project.cleanup().await;
    run(tool("helm").args(["uninstall", &release, "--namespace", &namespace.name]));
    namespace.cleanup().await;
}

/// The chart's edge: its two (kwok) pods are what each project namespace's `oksa-edge` Service
/// leads to, and `oksa edge` as the edge's ServiceAccount can serve (its caches fill) but not
/// act as the operator.
async fn edge_is_followed_and_confined(
    namespace: &TestNamespace,
    release: &str,
    project_namespace: &str,
) {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let pods = namespace
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels(&format!(
            "app.kubernetes.io/name=oksa-edge,app.kubernetes.io/instance={release}"
        )))
        .await
        .unwrap();
    let mut pod_ips: Vec<String> = pods
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    pod_ips.sort();
    assert_eq!(pod_ips.len(), 2, "two edge replicas by default");
    let slices =
        kube::Api::<EndpointSlice>::namespaced(namespace.client.clone(), project_namespace);
    support::eventually(
        Duration::from_secs(30),
        "the project's edge Service on the edge pods",
        || async {
            let slice = slices.get(oksa::naming::EDGE_SERVICE).await.ok()?;
            let mut ips: Vec<String> = slice
                .endpoints?
                .into_iter()
                .flat_map(|e| e.addresses)
                .collect();
            ips.sort();
            (ips == pod_ips).then_some(())
        },
    )
    .await;

    let kubeconfig = support::identity::service_account_kubeconfig(
        &namespace.client,
        &namespace.name,
        &format!("{release}-edge"),
    )
    .await;
    let health = support::free_port();
    let traffic = support::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_oksa"))
        .arg("edge")
        .env("KUBECONFIG", &kubeconfig)
        .env("OKSA_LISTEN", format!("127.0.0.1:{health}"))
        .env("OKSA_EDGE_LISTEN", format!("127.0.0.1:{traffic}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("starting oksa edge");
    let edge_process = Operator(child);
    support::eventually(
        Duration::from_secs(30),
        "the edge's /readyz answers 200",
        || async { (support::http_get(health, "/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    drop(edge_process);
    let edge = support::identity::client_from(&kubeconfig).await;
    for (verb, group, resource) in [
        ("delete", "oksa.dev", "branchreleases"),
        ("patch", "oksa.dev", "branchreleases/status"),
        ("patch", "oksa.dev", "projects"),
        ("get", "", "secrets"),
        ("patch", "discovery.k8s.io", "endpointslices"),
    ] {
        assert!(
            !allowed(&edge, verb, group, resource, Some(project_namespace)).await,
            "the edge may {verb} {resource}"
        );
    }
    assert!(
        allowed(
            &edge,
            "patch",
            "oksa.dev",
            "branchreleases",
            Some(project_namespace)
        )
        .await
    );
}
