//! The README's main command, in its non-interactive mode: examples/ (a Project and three
//! branches) becomes Ready on the cluster under test, the demo says where they are served, and
//! on the local plane it shows the protected branch asking for a login.

mod support;

#[test]
fn the_demo_brings_every_example_branch_to_ready() {
    let kubeconfig = support::kubeconfig_path();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(["demo", "--exit-when-ready", "--timeout", "120"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("running oksa demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "oksa demo failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Every branch is Ready"), "{stdout}");
    // Its Events are recorded (a repeat with another note used to be refused by the API server).
    assert!(!stderr.contains("could not record an event"), "{stderr}");
    assert!(stdout.contains("http://main.shop.example.com"), "{stdout}");
    assert!(stdout.contains("feature/New_Checkout"), "{stdout}");
    // The Drupal feature branch started with production's files, sanitised, and deployed.
    assert!(
        stdout.contains("feature/search: volume files cloned from main-files"),
        "{stdout}"
    );
    assert!(
        stdout.contains("feature/search: job sanitize Succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("feature/search: job deploy Succeeded"),
        "{stdout}"
    );
    // A branch falls asleep and wakes.
    assert!(stdout.contains("asleep after"), "{stdout}");
    assert!(stdout.contains("Sleeping"), "{stdout}");
    assert!(stdout.contains("awake and Ready again after"), "{stdout}");
    // On the local plane, the protected branch asks for a login through Traefik.
    if support::plane().state.is_some() {
        assert!(stdout.contains("without a login: 401"), "{stdout}");
        assert!(stdout.contains("with -u demo:oksa-demo: 200"), "{stdout}");
    }
}
