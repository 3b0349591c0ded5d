//! The edge (`oksa edge`), from outside: it answers only at hosts Oksa validated (a tenant's
//! refused BranchRelease never answers for another project's sleeping host), tells nothing about
//! an awake branch, keeps its redirects on the host, and cuts off a client that never finishes
//! its headers. The wake itself, the page and the cap are `lifecycle`'s tests.

mod support;

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use oksa::api::{BranchRelease, LifecycleState, Phase};
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, release_object, web_branch};
use support::web::request;

const LONG: Duration = Duration::from_secs(60);
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

async fn state(project: &TestProject, name: &str) -> Option<LifecycleState> {
    let release = project.releases().get(name).await.ok()?;
    Some(release.status?.lifecycle?.state)
}

#[tokio::test]
async fn a_tenants_refused_branch_never_answers_for_another_projects_host() {
    let shop = TestProject::create(
        "shop",
        json!({"defaults": {"lifecycle": {"sleepAfter": "4s"}}}),
    )
    .await;
    let tenant = TestProject::create("tenant", json!({})).await;
    shop.create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    eventually(LONG, "shop's main asleep", || async {
        (state(&shop, "main").await == Some(LifecycleState::Sleeping)).then_some(())
    })
    .await;
    // From its own namespace, the tenant names shop's project, and lists shop's host.
    let stolen_host = format!("main.{}", shop.domain);
    let apply = PatchParams::apply("tenant").force();
    let mut foreign = web_branch("main", "nginx:1.27");
    foreign["project"] = json!(shop.name);
    let mut listing = web_branch("x", "nginx:1.27");
    listing["project"] = json!(tenant.name);
    listing["hosts"] = json!([stolen_host]);
    for (name, spec) in [("foreign", foreign), ("listing", listing)] {
        tenant
            .releases()
            .patch(name, &apply, &Patch::Apply(&release_object(name, spec)))
            .await
            .unwrap();
        tenant
            .wait_release(name, "refused", |s| s.phase == Some(Phase::Invalid))
            .await;
    }

    let edge = support::edge::address_in(&shop).await;
    let page = request(
        &edge,
        "GET",
        &stolen_host,
        "/",
        &[("User-Agent", FIREFOX), ("Accept", HTML)],
    )
    .await;
    assert_eq!(page.code, 503, "{page:?}");
    eventually(LONG, "shop's main woken by the request", || async {
        let main = shop.releases().get("main").await.ok()?;
        main.annotations()
            .contains_key("oksa.dev/last-activity")
            .then_some(())
    })
    .await;
    for name in ["foreign", "listing"] {
        let refused: BranchRelease = tenant.releases().get(name).await.unwrap();
        assert!(
            !refused.annotations().contains_key("oksa.dev/last-activity"),
            "{name} got shop's request"
        );
    }
    // The tenant's own (refused) host answers nothing at all.
    let own = request(&edge, "GET", &format!("x.{}", tenant.domain), "/", &[]).await;
    assert_eq!(own.code, 404, "{own:?}");
    tenant.cleanup().await;
    shop.cleanup().await;
}

#[tokio::test]
async fn an_awake_branch_shows_no_details_and_redirects_stay_on_the_host() {
    let project = TestProject::create("awake", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    let edge = support::edge::address_in(&project).await;
    let host = format!("main.{}", project.domain);
    let status = eventually(LONG, "the edge to know main", || async {
        let answer = request(&edge, "GET", &host, "/.oksa/status", &[]).await;
        (answer.code == 200).then_some(answer)
    })
    .await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["awake"], true);
    assert!(
        status["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("message").is_none()),
        "{status}"
    );
    // A script asking for `//elsewhere.example/x` of an awake branch is sent back to this host.
    let sent = request(
        &edge,
        "GET",
        &host,
        "//elsewhere.example/x?y=1",
        &[("User-Agent", "curl/8.5.0")],
    )
    .await;
    assert_eq!(sent.code, 307, "{sent:?}");
    assert_eq!(sent.header("location"), Some("/elsewhere.example/x?y=1"));
    project.cleanup().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let project = TestProject::create("slow", json!({})).await;
    let edge = support::edge::address_in(&project).await;
    let mut stream = tokio::net::TcpStream::connect(&edge).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: slow.example\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
    let after = started.elapsed();
    assert!(closed.is_ok(), "the connection stayed open 30 s");
    assert!(
        after >= Duration::from_secs(support::edge::HEADER_TIMEOUT_SECONDS - 1),
        "cut off after {after:?}, before its time"
    );
    println!("a client that never finished its headers was cut off after {after:?}");
    project.cleanup().await;
}
