//! Fair turns: a limited number of reconciles run at once, and when more wait, the next turn goes
//! to the next *tenant* in round-robin order, not to whoever queued first.
//!
//! With one first-come-first-served queue, a project that creates a thousand branches at once
//! puts a thousand reconciles ahead of another project's single branch, which then waits for all
//! of them. Here each tenant (a project's namespace) has its own queue, and turns rotate across
//! the tenants that wait: the single branch waits for at most one turn of every busy tenant.
//!
//! The waiting happens here, not inside kube's controller. kube-runtime polls every reconcile
//! future it holds each time any one of them wakes, so thousands of reconciles parked in it for a
//! turn made every wake cost thousands of polls: a quarter of the operator's CPU at 1,000
//! branches, growing with the square of the branches (issue 23). A reconcile without a turn is
//! queued here and returns at once; when its turn comes, the object is triggered again and finds
//! the turn held for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// How long a turn is held for an object triggered to take it. Its reconcile normally starts
/// within milliseconds; one that never comes (the object was deleted meanwhile) must not keep
/// the turn. An object that comes later than this just queues again.
const RESERVATION: Duration = Duration::from_secs(30);

/// Who waits for a turn, and grants them as turns free up, by triggering the object again.
pub struct FairTurns<K: Resource<DynamicType = ()>> {
    queue: Mutex<Queue<ObjectRef<K>>>,
    trigger: UnboundedSender<ObjectRef<K>>,
    /// The other end of `trigger`, until the controller takes it (see `triggers`).
    triggered: Mutex<Option<UnboundedReceiver<ObjectRef<K>>>>,
}

/// A turn; the next waiter is triggered when it is dropped.
pub struct Turn<'a, K: Resource<DynamicType = ()>> {
    turns: &'a FairTurns<K>,
}

impl<K: Resource<DynamicType = ()>> FairTurns<K> {
    pub fn new(turns: usize) -> Self {
        let (trigger, triggered) = unbounded();
        FairTurns {
            queue: Mutex::new(Queue::new(turns)),
            trigger,
            triggered: Mutex::new(Some(triggered)),
        }
    }

    /// The objects whose turn has come, for the controller's `reconcile_on`. Once only.
    pub fn triggers(&self) -> UnboundedReceiver<ObjectRef<K>> {
        self.triggered
            .lock()
            .expect("turn triggers")
            .take()
            .expect("the triggers are taken once")
    }

    /// A turn for `object` of `tenant` now, or None: it is queued and will be triggered again.
    pub fn admit(&self, object: ObjectRef<K>, tenant: &str) -> Option<Turn<'_, K>> {
        let now = Instant::now();
        let mut queue = self.queue.lock().expect("turns");
        let admitted = queue.admit(object, tenant);
        let granted = queue.sweep(now);
        drop(queue);
        self.send(granted);
        admitted.then_some(Turn { turns: self })
    }

    /// Starts granting turns (the caches are ready); until then every object queues.
    pub fn open(&self) {
        let granted = self.queue.lock().expect("turns").open(Instant::now());
        self.send(granted);
    }

    /// Takes back the turns held for objects that never came for them (see `RESERVATION`).
    pub fn sweep(&self) {
        let granted = self.queue.lock().expect("turns").sweep(Instant::now());
        self.send(granted);
    }

    /// Objects waiting for a turn.
    pub fn waiting(&self) -> usize {
        self.queue.lock().expect("turns").queued.len()
    }

    fn send(&self, granted: Vec<ObjectRef<K>>) {
        for object in granted {
            // Fails only when the controller is gone (shutting down): nothing to run then.
            let _ = self.trigger.unbounded_send(object);
        }
    }
}

impl<K: Resource<DynamicType = ()>> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        let granted = self
            .turns
            .queue
            .lock()
            .expect("turns")
            .finish(Instant::now());
        self.turns.send(granted);
    }
}

/// The turns' bookkeeping, without the runtime: which objects run, which wait, whose turn is next.
struct Queue<Key> {
    turns: usize,
    /// Turns in use: running, or held for an object triggered to take it.
    busy: usize,
    /// False until the caches are ready.
    open: bool,
    /// Every waiting object, once.
    queued: HashSet<Key>,
    /// Waiters per tenant, oldest first.
    waiting: HashMap<String, VecDeque<Key>>,
    /// Tenants with waiters, in the order their next turn comes.
    rotation: VecDeque<String>,
    /// Objects triggered to take a turn held for them, and since when.
    reserved: HashMap<Key, Instant>,
}

impl<Key: Hash + Eq + Clone> Queue<Key> {
    fn new(turns: usize) -> Self {
        Queue {
            turns,
            busy: 0,
            open: false,
            queued: HashSet::new(),
            waiting: HashMap::new(),
            rotation: VecDeque::new(),
            reserved: HashMap::new(),
        }
    }

    /// Whether `key` runs now (its held turn, or a free one nobody waits for); else it queues,
    /// once however often it comes.
    fn admit(&mut self, key: Key, tenant: &str) -> bool {
        if self.reserved.remove(&key).is_some() {
            return true;
        }
        if self.open && self.busy < self.turns && self.rotation.is_empty() {
            self.busy += 1;
            return true;
        }
        if self.queued.insert(key.clone()) {
            match self.waiting.get_mut(tenant) {
                Some(queue) => queue.push_back(key),
                None => {
                    self.waiting
                        .insert(tenant.to_string(), VecDeque::from([key]));
                    self.rotation.push_back(tenant.to_string());
                }
            }
        }
        false
    }

    /// A run ended: its turn goes to the next waiter.
    fn finish(&mut self, now: Instant) -> Vec<Key> {
        self.busy = self.busy.saturating_sub(1);
        self.grant(now)
    }

    fn open(&mut self, now: Instant) -> Vec<Key> {
        self.open = true;
        self.grant(now)
    }

    /// Frees the turns held too long for objects that did not come, and grants them anew.
    fn sweep(&mut self, now: Instant) -> Vec<Key> {
        let before = self.reserved.len();
        self.reserved
            .retain(|_, since| now.duration_since(*since) < RESERVATION);
        self.busy = self.busy.saturating_sub(before - self.reserved.len());
        self.grant(now)
    }

    /// Holds each free turn for the next waiter in rotation; returns whom to trigger.
    fn grant(&mut self, now: Instant) -> Vec<Key> {
        let mut granted = Vec::new();
        while self.open && self.busy < self.turns {
            let Some(key) = self.next() else {
                break;
            };
            self.busy += 1;
            self.reserved.insert(key.clone(), now);
            granted.push(key);
        }
        granted
    }

    /// The oldest waiter of the tenant whose turn it is.
    fn next(&mut self) -> Option<Key> {
        let tenant = self.rotation.pop_front()?;
        let queue = self
            .waiting
            .get_mut(&tenant)
            .expect("a tenant in rotation waits");
        let key = queue.pop_front().expect("a tenant in rotation waits");
        if queue.is_empty() {
            self.waiting.remove(&tenant);
        } else {
            self.rotation.push_back(tenant);
        }
        self.queued.remove(&key);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_queue(turns: usize) -> (Queue<String>, Instant) {
        let now = Instant::now();
        let mut queue = Queue::new(turns);
        assert!(queue.open(now).is_empty());
        (queue, now)
    }

    #[test]
    fn turns_rotate_across_tenants_instead_of_following_the_queue() {
        let (mut queue, now) = open_queue(1);
        assert!(queue.admit("hold".into(), "hold"));
        for (key, tenant) in [("a0", "a"), ("a1", "a"), ("a2", "a"), ("a3", "a")] {
            assert!(!queue.admit(key.into(), tenant));
        }
        assert!(!queue.admit("b4".into(), "b"));
        assert!(!queue.admit("c5".into(), "c"));
        let mut order = Vec::new();
        let mut granted = queue.finish(now);
        while let Some(key) = granted.pop() {
            // The triggered object comes, finds its turn, runs and finishes.
            assert!(queue.admit(key.clone(), "any"));
            order.push(key);
            granted = queue.finish(now);
        }
        assert_eq!(order, ["a0", "b4", "c5", "a1", "a2", "a3"]);
        assert_eq!(queue.busy, 0);
    }

    #[test]
    fn an_object_queues_once_however_often_it_comes() {
        let (mut queue, now) = open_queue(1);
        assert!(queue.admit("running".into(), "a"));
        for _ in 0..3 {
            assert!(!queue.admit("waiting".into(), "b"));
        }
        assert_eq!(queue.finish(now), ["waiting"]);
        assert!(queue.admit("waiting".into(), "b"));
        assert!(queue.finish(now).is_empty());
    }

    #[test]
    fn nothing_runs_before_the_caches_are_ready_and_then_as_many_as_there_are_turns() {
        let now = Instant::now();
        let mut queue = Queue::new(2);
        for key in ["a", "b", "c"] {
            assert!(!queue.admit(key.to_string(), key));
        }
        assert_eq!(queue.open(now), ["a", "b"]);
        assert_eq!(queue.busy, 2);
    }

    #[test]
    fn a_turn_held_for_an_object_that_never_comes_is_given_on() {
        let (mut queue, now) = open_queue(1);
        assert!(queue.admit("running".into(), "a"));
        assert!(!queue.admit("deleted".into(), "b"));
        assert!(!queue.admit("next".into(), "c"));
        assert_eq!(queue.finish(now), ["deleted"]);
        // Not yet: it may still come.
        assert!(queue.sweep(now + RESERVATION / 2).is_empty());
        assert_eq!(queue.sweep(now + RESERVATION), ["next"]);
        // Come late after all, it queues like any other.
        assert!(!queue.admit("deleted".into(), "b"));
        assert_eq!(queue.busy, 1);
    }

    #[test]
    fn a_free_turn_goes_to_a_newcomer_only_when_nobody_waits() {
        let (mut queue, now) = open_queue(2);
        assert!(queue.admit("a".into(), "a"));
        assert!(queue.admit("b".into(), "b"));
        assert!(!queue.admit("c".into(), "c"));
        // A turn frees up and is held for c: a newcomer does not take it.
        assert_eq!(queue.finish(now), ["c"]);
        assert!(!queue.admit("d".into(), "d"));
        assert!(queue.admit("c".into(), "c"));
    }
}
