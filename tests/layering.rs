//! The layers of `src/`, checked: each module may use its own layer and those below it, never one
//! above, and the pure layers do no I/O. A module that is in no layer fails the check, so a new
//! one is placed on purpose. No cluster needed.
//!
//! ```text
//! app       run, demo, cli, main, lib            may use everything
//! runtime   controller                           ─┐
//! edge      edge                                  ├ side by side: none uses another
//! cli       deploy, keepalive, table, status…    ─┘
//! apply     apply                                the applier (plan pure, executor)
//! plumbing  watch, metrics, clock, leader…       kube and process plumbing
//! model     model, naming, labels, policy…       pure: no client, no runtime, no I/O
//! api       api, gateway_api                     the contract; uses nothing of ours
//! ```

use std::path::{Path, PathBuf};

/// Each layer, with the modules (the first part of a path under `src/`) in it.
const LAYERS: &[(&str, &[&str])] = &[
    ("api", &["api", "gateway_api"]),
    (
        "model",
        &[
            "model",
            "naming",
            "quantity",
            "labels",
            "routing",
            "policy",
            "compact",
            "test_fixtures",
        ],
    ),
    (
        "plumbing",
        &[
            "watch",
            "metrics",
            "heap",
            "clock",
            "telemetry",
            "readiness",
            "leader",
            "usage",
            "server",
            "forge",
        ],
    ),
    ("apply", &["apply"]),
    ("runtime", &["controller"]),
    ("edge", &["edge"]),
    (
        "cli",
        &[
            "deploy",
            "keepalive",
            "table",
            "status",
            "crd",
            "api_probe",
            "data_reset",
        ],
    ),
    ("app", &["run", "demo", "cli", "main", "lib", "bin"]),
];

/// The layers each layer may use besides its own.
fn may_use(layer: &str) -> &'static [&'static str] {
    match layer {
        "api" => &[],
        "model" => &["api"],
        "plumbing" => &["api", "model"],
        "apply" => &["api", "model", "plumbing"],
        "runtime" | "edge" | "cli" => &["api", "model", "plumbing", "apply"],
        _ => &[
            "api", "model", "plumbing", "apply", "runtime", "edge", "cli",
        ],
    }
}

/// What a pure layer must not do: talk to the API server or the network, spawn, read files.
const IMPURE: &[&str] = &[
    "kube::Client",
    "Client::",
    "Api::",
    "Api<",
    "tokio::",
    "std::fs",
    "std::net::Tcp",
    "std::process",
    "hyper::",
    "reqwest::",
];

fn layer_of(module: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|(layer, _)| *layer)
}

/// The modules of ours a file's text names: `crate::x` and `oksa::x`.
fn modules_named(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "oksa::"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            // `mycrate::` is not `crate::`.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// The text without comments: a doc comment may name a layer above (`see controller::run`).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every violation in one file: (what, why).
fn violations(module: &str, text: &str) -> Vec<String> {
    let Some(layer) = layer_of(module) else {
        return vec![format!(
            "module `{module}` is in no layer: add it to LAYERS in tests/layering.rs"
        )];
    };
    let code = code_of(text);
    let mut found = Vec::new();
    for named in modules_named(&code) {
        // Names of ours that are not modules (a macro, a function of lib.rs) are left alone.
        let Some(named_layer) = layer_of(&named) else {
            continue;
        };
        if named_layer != layer && !may_use(layer).contains(&named_layer) {
            found.push(format!(
                "{module} ({layer}) uses {named} ({named_layer}): a {layer} module may use {:?} and itself only",
                may_use(layer)
            ));
        }
    }
    if matches!(layer, "api" | "model") {
        for token in IMPURE {
            if code.contains(token) {
                found.push(format!(
                    "{module} ({layer}) is pure and names `{token}`: I/O belongs to the runtime, the edge or the CLI"
                ));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_its_own_and_the_pure_layers_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut all = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy();
        let module = module.trim_end_matches(".rs");
        let text = std::fs::read_to_string(&file).unwrap();
        for violation in violations(module, &text) {
            all.push(format!("{}: {violation}", relative.display()));
        }
    }
    assert!(all.is_empty(), "layering violations:\n{}", all.join("\n"));
}

#[test]
fn the_check_catches_an_upward_use_an_impure_model_and_an_unplaced_module() {
    assert!(
        violations(
            "model",
            "use crate::api::BranchRelease;\nuse crate::naming;"
        )
        .is_empty()
    );
    let upward = violations("model", "use crate::controller::Context;");
    assert_eq!(upward.len(), 1, "{upward:?}");
    assert!(
        upward[0].contains("uses controller (runtime)"),
        "{upward:?}"
    );
    let edge_on_runtime = violations("edge", "fn f() { crate::controller::run(); }");
    assert_eq!(edge_on_runtime.len(), 1, "{edge_on_runtime:?}");
    let cli_on_edge = violations("deploy", "use crate::edge::run;");
    assert_eq!(cli_on_edge.len(), 1, "{cli_on_edge:?}");
    let io = violations("model", "let api = Api::<Pod>::all(client);");
    assert!(io.iter().any(|v| v.contains("`Api::`")), "{io:?}");
    // Comments may point anywhere; the app may use everything.
    assert!(violations("model", "/// see `crate::controller::run`\nfn f() {}").is_empty());
    assert!(violations("run", "use crate::controller; use crate::edge;").is_empty());
    assert!(violations("api", "use mycrate::controller;").is_empty());
    assert_eq!(violations("newthing", "").len(), 1);
}
