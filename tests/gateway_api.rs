//! Gateway API: a Project that routes through a Gateway gets an HTTPRoute per branch instead of an
//! Ingress, and a real implementation (Traefik, in the local plane) routes each branch's host to
//! that branch's Service, and stops when the branch is deleted.
//!
//! The plane's pods are kwok's: their addresses lead nowhere. So each branch's component runs no
//! pod (`replicas: 0`), and the test gives its Service an EndpointSlice of its own, pointing at a
//! small HTTP server of this test on the machine's address (the API server refuses loopback
//! addresses in endpoints). Traefik dials the endpoints of a Service directly, as it would pods.

mod support;

use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use oksa::gateway_api::HTTPRoute;
use serde_json::json;
use support::eventually;
use support::fixtures::{TIMEOUT, TestProject};
use support::web::{endpoints, machine_address, serve};

/// GET / through the Gateway with this Host header: (status code, body).
async fn through_gateway(gateway: &str, host: &str) -> (u16, String) {
    let address = gateway.trim_start_matches("http://");
    let (code, response) = support::http_get_from(address, host, "/").await;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The tests of this file count the operator's HTTPRoute writes, which are not per namespace: they
/// take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The in-process operator's HTTPRoute writes: (applied or deleted, skipped as already in place).
fn route_writes() -> (f64, f64) {
    let metrics = support::operator::metrics_text().expect("the in-process operator");
    let mut counts = (0.0, 0.0);
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("oksa_child_writes_total{") && l.contains("kind=\"HTTPRoute\""))
    {
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        if line.contains("verb=\"skipped\"") {
            counts.1 += value;
        } else {
            counts.0 += value;
        }
    }
    counts
}

/// A branch with one component that runs no pod but has a Service on port 8080.
fn podless_branch(branch: &str) -> serde_json::Value {
    json!({"branch": branch, "components": [{"name": "web", "replicas": 0,
        "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080}]}]}]})
}

#[tokio::test]
async fn each_branch_host_reaches_its_own_service_through_the_gateway() {
    let Some(state) = support::plane().state.clone() else {
        eprintln!("not run: it needs the local plane's Gateway (KUBECONFIG names another cluster)");
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let gateway = std::fs::read_to_string(state.join("gateway-url")).unwrap();
    let gateway = gateway.trim();
    let address = machine_address().expect("an IPv4 address of this machine besides loopback");

    let project = TestProject::create(
        "gateway",
        json!({"gateway": {"name": "shared", "namespace": "gateway-system"}}),
    )
    .await;
    let main = project.create_ready("main", podless_branch("main")).await;
    // A branch name with a slash: its release name gets a hash (see `naming::release_name`).
    let feature = project
        .create_ready("feature", podless_branch("feature/x"))
        .await
        .status
        .unwrap()
        .release_name
        .unwrap();
    assert_eq!(
        main.status.unwrap().url,
        Some(format!("http://main.{}", project.domain))
    );

    // An HTTPRoute per branch, attached to the Gateway, and no Ingress.
    let routes = project.namespaced::<HTTPRoute>();
    let route = routes.get("main").await.unwrap();
    assert_eq!(
        route.spec.hostnames,
        vec![format!("main.{}", project.domain)]
    );
    assert_eq!(route.spec.parent_refs[0].name, "shared");
    assert_eq!(
        route.spec.rules[0].backend_refs[0].name, "main-web",
        "{route:?}"
    );
    assert!(
        project
            .namespaced::<Ingress>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Traefik accepts both routes.
    eventually(TIMEOUT, "Traefik to accept the routes", || async {
        let list = routes.list(&Default::default()).await.ok()?;
        let accepted = list
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.parents.iter().any(|p| {
                        p.conditions
                            .iter()
                            .any(|c| c.type_ == "Accepted" && c.status == "True")
                    })
                })
            })
            .count();
        (accepted == 2).then_some(())
    })
    .await;

    // Each host reaches its own branch's Service.
    let slices = project.namespaced::<EndpointSlice>();
    for (release, body) in [
        ("main", "main says hi"),
        (feature.as_str(), "feature says hi"),
    ] {
        let port = serve(body).await;
        let service = format!("{release}-web");
        slices
            .create(
                &PostParams::default(),
                &endpoints(&service, "port-8080", &address, port),
            )
            .await
            .unwrap();
    }
    for (host, body) in [
        ("main", "main says hi"),
        (feature.as_str(), "feature says hi"),
    ] {
        let host = format!("{host}.{}", project.domain);
        eventually(TIMEOUT, &format!("{host} through the Gateway"), || async {
            (through_gateway(gateway, &host).await == (200, body.to_string())).then_some(())
        })
        .await;
    }
    let (unknown, _) = through_gateway(gateway, &format!("nobody.{}", project.domain)).await;
    assert_eq!(unknown, 404, "a host no branch serves");

    // In place, the routes are left alone: another reconcile of the branch checks its route (a
    // skip is counted) and writes nothing.
    let (writes, skips) = route_writes();
    project
        .releases()
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/poke": "1"}}})),
        )
        .await
        .unwrap();
    eventually(TIMEOUT, "another reconcile of main", || async {
        (route_writes().1 > skips).then_some(())
    })
    .await;
    assert_eq!(
        route_writes().0,
        writes,
        "a route in place was written again"
    );

    // A deleted branch's route goes, and with it its host.
    project
        .releases()
        .delete("feature", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_deleted(&routes, "feature", TIMEOUT).await;
    let host = format!("{feature}.{}", project.domain);
    eventually(
        Duration::from_secs(30),
        "the deleted branch's host to go",
        || async { (through_gateway(gateway, &host).await.0 == 404).then_some(()) },
    )
    .await;
    assert_eq!(
        through_gateway(gateway, &format!("main.{}", project.domain)).await,
        (200, "main says hi".to_string())
    );

    // Back to an Ingress: the route is pruned, the Ingress takes over.
    project
        .api()
        .patch(
            &project.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gateway": null}})),
        )
        .await
        .unwrap();
    support::wait_deleted(&routes, "main", TIMEOUT).await;
    eventually(TIMEOUT, "main's Ingress", || async {
        project.namespaced::<Ingress>().get_opt("main").await.ok()?
    })
    .await;
    project.cleanup().await;
}

#[tokio::test]
async fn a_route_the_gateway_refuses_makes_the_branch_degraded_with_the_gateways_reason() {
    if support::plane().state.is_none() {
        eprintln!("not run: it needs the local plane's Gateway (KUBECONFIG names another cluster)");
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    // The Gateway has no listener of that name, so it cannot accept the route.
    let project = TestProject::create(
        "gateway-refused",
        json!({"gateway": {"name": "shared", "namespace": "gateway-system", "sectionName": "nope"}}),
    )
    .await;
    project.create_release("main", podless_branch("main")).await;
    let release = project
        .wait_release("main", "RouteNotAccepted", |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "RouteNotAccepted")
        })
        .await;
    let status = release.status.unwrap();
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(stalled.status, "True");
    assert!(
        stalled
            .message
            .contains("Gateway gateway-system/shared does not accept HTTPRoute main"),
        "{stalled:?}"
    );
    project.cleanup().await;
}
