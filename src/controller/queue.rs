//! The work queue of a controller: which objects are due for a reconcile, in which order, and
//! which one runs again after the run in progress. Plain state, no I/O: `runner` drives it.
//!
//! Every operation costs the same however many objects wait (hash maps, one ordered map of
//! delays, per-tenant queues), so a burst of N objects costs N times one object. kube-runtime's
//! runner, which this replaces, polled every reconcile it held at every wake-up and scanned its
//! held requests at every poll: with 5,000 branches that bookkeeping was more than half of the
//! operator's CPU, growing with the square of the branches.
//!
//! Turns are fair: each tenant (an object's namespace: a project) has its own queue, first come
//! first served within it, and the turns go round the tenants with due objects. Each tenant
//! counts its turns (a virtual time, as in fair queuing), and the next turn goes to the tenant
//! that has had the fewest. A tenant that was idle comes back ahead of the busy ones, with a
//! credit of up to `IDLE_CREDIT` turns (as a task waking up in Linux's CFS is placed a little
//! behind the busiest): a project that creates one branch while others are busy gets the next
//! free worker, and so do the few reconciles that follow its branch to Ready (its status, its
//! claim bound, its pods ready). Issue 23: with a credit of one turn, every reconcile after the
//! first waited a whole round of the hundred busy projects, 15 s at 5,000 branches. It cannot
//! bank more than the credit, however long it was idle. Projects that have had no turn at all
//! yet (just created, with fifty branches each) are its equals: it takes its place among them.
//!
//! Within a tenant, objects that have run before (a branch whose pods became ready, whose
//! status must follow) go ahead of those that never ran (a branch just created): the first ones
//! finish what users wait for and cost a status write, the others start long work. Without
//! this, a project that created fifty branches saw none Ready until all fifty had their
//! children (at 5,000 branches: nothing Ready for 15 minutes, then everything at once).
//!
//! An object is in at most one place: due (in its tenant's queue), delayed (until a time), or
//! running (with the earliest time it is wanted again, if a trigger came meanwhile). An object
//! is never reconciled twice at once, and a trigger during a run is never lost: the object runs
//! again after.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
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

/// Where `schedule` or `done` put an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// In its tenant's queue: a worker may take it.
    Due,
    /// Delayed: the next delay may have changed.
    Delayed,
}

/// How many turns a tenant back from idle may take ahead of the busy tenants' current round:
/// enough for a branch's few reconciles from creation to Ready, few enough that a tenant back
/// with a burst delays the others by a handful of turns only.
const IDLE_CREDIT: u64 = 8;

/// How a tenant entered the rotation; those back from idle go first among equal virtual times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Return {
    FromIdle,
    InTurn,
}

/// The queue of one controller, keyed by `T` (an object reference).
pub struct Queue<T> {
    tenant_of: fn(&T) -> String,
    entries: HashMap<T, Entry>,
    /// Due objects per tenant.
    due: HashMap<String, TenantQueue<T>>,
    /// Objects that have run (until they are forgotten, when they are gone).
    ran: HashSet<T>,
    /// Tenants with due objects, by the virtual time of their next turn, then those back from
    /// idle first, then by arrival: the first one has the next turn.
    rotation: BTreeSet<(u64, Return, u64, String)>,
    /// Each tenant's virtual time after its latest turn.
    virtual_times: HashMap<String, u64>,
    /// The virtual time of the latest turn.
    clock: u64,
    /// Delayed objects by the time they are due.
    delayed: BTreeMap<(Instant, u64), T>,
    sequence: u64,
}

/// One tenant's due objects: those that ran before first, then those that never ran; each
/// first come first served.
struct TenantQueue<T> {
    ran_before: VecDeque<T>,
    new: VecDeque<T>,
}

impl<T> Default for TenantQueue<T> {
    fn default() -> Self {
        TenantQueue {
            ran_before: VecDeque::new(),
            new: VecDeque::new(),
        }
    }
}

impl<T> TenantQueue<T> {
    fn push(&mut self, key: T, ran_before: bool) {
        if ran_before {
            self.ran_before.push_back(key);
        } else {
            self.new.push_back(key);
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.ran_before.pop_front().or_else(|| self.new.pop_front())
    }

    fn len(&self) -> usize {
        self.ran_before.len() + self.new.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Hash + Eq + Clone> Queue<T> {
    pub fn new(tenant_of: fn(&T) -> String) -> Self {
        Queue {
            tenant_of,
            entries: HashMap::new(),
            due: HashMap::new(),
            ran: HashSet::new(),
            rotation: BTreeSet::new(),
            virtual_times: HashMap::new(),
            clock: 0,
            delayed: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// Asks for a reconcile of `key` at `at` (now or later). An earlier request wins over a later
    /// one; an object already due stays where it is in its queue. Returns where the object went
    /// if it moved.
    pub fn schedule(&mut self, key: T, at: Instant, now: Instant) -> Option<Placed> {
        match self.entries.get_mut(&key) {
            None => Some(self.put(key, at, now)),
            Some(Entry::Due) => None,
            Some(Entry::Running { again }) => {
                *again = Some(again.map_or(at, |wanted| wanted.min(at)));
                None
            }
            Some(&mut Entry::Delayed {
                at: delayed_to,
                sequence,
            }) => (at < delayed_to).then(|| {
                self.delayed.remove(&(delayed_to, sequence));
                self.put(key, at, now)
            }),
        }
    }

    /// Makes `key` due, or delays it to `at`.
    fn put(&mut self, key: T, at: Instant, now: Instant) -> Placed {
        if at <= now {
            self.entries.insert(key.clone(), Entry::Due);
            let tenant = (self.tenant_of)(&key);
            let ran = self.ran.contains(&key);
            let queue = self.due.entry(tenant.clone()).or_default();
            queue.push(key, ran);
            if queue.len() == 1 {
                // Back in the rotation. A tenant that missed turns while it had nothing due
                // (its own virtual time behind the clock) comes back ahead of the busy ones,
                // by at most the credit; one that only just had its turn keeps its place.
                let own = self.virtual_times.get(&tenant).copied().unwrap_or(0);
                let at = own.max(self.clock.saturating_sub(IDLE_CREDIT));
                let back = if own < self.clock {
                    Return::FromIdle
                } else {
                    Return::InTurn
                };
                self.sequence += 1;
                self.rotation.insert((at, back, self.sequence, tenant));
            }
            Placed::Due
        } else {
            self.sequence += 1;
            let sequence = self.sequence;
            self.entries
                .insert(key.clone(), Entry::Delayed { at, sequence });
            self.delayed.insert((at, sequence), key);
            Placed::Delayed
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
        let (at, _, _, tenant) = self.rotation.pop_first()?;
        self.clock = self.clock.max(at);
        let queue = self
            .due
            .get_mut(&tenant)
            .expect("a tenant in rotation has a queue");
        let key = queue.pop().expect("a tenant in rotation has due objects");
        let more = !queue.is_empty();
        if !more {
            self.due.remove(&tenant);
        }
        self.virtual_times.insert(tenant.clone(), at + 1);
        if more {
            self.sequence += 1;
            self.rotation
                .insert((at + 1, Return::InTurn, self.sequence, tenant));
        }
        self.entries
            .insert(key.clone(), Entry::Running { again: None });
        self.ran.insert(key.clone());
        Some(key)
    }

    /// Ends the run of `key`: it is due again at the earliest of what was asked during the run
    /// and `requeue` (the reconcile's own request), or leaves the queue (None).
    pub fn done(&mut self, key: &T, requeue: Option<Instant>, now: Instant) -> Option<Placed> {
        let again = match self.entries.remove(key) {
            Some(Entry::Running { again }) => again,
            // Not running: nothing of it to end (a caller's mistake, harmless).
            Some(other) => {
                self.entries.insert(key.clone(), other);
                return None;
            }
            None => return None,
        };
        let wanted = match (again, requeue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        wanted.map(|at| self.put(key.clone(), at, now))
    }

    /// Forgets that `key` ran (it is gone): should it come back, it is new.
    pub fn forget(&mut self, key: &T) {
        self.ran.remove(key);
    }

    /// Objects due and waiting for a turn.
    pub fn due_len(&self) -> usize {
        self.due.values().map(TenantQueue::len).sum()
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

    /// Takes the next due object, ends its run asking for nothing, and names it.
    fn take_one(queue: &mut Queue<(&'static str, u32)>, now: Instant) -> String {
        let key = queue.take().expect("something due");
        queue.done(&key, None, now);
        format!("{}{}", key.0, key.1)
    }

    #[test]
    fn a_quiet_tenants_reconciles_one_after_another_each_come_before_the_busy_round() {
        let now = Instant::now();
        let mut queue = queue();
        const BUSY: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for i in 0..30 {
            for tenant in BUSY {
                queue.schedule((tenant, i), now, now);
            }
        }
        // Halfway through a round.
        for _ in 0..205 {
            take_one(&mut queue, now);
        }
        // A branch of a quiet project: created, then its status, its claim bound, its pods
        // ready... each trigger comes after the previous run, while ten busy tenants still
        // have nine or ten objects each. Each of its runs is the next one, up to the credit.
        for i in 0..IDLE_CREDIT as u32 {
            queue.schedule(("q", i), now, now);
            assert_eq!(take_one(&mut queue, now), format!("q{i}"));
        }
        // Then it takes its place in the rotation, as one of eleven.
        queue.schedule(("q", 99), now, now);
        let next: Vec<String> = (0..11).map(|_| take_one(&mut queue, now)).collect();
        assert_ne!(next[0], "q99");
        assert!(next.contains(&"q99".to_string()), "{next:?}");
    }

    #[test]
    fn a_tenant_cannot_bank_more_turns_than_the_credit_however_long_it_was_idle() {
        let now = Instant::now();
        let mut queue = queue();
        for i in 0..100 {
            queue.schedule(("a", i), now, now);
        }
        for _ in 0..50 {
            take_one(&mut queue, now);
        }
        // q was idle for fifty of a's turns and comes back with twenty objects: it is placed
        // IDLE_CREDIT turns behind a, so it has those and the tie, then they alternate.
        for i in 0..20 {
            queue.schedule(("q", i), now, now);
        }
        let order: Vec<String> = (0..13).map(|_| take_one(&mut queue, now)).collect();
        assert_eq!(
            order,
            [
                "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "a50", "q9", "a51", "q10"
            ]
        );
    }

    #[test]
    fn a_busy_tenant_whose_queue_just_drained_is_not_taken_for_one_back_from_idle() {
        let now = Instant::now();
        let mut queue = queue();
        for tenant in ["a", "c", "d"] {
            queue.schedule((tenant, 0), now, now);
        }
        let first_round: Vec<String> = (0..3).map(|_| take_one(&mut queue, now)).collect();
        assert_eq!(first_round, ["a0", "c0", "d0"]);
        // a starts the next round while c's and d's queues are empty (their objects run)...
        queue.schedule(("a", 1), now, now);
        assert_eq!(take_one(&mut queue, now), "a1");
        // ...then they refill, just before a tenant that was idle all along: it goes first.
        queue.schedule(("c", 1), now, now);
        queue.schedule(("d", 1), now, now);
        queue.schedule(("q", 0), now, now);
        let order: Vec<String> = (0..3).map(|_| take_one(&mut queue, now)).collect();
        assert_eq!(order, ["q0", "c1", "d1"]);
    }

    #[test]
    fn within_a_tenant_objects_that_ran_before_go_ahead_of_new_ones() {
        let now = Instant::now();
        let mut queue = queue();
        queue.schedule(("a", 0), now, now);
        assert_eq!(take_one(&mut queue, now), "a0");
        // Fifty new branches, then the first one's pods become ready.
        for i in 1..50 {
            queue.schedule(("a", i), now, now);
        }
        queue.schedule(("a", 0), now, now);
        assert_eq!(take_one(&mut queue, now), "a0");
        assert_eq!(take_one(&mut queue, now), "a1");
        // Gone and created again: new.
        queue.forget(&("a", 0));
        queue.schedule(("a", 0), now, now);
        assert_eq!(take_one(&mut queue, now), "a2");
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
