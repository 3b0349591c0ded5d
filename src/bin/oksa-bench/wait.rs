//! Waiting for many environments at once, each timed from its own write.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::stats::{Summary, summarize};

/// Per environment, from its write to the milestone; and the wall time from the phase's start
/// to the last environment reaching it.
#[derive(Debug, Default)]
pub struct Timed {
    pub per_branch: Summary,
    pub wall_s: f64,
}

/// Waits until `milestone` (read from the watches) holds for every key of `written`, then times
/// each from its write. `what` names the milestone in progress lines and errors.
pub async fn all<K: Eq + Hash>(
    what: &str,
    written: &HashMap<K, Instant>,
    milestone: impl Fn(&K) -> Option<Instant>,
    started: Instant,
    timeout: Duration,
) -> Result<Timed, String> {
    let total = written.len();
    let mut progress = tokio::time::interval(Duration::from_secs(30));
    progress.tick().await;
    loop {
        let reached = written.keys().filter(|k| milestone(k).is_some()).count();
        if reached >= total {
            break;
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "only {reached}/{total} branches {what} after {timeout:?}"
            ));
        }
        tokio::select! {
            _ = progress.tick() => eprintln!(
                "  {reached}/{total} {what} after {:.0}s",
                started.elapsed().as_secs_f64()
            ),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    Ok(timed(written, milestone, started))
}

/// The figures of milestones already reached (keys that have none are left out).
pub fn timed<K: Eq + Hash>(
    written: &HashMap<K, Instant>,
    milestone: impl Fn(&K) -> Option<Instant>,
    started: Instant,
) -> Timed {
    let reached: Vec<(Instant, Instant)> = written
        .iter()
        .filter_map(|(key, t0)| milestone(key).map(|t| (*t0, t)))
        .collect();
    Timed {
        per_branch: summarize(
            reached
                .iter()
                .map(|(t0, t)| t.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
                .collect(),
        ),
        wall_s: reached
            .iter()
            .map(|(_, t)| t.saturating_duration_since(started).as_secs_f64())
            .fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_from_its_own_write_and_the_wall_from_the_start() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let written = HashMap::from([("a", at(0)), ("b", at(100)), ("c", at(200))]);
        let reached = HashMap::from([("a", at(50)), ("b", at(400))]);
        let timed = timed(&written, |k| reached.get(k).copied(), start);
        assert_eq!(timed.per_branch.count, 2, "c has not reached it");
        assert_eq!(timed.per_branch.max_ms, 300.0);
        assert_eq!(timed.wall_s, 0.4);
    }
}
