//! Invalid specs are rejected at `kubectl apply` time, with a message that says what is wrong.

mod support;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use oksa::api::{BranchRelease, Project};
use serde_json::{Value, json};
use support::TestNamespace;
use support::fixtures::{release_object, web_component};

/// Creates the BranchRelease as raw JSON (some invalid values do not fit the Rust types) and
/// returns the API server's refusal as one line.
async fn rejection(api: &Api<BranchRelease>, name: &str, spec: Value) -> String {
    let namespace = api.namespace().unwrap_or_default().to_string();
    let raw: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &namespace,
        &ApiResource::erase::<BranchRelease>(&()),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    match raw.create(&PostParams::default(), &object).await {
        Ok(_) => panic!("{name}: the API server accepted an invalid spec"),
        Err(error) => oksa::apply::describe(&error),
    }
}

fn valid() -> Value {
    json!({"project": "p", "branch": "main", "components": [web_component("web", "nginx")]})
}

#[tokio::test]
async fn invalid_branch_releases_are_rejected_with_a_readable_message() {
    support::operator::ensure_running();
    let ns = TestNamespace::create("cel").await;
    let api = ns.api::<BranchRelease>();

    let mut spec = valid();
    spec["components"][0]["containers"][0]["volumeMounts"] =
        json!([{"volume": "nope", "mountPath": "/data"}]);
    let message = rejection(&api, "mount", spec).await;
    assert!(
        message.contains("every volumeMount must name a volume declared in spec.volumes"),
        "{message}"
    );

    let mut spec = valid();
    spec["routes"] = json!([{"path": "/", "component": "missing"}]);
    let message = rejection(&api, "route", spec).await;
    assert!(
        message.contains("every route must name a component declared in spec.components"),
        "{message}"
    );

    let mut spec = valid();
    spec["components"] = json!([
        web_component("web", "nginx"),
        web_component("web", "nginx:2")
    ]);
    let message = rejection(&api, "dup", spec).await;
    assert!(
        message.contains("spec.components[1]") && message.contains("Duplicate value"),
        "{message}"
    );

    let mut spec = valid();
    spec["volumes"] = json!([{"name": "files", "size": "lots"}]);
    let message = rejection(&api, "size", spec).await;
    assert!(message.contains("spec.volumes[0].size"), "{message}");

    let mut spec = valid();
    spec["components"][0]["replicas"] = json!(1000);
    let message = rejection(&api, "replicas", spec).await;
    assert!(
        message.contains("spec.components[0].replicas") && message.contains("100"),
        "{message}"
    );

    let mut spec = valid();
    spec["components"][0]["name"] = json!("Web_Server");
    let message = rejection(&api, "name", spec).await;
    assert!(message.contains("spec.components[0].name"), "{message}");

    // project and branch are fixed once created.
    api.create(&PostParams::default(), &release_object("fixed", valid()))
        .await
        .unwrap();
    for (field, value, expected) in [
        ("branch", "other", "branch is immutable"),
        ("project", "q", "project is immutable"),
    ] {
        let patch = json!({"spec": {field: value}});
        let error = api
            .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn a_projects_namespace_cannot_change() {
    support::operator::ensure_running();
    let client = support::client().await;
    let api = Api::<Project>::all(client);
    let name = support::unique("immutable");
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name},
        "spec": {"domain": format!("{name}.test"), "namespace": name},
    }))
    .unwrap();
    api.create(&PostParams::default(), &project).await.unwrap();
    let patch = json!({"spec": {"namespace": "elsewhere"}});
    let error = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("namespace is immutable"), "{error}");
    let bad: Project = serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": format!("{name}-bad")},
        "spec": {"domain": "Not A Domain!"},
    }))
    .unwrap();
    let error = api
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("spec.domain"), "{error}");
    let _ = api.delete(&name, &Default::default()).await;
}

/// Specs that the Deployment would refuse, caught at `kubectl apply` instead: one per rule.
#[tokio::test]
async fn what_a_deployment_would_refuse_is_rejected_at_apply() {
    support::operator::ensure_running();
    let ns = TestNamespace::create("cel-pod").await;
    let api = ns.api::<BranchRelease>();
    let container = |patch: Value| {
        let mut spec = valid();
        let target = spec["components"][0]["containers"][0]
            .as_object_mut()
            .unwrap();
        target.extend(patch.as_object().cloned().unwrap());
        spec
    };
    let cases = [
        (
            "digits-port-name",
            container(json!({"ports": [{"containerPort": 8080, "name": "8080"}]})),
            "spec.components[0].containers[0].ports[0].name",
        ),
        (
            "empty-env-name",
            container(json!({"env": [{"name": "", "value": "x"}]})),
            "every env entry needs a name",
        ),
        (
            "cpu-lots",
            container(json!({"resources": {"requests": {"cpu": "lots"}}})),
            "resources.requests.cpu",
        ),
        (
            "empty-probe",
            container(json!({"readinessProbe": {"periodSeconds": 5}})),
            "a probe needs one of exec, httpGet, tcpSocket or grpc",
        ),
        (
            "huge-probe-port",
            container(json!({"livenessProbe": {"tcpSocket": {"port": 4294967296u64}}})),
            "livenessProbe.tcpSocket.port",
        ),
        (
            "bad-probe-port-name",
            container(json!({"livenessProbe": {"httpGet": {"port": "Not_A_Port"}}})),
            "livenessProbe.httpGet.port",
        ),
        (
            "negative-seconds",
            container(
                json!({"readinessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": -1}}),
            ),
            "readinessProbe.timeoutSeconds",
        ),
    ];
    for (name, spec, expected) in cases {
        let message = rejection(&api, name, spec).await;
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            !message.contains("Status {"),
            "{name}: one readable line: {message}"
        );
    }
    ns.cleanup().await;
}
