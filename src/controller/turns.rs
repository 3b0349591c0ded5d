//! Fair turns: a limited number of reconciles run at once, and when more wait, the next turn goes
//! to the next *tenant* in round-robin order, not to whoever queued first.
//!
//! With one first-come-first-served queue, a project that creates a thousand branches at once
//! puts a thousand reconciles ahead of another project's single branch, which then waits for all
//! of them. Here each tenant (a project's namespace) has its own queue, and turns rotate across
//! the tenants that wait: the single branch waits for at most one turn of every busy tenant.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Who waits for a turn, and grants them as turns free up.
pub struct FairTurns {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Turns not in use.
    free: usize,
    /// Waiters per tenant, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<Turn>>>,
    /// Tenants with waiters, in the order their next turn comes.
    rotation: VecDeque<String>,
}

/// One turn; it goes to the next waiter when dropped.
pub struct Turn {
    /// None for a turn that was handed back unused (see `Drop`).
    state: Option<Arc<Mutex<State>>>,
}

impl FairTurns {
    pub fn new(turns: usize) -> Self {
        FairTurns {
            state: Arc::new(Mutex::new(State {
                free: turns,
                waiting: HashMap::new(),
                rotation: VecDeque::new(),
            })),
        }
    }

    /// Waits for a turn of `tenant`.
    pub async fn acquire(&self, tenant: &str) -> Turn {
        let receiver = {
            let mut state = self.state.lock().expect("turns");
            if state.free > 0 && state.rotation.is_empty() {
                state.free -= 1;
                return Turn {
                    state: Some(self.state.clone()),
                };
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(tenant.to_string()).or_default();
            if queue.is_empty() {
                state.rotation.push_back(tenant.to_string());
            }
            state
                .waiting
                .get_mut(tenant)
                .expect("just inserted")
                .push_back(sender);
            receiver
        };
        match receiver.await {
            Ok(turn) => turn,
            // The sender is only dropped with the whole `FairTurns`; then nothing runs anyway.
            Err(_) => std::future::pending().await,
        }
    }

    /// Waiters, for tests and metrics.
    pub fn waiting(&self) -> usize {
        let state = self.state.lock().expect("turns");
        state.waiting.values().map(VecDeque::len).sum()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let mut guard = state.lock().expect("turns");
        // Hand the turn on: the next tenant in rotation, its oldest waiter still waiting (a waiter
        // that gave up has dropped its receiver and is skipped).
        while let Some(tenant) = guard.rotation.pop_front() {
            let queue = guard
                .waiting
                .get_mut(&tenant)
                .expect("a tenant in rotation waits");
            while let Some(sender) = queue.pop_front() {
                let more = !queue.is_empty();
                let turn = Turn {
                    state: Some(state.clone()),
                };
                match sender.send(turn) {
                    Ok(()) => {
                        if more {
                            guard.rotation.push_back(tenant);
                        } else {
                            guard.waiting.remove(&tenant);
                        }
                        return;
                    }
                    // Given up: the turn comes back unused (dropping it must not hand it on
                    // again while this hand-over holds the lock); try the next waiter.
                    Err(mut returned) => returned.state = None,
                }
            }
            guard.waiting.remove(&tenant);
        }
        guard.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn order_of_turns(turns: &Arc<FairTurns>, tenants: &[&str]) -> Vec<String> {
        let granted = Arc::new(Mutex::new(Vec::new()));
        let first = turns.acquire("hold").await;
        let mut tasks = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            let shared = turns.clone();
            let granted = granted.clone();
            let tenant = tenant.to_string();
            tasks.push(tokio::spawn(async move {
                let _turn = shared.acquire(&tenant).await;
                granted.lock().unwrap().push(format!("{tenant}{i}"));
            }));
            // Queue them in this order.
            while turns.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        granted.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn turns_rotate_across_tenants_instead_of_following_the_queue() {
        let turns = Arc::new(FairTurns::new(1));
        let order = order_of_turns(&turns, &["a", "a", "a", "a", "b", "c"]).await;
        assert_eq!(order, ["a0", "b4", "c5", "a1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_is_skipped_and_no_turn_is_lost() {
        let turns = Arc::new(FairTurns::new(1));
        let held = turns.acquire("a").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), turns.acquire("b")).await;
        assert!(gave_up.is_err());
        drop(held);
        // The only turn is free again: two acquisitions in a row succeed.
        let again = tokio::time::timeout(Duration::from_secs(1), turns.acquire("c"))
            .await
            .expect("the turn came back");
        drop(again);
        tokio::time::timeout(Duration::from_secs(1), turns.acquire("d"))
            .await
            .expect("and again");
    }
}
