//! The CRD YAML served to the cluster, generated from the Rust types in `api`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Map, Value, json};

use crate::api::{BranchRelease, Project};

/// Every CRD Oksa serves, as (file name in `crds/`, YAML document).
pub fn documents() -> Vec<(&'static str, String)> {
    let [projects, branch_releases] = definitions();
    vec![
        ("projects.oksa.dev.yaml", to_yaml(&projects)),
        ("branchreleases.oksa.dev.yaml", to_yaml(&branch_releases)),
    ]
}

/// The CRDs, with every number bounded (see `bound_numbers`) and a status that says "not
/// reconciled yet" from the moment an object is stored (see `unreconciled_by_default`).
pub fn definitions() -> [CustomResourceDefinition; 2] {
    [Project::crd(), BranchRelease::crd()].map(|crd| {
        let mut value = serde_json::to_value(&crd).expect("a CRD always serializes");
        for version in value["spec"]["versions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let schema = &mut version["schema"]["openAPIV3Schema"];
            each_node(schema, "", &mut bound_numbers);
            each_node(schema, "", &mut |fields, _| flow_description(fields));
            if let Some(spec) = schema["properties"].get_mut("spec") {
                each_node(spec, "spec", &mut bound_sizes);
            }
            unreconciled_by_default(schema);
        }
        serde_json::from_value(value).expect("still a CRD")
    })
}

/// Longest text of a field that says nothing else: names, paths, images, values.
const MAX_TEXT: i64 = 4096;
/// Longest environment value (a certificate or a small config file fits).
const MAX_ENV_VALUE: i64 = 32 * 1024;
/// Most items of a list, or entries of a map, that says nothing else.
const MAX_ITEMS: i64 = 64;

/// Gives every list, map and text of the spec a bound where the types left it open (mostly the
/// embedded Kubernetes types: a probe's headers, a command's arguments, an annotation map), so that
/// one tenant's object has a bounded size and CEL rules over it a bounded cost. Status is Oksa's
/// own writing and is left open: a refused status write would hide what went wrong.
fn bound_sizes(fields: &mut Map<String, Value>, property: &str) {
    let is_int_or_string = fields.get("x-kubernetes-int-or-string") == Some(&json!(true));
    match fields.get("type").and_then(Value::as_str) {
        Some("string") if !fields.contains_key("enum") && !fields.contains_key("format") => {
            let max = if property == "value" {
                MAX_ENV_VALUE
            } else {
                MAX_TEXT
            };
            fields.entry("maxLength").or_insert(json!(max));
        }
        Some("array") => {
            fields.entry("maxItems").or_insert(json!(MAX_ITEMS));
        }
        Some("object") if fields.contains_key("additionalProperties") => {
            fields.entry("maxProperties").or_insert(json!(MAX_ITEMS));
        }
        None if is_int_or_string => {
            fields.entry("maxLength").or_insert(json!(MAX_TEXT));
        }
        _ => {}
    }
}

/// Calls `visit` on every schema node below (and including) `schema`, with the name of the
/// property it describes: a list's items and a map's values are described by their field's name.
fn each_node(
    schema: &mut Value,
    property: &str,
    visit: &mut impl FnMut(&mut Map<String, Value>, &str),
) {
    let Some(fields) = schema.as_object_mut() else {
        return;
    };
    visit(fields, property);
    if let Some(Value::Object(properties)) = fields.get_mut("properties") {
        for (name, child) in properties.iter_mut() {
            each_node(child, name, visit);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = fields.get_mut(key) {
            each_node(child, property, visit);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        for child in fields
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            each_node(child, property, visit);
        }
    }
}

/// Doc comments wrap at 100 columns, and `kubectl explain` wraps on its own: a line break kept
/// inside a paragraph shows as a break mid-sentence. So each paragraph becomes one line; blank
/// lines between paragraphs and the lines of a list stay.
fn flow_description(fields: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = fields.get_mut("description") {
        *text = flow(text);
    }
}

/// `text` with the line breaks inside its paragraphs turned into spaces. Pure.
fn flow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            let mut flowed = String::new();
            for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !flowed.is_empty() {
                    flowed.push(if starts_list_item(line) { '\n' } else { ' ' });
                }
                flowed.push_str(line);
            }
            flowed
        })
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `- item`, `* item` or `1. item`.
fn starts_list_item(line: &str) -> bool {
    line.starts_with("- ")
        || line.starts_with("* ")
        || line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// A new object has no status until Oksa writes one, and kstatus (Helm 4's `--wait`, Flux's
/// health checks, kpt) counts an object without status conditions as Current: ready before Oksa
/// has even seen it. The API server fills in defaults when it returns a stored object, so with
/// `observedGeneration: 0` by default every new object reads as "generation 1 not observed yet"
/// (InProgress) until Oksa's first status write.
fn unreconciled_by_default(schema: &mut Value) {
    if let Some(status) = schema["properties"]
        .get_mut("status")
        .and_then(Value::as_object_mut)
    {
        status.insert("default".into(), json!({"observedGeneration": 0}));
    }
}

/// A port name, as Kubernetes wants it: lowercase letters, digits and single dashes, a letter
/// among them.
const IANA_SERVICE_NAME: &str = r"^([a-z0-9]+-)*[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$";
/// A resource quantity (`500m`, `1.5Gi`, `2e3`), the grammar of Kubernetes' own parser.
const QUANTITY: &str =
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$";

/// Largest integer a JSON number carries exactly (2^53): past it, the API server would store a
/// float that no Rust integer type reads back.
const EXACT_INTEGER: i64 = 1 << 53;

/// Gives every integer of the schema bounds, where the types left it open: the Kubernetes types
/// embedded in the spec (probes, env sources) bring their own schemas without any. An object the
/// API server stores has to be one Oksa can read, or one tenant's typo would be an object that no
/// watch can list. Ports are 1–65535, durations and counts are not negative, anything else stays
/// within its integer format; a port that may also be a name is a name Kubernetes accepts, and a
/// quantity that may also be a number is a quantity (`cpu: lots` is refused at `kubectl apply`).
fn bound_numbers(fields: &mut Map<String, Value>, property: &str) {
    let is_port = property == "port" || property.ends_with("Port");
    let is_count =
        property.ends_with("Seconds") || property.ends_with("Threshold") || property == "replicas";
    if fields.get("type") == Some(&json!("integer")) {
        let (low, high) = match fields.get("format").and_then(Value::as_str) {
            _ if is_port => (1, 65535),
            Some("int32") if is_count => (0, i64::from(i32::MAX)),
            Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
            _ if is_count => (0, i64::from(i32::MAX)),
            _ => (-EXACT_INTEGER, EXACT_INTEGER),
        };
        fields.entry("minimum").or_insert(json!(low));
        fields.entry("maximum").or_insert(json!(high));
    }
    // A number or a text: `minimum`/`maximum` bind the number, `maxLength`/`pattern` the text.
    if fields.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        if is_port {
            fields.entry("minimum").or_insert(json!(1));
            fields.entry("maximum").or_insert(json!(65535));
            fields.entry("maxLength").or_insert(json!(15));
            fields.entry("pattern").or_insert(json!(IANA_SERVICE_NAME));
        } else {
            // Every other number-or-text of these types is a quantity (resources, divisor).
            fields.entry("minimum").or_insert(json!(-EXACT_INTEGER));
            fields.entry("maximum").or_insert(json!(EXACT_INTEGER));
            fields.entry("maxLength").or_insert(json!(64));
            fields.entry("pattern").or_insert(json!(QUANTITY));
        }
    }
}

fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let yaml = serde_yaml_ng::to_string(crd).expect("a CRD always serializes");
    format!("# Generated from src/api by `oksa crd --write crds`; do not edit.\n{yaml}")
}

/// Applies the CRDs (server-side, as Oksa) and waits until the API server serves them.
pub async fn install(client: &kube::Client) -> Result<(), kube::Error> {
    use kube::api::{Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};

    let api = kube::Api::<CustomResourceDefinition>::all(client.clone());
    for crd in definitions() {
        let name = kube::ResourceExt::name_any(&crd);
        api.patch(
            &name,
            &PatchParams::apply(crate::labels::FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        if tokio::time::timeout(std::time::Duration::from_secs(30), established)
            .await
            .is_err()
        {
            return Err(kube::Error::Service(
                format!("CRD {name} was not established within 30s").into(),
            ));
        }
    }
    Ok(())
}

/// `oksa crd`: prints the CRDs, or writes one file per CRD into `folder`.
pub fn print_or_write(folder: Option<&std::path::Path>) -> std::io::Result<()> {
    for (file, yaml) in documents() {
        match folder {
            Some(folder) => {
                std::fs::create_dir_all(folder)?;
                std::fs::write(folder.join(file), yaml)?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of a schema with its path (`.field`, `[]` for items and map values).
    fn nodes<'a>(schema: &'a Value, path: &str, found: &mut Vec<(String, &'a Value)>) {
        found.push((path.to_string(), schema));
        if let Some(properties) = schema["properties"].as_object() {
            for (name, child) in properties {
                nodes(child, &format!("{path}.{name}"), found);
            }
        }
        for key in ["items", "additionalProperties"] {
            if schema[key].is_object() {
                nodes(&schema[key], &format!("{path}[]"), found);
            }
        }
    }

    #[test]
    fn descriptions_read_as_paragraphs() {
        assert_eq!(
            super::flow("The processes. Each is a Deployment, and a Service when\nany has ports."),
            "The processes. Each is a Deployment, and a Service when any has ports."
        );
        assert_eq!(
            super::flow(
                "One paragraph\nwrapped.\n\nModes:\n- Delete: gone\n  after the window\n- Report: said\n1. first"
            ),
            "One paragraph wrapped.\n\nModes:\n- Delete: gone after the window\n- Report: said\n1. first"
        );
        for (_, yaml) in super::documents() {
            let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
            let mut found = Vec::new();
            nodes(
                &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
                "",
                &mut found,
            );
            for (path, node) in found {
                let text = node["description"].as_str().unwrap_or_default();
                for paragraph in text.split("\n\n") {
                    for line in paragraph.lines().skip(1) {
                        assert!(
                            super::starts_list_item(line),
                            "{path}: a line break mid-paragraph before {line:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_integer_of_both_crds_is_bounded() {
        for crd in definitions() {
            let crd = serde_json::to_value(crd).unwrap();
            let mut all = Vec::new();
            nodes(
                &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
                "",
                &mut all,
            );
            let found: Vec<_> = all
                .into_iter()
                .filter(|(_, schema)| schema["type"] == "integer")
                .map(|(path, schema)| (path, &schema["minimum"], &schema["maximum"]))
                .collect();
            assert!(!found.is_empty());
            for (path, min, max) in found {
                // The CRD types keep bounds as floats (`65535.0`).
                assert!(min.is_number() && max.is_number(), "{path} is unbounded");
                assert!(max.as_f64() <= Some(EXACT_INTEGER as f64), "{path}");
            }
        }
    }

    /// The size bound of a list, map or text; None for other nodes.
    fn size_bound(schema: &Value) -> Option<&Value> {
        match schema["type"].as_str() {
            Some("string") if schema.get("enum").is_none() && schema.get("format").is_none() => {
                Some(&schema["maxLength"])
            }
            Some("array") => Some(&schema["maxItems"]),
            Some("object") if schema.get("additionalProperties").is_some() => {
                Some(&schema["maxProperties"])
            }
            _ => None,
        }
    }

    #[test]
    fn every_list_map_and_text_of_both_specs_is_bounded() {
        for crd in definitions() {
            let crd = serde_json::to_value(crd).unwrap();
            let spec =
                &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
            let mut all = Vec::new();
            nodes(spec, "spec", &mut all);
            let found: Vec<_> = all
                .into_iter()
                .filter_map(|(path, schema)| Some((path, size_bound(schema)?)))
                .collect();
            assert!(found.len() > 10);
            for (path, bound) in found {
                assert!(bound.is_number(), "{path} is unbounded");
            }
        }
    }

    #[test]
    fn ports_are_bounded_whether_numbers_or_names() {
        let [_, releases] = definitions();
        let crd = serde_json::to_value(releases).unwrap();
        let container = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["components"]["items"]["properties"]["containers"]["items"]["properties"];
        let probe_port =
            &container["readinessProbe"]["properties"]["tcpSocket"]["properties"]["port"];
        assert_eq!(
            (
                probe_port["minimum"].as_f64(),
                probe_port["maximum"].as_f64()
            ),
            (Some(1.0), Some(65535.0))
        );
        assert_eq!(probe_port["pattern"], IANA_SERVICE_NAME);
        let cpu = &container["resources"]["properties"]["requests"]["additionalProperties"];
        assert_eq!(cpu["pattern"], QUANTITY);
        let grpc = &container["livenessProbe"]["properties"]["grpc"]["properties"]["port"];
        assert_eq!(
            (grpc["minimum"].as_f64(), grpc["maximum"].as_f64()),
            (Some(1.0), Some(65535.0))
        );
        let period = &container["readinessProbe"]["properties"]["periodSeconds"];
        assert_eq!(period["minimum"].as_f64(), Some(0.0));
    }
}
