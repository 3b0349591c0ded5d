//! A real browser for the tests: headless Chromium driven over WebDriver (chromedriver), from
//! Debian's `chromium` and `chromium-driver` packages (installed when missing and the tests run
//! as root, as on CI; a browser's own download cannot reach the internet here).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: std::path::PathBuf,
}

/// Installs Chromium and its driver with apt when they are missing.
fn ensure_installed() {
    let present = |program: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present("chromium") && present("chromedriver") {
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .expect("running apt-get to install chromium and chromium-driver");
    assert!(
        status.success(),
        "installing chromium and chromium-driver failed; install them (apt-get install chromium chromium-driver)"
    );
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, resolving every host
    /// under `.test` to `address` (so a branch's URL reaches the plane's Traefik).
    pub async fn start(address: &str) -> Browser {
        ensure_installed();
        let port = super::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(super::unique("chromium"));
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=900,700",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--host-resolver-rules=MAP *.test {address}"),
                ]
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}");
    }

    /// Saves a screenshot of the page to `target/tmp/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Browser {
    /// Ends the session: chromedriver closes Chromium.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
