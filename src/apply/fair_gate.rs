//! A bound on requests in flight, handed out to the tenant (project) that was served least lately.
//!
//! Why Service creations go through one (see `Applier::apply`): kube-apiserver allocates a
//! Service's ClusterIP under a single lock, with an API request inside it (the `IPAddress` is
//! created through its own loopback client) and, after each allocation, a count of all the
//! addresses in use. On this machine's plane a creation took 67 ms with 4,000 Services and 137 ms
//! with 6,500, strictly one after another. With 32 reconciles creating two Services each, about
//! sixty creations waited on that lock, first come first served, and every reconcile, a quiet
//! project's new branch included, waited 4 to 9 s for its Services. Through the gate only a few
//! are at the API server at once; the others wait here, and the next to go is the one of the
//! tenant served least lately, so a project's first Service goes ahead of a busy project's
//! backlog. A tenant idle for `FORGET` starts again from zero: it cannot bank turns.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a tenant's count of turns is kept after its last request.
const FORGET: Duration = Duration::from_secs(60);

pub struct FairGate {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    next_arrival: u64,
    /// By (the tenant's turns taken before this one, arrival): least served first.
    waiting: BTreeMap<(u64, u64), oneshot::Sender<()>>,
    tenants: HashMap<Box<str>, Turns>,
}

struct Turns {
    taken: u64,
    last: Instant,
}

/// Held while the request is in flight; the next waiter goes when it is dropped.
pub struct Permit<'a> {
    gate: &'a FairGate,
}

impl FairGate {
    /// At most `limit` (at least one) holders at once.
    pub fn new(limit: usize) -> Self {
        FairGate {
            limit: limit.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn of `tenant`.
    pub async fn enter(&self, tenant: &str) -> Permit<'_> {
        let receiver = {
            let mut state = self.state();
            let now = Instant::now();
            if state.tenants.len() > 4096 {
                state
                    .tenants
                    .retain(|_, turns| now.duration_since(turns.last) < FORGET);
            }
            let turns = state.tenants.entry(tenant.into()).or_insert(Turns {
                taken: 0,
                last: now,
            });
            if now.duration_since(turns.last) >= FORGET {
                turns.taken = 0;
            }
            let rank = turns.taken;
            turns.taken += 1;
            turns.last = now;
            if state.in_flight < self.limit && state.waiting.is_empty() {
                state.in_flight += 1;
                return Permit { gate: self };
            }
            let (sender, receiver) = oneshot::channel();
            let arrival = state.next_arrival;
            state.next_arrival += 1;
            state.waiting.insert((rank, arrival), sender);
            receiver
        };
        let mut waiting = Waiting {
            gate: self,
            receiver: Some(receiver),
        };
        waiting.granted().await;
        Permit { gate: self }
    }

    /// Hands free places to the first waiters still waiting.
    fn grant(&self, state: &mut State) {
        while state.in_flight < self.limit {
            let Some((_, sender)) = state.waiting.pop_first() else {
                return;
            };
            // A waiter that gave up (its reconcile was dropped) is passed over.
            if sender.send(()).is_ok() {
                state.in_flight += 1;
            }
        }
    }

    fn release(&self) {
        let mut state = self.state();
        state.in_flight -= 1;
        self.grant(&mut state);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A waiter. Dropped after its turn was granted but before it took it, it gives the turn back.
struct Waiting<'a> {
    gate: &'a FairGate,
    /// None once the turn is taken (a `Permit` gives it back then).
    receiver: Option<oneshot::Receiver<()>>,
}

impl Waiting<'_> {
    async fn granted(&mut self) {
        if let Some(receiver) = self.receiver.as_mut() {
            // The gate keeps every sender until it grants it, so this only ends by a grant.
            let _ = receiver.await;
        }
        self.receiver = None;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const SOON: Duration = Duration::from_secs(5);

    /// Waits until `count` requests wait at `gate`.
    async fn until_waiting(gate: &FairGate, count: usize) {
        tokio::time::timeout(SOON, async {
            while gate.state().waiting.len() != count {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the waiters queued");
    }

    /// Enters `gate` as `tenant` in a task of its own, records its turn in `order`, and holds it
    /// until `release` is notified.
    fn queue(
        gate: &Arc<FairGate>,
        tenant: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
        release: &Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let (gate, order, release) = (gate.clone(), order.clone(), release.clone());
        tokio::spawn(async move {
            let _turn = gate.enter(tenant).await;
            order.lock().unwrap().push(tenant);
            release.notified().await;
        })
    }

    #[tokio::test]
    async fn holds_at_most_its_limit_and_lets_the_next_in_when_one_leaves() {
        let gate = FairGate::new(2);
        let first = gate.enter("shop").await;
        let _second = gate.enter("shop").await;
        let third = gate.enter("shop");
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "a third got in past a limit of two"
        );
        drop(first);
        tokio::time::timeout(SOON, third)
            .await
            .expect("the third got in once one left");
    }

    #[tokio::test]
    async fn a_quiet_tenant_goes_ahead_of_a_busy_ones_backlog() {
        let gate = Arc::new(FairGate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let holder = gate.enter("busy").await;
        let mut tasks = Vec::new();
        for waiting in 1..=3 {
            tasks.push(queue(&gate, "busy", &order, &release));
            until_waiting(&gate, waiting).await;
        }
        tasks.push(queue(&gate, "quiet", &order, &release));
        until_waiting(&gate, 4).await;
        drop(holder);
        for _ in 0..4 {
            tokio::time::timeout(SOON, async {
                let taken = order.lock().unwrap().len();
                while order.lock().unwrap().len() == taken {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .ok();
            release.notify_one();
        }
        for task in tasks {
            tokio::time::timeout(SOON, task).await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["quiet", "busy", "busy", "busy"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_place_taken() {
        let gate = Arc::new(FairGate::new(1));
        let holder = gate.enter("shop").await;
        let gone = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate.enter("shop").await;
            })
        };
        until_waiting(&gate, 1).await;
        gone.abort();
        let _ = gone.await;
        drop(holder);
        tokio::time::timeout(SOON, gate.enter("shop"))
            .await
            .expect("the place given up went to the next");
    }
}
