//! The cap on anonymous wakes: at most so many per project per hour. Past it, the waiting page
//! asks for a click instead of waking the branch by itself, so that something that slipped
//! through as a person (a scanner, a scripted check) cannot keep a project's branches awake.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);

pub struct WakeCap {
    per_hour: usize,
    wakes: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl WakeCap {
    pub fn new(per_hour: u32) -> WakeCap {
        WakeCap {
            per_hour: per_hour as usize,
            wakes: Mutex::default(),
        }
    }

    /// Counts a wake of one of `project`'s branches at `now`, if the cap allows it.
    pub fn allow(&self, project: &str, now: Instant) -> bool {
        let mut wakes = self.wakes.lock().expect("wake cap");
        let recent = wakes.entry(project.to_string()).or_default();
        while recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= self.per_hour {
            return false;
        }
        recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_gets_so_many_wakes_an_hour_and_others_are_not_affected() {
        let cap = WakeCap::new(2);
        let start = Instant::now();
        assert!(cap.allow("shop", start));
        assert!(cap.allow("shop", start));
        assert!(!cap.allow("shop", start + Duration::from_secs(60)));
        assert!(cap.allow("blog", start), "per project");
        assert!(cap.allow("shop", start + WINDOW), "an hour later");
    }
}
