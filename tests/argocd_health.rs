//! The Argo CD health checks in examples/argocd, run in a real Lua interpreter against status
//! objects as Oksa writes them.

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};

fn health(script: &str, object: Value) -> (String, String) {
    let path = format!("{}/examples/argocd/{script}", env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(&path).unwrap();
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(&object).unwrap())
        .unwrap();
    // Argo CD runs the script as a function body: the final `return` gives the health.
    let result: Table = lua
        .load(format!("return (function()\n{code}\nend)()"))
        .eval()
        .unwrap();
    (
        result.get("status").unwrap(),
        result.get("message").unwrap(),
    )
}

fn release(generation: i64, status: Value) -> Value {
    json!({"metadata": {"name": "main", "generation": generation}, "spec": {}, "status": status})
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message})
}

#[test]
fn branch_release_health() {
    let script = "health-branchrelease.lua";
    assert_eq!(
        health(script, json!({"metadata": {"generation": 1}})).0,
        "Progressing"
    );

    let ready = release(
        2,
        json!({"observedGeneration": 2, "phase": "Ready",
        "conditions": [condition("Ready", "True", "AllComponentsReady", "all components ready at http://main.shop.example.com")]}),
    );
    assert_eq!(
        health(script, ready.clone()),
        (
            "Healthy".into(),
            "all components ready at http://main.shop.example.com".into()
        )
    );

    let stale = release(3, ready["status"].clone());
    assert_eq!(
        health(script, stale).0,
        "Progressing",
        "Ready for an older spec is not Healthy"
    );

    let degraded = release(
        1,
        json!({"observedGeneration": 1, "phase": "Degraded", "conditions": [
        condition("Ready", "False", "ComponentsNotReady", "web: 0/1 ready"),
        condition("Degraded", "True", "ImagePullFailed", "container web: cannot pull image shop/web:nope")]}),
    );
    assert_eq!(
        health(script, degraded),
        (
            "Degraded".into(),
            "container web: cannot pull image shop/web:nope".into()
        )
    );

    // With the kstatus conditions: Stalled decides, and a problem that may pass is Progressing.
    let stalled = release(
        1,
        json!({"observedGeneration": 1, "phase": "Degraded", "conditions": [
        condition("Ready", "False", "ComponentsNotReady", "web: 0/1 ready"),
        condition("Degraded", "True", "ImagePullFailed", "container web: cannot pull image x"),
        condition("Stalled", "True", "ImagePullFailed", "container web: cannot pull image x")]}),
    );
    assert_eq!(
        health(script, stalled),
        (
            "Degraded".into(),
            "container web: cannot pull image x".into()
        )
    );
    let probing = release(
        1,
        json!({"observedGeneration": 1, "phase": "Degraded", "conditions": [
        condition("Ready", "False", "ComponentsNotReady", "web: 0/1 ready"),
        condition("Degraded", "True", "ProbeFailing", "Readiness probe failed: connection refused"),
        condition("Reconciling", "True", "RollingOut", "web: 0/1 ready"),
        condition("Stalled", "False", "AsExpected", "")]}),
    );
    assert_eq!(
        health(script, probing),
        (
            "Progressing".into(),
            "Readiness probe failed: connection refused".into()
        )
    );

    let invalid = release(
        1,
        json!({"observedGeneration": 1, "phase": "Invalid", "conditions": [
        condition("Ready", "False", "HostOutsideDomain", "host evil.org is outside the project's domain")]}),
    );
    assert_eq!(health(script, invalid).0, "Degraded");

    let pending = release(
        1,
        json!({"observedGeneration": 1, "phase": "Pending", "conditions": [
        condition("Ready", "False", "ProjectNotFound", "Project shop does not exist (yet); waiting for it")]}),
    );
    assert_eq!(
        health(script, pending),
        (
            "Progressing".into(),
            "Project shop does not exist (yet); waiting for it".into()
        )
    );
}

#[test]
fn project_health() {
    let script = "health-project.lua";
    assert_eq!(health(script, json!({"metadata": {}})).0, "Progressing");
    let ready = json!({"metadata": {}, "status": {"conditions": [condition("Ready", "True", "NamespaceReady", "namespace shop is ready")]}});
    assert_eq!(health(script, ready).0, "Healthy");
    let refused = json!({"metadata": {}, "status": {"conditions": [condition("Ready", "False", "NamespaceConflict", "namespace x already exists")]}});
    assert_eq!(
        health(script, refused),
        ("Degraded".into(), "namespace x already exists".into())
    );
    let terminating = json!({"metadata": {}, "status": {"conditions": [condition("Ready", "False", "NamespaceTerminating", "waiting")]}});
    assert_eq!(health(script, terminating).0, "Progressing");
}
