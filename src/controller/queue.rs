//! The work queue of a controller: which objects are due for a reconcile, in which order, and
//! which one runs again after the run in progress. Plain state, no I/O: `runner` drives it.
//!
//! Every operation costs the same however many objects wait (hash maps, one ordered map of
//! delays, per-tenant queues), so a burst of N objects costs N times one object. kube-runtime's
//! runner, which this replaces, polled every reconcile it held at every wake-up and scanned its
//! held requests at every poll: with 5,000 branches that bookkeeping was more than half of the
//! operator's CPU, growing with the square of the branches.
//!
//! Turns are fair: each tenant (an object's namespace: a project) has its own queue, and the next
//! turn goes to the next tenant in round-robin order, first come first served within one. A
//! project that creates a thousand branches at once does not make another project's single
//! branch wait behind them: it waits for at most one turn of each busy project.
//!
//! An object is in at most one place: due (in its tenant's queue), delayed (until a time), or
//! running (with the earliest time it is wanted again, if a trigger came meanwhile). An object
//! is never reconciled twice at once, and a trigger during a run is never lost: the object runs
//! again after.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::Instant;

/// Where an object stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// In its tenant's queue.
    Due,
    /// Due at `at`; `sequence` tells apart delays that end at the same instant.
    Delayed { at: Instant, sequence: u64 },
    /// Being reconciled; wanted again at `again` if something asked meanwhile.
    Running { again: Option<Instant> },
}

/// The queue of one controller, keyed by `T` (an object reference).
pub struct Queue<T> {
    tenant_of: fn(&T) -> String,
    entries: HashMap<T, Entry>,
    /// Due objects per tenant, oldest first.
    due: HashMap<String, VecDeque<T>>,
    /// Tenants with due objects, in the order their next turn comes.
    rotation: VecDeque<String>,
    /// Delayed objects by the time they are due.
    delayed: BTreeMap<(Instant, u64), T>,
    sequence: u64,
}

impl<T: Hash + Eq + Clone> Queue<T> {
    pub fn new(tenant_of: fn(&T) -> String) -> Self {
        Queue {
            tenant_of,
            entries: HashMap::new(),
            due: HashMap::new(),
            rotation: VecDeque::new(),
            delayed: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// Asks for a reconcile of `key` at `at` (now or later). An earlier request wins over a later
    /// one; an object already due stays where it is in its queue.
    pub fn schedule(&mut self, key: T, at: Instant, now: Instant) {
        match self.entries.get_mut(&key) {
            None => self.put(key, at, now),
            Some(Entry::Due) => {}
            Some(Entry::Running { again }) => {
                *again = Some(again.map_or(at, |wanted| wanted.min(at)));
            }
            Some(&mut Entry::Delayed {
                at: delayed_to,
                sequence,
            }) => {
                if at < delayed_to {
                    self.delayed.remove(&(delayed_to, sequence));
                    self.put(key, at, now);
                }
            }
        }
    }

    /// Makes `key` due, or delays it to `at`.
    fn put(&mut self, key: T, at: Instant, now: Instant) {
        if at <= now {
            self.entries.insert(key.clone(), Entry::Due);
            let tenant = (self.tenant_of)(&key);
            let queue = self.due.entry(tenant.clone()).or_default();
            if queue.is_empty() {
                self.rotation.push_back(tenant);
            }
            queue.push_back(key);
        } else {
            self.sequence += 1;
            let sequence = self.sequence;
            self.entries
                .insert(key.clone(), Entry::Delayed { at, sequence });
            self.delayed.insert((at, sequence), key);
        }
    }

    /// Makes every delayed object whose time has come due; returns how many.
    pub fn promote_due(&mut self, now: Instant) -> usize {
        let mut promoted = 0;
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
            self.put(key, now, now);
            promoted += 1;
        }
        promoted
    }

    /// When the next delayed object is due.
    pub fn next_delay(&self) -> Option<Instant> {
        self.delayed.keys().next().map(|(at, _)| *at)
    }

    /// Takes the next due object in fair order, and marks it running.
    pub fn take(&mut self) -> Option<T> {
        let tenant = self.rotation.pop_front()?;
        let queue = self
            .due
            .get_mut(&tenant)
            .expect("a tenant in rotation has a queue");
        let key = queue
            .pop_front()
            .expect("a tenant in rotation has due objects");
        if queue.is_empty() {
            self.due.remove(&tenant);
        } else {
            self.rotation.push_back(tenant);
        }
        self.entries
            .insert(key.clone(), Entry::Running { again: None });
        Some(key)
    }

    /// Ends the run of `key`: it is due again at the earliest of what was asked during the run
    /// and `requeue` (the reconcile's own request), or leaves the queue.
    pub fn done(&mut self, key: &T, requeue: Option<Instant>, now: Instant) {
        let again = match self.entries.remove(key) {
            Some(Entry::Running { again }) => again,
            // Not running: nothing of it to end (a caller's mistake, harmless).
            Some(other) => {
                self.entries.insert(key.clone(), other);
                return;
            }
            None => return,
        };
        let wanted = match (again, requeue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = wanted {
            self.put(key.clone(), at, now);
        }
    }

    /// Objects due and waiting for a turn.
    #[cfg(test)]
    pub fn due_len(&self) -> usize {
        self.due.values().map(VecDeque::len).sum()
    }

    /// Objects known to the queue: due, delayed or running.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tenant(key: &(&'static str, u32)) -> String {
        key.0.to_string()
    }

    fn queue() -> Queue<(&'static str, u32)> {
        Queue::new(tenant)
    }

    fn drain(queue: &mut Queue<(&'static str, u32)>, now: Instant) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(key) = queue.take() {
            order.push(format!("{}{}", key.0, key.1));
            queue.done(&key, None, now);
        }
        order
    }

    #[test]
    fn turns_rotate_across_tenants_instead_of_following_the_order_of_arrival() {
        let now = Instant::now();
        let mut queue = queue();
        for key in [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 4), ("c", 5)] {
            queue.schedule(key, now, now);
        }
        assert_eq!(drain(&mut queue, now), ["a0", "b4", "c5", "a1", "a2", "a3"]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn an_object_asked_for_twice_runs_once() {
        let now = Instant::now();
        let mut queue = queue();
        queue.schedule(("a", 1), now, now);
        queue.schedule(("a", 1), now, now);
        assert_eq!(queue.due_len(), 1);
        assert_eq!(drain(&mut queue, now), ["a1"]);
    }

    #[test]
    fn a_trigger_during_a_run_runs_the_object_again_after_it_and_not_at_the_same_time() {
        let now = Instant::now();
        let mut queue = queue();
        queue.schedule(("a", 1), now, now);
        let running = queue.take().unwrap();
        queue.schedule(("a", 1), now, now);
        assert_eq!(queue.take(), None, "never twice at once");
        queue.done(&running, None, now);
        assert_eq!(queue.take(), Some(("a", 1)));
    }

    #[test]
    fn a_delayed_object_becomes_due_at_its_time_and_the_earliest_request_wins() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let sooner = now + Duration::from_secs(5);
        let mut queue = queue();
        queue.schedule(("a", 1), later, now);
        queue.schedule(("a", 1), sooner, now);
        queue.schedule(("a", 1), later, now);
        assert_eq!(queue.next_delay(), Some(sooner));
        assert_eq!(queue.take(), None);
        assert_eq!(queue.promote_due(sooner - Duration::from_secs(1)), 0);
        assert_eq!(queue.promote_due(sooner), 1);
        assert_eq!(queue.next_delay(), None);
        assert_eq!(queue.take(), Some(("a", 1)));
    }

    #[test]
    fn a_requeue_and_a_trigger_during_the_run_keep_the_earlier() {
        let now = Instant::now();
        let mut queue = queue();
        queue.schedule(("a", 1), now, now);
        let running = queue.take().unwrap();
        queue.schedule(("a", 1), now + Duration::from_secs(3), now);
        queue.done(&running, Some(now + Duration::from_secs(60)), now);
        assert_eq!(queue.next_delay(), Some(now + Duration::from_secs(3)));
    }

    #[test]
    fn an_object_that_asks_for_nothing_leaves_the_queue() {
        let now = Instant::now();
        let mut queue = queue();
        queue.schedule(("a", 1), now, now);
        let running = queue.take().unwrap();
        queue.done(&running, None, now);
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.next_delay(), None);
    }
}
