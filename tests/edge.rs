//! The edge (`oksa edge`), from outside: it answers only at hosts Oksa validated (a tenant's
//! refused BranchRelease never answers for another project's sleeping host), passes requests on
//! to an awake branch along its routes (WebSocket included), asks for a login where a branch is
//! protected (through Traefik, by Ingress and by Gateway API), counts real requests as activity,
//! keeps its redirects on the host, and cuts off a client that never finishes its headers. The
//! wake itself, the page and the cap are `lifecycle`'s tests.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use oksa::api::{BranchRelease, LifecycleState, Phase, Project};
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, release_object, web_branch, web_component};
use support::web::{
    Answer, endpoints, machine_address, request, serve, serve_echo, serve_upgrade_echo,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(60);

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

/// Leads `service`'s port `port-8080` to a server of this test on `port` (its kwok pods lead
/// nowhere; the edge skips those it cannot reach).
async fn lead(project: &TestProject, service: &str, port: u16) {
    project
        .namespaced::<EndpointSlice>()
        .create(
            &PostParams::default(),
            &endpoints(service, "port-8080", &machine_address().unwrap(), port),
        )
        .await
        .unwrap();
}

/// Traefik's address (host:port), or None when the plane is not the local one.
fn traefik() -> Option<String> {
    let state_dir = support::plane().state.clone()?;
    let url = std::fs::read_to_string(state_dir.join("gateway-url")).unwrap();
    Some(url.trim().trim_start_matches("http://").to_string())
}

/// `eventually` the answer `check` accepts, from `address` at `host`.
async fn answer_where(
    address: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    what: &str,
    check: impl Fn(&Answer) -> bool,
) -> Answer {
    eventually(LONG, what, || async {
        let answer = request(address, "GET", host, path, headers).await;
        check(&answer).then_some(answer)
    })
    .await
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn an_awake_branch_is_served_along_its_routes_with_forwarded_headers() {
    let project = TestProject::create("proxy", json!({})).await;
    let mut api = web_component("api", "api:1");
    api["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    let spec = json!({"branch": "main",
        "components": [web_component("web", "nginx:1.27"), api],
        "routes": [{"path": "/", "component": "web"}, {"path": "/api", "component": "api"}]});
    project.create_ready("main", spec).await;
    lead(&project, "main-web", serve_echo("web").await).await;
    lead(&project, "main-api", serve_echo("api").await).await;
    let edge = support::edge::address_in(&project).await;
    let host = format!("main.{}", project.domain);
    let web = answer_where(
        &edge,
        &host,
        "/shop?q=1",
        &[],
        "web through the edge",
        |a| a.body.starts_with("web\n"),
    )
    .await;
    let head = web.body.to_ascii_lowercase();
    assert!(head.contains("get /shop?q=1 http/1.1"), "{head}");
    assert!(head.contains(&format!("host: {host}")), "{head}");
    assert!(head.contains("x-forwarded-for: "), "{head}");
    assert!(
        head.contains(&format!("x-forwarded-host: {host}")),
        "{head}"
    );
    answer_where(
        &edge,
        &host,
        "/api/items",
        &[],
        "api through the edge",
        |a| a.body.starts_with("api\n"),
    )
    .await;
    // `/apix` is not under `/api`.
    answer_where(&edge, &host, "/apix", &[], "/apix to web", |a| {
        a.body.starts_with("web\n")
    })
    .await;
    // The edge's own status of an awake branch tells nothing of its insides.
    let status = request(&edge, "GET", &host, "/.oksa/status", &[]).await;
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
    project.cleanup().await;
}

/// A Project whose branches but production are protected: user ada (password s3cret), a bypass
/// token, and `cidrs`.
fn protected(routing: serde_json::Value, cidrs: &[&str]) -> serde_json::Value {
    let mut spec = json!({"productionBranch": "main", "protection": {
        "users": [format!("ada:{}", bcrypt::hash("s3cret", 4).unwrap())],
        "bypassTokenSha256": [sha256_hex("ci-token")],
        "allowCIDRs": cidrs}});
    if let Some(gateway) = routing.get("gateway") {
        spec["gateway"] = gateway.clone();
    }
    spec
}

#[tokio::test]
async fn a_protected_branch_asks_for_a_login_through_traefik_by_ingress_and_by_gateway() {
    let Some(traefik) = traefik() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    for routing in [
        json!({}),
        json!({"gateway": {"name": "shared", "namespace": "gateway-system"}}),
    ] {
        let project = TestProject::create("guard", protected(routing.clone(), &[])).await;
        project
            .create_ready("feature", web_branch("feature", "nginx:1.27"))
            .await;
        project
            .create_ready("main", web_branch("main", "nginx:1.27"))
            .await;
        lead(&project, "feature-web", serve("feature says hi").await).await;
        lead(&project, "main-web", serve("main says hi").await).await;
        let host = format!("feature.{}", project.domain);
        let via = if routing.get("gateway").is_some() {
            "Gateway"
        } else {
            "Ingress"
        };

        let asked = answer_where(&traefik, &host, "/", &[], "the login prompt", |a| {
            a.code == 401
        })
        .await;
        let prompt = asked.header("www-authenticate").unwrap_or_default();
        assert!(prompt.starts_with("Basic realm="), "{via}: {asked:?}");
        assert!(!asked.body.contains("feature says hi"));
        let login = basic("ada", "s3cret");
        answer_where(
            &traefik,
            &host,
            "/",
            &[("Authorization", &login)],
            "through with the login",
            |a| a.body == "feature says hi",
        )
        .await;
        answer_where(
            &traefik,
            &host,
            "/",
            &[("X-Oksa-Bypass", "ci-token")],
            "through with the bypass token",
            |a| a.body == "feature says hi",
        )
        .await;
        for (name, value) in [
            ("Authorization", basic("ada", "wrong")),
            ("Authorization", basic("eve", "s3cret")),
            ("X-Oksa-Bypass", "ci-token-guessed".to_string()),
        ] {
            let refused = request(&traefik, "GET", &host, "/", &[(name, &value)]).await;
            assert_eq!(refused.code, 401, "{via}, {name}: {refused:?}");
        }
        // Production is public unless it asks, and it is not routed through the edge.
        answer_where(
            &traefik,
            &format!("main.{}", project.domain),
            "/",
            &[],
            "production open to all",
            |a| a.body == "main says hi",
        )
        .await;
        println!("{via}: 401 without a login, through with one or with the token, 401 when wrong");
        project.cleanup().await;
    }
}

#[tokio::test]
async fn an_allowed_network_passes_without_a_login_and_too_many_failures_stop() {
    let Some(traefik) = traefik() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    // Traefik names the client (this test, on this machine) in X-Forwarded-For.
    let machine = format!("{}/32", machine_address().unwrap());
    let project =
        TestProject::create("office", protected(json!({}), &["127.0.0.0/8", &machine])).await;
    project
        .create_ready("feature", web_branch("feature", "nginx:1.27"))
        .await;
    lead(&project, "feature-web", serve("feature says hi").await).await;
    let host = format!("feature.{}", project.domain);
    answer_where(&traefik, &host, "/", &[], "through from the office", |a| {
        a.body == "feature says hi"
    })
    .await;

    // Elsewhere (the office network gone), failed logins run out.
    Api::<Project>::all(support::client().await)
        .patch(
            &project.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"protection": {"allowCIDRs": ["192.0.2.0/24"]}}})),
        )
        .await
        .unwrap();
    answer_where(&traefik, &host, "/", &[], "the login prompt", |a| {
        a.code == 401
    })
    .await;
    // Only the trusted proxy names the client: Traefik drops a client's own X-Forwarded-For,
    // and the edge ignores it from anyone else (a pod reaching the edge directly).
    let forged = [("X-Forwarded-For", "192.0.2.77")];
    let edge = support::edge::address_in(&project).await;
    let (_, port) = edge.rsplit_once(':').unwrap();
    for (via, address) in [
        ("Traefik", traefik.clone()),
        ("loopback", format!("127.0.0.1:{port}")),
    ] {
        let refused = request(&address, "GET", &host, "/", &forged).await;
        assert_eq!(
            refused.code, 401,
            "a forged address through {via}: {refused:?}"
        );
    }
    // (Eventually: the branch's kwok pods are endpoints too, and this sandbox's network answers
    // for their addresses with a 404 of its own.)
    answer_where(
        &edge,
        &host,
        "/",
        &forged,
        "named by the trusted proxy",
        |a| a.body == "feature says hi",
    )
    .await;
    let wrong = basic("ada", "wrong");
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            request(&traefik, "GET", &host, "/", &[("Authorization", &wrong)])
                .await
                .code,
        );
    }
    assert!(codes.ends_with(&[429, 429]), "{codes:?}");
    project.cleanup().await;
}

#[tokio::test]
async fn real_requests_keep_a_branch_awake_and_it_sleeps_once_they_stop() {
    let project = TestProject::create(
        "busy",
        json!({"defaults": {"lifecycle": {"sleepAfter": "6s"}}}),
    )
    .await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    lead(&project, "main-web", serve("main says hi").await).await;
    let edge = support::edge::address_in(&project).await;
    let host = format!("main.{}", project.domain);
    let person = [("User-Agent", FIREFOX)];
    answer_where(&edge, &host, "/", &person, "main through the edge", |a| {
        a.body == "main says hi"
    })
    .await;
    // In use for three times its sleepAfter: it never sleeps.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(18) {
        let _ = request(&edge, "GET", &host, "/", &person).await;
        assert_eq!(
            state(&project, "main").await,
            Some(LifecycleState::Awake),
            "asleep after {:?} in use",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let main = project.releases().get("main").await.unwrap();
    assert_eq!(
        main.annotations()
            .get("oksa.dev/last-activity-source")
            .map(String::as_str),
        Some("Request")
    );
    // Then nobody: it falls asleep.
    eventually(LONG, "main asleep once unused", || async {
        (state(&project, "main").await == Some(LifecycleState::Sleeping)).then_some(())
    })
    .await;
    // A script is held while it wakes, then sent back to the same path on this host. The edge
    // learns that the branch sleeps from its own watch, a moment after the status says so
    // (longer on a loaded machine); until then it still forwards, and here the branch's
    // Service leads to this test's server, which is up even while the branch sleeps.
    let sent = eventually(
        LONG,
        "the edge holds a script while the branch wakes",
        || async {
            let sent = support::web::request_within(
                Duration::from_secs(15),
                &edge,
                "GET",
                &host,
                "//elsewhere.example/x?y=1",
                &[("User-Agent", "curl/8.5.0")],
            )
            .await;
            (sent.code == 307).then_some(sent)
        },
    )
    .await;
    assert_eq!(sent.header("location"), Some("/elsewhere.example/x?y=1"));
    project.cleanup().await;
}

#[tokio::test]
async fn a_websocket_passes_through_traefik_and_the_edge() {
    let Some(traefik) = traefik() else {
        eprintln!("not run: it needs the local plane's Traefik (KUBECONFIG names another cluster)");
        return;
    };
    // May sleep, so it is routed through the edge while awake.
    let project = TestProject::create(
        "socket",
        json!({"defaults": {"lifecycle": {"sleepAfter": "1h"}}}),
    )
    .await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    lead(&project, "main-web", serve_upgrade_echo().await).await;
    let host = format!("main.{}", project.domain);
    let echoed = eventually(LONG, "a WebSocket echo through Traefik and the edge", || async {
        let mut stream = tokio::net::TcpStream::connect(&traefik).await.ok()?;
        let handshake = format!(
            "GET /socket HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {FIREFOX}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(handshake.as_bytes()).await.ok()?;
        let mut head = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
            .await
            .ok()?
            .ok()?;
        if !String::from_utf8_lossy(&head[..read]).starts_with("HTTP/1.1 101") {
            return None;
        }
        let mut echoed = Vec::new();
        for message in [&b"hello"[..], &b" edge"[..]] {
            stream.write_all(message).await.ok()?;
            let mut back = vec![0u8; message.len()];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
                .await
                .ok()?
                .ok()?;
            echoed.extend(back);
        }
        Some(echoed)
    })
    .await;
    assert_eq!(echoed, b"hello edge");
    let routes = project.namespaced::<Ingress>();
    let ingress = routes.get("main").await.unwrap();
    let backend = ingress.spec.unwrap().rules.unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths[0]
        .backend
        .service
        .clone()
        .unwrap()
        .name;
    assert_eq!(backend, oksa::naming::EDGE_SERVICE);
    project.cleanup().await;
}
