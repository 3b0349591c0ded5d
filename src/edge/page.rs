//! The waiting page a browser gets from a sleeping or waking branch, and the progress the page
//! polls. Pure.
//!
//! The page shows each component's progress from `/.oksa/status` every second and reloads itself
//! once the branch is awake: by then its routes lead to the application again. An awake branch's
//! progress says only that it is awake.

use serde::Serialize;

use crate::api::conditions::ASLEEP;
use crate::api::{BranchRelease, LifecycleState, sleep_reason};

use super::request::{STATUS_PATH, WAKE_PATH};

/// What `/.oksa/status` answers.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub branch: String,
    /// Awake, Sleeping, Waking or Expired.
    pub state: String,
    /// True once every component is ready and the routes lead to them: time to reload.
    pub awake: bool,
    /// Why it sleeps, or why the last wake failed.
    pub message: String,
    pub components: Vec<ComponentProgress>,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentProgress {
    pub name: String,
    pub ready: i32,
    pub wanted: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn progress(release: &BranchRelease) -> Progress {
    let status = release.status.clone().unwrap_or_default();
    let state = status
        .lifecycle
        .as_ref()
        .map_or(LifecycleState::Awake, |l| l.state);
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == ASLEEP)
        .map(|c| c.message.clone())
        .filter(|_| state != LifecycleState::Awake)
        .unwrap_or_default();
    Progress {
        branch: release.spec.branch.clone(),
        state: format!("{state:?}"),
        awake: state == LifecycleState::Awake,
        message,
        components: status
            .components
            .iter()
            .map(|c| ComponentProgress {
                name: c.name.clone(),
                ready: c.ready_replicas,
                wanted: c.replicas,
                // An awake branch's details (image pull errors, probe output) are its team's
                // business: the page needs them only while it waits.
                message: c.message.clone().filter(|_| state != LifecycleState::Awake),
            })
            .collect(),
    }
}

/// True when only a person can wake the branch: it was scaled to zero on purpose.
pub fn asleep_on_purpose(release: &BranchRelease) -> bool {
    release
        .status
        .as_ref()
        .and_then(|s| s.lifecycle.as_ref())
        .is_some_and(|l| l.reason.as_deref() == Some(sleep_reason::MANUAL))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What the page says at first (the poll keeps it current).
pub enum Headline {
    Waking,
    /// Past the hourly cap: the page offers a button instead of waking by itself.
    AskToWake,
    /// Scaled to zero on purpose: waking is for whoever did it.
    ScaledToZero,
}

pub fn html(release: &BranchRelease, headline: Headline) -> String {
    let branch = escape(&release.spec.branch);
    let (title, body) = match headline {
        Headline::Waking => (
            format!("{branch} is waking up"),
            "It was asleep to save resources. This page reloads by itself when it is ready."
                .to_string(),
        ),
        Headline::AskToWake => (
            format!("{branch} is asleep"),
            format!(
                "It was asleep to save resources, and many wakes came lately. \
                 <form method=\"post\" action=\"{WAKE_PATH}\"><button id=\"wake\">Wake it up</button></form>"
            ),
        ),
        Headline::ScaledToZero => (
            format!("{branch} is switched off"),
            "It was scaled to zero on purpose (<code>kubectl scale branchrelease … --replicas=1</code> \
             switches it on again)."
                .to_string(),
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex, nofollow">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
.component {{ margin: .6rem 0; }}
.bar {{ height: .5rem; background: #e4e4e4; border-radius: .25rem; overflow: hidden; }}
.bar span {{ display: block; height: 100%; background: #2a7ae2; transition: width .4s; }}
.note {{ color: #a33; font-size: .9rem; }}
#message {{ color: #555; }}
</style>
</head>
<body>
<h1 id="title">{title}</h1>
<p>{body}</p>
<div id="components"></div>
<p id="message"></p>
<script>
const list = document.getElementById("components");
const message = document.getElementById("message");
function show(progress) {{
  list.replaceChildren(...progress.components.map(c => {{
    const item = document.createElement("div");
    item.className = "component";
    item.dataset.component = c.name;
    const percent = c.wanted > 0 ? Math.round(100 * c.ready / c.wanted) : 0;
    item.innerHTML = "<div></div><div class=bar><span></span></div><div class=note></div>";
    item.children[0].textContent = c.name + ": " + c.ready + "/" + c.wanted + " ready";
    item.children[1].firstChild.style.width = percent + "%";
    item.children[2].textContent = c.message || "";
    return item;
  }}));
  message.textContent = progress.message;
}}
async function poll() {{
  try {{
    const answer = await fetch("{STATUS_PATH}", {{cache: "no-store"}});
    const type = answer.headers.get("content-type") || "";
    // Anything but the waker's JSON means the routes lead to the application again.
    if (!type.startsWith("application/json")) {{ location.reload(); return; }}
    const progress = await answer.json();
    show(progress);
    if (progress.awake) {{ location.reload(); return; }}
  }} catch (error) {{
    message.textContent = "waiting for the server…";
  }}
  setTimeout(poll, 1000);
}}
poll();
</script>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BranchReleaseSpec, ComponentStatus};

    #[test]
    fn the_page_escapes_the_branch_and_polls_the_status() {
        let mut release = BranchRelease::new(
            "x",
            BranchReleaseSpec {
                branch: "feature/<script>".into(),
                ..Default::default()
            },
        );
        release.status = Some(crate::api::BranchReleaseStatus {
            components: vec![ComponentStatus {
                name: "web".into(),
                replicas: 1,
                ..Default::default()
            }],
            ..Default::default()
        });
        let page = html(&release, Headline::Waking);
        assert!(page.contains("feature/&lt;script&gt; is waking up"));
        assert!(!page.contains("feature/<script>"));
        assert!(page.contains("noindex"));
        assert!(page.contains(STATUS_PATH));
        assert!(html(&release, Headline::AskToWake).contains("<button"));
        let progress = progress(&release);
        assert_eq!(progress.components[0].wanted, 1);
        assert!(progress.awake, "no lifecycle status yet: awake");
    }
}
