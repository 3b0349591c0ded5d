//! Runs a controller: takes the object references its triggers yield, queues them (see `queue`),
//! and reconciles each due object on one of a fixed number of workers, with the object as the
//! cache has it at that moment.
//!
//! This replaces kube-runtime's `Controller::run`, whose runner held every due reconcile as a
//! future and polled them all at every wake-up: fair turns had to wait inside those futures, so a
//! burst of 5,000 branches parked 5,000 futures there, and the polling cost grew with the square.
//! Here an object waiting for its turn is one entry in a queue, and nothing is polled until its
//! turn comes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, error, trace, warn};

use super::queue::{Placed, Queue};

/// What a reconcile asks for next: to run again after a while, or only when something changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `duration`, even if nothing changes.
    pub const fn requeue(duration: Duration) -> Self {
        Action {
            requeue_after: Some(duration),
        }
    }

    /// Reconcile again only when a trigger asks for it.
    pub const fn await_change() -> Self {
        Action {
            requeue_after: None,
        }
    }

    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// How a controller runs.
pub struct Settings {
    /// How many reconciles run at once.
    pub workers: usize,
    /// How long a triggered object waits before it is due, so that a burst of triggers makes one
    /// reconcile; zero for none. A trigger never pushes an object already delayed further back.
    pub debounce: Duration,
    /// How long to wait after a reconcile panicked (a bug) before trying the object again.
    pub after_panic: Duration,
    /// Set to the number of objects due and waiting for a worker (`oksa_work_queue_depth`).
    pub depth: Gauge,
}

/// The triggers of one controller, merged: each yields references of the objects to reconcile.
pub type Triggers<K> = Vec<BoxStream<'static, ObjectRef<K>>>;

struct Shared<K: Resource> {
    queue: Mutex<Queue<ObjectRef<K>>>,
    /// A due object, or the end: a worker may look.
    work: Notify,
    /// The earliest delay may have changed: the dispatcher looks again.
    delays: Notify,
    closed: AtomicBool,
    depth: Gauge,
}

impl<K: Resource<DynamicType = ()>> Shared<K> {
    /// Runs `change` on the queue, then reports how many objects are due.
    fn change_queue<R>(&self, change: impl FnOnce(&mut Queue<ObjectRef<K>>) -> R) -> R {
        let mut queue = self.queue.lock().expect("queue");
        let result = change(&mut queue);
        self.depth
            .set(i64::try_from(queue.due_len()).unwrap_or(i64::MAX));
        result
    }
}

/// Runs the controller until `shutdown` completes, then lets the running reconciles finish.
/// Reconciles start once `start` completes (the caches are ready); triggers are queued before.
#[allow(clippy::too_many_arguments)]
pub async fn run<K, C, R, Fut, E, P>(
    name: &'static str,
    lookup: impl Fn(&ObjectRef<K>) -> Option<Arc<K>> + Send + Sync + 'static,
    triggers: Triggers<K>,
    settings: Settings,
    reconcile: R,
    error_policy: P,
    ctx: Arc<C>,
    start: impl Future<Output = ()> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    C: Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
    P: Fn(Arc<K>, &E, Arc<C>) -> Action + Send + Sync + Clone + 'static,
{
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::new(tenant_of::<K>)),
        work: Notify::new(),
        delays: Notify::new(),
        closed: AtomicBool::new(false),
        depth: settings.depth.clone(),
    });
    let start = start.shared();
    let lookup = Arc::new(lookup);
    let mut workers = Vec::with_capacity(settings.workers);
    for _ in 0..settings.workers {
        workers.push(tokio::spawn(work(
            name,
            shared.clone(),
            lookup.clone(),
            reconcile.clone(),
            error_policy.clone(),
            ctx.clone(),
            start.clone(),
            settings.after_panic,
        )));
    }
    dispatch(
        shared.clone(),
        futures::stream::select_all(triggers),
        settings.debounce,
        shutdown,
    )
    .await;
    shared.closed.store(true, Ordering::SeqCst);
    shared.work.notify_waiters();
    for worker in workers {
        if let Err(error) = worker.await {
            error!(controller = name, %error, "a worker ended abnormally");
        }
    }
}

/// Queues what the triggers ask for and makes delayed objects due in time, until `shutdown`.
async fn dispatch<K>(
    shared: Arc<Shared<K>>,
    mut triggers: impl Stream<Item = ObjectRef<K>> + Unpin,
    debounce: Duration,
    shutdown: impl Future<Output = ()>,
) where
    K: Resource<DynamicType = ()>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    // The watches never end; should the triggers all end, the delays still come due.
    let mut triggers_ended = false;
    loop {
        let next_delay = shared.queue.lock().expect("queue").next_delay();
        let sleep = async {
            match next_delay {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            key = triggers.next(), if !triggers_ended => {
                let Some(key) = key else {
                    triggers_ended = true;
                    continue;
                };
                trace!(object = %key, "triggered");
                let now = Instant::now().into_std();
                let at = now + debounce;
                let placed = shared.change_queue(|queue| queue.schedule(key, at, now));
                if placed == Some(Placed::Due) {
                    shared.work.notify_one();
                }
                // A delay (the debounce) is seen by the next turn of this loop.
                continue;
            }
            () = sleep => {}
            () = shared.delays.notified() => {}
        }
        let promoted = shared.change_queue(|queue| queue.promote_due(Instant::now().into_std()));
        for _ in 0..promoted {
            shared.work.notify_one();
        }
    }
}

/// One worker: reconciles due objects one at a time until the queue closes.
#[allow(clippy::too_many_arguments)]
async fn work<K, C, R, Fut, E, P>(
    name: &'static str,
    shared: Arc<Shared<K>>,
    lookup: Arc<impl Fn(&ObjectRef<K>) -> Option<Arc<K>>>,
    reconcile: R,
    error_policy: P,
    ctx: Arc<C>,
    start: impl Future<Output = ()>,
    after_panic: Duration,
) where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: std::fmt::Display,
    P: Fn(Arc<K>, &E, Arc<C>) -> Action,
{
    // A shutdown before the caches are ready ends the worker too.
    tokio::select! {
        () = start => {}
        () = closed(&shared) => return,
    }
    while let Some(key) = next(&shared).await {
        let requeue = match lookup(&key) {
            // Gone (deleted while it waited): its finalizer, if any, ran while it was there.
            None => {
                debug!(controller = name, object = %key, "gone before its turn");
                shared.change_queue(|queue| queue.forget(&key));
                None
            }
            Some(object) => {
                let began = Instant::now();
                let run = AssertUnwindSafe(reconcile(object.clone(), ctx.clone())).catch_unwind();
                let action = match run.await {
                    Ok(Ok(action)) => action,
                    Ok(Err(error)) => error_policy(object, &error, ctx.clone()),
                    Err(_) => {
                        error!(controller = name, object = %key, retry_in = ?after_panic,
                            "reconcile panicked");
                        Action::requeue(after_panic)
                    }
                };
                debug!(controller = name, object = %key, took = ?began.elapsed(), "reconciled");
                action.requeue_after()
            }
        };
        let now = Instant::now().into_std();
        let placed =
            shared.change_queue(|queue| queue.done(&key, requeue.map(|after| now + after), now));
        // Due again at once (a trigger during the run), or delayed: who must look again.
        match placed {
            Some(Placed::Due) => shared.work.notify_one(),
            Some(Placed::Delayed) => shared.delays.notify_one(),
            None => {}
        }
    }
}

/// The next due object, waiting for one; None once the queue is closed.
async fn next<K>(shared: &Shared<K>) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    wait_until(shared, |shared| shared.change_queue(Queue::take)).await
}

/// Completes once the queue is closed.
async fn closed<K>(shared: &Shared<K>)
where
    K: Resource<DynamicType = ()>,
{
    wait_until(shared, |_| None::<()>).await;
}

/// Waits until `found` finds something (woken by `work`), or the queue is closed (None).
async fn wait_until<K, T>(
    shared: &Shared<K>,
    mut found: impl FnMut(&Shared<K>) -> Option<T>,
) -> Option<T>
where
    K: Resource<DynamicType = ()>,
{
    loop {
        // Registered before looking, so that a wake-up between the look and the wait is kept.
        let notified = shared.work.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if shared.closed.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(thing) = found(shared) {
            return Some(thing);
        }
        notified.await;
    }
}

/// An object's tenant: its namespace (a project's), or "" for cluster-scoped objects.
fn tenant_of<K: Resource<DynamicType = ()>>(key: &ObjectRef<K>) -> String {
    key.namespace.clone().unwrap_or_default()
}

/// Triggers the object itself on every change of it.
pub fn on_self<K>(
    controller: &'static str,
    stream: impl Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
) -> BoxStream<'static, ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + 'static,
{
    on_map(controller, stream, |object: K| {
        Some(ObjectRef::from_obj(&object))
    })
}

/// Triggers the controller owner of kind K of each changed object.
pub fn on_owner<K, C>(
    controller: &'static str,
    stream: impl Stream<Item = Result<C, kube::runtime::watcher::Error>> + Send + 'static,
) -> BoxStream<'static, ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + 'static,
    C: Resource + 'static,
{
    on_map(controller, stream, |child: C| {
        controller_owner::<K>(child.meta())
    })
}

/// The controller owner of kind K (any version of its group) named by `meta`, in its namespace.
pub fn controller_owner<K>(meta: &ObjectMeta) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    let group = K::group(&());
    // Any version of the owner's group: the reference names the version it was made with.
    fn group_of(api_version: &str) -> &str {
        api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == kind && group_of(&r.api_version) == group)
        .map(|r| ObjectRef::new(&r.name))?;
    Some(match &meta.namespace {
        Some(namespace) => owner.within(namespace),
        None => owner,
    })
}

/// Triggers what `map` names for each changed object.
pub fn on_map<K, C, I>(
    controller: &'static str,
    stream: impl Stream<Item = Result<C, kube::runtime::watcher::Error>> + Send + 'static,
    mut map: impl FnMut(C) -> I + Send + 'static,
) -> BoxStream<'static, ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + 'static,
    I: IntoIterator<Item = ObjectRef<K>>,
    I::IntoIter: Send + 'static,
{
    stream
        .flat_map(move |event| {
            let keys = match event {
                Ok(object) => Some(map(object).into_iter()),
                // Until the watch recovers, its cache is stale, and /readyz says so.
                Err(error) => {
                    warn!(controller, %error, "watch error");
                    None
                }
            };
            futures::stream::iter(keys.into_iter().flatten())
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    fn config_map(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.name = Some(name.into());
        object.metadata.namespace = Some(namespace.into());
        object
    }

    #[derive(Default)]
    struct Seen {
        running: AtomicUsize,
        most_at_once: AtomicUsize,
        runs: Mutex<HashMap<String, usize>>,
    }

    #[tokio::test]
    async fn every_triggered_object_is_reconciled_within_the_worker_limit_and_requeues_come_back() {
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut keys = Vec::new();
        for i in 0..40 {
            let object = config_map(&format!("ns{}", i % 4), &format!("cm{i}"));
            writer.apply_watcher_event(&watcher::Event::Apply(object.clone()));
            keys.push(ObjectRef::from_obj(&object));
        }
        // Each object twice, and one that is not cached.
        let mut triggers = keys.clone();
        triggers.extend(keys.clone());
        triggers.push(ObjectRef::new("gone").within("ns0"));
        let seen = Arc::new(Seen::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reconcile = |object: Arc<ConfigMap>, seen: Arc<Seen>| async move {
            let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            seen.running.fetch_sub(1, Ordering::SeqCst);
            let name = object.metadata.name.clone().unwrap();
            let runs = {
                let mut runs = seen.runs.lock().unwrap();
                let count = runs.entry(name.clone()).or_default();
                *count += 1;
                *count
            };
            // cm0 asks to run once more, later; cm1 fails once.
            match (name.as_str(), runs) {
                ("cm0", 1) => Ok(Action::requeue(Duration::from_millis(50))),
                ("cm1", 1) => Err("failed once"),
                _ => Ok(Action::await_change()),
            }
        };
        let error_policy =
            |_: Arc<ConfigMap>, _: &&str, _: Arc<Seen>| Action::requeue(Duration::from_millis(10));
        let depth = Gauge::default();
        let (start, started) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(run(
            "test",
            move |key: &ObjectRef<ConfigMap>| store.get(key),
            vec![futures::stream::iter(triggers).boxed()],
            Settings {
                workers: 3,
                debounce: Duration::ZERO,
                after_panic: Duration::from_secs(1),
                depth: depth.clone(),
            },
            reconcile,
            error_policy,
            seen.clone(),
            async move {
                let _ = started.await;
            },
            async move {
                let _ = stopped.await;
            },
        ));
        // Before the workers start, every object triggered is due once (the uncached one too).
        let queued = async {
            while depth.get() != 41 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), queued)
            .await
            .expect("the depth counts every due object once");
        let _ = start.send(());
        let all_done = async {
            loop {
                let runs = seen.runs.lock().unwrap().clone();
                if runs.len() == 40 && runs["cm0"] == 2 && runs["cm1"] == 2 {
                    return runs;
                }
                drop(runs);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let runs = tokio::time::timeout(Duration::from_secs(10), all_done)
            .await
            .expect("every object reconciled, cm0 requeued and cm1 retried");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), runner)
            .await
            .expect("the runner stops")
            .unwrap();
        assert!(seen.most_at_once.load(Ordering::SeqCst) <= 3);
        assert_eq!(depth.get(), 0, "nothing left waiting");
        // Triggered twice before any ran: each object once (but cm0 and cm1, by their own asking).
        let extra: usize = runs.values().sum::<usize>() - 40;
        assert_eq!(extra, 2, "{runs:?}");
    }

    #[tokio::test]
    async fn a_shutdown_before_the_caches_are_ready_ends_the_runner() {
        let (store, _writer) = kube::runtime::reflector::store::<ConfigMap>();
        let runner = run(
            "test",
            move |key: &ObjectRef<ConfigMap>| store.get(key),
            vec![futures::stream::pending().boxed()],
            Settings {
                workers: 2,
                debounce: Duration::ZERO,
                after_panic: Duration::from_secs(1),
                depth: Gauge::default(),
            },
            |_: Arc<ConfigMap>, _: Arc<()>| async { Ok::<_, &str>(Action::await_change()) },
            |_: Arc<ConfigMap>, _: &&str, _: Arc<()>| Action::await_change(),
            Arc::new(()),
            std::future::pending(),
            async {},
        );
        tokio::time::timeout(Duration::from_secs(5), runner)
            .await
            .expect("the runner ends without waiting for the caches");
    }
}
