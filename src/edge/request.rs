//! What a request to the waker asks for, from its method, path and headers. Pure.
//!
//! Only a person's request may wake a branch: crawlers, link previews, uptime monitors and load
//! balancer health checks would otherwise keep every environment awake (a known failure of
//! other tools, fixed there afterwards with user-agent lists and rate limits).

/// The waker's own paths, under the branch's host.
pub const STATUS_PATH: &str = "/.oksa/status";
pub const WAKE_PATH: &str = "/.oksa/wake";
/// Paths under it are the edge's own, never the branch's.
pub const OWN_PATHS: &str = "/.oksa/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A page load or API call of a person: wakes the branch (within the hourly cap).
    Wake { browser: bool },
    /// The button of the waiting page (a person, past the cap): wakes the branch.
    WakeButton,
    /// The waiting page's progress poll.
    Status,
    /// `robots.txt`: nothing here is to be indexed.
    Robots,
    /// A crawler, a health checker, a `HEAD`, an ACME challenge: answered, wakes nothing.
    Look { browser: bool },
}

/// Parts of a user agent that belong to crawlers, link previews, monitors and health checkers.
const NOT_A_PERSON: [&str; 18] = [
    "bot",
    "crawl",
    "spider",
    "slurp",
    "preview",
    "facebookexternalhit",
    "embedly",
    "kube-probe",
    "healthcheck",
    "health-check",
    "elb-healthchecker",
    "googlehc",
    "uptime",
    "pingdom",
    "monitor",
    "prometheus",
    "blackbox",
    "statuscake",
];

pub fn classify(
    method: &str,
    path: &str,
    user_agent: Option<&str>,
    accept: Option<&str>,
) -> Intent {
    let browser = accept.is_some_and(|a| a.contains("text/html"));
    let agent = user_agent.unwrap_or_default().to_ascii_lowercase();
    if path == STATUS_PATH {
        return Intent::Status;
    }
    if path == "/robots.txt" {
        return Intent::Robots;
    }
    let automated = agent.trim().is_empty() || NOT_A_PERSON.iter().any(|p| agent.contains(p));
    if path.starts_with("/.well-known/acme-challenge/") || automated {
        return Intent::Look { browser };
    }
    match method {
        "POST" if path == WAKE_PATH => Intent::WakeButton,
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => Intent::Wake { browser },
        // HEAD, OPTIONS and the like come from tools checking a link, not from people.
        _ => Intent::Look { browser },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

    #[test]
    fn a_person_wakes_the_branch() {
        assert_eq!(
            classify("GET", "/", Some(FIREFOX), Some(HTML)),
            Intent::Wake { browser: true }
        );
        assert_eq!(
            classify("GET", "/api/items", Some("curl/8.5.0"), Some("*/*")),
            Intent::Wake { browser: false }
        );
        assert_eq!(
            classify("POST", WAKE_PATH, Some(FIREFOX), Some(HTML)),
            Intent::WakeButton
        );
    }

    #[test]
    fn bots_health_checks_head_and_acme_wake_nothing() {
        for agent in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "kube-probe/1.34",
            "ELB-HealthChecker/2.0",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "UptimeRobot/2.0",
            "",
        ] {
            assert!(
                matches!(
                    classify("GET", "/", Some(agent), Some(HTML)),
                    Intent::Look { .. }
                ),
                "{agent}"
            );
        }
        assert_eq!(
            classify("HEAD", "/", Some(FIREFOX), Some(HTML)),
            Intent::Look { browser: true }
        );
        assert!(matches!(
            classify(
                "GET",
                "/.well-known/acme-challenge/abc",
                Some(FIREFOX),
                None
            ),
            Intent::Look { .. }
        ));
        assert_eq!(
            classify("GET", "/robots.txt", Some(FIREFOX), None),
            Intent::Robots
        );
        assert_eq!(
            classify("GET", STATUS_PATH, Some(FIREFOX), None),
            Intent::Status
        );
    }
}
