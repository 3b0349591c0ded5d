//! The committed CRD YAML must be what the Rust types generate: `kubectl apply -f crds/` and the
//! Helm chart install exactly what the operator expects. Regenerate with `oksa crd --write crds`.

#[test]
fn committed_crds_match_the_rust_types() {
    for (file, generated) in oksa::crd::documents() {
        let path = format!("{}/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is out of date with src/api; run `cargo run -- crd --write crds` and commit the result"
        );
    }
}
