//! Sleep, wake and expiry, from the outside: idle branches sleep keeping their volumes, with their
//! routes switched to the waker before their workloads stop; a person's request through Traefik
//! wakes one (a bot's or a HEAD does not); keep-alives, deploys, manual scaling, the wake cap,
//! a wake that cannot finish, drift while asleep, and expiry.
//!
//! Durations are seconds here (the settings take any `90s`/`30m`/`8h`/`7d`), so the lifecycle runs
//! on the real clock in test time. The waker runs in the test's operator, reached at this
//! machine's address (see `support::operator`).

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use oksa::api::{BranchRelease, BranchReleaseStatus, LifecycleState, Phase};
use oksa::gateway_api::HTTPRoute;
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, keepalive, web_branch, web_component};
use support::web::{Answer, endpoints, machine_address, request, serve};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";
const LONG: Duration = Duration::from_secs(90);

fn state(status: &BranchReleaseStatus) -> Option<LifecycleState> {
    status.lifecycle.as_ref().map(|l| l.state)
}

fn reason(status: &BranchReleaseStatus) -> Option<String> {
    status.lifecycle.as_ref().and_then(|l| l.reason.clone())
}

/// Waits (up to `LONG`) until the BranchRelease's lifecycle is in `wanted`, whatever its generation.
async fn until_state(project: &TestProject, name: &str, wanted: LifecycleState) -> BranchRelease {
    let releases = project.releases();
    eventually(LONG, &format!("{name} {wanted:?}"), || async {
        let release = releases.get(name).await.ok()?;
        let status = release.status.as_ref()?;
        (state(status) == Some(wanted) && status.observed_generation == release.metadata.generation)
            .then_some(release)
    })
    .await
}

async fn replicas(project: &TestProject, deployment: &str) -> Option<i32> {
    project.replicas(deployment).await
}

/// Wakes per project per hour in this binary: the cap's test needs a small one, and it is per
/// project, so the other tests (one wake each at most) stay below it.
const WAKE_CAP: u32 = 2;

/// Every test's Project: the operator (started by the first) gets the small wake cap whichever
/// test comes first.
async fn create_project(prefix: &str, spec: serde_json::Value) -> TestProject {
    support::operator::set_wake_cap(WAKE_CAP);
    TestProject::create(prefix, spec).await
}

/// Leads branch main's web Service also to a server of this test answering "main says hi" (its
/// kwok pods lead nowhere): what Traefik reaches once the branch is awake.
async fn answer_for_main_web(project: &TestProject) {
    let port = serve("main says hi").await;
    project
        .namespaced::<EndpointSlice>()
        .create(
            &PostParams::default(),
            &endpoints("main-web", "port-8080", &machine_address().unwrap(), port),
        )
        .await
        .unwrap();
}

fn lifecycle(settings: serde_json::Value) -> serde_json::Value {
    json!({"defaults": {"lifecycle": settings}})
}

/// `kubectl scale` of a BranchRelease: to 0 puts it to sleep by hand, to 1 or more wakes it.
fn scale(project: &TestProject, branch: &str, replicas: &str) {
    support::succeed(support::tool("kubectl").args([
        "scale",
        "-n",
        &project.namespace,
        &format!("branchrelease/{branch}"),
        &format!("--replicas={replicas}"),
    ]));
}

/// A branch with a volume mounted by its web component.
fn branch_with_volume(branch: &str) -> serde_json::Value {
    let mut web = web_component("web", "nginx:1.27");
    web["containers"][0]["volumeMounts"] = json!([{"volume": "data", "mountPath": "/data"}]);
    json!({"branch": branch, "components": [web], "volumes": [{"name": "data", "size": "1Gi"}]})
}

#[tokio::test]
async fn an_idle_branch_sleeps_keeping_its_volume_with_routes_switched_before_replicas() {
    // Long enough for the volume to bind and the branch to be Ready first (under load too).
    let project = create_project("sleep", lifecycle(json!({"sleepAfter": "15s"}))).await;
    let created = project
        .create_ready("main", branch_with_volume("main"))
        .await;
    let lifecycle = created.status.unwrap().lifecycle.unwrap();
    assert_eq!(lifecycle.state, LifecycleState::Awake);
    assert!(lifecycle.sleeps_at.is_some(), "{lifecycle:?}");
    let claims = project.namespaced::<PersistentVolumeClaim>();
    let claim_uid = claims.get("main-data").await.unwrap().uid();

    // Watch the Ingress and the Deployment: the resourceVersion of the write that switched the
    // Ingress to the waker, and of the one that took the Deployment to zero (etcd revisions,
    // one sequence for all objects).
    let switched = watch_first(
        project.namespaced::<Ingress>(),
        "main",
        |ingress: &Ingress| {
            ingress
                .spec
                .as_ref()
                .and_then(|s| s.rules.as_ref())
                .is_some_and(|rules| {
                    rules.iter().all(|r| {
                        r.http.as_ref().is_some_and(|h| {
                            h.paths.iter().all(|p| {
                                p.backend.service.as_ref().map(|s| s.name.as_str())
                                    == Some(oksa::naming::EDGE_SERVICE)
                            })
                        })
                    })
                })
        },
    );
    let stopped = watch_first(
        project.namespaced::<Deployment>(),
        "main-web",
        |deployment: &Deployment| deployment.spec.replicas == Some(0),
    );
    let (switched, stopped) = tokio::join!(switched, stopped);
    assert!(
        switched < stopped,
        "the Ingress was switched (revision {switched}) after the Deployment stopped ({stopped})"
    );

    let asleep = until_state(&project, "main", LifecycleState::Sleeping).await;
    let status = asleep.status.unwrap();
    assert_eq!(reason(&status).as_deref(), Some("Idle"));
    eventually(LONG, "phase Sleeping", || async {
        let release = project.releases().get("main").await.ok()?;
        (release.status?.phase == Some(Phase::Sleeping)).then_some(())
    })
    .await;
    assert_eq!(replicas(&project, "main-web").await, Some(0));
    assert_eq!(claims.get("main-data").await.unwrap().uid(), claim_uid);
    assert_eq!(status.url, Some(format!("http://main.{}", project.domain)));
    let condition = support::fixtures::condition(&status, "Asleep").unwrap();
    assert_eq!(
        (condition.0.as_str(), condition.1.as_str()),
        ("True", "Idle")
    );

    // Drift while asleep is undone: someone scales the Deployment up by hand.
    project.scale_by_hand("main-web", 3).await;
    eventually(LONG, "the Deployment back at zero", || async {
        (replicas(&project, "main-web").await == Some(0)).then_some(())
    })
    .await;
    project.cleanup().await;
}

/// The resourceVersion of the first state of `name` that satisfies `check`.
async fn watch_first<K>(api: Api<K>, name: &str, check: impl Fn(&K) -> bool) -> u64
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).applied_objects());
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("{name} never reached the state watched for"));
        if let Some(Ok(object)) = next
            && check(&object)
        {
            return object.resource_version().unwrap().parse().unwrap();
        }
    }
}

#[tokio::test]
async fn a_request_through_traefik_wakes_a_sleeping_branch_and_bots_do_not() {
    let Some(state_dir) = support::plane().state.clone() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    let gateway = std::fs::read_to_string(state_dir.join("gateway-url")).unwrap();
    let gateway = gateway.trim().trim_start_matches("http://").to_string();
    let mut spec = lifecycle(json!({"sleepAfter": "5s"}));
    spec["gateway"] = json!({"name": "shared", "namespace": "gateway-system"});
    let project = create_project("wake", spec).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    answer_for_main_web(&project).await;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    let routes = project.namespaced::<HTTPRoute>();
    let backend = |route: HTTPRoute| route.spec.rules[0].backend_refs[0].name.clone();
    assert_eq!(
        backend(routes.get("main").await.unwrap()),
        oksa::naming::EDGE_SERVICE
    );
    let host = format!("main.{}", project.domain);
    let through = |method: &'static str, path: &'static str, agent: &'static str| {
        let gateway = gateway.clone();
        let host = host.clone();
        async move {
            request(
                &gateway,
                method,
                &host,
                path,
                &[("User-Agent", agent), ("Accept", HTML)],
            )
            .await
        }
    };
    // Traefik may take a moment to see the route's new backend.
    let first = eventually(LONG, "Traefik to reach the waker", || async {
        let answer = through("HEAD", "/", FIREFOX).await;
        (answer.header("x-robots-tag").is_some()).then_some(answer)
    })
    .await;
    assert_eq!(first.code, 503);

    // A HEAD, a crawler and robots.txt wake nothing.
    let bot = through(
        "GET",
        "/",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )
    .await;
    assert_eq!(bot.code, 503);
    let robots = through("GET", "/robots.txt", FIREFOX).await;
    assert_eq!(
        (robots.code, robots.body.as_str()),
        (200, "User-agent: *\nDisallow: /\n")
    );
    // No wait: the edge writes a sleeping branch's activity before it answers (see
    // `edge::answer`), so with the answers in hand, anything they recorded is in the API server.
    let still = project.releases().get("main").await.unwrap();
    assert_eq!(
        state(still.status.as_ref().unwrap()),
        Some(LifecycleState::Sleeping)
    );
    assert!(
        !still.annotations().contains_key("oksa.dev/last-activity"),
        "a bot or a HEAD recorded activity"
    );

    // A person: the waiting page at once, then the branch wakes and Traefik routes to it again.
    let asked = Instant::now();
    let page = through("GET", "/", FIREFOX).await;
    let page_after = asked.elapsed();
    assert_eq!(page.code, 503, "{page:?}");
    assert!(page.body.contains("is waking up"), "{}", page.body);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("retry-after").is_some());
    assert!(page.header("x-robots-tag").unwrap().contains("noindex"));
    assert!(
        page_after < Duration::from_secs(1),
        "the page took {page_after:?}"
    );
    let progress = through("GET", "/.oksa/status", FIREFOX).await;
    let progress: serde_json::Value = serde_json::from_str(&progress.body).unwrap();
    assert_eq!(progress["components"][0]["name"], "web");

    let awake = until_state(&project, "main", LifecycleState::Awake).await;
    let awake_after = asked.elapsed();
    assert_eq!(
        awake
            .status
            .unwrap()
            .lifecycle
            .unwrap()
            .last_activity_source,
        "Request"
    );
    // A branch that may sleep stays routed through the edge, which now passes requests on.
    assert_eq!(
        backend(routes.get("main").await.unwrap()),
        oksa::naming::EDGE_SERVICE
    );
    let routed_after = asked.elapsed();
    assert_eq!(replicas(&project, "main-web").await, Some(1));
    eventually(LONG, "the branch served through Traefik", || async {
        let answer = through("GET", "/", FIREFOX).await;
        (answer.body == "main says hi").then_some(())
    })
    .await;
    let served_after = asked.elapsed();
    println!(
        "waiting page in {:.0} ms; Awake after {:.1}s (checked at {:.1}s), served through Traefik and the edge after {:.1}s",
        page_after.as_secs_f64() * 1000.0,
        awake_after.as_secs_f64(),
        routed_after.as_secs_f64(),
        served_after.as_secs_f64()
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_keepalive_holds_a_branch_awake_and_without_it_the_branch_sleeps() {
    let project = create_project("keep", lifecycle(json!({"sleepAfter": "5s"}))).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        keepalive(&project, "main");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let release = project.releases().get("main").await.unwrap();
        let status = release.status.unwrap();
        assert_eq!(
            state(&status),
            Some(LifecycleState::Awake),
            "slept despite keep-alives: {:?}",
            status.lifecycle
        );
    }
    let release = project.releases().get("main").await.unwrap();
    assert_eq!(
        release
            .status
            .unwrap()
            .lifecycle
            .unwrap()
            .last_activity_source,
        "KeepAlive"
    );
    let generation = release.metadata.generation;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    let release = project.releases().get("main").await.unwrap();
    assert_eq!(
        release.metadata.generation, generation,
        "the spec was not touched"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn scaled_to_zero_it_stays_asleep_through_deploys_and_page_loads_until_scaled_up() {
    let project = create_project("manual", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    let scale = |replicas: &str| scale(&project, "main", replicas);
    scale("0");
    let asleep = until_state(&project, "main", LifecycleState::Sleeping).await;
    assert_eq!(
        reason(asleep.status.as_ref().unwrap()).as_deref(),
        Some("Manual")
    );
    assert_eq!(replicas(&project, "main-web").await, Some(0));

    // A deploy changes what will run, not whether it runs.
    project
        .apply_release("main", web_branch("main", "nginx:1.28"))
        .await
        .unwrap();
    let deployments = project.namespaced::<Deployment>();
    eventually(LONG, "the new image, at zero", || async {
        let deployment = deployments.get("main-web").await.ok()?;
        let spec = deployment.spec;
        (spec.template.spec?.containers[0].image.as_deref() == Some("nginx:1.28")
            && spec.replicas == Some(0))
        .then_some(())
    })
    .await;
    // A page load says so and wakes nothing, even before Oksa's status describes the new spec
    // (the Deployment is written before it): the edge keeps the hosts it served until then
    // (`edge::index`), where it used to answer 404 for that moment.
    let waker = support::edge::address_in(&project).await;
    let host = format!("main.{}", project.domain);
    let page = request(
        &waker,
        "GET",
        &host,
        "/",
        &[("User-Agent", FIREFOX), ("Accept", HTML)],
    )
    .await;
    assert_eq!(page.code, 503);
    assert!(page.body.contains("switched off"), "{}", page.body);
    // No wait: the edge writes a sleeping branch's activity before it answers (see
    // `edge::answer`), so with the answers in hand, anything they recorded is in the API server.
    let release = project.releases().get("main").await.unwrap();
    assert_eq!(
        reason(release.status.as_ref().unwrap()).as_deref(),
        Some("Manual")
    );

    scale("1");
    until_state(&project, "main", LifecycleState::Awake).await;
    eventually(LONG, "one pod wanted again", || async {
        (replicas(&project, "main-web").await == Some(1)).then_some(())
    })
    .await;
    project.cleanup().await;
}

#[tokio::test]
async fn a_deploy_wakes_a_sleeping_branch_with_the_new_image() {
    let project = create_project("redeploy", lifecycle(json!({"sleepAfter": "5s"}))).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    project
        .apply_release("main", web_branch("main", "nginx:1.28"))
        .await
        .unwrap();
    let deployments = project.namespaced::<Deployment>();
    eventually(LONG, "awake with the new image", || async {
        let deployment = deployments.get("main-web").await.ok()?;
        let spec = deployment.spec;
        (spec.template.spec?.containers[0].image.as_deref() == Some("nginx:1.28")
            && spec.replicas == Some(1))
        .then_some(())
    })
    .await;
    let awake = until_state(&project, "main", LifecycleState::Awake).await;
    assert_eq!(
        awake
            .status
            .unwrap()
            .lifecycle
            .unwrap()
            .last_activity_source,
        "Deploy"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_wake_that_cannot_finish_gives_up_naming_the_component() {
    let project = create_project(
        "wakefail",
        lifecycle(json!({"sleepAfter": "8s", "wakeTimeout": "3s"})),
    )
    .await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    // Deployed while asleep with an image that crashes: the wake cannot finish.
    project
        .apply_release("main", web_branch("main", "fault.oksa.test/crash-loop:1"))
        .await
        .unwrap();
    until_state(&project, "main", LifecycleState::Waking).await;
    let releases = project.releases();
    let failed = eventually(LONG, "the wake given up", || async {
        let release = releases.get("main").await.ok()?;
        let status = release.status?;
        (reason(&status).as_deref() == Some("WakeFailed")).then_some(status)
    })
    .await;
    let (_, _, message) = support::fixtures::condition(&failed, "Asleep").unwrap();
    assert!(message.contains("web"), "{message}");
    assert!(message.contains("gave up after 3s"), "{message}");
    eventually(LONG, "back at zero", || async {
        (replicas(&project, "main-web").await == Some(0)).then_some(())
    })
    .await;
    project.cleanup().await;
}

#[tokio::test]
async fn past_the_wake_cap_the_page_asks_for_a_click() {
    let project = create_project("cap", lifecycle(json!({"sleepAfter": "4s"}))).await;
    for branch in ["a", "b", "c"] {
        project
            .create_release(branch, web_branch(branch, "nginx:1.27"))
            .await;
    }
    for branch in ["a", "b", "c"] {
        until_state(&project, branch, LifecycleState::Sleeping).await;
    }
    let waker = support::edge::address_in(&project).await;
    let load = |branch: &'static str, method: &'static str, path: &'static str| {
        let waker = waker.clone();
        let host = format!("{branch}.{}", project.domain);
        async move {
            request(
                &waker,
                method,
                &host,
                path,
                &[("User-Agent", FIREFOX), ("Accept", HTML)],
            )
            .await
        }
    };
    for branch in ["a", "b"] {
        let page: Answer = load(branch, "GET", "/").await;
        assert!(page.body.contains("is waking up"), "{}", page.body);
    }
    let capped = load("c", "GET", "/").await;
    assert!(capped.body.contains("<button"), "{}", capped.body);
    // No wait: the edge writes a sleeping branch's activity before it answers (see
    // `edge::answer`), so with the answers in hand, anything they recorded is in the API server.
    let c = project.releases().get("c").await.unwrap();
    assert!(!c.annotations().contains_key("oksa.dev/last-activity"));
    // A click from another site's page wakes nothing; the page's own does.
    let host = format!("c.{}", project.domain);
    let forged = request(
        &waker,
        "POST",
        &host,
        "/.oksa/wake",
        &[("User-Agent", FIREFOX), ("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(forged.code, 403, "{forged:?}");
    let clicked = request(
        &waker,
        "POST",
        &host,
        "/.oksa/wake",
        &[("User-Agent", FIREFOX), ("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    assert_eq!(clicked.code, 303);
    until_state(&project, "c", LifecycleState::Awake).await;
    project.cleanup().await;
}

#[tokio::test]
async fn expiry_deletes_a_plain_branch_marks_a_gitops_one_and_a_pin_holds() {
    let project = create_project("expiry", lifecycle(json!({"expireAfter": "8s"}))).await;
    project
        .create_ready("plain", web_branch("plain", "nginx:1.27"))
        .await;
    let releases = project.releases();
    // As Flux applies it: with its labels.
    let mut spec = web_branch("flux", "nginx:1.27");
    spec["project"] = json!(project.name);
    let mut flux = support::fixtures::release_object("flux", spec);
    flux.labels_mut()
        .insert("kustomize.toolkit.fluxcd.io/name".into(), "branches".into());
    releases
        .patch(
            "flux",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&flux),
        )
        .await
        .unwrap();
    let mut pinned = web_branch("pinned", "nginx:1.27");
    let in_an_hour =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(1);
    pinned["lifecycle"] = json!({"pinnedUntil": in_an_hour.to_string()});
    project.create_release("pinned", pinned).await;

    support::wait_deleted(&releases, "plain", LONG).await;
    let expired = until_state(&project, "flux", LifecycleState::Expired).await;
    let status = expired.status.unwrap();
    eventually(LONG, "phase Expired", || async {
        let release = releases.get("flux").await.ok()?;
        (release.status?.phase == Some(Phase::Expired)).then_some(())
    })
    .await;
    assert_eq!(replicas(&project, "flux-web").await, Some(0));
    assert!(status.lifecycle.unwrap().expires_at.is_some());
    // It was warned about first.
    let reasons = project.event_reasons("flux").await;
    assert!(reasons.iter().any(|r| r == "ExpiringSoon"), "{reasons:?}");
    let pinned = releases.get("pinned").await.unwrap();
    let lifecycle = pinned.status.unwrap().lifecycle.unwrap();
    assert_eq!(lifecycle.state, LifecycleState::Awake);
    assert_eq!(
        lifecycle.expires_at.unwrap().0.as_second(),
        in_an_hour.as_second()
    );
    project.cleanup().await;
}

#[tokio::test]
async fn an_autoscaled_component_sleeps_without_its_autoscaler_and_wakes_with_it() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let project = create_project("hpa", lifecycle(json!({"sleepAfter": "8s"}))).await;
    let mut web = web_component("web", "nginx:1.27");
    web["autoscaling"] = json!({"minReplicas": 2, "maxReplicas": 4});
    project
        .create_release("main", json!({"branch": "main", "components": [web]}))
        .await;
    let autoscalers = project.namespaced::<HorizontalPodAutoscaler>();
    let hpa = eventually(LONG, "the autoscaler", || async {
        autoscalers.get_opt("main-web").await.ok()?
    })
    .await;
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 4));
    // The autoscaler, not Oksa, sets the pods: it raises them to its minimum.
    eventually(LONG, "two pods, set by the autoscaler", || async {
        (replicas(&project, "main-web").await == Some(2)).then_some(())
    })
    .await;
    let deployment = project
        .namespaced::<Deployment>()
        .get("main-web")
        .await
        .unwrap();
    let oksa_fields = deployment
        .managed_fields()
        .iter()
        .filter(|f| f.manager.as_deref() == Some("oksa"))
        .map(|f| serde_json::to_string(&f.fields_v1).unwrap())
        .collect::<String>();
    assert!(!oksa_fields.contains("f:replicas"), "{oksa_fields}");

    until_state(&project, "main", LifecycleState::Sleeping).await;
    eventually(LONG, "no autoscaler and no pods", || async {
        (autoscalers.get_opt("main-web").await.ok()?.is_none()
            && replicas(&project, "main-web").await == Some(0))
        .then_some(())
    })
    .await;

    // Kept awake (the autoscaler acts on its own period, up to 15 s) until its pods are back.
    let started = Instant::now();
    loop {
        keepalive(&project, "main");
        if autoscalers.get_opt("main-web").await.unwrap().is_some()
            && replicas(&project, "main-web").await == Some(2)
        {
            break;
        }
        assert!(
            started.elapsed() < LONG,
            "the autoscaler and its two pods did not come back"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    project.cleanup().await;
}

#[tokio::test]
async fn requested_resources_match_what_is_rendered_and_sleeping_shows_what_it_saves() {
    // Put to sleep by hand once the awake sums are seen: an idle timeout would race them (the
    // project's sums may be written up to a coalescing window late).
    let project = create_project("cost", json!({})).await;
    let mut web = web_component("web", "nginx:1.27");
    web["replicas"] = json!(2);
    web["containers"][0]["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
    let mut worker = web_component("worker", "busybox");
    worker["containers"][0]["resources"] = json!({"requests": {"cpu": "0.5", "memory": "1Gi"}});
    let created = project
        .create_ready(
            "main",
            json!({"branch": "main", "components": [web, worker]}),
        )
        .await;
    let requested = created.status.unwrap().requested.unwrap();
    // 2 × (100m, 128Mi) + 1 × (500m, 1Gi)
    assert_eq!(
        (requested.cpu.as_str(), requested.memory.as_str()),
        ("700m", "1280Mi")
    );
    let awake = project
        .wait_status("the project's sums", |s| {
            s.branches
                .as_ref()
                .and_then(|b| b.running.as_ref())
                .is_some_and(|r| r.cpu == "700m")
        })
        .await;
    assert_eq!(
        awake
            .status
            .unwrap()
            .branches
            .unwrap()
            .requested
            .unwrap()
            .memory,
        "1280Mi"
    );

    scale(&project, "main", "0");
    until_state(&project, "main", LifecycleState::Sleeping).await;
    let asleep = project
        .wait_status("nothing running", |s| {
            s.branches
                .as_ref()
                .and_then(|b| b.running.as_ref())
                .is_some_and(|r| r.cpu == "0")
        })
        .await;
    let branches = asleep.status.unwrap().branches.unwrap();
    assert_eq!(
        branches.requested.unwrap().cpu,
        "700m",
        "still what it asks for awake"
    );
    assert_eq!(branches.summary, "1/1 (1 asleep)");
    let history = project
        .releases()
        .get("main")
        .await
        .unwrap()
        .status
        .unwrap()
        .lifecycle
        .unwrap()
        .history;
    assert_eq!(
        history.iter().map(|t| t.asleep).collect::<Vec<_>>(),
        [false, true]
    );
    // Prometheus sees the same: 0.7 cores asleep.
    if support::operator::metrics_readable("oksa_requested shows what sleeping saves") {
        let line = format!(
            "oksa_requested{{project=\"{}\",resource=\"cpu\",state=\"asleep\"}} 0.7",
            project.name
        );
        eventually(Duration::from_secs(15), "the metric", || async {
            support::operator::metrics_text()?
                .contains(&line)
                .then_some(())
        })
        .await;
    }
    // `oksa status` shows it.
    let table = project.oksa_status();
    assert!(
        table.contains("700m / 1280Mi") && table.contains("CPU·h"),
        "{table}"
    );
    // The local plane has no metrics-server: said, not guessed.
    if support::plane().state.is_some() {
        assert!(table.contains("install metrics-server"), "{table}");
        let project_status = project
            .api()
            .get(&project.name)
            .await
            .unwrap()
            .status
            .unwrap();
        let usage = project_status
            .conditions
            .iter()
            .find(|c| c.type_ == "UsageMeasured")
            .unwrap();
        assert_eq!(
            (usage.status.as_str(), usage.reason.as_str()),
            ("False", "MetricsAPIUnavailable")
        );
    }
    project.cleanup().await;
}

#[tokio::test]
async fn outside_its_awake_hours_a_branch_sleeps_and_a_bad_time_zone_is_refused() {
    // Awake hours that close 20 to 80 s from now (UTC, to the minute), today.
    let now = k8s_openapi::jiff::Timestamp::now();
    let close = now + k8s_openapi::jiff::SignedDuration::from_secs(80);
    let close_text =
        if close.strftime("%Y-%m-%d").to_string() != now.strftime("%Y-%m-%d").to_string() {
            "24:00".to_string()
        } else {
            close.strftime("%H:%M").to_string()
        };
    let today = now.strftime("%A").to_string();
    let project = create_project("hours", json!({})).await;
    let mut branch = web_branch("main", "nginx:1.27");
    branch["lifecycle"] = json!({"awakeSchedule": {
        "days": [today], "from": "00:00", "to": close_text, "timeZone": "UTC"}});
    let created = project.create_ready("main", branch).await;
    let lifecycle = created.status.unwrap().lifecycle.unwrap();
    assert_eq!(lifecycle.state, LifecycleState::Awake);
    let sleeps_at = lifecycle.sleeps_at.expect("when the hours close");
    assert_eq!(
        sleeps_at.0.strftime("%H:%M").to_string(),
        close_text.replace("24:00", "00:00")
    );

    let asleep = until_state(&project, "main", LifecycleState::Sleeping).await;
    let status = asleep.status.unwrap();
    assert_eq!(reason(&status).as_deref(), Some("Schedule"));
    let (_, _, message) = support::fixtures::condition(&status, "Asleep").unwrap();
    assert!(message.contains("awake hours"), "{message}");

    let mut bad = web_branch("mars", "nginx:1.27");
    bad["lifecycle"] =
        json!({"awakeSchedule": {"from": "08:00", "to": "18:00", "timeZone": "Mars/Olympus"}});
    project.create_release("mars", bad).await;
    let refused = project
        .wait_release("mars", "Invalid", |s| s.phase == Some(Phase::Invalid))
        .await;
    let (_, reason, message) =
        support::fixtures::condition(refused.status.as_ref().unwrap(), "Ready").unwrap();
    assert_eq!(reason, "ScheduleInvalid");
    assert!(message.contains("Mars/Olympus"), "{message}");
    project.cleanup().await;
}

#[tokio::test]
async fn in_a_real_browser_the_waiting_page_shows_progress_and_reloads_into_the_branch() {
    let Some(state_dir) = support::plane().state.clone() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    let gateway = std::fs::read_to_string(state_dir.join("gateway-url")).unwrap();
    let gateway_port = gateway.trim().rsplit(':').next().unwrap().to_string();
    // Long enough for the whole wake to be watched before it idles out again.
    let mut spec = lifecycle(json!({"sleepAfter": "15s"}));
    spec["gateway"] = json!({"name": "shared", "namespace": "gateway-system"});
    let project = create_project("browser", spec).await;
    // Its pods never turn Ready: the wake stays in progress until the test deploys a good image.
    project
        .create_release("main", web_branch("main", "fault.oksa.test/not-ready:1"))
        .await;
    answer_for_main_web(&project).await;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    let host = format!("main.{}", project.domain);
    let gateway_address = format!("127.0.0.1:{gateway_port}");
    eventually(LONG, "Traefik to reach the waker", || async {
        let answer = request(
            &gateway_address,
            "HEAD",
            &host,
            "/",
            &[("User-Agent", FIREFOX)],
        )
        .await;
        answer.header("x-robots-tag").is_some().then_some(())
    })
    .await;

    let browser = support::browser::Browser::start("127.0.0.1").await;
    let url = format!("http://{host}:{gateway_port}/");
    browser.client.goto(&url).await.unwrap();
    let title = browser.client.title().await.unwrap();
    assert_eq!(title, "main is waking up");
    // The page polls the waker and shows each component's progress.
    let component = eventually(LONG, "the web component's progress", || async {
        let element = browser
            .client
            .find(fantoccini::Locator::Css("[data-component=web]"))
            .await
            .ok()?;
        let text = element.text().await.ok()?;
        text.contains("web: 0/1 ready").then_some(text)
    })
    .await;
    let shot = browser.screenshot("waiting-page").await;
    println!("waiting page ({component:?}): {}", shot.display());
    assert_eq!(
        state(
            project
                .releases()
                .get("main")
                .await
                .unwrap()
                .status
                .as_ref()
                .unwrap()
        ),
        Some(LifecycleState::Waking)
    );

    // A good image: the branch becomes Ready, the route switches back, and the page reloads
    // into the branch by itself.
    project
        .apply_release("main", web_branch("main", "nginx:1.27"))
        .await
        .unwrap();
    eventually(LONG, "the page to reload by itself", || async {
        let title = browser.client.title().await.ok()?;
        (title != "main is waking up").then_some(())
    })
    .await;
    // The Service also leads to the kwok pod, whose address leads nowhere useful: the test's
    // server answers one request in a few.
    eventually(LONG, "the branch's own answer", || async {
        let source = browser.client.source().await.ok()?;
        if source.contains("main says hi") {
            return Some(());
        }
        browser.client.refresh().await.ok()?;
        None
    })
    .await;
    let shot = browser.screenshot("woken-branch").await;
    println!("after the wake: {}", shot.display());
    browser.close().await;
    project.cleanup().await;
}

#[tokio::test]
async fn through_an_ingress_traefik_reaches_the_waker_and_then_the_woken_branch() {
    let Some(state_dir) = support::plane().state.clone() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    let gateway = std::fs::read_to_string(state_dir.join("gateway-url")).unwrap();
    let traefik = gateway.trim().trim_start_matches("http://").to_string();
    // The default routing: an Ingress per branch, served by Traefik's Ingress provider.
    let project = create_project("ingress", lifecycle(json!({"sleepAfter": "5s"}))).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    answer_for_main_web(&project).await;
    until_state(&project, "main", LifecycleState::Sleeping).await;
    let host = format!("main.{}", project.domain);
    let page = eventually(LONG, "Traefik to lead the Ingress to the waker", || async {
        let answer = request(
            &traefik,
            "GET",
            &host,
            "/",
            &[("User-Agent", FIREFOX), ("Accept", HTML)],
        )
        .await;
        answer.header("x-robots-tag").is_some().then_some(answer)
    })
    .await;
    assert!(page.body.contains("is waking up"), "{}", page.body);
    until_state(&project, "main", LifecycleState::Awake).await;
    eventually(LONG, "the woken branch through the Ingress", || async {
        let answer = request(&traefik, "GET", &host, "/", &[("User-Agent", FIREFOX)]).await;
        (answer.body == "main says hi").then_some(())
    })
    .await;
    project.cleanup().await;
}
